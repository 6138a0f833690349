"""Plotly figures of the "Layer sensitivity" and "Size & speed" pages. Pure: small arrays in, ``go.Figure`` out.

Same conventions as :mod:`ui.figures` (whose layout helper and colours these reuse): one ``go.Figure`` call from
plain dicts, no template, float32 arrays (shipped as base64). Inputs are per-layer tables - tens of rows - so a
chart message is a few kB even for MiniLM's 40 layers.

Layer charts draw one horizontal bar per layer, first row at the top, and put the full layer name (its URL
token) in ``customdata``: a click on a bar hands the page that name (``st.plotly_chart(on_select=...)``).

Titles, axis titles, legends and hover text are in the session's language (``_`` at build time: the pages build
these figures on every run, never in a cache shared between languages). Plotly's ``%{…}`` placeholders go into
a translated sentence as values (``_("{layer} at {bits} bits", layer="%{customdata[0]}", …)``), so the
catalog's sentences have only named placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.figures.explorer import (
    BEST_COLOR,
    ERROR_COLOR,
    FLOAT_COLOR,
    GRID_COLOR,
    HIGHLIGHT_COLOR,
    QUANT_COLOR,
    STAR,
    Trace,
    axis_layout,
    f32,
    legend_entries,
    make_figure,
)
from ui.i18n import _

#: One colour per bit width of the mixed-precision charts (fewer bits = warmer).
BITS_COLORS: dict[int, str] = {2: "#D62728", 3: "#F58518", 4: "#ECA82C", 5: "#B5BD4C", 6: "#54A24B",
                               8: "#4C78A8", 16: "#9D755D"}
OVERHEAD_COLOR = ERROR_COLOR
KEPT_FLOAT_COLOR = "#BAB0AC"
FAKE_COLOR = "#B279A2"
#: White for "no loss", then quickly visible: a drop of a tenth of the worst cell is already clearly tinted.
HEAT_COLORS = [[0.0, "#FFFFFF"], [0.02, "#FDE9DD"], [0.1, "#F9C3A3"], [0.35, "#F0864F"], [1.0, "#B2182B"]]
#: Pixels per layer row of the horizontal bar charts.
ROW_PX = 19


#: Room above the plot for x axes drawn at the top (tick labels and the axis title), on top of the figure title.
TOP_AXIS_PX = 50


def _rows_height(n: int, minimum: int = 200) -> int:
    return max(minimum, ROW_PX * n + 60)


def _top_axis_figure(data: list[Trace], title: str, height: int, legend: bool = True, **layout: Any) -> go.Figure:
    """:func:`ui.figures.explorer.make_figure` with the x axes at the top, where a tall chart of many layers is read first.

    The top margin grows by :data:`TOP_AXIS_PX` so the axis title does not run into the figure title (built
    in one call, like every figure here: no update_layout re-validation).
    """
    rows = -(-legend_entries(data) // 2) if legend else 0
    top = 42 + 22 * rows + TOP_AXIS_PX  # ui.figures.explorer.make_figure's title + legend room, plus the axis
    return make_figure(data, title, height + TOP_AXIS_PX, legend=legend,
                   margin={"l": 10, "r": 10, "t": top, "b": 10}, **layout)


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """float32 with ±inf as NaN: an unchanged output has SQNR = inf, which no axis can hold."""
    a = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(a), a, np.nan).astype(np.float32)


def _category_axis(labels: Sequence[str], **more: Any) -> dict[str, Any]:
    """A y axis of layer names, first one on top, in exactly the given order."""
    return {"type": "category", "categoryorder": "array", "categoryarray": list(labels), "autorange": "reversed",
            "automargin": True, "tickfont": {"size": 11}, **more}


def _bold(labels: Sequence[str], tokens: Sequence[str], current: str | None) -> list[str]:
    """Axis labels with the current layer's in bold (its bar may be too short to show its colour)."""
    return [f"<b>{lab}</b>" if tok == current else lab for lab, tok in zip(labels, tokens, strict=True)]


