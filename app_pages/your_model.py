"""📤 Your model: upload a .safetensors / PyTorch state_dict and look at its tensors with the sidebar's settings.

The upload and everything computed from it stay in this browser session (``ui.compute.upload`` keeps them in
``st.session_state``, never in Streamlit's shared caches); only histogram counts, curve points and small tables
are sent to the browser.
"""

from __future__ import annotations

import streamlit as st

from ui import controls, sources, widgets
from ui.compute import upload
from ui.figures import explorer as figures
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
    "Your model",
    "📤",
    "Load your own model's weights and see what the sidebar's settings do to them. Every floating-point tensor "
    "in the file becomes a layer you can pick: its values before and after quantization, the error, the error "
    "at every bit width, and how small the whole file gets. Below: how each value lands on the grid, and what "
    "the result costs - n values at b bits, plus a 4-byte scale (and a zero point) per block.",
    r"\begin{gathered}\hat{x} = \big(\mathrm{clamp}(\mathrm{round}(x/s) + z) - z\big)\, s \\ "
    r"\text{bytes} = \Big\lceil \tfrac{n\, b}{8} \Big\rceil + \text{blocks}\cdot(4 + \text{zero point})"
    r"\end{gathered}",
    "no file at hand? Click **Load the demo model** below, set the bit width to **4**, then switch granularity "
    "to **channel**: the demo's `encoder.0.weight` has one outlier row, and the SQNR jumps from about 5 to 19 dB.",
)


# --- getting a file ------------------------------------------------------------------------------------------------


def _get_file() -> upload.Upload | None:
    """The uploader, the demo button and how-to; returns this session's upload (loaded or refused), if any."""
    limit_mb = upload.max_upload_bytes() / 2**20
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        file = st.file_uploader(
            f"Model file: .safetensors, or a PyTorch state_dict (.pt / .pth / .bin), up to {limit_mb:.0f} MB",
            key="_qe_upload_file",
            help="Read without running any code from the file (safetensors, or torch.load with weights_only=True).",
        )
    with right:
        demo_clicked = st.button(
            "✨ Load the demo model",
            key="_qe_upload_demo",
            help="A small made-up model (a conv stem, two Linear layers with biases, a norm, a head), built in "
            "memory.",
            width="stretch",
        )
    with st.expander("How do I get a file from my model?"):
        st.markdown("In a notebook, save the model's weights (not the whole model object):")
        st.code(
            "from safetensors.torch import save_file\n"
            'save_file(model.state_dict(), "model.safetensors")\n'
            "# or, for a .pt file:\n"
            'torch.save(model.state_dict(), "model.pt")',
            language="python",
        )
        st.caption(
            "Tied weights (one tensor under two names) make save_file complain: use "
            '`safetensors.torch.save_model(model, "model.safetensors")` instead. Files saved with '
            "`torch.save(model)` hold Python objects and are refused: they could run code on this server."
        )
    st.caption(
        "🔒 Your file stays in this browser tab's session: other participants cannot see it, nothing is written "
        "to disk, and it is gone when you close the tab. A shared link carries the settings, not the file."
    )
    before = upload.current(session)
    with widgets.friendly_errors("read the file"):
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
    what = "demo model, built in memory" if up.source == "demo" else (
        f"{tensors.format}, {human_bytes(tensors.num_bytes)}"
    )
    # File and tensor names are the uploader's text: escaped, never markup (see ui.text).
    st.subheader(f"📄 {escape_markdown(shorten(up.filename, NAME_CHARS))}")
    st.caption(
        f"{what} · {len(tensors):,} floating-point tensors · {tensors.total_values:,} values. Each tensor is "
        "treated as one layer's weights."
    )
    for note in tensors.notes():  # plain sentences that list tensor names
        st.warning(escape_markdown(note), icon="⚠️")
    rows = tensors.rows()
    table = [
        {
            "tensor": r["name"],
            "shape": _dims(r["shape"]),
            "dtype": r["dtype"],
            "values": r["numel"],
            "kind": r["kind"],
            "finite": "yes" if r["finite"] else "NaN / Inf",
        }
        for r in rows[:MAX_TABLE_ROWS]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=upload_views.table_height(len(table)),
        column_config={"values": st.column_config.NumberColumn(format="localized")},
    )
    if len(rows) > MAX_TABLE_ROWS:
        st.caption(f"The first {MAX_TABLE_ROWS:,} of {len(rows):,} tensors (by name); every one can be picked below.")


