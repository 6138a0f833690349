"""🧨 Layer sensitivity: which layers mind quantization, and a bit width per layer under a size budget."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import streamlit as st

from quantlib import QuantSpec
from quantlib.sensitivity import sensitivity_matrix
from ui import controls, i18n, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import export as export_data
from ui.figures import analysis as af
from ui.i18n import N_, _, ngettext
from ui.views import export as export_views
from ui.views import jobs as job_views

#: The views: the values are what the link carries (``sens_view=All bit widths``), shown translated.
VIEW_ONLY = N_("Quantize one layer")
VIEW_KEEP = N_("Keep one layer in float")
VIEW_HEATMAP = N_("All bit widths")
VIEWS = [VIEW_ONLY, VIEW_KEEP, VIEW_HEATMAP]
#: The budget slider: average bits per weight over the probed layers.
BUDGET_MIN, BUDGET_MAX, BUDGET_STEP, BUDGET_DEFAULT = 2.0, 8.0, 0.25, 5.0

settings = controls.current()
sm = sources.sample(settings.model)
infos = sources.layers(settings.model)
names = [i.name for i in infos]
tokens = [controls.layer_token(n) for n in names]
short = dict(zip(names, ad.short_names(names), strict=True))
current_token = controls.layer_token(settings.layer)
metric = ad.metric_label(sm.metric_name)
better = _("higher is better") if sm.higher_is_better else _("lower is better")

widgets.page_intro(
    _("Layer sensitivity"),
    "🧨",
    _(
        "Not every layer minds quantization equally. This page quantizes the weights of **one layer at a time** "
        "- every other layer stays float - and measures how much the model's task metric drops: the longest bars "
        "are the fragile layers. **Mixed precision** (further down) then gives fragile layers more bits and "
        "robust ones fewer, for the same average size."
    ),
    r"\begin{gathered}\Delta_\ell(b) = M(f) - M\big(f\ \text{with only}\ W_\ell\ \text{at}\ b\ \text{bits}\big)"
    r"\\ \min_{b_\ell}\ \sum_\ell \Delta_\ell(b_\ell)\quad\text{s.t.}\quad"
    r"\frac{\sum_\ell n_\ell\, b_\ell}{\sum_\ell n_\ell} \le \bar b\end{gathered}",
    _(
        "set the bit width to **4** - the top bar is the layer to protect. **Click it** to make it the sidebar's "
        "layer, then slide the mixed-precision budget and compare the star with uniform int4."
    ),
)

spec, spec_note = ad.model_wide_spec(settings.model, settings.spec())
notes = [spec_note] if spec_note else []
if settings.target != "weights":
    notes.append(
        _("this page probes weights only; the sidebar's *Quantize: activations* setting applies on the other pages")
    )
st.caption(
    _(
        "Weights of all {n} layers of {model}, probed with **{spec}**, {calibration} calibration · task metric "
        "**{metric}** ({better}; float model {value})",
        n=len(infos),
        model=widgets.model_title(sm.title),
        spec=ad.spec_text(spec),
        calibration=settings.calibration,
        metric=metric,
        better=better,
        value=widgets.fmt(sm.float_metrics[sm.metric_name]),
    )
    + "".join(" · " + _("Note: {note}.", note=n) for n in notes)
)


# --- selecting a layer -----------------------------------------------------------------------------------------


def _layer_chart(fig, chart_key: str) -> None:  # noqa: ANN001 - a plotly Figure
    """A layer bar chart whose bars can be clicked (st.plotly_chart has no ``args=``: a partial carries the key)."""
    st.plotly_chart(
        fig,
        key=chart_key,
        on_select=functools.partial(widgets.on_layer_click, chart_key, tokens),
        selection_mode="points",
        config={"displaylogo": False},
    )


#: What the top bar of each view is (the English text is also the make-layer button's key).
TOP_FRAGILE = N_("the most fragile layer")
TOP_KEEP = N_("the best layer to keep in float")


def _layer_actions(top: str, what: str) -> None:
    """The keyboard way to the same place as a click, and the way on to the other pages."""
    left, right = st.columns([3, 2], vertical_alignment="center")
    with left:
        if top != current_token:
            st.button(
                _("Make {layer} the sidebar's layer", layer=f"`{short[controls.layer_name(top, infos)]}`"),
                key=f"make-layer-{what}",
                on_click=widgets.set_sidebar_layer,
                args=(top, tokens),
                help=_(
                    "{layer}, {what}. The same as clicking its bar: the sidebar (and the link) switch to it.",
                    layer=f"`{top}`",
                    what=_(what),
                ),
            )
        else:
            st.caption(_("The sidebar's layer, {layer}, is {what} (in red).", layer=f"`{current_token}`", what=_(what)))
    with right:
        st.page_link(
            "app_pages/tensor_explorer.py",
            label=_("Inspect {layer} in the tensor explorer", layer=f"`{current_token}`"),
            icon="🔬",
        )


# --- the three views -------------------------------------------------------------------------------------------


def _sensitivity_table(mode: str) -> pd.DataFrame | None:
    """The one-pass table of ``mode`` at the current settings (from a finished sweep when it has these bits)."""
    if mode == "only":
        sweep_spec, _note = ad.integer_spec(spec)
        sweep = jobs.runner().result(ad.sweep_key(settings.model, sweep_spec))
        if spec.is_integer_grid and sweep is not None and spec.bits in set(sweep["bits"]):
            return sweep[sweep["bits"] == spec.bits].reset_index(drop=True)
    key = ad.sensitivity_key(settings.model, spec, mode)
    n = len(infos)
    what = (
        ngettext("Quantizing one layer at a time ({n} layer)…", "Quantizing one layer at a time ({n} layers)…", n, n=n)
        if mode == "only"
        else ngettext(
            "Quantizing all layers but one, for each layer ({n} layer)…",
            "Quantizing all layers but one, for each layer ({n} layers)…",
            n,
            n=n,
        )
    )
    return job_views.obtain(
        key,
        ad.compute_sensitivity,
        (settings.model, spec, mode),
        what,
        lambda: ad.sensitivity_estimate(settings.model, mode),
        ngettext("Run the sensitivity analysis ({n} layer)", "Run the sensitivity analysis ({n} layers)", n, n=n),
        f"run-{mode}",
    )


def _only_view() -> None:
    table = _sensitivity_table("only")
    if table is None:
        return
    fig = af.layer_bars(
        [short[n] for n in table["layer"]],
        [controls.layer_token(n) for n in table["layer"]],
        table["metric_drop"],
        table["output_sqnr_db"],
        _("{metric} drop", metric=metric),
        _("output SQNR (dB)"),
        _("Only one layer at {spec}: most fragile on top", spec=ad.spec_text(spec)),
        current=current_token,
    )
    _layer_chart(fig, "sens-only")
    top = table.iloc[0]
    st.caption(
        widgets.sentences(
            _(
                "Each row quantizes **only** that layer. Orange: how much {metric} drops (longer = more fragile; at "
                "or below zero = no measurable loss, or a lucky gain). Blue: how close the outputs stay to the float "
                "model's (output SQNR, higher = closer). **Click a bar** to make that layer the sidebar's layer. Most "
                "fragile here: {layer} ({metric} {value} instead of {float_value}).",
                metric=metric,
                layer=f"`{controls.layer_token(top['layer'])}`",
                value=widgets.fmt(top["metric"]),
                float_value=widgets.fmt(top["float_metric"]),
            ),
            _provenance(ad.sensitivity_key(settings.model, spec, "only")),
        )
    )
    _layer_actions(controls.layer_token(top["layer"]), TOP_FRAGILE)
    _download(table, "only")


def _keep_view() -> None:
    table = _sensitivity_table("all_but")
    if table is None:
        return
    all_drop = float((table["recovered_drop"] + table["metric_drop"]).iloc[0])
    fig = af.layer_bars(
        [short[n] for n in table["layer"]],
        [controls.layer_token(n) for n in table["layer"]],
        table["recovered_drop"],
        table["sqnr_gain_db"],
        _("{metric} won back", metric=metric),
        _("output SQNR gain (dB)"),
        _("All layers at {spec} except one: best layer to keep in float on top", spec=ad.spec_text(spec)),
        current=current_token,
        reference=all_drop,
        reference_label=_(
            "total {metric} drop with every layer quantized: {value}", metric=metric, value=f"{all_drop:.3g}"
        ),
    )
    _layer_chart(fig, "sens-keep")
    top = table.iloc[0]
    st.caption(
        widgets.sentences(
            _(
                "Each row quantizes **every layer except** that one. Orange: how much of the {metric} drop comes back "
                "by keeping that single layer float (the dashed line is all there is to win back). Blue: how much "
                "closer the outputs get, in dB. Keeping {layer} in float brings {metric} to {value} (float "
                "{float_value}). **Click a bar** to make that layer the sidebar's layer.",
                metric=metric,
                layer=f"`{controls.layer_token(top['layer'])}`",
                value=widgets.fmt(top["metric"]),
                float_value=widgets.fmt(top["float_metric"]),
            ),
            _provenance(ad.sensitivity_key(settings.model, spec, "all_but")),
        )
    )
    _layer_actions(controls.layer_token(top["layer"]), TOP_KEEP)
    _download(table, "all-but")


def _sweep(place: str) -> tuple[pd.DataFrame | None, QuantSpec]:
    """The layers × bits sweep (shared by the heatmap and the mixed-precision search) and its spec.

    ``place`` names where the page asks for it (each place needs its own button key).
    """
    sweep_spec, note = ad.integer_spec(spec)
    if note and place == "heatmap":
        st.caption(_("Note: {note}.", note=note))
    bits = ", ".join(map(str, ad.SWEEP_BITS))
    n = len(infos)
    table = job_views.obtain(
        ad.sweep_key(settings.model, sweep_spec),
        ad.compute_sweep,
        (settings.model, sweep_spec, ad.SWEEP_BITS),
        ngettext("Probing {n} layer at {bits} bits…", "Probing {n} layers at {bits} bits…", n, n=n, bits=bits),
        lambda: ad.sweep_estimate(settings.model),
        ngettext(
            "Run the bit-width sweep ({n} layer × {widths} widths)",
            "Run the bit-width sweep ({n} layers × {widths} widths)",
            n,
            n=n,
            widths=len(ad.SWEEP_BITS),
        ),
        f"run-sweep-{place}",
    )
    return table, sweep_spec


def _heatmap_view() -> None:
    sweep, sweep_spec = _sweep("heatmap")
    if sweep is None:
        return
    drop = sensitivity_matrix(sweep, "metric_drop")
    sqnr = sensitivity_matrix(sweep, "output_sqnr_db").reindex(drop.index)
    layer_names = list(drop.index)
    fig = af.sensitivity_heatmap(
        [short[n] for n in layer_names],
        [controls.layer_token(n) for n in layer_names],
        [int(b) for b in drop.columns],
        drop.to_numpy(dtype=np.float64),
        sqnr.to_numpy(dtype=np.float64),
        metric,
        current_bits=spec.bits if spec.is_integer_grid else None,
        current=current_token,
    )
    st.plotly_chart(fig, key="sens-heatmap", config={"displaylogo": False})
    st.caption(
        widgets.sentences(
            _(
                "Each cell quantizes only that layer at that width ({spec}) and shows the {metric} drop: white = no "
                "loss (a small negative number: it happened to score a little better - evaluation noise). Read a row "
                "left to right: where it turns white is the fewest bits that layer tolerates. Rows: most fragile at "
                "the lowest width first; the framed column is the sidebar's bit width, the bold name the sidebar's "
                "layer. Hover for the output SQNR.",
                spec=ad.spec_text(sweep_spec).split(" ", 1)[1],
                metric=metric,
            ),
            _provenance(ad.sweep_key(settings.model, sweep_spec)),
        )
    )
    _download(sweep, "sweep")


def _provenance(key: str) -> str:
    """``Computed in 19 s at 14:02:10 on this server, shared with everyone.`` (empty for a quick result)."""
    at = job_views.computed_at(key, min_seconds=job_views.AUTO_RUN_SECONDS)
    return _("Computed in {seconds} s at {time} on this server, shared with everyone.", **at) if at else ""


def _download(table: pd.DataFrame, what: str) -> None:
    """The table as CSV: its columns are quantlib's (``metric_drop``, ``output_sqnr_db``), named like the code."""
    st.download_button(
        _("⬇️ Download this table (CSV)"),
        table.to_csv(index=False),
        file_name=_("sensitivity_{model}_{what}.csv", model=settings.model, what=what),
        mime="text/csv",
        key=f"csv-{what}",
    )


