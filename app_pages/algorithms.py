"""🧪 Algorithms: beyond round-to-nearest - GPTQ, AWQ, SmoothQuant, AdaRound, bias correction, CLE - compared
live on the sample model, layer by layer, and the activation outliers behind SmoothQuant and AWQ."""

from __future__ import annotations

import streamlit as st

from ui import controls, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import ptq as pd_
from ui.compute import reductions
from ui.figures import ptq as pf
from ui.text import code_span, escape_markdown
from ui.views import jobs as job_views

settings = controls.current()
sm = sources.sample(settings.model)
better = "higher" if sm.higher_is_better else "lower"

widgets.page_intro(
    "Algorithms",
    "🧪",
    "Round-to-nearest (RTN) rounds every weight on its own. The algorithms here use a few **calibration "
    "inputs** to round better: they look at what each layer's output loses, not at each weight alone. Tick "
    "the ones to compare with RTN: the task metric of the whole model, and the reconstruction error of every "
    "layer on the calibration inputs.",
    r"\min_{\hat W\ \in\ \text{grid}}\ \frac{\lVert W X - \hat W X\rVert^2}{\lVert W X\rVert^2}",
    f"{pd_.TRY_THIS[0].summary()} [Open it]({pd_.TRY_THIS[0].link()}).",
)

spec, spec_note = ad.model_wide_spec(settings.model, settings.spec())
notes = [spec_note] if spec_note else []
if settings.target != "weights":
    notes.append(
        "each algorithm decides what it quantizes here: SmoothQuant weights and input activations, the others "
        "weights only (the sidebar's *Quantize* setting applies on the other pages)"
    )
st.caption(
    f"{sm.title} · all Linear / Conv layers at **{spec.label()}**, {spec.calibration} calibration (embedding "
    f"tables stay float) · task metric **{sm.metric_name}** ({better} is better; float model "
    f"{widgets.fmt(sm.float_metrics[sm.metric_name])})" + "".join(f" · Note: {n}." for n in notes)
)


# --- the algorithm checkboxes: one URL parameter, ``algos=gptq,awq`` ------------------------------------------


ALGOS_KEY = "algos"


def _on_tick() -> None:
    """A checkbox changed: rewrite the comma list - ticked ones kept in their order, a new one last. A callback
    runs before the script, so the bound text field (and with it the URL) changes with the click."""
    previous, _ = pd_.parse_algos(st.session_state.get(ALGOS_KEY, ""))
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
        known, _ = pd_.parse_algos(st.session_state[ALGOS_KEY])
        st.session_state[ALGOS_KEY] = ",".join(known)
    st.markdown("**Compare with round-to-nearest:**")
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
                    st.checkbox(a.label, key=f"_algo_{a.key}", help=f"{a.paper}: {a.idea}.", on_change=_on_tick)
    return chosen, unknown, beside


def _algos_field() -> str:
    return controls.page_widget(
        st.text_input,
        "The same as a link parameter",
        ALGOS_KEY,
        value=",".join(pd_.DEFAULT_ALGOS),
        max_chars=200,
        help="A comma list of " + ", ".join(a.key for a in pd_.ALGORITHMS) + " - what `algos=` in a shared link "
        "holds. Type or paste one, or tick the boxes above.",
    )


chosen, unknown_algos, alpha_box = _algo_controls()
if unknown_algos:
    st.warning(
        "Not an algorithm of this page, ignored: " + ", ".join(code_span(u[:40]) for u in unknown_algos[:8]),
        icon="🔗",
    )
with alpha_box:  # type: ignore[attr-defined] - a Streamlit column
    alpha = float(controls.page_widget(
        st.select_slider,
        "SmoothQuant migration strength α",
        "sq_alpha",
        options=list(pd_.SQ_ALPHAS),
        value=pd_.SQ_DEFAULT_ALPHA,
        help="How much of the activations' range moves into the weights: 0 = none, 1 = all. The paper uses "
        "0.5; models with stronger outliers want more. Used by SmoothQuant and the outliers section below.",
    ))

# --- running them ------------------------------------------------------------------------------------------------

