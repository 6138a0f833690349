"""Plotly figures of the teaching pages (PTQ vs QAT, the formula walkthrough). Pure: numbers in, figures out.

Titles, legends, axes and hover text are in the session's language (``_``): the builders are called at display
time and their figures are never cached, so a figure never reaches a session in the other language.

Same conventions as :mod:`ui.figures` (whose colours they share): one ``go.Figure(data=[...], layout={...})``
from plain dicts, no template, float32 arrays (shipped as base64), title and legend in the top margin. Every
input is already small - curve points, per-code counts, a few hundred outputs - so each chart is a few kB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ui.figures.explorer import (
    BEST_COLOR,
    CLIP_COLOR,
    ERROR_COLOR,
    FLOAT_COLOR,
    GRID_COLOR,
    QUANT_COLOR,
    STAR,
    Trace,
    axis_layout,
    f32,
    make_figure,
)
from ui.i18n import _

QAT_COLOR = BEST_COLOR
PTQ_COLOR = QUANT_COLOR
NAIVE_COLOR = ERROR_COLOR


def _hline(y: float, x0: float, x1: float, name: str, color: str, dash: str, yaxis: str = "y") -> Trace:
    return {"type": "scatter", "x": [x0, x1], "y": [float(y)] * 2, "mode": "lines", "name": name,
            "line": {"color": color, "dash": dash, "width": 1.5}, "yaxis": yaxis, "hoverinfo": "skip"}


# --- PTQ vs QAT ---------------------------------------------------------------------------------------------


def qat_curves(
    epoch: Sequence[float],
    loss: Sequence[float | None],
    metric: Sequence[float | None],
    train_metric: Sequence[float | None],
    float_metric: float,
    ptq_metric: float,
    metric_name: str,
    total_epochs: int,
    higher_is_better: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Training loss (top) and the task metric of the QAT model on the evaluation set (bottom), against epochs.

    The x axis is fixed to the whole run, so a live curve grows into a frame that does not jump. The bottom panel
    has the float model and PTQ as flat lines: the QAT curve starts at PTQ (same weights) and climbs.
    """
    ep = f32(epoch)
    # Plotly's own %{x} fields sit in messages formatted with str.format, so their braces are doubled there.
    data: list[Trace] = [
        {"type": "scatter", "x": ep, "y": f32([np.nan if v is None else v for v in loss]), "mode": "lines+markers",
         "name": _("training loss"), "line": {"color": GRID_COLOR, "width": 1.5}, "marker": {"size": 4},
         "yaxis": "y", "hovertemplate": _("epoch %{x:.2f}: loss %{y:.4g}") + "<extra></extra>"},
        _hline(float_metric, 0, total_epochs, _("float model: {value}", value=f"{float_metric:.4g}"), FLOAT_COLOR,
               "dash", "y2"),
        _hline(ptq_metric, 0, total_epochs, f"PTQ: {ptq_metric:.4g}", PTQ_COLOR, "dot", "y2"),
        {"type": "scatter", "x": ep, "y": f32([np.nan if v is None else v for v in metric]),
         "mode": "lines+markers", "name": _("QAT model on the evaluation set"),
         "line": {"color": QAT_COLOR, "width": 3}, "marker": {"size": 6}, "yaxis": "y2",
         "hovertemplate": _("epoch %{{x:.2f}}: {metric} %{{y:.4g}}", metric=metric_name) + "<extra>QAT</extra>"},
    ]
    if any(v is not None for v in train_metric):
        data.append(
            {"type": "scatter", "x": ep, "y": f32([np.nan if v is None else v for v in train_metric]),
             "mode": "lines", "name": _("QAT model on its training batches"),
             "line": {"color": QAT_COLOR, "width": 1, "dash": "dot"}, "yaxis": "y2",
             "hovertemplate": _("epoch %{x:.2f}: %{y:.4g}") + "<extra>" + _("training batches") + "</extra>"}
        )
    return make_figure(
        data, _("Training with quantized weights") if title is None else title, 420, legend_rows=3,
        xaxis=axis_layout(_("epoch"), range=[-0.05 * total_epochs, 1.05 * total_epochs], anchor="y2", dtick=1),
        yaxis=axis_layout(_("loss"), domain=[0.62, 1.0], rangemode="tozero"),
        yaxis2=axis_layout(_better(metric_name, higher_is_better), domain=[0.0, 0.52]),
    )


def _better(metric_name: str, higher_is_better: bool) -> str:
    """The metric's axis title with the direction that is good: ``accuracy (higher is better)``."""
    if higher_is_better:
        return _("{metric} (higher is better)", metric=metric_name)
    return _("{metric} (lower is better)", metric=metric_name)


