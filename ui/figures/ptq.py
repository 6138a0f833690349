"""Plotly figures of the "Algorithms" page. Pure: small arrays in, ``go.Figure`` out.

Same conventions as :mod:`ui.figures` (its layout helper and colours): one ``go.Figure`` call from plain dicts,
float32 arrays (shipped as base64), so MiniLM's 1536 channels or 37 layers × 7 methods stay a few kB.
Titles, axes, legends and hover text are in the session's language (the page draws these figures directly,
never through a shared figure cache); method labels and metric names come in as the page shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ui.figures.explorer import (
    CURVE_COLORS,
    FLOAT_COLOR,
    GRID_COLOR,
    QUANT_COLOR,
    axis_layout,
    f32,
    log_axis_layout,
    make_figure,
)
from ui.i18n import _

#: RTN is drawn grey in every chart: the baseline the colours are compared with.
RTN_COLOR = "#9D9D9D"


def colors_for(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per method label: grey for the RTN baselines, then the curve colours in order."""
    out, i = {}, 0
    for label in labels:
        if label.startswith("RTN"):
            out[label] = RTN_COLOR if label == "RTN" else "#5F5F5F"
        else:
            out[label] = CURVE_COLORS[(i + 1) % len(CURVE_COLORS)]
            i += 1
    return out


def metric_bars(labels: Sequence[str], values: Sequence[float], float_value: float, metric: str) -> go.Figure:
    """The task metric of each method as bars, with the float model's value as a dashed line."""
    colors = colors_for(labels)
    data = [
        {"type": "bar", "x": list(labels), "y": f32(values), "marker": {"color": [colors[lab] for lab in labels]},
         "text": [f"{v:.3f}" for v in values], "textposition": "outside", "cliponaxis": False,
         "hovertemplate": "%{x}: %{y:.4f}<extra></extra>", "showlegend": False},
        {"type": "scatter", "x": [labels[0], labels[-1]], "y": f32([float_value, float_value]), "mode": "lines",
         "line": {"color": FLOAT_COLOR, "dash": "dash"}, "name": _("float model: {value}", value=f"{float_value:.3f}"),
         "hoverinfo": "skip"},
    ]
    lo = min(min(values), float_value)
    hi = max(max(values), float_value)
    pad = 0.12 * (hi - lo) if hi > lo else 0.05
    return make_figure(
        data, _("Task metric: {metric}", metric=metric), 300, legend=True, legend_rows=1,
        xaxis=axis_layout("", type="category"), yaxis=axis_layout(metric, range=[lo - pad, hi + pad]),
    )


def layer_errors(short: Sequence[str], errors: Mapping[str, Sequence[float]]) -> go.Figure:
    """Per-layer reconstruction error ‖WX − ŴX‖² / ‖WX‖² of each method (log scale), layers in model order."""
    colors = colors_for(list(errors))
    x = list(range(len(short)))
    data = []
    for label, values in errors.items():
        v = np.asarray(values, dtype=np.float64)
        v = np.where(v > 0, v, np.nan)  # an exact layer has no place on a log axis
        data.append(
            {"type": "scatter", "x": x, "y": f32(v), "mode": "lines+markers", "name": label,
             "line": {"color": colors[label], "width": 2 if label.startswith("RTN") else 1.5},
             "marker": {"size": 5}, "customdata": list(short),
             "hovertemplate": f"{label}<br>%{{customdata}}: %{{y:.3g}}<extra></extra>"}
        )
    tickvals = x if len(x) <= 12 else x[:: max(1, len(x) // 12)]
    return make_figure(
        data, _("Layer reconstruction error (lower is better)"), 330,
        xaxis=axis_layout(_("layer"), tickvals=tickvals, ticktext=[short[i] for i in tickvals], tickangle=-40),
        yaxis=log_axis_layout("‖WX − ŴX‖² / ‖WX‖²"),
    )


def outlier_chart(before: Sequence[float], after: Sequence[float], alpha: float, step_before: float,
                  step_after: float) -> go.Figure:
    """Per-channel max|x| of a layer's input before and after SmoothQuant's migration, with the per-tensor
    activation grid's step drawn as a line for each."""
    n = len(before)
    x = {"x0": 0, "dx": 1}  # channel numbers implied: no index array to ship
    data = [
        {"type": "bar", **x, "y": f32(before), "name": _("before: max|X_j|"), "marker": {"color": GRID_COLOR},
         "hovertemplate": _("channel %{x}: %{y:.3g}<extra>before</extra>")},
        {"type": "bar", **x, "y": f32(after), "opacity": 0.8, "name": _("after: max|X_j| / s_j (α = {alpha})", alpha=f"{alpha:g}"),
         "marker": {"color": QUANT_COLOR}, "hovertemplate": _("channel %{x}: %{y:.3g}<extra>after</extra>")},
        {"type": "scatter", "x": [0, n - 1], "y": f32([step_before, step_before]), "mode": "lines",
         "name": _("grid step before"), "line": {"color": "#000000", "dash": "dash", "width": 2}, "hoverinfo": "skip"},
        {"type": "scatter", "x": [0, n - 1], "y": f32([step_after, step_after]), "mode": "lines",
         "name": _("grid step after"), "line": {"color": FLOAT_COLOR, "dash": "dash", "width": 2}, "hoverinfo": "skip"},
    ]
    values = np.asarray([*before, *after, step_before, step_after], dtype=np.float64)
    values = values[values > 0]
    y_range = None
    if values.size:  # the grid-step lines can sit below every bar: keep them in view
        y_range = [float(np.log10(values.min())) - 0.1, float(np.log10(values.max())) + 0.1]
    return make_figure(
        data, _("Largest |activation| of each input channel (log scale)"), 300, barmode="overlay", bargap=0,
        xaxis=axis_layout(_("input channel")), yaxis=log_axis_layout("max |x|", range=y_range),
    )
