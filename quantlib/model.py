"""Quantizing whole models: which layers there are, quantized copies, activation calibration, drift and size.

The model you pass in is never changed: every function that returns a model returns a new one
(``copy.deepcopy``), and hooks are only ever attached to such private copies. That matters in the app, where one
cached model object is shared by every browser session, each in its own thread.

    >>> import torch.nn as nn
    >>> from quantlib import QuantSpec
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [(i.name, i.kind, i.shape) for i in list_layers(net)]
    [('0', 'Linear', (8, 4)), ('2', 'Linear', (2, 8))]
    >>> q = quantize_weights(net, QuantSpec(bits=4))
    >>> q is net, bool((q[0].weight != net[0].weight).any())
    (False, True)
    >>> model_size_bytes(net), model_size_bytes(net, QuantSpec(bits=4))   # 58 fp32 params vs 48 int4 + 10 fp32
    (232, 72)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics
from .inputs import Inputs, call
from .kernels import qparams_from_range
from .quantizer import as_float32, choose_qparams, fake_quant
from .spec import QParams, QuantSpec

#: Layer types whose ``weight`` is quantized. Embedding tables are quantized per row ("channel" = axis 0).
QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.EmbeddingBag,
)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
#: At most this many values of each captured activation are kept for calibration (a strided subsample), so
#: calibrating a transformer does not hold every activation of every layer in memory.
ACTIVATION_SAMPLE_VALUES = 1 << 18

SpecArg = QuantSpec | Mapping[str, QuantSpec]


@dataclass(frozen=True)
class LayerInfo:
    """One quantizable layer: its dotted name, type, weight shape, weight count and output-channel axis."""

    name: str
    kind: str
    shape: tuple[int, ...]
    numel: int
    channel_axis: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_layers(model: nn.Module) -> list[LayerInfo]:
    """Every layer with a quantizable weight, in module order."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, QUANTIZABLE_TYPES) and getattr(module, "weight", None) is not None:
            w = module.weight
            axis = 1 if isinstance(module, _TRANSPOSED) else 0
            out.append(LayerInfo(name, type(module).__name__, tuple(w.shape), int(w.numel()), axis))
    return out


def layer_weight(model: nn.Module, name: str) -> torch.Tensor:
    """The detached weight of layer ``name`` (shares memory with the model: read it, do not modify it)."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the model has no layer named {name!r}") from None
    if getattr(module, "weight", None) is None:
        raise ValueError(f"layer {name!r} ({type(module).__name__}) has no weight")
    return module.weight.detach()


def layer_spec(spec: QuantSpec, info: LayerInfo) -> QuantSpec:
    """The spec adapted to a layer: per-channel uses the layer's output-channel axis."""
    if spec.granularity == "channel" and spec.axis != info.channel_axis:
        return spec.replace(axis=info.channel_axis)
    return spec


def weight_view_shape(shape: tuple[int, ...], spec: QuantSpec) -> tuple[int, ...]:
    """The shape a weight of ``shape`` is quantized in under ``spec``.

    Per-group on a conv weight groups along its flattened input dimension ``(in * kh * kw)``, as GPTQ-style
    tools do, so the weight is seen as ``(out, -1)``; every other case keeps its shape.

    >>> weight_view_shape((16, 3, 3, 3), QuantSpec(bits=4, granularity="group", group_size=9))
    (16, 27)
    >>> weight_view_shape((16, 3, 3, 3), QuantSpec(bits=4, granularity="channel"))
    (16, 3, 3, 3)
    """
    shape = tuple(int(d) for d in shape)
    if spec.granularity == "group" and len(shape) > 2:
        return (shape[0], math.prod(shape[1:]))
    return shape