def _quoted(name: str) -> str:
    """A tensor name inside running text: a code span that holds it verbatim, cut to a readable length."""
    return code_span(shorten(name, NAME_CHARS))


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


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
            f"📤 Make this file the sidebar's model (`{sources.UPLOAD_MODEL}`)",
            key="_qe_upload_open",
            on_click=_use_in_sidebar,
            help="Then the Tensor explorer, Error curves and Size pages show its tensors, with every chart those "
            "pages have (the tensor picked below becomes the sidebar's layer). Only in this browser tab.",
        )
        return
    st.caption(f"The sidebar's model is this file (`{sources.UPLOAD_MODEL}`): its tensors are the layers there.")
    cols = st.columns(3)
    for col, (path, label) in zip(
        cols,
        (
            ("app_pages/tensor_explorer.py", "🔬 Tensor explorer"),
            ("app_pages/error_curves.py", "📉 Error curves"),
            ("app_pages/size_speed.py", "⚡ Size"),
        ),
        strict=True,
    ):
        col.page_link(path, label=f"{label} of this file")


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
        "Tensor", names, key=_TENSOR_KEY, format_func=lambda n: f"{n}  ·  {_dims(tuple(tensors[n].shape))}"
    )
    notes = ["Every sidebar setting below *Layer* applies to this tensor."]
    if settings.target != "weights":
        notes.append("A file holds weights only, so this page quantizes weights (activations need a running model).")
    st.caption(" ".join(notes))
    log_y = controls.page_toggle("Log-scale counts", "log", help="Show rare values (tails, outliers) too.")
    with widgets.friendly_errors("analyse this tensor"):
        _tensor_charts(up, name, log_y)


def _offered_group_sizes() -> list[int] | None:
    """The group sizes the sidebar offers (those of the sample layer chosen there), under per-group."""
    if settings.granularity != "group":
        return None
    return controls.group_sizes(sources.layer_info(settings.model, settings.layer))


def _tensor_charts(up: upload.Upload, name: str, log_y: bool) -> None:
    spec = settings.spec()
    try:
        with st.spinner("Quantizing…"):
            plan, view = upload.view_for(session, up, name, spec, _offered_group_sizes())
    except ValueError as err:
        # A granularity that does not fit, NaN / Inf values, an empty tensor: quantlib's plain message.
        st.error(f"Cannot quantize {_quoted(name)} with these settings: {err}", icon="🚫")
        return
    t = up.tensors[name]
    st.caption(
        f"{_quoted(name)} · {_dims(tuple(t.shape))} · {str(t.dtype).removeprefix('torch.')} · {view['numel']:,} values "
        f"· {view['spec_label']}"
    )
    for note in plan.notes:
        st.caption(note)
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
            f"Every value moves by at most {fmt(view['max_abs_error'], 3)}; a narrow, centred error histogram "
            "means the grid is fine enough for this tensor."
        )
    with right:
        with st.spinner("Sweeping bit widths 2-16…"):
            curves, current, refs, sample_note = upload.curves_for(session, up, name, plan)
        points = {}
        captions = ["The star is your current setting; each extra bit adds about 6 dB of SQNR."]
        if settings.fixed_bits is not None:
            points[f"{settings.format} (current, fixed {settings.fixed_bits} bits)"] = (
                settings.fixed_bits, view["mse"], view["sqnr_db"],
            )
            current = ""  # the star is the fp8 / nf4 point; the int lines are for comparison
            captions = [f"{settings.format} has a fixed width: it is the star; the lines are integer grids."]
        st.plotly_chart(
            figures.error_curves_figure(curves, current, settings.effective_bits, points, refs),
            key="upload-curves",
            config={"displaylogo": False},
        )
        if sample_note:
            captions.append(f"This tensor is large, so the curves use {sample_note} (whole rows / groups).")
        st.caption(" ".join(captions))


def _grid_caption(view: dict, granularity: str) -> str:
    if view["grid"] is None:
        text = f"The grid has {view['grid_size']:,} levels, too dense to draw one by one; red dashes: the clip range."
    else:
        text = f"Ticks at the bottom: the {view['grid_size']:,} grid levels; red dashes: the clip range."
    if view["num_blocks"] > 1:
        unit = "group" if granularity == "group" else "channel"
        text += (
            f" Every {unit} has its own scale: the grid and clip range drawn are those of {unit} "
            f"{view['grid_block']} (the widest range)."
        )
    return text


# --- the whole file's size ------------------------------------------------------------------------------------------


# --- the page -------------------------------------------------------------------------------------------------------


def main() -> None:
    up = _get_file()
    if up is not None and not up.ok:
        st.error(
            f"**{escape_markdown(shorten(up.filename, NAME_CHARS))}** could not be used: {escape_markdown(up.error)}",
            icon="🚫",
        )
    if up is None or not up.ok:
        st.info("Upload a model file above, or click **Load the demo model**, to begin.", icon="👆")
        return
    _file_section(up)
    _open_elsewhere()
    st.subheader("🔬 One tensor, quantized")
    _tensor_section(up)
    st.subheader("💾 Size of the whole file at these settings")
    with widgets.friendly_errors("compute the storage size"):
        upload_views.size_section(up, settings.spec(), MAX_TABLE_ROWS)
    st.subheader("⬇️ Take it with you")
    st.markdown(
        "The file's weights quantized at these settings, in the **compressed-tensors** layout - built from this "
        "session's copy when you click, and sent to this browser only - and the recipe of settings per tensor."
    )
    export_views.upload_downloads(up, settings.spec())
    st.subheader("🎯 Output drift")
    st.info(
        "Not available for an uploaded file: drift compares a model's outputs before and after quantization, and "
        "a file of weights has no code to run and no inputs to run it on.",
        icon="ℹ️",
    )


main()