# --- mixed precision -------------------------------------------------------------------------------------------


def _mixed_precision(view: str) -> None:
    """The budget search under the sensitivity views; ``view`` is the view shown above (the heatmap already
    offers the sweep the search needs)."""
    st.subheader(_("🎚️ Mixed precision: a bit width per layer under a budget"))
    st.markdown(
        _(
            "Pick an average number of bits per weight. A greedy search starts with every layer at {bits} bits "
            "and repeatedly lowers the layer that costs the least {metric} per byte saved (from the bit-width "
            "sweep: every layer alone at 2-8 bits), until the budget is met; then the result is **measured**. If "
            "a uniform width that fits measures better, that one is used.",
            bits=max(ad.SWEEP_BITS),
            metric=metric,
        )
    )
    sweep_spec, _note = ad.integer_spec(spec)
    key = ad.sweep_key(settings.model, sweep_spec)
    if view == VIEW_HEATMAP and jobs.runner().result(key) is None and jobs.runner().job(key) is None:
        st.caption(_("The search needs the bit-width sweep: run it with the button above."))
        return
    sweep, sweep_spec = _sweep("mixed")
    if sweep is None:
        return
    budget = float(
        controls.page_widget(
            st.slider,
            _("Budget: average bits per weight"),
            "avg_bits",
            min_value=BUDGET_MIN,
            max_value=BUDGET_MAX,
            value=BUDGET_DEFAULT,
            step=BUDGET_STEP,
            help=_(
                "Σ weights × bits / Σ weights over the layers, without the scales. 8 = every layer at 8 bits; "
                "4 = as small as uniform int4, but spent where it matters."
            ),
        )
    )
    choice = job_views.obtain(
        ad.choice_key(settings.model, sweep_spec, budget),
        ad.compute_choice,
        (settings.model, sweep_spec, sweep, budget),
        _("Choosing and measuring the best mix for {budget} bits per weight…", budget=f"{budget:g}"),
        lambda: 3 * ad.probe_seconds(settings.model),
        "",
        "",
        auto=True,
    )
    _choice_metrics(choice)
    order = [n for n in names if n in choice["assignment"]]
    left, right = st.columns([2, 3], gap="medium")
    with left:
        st.plotly_chart(
            af.bits_per_layer(
                [short[n] for n in order],
                [controls.layer_token(n) for n in order],
                [choice["assignment"][n] for n in order],
                [next(i.numel for i in infos if i.name == n) for n in order],
                _("Bits per layer for ≤ {budget} bits/weight", budget=f"{budget:g}"),
            ),
            key="mp-bits",
            config={"displaylogo": False},
        )
    with right:
        front = job_views.obtain(
            ad.pareto_key(settings.model, sweep_spec),
            ad.compute_pareto,
            (settings.model, sweep_spec, sweep),
            _("Measuring the size / metric trade-off (mixes for 9 budgets and uniform 8, 6, 4 bits)…"),
            lambda: ad.pareto_estimate(settings.model),
            "",
            "",
            auto=True,
        )
        st.plotly_chart(
            af.pareto_chart(front, metric, sm.higher_is_better, sm.float_metrics[sm.metric_name], choice),
            key="mp-pareto",
            config={"displaylogo": False},
        )
        st.caption(
            _(
                "Each orange point is the best mix the search finds for one budget, measured; the diamonds give "
                "every layer the same width. A mix above-left of a diamond is smaller **and** better. The star is "
                "your budget."
            )
        )
    _export_choice(choice, sweep_spec, budget)


