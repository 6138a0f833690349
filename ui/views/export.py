"""The page side of exporting: a compressed-tensors download and a recipe download, with what they hold.

The file is built when the button is clicked (Streamlit runs the callable handed as ``data`` then, on another
thread, and the page does not rerun: ``on_click="ignore"``); everything that could go wrong with it is checked
here first, in the page's run, where it can be said in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from quantlib import QuantSpec
from quantlib.budget import BudgetExceeded
from quantlib.export import check_spec
from ui import sources, widgets
from ui.compute import export as export_data
from ui.compute import reductions
from ui.text import code_span, shorten

HOW_TO_LOAD = (
    "The `.safetensors` file is in the **compressed-tensors** layout (packed integer codes, scales, zero points; "
    "the `quantization_config` that vLLM and transformers read is in its metadata - put it in `config.json` next "
    "to the file). The recipe re-creates the same model in a notebook, bit for bit: "
    "`quantlib.recipe.apply(model, open('recipe.json').read())`."
)


def slug(text: str) -> str:
    """A file-name-safe version of a label: ``"int4 sym per-group(64)"`` -> ``"int4-sym-per-group-64"``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "export"


def _kept_text(kept: Mapping[str, str]) -> str:
    if not kept:
        return ""
    names = ", ".join(code_span(shorten(n or "root", 60)) for n in list(kept)[:6])
    more = f" and {len(kept) - 6} more" if len(kept) > 6 else ""
    reasons = sorted(set(kept.values()))
    return f" Kept as they are: {names}{more} ({'; '.join(reasons[:2])})."


def _buttons(
    file_data: Any, recipe_text: str, stem: str, key: str, summary: dict | None, what: str, why_not: str | None
) -> None:
    """The two buttons and the caption; ``summary`` is None (and ``why_not`` says why) when the setting cannot be
    stored as compressed-tensors - the recipe is offered anyway."""
    can_export = summary is not None and summary["quantized"] > 0
    left, right = st.columns(2)
    with left:
        st.download_button(
            "⬇️ Quantized weights (.safetensors)",
            data=file_data if can_export else b"",
            file_name=f"{stem}.safetensors",
            mime="application/octet-stream",
            on_click="ignore",
            key=f"{key}-safetensors",
            help="compressed-tensors layout: built when you click (a few seconds for MiniLM).",
            width="stretch",
            disabled=not can_export,
        )
    with right:
        st.download_button(
            "⬇️ Recipe (.json)",
            data=recipe_text,
            file_name=f"{stem}.recipe.json",
            mime="application/json",
            on_click="ignore",
            key=f"{key}-recipe",
            help="The settings of every layer, as quantlib.recipe.apply reads them.",
            width="stretch",
        )
    if summary is None:
        st.caption(f"The `.safetensors` export is not available for this setting: {why_not}. {HOW_TO_LOAD}")
        return
    if not can_export:
        st.caption(f"Nothing here can be stored in the compressed-tensors layout.{_kept_text(summary['kept'])}")
        return
    st.caption(
        f"{what}: {summary['quantized']} {'tensor' if summary['quantized'] == 1 else 'tensors'} quantized. About "
        f"{widgets.human_bytes(summary['bytes'])} instead of {widgets.human_bytes(summary['float_bytes'])} "
        f"in float.{_kept_text(summary['kept'])} {HOW_TO_LOAD}"
    )


def _unsupported(spec_or_plan: QuantSpec | Mapping[str, QuantSpec]) -> str | None:
    """Why compressed-tensors cannot hold a setting (nf4, fp8 e5m2, > 8 bits), or None."""
    specs = [spec_or_plan] if isinstance(spec_or_plan, QuantSpec) else list(spec_or_plan.values())
    for s in specs:
        try:
            check_spec(s)
        except ValueError as err:
            return str(err)
    return None


