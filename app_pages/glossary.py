"""📖 Glossary / 术语表: every term the app uses, in English and 中文, with a one-line definition and its formula.

Both term columns are always shown (a participant reading the Chinese pages meets the English abbreviations and
papers, and the other way round); the definitions follow the session's language. The terms are the project's
terminology (the same words every page uses); the English and Chinese terms are never translated, so they are not
messages of the catalog. A search box narrows the list (English, 中文 or words of the definition).
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from ui import widgets
from ui.i18n import N_, _
from ui.text import code_span, shorten


class Term(NamedTuple):
    english: str
    chinese: str
    definition: str  # an N_-marked msgid, translated when shown
    formula: str = ""  # LaTeX (inline, KaTeX), no "|": it would end the table cell


#: (section title msgid, its terms), in the order a workshop meets them.
SECTIONS: list[tuple[str, list[Term]]] = [
    (N_("Basics"), [
        Term("quantization", "量化", N_(
            "Storing numbers with fewer bits: each value becomes the nearest level of a small grid."),
            r"q = \mathrm{clamp}\left(\mathrm{round}\left(\tfrac{x}{s}\right) + z,\ q_{\min},\ q_{\max}\right)"),
        Term("linear quantization", "线性量化", N_(
            "Quantization with evenly spaced levels: one scale and one zero point map floats to integers."),
            r"x \approx s\,(q - z)"),
        Term("post-training quantization (PTQ)", "训练后量化（PTQ）", N_(
            "Quantizing a model after training, without training it again: fast, but low bit widths can cost "
            "accuracy.")),
        Term("quantization-aware training (QAT)", "量化感知训练（QAT）", N_(
            "Training with the quantization simulated in the forward pass, so the weights learn to live on the "
            "grid."),
            r"\tfrac{\partial \hat{x}}{\partial x} \approx 1 \ \text{(STE)}"),
        Term("weight quantization", "权重量化", N_("Only the weights are quantized; activations stay float.")),
        Term("activation quantization", "激活量化", N_(
            "The values flowing between layers are quantized too, with a range calibrated on sample inputs.")),
        Term("full quantization", "全量化", N_(
            "Weights and activations both quantized, so the arithmetic itself can run in integers.")),
        Term("float", "浮点", N_("A floating-point number, usually float32 (32 bits) in a trained model.")),
        Term("integer", "整数", N_("A whole number; int8 holds 256 of them, from -128 to 127."),
             r"[-2^{b-1},\ 2^{b-1}-1]"),
        Term("weights", "权重", N_("The learned parameters of a layer (its matrix or its filters).")),
        Term("activations", "激活值", N_("The values a layer receives as input and passes on when the model runs.")),
        Term("layer", "层", N_("One step of the network, such as a Linear or a Conv layer, with its own weights.")),
        Term("tensor", "张量", N_("An array of numbers with a shape, e.g. a 128×64 weight matrix.")),
        Term("channel", "通道", N_("One output row of a layer's weights (one neuron or one filter).")),
    ]),
    (N_("The grid"), [
        Term("scale", "缩放因子", N_("The step between neighbouring levels of the grid."),
             r"s = \dfrac{hi - lo}{q_{\max} - q_{\min}}"),
        Term("zero point", "零点", N_("The integer that stands for 0.0; always 0 for the symmetric scheme."),
             r"z = q_{\min} - \mathrm{round}\left(\tfrac{lo}{s}\right)"),
        Term("bit width", "位宽", N_("How many bits each value keeps; b bits give 2^b levels."),
             r"2^{b}\ \text{levels}"),
        Term("grid", "量化网格", N_("The evenly spaced values a quantized number can take.")),
        Term("levels", "量化级", N_("The points of the grid; how many of them a tensor really uses is shown on the "
                                  "Tensor explorer."), r"q_{\max} - q_{\min} + 1"),
        Term("integer codes", "整数码", N_("The stored integers q, one per value, from which the values are rebuilt."),
             r"q \in \{q_{\min}, \dots, q_{\max}\}"),
        Term("dequantize", "反量化", N_("Turning integer codes back into (approximate) real values."),
             r"\hat{x} = s\,(q - z)"),
        Term("number format", "数值格式", N_(
            "How bits encode a value: an integer grid, fp8 (small floats), nf4 (16 fixed levels) or pow2.")),
        Term("symmetric quantization", "对称量化", N_(
            "A grid centred on zero (zero point 0); shown as the scheme “symmetric”."),
            r"s = \dfrac{\max \lvert x \rvert}{2^{b-1} - 1},\ z = 0"),
        Term("asymmetric quantization", "非对称量化", N_(
            "A grid shifted to fit the range [min, max] exactly; shown as the scheme “asymmetric”."),
            r"s = \dfrac{\max x - \min x}{2^{b} - 1}"),
    ]),
    (N_("Granularity"), [
        Term("granularity", "粒度", N_("How many values share one scale and zero point.")),
        Term("per-tensor", "逐张量", N_("One scale for the whole tensor: simplest, hurt most by outliers.")),
        Term("per-channel", "逐通道", N_("One scale for each output channel (row) of the weights.")),
        Term("per-group", "逐组", N_("One scale for each block of consecutive weights within a row.")),
        Term("group size", "组大小", N_("How many consecutive weights share a scale in per-group quantization."),
             r"\text{bits per weight} = b + \tfrac{32}{g}"),
    ]),
    (N_("Range and calibration"), [
        Term("range", "范围", N_("The interval [lo, hi] the grid covers; values outside it are clipped."),
             r"[lo,\ hi]"),
        Term("calibration", "校准", N_("Choosing the range from data: min-max, percentile, MSE or entropy.")),
        Term("calibration inputs", "校准输入", N_(
            "A few sample inputs run through the model to measure the range of its activations.")),
        Term("percentile", "百分位", N_(
            "Calibration that keeps the given share of the values inside the range and clips the rarest ones."),
            r"hi = P_{p}\left(\lvert x \rvert\right)"),
        Term("clipping", "裁剪", N_("Setting values outside the range to its nearest end."),
             r"\mathrm{clamp}(x,\ lo,\ hi)"),
        Term("clip ratio", "裁剪比例", N_("The range as a fraction α of the full min-max range; α = 1 clips nothing."),
             r"[lo,\ hi] = \alpha\,[\min x,\ \max x]"),
        Term("outlier", "离群值", N_("A rare value far from the others; it stretches the range and coarsens the grid.")),
        Term("histogram", "直方图", N_("A chart of how many values fall in each small interval.")),
    ]),
    (N_("Rounding"), [
        Term("round to nearest", "四舍五入", N_("Each value goes to the closest level (ties to the even one)."),
             r"\mathrm{round}\left(\tfrac{x}{s}\right)"),
        Term("truncation", "截断", N_("Dropping the fraction, toward zero: biased, the error is up to a whole step."),
             r"\mathrm{trunc}\left(\tfrac{x}{s}\right)"),
        Term("stochastic rounding", "随机舍入", N_(
            "Rounding up or down at random, in proportion to the distance: unbiased on average."),
            r"\left\lfloor \tfrac{x}{s} + u \right\rfloor,\ u \sim U[0, 1)"),
    ]),
    (N_("Error"), [
        Term("error", "误差", N_("The difference between the quantized value and the original."),
             r"e = \hat{x} - x"),
        Term("mean squared error (MSE)", "均方误差（MSE）", N_("The average of the squared errors."),
             r"\mathrm{MSE} = \tfrac{1}{N}\textstyle\sum_i (x_i - \hat{x}_i)^2"),
        Term("signal-to-quantization-noise ratio (SQNR)", "信号与量化噪声比（SQNR）", N_(
            "Signal power over error power, in decibels; about 6 dB more for every extra bit."),
            r"\mathrm{SQNR} = 10 \log_{10} \dfrac{\sum x^2}{\sum (x - \hat{x})^2}\ \mathrm{dB}"),
        Term("output drift", "输出漂移", N_("How far the quantized model's outputs move from the float model's.")),
        Term("task metric", "任务指标", N_(
            "The score of the model on its own task: accuracy, Spearman correlation, recall …")),
        Term("accuracy", "准确率", N_("The share of examples the model classifies correctly."),
             r"\dfrac{\text{correct}}{\text{total}}"),
        Term("sensitivity", "敏感度", N_("How much the task metric drops when only that layer is quantized."),
             r"\Delta M_{l} = M_{\text{float}} - M_{l\ \text{quantized}}"),
    ]),
    (N_("Size and speed"), [
        Term("mixed precision", "混合精度", N_("Different bit widths for different layers: more bits where it matters.")),
        Term("budget", "预算", N_("The average bits per weight a mixed-precision plan may spend."),
             r"\dfrac{\sum_l n_l\, b_l}{\sum_l n_l} \le B"),
        Term("model size", "模型大小", N_("The bytes the weights take, scales and zero points included."),
             r"\tfrac{1}{8}\textstyle\sum_l n_l\, b_l\ \text{bytes}"),
        Term("compression ratio", "压缩比", N_("How many times smaller than float32 the quantized model is."),
             r"\dfrac{\text{float32 size}}{\text{quantized size}}"),
        Term("latency", "延迟", N_("The time one call of the model takes.")),
        Term("speed", "速度", N_("How fast the model runs; on a CPU, int8 is not automatically faster.")),
        Term("energy", "能耗", N_("The energy of one inference: arithmetic plus moving the weights and activations."),
             r"E = \textstyle\sum_{\text{op}} n_{\text{op}}\, E_{\text{op}}"),
        Term("embedding table", "嵌入表", N_("A table of vectors looked up by integer id, one row per word or item.")),
        Term("export", "导出", N_("Saving the quantized weights and the recipe to files that other tools load.")),
    ]),
    (N_("In the app"), [
        Term("epoch", "训练轮数（epoch）", N_("One pass over the training data.")),
        Term("learning rate", "学习率", N_("The size of each training step."),
             r"w \leftarrow w - \eta\,\tfrac{\partial L}{\partial w}"),
        Term("upload", "上传", N_("Loading your own weights file on the Your model page.")),
        Term("share link", "分享链接", N_(
            "A link that opens the same page with the same settings, in the language it was made in.")),
        Term("job", "任务", N_("A long computation that runs in the background, shared by everyone who asks for it.")),
        Term("sample model", "样例模型", N_("A small ready model with its own data and task metric.")),
        Term("Try this", "试一试", N_("The box on every page with one thing to try first.")),
    ]),
]

#: The pages, as the page list names them (English and Chinese titles are fixed names, like the terms).
PAGE_TITLES = [
    ("Tensor explorer", "张量浏览器"), ("Error curves", "误差曲线"), ("Output drift", "输出漂移"),
    ("Layer sensitivity", "层敏感度"), ("Size & speed", "大小与速度"), ("PTQ vs QAT", "PTQ 对比 QAT"),
    ("Algorithms", "量化算法"), ("Formula walkthrough", "公式逐步讲解"), ("Your model", "你的模型"),
    ("Glossary", "术语表"),
]


def cell(text: str) -> str:
    """A markdown table cell: ``|`` would end the cell."""
    return text.replace("|", r"\|")


def matches(term: Term, definition: str, query: str) -> bool:
    q = query.casefold()
    return any(q in text.casefold() for text in (term.english, term.chinese, definition))


def table(terms: list[tuple[Term, str]]) -> str:
    rows = [
        f"| **{cell(t.english)}** | **{cell(t.chinese)}** | {cell(definition)} | "
        + (f"${t.formula}$" if t.formula else "")
        + " |"
        for t, definition in terms
    ]
    definition, formula = _("Definition"), _("Formula")
    header = f"| English | 中文 | {definition} | {formula} |\n| --- | --- | --- | --- |\n"
    return header + "\n".join(rows)


widgets.page_intro(
    _("Glossary"),
    "📖",
    _(
        "Every word the app uses, in **English** and **中文** side by side, with what it means and its formula. "
        "The two term columns are always shown, whichever language you picked; the definitions follow your "
        "language. The whole of quantization fits in the two formulas on the right."
    ),
    r"\begin{gathered}q = \mathrm{clamp}\!\left(\mathrm{round}\!\left(\tfrac{x}{s}\right) + z,\ q_{\min},\ "
    r"q_{\max}\right)\\ \hat{x} = s\,(q - z)\end{gathered}",
    _("type **zero** or **零点** in the search box, then open the 🔬 Tensor explorer and find the zero point z "
      "among its numbers."),
)

query = st.text_input(
    _("Search"),
    key="glossary_q",
    placeholder=_("a term in English or Chinese, e.g. clip / 裁剪"),
    help=_("Matches the English term, the Chinese term and the definition."),
).strip()

shown = 0
for section, terms in SECTIONS:
    found = [(t, _(t.definition)) for t in terms]
    if query:
        found = [(t, d) for t, d in found if matches(t, d, query)]
    if not found:
        continue
    shown += len(found)
    st.subheader(_(section))
    st.markdown(table(found))

if query and not shown:
    st.info(_("No term matches {query}. Try a shorter word, in English or Chinese.",
              query=code_span(shorten(query, 40))), icon="🔎")

if not query:
    st.subheader(_("Pages"))
    st.markdown(
        "| English | 中文 |\n| --- | --- |\n"
        + "\n".join(f"| {cell(en)} | {cell(zh)} |" for en, zh in PAGE_TITLES)
    )
    total = sum(len(terms) for _section, terms in SECTIONS)
    st.caption(_("{n} terms. Switch the language at the top of the sidebar: the terms stay, the definitions "
                 "change.", n=total))
