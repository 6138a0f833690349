"""⚡ Size & speed: what the current settings store, against float32; and whether int8 actually runs faster."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from ui import controls, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import reductions
from ui.figures import analysis as af
from ui.views import energy, ort
from ui.views import jobs as job_views
from ui.views import upload as upload_views

settings = controls.current()
#: An uploaded file (weights only): its size is counted tensor by tensor; nothing can be timed.
source = sources.get(settings.model)
uploaded = not source.runs_model
sm = None if uploaded else sources.sample(settings.model)
infos = sources.layers(settings.model)
names = [i.name for i in infos]
short = dict(zip(names, ad.short_names(names), strict=True))
current_token = controls.layer_token(settings.layer)

widgets.page_intro(
    "Size & speed",
    "⚡",
    "A weight stored in *b* bits instead of 32 takes up to 32 / *b* times less room - but every block (the "
    "whole tensor, each channel or each group) also stores its own float32 **scale**, plus a **zero point** "
    "for the asymmetric scheme. Smaller blocks quantize more accurately and cost more of that overhead. Below "
    "the sizes, a measurement on this server shows whether int8 also runs faster.",
    r"\begin{gathered}\text{bytes} = \underbrace{\lceil n\,b/8\rceil}_{\text{codes}} + "
    r"\underbrace{N_{\text{blocks}}\,(4 + z)}_{\text{scales, zero points}}\\ "
    r"\text{compression} = \frac{\text{float32 bytes}}{\text{bytes}}\end{gathered}",
    "set granularity to **group** and pick a small group size: the red *scales* part grows and the "
    "compression ratio falls." + ("" if uploaded else " Then press **Measure** in the speed section."),
)


# --- size ---------------------------------------------------------------------------------------------------------


def _size_section() -> None:
    spec = settings.spec()
    view = ad.size_view(settings.model, reductions.spec_key(spec))
    st.subheader(f"Size at {spec.label()}")
    lines = [f"Every layer's weight stored at {spec.label()}; biases and norms stay float32."]
    if settings.target == "activations":
        lines.append(
            "The sidebar quantizes activations only: they are computed on the fly, not stored, so they change "
            "no size. The figures show the weights quantized with the same settings."
        )
    if view["notes"]:
        lines.append("Group size adapted where it does not divide a layer: " + "; ".join(view["notes"]) + ".")
    st.caption(" ".join(lines))

    total, float_total = view["total_bytes"], view["float_bytes"]
    n = view["weight_numel"]
    cols = st.columns(4)
    cols[0].metric("float32 model", widgets.human_bytes(float_total), help="Every parameter in 32 bits.")
    cols[1].metric(
        "Quantized model",
        widgets.human_bytes(total),
        help="Codes + scales / zero points of every layer's weight, and the parameters that stay float32.",
    )
    cols[2].metric(
        "Compression",
        f"{float_total / max(total, 1):.2f}×",
        help=f"float32 bytes / quantized bytes. The weights alone, without overhead, would give "
        f"{32 / spec.bits:.1f}× at {spec.bits} bits.",
    )
    cols[3].metric(
        "Bits per weight, all in",
        f"{8 * (view['payload_bytes'] + view['overhead_bytes']) / max(n, 1):.2f}",
        delta=f"+{8 * view['overhead_bytes'] / max(n, 1):.2f} for scales" if view["overhead_bytes"] else None,
        delta_color="off",
        delta_arrow="off",
        help=f"(codes + scales and zero points) × 8 / number of weights, over all {len(infos)} layers: "
        f"{spec.bits} bits of code plus what the scales add.",
    )
    st.plotly_chart(
        af.storage_totals(float_total, view["payload_bytes"], view["overhead_bytes"], view["other_bytes"]),
        key="size-totals",
        config={"displaylogo": False},
    )
    table = view["layers"]
    st.plotly_chart(
        af.storage_bars(
            [short[name] for name in table["layer"]],
            [controls.layer_token(name) for name in table["layer"]],
            table["payload_bytes"],
            table["overhead_bytes"],
            table["float_bytes"],
            current=current_token,
        ),
        key="size-layers",
        config={"displaylogo": False},
    )
    biggest = table.loc[table["float_bytes"].idxmax()]
    share = biggest["float_bytes"] / max(view["weight_float_bytes"], 1)
    dominant = (
        f" `{controls.layer_token(biggest['layer'])}` alone holds {100 * share:.0f} % of the weights: in this model its "
        "bit width decides the size."
        if len(table) > 2 and share > 0.4
        else ""
    )
    st.caption(
        "Per layer: the faint blue bar is the float32 weight, the orange one the quantized codes and the red tip "
        f"its scales and zero points. Hover a bar for the bytes. The sidebar's layer is in bold.{dominant}"
    )
    _overhead_table(spec)


def _overhead_table(spec) -> None:  # noqa: ANN001 - a QuantSpec
    st.markdown(f"**What the scales cost at {spec.bits} bits, {spec.scheme}** (whole model)")
    table = ad.overhead_table(settings.model, reductions.spec_key(spec))
    shown = pd.DataFrame(
        {
            "one scale per": [
                f"{name}  ← current" if current else name
                for name, current in zip(table["one scale per"], table["current"], strict=True)
            ],
            "scales": table["scales stored"].map("{:,}".format),
            "scales + zero points": table["overhead_bytes"].map(widgets.human_bytes),
            "overhead vs codes": table["overhead_pct"].map("{:.1f} %".format),
            "bits per weight, all in": table["bits_per_weight"].map("{:.2f}".format),
            "model size": table["total_bytes"].map(widgets.human_bytes),
            "compression": table["compression"].map("{:.2f}×".format),
        }
    )
    st.dataframe(shown, hide_index=True, width="stretch")
    zp = " plus a zero point" if spec.scheme == "asymmetric" else ""
    adapted = " Where a group size does not divide a layer's rows, the next size that does is used." if (
        table["adapted"].any()
    ) else ""
    st.caption(
        f"Each scale is a 4-byte float32{zp}. Per-tensor stores one per layer; per-channel one per output row; "
        f"per-group one per block of consecutive weights - the finer, the more accurate and the more bytes."
        f"{adapted}"
    )


# --- speed --------------------------------------------------------------------------------------------------------


def _speed_rows(res: dict) -> list[dict]:
    rows = [{"label": "float32 (real)", "kind": "float", **res["float"]}]
    if res["int8"] is not None:
        rows.append({"label": "int8 dynamic (real int8 kernels)", "kind": "int8", **res["int8"]})
    if res.get("fake_quant") is not None:
        rows.append({"label": "fake quant int8 (simulated)", "kind": "fake", **res["fake_quant"]})
    return rows


def _when(key: str) -> str:
    hit = jobs.runner().finished(key)
    if hit is None:
        return ""
    ago = time.time() - hit.at
    ago_text = f"{ago:.0f} s ago" if ago < 120 else f"{ago / 60:.0f} min ago"
    return f"measured on this server at {time.strftime('%H:%M:%S', time.localtime(hit.at))} ({ago_text})"


def _what_runs_where() -> None:
    linear = [i for i in infos if i.kind == "Linear"]
    other = [i for i in infos if i.kind != "Linear"]
    kept = ", ".join(f"`{controls.layer_token(i.name)}` ({i.kind})" for i in other[:6])
    more = f" and {len(other) - 6} more" if len(other) > 6 else ""
    st.markdown(
        f"- **Real integer kernels:** *int8 dynamic* converts the {len(linear)} `Linear` layer"
        f"{'s' if len(linear) != 1 else ''} of {sm.title} to PyTorch's int8 matrix multiply: int8 weights, "
        "inputs quantized on the fly per batch.\n"
        + (
            f"- **Stays float32 in every variant:** {kept}{more} - PyTorch has no dynamic int8 kernel for them.\n"
            if other
            else ""
        )
        + "- **Simulated (fake quant):** what every other page of this app does - values rounded to the grid "
        "but stored and multiplied as float32. Same float kernels, so **not faster**: it only shows the error."
    )


def _speed_result(res: dict, key: str, title: str) -> None:
    st.plotly_chart(af.latency_bars(_speed_rows(res), title), key=f"chart-{key}", config={"displaylogo": False})
    cols = st.columns(4)
    cols[0].metric("float32, median", f"{res['float']['median_ms']:.3g} ms")
    if res["int8"] is not None:
        cols[1].metric("int8 dynamic, median", f"{res['int8']['median_ms']:.3g} ms")
        speedup = res["speedup"]
        cols[2].metric(
            "Speed-up",
            f"{speedup:.2f}×",
            delta="faster" if speedup > 1.05 else ("slower" if speedup < 0.95 else "about the same"),
            delta_color="normal" if speedup > 1.05 else ("inverse" if speedup < 0.95 else "off"),
            delta_arrow="off",
            help="float median / int8 median.",
        )
        cols[3].metric(
            "int8 output vs float",
            f"{widgets.fmt(res['output_sqnr_db'], 3)} dB",
            help=f"SQNR of the int8 model's outputs against the float ones (relative error "
            f"{widgets.fmt(res['rel_output_error'], 3)}).",
        )
    f = res["float"]
    st.caption(
        f"{_when(key)} · {res['examples']} examples per call, median of {f['repeats']} calls after "
        f"{f['warmup']} warm-up, the variants taking turns · {res['threads']} thread"
        f"{'s' if res['threads'] != 1 else ''} · {res['engine']} engine. Others using this server make the "
        "figures noisy: the whiskers show the 10th-90th percentile."
    )
    with st.expander("How each figure was measured"):
        st.markdown(
            f"- {res['float_method']}\n- {res['int8_method'] or 'int8 dynamic: nothing to convert'}\n"
            f"- {res['fake_quant_method']}"
        )
        if res["not_converted"]:
            st.markdown("Left in float: " + ", ".join(f"`{controls.layer_token(n)}`" for n in res["not_converted"]))


def _measure(todo: list[tuple[str, Callable, tuple, str, Callable[[], float]]]) -> None:
    """Measure again what is older than a minute (a click from 40 browsers measures once)."""
    js = jobs.runner()
    started = []
    for key, fn, args, what, estimate in todo:
        hit = js.finished(key)
        if hit is not None and time.time() - hit.at < ad.REMEASURE_AFTER_S:
            continue
        js.forget(key)
        started.append((js.submit(key, fn, args, label=what.rstrip("…"), estimate_s=estimate()), what))
    for job, what in started:
        job_views.wait(job, what)


def _speed_section() -> None:
    st.subheader("Speed: float32 vs int8 on this server's CPU")
    _what_runs_where()
    key = ad.speed_key(settings.model)
    js = jobs.runner()
    last = js.finished(key)
    todo = [
        (key, ad.compute_speed, (settings.model,), f"Timing {sm.title}: float, int8, fake quant…",
         lambda: last.seconds if last is not None else ad.speed_estimate(settings.model)),
        (ad.MICRO_KEY, ad.compute_micro, (), "Timing one 1024×1024 Linear layer…", lambda: 2.0),
    ]
    # The first time, no estimate on the label: estimating means timing the model (seconds for MiniLM), which
    # only a click should cost. The progress bar shows it once measuring.
    label = f"⏱️ Measure again (took {job_views.seconds_text(last.seconds)})" if last else "⏱️ Measure on this server now"
    if st.button(label, key="measure", type="secondary" if last else "primary"):
        _measure(todo)
    for k, _, _, what, _ in todo:  # a measurement someone else started: show its progress
        job = js.job(k)
        if job is not None:
            job_views.wait(job, what)
    res = js.result(key)
    if res is None:
        st.caption(
            "Nothing measured for this model yet. Measuring takes a few seconds of this server's CPU; the "
            "result is kept and shown to everyone who opens this page."
        )
    else:
        _speed_result(res, key, f"{sm.title}: time per call")
        if res["int8"] is not None and res["speedup"] < 0.95:
            st.info(
                "int8 is slower here: these layers are small, so quantizing the inputs on the fly and converting "
                "back costs more than the smaller matrix multiply saves. The reference below shows where int8 "
                "kernels pay off.",
                icon="ℹ️",
            )
    micro = js.result(ad.MICRO_KEY)
    if micro is not None:
        st.markdown("**Where int8 kernels shine:** one `Linear(1024, 1024)` on a batch of 64")
        _speed_result(micro, ad.MICRO_KEY, "Linear 1024×1024, batch 64: time per call")


def _file_sections() -> None:
    spec = settings.spec()
    st.subheader(f"Size of your file at {spec.label()}")
    with widgets.friendly_errors("compute the storage of this file"):
        upload_views.size_section(sources.session_upload(), spec)
    st.divider()
    st.subheader("⏱️ Speed")
    st.info(
        "Timing needs a model that runs: an uploaded file holds weights, but no code to run them. Pick a sample "
        "model in the sidebar to measure float against real int8 kernels on this server.",
        icon="ℹ️",
    )


if uploaded:
    _file_sections()
else:
    with widgets.friendly_errors("compute the storage of this model"):
        _size_section()
    st.divider()
    energy.safe_section(settings.model, settings.spec())
    st.divider()
    with widgets.friendly_errors("measure the speed of this model"):
        try:
            _speed_section()
        except jobs.ServerBusy as busy:
            st.warning(str(busy), icon="⏳")
    st.divider()
    ort.safe_section(settings.model)