def weight_view(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """``weight`` reshaped to :func:`weight_view_shape` (a view, no copy)."""
    return weight.reshape(weight_view_shape(tuple(weight.shape), spec))


def quantize_weight_tensor(weight: torch.Tensor, spec: QuantSpec, info: LayerInfo) -> torch.Tensor:
    """Fake-quantize one layer's weight with ``spec`` adapted to the layer, in :func:`weight_view_shape`."""
    spec = layer_spec(spec, info)
    try:
        return fake_quant(weight_view(weight, spec), spec).reshape(weight.shape)
    except ValueError as err:
        raise ValueError(f"layer {info.name!r}: {err}") from None


def _resolve_specs(model: nn.Module, spec: SpecArg, layers: list[str] | None) -> dict[str, tuple[QuantSpec, LayerInfo]]:
    infos = {info.name: info for info in list_layers(model)}
    if isinstance(spec, QuantSpec):
        names = list(infos) if layers is None else list(layers)
        mapping = {name: spec for name in names}
    elif isinstance(spec, Mapping):
        mapping = dict(spec) if layers is None else {n: spec[n] for n in layers if n in spec}
    else:
        raise TypeError(f"spec must be a QuantSpec or a {{layer name: QuantSpec}} mapping, got {type(spec).__name__}")
    unknown = [n for n in mapping if n not in infos]
    if unknown:
        raise ValueError(f"no quantizable layer named {', '.join(map(repr, unknown))}; the model has {list(infos)}")
    for name, s in mapping.items():
        if not isinstance(s, QuantSpec):
            raise TypeError(f"spec for layer {name!r} must be a QuantSpec, got {type(s).__name__}")
    return {name: (s, infos[name]) for name, s in mapping.items()}


def _quantize_weights_inplace(model: nn.Module, resolved: dict[str, tuple[QuantSpec, LayerInfo]]) -> None:
    """Replace chosen weights of a *private copy* with their fake-quantized values."""
    with torch.no_grad():
        for name, (spec, info) in resolved.items():
            module = model.get_submodule(name)
            w = module.weight
            w.copy_(quantize_weight_tensor(w.detach(), spec, info).to(w.dtype))


def quantize_weights(model: nn.Module, spec: SpecArg, layers: list[str] | None = None) -> nn.Module:
    """A new model whose chosen layers' weights are fake-quantized; ``model`` is untouched.

    ``spec`` is one :class:`QuantSpec` for every chosen layer (all quantizable layers when ``layers`` is None), or
    a ``{layer name: QuantSpec}`` mapping for mixed precision (only the mapped layers are quantized).
    """
    resolved = _resolve_specs(model, spec, layers)
    new = copy.deepcopy(model)
    _quantize_weights_inplace(new, resolved)
    return new.eval()


class ActivationQuantizer(nn.Module):
    """Fake-quantizes a tensor with fixed, calibrated qparams (static activation quantization)."""

    def __init__(self, spec: QuantSpec, qparams: QParams) -> None:
        super().__init__()
        self.spec = spec
        self.qparams = qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            return x  # token / item ids feed embeddings: nothing to quantize
        return fake_quant(x, self.spec, self.qparams)

    def extra_repr(self) -> str:
        return f"{self.spec.label()}, scale={float(self.qparams.scale.reshape(-1)[0]):.4g}"


class QuantizedLayer(nn.Module):
    """A layer whose input and/or output activations pass through an :class:`ActivationQuantizer`."""

    def __init__(
        self, layer: nn.Module, input_quant: ActivationQuantizer | None, output_quant: ActivationQuantizer | None
    ) -> None:
        super().__init__()
        self.layer = layer
        self.input_quant = input_quant
        self.output_quant = output_quant

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        y = self.layer(x, *args, **kwargs)
        if self.output_quant is not None:
            y = self.output_quant(y)
        return y


class _RangeRecorder:
    """Collects exact min / max and a bounded sample of the values flowing through a hook."""

    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf
        self.samples: list[torch.Tensor] = []

    def add(self, t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            return
        flat = as_float32(t, "an activation").reshape(-1)
        lo, hi = torch.aminmax(flat)
        self.lo, self.hi = min(self.lo, float(lo)), max(self.hi, float(hi))
        stride = max(1, math.ceil(flat.numel() / ACTIVATION_SAMPLE_VALUES))
        self.samples.append(flat[::stride].clone())

    def qparams(self, spec: QuantSpec) -> QParams | None:
        if not self.samples:
            return None
        if spec.calibration == "minmax":
            scale, zp = qparams_from_range(torch.tensor([self.lo]), torch.tensor([self.hi]), spec)
            return QParams(scale.reshape(()), zp.reshape(()), spec.qmin, spec.qmax)
        return choose_qparams(torch.cat(self.samples), spec)


def activation_spec(spec: QuantSpec) -> QuantSpec:
    """Activations get one static range per tensor: their channel layout differs from layer to layer."""
    return spec.replace(granularity="tensor", axis=0)


def calibrate_activations(
    model: nn.Module,
    calibration_inputs: Inputs,
    layers: list[str],
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> tuple[nn.Module, dict[str, tuple[_RangeRecorder, _RangeRecorder]]]:
    """Run a private copy of ``model`` on the calibration inputs, recording each chosen layer's input and
    output. Returns the copy (hooks removed) and the recorders."""
    new = copy.deepcopy(model).eval()
    recorders: dict[str, tuple[_RangeRecorder, _RangeRecorder]] = {}
    handles = []
    for name in layers:
        rec_in, rec_out = _RangeRecorder(), _RangeRecorder()
        recorders[name] = (rec_in, rec_out)

        def hook(_m, args, output, rec_in=rec_in, rec_out=rec_out):
            if args:
                rec_in.add(args[0])
            rec_out.add(output)

        handles.append(new.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(new, calibration_inputs)
    finally:
        for h in handles:
            h.remove()
    return new, recorders


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def quantize_model(
    model: nn.Module,
    weight_spec: SpecArg | None = None,
    act_spec: QuantSpec | None = None,
    calibration_inputs: Inputs | None = None,
    layers: list[str] | None = None,
    forward: Callable[[nn.Module, Inputs], Any] = call,
    quantize_outputs: bool = True,
) -> nn.Module:
    """A new model with weights and/or activations of the chosen layers fake-quantized.

    - weight-only: ``weight_spec`` alone (same as :func:`quantize_weights`);
    - activation-only: ``act_spec`` alone - each chosen layer's input (and, with ``quantize_outputs``, output)
      is fake-quantized with a static per-tensor range calibrated on ``calibration_inputs`` with
      ``act_spec.calibration`` (the spec's granularity is not used: see :func:`activation_spec`);
    - full: both.

    Calibration runs on the float model, before any weight is quantized, so activation ranges describe the
    float network. ``forward(model, inputs)`` runs a model (default :func:`call`).
    """
    if weight_spec is None and act_spec is None:
        raise ValueError("nothing to quantize: give weight_spec, act_spec or both")
    if act_spec is not None and calibration_inputs is None:
        raise ValueError("activation quantization needs calibration_inputs to calibrate ranges on")
    names = [i.name for i in list_layers(model)] if layers is None else list(layers)
    if act_spec is None:
        return quantize_weights(model, weight_spec, names if isinstance(weight_spec, QuantSpec) else layers)
    resolved_acts = _resolve_specs(model, act_spec, names)  # validates names
    new, recorders = calibrate_activations(model, calibration_inputs, list(resolved_acts), forward)
    if weight_spec is not None:
        resolved = _resolve_specs(model, weight_spec, names if isinstance(weight_spec, QuantSpec) else layers)
        _quantize_weights_inplace(new, resolved)
    aspec = activation_spec(act_spec)
    for name in resolved_acts:
        rec_in, rec_out = recorders[name]
        qp_in, qp_out = rec_in.qparams(aspec), rec_out.qparams(aspec) if quantize_outputs else None
        in_q = ActivationQuantizer(aspec, qp_in) if qp_in is not None else None
        out_q = ActivationQuantizer(aspec, qp_out) if qp_out is not None else None
        wrapped = QuantizedLayer(new.get_submodule(name), in_q, out_q)
        if name == "":
            new = wrapped  # the model is itself the layer (say a bare nn.Linear)
        else:
            _set_submodule(new, name, wrapped)
    return new.eval()


def capture_activations(
    model: nn.Module,
    name: str,
    inputs: Inputs,
    which: str = "input",
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> torch.Tensor:
    """The float ``input`` (or ``output``) activations of layer ``name`` on ``inputs``, as one tensor.

    Works on a private copy, so the (shared) model never carries a hook.
    """
    if which not in ("input", "output"):
        raise ValueError(f"which must be 'input' or 'output', got {which!r}")
    layer_weight(model, name)  # validates the name
    captured: list[torch.Tensor] = []
    new = copy.deepcopy(model).eval()

    def hook(_m, args, output):
        t = args[0] if which == "input" and args else output
        if isinstance(t, torch.Tensor):
            captured.append(t.detach().clone())

    handle = new.get_submodule(name).register_forward_hook(hook)
    try:
        with torch.no_grad():
            forward(new, inputs)
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"layer {name!r} did not run on these inputs")
    if len(captured) == 1:
        return captured[0]
    return torch.cat([c.reshape(-1) for c in captured])


@dataclass(frozen=True)
class DriftReport:
    """How far a quantized model's outputs moved from the float model's on the same inputs.

    ``mse``, ``sqnr_db``, ``max_abs_error`` are over all output values (definitions in
    :mod:`quantlib.metrics`). Cosine similarity is per example (row of the ``(N, D)`` outputs); with scalar
    outputs (``D == 1``) there is no per-example direction, so ``mean_cosine == min_cosine`` is the cosine of the
    whole output vector and ``per_example_cosine`` is None. ``top1_agreement`` (share of examples whose argmax
    is unchanged) and ``kl_divergence`` (mean ``KL(softmax(ref) || softmax(quant))`` in nats) are for
    classifiers only.
    """

    mse: float
    sqnr_db: float
    max_abs_error: float
    mean_cosine: float
    min_cosine: float
    per_example_mse: np.ndarray
    per_example_cosine: np.ndarray | None
    top1_agreement: float | None = None
    kl_divergence: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The scalar figures (no per-example arrays)."""
        return {
            "mse": self.mse,
            "sqnr_db": self.sqnr_db,
            "max_abs_error": self.max_abs_error,
            "mean_cosine": self.mean_cosine,
            "min_cosine": self.min_cosine,
            "top1_agreement": self.top1_agreement,
            "kl_divergence": self.kl_divergence,
        }


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t).detach().to(torch.float64)
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(-1, 1)
    return t.reshape(t.shape[0], -1)


def output_drift(reference: torch.Tensor, quantized: torch.Tensor, classifier: bool = False) -> DriftReport:
    """Compare the float model's outputs (``reference``) with the quantized model's, example by example.

    >>> r = output_drift(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.5], [0.0, 1.0]]), True)
    >>> r.mse, r.top1_agreement
    (0.0625, 1.0)
    """
    ref, qua = _as_rows(reference), _as_rows(quantized)
    if ref.shape != qua.shape:
        raise ValueError(f"outputs differ in shape: {list(ref.shape)} vs {list(qua.shape)}")
    if ref.numel() == 0:
        raise ValueError("no outputs to compare")
    if not (torch.isfinite(ref).all() and torch.isfinite(qua).all()):
        raise ValueError("outputs contain NaN or infinite values: the quantized model overflowed")
    diff = qua - ref
    per_mse = diff.square().mean(dim=1)
    if ref.shape[1] > 1:
        na, nb = ref.norm(dim=1), qua.norm(dim=1)
        cos = (ref * qua).sum(dim=1) / (na * nb).clamp(min=1e-300)
        cos = torch.where((na == 0) & (nb == 0), torch.ones_like(cos), cos).clamp(-1.0, 1.0)
        per_cos: np.ndarray | None = cos.numpy()
        mean_cos, min_cos = float(cos.mean()), float(cos.min())
    else:
        per_cos = None
        mean_cos = min_cos = metrics.cosine_similarity(ref, qua)
    top1 = kl = None
    if classifier:
        if ref.shape[1] < 2:
            raise ValueError("classifier drift needs one output column per class")
        top1 = float((ref.argmax(dim=1) == qua.argmax(dim=1)).double().mean())
        logp = torch.log_softmax(ref, dim=1)
        logq = torch.log_softmax(qua, dim=1)
        kl = float((logp.exp() * (logp - logq)).sum(dim=1).mean())
    signal = float(ref.square().sum())
    noise = float(diff.square().sum())
    return DriftReport(
        mse=noise / ref.numel(),
        sqnr_db=metrics.sqnr_from_sums(signal, noise),
        max_abs_error=float(diff.abs().max()),
        mean_cosine=mean_cos,
        min_cosine=min_cos,
        per_example_mse=per_mse.numpy(),
        per_example_cosine=per_cos,
        top1_agreement=top1,
        kl_divergence=kl,
    )


def _num_blocks(spec: QuantSpec, info: LayerInfo) -> int:
    if spec.granularity == "tensor":
        return 1
    if spec.granularity == "channel":
        return info.shape[info.channel_axis]
    return math.ceil(info.numel / spec.group_size)


def weight_storage(spec: QuantSpec, info: LayerInfo) -> tuple[int, int]:
    """``(payload_bytes, overhead_bytes)`` of one layer's weight stored at ``spec``.

    Payload: ``ceil(numel · bits / 8)`` (codes packed). Overhead per block (tensor / channel / group): a float32
    scale (4 bytes) plus, for the asymmetric scheme, a zero point of ``ceil(bits / 8)`` bytes.
    E.g. a 128×64 Linear at int4 per-group(64), symmetric: 4096 + 128·4 = 4608 bytes vs 32768 in fp32.
    """
    bits = spec.number_format.storage_bits(spec)
    payload = math.ceil(info.numel * bits / 8)
    per_block = 4 + (math.ceil(bits / 8) if spec.scheme == "asymmetric" else 0)
    return payload, _num_blocks(spec, info) * per_block


def size_breakdown(model: nn.Module, spec: SpecArg | None = None, layers: list[str] | None = None) -> list[dict]:
    """Per-parameter storage: one dict per parameter with ``name, numel, bits, payload_bytes,
    overhead_bytes, float_bytes``. Parameters of unquantized layers (and biases, norms) stay at their dtype."""
    resolved = _resolve_specs(model, spec, layers) if spec is not None else {}
    rows = []
    for pname, p in model.named_parameters():
        layer, _, leaf = pname.rpartition(".")
        float_bytes = p.numel() * p.element_size()
        if leaf == "weight" and layer in resolved:
            s, info = resolved[layer]
            payload, overhead = weight_storage(s, info)
            bits = s.bits
        else:
            payload, overhead, bits = float_bytes, 0, p.element_size() * 8
        rows.append(
            {
                "name": pname,
                "numel": int(p.numel()),
                "bits": bits,
                "payload_bytes": payload,
                "overhead_bytes": overhead,
                "float_bytes": float_bytes,
            }
        )
    return rows


def model_size_bytes(model: nn.Module, spec: SpecArg | None = None, layers: list[str] | None = None) -> int:
    """Bytes of the model's parameters: at their float dtype without ``spec``; with it, chosen layers' weights at
    the spec's bit width plus scale / zero-point overhead (see :func:`weight_storage`)."""
    return sum(r["payload_bytes"] + r["overhead_bytes"] for r in size_breakdown(model, spec, layers))
