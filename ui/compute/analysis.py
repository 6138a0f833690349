"""Computations of the "Layer sensitivity" and "Size & speed" pages: sweeps, mixed precision, storage, latency.

Two kinds of work, two caches:

- **Cheap and deterministic** (storage sizes, overhead tables): ``st.cache_data`` keyed by plain strings, like
  :mod:`ui.compute.explorer`.
- **Long** (a sensitivity sweep of MiniLM takes 10 s to 1 min on the 2-core server; a latency measurement
  10 s): the ``compute_*`` functions below, run by the job runner (:mod:`ui.jobs`) in a worker process under a
  string key. Moving a slider does not throw away a half-finished sweep, 40 browsers asking for one key wait
  for one job and see its progress (:mod:`ui.views.jobs`), and a page can ask "is this already computed?"
  without computing it, which lets a shared link show a finished sweep straight away.

Keys are plain strings: model name, :func:`ui.compute.reductions.spec_key` of the spec, bit widths, mode.
Results are pre-reduced tables (tens of rows), never tensors: what a page ships to the browser stays small.

Everything here treats the shared sample models as read-only: ``quantlib.sensitivity`` and ``quantlib.speed``
work on private copies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st
import torch

from quantlib import QuantSpec
from quantlib.layout import fitted_group_size
from quantlib.mixed_precision import choose_bits, pareto_front
from quantlib.model import LayerInfo, call, model_size_bytes, size_breakdown
from quantlib.sensitivity import layer_sensitivity, sensitivity_sweep
from quantlib.speed import compare_float_vs_int8_dynamic, linear_micro_benchmark
from ui import controls, jobs, sources
from ui.compute import explorer as data
from ui.compute import reductions
from ui.i18n import N_, _

#: Bit widths of the layers × bits heatmap, and the widths the mixed-precision search picks from.
SWEEP_BITS: tuple[int, ...] = (2, 3, 4, 6, 8)
#: Uniform widths drawn on the Pareto chart for comparison.
UNIFORM_BITS: tuple[int, ...] = (8, 6, 4)
#: Work estimated to take less than this runs as soon as the page opens; longer work waits for a click.
#: Examples the latency measurement runs per call (MiniLM's whole evaluation set would take a minute).
SPEED_BATCH = 64
#: A latency measurement younger than this is shown instead of measuring again (40 clicks, one measurement).
REMEASURE_AFTER_S = 60.0

#: ``progress(done, total, message)``, the callback shape of ``quantlib.sensitivity``.
Progress = Callable[[int, int, str], None]


# --- the settings the sensitivity page probes -------------------------------------------------------------------


def model_wide_spec(model: str, spec: QuantSpec) -> tuple[QuantSpec, str | None]:
    """One spec every layer of ``model`` can take, and a note when it differs from ``spec``.

    The sweeps and the mixed-precision search quantize all layers with one spec (``quantlib`` takes a single
    ``QuantSpec`` there). A group size must divide every layer's rows: if the chosen one does not, the largest
    smaller size that divides all of them is used, or per-channel when none does (a 3×3 conv's rows of 9).
    """
    if spec.granularity != "group":
        return spec, None
    rows = {controls.group_row_length(info) for info in sources.layers(model)}
    fitted = fitted_group_size(rows, spec.group_size)
    if fitted == spec.group_size:
        return spec, None
    lengths = ", ".join(str(r) for r in sorted(rows))
    if fitted:
        return spec.replace(group_size=fitted), _(
            "group size {size} does not divide every layer's rows ({lengths} values), so this page uses group "
            "size {fitted} for all layers",
            size=spec.group_size,
            lengths=lengths,
            fitted=fitted,
        )
    return spec.replace(granularity="channel"), _(
        "no group size divides every layer's rows ({lengths} values), so this page uses per-channel for all "
        "layers",
        lengths=lengths,
    )


def integer_spec(spec: QuantSpec) -> tuple[QuantSpec, str | None]:
    """The spec a bit-width sweep can vary: fp8 / nf4 have a fixed width, so their sweep uses int."""
    if spec.is_integer_grid:
        return spec, None
    return spec.replace(format="int"), _(
        "{format} has a fixed width, so the bit-width sweep and the mixed-precision search use the int format "
        "with the same scheme and granularity",
        format=spec.format,
    )


def spec_text(spec: QuantSpec) -> str:
    """``QuantSpec.label()`` (``int4 sym per-channel``) with its words in the session's language, for the text of
    these pages (format names stay: ``int4``, ``fp8_e4m3``)."""
    return reductions.spec_label(spec, _)


#: Task metrics of the sample models as the pages name them (a metric not listed shows its own name: ``mse``).
METRIC_LABELS: dict[str, str] = {
    "accuracy": N_("accuracy"),
    "spearman": N_("spearman"),
    "recall@10": N_("recall@10"),
}


def metric_label(name: str) -> str:
    """A sample model's task metric (``accuracy``) in the session's language."""
    label = METRIC_LABELS.get(name)
    return _(label) if label else name


def short_names(names: Sequence[str]) -> list[str]:
    """Layer names short enough for a chart axis, still unique: the common dotted prefix removed and the long
    words of transformer blocks abbreviated (``bert.encoder.layer.3.attention.self.query`` -> ``L3.attn.query``).

    >>> short_names(["bert.encoder.layer.3.attention.self.query", "bert.embeddings.word_embeddings"])
    ['L3.attn.query', 'emb.word_embeddings']
    >>> short_names([""])
    ['root']
    """
    tokens = [controls.layer_token(n) for n in names]
    parts = [t.split(".") for t in tokens]
    common = 0
    if len(parts) > 1:
        while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
            common += 1
    short = [".".join(p[common:]) for p in parts]
    for old, new in (
        ("encoder.layer.", "L"),
        ("attention.self.", "attn."),
        ("attention.output.", "attn.out."),
        ("intermediate.", "ffn.in."),
        ("output.", "out."),
        ("embeddings.", "emb."),
    ):
        short = [s.replace(old, new) for s in short]
    return short if len(set(short)) == len(short) else tokens


# --- cost estimates ------------------------------------------------------------------------------------------


def measure_probe_seconds(model: str) -> float:
    """Seconds for one evaluation and one forward pass of the float model: the unit every sweep is made of."""
    sm = sources.sample(model)
    best = math.inf
    for _attempt in range(2):  # the first call of a small model is mostly warm-up: take the better of two
        start = time.perf_counter()
        sm.evaluate(sm.model)
        sm.run(sm.model)
        best = min(best, time.perf_counter() - start)
        if best > 0.5:
            break  # a big model: one call is a good enough estimate, and a second would cost seconds
    return best


@st.cache_resource(show_spinner=False, max_entries=16)  # the spinner is the caller's (its words translated)
def _probe_seconds_here(model: str) -> float:
    return measure_probe_seconds(model)


def probe_seconds(model: str) -> float:
    """:func:`measure_probe_seconds` of ``model``, as the job worker's warm-up measured it, else measured here.

    The warm-up times every model in the worker, off the server's GIL: timing MiniLM in the server would hold
    it for a second or two while a class is moving sliders.
    """
    warm = jobs.runner().result(WARM_KEY)
    if isinstance(warm, dict) and model in warm.get("probe_seconds", {}):
        return float(warm["probe_seconds"][model])
    return _probe_seconds_here(model)


#: Before any sweep of a model finished: a probe costs about half an evaluation plus forward pass (the
#: activation reuse of quantlib.sensitivity recomputes only what comes after the quantized layer).
_PROBE_SHARE = 0.5


def _per_probe(model: str) -> float:
    """Seconds per probe: from the newest finished sweep or sensitivity pass of ``model``, else a guess."""
    rates = []
    for key, hit in jobs.runner().finished_items(f"sweep|{model}|") + jobs.runner().finished_items(f"sensitivity|{model}|"):
        probes = _key_probes(model, key)
        if probes:
            rates.append((hit.at, hit.seconds / probes))
    if rates:
        return max(rates)[1]
    return _PROBE_SHARE * probe_seconds(model)


def _key_probes(model: str, key: str) -> int:
    """Probes behind a finished key (``sweep|model|2,3,4|…`` or ``sensitivity|model|mode|…``)."""
    kind, _model, what = key.split("|", 3)[:3]
    if kind == "sweep":
        return _sweep_probes(model, [int(b) for b in what.split(",") if b])
    return _sensitivity_probes(model, what)


def sensitivity_estimate(model: str, mode: str) -> float:
    """Rough seconds for one pass over every layer (float reference + one probe per layer)."""
    return _sensitivity_probes(model, mode) * _per_probe(model)


def _sensitivity_probes(model: str, mode: str) -> int:
    return len(sources.layers(model)) + 1 + (mode == "all_but")


def _sweep_probes(model: str, bits: Sequence[int]) -> int:
    return 1 + len(sources.layers(model)) * len(bits)


def sweep_estimate(model: str, bits: Sequence[int] = SWEEP_BITS) -> float:
    return _sweep_probes(model, bits) * _per_probe(model)


def pareto_estimate(model: str) -> float:
    return (9 + len(UNIFORM_BITS) + 1) * probe_seconds(model)


# --- keys --------------------------------------------------------------------------------------------------------


def sensitivity_key(model: str, spec: QuantSpec, mode: str) -> str:
    return f"sensitivity|{model}|{mode}|{reductions.spec_key(spec)}"


def sweep_key(model: str, spec: QuantSpec, bits: Sequence[int] = SWEEP_BITS) -> str:
    """The sweep varies the bits, so the key normalises them (8) and lists the widths instead."""
    return f"sweep|{model}|{','.join(map(str, bits))}|{reductions.spec_key(spec.replace(bits=8))}"


def choice_key(model: str, spec: QuantSpec, avg_bits: float) -> str:
    return f"choose|{model}|{avg_bits:g}|{sweep_key(model, spec)}"


def pareto_key(model: str, spec: QuantSpec) -> str:
    return f"pareto|{model}|{sweep_key(model, spec)}"


def speed_key(model: str) -> str:
    return f"speed|{model}"


MICRO_KEY = "speed|linear-1024"


# --- the computations (run in a job worker process) --------------------------------------------------------------


def _evaluate_kwargs(model: str) -> dict[str, Any]:
    sm = sources.sample(model)
    return {
        "evaluate": sm.evaluate,
        "metric_name": sm.metric_name,
        "run": sm.run,
        "higher_is_better": sm.higher_is_better,
    }


def _probe_progress(progress: Progress | None) -> Progress | None:
    """quantlib's ``"int4 sym per-channel: fc1 (only)"`` as a message every language can show: the probed
    layer at its spec (a msgid with values; the spec label and the layer name are codes)."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str = "") -> None:
        head, sep, rest = message.partition(": ")
        layer, _paren, mode = rest.rpartition(" (")
        if not sep or not _paren:
            progress(done, total, message)
        elif mode.rstrip(")") == "all_but":
            progress(done, total, N_("every layer but {layer} at {spec}"), layer=controls.layer_token(layer),
                     spec=head)
        else:
            progress(done, total, N_("{layer} at {spec}"), layer=controls.layer_token(layer), spec=head)

    return report


def _pareto_progress(progress: Progress | None) -> Progress | None:
    """``quantlib.pareto_front``'s ``"≤ 4 bits/weight"`` / ``"uniform int4"`` as msgids with values."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str = "") -> None:
        if message.startswith("uniform "):
            progress(done, total, N_("uniform {format}"), format=message.removeprefix("uniform "))
        elif message.startswith("≤ ") and message.endswith(" bits/weight"):
            progress(done, total, N_("mix for ≤ {bits} bits/weight"),
                     bits=message.removeprefix("≤ ").removesuffix(" bits/weight"))
        else:
            progress(done, total, message)

    return report


def compute_sensitivity(model: str, spec: QuantSpec, mode: str, progress: Progress | None = None) -> pd.DataFrame:
    """``quantlib.layer_sensitivity`` of every layer of the sample model (its own private copy)."""
    sm = sources.sample(model)
    return layer_sensitivity(sm.model, spec, mode=mode, progress=_probe_progress(progress), **_evaluate_kwargs(model))


def compute_sweep(
    model: str, spec: QuantSpec, bits: Sequence[int] = SWEEP_BITS, progress: Progress | None = None
) -> pd.DataFrame:
    """``quantlib.sensitivity_sweep``: every layer alone at every width in ``bits`` (the heatmap's table)."""
    sm = sources.sample(model)
    return sensitivity_sweep(sm.model, spec, bits=bits, progress=_probe_progress(progress), **_evaluate_kwargs(model))


def compute_choice(
    model: str, spec: QuantSpec, sweep: pd.DataFrame, avg_bits: float, progress: Progress | None = None
) -> dict[str, Any]:
    """``quantlib.choose_bits`` under an average-bits budget, measured; as plain values for the page."""
    sm = sources.sample(model)
    res = choose_bits(
        sm.model,
        sweep,
        avg_bits=avg_bits,
        spec=spec,
        evaluate=sm.evaluate,
        metric_name=sm.metric_name,
        higher_is_better=sm.higher_is_better,
    )
    return {
        "assignment": dict(res.assignment),
        "size_bytes": res.size_bytes,
        "float_size_bytes": res.float_size_bytes,
        "avg_bits": res.avg_bits,
        "metric": res.metric,
        "metric_drop": res.metric_drop,
        "float_metric": res.float_metric,
        "predicted_drop": res.predicted_drop,
        "uniform_bits": res.uniform_bits,
        "uniform_metric": res.uniform_metric,
        "method": res.method,
        "budget": avg_bits,
    }


def compute_pareto(model: str, spec: QuantSpec, sweep: pd.DataFrame, progress: Progress | None = None) -> pd.DataFrame:
    """``quantlib.pareto_front``: measured size vs metric of greedy mixes and uniform 8 / 6 / 4 bits."""
    sm = sources.sample(model)
    return pareto_front(
        sm.model,
        sweep,
        spec,
        evaluate=sm.evaluate,
        metric_name=sm.metric_name,
        higher_is_better=sm.higher_is_better,
        uniform_bits=UNIFORM_BITS,
        progress=_pareto_progress(progress),
    )


def compute_drift_sweep(
    model: str, scope: str, layer: str, target: str, spec: QuantSpec, bits: Sequence[int],
    progress: Progress | None = None,
) -> list[float]:
    """The task metric of the model quantized at each width of ``bits`` (the output-drift page's curve).

    ``scope`` is ``"all"`` (every layer) or ``"layer"`` (only ``layer``); the quantized models are the ones the
    page's drift figures use (:func:`ui.compute.explorer.build_quantized`, group sizes adapted per layer).
    """
    sm = sources.sample(model)
    chosen = [i.name for i in sources.layers(model)] if scope == "all" else [layer]
    values = []
    for i, b in enumerate(bits):
        if progress is not None:
            progress(i, len(bits), N_("{bits} bits"), bits=b)
        quantized, _specs = data.build_quantized(model, chosen, target, spec.replace(bits=b))
        values.append(float(sm.evaluate(quantized)[sm.metric_name]))
    return values


def drift_sweep_key(model: str, scope: str, layer: str, target: str, spec: QuantSpec, bits: Sequence[int]) -> str:
    return f"drift-sweep|{model}|{scope}|{layer}|{target}|{','.join(map(str, bits))}|{reductions.spec_key(spec.replace(bits=8))}"


#: The runner key of the worker warm-up (:func:`load_models`).
WARM_KEY = "warm|load-models"


def load_models(names: Sequence[str], progress: Progress | None = None) -> dict[str, Any]:
    """Load sample models in a job worker and time one evaluation of each (the warm-up: a worker's first job
    then starts at once, and cost estimates need no timing in the server)."""
    timings = {}
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), N_("loading {name}"), name=name)
        timings[name] = measure_probe_seconds(name)
    return {"models": list(names), "probe_seconds": timings}


