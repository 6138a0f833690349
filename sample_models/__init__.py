"""Small ready models with their data, task metric and calibration set, for quantization experiments.

    import sample_models
    sample_models.names()                 # ["tiny-linear", "digits-mlp", "digits-cnn", "minilm", "recsys"]
    sm = sample_models.load("digits-mlp")  # cached and shared: never mutate sm.model, deepcopy it first
    sm.evaluate(copy_of_model)            # {"accuracy": ..., "macro_f1": ..., "loss": ...}

Inputs convention: a model's inputs are a Tensor (``model(x)``) or a tuple of Tensors (``model(*x)``), and
the model returns one Tensor; `call` implements it. Nothing here imports streamlit, plotly or the app.
"""

from .base import Inputs, SampleModel, call
from .registry import load, loaded_count, names

__all__ = ["Inputs", "SampleModel", "call", "load", "loaded_count", "names"]