def _export_choice(choice: dict, sweep_spec: QuantSpec, budget: float) -> None:
    """This mix to take away: the compressed-tensors file and the recipe that reproduce the measured model."""
    st.markdown(_("**⬇️ Take this mix with you**"))
    plan = export_data.mixed_plan(sweep_spec, choice["assignment"])
    widths = sorted({s.bits for s in plan.values()})
    export_views.sample_downloads(
        settings.model, plan, f"mixed-{budget:g}bits", "export-mixed",
        _(
            "This mix ({widths}; {spec}), the model measured above. In the file",
            widths=", ".join(f"int{b}" for b in widths),
            spec=ad.spec_text(sweep_spec).split(" ", 1)[1],
        ),
    )


def _choice_metrics(choice: dict) -> None:
    float_metric = choice["float_metric"]
    cols = st.columns(4)
    cols[0].metric(
        _("Average width"),
        _("{bits} bits", bits=f"{choice['avg_bits']:.2f}"),
        help=_("Payload bits per weight over the layers (without scales / zero points)."),
    )
    ratio = choice["float_size_bytes"] / max(choice["size_bytes"], 1)
    cols[1].metric(
        _("Model size"),
        widgets.human_bytes(choice["size_bytes"]),
        delta=_("{ratio}× smaller than float32", ratio=f"{ratio:.1f}"),
        delta_color="off",
        delta_arrow="off",
        help=_("All parameters: quantized weights with their scales, biases and norms in float32."),
    )
    cols[2].metric(
        _("{metric} (measured)", metric=metric),
        widgets.fmt(choice["metric"]),
        delta=_("{delta} vs float", delta=f"{choice['metric'] - float_metric:+.3g}"),
        delta_color="normal" if sm.higher_is_better else "inverse",
        help=_(
            "The quantized model evaluated on its evaluation set; the float model scores {value}.",
            value=f"{float_metric:.4g}",
        ),
    )
    if choice["uniform_bits"] is not None:
        u = choice["uniform_metric"]
        cols[3].metric(
            _("Uniform int{bits} instead", bits=choice["uniform_bits"]),
            widgets.fmt(u),
            delta=_("{delta} vs float", delta=f"{u - float_metric:+.3g}"),
            delta_color="normal" if sm.higher_is_better else "inverse",
            help=_("The widest single width for every layer that fits the same budget, measured."),
        )
    else:
        cols[3].metric(_("Uniform width instead"), "–", help=_("No single width fits this budget."))
    if choice["method"] == "uniform":
        st.caption(
            _(
                "Here the uniform int{bits} model measured better than the greedy mix, so it is the answer: the "
                "per-layer drops do not always add up the way the search predicts.",
                bits=choice["uniform_bits"],
            )
        )


