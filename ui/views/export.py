"""The page side of exporting: a compressed-tensors download and a recipe download, with what they hold.

The file is built when the button is clicked (Streamlit runs the callable handed as ``data`` then, on another
thread, and the page does not rerun: ``on_click="ignore"``); everything that could go wrong with it is checked
here first, in the page's run, where it can be said in plain words.

The page's words are in the session's language; what goes *into* a downloaded file stays English and ASCII: its
name (:func:`slug` keeps letters, digits and dots: model name, spec label, extension) and the recipe JSON and
metadata inside it are technical artefacts read by tools.
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
from ui.compute import upload as upload_data
from ui.compute.reductions import note_text
from ui.i18n import N_, _, ngettext
from ui.text import code_span, shorten
from ui.views import upload as upload_views

HOW_TO_LOAD = N_(
    "The `.safetensors` file is in the **compressed-tensors** layout (packed integer codes, scales, zero points; "
    "the `quantization_config` that vLLM and transformers read is in its metadata - put it in `config.json` next "
    "to the file). The recipe re-creates the same model in a notebook, bit for bit: "
    "`quantlib.recipe.apply(model, open('recipe.json').read())`."
)


def slug(text: str) -> str:
    """A file-name-safe version of a label: ``"int4 sym per-group(64)"`` -> ``"int4-sym-per-group-64"``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "export"


def _kept_text(kept: Mapping[str, str]) -> str:
    """The layers / tensors left as they are, and why (quantlib's reasons, in the session's words)."""
    if not kept:
        return ""
    names = _(", ").join(code_span(shorten(n or "root", 60)) for n in list(kept)[:6])
    reasons = _("; ").join(upload_views.plain(r) for r in sorted(set(kept.values()))[:2])
    if len(kept) > 6:
        return _("Kept as they are: {names} and {more} more ({reasons}).", names=names, more=len(kept) - 6,
                 reasons=reasons)
    return _("Kept as they are: {names} ({reasons}).", names=names, reasons=reasons)


def _buttons(
    file_data: Any, recipe_text: str, stem: str, key: str, summary: dict | None, what: str, why_not: str | None
) -> None:
    """The two buttons and the caption; ``summary`` is None (and ``why_not`` says why) when the setting cannot be
    stored as compressed-tensors - the recipe is offered anyway."""
    can_export = summary is not None and summary["quantized"] > 0
    left, right = st.columns(2)
    with left:
        st.download_button(
            "⬇️ " + _("Quantized weights (.safetensors)"),
            data=file_data if can_export else b"",
            file_name=f"{stem}.safetensors",
            mime="application/octet-stream",
            on_click="ignore",
            key=f"{key}-safetensors",
            help=_("compressed-tensors layout: built when you click (a few seconds for MiniLM)."),
            width="stretch",
            disabled=not can_export,
        )
    with right:
        st.download_button(
            "⬇️ " + _("Recipe (.json)"),
            data=recipe_text,
            file_name=f"{stem}.recipe.json",
            mime="application/json",
            on_click="ignore",
            key=f"{key}-recipe",
            help=_("The settings of every layer, as `quantlib.recipe.apply` reads them."),
            width="stretch",
        )
    if summary is None:
        st.caption(
            widgets.sentences(
                _("The `.safetensors` export is not available for this setting: {reason}.",
                  reason=upload_views.plain(why_not).rstrip(".。")),
                _(HOW_TO_LOAD),
            )
        )
        return
    if not can_export:
        st.caption(
            widgets.sentences(
                _("Nothing here can be stored in the compressed-tensors layout."), _kept_text(summary["kept"])
            )
        )
        return
    n = summary["quantized"]
    st.caption(
        widgets.sentences(
            ngettext(
                "{what}: {n} tensor quantized. About {size} instead of {float_size} in float.",
                "{what}: {n} tensors quantized. About {size} instead of {float_size} in float.",
                n,
                what=what,
                n=n,
                size=widgets.human_bytes(summary["bytes"]),
                float_size=widgets.human_bytes(summary["float_bytes"]),
            ),
            _kept_text(summary["kept"]),
            _(HOW_TO_LOAD),
        )
    )


def _unsupported(spec_or_plan: QuantSpec | Mapping[str, QuantSpec]) -> str | None:
    """Why compressed-tensors cannot hold a setting (nf4, fp8 e5m2, > 8 bits), or None (quantlib's English:
    :func:`_buttons` words it for the session)."""
    specs = [spec_or_plan] if isinstance(spec_or_plan, QuantSpec) else list(spec_or_plan.values())
    for s in specs:
        try:
            check_spec(s)
        except ValueError as err:
            return str(err)
    return None


