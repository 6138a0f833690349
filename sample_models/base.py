"""The `SampleModel` record every sample model is.

Inputs follow quantlib's one convention (:mod:`quantlib.inputs`: a Tensor, or a tuple of Tensors passed
positionally; every sample model uses those two) and are run with its `call`, so every caller agrees.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import torch
from torch import nn

from quantlib.inputs import Inputs, call


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark text the app shows translated (its catalog extracts these); returns ``message`` unchanged."""
    return message

Task: TypeAlias = Literal["regression", "classification", "embedding", "recommendation"]
TASKS: tuple[str, ...] = ("regression", "classification", "embedding", "recommendation")

LossFn: TypeAlias = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricsFn: TypeAlias = Callable[[nn.Module], Mapping[str, float | torch.Tensor]]




def build_module(factory: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Instantiate ``factory()`` directly with the given weights and return it in eval mode.

    The module is built on the meta device and the weights are *assigned*, so no throw-away random init runs:
    that is faster, and - more importantly - it does not consume the global torch RNG, which would silently
    change the results of whoever seeded it (a notebook, a test) just because a sample model was loaded.
    """
    with torch.device("meta"):
        module = factory()
    module.load_state_dict(dict(state_dict), strict=True, assign=True)
    return module.eval()


@dataclass(frozen=True, eq=False)
class SampleModel:
    """A ready model with its data, task metric and calibration set.

    Instances come from `sample_models.load` and are cached: the same object (and the same ``model``) is handed
    to every caller and every thread. Nothing in ``sample_models`` mutates it after load, and callers must not
    either - quantize a ``copy.deepcopy(sm.model)`` or work on detached tensors. The dataclass is frozen so an
    attribute cannot be reassigned by accident; tensors are not copy-protected, so do not modify them in place.

    Attributes:
        name: registry key, e.g. ``"digits-mlp"``.
        title: short human title for menus.
        description: a paragraph for the app: what the model is, its data, what to look out for.
        task: one of ``"regression"``, ``"classification"``, ``"embedding"``, ``"recommendation"``.
        model: the float ``nn.Module`` in eval mode.
        calibration_inputs: a small batch (tens to a few hundred examples) for activation calibration.
        eval_inputs: the evaluation inputs; also the inputs the drift plots run both models on.
        eval_targets: targets for ``eval_inputs`` (labels, reference outputs), or ``None``.
        metric_name: the key of the primary metric in `evaluate`'s result.
        higher_is_better: whether a larger primary metric is better.
        train_inputs / train_targets: training split for quantization-aware training, or ``None``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` for training on the train split, or ``None``.
        train_batch_size: examples per training step (a large training split wants larger batches).
        no_train_reason: for a model without a train split, why, in plain words (the QAT page shows it).
        default_layer: the layer a first view shows when a link names none (None: the first small layer).
    """

    name: str
    title: str
    description: str
    task: Task
    model: nn.Module = field(repr=False)
    calibration_inputs: Inputs = field(repr=False)
    eval_inputs: Inputs = field(repr=False)
    eval_targets: torch.Tensor | None = field(repr=False)
    metric_name: str
    higher_is_better: bool
    metrics_fn: MetricsFn = field(repr=False)
    train_inputs: Inputs | None = field(default=None, repr=False)
    train_targets: torch.Tensor | None = field(default=None, repr=False)
    loss_fn: LossFn | None = field(default=None, repr=False)
    train_batch_size: int = 64
    no_train_reason: str | None = None
    default_layer: str | None = None
    #: The description as translatable templates (English msgids with ``{placeholders}``) and their values; the
    #: app shows :meth:`describe` in the session's language. Empty: ``description`` is shown as it is.
    description_parts: tuple[str, ...] = ()
    text_values: Mapping[str, object] = field(default_factory=dict, repr=False)
    _float_metrics: dict[str, float] = field(init=False, repr=False, default_factory=dict)

    def describe(self, translate: Callable[[str], str] = str) -> str:
        """The description with each part passed through ``translate`` (a gettext function) and filled in.

        ``describe()`` is ``description``; the app passes ``ui.i18n._`` for the session's language.
        """
        if not self.description_parts:
            return translate(self.description)
        return " ".join(translate(p).format(**self.text_values) for p in self.description_parts)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.model.training:
            raise ValueError(f"sample model {self.name!r} must be built in eval mode")
        if (self.train_inputs is None) != (self.train_targets is None):
            raise ValueError("train_inputs and train_targets must both be set or both be None")
        metrics = self.evaluate(self.model)
        if self.metric_name not in metrics:
            raise ValueError(
                f"metrics_fn of {self.name!r} does not return the primary metric {self.metric_name!r}"
            )
        # Frozen dataclass: the cache is written once here, through object.__setattr__.
        object.__setattr__(self, "_float_metrics", metrics)

    @property
    def can_train(self) -> bool:
        """Whether quantization-aware training is possible: a train split and a loss."""
        return self.train_inputs is not None and self.train_targets is not None and self.loss_fn is not None

    @property
    def float_metrics(self) -> dict[str, float]:
        """`evaluate` of the float model, computed once at load. A fresh dict each time, so callers can't corrupt it."""
        return dict(self._float_metrics)

    def run(self, model: nn.Module, inputs: Inputs | None = None) -> torch.Tensor:
        """Forward pass without autograd; ``inputs`` defaults to ``eval_inputs``.

        Returns the output tensor the drift plots compare (logits, predictions, embeddings, scores).
        """
        with torch.no_grad():
            return call(model, self.eval_inputs if inputs is None else inputs)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Task metrics of ``model`` on the evaluation set, as plain Python floats.

        The model is used as given: its train/eval mode is not touched (that would be a mutation of a possibly
        shared object), but evaluating a model in training mode is almost always a mistake (dropout is active
        in MiniLM), so it warns.
        """
        if model.training:
            warnings.warn(
                f"evaluating {self.name!r} with a model in training mode; call model.eval() first",
                stacklevel=2,
            )
        with torch.no_grad():
            raw = self.metrics_fn(model)
        return {key: float(value) for key, value in raw.items()}

    def __repr__(self) -> str:
        return f"SampleModel(name={self.name!r}, task={self.task!r}, metric={self.metric_name!r})"
