"""The translation catalog and the code agree (issue 13), read without running the app.

- Every message of the code (``_``, ``N_``, ``ngettext`` in the sources ``tools/i18n.py`` extracts) has a
  Chinese translation: not missing, not empty, not fuzzy, the same ``{placeholders}``. The catalog is every
  ``.po`` file of ``locales/zh_CN/LC_MESSAGES/`` together (``messages.po`` first, then the part catalogs people
  translate side by side), exactly as the app reads it; so this passes as soon as the parts are complete, and
  still after the lead merges them into ``messages.po``.
- The catalog compiles (what ``pybabel compile`` does), and the compiled file answers in Chinese.
- The code uses the API as Babel can extract it: a literal string as the message (never an f-string, ``+``,
  ``%`` or ``.format`` inside ``_``), placeholders filled by name, ``N_`` only on literals, no ``_()`` evaluated
  once at import in a shared module, no local variable named ``_`` where ``_`` is the translation function.
- ``quantlib/`` stays language-free.
- ``ui.i18n`` itself: language codes, the language outside a session, formatting, fallbacks.
- ``tests/i18n_support.english_runs``: what counts as leftover English.
"""

from __future__ import annotations

import ast
import gettext
import importlib.util
import io
import re
import string
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, TranslationError
from babel.messages.checkers import num_plurals
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from i18n_support import broken_emphasis, english_runs, is_english_word, strip_non_prose

REPO = Path(__file__).resolve().parents[1]
LC_MESSAGES = REPO / "locales" / "zh_CN" / "LC_MESSAGES"


