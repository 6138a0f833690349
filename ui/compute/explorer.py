"""Cached loaders and computations: everything a page needs, already reduced to small arrays.

Two caches, two rules:

- ``st.cache_resource`` holds *shared objects*: the sample models (one per process, used by every session) and
  captured activation tensors. They are read, never written: quantizing goes through ``quantlib.model``, which
  returns new models, and no hook is ever put on a cached module.
- ``st.cache_data`` holds *results*: histogram counts, curve points, drift figures. Every function takes plain
  strings and numbers (model name, layer name, a spec key from :func:`spec_key`) and has ``max_entries``, so
  memory stays bounded however many settings a workshop tries. Identical requests from 40 browsers compute
  once: Streamlit holds a per-key lock while the first one computes.

Results are pre-reduced here (counts, not values; a few thousand scatter points at most), so what travels to a
browser stays small whatever the tensor size.

**Budgets.** Every computation a link or an upload can start here is priced first by :mod:`quantlib.budget`
(from shapes and the spec alone) and refused with its plain-words ``BudgetExceeded`` (a ``ValueError``, shown by
``ui.widgets.friendly_errors``) when its settings would take more than the interactive budget - before any
allocation, in well under 0.1 s. The refusal is not cached: it is as cheap to give again.

**An uploaded file as a model.** The sidebar offers :data:`ui.sources.UPLOAD_MODEL` in a session that loaded a file on the
"Your model" page: its tensors are the layers. Such a file belongs to that session alone, so it never reaches a
shared cache: the functions that read a layer's tensor are declared with :func:`ui.sources.model_cache`, which uses
``st.cache_data`` for sample models and the session's own memo (``ui.compute.upload.memo``) for the file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st
import torch

from quantlib import (
    QuantSpec,
    budget,
    calibrated_clip_ratio,
    clip_sweep,
    error_curve,
    summarize,
)
from quantlib.layout import fitted_group_size
from quantlib.model import (
    ACTIVATION_SAMPLE_VALUES,
    activation_spec,
    layer_spec,
    model_size_bytes,
    output_drift,
    quantize_model,
    quantize_weights,
    weight_view_shape,
)
from ui import sources, text
from ui.compute.reductions import (
    CURVE_DOING,
    Note,
    check_budget,
    check_view_budget,
    reduce_view,
    spec_from_key,
)
from ui.i18n import N_

#: Per-channel / per-group charts show at most this many blocks (evenly spaced after sorting by range).
MAX_BLOCKS = 256
#: Scatter plots of outputs keep at most this many points (2 float32 coordinates each, ~16 kB as base64).
MAX_SCATTER = 1500
#: Bit widths of the task-metric sweep on the drift page (each point quantizes and evaluates the whole model).
SWEEP_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 12, 16)
#: MSE / entropy calibration re-runs at every bit width; on tensors larger than this the error curves use an
#: evenly spaced subset of rows so the page stays interactive.
CURVE_MAX_VALUES = 1 << 18
F = TypeVar("F", bound=Callable[..., Any])


def configure_torch() -> None:
    """One torch thread per computation (override with ``QE_TORCH_THREADS``).

    The server runs every browser session's script in its own thread, on a machine with few cores and often
    other work. Intra-op parallelism then fights over the cores: measured on the 2-core reference machine
    under load, quantizing a 590k-value layer took 40 ms with one thread and 730 ms with two. Tensors here
    are at most a few million values, too small for threads to pay off anyway.
    """
    threads = int(os.environ.get("QE_TORCH_THREADS", "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# --- the tensor explorer ------------------------------------------------------------------------------------


def _reduce_blocks(lo: np.ndarray, hi: np.ndarray, clip_lo: np.ndarray, clip_hi: np.ndarray, mse: np.ndarray):
    """Sort blocks by range (widest first) and keep at most MAX_BLOCKS, evenly spaced."""
    order = np.argsort(-(hi - lo), kind="stable")
    if order.size > MAX_BLOCKS:
        order = order[np.unique(np.linspace(0, order.size - 1, MAX_BLOCKS).round().astype(int))]
    return {
        "index": order.astype(np.int32),
        "min": lo[order].astype(np.float32),
        "max": hi[order].astype(np.float32),
        "clip_lo": clip_lo[order].astype(np.float32),
        "clip_hi": clip_hi[order].astype(np.float32),
        "mse": mse[order].astype(np.float32),
        "total": int(lo.size),
    }


def _channel_rows(x: torch.Tensor, axis: int) -> torch.Tensor:
    if x.dim() == 0:  # a single number (an uploaded scalar): one channel of one value
        return x.reshape(1, 1)
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


@sources.model_cache(max_entries=128)
def tensor_view(model: str, layer: str, kind: str, key: str) -> dict[str, Any]:
    """Everything the tensor explorer draws for one layer's tensor and one spec: :func:`reduce_view` plus
    per-block ranges and errors (per-channel ranges under a per-tensor spec, to show what one shared range
    costs the narrow channels)."""
    spec = sources.spec_for(model, layer, kind, spec_from_key(key))
    x = sources.tensor_for(model, layer, kind, spec)
    view, rep = reduce_view(x, spec)

    # Blocks: the spec's own (channels / groups), or the channels of the tensor under a shared range.
    if spec.granularity == "tensor":
        rows = _channel_rows(x.detach().to(torch.float32), sources.feature_axis(model, layer, kind))
        rows_hat = _channel_rows(rep.x_hat.to(torch.float32), sources.feature_axis(model, layer, kind))
        bmin, bmax = torch.aminmax(rows, dim=1)
        bmse = (rows_hat - rows).double().square().mean(dim=1)
        n = rows.shape[0]
        blocks = _reduce_blocks(
            bmin.numpy(),
            bmax.numpy(),
            np.full(n, float(rep.block_clip_lo[0])),
            np.full(n, float(rep.block_clip_hi[0])),
            bmse.numpy(),
        )
        blocks["unit"] = "channel"
    else:
        blocks = _reduce_blocks(rep.block_min, rep.block_max, rep.block_clip_lo, rep.block_clip_hi, rep.block_mse)
        blocks["unit"] = "channel" if spec.granularity == "channel" else "group"
    view["blocks"] = blocks
    return view


# --- error curves ------------------------------------------------------------------------------------------


def _curve_sample(x: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, Note | None]:
    """For bit-dependent calibrations on big tensors: an evenly spaced subset of whole rows (channels and
    groups stay intact), and a note saying so (a :class:`~ui.compute.reductions.Note`: the page words it)."""
    if spec.calibration not in ("mse", "entropy") or x.numel() <= CURVE_MAX_VALUES:
        return x, None
    axis = spec.axis if spec.granularity == "channel" else 0
    if x.dim() < 2:
        stride = math.ceil(x.numel() / CURVE_MAX_VALUES)
        return x[::stride], Note(N_("one value in every {stride}"), stride=stride)
    n_rows = x.shape[axis]
    per_row = x.numel() // n_rows
    keep = max(1, min(n_rows, CURVE_MAX_VALUES // max(per_row, 1)))
    idx = torch.linspace(0, n_rows - 1, keep).round().long().unique()
    sub = x.index_select(axis, idx)
    return sub, Note(N_("{kept:,} of {rows:,} rows, evenly spaced"), kept=int(idx.numel()), rows=int(n_rows))


@sources.model_cache(max_entries=256)
def curve(model: str, layer: str, kind: str, key: str) -> tuple[pd.DataFrame, Note | None]:
    """``quantlib.error_curve`` over bits 2-16 for one scheme × granularity (the key's bits are ignored), and a
    note when it ran on a subset (English as a ``str``; ``note.text()`` in the session's language)."""
    spec = sources.spec_for(model, layer, kind, spec_from_key(key))
    x = sources.tensor_for(model, layer, kind, spec)
    sample_x, note = _curve_sample(x, spec)
    check_budget(budget.curve_cost, sample_x, spec, CURVE_DOING)  # what is computed: the sample, at 15 widths
    return error_curve(sample_x, spec), note


@sources.model_cache(max_entries=128)
def point(model: str, layer: str, kind: str, key: str) -> dict[str, float]:
    """MSE and SQNR of one spec on the whole tensor (fp8 / nf4 points on the curves chart)."""
    spec = sources.spec_for(model, layer, kind, spec_from_key(key))
    x = sources.tensor_for(model, layer, kind, spec)
    check_view_budget(x, spec)
    rep = summarize(x, spec)
    return {"bits": spec.bits, "mse": rep.mse, "sqnr_db": rep.sqnr_db}


@sources.model_cache(max_entries=128)
def clip_curve(model: str, layer: str, kind: str, key: str) -> tuple[pd.DataFrame, float]:
    """MSE vs clip ratio at the key's bit width, and the ratio the key's calibration method picks."""
    spec = sources.spec_for(model, layer, kind, spec_from_key(key))
    x = sources.tensor_for(model, layer, kind, spec)
    check_budget(budget.clip_curve_cost, x, spec, f"the error-vs-clipping curve over {budget.CLIP_SWEEP_RATIOS} ratios")
    return clip_sweep(x, spec), calibrated_clip_ratio(x, spec)


# --- output drift ------------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)  # the page's spinner says what runs, in its language
def reference_outputs(model: str) -> torch.Tensor:
    """The float model's outputs on the evaluation inputs (the drift reference)."""
    sm = sources.sample(model)
    return sm.run(sm.model).detach().clone()


def weight_specs(model: str, layers_: list[str], spec: QuantSpec) -> tuple[dict[str, QuantSpec], list[Note]]:
    """One spec per layer, with a per-group size that every layer can take, and notes on what was adapted
    (:class:`~ui.compute.reductions.Note`: English as a ``str``, ``note.text()`` in the session's language).

    A group size must divide a layer's rows; where it does not, the largest size below it that does is used
    (or per-channel when none is), rather than refusing to quantize the whole model.
    """
    out, notes = {}, []
    for info in sources.layers(model):
        if info.name not in layers_:
            continue
        s = spec
        if spec.granularity == "group":
            row = info.numel // info.shape[0]
            fitted = fitted_group_size([row], spec.group_size)
            if fitted != spec.group_size:
                s = spec.replace(group_size=fitted) if fitted else spec.replace(granularity="channel")
                layer = text.code_span(info.name or "root")
                notes.append(
                    Note(N_("{layer}: rows of {row} values, group size {fitted} instead"), layer=layer, row=row,
                         fitted=fitted)
                    if fitted
                    else Note(N_("{layer}: rows of {row} values, per-channel instead"), layer=layer, row=row)
                )
        out[info.name] = s
    return out, notes


def model_cost(model: str, wspecs: dict[str, QuantSpec], target: str, spec: QuantSpec) -> budget.Cost:
    """Calibration and fake quant of every chosen layer, one after the other: the weights at their own spec, and
    for activations one per-tensor range on the recorded sample (at most ``ACTIVATION_SAMPLE_VALUES`` values,
    input and output) of each layer. Running the model costs the same whatever the settings, so it is left out."""
    infos = {i.name: i for i in sources.layers(model)}
    steps = []
    for name, s in wspecs.items():
        info = infos[name]
        if target in ("weights", "both"):
            ls = layer_spec(s, info)
            steps.append(budget.estimate(weight_view_shape(info.shape, ls), ls))
        if target in ("activations", "both"):
            steps.append(budget.estimate(ACTIVATION_SAMPLE_VALUES, activation_spec(spec)).times(2))
    return budget.sequence(steps)


def check_model_budget(model: str, wspecs: dict[str, QuantSpec], target: str, spec: QuantSpec) -> None:
    """Refuse quantizing a whole model (output drift, its sweep, QAT's PTQ reference) whose settings would take
    more than the interactive budget over quantizing it per-tensor with min-max: the sum over its layers."""
    cost = model_cost(model, wspecs, target, spec)
    plain = {name: budget.plain(s) for name, s in wspecs.items()}
    baseline = model_cost(model, plain, target, budget.plain(spec))
    n = len(wspecs)
    values = sum(sources.layer_info(model, name).numel for name in wspecs)
    gran = {"tensor": "per-tensor", "channel": "per-channel", "group": "per-group"}[spec.granularity]
    what = f"{gran} {spec.calibration} calibration of {n} {'layer' if n == 1 else 'layers'} ({values:,} weights)"
    if target == "activations":
        what = f"{spec.calibration} calibration of the activations of {n} {'layer' if n == 1 else 'layers'}"
    budget.check(cost, baseline, what, spec)


def build_quantized(model: str, layers_: list[str], target: str, spec: QuantSpec) -> tuple[torch.nn.Module, list[Note]]:
    """A quantized *copy* of the sample model (weights, activations or both of ``layers_``)."""
    sm = sources.sample(model)
    wspecs, notes = weight_specs(model, layers_, spec)
    check_model_budget(model, wspecs, target, spec)
    if target == "weights":
        return quantize_weights(sm.model, wspecs), notes
    return (
        quantize_model(
            sm.model,
            weight_spec=wspecs if target == "both" else None,
            act_spec=spec,
            calibration_inputs=sm.calibration_inputs,
            layers=layers_,
        ),
        notes,
    )


def _subsample_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.size <= MAX_SCATTER:
        return a, b
    idx = np.random.default_rng(0).choice(a.size, MAX_SCATTER, replace=False)
    idx.sort()
    return a[idx], b[idx]


@st.cache_data(max_entries=128, show_spinner=False)
def drift_point(model: str, scope: str, layer: str, target: str, key: str) -> dict[str, Any]:
    """Quantize the model (all layers, or only ``layer``), run it on the evaluation set and compare.

    Returns the drift report's scalars and per-example arrays, a subsample of (float, quantized) output pairs,
    the task metrics and the weight storage size, plus how long it took (to decide whether a sweep of several
    bit widths can run without asking).
    """
    start = time.perf_counter()
    sm = sources.sample(model)
    spec = spec_from_key(key)
    chosen = [i.name for i in sources.layers(model)] if scope == "all" else [layer]
    quantized, notes = build_quantized(model, chosen, target, spec)
    outputs = sm.run(quantized)
    reference = reference_outputs(model)
    report = output_drift(reference, outputs, classifier=sm.task == "classification")
    task_metrics = sm.evaluate(quantized)
    ref_np = reference.detach().to(torch.float32).reshape(-1).numpy()
    out_np = outputs.detach().to(torch.float32).reshape(-1).numpy()
    xs, ys = _subsample_pairs(ref_np, out_np)
    wspecs, _notes = weight_specs(model, chosen, spec)
    size = model_size_bytes(sm.model, wspecs) if target != "activations" else model_size_bytes(sm.model)
    return {
        "report": report.as_dict(),
        "per_example_mse": report.per_example_mse.astype(np.float64),
        "per_example_cosine": None
        if report.per_example_cosine is None
        else np.asarray(report.per_example_cosine, dtype=np.float64),
        "scatter_float": xs,
        "scatter_quant": ys,
        "n_outputs": int(ref_np.size),
        "metrics": task_metrics,
        "size_bytes": int(size),
        "float_size_bytes": int(model_size_bytes(sm.model)),
        "notes": notes,
        "seconds": time.perf_counter() - start,
    }
