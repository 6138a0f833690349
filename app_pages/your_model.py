"""📤 Your model: upload a .safetensors / PyTorch state_dict and look at its tensors with the sidebar's settings.

The upload and everything computed from it stay in this browser session (``ui.upload`` keeps them in
``st.session_state``, never in Streamlit's shared caches); only histogram counts, curve points and small tables
are sent to the browser.
"""

from __future__ import annotations

import streamlit as st

from ui import components, data, figures, state, upload
from ui.components import fmt, human_bytes

#: Tables list at most this many tensors (the totals always cover all of them).
MAX_TABLE_ROWS = 1000
_TENSOR_KEY = "_qe_upload_tensor"

controls = state.current()
session = st.session_state

components.page_intro(
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
    with components.friendly_errors("read the file"):
        upload.sync_uploader(session, file)
        if demo_clicked:
            upload.load_demo(session)
    return upload.current(session)


# --- the file's tensors ---------------------------------------------------------------------------------------------


def _file_section(up: upload.Upload) -> None:
    """What the file holds: one table row per floating-point tensor, and what was left out."""
    tensors = up.tensors
    what = "demo model, built in memory" if up.source == "demo" else (
        f"{tensors.format}, {human_bytes(tensors.num_bytes)}"
    )
    st.subheader(f"📄 {up.filename}")
    st.caption(
        f"{what} · {len(tensors):,} floating-point tensors · {tensors.total_values:,} values. Each tensor is "
        "treated as one layer's weights."
    )
    for note in tensors.notes():
        st.warning(note, icon="⚠️")
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
        height=_table_height(len(table)),
        column_config={"values": st.column_config.NumberColumn(format="localized")},
    )
    if len(rows) > MAX_TABLE_ROWS:
        st.caption(f"The first {MAX_TABLE_ROWS:,} of {len(rows):,} tensors (by name); every one can be picked below.")


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


def _table_height(n: int) -> int:
    return min(38 + 35 * n, 300)


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
    notes = [
        "The sidebar's *Model* and *Layer* pick a sample model for the other pages; every other setting there "
        "applies to this tensor."
    ]
    if controls.target != "weights":
        notes.append("A file holds weights only, so this page quantizes weights (activations need a running model).")
    st.caption(" ".join(notes))
    log_y = state.page_toggle("Log-scale counts", "log", help="Show rare values (tails, outliers) too.")
    with components.friendly_errors("analyse this tensor"):
        _tensor_charts(up, name, log_y)


def _offered_group_sizes() -> list[int] | None:
    """The group sizes the sidebar offers (those of the sample layer chosen there), under per-group."""
    if controls.granularity != "group":
        return None
    return state.group_sizes(data.layer_info(controls.model, controls.layer))


def _tensor_charts(up: upload.Upload, name: str, log_y: bool) -> None:
    spec = controls.spec()
    try:
        with st.spinner("Quantizing…"):
            plan, view = upload.view_for(session, up, name, spec, _offered_group_sizes())
    except ValueError as err:
        # A granularity that does not fit, NaN / Inf values, an empty tensor: quantlib's plain message.
        st.error(f"Cannot quantize `{name}` with these settings: {err}", icon="🚫")
        return
    t = up.tensors[name]
    st.caption(
        f"`{name}` · {_dims(tuple(t.shape))} · {str(t.dtype).removeprefix('torch.')} · {view['numel']:,} values "
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
    components.stats_panel(view, per_block=view["num_blocks"] > 1)

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
        if controls.fixed_bits is not None:
            points[f"{controls.format} (current, fixed {controls.fixed_bits} bits)"] = (
                controls.fixed_bits, view["mse"], view["sqnr_db"],
            )
            current = ""  # the star is the fp8 / nf4 point; the int lines are for comparison
            captions = [f"{controls.format} has a fixed width: it is the star; the lines are integer grids."]
        st.plotly_chart(
            figures.error_curves_figure(curves, current, controls.effective_bits, points, refs),
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


def _size_section(up: upload.Upload) -> None:
    spec = controls.spec()
    sizes, totals = upload.storage_table(up.tensors, spec)
    c = st.columns(4)
    c[0].metric(
        "Float weights",
        human_bytes(totals["float"]),
        help="Values × bytes of each tensor's own dtype (float32, float16 …): the file, without its small header.",
    )
    c[1].metric(
        f"Quantized ({spec.bits}-bit)",
        human_bytes(totals["quantized"]),
        help="Integer codes packed at the bit width, plus a float32 scale (and a zero point, asymmetric) per block.",
    )
    c[2].metric("Smaller by", f"{totals['ratio']:.2f}×", help="Float weights ÷ quantized size.")
    c[3].metric(
        "Scales & zero points",
        human_bytes(totals["overhead"]),
        help="The cost of the blocks: grows with per-channel and with small groups.",
    )
    shown = sizes.head(MAX_TABLE_ROWS)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=_table_height(len(shown)),
        column_order=("tensor", "stored as", "float_bytes", "code_bytes", "scale_bytes", "quantized_bytes", "ratio"),
        column_config={
            "float_bytes": st.column_config.NumberColumn("float bytes", format="localized"),
            "code_bytes": st.column_config.NumberColumn("code bytes", format="localized"),
            "scale_bytes": st.column_config.NumberColumn("scale + zero-point bytes", format="localized"),
            "quantized_bytes": st.column_config.NumberColumn("quantized bytes", format="localized"),
            "ratio": st.column_config.NumberColumn("smaller by", format="%.2f×"),
        },
    )
    notes = [
        f"Every tensor at {spec.label()}. Real deployments often keep 1-D tensors (biases, norms) in float: "
        f"here they are {100 * totals['one_d_share']:.3g} % of the values."
    ]
    if totals["adapted"]:
        notes.append(
            f"{totals['adapted']} tensor(s) cannot take this granularity as set and are counted as the "
            "'stored as' column says."
        )
    if len(sizes) > MAX_TABLE_ROWS:
        notes.append(f"The table lists the first {MAX_TABLE_ROWS:,} of {len(sizes):,} tensors; totals cover all.")
    st.caption(" ".join(notes))


# --- the page -------------------------------------------------------------------------------------------------------


def main() -> None:
    up = _get_file()
    if up is not None and not up.ok:
        st.error(f"**{up.filename}** could not be used: {up.error}", icon="🚫")
    if up is None or not up.ok:
        st.info("Upload a model file above, or click **Load the demo model**, to begin.", icon="👆")
        return
    _file_section(up)
    st.subheader("🔬 One tensor, quantized")
    _tensor_section(up)
    st.subheader("💾 Size of the whole file at these settings")
    with components.friendly_errors("compute the storage size"):
        _size_section(up)
    st.subheader("🎯 Output drift")
    st.info(
        "Not available for an uploaded file: drift compares a model's outputs before and after quantization, and "
        "a file of weights has no code to run and no inputs to run it on.",
        icon="ℹ️",
    )


main()