def _load_tools():
    """``tools/i18n.py`` by path (``tools`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("qe_tools_i18n", REPO / "tools" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tools = _load_tools()


def po_files() -> list[Path]:
    main = LC_MESSAGES / "messages.po"
    return [main, *sorted(p for p in LC_MESSAGES.glob("*.po") if p != main)]


def _translated(message) -> bool:  # noqa: ANN001 - a babel Message
    strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
    return bool(strings) and all(strings)


def combined_catalog() -> Catalog:
    """Every ``.po`` of the folder as one catalog: for each message the first file that translates it (not
    fuzzy) wins, as the app's chain of fallbacks answers; otherwise the first file's entry (to be reported)."""
    combined = Catalog(locale="zh_CN", project="Quantization Explorer")
    for path in po_files():
        if not path.exists():
            continue
        for message in tools.read(path):
            if not message.id:
                continue
            have = combined.get(message.id, context=message.context)
            if have is not None and _translated(have) and not have.fuzzy:
                continue
            if have is not None and not (_translated(message) and not message.fuzzy):
                continue
            combined.delete(message.id, context=message.context)
            combined.add(message.id, message.string, locations=message.locations, flags=message.flags,
                         context=message.context)
    return combined


@pytest.fixture(scope="module")
def template() -> Catalog:
    return tools.extract()


# --- the catalog is complete ------------------------------------------------------------------------------------


def test_every_message_of_the_code_has_a_faithful_chinese_translation(template):
    found = tools.problems(combined_catalog(), template)
    if not found:
        return
    files: dict[str, str] = {}
    for message in template:
        if message.id and message.locations:
            files[message.id if isinstance(message.id, str) else message.id[0]] = message.locations[0][0]
    per_file: dict[str, int] = {}
    for line in found:
        kind, _sep, rest = line.partition(": ")
        msgid = rest
        try:
            value = ast.literal_eval(rest)
            msgid = value if isinstance(value, str) else value[0]
        except (ValueError, SyntaxError):
            pass
        where = f"{files.get(msgid, '(catalog only)')} ({kind.split(' ')[0]})"
        per_file[where] = per_file.get(where, 0) + 1
    pytest.fail(
        f"{len(found)} problems in {', '.join(p.name for p in po_files() if p.exists())} "
        "(`python tools/i18n.py check`; a part catalog: `python tools/i18n.py check --part NAME --paths …`).\n"
        "By source file:\n"
        + "\n".join(f"  {n:4d}  {w}" for w, n in sorted(per_file.items()))
        + "\nFirst problems:\n"
        + "\n".join(found[:40])
        + (f"\n… and {len(found) - 40} more" if len(found) > 40 else ""),
        pytrace=False,
    )


def test_the_code_has_messages_to_translate(template):
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert len(ids) > 50, "extraction found almost nothing: are the keywords and paths right?"
    for page_title in ("Tensor explorer", "Error curves", "Glossary"):
        assert page_title in ids


@pytest.mark.parametrize("path", po_files(), ids=lambda p: p.name)
def test_each_catalog_file_compiles_and_answers_in_chinese(path, tmp_path):
    """``pybabel compile``: parse strictly, check python-format, write a .mo, read it back with gettext."""
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    with path.open("rb") as f:
        catalog = read_po(f, locale="zh_CN", abort_invalid=True)
    # Babel's python-format checker reads "10 % damping" as a %-conversion; the app formats with str.format and
    # test_every_message_… compares {placeholders}. The plural-count checker is the one that applies.
    errors = []
    for message in catalog:
        if message.id:
            try:
                num_plurals(catalog, message)
            except TranslationError as exc:
                errors.append(f"{message.id!r}: {exc}")
    assert not errors, errors
    mo = tmp_path / "messages.mo"
    with mo.open("wb") as f:
        write_mo(f, catalog, use_fuzzy=False)
    compiled = gettext.GNUTranslations(io.BytesIO(mo.read_bytes()))
    for message in catalog:
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy:
            assert compiled.gettext(message.id) == message.string
    assert catalog.num_plurals == 1, "Chinese has one plural form (Plural-Forms: nplurals=1; plural=0;)"


def test_part_catalogs_do_not_contradict_each_other():
    """Two part catalogs translating the same message the same way (the merge would keep only one)."""
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in po_files():
        if not path.exists():
            continue
        for message in tools.read(path):
            if not message.id or not isinstance(message.id, str) or not message.string or message.fuzzy:
                continue
            if message.id in seen and seen[message.id][1] != message.string:
                clashes.append(f"{message.id!r}: {seen[message.id][0]} says {seen[message.id][1]!r}, "
                               f"{path.name} says {message.string!r}")
            seen.setdefault(message.id, (path.name, message.string))
    assert not clashes, "\n".join(clashes)


# --- the code uses the API as Babel can extract it ---------------------------------------------------------------


def source_files() -> list[Path]:
    files: list[Path] = []
    for rel in tools.SOURCES:
        path = REPO / rel
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _calls(tree: ast.AST, names: tuple[str, ...]) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            yield node


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def _is_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def test_messages_are_literals_babel_can_extract():
    """No f-string, ``+``, ``%``, ``.format`` or ``.join`` as a message: Babel cannot extract it, and each
    value would be a new message. ``_(CONSTANT)`` / ``_(LABELS[key])`` of ``N_``-marked constants is fine."""
    bad = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, ("_", "N_", "ngettext")):
            messages = call.args[:2] if call.func.id == "ngettext" else call.args[:1]
            if not messages:
                bad.append(f"{_where(path, call)}: {call.func.id}() without a message")
            for arg in messages:
                built = isinstance(arg, (ast.JoinedStr, ast.BinOp)) or (
                    isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr in ("format", "join", "replace")
                )
                if built or (call.func.id in ("N_", "ngettext") and not _is_literal(arg)):
                    bad.append(f"{_where(path, call)}: {call.func.id}({ast.unparse(arg)[:80]})")
    assert not bad, "messages must be literal strings:\n" + "\n".join(bad)


def _fields(message: str) -> set[str] | None:
    """The replacement fields ``str.format`` would fill, or None when the text is not a valid format string."""
    try:
        return {name.split(".")[0].split("[")[0] for _lit, name, _spec, _conv in string.Formatter().parse(message)
                if name is not None}
    except ValueError:
        return None


def test_placeholders_are_named_and_given():
    """With values, every ``{name}`` of the message is passed by name (and braces meant literally are doubled:
    the message goes through ``str.format``, so Plotly's ``%{x}`` becomes ``%{{x}}`` there); without values,
    a ``{name}`` would show as it is."""
    bad = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for call in _calls(tree, ("_", "ngettext")):
            messages = [a.value for a in (call.args[:2] if call.func.id == "ngettext" else call.args[:1])
                        if _is_literal(a)]
            given = {k.arg for k in call.keywords}
            if None in given:  # **kwargs: cannot tell statically
                continue
            formatted_later = isinstance(parents.get(call), ast.Attribute) and parents[call].attr == "format"
            for message in messages:
                # Plotly's hover tokens (%{x:.3g}) are not placeholders when nothing is formatted.
                fields = _fields(message) if given else tools.placeholders(re.sub(r"%\{[^{}]*\}", "", message))
                if fields is None:
                    bad.append(f"{_where(path, call)}: not a valid format string with values: {message[:70]!r}")
                elif "" in fields or any(f.isdigit() for f in fields):
                    bad.append(f"{_where(path, call)}: positional placeholder in {message[:70]!r}")
                elif given and not fields <= given:
                    bad.append(f"{_where(path, call)}: {sorted(fields - given)} not given for {message[:70]!r}")
                elif not given and fields and not formatted_later:
                    bad.append(f"{_where(path, call)}: {sorted(fields)} never filled in {message[:70]!r}")
    assert not bad, "\n".join(bad)


def test_no_translation_is_evaluated_once_at_import():
    """A module-level ``_()`` in a shared module runs once, in English, for everybody: mark it with ``N_`` and
    translate where it is shown. (``app.py`` and ``app_pages/`` are scripts run for every session: fine.)"""
    bad = []
    for path in source_files():
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("app.py", "app_pages"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deferred = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for inner in ast.walk(node)
        }
        bad += [_where(path, c) for c in _calls(tree, ("_", "ngettext")) if id(c) not in deferred]
    assert not bad, "module-level _() / ngettext():\n" + "\n".join(bad)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _binds_underscore(node: ast.AST) -> bool:
    if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
        return True
    if isinstance(node, ast.ExceptHandler) and node.name == "_":
        return True
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name) == "_" for alias in node.names) and not (
            isinstance(node, ast.ImportFrom) and node.module == "ui.i18n"
        )
    return False


def _own_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``scope`` itself: not those of nested functions, classes or comprehensions (own scopes)."""
    for child in ast.iter_child_nodes(scope):
        if isinstance(child, _SCOPES + _COMPREHENSIONS):
            continue
        yield child
        yield from _own_scope(child)


def test_underscore_is_never_shadowed_where_it_translates():
    """``a, _ = f()`` or ``for _ in …`` makes ``_`` local to the whole function: a ``_("…")`` in it (or in a
    function nested in it) raises UnboundLocalError or calls the wrong thing; at module level it replaces the
    translation function for the rest of the module. Name throwaways ``_unused`` / ``__`` instead.
    (A throwaway ``_`` in a comprehension, or in a function that never translates, harms nothing.)"""
    bad = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        translates = any(
            isinstance(n, ast.ImportFrom) and n.module == "ui.i18n" and any(a.name == "_" for a in n.names)
            for n in ast.walk(tree)
        )
        if not translates:
            continue
        bad += [f"{_where(path, n)} (module level)" for n in _own_scope(tree) if _binds_underscore(n)]
        for scope in ast.walk(tree):
            if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            binds = [n for n in _own_scope(scope) if _binds_underscore(n)]
            uses = any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Load) for n in ast.walk(scope))
            if binds and uses:
                bad += [f"{_where(path, n)} (in {getattr(scope, 'name', 'lambda')}, which translates)" for n in binds]
    assert not bad, "`_` rebound where it is the translation function:\n" + "\n".join(bad)