runs = [pd_.RTN_W] + ([pd_.RTN_WA] if "smoothquant" in chosen else []) + chosen
labels = {pd_.RTN_W: "RTN", pd_.RTN_WA: "RTN W+A"} | {a.key: a.label for a in pd_.ALGORITHMS}
results: dict[str, dict] = {}
skipped: dict[str, str] = {}
for run in runs:
    with widgets.friendly_errors(f"run {labels[run]}"):
        try:
            estimate = pd_.estimate_seconds(settings.model, run)
            if estimate > pd_.MAX_JOB_SECONDS:
                skipped[run] = (
                    f"{labels[run]} would take about {job_views.seconds_text(estimate)} on this server for "
                    f"{sm.title}'s {len(pd_.target_layers_of(settings.model))} layers, more than a background job "
                    "may run; it is meant for small layers (CNNs, MLPs)."
                )
                continue
            res = job_views.obtain(
                pd_.result_key(settings.model, run, spec, alpha),
                pd_.compute_run,
                (settings.model, run, spec, alpha),
                f"{labels[run]} on {sm.title}…",
                lambda run=run: pd_.estimate_seconds(settings.model, run),
                f"Run {labels[run]}",
                f"run-{run}",
                auto=True if run in pd_.QUICK_RUNS else None,
            )
            if res is not None:
                results[run] = res
        except jobs.ServerBusy as busy:
            st.warning(str(busy), icon="⏳")
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
                           sm.float_metrics[sm.metric_name], sm.metric_name),
            key="ptq-metric", config={"displaylogo": False},
        )
    with right:
        st.plotly_chart(
            pf.layer_errors(short, {labels[r]: list(results[r]["report"]["rel_error"]) for r in done}),
            key="ptq-layers", config={"displaylogo": False},
        )
    table = pd_.summary_table(results, labels, sm.metric_name, sm.higher_is_better)
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            sm.metric_name: st.column_config.NumberColumn(format="%.4f"),
            "vs RTN": st.column_config.NumberColumn(
                format="%+.4f", help=f"{better} is better; SmoothQuant against RTN W+A, the others against RTN"
            ),
            "mean layer error": st.column_config.NumberColumn(format="%.2e"),
            "worst layer error": st.column_config.NumberColumn(format="%.2e"),
            "seconds": st.column_config.NumberColumn("run time (s)", format="%.1f"),
        },
    )
    st.caption(
        f"{sm.metric_name} of the whole quantized model on its evaluation set; layer errors "
        "‖WX − ŴX‖² / ‖WX‖² of each layer on the calibration inputs (with SmoothQuant and RTN W+A the "
        "activation grid's error is in it too). Run time: quantizing, on one core of this server. Each result "
        "is computed once and shared with everyone."
    )
    st.download_button(
        "⬇️ Download the per-layer errors (CSV)",
        pd_.layer_table(results, labels).to_csv(index=False),
        file_name=f"algorithms_{settings.model}.csv",
        mime="text/csv",
        key="ptq-csv",
    )
elif not chosen:
    st.caption("Tick an algorithm above to compare it with round-to-nearest.")

# --- one line per algorithm ---------------------------------------------------------------------------------

if chosen:
    st.subheader("How each one works")
    for key in chosen:
        a = pd_.BY_KEY[key]
        took = f" · ran in {results[key]['seconds']:.1f} s here" if key in results else ""
        st.markdown(f"**{a.label}** ({a.paper}) - {a.idea}{took}.{pd_.page_note(key)}")
        st.latex(a.formula)

# --- activation outliers ----------------------------------------------------------------------------------------

st.divider()
st.subheader("🔭 Activation outliers")
layer = pd_.outlier_layer(settings.model, settings.layer)
if layer is None:
    st.caption(
        f"The sidebar's layer {code_span(controls.layer_token(settings.layer))} is not a Linear / Conv layer (an "
        "embedding table has no input activations to look at): pick one in the sidebar."
    )
else:
    with widgets.friendly_errors("measure the activations"):
        out = pd_.activation_outliers(settings.model, layer, alpha, reductions.spec_key(spec))
        st.markdown(
            f"The input of {code_span(controls.layer_token(layer))} on the {out['rows']} calibration rows: the "
            f"largest channel reaches **{out['ratio_before']:.0f}×** the median channel's maximum. One "
            f"per-tensor activation grid of {out['levels']} levels must span that channel, so its step is "
            f"**{out['step_before']:.3g}** and a typical (median) channel uses only "
            f"**{out['levels_before']:.0f}** levels. SmoothQuant divides channel j by s_j (α = {alpha:g}) and "
            f"multiplies the weights by it: the ratio becomes **{out['ratio_after']:.0f}×**, the step "
            f"**{out['step_after']:.3g}** and the median channel uses **{out['levels_after']:.0f}** levels - the "
            f"activations' SQNR at {spec.bits} bits goes from {widgets.fmt(out['sqnr_before'])} to "
            f"{widgets.fmt(out['sqnr_after'])} dB. AWQ looks at the same picture from the weights' side: "
            "the loud channels' weights are the ones worth protecting."
        )
        st.plotly_chart(
            pf.outlier_chart(out["before"], out["after"], alpha, out["step_before"], out["step_after"]),
            key="ptq-outliers", config={"displaylogo": False},
        )
        st.caption(
            "Grey: max|x| of each input channel; orange: after dividing by the smoothing scale. Dashed: the step "
            "of the per-tensor activation grid before and after (a channel below its line is rounded to a "
            f"handful of values). Loudest channels: {', '.join(map(str, out['top']))}. Change the layer in the "
            "sidebar, and α above."
        )

# --- try this ---------------------------------------------------------------------------------------------------

st.divider()
st.subheader("👉 Try this")
cols = st.columns(len(pd_.TRY_THIS))
for col, box in zip(cols, pd_.TRY_THIS, strict=True):
    with col:
        st.info(f"**{escape_markdown(box.title)}** - {box.summary()} [Open these settings]({box.link()}).")
