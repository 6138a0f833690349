"""🏋️ PTQ vs QAT: round a trained model once (PTQ), or keep training it with the rounding in the loop (QAT).

How a run behaves (the job function is :func:`ui.compute.teach.train_run`, the runner :mod:`ui.jobs`):

- "Train" submits the run to the server's one job runner: it trains in a worker process at low priority, never
  in this session's script thread, so the 30-40 sessions of a class keep their sliders responsive. Runs are kept
  by (model, spec, target, epochs, lr, seed), so any session or shared link with the same settings shows a
  finished run without retraining, and a session opening settings somebody is training right now watches that
  very job (40 browsers pressing Train cost one training).
- While it runs, a fragment redraws the live curve from the points the worker reports (every
  :data:`ui.compute.teach.LIVE_SECONDS`), so the page's own settings stay usable. Only the session that pressed
  Train gets "Stop": the worker stops before its next training step and keeps what it had ("stopped at epoch
  k"), which anyone can then train again in full.
- Moving another widget (or leaving the page) does not stop training: the run carries on in its worker and is
  kept; coming back to its settings shows it, live or finished.
- The 2-to-8-bit sweep submits one job per missing width; they queue in the runner (the page says how many
  computations are ahead), the chart fills in as they finish, and "Stop the sweep" stops this session's queued
  and running widths.

The page's own inputs (``epochs``, ``lr``) are URL parameters like the sidebar's, so a shared link names the run.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st

from ui import controls, jobs, sources, widgets
from ui.compute import reductions
from ui.compute import teach as teach_data
from ui.compute.teach import QATRun, RunSettings
from ui.figures import teach as teach_figures
from ui.views import jobs as job_views

settings = controls.current()
sm = sources.sample(settings.model)
_OWNER_KEY = "_qat_owner"
#: Jobs this session drew (its own and watched ones), by key: their end is reported once on the next full run.
_SEEN_KEY = "_qat_seen"
#: Keys this session submitted from the sweep ("Stop the sweep" stops those).
_SWEEP_KEY = "_qat_sweep_keys"
#: Keys of runs this session trained (its own jobs that ended with a run), for "trained just now".
_TRAINED_KEY = "_qat_trained"
#: A run this session trained reads "trained just now" for this long; after that, like anybody's.
_JUST_NOW_SECONDS = 600.0

widgets.page_intro(
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
    return widgets.fmt(value, 3)


def _explain_no_training() -> None:
    reason = teach_data.no_train_reason(settings.model)
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


def _progress_text(run: QATRun, step: int, who: str) -> str:
    """``Training: epoch 1.25 of 3 · step 25 of 60 · loss 0.41 · accuracy 91.2 %`` (the last report's numbers)."""
    last = run.last
    if not step or not run.total_steps:
        return f"{who}: starting…"
    loss = f" · loss {last.loss:.3g}" if last is not None and last.loss is not None else ""
    metric = f" · {sm.metric_name} {_m(last.eval_metric)}" if last is not None and last.step else ""
    epoch = step / run.steps_per_epoch if run.steps_per_epoch else 0.0
    return f"{who}: epoch {epoch:.2f} of {run.settings.epochs} · step {step} of {run.total_steps}{loss}{metric}"


def _seen() -> dict[str, jobs.Job]:
    return st.session_state.setdefault(_SEEN_KEY, {})


def _live(job: jobs.Job, run_settings: RunSettings, owner: str, float_m: float, ptq_m: float) -> None:
    """A run in progress (anyone's): its live curve, redrawn every second by a fragment; Stop for its owner.

    The fragment reruns on a timer, so this page's own script finishes and every control stays usable while
    the worker trains; when the job ends it reruns the whole page, which then shows the result.
    """
    runner = jobs.runner()
    mine = job.owner == owner
    _seen()[job.key] = job

    @st.fragment(run_every=teach_data.LIVE_SECONDS)
    def live() -> None:
        if job.is_done:
            st.rerun()
        if mine:
            if st.button("⏹ Stop training", key="qat_stop", help="Keeps what was trained so far.") or (
                job.stop_requested
            ):
                runner.stop(job.key, owner)
                st.caption("Stopping after the current training step…")
        else:
            st.caption(
                "Another browser on this server is training exactly these settings: you are watching its run (one "
                "training serves everyone). Change a setting to train something else."
            )
        run = QATRun.live(run_settings, job)
        if job.started is None:
            st.progress(0.0, text=job_views.progress_text(job, jobs.runner().ahead_of(job)))
        else:
            who = "Training" if mine else "Training in another browser"
            st.progress(min(job.done / run.total_steps, 1.0) if run.total_steps else 0.0,
                        text=_progress_text(run, job.done, who))
        title = "Training with quantized weights (live" + (")" if mine else ", another browser)")
        st.plotly_chart(_curves_figure(run, float_m, ptq_m, title), key="qat-live-curves",
                        config={"displaylogo": False})

    live()


def _ended(run_settings: RunSettings) -> jobs.Job | None:
    """The job this session last drew for ``run_settings``, once it has ended (reported once, then forgotten)."""
    job = _seen().get(run_settings.key)
    if job is None or not job.is_done:
        return None
    del _seen()[run_settings.key]
    return job


def _results(run: QATRun, float_m: float, ptq_m: float, spec_label: str, how: str) -> None:
    """Curves and the float / PTQ / QAT comparison of a finished or stopped run."""
    epochs = run.settings.epochs
    if run.status == "stopped":
        last = run.last
        st.warning(
            f"**Stopped at epoch {last.epoch:.2g} of {epochs}** (step {last.step} of {run.total_steps}). The QAT "
            "numbers below are those of the partly trained model; press *Train again* for the full run.",
            icon="⏸️",
        )
    st.plotly_chart(_curves_figure(run, float_m, ptq_m, "Training with quantized weights"), key="qat-curves",
                    config={"displaylogo": False})
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
    st.caption(
        f"QAT {how} in **{run.train_seconds:.1f} s** ({_epochs(run.last.epoch)} × {batches} steps of "
        f"{run.batch_size} examples, Adam, learning rate {run.settings.lr:g}, seed {run.settings.seed}). The "
        "same settings always give the same curve."
        + (f" Group size adapted where it does not divide a layer: {'; '.join(run.notes)}." if run.notes else "")
    )


def _codes(run: QATRun, ptq_m: float) -> None:
    """How many weights QAT moved to another integer code, per layer, and what that means."""
    if not run.codes:
        if settings.target == "activations":
            st.caption("Only activations were trained quantized, so the weights keep their float values.")
        else:
            st.caption(f"{settings.format} has no integer codes to compare; the comparison on the left still holds.")
        return
    names = list(run.codes)
    tokens = [controls.layer_token(n) for n in names]
    codes = list(run.codes.values())
    st.plotly_chart(
        teach_figures.codes_moved(
            tokens, [100 * c.changed_fraction for c in codes], [100 * c.by_one / max(c.total, 1) for c in codes],
            controls.layer_token(settings.layer),
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


# --- the bits sweep ---------------------------------------------------------------------------------------------


def _sweep(run_settings: RunSettings, float_m: float, owner: str, current_bits: int) -> None:
    """QAT at every width from 2 to 8 bits next to PTQ: one job per width, queued in the runner."""
    st.subheader("Where does QAT pay off? 2 to 8 bits")
    spec = run_settings.spec
    base = run_settings if spec.is_integer_grid else RunSettings(
        run_settings.model, reductions.spec_key(spec.replace(format="int")), run_settings.target, run_settings.epochs, run_settings.lr,
        run_settings.seed,
    )
    runs = {b: base.with_bits(b) for b in teach_data.SWEEP_BITS}
    runner = jobs.runner()
    with st.spinner("Quantizing at every bit width (PTQ)…"):
        ptq = [teach_data.ptq_metric(run_settings.model, run_settings.target, r.spec_key) for r in runs.values()]
    sweep_keys: set[str] = st.session_state.setdefault(_SWEEP_KEY, set())

    def in_flight() -> dict[int, jobs.Job]:
        return {b: j for b, r in runs.items() if (j := runner.job(r.key)) is not None}

    box = st.empty()
    flying = in_flight()
    mine = [b for b, j in flying.items() if j.key in sweep_keys and j.owner == owner]
    missing = [b for b, r in runs.items() if not teach_data.is_done(runner.result(r.key)) and b not in flying]
    if mine:
        if box.button("⏹ Stop the sweep", key="qat_sweep_stop", help="Widths already trained are kept."):
            for b in mine:
                runner.stop(runs[b].key, owner)
            sweep_keys.difference_update(runs[b].key for b in mine)
            box.caption("Stopping the sweep: widths already trained are kept.")
    elif missing:
        estimate = sum(teach_data.estimate_seconds(runs[b]) for b in missing)
        label = f"▶️ Train the missing {len(missing)} widths (about {job_views.seconds_text(estimate)})"
        if box.button(label, key="qat_sweep"):
            try:
                for b in missing:
                    sweep_keys.add(teach_data.submit(runs[b], owner).key)
            except jobs.ServerBusy as busy:  # a full queue: the widths submitted so far still run
                box.warning(f"Not every width could be queued: {busy}", icon="⏳")
            else:
                st.rerun()  # the whole page again: the run section above shows its width's job too
    _sweep_chart(runs, ptq, float_m, current_bits if spec.is_integer_grid else None, bool(in_flight()))
    scheme = reductions.curve_label(spec.scheme, spec.granularity, spec.group_size)
    note = f" ({spec.format} is a fixed-width format: the sweep uses integer grids)" if not spec.is_integer_grid else ""
    st.caption(
        f"Same scheme at every width ({scheme}, {spec.calibration} calibration, {run_settings.target}){note}, QAT "
        f"with {_epochs(run_settings.epochs)}, lr {run_settings.lr:g}. The green bars are what QAT buys over PTQ: little "
        "at 8 bits, most at 2-3 bits. Every width is one job on this server's job runner, kept for everyone."
    )


def _sweep_chart(runs: dict[int, RunSettings], ptq: list[float], float_m: float, current: int | None,
                 live: bool) -> None:
    """The sweep's chart and its progress; a fragment redrawing every second while widths are in flight."""
    runner = jobs.runner()

    @st.fragment(run_every=teach_data.LIVE_SECONDS if live else None)
    def chart() -> None:
        results = {b: runner.result(r.key) for b, r in runs.items()}
        qat = [res.qat_metric if teach_data.is_done(res) else None for res in results.values()]
        flying = {b: j for b, r in runs.items() if (j := runner.job(r.key)) is not None}
        if live and not flying:
            st.rerun()  # all in: the whole page again, for its buttons and captions
        st.plotly_chart(
            teach_figures.sweep_figure(list(runs), ptq, qat, float_m, sm.metric_name, current, sm.higher_is_better),
            key="qat-sweep", config={"displaylogo": False},
        )
        done = sum(v is not None for v in qat)
        if flying:
            st.progress(_sweep_fraction(done, flying, len(runs)), text=_sweep_text(done, flying, len(runs)))
        else:
            st.caption(f"{done} of {len(runs)} widths trained on this server so far (kept for everyone).")

    chart()


def _sweep_fraction(done: int, flying: dict[int, jobs.Job], n: int) -> float:
    return min(1.0, (done + sum(j.fraction for j in flying.values() if j.started is not None)) / n)


def _sweep_text(done: int, flying: dict[int, jobs.Job], n: int) -> str:
    """``2 of 7 widths trained · training 4 bits (45 %) · 3 widths queued · Waiting: 1 computation ahead…``."""
    parts = [f"{done} of {n} widths trained"]
    parts += [f"training {b} bits ({100 * j.fraction:.0f} %)" for b, j in flying.items() if j.started is not None]
    queued = [j for j in flying.values() if j.started is None]
    if queued:
        first = min(queued, key=jobs.runner().ahead_of)
        widths = f"{len(queued)} width{'s' if len(queued) != 1 else ''} queued"
        parts.append(f"{widths} · {job_views.progress_text(first, jobs.runner().ahead_of(first))}")
    return " · ".join(parts)


# --- the page ------------------------------------------------------------------------------------------------------


def _page() -> None:
    if not teach_data.can_train(settings.model):
        _explain_no_training()
        return
    bits = settings.effective_bits
    qat_bits = teach_data.clamp_bits(bits)
    spec = settings.spec().replace(bits=qat_bits) if settings.fixed_bits is None else settings.spec()
    if qat_bits != bits:
        st.caption(f"QAT here goes from 2 to 8 bits (above 8, PTQ already matches the float model): using "
                   f"**{qat_bits} bits** instead of the sidebar's {bits}.")
    c_ep, c_lr = st.columns(2)
    with c_ep:
        epochs = int(controls.page_widget(st.slider, "Epochs", "epochs", min_value=1, max_value=teach_data.MAX_EPOCHS,
                                       value=teach_data.DEFAULT_EPOCHS, help="Passes over the training set."))
    with c_lr:
        lr = float(controls.page_widget(st.select_slider, "Learning rate", "lr", options=list(teach_data.LR_CHOICES),
                                     value=teach_data.DEFAULT_LR, format_func=lambda v: f"{v:g}",
                                     help="Adam's step size. Too large and the loss jumps around; too small and QAT "
                                     "barely moves the weights."))
    plan = teach_data.plan_for(settings.model)
    what = {"weights": "weights", "activations": "activations", "both": "weights and activations"}[settings.target]
    st.caption(
        f"{sm.title}: {what} at **{spec.label()}**, {settings.calibration} calibration (sidebar) · training on "
        f"its training split in batches of {plan.batch_size} · evaluated on its evaluation set · seed "
        f"{teach_data.SEED}."
    )
    run_settings = RunSettings(settings.model, reductions.spec_key(spec), settings.target, epochs, lr, teach_data.SEED)
    owner = st.session_state.setdefault(_OWNER_KEY, uuid.uuid4().hex)
    float_m = teach_data.float_metric(settings.model)
    with st.spinner("Quantizing the model (PTQ)…"):
        ptq_m = teach_data.ptq_metric(settings.model, settings.target, run_settings.spec_key)
    with widgets.friendly_errors("train this model with quantization in the loop"):
        _run_section(run_settings, owner, float_m, ptq_m, spec.label(), epochs)
    with widgets.friendly_errors("train the bits sweep"):
        _sweep(run_settings, float_m, owner, qat_bits)


def _run_section(run_settings: RunSettings, owner: str, float_m: float, ptq_m: float, spec_label: str,
                 epochs: int) -> None:
    """The run of these settings: live if a job trains them, else the kept result, else a Train button."""
    runner = jobs.runner()
    job = runner.job(run_settings.key)
    if job is not None:
        _live(job, run_settings, owner, float_m, ptq_m)
        return
    ended = _ended(run_settings)
    # A stop before the job started is no error: nothing was trained, and the Train button is back.
    error = None if ended is None or isinstance(ended.error, jobs.JobStopped) else ended.error
    fresh = ended is not None and ended.owner == owner and ended.error is None
    trained: set[str] = st.session_state.setdefault(_TRAINED_KEY, set())
    if fresh and ended.result is not None:
        trained.add(run_settings.key)
    run: QATRun | None = runner.result(run_settings.key)
    if run is None or run.status == "stopped":
        label = "▶️ Train" if run is None else f"▶️ Train again (all {epochs} epochs)"
        box = st.empty()
        if box.button(label, type="primary", key="qat_train",
                      help=f"About {job_views.seconds_text(teach_data.estimate_seconds(run_settings))} of training in a "
                      "background worker; the run is kept for everyone."):
            box.empty()
            job = teach_data.submit(run_settings, owner)
            _seen()[job.key] = job
            if job.is_done:  # over already (a failure at once, or somebody else's identical run just finished)
                st.rerun()
            _live(job, run_settings, owner, float_m, ptq_m)
            return
    if error is not None:
        raise error  # the job's failure, in friendly_errors' plain words (a diverging loss: "try a smaller lr")
    if run is None:
        if fresh and ended.result is None:
            st.caption("Stopped before the first training step: nothing was trained, so nothing was kept.")
        c = st.columns(2, wrap=False)
        c[0].metric("Float model", _m(float_m))
        c[1].metric(f"PTQ at {spec_label}", _m(ptq_m), delta=_delta(ptq_m - float_m, "vs float"),
                    delta_color="normal" if sm.higher_is_better else "inverse")
        st.caption("Press **Train** to see what QAT makes of the same bit width.")
        return
    kept = runner.finished(run_settings.key)
    just_now = run_settings.key in trained and kept is not None and time.time() - kept.at < _JUST_NOW_SECONDS
    how = "trained just now" if just_now else "trained earlier on this server and kept for everyone"
    _results(run, float_m, ptq_m, spec_label, how)


with widgets.friendly_errors("train this model with quantization in the loop"):
    _page()
