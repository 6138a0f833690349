"""🔬 Tensor explorer: one layer's weights (and input activations), float vs dequantized, with the grid."""

from __future__ import annotations

import streamlit as st

from ui import controls, sources, widgets
from ui.compute import explorer as data
from ui.compute import export as export_data
from ui.compute import reductions
from ui.figures import explorer as figures
from ui.text import code_span
from ui.views import export as export_views

settings = controls.current()

widgets.page_intro(
    "Tensor explorer",
    "🔬",
    "Quantization replaces every value by the nearest level of a small grid: a scale **s** spreads the "
    "levels over a range, a zero point **z** shifts them, values beyond the range are clipped. Blue bars are "
    "the layer's float values, orange bars where they land after quantization; the ticks along the bottom are "
    "the grid levels, the red dashes the clipping range.",
    r"\begin{gathered}q = \mathrm{clamp}\!\left(\mathrm{round}\!\left(\tfrac{x}{s}\right) + z,\; q_{\min},\; "
    r"q_{\max}\right)\\ \hat{x} = (q - z)\, s\end{gathered}",
    "drop the bit width to **4**, then switch granularity to **channel** - watch the orange spikes fill in, "
    "the SQNR jump and the per-channel errors even out.",
)


def _describe(kind: str, view: dict) -> str:
    shape = "×".join(str(d) for d in view["shape"])
    layer = controls.layer_token(settings.layer)
    if kind == "weights":
        info = sources.layer_info(settings.model, settings.layer)
        real = "×".join(str(d) for d in info.shape)
        grouped = f", grouped as {shape}" if real != shape else ""
        return f"Weights of {code_span(layer)} · {info.kind} {real}{grouped} ({view['numel']:,} values) · {view['spec_label']}"
    return (
        f"Input activations of {code_span(layer)} on the calibration inputs · {shape} ({view['numel']:,} values) · "
        f"{view['spec_label']} (one static range per tensor, as `quantize_model` applies it)"
    )


def _grid_caption(view: dict) -> str:
    if view["grid"] is None:
        text = f"The grid has {view['grid_size']:,} levels: too dense to draw one by one."
    else:
        text = f"Ticks at the bottom: the {view['grid_size']:,} grid levels."
    if view["num_blocks"] > 1:
        unit = "group" if settings.granularity == "group" else "channel"
        text += (
            f" Every {unit} has its own scale; the grid and clip range drawn are those of {unit} "
            f"{view['grid_block']} (the widest range)."
        )
    return text


def _blocks_caption(view: dict, kind: str) -> str:
    if kind == "activations":
        return (
            "Activations share one static range (red dashes): a few wide features - outliers, on the left - "
            "stretch it, and every narrow feature is left with a handful of levels. That is why activation "
            "quantization hurts most where such outlier features exist."
        )
    if view["num_blocks"] == 1:
        what = "channel" if kind == "weights" else "feature"
        return (
            f"One shared range (red dashes) for every {what}: narrow {what}s use only a few of the levels, so "
            f"their relative error is large. Per-channel granularity gives each {what} its own scale."
        )
    return "Each block has its own range: the red dashes follow the blue band, so narrow blocks keep fine steps."


def _section(kind: str, log_y: bool) -> None:
    key = reductions.spec_key(settings.spec())
    with st.spinner("Quantizing…"):
        view = data.tensor_view(settings.model, settings.layer, kind, key)
    st.subheader("Weights" if kind == "weights" else "Input activations")
    st.caption(_describe(kind, view))
    if kind == "weights":
        for note in sources.file_notes(settings.model, settings.layer, settings.spec()):
            st.caption(note)
    # Figures are shared by everyone on these settings (a file's stay in its session: no key).
    shared = None if not sources.get(settings.model).shared else f"{settings.model}|{settings.layer}|{kind}|{key}|{log_y}"
    widgets.chart(
        shared and f"hist|{shared}",
        lambda: figures.value_histogram(
            view["edges"], view["float_counts"], view["quant_counts"], view["grid"],
            (view["clip_lo"], view["clip_hi"]), log_y=log_y,
        ),
        key=f"hist-{kind}",
        config={"displaylogo": False},
    )
    st.caption(_grid_caption(view))
    widgets.stats_panel(view, per_block=view["num_blocks"] > 1)
    left, right = st.columns([2, 3], gap="medium")
    with left:
        widgets.chart(
            shared and f"err|{shared}",
            lambda: figures.error_histogram(view["err_edges"], view["err_counts"], log_y=log_y),
            key=f"err-{kind}",
            config={"displaylogo": False},
        )
    with right:
        blocks = view["blocks"]
        widgets.chart(
            shared and f"blocks|{shared}",
            lambda: figures.block_chart(blocks, blocks["unit"] if kind == "weights" else "feature",
                                        view["num_blocks"] == 1),
            key=f"blocks-{kind}",
            config={"displaylogo": False},
        )
        st.caption(_blocks_caption(view, kind))


@st.fragment
def _charts() -> None:
    """The charts; the log-scale toggle only redraws them, so it reruns this fragment alone."""
    log_y = controls.page_toggle("Log-scale counts", "log", help="Show rare values (tails, outliers) too.")
    kinds = [k for k, wanted in (("weights", settings.wants_weights), ("activations", settings.wants_activations)) if wanted]
    for kind in kinds:
        with widgets.friendly_errors(f"quantize the {kind} of this layer"):
            if widgets.activations_missing_note(settings.model, settings.layer, kind, "Its weights are the table itself."):
                continue
            _section(kind, log_y)


_charts()


def _export() -> None:
    """The whole model at the sidebar's setting, to take away: compressed-tensors file and recipe."""
    st.subheader("⬇️ Take it with you")
    spec = settings.spec()
    source = sources.get(settings.model)
    if isinstance(source, sources.FileSource):
        export_views.upload_downloads(source.upload, spec, key="export-explorer")
        return
    with widgets.friendly_errors("export this model"):
        plan, notes = export_data.sample_plan(settings.model, spec)
        weights_only = "" if settings.target == "weights" else " (weights only: the file holds no activation ranges)"
        fitted = f" Group sizes fitted: {'; '.join(notes)}." if notes else ""
        export_views.sample_downloads(
            settings.model, plan, spec.label(), "export-explorer",
            f"Every layer of {sources.sample(settings.model).title} at {spec.label()}{weights_only}.{fitted} In the file",
        )


_export()
