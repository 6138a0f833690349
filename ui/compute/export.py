"""What the download buttons hand out: a quantized model as a compressed-tensors file, and its recipe.

Plans are ``{layer: QuantSpec}``; their recipe JSON (:func:`quantlib.recipe.to_json`) is the canonical string
that keys the shared cache of a sample model's file. A file is built only when someone clicks its button (the
page hands Streamlit a callable), and its cost is priced first (:func:`check`), so a link cannot make the
server export something too big. An uploaded file's export is never cached: it is built from the session's own
tensors, in the clicking session, and handed straight to that browser.

Nothing here translates: a reason of this module is a ``ui.compute.upload.Message`` (English as a string, shown
in the session's language by the page); quantlib's own reasons and ``BudgetExceeded`` messages are English and
worded for the session by ``ui.views.export``. The files' contents (recipe JSON, metadata) stay English.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import streamlit as st
import torch

from quantlib import QuantSpec, budget, dequantize, pack, quantize, recipe
from quantlib.export import (
    ExportPlan,
    export_cost,
    plan_export,
    plan_tensors,
    tensors_to_compressed_tensors,
    to_compressed_tensors,
)
from quantlib.model import LayerInfo, weight_storage
from ui import sources
from ui.compute import explorer as data
from ui.compute import reductions
from ui.i18n import N_

#: Finished files kept for everyone (the per-key lock makes 40 clicks one export). MiniLM at 4 bits is ~15 MB.
CACHED_FILES = 4


def sample_plan(model: str, spec: QuantSpec) -> tuple[dict[str, QuantSpec], list[str]]:
    """Every layer of a sample model at ``spec``, with group sizes fitted per layer as Output drift fits them
    (:func:`ui.compute.explorer.weight_specs`), and notes on what was fitted."""
    names = [i.name for i in sources.layers(model)]
    return data.weight_specs(model, names, spec)


def mixed_plan(spec: QuantSpec, assignment: Mapping[str, int]) -> dict[str, QuantSpec]:
    """A mixed-precision assignment ``{layer: bits}`` as the plan the search measured (``spec`` at each width)."""
    return {name: spec.replace(bits=int(b)) for name, b in assignment.items()}


def recipe_json(model: str, plan: Mapping[str, QuantSpec]) -> str:
    return recipe.to_json(plan, model=model)


def _plain(plan: Mapping[str, QuantSpec]) -> dict[str, QuantSpec]:
    return {name: budget.plain(s) for name, s in plan.items()}


def _check_cost(p: ExportPlan, baseline: ExportPlan, spec: QuantSpec) -> None:
    n = len(p.quantized)
    what = f"exporting {n} {'layer' if n == 1 else 'layers'} ({p.weights_quantized():,} weights) at {spec.label()}"
    budget.check(export_cost(p), export_cost(baseline), what, spec)


def check(model: str, plan: Mapping[str, QuantSpec]) -> ExportPlan:
    """The export plan of a sample model, refused in plain words (``ValueError`` / ``BudgetExceeded``) when
    compressed-tensors cannot hold a setting or the export is over the interactive budget."""
    m = sources.sample(model).model
    p = plan_export(m, dict(plan))
    if p.quantized:
        _check_cost(p, plan_export(m, _plain(plan)), next(iter(p.quantized.values())))
    return p


@st.cache_data(max_entries=CACHED_FILES, show_spinner=False)
def sample_file(model: str, recipe_text: str) -> bytes:
    """The compressed-tensors file of a sample model quantized by a recipe (shared by everyone who asks)."""
    data.configure_torch()
    plan = recipe.from_json(recipe_text).layers
    return to_compressed_tensors(sources.sample(model).model, plan, recipe_json=recipe_text)


def file_size(p: ExportPlan, state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """``(about the exported bytes, the float bytes)``: quantized weights as codes + scales + zero points
    (:func:`quantlib.model.weight_storage`), everything else at its dtype."""
    quantized_keys = {f"{n}.weight" if n else "weight": n for n in p.quantized}
    total = float_total = 0
    for key, t in state.items():
        nbytes = t.numel() * t.element_size()
        float_total += nbytes
        if key in quantized_keys:
            name = quantized_keys[key]
            payload, overhead = weight_storage(p.quantized[name], p.infos[name])
            total += payload + overhead
        else:
            total += nbytes
    return total, float_total


# --- an uploaded file (session only) ----------------------------------------------------------------------------


def upload_plan(tensors: Mapping[str, torch.Tensor], spec: QuantSpec) -> dict[str, QuantSpec]:
    """The spec each weight of an uploaded file (a tensor of 2 or more dimensions named ``...weight``) is stored
    with: ``ui.compute.upload.storage_spec``, the size table's rule (group sizes fitted to the rows). Biases and norms
    stay as they are and are not listed."""
    from ui.compute import upload

    return {
        name: upload.storage_spec(tuple(int(d) for d in t.shape), spec)[0]
        for name, t in tensors.items()
        if name.endswith("weight") and t.dim() >= 2
    }


def check_upload(
    tensors: Mapping[str, torch.Tensor], plan: Mapping[str, QuantSpec], spec: QuantSpec
) -> tuple[ExportPlan, dict[str, QuantSpec]]:
    """The export plan of an uploaded file and the ``{tensor: spec}`` plan to build it with. A weight holding NaN
    or Inf cannot be quantized: it is kept as it is, and listed. Refused in plain words when the export is over
    the budget. Checked here, in the page's run: the file itself is built later, on the click, where an error
    could not be shown."""
    from ui.compute.upload import Message

    known = getattr(tensors, "nonfinite", None)  # ``quantlib.io.UploadedTensors`` found them while loading
    usable, bad = {}, {}
    for name, s in plan.items():
        nonfinite = name in known if known is not None else not bool(torch.isfinite(tensors[name]).all())
        if nonfinite:
            bad[name] = Message(N_("holds NaN or infinite values, which cannot be quantized"))
        else:
            usable[name] = s
    p = plan_tensors(tensors, usable)
    if p.quantized:
        _check_cost(p, plan_tensors(tensors, _plain(usable)), spec)
    return ExportPlan(p.quantized, {**p.kept, **bad}, p.infos), usable


def upload_file(tensors: Mapping[str, torch.Tensor], plan: Mapping[str, QuantSpec], recipe_text: str) -> bytes:
    """The uploaded file's tensors in the compressed-tensors layout (never cached: the file is the session's)."""
    data.configure_torch()
    return tensors_to_compressed_tensors(tensors, plan, recipe_json=recipe_text)


def summary(p: ExportPlan, size: tuple[int, int]) -> dict[str, Any]:
    """What the page says about an export: layers quantized / kept, sizes."""
    return {
        "quantized": len(p.quantized),
        "kept": dict(p.kept),
        "bytes": size[0],
        "float_bytes": size[1],
    }


# --- bits on the wire (the walkthrough) -----------------------------------------------------------------------------

#: How many of the layer's first values the walkthrough packs in front of you.
WIRE_VALUES = 16


@sources.model_cache(max_entries=64)
def wire_view(model: str, layer: str, key: str) -> dict[str, Any]:
    """The layer's first values as codes, the bytes they pack into, what unpacks, and the storage of the whole
    tensor: codes, scales and zero points per block. Integer grids of 1-8 bits and nf4 pack; fp8 is a byte
    per code; wider integer codes are stored in 16 bits."""
    spec = reductions.spec_from_key(key)
    x = sources.tensor_for(model, layer, "weights", spec)
    s = sources.spec_for(model, layer, "weights", spec)
    reductions.check_view_budget(x, s)
    qt = quantize(x, s)
    n = min(WIRE_VALUES, x.numel())
    codes = qt.q.reshape(-1)[:n]
    out: dict[str, Any] = {
        "x": x.reshape(-1)[:n].to(torch.float32).numpy(),
        "x_hat": dequantize(qt).reshape(-1)[:n].to(torch.float32).numpy(),
        "label": s.label(),
        "format": s.format,
        "scheme": s.scheme,
        "bits": s.bits,
        "numel": int(x.numel()),
        "blocks": qt.qparams.num_blocks,
        "block_values": int(x.numel()) // max(qt.qparams.num_blocks, 1),
        "first_scale": float(qt.qparams.scale.reshape(-1)[0]),
        "first_zero_point": int(qt.qparams.zero_point.reshape(-1)[0]),
        "spec_key": reductions.spec_key(s),  # the label in the session's words, at display time
    }
    if s.format in ("fp8_e4m3", "fp8_e5m2"):
        stored = codes.view(torch.uint8).to(torch.int32)  # an fp8 code is its byte
        packable: int | None = 8
    elif s.format == "nf4":
        stored = codes.to(torch.int32)  # indices 0..15 into the NF4 codebook
        packable = 4
    else:
        # Signed (symmetric) codes are stored offset by 2^(b-1), as compressed-tensors does: 0 .. 2^b - 1.
        stored = codes.to(torch.int32) + (1 << (s.bits - 1) if s.scheme == "symmetric" else 0)
        packable = s.bits if s.bits <= 8 else None
    out["codes"] = stored.numpy() if s.format in ("fp8_e4m3", "fp8_e5m2") else codes.to(torch.int32).numpy()
    out["stored"] = stored.numpy()
    if packable is not None:
        packed = pack.pack_bits(stored, packable)
        out["packed"] = packed.numpy()
        out["layout"] = pack.byte_layout(packed, packable, n)
        out["unpacked"] = pack.unpack_bits(packed, packable, n).numpy()
    else:
        out["packed"] = out["layout"] = out["unpacked"] = None
    if s.is_integer_grid and s.bits <= 8:
        row = (codes.to(torch.int32) - (1 << (s.bits - 1) if s.scheme == "asymmetric" else 0)).reshape(1, -1)
        out["ct_words"] = [int(w) & 0xFFFFFFFF for w in pack.pack_int32(row.to(torch.int8), s.bits).reshape(-1)]
    else:
        out["ct_words"] = None
    info = LayerInfo(layer, "weights", tuple(int(d) for d in x.shape), int(x.numel()), s.axis)
    payload, overhead = weight_storage(s, info)
    zp_bytes = qt.qparams.num_blocks * math.ceil(s.bits / 8) if s.scheme == "asymmetric" else 0
    out.update(
        payload_bytes=payload,
        scale_bytes=overhead - zp_bytes,
        zero_point_bytes=zp_bytes,
        float_bytes=4 * int(x.numel()),
    )
    return out
