"""quantlib: the quantization math behind Quantization Explorer, usable on its own in a notebook.

    >>> import torch
    >>> from quantlib import QuantSpec, fake_quant, metrics
    >>> w = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    >>> w_hat = fake_quant(w, QuantSpec(bits=4, granularity="channel"))
    >>> 15 < metrics.sqnr_db(w, w_hat) < 25
    True

Conventions (see :mod:`quantlib.quantizer`): ``q = clamp(round(x / s) + z, qmin, qmax)``, ``x̂ = (q - z) · s``.
No Streamlit, no plotting: tensors and modules in, tensors, dataclasses and DataFrames out.
"""

from . import metrics
from .analysis import QuantReport, histogram, summarize
from .curves import calibrated_clip_ratio, clip_sweep, error_curve
from .formats import NF4_CODEBOOK
from .grids import clip_range, grid
from .quantizer import choose_qparams, dequantize, fake_quant, quantize
from .spec import QParams, QTensor, QuantSpec

#: Submodules loaded on first use (``quantlib.qat`` ...), so ``import quantlib`` stays light.
_SUBMODULES = (
    "energy", "evaluate", "export", "formats", "inputs", "io", "mixed_precision", "model", "onnx_int8", "pack",
    "ptq", "qat", "recipe", "sensitivity", "speed", "walkthrough",
)
#: Whole-model entry points, at the top level for the notebook but defined in those lazy submodules:
#: ``quantlib.quantize_weights(model, spec)`` loads ``quantlib.model`` on first use.
_LAZY = {
    "list_layers": "model",
    "layer_weight": "model",
    "quantize_weights": "model",
    "quantize_model": "model",
    "capture_activations": "model",
    "output_drift": "model",
    "model_size_bytes": "model",
    "layer_sensitivity": "sensitivity",
    "sensitivity_sweep": "sensitivity",
    "choose_bits": "mixed_precision",
    "pareto_front": "mixed_precision",
    "prepare_qat": "qat",
    "train_qat": "qat",
    "run_qat": "qat",
    "load_tensors": "io",
}


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'quantlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What tab completion offers: the eager names, the lazy submodules and the lazy entry points."""
    return sorted(set(globals()) | set(_SUBMODULES) | set(_LAZY))


__all__ = [  # noqa: RUF022 - the eager names, then the lazy entry points
    "NF4_CODEBOOK",
    "QParams",
    "QTensor",
    "QuantReport",
    "QuantSpec",
    "calibrated_clip_ratio",
    "choose_qparams",
    "clip_range",
    "clip_sweep",
    "dequantize",
    "error_curve",
    "fake_quant",
    "grid",
    "histogram",
    "metrics",
    "quantize",
    "summarize",
    *_LAZY,
]
