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

Everything the worker and the runner hand over is numbers and codes (a run, its points, its group-size notes),
kept for sessions in any language: every word about them is written here, at display, with ``_``.
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
from ui.i18n import N_, _, ngettext
from ui.text import code_span
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
#: The task metrics of the sample models as the page names them (the metric's key stays the code).
METRIC_LABELS: dict[str, str] = {
    "accuracy": N_("accuracy"),
    "recall@10": N_("recall@10"),
    "spearman": N_("Spearman correlation"),
    "mse": N_("MSE"),
}

widgets.page_intro(
    _("PTQ vs QAT"),
    "🏋️",
    _(
        "**PTQ** (post-training quantization) rounds a trained model's weights once and hopes it copes. **QAT** "
        "(quantization-aware training) keeps training it for a few epochs *with the rounding in the loop*: the "
        "forward pass sees the rounded weights, the backward pass pretends rounding is not there (the "
        "straight-through estimator), and the optimizer nudges the float weights until the rounded ones work. "
        "Then the three are compared: the float model, PTQ and QAT at the same bit width."
    ),
    r"\begin{gathered}\hat{w} = \big(\mathrm{clamp}(\mathrm{round}(w/s) + z) - z\big)\, s\\ "
    r"\tfrac{\partial L}{\partial w} \approx \tfrac{\partial L}{\partial \hat{w}}\ \ \text{("
    # i18n: a word inside the formula (LaTeX \text): the straight-through estimator's name.
    + _("straight-through")
    + r")}\\ w \leftarrow w - \eta\, \tfrac{\partial L}{\partial \hat{w}}\end{gathered}",
    _(
        "with **digits-mlp**, set the sidebar to **2 bits**, granularity **channel**, and press **Train**: PTQ "
        "keeps about 30 % accuracy, QAT wins back over 90 % in a second or two."
    ),
)


def _metric() -> str:
    """The model's task metric by name, in the reader's language (``accuracy``, ``recall@10``)."""
    label = METRIC_LABELS.get(sm.metric_name)
    return _(label) if label else sm.metric_name


def _m(value: float | None) -> str:
    """A task metric as people read it: accuracy in percent, anything else as a plain number."""
    if value is None:
        return "–"
    if sm.metric_name == "accuracy":
        return f"{100 * value:.1f} %"
    return widgets.fmt(value, 3)


def _explain_no_training() -> None:
    # The reason is an English msgid of the sample model (or of ui.compute.teach): translated here.
    reason = _(teach_data.no_train_reason(settings.model))
    st.info(
        _(
            "**QAT needs training data.** It keeps training the model with the rounding in the loop, so it needs "
            "the examples and the loss the model learned from. **{model}** has none here: {reason}.\n\n"
            "Choose **digits-mlp** in the sidebar's *Model* menu (it trains in about a second) - or digits-cnn or "
            "recsys.",
            model=code_span(settings.model), reason=reason,
        ),
        icon="ℹ️",
    )


def _curves_figure(run: QATRun, float_m: float, ptq_m: float, title: str):  # noqa: ANN202 - a plotly Figure
    pts = run.points
    return teach_figures.qat_curves(
        [p.epoch for p in pts], [p.loss for p in pts], [p.eval_metric for p in pts], [p.train_metric for p in pts],
        float_m, ptq_m, _metric(), run.settings.epochs, sm.higher_is_better, title=title,
    )


