"""Quantization-aware training (QAT), and how it compares with post-training quantization (PTQ).

PTQ rounds a trained model's weights once and hopes the network copes. QAT lets the network *learn* to cope,
following the four steps of the primer (section 3.2):

1. in the forward pass, weights (and optionally activations) are fake-quantized: ``x̂ = (clamp(round(x / s) + z,
   qmin, qmax) - z) · s``, with ``s, z`` recomputed from the current float weights at every step;
2. forward and backward run through the fake-quantized values; ``round`` has a zero gradient almost everywhere,
   so the backward uses the straight-through estimator (STE): ``∂x̂/∂x = 1`` where ``x`` is inside the clip range,
   ``0`` where it was clipped (see :func:`quantlib.fake_quant`);
3. the optimizer updates the *float* weights (small steps accumulate until a weight crosses a rounding
   boundary, which a rounded weight alone could never do);
4. repeat until the metric stops improving; :func:`convert` then keeps only the quantized weights.

Typical use (``model`` is never modified: QAT works on a deep copy)::

    qat_model = prepare_qat(model, QuantSpec(bits=2, granularity="channel"))
    for p in train_qat(qat_model, x_train, y_train, F.cross_entropy, epochs=3, evaluate=my_eval):
        print(p.epoch, p.step, p.loss, p.eval_metric)   # a page draws here, and may simply stop iterating
    final = convert(qat_model)                          # plain modules with fake-quantized weights

A tiny worked example: a 2-bit symmetric grid has the levels ``{-2, -1, 0, 1} · s`` with ``s = max|w|``, so PTQ
rounds every weight with ``|w| < max|w| / 2`` to zero. QAT keeps the float weights, and training pushes the
ones the loss needs over that threshold - quickly when the threshold is low (one scale per output channel, or
an asymmetric grid), slowly when a single outlier sets it for the whole tensor (see :func:`bits_sweep`).

    >>> import torch.nn as nn
    >>> from quantlib import QuantSpec
    >>> torch.manual_seed(0) is not None
    True
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    >>> qat_model = prepare_qat(net, QuantSpec(bits=4))
    >>> history = list(train_qat(qat_model, x, y, nn.functional.cross_entropy, epochs=2, batch_size=8))
    >>> [(p.epoch, p.step) for p in history]
    [(0, 0), (1, 4), (2, 8)]
    >>> final = convert(qat_model)
    >>> type(final[0]).__name__, len(torch.unique(final[0].weight)) <= 16
    ('Linear', True)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .evaluate import all_metrics, metric_value
from .inputs import Inputs, call, take
from .inputs import batch_size as examples_in  # `batch_size` is train_qat's mini-batch argument
from .kernels import qparams_from_range
from .model import (
    ActivationQuantizer,
    LayerInfo,
    QuantizedLayer,
    activation_spec,
    list_layers,
    quantize_model,
    quantize_weight_tensor,
    quantize_weights,
)
from .quantizer import fake_quant
from .spec import QParams, QuantSpec

EvaluateFn = Callable[[nn.Module], "float | Mapping[str, float]"]
TrainMetricFn = Callable[[torch.Tensor, torch.Tensor], float]

#: Weight of the newest batch in the moving average of activation ranges (torch's
#: ``MovingAverageMinMaxObserver`` uses ``averaging_constant=0.01``, i.e. a decay of 0.99).
DEFAULT_EMA_DECAY = 0.99


# --------------------------------------------------------------------------------------------------------------
# Modules of a QAT model
# --------------------------------------------------------------------------------------------------------------


class MovingAverageFakeQuant(nn.Module):
    """Fake-quantizes an activation with a range tracked by an exponential moving average of min / max.

    In training mode each batch updates ``lo ← lo + (1 - decay) · (min(x) - lo)`` (same for ``hi``; the first
    batch sets them), then the batch is fake-quantized with the updated range, as torch's ``FakeQuantize``
    with a ``MovingAverageMinMaxObserver`` does. In eval mode the range is frozen. Until it has seen a floating
    batch (``initialized`` is False) it passes values through unchanged. Integer inputs (token ids) pass through.
    """

    def __init__(self, spec: QuantSpec, decay: float = DEFAULT_EMA_DECAY) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay!r}")
        self.spec = activation_spec(spec)
        self.decay = float(decay)
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    def observe(self, x: torch.Tensor) -> None:
        """Fold one batch's min / max into the moving range."""
        if not x.is_floating_point() or x.numel() == 0:
            return
        with torch.no_grad():
            lo, hi = torch.aminmax(x.detach().to(torch.float32))
            if not (torch.isfinite(lo) and torch.isfinite(hi)):
                raise ValueError("an activation contains NaN or infinite values: training diverged")
            if bool(self.initialized):
                self.lo.add_((1.0 - self.decay) * (lo - self.lo))
                self.hi.add_((1.0 - self.decay) * (hi - self.hi))
            else:
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.initialized.fill_(True)

    def qparams(self) -> QParams | None:
        """Scale and zero point of the current range (None before the first batch)."""
        if not bool(self.initialized):
            return None
        scale, zp = qparams_from_range(self.lo.reshape(1), self.hi.reshape(1), self.spec)
        return QParams(scale.reshape(()), zp.reshape(()), self.spec.qmin, self.spec.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            return x
        if self.training:
            self.observe(x)
        qp = self.qparams()
        return x if qp is None else fake_quant(x, self.spec, qp)

    def extra_repr(self) -> str:
        state = f"range=[{float(self.lo):.4g}, {float(self.hi):.4g}]" if bool(self.initialized) else "no range yet"
        return f"{self.spec.label()}, decay={self.decay}, {state}"


class QATLayer(nn.Module):
    """A layer trained with fake-quantized weights: ``layer`` keeps the float weights the optimizer updates.

    Forward: ``layer`` runs with ``weight`` replaced by ``fake_quant(weight)`` (scale recomputed from the current
    float weight at every call; gradient by the straight-through estimator), optionally with its input and
    output fake-quantized by :class:`MovingAverageFakeQuant`. The bias stays float: integer kernels store it as
    int32 on the accumulator's scale ``s_w · s_x``, fine enough to be treated as exact.
    """

    def __init__(
        self,
        layer: nn.Module,
        info: LayerInfo,
        weight_spec: QuantSpec | None,
        act_spec: QuantSpec | None = None,
        ema_decay: float = DEFAULT_EMA_DECAY,
        quantize_output: bool = True,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.info = info
        self.weight_spec = weight_spec
        self.input_quant = MovingAverageFakeQuant(act_spec, ema_decay) if act_spec is not None else None
        self.output_quant = (
            MovingAverageFakeQuant(act_spec, ema_decay) if act_spec is not None and quantize_output else None
        )

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight (differentiable with the STE), or the float weight without a weight spec."""
        w = self.layer.weight
        if self.weight_spec is None:
            return w
        return quantize_weight_tensor(w, self.weight_spec, self.info).to(w.dtype)

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if self.input_quant is not None and isinstance(x, torch.Tensor):
            x = self.input_quant(x)
        if self.weight_spec is None:
            y = self.layer(x, *args, **kwargs)
        else:
            # functional_call runs the layer's own forward (Linear, Conv*, ConvTranspose*, Embedding*) with the
            # weight swapped for its fake-quantized version, so no per-type forward has to be re-implemented.
            y = torch.func.functional_call(self.layer, {"weight": self.quantized_weight()}, (x, *args), kwargs)
        if self.output_quant is not None and isinstance(y, torch.Tensor):
            y = self.output_quant(y)
        return y

    def extra_repr(self) -> str:
        return f"weights: {self.weight_spec.label() if self.weight_spec else 'float'}"


# --------------------------------------------------------------------------------------------------------------
# prepare / convert
# --------------------------------------------------------------------------------------------------------------


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _resolve(
    model: nn.Module, weight_spec: QuantSpec | Mapping[str, QuantSpec] | None, layers: Iterable[str] | None
) -> dict[str, tuple[QuantSpec | None, LayerInfo]]:
    """``{layer name: (weight spec or None, info)}`` for the layers QAT wraps."""
    infos = {info.name: info for info in list_layers(model)}
    if isinstance(weight_spec, Mapping):
        names = list(weight_spec) if layers is None else [n for n in layers if n in weight_spec]
    else:
        names = list(infos) if layers is None else list(layers)
    unknown = [n for n in names if n not in infos]
    if unknown:
        raise ValueError(f"no quantizable layer named {', '.join(map(repr, unknown))}; the model has {list(infos)}")
    out: dict[str, tuple[QuantSpec | None, LayerInfo]] = {}
    for name in names:
        spec = weight_spec[name] if isinstance(weight_spec, Mapping) else weight_spec
        if spec is not None and not isinstance(spec, QuantSpec):
            raise TypeError(f"weight spec for layer {name!r} must be a QuantSpec, got {type(spec).__name__}")
        out[name] = (spec, infos[name])
    return out


def prepare_qat(
    model: nn.Module,
    weight_spec: QuantSpec | Mapping[str, QuantSpec] | None = None,
    act_spec: QuantSpec | None = None,
    layers: Iterable[str] | None = None,
    calibration_inputs: Inputs | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
    ema_decay: float = DEFAULT_EMA_DECAY,
    quantize_outputs: bool = True,
) -> nn.Module:
    """A deep copy of ``model``, in training mode, whose chosen layers are wrapped in :class:`QATLayer`.

    ``weight_spec``: one spec for every chosen layer (``layers=None``: all quantizable layers), or a
    ``{layer: spec}`` mapping (mixed precision). ``act_spec``: also fake-quantize each chosen layer's input (and
    output, with ``quantize_outputs``), per tensor, with a moving-average min-max range; its ``calibration`` is
    not used (ranges come from the moving average, as in torch's QAT). ``calibration_inputs`` (optional) seed the
    activation ranges with one forward pass, so the model is fully quantized before the first training step.

    Weight qparams are recomputed from the current float weight at every forward pass with the spec's
    ``calibration``: min-max is cheap; ``"mse"`` / ``"entropy"`` rerun their search each step (slower on big
    layers). All parameters of the copy are trained (``requires_grad`` is switched on), not only the wrapped ones.

    ``model`` itself is never modified (it may be a cached model shared by every session).
    """
    if weight_spec is None and act_spec is None:
        raise ValueError("nothing to quantize: give weight_spec, act_spec or both")
    if act_spec is not None and not isinstance(act_spec, QuantSpec):
        raise TypeError(f"act_spec must be a QuantSpec, got {type(act_spec).__name__}")
    resolved = _resolve(model, weight_spec, layers)
    if not resolved:
        raise ValueError("no layer to train: the model has no quantizable layer (Linear, Conv, Embedding)")
    new = copy.deepcopy(model)
    for p in new.parameters():
        p.requires_grad_(True)  # a shared model may have been frozen for inference
    for name, (spec, info) in resolved.items():
        wrapped = QATLayer(new.get_submodule(name), info, spec, act_spec, ema_decay, quantize_outputs)
        _set_submodule(new, name, wrapped)
    if act_spec is not None and calibration_inputs is not None:
        new.train()
        with torch.no_grad():
            forward(new, calibration_inputs)  # train mode: the observers take the calibration batch's range
    return new.train()


def qat_layers(qat_model: nn.Module) -> dict[str, QATLayer]:
    """The :class:`QATLayer` modules of a model from :func:`prepare_qat`, by the wrapped layer's name."""
    return {name: m for name, m in qat_model.named_modules() if isinstance(m, QATLayer)}


def convert(qat_model: nn.Module) -> nn.Module:
    """A plain model (eval mode) from a QAT model: each :class:`QATLayer` becomes its original layer type with the
    fake-quantized weight, wrapped in a :class:`quantlib.model.QuantizedLayer` with frozen activation
    quantizers when activations were trained quantized. ``qat_model`` is not modified.

    The result computes exactly what ``qat_model.eval()`` computes, and is directly comparable with
    :func:`quantlib.model.quantize_weights` / :func:`quantlib.model.quantize_model` (PTQ) of the float model.
    """
    wrappers = qat_layers(qat_model)
    if not wrappers:
        raise ValueError("not a QAT model: it has no QATLayer (make one with prepare_qat)")
    new = copy.deepcopy(qat_model)
    for name in wrappers:
        wrapper: QATLayer = new.get_submodule(name)
        layer = wrapper.layer
        if wrapper.weight_spec is not None:
            with torch.no_grad():
                layer.weight.copy_(wrapper.quantized_weight().detach())
        qin = wrapper.input_quant.qparams() if wrapper.input_quant is not None else None
        qout = wrapper.output_quant.qparams() if wrapper.output_quant is not None else None
        if qin is None and qout is None:
            replacement: nn.Module = layer
        else:
            aspec = (wrapper.input_quant or wrapper.output_quant).spec
            replacement = QuantizedLayer(
                layer,
                ActivationQuantizer(aspec, qin) if qin is not None else None,
                ActivationQuantizer(aspec, qout) if qout is not None else None,
            )
        _set_submodule(new, name, replacement)
    for p in new.parameters():
        p.requires_grad_(False)
    return new.eval()


# --------------------------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QATProgress:
    """One progress report of :func:`train_qat`.

    Attributes:
        epoch: the epoch (1-based) the last step belonged to; 0 for the report made before training.
        step: optimizer steps done so far (0 before training).
        steps_per_epoch / total_steps: for progress bars.
        loss: mean training loss over the steps since the previous report (None before training).
        train_metric: the training metric over the same batches, measured on the fake-quantized forward pass
            (accuracy by default for classifiers; None when there is no metric).
        eval_metric: the primary metric of ``evaluate(model)`` with the model in eval mode (None without
            ``evaluate``). Before training it is the PTQ metric of the starting model (same weights, same spec).
        eval_metrics: every metric ``evaluate`` returned.
        seconds: wall time since training started (evaluation included).
        epoch_end: True when the report closes an epoch.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    total_steps: int
    loss: float | None
    train_metric: float | None
    eval_metric: float | None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    epoch_end: bool = True

    @property
    def fraction(self) -> float:
        """Share of training done, 0..1."""
        return self.step / self.total_steps if self.total_steps else 1.0


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows whose argmax equals the integer target: ``mean(argmax(outputs, 1) == targets)``."""
    return float((outputs.argmax(dim=1) == targets).double().mean())


def _auto_metric(outputs: torch.Tensor, targets: torch.Tensor) -> float | None:
    """Accuracy for classifier-shaped batches (``(N, C)`` logits, ``(N,)`` integer labels), else None."""
    if (
        outputs.dim() == 2
        and outputs.shape[1] > 1
        and targets.dim() == 1
        and not targets.is_floating_point()
        and targets.shape[0] == outputs.shape[0]
    ):
        return accuracy(outputs, targets)
    return None


def _evaluate(
    model: nn.Module, evaluate: EvaluateFn | None, metric_name: str | None
) -> tuple[float | None, dict[str, float]]:
    if evaluate is None:
        return None, {}
    was_training = model.training
    model.eval()  # freezes the activation ranges and any dropout / batch-norm statistics
    try:
        with torch.no_grad():
            result = evaluate(model)
            return metric_value(result, metric_name), all_metrics(result, metric_name)
    finally:
        model.train(was_training)


def train_qat(
    qat_model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    evaluate: EvaluateFn | None = None,
    metric_name: str | None = None,
    train_metric: TrainMetricFn | str | None = "auto",
    reports_per_epoch: int = 1,
    report_start: bool = True,
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> Iterator[QATProgress]:
    """Train a model from :func:`prepare_qat` with Adam, yielding :class:`QATProgress` as it goes.

    The float weights inside ``qat_model`` are updated in place (it is the private copy :func:`prepare_qat`
    made). Each epoch visits every example once in a shuffled order drawn from a ``torch.Generator`` seeded with
    ``(seed, epoch)``, and the global RNG (dropout) is seeded from ``(seed, step)`` for each step and restored
    after it, so the same settings give the same curve, bit for bit, however the consumer interleaves its own work,
    and the caller's random stream is left as it was. A report is yielded before training
    (``report_start``), ``reports_per_epoch`` times per epoch, and always at the end of each epoch. To stop early,
    stop iterating: the model keeps the weights of the last completed step.

    ``evaluate(model)`` returns a number or a dict of metrics (``metric_name`` picks the primary one); it is called
    at each report with the model in eval mode. ``train_metric(outputs, targets)`` is computed on the training
    batches; ``"auto"`` means accuracy for classifiers, nothing otherwise. Bad settings raise ``ValueError`` when
    ``train_qat`` is called, before any iteration.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(reports_per_epoch, bool) or not isinstance(reports_per_epoch, int) or reports_per_epoch < 1:
        raise ValueError(f"reports_per_epoch must be a positive integer, got {reports_per_epoch!r}")
    if not qat_layers(qat_model):
        raise ValueError("not a QAT model: it has no QATLayer (make one with prepare_qat)")
    n = examples_in(inputs)
    if not isinstance(targets, torch.Tensor) or targets.shape[0] != n:
        raise ValueError(f"targets must be a tensor with one row per training example ({n})")
    if n == 0:
        raise ValueError("no training examples")
    metric_fn: TrainMetricFn | None
    if train_metric == "auto":
        metric_fn = _auto_metric
    elif train_metric is None or callable(train_metric):
        metric_fn = train_metric
    else:
        raise ValueError(f"train_metric must be a callable, 'auto' or None, got {train_metric!r}")

    # Settings are checked above, when train_qat is called; the generator below runs when it is iterated.
    return _train(
        qat_model, inputs, targets, loss_fn, n, epochs, batch_size, lr, seed, evaluate, metric_name, metric_fn,
        reports_per_epoch, report_start, forward,
    )


def _train(
    qat_model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    evaluate: EvaluateFn | None,
    metric_name: str | None,
    metric_fn: TrainMetricFn | None,
    reports_per_epoch: int,
    report_start: bool,
    forward: Callable[[nn.Module, Inputs], Any],
) -> Iterator[QATProgress]:
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    # Report after these step numbers (within an epoch): evenly spaced, always including the last step.
    report_at = {math.ceil(steps_per_epoch * (k + 1) / reports_per_epoch) for k in range(reports_per_epoch)}
    params = [p for p in qat_model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    start = time.perf_counter()

    if report_start:
        value, values = _evaluate(qat_model, evaluate, metric_name)
        yield QATProgress(
            0, 0, steps_per_epoch, total_steps, None, None, value, values, time.perf_counter() - start, True
        )

    step = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        losses: list[float] = []
        metrics: list[tuple[float, int]] = []
        qat_model.train()
        for i in range(steps_per_epoch):
            index = order[i * batch_size : (i + 1) * batch_size]
            batch_x, batch_y = take(inputs, index), targets[index]
            # Dropout draws from the global RNG: seed it per step for the same masks with the same settings, and
            # restore it afterwards so the caller's random stream is not changed by training.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000_003 + step)
                outputs = forward(qat_model, batch_x)
                loss = loss_fn(outputs, batch_y)
                if not torch.isfinite(loss):
                    raise ValueError(
                        f"training diverged: the loss is {float(loss.detach())} at epoch {epoch + 1}, "
                        f"step {step + 1}; try a smaller learning rate"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            if metric_fn is not None and isinstance(outputs, torch.Tensor):
                with torch.no_grad():
                    m = metric_fn(outputs.detach(), batch_y)
                if m is not None:
                    metrics.append((float(m), int(index.numel())))
            if (i + 1) in report_at:
                value, values = _evaluate(qat_model, evaluate, metric_name)
                train_value = (
                    sum(v * k for v, k in metrics) / sum(k for _, k in metrics) if metrics else None
                )
                end = i + 1 == steps_per_epoch
                yield QATProgress(
                    epoch + 1,
                    step,
                    steps_per_epoch,
                    total_steps,
                    sum(losses) / len(losses),
                    train_value,
                    value,
                    values,
                    time.perf_counter() - start,
                    end,
                )
                losses, metrics = [], []
    qat_model.eval()


@dataclass(frozen=True)
class QATResult:
    """What :func:`run_qat` returns: the converted model and every progress report."""

    model: nn.Module
    history: list[QATProgress]

    @property
    def final(self) -> QATProgress:
        return self.history[-1]


def run_qat(
    model: nn.Module,
    weight_spec: QuantSpec | Mapping[str, QuantSpec] | None,
    inputs: Inputs,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    act_spec: QuantSpec | None = None,
    layers: Iterable[str] | None = None,
    calibration_inputs: Inputs | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
    **train_kwargs: Any,
) -> QATResult:
    """:func:`prepare_qat`, :func:`train_qat` to the end, :func:`convert`, in one call (for notebooks and caches)."""
    qat_model = prepare_qat(
        model, weight_spec, act_spec, layers, calibration_inputs=calibration_inputs, forward=forward
    )
    history = list(train_qat(qat_model, inputs, targets, loss_fn, forward=forward, **train_kwargs))
    return QATResult(convert(qat_model), history)


# --------------------------------------------------------------------------------------------------------------
# PTQ vs QAT across bit widths
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRow:
    """One bit width of :func:`bits_sweep`: the float, PTQ and QAT metric (``qat - ptq`` is what QAT buys)."""

    bits: int
    float_metric: float
    ptq_metric: float
    qat_metric: float
    seconds: float
    index: int
    total: int

    @property
    def qat_gain(self) -> float:
        """``qat_metric - ptq_metric`` (positive: QAT helps, for a higher-is-better metric)."""
        return self.qat_metric - self.ptq_metric


def bits_sweep(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    evaluate: EvaluateFn,
    *,
    bits: Iterable[int] = range(2, 9),
    spec: QuantSpec | None = None,
    act_spec: QuantSpec | None = None,
    calibration_inputs: Inputs | None = None,
    metric_name: str | None = None,
    layers: Iterable[str] | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> Iterator[SweepRow]:
    """PTQ and QAT at each weight bit width, yielding one :class:`SweepRow` as each width finishes.

    At each width ``b`` the weights use ``spec.replace(bits=b)`` (default ``QuantSpec()``: symmetric, per
    tensor, min-max). PTQ is :func:`quantlib.model.quantize_weights` of the float model (or
    :func:`quantlib.model.quantize_model` with ``act_spec``, whose activation bit width stays fixed); QAT is
    :func:`run_qat` with the same specs and the same seed at every width. ``model`` is not modified.

    Where QAT pays off depends on the grid. On digits-mlp (3 epochs) QAT lifts 2-bit per-channel symmetric from
    29.7 % to 92.8 % and 2-bit asymmetric per-tensor from 18.7 % to 96.1 %, and gets 3 bits back to float; but
    2-bit *symmetric per-tensor min-max* stays broken (3.5 % → 8.9 %): its levels are ``{-2, -1, 0, 1} · max|w|``,
    so ~99 % of weights round to 0 and Adam at ``lr=1e-3`` needs far more steps to push them past ``max|w| / 2``
    (the scale is not learned). At 8 bits PTQ ≈ QAT ≈ float.
    """
    base = spec or QuantSpec()
    widths = [int(b) for b in bits]
    if not widths:
        raise ValueError("bits is empty: give at least one bit width")
    if act_spec is not None and calibration_inputs is None:
        raise ValueError("activation quantization needs calibration_inputs to calibrate PTQ ranges on")
    layer_list = list(layers) if layers is not None else None
    float_metric = metric_value(evaluate(model), metric_name)
    for index, b in enumerate(widths):
        start = time.perf_counter()
        wspec = base.replace(bits=b)
        if act_spec is None:
            ptq = quantize_weights(model, wspec, layer_list)
        else:
            ptq = quantize_model(model, wspec, act_spec, calibration_inputs, layer_list, forward)
        ptq_metric = metric_value(evaluate(ptq), metric_name)
        result = run_qat(
            model,
            wspec,
            inputs,
            targets,
            loss_fn,
            act_spec=act_spec,
            layers=layer_list,
            calibration_inputs=calibration_inputs,
            forward=forward,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            report_start=False,
            train_metric=None,
        )
        qat_metric = metric_value(evaluate(result.model), metric_name)
        yield SweepRow(b, float_metric, ptq_metric, qat_metric, time.perf_counter() - start, index, len(widths))