_warmed: set[int] = set()


def warm_workers() -> None:
    """Start the job worker and load every sample model in it, once per runner (a no-op after, and when the
    queue is full: the warm-up is a convenience, never a reason for a page to fail)."""
    runner = jobs.runner()
    if id(runner) in _warmed:
        return
    _warmed.add(id(runner))
    try:
        runner.submit(WARM_KEY, load_models, (sources.model_names(),),
                      label="Loading the sample models in the worker", estimate_s=15.0)
    except jobs.ServerBusy:
        pass


def speed_inputs(model: str) -> tuple[Any, int]:
    """The first :data:`SPEED_BATCH` evaluation examples (a tensor or a tuple of tensors) and their count."""
    x = sources.sample(model).eval_inputs
    if isinstance(x, torch.Tensor):
        return x[:SPEED_BATCH], int(x[:SPEED_BATCH].shape[0])
    sliced = tuple(t[:SPEED_BATCH] for t in x)
    return sliced, int(sliced[0].shape[0])


def _timing(t: Any) -> dict[str, float] | None:
    if t is None:
        return None
    return {"median_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "repeats": t.repeats,
            "warmup": t.warmup}


def _report(rep: Any) -> dict[str, Any]:
    """A SpeedReport as plain values (the page and the cache need nothing else)."""
    return {
        "float": _timing(rep.float_timing),
        "int8": _timing(rep.int8_timing),
        "fake_quant": _timing(rep.fake_quant_timing),
        "speedup": rep.speedup,
        "converted": list(rep.layers_converted),
        "not_converted": list(rep.layers_not_converted),
        "rel_output_error": rep.rel_output_error,
        "output_sqnr_db": rep.output_sqnr_db,
        "threads": rep.threads,
        "engine": rep.engine,
        "float_method": rep.float_method,
        "int8_method": rep.int8_method,
        "fake_quant_method": rep.fake_quant_method,
        "summary": rep.summary(),
    }