def test_quantlib_stays_language_free():
    bad = []
    for path in sorted((REPO / "quantlib").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ui":
                bad.append(f"{_where(path, node)}: from {node.module} import …")
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("ui", "gettext") for a in node.names):
                bad.append(f"{_where(path, node)}: import {', '.join(a.name for a in node.names)}")
        bad += [f"{_where(path, c)}: {c.func.id}()" for c in _calls(tree, ("_", "ngettext", "N_"))]
    assert not bad, "quantlib translates nothing (the app translates what it shows):\n" + "\n".join(bad)


# --- ui.i18n ----------------------------------------------------------------------------------------------------

PO_HEADER = """msgid ""
msgstr ""
"Language: zh_CN\\n"
"Plural-Forms: nplurals=1; plural=0;\\n"
"Content-Type: text/plain; charset=utf-8\\n"

"""


@pytest.fixture
def i18n(tmp_path, monkeypatch):
    """``ui.i18n`` reading a small catalog of this test's own (a main file and a part), English outside."""
    from ui import i18n

    folder = tmp_path / "zh_CN" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        PO_HEADER
        + 'msgid "Bit width"\nmsgstr "位宽"\n\n'
        + 'msgid "{n} layers at {bits} bits"\nmsgstr "{n} 层，{bits} 位"\n\n'
        + 'msgid "{n} layer"\nmsgid_plural "{n} layers"\nmsgstr[0] "{n} 层"\n\n'
        + '#, fuzzy\nmsgid "Scale"\nmsgstr "旧的译文"\n\n'
        + 'msgid "Zero point"\nmsgstr ""\n',
        encoding="utf-8",
    )
    (folder / "glossary.po").write_text(PO_HEADER + 'msgid "Zero point"\nmsgstr "零点"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.reload()
    yield i18n
    i18n.reload()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("zh", "zh"), ("zh-CN", "zh"), ("zh_CN", "zh"), ("zh_Hans", "zh"), ("zh-Hant-TW", "zh"), ("ZH", "zh"),
     (" zh ", "zh"), ("en", "en"), ("en-US", "en"), ("en_GB", "en"), ("fr", None), ("xx", None), ("", None),
     (None, None), (3, None), ("-", None), ("<script>", None)],
)
def test_normalize_language_codes(given, expected):
    from ui.i18n import normalize

    assert normalize(given) == expected


