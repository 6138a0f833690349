"""English and 简体中文: English source strings in the code, translations in gettext catalogs.

The catalog is ``locales/zh_CN/LC_MESSAGES/messages.po`` (Babel: ``pybabel extract`` / ``update``; see the
README's "Translations"). It is compiled in memory when first needed, so no ``.mo`` binary lives in the repo and
a read-only container works.

Which language a call answers in is the *running session's*: the sidebar's ``lang`` switch (bound to the ``lang``
URL parameter like every control), else the link's ``lang``, else the browser's language, else English. Outside
a Streamlit session (job workers, notebooks, tests) it is English unless :func:`use` says otherwise.

>>> _("Bit width")                                   # doctest: +SKIP
'位宽'
>>> _("{n} layers quantized", n=3)                   # doctest: +SKIP
'已量化 3 层'

Rules the code follows:

- ``_("…")`` around every text a participant reads, with named placeholders (``_("{n} bits", n=b)``), never an
  f-string inside ``_`` (the catalog would see a different string for every value).
- ``N_("…")`` marks a module-level constant for extraction; translate it where it is shown: ``_(CONSTANT)``.
- ``ngettext("{n} layer", "{n} layers", n, n=n)`` where a count decides the form (Chinese has one form).
- A cached function (``st.cache_data``, a shared figure, a job) must not bake the session's language into a
  result other sessions get: translate at display time, or put :func:`current` into its key.
"""

from __future__ import annotations

import contextvars
import gettext
import io
import threading
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

#: Language codes the app offers (the ``lang`` URL parameter), with the name each shows itself by.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
DEFAULT = "en"
#: The gettext / Babel locale of each language's catalog.
LOCALES: dict[str, str] = {"en": "en", "zh": "zh_CN"}
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
#: The session-state key (and URL parameter) of the language switch.
KEY = "lang"

_lock = threading.Lock()
_loaded: dict[str, gettext.NullTranslations] = {}
#: The language outside a Streamlit session (notebooks, tests, workers), settable with :func:`use`.
_outside: contextvars.ContextVar[str] = contextvars.ContextVar("qe_lang", default=DEFAULT)


def catalog_paths(lang: str) -> list[Path]:
    """The ``.po`` files that make up ``lang``'s catalog (``messages.po`` first)."""
    folder = LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES"
    main = folder / f"{DOMAIN}.po"
    return [main, *sorted(p for p in folder.glob("*.po") if p != main)] if folder.is_dir() else []


def _compile(lang: str) -> gettext.NullTranslations:
    """``lang``'s catalog, compiled in memory (fuzzy entries left out, as ``pybabel compile`` does)."""
    result: gettext.NullTranslations | None = None
    for path in catalog_paths(lang):
        if not path.exists():
            continue
        with path.open("rb") as f:
            catalog = read_po(f, locale=LOCALES[lang], domain=DOMAIN)
        buf = io.BytesIO()
        write_mo(buf, catalog, use_fuzzy=False)
        buf.seek(0)
        part = Translations(fp=buf, domain=DOMAIN)
        if result is None:
            result = part
        else:
            result.add_fallback(part)
    return result or gettext.NullTranslations()


def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: the identity), built once per process."""
    if lang == DEFAULT or lang not in LANGUAGES:
        return gettext.NullTranslations()
    found = _loaded.get(lang)
    if found is None:
        with _lock:
            found = _loaded.get(lang)
            if found is None:
                found = _loaded[lang] = _compile(lang)
    return found


def reload() -> None:
    """Forget compiled catalogs (after editing a ``.po`` file in a running process)."""
    with _lock:
        _loaded.clear()


def normalize(value: object) -> str | None:
    """A language code from a link or a browser locale (``zh``, ``zh-CN``, ``zh_Hans``, ``en-US``), or None."""
    if not isinstance(value, str) or not value:
        return None
    head = value.strip().replace("_", "-").split("-")[0].lower()
    return head if head in LANGUAGES else None


def browser_language() -> str | None:
    """The browser's language when Streamlit exposes it (``st.context.locale``) and the app offers it."""
    try:
        import streamlit as st

        return normalize(st.context.locale)
    except Exception:  # noqa: BLE001 - outside a session, or an older Streamlit: no preference
        return None


#: The attribute of a run's ``ScriptRunContext`` that holds the language :func:`begin_run` found for it.
_RUN_ATTR = "_qe_language"


def _run_context():  # noqa: ANN202 - Streamlit's ScriptRunContext, or None
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # pragma: no cover - Streamlit is a requirement of the app, not of this rule
        return None
    return get_script_run_ctx(suppress_warning=True)


def _session_language() -> str:
    import streamlit as st

    lang = normalize(st.session_state.get(KEY))
    if lang is None:
        lang = normalize(st.query_params.get(KEY))
    return lang or browser_language() or DEFAULT


def begin_run() -> str:
    """Find the session's language once, at the start of a full run (``app.py``), for every ``_()`` of the run.

    Reading session state and query parameters costs tens of microseconds under Streamlit's locks; a page calls
    ``_()`` about a hundred times a run. The language cannot change during a run (a switch makes a new run), and
    a fragment's rerun keeps the language of the full run before it.
    """
    ctx = _run_context()
    if ctx is None:
        return _outside.get()
    lang = _session_language()
    setattr(ctx, _RUN_ATTR, lang)
    return lang


def current() -> str:
    """The language of the running session: its switch, else its link, else its browser; else English."""
    ctx = _run_context()
    if ctx is None:
        return _outside.get()
    return getattr(ctx, _RUN_ATTR, None) or _session_language()


def use(lang: str) -> contextvars.Token:
    """Set the language outside a Streamlit session (a notebook, a test); returns the token to reset it."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(LANGUAGES)}")
    return _outside.set(lang)


def _format(message: str, kwargs: dict[str, object]) -> str:
    return message.format(**kwargs) if kwargs else message


def _(message: str, /, **kwargs: object) -> str:
    """``message`` in the session's language, its ``{placeholders}`` filled from ``kwargs``.

    >>> _("{bits} bits", bits=4)     # in an English session
    '4 bits'
    """
    return _format(translations(current()).gettext(message), kwargs)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark ``message`` for the catalog without translating it now (module-level constants)."""
    return message


def ngettext(singular: str, plural: str, n: int, /, **kwargs: object) -> str:
    """The form of a counted message for ``n``, placeholders filled from ``kwargs``.

    >>> ngettext("{n} layer", "{n} layers", 3, n=3)
    '3 layers'
    """
    return _format(translations(current()).ngettext(singular, plural, n), kwargs)


def locale() -> Locale:
    """Babel's locale of the session's language (list formatting)."""
    try:
        return Locale.parse(LOCALES[current()])
    except (UnknownLocaleError, ValueError):  # pragma: no cover - both locales ship with Babel
        return Locale.parse("en")


def format_list(items: list[str]) -> str:
    """``a, b and c`` / ``a、b和c``: a list in the session's language."""
    from babel.lists import format_list as babel_format_list

    return babel_format_list(items, locale=locale()) if items else ""
