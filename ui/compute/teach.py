"""Computations behind the two teaching pages (PTQ vs QAT, the formula walkthrough), pre-reduced for charts.

**QAT runs in the job runner.** Training is the one thing in the app that takes seconds of CPU, so it never runs
in a session's script thread (whose GIL 30-40 interactive sessions share): "Train" submits :func:`train_run` to
the process-wide :mod:`ui.jobs` runner, which trains in a worker process at low priority under the string
:attr:`RunSettings.key` = (model, spec key, target, epochs, learning rate, seed). Through the runner:

- **Shared.** Every session asking for the same key joins the same job, so 40 browsers pressing Train cost one
  training, and everyone watching sees the same live curve: the worker hands over each progress report as a
  :class:`Point` (``progress.partial``), which pages read from ``job.partials``.
- **Kept.** The finished run (a frozen :class:`QATRun`: curve points, metrics, per-layer code counts, never a
  model) goes to the runner's bounded results, so a shared link shows it without training.
- **Stoppable.** ``runner.stop(key, owner)`` raises a flag the worker checks before every training step. The job
  then records what it trained as ``"stopped"`` ("stopped at epoch k", evaluated once more if steps were made
  after the last report) and returns it; it is kept too, and "Train again" forgets it before training in full.
  A session moving on to other settings does not stop anything: the run carries on and is kept.

Training itself is deterministic (``quantlib.qat.train_qat`` seeds its shuffles and dropout from ``seed``), so
the same settings give the same curve on any server, in any worker, whoever trains them.

**No words in results.** A run is kept for every session, whatever its language, and is built in a worker (where
``_`` is English): it holds numbers, codes and notes that carry their msgid (``ui.compute.reductions.Note``;
``"formula"`` rather than a phrase), and the pages word them in the reader's language.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import streamlit as st
import torch

from quantlib import QuantSpec, fake_quant, quantize
from quantlib.model import LayerInfo, call, layer_spec, layer_weight, weight_view
from quantlib.qat import QATProgress, prepare_qat, qat_layers, train_qat
from quantlib.walkthrough import ValueTrace, integer_linear, mse_formula, rule_of_thumb_sqnr
from ui import jobs, sources
from ui.compute import explorer, reductions
from ui.i18n import N_

# --- words for the sidebar's codes --------------------------------------------------------------------------

#: The sidebar's option codes as the teaching pages name them in a sentence: English msgids, translated by the
#: page (``translate=_``). The codes themselves stay what links and widgets carry.
WORDS: dict[str, str] = {
    "symmetric": N_("symmetric"),
    "asymmetric": N_("asymmetric"),
    "minmax": N_("minmax"),
    "percentile": N_("percentile"),
    "mse": N_("mse"),
    "entropy": N_("entropy"),
    "nearest": N_("nearest"),
    "truncate": N_("truncate"),
    "stochastic": N_("stochastic"),
    "weights": N_("weights"),
    "activations": N_("activations"),
    "both": N_("weights and activations"),
}
SCHEME_SHORT: dict[str, str] = {"symmetric": N_("sym"), "asymmetric": N_("asym")}
GRANULARITY_WORDS: dict[str, str] = {
    "tensor": N_("per-tensor"),
    "channel": N_("per-channel"),
    "group": N_("per-group({group_size})"),
}


def _english(message: str, /, **values: Any) -> str:
    return message.format(**values) if values else message


def word(code: str, translate: Callable[..., str] = _english) -> str:
    """A sidebar code in words (``translate=_`` for the session's language); unknown codes as they are."""
    return translate(WORDS[code]) if code in WORDS else code


def granularity_words(spec: QuantSpec, translate: Callable[..., str] = _english) -> str:
    """``per-tensor``, ``per-channel``, ``per-group(64)``."""
    return translate(GRANULARITY_WORDS[spec.granularity], group_size=spec.group_size)


def spec_words(spec: QuantSpec, translate: Callable[..., str] = _english) -> str:
    """:meth:`QuantSpec.label` (``int4 asym per-channel``) with its words translated; format names stay.

    >>> spec_words(QuantSpec(bits=4, scheme="asymmetric", granularity="channel"))
    'int4 asym per-channel'
    """
    fmt = f"{spec.format}{spec.bits}" if spec.is_integer_grid else spec.format
    return f"{fmt} {translate(SCHEME_SHORT[spec.scheme])} {granularity_words(spec, translate)}"


def scheme_words(spec: QuantSpec, translate: Callable[..., str] = _english) -> str:
    """``symmetric · per-channel`` (what ``reductions.curve_label`` writes), translated."""
    return f"{word(spec.scheme, translate)} · {granularity_words(spec, translate)}"


def sentences(parts: Iterable[str]) -> str:
    """Sentences one after another: a space between English ones, none after a Chinese full stop.

    >>> sentences(["One.", "Two."]), sentences(["一。", "二。"])
    ('One. Two.', '一。二。')
    """
    return re.sub(r"(?<=[。！？）])\s+", "", " ".join(parts))


# --- PTQ vs QAT ---------------------------------------------------------------------------------------------

#: QAT is offered from 2 to 8 bits: above 8 bits PTQ is already as good as the float model.
QAT_MIN_BITS, QAT_MAX_BITS = 2, 8
SWEEP_BITS: tuple[int, ...] = tuple(range(QAT_MIN_BITS, QAT_MAX_BITS + 1))
DEFAULT_EPOCHS, MAX_EPOCHS = 3, 10
LR_CHOICES: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
DEFAULT_LR = 1e-3
SEED = 0
#: How often a page showing a run in progress redraws it from the job (a fragment on a timer). 40 watchers of
#: one run on a 2-core server cost ~40 fragment runs a second of a few ms each, in the server process; the
#: training itself runs in a worker.
LIVE_SECONDS = 1.0
#: The worker reports its step count (a progress bar tick between curve points) at most this often.
TICK_SECONDS = 0.25
#: Seconds per epoch before this server has finished a run of the model (estimates on buttons), measured on the
#: 2-core server in a worker with one torch thread.
EPOCH_SECONDS_GUESS: dict[str, float] = {"digits-mlp": 0.15, "digits-cnn": 0.5, "recsys": 1.3}
#: Key prefix of QAT runs in the job runner.
KEY_PREFIX = "qat|"


@dataclass(frozen=True)
class TrainPlan:
    """How a model is trained here: batch size, and progress reports per epoch (each one evaluates the model)."""

    batch_size: int
    reports_per_epoch: int


#: Progress reports per epoch: digits make ~20 steps an epoch in ~0.1 s, so a report every 5 steps draws a
#: smooth curve for free; recsys' evaluation (ranking 1000 items for 500 users) costs 0.25 s, so two.
REPORTS_PER_EPOCH: dict[str, int] = {"recsys": 2}


def plan_for(model: str) -> TrainPlan:
    return TrainPlan(sources.sample(model).train_batch_size, REPORTS_PER_EPOCH.get(model, 4))


def can_train(model: str) -> bool:
    """Whether the sample model has a training split and a loss (digits-mlp, digits-cnn, recsys)."""
    return sources.sample(model).can_train


#: Why a sample model without a stated reason has no QAT (an English msgid: the page translates it).
DEFAULT_NO_TRAIN_REASON = N_("it comes without a training split in this app")


def no_train_reason(model: str) -> str:
    """Why ``model`` has no QAT here, in plain English words (a msgid: the page shows it translated)."""
    return sources.sample(model).no_train_reason or DEFAULT_NO_TRAIN_REASON


def clamp_bits(bits: int) -> int:
    return min(max(int(bits), QAT_MIN_BITS), QAT_MAX_BITS)


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a QAT run's result; :attr:`key` names it in the job runner."""

    model: str
    spec_key: str
    target: str
    epochs: int
    lr: float
    seed: int = SEED

    @property
    def spec(self) -> QuantSpec:
        return reductions.spec_from_key(self.spec_key)

    @property
    def key(self) -> str:
        """The job runner's key: ``qat|model|target|epochs|lr|seed|spec JSON`` (``repr`` keeps every digit of lr).

        >>> RunSettings("digits-mlp", '{"bits": 2}', "weights", 3, 0.001).key
        'qat|digits-mlp|weights|3|0.001|0|{"bits": 2}'
        """
        return f"{KEY_PREFIX}{self.model}|{self.target}|{self.epochs}|{self.lr!r}|{self.seed}|{self.spec_key}"

    def with_bits(self, bits: int) -> RunSettings:
        return replace(self, spec_key=reductions.spec_key(self.spec.replace(bits=bits)))


@dataclass(frozen=True)
class Point:
    """One progress report, reduced to numbers (``epoch`` is fractional: step / steps per epoch)."""

    epoch: float
    step: int
    loss: float | None
    train_metric: float | None
    eval_metric: float | None
    seconds: float

    @classmethod
    def of(cls, p: QATProgress) -> Point:
        return cls(p.step / max(p.steps_per_epoch, 1), p.step, p.loss, p.train_metric, p.eval_metric, p.seconds)


@dataclass(frozen=True)
class LayerCodes:
    """How QAT changed one layer's integer codes, compared with PTQ of the float weights (pre-reduced)."""

    total: int  # weights in the layer
    changed: int  # weights whose code differs between PTQ and QAT
    by_one: int  # ... of which by exactly one step

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.total if self.total else 0.0


@dataclass(frozen=True)
class QATRun:
    """One QAT run: what a job returns (``"done"`` or ``"stopped"``), or a live view of one (``"running"``).

    A few kB of plain values (picklable: it travels from the worker process to the server).
    """

    settings: RunSettings
    status: str  # "running" | "done" | "stopped"
    steps_per_epoch: int = 0
    total_steps: int = 0
    batch_size: int = 0
    points: tuple[Point, ...] = ()
    qat_metric: float | None = None
    train_seconds: float = 0.0
    codes: dict[str, LayerCodes] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # English, with their msgid (``Note.text()``) where the runner has one

    @property
    def last(self) -> Point | None:
        return self.points[-1] if self.points else None

    @property
    def epoch_reached(self) -> float:
        return self.last.epoch if self.last else 0.0

    @property
    def fraction(self) -> float:
        return self.last.step / self.total_steps if self.last and self.total_steps else 0.0

    @classmethod
    def live(cls, settings: RunSettings, job: jobs.Job) -> QATRun:
        """The run a job has reported so far: its points, and its step counts from ``progress(step, total)``
        (every epoch has the same number of steps, so ``steps_per_epoch = total / epochs``)."""
        total = int(job.total)
        return cls(
            settings, "running", steps_per_epoch=total // max(settings.epochs, 1), total_steps=total,
            batch_size=plan_for(settings.model).batch_size, points=tuple(job.partials),
        )


def is_done(run: QATRun | None) -> bool:
    return run is not None and run.status == "done"


def keep_run(run: QATRun | None) -> bool:
    """What the runner keeps for everyone: a done or a stopped run (a stop before any step returns nothing)."""
    return run is not None


def epoch_seconds(model: str) -> float:
    """Seconds per epoch of ``model`` on this server: from its newest finished run, else a guess."""
    rates = [(hit.at, hit.value.train_seconds / hit.value.epoch_reached)
             for _, hit in jobs.runner().finished_items(f"{KEY_PREFIX}{model}|")
             if hit.value is not None and hit.value.epoch_reached > 0]
    return max(rates)[1] if rates else EPOCH_SECONDS_GUESS.get(model, 1.0)


def estimate_seconds(settings: RunSettings) -> float:
    """Rough seconds of one run: epochs × seconds per epoch, plus a third for the evaluations and the start."""
    return settings.epochs * epoch_seconds(settings.model) * 1.3


def submit(settings: RunSettings, owner: str) -> jobs.Job:
    """Train ``settings`` in the job runner for ``owner`` (or join the job already training them).

    A stopped run kept under the key is forgotten first: "Train again" trains in full. Raises
    :class:`ui.jobs.ServerBusy` when the runner's queue is full.
    """
    runner = jobs.runner()
    if not is_done(runner.result(settings.key)):
        runner.forget(settings.key)
    spec = settings.spec
    return runner.submit(
        settings.key, train_run, (settings,), label=f"QAT of {settings.model} at {spec.label()}",
        estimate_s=estimate_seconds(settings), owner=owner, keep=keep_run,
    )


@st.cache_data(max_entries=256, show_spinner=False)
def ptq_metric(model: str, target: str, key: str) -> float:
    """The task metric after post-training quantization of every layer with the spec of ``key``.

    The same quantized model as the output-drift page builds (group sizes adapted per layer the same way).
    """
    sm = sources.sample(model)
    names = [i.name for i in sources.layers(model)]
    quantized, _ = explorer.build_quantized(model, names, target, reductions.spec_from_key(key))
    return float(sm.evaluate(quantized)[sm.metric_name])


def float_metric(model: str) -> float:
    sm = sources.sample(model)
    return float(sm.float_metrics[sm.metric_name])


def _weight_specs(settings: RunSettings) -> tuple[dict[str, QuantSpec] | None, QuantSpec | None, list[str]]:
    """Per-layer weight specs (None when only activations are trained quantized), the activation spec, notes."""
    spec = settings.spec
    names = [i.name for i in sources.layers(settings.model)]
    wspecs, notes = (None, []) if settings.target == "activations" else explorer.weight_specs(settings.model, names, spec)
    act = spec if settings.target in ("activations", "both") else None
    return wspecs, act, notes


def _codes_view(w: torch.Tensor, spec: QuantSpec, info: LayerInfo) -> torch.Tensor:
    """Integer codes of one weight as ``quantlib.model`` quantizes it (per-group conv weights as ``(out, -1)``)."""
    spec = layer_spec(spec, info)
    return quantize(weight_view(w.detach(), spec), spec).q


def layer_codes(
    float_model: torch.nn.Module, qat_model: torch.nn.Module, wspecs: dict[str, QuantSpec], infos: Iterable[LayerInfo]
) -> dict[str, LayerCodes]:
    """Per layer: how many weights have a different integer code after QAT than after PTQ (the float weights
    rounded once). Integer grids only (int, pow2): fp8 / nf4 codes are not a range of integers.

    ``qat_model`` is a model from :func:`quantlib.qat.prepare_qat`; its float weights are quantized exactly as
    its forward pass does (scale recomputed from the trained weights).
    """
    wrappers = qat_layers(qat_model)
    out: dict[str, LayerCodes] = {}
    for info in infos:
        spec = wspecs.get(info.name)
        if spec is None or not spec.is_integer_grid or info.name not in wrappers:
            continue
        ptq = _codes_view(layer_weight(float_model, info.name), spec, info).reshape(-1).to(torch.int64)
        qat = _codes_view(wrappers[info.name].layer.weight, spec, info).reshape(-1).to(torch.int64)
        step = (qat - ptq).abs()
        out[info.name] = LayerCodes(int(step.numel()), int((step > 0).sum()), int((step == 1).sum()))
    return out


def train_run(settings: RunSettings, progress: jobs.Progress) -> QATRun | None:
    """The job: QAT of a private copy of the sample model with its :class:`TrainPlan`, in a job worker.

    Every report of ``train_qat`` goes out as ``progress.partial(Point)`` and ``progress(step, total, text)``;
    between reports the step count is sent every :data:`TICK_SECONDS`. Before every training step the stop flag
    is checked (``progress.check()``, a read of shared memory), so a Stop press ends training within one step
    even when reports are seconds apart (recsys with MSE calibration). Then:

    - finished: a ``"done"`` run with its per-layer code counts;
    - stopped after ``k`` steps: a ``"stopped"`` run with everything measured, the model evaluated once more if
      steps were made after the last report, so the curve and the QAT number agree; ``None`` when stopped
      before the first step (nothing trained, nothing to keep);
    - a diverging loss (``ValueError``) or any other error propagates to the page's plain message.
    """
    sm = sources.sample(settings.model)
    plan = plan_for(settings.model)
    wspecs, act, notes = _weight_specs(settings)
    points: list[Point] = []
    steps = 0  # optimizer steps made: a forward is only entered after the previous step's update
    shape = [0, 0]  # steps per epoch, total steps (known from the first report)
    tick = time.monotonic()
    start = time.perf_counter()

    def forward(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
        nonlocal steps, tick
        progress.check()
        now = time.monotonic()
        if shape[1] and now - tick >= TICK_SECONDS:
            tick = now
            progress(steps, shape[1], N_("epoch {epoch} of {epochs}"), epoch=f"{steps / shape[0]:.2f}",
                     epochs=settings.epochs)
        steps += 1
        return call(model, inputs)

    qat_model = None
    try:
        # The runner calls jobs under torch.no_grad(); training needs gradients.
        with torch.enable_grad():
            qat_model = prepare_qat(
                sm.model, wspecs, act, calibration_inputs=sm.calibration_inputs if act is not None else None
            )
            reports = train_qat(
                qat_model, sm.train_inputs, sm.train_targets, sm.loss_fn,
                epochs=settings.epochs, batch_size=plan.batch_size, lr=settings.lr, seed=settings.seed,
                evaluate=sm.evaluate, metric_name=sm.metric_name, reports_per_epoch=plan.reports_per_epoch,
                forward=forward,
            )
            for p in reports:
                shape[:] = [p.steps_per_epoch, p.total_steps]
                point = Point.of(p)
                points.append(point)
                progress.partial(point)
                progress(p.step, p.total_steps, N_("epoch {epoch} of {epochs}"), epoch=f"{point.epoch:.2f}",
                         epochs=settings.epochs)
    except jobs.JobStopped:
        if qat_model is None or steps <= 0 or not shape[0]:
            return None
        if points[-1].step < steps:
            qat_model.eval()
            with torch.no_grad():
                value = float(sm.evaluate(qat_model)[sm.metric_name])
            points.append(Point(steps / shape[0], steps, None, None, value, time.perf_counter() - start))
        return _finished(settings, "stopped", qat_model, wspecs, points, shape, notes)
    return _finished(settings, "done", qat_model, wspecs, points, shape, notes)


def _finished(
    settings: RunSettings, status: str, qat_model: torch.nn.Module, wspecs: dict[str, QuantSpec] | None,
    points: list[Point], shape: list[int], notes: list[str],
) -> QATRun:
    sm = sources.sample(settings.model)
    codes = layer_codes(sm.model, qat_model, wspecs or {}, sources.layers(settings.model))
    last = points[-1]
    return QATRun(
        settings, status, steps_per_epoch=shape[0], total_steps=shape[1],
        batch_size=plan_for(settings.model).batch_size, points=tuple(points), qat_metric=last.eval_metric,
        train_seconds=last.seconds, codes=codes, notes=tuple(notes),
    )


# --- the formula walkthrough ----------------------------------------------------------------------------------

#: The whole-range number line shows at most this many grid ticks (every k-th level beyond that).
MAX_LINE_TICKS = 129
#: The zoomed number line shows this many levels on each side of the value.
ZOOM_LEVELS = 3
#: Terms of the MSE sum written out on the page.
MSE_TERMS = 5
#: mse_formula walks the values in Python; above this the page uses quantlib.metrics.mse (same sum in torch).
MSE_FORMULA_MAX = 1_000_000


def number_line(trace: ValueTrace) -> dict[str, Any]:
    """What the number line of one traced value draws: thinned grid, the levels next to ``x``, the ranges.

    The zoom centres on ``clamp(round(x / s) + z)``, clamped as a float first: far outside a tiny range
    ``x / s`` overflows float32 to ``inf`` (the trace clips it to the last level, and so does the line).
    """
    s, z = trace.scale, trace.zero_point
    n_levels = trace.qmax - trace.qmin + 1
    stride = max(1, math.ceil(n_levels / MAX_LINE_TICKS))
    codes = np.arange(trace.qmin, trace.qmax + 1, stride, dtype=np.int64)
    if codes[-1] != trace.qmax:
        codes = np.append(codes, trace.qmax)
    centre = int(np.clip(np.rint(trace.x_over_s) + z, trace.qmin, trace.qmax))
    near = np.arange(max(trace.qmin, centre - ZOOM_LEVELS), min(trace.qmax, centre + ZOOM_LEVELS) + 1, dtype=np.int64)
    grid = ((codes - z) * s).astype(np.float64)
    near_values = ((near - z) * s).astype(np.float64)
    # Near float32's limits an end level (qmin - z)·s can lie beyond ±3.4e38 (symmetric [-3.4e38, 3.4e38]: qmin·s
    # = -3.43e38): float32 has no such number, so the chart (drawn in float32) leaves it out.
    top = float(np.finfo(np.float32).max)
    near_ok = np.abs(near_values) <= top
    return {
        "grid": grid[np.abs(grid) <= top],
        "stride": stride,
        "levels": n_levels,
        "near_codes": near[near_ok],
        "near_values": near_values[near_ok],
        "grid_lo": max((trace.qmin - z) * s, -top),
        "grid_hi": min((trace.qmax - z) * s, top),
    }


@st.cache_data(max_entries=32, show_spinner=False)
def tiny_linear_paths(bits: int, input_scheme: str) -> dict[str, Any]:
    """``tiny-linear``'s 10 → 1 layer on its 256 evaluation inputs, computed three ways (small arrays only).

    The ranges are calibrated on the whole batch, as an inference engine calibrates them once, not per input.
    """
    sm = sources.sample("tiny-linear")
    layer = sm.model.linear
    x = sm.eval_inputs
    r = integer_linear(layer.weight.detach(), layer.bias.detach(), x, bits=bits, input_scheme=input_scheme)
    c, n = r.correct, r.naive
    return {
        "bits": r.bits,
        "input_scheme": input_scheme,
        "weight": layer.weight.detach().reshape(-1).numpy().astype(np.float64),
        "bias": float(layer.bias.detach()[0]),
        "x": x.numpy().astype(np.float64),
        "float": r.float_output.reshape(-1).numpy().astype(np.float64),
        "correct": c.output.reshape(-1).numpy().astype(np.float64),
        "naive": n.output.reshape(-1).numpy().astype(np.float64),
        "primer": n.primer_output.reshape(-1).numpy().astype(np.float64),
        "s_w": c.s_w,
        "q_w": c.q_w.reshape(-1).numpy(),
        "s_x": c.s_x,
        "z_x": c.z_x,
        "q_x": c.q_x.numpy(),
        "q_b": int(c.q_b[0]),
        "acc": c.acc.reshape(-1).numpy(),
        "correction": int(c.zero_point_correction[0]),
        "acc_total": c.acc_total.reshape(-1).numpy(),
        "s_y": c.s_y,
        "z_y": c.z_y,
        "multiplier": c.multiplier,
        "q_y": c.q_y.reshape(-1).numpy(),
        "fits_int32": c.fits_int32,
        "naive_q_b": int(n.q_b[0]),
        "naive_acc_total": n.acc_total.reshape(-1).numpy(),
        "naive_q_y": n.q_y.reshape(-1).numpy(),
        "naive_clipped": n.outputs_clipped,
        "correct_rms": math.sqrt(c.mse),
        "naive_rms": math.sqrt(n.mse),
        "correct_max": c.max_abs_error,
        "naive_max": n.max_abs_error,
        "explanation": r.explanation,
    }


@sources.model_cache(max_entries=128)
def mse_terms(model: str, layer: str, kind: str, key: str) -> dict[str, Any]:
    """The MSE of one tensor written out: its first terms, N, the sum and the result (never the tensor)."""
    spec = sources.spec_for(model, layer, kind, reductions.spec_from_key(key))
    x = sources.tensor_for(model, layer, kind, spec)
    reductions.check_view_budget(x, spec)  # refused up front, in plain words, when over the budget (quantlib.budget)
    x_hat = fake_quant(x, spec)
    xf = x.detach().reshape(-1).to(torch.float64)
    xh = x_hat.detach().reshape(-1).to(torch.float64)
    n = int(xf.numel())
    if n <= MSE_FORMULA_MAX:
        value, how = mse_formula(xf, xh), "formula"  # quantlib.walkthrough.mse_formula
    else:
        value, how = float((xf - xh).square().sum()) / n, "torch"  # a float64 sum in torch
    rms = float(xf.square().mean().sqrt())
    peak = float(xf.abs().max())
    return {
        "n": n,
        "x": xf[:MSE_TERMS].numpy(),
        "x_hat": xh[:MSE_TERMS].numpy() + 0.0,  # no "-0" on the page
        "mse": value,
        "how": how,
        "sum": value * n,
        "rms": rms,
        "peak": peak,
        "peak_to_rms": peak / rms if rms > 0 else math.inf,
        "spec_label": spec.label(),  # English; the page words the spec of "spec_key" in its language
        "spec_key": reductions.spec_key(spec),
        "shape": tuple(int(d) for d in x.shape),
    }


def rule_lines(bits: np.ndarray, peak_to_rms: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The rule of thumb at each bit width: for a uniform signal (6.02 dB/bit) and for this tensor's peak/rms."""
    uniform = np.array([rule_of_thumb_sqnr(int(b)) for b in bits])
    if not (math.isfinite(peak_to_rms) and peak_to_rms >= 1.0):
        return uniform, None
    return uniform, np.array([rule_of_thumb_sqnr(int(b), peak_to_rms=peak_to_rms) for b in bits])

