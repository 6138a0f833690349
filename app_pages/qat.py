"""🏋️ PTQ vs QAT: round a trained model once (PTQ), or keep training it with the rounding in the loop (QAT).

How a run behaves (the store and its rules are in :mod:`ui.teach_data`):

- "Train" trains in this session's script thread and draws the live curves at every progress report (four per
  epoch on the digits models, two on recsys). Results go to a process-wide store keyed by (model, spec, target,
  epochs, lr, seed), so any session or shared link with the same settings shows them without retraining, and a
  session that opens settings someone else is training right now watches that run (a fragment redrawing every
  1.5 s, so its own controls stay usable) instead of starting a second one.
- "Stop" is an ordinary button: its click makes Streamlit rerun the script, which interrupts the training loop
  at its next ``st.*`` call - a progress tick before every training step, at most ~0.3 s apart. The loop
  records what it had ("stopped at epoch k") before the rerun, so the rerun shows the partial result. Moving
  any other widget mid-run does the same.

The page's own inputs (``epochs``, ``lr``) are URL parameters like the sidebar's, so a shared link names the run.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st

from ui import components, data, state, teach_data, teach_figures
from ui.teach_data import QATRun, RunSettings

controls = state.current()
sm = data.sample(controls.model)
_OWNER_KEY = "_qat_owner"
#: Seconds per epoch before this server has measured one (the page's estimate for a bits sweep).
_EPOCH_SECONDS_GUESS = {"digits-mlp": 0.15, "digits-cnn": 0.5, "recsys": 1.3}

components.page_intro(
    "PTQ vs QAT",
    "🏋️",
    "**PTQ** (post-training quantization) rounds a trained model's weights once and hopes it copes. **QAT** "
    "(quantization-aware training) keeps training it for a few epochs *with the rounding in the loop*: the "
    "forward pass sees the rounded weights, the backward pass pretends rounding is not there (the "
    "straight-through estimator), and the optimizer nudges the float weights until the rounded ones work. "
    "Then the three are compared: the float model, PTQ and QAT at the same bit width.",
    r"\begin{gathered}\hat{w} = \big(\mathrm{clamp}(\mathrm{round}(w/s) + z) - z\big)\, s\\ "
    r"\tfrac{\partial L}{\partial w} \approx \tfrac{\partial L}{\partial \hat{w}}\ \ \text{(straight-through)}"
    r"\\ w \leftarrow w - \eta\, \tfrac{\partial L}{\partial \hat{w}}\end{gathered}",
    "with **digits-mlp**, set the sidebar to **2 bits**, granularity **channel**, and press **Train**: PTQ keeps "
    "about 30 % accuracy, QAT wins back over 90 % in a second or two.",
)


def _m(value: float | None) -> str:
    """A task metric as people read it: accuracy in percent, anything else as a plain number."""
    if value is None:
        return "–"
    if sm.metric_name == "accuracy":
        return f"{100 * value:.1f} %"
    return components.fmt(value, 3)


def _explain_no_training() -> None:
    reason = teach_data.NO_TRAIN_REASONS.get(controls.model, "it comes without a training split in this app")
    st.info(
        f"**QAT needs training data.** It keeps training the model with the rounding in the loop, so it needs "
        f"the examples and the loss the model learned from. **{sm.title}** has none here: {reason}.\n\n"
        "Choose **digits-mlp** in the sidebar's *Model* menu (it trains in about a second) - or digits-cnn or "
        "recsys.",
        icon="ℹ️",
    )


def _curves_figure(run: QATRun, float_m: float, ptq_m: float, title: str):  # noqa: ANN202 - a plotly Figure
    pts = run.points
    return teach_figures.qat_curves(
        [p.epoch for p in pts], [p.loss for p in pts], [p.eval_metric for p in pts], [p.train_metric for p in pts],
        float_m, ptq_m, sm.metric_name, run.settings.epochs, sm.higher_is_better, title=title,
    )


def _progress_text(run: QATRun, who: str, step: int | None = None) -> str:
    last = run.last
    step = last.step if step is None and last is not None else step
    if last is None or not step:
        return f"{who}: starting…"
    loss = f" · loss {last.loss:.3g}" if last.loss is not None and last.step else ""
    metric = f" · {sm.metric_name} {_m(last.eval_metric)}" if last.step else ""
    epoch = step / run.steps_per_epoch if run.steps_per_epoch else 0.0
    return (f"{who}: epoch {epoch:.2f} of {run.settings.epochs} · step {step} of {run.total_steps}{loss}{metric}")


class LiveView:
    """The page's live area - the button slot, a progress bar and the curves - drawn by the training loop."""

    def __init__(self, float_m: float, ptq_m: float) -> None:
        self.button_box = st.empty()
        self.status_box = st.empty()
        self.curve_box = st.empty()
        self.float_m, self.ptq_m = float_m, ptq_m
        self.draws = 0
        self.stop_shown = False
        self.last_tick = 0.0

    def curves(self, run: QATRun, title: str) -> None:
        self.draws += 1  # a new key per redraw: one element per key and run
        self.curve_box.plotly_chart(
            _curves_figure(run, self.float_m, self.ptq_m, title), key=f"qat-curves-{self.draws}",
            config={"displaylogo": False},
        )

    def _show_stop(self) -> None:
        if not self.stop_shown:
            self.button_box.button("⏹ Stop training", key="qat_stop", help="Keeps what was trained so far.")
            self.stop_shown = True

    def on_report(self, run: QATRun) -> None:
        """Called by the training loop after every report: new curve point, progress bar."""
        self._show_stop()
        self.status_box.progress(run.fraction, text=_progress_text(run, "Training"))
        self.curves(run, "Training with quantized weights (live)")
        self.last_tick = time.monotonic()

    def on_step(self, run: QATRun, step: int) -> None:
        """Called before every training step: a progress tick every ~0.3 s. Each tick is an ``st.*`` call, so
        a Stop click interrupts training within that time even when reports are seconds apart."""
        now = time.monotonic()
        if now - self.last_tick < 0.3 or not run.total_steps:
            return
        self.last_tick = now
        self._show_stop()
        self.status_box.progress(min(step / run.total_steps, 1.0), text=_progress_text(run, "Training", step))


