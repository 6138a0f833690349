"""Page pieces for an uploaded file, shared by the "Your model" and "Size & speed" pages, and the words for the
English messages that reach them from ``quantlib`` (``UploadError``, ``BudgetExceeded``, the quantizer's checks).

Like :mod:`ui.compute.upload`, nothing here caches in a place other sessions can reach: the numbers come from
``ui.compute.upload`` functions that memoize in the uploading session.

**quantlib's messages** are English by design. :func:`plain` words the ones it knows in the session's language
(whole sentences, matched on quantlib's English text, with the file's and tensors' names as code spans; budget
refusals through ``ui.widgets.error_reason``) and leaves any other as it is: escaped in English, in a code span
otherwise. Where a translated message stands for quantlib's original, :func:`original_message` offers that
original in a collapsed expander.
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from quantlib import QuantSpec
from ui import i18n, widgets
from ui.compute import upload
from ui.compute.reductions import Note, note_text
from ui.i18n import N_, _, ngettext
from ui.text import code_span, escape_markdown, shorten
from ui.widgets import human_bytes

#: A name or detail quoted inside a message is cut to this many characters.
NAME_CHARS = 100
DETAIL_CHARS = 300


def table_height(n: int) -> int:
    """Pixels for a table of ``n`` rows: every row up to about eight, then it scrolls."""
    return min(38 + 35 * n, 300)


# --- quantlib's English messages, in the session's words ------------------------------------------------------

_SAVE = r"torch\.save\(model\.state_dict\(\), path\) or as \.safetensors\."

#: ``(pattern, msgid)``: quantlib's message (``re.fullmatch``) and the sentence shown for it. Named groups become
#: the msgid's values; those named in ``_QUOTED`` are user text (file names, loader details) and go in code spans.
#: The English msgids say what quantlib says (``quantlib/io.py``, ``quantlib/quantizer.py``, ``quantlib/export.py``).
KNOWN: tuple[tuple[str, str], ...] = (
    # quantlib.io.load_tensors: UploadError
    (
        r'"(?P<name>.*)" is (?P<size>[\d.]+ \w+) \((?P<nbytes>[\d,]+) bytes\); the limit is (?P<limit>[\d.]+ \w+) '
        r"\((?P<limit_bytes>[\d,]+) bytes\)\.",
        N_("{name} is {size} ({nbytes} bytes); the limit is {limit} ({limit_bytes} bytes)."),
    ),
    (
        r'"(?P<name>.*)" is not a model file: expected a \.safetensors, \.pt, \.pth or \.bin file\.',
        N_("{name} is not a model file: expected a `.safetensors`, `.pt`, `.pth` or `.bin` file."),
    ),
    (r'"(?P<name>.*)" is empty\.', N_("{name} is empty.")),
    (
        r'"(?P<name>.*)" is a PyTorch \(torch\.save\) file, not safetensors: rename it to \.pt and upload it again\.',
        N_("{name} is a PyTorch (`torch.save`) file, not safetensors: rename it to `.pt` and upload it again."),
    ),
    (
        r'"(?P<name>.*)" is not a safetensors file \(its header is missing or invalid\)\.',
        N_("{name} is not a safetensors file (its header is missing or invalid)."),
    ),
    (
        r'"(?P<name>.*)" contains no floating-point tensors, so there is nothing to quantize \(found: (?P<found>.*)\)\.',
        N_("{name} contains no floating-point tensors, so there is nothing to quantize (found: {found})."),
    ),
    (
        r'"(?P<name>.*)" contains no floating-point tensors, so there is nothing to quantize\.',
        N_("{name} contains no floating-point tensors, so there is nothing to quantize."),
    ),
    (
        r'The tensors of "(?P<name>.*)" add up to (?P<total>.+?) of values, more than a (?P<limit>.+?) file can hold '
        r"\((?P<allowed>.+?) allowed, for tied weights stored once\): many of them are views of the same stored "
        r"data\. Save each weight once, e\.g\. with " + _SAVE,
        N_(
            "The tensors of {name} add up to {total} of values, more than a {limit} file can hold ({allowed} "
            "allowed, for tied weights stored once): many of them are views of the same stored data. Save each "
            "weight once, e.g. with `torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    (
        r"The safetensors file is truncated: its header runs past the end of the file\.",
        N_("The safetensors file is truncated: its header runs past the end of the file."),
    ),
    (
        r"The file holds (?P<count>\d+) tensors; the limit is (?P<limit>\d+)\.",
        N_("The file holds {count} tensors; the limit is {limit}."),
    ),
    (
        r"The file holds more than (?P<count>\d+) tensors; the limit is (?P<limit>\d+)\.",
        N_("The file holds more than {count} tensors; the limit is {limit}."),
    ),
    (
        r"The safetensors file is corrupt or truncated and could not be read \((?P<detail>.*)\)\.",
        N_("The safetensors file is corrupt or truncated and could not be read ({detail})."),
    ),
    (
        r"The PyTorch file is corrupt or truncated: its zip directory could not be read\. Upload the complete file\.",
        N_("The PyTorch file is corrupt or truncated: its zip directory could not be read. Upload the complete file."),
    ),
    (
        r"The file expands to (?P<size>.+?) when read; the limit is (?P<limit>.+?)\.",
        N_("The file expands to {size} when read; the limit is {limit}."),
    ),
    (
        r"This zip archive is not a PyTorch model file \(it has no data\.pkl\)\. Save the weights with " + _SAVE,
        N_(
            "This zip archive is not a PyTorch model file (it has no `data.pkl`). Save the weights with "
            "`torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    (
        r"The file's object structure is (?P<size>[\d.]+ \w+), more than a model with at most (?P<count>\d+) tensors "
        r"needs \((?P<limit>.+?)\)\.",
        N_("The file's object structure is {size}, more than a model with at most {count} tensors needs ({limit})."),
    ),
    (
        r"This is not a PyTorch model file: it is neither a torch\.save archive nor a safetensors file\.",
        N_("This is not a PyTorch model file: it is neither a `torch.save` archive nor a safetensors file."),
    ),
    (
        r"The file tried to load Python objects \((?P<obj>.*)\), not just tensors, and was refused: a model file "
        r"that does that can run code on this server\. Upload only the weights, saved with " + _SAVE,
        N_(
            "The file tried to load Python objects ({obj}), not just tensors, and was refused: a model file that "
            "does that can run code on this server. Upload only the weights, saved with "
            "`torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    (
        r"The file is a Python pickle, not a PyTorch weights file, and was refused: a pickle can load Python "
        r"objects that run code on this server\. Save the weights with " + _SAVE,
        N_(
            "The file is a Python pickle, not a PyTorch weights file, and was refused: a pickle can load Python "
            "objects that run code on this server. Save the weights with `torch.save(model.state_dict(), path)` "
            "or as `.safetensors`."
        ),
    ),
    (
        r"The PyTorch file is corrupt and could not be read \((?P<detail>.*)\)\.",
        N_("The PyTorch file is corrupt and could not be read ({detail})."),
    ),
    (
        r"The PyTorch file is corrupt or truncated and could not be read \((?P<detail>.*)\)\.",
        N_("The PyTorch file is corrupt or truncated and could not be read ({detail})."),
    ),
    (
        r"The file asks for more memory than this server has\.",
        N_("The file asks for more memory than this server has."),
    ),
    (
        r"The file's object structure is too large: it holds more than (?P<count>[\d,]+) values \(tensors, lists, "
        r"dicts, numbers - a value shared by several lists counts every time\)\. A model's weights need far fewer: "
        r"save them with " + _SAVE,
        N_(
            "The file's object structure is too large: it holds more than {count} values (tensors, lists, dicts, "
            "numbers - a value shared by several lists counts every time). A model's weights need far fewer: save "
            "them with `torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    (
        r"The file's objects are nested more than (?P<depth>\d+) levels deep \(at the top\); a model's weights are a "
        r"flat dict of tensors\. Save them with " + _SAVE,
        N_(
            "The file's objects are nested more than {depth} levels deep; a model's weights are a flat dict of "
            "tensors. Save them with `torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    (
        r"The file's objects are nested more than (?P<depth>\d+) levels deep \(at (?P<at>.*)\); a model's weights "
        r"are a flat dict of tensors\. Save them with " + _SAVE,
        N_(
            "The file's objects are nested more than {depth} levels deep (at {at}); a model's weights are a flat "
            "dict of tensors. Save them with `torch.save(model.state_dict(), path)` or as `.safetensors`."
        ),
    ),
    # quantlib.quantizer.as_float32: values a quantizer cannot take
    (
        r"input contains (?P<nan>\d+) NaN and (?P<inf>\d+) infinite values; quantization needs finite values "
        r"\(check the model or data for overflow\)",
        N_(
            "it contains {nan} NaN and {inf} infinite values; quantization needs finite values (check the model or "
            "data for overflow)"
        ),
    ),
    (
        r"input holds values up to (?P<big>\S+), beyond float32's range \(about 3\.4e38\), so they become infinite "
        r"in float32; quantization needs finite values",
        N_(
            "it holds values up to {big}, beyond float32's range (about 3.4e38), so they become infinite in "
            "float32; quantization needs finite values"
        ),
    ),
    # quantlib.export.check_spec: settings compressed-tensors cannot store
    (
        r"compressed-tensors has no NF4 layout \(that is bitsandbytes' format\): export int4 instead, or fp8_e4m3",
        N_("compressed-tensors has no NF4 layout (that is bitsandbytes' format): export int4 instead, or fp8_e4m3"),
    ),
    (
        r"compressed-tensors stores fp8 as e4m3 only: choose fp8_e4m3 to export",
        N_("compressed-tensors stores fp8 as e4m3 only: choose fp8_e4m3 to export"),
    ),
    (
        r"compressed-tensors packs integer weights of 1-8 bits; (?P<bits>\d+) bits saves little over float16: "
        r"choose 8 bits or fewer to export",
        N_(
            "compressed-tensors packs integer weights of 1-8 bits; {bits} bits saves little over float16: choose 8 "
            "bits or fewer to export"
        ),
    ),
    (
        r"compressed-tensors has no layout for (?P<fmt>\S+): export an integer width or fp8_e4m3",
        N_("compressed-tensors has no layout for {fmt}: export an integer width or fp8_e4m3"),
    ),
    # quantlib.export: why a layer / tensor is kept as it is
    (
        r"(?P<kind>\w+): compressed-tensors compresses Linear and Embedding weights only",
        N_("{kind}: compressed-tensors compresses Linear and Embedding weights only"),
    ),
    (
        r"not named like a layer's weight \(<layer>\.weight\)",
        N_("not named like a layer's weight (`<layer>.weight`)"),
    ),
    (r"(?P<dtype>\w+) values, not floating point", N_("{dtype} values, not floating point")),
    (
        r"(?P<ndim>\d+)-D: compressed-tensors compresses 2-D \(Linear / Embedding\) weights only",
        N_("{ndim}-D: compressed-tensors compresses 2-D (Linear / Embedding) weights only"),
    ),
    (r"empty", N_("empty")),
)
_QUOTED = frozenset({"name", "detail", "obj", "at"})
#: Why quantlib.io skipped an entry (``found: …`` above lists them, comma-separated).
_SKIPPED = (
    (r"not a tensor \((?P<type>\w+)\)", N_("not a tensor ({type})")),
    (r"not floating point \((?P<dtype>\w+)\)", N_("not floating point ({dtype})")),
    (r"complex tensor \((?P<dtype>\w+)\)", N_("complex tensor ({dtype})")),
    (r"sparse tensor", N_("sparse tensor")),
    (r"already quantized tensor", N_("already quantized tensor")),
    (r"tensor without data \(meta device\)", N_("tensor without data (meta device)")),
    (
        r"a view repeating (?P<stored>.+?) of stored values as (?P<n>[\d,]+) values",
        N_("a view repeating {stored} of stored values as {n} values"),
    ),
)
_COMPILED = tuple((re.compile(pattern, re.S), msgid) for pattern, msgid in KNOWN)

def _skipped(text: str) -> str:
    """``quantlib.io``'s reasons for skipping entries (``a, b``) in the session's words."""
    words = []
    for reason in text.split(", "):
        for pattern, msgid in _SKIPPED:
            m = re.fullmatch(pattern, reason)
            if m is not None:
                words.append(_(msgid, **m.groupdict()))
                break
        else:
            words.append(code_span(shorten(reason, NAME_CHARS)))
    return _(", ").join(words)


def _value(key: str, value: str | None) -> str:
    if value is None:
        return ""
    if key in _QUOTED:
        return code_span(shorten(value, NAME_CHARS if key == "name" else DETAIL_CHARS))
    if key == "found":
        return _skipped(value)
    # Numbers and sizes as quantlib spells them: nothing in them is markup.
    return value if re.fullmatch(r"[\w.,+\- ]*", value) else escape_markdown(value)


def _worded(message: object) -> str | None:
    """An app message that words itself for the session (a :class:`~ui.compute.reductions.Note`, an error with a
    ``msgid`` and ``values`` such as ``ui.compute.upload.PlanError``), in the session's words; else None."""
    if isinstance(message, Note):
        return note_text(message)
    if isinstance(getattr(message, "msgid", None), str) and isinstance(getattr(message, "values", None), dict):
        return str(message)
    return None