def _progress_text(run: QATRun, step: int, mine: bool) -> str:
    """``Training: epoch 1.25 of 3 · step 25 of 60 · loss 0.41 · accuracy 91.2 %`` (the last report's numbers)."""
    last = run.last
    if not step or not run.total_steps:
        return _("Training: starting…") if mine else _("Training in another browser: starting…")
    epoch = step / run.steps_per_epoch if run.steps_per_epoch else 0.0
    values = {"epoch": f"{epoch:.2f}", "epochs": run.settings.epochs, "step": step, "total": run.total_steps}
    parts = [
        _("Training: epoch {epoch} of {epochs} · step {step} of {total}", **values) if mine
        else _("Training in another browser: epoch {epoch} of {epochs} · step {step} of {total}", **values)
    ]
    if last is not None and last.loss is not None:
        parts.append(_("loss {loss}", loss=f"{last.loss:.3g}"))
    if last is not None and last.step:
        parts.append(f"{_metric()} {_m(last.eval_metric)}")
    return " · ".join(parts)


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
            if st.button(_("⏹ Stop training"), key="qat_stop", help=_("Keeps what was trained so far.")) or (
                job.stop_requested
            ):
                runner.stop(job.key, owner)
                st.caption(_("Stopping after the current training step…"))
        else:
            st.caption(_(
                "Another browser on this server is training exactly these settings: you are watching its run (one "
                "training serves everyone). Change a setting to train something else."
            ))
        run = QATRun.live(run_settings, job)
        if job.started is None:
            st.progress(0.0, text=job_views.progress_text(job, jobs.runner().ahead_of(job)))
        else:
            st.progress(min(job.done / run.total_steps, 1.0) if run.total_steps else 0.0,
                        text=_progress_text(run, job.done, mine))
        title = (_("Training with quantized weights (live)") if mine
                 else _("Training with quantized weights (live, another browser)"))
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


def _results(run: QATRun, float_m: float, ptq_m: float, spec_label: str, just_now: bool) -> None:
    """Curves and the float / PTQ / QAT comparison of a finished or stopped run."""
    epochs = run.settings.epochs
    if run.status == "stopped":
        last = run.last
        st.warning(
            _(
                "**Stopped at epoch {epoch} of {epochs}** (step {step} of {total}). The QAT numbers below are those "
                "of the partly trained model; press *Train again* for the full run.",
                epoch=f"{last.epoch:.2g}", epochs=epochs, step=last.step, total=run.total_steps,
            ),
            icon="⏸️",
        )
    st.plotly_chart(_curves_figure(run, float_m, ptq_m, _("Training with quantized weights")), key="qat-curves",
                    config={"displaylogo": False})
    qat_m = run.qat_metric
    st.subheader(_("Float vs PTQ vs QAT at {spec}", spec=spec_label))
    c = st.columns(3, wrap=False)
    c[0].metric(_("Float model"), _m(float_m), help=_("The trained model, unquantized."))
    c[1].metric("PTQ", _m(ptq_m), delta=_delta(ptq_m - float_m, "float"),
                delta_color="normal" if sm.higher_is_better else "inverse",
                help=_("The float weights rounded once, no training."))
    c[2].metric(_("QAT (stopped early)") if run.status == "stopped" else "QAT", _m(qat_m),
                delta=_delta(qat_m - ptq_m, "ptq") if qat_m is not None else None,
                delta_color="normal" if sm.higher_is_better else "inverse",
                help=_("Trained with the rounding in the loop, then rounded the same way as PTQ."))
    left, right = st.columns([2, 3], gap="medium")
    with left:
        values = [float_m, ptq_m] + ([qat_m] if qat_m is not None else [])
        st.plotly_chart(
            teach_figures.comparison_bars(values, [_("float"), "PTQ", "QAT"][: len(values)], [_m(v) for v in values],
                                          _metric(), _("{metric} on the evaluation set", metric=_metric())),
            key="qat-bars",
            config={"displaylogo": False},
        )
    with right:
        _codes(run, ptq_m)
    facts = {"seconds": f"{run.train_seconds:.1f}", "epochs": _epochs(run.last.epoch), "batches": run.steps_per_epoch,
              "batch": run.batch_size, "lr": f"{run.settings.lr:g}", "seed": run.settings.seed}
    text = [
        _("QAT trained just now in **{seconds} s** ({epochs} × {batches} steps of {batch} examples, Adam, learning "
          "rate {lr}, seed {seed}). The same settings always give the same curve.", **facts) if just_now
        else _("QAT trained earlier on this server and kept for everyone, in **{seconds} s** ({epochs} × {batches} "
               "steps of {batch} examples, Adam, learning rate {lr}, seed {seed}). The same settings always give the "
               "same curve.", **facts)
    ]
    if run.notes:
        text.append(_("Group size adapted where it does not divide a layer: {notes}.",
                      notes=_("; ").join(_note(n) for n in run.notes)))
    st.caption(teach_data.sentences(text))