def compute_speed(model: str, repeats: int = 10, progress: Progress | None = None) -> dict[str, Any]:
    """Float vs real int8 dynamic vs simulated fake-quant latency of the sample model, on this server now.

    Runs in a job worker (one torch thread, low priority, reported): the figures are this server's while the
    sessions of a class use it.
    """
    sm = sources.sample(model)
    inputs, n = speed_inputs(model)
    rep = compare_float_vs_int8_dynamic(sm.model, inputs, forward=call, warmup=2, repeats=repeats,
                                        include_fake_quant=True)
    return {**_report(rep), "examples": n}


def compute_micro(progress: Progress | None = None) -> dict[str, Any]:
    """The reference: one ``nn.Linear(1024, 1024)`` on a batch of 64, float vs int8 dynamic."""
    return {**_report(linear_micro_benchmark(1024, 1024, batch=64)), "examples": 64}


def speed_estimate(model: str) -> float:
    """Rough seconds of :func:`compute_speed`: 3 variants × 12 calls on the speed batch.

    The speed batch is a share of the evaluation set; one call of one variant took about a quarter of
    :func:`probe_seconds` (an evaluation plus a forward pass of the whole set) times that share on MiniLM
    (int8 is faster than float, and the timed calls run warm).
    """
    x = sources.sample(model).eval_inputs
    total = int(x.shape[0]) if isinstance(x, torch.Tensor) else int(x[0].shape[0])
    share = min(1.0, SPEED_BATCH / max(total, 1))
    return 3 * 12 * probe_seconds(model) / 4 * share + 0.5


