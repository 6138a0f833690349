"""Energy per inference on the Size & speed page: the counting job, the figure, and the section.

Counting MACs runs the model under ``torch.utils.flop_counter.FlopCounterMode``, which installs *global* module
hooks while it is active: in the server they would fire on every session's forward pass in every thread. So the
count runs in the job runner's worker process (:func:`compute_counts`), once per model, shared by everyone; the
energy arithmetic on the counts is instant and done in the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from quantlib import QuantSpec, energy
from ui import jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import export as export_data
from ui.figures.analysis import KEPT_FLOAT_COLOR
from ui.figures.explorer import FLOAT_COLOR, QUANT_COLOR, axis_layout, f32, make_figure
from ui.i18n import N_, _
from ui.views import jobs as job_views

#: The operations of quantlib.energy's table (its keys, English data) as the section shows them.
OPERATIONS: dict[str, str] = {
    "int8 add": N_("int8 add"),
    "int32 add": N_("int32 add"),
    "int8 multiply": N_("int8 multiply"),
    "int32 multiply": N_("int32 multiply"),
    "fp16 add": N_("fp16 add"),
    "fp16 multiply": N_("fp16 multiply"),
    "fp32 add": N_("fp32 add"),
    "fp32 multiply": N_("fp32 multiply"),
    "32-bit SRAM read (8 kB)": N_("32-bit SRAM read (8 kB)"),
    "32-bit DRAM read": N_("32-bit DRAM read"),
}
#: The per-layer table's columns (quantlib.energy's names) as headers.
COLUMNS: dict[str, str] = {
    "layer": N_("layer"),
    "macs": N_("MACs"),
    "weight_bytes": N_("weight bytes"),
    "arithmetic_pj": N_("arithmetic pJ"),
    "weights_pj": N_("weights pJ"),
    "activations_pj": N_("activations pJ"),
    "total_pj": N_("total pJ"),
}

FORMULA = (
    r"\begin{aligned}E \approx \sum_\ell \Big[&\mathrm{MACs}_\ell\,(E_{\times} + E_{+}) \\ "
    r"&+ \tfrac{\mathrm{bytes}(W_\ell)}{4}\,E_{\text{DRAM}} + \tfrac{\mathrm{bytes}(x_\ell, y_\ell)}{4}\,"
    r"E_{\text{SRAM}}\Big]\end{aligned}"
)


def counts_key(model: str) -> str:
    return f"energy-counts|{model}"


def compute_counts(model: str, progress: Any = None) -> energy.Counts:
    """MACs and activation sizes of one example of ``model`` (job function: runs in a worker process)."""
    if progress is not None:
        progress(0, 1, N_("counting multiply-accumulates"))
    sm = sources.sample(model)
    return energy.count_model(sm.model, sm.eval_inputs)


def joules(pj: float) -> str:
    """``12.3 nJ`` / ``4.56 µJ`` / ``1.2 mJ`` from picojoules."""
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def settings(
    counts: energy.Counts,
    infos: Mapping[str, Any],
    spec: QuantSpec,
    plan: Mapping[str, QuantSpec],
    mixed: Mapping[str, QuantSpec] | None,
) -> list[dict[str, Any]]:
    """One row per setting: ``label`` (long), ``short`` (a metric's title), the per-layer table and totals.

    Built on every run (not cached): the labels are in the session's language.
    """
    rows = [(_("float32 (weights, activations, arithmetic)"), "float32", None, False)]
    shown = ad.spec_text(spec)
    rows.append((_("{spec} weights, fp32 arithmetic", spec=shown), _("{spec} weights", spec=shown), plan, False))
    if spec.is_integer_grid and spec.bits <= 8:
        rows.append(
            (_("int{bits} weights + int8 activations, integer arithmetic", bits=spec.bits),
             _("W{bits}A8 integer", bits=spec.bits), plan, True)
        )
    if mixed:
        widths = "/".join(str(b) for b in sorted({s.bits for s in mixed.values()}))
        rows.append((_("mixed-precision mix (int{widths}) weights, fp32 arithmetic", widths=widths),
                     _("mixed-precision mix"), mixed, False))
    out = []
    for label, short, p, integer in rows:
        table = energy.energy_table(counts, infos, p, integer_arithmetic=integer)
        out.append({"label": label, "short": short, "table": table, **energy.totals(table)})
    return out


def energy_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Stacked horizontal bars per setting: arithmetic, weights from DRAM, activations through SRAM (in the
    largest of nJ / µJ / mJ that keeps the longest bar at 10 or more)."""
    labels = [r["label"] for r in rows]
    top = max(r["total_pj"] for r in rows)
    unit, scale = next(((u, k) for u, k in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)) if top >= 10 * k), ("pJ", 1.0))
    parts = [
        (_("arithmetic (MACs)"), "arithmetic_pj", QUANT_COLOR),
        (_("weights from DRAM"), "weights_pj", FLOAT_COLOR),
        (_("activations via SRAM"), "activations_pj", KEPT_FLOAT_COLOR),
    ]
    traces, base = [], [0.0] * len(rows)
    for name, col, color in parts:
        vals = [r[col] / scale for r in rows]
        traces.append(
            {"type": "bar", "orientation": "h", "x": f32(vals), "y": labels, "base": f32(base), "name": name,
             "marker": {"color": color}, "customdata": [joules(r[col]) for r in rows],
             "hovertemplate": _("{name}: {value}", name=name, value="%{customdata}") + "<extra></extra>"}
        )
        base = [b + v for b, v in zip(base, vals, strict=True)]
    return make_figure(
        traces, _("Energy per inference (estimate, 45 nm)"), 60 + 42 * len(rows), barmode="overlay", bargap=0.3,
        xaxis=axis_layout(_("{unit} per example", unit=unit)),
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": labels, "autorange": "reversed",
               "automargin": True, "tickfont": {"size": 11}},
    )