def _note(note: str) -> str:
    """A note the worker kept (``ui.compute.reductions.Note``: English plus its msgid) in the reader's language."""
    text = getattr(note, "text", None)
    return text() if callable(text) else note


def _codes(run: QATRun, ptq_m: float) -> None:
    """How many weights QAT moved to another integer code, per layer, and what that means."""
    if not run.codes:
        if settings.target == "activations":
            st.caption(_("Only activations were trained quantized, so the weights keep their float values."))
        else:
            st.caption(_("{format} has no integer codes to compare; the comparison on the left still holds.",
                         format=code_span(settings.format)))
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
    shares = {"kept": f"{100 * (1 - changed / max(total, 1)):.0f}", "moved": f"{100 * changed / max(total, 1):.1f}"}
    text = [
        _("QAT left {kept} % of the weights on the same integer code as PTQ and moved {moved} % - mostly by one "
          "step, across a rounding boundary.", **shares) if changed and by_one > changed / 2
        else _("QAT left {kept} % of the weights on the same integer code as PTQ and moved {moved} %.", **shares)
    ]
    if gain > 0.02 * max(abs(ptq_m), 1e-9):
        text.append(_("Those few nudges, chosen by the loss, are worth {amount} over PTQ: PTQ rounds each weight on "
                      "its own, QAT rounds them so that the *network* still works.", amount=_amount(gain)))
    else:
        text.append(_("Here that buys little: PTQ already keeps most of the float model's quality, or the grid is too "
                      "coarse for these few epochs. Try fewer bits, or per-channel scales."))
    st.caption(teach_data.sentences(text))


def _amount(value: float) -> str:
    if sm.metric_name == "accuracy":
        return _("{points} points of accuracy", points=f"{100 * value:.1f}")
    return _("{value} of {metric}", value=f"{value:.3g}", metric=_metric())


def _epochs(n: float) -> str:
    """``1 epoch``, ``3 epochs``, ``0.45 epochs`` (a stopped run)."""
    return ngettext("{n} epoch", "{n} epochs", 1 if n == 1 else 2, n=f"{n:.2g}")


def _delta(value: float, against: str) -> str:
    """A metric's delta against the float model (``against="float"``) or PTQ (``"ptq"``): the signed number first
    (Streamlit reads the arrow's direction from it), percentage points for accuracy (short enough for a phone)."""
    number = f"{100 * value:+.1f}" if sm.metric_name == "accuracy" else f"{value:+.3g}"
    return _("{delta} vs float", delta=number) if against == "float" else _("{delta} vs PTQ", delta=number)


# --- the bits sweep ---------------------------------------------------------------------------------------------