# --- storage (cheap: st.cache_data) ------------------------------------------------------------------------------


def _weight_specs(model: str, spec: QuantSpec) -> tuple[dict[str, QuantSpec], list[str]]:
    """Per-layer specs as the output-drift page sizes the model (a group size that fits each layer)."""
    return data.weight_specs(model, [i.name for i in sources.layers(model)], spec)


@st.cache_data(max_entries=64, show_spinner=False)
def size_view(model: str, key: str) -> dict[str, Any]:
    """Storage of every layer's weight at the key's spec, next to float32, and the model totals.

    Per layer: payload (the codes, ``numel · bits / 8``), overhead (one float32 scale, and a zero point for
    the asymmetric scheme, per block) and its float32 size. Parameters that are not a layer weight (biases,
    norms) stay float32 and are summed separately.
    """
    sm = sources.sample(model)
    spec = reductions.spec_from_key(key)
    specs, notes = _weight_specs(model, spec)
    infos = {i.name: i for i in sources.layers(model)}
    rows_q = size_breakdown(sm.model, specs)
    weight_params = {f"{name}.weight" if name else "weight": name for name in infos}
    layers, other_bytes, other_numel = [], 0, 0
    for row in rows_q:
        layer = weight_params.get(row["name"])
        if layer is None:
            other_bytes += row["payload_bytes"]
            other_numel += row["numel"]
            continue
        info: LayerInfo = infos[layer]
        s = specs[layer]
        layers.append(
            {
                "layer": layer,
                "kind": info.kind,
                "numel": info.numel,
                "bits": row["bits"],
                "label": s.label(),
                "payload_bytes": int(row["payload_bytes"]),
                "overhead_bytes": int(row["overhead_bytes"]),
                "float_bytes": int(row["float_bytes"]),
            }
        )
    table = pd.DataFrame(layers)
    payload = int(table["payload_bytes"].sum())
    overhead = int(table["overhead_bytes"].sum())
    total = payload + overhead + other_bytes
    float_total = int(model_size_bytes(sm.model))
    return {
        "layers": table,
        "payload_bytes": payload,
        "overhead_bytes": overhead,
        "other_bytes": int(other_bytes),
        "other_numel": int(other_numel),
        "total_bytes": int(total),
        "float_bytes": float_total,
        "weight_float_bytes": int(table["float_bytes"].sum()),
        "weight_numel": int(table["numel"].sum()),
        "notes": notes,
    }


