"""Export quantized weights in the **compressed-tensors** safetensors layout (what vLLM and transformers load).

:func:`to_compressed_tensors` quantizes a model's Linear and Embedding weights with quantlib - the very codes,
scales and zero points :func:`quantlib.model.quantize_weights` fake-quantizes with - and writes them as
compressed-tensors does (``compressed-tensors`` 0.20, https://github.com/vllm-project/compressed-tensors):

- integer formats of 1-8 bits, ``pack-quantized``: ``<layer>.weight_packed`` (int32, the signed codes packed
  densely, :func:`quantlib.pack.pack_int32`), ``<layer>.weight_scale`` (float32: ``(1,)`` per-tensor,
  ``(out, 1)`` per-channel, ``(out, in / g)`` per-group), ``<layer>.weight_shape`` (int64 ``[out, in]``) and,
  for the asymmetric scheme, ``<layer>.weight_zero_point`` (packed along dim 0 per-channel / per-group, int8
  ``(1,)`` per-tensor);
- fp8 e4m3, ``naive-quantized``: ``<layer>.weight`` as ``float8_e4m3fn`` codes and ``<layer>.weight_scale``;
- every other tensor of the state dict (biases, norms, kept layers) as it is;
- the ``quantization_config`` (what ``config.json`` carries) in the file's metadata, with one
  ``config_groups`` entry per distinct setting whose ``targets`` are ``re:^<layer>$`` patterns.

compressed-tensors' integer grid is signed, ``[-2^(b-1), 2^(b-1) - 1]``. quantlib's asymmetric grid is unsigned
``[0, 2^b - 1]`` with its zero point on it; both are shifted down by ``2^(b-1)``, which leaves ``q - z`` and so
every dequantized value unchanged: ``ŵ = (q - z) · s`` bit for bit, e.g. 4-bit asymmetric ``q = 13, z = 6`` is
stored as ``q = 5, z = -2``.

What compressed-tensors cannot hold is refused in plain words (nf4, fp8 e5m2, more than 8 bits) or kept in float
and listed (conv layers and EmbeddingBag: compressed-tensors compresses Linear and Embedding weights only).

    >>> import torch.nn as nn
    >>> from quantlib import QuantSpec
    >>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    >>> blob = to_compressed_tensors(net, QuantSpec(bits=4, granularity="group", group_size=32))
    >>> sorted(read(blob)[0])[:4]
    ['0.bias', '0.weight_packed', '0.weight_scale', '0.weight_shape']
    >>> read(blob)[1]["quantization_config"]["format"]
    'pack-quantized'
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from . import budget
from .model import LayerInfo, layer_spec, list_layers
from .pack import pack_int32, packed_bytes
from .quantizer import quantize
from .spec import QuantSpec

#: Module types compressed-tensors compresses (``compressed_tensors.compressors.base.COMPRESSIBLE_MODULE_TYPES``).
EXPORTABLE_KINDS = ("Linear", "Embedding")
#: The compressed-tensors release whose layout this writes (and the tests decompress with).
COMPRESSED_TENSORS_VERSION = "0.20.0"
#: Packing costs per weight (measured like ``quantlib.budget``'s constants with ``benchmarks/bench_export.py``,
#: rounded up): widths that divide 8 shift whole codes into bytes (~20 ns); 3, 5, 6 and 7 bits go through bit
#: planes of ``bits`` int32 each (~88 ns at 3 bits).
PACK_BYTES_PER_VALUE = 24
PACK_SECONDS_PER_VALUE = 30e-9
PACK_PLANE_BYTES_PER_BIT = 16
PACK_PLANE_SECONDS_PER_BIT = 40e-9


def pack_cost(numel: int, spec: QuantSpec) -> budget.Cost:
    """What packing ``numel`` codes of ``spec`` costs (fp8 codes are bytes already: a copy)."""
    bits = spec.bits if spec.is_integer_grid else 8
    if 8 % bits == 0:
        return budget.Cost(PACK_BYTES_PER_VALUE * numel, PACK_SECONDS_PER_VALUE * numel)
    return budget.Cost(PACK_PLANE_BYTES_PER_BIT * bits * numel, PACK_PLANE_SECONDS_PER_BIT * bits * numel)

SpecOrPlan = QuantSpec | Mapping[str, QuantSpec]


@dataclass(frozen=True)
class ExportPlan:
    """What an export will do: the layers it quantizes at which spec (adapted to the layer), and the layers it
    keeps in float with the reason."""

    quantized: dict[str, QuantSpec]
    kept: dict[str, str]
    infos: dict[str, LayerInfo]

    def weights_quantized(self) -> int:
        return sum(self.infos[name].numel for name in self.quantized)


def check_spec(spec: QuantSpec) -> None:
    """Raise a plain ``ValueError`` for a setting compressed-tensors cannot store."""
    if spec.format == "nf4":
        raise ValueError(
            "compressed-tensors has no NF4 layout (that is bitsandbytes' format): export int4 instead, or fp8_e4m3"
        )
    if spec.format == "fp8_e5m2":
        raise ValueError("compressed-tensors stores fp8 as e4m3 only: choose fp8_e4m3 to export")
    if spec.is_integer_grid and spec.bits > 8:
        raise ValueError(
            f"compressed-tensors packs integer weights of 1-8 bits; {spec.bits} bits saves little over float16: "
            "choose 8 bits or fewer to export"
        )
    if not spec.is_integer_grid and spec.format != "fp8_e4m3":  # a format registered later: no layout known
        raise ValueError(f"compressed-tensors has no layout for {spec.format}: export an integer width or fp8_e4m3")


def plan_export(model: nn.Module, spec_or_plan: SpecOrPlan) -> ExportPlan:
    """Resolve a uniform spec (every quantizable layer) or a ``{layer: QuantSpec}`` plan against ``model``.

    Per-channel follows each layer's output axis (:func:`quantlib.model.layer_spec`). Conv / EmbeddingBag
    layers are kept in float with a reason; an unknown layer name or an unexportable setting raises ValueError.
    """
    infos = {info.name: info for info in list_layers(model)}
    if isinstance(spec_or_plan, QuantSpec):
        wanted = {name: spec_or_plan for name in infos}
    elif isinstance(spec_or_plan, Mapping):
        wanted = dict(spec_or_plan)
    else:
        raise TypeError(f"expected a QuantSpec or a {{layer: QuantSpec}} plan, got {type(spec_or_plan).__name__}")
    unknown = [n for n in wanted if n not in infos]
    if unknown:
        raise ValueError(f"no quantizable layer named {', '.join(map(repr, unknown))}; the model has {list(infos)}")
    quantized, kept = {}, {}
    for name, spec in wanted.items():
        if not isinstance(spec, QuantSpec):
            raise TypeError(f"the spec for layer {name!r} must be a QuantSpec, got {type(spec).__name__}")
        info = infos[name]
        if info.kind not in EXPORTABLE_KINDS:
            kept[name] = f"{info.kind}: compressed-tensors compresses Linear and Embedding weights only"
            continue
        check_spec(spec)
        s = layer_spec(spec, info)
        if s.granularity == "group" and info.shape[-1] % s.group_size:
            raise ValueError(
                f"layer {name!r}: group size {s.group_size} does not divide its rows of {info.shape[-1]} values"
            )
        quantized[name] = s
    return ExportPlan(quantized, kept, infos)


def export_cost(plan: ExportPlan) -> budget.Cost:
    """Calibration and quantization of every exported layer (:func:`quantlib.budget.estimate`) plus packing,
    one layer after the other, holding the output (about the packed size plus the float tensors)."""
    steps = []
    for name, spec in plan.quantized.items():
        n = plan.infos[name].numel
        steps.append(budget.estimate(plan.infos[name].shape, spec).then(pack_cost(n, spec)))
    held = sum(packed_bytes(plan.infos[n].numel, min(s.bits, 8)) for n, s in plan.quantized.items())
    return budget.sequence(steps).holding(held)


def _args(spec: QuantSpec) -> dict:
    """compressed-tensors ``QuantizationArgs`` of a spec (as JSON)."""
    strategy = {"tensor": "tensor", "channel": "channel", "group": "group"}[spec.granularity]
    args = {
        "num_bits": spec.bits,
        "type": "int" if spec.is_integer_grid else "float",
        "symmetric": spec.scheme == "symmetric",
        "strategy": strategy,
        "group_size": spec.group_size if spec.granularity == "group" else None,
        "dynamic": False,
    }
    return args


def _format(spec: QuantSpec) -> str:
    return "pack-quantized" if spec.is_integer_grid else "naive-quantized"


def quantization_config(plan: ExportPlan) -> dict:
    """The ``quantization_config`` of an export: one config group per distinct setting, layers as exact-name
    regex targets, kept layers under ``ignore``."""
    groups: dict[str, dict] = {}
    by_args: dict[str, str] = {}
    for name, spec in plan.quantized.items():
        args = _args(spec)
        key = json.dumps([args, _format(spec)], sort_keys=True)
        if key not in by_args:
            by_args[key] = f"group_{len(by_args)}"
            groups[by_args[key]] = {"targets": [], "weights": args, "format": _format(spec)}
        groups[by_args[key]]["targets"].append(f"re:^{re.escape(name)}$")
    formats = {g["format"] for g in groups.values()}
    return {
        "quant_method": "compressed-tensors",
        "format": formats.pop() if len(formats) == 1 else "mixed-precision",
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": sorted(plan.kept),
        "version": COMPRESSED_TENSORS_VERSION,
    }


def _compress_layer(weight: torch.Tensor, spec: QuantSpec) -> dict[str, torch.Tensor]:
    """One layer's compressed tensors (local names), from quantlib's own codes and qparams."""
    qt = quantize(weight, spec)
    out_rows = weight.shape[0]
    scale = qt.qparams.scale.to(torch.float32)
    if spec.granularity == "tensor":
        scale = scale.reshape(1)
    else:
        scale = scale.reshape(out_rows, -1)  # (out, 1) per channel, (out, G) per group
    if not spec.is_integer_grid:  # fp8 e4m3: codes stored as they are
        return {"weight": qt.q.contiguous(), "weight_scale": scale.contiguous()}
    half = 1 << (spec.bits - 1)
    shift = half if spec.scheme == "asymmetric" else 0  # onto compressed-tensors' signed grid
    codes = (qt.q - shift).to(torch.int8)
    tensors = {
        "weight_packed": pack_int32(codes, spec.bits),
        "weight_scale": scale.contiguous(),
        "weight_shape": torch.tensor(list(weight.shape), dtype=torch.int64),
    }
    if spec.scheme == "asymmetric":
        zp = (qt.qparams.zero_point.to(torch.int32) - shift).to(torch.int8)
        if spec.granularity == "tensor":
            tensors["weight_zero_point"] = zp.reshape(1)
        else:
            tensors["weight_zero_point"] = pack_int32(zp.reshape(out_rows, -1), spec.bits, packed_dim=0)
    return tensors


def _require_budget(plan: ExportPlan) -> None:
    cost = export_cost(plan)
    if cost.bytes_peak > budget.MAX_BYTES or cost.seconds > budget.MAX_SECONDS:
        raise budget.BudgetExceeded(
            f"exporting {plan.weights_quantized():,} weights would take about {budget.human_seconds(cost.seconds)}"
            f" and {budget.human_bytes(cost.bytes_peak)}, more than one request may use on this shared server"
        )


def _write(
    state: Mapping[str, torch.Tensor], plan: ExportPlan, weights: Mapping[str, str], recipe_json: str | None
) -> bytes:
    """The safetensors bytes: every tensor of ``state`` as it is, except each quantized layer's weight (its key
    in ``weights``), replaced by its compressed tensors under the layer's name."""
    replaced = {weights[name] for name in plan.quantized}
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        if key in replaced:
            continue
        value = value.detach()
        # safetensors refuses tensors that share memory (tied weights): each key after the first gets a copy.
        ptr = value.untyped_storage().data_ptr() if value.numel() else -1
        tensors[key] = value.clone().contiguous() if ptr in seen and ptr != -1 else value.contiguous()
        seen.add(ptr)
    for name, spec in plan.quantized.items():
        prefix = f"{name}." if name else ""
        for local, t in _compress_layer(state[weights[name]].detach(), spec).items():
            tensors[prefix + local] = t
    metadata = {"format": "pt", "quantization_config": json.dumps(quantization_config(plan), sort_keys=True)}
    if recipe_json is not None:
        metadata["quantlib_recipe"] = recipe_json
    return st_save(tensors, metadata=metadata)