def _sweep(run_settings: RunSettings, float_m: float, owner: str, current_bits: int) -> None:
    """QAT at every width from 2 to 8 bits next to PTQ: one job per width, queued in the runner."""
    st.subheader(_("Where does QAT pay off? 2 to 8 bits"))
    spec = run_settings.spec
    base = run_settings if spec.is_integer_grid else RunSettings(
        run_settings.model, reductions.spec_key(spec.replace(format="int")), run_settings.target, run_settings.epochs, run_settings.lr,
        run_settings.seed,
    )
    runs = {b: base.with_bits(b) for b in teach_data.SWEEP_BITS}
    runner = jobs.runner()
    with st.spinner(_("Quantizing at every bit width (PTQ)…")):
        ptq = [teach_data.ptq_metric(run_settings.model, run_settings.target, r.spec_key) for r in runs.values()]
    sweep_keys: set[str] = st.session_state.setdefault(_SWEEP_KEY, set())

    def in_flight() -> dict[int, jobs.Job]:
        return {b: j for b, r in runs.items() if (j := runner.job(r.key)) is not None}

    box = st.empty()
    flying = in_flight()
    mine = [b for b, j in flying.items() if j.key in sweep_keys and j.owner == owner]
    missing = [b for b, r in runs.items() if not teach_data.is_done(runner.result(r.key)) and b not in flying]
    if mine:
        if box.button(_("⏹ Stop the sweep"), key="qat_sweep_stop", help=_("Widths already trained are kept.")):
            for b in mine:
                runner.stop(runs[b].key, owner)
            sweep_keys.difference_update(runs[b].key for b in mine)
            box.caption(_("Stopping the sweep: widths already trained are kept."))
    elif missing:
        estimate = sum(teach_data.estimate_seconds(runs[b]) for b in missing)
        label = ngettext("▶️ Train the missing {n} width (about {time})", "▶️ Train the missing {n} widths (about {time})",
                         len(missing), n=len(missing), time=job_views.seconds_text(estimate))
        if box.button(label, key="qat_sweep"):
            try:
                for b in missing:
                    sweep_keys.add(teach_data.submit(runs[b], owner).key)
            except jobs.ServerBusy as busy:  # a full queue: the widths submitted so far still run
                box.warning(_("Not every width could be queued: {reason}", reason=busy), icon="⏳")
            else:
                st.rerun()  # the whole page again: the run section above shows its width's job too
    _sweep_chart(runs, ptq, float_m, current_bits if spec.is_integer_grid else None, bool(in_flight()))
    text = [_(
        "Same scheme at every width ({scheme}, {calibration} calibration, {target}), QAT with {epochs}, lr {lr}. The "
        "green bars are what QAT buys over PTQ: little at 8 bits, most at 2-3 bits. Every width is one job on this "
        "server's job runner, kept for everyone.",
        scheme=teach_data.scheme_words(spec, _), calibration=teach_data.word(spec.calibration, _),
        target=teach_data.word(run_settings.target, _), epochs=_epochs(run_settings.epochs), lr=f"{run_settings.lr:g}",
    )]
    if not spec.is_integer_grid:
        text.append(_("{format} is a fixed-width format: the sweep uses integer grids.", format=code_span(spec.format)))
    st.caption(teach_data.sentences(text))


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
            teach_figures.sweep_figure(list(runs), ptq, qat, float_m, _metric(), current, sm.higher_is_better),
            key="qat-sweep", config={"displaylogo": False},
        )
        done = sum(v is not None for v in qat)
        if flying:
            st.progress(_sweep_fraction(done, flying, len(runs)), text=_sweep_text(done, flying, len(runs)))
        else:
            st.caption(_("{done} of {n} widths trained on this server so far (kept for everyone).", done=done,
                         n=len(runs)))

    chart()


def _sweep_fraction(done: int, flying: dict[int, jobs.Job], n: int) -> float:
    return min(1.0, (done + sum(j.fraction for j in flying.values() if j.started is not None)) / n)


