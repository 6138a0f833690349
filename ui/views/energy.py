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
from ui.views import jobs as job_views

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
        progress(0, 1, "counting multiply-accumulates")
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
    """One row per setting: ``label`` (long), ``short`` (a metric's title), the per-layer table and totals."""
    rows = [("float32 (weights, activations, arithmetic)", "float32", None, False)]
    rows.append((f"{spec.label()} weights, fp32 arithmetic", f"{spec.label()} weights", plan, False))
    if spec.is_integer_grid and spec.bits <= 8:
        rows.append(
            (f"int{spec.bits} weights + int8 activations, integer arithmetic", f"W{spec.bits}A8 integer", plan, True)
        )
    if mixed:
        widths = "/".join(str(b) for b in sorted({s.bits for s in mixed.values()}))
        rows.append((f"mixed-precision mix (int{widths}) weights, fp32 arithmetic", "mixed-precision mix", mixed, False))
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
        ("arithmetic (MACs)", "arithmetic_pj", QUANT_COLOR),
        ("weights from DRAM", "weights_pj", FLOAT_COLOR),
        ("activations via SRAM", "activations_pj", KEPT_FLOAT_COLOR),
    ]
    traces, base = [], [0.0] * len(rows)
    for name, col, color in parts:
        vals = [r[col] / scale for r in rows]
        traces.append(
            {"type": "bar", "orientation": "h", "x": f32(vals), "y": labels, "base": f32(base), "name": name,
             "marker": {"color": color}, "customdata": [joules(r[col]) for r in rows],
             "hovertemplate": name + ": %{customdata}<extra></extra>"}
        )
        base = [b + v for b, v in zip(base, vals, strict=True)]
    return make_figure(
        traces, "Energy per inference (estimate, 45 nm)", 60 + 42 * len(rows), barmode="overlay", bargap=0.3,
        xaxis=axis_layout(f"{unit} per example"),
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": labels, "autorange": "reversed",
               "automargin": True, "tickfont": {"size": 11}},
    )


def _mixed_plan(model: str, spec: QuantSpec) -> tuple[dict[str, QuantSpec] | None, float | None]:
    """The mix the Layer sensitivity page chose for this model at its budget, when the server has it."""
    sweep_spec, _ = ad.integer_spec(ad.model_wide_spec(model, spec)[0])
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
    st.subheader("🔋 Energy per inference (an estimate)")
    st.markdown(
        "Fewer bits also mean less energy - mostly because **moving a weight costs far more than multiplying "
        "with it**. At 45 nm a 32-bit read from DRAM takes 640 pJ, an fp32 multiply 3.7 pJ and an int8 "
        "multiply 0.2 pJ. Below, the multiply-accumulates of one example (counted by PyTorch's "
        "`FlopCounterMode`) and the bytes it moves, times those costs."
    )
    st.latex(FORMULA)
    counts = job_views.obtain(
        counts_key(model), compute_counts, (model,), "Counting the multiply-accumulates…", lambda: 1.0, "", "",
        auto=True,
    )
    infos = {i.name: i for i in sources.layers(model)}
    plan, _ = export_data.sample_plan(model, spec)
    mixed, budget = _mixed_plan(model, spec)
    rows = settings(counts, infos, spec, plan, mixed)
    st.plotly_chart(energy_figure(rows), key="energy-bars", config={"displaylogo": False})
    base = rows[0]["total_pj"]
    cols = st.columns(len(rows))
    for col, r in zip(cols, rows, strict=True):
        col.metric(
            r["short"],
            joules(r["total_pj"]),
            delta=None if r is rows[0] else f"{base / max(r['total_pj'], 1e-9):.1f}× less than float",
            delta_color="off",
            delta_arrow="off",
            help=r["label"],
        )
    mix_note = (
        f" The mix is the one Layer sensitivity chose for {budget:g} bits per weight."
        if mixed
        else " Choose a mix on the 🧨 Layer sensitivity page and it appears here too."
    )
    st.caption(
        f"{int(counts.total_macs):,} multiply-accumulates per example. Weight-only quantization keeps the "
        "arithmetic in fp32 (weights are dequantized before the multiply): it saves the weight traffic only. "
        "Integer arithmetic needs the activations on an int8 grid too (int8 × int8 into an int32 accumulator)."
        f"{mix_note} **An estimate for one process node** and a simple memory model (every weight read from DRAM "
        "once per example, activations through an 8 kB SRAM, no caches or reuse across a batch): read the ratios, "
        f"not the joules. Operations `FlopCounterMode` has no formula for (attention on CPU) are not counted. "
        f"Source: {energy.CITATION}."
    )
    with st.expander("The energy table and every layer"):
        table = pd.DataFrame(
            {"operation (45 nm)": list(energy.HOROWITZ_45NM_PJ), "pJ": list(energy.HOROWITZ_45NM_PJ.values())}
        )
        st.dataframe(table, hide_index=True)
        which = rows[1]
        layers = which["table"][["layer", "macs", "weight_bytes", "arithmetic_pj", "weights_pj", "activations_pj", "total_pj"]]
        st.markdown(f"Per layer at **{which['label']}**, picojoules per example:")
        st.dataframe(
            layers,
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(c.replace("_", " "), format="localized")
                for c in layers.columns if c != "layer"
            },
        )


def safe_section(model: str, spec: QuantSpec) -> None:
    """:func:`section` with its failures in plain words (a busy server, a setting that does not fit)."""
    with widgets.friendly_errors("estimate the energy of this model"):
        try:
            section(model, spec)
        except jobs.ServerBusy as busy:
            st.warning(str(busy), icon="⏳")
