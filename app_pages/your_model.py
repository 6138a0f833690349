"""📤 Your model: upload a .safetensors / PyTorch state_dict and look at its tensors with the sidebar's settings.

The upload and everything computed from it stay in this browser session (``ui.compute.upload`` keeps them in
``st.session_state``, never in Streamlit's shared caches); only histogram counts, curve points and small tables
are sent to the browser.
"""

from __future__ import annotations

import streamlit as st

from ui import controls, sources, widgets
from ui.compute import upload
from ui.compute.reductions import note_text
from ui.figures import explorer as figures
from ui.i18n import _, ngettext
from ui.text import code_span, escape_markdown, shorten
from ui.views import export as export_views
from ui.views import upload as upload_views
from ui.widgets import fmt, human_bytes

#: Tables list at most this many tensors (the totals always cover all of them).
MAX_TABLE_ROWS = 1000
#: A file or tensor name quoted in running text is cut to this many characters (the table shows it whole).
NAME_CHARS = 100
_TENSOR_KEY = "_qe_upload_tensor"

settings = controls.current()
session = st.session_state

widgets.page_intro(
    _("Your model"),
    "📤",
    _(
        "Load your own model's weights and see what the sidebar's settings do to them. Every floating-point "
        "tensor in the file becomes a layer you can pick: its values before and after quantization, the error, "
        "the error at every bit width, and how small the whole file gets. Below: how each value lands on the grid, "
        "and what the result costs - n values at b bits, plus a 4-byte scale (and a zero point) per block."
    ),
    r"\begin{gathered}\hat{x} = \big(\mathrm{clamp}(\mathrm{round}(x/s) + z) - z\big)\, s \\ "
    r"\text{" + _("bytes") + r"} = \Big\lceil \tfrac{n\, b}{8} \Big\rceil + \text{" + _("blocks") + r"}\cdot(4 + \text{"
    + _("zero point") + r"})\end{gathered}",
    _(
        "no file at hand? Click **Load the demo model** below, set the bit width to **4**, then switch "
        "granularity to **channel**: the demo's `encoder.0.weight` has one outlier row, and the SQNR jumps from "
        "about 5 to 19 dB."
    ),
)


# --- getting a file ------------------------------------------------------------------------------------------------


def _get_file() -> upload.Upload | None:
    """The uploader, the demo button and how-to; returns this session's upload (loaded or refused), if any."""
    limit_mb = upload.max_upload_bytes() / 2**20
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        file = st.file_uploader(
            _(
                "Model file: .safetensors, or a PyTorch state_dict (.pt / .pth / .bin), up to {mb} MB",
                mb=f"{limit_mb:.0f}",
            ),
            key="_qe_upload_file",
            help=_(
                "Read without running any code from the file (safetensors, or `torch.load` with "
                "`weights_only=True`)."
            ),
        )
    with right:
        demo_clicked = st.button(
            "✨ " + _("Load the demo model"),
            key="_qe_upload_demo",
            help=_(
                "A small made-up model (a conv stem, two Linear layers with biases, a norm, a head), built in "
                "memory."
            ),
            width="stretch",
        )
    with st.expander(_("How do I get a file from my model?")):
        st.markdown(_("In a notebook, save the model's weights (not the whole model object):"))
        st.code(
            "from safetensors.torch import save_file\n"
            'save_file(model.state_dict(), "model.safetensors")\n'
            + _("# or, for a .pt file:")
            + "\n"
            'torch.save(model.state_dict(), "model.pt")',
            language="python",
        )
        st.caption(
            _(
                "Tied weights (one tensor under two names) make `save_file` complain: use "
                '`safetensors.torch.save_model(model, "model.safetensors")` instead. Files saved with '
                "`torch.save(model)` hold Python objects and are refused: they could run code on this server."
            )
        )
    st.caption(
        "🔒 "
        + _(
            "Your file stays in this browser tab's session: other participants cannot see it, nothing is written "
            "to disk, and it is gone when you close the tab. A shared link carries the settings, not the file."
        )
    )
    before = upload.current(session)
    with widgets.friendly_errors(_("read the file")):
        upload.sync_uploader(session, file)
        if demo_clicked:
            upload.load_demo(session)
    now = upload.current(session)
    if _offered(before) != _offered(now):
        st.rerun()  # the sidebar was drawn before the file came or went: draw it again with the right models
    return now


