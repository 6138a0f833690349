"""🧪 Algorithms: beyond round-to-nearest - GPTQ, AWQ, SmoothQuant, AdaRound, bias correction, CLE - compared
live on the sample model, layer by layer, and the activation outliers behind SmoothQuant and AWQ.

Every text is in the session's language: the jobs (worker processes, English) and the shared caches return data
only; labels, table headers, the try-this figures and the library's known error messages are translated here.
"""

from __future__ import annotations

import streamlit as st

from quantlib import QuantSpec
from ui import controls, i18n, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import ptq as pd_
from ui.compute import reductions
from ui.figures import ptq as pf
from ui.i18n import N_, _
from ui.text import code_span, escape_markdown
from ui.views import jobs as job_views

#: The calibration methods as the page names them (the values stay the sidebar's codes).
CALIBRATION_LABELS = {
    "minmax": N_("minmax"), "percentile": N_("percentile"), "mse": N_("mse"), "entropy": N_("entropy"),
}
#: Task metrics whose name is a word to translate (the others - ``mse``, ``recall@10`` - read the same in both).
METRIC_LABELS = {"accuracy": N_("accuracy"), "spearman": N_("spearman")}


def metric_label(name: str) -> str:
    """A sample model's task metric as the page names it (English: its key)."""
    return _(METRIC_LABELS[name]) if name in METRIC_LABELS else name


def spec_text(spec: QuantSpec) -> str:
    """``int4 asym per-channel`` (:meth:`QuantSpec.label`) in the session's language."""
    fmt = f"{spec.format}{spec.bits}" if spec.is_integer_grid else spec.format
    scheme = _("sym") if spec.scheme == "symmetric" else _("asym")
    if spec.granularity == "group":
        granularity = _("per-group({size})", size=spec.group_size)
    else:
        granularity = _("per-tensor") if spec.granularity == "tensor" else _("per-channel")
    return _("{format} {scheme} {granularity}", format=fmt, scheme=scheme, granularity=granularity)


def try_this_link(box: pd_.TryThis) -> str:
    """A box's settings as a link, in this session's language when it is not the default."""
    lang = i18n.current()
    return box.link() + ("" if lang == i18n.DEFAULT else f"&lang={lang}")


settings = controls.current()
sm = sources.sample(settings.model)
metric = metric_label(sm.metric_name)
better = _("higher is better") if sm.higher_is_better else _("lower is better")

widgets.page_intro(
    _("Algorithms"),
    "🧪",
    _(
        "Round-to-nearest (RTN) rounds every weight on its own. The algorithms here use a few **calibration "
        "inputs** to round better: they look at what each layer's output loses, not at each weight alone. Tick "
        "the ones to compare with RTN: the task metric of the whole model, and the reconstruction error of every "
        "layer on the calibration inputs."
    ),
    r"\min_{\hat W\ \in\ \text{grid}}\ \frac{\lVert W X - \hat W X\rVert^2}{\lVert W X\rVert^2}",
    _("{summary} [Open it]({link}).", summary=pd_.TRY_THIS[0].summary(), link=try_this_link(pd_.TRY_THIS[0])),
)

spec, spec_note = ad.model_wide_spec(settings.model, settings.spec())
notes = [spec_note] if spec_note else []
if settings.target != "weights":
    notes.append(
        _(
            "each algorithm decides what it quantizes here: SmoothQuant weights and input activations, the others "
            "weights only (the sidebar's *Quantize* setting applies on the other pages)"
        )
    )
st.caption(
    _(
        "{model} · all Linear / Conv layers at **{spec}**, {calibration} calibration (embedding tables stay "
        "float) · task metric **{metric}** ({better}; float model {value})",
        model=_(sm.title),
        spec=spec_text(spec),
        calibration=_(CALIBRATION_LABELS[spec.calibration]) if spec.calibration in CALIBRATION_LABELS
        else spec.calibration,
        metric=metric,
        better=better,
        value=widgets.fmt(sm.float_metrics[sm.metric_name]),
    )
    + "".join(_(" · Note: {note}.", note=n) for n in notes)
)