def test_outside_a_session_it_is_english_until_use_says_otherwise(i18n):
    assert i18n.current() == "en"
    assert i18n._("Bit width") == "Bit width"
    token = i18n.use("zh")
    try:
        assert i18n.current() == "zh"
        assert i18n._("Bit width") == "位宽"
        assert i18n._("Not in the catalog") == "Not in the catalog"
    finally:
        i18n._outside.reset(token)
    assert i18n.current() == "en" and i18n._("Bit width") == "Bit width"


def test_use_refuses_an_unknown_language(i18n):
    with pytest.raises(ValueError, match="unknown language"):
        i18n.use("xx")


def test_placeholders_are_filled_in_both_languages(i18n):
    assert i18n._("{n} layers at {bits} bits", n=3, bits=4) == "3 layers at 4 bits"
    assert i18n.ngettext("{n} layer", "{n} layers", 1, n=1) == "1 layer"
    assert i18n.ngettext("{n} layer", "{n} layers", 5, n=5) == "5 layers"
    token = i18n.use("zh")
    try:
        assert i18n._("{n} layers at {bits} bits", n=3, bits=4) == "3 层，4 位"
        assert i18n.ngettext("{n} layer", "{n} layers", 5, n=5) == "5 层"
        assert i18n._("{{literal}} {n}", n=1) == "{literal} 1", "doubled braces are literal once formatted"
        assert i18n._("{not filled}") == "{not filled}", "without values the message is not formatted"
    finally:
        i18n._outside.reset(token)