def _watch(settings: RunSettings, float_m: float, ptq_m: float) -> None:
    """Another session is training these very settings: follow its run instead of starting a second one.

    A fragment that reruns on a timer, so this page's own script finishes and every control stays usable while
    watching; when the run ends it reruns the whole page, which then shows the result.
    """

    @st.fragment(run_every=teach_data.WATCH_SECONDS)
    def watcher() -> None:
        run = teach_data.store().get(settings)
        if run is None or run.status != "running" or run.is_stale():
            st.rerun()
        st.caption(
            "Another browser on this server is training exactly these settings: you are watching its run (one "
            "training serves everyone). Change a setting to train something else."
        )
        st.progress(run.fraction, text=_progress_text(run, "Training in another browser"))
        st.plotly_chart(
            _curves_figure(run, float_m, ptq_m, "Training with quantized weights (live, another browser)"),
            key="qat-watch-curves", config={"displaylogo": False},
        )

    watcher()


def _results(run: QATRun, float_m: float, ptq_m: float, live: LiveView, spec_label: str, fresh: bool) -> None:
    """Curves and the float / PTQ / QAT comparison of a finished or stopped run."""
    live.curves(run, "Training with quantized weights")
    epochs = run.settings.epochs
    if run.status == "stopped":
        last = run.last
        live.status_box.warning(
            f"**Stopped at epoch {last.epoch:.2g} of {epochs}** (step {last.step} of {run.total_steps}). The QAT "
            "numbers below are those of the partly trained model; press *Train again* for the full run.",
            icon="⏸️",
        )
    else:
        live.status_box.empty()
    qat_m = run.qat_metric
    st.subheader(f"Float vs PTQ vs QAT at {spec_label}")
    c = st.columns(3, wrap=False)
    c[0].metric("Float model", _m(float_m), help="The trained model, unquantized.")
    c[1].metric("PTQ", _m(ptq_m), delta=_delta(ptq_m - float_m, "vs float"),
                delta_color="normal" if sm.higher_is_better else "inverse",
                help="The float weights rounded once, no training.")
    c[2].metric("QAT" + (" (stopped early)" if run.status == "stopped" else ""), _m(qat_m),
                delta=_delta(qat_m - ptq_m, "vs PTQ") if qat_m is not None else None,
                delta_color="normal" if sm.higher_is_better else "inverse",
                help="Trained with the rounding in the loop, then rounded the same way as PTQ.")
    left, right = st.columns([2, 3], gap="medium")
    with left:
        values = [float_m, ptq_m] + ([qat_m] if qat_m is not None else [])
        st.plotly_chart(
            teach_figures.comparison_bars(values, ["float", "PTQ", "QAT"][: len(values)], [_m(v) for v in values],
                                          sm.metric_name, f"{sm.metric_name} on the evaluation set"),
            key="qat-bars",
            config={"displaylogo": False},
        )
    with right:
        _codes(run, ptq_m)
    batches = run.steps_per_epoch
    how = "trained just now" if fresh else "trained earlier on this server and kept for everyone"
    st.caption(
        f"QAT {how} in **{run.train_seconds:.1f} s** ({_epochs(run.last.epoch)} × {batches} steps of "
        f"{run.batch_size} examples, Adam, learning rate {run.settings.lr:g}, seed {run.settings.seed}). The "
        "same settings always give the same curve."
        + (f" Group size adapted where it does not divide a layer: {'; '.join(run.notes)}." if run.notes else "")
    )


