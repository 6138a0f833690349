"""Computations behind the two teaching pages (PTQ vs QAT, the formula walkthrough), pre-reduced for charts.

**The QAT results store.** Training is the one thing in the app that takes seconds, so its results are kept in
one process-wide store (``st.cache_resource``: a dict and a lock, bounded) keyed by :class:`RunSettings` =
(model, spec key, target, epochs, learning rate, seed). Every browser session reads the same store, so a shared
link shows a finished run at once, and a run *in progress* is visible to everyone: the session that pressed
"Train" owns it and trains in its own script thread; any other session asking for the same settings watches
its live curve instead of starting a second copy (40 browsers pressing Train together cost one training).

A run is a frozen :class:`QATRun` value; the store swaps in a new value at every report, so a reader never sees
a half-written run and needs no lock of its own. Its ``status`` is ``"running"``, ``"done"`` or ``"stopped"``:

- Streamlit stops a running script by raising a ``BaseException`` (rerun / stop) at the script's next ``st.*``
  call. A click on "Stop" (or any other widget) is such a rerun. :func:`drive` catches it, records the run as
  ``"stopped"`` with everything measured up to the last report ("stopped at epoch k"), and lets it propagate.
- A session that vanishes without unwinding (a killed thread) leaves a ``"running"`` run that nobody updates:
  after :data:`STALE_SECONDS` without a report it counts as abandoned and the next "Train" takes it over.

Training itself is deterministic (``quantlib.qat.train_qat`` seeds its shuffles and dropout from ``seed``), so
the same settings give the same curve on any server, whoever trains them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import streamlit as st
import torch

from quantlib import QuantSpec, fake_quant, quantize
from quantlib.model import LayerInfo, call, layer_spec, layer_weight
from quantlib.qat import QATProgress, prepare_qat, qat_layers, train_qat
from quantlib.walkthrough import ValueTrace, integer_linear, mse_formula, rule_of_thumb_sqnr

from . import data

# --- PTQ vs QAT ---------------------------------------------------------------------------------------------

#: QAT is offered from 2 to 8 bits: above 8 bits PTQ is already as good as the float model.
QAT_MIN_BITS, QAT_MAX_BITS = 2, 8
SWEEP_BITS: tuple[int, ...] = tuple(range(QAT_MIN_BITS, QAT_MAX_BITS + 1))
DEFAULT_EPOCHS, MAX_EPOCHS = 3, 10
LR_CHOICES: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
DEFAULT_LR = 1e-3
SEED = 0
#: Finished runs kept (each is a few kB: curve points and per-layer code counts, never a model).
STORE_MAX_RUNS = 128
#: A "running" run without a report for this long is abandoned (its session died without unwinding).
STALE_SECONDS = 60.0
#: The training loop marks its run alive at least this often (between reports too).
HEARTBEAT_SECONDS = 5.0
#: How often a session waiting for someone else's run looks at it again (a bits sweep waiting on a width).
POLL_SECONDS = 0.4
#: How often a page watching someone else's run redraws it. 40 watchers of one run on a 2-core server cost
#: ~27 fragment runs a second of a few ms each: cheap next to the training they watch.
WATCH_SECONDS = 1.5


@dataclass(frozen=True)
class TrainPlan:
    """How a model is trained: batch size, and progress reports per epoch (each one evaluates the model)."""

    batch_size: int
    reports_per_epoch: int


#: Digits: 20 steps of 64 per epoch, ~0.1 s; a report every 5 steps makes a smooth curve for free.
#: Recsys: 63k pairs; batches of 256 make an epoch ~0.8 s (at 64 it took 9 s for a similar gain), and its
#: evaluation (ranking 1000 items for 500 users) costs 0.25 s, so two reports per epoch.
TRAIN_PLANS: dict[str, TrainPlan] = {"recsys": TrainPlan(256, 2)}
DEFAULT_PLAN = TrainPlan(64, 4)

#: Why a sample model has no QAT here, in plain words (models with a train split are not listed).
NO_TRAIN_REASONS: dict[str, str] = {
    "tiny-linear": "it is a single layer of fixed random numbers with no task behind it: its \"metric\" is how far "
    "the quantized layer drifts from its own float output, so there is nothing to learn towards",
    "minilm": "the app ships this sentence encoder without a training set, and fine-tuning 22 million "
    "parameters on a small CPU would take far longer than a workshop minute",
}


def plan_for(model: str) -> TrainPlan:
    return TRAIN_PLANS.get(model, DEFAULT_PLAN)


def can_train(model: str) -> bool:
    """Whether the sample model has a training split and a loss (digits-mlp, digits-cnn, recsys)."""
    sm = data.sample(model)
    return sm.train_inputs is not None and sm.train_targets is not None and sm.loss_fn is not None


def clamp_bits(bits: int) -> int:
    return min(max(int(bits), QAT_MIN_BITS), QAT_MAX_BITS)


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a QAT run's result: the store's key."""

    model: str
    spec_key: str
    target: str
    epochs: int
    lr: float
    seed: int = SEED

    @property
    def spec(self) -> QuantSpec:
        return data.spec_from_key(self.spec_key)

    def with_bits(self, bits: int) -> RunSettings:
        return replace(self, spec_key=data.spec_key(self.spec.replace(bits=bits)))


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
    """One QAT run as the store holds it (immutable: the store replaces it at every report)."""

    settings: RunSettings
    status: str  # "running" | "done" | "stopped"
    owner: str
    updated: float
    steps_per_epoch: int = 0
    total_steps: int = 0
    batch_size: int = 0
    points: tuple[Point, ...] = ()
    qat_metric: float | None = None
    train_seconds: float = 0.0
    codes: dict[str, LayerCodes] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def last(self) -> Point | None:
        return self.points[-1] if self.points else None

    @property
    def epoch_reached(self) -> float:
        return self.last.epoch if self.last else 0.0

    @property
    def fraction(self) -> float:
        return self.last.step / self.total_steps if self.last and self.total_steps else 0.0

    def is_stale(self, now: float | None = None) -> bool:
        return self.status == "running" and (now or time.time()) - self.updated > STALE_SECONDS