# --- the algorithm checkboxes: one URL parameter, ``algos=gptq,awq`` ------------------------------------------


ALGOS_KEY = "algos"


def _on_tick() -> None:
    """A checkbox changed: rewrite the comma list - ticked ones kept in their order, a new one last. A callback
    runs before the script, so the bound text field (and with it the URL) changes with the click."""
    previous, _unknown = pd_.parse_algos(st.session_state.get(ALGOS_KEY, ""))
    ticked = [a.key for a in pd_.ALGORITHMS if st.session_state.get(f"_algo_{a.key}")]
    chosen = [k for k in previous if k in ticked] + [k for k in ticked if k not in previous]
    st.session_state[ALGOS_KEY] = ",".join(chosen)


def _algo_controls() -> tuple[list[str], list[str], object]:
    """The algorithm checkboxes, and their comma list as a small text field bound to the URL (``algos``).

    The field is the truth (a bound widget: the URL follows it, a link seeds it, the link check judges it);
    the checkboxes are drawn from it on every run and write it back when clicked. One parameter rather than
    Streamlit's multiselect binding, which repeats the key (``?algos=a&algos=b``) - read by the app's link
    check as a key given twice.
    """
    if ALGOS_KEY in st.session_state:  # normalise what was typed (unknown names, repeats, spaces) before drawing
        known, _unknown = pd_.parse_algos(st.session_state[ALGOS_KEY])
        st.session_state[ALGOS_KEY] = ",".join(known)
    st.markdown(_("**Compare with round-to-nearest:**"))
    boxes = st.container()
    field_col, beside = st.columns(2, gap="medium")
    with field_col:
        raw = _algos_field()
    chosen, unknown = pd_.parse_algos(raw)
    with boxes:
        for start in range(0, len(pd_.ALGORITHMS), 4):  # rows of four: on a phone they stack in reading order
            cols = st.columns(4)
            for col, a in zip(cols, pd_.ALGORITHMS[start : start + 4], strict=False):
                st.session_state[f"_algo_{a.key}"] = a.key in chosen
                with col:
                    st.checkbox(
                        _(a.label),
                        key=f"_algo_{a.key}",
                        help=_("{paper}: {idea}.", paper=a.paper, idea=_(a.idea)),
                        on_change=_on_tick,
                    )
    return chosen, unknown, beside


def _algos_field() -> str:
    return controls.page_widget(
        st.text_input,
        _("The same as a link parameter"),
        ALGOS_KEY,
        value=",".join(pd_.DEFAULT_ALGOS),
        max_chars=200,
        help=_(
            "A comma list of {names} - what `algos=` in a shared link holds. Type or paste one, or tick the boxes "
            "above.",
            names=", ".join(code_span(a.key) for a in pd_.ALGORITHMS),
        ),
    )


chosen, unknown_algos, alpha_box = _algo_controls()
if unknown_algos:
    st.warning(
        _(
            "Not an algorithm of this page, ignored: {names}",
            names=", ".join(code_span(u[:40]) for u in unknown_algos[:8]),
        ),
        icon="🔗",
    )
with alpha_box:  # type: ignore[attr-defined] - a Streamlit column
    alpha = float(controls.page_widget(
        st.select_slider,
        _("SmoothQuant migration strength α"),
        "sq_alpha",
        options=list(pd_.SQ_ALPHAS),
        value=pd_.SQ_DEFAULT_ALPHA,
        help=_(
            "How much of the activations' range moves into the weights: 0 = none, 1 = all. The paper uses 0.5; "
            "models with stronger outliers want more. Used by SmoothQuant and the outliers section below."
        ),
    ))

# --- running them ------------------------------------------------------------------------------------------------