def _sweep_text(done: int, flying: dict[int, jobs.Job], n: int) -> str:
    """``2 of 7 widths trained · training 4 bits (45 %) · 3 widths queued · Waiting: 1 computation ahead…``."""
    parts = [_("{done} of {n} widths trained", done=done, n=n)]
    parts += [_("training {bits} bits ({percent} %)", bits=b, percent=f"{100 * j.fraction:.0f}")
              for b, j in flying.items() if j.started is not None]
    queued = [j for j in flying.values() if j.started is None]
    if queued:
        first = min(queued, key=jobs.runner().ahead_of)
        widths = ngettext("{n} width queued", "{n} widths queued", len(queued), n=len(queued))
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
        st.caption(_("QAT here goes from 2 to 8 bits (above 8, PTQ already matches the float model): using "
                     "**{qat_bits} bits** instead of the sidebar's {bits}.", qat_bits=qat_bits, bits=bits))
    c_ep, c_lr = st.columns(2)
    with c_ep:
        epochs = int(controls.page_widget(st.slider, _("Epochs"), "epochs", min_value=1,
                                          max_value=teach_data.MAX_EPOCHS, value=teach_data.DEFAULT_EPOCHS,
                                          help=_("Passes over the training set.")))
    with c_lr:
        lr = float(controls.page_widget(st.select_slider, _("Learning rate"), "lr", options=list(teach_data.LR_CHOICES),
                                        value=teach_data.DEFAULT_LR, format_func=lambda v: f"{v:g}",
                                        help=_("Adam's step size. Too large and the loss jumps around; too small and "
                                               "QAT barely moves the weights.")))
    plan = teach_data.plan_for(settings.model)
    spec_label = teach_data.spec_words(spec, _)  # "int4 asym per-channel", its words translated
    st.caption(_(
        "{model}: {what} at **{spec}**, {calibration} calibration (sidebar) · training on its training split in "
        "batches of {batch} · evaluated on its evaluation set · seed {seed}.",
        model=code_span(settings.model), what=teach_data.word(settings.target, _), spec=spec_label,
        calibration=teach_data.word(settings.calibration, _), batch=plan.batch_size, seed=teach_data.SEED,
    ))
    run_settings = RunSettings(settings.model, reductions.spec_key(spec), settings.target, epochs, lr, teach_data.SEED)
    owner = st.session_state.setdefault(_OWNER_KEY, uuid.uuid4().hex)
    float_m = teach_data.float_metric(settings.model)
    with st.spinner(_("Quantizing the model (PTQ)…")):
        ptq_m = teach_data.ptq_metric(settings.model, settings.target, run_settings.spec_key)
    with widgets.friendly_errors(_("train this model with quantization in the loop")):
        _run_section(run_settings, owner, float_m, ptq_m, spec_label, epochs)
    with widgets.friendly_errors(_("train the bits sweep")):
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
        label = _("▶️ Train") if run is None else ngettext(
            "▶️ Train again (all {n} epoch)", "▶️ Train again (all {n} epochs)", epochs, n=epochs)
        box = st.empty()
        if box.button(label, type="primary", key="qat_train",
                      help=_("About {time} of training in a background worker; the run is kept for everyone.",
                             time=job_views.seconds_text(teach_data.estimate_seconds(run_settings)))):
            box.empty()
            job = teach_data.submit(run_settings, owner)
            _seen()[job.key] = job
            if job.is_done:  # over already (a failure at once, or somebody else's identical run just finished)
                st.rerun()
            _live(job, run_settings, owner, float_m, ptq_m)
            return
    if isinstance(error, ValueError) and "diverged" in str(error):
        # quantlib's words are English: the reader's sentence, with the original detail beside it.
        st.error(
            _("Could not train this model: training diverged (the loss or an activation stopped being a finite "
              "number). Try a smaller learning rate.") + "\n\n"
            + _("Original message (English): {detail}", detail=code_span(error)),
            icon="🚫",
        )
        return
    if error is not None:
        raise error  # the job's failure, in friendly_errors' plain words
    if run is None:
        if fresh and ended.result is None:
            st.caption(_("Stopped before the first training step: nothing was trained, so nothing was kept."))
        c = st.columns(2, wrap=False)
        c[0].metric(_("Float model"), _m(float_m))
        c[1].metric(_("PTQ at {spec}", spec=spec_label), _m(ptq_m), delta=_delta(ptq_m - float_m, "float"),
                    delta_color="normal" if sm.higher_is_better else "inverse")
        st.caption(_("Press **Train** to see what QAT makes of the same bit width."))
        return
    kept = runner.finished(run_settings.key)
    just_now = run_settings.key in trained and kept is not None and time.time() - kept.at < _JUST_NOW_SECONDS
    _results(run, float_m, ptq_m, spec_label, just_now)


with widgets.friendly_errors(_("train this model with quantization in the loop")):
    _page()
