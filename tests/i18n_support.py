"""Finding English a participant would read on a page meant to be Chinese (issue 13).

Two parts, usable from any test:

- :func:`english_runs` - the runs of **four or more consecutive English words** in one piece of text, after
  taking out what is not prose (code, LaTeX, URLs, HTML tags) and the names a caller allows (model, layer and
  file names). Short English (a label such as ``SQNR``, an abbreviation beside its Chinese term, a name) passes;
  an untranslated sentence or label of four words does not.
- :func:`element_texts` - every text of an ``AppTest`` run as ``(where, text)``: headings, markdown, captions,
  alerts, widget labels, help and options (as displayed: ``format_func`` applied), buttons, expanders, tabs,
  metrics, table headers and string cells, Plotly titles, axis titles, legends, annotations, trace names and
  hover templates, download labels and file names, progress texts, toasts, page-navigation titles.
  :func:`english_leftovers` combines both into readable lines: ``"main/metric#key.label: the English run"``.
- :func:`broken_emphasis` / :func:`markdown_problems` - ``**bold**`` that Markdown will not render as bold and
  shows with its asterisks. CommonMark's flanking rules bite Chinese: ``**试一试：**把位宽…`` does not close
  (the ``**`` follows the full-width ``：`` and is followed by a letter); ``**试一试**：`` or a space after
  ``**`` does.

What counts as an English word (documented here, tested in ``test_i18n_catalog.py``):

- ASCII letters only, at least two of them (``a``, ``A`` and ``I`` count too), an inner apostrophe allowed
  (``model's``). Single letters are variables (``x``, ``s``, ``z``) and do not count.
- Not a word, and so a break in a run: anything with a digit or an underscore (``int8``, ``fp8_e4m3``,
  ``bits=4``), an all-capitals abbreviation (``PTQ``, ``SQNR``, ``MSE``: kept beside the Chinese term on
  purpose), any non-ASCII character (Chinese, ``→``, ``·``), sentence punctuation (``. ! ? …``), ``|``, ``=``,
  ``+`` and other symbols.
- Words stay in one run across spaces, new lines and light punctuation: ``, ; : ( ) / -``, quotes, and
  markdown's ``* # > ~ [ ]``. So ``per-channel`` is two words, ``**Try this:** drop the bits`` is one run of
  five.
- Removed before looking, each replaced by a break: fenced code blocks, ``code spans``, LaTeX (``$$…$$``,
  ``$…$``, ``\\(…\\)``, ``\\[…\\]``), URLs, HTML tags and entities, Streamlit's ``:color[`` / ``:material/…:``
  markup, and every ``allowed`` string (longest first, case-sensitive).

Download file names are not in a download button's message; importing this module wraps Streamlit's
``marshall_file`` (a transparent wrapper) so :func:`element_texts` can report them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

# --- English runs -----------------------------------------------------------------------------------------------

#: A break put where something was removed, so words on either side never join into one run.
_BREAK = " \x00 "
_FENCED = re.compile(r"(```|~~~).*?(\1|\Z)", re.S)
_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_LATEX = (
    re.compile(r"\$\$.+?\$\$", re.S),
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$(?!\d)"),
    re.compile(r"\\\(.+?\\\)", re.S),
    re.compile(r"\\\[.+?\\\]", re.S),
)
_URL = re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.\S+|\bmailto:\S+")
_HTML = re.compile(r"</?[A-Za-z][^<>]*>|&[A-Za-z]+;|&#\d+;")
_STREAMLIT_MARKUP = re.compile(r":material/[a-z_]+:|:[a-z]+(?:-background)?\[")
#: A token: a run of word characters (an inner apostrophe kept), a run of light separators, or one other char.
_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:['’][A-Za-z]+)*|[\s,;:()/\-*#>~\[\]\"'“”‘’]+|.", re.S)
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
_ABBREVIATION = re.compile(r"[A-Z]{2,}s?")
MIN_RUN = 4


def strip_non_prose(text: str, allowed: Iterable[str] = ()) -> str:
    """``text`` without code, LaTeX, URLs, HTML and the ``allowed`` strings (each replaced by a break)."""
    text = _FENCED.sub(_BREAK, text)
    text = _CODE.sub(_BREAK, text)
    for pattern in _LATEX:
        text = pattern.sub(_BREAK, text)
    text = _URL.sub(_BREAK, text)
    text = _HTML.sub(_BREAK, text)
    text = _STREAMLIT_MARKUP.sub(_BREAK, text)
    for name in sorted({a for a in allowed if a}, key=len, reverse=True):
        text = text.replace(name, _BREAK)
    return text


def is_english_word(token: str) -> bool:
    """ASCII letters (two or more, or ``a`` / ``A`` / ``I``), not an all-capitals abbreviation."""
    if not _WORD.fullmatch(token):
        return False
    letters = re.sub(r"['’]", "", token)
    if len(letters) < 2:
        return token in ("a", "A", "I")
    return not _ABBREVIATION.fullmatch(token)


def english_runs(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Runs of four or more consecutive English words in ``text`` (see the module docstring for the rules).

    >>> english_runs("Drop the bit width to **4**, then watch `fc1` 的误差")
    ['Drop the bit width to']
    >>> english_runs("位宽（bit width）· 均方误差（MSE）· int8 per-tensor")
    []
    """
    cleaned = strip_non_prose(text, allowed)
    runs: list[str] = []
    current: list[str] = []
    start = end = 0

    def close() -> None:
        if len(current) >= MIN_RUN:
            runs.append(re.sub(r"\s+", " ", cleaned[start:end]).strip())

    for match in _TOKEN.finditer(cleaned):
        token = match.group()
        if _WORD.fullmatch(token) or re.fullmatch(r"[A-Za-z0-9_'’]+", token):
            if is_english_word(token):
                if not current:
                    start = match.start()
                current.append(token)
                end = match.end()
                continue
            close()
            current = []
        elif re.fullmatch(r"[\s,;:()/\-*#>~\[\]\"'“”‘’]+", token):
            continue  # light separators keep a run going
        else:
            close()
            current = []
    close()
    return runs