def _codes(run: QATRun, ptq_m: float) -> None:
    """How many weights QAT moved to another integer code, per layer, and what that means."""
    if not run.codes:
        if controls.target == "activations":
            st.caption("Only activations were trained quantized, so the weights keep their float values.")
        else:
            st.caption(f"{controls.format} has no integer codes to compare; the comparison on the left still holds.")
        return
    names = list(run.codes)
    tokens = [state.layer_token(n) for n in names]
    codes = list(run.codes.values())
    st.plotly_chart(
        teach_figures.codes_moved(
            tokens, [100 * c.changed_fraction for c in codes], [100 * c.by_one / max(c.total, 1) for c in codes],
            state.layer_token(controls.layer),
        ),
        key="qat-codes",
        config={"displaylogo": False},
    )
    total = sum(c.total for c in codes)
    changed = sum(c.changed for c in codes)
    by_one = sum(c.by_one for c in codes)
    gain = ((run.qat_metric or 0.0) - ptq_m) * (1 if sm.higher_is_better else -1)
    how = " - mostly by one step, across a rounding boundary" if changed and by_one > changed / 2 else ""
    text = (f"QAT left {100 * (1 - changed / max(total, 1)):.0f} % of the weights on the same integer code as PTQ "
            f"and moved {100 * changed / max(total, 1):.1f} %{how}. ")
    if gain > 0.02 * max(abs(ptq_m), 1e-9):
        text += (f"Those few nudges, chosen by the loss, are worth {_amount(gain)} over PTQ: PTQ rounds each weight "
                 "on its own, QAT rounds them so that the *network* still works.")
    else:
        text += ("Here that buys little: PTQ already keeps most of the float model's quality, or the grid is too "
                 "coarse for these few epochs. Try fewer bits, or per-channel scales.")
    st.caption(text)


def _amount(value: float) -> str:
    if sm.metric_name == "accuracy":
        return f"{100 * value:.1f} points of accuracy"
    return f"{value:.3g} of {sm.metric_name}"