def granularity_options(spec: QuantSpec) -> list[tuple[str, QuantSpec]]:
    """The rows of the overhead table: per-tensor, per-channel and per-group 32 / 64 / 128 at ``spec``'s width
    and scheme (plus the current group size when it is another one)."""
    sizes = [32, 64, 128]
    if spec.granularity == "group" and spec.group_size not in sizes:
        sizes = sorted([*sizes, spec.group_size])
    # The names are data (cached, shared by every language); the page words them (``group of 32`` / 每组 32 个).
    out = [("tensor", spec.replace(granularity="tensor")), ("channel", spec.replace(granularity="channel"))]
    out += [(f"group of {g}", spec.replace(granularity="group", group_size=g)) for g in sizes]
    return out


def is_current(option: QuantSpec, spec: QuantSpec) -> bool:
    if option.granularity != spec.granularity:
        return False
    return option.granularity != "group" or option.group_size == spec.group_size


@st.cache_data(max_entries=64, show_spinner=False)
def overhead_table(model: str, key: str) -> pd.DataFrame:
    """What one scale per tensor / channel / group costs for the whole model at the key's bits and scheme."""
    sm = sources.sample(model)
    spec = reductions.spec_from_key(key)
    float_total = model_size_bytes(sm.model)
    rows = []
    for name, option in granularity_options(spec):
        view = size_view(model, reductions.spec_key(option))
        n = view["weight_numel"]
        rows.append(
            {
                "one scale per": name,
                "group_size": option.group_size if option.granularity == "group" else 0,
                "current": is_current(option, spec),
                "scales stored": int(sum(_blocks(option, row) for row in view["layers"].itertuples())),
                "overhead_bytes": view["overhead_bytes"],
                "overhead_pct": 100 * view["overhead_bytes"] / max(view["payload_bytes"], 1),
                "bits_per_weight": 8 * (view["payload_bytes"] + view["overhead_bytes"]) / max(n, 1),
                "total_bytes": view["total_bytes"],
                "compression": float_total / max(view["total_bytes"], 1),
                "adapted": len(view["notes"]),
            }
        )
    return pd.DataFrame(rows)


def _blocks(spec: QuantSpec, row: Any) -> int:
    """Scales of one layer (from its overhead bytes: one float32 scale, plus a zero point if asymmetric)."""
    per_block = 4 + (math.ceil(spec.bits / 8) if spec.scheme == "asymmetric" else 0)
    return int(row.overhead_bytes // per_block)
