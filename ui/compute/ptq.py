"""Computations of the "Algorithms" page: one PTQ method on one sample model (a job), and the activation
outliers of one layer (cached). No drawing.

Keys are plain strings (model, method, the page's options, :func:`ui.compute.reductions.spec_key`), results are small
tables and floats - never models or tensors - so a finished job can be shared with everyone and a shared
link shows it straight away.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

from quantlib import QuantSpec, fake_quant
from quantlib.model import activation_spec
from quantlib.ptq import apply, smoothquant
from quantlib.ptq.layers import capture_inputs, is_target, target_layers, weight_matrix
from ui import sources
from ui.compute import analysis as analysis_data
from ui.compute import reductions
from ui.i18n import N_, _

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Algorithm:
    """One checkbox of the page: what ``quantlib.ptq.apply`` runs and how the page explains it.

    ``label`` and ``idea`` are English msgids (``N_``): the page shows ``_(a.label)`` / ``_(a.idea)``.
    """

    key: str  # the URL token
    method: str  # quantlib.ptq method
    label: str
    idea: str
    formula: str
    paper: str


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm(
        "gptq", "gptq", "GPTQ",
        N_(
            "round one column at a time and push its rounding error onto the columns not yet rounded, through the "
            "inverse Hessian of the layer's error"
        ),
        r"\delta_i=\frac{w_i-Q(w_i)}{[H^{-1}]_{ii}},\ \ W_{:,j>i}\mathrel{-}=\delta_i\,[H^{-1}]_{i,j>i},"
        r"\ \ H=2XX^\top+\lambda I",
        "Frantar et al. 2022",
    ),
    Algorithm(
        "awq", "awq", "AWQ",
        N_(
            "scale up the input channels that carry large activations before rounding (their weights lose "
            "relatively less), undo the scale on the input; the strength α is searched on the calibration inputs"
        ),
        r"\hat W=Q\big(W\,\mathrm{diag}(s)\big)\,\mathrm{diag}(s)^{-1},\ \ s=\overline{|x|}^{\,\alpha},"
        r"\ \ \alpha^*=\arg\min_\alpha\lVert WX-\hat W X\rVert^2",
        "Lin et al. 2023",
    ),
    Algorithm(
        "smoothquant", "smoothquant", "SmoothQuant",
        N_(
            "quantizes weights **and** input activations: first move activation outliers into the weights with a "
            "per-channel scale, so a per-tensor activation grid fits"
        ),
        r"s_j=\frac{\max|X_j|^{\alpha}}{\max|W_{:,j}|^{1-\alpha}},\ \ "
        r"Y=Q_a\!\big(X\,\mathrm{diag}(s)^{-1}\big)\,Q_w\!\big(\mathrm{diag}(s)W^\top\big)",
        "Xiao et al. 2022",
    ),
    Algorithm(
        "adaround", "adaround", "AdaRound",
        N_(
            "learn for every weight whether to round down or up, so the layer's output on the calibration inputs "
            "is reconstructed (Adam on a rectified sigmoid, pushed to 0 / 1)"
        ),
        r"\min_V\lVert WX-\tilde W X\rVert^2+\lambda\sum\big(1-|2h(V)-1|^\beta\big),\ \ "
        r"\tilde W=s\,\big(\lfloor W/s\rfloor+h(V)\big)",
        "Nagel et al. 2020",
    ),
    Algorithm(
        "bias", "bias_correction", N_("Bias correction"),
        N_(
            "rounding errors shift each output channel's mean; measure the shift on the calibration inputs and "
            "take it out of the bias"
        ),
        r"b'_c=b_c-\mathbb{E}\big[\hat y_c-y_c\big]",
        "Nagel et al. 2019",
    ),
    Algorithm(
        "cle", "cle", "CLE",
        N_(
            "ReLU commutes with a positive scale, so move range between consecutive layers until their channel "
            "ranges match (data-free), then round"
        ),
        r"s_i=\sqrt{r^{(1)}_i / r^{(2)}_i},\ \ W_1'=\mathrm{diag}(s)^{-1}W_1,\ \ W_2'=W_2\,\mathrm{diag}(s)",
        "Nagel et al. 2019",
    ),
    Algorithm(
        "cle_bias", "cle+bias_correction", N_("CLE + bias correction"),
        N_(
            "both steps of data-free quantization: equalize, round, then correct the biases"
        ),
        r"\text{CLE}\ \rightarrow\ Q\ \rightarrow\ b'=b-\mathbb{E}[\hat y-y]",
        "Nagel et al. 2019",
    ),
)
BY_KEY = {a.key: a for a in ALGORITHMS}
DEFAULT_ALGOS = ("gptq", "awq")

#: The page's settings of each method (the library defaults are the papers'; see the notes on the page).
GPTQ_OPTIONS = {"damp": 0.1, "act_order": True}
ADAROUND_ITERS = 500
SQ_ALPHAS = (0.25, 0.5, 0.75, 0.85)
SQ_DEFAULT_ALPHA = 0.5
#: AdaRound beyond this many estimated seconds is not offered (MiniLM: hours on 2 cores).
MAX_JOB_SECONDS = 300.0

RTN_W = "rtn"
RTN_WA = "rtn_wa"
#: Closed-form methods: a few seconds even on MiniLM (one calibration pass and one evaluation), so they start
#: by themselves; GPTQ, AWQ and AdaRound start at once only when their estimate is short.
QUICK_RUNS = frozenset({RTN_W, RTN_WA, "smoothquant", "bias", "cle", "cle_bias"})


def parse_algos(raw: str | None) -> tuple[list[str], list[str]]:
    """``"gptq,awq"`` → ``(["gptq", "awq"], [])``: the known keys in the link's order (each once), and the
    unknown tokens.

    >>> parse_algos("awq, GPTQ,magic,,awq")
    (['awq', 'gptq'], ['magic'])
    >>> parse_algos("")
    ([], [])
    """
    tokens = [t.strip().lower() for t in (raw or "").split(",") if t.strip()]
    known = list(dict.fromkeys(t for t in tokens if t in BY_KEY))
    unknown = list(dict.fromkeys(t for t in tokens if t not in BY_KEY))
    return known, unknown


def options_for(method: str, alpha: float) -> dict[str, Any]:
    """The options the page passes to ``quantlib.ptq.apply`` for ``method``."""
    if method == "gptq":
        return dict(GPTQ_OPTIONS)
    if method == "adaround":
        return {"iters": ADAROUND_ITERS, "seed": 0}
    if method == "smoothquant":
        return {"alpha": float(alpha)}
    return {}


def result_key(model: str, run: str, spec: QuantSpec, alpha: float) -> str:
    """The job key of one run: ``run`` is an algorithm key, ``rtn`` or ``rtn_wa`` (RTN with activations)."""
    extra = f"a={alpha:g}" if run == "smoothquant" else ""
    return f"ptq|{model}|{run}|{extra}|{reductions.spec_key(spec)}"


def compute_run(model: str, run: str, spec: QuantSpec, alpha: float, progress: Progress | None = None) -> dict:
    """Run one method on the sample model (a private copy) and evaluate it: the job function.

    Returns ``{"report": DataFrame(layer, rel_error, seconds, ...), "metrics": {...}, "seconds": s}``.
    """
    sm = sources.sample(model)
    if run == RTN_W:
        method, options = "rtn", {}
    elif run == RTN_WA:
        method, options = "rtn", {"act_spec": spec}
    else:
        method = BY_KEY[run].method
        options = options_for(method, alpha)
    # The job runner calls jobs under torch.no_grad(); AdaRound learns its rounding with gradients.
    with torch.enable_grad() if method == "adaround" else contextlib.nullcontext():
        result = apply(sm.model, method, spec, sm.calibration_inputs, progress=_worded(progress), **options)
    metrics = sm.evaluate(result.model)
    return {"report": result.report, "metrics": metrics, "seconds": result.seconds}


_ITERATION = re.compile(r"^(?P<layer>.*): iteration (?P<done>\d+)/(?P<total>\d+)$")
#: quantlib.ptq's progress messages, as msgids the job runner translates for each waiting session.
ITERATION_NOTE = N_("{layer}: iteration {done}/{total}")
DONE_NOTE = N_("done")


def _worded(progress: Progress | None) -> Progress | None:
    """``progress`` fed with msgids instead of quantlib's English (``fc1: iteration 3/500``, ``done``); a layer
    name passes as it is."""
    if progress is None:
        return None

    def report(done: int, total: int, message: str = "") -> None:
        found = _ITERATION.match(message)
        if found:
            try:
                progress(done, total, ITERATION_NOTE, **found.groupdict())  # type: ignore[call-arg]
            except TypeError:  # a progress callable that takes no values: the English message as it came
                progress(done, total, message)
        elif message == "done":
            progress(done, total, DONE_NOTE)
        else:
            progress(done, total, message)

    return report


# --- cost estimates -------------------------------------------------------------------------------------------

#: Seconds per unit of work, measured on the 2-core reference machine (one torch thread).
_GPTQ_PER_FLOP, _GPTQ_PER_COLUMN = 1.2e-9, 3e-4
_AWQ_PER_FLOP = 8e-11
_ADAROUND_PER_FLOP, _ADAROUND_PER_STEP = 6e-10, 3e-4


def _shapes(model: str) -> list[tuple[int, int, int]]:
    """``(out, k, rows)`` of every target layer: its weight matrix and its calibration input rows."""
    return _layer_shapes(model)


@st.cache_data(max_entries=16, show_spinner=False)
def _layer_shapes(model: str) -> list[tuple[int, int, int]]:
    sm = sources.sample(model)
    names = target_layers(sm.model)
    xs = capture_inputs(sm.model, names, sm.calibration_inputs)
    return [(*weight_matrix(sm.model.get_submodule(n)).shape, xs[n].shape[0]) for n in names]


def estimate_seconds(model: str, run: str) -> float:
    """Rough seconds of one run: an evaluation plus the method's own work from the layer shapes."""
    base = 1.5 * analysis_data.probe_seconds(model)
    shapes = _shapes(model)
    if run in (RTN_W, RTN_WA, "bias", "cle", "cle_bias", "smoothquant"):
        return base + 0.05 * len(shapes)
    if run == "gptq":
        return base + sum(_GPTQ_PER_FLOP * o * k * k + _GPTQ_PER_COLUMN * k for o, k, _ in shapes)
    if run == "awq":
        return base + sum(_AWQ_PER_FLOP * 20 * o * k * k for o, k, _ in shapes)
    return base + ADAROUND_ITERS * sum(
        _ADAROUND_PER_FLOP * 3 * min(r, 1024) * o * k + _ADAROUND_PER_STEP for o, k, r in shapes
    )


