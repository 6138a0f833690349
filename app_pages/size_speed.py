"""⚡ Size & speed: what the current settings store, against float32; and whether int8 actually runs faster."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from quantlib import speed
from ui import controls, jobs, sources, widgets
from ui.compute import analysis as ad
from ui.compute import reductions
from ui.figures import analysis as af
from ui.i18n import N_, _, ngettext
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

#: The rows of the overhead table, as the cached table names them (data) and as the page shows them.
GRANULARITY_ROWS = {"tensor": N_("tensor"), "channel": N_("channel")}
#: The scheme as the captions name it (the spec's values are codes).
SCHEMES = {"symmetric": N_("symmetric"), "asymmetric": N_("asymmetric")}

widgets.page_intro(
    _("Size & speed"),
    "⚡",
    _(
        "A weight stored in *b* bits instead of 32 takes up to 32 / *b* times less room - but every block (the "
        "whole tensor, each channel or each group) also stores its own float32 **scale**, plus a **zero point** "
        "for the asymmetric scheme. Smaller blocks quantize more accurately and cost more of that overhead. Below "
        "the sizes, a measurement on this server shows whether int8 also runs faster."
    ),
    r"\begin{gathered}\text{bytes} = \underbrace{\lceil n\,b/8\rceil}_{\text{codes}} + "
    r"\underbrace{N_{\text{blocks}}\,(4 + z)}_{\text{scales, zero points}}\\ "
    r"\text{compression} = \frac{\text{float32 bytes}}{\text{bytes}}\end{gathered}",
    widgets.sentences(
        _(
            "set granularity to **group** and pick a small group size: the red *scales* part grows and the "
            "compression ratio falls."
        ),
        "" if uploaded else _("Then press **Measure** in the speed section."),
    ),
)


# --- size ---------------------------------------------------------------------------------------------------------


def _size_section() -> None:
    spec = settings.spec()
    view = ad.size_view(settings.model, reductions.spec_key(spec))
    st.subheader(_("Size at {spec}", spec=ad.spec_text(spec)))
    lines = [_("Every layer's weight stored at {spec}; biases and norms stay float32.", spec=ad.spec_text(spec))]
    if settings.target == "activations":
        lines.append(
            _(
                "The sidebar quantizes activations only: they are computed on the fly, not stored, so they change "
                "no size. The figures show the weights quantized with the same settings."
            )
        )
    if view["notes"]:
        lines.append(
            _(
                "Group size adapted where it does not divide a layer: {notes}.",
                notes=widgets.semicolons([reductions.note_text(n) for n in view["notes"]]),
            )
        )
    st.caption(widgets.sentences(*lines))

    total, float_total = view["total_bytes"], view["float_bytes"]
    n = view["weight_numel"]
    cols = st.columns(4)
    cols[0].metric(_("float32 model"), widgets.human_bytes(float_total), help=_("Every parameter in 32 bits."))
    cols[1].metric(
        _("Quantized model"),
        widgets.human_bytes(total),
        help=_("Codes + scales / zero points of every layer's weight, and the parameters that stay float32."),
    )
    cols[2].metric(
        _("Compression"),
        f"{float_total / max(total, 1):.2f}×",
        help=_(
            "float32 bytes / quantized bytes. The weights alone, without overhead, would give {ratio}× at {bits} "
            "bits.",
            ratio=f"{32 / spec.bits:.1f}",
            bits=spec.bits,
        ),
    )
    cols[3].metric(
        _("Bits per weight, all in"),
        f"{8 * (view['payload_bytes'] + view['overhead_bytes']) / max(n, 1):.2f}",
        delta=_("+{bits} for scales", bits=f"{8 * view['overhead_bytes'] / max(n, 1):.2f}")
        if view["overhead_bytes"]
        else None,
        delta_color="off",
        delta_arrow="off",
        help=ngettext(
            "(codes + scales and zero points) × 8 / number of weights, over all {n} layer: {bits} bits of code "
            "plus what the scales add.",
            "(codes + scales and zero points) × 8 / number of weights, over all {n} layers: {bits} bits of code "
            "plus what the scales add.",
            len(infos),
            n=len(infos),
            bits=spec.bits,
        ),
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
        _(
            "{layer} alone holds {share} % of the weights: in this model its bit width decides the size.",
            layer=f"`{controls.layer_token(biggest['layer'])}`",
            share=f"{100 * share:.0f}",
        )
        if len(table) > 2 and share > 0.4
        else ""
    )
    st.caption(
        widgets.sentences(
            _(
                "Per layer: the faint blue bar is the float32 weight, the orange one the quantized codes and the "
                "red tip its scales and zero points. Hover a bar for the bytes. The sidebar's layer is in bold."
            ),
            dominant,
        )
    )
    _overhead_table(spec)


def _overhead_table(spec) -> None:  # noqa: ANN001 - a QuantSpec
    st.markdown(
        _(
            "**What the scales cost at {bits} bits, {scheme}** (whole model)",
            bits=spec.bits,
            scheme=_(SCHEMES.get(spec.scheme, spec.scheme)),
        )
    )
    table = ad.overhead_table(settings.model, reductions.spec_key(spec))  # cached, shared: worded here

    def row_name(name: str, group_size: int, current: bool) -> str:
        shown = _("group of {size}", size=group_size) if group_size else _(GRANULARITY_ROWS.get(name, name))
        return _("{row}  ← current", row=shown) if current else shown

    shown = pd.DataFrame(
        {
            _("one scale per"): [
                row_name(name, int(size), bool(current))
                for name, size, current in zip(table["one scale per"], table["group_size"], table["current"],
                                               strict=True)
            ],
            _("scales"): table["scales stored"].map("{:,}".format),
            _("scales + zero points"): table["overhead_bytes"].map(widgets.human_bytes),
            _("overhead vs codes"): table["overhead_pct"].map("{:.1f} %".format),
            _("bits per weight, all in"): table["bits_per_weight"].map("{:.2f}".format),
            _("model size"): table["total_bytes"].map(widgets.human_bytes),
            _("compression"): table["compression"].map("{:.2f}×".format),
        }
    )
    st.dataframe(shown, hide_index=True, width="stretch")
    text = (
        _(
            "Each scale is a 4-byte float32 plus a zero point. Per-tensor stores one per layer; per-channel one per "
            "output row; per-group one per block of consecutive weights - the finer, the more accurate and the "
            "more bytes."
        )
        if spec.scheme == "asymmetric"
        else _(
            "Each scale is a 4-byte float32. Per-tensor stores one per layer; per-channel one per output row; "
            "per-group one per block of consecutive weights - the finer, the more accurate and the more bytes."
        )
    )
    if table["adapted"].any():
        text = widgets.sentences(
            text, _("Where a group size does not divide a layer's rows, the next size that does is used.")
        )
    st.caption(text)


# --- speed --------------------------------------------------------------------------------------------------------


def _speed_rows(res: dict) -> list[dict]:
    rows = [{"label": _("float32 (real)"), "kind": "float", **res["float"]}]
    if res["int8"] is not None:
        rows.append({"label": _("int8 dynamic (real int8 kernels)"), "kind": "int8", **res["int8"]})
    if res.get("fake_quant") is not None:
        rows.append({"label": _("fake quant int8 (simulated)"), "kind": "fake", **res["fake_quant"]})
    return rows


def _when(key: str) -> str:
    hit = jobs.runner().finished(key)
    if hit is None:
        return ""
    ago = time.time() - hit.at
    ago_text = (
        _("{n} s ago", n=f"{ago:.0f}") if ago < 120 else _("{n} min ago", n=f"{ago / 60:.0f}")
    )
    return _(
        "measured on this server at {time} ({ago})",
        time=time.strftime("%H:%M:%S", time.localtime(hit.at)),
        ago=ago_text,
    )


def _what_runs_where() -> None:
    linear = [i for i in infos if i.kind == "Linear"]
    other = [i for i in infos if i.kind != "Linear"]
    kept = ", ".join(f"`{controls.layer_token(i.name)}` ({i.kind})" for i in other[:6])
    if len(other) > 6:
        kept = _("{layers} and {n} more", layers=kept, n=len(other) - 6)
    items = [
        ngettext(
            "**Real integer kernels:** *int8 dynamic* converts the {n} `Linear` layer of {model} to PyTorch's int8 "
            "matrix multiply: int8 weights, inputs quantized on the fly per batch.",
            "**Real integer kernels:** *int8 dynamic* converts the {n} `Linear` layers of {model} to PyTorch's "
            "int8 matrix multiply: int8 weights, inputs quantized on the fly per batch.",
            len(linear),
            n=len(linear),
            model=widgets.model_title(sm.title),
        )
    ]
    if other:
        items.append(
            _(
                "**Stays float32 in every variant:** {layers} - PyTorch has no dynamic int8 kernel for them.",
                layers=kept,
            )
        )
    items.append(
        _(
            "**Simulated (fake quant):** what every other page of this app does - values rounded to the grid but "
            "stored and multiplied as float32. Same float kernels, so **not faster**: it only shows the error."
        )
    )
    st.markdown("\n".join(f"- {item}" for item in items))


def _method(text: str | None) -> str:
    """One of quantlib.speed's method descriptions (English, in the cached result) in the session's language;
    a description this page does not know is shown as quantlib words it."""
    if not text:
        return _("int8 dynamic: nothing to convert")
    if text == speed.FLOAT_METHOD:
        return _("float: fp32 eager PyTorch kernels (real)")
    if text == speed.FAKE_QUANT_METHOD:
        return _(
            "fake quant: weights rounded to the int8 grid but stored and multiplied in fp32 - the same float "
            "kernels, so no faster (simulated)"
        )
    found = _INT8_METHOD.fullmatch(text)
    if found:
        n = int(found["n"])
        return ngettext(
            "int8 dynamic: torch.ao quantize_dynamic - int8 weights (per-tensor symmetric), activations quantized "
            "per batch at run time, real int8 GEMM kernels ({engine} engine) for the {n} converted Linear layer; "
            "everything else stays float (real)",
            "int8 dynamic: torch.ao quantize_dynamic - int8 weights (per-tensor symmetric), activations quantized "
            "per batch at run time, real int8 GEMM kernels ({engine} engine) for the {n} converted Linear layers; "
            "everything else stays float (real)",
            n,
            engine=found["engine"],
            n=n,
        )
    return text


_INT8_METHOD = re.compile(
    re.escape(speed.INT8_METHOD).replace(re.escape("{engine}"), "(?P<engine>.+?)").replace(re.escape("{n}"), r"(?P<n>\d+)")
)


def _speed_result(res: dict, key: str, title: str) -> None:
    st.plotly_chart(af.latency_bars(_speed_rows(res), title), key=f"chart-{key}", config={"displaylogo": False})
    cols = st.columns(4)
    cols[0].metric(_("float32, median"), f"{res['float']['median_ms']:.3g} ms")
    if res["int8"] is not None:
        cols[1].metric(_("int8 dynamic, median"), f"{res['int8']['median_ms']:.3g} ms")
        speedup = res["speedup"]
        cols[2].metric(
            _("Speed-up"),
            f"{speedup:.2f}×",
            delta=_("faster") if speedup > 1.05 else (_("slower") if speedup < 0.95 else _("about the same")),
            delta_color="normal" if speedup > 1.05 else ("inverse" if speedup < 0.95 else "off"),
            delta_arrow="off",
            help=_("float median / int8 median."),
        )
        cols[3].metric(
            _("int8 output vs float"),
            f"{widgets.fmt(res['output_sqnr_db'], 3)} dB",
            help=_(
                "SQNR of the int8 model's outputs against the float ones (relative error {error}).",
                error=widgets.fmt(res["rel_output_error"], 3),
            ),
        )
    f = res["float"]
    st.caption(
        _(
            "{when} · {examples} examples per call, median of {repeats} calls after {warmup} warm-up, the variants "
            "taking turns · {threads} · {engine} engine. Others using this server make the figures noisy: the "
            "whiskers show the 10th-90th percentile.",
            when=_when(key),
            examples=res["examples"],
            repeats=f["repeats"],
            warmup=f["warmup"],
            threads=ngettext("{n} thread", "{n} threads", res["threads"], n=res["threads"]),
            engine=res["engine"],
        )
    )
    with st.expander(_("How each figure was measured")):
        st.markdown(
            "\n".join(f"- {_method(m)}" for m in (res["float_method"], res["int8_method"], res["fake_quant_method"]))
        )
        if res["not_converted"]:
            st.markdown(
                _(
                    "Left in float: {layers}",
                    layers=", ".join(f"`{controls.layer_token(n)}`" for n in res["not_converted"]),
                )
            )


def _measure(todo: list[tuple[str, Callable, tuple, str, Callable[[], float]]]) -> None:
    """Measure again what is older than a minute (a click from 40 browsers measures once)."""
    js = jobs.runner()
    started = []
    for key, fn, args, what, estimate in todo:
        hit = js.finished(key)
        if hit is not None and time.time() - hit.at < ad.REMEASURE_AFTER_S:
            continue
        js.forget(key)
        with st.spinner(_("Estimating how long this takes…")):  # timing a model the warm-up did not: seconds
            estimate_s = estimate()
        started.append((js.submit(key, fn, args, label=what.rstrip("…"), estimate_s=estimate_s), what))
    for job, what in started:
        job_views.wait(job, what)


def _speed_section() -> None:
    st.subheader(_("Speed: float32 vs int8 on this server's CPU"))
    _what_runs_where()
    key = ad.speed_key(settings.model)
    js = jobs.runner()
    last = js.finished(key)
    todo = [
        (key, ad.compute_speed, (settings.model,), _("Timing {model}: float, int8, fake quant…", model=widgets.model_title(sm.title)),
         lambda: last.seconds if last is not None else ad.speed_estimate(settings.model)),
        (ad.MICRO_KEY, ad.compute_micro, (), _("Timing one 1024×1024 Linear layer…"), lambda: 2.0),
    ]
    # The first time, no estimate on the label: estimating means timing the model (seconds for MiniLM), which
    # only a click should cost. The progress bar shows it once measuring.
    label = (
        _("⏱️ Measure again (took {duration})", duration=job_views.seconds_text(last.seconds))
        if last
        else _("⏱️ Measure on this server now")
    )
    if st.button(label, key="measure", type="secondary" if last else "primary"):
        _measure(todo)
    for k, _fn, _args, what, _estimate in todo:  # a measurement someone else started: show its progress
        job = js.job(k)
        if job is not None:
            job_views.wait(job, what)
    res = js.result(key)
    if res is None:
        st.caption(
            _(
                "Nothing measured for this model yet. Measuring takes a few seconds of this server's CPU; the "
                "result is kept and shown to everyone who opens this page."
            )
        )
    else:
        _speed_result(res, key, _("{model}: time per call", model=widgets.model_title(sm.title)))
        if res["int8"] is not None and res["speedup"] < 0.95:
            st.info(
                _(
                    "int8 is slower here: these layers are small, so quantizing the inputs on the fly and "
                    "converting back costs more than the smaller matrix multiply saves. The reference below shows "
                    "where int8 kernels pay off."
                ),
                icon="ℹ️",
            )
    micro = js.result(ad.MICRO_KEY)
    if micro is not None:
        st.markdown(_("**Where int8 kernels shine:** one `Linear(1024, 1024)` on a batch of 64"))
        _speed_result(micro, ad.MICRO_KEY, _("Linear 1024×1024, batch 64: time per call"))


def _file_sections() -> None:
    spec = settings.spec()
    st.subheader(_("Size of your file at {spec}", spec=ad.spec_text(spec)))
    with widgets.friendly_errors(_("compute the storage of this file")):
        upload_views.size_section(sources.session_upload(), spec)
    st.divider()
    st.subheader(_("⏱️ Speed"))
    st.info(
        _(
            "Timing needs a model that runs: an uploaded file holds weights, but no code to run them. Pick a "
            "sample model in the sidebar to measure float against real int8 kernels on this server."
        ),
        icon="ℹ️",
    )


if uploaded:
    _file_sections()
else:
    with widgets.friendly_errors(_("compute the storage of this model")):
        _size_section()
    st.divider()
    energy.safe_section(settings.model, settings.spec())
    st.divider()
    with widgets.friendly_errors(_("measure the speed of this model")):
        try:
            _speed_section()
        except jobs.ServerBusy as busy:
            st.warning(job_views.message(busy), icon="⏳")
    st.divider()
    ort.safe_section(settings.model)
