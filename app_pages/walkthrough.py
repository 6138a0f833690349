"""🧮 Formula walkthrough: one value through the formula, a 10 → 1 layer in integers (and the common mistake),
and the MSE / SQNR formulas computed live on the chosen layer.

The page's own inputs are URL parameters like the sidebar's (``x``, ``lo``, ``hi``, ``example``), so a shared
link shows the same value worked through. Bits, rounding, scheme, model and layer come from the shared sidebar.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from quantlib.walkthrough import DB_PER_BIT, ValueTrace, check_trace_inputs, trace_value
from ui import controls, sources, widgets
from ui.compute import explorer, reductions
from ui.compute import teach as teach_data
from ui.figures import teach as teach_figures
from ui.text import code_span, escape_markdown
from ui.views import export as export_views

settings = controls.current()
fmt = widgets.fmt
#: Section 2 runs the layer as int8 hardware does, whatever the sidebar's bit width.
LAYER_BITS = 8
#: Section 1's first view: a value inside a range that does not straddle zero evenly (so z ≠ 0 shows).
DEFAULT_X, DEFAULT_LO, DEFAULT_HI = 0.3, -0.5, 1.5
_X_SLIDER = "wt_x_slider"

widgets.page_intro(
    "Formula walkthrough",
    "🧮",
    "The whole of quantization is two lines of arithmetic. Here you follow **one number** through them step by "
    "step, then a **10 → 1 layer** computed in integers the way an int8 chip does it - next to the shortcut many "
    "tutorials take and why it is wrong - and finally the **error formulas** computed on the layer you chose in "
    "the sidebar.",
    r"\begin{gathered}q = \mathrm{clamp}\!\left(\mathrm{round}\!\left(\tfrac{x}{s}\right) + z,\ q_{\min},\ "
    r"q_{\max}\right)\\ \hat{x} = (q - z)\, s \qquad \mathrm{MSE} = \tfrac{1}{N}\textstyle\sum_i (x_i - "
    r"\hat{x}_i)^2\end{gathered}",
    "set the sidebar's bit width to **3**, then drag the value: x̂ jumps from level to level and the error stays "
    "below half a step - until you push x past the range and it is clipped.",
)


def _slide_x() -> None:
    """The slider moved: the typed value (the one the link holds) follows it."""
    st.session_state["x"] = st.session_state[_X_SLIDER]


def _n(v: float, digits: int = 4) -> str:
    """A number inside a formula: short, no ``-0``, negatives in brackets where they follow an operator."""
    v = float(v) + 0.0
    return f"{v:.{digits}g}"


def _b(v: float) -> str:
    """``_n`` bracketed when negative (``0.3 / (-0.5)``)."""
    text = _n(v)
    return f"({text})" if text.startswith("-") else text


def _steps_table(t: ValueTrace) -> str:
    """The formula one step per row, each with the numbers of this value put in, then its result.

    Every number is a field of quantlib's :class:`ValueTrace` (its float32 arithmetic), so the table shows what
    the library computes, only written out.
    """
    if t.scheme == "symmetric":
        rng = f"±max(\\|lo\\|, \\|hi\\|) = ±max({_n(abs(t.lo))}, {_n(abs(t.hi))})"
        scale = f"max(\\|lo\\|, \\|hi\\|) / qmax = {_n(t.range_hi)} / {t.qmax}"
        zero = "0 for symmetric"
    else:
        rng = f"[min(lo, 0), max(hi, 0)] = [min({_n(t.lo)}, 0), max({_n(t.hi)}, 0)]"
        scale = f"(hi − lo) / (qmax − qmin) = {_n(t.range_hi - t.range_lo)} / {t.qmax - t.qmin}"
        zero = f"qmin − round(lo / s) = {t.qmin} − round({_n(t.range_lo / t.scale)})"
    clamp = f"clamp({_n(t.shifted)}, {t.qmin}, {t.qmax})" + (" ✂️ clipped" if t.clipped else "")
    rows = [
        ("range", rng, f"[{_n(t.range_lo)}, {_n(t.range_hi)}]"),
        ("grid", f"{t.bits} bits: integers qmin … qmax", f"{t.qmin} … {t.qmax}"),
        ("scale s", scale, _n(t.scale, 6)),
        ("zero point z", zero, str(t.zero_point)),
        ("divide", f"x / s = {_n(t.x)} / {_n(t.scale)}", _n(t.x_over_s, 6)),
        ("round", f"{t.rounding}: round({_n(t.x_over_s, 6)})", _n(t.rounded)),
        ("shift", f"+ z = {_n(t.rounded)} + {t.zero_point}", _n(t.shifted)),
        ("clamp", clamp, f"q = {t.q}"),
        ("dequantize", f"(q − z) · s = ({t.q} − {t.zero_point}) · {_n(t.scale)}", f"x̂ = {_n(t.x_hat, 6)}"),
        ("error", f"x − x̂ = {_n(t.x, 6)} − {_b(t.x_hat)}", _n(t.error, 4)),
    ]
    lines = ["| step | with the numbers | result |", "| --- | --- | ---: |"]
    lines += [f"| {a} | {b} | **{c}** |" for a, b, c in rows]
    return "\n".join(lines)


# --- 1. one value --------------------------------------------------------------------------------------------


def _one_value() -> None:
    st.header("1 · One value on its way", divider="gray")
    bits = settings.bits
    rounding = settings.rounding
    notes = []
    if settings.fixed_bits is not None:
        notes.append(
            f"{settings.format} is not an integer grid: this section shows the integer grid at the bit slider's "
            f"{bits} bits (round to nearest)."
        )
    st.markdown(
        f"Quantizing to **{bits} bits** with **{rounding}** rounding (both from the sidebar). Pick a value and the "
        "range the scale is computed from; the two schemes are worked out side by side."
    )
    if notes:
        st.caption(" ".join(notes))
    c_lo, c_hi = st.columns(2)
    with c_lo:
        lo = controls.page_widget(st.number_input, "Range low", "lo", value=DEFAULT_LO, step=0.1, format="%.4f",
                               help="The smallest value the grid must cover (from calibration: e.g. the minimum "
                               "of a tensor).")
    with c_hi:
        hi = controls.page_widget(st.number_input, "Range high", "hi", value=DEFAULT_HI, step=0.1, format="%.4f",
                               help="The largest value the grid must cover.")
    if not lo < hi:
        st.error("Range low must be below range high: the grid is spread between the two.", icon="🚫")
        return
    try:  # before any arithmetic on the range: a link can bring ±1e308 or 5e-324 (number_input takes them)
        for scheme in ("symmetric", "asymmetric"):
            check_trace_inputs(0.0, float(lo), float(hi), bits, scheme)
    except ValueError as err:
        st.error(f"This range cannot be traced: {escape_markdown(err)}.", icon="🚫")
        return
    span = hi - lo
    step = 10.0 ** math.floor(math.log10(span / 100))
    s_lo = math.floor((lo - span / 2) / step) * step
    s_hi = math.ceil((hi + span / 2) / step) * step
    c_slide, c_type = st.columns([3, 1])
    with c_type:  # first: the typed value is the one that counts (and the one in the link)
        x = controls.page_widget(st.number_input, "… or type it", "x", value=DEFAULT_X, step=float(step), format="%.6f",
                              help="Any number; beyond the slider's ends too.")
    with c_slide:
        # The slider mirrors x, pinned inside its range (it goes half a range beyond each end of lo..hi).
        st.session_state[_X_SLIDER] = min(max(float(x), s_lo), s_hi)
        st.slider("Value x", min_value=float(s_lo), max_value=float(s_hi), step=float(step), key=_X_SLIDER,
                  on_change=_slide_x, help="Goes half a range beyond each end, so you can watch clipping.")
    with widgets.friendly_errors("trace this value"):
        traces = {
            scheme: trace_value(float(x), float(lo), float(hi), bits, scheme=scheme,
                                rounding="nearest" if settings.fixed_bits else rounding)
            for scheme in ("symmetric", "asymmetric")
        }
        cols = st.columns(2, gap="medium")
        for col, (scheme, t) in zip(cols, traces.items(), strict=True):
            with col:
                mine = " (sidebar)" if scheme == settings.scheme else ""
                st.subheader(f"{scheme.capitalize()}{mine}")
                m = st.columns(3, wrap=False)
                m[0].metric("stored integer q", str(t.q), help="clamp(round(x / s) + z, qmin, qmax)")
                m[1].metric("read back x̂", fmt(t.x_hat, 4), help="(q - z) · s")
                m[2].metric("error x − x̂", fmt(t.error, 3), help="At most s / 2 with round-to-nearest, unless clipped.")
                st.plotly_chart(
                    teach_figures.number_line(
                        t.x, t.x_hat, t.q, teach_data.number_line(t), t.range_lo, t.range_hi,
                        f"{scheme}: s = {t.scale:.4g}, z = {t.zero_point}",
                    ),
                    key=f"line-{scheme}",
                    config={"displaylogo": False},
                )
                if t.clipped:
                    st.warning("x lies beyond the grid: the clamp moved it to the last level (clipping).", icon="✂️")
                st.markdown(_steps_table(t))
        sym, asym = traces["symmetric"], traces["asymmetric"]
        if asym.scale < 0.99 * sym.scale:
            st.info(
                f"The asymmetric step is **{sym.scale / asym.scale:.2g}× finer** ({asym.scale:.4g} vs "
                f"{sym.scale:.4g}): symmetric centres its grid on 0 and spends levels down to "
                f"{sym.range_lo:.3g}, a part of the range that holds no values; the zero point z = "
                f"{asym.zero_point} lets asymmetric fit [{asym.range_lo:.3g}, {asym.range_hi:.3g}] exactly.",
                icon="💡",
            )
        else:
            st.info(
                "The range is (nearly) centred on zero, so both schemes get the same step: a zero point buys "
                "nothing here. Make the range lopsided (e.g. low 0, high 6, like a ReLU output) to see it pay off.",
                icon="💡",
            )


# --- 2. the 10 -> 1 layer --------------------------------------------------------------------------------------


def _layer_three_ways() -> None:
    st.header("2 · A 10 → 1 layer in integers, three ways", divider="gray")
    bits = LAYER_BITS
    scheme = settings.scheme if settings.fixed_bits is None else "symmetric"
    st.markdown(
        f"The `tiny-linear` layer **y = w·x + b** (10 inputs, 1 output), computed in **{bits}-bit** integers with "
        f"**{scheme}** inputs and output, the way an inference engine does it: integer weights and inputs, sums "
        "in a 32-bit integer accumulator, the bias added *on the accumulator's scale* **s_w·s_x**, and one "
        "multiplication to bring the sum back onto the output's grid. Next to it, the shortcut of many tutorials: "
        "bias and output quantized with the **weight's** scale s_w."
    )
    st.caption("Always 8 bits here (int8, what inference engines run), whatever the bit slider says; the input "
               "scheme follows the sidebar (asymmetric inputs add the zero-point correction term).")
    p = teach_data.tiny_linear_paths(bits, scheme)
    n = len(p["float"])
    i = int(controls.page_widget(st.number_input, f"Evaluation input (0 – {n - 1})", "example", value=0,
                              min_value=0, max_value=n - 1, step=1,
                              help="One of tiny-linear's evaluation inputs; the scales are calibrated on all of "
                              "them."))
    x = p["x"][i]
    table = pd.DataFrame(
        [p["weight"], p["q_w"], x, p["q_x"][i]],
        index=["weight w", "q_w = round(w / s_w)", "input x", "q_x = round(x / s_x) + z_x"],
        columns=[str(k + 1) for k in range(len(x))],
    )
    st.dataframe(table.style.format(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)),
                 width="stretch")
    y, yc, yn = p["float"][i], p["correct"][i], p["naive"][i]
    m = st.columns(3, wrap=False)
    m[0].metric("float y", fmt(y, 5), help="Computed in float64 as the reference.")
    m[1].metric("correct ŷ", fmt(yc, 5), delta=f"error {yc - y:+.2g}", delta_color="off", delta_arrow="off",
                help="Integer arithmetic done right (int8 engine).")
    m[2].metric("naive ŷ", fmt(yn, 5), delta=f"error {yn - y:+.2g}", delta_arrow="off",
                delta_color="red" if abs(yn - y) > 2 * abs(yc - y) else "off",
                help="Bias and output quantized with the weight's scale.")
    z_term = f" - z_x·Σq_w = {p['acc'][i] - p['correction']}" if p["z_x"] else ""
    rows = [
        "| step | correct (int8 engine) | naive (bias and output on s_w) |",
        "| --- | --- | --- |",
        f"| weight scale | s_w = max\\|w\\| / qmax = **{p['s_w']:.4g}** | same |",
        f"| input scale, zero point | s_x = **{p['s_x']:.4g}**, z_x = **{p['z_x']}** | same |",
        f"| bias b = {p['bias']:.4g} | q_b = round(b / (s_w·s_x)) = **{p['q_b']}** | q_b = round(b / s_w) = **{p['naive_q_b']}** |",
        f"| accumulate | Σ q_w·q_x{z_term} + q_b = **{p['acc_total'][i]}** | **{p['naive_acc_total'][i]}** |",
        f"| requantize | q_y = round(acc · s_w·s_x / s_y) + z_y = **{p['q_y'][i]}** (s_y = {p['s_y']:.4g}, "
        f"z_y = {p['z_y']}) | q_y = round(acc · s_w·s_x / s_w), clamped = **{p['naive_q_y'][i]}** |",
        f"| read back | ŷ = (q_y - z_y)·s_y = **{yc:.6g}** | ŷ = q_y·s_w = **{yn:.6g}** |",
        f"| error ŷ - y | **{yc - y:+.3g}** | **{yn - y:+.3g}** |",
    ]
    st.markdown("\n".join(rows))
    st.warning(p["explanation"], icon="⚠️")
    st.plotly_chart(
        teach_figures.integer_linear_scatter(p["float"], p["correct"], p["naive"], float(np.abs(p["weight"]).max())),
        key="layer-scatter",
        config={"displaylogo": False},
    )
    ratio = p["naive_rms"] / p["correct_rms"] if p["correct_rms"] > 0 else math.inf
    st.caption(
        f"Over all {n} inputs: correct integer arithmetic is off by {p['correct_rms']:.3g} (RMS, largest "
        f"{p['correct_max']:.3g}); the naive way by {p['naive_rms']:.3g} (largest {p['naive_max']:.3g}), "
        f"{ratio:.3g}× worse. The dotted red lines are ±max|w| = ±{np.abs(p['weight']).max():.3g}: the naive "
        f"output cannot leave them, so {p['naive_clipped']} of the {n} outputs are clipped."
    )
    with st.expander("… and what the tutorial code literally prints"):
        st.markdown(
            f"Run as written, the tutorial multiplies the *float* input by the *integer* weights, so its sum "
            f"already counts units of s_w (≈ y / s_w), then \"quantizes it with s_w\" once more instead of "
            f"multiplying by s_w. For input {i} it prints **{p['primer'][i]:.6g}** where the layer gives "
            f"**{y:.6g}** - about {abs(p['primer'][i] / y) if y else math.inf:.3g}× too large."
        )


# --- 3. the error formulas ---------------------------------------------------------------------------------------


def _tex_number(v: float) -> str:
    """``1.23\\times10^{-4}`` rather than ``1.23e-04`` in a formula."""
    text = _n(v)
    if "e" in text:
        mant, exp = text.split("e")
        return rf"{mant}\times10^{{{int(exp)}}}"
    return text


def _term(a: float, b: float) -> str:
    bt = f"({_tex_number(b)})" if _n(b).startswith("-") else _tex_number(b)
    return rf"({_tex_number(a)} - {bt})^2"


def _error_formulas() -> None:
    st.header("3 · The error formulas on your layer", divider="gray")
    kind = "activations" if settings.target == "activations" else "weights"
    if kind == "activations" and not sources.has_float_activations(settings.model, settings.layer):
        kind = "weights"
    spec = settings.spec()
    key = reductions.spec_key(spec)
    layer = controls.layer_token(settings.layer)
    with st.spinner("Quantizing the layer…"):
        r = teach_data.mse_terms(settings.model, settings.layer, kind, key)
    shape = "×".join(str(d) for d in r["shape"])
    st.markdown(
        f"The {kind} of {code_span(layer)} ({settings.model}, {shape} = {r['n']:,} values) quantized with "
        f"**{r['spec_label']}** (sidebar), and the MSE written out term by term:"
    )
    terms = " + ".join(_term(a, b) for a, b in zip(r["x"][:2], r["x_hat"][:2], strict=True))
    more = r"+ \cdots" if r["n"] > 2 else ""
    n_tex = f"{r['n']:,}".replace(",", "{,}")
    st.latex(
        rf"\begin{{aligned}}\mathrm{{MSE}} &= \frac{{1}}{{{n_tex}}}\Big[{terms} {more}\Big] \\ "
        rf"&= \frac{{{_tex_number(r['sum'])}}}{{{n_tex}}} = {_tex_number(r['mse'])}\end{{aligned}}"
    )
    first = pd.DataFrame({
        "i": np.arange(1, len(r["x"]) + 1),
        "x_i": r["x"],
        "x̂_i": r["x_hat"],
        "x_i − x̂_i": r["x"] - r["x_hat"],
        "(x_i − x̂_i)²": (r["x"] - r["x_hat"]) ** 2,
    })
    st.dataframe(first.style.format({c: "{:.4g}" for c in first.columns if c != "i"}), hide_index=True,
                 width="stretch")
    st.caption(
        f"The first {len(r['x'])} of {r['n']:,} terms (in the tensor's memory order). Sum of all squared errors "
        f"{r['sum']:.4g}, divided by N = {r['n']:,}: MSE = {r['mse']:.6g} (computed with {r['how']})."
    )

    st.subheader("≈ 6 dB per bit")
    st.markdown(
        "Each extra bit halves the step, so the error power drops 4× - that is **6.02 dB** of SQNR per bit. The "
        "constant in front depends on the signal: a grid sized to the largest value wastes levels on a tensor "
        "whose typical value is much smaller (a large peak / rms ratio)."
    )
    st.latex(
        r"\mathrm{SQNR} = 10\log_{10}\frac{\sum_i x_i^2}{\sum_i (x_i-\hat{x}_i)^2} \approx 6.02\,b + 4.77 - "
        r"20\log_{10}\frac{\text{peak}}{\text{rms}}\ \ \mathrm{dB}"
    )
    base = spec.replace(format="int", bits=8) if settings.fixed_bits is not None else spec.replace(bits=8)
    with st.spinner("Sweeping bit widths 2-16…"):
        df, note = explorer.curve(settings.model, settings.layer, kind, reductions.spec_key(base))
    bits = df["bits"].to_numpy()
    measured = df["sqnr_db"].to_numpy(dtype=np.float64)
    uniform, tensor_rule = teach_data.rule_lines(bits, r["peak_to_rms"])
    current = settings.bits if settings.fixed_bits is None else None
    st.plotly_chart(
        teach_figures.sqnr_rule(
            bits, measured, uniform, tensor_rule, r["peak_to_rms"], current,
            f"{reductions.curve_label(spec.scheme, spec.granularity, spec.group_size)}, {spec.calibration}",
        ),
        key="sqnr-rule",
        config={"displaylogo": False},
    )
    fin = np.isfinite(measured)
    text = []
    if fin[(bits >= 4) & (bits <= 12)].all() and {4, 12} <= set(bits.tolist()):
        slope = (measured[bits == 12][0] - measured[bits == 4][0]) / 8
        text.append(f"Measured from 4 to 12 bits: **{slope:.2f} dB per bit** (the rule: {DB_PER_BIT:.2f}).")
    text.append(
        f"This tensor's peak / rms is {r['peak_to_rms']:.3g}, so the rule for it sits "
        f"{20 * math.log10(max(r['peak_to_rms'], 1.0)) - 4.77:.3g} dB below the uniform-signal line."
    )
    if spec.granularity != "tensor":
        text.append("Per-channel / per-group scales give each block its own peak, so the measurement beats the "
                    "rule computed with the whole tensor's peak.")
    if spec.calibration != "minmax":
        text.append(f"{spec.calibration} calibration clips the largest values on purpose, which also lifts the "
                    "measurement above the min-max rule.")
    if note:
        text.append(f"(The curve uses a subset of the tensor: {note}.)")
    st.caption(" ".join(text))


with widgets.friendly_errors("trace this value"):
    _one_value()
with widgets.friendly_errors("compute the 10 → 1 layer"):
    _layer_three_ways()
with widgets.friendly_errors("compute the error formulas on this layer"):
    _error_formulas()
with widgets.friendly_errors("pack this layer's codes"):
    export_views.bits_on_the_wire(settings.model, settings.layer, settings.spec(), controls.layer_token(settings.layer))