# --- activation outliers ----------------------------------------------------------------------------------------


def outlier_layer(model: str, layer: str) -> str | None:
    """The sidebar's layer if the algorithms rewrite it (Linear / Conv), else None."""
    sm = sources.sample(model)
    try:
        return layer if is_target(sm.model.get_submodule(layer)) else None
    except AttributeError:
        return None


@st.cache_resource(max_entries=8, show_spinner=False)  # the page shows a spinner in its own language
def _layer_input(model: str, layer: str) -> torch.Tensor:
    """The layer's input rows on the calibration inputs (a private copy of the model runs them; read only:
    shared by every session). MiniLM's widest: 544 × 1536 float32, 3.3 MB."""
    sm = sources.sample(model)
    return capture_inputs(sm.model, [layer], sm.calibration_inputs)[layer]


@st.cache_data(max_entries=64, show_spinner=False)
def activation_outliers(model: str, layer: str, alpha: float, spec_key: str) -> dict[str, Any]:
    """Per-channel max|x| of ``layer``'s input on the calibration inputs, before and after SmoothQuant's
    migration at ``alpha``, and what it does to a per-tensor activation grid of the spec.

    Returns channel maxima (float32 lists), the smoothing scales, the grid step before / after, how many grid
    levels the median channel spans before / after, and the activations' quantization SQNR before / after.
    """
    sm = sources.sample(model)
    module = sm.model.get_submodule(layer)
    x = _layer_input(model, layer)
    w2 = weight_matrix(module)
    channels = module.in_features if isinstance(module, torch.nn.Linear) else module.in_channels
    kp = w2.shape[1] // channels
    before = smoothquant.input_channel_max(x, kp)
    s = smoothquant.smoothing_scales(before, smoothquant.weight_input_max(w2, kp), alpha)
    after = before / s
    xs = x / s.repeat_interleave(kp)
    aspec = activation_spec(reductions.spec_from_key(spec_key))
    step_levels = aspec.qmax - aspec.qmin

    def grid(t: torch.Tensor, m: torch.Tensor) -> tuple[float, float, float]:
        span = float(t.max() - min(0.0, float(t.min()))) if t.numel() else 0.0
        step = span / step_levels if span > 0 else 0.0
        median_levels = float(m.median()) / step if step > 0 else 0.0
        t_hat = fake_quant(t, aspec)
        noise = float((t_hat - t).double().square().sum())
        signal = float(t.double().square().sum())
        sqnr = 10 * math.log10(signal / noise) if noise > 0 and signal > 0 else math.inf
        return step, median_levels, sqnr

    step_b, levels_b, sqnr_b = grid(x, before)
    step_a, levels_a, sqnr_a = grid(xs, after)
    order = np.argsort(-before.numpy(), kind="stable")
    return {
        "before": before.tolist(),
        "after": after.tolist(),
        "scales": s.tolist(),
        "top": [int(i) for i in order[:5]],
        "ratio_before": float(before.max() / before.median().clamp(min=1e-12)),
        "ratio_after": float(after.max() / after.median().clamp(min=1e-12)),
        "step_before": step_b,
        "step_after": step_a,
        "levels_before": levels_b,
        "levels_after": levels_a,
        "sqnr_before": sqnr_b,
        "sqnr_after": sqnr_a,
        "levels": step_levels + 1,
        "rows": int(x.shape[0]),
    }