class QATStore:
    """Runs by settings, shared by every session: an LRU dict behind a lock, at most ``max_runs`` long.

    Running runs are never evicted (their owner is still writing to them).
    """

    def __init__(self, max_runs: int = STORE_MAX_RUNS) -> None:
        self._runs: OrderedDict[RunSettings, QATRun] = OrderedDict()
        self._lock = threading.Lock()
        self.max_runs = max_runs

    def get(self, settings: RunSettings) -> QATRun | None:
        with self._lock:
            run = self._runs.get(settings)
            if run is not None:
                self._runs.move_to_end(settings)
            return run

    def __len__(self) -> int:
        return len(self._runs)

    def claim(self, settings: RunSettings, owner: str, plan: TrainPlan) -> tuple[QATRun, bool]:
        """``(run, True)``: a new run for ``owner`` to train; ``(run, False)``: a finished run or somebody
        else's live one (watch it). A stopped or abandoned run is replaced by a new one."""
        now = time.time()
        with self._lock:
            run = self._runs.get(settings)
            if run is not None and (run.status == "done" or (run.status == "running" and not run.is_stale(now))):
                return run, False
            new = QATRun(settings, "running", owner, now, batch_size=plan.batch_size)
            self._runs[settings] = new
            self._runs.move_to_end(settings)
            self._evict()
            return new, True

    def _evict(self) -> None:
        while len(self._runs) > self.max_runs:
            victim = next((k for k, r in self._runs.items() if r.status != "running"), None)
            if victim is None:
                return
            del self._runs[victim]

    def update(self, settings: RunSettings, owner: str, **changes: Any) -> QATRun | None:
        """Replace the owner's run with a changed copy (None if somebody took it over meanwhile)."""
        with self._lock:
            run = self._runs.get(settings)
            if run is None or run.owner != owner:
                return None
            run = replace(run, updated=time.time(), **changes)
            self._runs[settings] = run
            return run

    def add_point(
        self, settings: RunSettings, owner: str, point: Point, steps_per_epoch: int, total_steps: int
    ) -> QATRun | None:
        """Append one progress point to the owner's run (None if somebody took it over meanwhile)."""
        with self._lock:
            run = self._runs.get(settings)
            if run is None or run.owner != owner:
                return None
            run = replace(
                run, updated=time.time(), points=(*run.points, point), steps_per_epoch=steps_per_epoch,
                total_steps=total_steps,
            )
            self._runs[settings] = run
            return run

    def discard(self, settings: RunSettings, owner: str) -> None:
        with self._lock:
            run = self._runs.get(settings)
            if run is not None and run.owner == owner:
                del self._runs[settings]


