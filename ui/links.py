"""Links: reading, checking and writing the URL that *is* the state.

Every control is a Streamlit widget whose key is its query-parameter name and which is created with
``bind="query-params"`` (native in Streamlit 1.67): opening a link seeds the widgets, moving a widget rewrites
the address bar, and the parameters survive page switches (:mod:`ui.controls` draws them). Streamlit drops a
link value that its widget cannot take (``bits=99``, an unknown layer) and the widget falls back to its
default. What it does not do is *say so*, so this module snapshots the raw link on a session's first run and,
once the page has run, compares it with what the widgets resolved to (:func:`link_problems`): every value that
was not used verbatim is listed in a visible notice. A page's own parameter (``x`` of the walkthrough) is judged
on the first run that draws its widget, whichever page the link opened; a key given twice counts with its last
value, and the notice says so. Everything echoed from the link goes through :mod:`ui.text` (code spans,
shortened): a link is untrusted text.

The share link (:func:`render_share`) spells out every setting, so the receiver sees the same view.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode, urlparse

import streamlit as st

from quantlib.model import LayerInfo
from quantlib.spec import (
    CALIBRATIONS,
    FORMATS,
    MAX_BITS,
    MIN_BITS,
    ROUNDINGS,
)
from ui import i18n, sources
from ui.controls import (
    DEFAULT_BITS,
    DEFAULT_GROUP_SIZE,
    DEFAULT_PERCENTILE,
    PAGE_PARAMS,
    PARAMS,
    Controls,
    default_group_size,
    format_number,
    group_row_length,
    group_sizes,
    layer_token,
    rendered_page_keys,
)
from ui.i18n import _
from ui.text import code_span, shorten

#: Streamlit's own parameters, never ours to judge.
_STREAMLIT_PARAMS = {"embed", "embed_options"}
_CHECKED_KEY = "_qe_link_checked"
#: Page parameters of the first link whose widget has not been drawn yet: judged when their page first runs.
_PENDING_KEY = "_qe_link_pending"
#: Keys the first link gave more than once, with all their values (the last one is used).
_REPEATED_KEY = "_qe_link_repeated"
#: How much of a link key / value the notice echoes.
ECHO_KEY_CHARS, ECHO_VALUE_CHARS = 40, 80
#: The notice lists at most this many problems (a link can carry thousands of keys), then says how many more.
NOTICE_MAX_LINES = 12
_NOTICE_KEY = "_qe_link_notice"


def same_value(raw: str, value: object) -> bool:
    """Whether a raw link string denotes exactly ``value`` (the widget used it verbatim)."""
    if isinstance(value, bool):
        return raw.strip().lower() == str(value).lower()
    if isinstance(value, int):
        # Python refuses int() of more than 4,300 digits (ValueError): no widget value is that long anyway.
        return re.fullmatch(r"\s*[+-]?\d{1,100}\s*", raw) is not None and int(raw) == value
    if isinstance(value, float):
        try:
            return math.isclose(float(raw), value, rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return raw == str(value)


def allowed_text(param: str, controls: Controls, info: LayerInfo | None, model_names: Sequence[str]) -> str:
    """Plain words for what ``param`` accepts in the current context (the reason in the link notice)."""
    fixed = controls.fixed_bits is not None
    texts = {
        "lang": _("one of {values}", values=", ".join(i18n.LANGUAGES)),
        "model": _("one of {values} (`{file}` only in the browser tab that loaded a file)",
                   values=", ".join(model_names), file=sources.UPLOAD_MODEL),
        "layer": _("not a layer of {model}", model=controls.model),
        "format": _("one of {values}", values=", ".join(FORMATS)),
        "bits": _("a whole number from {lo} to {hi}", lo=MIN_BITS, hi=MAX_BITS),
        "scheme": _("{format} is a symmetric format", format=controls.format) if fixed
        else _("symmetric or asymmetric"),
        "granularity": _("tensor, channel or group"),
        "group_size": (
            _("must divide {n}, the row length of this layer", n=group_row_length(info)) if info
            else _("a divisor of the row")
        ),
        "calibration": _("one of {values}", values=", ".join(CALIBRATIONS)),
        "percentile": _("a number above 50 and at most 100"),
        "rounding": _("{format} always rounds to nearest", format=controls.format) if fixed
        else _("one of {values}", values=", ".join(ROUNDINGS)),
        "target": _("weights, activations or both"),
    }
    if param in texts:
        return texts[param]
    return _(PAGE_PARAMS[param]) if param in PAGE_PARAMS else _("not a setting of this app")


def echo(key: str, value: str) -> str:
    """``key=value`` from a link as the notice quotes it: a code span, each part cut to a readable length.

    >>> echo("x", "`[a](b)`"), echo("bits", "9" * 100)[-24:]
    ('`` x=`[a](b)` ``', '99999… (100 characters)`')
    """
    return code_span(f"{shorten(key, ECHO_KEY_CHARS)}={shorten(value, ECHO_VALUE_CHARS)}")


def _given(key: str, values: Sequence[str]) -> str:
    """``bits`` given twice (``4, 5``): the start of the notice line of a repeated key."""
    listed = code_span(shorten(", ".join(values), ECHO_VALUE_CHARS))
    key_span = code_span(shorten(key, ECHO_KEY_CHARS))
    if len(values) == 2:
        return _("{key} given twice ({values})", key=key_span, values=listed)
    return _("{key} given {n} times ({values})", key=key_span, n=len(values), values=listed)


def _shown(value: object) -> str:
    """A resolved widget value as the notice names it (numbers as a link would spell them)."""
    return format_number(value) if isinstance(value, (int, float)) else str(value)


def link_problems(
    raw: Mapping[str, str],
    resolved: Mapping[str, object],
    controls: Controls,
    info: LayerInfo | None,
    model_names: Sequence[str],
    repeated: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """One line per link value that was not used as given: ``raw`` from the URL, ``resolved`` from the widgets.

    ``repeated`` lists the keys the link gave more than once (``raw`` holds their last value, the one used):
    each gets a line even when its last value was fine, since the others were dropped. A key the page never
    rendered (another page's local control) is left alone: it was not judged here. Every piece of the link is
    quoted through :func:`echo` / :func:`ui.text.code_span`, so no key or value can add markup to the notice.
    """
    repeated = repeated or {}
    lines = []
    for key, value in raw.items():
        if key in _STREAMLIT_PARAMS:
            continue
        given = _given(key, repeated[key]) if key in repeated else None
        if key not in PARAMS and key not in PAGE_PARAMS:
            what = given or echo(key, value)
            lines.append(_("{what}: not a setting of this app, ignored", what=what))
            continue
        if key not in resolved:
            continue
        used = resolved[key]
        shown = layer_token(str(used)) if key == "layer" else _shown(used)
        if key == "layer":
            ok = value == shown
        elif key == i18n.KEY:
            ok = i18n.normalize(value) == used  # zh-CN, zh_Hans and ZH are ways of saying zh
        else:
            # A page control that shows translated labels keeps the shown label in the URL: a link made in
            # either language names the same value.
            ok = same_value(value, used) or (
                isinstance(used, str) and value in {i18n.translations(lang).gettext(used) for lang in i18n.LANGUAGES}
            )
        if ok:
            if given:
                lines.append(_("{given}: using the last, {value}", given=given, value=code_span(shown)))
            continue
        reason = allowed_text(key, controls, info, model_names)
        start = _("{given}: the last, {value}", given=given, value=echo(key, value)) if given else echo(key, value)
        lines.append(_("{start} ({reason}): using {value}", start=start, reason=reason,
                       value=code_span(shorten(shown, ECHO_VALUE_CHARS))))
    return lines


def share_url(base: str | None, params: Mapping[str, str]) -> str:
    """The link of this view: the page's URL (from the browser) plus every setting as a query parameter."""
    query = urlencode(dict(params))
    if not base:
        return f"?{query}"
    base = base.rstrip("?")
    if not urlparse(base).path:
        base += "/"  # the default page: http://host:8501/?... rather than http://host:8501?...
    return f"{base}?{query}"


def link_params(
    controls: Controls, extras: Mapping[str, str] | None = None, default_group: int = DEFAULT_GROUP_SIZE
) -> dict[str, str]:
    """What a shared link spells out: every shared setting, plus the page's own controls.

    A setting that does not apply now (the group size under per-tensor, the percentile under min-max, the bit
    slider under fp8 / nf4) is left out only while it holds its default: its widget still keeps a value (the
    walkthrough even uses the bit slider under nf4), and the link must bring every widget back as it was.
    ``default_group`` is the group size the sidebar offers first for this layer.
    """
    params = controls.as_params()
    if controls.granularity != "group" and controls.group_size == default_group:
        params.pop("group_size")
    if controls.calibration != "percentile" and controls.percentile == DEFAULT_PERCENTILE:
        params.pop("percentile")
    if controls.fixed_bits is not None and controls.bits == DEFAULT_BITS:
        params.pop("bits")
    ordered = {k: params[k] for k in PARAMS if k in params}
    ordered.update(extras or {})
    return ordered


def snapshot_link() -> dict[str, str] | None:
    """The raw query parameters on a session's first run; None on later runs (the link was judged once).

    A key given more than once (``bits=4&bits=5``) would make its widget drop every value: the first run
    keeps only the last value in the URL (what ``st.query_params[key]`` reads) and starts again before any
    widget exists, so the widgets seed from it; the values are remembered for the notice.
    """
    if st.session_state.get(_CHECKED_KEY):
        return None
    if _REPEATED_KEY not in st.session_state:
        repeated = {k: st.query_params.get_all(k) for k in st.query_params}
        repeated = {k: v for k, v in repeated.items() if len(v) > 1}
        st.session_state[_REPEATED_KEY] = repeated
        if repeated:
            for key, values in repeated.items():
                st.query_params[key] = values[-1]
            st.rerun()
    st.session_state[_CHECKED_KEY] = True
    return {key: st.query_params[key] for key in st.query_params}


def check_link(raw: Mapping[str, str] | None, controls: Controls) -> None:
    """Judge the link against the resolved widgets (end of every full run) and add to this session's notice.

    First run (``raw`` given): the shared settings and the page controls this page drew; the other pages'
    parameters wait in the session. Later runs: each waiting parameter once its page has drawn its widget, so
    ``/?x=abc`` followed by a visit to the walkthrough still names ``x=abc``.
    """
    rendered = rendered_page_keys()
    if raw is not None:
        waiting = {k: v for k, v in raw.items() if k in PAGE_PARAMS and k not in rendered}
        judged = {k: v for k, v in raw.items() if k not in waiting}
    else:
        waiting = st.session_state.get(_PENDING_KEY) or {}
        judged = {k: v for k, v in waiting.items() if k in rendered}
        if not judged:
            return
        waiting = {k: v for k, v in waiting.items() if k not in judged}
    st.session_state[_PENDING_KEY] = waiting
    infos = sources.layers(controls.model)
    info = next((i for i in infos if i.name == controls.layer), None)
    resolved = {k: st.session_state[k] for k in (*PARAMS, *rendered) if k in st.session_state}
    if "layer" in resolved:
        resolved["layer"] = controls.layer
    repeated = st.session_state.get(_REPEATED_KEY) or {}
    problems = link_problems(judged, resolved, controls, info, sources.model_names(), repeated)
    if problems:
        st.session_state[_NOTICE_KEY] = [*st.session_state.get(_NOTICE_KEY, []), *problems]


def show_link_notice(container) -> None:  # noqa: ANN001 - a Streamlit container
    """The visible notice listing link values that were ignored, until the user dismisses it."""
    problems = st.session_state.get(_NOTICE_KEY)
    if not problems:
        return
    shown = problems[:NOTICE_MAX_LINES]
    if len(problems) > len(shown):
        shown = [*shown, _("… and {n} more", n=f"{len(problems) - len(shown):,}")]
    with container:
        st.warning(
            _("Some settings in this link could not be used as given:") + "\n\n" + "\n".join(f"- {p}" for p in shown),
            icon="⚠️",
        )
        if st.button(_("Dismiss"), key="_qe_dismiss_notice"):
            st.session_state.pop(_NOTICE_KEY, None)
            st.rerun()


def page_extras() -> dict[str, str]:
    """The page-local bound controls rendered on this run, spelled for a link (an off toggle is left out)."""
    extras = {}
    for key in rendered_page_keys():
        value = st.session_state[key]
        if isinstance(value, bool):
            if value:
                extras[key] = "true"
        elif value is not None and value != "":
            extras[key] = format_number(value) if isinstance(value, (int, float)) else str(value)
    return extras


def render_share(container, controls: Controls) -> None:  # noqa: ANN001 - a Streamlit container
    """The "share this view" affordance: the full link of this page with every setting spelled out."""
    infos = sources.layers(controls.model)
    info = next((i for i in infos if i.name == controls.layer), None)
    default_group = default_group_size(group_sizes(info)) if info is not None else DEFAULT_GROUP_SIZE
    url = share_url(st.context.url, link_params(controls, page_extras(), default_group))
    with container.expander(_("🔗 Share this view")):
        st.code(url, language=None, wrap_lines=True)
        st.caption(
            _("Send this link: it opens this page with these settings. The address bar always holds the same "
              "state (settings left at their defaults are omitted there).")
        )