def summary_table(results: dict[str, dict], labels: dict[str, str], metric: str, higher_is_better: bool) -> pd.DataFrame:
    """One row per finished run: task metric, its change vs RTN, mean and worst layer error, run time."""
    rtn = results.get(RTN_W, {}).get("metrics", {}).get(metric)
    rtn_wa = results.get(RTN_WA, {}).get("metrics", {}).get(metric, rtn)
    rows = []
    for run, res in results.items():
        rep = res["report"]
        value = res["metrics"][metric]
        base = rtn_wa if run in (RTN_WA, "smoothquant") else rtn  # W+A methods against the W+A baseline
        rows.append(
            {
                "method": labels[run],
                metric: value,
                "vs RTN": (value - base) if base is not None else 0.0,
                "mean layer error": float(rep["rel_error"].mean()),
                "worst layer error": float(rep["rel_error"].max()),
                "worst layer": str(rep.loc[rep["rel_error"].idxmax(), "layer"]),
                "seconds": float(res["seconds"]),
            }
        )
    return pd.DataFrame(rows)


def target_layers_of(model: str) -> list[str]:
    """The layers the algorithms rewrite in a sample model."""
    return target_layers(sources.sample(model).model)


def layer_table(results: dict[str, dict], labels: dict[str, str]) -> pd.DataFrame:
    """Long table for the CSV download: method, layer, rel_error, seconds."""
    frames = []
    for run, res in results.items():
        rep = res["report"][["layer", "rel_error", "seconds"]].copy()
        rep.insert(0, "method", labels[run])
        frames.append(rep)
    return pd.concat(frames, ignore_index=True)