def to_compressed_tensors(
    model: nn.Module, spec_or_plan: SpecOrPlan, *, recipe_json: str | None = None, check_budget: bool = False
) -> bytes:
    """The model's weights quantized by ``spec_or_plan`` as a compressed-tensors safetensors file (bytes).

    ``spec_or_plan`` is one :class:`QuantSpec` for every Linear / Embedding layer, or ``{layer: QuantSpec}``
    (mixed precision: only those layers). The metadata holds ``quantization_config`` (JSON) and, when given,
    ``quantlib_recipe`` (:func:`quantlib.recipe.to_json`). ``model`` is only read. With ``check_budget`` the
    cost is priced first (:func:`export_cost`) and :class:`quantlib.budget.BudgetExceeded` raised when it is
    over :data:`quantlib.budget.MAX_SECONDS` / :data:`quantlib.budget.MAX_BYTES`.
    """
    plan = plan_export(model, spec_or_plan)
    if check_budget:
        _require_budget(plan)
    weights = {name: f"{name}.weight" if name else "weight" for name in plan.quantized}
    return _write(model.state_dict(), plan, weights, recipe_json)


def plan_tensors(tensors: Mapping[str, torch.Tensor], plan: Mapping[str, QuantSpec]) -> ExportPlan:
    """An :class:`ExportPlan` for a bare state dict (an uploaded file: no modules, only tensor names).

    A tensor of ``plan`` is exported quantized when it is a 2-D floating weight whose name ends in ``weight``
    (``<layer>.weight``: compressed-tensors names the packed codes ``<layer>.weight_packed``); others are kept
    as they are, with the reason. Per-channel runs along axis 0. The plan's layer names are the tensor names
    without ``.weight``.
    """
    quantized, kept, infos = {}, {}, {}
    for name, spec in plan.items():
        if name not in tensors:
            raise ValueError(f"the file has no tensor named {name!r}")
        t = tensors[name]
        shape = tuple(int(d) for d in t.shape)
        layer = name[: -len(".weight")] if name.endswith(".weight") else "" if name == "weight" else None
        reason = None
        if layer is None:
            reason = "not named like a layer's weight (<layer>.weight)"
        elif not t.is_floating_point():
            reason = f"{str(t.dtype).removeprefix('torch.')} values, not floating point"
        elif len(shape) != 2:
            reason = f"{len(shape)}-D: compressed-tensors compresses 2-D (Linear / Embedding) weights only"
        elif t.numel() == 0:
            reason = "empty"
        if reason is not None:
            kept[name] = reason
            continue
        check_spec(spec)
        s = spec.replace(axis=0) if spec.granularity == "channel" else spec
        if s.granularity == "group" and shape[-1] % s.group_size:
            raise ValueError(f"{name!r}: group size {s.group_size} does not divide its rows of {shape[-1]} values")
        quantized[layer] = s
        infos[layer] = LayerInfo(layer, "tensor", shape, int(t.numel()), 0)
    return ExportPlan(quantized, kept, infos)


def tensors_to_compressed_tensors(
    tensors: Mapping[str, torch.Tensor],
    plan: Mapping[str, QuantSpec],
    *,
    recipe_json: str | None = None,
    check_budget: bool = False,
) -> bytes:
    """A state dict (say an uploaded file's tensors) with the tensors of ``plan`` (``{tensor name: spec}``)
    quantized, in the compressed-tensors layout; see :func:`plan_tensors` for which tensors qualify."""
    p = plan_tensors(tensors, plan)
    if check_budget:
        _require_budget(p)
    weights = {layer: f"{layer}.weight" if layer else "weight" for layer in p.quantized}
    return _write(tensors, p, weights, recipe_json)


def read_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (the 8-byte little-endian header length, then JSON)."""
    if len(blob) < 8:
        raise ValueError("not a safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("not a safetensors file: the header is longer than the file")
    header = json.loads(blob[8 : 8 + n])
    return dict(header.get("__metadata__", {}))


def read(blob: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of an exported file and its metadata, with ``quantization_config`` (and ``quantlib_recipe``)
    parsed from JSON."""
    meta: dict = read_metadata(blob)
    for key in ("quantization_config", "quantlib_recipe"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    return st_load(blob), meta