# --- the texts of an AppTest run --------------------------------------------------------------------------------

#: Element types whose content is not prose: formulas, code, raw data, layout.
SKIPPED_TYPES = frozenset(
    {"latex", "code", "json", "exception", "divider", "empty", "space", "balloons", "snow", "audio", "video",
     "deck_gl_json_chart", "graphviz_chart", "skeleton", "spinner", "help_info"}
)
#: Text fields read from any element's message when present (the rest are handled per type below).
TEXT_FIELDS = ("label", "body", "help", "placeholder", "caption", "text", "title", "delta", "alt")

#: Streamlit's root containers, by their index in the element tree.
AREAS = {0: "main", 1: "sidebar", 2: "event", 3: "bottom"}
#: Download file names by element id, recorded when the script builds a download button (see below).
DOWNLOAD_NAMES: dict[str, str] = {}


def track_download_names() -> None:
    """Wrap Streamlit's ``marshall_file`` once so every download button's ``file_name`` is recorded."""
    from streamlit.elements.widgets import button

    if getattr(button.marshall_file, "_records_names", False):
        return
    real = button.marshall_file

    def marshall_file(coordinates, data, proto, mimetype, file_name=None, **kwargs):  # noqa: ANN001, ANN202
        element_id = kwargs.get("element_id") or getattr(proto, "id", "")
        if file_name and element_id:
            DOWNLOAD_NAMES[element_id] = file_name
        return real(coordinates, data, proto, mimetype, file_name, **kwargs)

    marshall_file._records_names = True  # type: ignore[attr-defined]
    button.marshall_file = marshall_file


track_download_names()