def sample_downloads(model: str, plan: Mapping[str, QuantSpec], stem: str, key: str, what: str) -> None:
    """Downloads of a sample model quantized by ``plan`` (``{layer: QuantSpec}``)."""
    with widgets.friendly_errors("export this model"):
        recipe_text = export_data.recipe_json(model, plan)
        why_not = _unsupported(plan)
        summary = None
        if why_not is None:
            try:
                p = export_data.check(model, plan)
            except BudgetExceeded as err:  # the recipe is free: offer it, and say why the file is not
                why_not = str(err).rstrip(".")
            else:
                summary = export_data.summary(p, export_data.file_size(p, sources.sample(model).model.state_dict()))
        _buttons(
            lambda: export_data.sample_file(model, recipe_text),
            recipe_text,
            slug(f"{model}-{stem}"),
            key,
            summary,
            what,
            why_not,
        )


def upload_downloads(up: Any, spec: QuantSpec, key: str = "export-upload") -> None:
    """Downloads of this session's uploaded file at ``spec`` (built from the session's tensors, never cached)."""
    with widgets.friendly_errors("export this file"):
        tensors = up.tensors
        plan = export_data.upload_plan(tensors, spec)
        why_not = _unsupported(spec)
        summary, layers = None, {}
        if why_not is None:
            try:
                p, plan = export_data.check_upload(tensors, plan, spec)
            except BudgetExceeded as err:
                why_not = str(err).rstrip(".")
            else:
                summary = export_data.summary(p, export_data.file_size(p, tensors))
                layers = p.quantized
        layers = layers or {n.removesuffix(".weight"): s for n, s in plan.items()}
        if not layers:
            st.caption("This file holds no weight matrices (2-D or larger tensors named `…weight`) to export.")
            return
        recipe_text = export_data.recipe_json(up.filename, layers)
        _buttons(
            lambda: export_data.upload_file(tensors, plan, recipe_text),
            recipe_text,
            slug(f"{up.filename.rsplit('.', 1)[0]}-{spec.label()}"),
            key,
            summary,
            "This file",
            why_not,
        )


# --- bits on the wire (the walkthrough's section) ----------------------------------------------------------------


def _binary(v: int, width: int) -> str:
    return format(int(v), f"0{width}b")


