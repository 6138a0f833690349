"""Page furniture shared by the pages: the intro block, stats panels, and turning errors into plain words.

Callers pass texts already translated (``_("…")``); the fixed words in here are translated here. Errors from
``quantlib`` and the job runner are English by design: :func:`error_reason` words the known kinds in the
session's language, and :func:`friendly_errors` shows the English original beside it, collapsed, in a code block.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from quantlib.budget import human_bytes  # noqa: F401 - the pages' sizes are spelled as the budget's messages
from ui import i18n, jobs, sources
from ui.i18n import N_, _

_LOG = logging.getLogger("quantization_explorer")


def page_intro(title: str, icon: str, text: str, formula: str, try_this: str) -> None:
    """Title, two or three plain sentences, the formula, and the one thing to try (texts already translated)."""
    st.title(f"{icon} {title}")
    st.markdown(text)
    # Side by side on a wide screen (the charts start higher), stacked on a phone.
    left, right = st.columns([1, 1], vertical_alignment="center")
    with left:
        st.latex(formula)
    with right:
        st.info(_("**Try this:** {text}", text=try_this), icon="👉")


def activations_missing_note(model: str, layer: str, kind: str, sample_extra: str = "") -> bool:
    """Say why this layer has no float activations and return True, when ``kind`` asks for them.

    ``sample_extra`` is a sentence added for a sample model's layer (a file's reason already says what to see).
    """
    if kind != "activations":
        return False
    source = sources.get(model)
    reason = source.no_activations_reason(layer)
    if reason is None:
        return False
    st.info(sentences(reason, sample_extra) if sample_extra and source.runs_model else reason, icon="ℹ️")
    return True


def needs_a_running_model(title: str, icon: str, what: str) -> None:
    """The page, for an uploaded file: what it would show, and why a file of weights cannot show it.

    ``what`` completes "This page …" (translated by the caller: "compares the model's outputs before and after
    quantization")."""
    st.title(f"{icon} {title}")
    st.info(
        _(
            "This page {what}, so it needs a model that runs: an uploaded file holds weights, but no code to run "
            "them and no inputs to run them on. Pick a sample model in the sidebar to use this page; the Tensor "
            "explorer, Error curves and Size pages work on your file.",
            what=what,
        ),
        icon="ℹ️",
    )


@contextmanager
def friendly_errors(what: str) -> Iterator[None]:
    """Run a block; if it fails, show what could not be done in plain words instead of a traceback.

    ``what`` completes "Could not …" (translated by the caller: ``_("quantize the weights of this layer")``).
    ``quantlib`` raises ``ValueError`` with a message that names the setting (e.g. a group size that does not
    divide the layer); in English that message is shown as is, in another language the known kinds are worded
    by :func:`error_reason` and the English original follows, collapsed. Anything else is logged on the server
    with its traceback and shown as a short generic message. Streamlit's own control-flow exceptions (rerun,
    stop) derive from ``BaseException`` and pass through untouched.
    """
    try:
        yield
    except (jobs.JobFailed, jobs.JobStopped, jobs.ServerBusy) as err:
        # Long work that could not finish for a reason outside its settings: a full queue, a stop, a worker
        # over its time or memory. The runner words these for the participant (in English).
        show_error(err, what, icon="⏳", box=st.warning)
    except ValueError as err:
        show_error(err, what, icon="🚫", with_settings=True)
    except Exception as err:  # noqa: BLE001 - the page must never show a traceback
        _LOG.exception("failed to %s", what)
        if _english():
            st.error(
                f"Could not {what}: {type(err).__name__}: {err}. Try another setting; the server log has details.",
                icon="🚫",
            )
        else:
            st.error(_("Could not {what}. Try another setting; the server log has details.", what=what), icon="🚫")
            original_message(f"{type(err).__name__}: {err}")


def _english() -> bool:
    return i18n.current() == i18n.DEFAULT


def show_error(
    err: BaseException | str,
    what: str | None = None,
    icon: str = "🚫",
    box: Callable[..., Any] | None = None,
    with_settings: bool = False,
) -> None:
    """``Could not {what}[ with these settings]: {reason}`` in a box (``st.error`` unless ``box`` says), the
    reason from :func:`error_reason`; outside English the original follows in a collapsed code block.
    Without ``what``, the reason alone (a capitalised sentence in English: the message as it is)."""
    box = box or st.error
    reason = error_reason(err)
    if what is None:
        text = reason if reason is not None else _("This did not work with these settings.")
    elif reason is None:
        text = (_("Could not {what} with these settings.", what=what) if with_settings
                else _("Could not {what}.", what=what))
    elif with_settings:
        text = _("Could not {what} with these settings: {reason}", what=what, reason=reason)
    else:
        text = _("Could not {what}: {reason}", what=what, reason=reason)
    box(text, icon=icon)
    if not _english() and not _worded(err):
        original_message(str(err))


def _worded(err: BaseException | str) -> bool:
    """An error already in the session's language: ``ui.jobs``' errors (a msgid and values, worded when shown)
    and the app's own messages raised translated (any Chinese character in it)."""
    if isinstance(getattr(err, "msgid", None), str) and isinstance(getattr(err, "values", None), dict):
        return True
    return _CJK.search(str(err)) is not None


_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def original_message(detail: str) -> None:
    """The English original of a message shown translated: collapsed, in a code block (nothing parsed in it)."""
    with st.expander(_("Original message (English)")):
        st.code(detail, language=None, wrap_lines=True)


# --- quantlib's and the job runner's English messages, worded for the session ---------------------------------

#: Messages of ``quantlib`` the app knows, as (pattern, msgid); the pattern's named groups fill
#: the msgid's placeholders. First match wins. Used only outside English (in English the original is shown).
KNOWN_ERRORS: tuple[tuple[str, str], ...] = (
    (r"group size (?P<g>\d+) does not divide the last dimension \((?P<n>\d+)\)",
     N_("group size {g} does not divide this tensor's rows of {n} values: pick a group size that divides {n}, "
        "or per-channel.")),
    (r"group size (?P<g>\d+) does not divide its rows of (?P<n>\d+) values",
     N_("group size {g} does not divide this tensor's rows of {n} values: pick a group size that divides {n}, "
        "or per-channel.")),
    (r"group size (?P<g>\d+) does not divide",
     N_("group size {g} does not divide the rows of this layer: pick a group size that divides them, or "
        "per-channel.")),
    (r"looks up rows by integer id",
     N_("this layer looks up rows by integer id: its input has no float activations to quantize.")),
    (r"outputs contain NaN or infinite values",
     N_("the quantized model's outputs contain NaN or infinite values: it overflowed.")),
    (r"^exporting (?P<n>[\d,]+) weights would take about (?P<t>\S+ \S+) and (?P<b>\S+ \S+), more than",
     N_("exporting {n} weights would take about {t} and {b}, more than one request may use on this shared "
        "server.")),
    (r"budget cannot be met even with every layer at the smallest width",
     N_("the budget cannot be met even with every layer at the smallest width.")),
    (r"^a budget of (?P<b>[\d,]+) bytes cannot be met: with every layer at (?P<lo>\d+) bits the model takes "
     r"(?P<s>[\d,]+) bytes \((?P<f>[\d,]+) of them",
     N_("a budget of {b} bytes cannot be met: with every layer at {lo} bits the model takes {s} bytes ({f} of "
        "them are parameters that stay float).")),
    (r"^an average of (?P<a>\S+) bits per weight cannot be met: the smallest candidate width is (?P<lo>\d+)",
     N_("an average of {a} bits per weight cannot be met: the smallest candidate width is {lo}.")),
)

_BUDGET = re.compile(
    r"^(?P<what>.+) is too big for this shared server: it would take (?P<needs>.+?), and one request here may use "
    r"at most about (?P<secs>\S+ \S+) and (?P<bytes>\S+ \S+)\. (?P<fix>.+)$",
    re.DOTALL,
)
_DESCRIBE = re.compile(
    r"^(?P<gran>per-tensor|per-channel|per-group) (?P<cal>\w+) calibration of (?P<n>[\d,]+) values"
    r"(?: in (?P<r>[\d,]+) (?P<unit>groups|channels) of (?P<k>[\d,]+))?$"
)
_DOING = (
    (re.compile(r"^the error curve over (?P<n>\d+) bit widths$"), N_("the error curve over {n} bit widths")),
    (re.compile(r"^the error-vs-clipping curve over (?P<n>\d+) ratios$"),
     N_("the error-vs-clipping curve over {n} clip ratios")),
)
_MODEL_WHAT = (
    (re.compile(r"^(?P<gran>per-tensor|per-channel|per-group) (?P<cal>\w+) calibration of (?P<n>\d+) layers? "
                r"\((?P<v>[\d,]+) weights\)$"),
     N_("{granularity} {calibration} calibration of {n} layers ({v} weights)")),
    (re.compile(r"^(?P<cal>\w+) calibration of the activations of (?P<n>\d+) layers?$"),
     N_("{calibration} calibration of the activations of {n} layers")),
    (re.compile(r"^exporting (?P<n>\d+) layers? \((?P<v>[\d,]+) weights\) at (?P<label>.+)$"),
     N_("exporting {n} layers ({v} weights) at {label}")),
)
_GRANULARITY = {"per-tensor": N_("per-tensor"), "per-channel": N_("per-channel"), "per-group": N_("per-group")}
_ADVICE = {
    "per-channel": N_("per-channel"),
    "per-tensor": N_("per-tensor"),
    "a larger group size": N_("a larger group size"),
    "minmax calibration": N_("minmax calibration"),
}
_TOO_BIG = "This tensor is too big to analyse on this shared server whatever the settings."
_UNITS = {"s": N_("{n} s"), "min": N_("{n} min"), "h": N_("{n} h")}


def _duration(text: str) -> str:
    """``4.6 s`` / ``40 min`` / ``3.2 h`` (``quantlib.budget.human_seconds``) in the session's language."""
    number, _sep, unit = text.partition(" ")
    return _(_UNITS[unit], n=number) if unit in _UNITS else text


def _budget_what(what: str) -> str | None:
    """The computation a ``BudgetExceeded`` names (``budget.describe`` and the app's variants), translated.

    A calibration method keeps its option name (``minmax``, ``mse``, ``entropy``, ``percentile``), as in the
    sidebar's menu."""
    doing = None
    inner = re.match(r"^(?P<doing>the .+?) \((?P<desc>.+)\)$", what)
    if inner:
        for pattern, msgid in _DOING:
            m = pattern.match(inner["doing"])
            if m:
                doing, what = _(msgid, **m.groupdict()), inner["desc"]
                break
        else:
            return None
    m = _DESCRIBE.match(what)
    if m:
        gran = _GRANULARITY[m["gran"]]
        values = {"granularity": _(gran), "calibration": m["cal"], "n": m["n"]}
        if m["unit"] == "groups":
            desc = _("{granularity} {calibration} calibration of {n} values in {r} groups of {k}",
                     r=m["r"], k=m["k"], **values)
        elif m["unit"] == "channels":
            desc = _("{granularity} {calibration} calibration of {n} values in {r} channels of {k}",
                     r=m["r"], k=m["k"], **values)
        else:
            desc = _("{granularity} {calibration} calibration of {n} values", **values)
    else:
        for pattern, msgid in _MODEL_WHAT:
            m = pattern.match(what)
            if m:
                values = m.groupdict()
                gran, cal = values.pop("gran", None), values.pop("cal", None)
                if gran is not None:
                    values["granularity"] = _(_GRANULARITY[gran])
                if cal is not None:
                    values["calibration"] = cal
                desc = _(msgid, **values)
                break
        else:
            return None
    return _("{doing} ({what})", doing=doing, what=desc) if doing else desc


def _budget_fix(fix: str) -> str | None:
    if fix == _TOO_BIG:
        return _("This tensor is too big to analyse on this shared server whatever the settings.")
    m = re.match(r"^Use (?P<options>.+)\.$", fix)
    if not m:
        return None
    options = [o.strip() for o in re.split(r", or |, | or ", m["options"]) if o.strip()]
    if not all(o in _ADVICE for o in options):
        return None
    from babel.lists import format_list

    words = format_list([_(_ADVICE[o]) for o in options], style="or", locale=i18n.locale())
    return _("Use {options}.", options=words)


def _budget_reason(message: str) -> str | None:
    """A ``quantlib.budget.BudgetExceeded`` sentence in the session's language (None if it has another shape)."""
    m = _BUDGET.match(message)
    if not m:
        return None
    needs = []
    for need in m["needs"].split(" and "):
        about = need.startswith("about ")
        amount = need.removeprefix("about ")
        if amount.endswith(" of memory"):
            size = amount.removesuffix(" of memory")
            needs.append(_("about {size} of memory", size=size) if about else _("{size} of memory", size=size))
        elif amount.endswith(" of CPU"):
            needs.append(_("about {time} of CPU", time=_duration(amount.removesuffix(" of CPU"))))
        else:
            return None
    fix = _budget_fix(m["fix"])
    if fix is None:
        return None
    what = _budget_what(m["what"])
    limit = {"needs": i18n.format_list(needs), "seconds": _duration(m["secs"]), "bytes": m["bytes"], "fix": fix}
    if what is None:
        return _("This computation is too big for this shared server: it would take {needs}, and one request here "
                 "may use at most about {seconds} and {bytes}. {fix}", **limit)
    return _("{what} is too big for this shared server: it would take {needs}, and one request here may use at "
             "most about {seconds} and {bytes}. {fix}", what=what, **limit)


def error_reason(err: BaseException | str) -> str | None:
    """What went wrong, for the participant: in English the message itself; in another language the known
    kinds (budget refusals, a group size that does not fit) worded in it, else None (then show a generic
    sentence and :func:`original_message`). The job runner's errors word themselves (``str(err)``)."""
    message = str(err)
    if _english() or _worded(err):
        return message
    budget_text = _budget_reason(message)
    if budget_text is not None:
        return budget_text
    for pattern, msgid in KNOWN_ERRORS:
        m = re.search(pattern, message)
        if m:
            return _(msgid, **{k: _duration(v) if k == "t" else v for k, v in m.groupdict().items()})
    return None


#: Figures kept for everybody (a few kB each): a class moving one slider back and forth revisits a few dozen.
SHARED_FIGURES = 512


@st.cache_resource(max_entries=SHARED_FIGURES, show_spinner=False)
def _shared_figure(key: str, _build: Callable[[], go.Figure]) -> go.Figure:
    """One figure per key for the whole server (``_build`` is not part of the cache key: ``key`` says it all)."""
    return _build()


def chart(figure_key: str | None, build: Callable[[], go.Figure], **plotly_chart: Any) -> Any:
    """``st.plotly_chart(build(), **plotly_chart)``, with the figure built once per ``figure_key`` for everyone.

    Building a Plotly figure validates every property of every trace: 10-30 ms per chart, under the GIL, on
    every rerun of every session - most of what a slider move cost the server. The data behind a chart is
    already cached by strings (model, layer, spec JSON); the figure drawn from it is cached here by the same
    strings plus whatever else the builder reads (log scale, the current layer), and shared read-only:
    ``st.plotly_chart`` only reads it (``to_dict`` copies). ``figure_key=None`` builds without caching - for a
    session's own uploaded file, which must never reach a cache shared between sessions. The key is taken per
    language (``ui.i18n.current()``): builders translate titles, axes and legends.
    """
    fig = build() if figure_key is None else _shared_figure(f"{i18n.current()}|{figure_key}", build)
    return st.plotly_chart(fig, **plotly_chart)


def model_title(title: str) -> str:
    """A sample model's title in the session's language when the catalog has it (``sample_models`` marks the
    titles it wants translated with ``N_``), else as it is: a name."""
    return _(title) if title else title


def sentences(*parts: str) -> str:
    """Sentences (already translated) as one text: spaced in English, run together in Chinese. Empty parts are
    left out."""
    sep = "" if i18n.current() == "zh" else " "
    return sep.join(p for p in parts if p)


def semicolons(items: Sequence[str]) -> str:
    """``a; b; c`` in English, ``a；b；c`` in Chinese (items already translated)."""
    return ("；" if i18n.current() == "zh" else "; ").join(items)


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a stats panel: ``0.01234``, ``1.23e-07``, ``∞`` or ``–``."""
    if value is None:
        return "–"
    if value != value:  # NaN
        return _("n/a")
    if value in (float("inf"), float("-inf")):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def stats_panel(view: dict, per_block: bool) -> None:
    """The headline numbers of one quantized tensor (from ``quantlib.summarize``), in two rows of metrics."""
    n = view["num_blocks"]
    c = st.columns(4)
    c[0].metric(
        _("Scale s (median)") if per_block else _("Scale s"),
        fmt(view["scale"][1]),
        help=_("Step between neighbouring grid levels (for fp8 / nf4: the factor applied to the format's values)."),
    )
    c[1].metric(
        _("Zero point z (median)") if per_block else _("Zero point z"),
        fmt(view["zero_point"][1], 6),
        help=_("The integer that represents 0.0; always 0 for the symmetric scheme."),
    )
    c[2].metric(
        _("Levels used"),
        f"{view['levels_used']:.0f} / {view['levels_available']:,}",
        help=_("Distinct grid values that occur (averaged over blocks) out of the grid's levels."),
    )
    c[3].metric(
        _("Clipped"),
        f"{100 * view['fraction_clipped']:.3g} %",
        help=_("Share of values outside the range, set to the nearest end of the grid."),
    )
    c = st.columns(4)
    c[0].metric("SQNR", f"{fmt(view['sqnr_db'], 3)} dB",
                help=_("Signal-to-quantization-noise ratio, 10·log10(Σx² / Σ(x − x̂)²): about +6 dB per extra bit."))
    c[1].metric("MSE", fmt(view["mse"], 3), help=_("Mean squared error: the mean of (x − x̂)²."))
    c[2].metric(_("Max error"), fmt(view["max_abs_error"], 3), help=_("Largest |x − x̂|."))
    if per_block:
        c[3].metric(_("Scales"), f"{n:,}", help=_("One scale (and zero point) per block."))
        lo, _median, hi = view["scale"]
        zlo, _zmedian, zhi = view["zero_point"]
        if zlo != zhi:
            st.caption(_("Across the {n} blocks: scales {lo} – {hi}, zero points {zlo} – {zhi}.", n=f"{n:,}",
                         lo=fmt(lo, 3), hi=fmt(hi, 3), zlo=fmt(zlo, 6), zhi=fmt(zhi, 6)))
        else:
            st.caption(_("Across the {n} blocks: scales {lo} – {hi}.", n=f"{n:,}", lo=fmt(lo, 3), hi=fmt(hi, 3)))


# --- selecting a layer from a chart -----------------------------------------------------------------------------


def layer_from_selection(event: Any) -> str | None:
    """The layer name a chart selection points at: the ``customdata`` of its first point (or None).

    ``event`` is what ``st.plotly_chart(on_select=...)`` keeps in session state:
    ``{"selection": {"points": [{"customdata": "fc2", ...}, ...], ...}}``.
    """
    if not isinstance(event, dict):
        return None
    selection = event.get("selection")
    points = selection.get("points", []) if isinstance(selection, dict) else []
    for point in points:
        token = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(token, list):
            token = token[0] if token else None
        if isinstance(token, str):
            return token
    return None


def set_sidebar_layer(token: str, tokens: Sequence[str]) -> None:
    """Make ``token`` the sidebar's layer (ignored if it is not one of ``tokens``, this model's layers).

    Call it as a widget callback: callbacks run before the script - and the sidebar's ``layer`` widget - run
    again, the one moment Streamlit lets code set a widget's value. The widget is bound to the URL, so the
    address bar and the share link follow.
    """
    if token in tokens:
        st.session_state["layer"] = token


def on_layer_click(chart_key: str, tokens: Sequence[str]) -> None:
    """``on_select`` callback of a layer chart: the clicked bar's layer becomes the sidebar's layer."""
    token = layer_from_selection(st.session_state.get(chart_key))
    if token is not None:
        set_sidebar_layer(token, tokens)
