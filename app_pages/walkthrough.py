"""🧮 Formula walkthrough: one value through the formula, a 10 → 1 layer in integers (and the common mistake),
and the MSE / SQNR formulas computed live on the chosen layer.

The page's own inputs are URL parameters like the sidebar's (``x``, ``lo``, ``hi``, ``example``), so a shared
link shows the same value worked through. Bits, rounding, scheme, model and layer come from the shared sidebar.

Formulas stay LaTeX / code; the words around each step are translated (``_``). What comes from quantlib or a
cache shared by every session (the naive path's explanation, the MSE's method) is English or a code there and is
worded here, at display.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from quantlib.walkthrough import DB_PER_BIT, NAIVE_EXPLANATION, ValueTrace, check_trace_inputs, trace_value
from ui import controls, sources, widgets
from ui.compute import explorer, reductions
from ui.compute import teach as teach_data
from ui.figures import teach as teach_figures
from ui.i18n import N_, _
from ui.text import code_span
from ui.views import export as export_views

settings = controls.current()
fmt = widgets.fmt
#: Section 2 runs the layer as int8 hardware does, whatever the sidebar's bit width.
LAYER_BITS = 8
#: Section 1's first view: a value inside a range that does not straddle zero evenly (so z ≠ 0 shows).
DEFAULT_X, DEFAULT_LO, DEFAULT_HI = 0.3, -0.5, 1.5
_X_SLIDER = "wt_x_slider"
#: quantlib's explanation of the naive path (``IntegerLinearResult.explanation``), for the catalog: the page
#: shows it translated; quantlib stays English. Kept equal to quantlib's text (checked below, at display).
_NAIVE_EXPLANATION = N_(
    "The naive way is wrong because the bias is added to the integer accumulator, whose values count units of "
    "s_w·s_x (not s_w), so a bias quantized with s_w is scaled by s_x by mistake, and because the output's range "
    "differs from the weights', so rounding the output onto the weight's grid clips every output beyond ±max|w|."
)
#: The scheme columns of section 1.
_SCHEME_TITLES = {"symmetric": N_("Symmetric"), "asymmetric": N_("Asymmetric")}
#: How the MSE of section 3 was summed (``mse_terms``' code) as the caption says it.
_MSE_HOW = {"formula": "`quantlib.walkthrough.mse_formula`", "torch": N_("a float64 sum in torch")}

widgets.page_intro(
    _("Formula walkthrough"),
    "🧮",
    _(
        "The whole of quantization is two lines of arithmetic. Here you follow **one number** through them step "
        "by step, then a **10 → 1 layer** computed in integers the way an int8 chip does it - next to the shortcut "
        "many tutorials take and why it is wrong - and finally the **error formulas** computed on the layer you "
        "chose in the sidebar."
    ),
    r"\begin{gathered}q = \mathrm{clamp}\!\left(\mathrm{round}\!\left(\tfrac{x}{s}\right) + z,\ q_{\min},\ "
    r"q_{\max}\right)\\ \hat{x} = (q - z)\, s \qquad \mathrm{MSE} = \tfrac{1}{N}\textstyle\sum_i (x_i - "
    r"\hat{x}_i)^2\end{gathered}",
    _(
        "set the sidebar's bit width to **3**, then drag the value: x̂ jumps from level to level and the error "
        "stays below half a step - until you push x past the range and it is clipped."
    ),
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
        zero = _("0 for symmetric")
    else:
        rng = f"[min(lo, 0), max(hi, 0)] = [min({_n(t.lo)}, 0), max({_n(t.hi)}, 0)]"
        scale = f"(hi − lo) / (qmax − qmin) = {_n(t.range_hi - t.range_lo)} / {t.qmax - t.qmin}"
        zero = f"qmin − round(lo / s) = {t.qmin} − round({_n(t.range_lo / t.scale)})"
    clamp = f"clamp({_n(t.shifted)}, {t.qmin}, {t.qmax})" + (" ✂️ " + _("clipped") if t.clipped else "")
    # The formulas are the same in every language; the step names and the words between them are translated.
    rows = [
        (_("range"), rng, f"[{_n(t.range_lo)}, {_n(t.range_hi)}]"),
        (_("grid"), _("{bits} bits: integers qmin … qmax", bits=t.bits), f"{t.qmin} … {t.qmax}"),
        (_("scale s"), scale, _n(t.scale, 6)),
        (_("zero point z"), zero, str(t.zero_point)),
        (_("divide"), f"x / s = {_n(t.x)} / {_n(t.scale)}", _n(t.x_over_s, 6)),
        (_("round"), _("{rounding}: round({value})", rounding=teach_data.word(t.rounding, _), value=_n(t.x_over_s, 6)),
         _n(t.rounded)),
        (_("shift"), f"+ z = {_n(t.rounded)} + {t.zero_point}", _n(t.shifted)),
        (_("clamp"), clamp, f"q = {t.q}"),
        (_("dequantize"), f"(q − z) · s = ({t.q} − {t.zero_point}) · {_n(t.scale)}", f"x̂ = {_n(t.x_hat, 6)}"),
        (_("error"), f"x − x̂ = {_n(t.x, 6)} − {_b(t.x_hat)}", _n(t.error, 4)),
    ]
    lines = ["| " + _("step") + " | " + _("with the numbers") + " | " + _("result") + " |", "| --- | --- | ---: |"]
    lines += [f"| {a} | {b} | **{c}** |" for a, b, c in rows]
    return "\n".join(lines)


# --- 1. one value --------------------------------------------------------------------------------------------


def _cannot_trace(err: ValueError, bits: int) -> None:
    """quantlib's refusal of a value or range (English, naming the number) as a sentence in the reader's language,
    its original words beside it."""
    detail = str(err)
    if "beyond float32" in detail:
        why = _("a number here is beyond float32's range (about ±3.4e38), the number type quantlib computes in. "
                "Use smaller numbers.")
    elif "too narrow" in detail:
        why = _("the range is too narrow for a float32 scale at {bits} bits (the scale would fall below float32's "
                "smallest normal number, about 1.2e-38). Widen the range.", bits=bits)
    elif "too wide" in detail:
        why = _("the range is too wide for float32 at {bits} bits (the grid's end levels would go beyond float32's "
                "largest number, about 3.4e38). Narrow the range.", bits=bits)
    else:
        why = _("quantlib refused these numbers.")
    st.error(_("This range cannot be traced: {reason}", reason=why) + "\n\n"
             + _("Original message (English): {detail}", detail=code_span(detail)), icon="🚫")



def _one_value() -> None:
    st.header(_("1 · One value on its way"), divider="gray")
    bits = settings.bits
    rounding = settings.rounding
    notes = []
    if settings.fixed_bits is not None:
        notes.append(_(
            "{format} is not an integer grid: this section shows the integer grid at the bit slider's {bits} bits "
            "(round to nearest).", format=code_span(settings.format), bits=bits,
        ))
    st.markdown(_(
        "Quantizing to **{bits} bits** with **{rounding}** rounding (both from the sidebar). Pick a value and the "
        "range the scale is computed from; the two schemes are worked out side by side.",
        bits=bits, rounding=teach_data.word(rounding, _),
    ))
    if notes:
        st.caption(teach_data.sentences(notes))
    c_lo, c_hi = st.columns(2)
    with c_lo:
        lo = controls.page_widget(st.number_input, _("Range low"), "lo", value=DEFAULT_LO, step=0.1, format="%.4f",
                                  help=_("The smallest value the grid must cover (from calibration: e.g. the "
                                         "minimum of a tensor)."))
    with c_hi:
        hi = controls.page_widget(st.number_input, _("Range high"), "hi", value=DEFAULT_HI, step=0.1, format="%.4f",
                                  help=_("The largest value the grid must cover."))
    if not lo < hi:
        st.error(_("Range low must be below range high: the grid is spread between the two."), icon="🚫")
        return
    try:  # before any arithmetic on the range: a link can bring ±1e308 or 5e-324 (number_input takes them)
        for scheme in ("symmetric", "asymmetric"):
            check_trace_inputs(0.0, float(lo), float(hi), bits, scheme)
    except ValueError as err:
        _cannot_trace(err, bits)
        return
    span = hi - lo
    step = 10.0 ** math.floor(math.log10(span / 100))
    s_lo = math.floor((lo - span / 2) / step) * step
    s_hi = math.ceil((hi + span / 2) / step) * step
    c_slide, c_type = st.columns([3, 1])
    with c_type:  # first: the typed value is the one that counts (and the one in the link)
        x = controls.page_widget(st.number_input, _("… or type it"), "x", value=DEFAULT_X, step=float(step),
                                 format="%.6f", help=_("Any number; beyond the slider's ends too."))
    with c_slide:
        # The slider mirrors x, pinned inside its range (it goes half a range beyond each end of lo..hi).
        st.session_state[_X_SLIDER] = min(max(float(x), s_lo), s_hi)
        st.slider(_("Value x"), min_value=float(s_lo), max_value=float(s_hi), step=float(step), key=_X_SLIDER,
                  on_change=_slide_x, help=_("Goes half a range beyond each end, so you can watch clipping."))
    with widgets.friendly_errors(_("trace this value")):
        try:
            traces = {
                scheme: trace_value(float(x), float(lo), float(hi), bits, scheme=scheme,
                                    rounding="nearest" if settings.fixed_bits else rounding)
                for scheme in ("symmetric", "asymmetric")
            }
        except ValueError as err:  # a value or range float32 cannot hold: quantlib says which, in English
            _cannot_trace(err, bits)
            return
        cols = st.columns(2, gap="medium")
        for col, (scheme, t) in zip(cols, traces.items(), strict=True):
            with col:
                name = _SCHEME_TITLES[scheme]
                st.subheader(_("{scheme} (sidebar)", scheme=_(name)) if scheme == settings.scheme else _(name))
                m = st.columns(3, wrap=False)
                m[0].metric(_("stored integer q"), str(t.q), help="clamp(round(x / s) + z, qmin, qmax)")
                m[1].metric(_("read back x̂"), fmt(t.x_hat, 4), help="(q - z) · s")
                m[2].metric(_("error x − x̂"), fmt(t.error, 3),
                            help=_("At most s / 2 with round-to-nearest, unless clipped."))
                st.plotly_chart(
                    teach_figures.number_line(
                        t.x, t.x_hat, t.q, teach_data.number_line(t), t.range_lo, t.range_hi,
                        _("{scheme}: s = {s}, z = {z}", scheme=teach_data.word(scheme, _), s=f"{t.scale:.4g}",
                          z=t.zero_point),
                    ),
                    key=f"line-{scheme}",
                    config={"displaylogo": False},
                )
                if t.clipped:
                    st.warning(_("x lies beyond the grid: the clamp moved it to the last level (clipping)."),
                               icon="✂️")
                st.markdown(_steps_table(t))
        sym, asym = traces["symmetric"], traces["asymmetric"]
        if asym.scale < 0.99 * sym.scale:
            st.info(
                _(
                    "The asymmetric step is **{ratio}× finer** ({asym} vs {sym}): symmetric centres its grid on 0 "
                    "and spends levels down to {low}, a part of the range that holds no values; the zero point "
                    "z = {z} lets asymmetric fit [{lo}, {hi}] exactly.",
                    ratio=f"{sym.scale / asym.scale:.2g}", asym=f"{asym.scale:.4g}", sym=f"{sym.scale:.4g}",
                    low=f"{sym.range_lo:.3g}", z=asym.zero_point, lo=f"{asym.range_lo:.3g}",
                    hi=f"{asym.range_hi:.3g}",
                ),
                icon="💡",
            )
        else:
            st.info(
                _("The range is (nearly) centred on zero, so both schemes get the same step: a zero point buys "
                  "nothing here. Make the range lopsided (e.g. low 0, high 6, like a ReLU output) to see it pay off."),
                icon="💡",
            )


# --- 2. the 10 -> 1 layer --------------------------------------------------------------------------------------


def _layer_three_ways() -> None:
    st.header(_("2 · A 10 → 1 layer in integers, three ways"), divider="gray")
    bits = LAYER_BITS
    scheme = settings.scheme if settings.fixed_bits is None else "symmetric"
    st.markdown(_(
        "The `tiny-linear` layer **y = w·x + b** (10 inputs, 1 output), computed in **{bits}-bit** integers with "
        "**{scheme}** inputs and output, the way an inference engine does it: integer weights and inputs, sums "
        "in a 32-bit integer accumulator, the bias added *on the accumulator's scale* **s_w·s_x**, and one "
        "multiplication to bring the sum back onto the output's grid. Next to it, the shortcut of many tutorials: "
        "bias and output quantized with the **weight's** scale s_w.",
        bits=bits, scheme=teach_data.word(scheme, _),
    ))
    st.caption(_("Always 8 bits here (int8, what inference engines run), whatever the bit slider says; the input "
                 "scheme follows the sidebar (asymmetric inputs add the zero-point correction term)."))
    p = teach_data.tiny_linear_paths(bits, scheme)
    n = len(p["float"])
    i = int(controls.page_widget(st.number_input, _("Evaluation input (0 – {last})", last=n - 1), "example",
                                 value=0, min_value=0, max_value=n - 1, step=1,
                                 help=_("One of tiny-linear's evaluation inputs; the scales are calibrated on all "
                                        "of them.")))
    x = p["x"][i]
    table = pd.DataFrame(
        [p["weight"], p["q_w"], x, p["q_x"][i]],
        index=[_("weight w"), "q_w = round(w / s_w)", _("input x"), "q_x = round(x / s_x) + z_x"],
        columns=[str(k + 1) for k in range(len(x))],
    )
    st.dataframe(table.style.format(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)),
                 width="stretch")
    y, yc, yn = p["float"][i], p["correct"][i], p["naive"][i]
    m = st.columns(3, wrap=False)
    m[0].metric(_("float y"), fmt(y, 5), help=_("Computed in float64 as the reference."))
    m[1].metric(_("correct ŷ"), fmt(yc, 5), delta=_("error {delta}", delta=f"{yc - y:+.2g}"), delta_color="off",
                delta_arrow="off", help=_("Integer arithmetic done right (int8 engine)."))
    m[2].metric(_("naive ŷ"), fmt(yn, 5), delta=_("error {delta}", delta=f"{yn - y:+.2g}"), delta_arrow="off",
                delta_color="red" if abs(yn - y) > 2 * abs(yc - y) else "off",
                help=_("Bias and output quantized with the weight's scale."))
    z_term = f" - z_x·Σq_w = {p['acc'][i] - p['correction']}" if p["z_x"] else ""
    same = _("same")
    # Each row: the step's name (words), then the arithmetic of both ways (formulas, the same in every language).
    table_rows = [
        (_("step"), _("correct (int8 engine)"), _("naive (bias and output on s_w)")),
        ("---", "---", "---"),
        (_("weight scale"), f"s_w = max\\|w\\| / qmax = **{p['s_w']:.4g}**", same),
        (_("input scale, zero point"), f"s_x = **{p['s_x']:.4g}**, z_x = **{p['z_x']}**", same),
        (_("bias b = {value}", value=f"{p['bias']:.4g}"), f"q_b = round(b / (s_w·s_x)) = **{p['q_b']}**",
         f"q_b = round(b / s_w) = **{p['naive_q_b']}**"),
        (_("accumulate"), f"Σ q_w·q_x{z_term} + q_b = **{p['acc_total'][i]}**", f"**{p['naive_acc_total'][i]}**"),
        (_("requantize"), f"q_y = round(acc · s_w·s_x / s_y) + z_y = **{p['q_y'][i]}** (s_y = {p['s_y']:.4g}, "
         f"z_y = {p['z_y']})", _("q_y = round(acc · s_w·s_x / s_w), clamped = **{q}**", q=p["naive_q_y"][i])),
        (_("read back"), f"ŷ = (q_y - z_y)·s_y = **{yc:.6g}**", f"ŷ = q_y·s_w = **{yn:.6g}**"),
        (_("error ŷ - y"), f"**{yc - y:+.3g}**", f"**{yn - y:+.3g}**"),
    ]
    rows = ["| " + " | ".join(cells) + " |" for cells in table_rows]
    st.markdown("\n".join(rows))
    # quantlib's sentence (English) is a msgid of this page: translated when it is the one the catalog knows.
    explanation = p["explanation"]
    st.warning(_(_NAIVE_EXPLANATION) if explanation == NAIVE_EXPLANATION == _NAIVE_EXPLANATION else explanation,
               icon="⚠️")
    st.plotly_chart(
        teach_figures.integer_linear_scatter(p["float"], p["correct"], p["naive"], float(np.abs(p["weight"]).max())),
        key="layer-scatter",
        config={"displaylogo": False},
    )
    ratio = p["naive_rms"] / p["correct_rms"] if p["correct_rms"] > 0 else math.inf
    st.caption(_(
        "Over all {n} inputs: correct integer arithmetic is off by {correct_rms} (RMS, largest {correct_max}); the "
        "naive way by {naive_rms} (largest {naive_max}), {ratio}× worse. The dotted red lines are ±max|w| = "
        "±{wmax}: the naive output cannot leave them, so {clipped} of the {n} outputs are clipped.",
        n=n, correct_rms=f"{p['correct_rms']:.3g}", correct_max=f"{p['correct_max']:.3g}",
        naive_rms=f"{p['naive_rms']:.3g}", naive_max=f"{p['naive_max']:.3g}", ratio=f"{ratio:.3g}",
        wmax=f"{np.abs(p['weight']).max():.3g}", clipped=p["naive_clipped"],
    ))
    with st.expander(_("… and what the tutorial code literally prints")):
        st.markdown(_(
            "Run as written, the tutorial multiplies the *float* input by the *integer* weights, so its sum already "
            "counts units of s_w (≈ y / s_w), then \"quantizes it with s_w\" once more instead of multiplying by "
            "s_w. For input {i} it prints **{printed}** where the layer gives **{y}** - about {factor}× too large.",
            i=i, printed=f"{p['primer'][i]:.6g}", y=f"{y:.6g}",
            factor=f"{abs(p['primer'][i] / y) if y else math.inf:.3g}",
        ))


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
    st.header(_("3 · The error formulas on your layer"), divider="gray")
    kind = "activations" if settings.target == "activations" else "weights"
    if kind == "activations" and not sources.has_float_activations(settings.model, settings.layer):
        kind = "weights"
    spec = settings.spec()
    key = reductions.spec_key(spec)
    layer = controls.layer_token(settings.layer)
    with st.spinner(_("Quantizing the layer…")):
        r = teach_data.mse_terms(settings.model, settings.layer, kind, key)
    shape = "×".join(str(d) for d in r["shape"])
    values = {"layer": code_span(layer), "model": settings.model, "shape": shape, "n": f"{r['n']:,}",
              "spec": teach_data.spec_words(reductions.spec_from_key(r["spec_key"]), _)}
    st.markdown(
        _("The weights of {layer} ({model}, {shape} = {n} values) quantized with **{spec}** (sidebar), and the MSE "
          "written out term by term:", **values) if kind == "weights"
        else _("The activations of {layer} ({model}, {shape} = {n} values) quantized with **{spec}** (sidebar), and "
               "the MSE written out term by term:", **values)
    )
    terms = " + ".join(_term(a, b) for a, b in zip(r["x"][:2], r["x_hat"][:2], strict=True))
    more = r"+ \cdots" if r["n"] > 2 else ""
    n_tex = f"{r['n']:,}".replace(",", "{,}")
    st.latex(
        rf"\begin{{aligned}}\mathrm{{MSE}} &= \frac{{1}}{{{n_tex}}}\Big[{terms} {more}\Big] \\ "
        rf"&= \frac{{{_tex_number(r['sum'])}}}{{{n_tex}}} = {_tex_number(r['mse'])}\end{{aligned}}"
    )
    first = pd.DataFrame({  # the columns are formulas: the same in every language
        "i": np.arange(1, len(r["x"]) + 1),
        "x_i": r["x"],
        "x̂_i": r["x_hat"],
        "x_i − x̂_i": r["x"] - r["x_hat"],
        "(x_i − x̂_i)²": (r["x"] - r["x_hat"]) ** 2,
    })
    st.dataframe(first.style.format({c: "{:.4g}" for c in first.columns if c != "i"}), hide_index=True,
                 width="stretch")
    how = _MSE_HOW[r["how"]]
    st.caption(_(
        "The first {k} of {n} terms (in the tensor's memory order). Sum of all squared errors {total}, divided by "
        "N = {n}: MSE = {mse} (computed with {how}).",
        k=len(r["x"]), n=f"{r['n']:,}", total=f"{r['sum']:.4g}", mse=f"{r['mse']:.6g}",
        how=how if how.startswith("`") else _(how),
    ))

    st.subheader(_("≈ 6 dB per bit"))
    st.markdown(_(
        "Each extra bit halves the step, so the error power drops 4× - that is **6.02 dB** of SQNR per bit. The "
        "constant in front depends on the signal: a grid sized to the largest value wastes levels on a tensor "
        "whose typical value is much smaller (a large peak / rms ratio)."
    ))
    st.latex(
        r"\mathrm{SQNR} = 10\log_{10}\frac{\sum_i x_i^2}{\sum_i (x_i-\hat{x}_i)^2} \approx 6.02\,b + 4.77 - "
        r"20\log_{10}\frac{\text{peak}}{\text{rms}}\ \ \mathrm{dB}"
    )
    base = spec.replace(format="int", bits=8) if settings.fixed_bits is not None else spec.replace(bits=8)
    with st.spinner(_("Sweeping bit widths 2-16…")):
        df, note = explorer.curve(settings.model, settings.layer, kind, reductions.spec_key(base))
    bits = df["bits"].to_numpy()
    measured = df["sqnr_db"].to_numpy(dtype=np.float64)
    uniform, tensor_rule = teach_data.rule_lines(bits, r["peak_to_rms"])
    current = settings.bits if settings.fixed_bits is None else None
    st.plotly_chart(
        teach_figures.sqnr_rule(
            bits, measured, uniform, tensor_rule, r["peak_to_rms"], current,
            _scheme_text(spec),  # the measured line's legend
        ),
        key="sqnr-rule",
        config={"displaylogo": False},
    )
    fin = np.isfinite(measured)
    text = []
    if fin[(bits >= 4) & (bits <= 12)].all() and {4, 12} <= set(bits.tolist()):
        slope = (measured[bits == 12][0] - measured[bits == 4][0]) / 8
        text.append(_("Measured from 4 to 12 bits: **{slope} dB per bit** (the rule: {rule}).",
                      slope=f"{slope:.2f}", rule=f"{DB_PER_BIT:.2f}"))
    text.append(_(
        "This tensor's peak / rms is {ratio}, so the rule for it sits {db} dB below the uniform-signal line.",
        ratio=f"{r['peak_to_rms']:.3g}", db=f"{20 * math.log10(max(r['peak_to_rms'], 1.0)) - 4.77:.3g}",
    ))
    if spec.granularity != "tensor":
        text.append(_("Per-channel / per-group scales give each block its own peak, so the measurement beats the "
                      "rule computed with the whole tensor's peak."))
    if spec.calibration != "minmax":
        text.append(_("{calibration} calibration clips the largest values on purpose, which also lifts the "
                      "measurement above the min-max rule.", calibration=teach_data.word(spec.calibration, _)))
    if note:
        text.append(_("(The curve uses a subset of the tensor: {note}.)", note=_note(note)))
    st.caption(teach_data.sentences(text))


def _scheme_text(spec) -> str:  # noqa: ANN001 - a QuantSpec
    """``symmetric · per-channel, minmax calibration`` in the reader's language (the SQNR chart's measured line)."""
    return _("{scheme}, {calibration} calibration", scheme=teach_data.scheme_words(spec, _),
             calibration=teach_data.word(spec.calibration, _))


def _note(note: str) -> str:
    """A cached note (``ui.compute.reductions.Note``: English plus its msgid) in the reader's language."""
    text = getattr(note, "text", None)
    return text() if callable(text) else note


with widgets.friendly_errors(_("trace this value")):
    _one_value()
with widgets.friendly_errors(_("compute the 10 → 1 layer")):
    _layer_three_ways()
with widgets.friendly_errors(_("compute the error formulas on this layer")):
    _error_formulas()
with widgets.friendly_errors(_("pack this layer's codes")):
    export_views.bits_on_the_wire(settings.model, settings.layer, settings.spec(), controls.layer_token(settings.layer))