def _offered(up: upload.Upload | None) -> str | None:
    """Which file the sidebar offers as a model (its token), if any."""
    return up.token if up is not None and up.ok else None


# --- the file's tensors ---------------------------------------------------------------------------------------------


def _file_section(up: upload.Upload) -> None:
    """What the file holds: one table row per floating-point tensor, and what was left out."""
    tensors = up.tensors
    # File and tensor names are the uploader's text: escaped, never markup (see ui.text).
    st.subheader(f"📄 {escape_markdown(shorten(up.filename, NAME_CHARS))}")
    if up.source == "demo":
        st.caption(
            ngettext(
                "demo model, built in memory · {n:,} floating-point tensor · {values:,} values. Each tensor is "
                "treated as one layer's weights.",
                "demo model, built in memory · {n:,} floating-point tensors · {values:,} values. Each tensor is "
                "treated as one layer's weights.",
                len(tensors),
                n=len(tensors),
                values=tensors.total_values,
            )
        )
    else:
        st.caption(
            ngettext(
                "{format}, {size} · {n:,} floating-point tensor · {values:,} values. Each tensor is treated as one "
                "layer's weights.",
                "{format}, {size} · {n:,} floating-point tensors · {values:,} values. Each tensor is treated as one "
                "layer's weights.",
                len(tensors),
                format=tensors.format,
                size=human_bytes(tensors.num_bytes),
                n=len(tensors),
                values=tensors.total_values,
            )
        )
    for note in upload_views.file_notes(tensors):  # sentences that list tensor names (as code spans)
        st.warning(note, icon="⚠️")
    rows = tensors.rows()
    table = [
        {
            "tensor": r["name"],
            "shape": _dims(r["shape"]),
            "dtype": r["dtype"],
            "values": r["numel"],
            "kind": upload_views.kind(r["kind"]),
            "finite": _("yes") if r["finite"] else "NaN / Inf",
        }
        for r in rows[:MAX_TABLE_ROWS]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=upload_views.table_height(len(table)),
        column_config={
            "tensor": st.column_config.TextColumn(_("tensor")),
            "shape": st.column_config.TextColumn(_("shape")),
            "dtype": st.column_config.TextColumn(_("dtype")),
            "values": st.column_config.NumberColumn(_("values"), format="localized"),
            "kind": st.column_config.TextColumn(_("kind")),
            "finite": st.column_config.TextColumn(_("finite")),
        },
    )
    if len(rows) > MAX_TABLE_ROWS:
        st.caption(
            _(
                "The first {shown:,} of {total:,} tensors (by name); every one can be picked below.",
                shown=MAX_TABLE_ROWS,
                total=len(rows),
            )
        )


def _quoted(name: str) -> str:
    """A tensor name inside running text: a code span that holds it verbatim, cut to a readable length."""
    return code_span(shorten(name, NAME_CHARS))


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or _("scalar")


def _use_in_sidebar() -> None:
    """The button's callback (widget state can only be set before the widgets are drawn): the file becomes the
    sidebar's model, and the tensor picked on this page its layer."""
    session["model"] = sources.UPLOAD_MODEL
    name = session.get(_TENSOR_KEY)
    if name is not None:
        session["layer"] = controls.layer_token(name)