def test_fuzzy_translations_stay_english_and_parts_fill_gaps(i18n):
    token = i18n.use("zh")
    try:
        assert i18n._("Scale") == "Scale", "a fuzzy entry is not shown (as pybabel compile leaves it out)"
        assert i18n._("Zero point") == "零点", "an empty entry in messages.po falls through to a part catalog"
    finally:
        i18n._outside.reset(token)


def test_unknown_language_falls_back_to_english(i18n):
    assert i18n.translations("fr").gettext("Bit width") == "Bit width"
    assert i18n.translations("en").gettext("Bit width") == "Bit width"
    assert i18n.translations("zh").gettext("Bit width") == "位宽"


def test_the_real_catalog_loads_and_lists_every_part():
    from ui import i18n

    i18n.reload()
    paths = i18n.catalog_paths("zh")
    assert paths and paths[0].name == "messages.po"
    assert set(paths) == {p for p in po_files() if p.exists()} | {paths[0]}
    assert isinstance(i18n.translations("zh"), gettext.NullTranslations)


# --- what counts as leftover English (tests/i18n_support.py) -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("Drop the bit width to 4", ["Drop the bit width to"]),
        ("**Try this:** drop the bit width to **4**", ["Try this:** drop the bit width to"]),
        ("把位宽降到 **4**，再看误差", []),
        ("训练后量化（PTQ）和量化感知训练（QAT）", []),
        ("SQNR MSE PTQ QAT RTN", []),  # abbreviations are not English words
        ("Bit width", []),
        ("one scale per channel", ["one scale per channel"]),
        ("int8 fp8_e4m3 bits=4 nf4 and more", []),
        ("the layer `bert.encoder.layer.0.output.dense` is wide", []),
        ("set `the bits to four here` 层", []),
        ("公式 $q = round of the value$ 与 $$x hat equals the thing$$", []),
        (r"公式 \(q = round of the value\) 完", []),
        ("```\nfor every value in the tensor\n```", []),
        ("链接 https://example.com/this/is/a/long/path 见", []),
        ('<span style="color: red; font-weight: bold">红</span>', []),
        ("x s z q", []),  # single letters are variables
        ("a model's weights are here", ["a model's weights are here"]),
        ("First sentence. Second one here too", ["Second one here too"]),
        ("Weights of `fc1` · Linear 128×64", []),
    ],
)
def test_english_runs(text, runs):
    assert english_runs(text) == runs


def test_per_channel_twice_is_four_words():
    """Hyphens join words into a run: ``per-channel per-group`` is four English words (documented rule)."""
    assert english_runs("per-channel per-group") == ["per-channel per-group"]


def test_allowed_names_are_removed_before_counting():
    text = "模型 Tiny linear regression model：很小"
    assert english_runs(text) == ["Tiny linear regression model"]
    assert english_runs(text, allowed=["Tiny linear regression model"]) == []
    assert english_runs("Digits MLP with four layers") == [], "MLP is an abbreviation: it breaks the run"


def test_word_rules():
    assert is_english_word("model") and is_english_word("model's") and is_english_word("a")
    assert not is_english_word("int8") and not is_english_word("fp8_e4m3") and not is_english_word("SQNR")
    assert not is_english_word("x") and not is_english_word("位宽")
    assert "\x00" in strip_non_prose("see `code` here")


@pytest.mark.parametrize(
    ("text", "broken"),
    [
        ("**试一试：**把位宽设为 **4**", ["**试一试：**把"]),
        ("**试一试**：把位宽设为 **4**。", []),
        ("**试一试：** 把位宽设为 4", []),
        ("看**“对称”**吧", ["看**“对称”**吧"]),
        ("用 **int8 对称 逐张量** 测试", []),
        ("**Try this:** drop the bit width to **4**, then", []),
        ("`**not bold**` 和 $a**b$", []),
    ],
)
def test_broken_emphasis(text, broken):
    """Bold that CommonMark will not render (its asterisks show): the full-width punctuation trap."""
    assert broken_emphasis(text) == broken