def known(message: object) -> str | None:
    """``message`` (an exception, or its text) in the session's words as markdown: the app's own messages,
    quantlib's that this module knows (:data:`KNOWN`), and budget refusals and the others
    ``ui.widgets.error_reason`` knows outside English. None when nobody knows it."""
    worded = _worded(message)
    if worded is None and isinstance(message, BaseException) and message.args:
        worded = _worded(message.args[0])
    if worded is not None:
        return worded
    text = str(message)
    for pattern, msgid in _COMPILED:
        m = pattern.fullmatch(text)
        if m is not None:
            return _(msgid, **{k: _value(k, v) for k, v in m.groupdict().items()})
    if i18n.current() == i18n.DEFAULT:
        return None
    return widgets.error_reason(text)


def plain(message: object) -> str:
    """``message`` in the session's words when :func:`known`; else as it is: escaped in English, in a code span
    in another language (the app's own words around it are translated, quantlib's English is quoted)."""
    found = known(message)
    if found is not None:
        return found
    text = str(message)
    return escape_markdown(text) if i18n.current() == i18n.DEFAULT else code_span(shorten(text, DETAIL_CHARS))


def original_message(message: object) -> None:
    """quantlib's English original of a message shown translated, collapsed (``ui.widgets.original_message``);
    nothing in English, or for the app's own messages (translated, not quoted from quantlib)."""
    if i18n.current() == i18n.DEFAULT or _worded(message) is not None:
        return
    if isinstance(message, BaseException) and message.args and _worded(message.args[0]) is not None:
        return
    widgets.original_message(str(message))