def comparison_bars(values: Sequence[float], labels: Sequence[str], texts: Sequence[str], metric_name: str,
                    title: str) -> go.Figure:
    """Float, PTQ and QAT side by side: one bar each, its value (as the page prints it) written on it."""
    colors = [FLOAT_COLOR, PTQ_COLOR, QAT_COLOR][: len(values)]
    data = [{"type": "bar", "x": list(labels), "y": f32(values), "marker": {"color": colors}, "text": list(texts),
             "textposition": "auto", "name": metric_name, "hovertemplate": "%{x}: %{y:.4g}<extra></extra>"}]
    return make_figure(data, title, 300, legend=False, yaxis=axis_layout(metric_name, rangemode="tozero"), bargap=0.35)


def codes_moved(layers: Sequence[str], changed_pct: Sequence[float], one_step_pct: Sequence[float],
                highlight: str | None) -> go.Figure:
    """Per layer, the share of weights whose integer code QAT changed (by one step, and by more)."""
    more = [max(c - o, 0.0) for c, o in zip(changed_pct, one_step_pct, strict=True)]
    line = [2 if name == highlight else 0 for name in layers]
    data = [
        {"type": "bar", "y": list(layers), "x": f32(one_step_pct), "orientation": "h", "name": _("moved one step"),
         "marker": {"color": QAT_COLOR, "line": {"width": line, "color": GRID_COLOR}},
         "hovertemplate": _("%{y}: %{x:.3g} % moved one step") + "<extra></extra>"},
        {"type": "bar", "y": list(layers), "x": f32(more), "orientation": "h", "name": _("moved further"),
         "marker": {"color": "#2E6B28", "line": {"width": line, "color": GRID_COLOR}},
         "hovertemplate": _("%{y}: %{x:.3g} % moved further") + "<extra></extra>"},
    ]
    return make_figure(
        data, _("Weights QAT moved to a different integer code"), 60 + 34 * len(layers), barmode="stack",
        xaxis=axis_layout(_("% of the layer's weights"), rangemode="tozero"),
        yaxis=axis_layout("", autorange="reversed", type="category"),
    )


def sweep_figure(
    bits: Sequence[int],
    ptq: Sequence[float | None],
    qat: Sequence[float | None],
    float_metric: float,
    metric_name: str,
    current_bits: int | None,
    higher_is_better: bool = True,
) -> go.Figure:
    """PTQ and QAT against bit width, with the float model as a line: where the two lines part, QAT pays off."""
    b = f32(bits)
    as_arr = lambda vs: f32([np.nan if v is None else v for v in vs])  # noqa: E731 - a one-line helper
    data: list[Trace] = [
        _hline(float_metric, min(bits), max(bits), _("float model: {value}", value=f"{float_metric:.4g}"),
               FLOAT_COLOR, "dash"),
        {"type": "scatter", "x": b, "y": as_arr(ptq), "mode": "lines+markers", "name": "PTQ",
         "line": {"color": PTQ_COLOR, "width": 2}, "marker": {"size": 7}},
        {"type": "scatter", "x": b, "y": as_arr(qat), "mode": "lines+markers", "name": "QAT",
         "line": {"color": QAT_COLOR, "width": 3}, "marker": {"size": 8}, "connectgaps": False},
    ]
    # What QAT buys at each trained width: a vertical bar from the PTQ point to the QAT point.
    gx: list[float | None] = []
    gy: list[float | None] = []
    for bit, p, q in zip(bits, ptq, qat, strict=True):
        if p is not None and q is not None:
            gx += [float(bit), float(bit), None]
            gy += [float(p), float(q), None]
    if gx:
        data.insert(1, {"type": "scatter", "x": gx, "y": gy, "mode": "lines", "name": "QAT − PTQ",
                        "line": {"color": "rgba(84,162,75,0.35)", "width": 10}, "hoverinfo": "skip"})
    if current_bits is not None and current_bits in list(bits):
        i = list(bits).index(current_bits)
        if qat[i] is not None:
            data.append({"type": "scatter", "x": [float(current_bits)], "y": [float(qat[i])], "mode": "markers",
                         "name": _("current: {bits} bits", bits=current_bits), "marker": STAR})
    return make_figure(
        data, _("PTQ vs QAT across bit widths"), 340, legend_rows=2,
        xaxis=axis_layout(_("bit width"), dtick=1), yaxis=axis_layout(_better(metric_name, higher_is_better)),
    )


# --- the formula walkthrough ----------------------------------------------------------------------------------