def _plotly_texts(spec: str) -> Iterator[tuple[str, str]]:
    """Every text a Plotly figure shows: titles, axis and legend titles, annotations, trace names, hover."""
    try:
        fig = json.loads(spec)
    except ValueError:
        yield "spec", spec
        return

    def title(value: Any) -> str | None:
        if isinstance(value, dict):
            value = value.get("text")
        return value if isinstance(value, str) and value else None

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, dict):  # typed arrays ({"dtype", "bdata"}) hold numbers only
            return

    layout = fig.get("layout", {}) or {}
    if t := title(layout.get("title")):
        yield "layout.title", t
    for name, axis in layout.items():
        if re.fullmatch(r"[xyz]axis\d*|coloraxis\d*|polar\d*|scene\d*", name) and isinstance(axis, dict):
            if t := title(axis.get("title")):
                yield f"layout.{name}.title", t
            for tick in strings(axis.get("ticktext")):
                yield f"layout.{name}.ticktext", tick
            if t := title((axis.get("colorbar") or {}).get("title")):
                yield f"layout.{name}.colorbar.title", t
    if t := title((layout.get("legend") or {}).get("title")):
        yield "layout.legend.title", t
    for i, note in enumerate(layout.get("annotations") or []):
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            yield f"layout.annotations[{i}]", note["text"]
    for i, shape in enumerate(layout.get("shapes") or []):
        if isinstance(shape, dict) and (t := title(shape.get("label"))):
            yield f"layout.shapes[{i}].label", t
    for group in ("updatemenus", "sliders"):
        for i, menu in enumerate(layout.get(group) or []):
            for j, item in enumerate((menu or {}).get("buttons") or (menu or {}).get("steps") or []):
                if isinstance(item, dict) and isinstance(item.get("label"), str):
                    yield f"layout.{group}[{i}][{j}].label", item["label"]
    for i, trace in enumerate(fig.get("data", []) or []):
        if not isinstance(trace, dict):
            continue
        where = f"trace[{i}]"
        if isinstance(trace.get("name"), str) and trace.get("showlegend", True) is not False:
            yield f"{where}.name", trace["name"]
        elif (
            isinstance(trace.get("name"), str)
            and trace.get("hoverinfo") not in ("skip", "none")
            and "<extra></extra>" not in str(trace.get("hovertemplate", ""))
        ):
            yield f"{where}.name (hover)", trace["name"]
        if t := title(trace.get("legendgrouptitle") or {}):
            yield f"{where}.legendgrouptitle", t
        for key in ("hovertemplate", "texttemplate"):
            for template in strings(trace.get(key)):
                text = re.sub(r"%\{[^}]*\}", " ", template)
                text = re.sub(r"</?extra>", " ", text)
                yield f"{where}.{key}", text
        for key in ("text", "hovertext", "customdata", "x", "y", "labels", "header", "cells"):
            value = trace.get(key)
            if key in ("header", "cells") and isinstance(value, dict):
                value = value.get("values")
            for s in dict.fromkeys(strings(value)):  # categories repeat: each once
                yield f"{where}.{key}", s
        for holder in (trace, trace.get("marker") or {}):
            if t := title((holder.get("colorbar") or {}).get("title")):
                yield f"{where}.colorbar.title", t


def _dataframe_texts(element: Any) -> Iterator[tuple[str, str]]:
    """Column headers (a column_config label wins over the column's name) and the string cells of a table."""
    config: dict = {}
    raw = getattr(element.proto, "columns", "")
    if raw:
        try:
            config = json.loads(raw)
        except ValueError:
            config = {}
    try:
        frame = element.value
    except Exception as exc:  # noqa: BLE001 - a table AppTest cannot decode is reported, not hidden
        yield "value", f"<table not readable: {exc}>"
        return
    if not isinstance(frame, pd.DataFrame):
        return
    for name in frame.columns:
        label = name if not isinstance(name, tuple) else " ".join(str(n) for n in name)
        column = config.get(str(name)) or config.get(f"col:{name}") or config.get(f"name:{name}") or {}
        if isinstance(column, dict) and column.get("hidden"):
            continue
        shown = column.get("label") if isinstance(column, dict) and column.get("label") else label
        yield "header", str(shown)
        if isinstance(column, dict) and isinstance(column.get("help"), str):
            yield f"header[{shown}].help", column["help"]
        series = frame[name]
        if series.dtype == object or pd.api.types.is_string_dtype(series) or isinstance(
            series.dtype, pd.CategoricalDtype
        ):
            for value in dict.fromkeys(v for v in series.tolist() if isinstance(v, str)):
                yield f"cell[{shown}]", value
    for name in (frame.index.names or []):
        if isinstance(name, str):
            yield "index name", name
    if frame.index.dtype == object:
        for value in dict.fromkeys(v for v in frame.index.tolist() if isinstance(v, str)):
            yield "index", value


def _element_texts(node: Any) -> Iterator[tuple[str, str]]:
    kind = getattr(node, "type", "")
    proto = getattr(node, "proto", None)
    if kind in SKIPPED_TYPES or proto is None:
        return
    if kind == "plotly_chart":
        yield from _plotly_texts(proto.spec)
        return
    if kind in ("dataframe", "table", "arrow_data_frame", "arrow_table"):
        yield from _dataframe_texts(node)
        return
    for name in TEXT_FIELDS:
        value = getattr(proto, name, None)
        if isinstance(value, str) and value:
            yield name, value
    options = getattr(proto, "options", None)
    if options is not None and not isinstance(options, str):
        for i, option in enumerate(options):
            if isinstance(option, str):
                yield f"options[{i}]", option
            elif isinstance(getattr(option, "content", None), str) and option.content:
                yield f"options[{i}]", option.content  # button groups (pills, segmented control)
    if kind == "download_button":
        name = DOWNLOAD_NAMES.get(getattr(proto, "id", ""))
        if name:
            yield "file_name", name