def _bar_colors(tokens: Sequence[str], current: str | None, color: str) -> list[str]:
    return [HIGHLIGHT_COLOR if t == current else color for t in tokens]


def layer_bars(
    labels: Sequence[str],
    tokens: Sequence[str],
    values: Sequence[float],
    sqnr_db: Sequence[float],
    value_title: str,
    sqnr_title: str,
    title: str,
    current: str | None = None,
    reference: float | None = None,
    reference_label: str = "",
) -> go.Figure:
    """Two panels sharing the layer axis: a task-metric number per layer (left) and an SQNR in dB (right).

    ``labels`` are the short axis names, ``tokens`` the full names (hover, and what a click selects);
    ``current`` is the sidebar's layer, drawn in red. ``reference`` adds a dashed vertical line to the left
    panel (e.g. the drop with every layer quantized).
    """
    n = len(labels)
    names = list(labels)
    custom = np.asarray(list(tokens), dtype=object)
    vals = _finite(values)
    sq = _finite(sqnr_db)
    data: list[Trace] = [
        {"type": "bar", "orientation": "h", "x": vals, "y": names, "customdata": custom, "name": value_title,
         "marker": {"color": _bar_colors(tokens, current, QUANT_COLOR)}, "xaxis": "x", "yaxis": "y",
         "showlegend": False,
         "hovertemplate": "%{customdata}<br>" + _("{name}: {value}", name=value_title, value="%{x:.4g}")
         + "<extra></extra>"},
        {"type": "bar", "orientation": "h", "x": sq, "y": names, "customdata": custom, "name": sqnr_title,
         "marker": {"color": _bar_colors(tokens, current, FLOAT_COLOR)}, "xaxis": "x2", "yaxis": "y",
         "showlegend": False,
         "hovertemplate": "%{customdata}<br>" + _("{name}: {value}", name=sqnr_title, value="%{x:.3g} dB")
         + "<extra></extra>"},
    ]
    shapes = []
    if reference is not None and np.isfinite(reference):
        line = {"color": GRID_COLOR, "dash": "dash", "width": 1.5}
        shapes.append({"type": "line", "x0": float(reference), "x1": float(reference), "y0": 0, "y1": 1,
                       "xref": "x", "yref": "paper", "line": line})
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "line": line,
                     "name": reference_label, "xaxis": "x", "yaxis": "y"})
    return _top_axis_figure(
        data, title, _rows_height(n), legend=reference is not None,
        bargap=0.25, shapes=shapes,
        xaxis=axis_layout(value_title, domain=[0.0, 0.55], zeroline=True, zerolinecolor=GRID_COLOR, side="top"),
        xaxis2=axis_layout(sqnr_title, domain=[0.62, 1.0], anchor="y", side="top"),
        yaxis=_category_axis(names, tickvals=names, ticktext=_bold(names, tokens, current)),
        hovermode="closest",
        clickmode="event+select",
    )