def number_line(
    x: float,
    x_hat: float,
    q: int,
    line: dict[str, Any],
    range_lo: float,
    range_hi: float,
    title: str,
) -> go.Figure:
    """One value on the grid: the whole grid on top, the levels next to ``x`` below (labelled with their code).

    Red band edges: the ends of the grid, beyond which values are clipped; the dotted ticks: the range the
    scale was computed from; blue ``x``, orange ``x̂`` and the red error segment between them.
    """
    grid = f32(line["grid"])
    near_v = f32(line["near_values"])
    near_q = [str(int(c)) for c in line["near_codes"]]
    lo_all = float(min(line["grid_lo"], x, range_lo))
    hi_all = float(max(line["grid_hi"], x, range_hi))
    pad = 0.04 * (hi_all - lo_all or 1.0)
    zlo = float(min(near_v.min(), x)) if near_v.size else x
    zhi = float(max(near_v.max(), x)) if near_v.size else x
    zpad = 0.08 * (zhi - zlo or 1.0)
    tick = {"symbol": "line-ns-open", "size": 18, "color": GRID_COLOR, "line": {"width": 1.5}}
    levels = (
        _("grid levels (every {k}th of {n})", k=line["stride"], n=line["levels"]) if line["stride"] > 1
        else _("grid levels ({n})", n=line["levels"])
    )
    data: list[Trace] = [
        {"type": "scatter", "x": grid, "y": np.zeros(grid.size, np.float32), "mode": "markers", "marker": tick,
         "name": levels, "xaxis": "x", "yaxis": "y", "legendgroup": "grid",
         "hovertemplate": _("level %{x:.4g}") + "<extra></extra>"},
        {"type": "scatter", "x": near_v, "y": np.zeros(near_v.size, np.float32), "mode": "markers+text",
         "marker": tick, "text": near_q, "textposition": "top center", "textfont": {"size": 11, "color": GRID_COLOR},
         "name": _("grid levels"), "legendgroup": "grid", "showlegend": False, "xaxis": "x2", "yaxis": "y2",
         "hovertemplate": _("code %{text}: %{x:.6g}") + "<extra></extra>"},
    ]
    for axis in (("x", "y"), ("x2", "y2")):
        first = axis[0] == "x"
        data += [
            {"type": "scatter", "x": [x, x_hat], "y": [0, 0], "mode": "lines",
             "name": _("error {value}", value=f"{x - x_hat:.3g}"),
             "line": {"color": CLIP_COLOR, "width": 4}, "xaxis": axis[0], "yaxis": axis[1], "legendgroup": "err",
             "showlegend": first, "hoverinfo": "skip"},
            {"type": "scatter", "x": [x], "y": [0], "mode": "markers", "name": f"x = {x:.6g}",
             "marker": {"symbol": "diamond", "size": 13, "color": FLOAT_COLOR, "line": {"width": 1, "color": "white"}},
             "xaxis": axis[0], "yaxis": axis[1], "legendgroup": "x", "showlegend": first,
             "hovertemplate": "x = %{x:.6g}<extra></extra>"},
            {"type": "scatter", "x": [x_hat], "y": [0], "mode": "markers", "name": f"x̂ = {x_hat:.6g} (q = {q})",
             "marker": {"symbol": "circle", "size": 12, "color": QUANT_COLOR, "line": {"width": 1, "color": "white"}},
             "xaxis": axis[0], "yaxis": axis[1], "legendgroup": "xhat", "showlegend": first,
             "hovertemplate": "x̂ = %{x:.6g}<extra></extra>"},
        ]
    clip = {"color": CLIP_COLOR, "width": 2}
    shapes = [
        # Clipped zones: everything left of the lowest level and right of the highest one ends on that level.
        {"type": "rect", "xref": "x", "yref": "y", "x0": lo_all - pad, "x1": float(line["grid_lo"]), "y0": -1, "y1": 1,
         "fillcolor": "rgba(214,39,40,0.12)", "line": {"width": 0}},
        {"type": "rect", "xref": "x", "yref": "y", "x0": float(line["grid_hi"]), "x1": hi_all + pad, "y0": -1, "y1": 1,
         "fillcolor": "rgba(214,39,40,0.12)", "line": {"width": 0}},
        {"type": "line", "xref": "x", "yref": "y", "x0": float(line["grid_lo"]), "x1": float(line["grid_lo"]),
         "y0": -1, "y1": 1, "line": clip},
        {"type": "line", "xref": "x", "yref": "y", "x0": float(line["grid_hi"]), "x1": float(line["grid_hi"]),
         "y0": -1, "y1": 1, "line": clip},
    ]
    for v in (range_lo, range_hi):
        shapes.append({"type": "line", "xref": "x", "yref": "y", "x0": float(v), "x1": float(v), "y0": -0.7,
                       "y1": 0.7, "line": {"color": FLOAT_COLOR, "width": 1.5, "dash": "dot"}})
    data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "line": clip, "xaxis": "x", "yaxis": "y",
                 "name": _("grid ends: beyond is clipped")})
    data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "xaxis": "x", "yaxis": "y",
                 "line": {"color": FLOAT_COLOR, "width": 1.5, "dash": "dot"}, "name": _("range the scale fits")})
    hidden = {"visible": False, "range": [-1, 1], "fixedrange": True}
    return make_figure(
        data, title, 230, legend_rows=3,
        xaxis=axis_layout("", range=[lo_all - pad, hi_all + pad], anchor="y", fixedrange=True),
        xaxis2=axis_layout(_("zoom: the levels next to x, labelled with their integer code"),
                           range=[zlo - zpad, zhi + zpad], anchor="y2", fixedrange=True),
        yaxis={**hidden, "domain": [0.62, 1.0]},
        yaxis2={**hidden, "domain": [0.0, 0.38], "range": [-1, 1.6]},
        shapes=shapes,
    )