# --- the file's refusal ---------------------------------------------------------------------------------------------


def refused(up: Any) -> None:
    """Why this session's file could not be used: quantlib's reason in the session's words (and its English)."""
    st.error(
        _("**{file}** could not be used: {reason}", file=escape_markdown(shorten(up.filename, NAME_CHARS)),
          reason=plain(up.error)),
        icon="🚫",
    )
    original_message(up.error)


# --- the size of the whole file -------------------------------------------------------------------------------------


def size_section(up: Any, spec: QuantSpec, max_rows: int = 1000) -> None:
    """The whole file stored at ``spec``: totals against float, and one row per tensor (the first ``max_rows``).

    ``up`` is this session's ``ui.compute.upload.Upload``. Every tensor is counted, including biases and norms.
    """
    sizes, totals = upload.storage_table(up.tensors, spec)
    c = st.columns(4)
    c[0].metric(
        _("Float weights"),
        human_bytes(totals["float"]),
        help=_("Values × bytes of each tensor's own dtype (float32, float16 …): the file, without its small header."),
    )
    c[1].metric(
        _("Quantized ({bits}-bit)", bits=spec.bits),
        human_bytes(totals["quantized"]),
        help=_("Integer codes packed at the bit width, plus a float32 scale (and a zero point, asymmetric) per block."),
    )
    c[2].metric(_("Smaller by"), f"{totals['ratio']:.2f}×", help=_("Float weights ÷ quantized size."))
    c[3].metric(
        _("Scales & zero points"),
        human_bytes(totals["overhead"]),
        help=_("The cost of the blocks: grows with per-channel and with small groups."),
    )
    shown = sizes.head(max_rows).copy()
    shown["stored as"] = [note_text(v) if isinstance(v, Note) else v for v in shown["stored as"]]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=table_height(len(shown)),
        column_order=("tensor", "stored as", "float_bytes", "code_bytes", "scale_bytes", "quantized_bytes", "ratio"),
        column_config={
            "tensor": st.column_config.TextColumn(_("tensor")),
            "stored as": st.column_config.TextColumn(_("stored as")),
            "float_bytes": st.column_config.NumberColumn(_("float bytes"), format="localized"),
            "code_bytes": st.column_config.NumberColumn(_("code bytes"), format="localized"),
            "scale_bytes": st.column_config.NumberColumn(_("scale + zero-point bytes"), format="localized"),
            "quantized_bytes": st.column_config.NumberColumn(_("quantized bytes"), format="localized"),
            "ratio": st.column_config.NumberColumn(_("smaller by"), format="%.2f×"),
        },
    )
    notes = [
        _(
            "Every tensor at {label}. Real deployments often keep 1-D tensors (biases, norms) in float: here they "
            "are {share} % of the values.",
            label=note_text(upload.spec_label(spec)),
            share=f"{100 * totals['one_d_share']:.3g}",
        )
    ]
    if totals["adapted"]:
        notes.append(
            ngettext(
                "{n} tensor cannot take this granularity as set and is counted as the 'stored as' column says.",
                "{n} tensors cannot take this granularity as set and are counted as the 'stored as' column says.",
                totals["adapted"],
                n=totals["adapted"],
            )
        )
    if len(sizes) > max_rows:
        notes.append(
            _(
                "The table lists the first {shown:,} of {total:,} tensors; totals cover all.",
                shown=max_rows,
                total=len(sizes),
            )
        )
    st.caption(widgets.sentences(*notes))