def sample_downloads(model: str, plan: Mapping[str, QuantSpec], stem: str, key: str, what: str) -> None:
    """Downloads of a sample model quantized by ``plan`` (``{layer: QuantSpec}``)."""
    with widgets.friendly_errors(_("export this model")):
        recipe_text = export_data.recipe_json(model, plan)
        why_not = _unsupported(plan)
        summary = None
        if why_not is None:
            try:
                p = export_data.check(model, plan)
            except BudgetExceeded as err:  # the recipe is free: offer it, and say why the file is not
                why_not = str(err)
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
    with widgets.friendly_errors(_("export this file")):
        tensors = up.tensors
        plan = export_data.upload_plan(tensors, spec)
        why_not = _unsupported(spec)
        summary, layers = None, {}
        if why_not is None:
            try:
                p, plan = export_data.check_upload(tensors, plan, spec)
            except BudgetExceeded as err:
                why_not = str(err)
            else:
                summary = export_data.summary(p, export_data.file_size(p, tensors))
                layers = p.quantized
        layers = layers or {n.removesuffix(".weight"): s for n, s in plan.items()}
        if not layers:
            st.caption(_("This file holds no weight matrices (2-D or larger tensors named `…weight`) to export."))
            return
        recipe_text = export_data.recipe_json(up.filename, layers)
        _buttons(
            lambda: export_data.upload_file(tensors, plan, recipe_text),
            recipe_text,
            slug(f"{up.filename.rsplit('.', 1)[0]}-{spec.label()}"),
            key,
            summary,
            _("This file"),
            why_not,
        )


# --- bits on the wire (the walkthrough's section) ----------------------------------------------------------------


def _binary(v: int, width: int) -> str:
    return format(int(v), f"0{width}b")