def bits_on_the_wire(model: str, layer: str, spec: QuantSpec, layer_token: str) -> None:
    """Section 4 of the walkthrough: the chosen layer's first codes packed into bytes and back, and what the
    scales and zero points cost per weight."""
    st.header("4 · Bits on the wire", divider="gray")
    st.markdown(
        "A file cannot store a 4-bit number on its own: the smallest thing a disk or a bus moves is a byte. So "
        "codes are **packed**: laid end to end as one stream of bits, the first code in the lowest bits of the "
        "first byte. Two 4-bit codes share a byte (*nibbles*); 3-bit codes straddle bytes. Each block (the whole "
        "tensor, a channel or a group) also stores its **scale** - and a **zero point** when asymmetric."
    )
    st.latex(
        r"\text{code } i \text{ occupies stream bits } [\,i\,b,\ (i+1)\,b\,) \qquad "
        r"\text{bits per weight} = b + \frac{32 + b_z}{g}"
    )
    with st.spinner("Quantizing the layer…"):
        w = export_data.wire_view(model, layer, reductions.spec_key(spec))
    b = w["bits"]
    n = len(w["x"])
    width = 8 if w["format"].startswith("fp8") else (4 if w["format"] == "nf4" else b)
    what = {
        "nf4": "indices into the 16-value NF4 codebook",
        "fp8_e4m3": "fp8 codes (one byte each: sign, exponent, mantissa)",
        "fp8_e5m2": "fp8 codes (one byte each: sign, exponent, mantissa)",
    }.get(w["format"], f"integer codes of the {w['scheme']} grid" + (
        f", stored offset by 2^{b - 1} = {1 << (b - 1)} so they are 0 … {(1 << b) - 1}" if w["scheme"] == "symmetric" else ""
    ))
    st.markdown(
        f"The first {n} weights of {code_span(shorten(layer_token, 80))} ({model}) at **{w['label']}** "
        f"(sidebar): {what}."
    )
    first = pd.DataFrame(
        {
            "i": np.arange(n),
            "x": w["x"],
            "x̂": w["x_hat"],
            "code": w["codes"],
            "stored": w["stored"],
            "bits": [_binary(v, width) for v in w["stored"]] if width <= 16 else ["–"] * n,
        }
    )
    st.dataframe(first.style.format({"x": "{:.4g}", "x̂": "{:.4g}"}), hide_index=True, width="stretch")
    if w["layout"] is None:
        st.info(
            f"{b}-bit codes do not pack below a byte boundary here: compressed-tensors and most formats store "
            f"codes wider than 8 bits as 16-bit integers (2 bytes each, little-endian).",
            icon="ℹ️",
        )
    else:
        st.markdown(
            f"**Packed** - {n} codes × {width} bits = {n * width} bits = **{len(w['layout'])} bytes** (bit 7 on "
            "the left; `|` separates codes; a code split by a byte boundary continues in the next byte's low bits):"
        )
        st.dataframe(
            pd.DataFrame(
                {
                    "byte": [r["byte"] for r in w["layout"]],
                    "bits 7 … 0": [r["binary"] for r in w["layout"]],
                    "hex": [f"0x{r['value']:02X}" for r in w["layout"]],
                    "holds codes": [", ".join(str(c) for c in r["codes"]) for r in w["layout"]],
                }
            ),
            hide_index=True,
            width="stretch",
        )
        same = bool(np.array_equal(w["unpacked"], w["stored"]))
        st.markdown(
            f"**Unpacked** (shift each code's bits back out): {', '.join(str(int(v)) for v in w['unpacked'])} - "
            + ("the same codes ✅." if same else "**not** the same codes ❌.")
        )
    if w["ct_words"] is not None:
        per_word = f"{32 // b}" if 32 % b == 0 else f"32 / {b} ≈ {32 / b:.1f}"
        st.caption(
            f"compressed-tensors (what vLLM loads) packs the same stream into little-endian int32 words: "
            f"{', '.join(f'0x{v:08X}' for v in w['ct_words'])} - {per_word} codes per word"
            + (", a code may straddle two words" if 32 % b else "")
            + " (`quantlib.pack.pack_int32`)."
        )
    st.subheader("What the scales and zero points cost")
    g = w["block_values"]
    cols = st.columns(4)
    cols[0].metric("Codes", widgets.human_bytes(w["payload_bytes"]), help=f"{w['numel']:,} weights × {b} bits / 8.")
    cols[1].metric(
        "Scales", widgets.human_bytes(w["scale_bytes"]), help=f"{w['blocks']:,} blocks × 4 bytes (float32)."
    )
    cols[2].metric(
        "Zero points",
        widgets.human_bytes(w["zero_point_bytes"]),
        help="One per block for the asymmetric scheme, in ceil(b / 8) bytes; none for symmetric.",
    )
    all_in = 8 * (w["payload_bytes"] + w["scale_bytes"] + w["zero_point_bytes"]) / max(w["numel"], 1)
    cols[3].metric(
        "Bits per weight, all in",
        f"{all_in:.3g}",
        delta=f"{all_in - b:+.3g} for the blocks",
        delta_color="off",
        delta_arrow="off",
        help="(codes + scales + zero points) × 8 / weights.",
    )
    zp = f" plus a {8 * w['zero_point_bytes'] // max(w['blocks'], 1)}-bit zero point" if w["zero_point_bytes"] else ""
    st.caption(
        f"{w['blocks']:,} {'block' if w['blocks'] == 1 else 'blocks'} of {g:,} weights, each with a 32-bit scale{zp}: "
        f"{8 * (w['scale_bytes'] + w['zero_point_bytes']) / max(w['numel'], 1):.3g} extra bits per weight. The first "
        f"block's scale is {w['first_scale']:.4g}, its zero point {w['first_zero_point']}. Groups of 128 with a "
        "16-bit scale (as GPTQ files do) add 0.125 bits; per-group of 32 with float32 scales adds 1 bit - a quarter "
        "of an int4 weight. Float32 would be "
        f"{widgets.human_bytes(w['float_bytes'])}."
    )
