"""Plotly figure builders: pre-reduced arrays in, ``go.Figure`` out. Pure - no Streamlit, no quantlib, no I/O.

Every builder takes what is already small (histogram counts and edges, curve points, a few thousand scatter
points) so the figure's JSON stays a few kB whatever the tensor size. Arrays go in as float32 numpy arrays,
which plotly ships as compact base64 ("bdata") instead of decimal text.

Two speed choices, both measured:

- Each figure is built in one ``go.Figure(data=[...], layout={...})`` call from plain dicts. Plotly validates a
  dict spec in one pass; ``make_subplots`` + ``add_bar`` + ``add_vline`` + ``update_layout`` re-validate the
  growing figure at every step and took ~25 ms for the value histogram against ~1 ms this way - on a 2-core
  server that is the difference between a slider that follows the hand and one that lags.
- No plotly template (``template="none"``): Streamlit's theme styles the chart in the browser, and a template
  would add several kB to every chart message.

Texts (titles, axis titles, legend entries, hover templates) are translated with ``_()`` when a figure is built,
which is at display time; a figure shared by ``ui.widgets.chart`` is keyed by the session's language too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.i18n import N_, _

FLOAT_COLOR = "#4C78A8"
QUANT_COLOR = "#F58518"
ERROR_COLOR = "#E45756"
GRID_COLOR = "#444444"
CLIP_COLOR = "#D62728"
HIGHLIGHT_COLOR = "#D62728"
BEST_COLOR = "#54A24B"
CURVE_COLORS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#72B7B2", "#9D755D")
STAR = {"symbol": "star", "size": 18, "color": HIGHLIGHT_COLOR, "line": {"width": 1}}

Trace = dict[str, Any]


def f32(a: Sequence[float] | np.ndarray) -> np.ndarray:
    """float32: half the bytes of float64 in a chart message, and plenty for a plot."""
    return np.asarray(a, dtype=np.float32)


def legend_entries(data: list[Trace]) -> int:
    """How many entries the legend shows (traces sharing a legend group count once)."""
    seen = set()
    for trace in data:
        if trace.get("showlegend", True) is not False and trace.get("name"):
            seen.add(trace.get("legendgroup") or trace["name"])
    return len(seen)


def make_figure(
    data: list[Trace], title: str, height: int, legend: bool = True, legend_rows: int | None = None, **layout: Any
) -> go.Figure:
    """One figure from plain dicts, with the common layout; ``height`` is the plot's, without the top margin.

    The title sits at the top and the legend right under it, both in the top margin, which is sized for the
    legend wrapped two entries to a line (a phone) unless ``legend_rows`` says how many lines the legend takes
    (long entries); on a wide screen that leaves a little air, never an overlap.
    """
    if not legend:
        rows = 0
    elif legend_rows is not None:
        rows = legend_rows
    else:
        rows = -(-legend_entries(data) // 2)
    top = 42 + 22 * rows
    base = {
        "template": "none",
        "title": {"text": title, "font": {"size": 15}, "y": 1.0, "yref": "container", "yanchor": "top",
                  "x": 0.01, "pad": {"t": 10}},
        "height": height + top,
        "margin": {"l": 10, "r": 10, "t": top, "b": 10},
        "showlegend": legend,
        "legend": {"orientation": "h", "yref": "container", "yanchor": "top", "y": 1 - 36 / (height + top),
                   "xanchor": "left", "x": 0},
        "hovermode": "closest",
    }
    return go.Figure(data=data, layout={**base, **layout})


def _bins(edges: np.ndarray) -> dict[str, float]:
    """Uniform bins as ``x0`` / ``dx`` / ``width``: no array of bin centres to ship."""
    edges = np.asarray(edges, dtype=np.float64)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 1.0
    return {"x0": float(edges[0]) + width / 2, "dx": width, "width": width}


def axis_layout(title: str, **more: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "automargin": True, **more}


def log_axis_layout(title: str, **more: Any) -> dict[str, Any]:
    return axis_layout(title, type="log", exponentformat="power", **more)


def value_histogram(
    edges: np.ndarray,
    float_counts: np.ndarray,
    quant_counts: np.ndarray,
    grid: np.ndarray | None = None,
    clip: tuple[float, float] | None = None,
    log_y: bool = False,
    title: str | None = None,
    x_title: str | None = None,
) -> go.Figure:
    """Float histogram on top, dequantized histogram below (same bins, shared x), grid levels as a rug under
    the dequantized one and the clip range as dashed lines through both.

    Two panels, each with its own count axis: after quantization every value sits on a grid level, so the
    lower panel collapses into tall spikes that would flatten the float histogram on a shared axis.
    ``title`` and ``x_title`` are shown as given (already translated); by default the explorer's.
    """
    bins = _bins(edges)
    float_name, quant_name = _("float"), _("dequantized")
    # i18n: Plotly hover template: keep %{x:.4g} and %{y} as they are.
    values_hover = _("%{x:.4g}: %{y} values")
    data: list[Trace] = [
        {
            "type": "bar", **bins, "y": f32(float_counts), "name": float_name,
            "marker": {"color": FLOAT_COLOR}, "opacity": 0.85, "xaxis": "x", "yaxis": "y",
            "hovertemplate": f"{values_hover}<extra>{float_name}</extra>",
        },
        {
            "type": "bar", **bins, "y": f32(quant_counts), "name": quant_name,
            "marker": {"color": QUANT_COLOR}, "opacity": 0.9, "xaxis": "x", "yaxis": "y2",
            "hovertemplate": f"{values_hover}<extra>{quant_name}</extra>",
        },
    ]
    if grid is not None and len(grid):
        # A rug on a hidden [0, 1] axis over the lower panel: at its bottom on a linear or a log count scale.
        data.append(
            {
                "type": "scatter", "x": f32(grid), "y": np.full(len(grid), 0.03, dtype=np.float32),
                "xaxis": "x", "yaxis": "y3", "mode": "markers", "name": _("grid levels ({n})", n=len(grid)),
                "marker": {"symbol": "line-ns-open", "size": 16, "color": GRID_COLOR, "line": {"width": 1.5}},
                # i18n: Plotly hover template: keep %{x:.4g} as it is.
                "hovertemplate": _("grid level %{x:.4g}") + "<extra></extra>",
            }
        )
    shapes = []
    if clip is not None:
        line = {"color": CLIP_COLOR, "dash": "dash", "width": 1.5}
        shapes = [
            {"type": "line", "x0": float(v), "x1": float(v), "y0": 0, "y1": 1, "xref": "x", "yref": "paper",
             "line": line}
            for v in clip
        ]
        # Shapes have no legend entry: an empty line trace names them.
        data.append(
            {"type": "scatter", "x": [None], "y": [None], "mode": "lines", "line": line, "xaxis": "x",
             "yaxis": "y", "name": _("clip range [{lo}, {hi}]", lo=f"{clip[0]:.3g}", hi=f"{clip[1]:.3g}")}
        )
    scale = {"type": "log" if log_y else "linear", "exponentformat": "power"}
    return make_figure(
        data, _("Values before and after quantization") if title is None else title, 520,
        barmode="overlay", bargap=0, shapes=shapes,
        xaxis=axis_layout(_("value") if x_title is None else x_title, anchor="y2"),
        yaxis=axis_layout(_("float: count"), domain=[0.53, 1.0], **scale),
        yaxis2=axis_layout(_("quantized: count"), domain=[0.0, 0.47], **scale),
        yaxis3={"overlaying": "y2", "range": [0, 1], "visible": False, "fixedrange": True},
    )


def error_histogram(edges: np.ndarray, counts: np.ndarray, log_y: bool = False) -> go.Figure:
    """Histogram of the quantization error ``x̂ - x``."""
    data = [{"type": "bar", **_bins(edges), "y": f32(counts), "name": _("error"),
             "marker": {"color": ERROR_COLOR}, "opacity": 0.8}]
    return make_figure(
        data, _("Quantization error"), 300, legend=False, bargap=0,
        xaxis=axis_layout(_("error  x̂ − x")),
        yaxis=axis_layout(_("count"), type="log" if log_y else "linear", exponentformat="power"),
    )


#: The block chart's texts for each kind of block (whole phrases: a unit's name does not compose in every
#: language). Hover templates keep Plotly's %{...} fields.
BLOCK_TEXTS: dict[str, dict[str, str]] = {
    "channel": {
        "max": N_("channel max"), "min": N_("channel min"), "clip": N_("channel clip range"),
        "mse": N_("MSE of the channel"), "hover": N_("channel %{customdata}: MSE %{y:.3g}"),
        "title": N_("Range and error of each channel"), "axis": N_("channels, widest range first"),
    },
    "group": {
        "max": N_("group max"), "min": N_("group min"), "clip": N_("group clip range"),
        "mse": N_("MSE of the group"), "hover": N_("group %{customdata}: MSE %{y:.3g}"),
        "title": N_("Range and error of each group"), "axis": N_("groups, widest range first"),
    },
    "feature": {
        "max": N_("feature max"), "min": N_("feature min"), "clip": N_("feature clip range"),
        "mse": N_("MSE of the feature"), "hover": N_("feature %{customdata}: MSE %{y:.3g}"),
        "title": N_("Range and error of each feature"), "axis": N_("features, widest range first"),
    },
}


def block_chart(blocks: Mapping[str, np.ndarray], unit: str, shared_range: bool) -> go.Figure:
    """Each channel's (or group's) value range against its clip range, and its error, widest first.

    ``blocks`` holds ``index, min, max, clip_lo, clip_hi, mse`` (already sorted and thinned) and ``total``.
    With a shared per-tensor range the clip lines are flat: narrow channels use only a few of the levels.
    """
    n = len(blocks["min"])
    rank = {"x0": 0, "dx": 1}  # blocks are drawn at 0, 1, 2, ...: no x array to ship
    index = np.asarray(blocks["index"], dtype=np.int32)
    clip_line = {"color": CLIP_COLOR, "dash": "dash", "width": 1.5}
    texts = {k: _(v) for k, v in BLOCK_TEXTS[unit].items()}
    clip_name = _("shared clip range") if shared_range else texts["clip"]
    data: list[Trace] = [
        {"type": "scatter", **rank, "y": f32(blocks["max"]), "mode": "lines", "name": texts["max"],
         "line": {"color": FLOAT_COLOR, "width": 1}, "hoverinfo": "skip"},
        {"type": "scatter", **rank, "y": f32(blocks["min"]), "mode": "lines", "name": texts["min"],
         "line": {"color": FLOAT_COLOR, "width": 1}, "fill": "tonexty", "fillcolor": "rgba(76,120,168,0.3)",
         "hoverinfo": "skip"},
        {"type": "scatter", **rank, "y": f32(blocks["clip_hi"]), "mode": "lines", "name": clip_name,
         "legendgroup": "clip", "line": clip_line, "hoverinfo": "skip"},
        {"type": "scatter", **rank, "y": f32(blocks["clip_lo"]), "mode": "lines", "name": clip_name,
         "legendgroup": "clip", "showlegend": False, "line": clip_line, "hoverinfo": "skip"},
        {"type": "scatter", **rank, "y": np.maximum(f32(blocks["mse"]), np.float32(1e-30)), "xaxis": "x",
         "yaxis": "y2", "mode": "markers", "name": texts["mse"], "marker": {"color": ERROR_COLOR, "size": 4},
         "customdata": index, "hovertemplate": texts["hover"] + "<extra></extra>"},
    ]
    axis = texts["axis"]
    if n < blocks["total"]:
        axis = _("{axis} ({n} of {total} shown)", axis=axis, n=f"{n:,}", total=f"{blocks['total']:,}")
    return make_figure(
        data, texts["title"], 480,
        xaxis=axis_layout(axis, anchor="y2"),
        yaxis=axis_layout(_("value range"), domain=[0.42, 1.0]),
        yaxis2=log_axis_layout("MSE", domain=[0.0, 0.36]),
    )


def error_curves_figure(
    curves: Mapping[str, pd.DataFrame],
    current: str,
    current_bits: int,
    points: Mapping[str, tuple[int, float, float]] | None = None,
    reference: Mapping[str, pd.DataFrame] | None = None,
) -> go.Figure:
    """MSE (log) and SQNR vs bit width, one line per setting; the current one bold with its point starred.

    ``curves`` maps a label to a DataFrame with ``bits, mse, sqnr_db``; ``points`` adds single settings (fp8 /
    nf4, which have no bit width to sweep) as ``label -> (bits, mse, sqnr_db)``; ``reference`` adds dotted
    lines (min-max calibration for comparison).
    """
    data: list[Trace] = []
    panels = (("y", "mse"), ("y2", "sqnr_db"))

    def pair(trace: Trace, label: str, xs: np.ndarray, ys: Mapping[str, np.ndarray], legend: bool = True) -> None:
        """The same trace in both panels, one legend entry for the two."""
        for axis, col in panels:
            data.append({**trace, "x": xs, "y": ys[col], "yaxis": axis, "xaxis": "x", "legendgroup": label,
                         "showlegend": legend and axis == "y"})

    for i, (label, df) in enumerate(curves.items()):
        is_current = label == current
        color = HIGHLIGHT_COLOR if is_current else CURVE_COLORS[i % len(CURVE_COLORS)]
        cols = {c: f32(df[c]) for c in ("mse", "sqnr_db")}
        pair(
            {"type": "scatter", "mode": "lines+markers",
             "name": _("{label} (current)", label=label) if is_current else label,
             "line": {"color": color, "width": 3.5 if is_current else 1.5}, "marker": {"size": 5}},
            label, f32(df["bits"]), cols,
        )
        if is_current and current_bits in set(df["bits"]):
            hit = df[df["bits"] == current_bits].iloc[0]
            star = {"type": "scatter", "mode": "markers", "name": _("current setting"), "marker": STAR}
            # No legend entry of its own: the star is explained under the chart, and the legend stays short.
            pair(star, label, f32([current_bits]), {c: f32([hit[c]]) for c in ("mse", "sqnr_db")}, legend=False)
    for label, df in (reference or {}).items():
        pair({"type": "scatter", "mode": "lines", "name": label,
              "line": {"color": GRID_COLOR, "dash": "dot", "width": 1.5}},
             label, f32(df["bits"]), {c: f32(df[c]) for c in ("mse", "sqnr_db")})
    for label, (bits, mse, sqnr) in (points or {}).items():
        pair({"type": "scatter", "mode": "markers", "name": label, "marker": STAR}, label, f32([bits]),
             {"mse": f32([mse]), "sqnr_db": f32([sqnr])})
    return make_figure(
        data, _("Error vs bit width"), 640,
        xaxis=axis_layout(_("bit width"), anchor="y2", dtick=2),
        yaxis=log_axis_layout(_("MSE (log, lower is better)"), domain=[0.53, 1.0]),
        yaxis2=axis_layout(_("SQNR dB (higher is better)"), domain=[0.0, 0.47]),
    )


def clip_figure(df: pd.DataFrame, picked_ratio: float, method: str, bits_label: str) -> go.Figure:
    """MSE vs clip ratio (1.0 = min-max, no clipping) with the calibration method's pick and the best ratio.

    ``method`` and ``bits_label`` are shown as given (the page translates them)."""
    best = df.loc[df["mse"].idxmin()]
    picked_mse = float(np.interp(picked_ratio, df["ratio"], df["mse"]))
    data = [
        {"type": "scatter", "x": f32(df["ratio"]), "y": f32(df["mse"]), "mode": "lines+markers", "name": "MSE",
         "marker": {"size": 5}, "line": {"color": FLOAT_COLOR}},
        {"type": "scatter", "x": [float(best["ratio"])], "y": [float(best["mse"])], "mode": "markers",
         "name": _("lowest MSE (α={ratio})", ratio=f"{best['ratio']:.2f}"),
         "marker": {"symbol": "circle-open", "size": 16, "color": BEST_COLOR, "line": {"width": 3}}},
        {"type": "scatter", "x": [float(picked_ratio)], "y": [picked_mse], "mode": "markers",
         "name": _("{method} picks α={ratio}", method=method, ratio=f"{picked_ratio:.2f}"), "marker": STAR},
    ]
    return make_figure(
        data, _("MSE vs clipping at {bits}", bits=bits_label), 360,
        xaxis=axis_layout(_("clip ratio α (range = α · min-max range)")),
        yaxis=log_axis_layout("MSE"),
    )


def drift_scatter(float_out: np.ndarray, quant_out: np.ndarray, n_total: int) -> go.Figure:
    """Quantized vs float outputs, one point per output value (subsampled); the diagonal is no drift."""
    xs, ys = f32(float_out), f32(quant_out)
    data: list[Trace] = []
    if xs.size:
        lo = float(min(xs.min(), ys.min()))
        hi = float(max(xs.max(), ys.max()))
        data.append({"type": "scatter", "x": [lo, hi], "y": [lo, hi], "mode": "lines",
                     "name": _("no drift (y = x)"), "line": {"color": GRID_COLOR, "dash": "dash", "width": 1}})
    data.append({"type": "scatter", "x": xs, "y": ys, "mode": "markers", "name": _("outputs"),
                 "marker": {"color": QUANT_COLOR, "size": 4, "opacity": 0.5},
                 # i18n: Plotly hover template: keep %{x:.4g}, %{y:.4g} and <br> as they are.
                 "hovertemplate": _("float %{x:.4g}<br>quantized %{y:.4g}") + "<extra></extra>"})
    if xs.size < n_total:
        title = _("Outputs: quantized vs float ({shown} of {total} values)", shown=f"{xs.size:,}",
                  total=f"{n_total:,}")
    else:
        title = _("Outputs: quantized vs float")
    return make_figure(
        data, title, 400,
        xaxis=axis_layout(_("float model output")), yaxis=axis_layout(_("quantized model output")),
    )


def counts_histogram(
    counts: np.ndarray, edges: np.ndarray, title: str, x_title: str, color: str = ERROR_COLOR, log_x: bool = False
) -> go.Figure:
    """Bars of pre-computed counts (per-example drift, cosine similarity); ``title`` and ``x_title`` as given.

    ``log_x``: the edges are log10 values; the axis is labelled with the plain values (bars stay evenly wide).
    """
    data = [{"type": "bar", **_bins(edges), "y": f32(counts), "marker": {"color": color},
             "opacity": 0.85, "name": _("examples")}]
    xaxis = axis_layout(x_title)
    if log_x:
        ticks = np.linspace(float(edges[0]), float(edges[-1]), 5)
        xaxis.update(tickvals=ticks.tolist(), ticktext=[f"{10.0**t:.2g}" for t in ticks])
    return make_figure(data, title, 320, legend=False, bargap=0.02, xaxis=xaxis, yaxis=axis_layout(_("examples")))


def metric_sweep_figure(
    bits: Sequence[int],
    values: Sequence[float],
    baseline: float,
    metric_name: str,
    current_bits: int | None,
    current_value: float | None,
    current_label: str,
    higher_is_better: bool,
    title: str | None = None,
) -> go.Figure:
    """Task metric vs bit width for the current scheme, with the float model's value as a baseline.

    ``metric_name`` and ``current_label`` are shown as given (the page translates them)."""
    data: list[Trace] = [
        {"type": "scatter", "x": f32(bits), "y": f32(values), "mode": "lines+markers", "name": _("quantized"),
         "line": {"color": QUANT_COLOR}},
        {"type": "scatter", "x": [min(bits), max(bits)], "y": [float(baseline)] * 2, "mode": "lines",
         "name": _("float model: {value}", value=f"{baseline:.4g}"), "line": {"color": FLOAT_COLOR, "dash": "dash"}},
    ]
    if current_bits is not None and current_value is not None:
        data.append({"type": "scatter", "x": [float(current_bits)], "y": [float(current_value)], "mode": "markers",
                     "name": current_label, "marker": STAR})
    y_title = (_("{metric} (higher is better)", metric=metric_name) if higher_is_better
               else _("{metric} (lower is better)", metric=metric_name))
    return make_figure(
        data, _("Task metric vs bit width: {metric}", metric=metric_name) if title is None else title, 360,
        xaxis=axis_layout(_("bit width"), dtick=2), yaxis=axis_layout(y_title),
    )