#: What the page's settings of a method are, when they differ from the paper's defaults, and why (msgids).
_NOTES = {
    "gptq": N_(
        "Here with act-order and 10 % damping: the calibration set is small (MiniLM: 544 tokens for layers with "
        "1536 inputs, so H is rank-deficient), and the authors' 1 % damping fits those few inputs too closely."
    ),
    "awq": N_(
        "The scale is folded into the stored weights here (same outputs); the authors' clipping search is not "
        "included."
    ),
    "smoothquant": N_("Compared with RTN W+A: the same weight and activation grids without the migration."),
    "adaround": N_("{iters} iterations per layer (the paper: 10-20k), from the float model's inputs."),
    "cle": N_("Needs layers joined by ReLU: transformers (GELU, LayerNorm) and the recommender have none."),
    "cle_bias": N_("Needs layers joined by ReLU for the first step."),
}


def page_note(key: str) -> str:
    """The note on the page's settings of ``key``, in the session's language ("" when there is none)."""
    note = _NOTES.get(key)
    return _(note, iters=ADAROUND_ITERS) if note else ""


#: The ``ValueError`` messages of ``quantlib.ptq`` a run on this page can meet (they reach the page in English
#: from a worker process), each with the page's msgid for it: named groups become the msgid's placeholders.
_KNOWN_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"cross-layer equalization needs two Linear / Conv layers joined only by ReLU"),
        N_(
            "cross-layer equalization needs two Linear / Conv layers joined only by ReLU (or max-pool); this "
            "model has none (GELU, LayerNorm and concatenations are not scale-equivariant)"
        ),
    ),
    (
        re.compile(r"the damped Hessian is not positive definite \(damping (?P<damp>[^)]*)\)"),
        N_("the damped Hessian is not positive definite (damping {damp}); try a larger damping"),
    ),
    (
        re.compile(r"AdaRound learns up / down on an integer grid; (?P<format>\S+) has none"),
        N_("AdaRound learns up / down on an integer grid; {format} has none: use format int"),
    ),
    (
        re.compile(r"AdaRound diverged"),
        N_("AdaRound diverged (non-finite weights); try a smaller learning rate"),
    ),
    (
        re.compile(r"layer (?P<layer>'.*'): group size (?P<size>\d+) does not divide its rows of (?P<rows>\d+)"),
        N_(
            "layer {layer}: group size {size} does not divide its rows of {rows} values; pick a group size that "
            "divides every layer's rows, or per-channel"
        ),
    ),
    (
        re.compile(r"the model has no Linear or Conv layer to quantize"),
        N_("the model has no Linear or Conv layer to quantize"),
    ),
    (
        re.compile(r"layer (?P<layer>'.*') did not run on the calibration inputs"),
        N_("layer {layer} did not run on the calibration inputs"),
    ),
)