def _epochs(n: float) -> str:
    return "1 epoch" if n == 1 else f"{n:.2g} epochs"


def _delta(value: float, what: str) -> str:
    if sm.metric_name == "accuracy":
        return f"{100 * value:+.1f} {what}"  # percentage points; short enough for a phone
    return f"{value:+.3g} {what}"


def _sweep(settings: RunSettings, float_m: float, owner: str, current_bits: int) -> None:
    st.subheader("Where does QAT pay off? 2 to 8 bits")
    spec = settings.spec
    base = settings if spec.is_integer_grid else RunSettings(
        settings.model, data.spec_key(spec.replace(format="int")), settings.target, settings.epochs, settings.lr,
        settings.seed,
    )
    runs = {b: base.with_bits(b) for b in teach_data.SWEEP_BITS}
    st_store = teach_data.store()

    def points() -> tuple[list[float], list[float | None], int]:
        ptq = [teach_data.ptq_metric(settings.model, settings.target, r.spec_key) for r in runs.values()]
        qat = []
        for r in runs.values():
            run = st_store.get(r)
            qat.append(run.qat_metric if run is not None and run.status == "done" else None)
        return ptq, qat, sum(v is not None for v in qat)

    with st.spinner("Quantizing at every bit width (PTQ)…"):
        ptq, qat, done = points()
    chart = st.empty()
    label = f"{_epochs(settings.epochs)}, lr {settings.lr:g}"

    def draw(ptq: list[float], qat: list[float | None], n: int) -> None:
        chart.plotly_chart(
            teach_figures.sweep_figure(list(teach_data.SWEEP_BITS), ptq, qat, float_m, sm.metric_name,
                                       current_bits if spec.is_integer_grid else None, sm.higher_is_better),
            key=f"qat-sweep-{n}",
            config={"displaylogo": False},
        )

    draw(ptq, qat, 0)
    scheme = data.curve_label(spec.scheme, spec.granularity, spec.group_size)
    note = f" ({spec.format} is a fixed-width format: the sweep uses integer grids)" if not spec.is_integer_grid else ""
    caption = st.empty()

    def describe(done: int) -> None:
        caption.caption(
            f"Same scheme at every width ({scheme}, {spec.calibration} calibration, {settings.target}){note}, QAT "
            f"with {label}. The green bars are what QAT buys over PTQ: little at 8 bits, most at 2-3 bits. "
            f"{done} of {len(runs)} widths trained on this server so far (kept for everyone)."
        )

    describe(done)
    if done == len(runs):
        return
    missing = [b for b, v in zip(runs, qat, strict=True) if v is None]
    finished = [st_store.get(r) for r in runs.values()]
    per_epoch = [r.train_seconds / r.last.epoch for r in finished if r is not None and r.status == "done" and r.last]
    epoch_s = per_epoch[0] if per_epoch else _EPOCH_SECONDS_GUESS.get(settings.model, 1.0)
    estimate = len(missing) * settings.epochs * epoch_s * 1.3  # + evaluations
    box = st.empty()
    if not box.button(f"▶️ Train the missing {len(missing)} widths (about {max(estimate, 1):.0f} s)", key="qat_sweep"):
        return
    box.button("⏹ Stop the sweep", key="qat_sweep_stop", help="Widths already trained are kept.")
    bar = st.progress(0.0, text="Sweeping…")
    tick = [0.0]
    for i, b in enumerate(missing):
        text = f"Training {b} bits ({i + 1} of {len(missing)})"

        def report(run: QATRun, step: int | None = None, text: str = text, i: int = i) -> None:
            # Also called before every step (throttled): each call is a point where Stop can interrupt.
            if step is not None and time.monotonic() - tick[0] < 0.3:
                return
            tick[0] = time.monotonic()
            done_steps = run.last.step if step is None and run.last else (step or 0)
            frac = done_steps / run.total_steps if run.total_steps else 0.0
            bar.progress(min((i + frac) / len(missing), 1.0), text=f"{text} · {100 * frac:.0f} %")

        teach_data.obtain(runs[b], owner, report, report, report)
        ptq, qat, done = points()
        draw(ptq, qat, i + 1)
        describe(done)
    bar.empty()
    box.empty()