def _mixed_plan(model: str, spec: QuantSpec) -> tuple[dict[str, QuantSpec] | None, float | None]:
    """The mix the Layer sensitivity page chose for this model at its budget, when the server has it."""
    sweep_spec, _note = ad.integer_spec(ad.model_wide_spec(model, spec)[0])
    try:
        budget = float(st.session_state.get("avg_bits", 5.0))
    except (TypeError, ValueError):
        return None, None
    choice = jobs.runner().result(ad.choice_key(model, sweep_spec, budget))
    if choice is None:
        return None, budget
    return export_data.mixed_plan(sweep_spec, choice["assignment"]), budget


def section(model: str, spec: QuantSpec) -> None:
    """The energy section of Size & speed for a sample model at the sidebar's spec."""
    st.subheader(_("🔋 Energy per inference (an estimate)"))
    st.markdown(
        _(
            "Fewer bits also mean less energy - mostly because **moving a weight costs far more than multiplying "
            "with it**. At 45 nm a 32-bit read from DRAM takes 640 pJ, an fp32 multiply 3.7 pJ and an int8 "
            "multiply 0.2 pJ. Below, the multiply-accumulates of one example (counted by PyTorch's "
            "`FlopCounterMode`) and the bytes it moves, times those costs."
        )
    )
    st.latex(FORMULA)
    counts = job_views.obtain(
        counts_key(model), compute_counts, (model,), _("Counting the multiply-accumulates…"), lambda: 1.0, "", "",
        auto=True,
    )
    infos = {i.name: i for i in sources.layers(model)}
    plan, _kept = export_data.sample_plan(model, spec)
    mixed, budget = _mixed_plan(model, spec)
    rows = settings(counts, infos, spec, plan, mixed)
    st.plotly_chart(energy_figure(rows), key="energy-bars", config={"displaylogo": False})
    base = rows[0]["total_pj"]
    cols = st.columns(len(rows))
    for col, r in zip(cols, rows, strict=True):
        col.metric(
            r["short"],
            joules(r["total_pj"]),
            delta=None if r is rows[0] else _("{ratio}× less than float", ratio=f"{base / max(r['total_pj'], 1e-9):.1f}"),
            delta_color="off",
            delta_arrow="off",
            help=r["label"],
        )
    mix_note = (
        _("The mix is the one Layer sensitivity chose for {budget} bits per weight.", budget=f"{budget:g}")
        if mixed
        else _("Choose a mix on the 🧨 Layer sensitivity page and it appears here too.")
    )
    st.caption(
        widgets.sentences(
            *(
                _(
                    "{macs} multiply-accumulates per example. Weight-only quantization keeps the arithmetic in fp32 "
                    "(weights are dequantized before the multiply): it saves the weight traffic only. Integer "
                    "arithmetic needs the activations on an int8 grid too (int8 × int8 into an int32 accumulator).",
                    macs=f"{int(counts.total_macs):,}",
                ),
                mix_note,
                _(
                    "**An estimate for one process node** and a simple memory model (every weight read from DRAM "
                    "once per example, activations through an 8 kB SRAM, no caches or reuse across a batch): read "
                    "the ratios, not the joules. Operations `FlopCounterMode` has no formula for (attention on CPU) "
                    "are not counted."
                ),
                _("Source: {citation}.", citation=energy.CITATION),
            )
        )
    )
    with st.expander(_("The energy table and every layer")):
        # quantlib's table (English operation names, data) worded here; the values stay numbers.
        table = pd.DataFrame(
            {
                _("operation (45 nm)"): [_(OPERATIONS.get(k, k)) for k in energy.HOROWITZ_45NM_PJ],
                "pJ": list(energy.HOROWITZ_45NM_PJ.values()),
            }
        )
        st.dataframe(table, hide_index=True)
        which = rows[1]
        layers = which["table"][list(COLUMNS)]
        st.markdown(_("Per layer at **{setting}**, picojoules per example:", setting=which["label"]))
        st.dataframe(
            layers,
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(_(COLUMNS[c]), format="localized") if c != "layer"
                else st.column_config.TextColumn(_(COLUMNS[c]))
                for c in layers.columns
            },
        )


def safe_section(model: str, spec: QuantSpec) -> None:
    """:func:`section` with its failures in plain words (a busy server, a setting that does not fit)."""
    with widgets.friendly_errors(_("estimate the energy of this model")):
        try:
            section(model, spec)
        except jobs.ServerBusy as busy:
            st.warning(job_views.message(busy), icon="⏳")