def known_error(message: str) -> tuple[str, dict[str, str]] | None:
    """``(msgid, values)`` for an English ``quantlib.ptq`` error message the page knows, else None.

    >>> known_error("the damped Hessian is not positive definite (damping 0.1); try a larger damping")[1]
    {'damp': '0.1'}
    >>> known_error("something else") is None
    True
    """
    for pattern, msgid in _KNOWN_ERRORS:
        found = pattern.search(message)
        if found:
            return msgid, found.groupdict()
    return None


@dataclass(frozen=True)
class TryThis:
    """A "Try this" box: settings (a link) and the figures they give, measured - tests/test_ptq_try_this.py
    recomputes every ``claims`` entry with :func:`compute_run` and checks it to the stated two decimals.

    ``title`` and ``text`` are English msgids (``N_``); ``text`` names each figure ``{run_alpha}`` (``{rtn_05}``,
    ``{smoothquant_075}``), filled in at display by :meth:`summary`, in the session's language.
    """

    title: str
    params: tuple[tuple[str, str], ...]
    claims: tuple[tuple[str, float, float], ...]  # (run, alpha, task metric rounded to 2 decimals)
    metric: str
    text: str

    def link(self) -> str:
        from urllib.parse import urlencode

        return "algorithms?" + urlencode(dict(self.params))

    def figures(self) -> dict[str, str]:
        """The measured figures by placeholder name: ``{"rtn_05": "0.90", ...}``."""
        return {f"{run}_{str(a).replace('.', '')}": f"{v:.2f}" for run, a, v in self.claims}

    def summary(self) -> str:
        """The box's sentence with its figures, in the session's language."""
        return _(self.text, **self.figures())

    def heading(self) -> str:
        """The box's title in the session's language."""
        return _(self.title)

    def spec(self) -> QuantSpec:
        p = dict(self.params)
        return QuantSpec(bits=int(p["bits"]), granularity=p.get("granularity", "tensor"))

    def model(self) -> str:
        return dict(self.params)["model"]


TRY_THIS: tuple[TryThis, ...] = (
    TryThis(
        N_("MiniLM, 4-bit weights"),
        (("model", "minilm"), ("bits", "4"), ("granularity", "channel"), ("algos", "gptq,awq")),
        (("rtn", 0.5, 0.90), ("gptq", 0.5, 0.95), ("awq", 0.5, 0.91)),
        "spearman",
        N_(
            "MiniLM at 4 bits per-channel: RTN keeps a Spearman of {rtn_05}, AWQ {awq_05}, GPTQ {gptq_05} - GPTQ "
            "wins back half of what rounding lost."
        ),
    ),
    TryThis(
        N_("MiniLM, W8A8"),
        (("model", "minilm"), ("bits", "8"), ("granularity", "channel"), ("algos", "smoothquant"),
         ("sq_alpha", "0.75")),
        (("rtn_wa", 0.75, 0.98), ("smoothquant", 0.5, 0.95), ("smoothquant", 0.75, 1.00)),
        "spearman",
        N_(
            "MiniLM with 8-bit weights **and** activations: RTN W+A gives {rtn_wa_075}; SmoothQuant at the "
            "paper's α = 0.5 gives {smoothquant_05} (worse!), at α = 0.75 {smoothquant_075}. Move α and watch the "
            "outliers chart."
        ),
    ),
    TryThis(
        N_("digits-cnn, 3-bit per-tensor"),
        (("model", "digits-cnn"), ("bits", "3"), ("granularity", "tensor"), ("algos", "adaround,cle_bias"),
         ("layer", "conv2")),
        (("rtn", 0.5, 0.49), ("adaround", 0.5, 0.99), ("cle_bias", 0.5, 0.52)),
        "accuracy",
        N_(
            "digits-cnn at 3 bits, one scale per tensor: RTN's accuracy falls to {rtn_05}; CLE + bias correction "
            "gets {cle_bias_05}; AdaRound's learned rounding {adaround_05}."
        ),
    ),
)