runs = [pd_.RTN_W] + ([pd_.RTN_WA] if "smoothquant" in chosen else []) + chosen
labels = {pd_.RTN_W: "RTN", pd_.RTN_WA: "RTN W+A"} | {a.key: _(a.label) for a in pd_.ALGORITHMS}
results: dict[str, dict] = {}
skipped: dict[str, str] = {}
for run in runs:
    with widgets.friendly_errors(_("run {method}", method=labels[run])):
        try:
            estimate = pd_.estimate_seconds(settings.model, run)
            if estimate > pd_.MAX_JOB_SECONDS:
                skipped[run] = _(
                    "{method} would take about {time} on this server for {model}'s {n} layers, more than a "
                    "background job may run; it is meant for small layers (CNNs, MLPs).",
                    method=labels[run],
                    time=job_views.seconds_text(estimate),
                    model=_(sm.title),
                    n=len(pd_.target_layers_of(settings.model)),
                )
                continue
            res = job_views.obtain(
                pd_.result_key(settings.model, run, spec, alpha),
                pd_.compute_run,
                (settings.model, run, spec, alpha),
                _("{method} on {model}…", method=labels[run], model=_(sm.title)),
                lambda run=run: pd_.estimate_seconds(settings.model, run),
                _("Run {method}", method=labels[run]),
                f"run-{run}",
                auto=True if run in pd_.QUICK_RUNS else None,
            )
            if res is not None:
                results[run] = res
        except jobs.ServerBusy as busy:
            st.warning(str(busy), icon="⏳")
        except ValueError as err:  # quantlib's words reach us in English: the ones we know, in the page's words
            known = pd_.known_error(str(err))
            if known is None:
                raise
            msgid, values = known
            st.error(
                _(
                    "Could not run {method} with these settings: {reason}",
                    method=labels[run],
                    reason=_(msgid, **{k: code_span(v.strip("'")) for k, v in values.items()}),
                ),
                icon="🚫",
            )
for message in skipped.values():
    st.info(message, icon="🐢")

if len(results) > 1 or (results and not chosen):
    done = list(results)
    names = list(results[done[0]]["report"]["layer"])
    short = ad.short_names(names)
    left, right = st.columns([2, 3], gap="medium")
    with left:
        st.plotly_chart(
            pf.metric_bars([labels[r] for r in done], [results[r]["metrics"][sm.metric_name] for r in done],
                           sm.float_metrics[sm.metric_name], metric),
            key="ptq-metric", config={"displaylogo": False},
        )
    with right:
        st.plotly_chart(
            pf.layer_errors(short, {labels[r]: list(results[r]["report"]["rel_error"]) for r in done}),
            key="ptq-layers", config={"displaylogo": False},
        )
    headers = {
        "method": _("method"),
        sm.metric_name: metric,
        "vs RTN": _("vs RTN"),
        "mean layer error": _("mean layer error"),
        "worst layer error": _("worst layer error"),
        "worst layer": _("worst layer"),
        "seconds": _("run time (s)"),
    }
    table = pd_.summary_table(results, labels, sm.metric_name, sm.higher_is_better).rename(columns=headers)
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            headers[sm.metric_name]: st.column_config.NumberColumn(format="%.4f"),
            headers["vs RTN"]: st.column_config.NumberColumn(
                format="%+.4f",
                help=_("{better}; SmoothQuant against RTN W+A, the others against RTN", better=better),
            ),
            headers["mean layer error"]: st.column_config.NumberColumn(format="%.2e"),
            headers["worst layer error"]: st.column_config.NumberColumn(format="%.2e"),
            headers["seconds"]: st.column_config.NumberColumn(format="%.1f"),
        },
    )
    st.caption(
        _(
            "{metric} of the whole quantized model on its evaluation set; layer errors ‖WX − ŴX‖² / ‖WX‖² of each "
            "layer on the calibration inputs (with SmoothQuant and RTN W+A the activation grid's error is in it "
            "too). Run time: quantizing, on one core of this server. Each result is computed once and shared with "
            "everyone.",
            metric=metric,
        )
    )
    csv_headers = {"method": _("method"), "layer": _("layer"), "rel_error": _("rel_error"),
                   "seconds": _("seconds")}
    st.download_button(
        _("⬇️ Download the per-layer errors (CSV)"),
        pd_.layer_table(results, labels).rename(columns=csv_headers).to_csv(index=False),
        file_name=_("algorithms_{model}.csv", model=settings.model),
        mime="text/csv",
        key="ptq-csv",
    )