# --- the page ---------------------------------------------------------------------------------------------------



def _in_language(lang: str, message: str) -> str:
    return i18n.translations(lang).gettext(message)


def _view_from_any_language() -> None:
    """Read a link's ``sens_view`` in any language before the radio does.

    Streamlit binds a radio to the URL by its *shown* label (``format_func``), so a Chinese session's address
    bar carries ``sens_view=所有位宽`` and only accepts the labels of its own language. A link made in the
    other language (or the English value a shared link spells) would be dropped; here it becomes the view it
    names, set before the widget exists (the URL then updates to this session's label).
    """
    if "sens_view" in st.session_state:
        return
    raw = st.query_params.get("sens_view")
    if raw is None or raw in [_(v) for v in VIEWS]:
        return  # absent, or this language's label: the widget reads it itself
    for value in VIEWS:
        if raw in {i18n.translations(lang).gettext(value) for lang in i18n.LANGUAGES}:
            st.session_state["sens_view"] = value
            return


_view_from_any_language()
view = controls.page_widget(
    st.radio,
    _("View"),
    "sens_view",
    options=VIEWS,
    index=0,
    # In the language of this run, bound now: a format_func is also called outside the script (AppTest).
    format_func=functools.partial(_in_language, i18n.current()),
    horizontal=True,
    label_visibility="collapsed",
    help=_(
        "Quantize one layer: each layer alone. Keep one layer in float: all layers but one. All bit widths: "
        "each layer alone at 2-8 bits."
    ),
)
with widgets.friendly_errors(_("measure the sensitivity of the layers")):
    try:
        {VIEW_ONLY: _only_view, VIEW_KEEP: _keep_view, VIEW_HEATMAP: _heatmap_view}[view]()
    except jobs.ServerBusy as busy:
        st.warning(job_views.message(busy), icon="⏳")

st.divider()
with widgets.friendly_errors(_("search a bit width per layer")):
    try:
        _mixed_precision(view)
    except jobs.ServerBusy as busy:
        st.warning(job_views.message(busy), icon="⏳")