@st.cache_resource(show_spinner=False)
def store() -> QATStore:
    """The process-wide QAT store (one per server, shared by every session)."""
    return QATStore()


@st.cache_data(max_entries=256, show_spinner=False)
def ptq_metric(model: str, target: str, key: str) -> float:
    """The task metric after post-training quantization of every layer with the spec of ``key``.

    The same quantized model as the output-drift page builds (group sizes adapted per layer the same way).
    """
    sm = data.sample(model)
    names = [i.name for i in data.layers(model)]
    quantized, _ = data.build_quantized(model, names, target, data.spec_from_key(key))
    return float(sm.evaluate(quantized)[sm.metric_name])


def float_metric(model: str) -> float:
    sm = data.sample(model)
    return float(sm.float_metrics[sm.metric_name])


def _weight_specs(settings: RunSettings) -> tuple[dict[str, QuantSpec] | None, QuantSpec | None, list[str]]:
    """Per-layer weight specs (None when only activations are trained quantized), the activation spec, notes."""
    spec = settings.spec
    names = [i.name for i in data.layers(settings.model)]
    wspecs, notes = (None, []) if settings.target == "activations" else data.weight_specs(settings.model, names, spec)
    act = spec if settings.target in ("activations", "both") else None
    return wspecs, act, notes


def _codes_view(w: torch.Tensor, spec: QuantSpec, info: LayerInfo) -> torch.Tensor:
    """Integer codes of one weight as ``quantlib.model`` quantizes it (per-group conv weights as ``(out, -1)``)."""
    spec = layer_spec(spec, info)
    if spec.granularity == "group" and w.dim() > 2:
        w = w.reshape(w.shape[0], -1)
    return quantize(w.detach(), spec).q


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