def sensitivity_heatmap(
    labels: Sequence[str],
    tokens: Sequence[str],
    bits: Sequence[int],
    drop: np.ndarray,
    sqnr_db: np.ndarray,
    metric_name: str,
    current_bits: int | None = None,
    current: str | None = None,
) -> go.Figure:
    """Layers × bit widths, coloured by the metric drop with only that layer quantized (white = no loss).

    ``drop`` and ``sqnr_db`` are ``(layers, bits)`` arrays in ``labels`` × ``bits`` order. The current bit
    width's column is framed; the current layer's name is bold.
    """
    z = np.asarray(drop, dtype=np.float64)
    shown = np.where(np.isfinite(z), np.maximum(z, 0.0), np.nan).astype(np.float32)
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0
    text = [[_short(v) for v in row] for row in z]
    xs = [f"{b}" for b in bits]
    ticks = _bold(labels, tokens, current)
    custom = np.dstack([np.repeat(np.asarray(list(tokens), dtype=object)[:, None], len(bits), axis=1),
                        np.vectorize(lambda v: f"{v:.3g}" if np.isfinite(v) else _("n/a"))(
                            np.asarray(sqnr_db, dtype=np.float64)).astype(object)])
    data: list[Trace] = [
        {"type": "heatmap", "x": xs, "y": list(labels), "z": shown, "text": text, "texttemplate": "%{text}",
         "textfont": {"size": 10}, "customdata": custom, "zmin": 0.0, "zmax": max(top, 1e-9),
         "colorscale": HEAT_COLORS,
         "colorbar": {"title": {"text": _("drop"), "side": "right"}, "thickness": 12, "len": 0.8},
         "xgap": 1, "ygap": 1, "name": "",
         "hovertemplate": _("{layer} at {bits} bits", layer="%{customdata[0]}", bits="%{x}") + "<br>"
         + _("{metric} drop: {value}", metric=metric_name, value="%{z:.4g}") + "<br>"
         + _("output SQNR: {value} dB", value="%{customdata[1]}") + "<extra></extra>"},
    ]
    shapes = []
    if current_bits is not None and current_bits in bits:
        i = list(bits).index(current_bits)
        shapes.append({"type": "rect", "x0": i - 0.5, "x1": i + 0.5, "y0": 0, "y1": 1, "xref": "x",
                       "yref": "paper", "line": {"color": HIGHLIGHT_COLOR, "width": 2.5}})
    return _top_axis_figure(
        data, _("{metric} drop with only that layer quantized", metric=metric_name), _rows_height(len(labels)),
        legend=False, shapes=shapes,
        xaxis=axis_layout(_("bit width"), type="category", side="top"),
        yaxis=_category_axis(list(labels), tickvals=list(labels), ticktext=ticks),
    )


def _short(v: float) -> str:
    """Cell text: ``0``, ``.012``, ``-0.002``; ``n/a`` for a metric that broke down."""
    if not np.isfinite(v):
        return _("n/a")
    if abs(v) < 5e-5:
        return "0"
    return f"{v:.2g}" if abs(v) < 0.01 else f"{v:.3f}".rstrip("0")


def bits_per_layer(
    labels: Sequence[str],
    tokens: Sequence[str],
    bits: Sequence[int],
    numel: Sequence[int],
    title: str,
) -> go.Figure:
    """The chosen width of every layer, in network order, one colour (and legend entry) per width."""
    data: list[Trace] = []
    bits_arr = np.asarray(bits)
    for b in sorted(set(int(v) for v in bits_arr)):
        idx = np.flatnonzero(bits_arr == b)
        data.append({
            "type": "bar", "orientation": "h", "x": f32(bits_arr[idx]), "y": [labels[i] for i in idx],
            "customdata": np.asarray([[tokens[i], f"{int(numel[i]):,}"] for i in idx], dtype=object),
            "name": _("{bits} bits", bits=b), "marker": {"color": BITS_COLORS.get(b, GRID_COLOR)},
            "hovertemplate": _("{layer}: {bits} bits · {n} weights", layer="%{customdata[0]}", bits="%{x}",
                               n="%{customdata[1]}") + "<extra></extra>",
        })
    top = int(bits_arr.max()) if bits_arr.size else 8
    return _top_axis_figure(
        data, title, _rows_height(len(labels), 160),
        bargap=0.25,
        xaxis=axis_layout(_("bits"), range=[0, top + 0.5], dtick=2, side="top"),
        yaxis=_category_axis(list(labels)),
    )