def bits_on_the_wire(model: str, layer: str, spec: QuantSpec, layer_token: str) -> None:
    """Section 4 of the walkthrough: the chosen layer's first codes packed into bytes and back, and what the
    scales and zero points cost per weight."""
    st.header(_("4 · Bits on the wire"), divider="gray")
    st.markdown(
        _(
            "A file cannot store a 4-bit number on its own: the smallest thing a disk or a bus moves is a byte. So "
            "codes are **packed**: laid end to end as one stream of bits, the first code in the lowest bits of the "
            "first byte. Two 4-bit codes share a byte (*nibbles*); 3-bit codes straddle bytes. Each block (the "
            "whole tensor, a channel or a group) also stores its **scale** - and a **zero point** when asymmetric."
        )
    )
    # The formula stays LaTeX; only the words in its \text{} are the session's.
    st.latex(
        r"\text{" + _("code") + r" } i \text{ " + _("occupies stream bits") + r" } [\,i\,b,\ (i+1)\,b\,) \qquad "
        r"\text{" + _("bits per weight") + r"} = b + \frac{32 + b_z}{g}"
    )
    with st.spinner(_("Quantizing the layer…")):
        w = export_data.wire_view(model, layer, reductions.spec_key(spec))
    b = w["bits"]
    n = len(w["x"])
    width = 8 if w["format"].startswith("fp8") else (4 if w["format"] == "nf4" else b)
    if w["format"] == "nf4":
        what = _("indices into the 16-value NF4 codebook")
    elif w["format"] in ("fp8_e4m3", "fp8_e5m2"):
        what = _("fp8 codes (one byte each: sign, exponent, mantissa)")
    elif w["scheme"] == "symmetric":
        what = _(
            "integer codes of the symmetric grid, stored offset by 2^{e} = {offset} so they are 0 … {top}",
            e=b - 1, offset=1 << (b - 1), top=(1 << b) - 1,
        )
    else:
        what = _("integer codes of the asymmetric grid")
    label = (
        note_text(upload_data.spec_label(reductions.spec_from_key(w["spec_key"]))) if "spec_key" in w else w["label"]
    )
    st.markdown(
        _(
            "The first {n} weights of {layer} ({model}) at **{label}** (sidebar): {what}.",
            n=n, layer=code_span(shorten(layer_token, 80)), model=model, label=label, what=what,
        )
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
    st.dataframe(
        first.style.format({"x": "{:.4g}", "x̂": "{:.4g}"}),
        hide_index=True,
        width="stretch",
        column_config={
            "code": st.column_config.Column(_("code")),
            "stored": st.column_config.Column(_("stored")),
            "bits": st.column_config.Column(_("bit pattern")),
        },
    )
    if w["layout"] is None:
        st.info(
            _(
                "{bits}-bit codes do not pack below a byte boundary here: compressed-tensors and most formats store "
                "codes wider than 8 bits as 16-bit integers (2 bytes each, little-endian).",
                bits=b,
            ),
            icon="ℹ️",
        )
    else:
        st.markdown(
            _(
                "**Packed** - {n} codes × {width} bits = {total} bits = **{nbytes} bytes** (bit 7 on the left; `|` "
                "separates codes; a code split by a byte boundary continues in the next byte's low bits):",
                n=n, width=width, total=n * width, nbytes=len(w["layout"]),
            )
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
            column_config={
                "byte": st.column_config.Column(_("byte")),
                "bits 7 … 0": st.column_config.Column(_("bits 7 … 0")),
                "hex": st.column_config.Column(_("hex")),
                "holds codes": st.column_config.Column(_("holds codes")),
            },
        )
        same = bool(np.array_equal(w["unpacked"], w["stored"]))
        codes = ", ".join(str(int(v)) for v in w["unpacked"])
        st.markdown(
            _("**Unpacked** (shift each code's bits back out): {codes} - the same codes ✅.", codes=codes)
            if same
            else _("**Unpacked** (shift each code's bits back out): {codes} - **not** the same codes ❌.", codes=codes)
        )
    if w["ct_words"] is not None:
        words = ", ".join(f"0x{v:08X}" for v in w["ct_words"])
        if 32 % b == 0:
            text = _(
                "compressed-tensors (what vLLM loads) packs the same stream into little-endian int32 words: {words} "
                "- {per_word} codes per word (`quantlib.pack.pack_int32`).",
                words=words, per_word=32 // b,
            )
        else:
            text = _(
                "compressed-tensors (what vLLM loads) packs the same stream into little-endian int32 words: {words} "
                "- 32 / {bits} ≈ {per_word} codes per word, a code may straddle two words "
                "(`quantlib.pack.pack_int32`).",
                words=words, bits=b, per_word=f"{32 / b:.1f}",
            )
        st.caption(text)
    st.subheader(_("What the scales and zero points cost"))
    g = w["block_values"]
    cols = st.columns(4)
    cols[0].metric(
        _("Codes"),
        widgets.human_bytes(w["payload_bytes"]),
        help=_("{n:,} weights × {bits} bits / 8.", n=w["numel"], bits=b),
    )
    cols[1].metric(
        _("Scales"),
        widgets.human_bytes(w["scale_bytes"]),
        help=_("{n:,} blocks × 4 bytes (float32).", n=w["blocks"]),
    )
    cols[2].metric(
        _("Zero points"),
        widgets.human_bytes(w["zero_point_bytes"]),
        help=_("One per block for the asymmetric scheme, in ceil(b / 8) bytes; none for symmetric."),
    )
    all_in = 8 * (w["payload_bytes"] + w["scale_bytes"] + w["zero_point_bytes"]) / max(w["numel"], 1)
    cols[3].metric(
        _("Bits per weight, all in"),
        f"{all_in:.3g}",
        delta=_("{extra} for the blocks", extra=f"{all_in - b:+.3g}"),
        delta_color="off",
        delta_arrow="off",
        help=_("(codes + scales + zero points) × 8 / weights."),
    )
    extra = f"{8 * (w['scale_bytes'] + w['zero_point_bytes']) / max(w['numel'], 1):.3g}"
    if w["zero_point_bytes"]:
        blocks = ngettext(
            "{n:,} block of {g:,} weights, each with a 32-bit scale plus a {zp}-bit zero point: {extra} extra bits "
            "per weight.",
            "{n:,} blocks of {g:,} weights, each with a 32-bit scale plus a {zp}-bit zero point: {extra} extra bits "
            "per weight.",
            w["blocks"],
            n=w["blocks"], g=g, zp=8 * w["zero_point_bytes"] // max(w["blocks"], 1), extra=extra,
        )
    else:
        blocks = ngettext(
            "{n:,} block of {g:,} weights, each with a 32-bit scale: {extra} extra bits per weight.",
            "{n:,} blocks of {g:,} weights, each with a 32-bit scale: {extra} extra bits per weight.",
            w["blocks"],
            n=w["blocks"], g=g, extra=extra,
        )
    st.caption(
        widgets.sentences(
            blocks,
            _(
                "The first block's scale is {scale}, its zero point {zero_point}. Groups of 128 with a 16-bit scale "
                "(as GPTQ files do) add 0.125 bits; per-group of 32 with float32 scales adds 1 bit - a quarter of an "
                "int4 weight. Float32 would be {float_size}.",
                scale=f"{w['first_scale']:.4g}",
                zero_point=w["first_zero_point"],
                float_size=widgets.human_bytes(w["float_bytes"]),
            ),
        )
    )