#: How a quantlib.io tensor kind shows in the file's table (``quantlib.io._kind``).
KINDS = (
    ("scalar", N_("scalar")),
    ("vector (bias / norm)", N_("vector (bias / norm)")),
    ("matrix (Linear / Embedding)", N_("matrix (Linear / Embedding)")),
    ("kernel (Conv)", N_("kernel (Conv)")),
)


def kind(text: str) -> str:
    """A tensor's kind from ``quantlib.io`` in the session's words."""
    for english, msgid in KINDS:
        if text == english:
            return _(msgid)
    m = re.fullmatch(r"(\d+)-d tensor", text)
    return _("{n}-d tensor", n=m[1]) if m else text


def file_notes(tensors: Any) -> list[str]:
    """What the loader left out and which tensors hold NaN / Inf (``quantlib.io.UploadedTensors.notes``, in the
    session's words; names as code spans)."""
    out = []
    if tensors.skipped:
        n = len(tensors.skipped)
        names = _(", ").join(code_span(shorten(name, NAME_CHARS)) for name, _reason in tensors.skipped[:5])
        out.append(
            ngettext(
                "{n} entry skipped (not floating-point tensors): {names}.",
                "{n} entries skipped (not floating-point tensors): {names}.",
                n,
                n=n,
                names=names + (" …" if n > 5 else ""),
            )
        )
    if tensors.nonfinite:
        n = len(tensors.nonfinite)
        names = _(", ").join(code_span(shorten(name, NAME_CHARS)) for name in tensors.nonfinite[:5])
        out.append(
            ngettext(
                "{n} tensor contains NaN or infinite values and cannot be quantized: {names}.",
                "{n} tensors contain NaN or infinite values and cannot be quantized: {names}.",
                n,
                n=n,
                names=names + (" …" if n > 5 else ""),
            )
        )
    return out