def _block_texts(block: Any) -> Iterator[tuple[str, str]]:
    kind = getattr(block, "type", "")
    if kind in ("expander", "status", "tab"):
        label = getattr(block, "label", "")
        if label:
            yield "label", label
        return
    proto = getattr(block, "proto", None)
    if proto is None or not hasattr(proto, "WhichOneof"):
        return
    try:
        inner_kind = proto.WhichOneof("type")
    except (TypeError, ValueError):
        return
    inner = getattr(proto, inner_kind, None) if inner_kind else None
    for name in ("label", "title", "help"):
        value = getattr(inner, name, None)
        if isinstance(value, str) and value:
            yield name, value


def element_texts(at: Any) -> list[tuple[str, str]]:
    """Every text a participant reads after an AppTest run, as ``(where, text)``, in page order.

    ``where`` names the area (``main``, ``sidebar``, ``event``…), the element type, its key when it has one,
    and the field: ``main/metric#scale.help``, ``sidebar/radio#scheme.options[1]``,
    ``main/plotly_chart#hist-weights.layout.xaxis.title``. Formulas (``st.latex``), code (``st.code``) and
    exceptions are not texts (an exception is a failure of its own).
    """
    from streamlit.testing.v1.element_tree import Block

    found: list[tuple[str, str]] = []
    tree = at._tree
    for index, area in tree.children.items():
        area_name = AREAS.get(index, f"root{index}")
        for node in area:
            if node is area:
                continue
            kind = getattr(node, "type", "?")
            key = getattr(node, "key", None)
            label = f"{area_name}/{kind}" + (f"#{key}" if key else "")
            texts = _block_texts(node) if isinstance(node, Block) else _element_texts(node)
            found.extend((f"{label}.{field}", text) for field, text in texts)
    for info in (getattr(at, "_registered_pages", None) or {}).values():
        name = info.get("page_name") if isinstance(info, dict) else None
        if isinstance(name, str) and name:
            found.append(("navigation.page", name))
    return found


def english_leftovers(at: Any, allowed: Iterable[str] = ()) -> list[str]:
    """``"where: run"`` for every run of four or more English words on the page (see :func:`english_runs`).

    The same text in the same place is reported once (a table column repeats its value in every row).
    """
    allowed = tuple(allowed)
    lines: list[str] = []
    for where, text in element_texts(at):
        for run in english_runs(text, allowed):
            line = f"{where}: {run}"
            if line not in lines:
                lines.append(line)
    return lines


# --- bold that will not render ----------------------------------------------------------------------------------

_DOUBLE_STAR = re.compile(r"(?<!\*)\*\*(?!\*)")
#: Fields whose text Streamlit renders as Markdown (plot texts, options, cells and file names are plain).
MARKDOWN_FIELDS = re.compile(r"\.(body|label|help|caption|placeholder)$")


def _is_punctuation(ch: str) -> bool:
    return bool(ch) and unicodedata.category(ch)[0] in "PS"


def _flanking(before: str, after: str) -> tuple[bool, bool]:
    """CommonMark's (left-flanking, right-flanking) for a delimiter run between ``before`` and ``after``."""
    space_before, space_after = (not before or before.isspace()), (not after or after.isspace())
    left = not space_after and (not _is_punctuation(after) or space_before or _is_punctuation(before))
    right = not space_before and (not _is_punctuation(before) or space_after or _is_punctuation(after))
    return left, right


def broken_emphasis(text: str) -> list[str]:
    """Each ``**…**`` pair of ``text`` whose opening or closing ``**`` Markdown will not take as such.

    >>> broken_emphasis("**试一试：**把位宽设为 **4**")
    ['**试一试：**把']
    >>> broken_emphasis("**试一试**：把位宽设为 **4**。") + broken_emphasis("**Try this:** drop")
    []
    """
    text = _FENCED.sub("x", _CODE.sub("x", text))
    for pattern in _LATEX:
        text = pattern.sub("x", text)
    marks = [m.start() for m in _DOUBLE_STAR.finditer(text)]
    found = []
    for opening, closing in zip(marks[::2], marks[1::2], strict=False):
        left, _right = _flanking(text[opening - 1 : opening], text[opening + 2 : opening + 3])
        _left, right = _flanking(text[closing - 1 : closing], text[closing + 2 : closing + 3])
        if not (left and right):
            found.append(text[max(opening - 1, 0) : closing + 3].strip())
    return found


def markdown_problems(at: Any) -> list[str]:
    """``"where: **…**"`` for every bold pair on the page that would show its asterisks."""
    lines: list[str] = []
    for where, text in element_texts(at):
        if MARKDOWN_FIELDS.search(where):
            lines.extend(f"{where}: {bad}" for bad in broken_emphasis(text) if f"{where}: {bad}" not in lines)
    return lines
