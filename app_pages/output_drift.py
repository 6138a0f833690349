"""🎯 Output drift: the whole model, float vs quantized, on its evaluation set."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import controls, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import explorer as data
from ui.compute import reductions
from ui.figures import explorer as figures
from ui.i18n import N_, _
from ui.text import code_span
from ui.views import jobs as job_views

#: Sweeps estimated to take longer than this wait for a click (MiniLM, recsys); quicker ones just run.
AUTO_SWEEP_SECONDS = 8.0

#: The sample models' primary metrics (``SampleModel.metric_name``) as the page names them.
METRIC_NAMES = {
    "accuracy": N_("accuracy"),
    "spearman": N_("spearman"),
    "recall@10": N_("recall@10"),
    "mse": N_("mse"),
}

settings = controls.current()
sm = sources.sample(settings.model)
metric = _(METRIC_NAMES.get(sm.metric_name, sm.metric_name))

widgets.page_intro(
    _("Output drift"),
    "🎯",
    _(
        "Quantize the model, run the float and the quantized versions on the same evaluation examples and compare "
        "what comes out. Small errors in each layer add up through the network - or cancel out: this is where you "
        "see which. The task metric says whether the drift matters for the job the model does."
    ),
    r"\begin{gathered}\mathrm{drift}_i = \tfrac{1}{D}\,\lVert f_q(x_i) - f(x_i)\rVert^2 \\ "
    r"\cos_i = \frac{\langle f_q(x_i),\, f(x_i)\rangle}{\lVert f_q(x_i)\rVert\,\lVert f(x_i)\rVert}"
    r"\end{gathered}",
    _(
        "drop to **4 bits** with granularity **tensor**, then switch to **channel** and watch the task metric "
        "come back towards the float line."
    ),
)

layer_name = controls.layer_token(settings.layer)
only_layer = controls.page_toggle(
    _("Quantize only the chosen layer ({layer})", layer=code_span(layer_name)),
    "only_layer",
    help=_(
        "Off: every quantizable layer is quantized. On: only the layer chosen in the sidebar, to find the "
        "fragile ones."
    ),
)
scope = "layer" if only_layer else "all"
#: Everything the drift figures of this view depend on: they are built once per view for everyone.
VIEW_KEY = "|".join([settings.model, scope, settings.layer, settings.target, reductions.spec_key(settings.spec())])
what = {
    "weights": _("weights"),
    "activations": _("input and output activations (static ranges calibrated on sample inputs)"),
    "both": _("weights and input / output activations"),
}[settings.target]
st.caption(
    _(
        "Quantizing the {what} of {where} with {spec}, {calibration} calibration · {model}",
        what=what,
        where=code_span(layer_name) if only_layer else _("every layer"),
        spec=reductions.spec_label(settings.spec(), _),
        calibration=settings.calibration,
        model=widgets.model_title(sm.title),
    )
)


def _metric_row(res: dict) -> None:
    report = res["report"]
    value = res["metrics"][sm.metric_name]
    baseline = sm.float_metrics[sm.metric_name]
    cols = st.columns(5 if sm.task == "classification" else 4)
    cols[0].metric(
        _("{metric} (task)", metric=metric),
        widgets.fmt(value),
        delta=_("{delta} vs float", delta=f"{value - baseline:+.3g}"),
        delta_color="normal" if sm.higher_is_better else "inverse",
        help=_("The model's own task metric on its evaluation set; the float model scores {baseline}.",
               baseline=f"{baseline:.4g}"),
    )
    cols[1].metric(_("Output SQNR"), f"{widgets.fmt(report['sqnr_db'], 3)} dB",
                   help=_("Signal-to-quantization-noise ratio of the outputs: 10·log10(Σf² / Σ(f_q − f)²)"))
    if res["per_example_cosine"] is None:  # one number per example: no direction per example to compare
        cols[2].metric(_("Cosine"), widgets.fmt(report["mean_cosine"], 5), help=_("Of all outputs as one vector."))
    else:
        cols[2].metric(_("Mean cosine"), widgets.fmt(report["mean_cosine"], 5), help=_("Per example, averaged."))
    if sm.task == "classification":
        cols[3].metric(
            _("Top-1 agreement"),
            f"{100 * report['top1_agreement']:.1f} %",
            help=_("Share of examples whose predicted class is unchanged."),
        )
    ratio = res["float_size_bytes"] / max(res["size_bytes"], 1)
    cols[-1].metric(
        _("Parameters stored"),
        widgets.human_bytes(res["size_bytes"]),
        delta=_("{ratio}× smaller", ratio=f"{ratio:.1f}") if ratio >= 1.05 else _("≈ float32 size"),
        delta_color="off",
        delta_arrow="off",
        help=_(
            "Quantized weights at their bit width plus one scale (and zero point) per block; biases and other "
            "parameters stay float32. In float32: {size}.",
            size=widgets.human_bytes(res["float_size_bytes"]),
        ),
    )


def _drift_histogram(res: dict) -> None:
    per = np.asarray(res["per_example_mse"], dtype=np.float64)
    positive = per[per > 0]
    if positive.size == 0:
        st.success(_("No drift at all: every output is identical to the float model's."), icon="✅")
        return
    logs = np.log10(np.maximum(per, positive.min()))
    counts, edges = np.histogram(logs, bins=40)
    widgets.chart(
        f"drift-hist|{VIEW_KEY}",
        lambda: figures.counts_histogram(counts, edges, _("Drift per example"), _("per-example MSE (log scale)"),
                                         log_x=True),
        key="drift-hist",
        config={"displaylogo": False},
    )


def _cosine_histogram(res: dict) -> None:
    cos = res["per_example_cosine"]
    if cos is None:
        return
    cos = np.asarray(cos, dtype=np.float64)
    lo = min(float(cos.min()), 0.999)
    counts, edges = np.histogram(cos, bins=40, range=(lo, 1.0))
    widgets.chart(
        f"cosine-hist|{VIEW_KEY}",
        lambda: figures.counts_histogram(
            counts, edges, _("Cosine similarity to the float output, per example"), _("cosine similarity"),
            color=figures.FLOAT_COLOR,
        ),
        key="cosine-hist",
        config={"displaylogo": False},
    )
    if sm.task == "embedding":
        st.caption(_(
            "For a sentence encoder the direction of the embedding is what counts: 1.0 means the quantized "
            "model places the sentence exactly where the float model does."
        ))


def _sweep(res: dict) -> None:
    spec = settings.spec()
    fixed = settings.fixed_bits is not None
    sweep_spec = spec.replace(format="int") if fixed else spec
    bits = list(data.SWEEP_BITS)
    estimate = res["seconds"] * len(bits)
    st.subheader(_("Task metric vs bit width"))
    values = job_views.obtain(
        ad.drift_sweep_key(settings.model, scope, settings.layer, settings.target, sweep_spec, bits),
        ad.compute_drift_sweep,
        (settings.model, scope, settings.layer, settings.target, sweep_spec, bits),
        _("Quantizing and evaluating the model at {n} bit widths…", n=len(bits)),
        lambda: estimate,
        _("Compute the curve ({n} bit widths)", n=len(bits)),
        "sweep-button",
        auto=estimate <= AUTO_SWEEP_SECONDS,
    )
    if values is None:
        return
    label = (_("current: {format}", format=settings.format) if fixed
             else _("current: {bits} bits", bits=settings.bits))
    widgets.chart(
        f"sweep|{VIEW_KEY}",
        lambda: figures.metric_sweep_figure(
            bits, values, sm.float_metrics[sm.metric_name], metric, settings.effective_bits,
            res["metrics"][sm.metric_name], label, sm.higher_is_better, title="",
        ),
        key="sweep",
        config={"displaylogo": False},
    )
    scheme = _(
        "{scheme}, {calibration} calibration",
        scheme=reductions.spec_label(sweep_spec.replace(bits=8), _).split(" ", 1)[1],
        calibration=settings.calibration,
    )
    note = (_("The {format} star is its fixed {bits} bits; the line is int.", format=settings.format,
              bits=settings.effective_bits) if fixed else "")
    st.caption(widgets.sentences(
        _("The line keeps the current scheme ({scheme}) and varies only the bit width.", scheme=scheme), note
    ))


with widgets.friendly_errors(_("quantize and run the model")):
    with st.spinner(_("Quantizing the model and running it on the evaluation set…")):
        result = data.drift_point(settings.model, scope, settings.layer, settings.target, reductions.spec_key(settings.spec()))
    if result["notes"]:
        st.caption(_("Group size adapted where it does not divide a layer: {notes}.",
                     notes=widgets.semicolons([reductions.note_text(n) for n in result["notes"]])))
    _metric_row(result)
    left, right = st.columns(2, gap="medium")
    with left:
        widgets.chart(
            f"scatter|{VIEW_KEY}",
            lambda: figures.drift_scatter(result["scatter_float"], result["scatter_quant"], result["n_outputs"]),
            key="scatter",
            config={"displaylogo": False},
        )
    with right:
        _drift_histogram(result)
    _cosine_histogram(result)
    try:
        _sweep(result)
    except jobs.ServerBusy as busy:
        st.warning(widgets.error_reason(busy) or str(busy), icon="⏳")