def _page() -> None:
    if not teach_data.can_train(controls.model):
        _explain_no_training()
        return
    bits = controls.effective_bits
    qat_bits = teach_data.clamp_bits(bits)
    spec = controls.spec().replace(bits=qat_bits) if controls.fixed_bits is None else controls.spec()
    if qat_bits != bits:
        st.caption(f"QAT here goes from 2 to 8 bits (above 8, PTQ already matches the float model): using "
                   f"**{qat_bits} bits** instead of the sidebar's {bits}.")
    c_ep, c_lr = st.columns(2)
    with c_ep:
        epochs = int(state.page_widget(st.slider, "Epochs", "epochs", min_value=1, max_value=teach_data.MAX_EPOCHS,
                                       value=teach_data.DEFAULT_EPOCHS, help="Passes over the training set."))
    with c_lr:
        lr = float(state.page_widget(st.select_slider, "Learning rate", "lr", options=list(teach_data.LR_CHOICES),
                                     value=teach_data.DEFAULT_LR, format_func=lambda v: f"{v:g}",
                                     help="Adam's step size. Too large and the loss jumps around; too small and QAT "
                                     "barely moves the weights."))
    plan = teach_data.plan_for(controls.model)
    what = {"weights": "weights", "activations": "activations", "both": "weights and activations"}[controls.target]
    st.caption(
        f"{sm.title}: {what} at **{spec.label()}**, {controls.calibration} calibration (sidebar) · training on "
        f"its training split in batches of {plan.batch_size} · evaluated on its evaluation set · seed "
        f"{teach_data.SEED}."
    )
    settings = RunSettings(controls.model, data.spec_key(spec), controls.target, epochs, lr, teach_data.SEED)
    owner = st.session_state.setdefault(_OWNER_KEY, uuid.uuid4().hex)
    float_m = teach_data.float_metric(controls.model)
    with st.spinner("Quantizing the model (PTQ)…"):
        ptq_m = teach_data.ptq_metric(controls.model, controls.target, settings.spec_key)

    st_store = teach_data.store()
    run = st_store.get(settings)
    fresh = False
    if run is not None and run.status == "running" and not run.is_stale():
        _watch(settings, float_m, ptq_m)
        _sweep(settings, float_m, owner, qat_bits)
        return
    live = LiveView(float_m, ptq_m)
    label = "▶️ Train" if run is None or run.status != "stopped" else f"▶️ Train again (all {epochs} epochs)"
    if (run is None or run.status != "done") and live.button_box.button(label, type="primary", key="qat_train"):
        run, mine = st_store.claim(settings, owner, teach_data.plan_for(controls.model))
        if mine:
            run, fresh = teach_data.drive(run, live.on_report, live.on_step), True
            live.button_box.empty()
        elif run.status == "running":  # someone pressed Train for the same settings a moment earlier
            live.button_box.empty()
            _watch(settings, float_m, ptq_m)
            _sweep(settings, float_m, owner, qat_bits)
            return
    if run is not None and run.status == "running":
        run = None  # abandoned by its session (stale) and not retrained yet: as if nothing was there
    if run is None:
        c = st.columns(2, wrap=False)
        c[0].metric("Float model", _m(float_m))
        c[1].metric(f"PTQ at {spec.label()}", _m(ptq_m),
                    delta=_delta(ptq_m - float_m, "vs float"),
                    delta_color="normal" if sm.higher_is_better else "inverse")
        st.caption("Press **Train** to see what QAT makes of the same bit width.")
    else:
        _results(run, float_m, ptq_m, live, spec.label(), fresh)
    _sweep(settings, float_m, owner, qat_bits)


with components.friendly_errors("train this model with quantization in the loop"):
    _page()