def pareto_chart(
    front: pd.DataFrame,
    metric_name: str,
    higher_is_better: bool,
    float_metric: float,
    chosen: Mapping[str, float] | None = None,
) -> go.Figure:
    """Model size vs MEASURED task metric: the mixed-precision front, uniform widths, and the chosen mix.

    ``front`` is ``quantlib.pareto_front``'s table (``kind, label, size_bytes, metric, avg_bits``); ``chosen``
    has ``size_bytes, metric, avg_bits`` of the mix the budget slider picked.
    """
    mixed = front[front["kind"] == "mixed"].sort_values("size_bytes")
    uniform = front[front["kind"] == "uniform"].sort_values("size_bytes")
    kb = 1 / 1000
    point = _("{size} kB · {metric} {value}", size="%{x:.4g}", metric=metric_name, value="%{y:.4g}")
    data: list[Trace] = [
        {"type": "scatter", "x": f32(mixed["size_bytes"] * kb), "y": f32(mixed["metric"]),
         "mode": "lines+markers", "name": _("mixed precision (best mixes)"),
         "line": {"color": QUANT_COLOR, "width": 2}, "marker": {"size": 7},
         "customdata": f32(mixed["avg_bits"]),
         "hovertemplate": _("{bits} bits/weight", bits="%{customdata:.2f}") + "<br>" + point
         + "<extra>" + _("mixed") + "</extra>"},
        {"type": "scatter", "x": f32(uniform["size_bytes"] * kb), "y": f32(uniform["metric"]),
         "mode": "markers+text", "name": _("uniform: every layer the same width"),
         "text": [str(lab).replace("uniform ", "") for lab in uniform["label"]], "textposition": "top center",
         "marker": {"symbol": "diamond", "size": 11, "color": FLOAT_COLOR},
         "hovertemplate": "%{text}<br>" + point + "<extra>" + _("uniform") + "</extra>"},
    ]
    xs = np.concatenate([mixed["size_bytes"].to_numpy(), uniform["size_bytes"].to_numpy()]) * kb
    lo, hi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    data.append({"type": "scatter", "x": [lo, hi], "y": [float(float_metric)] * 2, "mode": "lines",
                 "name": _("float model: {value}", value=f"{float_metric:.4g}"),
                 "line": {"color": GRID_COLOR, "dash": "dash"},
                 "hoverinfo": "skip"})
    if chosen is not None and chosen.get("metric") is not None:
        data.append({"type": "scatter", "x": [float(chosen["size_bytes"]) * kb], "y": [float(chosen["metric"])],
                     "mode": "markers",
                     "name": _("your budget: {bits} bits/weight", bits=f"{chosen['avg_bits']:.2f}"),
                     "marker": STAR,
                     "hovertemplate": _("your budget") + "<br>" + point + "<extra></extra>"})
    better = (_("{metric} (higher is better)", metric=metric_name) if higher_is_better
              else _("{metric} (lower is better)", metric=metric_name))
    return make_figure(
        data, _("Size vs task metric (measured)"), 340,
        xaxis=axis_layout(_("model size (kB)")), yaxis=axis_layout(better),
    )


def storage_bars(
    labels: Sequence[str],
    tokens: Sequence[str],
    payload: Sequence[int],
    overhead: Sequence[int],
    float_bytes: Sequence[int],
    current: str | None = None,
) -> go.Figure:
    """Per layer: the float32 weight (thin bar) against the quantized one (codes + scales / zero points)."""
    names = list(labels)
    custom = np.asarray([[t, _human(p), _human(o), _human(f)] for t, p, o, f
                         in zip(tokens, payload, overhead, float_bytes, strict=True)], dtype=object)
    hover = ("%{customdata[0]}<br>"
             + _("codes {codes} + scales {scales}", codes="%{customdata[1]}", scales="%{customdata[2]}")
             + "<br>" + _("float32: {size}", size="%{customdata[3]}") + "<extra></extra>")
    q_off = "quantized"
    data: list[Trace] = [
        {"type": "bar", "orientation": "h", "x": f32(float_bytes), "y": names, "name": _("float32 weight"),
         "marker": {"color": FLOAT_COLOR, "opacity": 0.45}, "offsetgroup": "float", "customdata": custom,
         "hovertemplate": hover},
        {"type": "bar", "orientation": "h", "x": f32(payload), "y": names, "name": _("quantized codes"),
         "marker": {"color": QUANT_COLOR}, "offsetgroup": q_off, "customdata": custom, "hovertemplate": hover},
        {"type": "bar", "orientation": "h", "x": f32(overhead), "y": names, "base": f32(payload),
         "name": _("scales + zero points"), "marker": {"color": OVERHEAD_COLOR}, "offsetgroup": q_off,
         "customdata": custom, "hovertemplate": hover},
    ]
    ticks = _bold(names, tokens, current)
    return _top_axis_figure(
        data, _("Storage of each layer's weight"), _rows_height(int(len(names) * 1.4)),
        barmode="group", bargap=0.2, bargroupgap=0.05,
        xaxis=axis_layout(_("bytes"), exponentformat="SI", side="top"),
        yaxis=_category_axis(names, tickvals=names, ticktext=ticks),
    )