def _open_elsewhere() -> None:
    """Send the file to the other pages: first make it the sidebar's model, then links to the pages that read it.

    (Links rather than ``st.switch_page``, which would have to clear or set the URL parameters the sidebar's
    widgets are bound to; a page link keeps them.)
    """
    if not sources.is_file(settings.model):
        st.button(
            "📤 " + _("Make this file the sidebar's model ({model})", model=code_span(sources.UPLOAD_MODEL)),
            key="_qe_upload_open",
            on_click=_use_in_sidebar,
            help=_(
                "Then the Tensor explorer, Error curves and Size pages show its tensors, with every chart those "
                "pages have (the tensor picked below becomes the sidebar's layer). Only in this browser tab."
            ),
        )
        return
    st.caption(
        _(
            "The sidebar's model is this file ({model}): its tensors are the layers there.",
            model=code_span(sources.UPLOAD_MODEL),
        )
    )
    cols = st.columns(3)
    for col, (path, label) in zip(
        cols,
        (
            ("app_pages/tensor_explorer.py", "🔬 " + _("Tensor explorer of this file")),
            ("app_pages/error_curves.py", "📉 " + _("Error curves of this file")),
            ("app_pages/size_speed.py", "⚡ " + _("Size of this file")),
        ),
        strict=True,
    ):
        col.page_link(path, label=label)


# --- one tensor -----------------------------------------------------------------------------------------------------


def _default_tensor(rows: list[dict]) -> str:
    """A first view worth looking at: the first finite weight matrix / kernel of at most a million values."""
    for r in rows:
        if r["finite"] and len(r["shape"]) >= 2 and 0 < r["numel"] <= 1_000_000:
            return r["name"]
    return rows[0]["name"]


@st.fragment
def _tensor_section(up: upload.Upload) -> None:
    """Pick a tensor; its histograms, numbers and error curves. Picking a tensor or the log scale reruns only this
    fragment."""
    tensors = up.tensors
    rows = tensors.rows()
    names = [r["name"] for r in rows]
    if session.get(_TENSOR_KEY) not in names:
        session[_TENSOR_KEY] = _default_tensor(rows)
    name = st.selectbox(
        _("Tensor"), names, key=_TENSOR_KEY, format_func=lambda n: f"{n}  ·  {_dims(tuple(tensors[n].shape))}"
    )
    notes = [_("Every sidebar setting below *Layer* applies to this tensor.")]
    if settings.target != "weights":
        notes.append(
            _("A file holds weights only, so this page quantizes weights (activations need a running model).")
        )
    st.caption(widgets.sentences(*notes))
    log_y = controls.page_toggle(_("Log-scale counts"), "log", help=_("Show rare values (tails, outliers) too."))
    with widgets.friendly_errors(_("analyse this tensor")):
        _tensor_charts(up, name, log_y)


def _offered_group_sizes() -> list[int] | None:
    """The group sizes the sidebar offers (those of the sample layer chosen there), under per-group."""
    if settings.granularity != "group":
        return None
    return controls.group_sizes(sources.layer_info(settings.model, settings.layer))