def drive(
    run: QATRun, on_report: Callable[[QATRun], None], on_step: Callable[[QATRun, int], None] | None = None
) -> QATRun:
    """Train the run its owner just claimed, calling ``on_report`` with the updated run at every report and
    ``on_step(run, step)`` before every optimizer step.

    Both callbacks draw, and their ``st.*`` calls are where Streamlit may interrupt the script: ``on_step`` keeps
    a Stop click responsive even when reports are seconds apart (recsys with MSE calibration). Whatever ends the
    loop early - a Stop click, another widget, a closed tab - the run is kept as ``"stopped"``: if steps were
    made after the last report, the model is evaluated once more so the curve and the QAT number agree. An error
    (a diverging loss) removes the run and propagates to the page's friendly message.
    """
    settings, owner = run.settings, run.owner
    st_store = store()
    sm = data.sample(settings.model)
    plan = plan_for(settings.model)
    wspecs, act, notes = _weight_specs(settings)
    run = st_store.update(settings, owner, notes=tuple(notes)) or run
    steps = 0
    start = time.perf_counter()
    beat = time.time()

    def forward(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
        nonlocal steps, beat
        if on_step is not None:
            on_step(run, steps)
        if time.time() - beat > HEARTBEAT_SECONDS:  # alive, even when reports are far apart
            beat = time.time()
            st_store.update(settings, owner)
        steps += 1
        return call(model, inputs)

    qat_model = None
    try:
        qat_model = prepare_qat(
            sm.model, wspecs, act, calibration_inputs=sm.calibration_inputs if act is not None else None
        )
        progress = train_qat(
            qat_model, sm.train_inputs, sm.train_targets, sm.loss_fn,
            epochs=settings.epochs, batch_size=plan.batch_size, lr=settings.lr, seed=settings.seed,
            evaluate=sm.evaluate, metric_name=sm.metric_name, reports_per_epoch=plan.reports_per_epoch,
            forward=forward,
        )
        for p in progress:
            run = st_store.add_point(settings, owner, Point.of(p), p.steps_per_epoch, p.total_steps) or run
            on_report(run)
    except Exception:
        st_store.discard(settings, owner)
        raise
    except BaseException:
        # Streamlit's rerun / stop: keep what was trained, as "stopped".
        _stop(run, qat_model, wspecs or {}, steps, time.perf_counter() - start)
        raise
    codes = layer_codes(sm.model, qat_model, wspecs or {}, data.layers(settings.model))
    last = run.last
    return st_store.update(
        settings, owner, status="done", qat_metric=last.eval_metric, train_seconds=last.seconds, codes=codes,
    ) or run


def _stop(run: QATRun, qat_model: torch.nn.Module | None, wspecs: dict[str, QuantSpec], steps: int,
          seconds: float) -> None:
    """Record an interrupted run as stopped (or drop it when not a single step was trained)."""
    settings, owner = run.settings, run.owner
    st_store = store()
    # ``on_step`` runs before a step's forward is counted, so every counted step also made its optimizer step.
    done_steps = steps
    if qat_model is None or done_steps <= 0 or not run.steps_per_epoch:
        st_store.discard(settings, owner)
        return
    sm = data.sample(settings.model)
    last = run.last
    if last is None or last.step < done_steps:
        qat_model.eval()
        with torch.no_grad():
            value = float(sm.evaluate(qat_model)[sm.metric_name])
        last = Point(done_steps / run.steps_per_epoch, done_steps, None, None, value, seconds)
        run = st_store.add_point(settings, owner, last, run.steps_per_epoch, run.total_steps) or run
    codes = layer_codes(sm.model, qat_model, wspecs, data.layers(settings.model))
    st_store.update(settings, owner, status="stopped", qat_metric=last.eval_metric, train_seconds=last.seconds,
                    codes=codes)


def obtain(
    settings: RunSettings,
    owner: str,
    on_report: Callable[[QATRun], None],
    on_wait: Callable[[QATRun], None],
    on_step: Callable[[QATRun, int], None] | None = None,
) -> QATRun:
    """The finished run of ``settings``: from the store, trained here, or waited for while someone else trains it.

    ``on_wait`` is called every :data:`POLL_SECONDS` while watching another session's run (its ``st.*`` calls
    keep this script interruptible).
    """
    st_store = store()
    plan = plan_for(settings.model)
    while True:
        run, mine = st_store.claim(settings, owner, plan)
        if mine:
            return drive(run, on_report, on_step)
        if run.status == "done":
            return run
        on_wait(run)
        time.sleep(POLL_SECONDS)


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
    sm = data.sample("tiny-linear")
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


@data.model_cache(max_entries=128)
def mse_terms(model: str, layer: str, kind: str, key: str) -> dict[str, Any]:
    """The MSE of one tensor written out: its first terms, N, the sum and the result (never the tensor)."""
    spec = data.spec_for(model, layer, kind, data.spec_from_key(key))
    x = data.tensor_for(model, layer, kind, spec)
    x_hat = fake_quant(x, spec)
    xf = x.detach().reshape(-1).to(torch.float64)
    xh = x_hat.detach().reshape(-1).to(torch.float64)
    n = int(xf.numel())
    if n <= MSE_FORMULA_MAX:
        value, how = mse_formula(xf, xh), "quantlib.walkthrough.mse_formula"
    else:
        value, how = float((xf - xh).square().sum()) / n, "a float64 sum in torch"
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
        "spec_label": spec.label(),
        "shape": tuple(int(d) for d in x.shape),
    }


def rule_lines(bits: np.ndarray, peak_to_rms: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The rule of thumb at each bit width: for a uniform signal (6.02 dB/bit) and for this tensor's peak/rms."""
    uniform = np.array([rule_of_thumb_sqnr(int(b)) for b in bits])
    if not (math.isfinite(peak_to_rms) and peak_to_rms >= 1.0):
        return uniform, None
    return uniform, np.array([rule_of_thumb_sqnr(int(b), peak_to_rms=peak_to_rms) for b in bits])