def storage_totals(float_bytes: int, payload: int, overhead: int, other: int) -> go.Figure:
    """The whole model: float32 vs quantized (codes, scales / zero points, parameters that stay float32)."""
    rows = ["float32", _("quantized")]
    segments = [
        ("float32", [float_bytes, 0], FLOAT_COLOR),
        (_("quantized codes"), [0, payload], QUANT_COLOR),
        (_("scales + zero points"), [0, overhead], OVERHEAD_COLOR),
        (_("biases & norms (stay float32)"), [0, other], KEPT_FLOAT_COLOR),
    ]
    # Stacked by hand (explicit bases, overlay): barmode="stack" would list the legend backwards.
    data: list[Trace] = []
    base = np.zeros(2)
    for name, vals, color in segments:
        data.append({"type": "bar", "orientation": "h", "x": f32(vals), "y": rows, "base": f32(base),
                     "name": name, "marker": {"color": color}, "customdata": [_human(v) for v in vals],
                     "hovertemplate": _("{name}: {value}", name=name, value="%{customdata}") + "<extra></extra>"})
        base = base + np.asarray(vals, dtype=np.float64)
    return make_figure(
        data, _("Whole model"), 130, barmode="overlay", bargap=0.3,
        xaxis=axis_layout(_("bytes"), exponentformat="SI"), yaxis=_category_axis(rows),
    )


def latency_bars(rows: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Median latency per variant with its p10-p90 spread as error bars.

    ``rows``: ``label, median_ms, p10_ms, p90_ms, kind`` (``"float"``, ``"int8"`` or ``"fake"``).
    """
    colors = {"float": FLOAT_COLOR, "int8": BEST_COLOR, "fake": FAKE_COLOR}
    labels = [r["label"] for r in rows]
    med = f32([r["median_ms"] for r in rows])
    plus = f32([max(r["p90_ms"] - r["median_ms"], 0.0) for r in rows])
    minus = f32([max(r["median_ms"] - r["p10_ms"], 0.0) for r in rows])
    data: list[Trace] = [
        {"type": "bar", "orientation": "h", "x": med, "y": labels, "name": _("median"),
         "marker": {"color": [colors.get(r["kind"], GRID_COLOR) for r in rows]},
         "error_x": {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
                     "color": GRID_COLOR, "thickness": 1.2, "width": 5},
         # Inside the bar at its start: the whiskers run past the bar's end, where the text would collide.
         "text": [f"{r['median_ms']:.3g} ms" for r in rows], "textposition": "inside", "insidetextanchor": "start",
         "textfont": {"color": "#FFFFFF"},
         "hovertemplate": _("{variant}: median {ms} ms", variant="%{y}", ms="%{x:.3g}") + "<extra></extra>"},
    ]
    return make_figure(
        data, title, 40 * len(rows) + 50, legend=False, bargap=0.3,
        xaxis=axis_layout(_("milliseconds per call (bar: median, whisker: 10th-90th percentile)"),
                          rangemode="tozero"),
        yaxis=_category_axis(labels),
    )


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"
