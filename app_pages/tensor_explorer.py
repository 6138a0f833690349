"""🔬 Tensor explorer: one layer's weights (and input activations), float vs dequantized, with the grid."""

from __future__ import annotations

import streamlit as st

from ui import controls, sources, widgets
from ui.compute import explorer as data
from ui.compute import export as export_data
from ui.compute import reductions
from ui.figures import explorer as figures
from ui.i18n import _
from ui.text import code_span
from ui.views import export as export_views

settings = controls.current()

widgets.page_intro(
    _("Tensor explorer"),
    "🔬",
    _(
        "Quantization replaces every value by the nearest level of a small grid: a scale **s** spreads the "
        "levels over a range, a zero point **z** shifts them, values beyond the range are clipped. Blue bars are "
        "the layer's float values, orange bars where they land after quantization; the ticks along the bottom are "
        "the grid levels, the red dashes the clipping range."
    ),
    r"\begin{gathered}q = \mathrm{clamp}\!\left(\mathrm{round}\!\left(\tfrac{x}{s}\right) + z,\; q_{\min},\; "
    r"q_{\max}\right)\\ \hat{x} = (q - z)\, s\end{gathered}",
    _(
        "drop the bit width to **4**, then switch granularity to **channel** - watch the orange spikes fill in, "
        "the SQNR jump and the per-channel errors even out."
    ),
)


def _describe(kind: str, view: dict) -> str:
    shape = "×".join(str(d) for d in view["shape"])
    layer = code_span(controls.layer_token(settings.layer))
    label = reductions.view_label(view, _)
    numel = f"{view['numel']:,}"
    if kind == "weights":
        info = sources.layer_info(settings.model, settings.layer)
        real = "×".join(str(d) for d in info.shape)
        # A file's tensor kinds ("matrix (Linear / Embedding)") are in the catalog (ui.views.upload.KINDS); a
        # sample model's are module class names (Linear, Conv2d), shown as they are.
        kind_text = _(info.kind) if info.kind else info.kind
        if real != shape:
            return _("Weights of {layer} · {kind} {shape}, grouped as {grouped} ({n} values) · {spec}",
                     layer=layer, kind=kind_text, shape=real, grouped=shape, n=numel, spec=label)
        return _("Weights of {layer} · {kind} {shape} ({n} values) · {spec}",
                 layer=layer, kind=kind_text, shape=real, n=numel, spec=label)
    return _(
        "Input activations of {layer} on the calibration inputs · {shape} ({n} values) · {spec} (one static range "
        "per tensor, as `quantize_model` applies it)",
        layer=layer, shape=shape, n=numel, spec=label,
    )


def _grid_caption(view: dict) -> str:
    size = f"{view['grid_size']:,}"
    if view["grid"] is None:
        text = _("The grid has {n} levels: too dense to draw one by one.", n=size)
    else:
        text = _("Ticks at the bottom: the {n} grid levels.", n=size)
    if view["num_blocks"] > 1:
        block = view["grid_block"]
        if settings.granularity == "group":
            more = _("Every group has its own scale; the grid and clip range drawn are those of group {block} (the "
                     "widest range).", block=block)
        else:
            more = _("Every channel has its own scale; the grid and clip range drawn are those of channel {block} "
                     "(the widest range).", block=block)
        text = widgets.sentences(text, more)
    return text


def _blocks_caption(view: dict, kind: str) -> str:
    if kind == "activations":
        return _(
            "Activations share one static range (red dashes): a few wide features - outliers, on the left - "
            "stretch it, and every narrow feature is left with a handful of levels. That is why activation "
            "quantization hurts most where such outlier features exist."
        )
    if view["num_blocks"] == 1:
        return _(
            "One shared range (red dashes) for every channel: narrow channels use only a few of the levels, so "
            "their relative error is large. Per-channel granularity gives each channel its own scale."
        )
    return _("Each block has its own range: the red dashes follow the blue band, so narrow blocks keep fine steps.")


def _section(kind: str, log_y: bool) -> None:
    key = reductions.spec_key(settings.spec())
    with st.spinner(_("Quantizing…")):
        view = data.tensor_view(settings.model, settings.layer, kind, key)
    st.subheader(_("Weights") if kind == "weights" else _("Input activations"))
    st.caption(_describe(kind, view))
    if kind == "weights":
        for note in sources.file_notes(settings.model, settings.layer, settings.spec()):
            st.caption(reductions.note_text(note))
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
    log_y = controls.page_toggle(_("Log-scale counts"), "log", help=_("Show rare values (tails, outliers) too."))
    kinds = [k for k, wanted in (("weights", settings.wants_weights), ("activations", settings.wants_activations)) if wanted]
    for kind in kinds:
        what = _("quantize the weights of this layer") if kind == "weights" else _("quantize the activations of this layer")
        with widgets.friendly_errors(what):
            if widgets.activations_missing_note(settings.model, settings.layer, kind, _("Its weights are the table itself.")):
                continue
            _section(kind, log_y)


_charts()


def _export() -> None:
    """The whole model at the sidebar's setting, to take away: compressed-tensors file and recipe."""
    st.subheader(_("⬇️ Take it with you"))
    spec = settings.spec()
    source = sources.get(settings.model)
    if isinstance(source, sources.FileSource):
        export_views.upload_downloads(source.upload, spec, key="export-explorer")
        return
    with widgets.friendly_errors(_("export this model")):
        plan, notes = export_data.sample_plan(settings.model, spec)
        title, label = widgets.model_title(sources.sample(settings.model).title), reductions.spec_label(spec, _)
        if settings.target == "weights":
            every = _("Every layer of {model} at {spec}.", model=title, spec=label)
        else:
            every = _("Every layer of {model} at {spec} (weights only: the file holds no activation ranges).",
                      model=title, spec=label)
        fitted = (_("Group sizes fitted: {notes}.", notes=widgets.semicolons([reductions.note_text(n) for n in notes]))
                  if notes else "")
        export_views.sample_downloads(
            settings.model, plan, spec.label(), "export-explorer", widgets.sentences(every, fitted, _("In the file")),
        )


_export()