def integer_linear_scatter(y: np.ndarray, correct: np.ndarray, naive: np.ndarray, clip: float) -> go.Figure:
    """The layer's output on every evaluation input: integer result against the float one, for both ways."""
    y32, c32, n32 = f32(y), f32(correct), f32(naive)
    lo, hi = float(min(y32.min(), c32.min(), n32.min())), float(max(y32.max(), c32.max(), n32.max()))
    data: list[Trace] = [
        {"type": "scatter", "x": [lo, hi], "y": [lo, hi], "mode": "lines", "name": _("exact (y = float output)"),
         "line": {"color": GRID_COLOR, "dash": "dash", "width": 1}},
        {"type": "scatter", "x": y32, "y": n32, "mode": "markers", "name": _("naive (bias and output on s_w)"),
         "marker": {"color": NAIVE_COLOR, "size": 5, "opacity": 0.7},
         "hovertemplate": _("float %{x:.4g}<br>naive %{y:.4g}") + "<extra></extra>"},
        {"type": "scatter", "x": y32, "y": c32, "mode": "markers", "name": _("correct integer arithmetic"),
         "marker": {"color": QAT_COLOR, "size": 5, "opacity": 0.8},
         "hovertemplate": _("float %{x:.4g}<br>integer %{y:.4g}") + "<extra></extra>"},
    ]
    shapes = [{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": v, "y1": v,
               "line": {"color": CLIP_COLOR, "width": 1, "dash": "dot"}} for v in (-clip, clip)]
    return make_figure(
        data, _("All {n} evaluation inputs: integer output vs float output", n=y32.size), 340, legend_rows=2,
        xaxis=axis_layout(_("float output y")), yaxis=axis_layout(_("output computed in integers")), shapes=shapes,
    )


def sqnr_rule(
    bits: np.ndarray,
    measured: np.ndarray,
    uniform: np.ndarray,
    tensor_rule: np.ndarray | None,
    peak_to_rms: float,
    current_bits: int | None,
    label: str,
) -> go.Figure:
    """Measured SQNR against bit width, with the ≈ 6 dB/bit rule for a uniform signal and for this tensor."""
    b = f32(bits)
    # The measurement first, the rules over it: where the rule fits, its dashes run along the measured line.
    data: list[Trace] = [
        {"type": "scatter", "x": b, "y": f32(measured), "mode": "lines+markers",
         "name": _("measured: {label}", label=label),
         "line": {"color": QUANT_COLOR, "width": 4}, "marker": {"size": 7}},
        {"type": "scatter", "x": b, "y": f32(uniform), "mode": "lines",
         "name": _("rule: 6.02·b dB (uniform signal)"),
         "line": {"color": GRID_COLOR, "dash": "dot", "width": 1.5}},
    ]
    if tensor_rule is not None:
        data.append({"type": "scatter", "x": b, "y": f32(tensor_rule), "mode": "lines",
                     "name": _("rule with this tensor's peak/rms = {ratio}", ratio=f"{peak_to_rms:.3g}"),
                     "line": {"color": FLOAT_COLOR, "dash": "dash", "width": 2}})
    if current_bits is not None and current_bits in set(int(v) for v in bits):
        i = [int(v) for v in bits].index(current_bits)
        data.append({"type": "scatter", "x": [float(current_bits)], "y": [float(measured[i])], "mode": "markers",
                     "name": _("current: {bits} bits", bits=current_bits), "marker": STAR})
    return make_figure(
        data, _("SQNR vs bit width: the rule of thumb against the measurement"), 340, legend_rows=2,
        xaxis=axis_layout(_("bit width b"), dtick=2), yaxis=axis_layout(_("SQNR (dB, higher is better)")),
    )