elif not chosen:
    st.caption(_("Tick an algorithm above to compare it with round-to-nearest."))

# --- one line per algorithm ---------------------------------------------------------------------------------

if chosen:
    st.subheader(_("How each one works"))
    for key in chosen:
        a = pd_.BY_KEY[key]
        if key in results:
            line = _(
                "**{method}** ({paper}) - {idea} · ran in {seconds} s here.",
                method=_(a.label), paper=a.paper, idea=_(a.idea), seconds=f"{results[key]['seconds']:.1f}",
            )
        else:
            line = _("**{method}** ({paper}) - {idea}.", method=_(a.label), paper=a.paper, idea=_(a.idea))
        note = pd_.page_note(key)
        st.markdown(line + ("" if line.endswith("。") else " ") + note if note else line)  # no space after 。
        st.latex(a.formula)

# --- activation outliers ----------------------------------------------------------------------------------------

st.divider()
st.subheader(_("🔭 Activation outliers"))
layer = pd_.outlier_layer(settings.model, settings.layer)
if layer is None:
    st.caption(
        _(
            "The sidebar's layer {layer} is not a Linear / Conv layer (an embedding table has no input activations "
            "to look at): pick one in the sidebar.",
            layer=code_span(controls.layer_token(settings.layer)),
        )
    )
else:
    with widgets.friendly_errors(_("measure the activations")):
        with st.spinner(_("Running the calibration inputs through the model…")):
            out = pd_.activation_outliers(settings.model, layer, alpha, reductions.spec_key(spec))
        st.markdown(
            _(
                "The input of {layer} on the {rows} calibration rows: the largest channel reaches "
                "**{ratio_before}×** the median channel's maximum. One per-tensor activation grid of {levels} "
                "levels must span that channel, so its step is **{step_before}** and a typical (median) channel "
                "uses only **{levels_before}** levels. SmoothQuant divides channel j by s_j (α = {alpha}) and "
                "multiplies the weights by it: the ratio becomes **{ratio_after}×**, the step **{step_after}** and "
                "the median channel uses **{levels_after}** levels - the activations' SQNR at {bits} bits goes "
                "from {sqnr_before} to {sqnr_after} dB. AWQ looks at the same picture from the weights' side: the "
                "loud channels' weights are the ones worth protecting.",
                layer=code_span(controls.layer_token(layer)),
                rows=out["rows"],
                ratio_before=f"{out['ratio_before']:.0f}",
                levels=out["levels"],
                step_before=f"{out['step_before']:.3g}",
                levels_before=f"{out['levels_before']:.0f}",
                alpha=f"{alpha:g}",
                ratio_after=f"{out['ratio_after']:.0f}",
                step_after=f"{out['step_after']:.3g}",
                levels_after=f"{out['levels_after']:.0f}",
                bits=spec.bits,
                sqnr_before=widgets.fmt(out["sqnr_before"]),
                sqnr_after=widgets.fmt(out["sqnr_after"]),
            )
        )
        st.plotly_chart(
            pf.outlier_chart(out["before"], out["after"], alpha, out["step_before"], out["step_after"]),
            key="ptq-outliers", config={"displaylogo": False},
        )
        st.caption(
            _(
                "Grey: max|x| of each input channel; orange: after dividing by the smoothing scale. Dashed: the "
                "step of the per-tensor activation grid before and after (a channel below its line is rounded to a "
                "handful of values). Loudest channels: {channels}. Change the layer in the sidebar, and α above.",
                channels=i18n.format_list([str(c) for c in out["top"]]),
            )
        )

# --- try this ---------------------------------------------------------------------------------------------------

st.divider()
st.subheader(_("👉 Try this"))
cols = st.columns(len(pd_.TRY_THIS))
for col, box in zip(cols, pd_.TRY_THIS, strict=True):
    with col:
        st.info(
            _(
                "**{title}** - {summary} [Open these settings]({link}).",
                title=escape_markdown(box.heading()),
                summary=box.summary(),
                link=try_this_link(box),
            )
        )