def _tensor_charts(up: upload.Upload, name: str, log_y: bool) -> None:
    spec = settings.spec()
    try:
        with st.spinner(_("Quantizing…")):
            plan, view = upload.view_for(session, up, name, spec, _offered_group_sizes())
    except ValueError as err:
        # A granularity that does not fit, NaN / Inf values, an empty tensor: the plan's or quantlib's message.
        st.error(
            _("Cannot quantize {tensor} with these settings: {reason}", tensor=_quoted(name),
              reason=upload_views.plain(err)),
            icon="🚫",
        )
        upload_views.original_message(err.args[0] if err.args else err)
        return
    t = up.tensors[name]
    st.caption(
        _(
            "{tensor} · {shape} · {dtype} · {n:,} values · {label}",
            tensor=_quoted(name),
            shape=_dims(tuple(t.shape)),
            dtype=str(t.dtype).removeprefix("torch."),
            n=view["numel"],
            label=note_text(upload.spec_label(plan.spec)),
        )
    )
    for note in plan.notes:
        st.caption(note_text(note))
    st.plotly_chart(
        figures.value_histogram(
            view["edges"], view["float_counts"], view["quant_counts"], view["grid"],
            (view["clip_lo"], view["clip_hi"]), log_y=log_y,
        ),
        key="upload-hist",
        config={"displaylogo": False},
    )
    st.caption(_grid_caption(view, plan.spec.granularity))
    widgets.stats_panel(view, per_block=view["num_blocks"] > 1)

    left, right = st.columns([2, 3], gap="medium")
    with left:
        st.plotly_chart(
            figures.error_histogram(view["err_edges"], view["err_counts"], log_y=log_y),
            key="upload-err",
            config={"displaylogo": False},
        )
        st.caption(
            _(
                "Every value moves by at most {error}; a narrow, centred error histogram means the grid is fine "
                "enough for this tensor.",
                error=fmt(view["max_abs_error"], 3),
            )
        )
    with right:
        with st.spinner(_("Sweeping bit widths 2-16…")):
            curves, current, refs, sample_note = upload.curves_for(session, up, name, plan)
        # The curves' labels are data (English keys); the chart shows them in the session's words.
        curves = {note_text(label): df for label, df in curves.items()}
        refs = {note_text(label): df for label, df in refs.items()}
        current = note_text(current)
        points = {}
        captions = [_("The star is your current setting; each extra bit adds about 6 dB of SQNR.")]
        if settings.fixed_bits is not None:
            points[_("{format} (current, fixed {bits} bits)", format=settings.format, bits=settings.fixed_bits)] = (
                settings.fixed_bits, view["mse"], view["sqnr_db"],
            )
            current = ""  # the star is the fp8 / nf4 point; the int lines are for comparison
            captions = [
                _("{format} has a fixed width: it is the star; the lines are integer grids.", format=settings.format)
            ]
        st.plotly_chart(
            figures.error_curves_figure(curves, current, settings.effective_bits, points, refs),
            key="upload-curves",
            config={"displaylogo": False},
        )
        if sample_note:
            captions.append(
                _(
                    "This tensor is large, so the curves use {sample} (whole rows / groups).",
                    sample=note_text(sample_note),
                )
            )
        st.caption(widgets.sentences(*captions))


def _grid_caption(view: dict, granularity: str) -> str:
    if view["grid"] is None:
        text = _(
            "The grid has {n:,} levels, too dense to draw one by one; red dashes: the clip range.",
            n=view["grid_size"],
        )
    else:
        text = _("Ticks at the bottom: the {n:,} grid levels; red dashes: the clip range.", n=view["grid_size"])
    if view["num_blocks"] <= 1:
        return text
    if granularity == "group":
        blocks = _(
            "Every group has its own scale: the grid and clip range drawn are those of group {block} (the widest "
            "range).",
            block=view["grid_block"],
        )
    else:
        blocks = _(
            "Every channel has its own scale: the grid and clip range drawn are those of channel {block} (the "
            "widest range).",
            block=view["grid_block"],
        )
    return widgets.sentences(text, blocks)


# --- the whole file's size ------------------------------------------------------------------------------------------


# --- the page -------------------------------------------------------------------------------------------------------


def main() -> None:
    up = _get_file()
    if up is not None and not up.ok:
        upload_views.refused(up)
    if up is None or not up.ok:
        st.info(_("Upload a model file above, or click **Load the demo model**, to begin."), icon="👆")
        return
    _file_section(up)
    _open_elsewhere()
    st.subheader("🔬 " + _("One tensor, quantized"))
    _tensor_section(up)
    st.subheader("💾 " + _("Size of the whole file at these settings"))
    with widgets.friendly_errors(_("compute the storage size")):
        upload_views.size_section(up, settings.spec(), MAX_TABLE_ROWS)
    st.subheader("⬇️ " + _("Take it with you"))
    st.markdown(
        _(
            "The file's weights quantized at these settings, in the **compressed-tensors** layout - built from "
            "this session's copy when you click, and sent to this browser only - and the recipe of settings per "
            "tensor."
        )
    )
    export_views.upload_downloads(up, settings.spec())
    st.subheader("🎯 " + _("Output drift"))
    st.info(
        _(
            "Not available for an uploaded file: drift compares a model's outputs before and after quantization, "
            "and a file of weights has no code to run and no inputs to run it on."
        ),
        icon="ℹ️",
    )


main()
