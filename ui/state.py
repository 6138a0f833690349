"""The shared sidebar controls, bound to query parameters: the URL *is* the state.

Every control is a Streamlit widget whose key is its query-parameter name and which is created with
``bind="query-params"`` (native in Streamlit 1.67): opening a link seeds the widgets, moving a widget rewrites
the address bar, and the parameters survive page switches. Streamlit drops a link value that its widget cannot
take (``bits=99``, an unknown layer) and the widget falls back to its default. What it does not do is *say so*,
so this module snapshots the raw link on a session's first run and, once the page has run, compares it with
what the widgets resolved to (:func:`link_problems`): every value that was not used verbatim is listed in a
visible notice. A page's own parameter (``x`` of the walkthrough) is judged on the first run that draws its
widget, whichever page the link opened; a key given twice counts with its last value, and the notice says so.
Everything echoed from the link goes through :mod:`ui.text` (code spans, shortened): a link is untrusted text.

Constraints between controls are encoded in the widgets' options, so Streamlit's own validation enforces them
and a bad combination in a link is reported like any other bad value: fp8 / nf4 offer only the symmetric
scheme and nearest rounding (and switch the bit slider off), and the group-size choices are the divisors of
the chosen layer's row length.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlencode, urlparse

import streamlit as st

from quantlib import QuantSpec
from quantlib.layout import group_sizes_for
from quantlib.model import LayerInfo
from quantlib.spec import (
    CALIBRATIONS,
    FIXED_BITS,
    FORMATS,
    GRANULARITIES,
    MAX_BITS,
    MIN_BITS,
    ROUNDINGS,
    SCHEMES,
)

from . import data
from .text import code_span, escape_markdown, shorten

#: The shared controls, in sidebar order; each is a widget key and the query parameter of the same name.
PARAMS: tuple[str, ...] = (
    "model",
    "layer",
    "target",
    "format",
    "bits",
    "scheme",
    "granularity",
    "group_size",
    "calibration",
    "percentile",
    "rounding",
)
#: Page-local controls that are bound to the URL too (a shared link reproduces them on their page).
PAGE_PARAMS: dict[str, str] = {
    "log": "true or false",
    "only_layer": "true or false",
    "sens_view": "one of the three views of the sensitivity page",
    "avg_bits": "a number of bits per weight from 2 to 8",
    "epochs": "a whole number of QAT epochs from 1 to 10",
    "lr": "one of the learning rates 0.0001, 0.0003, 0.001, 0.003, 0.01",
    "x": "a finite number",
    "lo": "a finite number: the low end of the range",
    "hi": "a finite number: the high end of the range",
    "example": "the number of one of tiny-linear's evaluation inputs, from 0",
    "algos": "a comma list of gptq, awq, smoothquant, adaround, bias, cle, cle_bias",
    "sq_alpha": "one of the SmoothQuant strengths 0.25, 0.5, 0.75, 0.85",
}
#: Streamlit's own parameters, never ours to judge.
_STREAMLIT_PARAMS = {"embed", "embed_options"}

TARGETS: tuple[str, ...] = ("weights", "activations", "both")
DEFAULT_MODEL = "digits-mlp"
DEFAULT_BITS = 8
DEFAULT_PERCENTILE = 99.99
DEFAULT_GROUP_SIZE = 64
#: Layers above this size are not picked as a default: the first view should be quick.
_DEFAULT_LAYER_MAX_NUMEL = 1_000_000
#: ``list_layers`` names a model that *is* a single layer ``""``; an empty URL value reads as "no value", so the
#: URL and the menu call it this instead.
ROOT_LAYER_TOKEN = "root"

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
_CONTROLS_KEY = "_qe_controls"
_PAGE_KEYS = "_qe_page_keys"
_RUN_START = "_qe_run_start"
_LOG = logging.getLogger("quantization_explorer")

FORMAT_HELP = (
    "**int**: uniform integer grid · **pow2**: int grid with the scale rounded up to a power of two "
    "(shift-only hardware) · **fp8_e4m3 / fp8_e5m2**: 8-bit floats, dense near zero · **nf4**: the 16 "
    "NormalFloat levels of QLoRA, placed at normal quantiles."
)


@dataclass(frozen=True)
class Controls:
    """The resolved sidebar settings of one run (what the widgets hold, after any adaptation)."""

    model: str
    layer: str
    bits: int
    scheme: str
    granularity: str
    group_size: int
    calibration: str
    percentile: float
    rounding: str
    format: str
    target: str

    @property
    def fixed_bits(self) -> int | None:
        """The width a fixed-width format imposes (8 for fp8, 4 for nf4), else None."""
        return FIXED_BITS.get(self.format)

    @property
    def effective_bits(self) -> int:
        return self.fixed_bits or self.bits

    @property
    def wants_weights(self) -> bool:
        return self.target in ("weights", "both")

    @property
    def wants_activations(self) -> bool:
        return self.target in ("activations", "both")

    def spec(self) -> QuantSpec:
        """The QuantSpec these settings describe (layer-independent: the axis is set per layer later)."""
        return QuantSpec(
            bits=self.effective_bits,
            scheme=self.scheme,
            granularity=self.granularity,
            group_size=self.group_size,
            calibration=self.calibration,
            percentile=float(self.percentile),
            rounding=self.rounding,
            format=self.format,
        )

    def as_params(self) -> dict[str, str]:
        """The settings as query-parameter strings, as a shared link spells them."""
        out = {k: format_number(v) if isinstance(v, (int, float)) else str(v) for k, v in asdict(self).items()}
        out["layer"] = layer_token(self.layer)
        return out


# --- small pure helpers (tested without Streamlit) -------------------------------------------------------


def layer_token(name: str) -> str:
    """The menu / URL spelling of a layer name (the root module ``""`` becomes ``root``)."""
    return name if name else ROOT_LAYER_TOKEN


def layer_name(token: str, infos: Sequence[LayerInfo]) -> str:
    """Inverse of :func:`layer_token` for the layers of one model."""
    names = {layer_token(i.name): i.name for i in infos}
    return names[token]


def default_layer(model: str, infos: Sequence[LayerInfo]) -> int:
    """Index of the layer shown when a link does not name one: the sample model's own choice
    (``SampleModel.default_layer``), else the first small one."""
    names = [i.name for i in infos]
    chosen = None if data.is_upload(model) else data.sample(model).default_layer
    if chosen in names:
        return names.index(chosen)
    for i, info in enumerate(infos):
        if info.numel <= _DEFAULT_LAYER_MAX_NUMEL:
            return i
    return 0


def group_row_length(info: LayerInfo) -> int:
    """Length of the rows that per-group quantization cuts into groups.

    ``quantlib.model`` groups a conv weight along its flattened input dimension (``in · kh · kw``) and a
    Linear / Embedding weight along its last axis: both are ``numel / out_channels``.
    """
    return info.numel // info.shape[0] if info.shape and info.shape[0] else max(info.numel, 1)


def group_sizes(info: LayerInfo) -> list[int]:
    """Group sizes that divide the layer's rows (2 up to the whole row), so per-group always works."""
    n = group_row_length(info)
    return group_sizes_for(n) or [n]


def default_group_size(sizes: Sequence[int]) -> int:
    """64 where it divides, else the largest size below it, else the smallest there is."""
    if DEFAULT_GROUP_SIZE in sizes:
        return DEFAULT_GROUP_SIZE
    below = [s for s in sizes if s < DEFAULT_GROUP_SIZE]
    return max(below) if below else min(sizes)


def format_number(x: float) -> str:
    """A number as the shortest URL string that reads back as exactly the same value.

    ``repr`` of a float is the shortest decimal that round-trips (``99.99995``, ``1.0000000000000002e+15``),
    so a shared link reproduces the value bit for bit; whole numbers lose the ``.0`` (``100``) and ints stay
    ints. ``float(format_number(x)) == x`` for every finite float.

    >>> format_number(99.99995), format_number(100.0), format_number(3), format_number(1e16), format_number(-0.0)
    ('99.99995', '100', '3', '1e+16', '-0')
    """
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    text = repr(float(x))
    return text.removesuffix(".0")


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
        "model": "one of " + ", ".join(model_names)
        + f" (`{data.UPLOAD_MODEL}` only in the browser tab that loaded a file)",
        "layer": f"not a layer of {controls.model}",
        "format": "one of " + ", ".join(FORMATS),
        "bits": f"a whole number from {MIN_BITS} to {MAX_BITS}",
        "scheme": f"{controls.format} is a symmetric format" if fixed else "symmetric or asymmetric",
        "granularity": "tensor, channel or group",
        "group_size": (
            f"must divide {group_row_length(info)}, the row length of this layer" if info else "a divisor of the row"
        ),
        "calibration": "one of " + ", ".join(CALIBRATIONS),
        "percentile": "a number above 50 and at most 100",
        "rounding": f"{controls.format} always rounds to nearest" if fixed else "one of " + ", ".join(ROUNDINGS),
        "target": "weights, activations or both",
    }
    return texts.get(param) or PAGE_PARAMS.get(param, "not a setting of this app")


def echo(key: str, value: str) -> str:
    """``key=value`` from a link as the notice quotes it: a code span, each part cut to a readable length.

    >>> echo("x", "`[a](b)`"), echo("bits", "9" * 100)[-24:]
    ('`` x=`[a](b)` ``', '99999… (100 characters)`')
    """
    return code_span(f"{shorten(key, ECHO_KEY_CHARS)}={shorten(value, ECHO_VALUE_CHARS)}")


def _given(key: str, values: Sequence[str]) -> str:
    """``bits`` given twice (``4, 5``): the start of the notice line of a repeated key."""
    times = "twice" if len(values) == 2 else f"{len(values)} times"
    listed = shorten(", ".join(values), ECHO_VALUE_CHARS)
    return f"{code_span(shorten(key, ECHO_KEY_CHARS))} given {times} ({code_span(listed)})"


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
            lines.append(f"{what}: not a setting of this app, ignored")
            continue
        if key not in resolved:
            continue
        used = resolved[key]
        shown = layer_token(str(used)) if key == "layer" else _shown(used)
        ok = value == shown if key == "layer" else same_value(value, used)
        if ok:
            if given:
                lines.append(f"{given}: using the last, {code_span(shown)}")
            continue
        reason = allowed_text(key, controls, info, model_names)
        start = f"{given}: the last, {echo(key, value)}" if given else echo(key, value)
        lines.append(f"{start} ({reason}): using {code_span(shorten(shown, ECHO_VALUE_CHARS))}")
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


# --- Streamlit side ----------------------------------------------------------------------------------------


def _bound(widget, label: str, key: str, **kwargs):  # noqa: ANN001, ANN202 - thin wrapper over st widgets
    """Create ``widget`` bound to the query parameter ``key`` (the widget key is the parameter name)."""
    return widget(label, key=key, bind="query-params", **kwargs)


def begin_run() -> dict[str, str] | None:
    """Start of every run: forget last run's page-local widgets; return the raw link on a first run."""
    st.session_state[_PAGE_KEYS] = []
    st.session_state[_RUN_START] = time.perf_counter()
    return snapshot_link()


def end_run(page: str) -> None:
    """End of a full run: with ``QE_TIMING=1`` in the server's environment, log how long the script took.

    The figure that matters for a slider that should feel live, and the one ``benchmarks/bench_app.py`` reads
    from the server log to separate server time from browser time.
    """
    if os.environ.get("QE_TIMING") == "1" and _RUN_START in st.session_state:
        ms = 1000 * (time.perf_counter() - st.session_state[_RUN_START])
        _LOG.warning("QE_TIMING run page=%s ms=%.1f", page or "tensor-explorer", ms)


def set_current(controls: Controls) -> None:
    st.session_state[_CONTROLS_KEY] = controls


def current() -> Controls:
    """The shared settings of this run, for the pages (``app.py`` resolves them before running a page)."""
    return st.session_state[_CONTROLS_KEY]


def page_widget(widget, label: str, key: str, **kwargs):  # noqa: ANN001, ANN201 - any st widget
    """A page-local control bound to the URL like the shared ones (``key`` from PAGE_PARAMS).

    It is listed among this run's rendered page controls, so the share link and the link check include it.
    """
    if key not in PAGE_PARAMS:
        raise KeyError(f"{key!r} is not a page parameter; add it to PAGE_PARAMS")
    st.session_state.setdefault(_PAGE_KEYS, []).append(key)
    return widget(label, key=key, bind="query-params", **kwargs)


def page_toggle(label: str, key: str, help: str | None = None) -> bool:
    """A page-local on/off control, bound to the URL (see :func:`page_widget`)."""
    return bool(page_widget(st.toggle, label, key, help=help))


def _rendered_page_keys() -> list[str]:
    return [k for k in st.session_state.get(_PAGE_KEYS, []) if k in st.session_state]


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


def render_sidebar() -> Controls:
    """Draw the shared controls in the sidebar and return their resolved values."""
    names = data.model_names()
    options = [*names, data.UPLOAD_MODEL] if data.has_session_upload() else names
    sb = st.sidebar
    sb.subheader("⚙️ Quantization settings")
    model = _bound(
        sb.selectbox,
        "Model",
        "model",
        options=options,
        index=names.index(DEFAULT_MODEL),
        help="A small ready model with its own data and task metric. "
        f"`{data.UPLOAD_MODEL}`: the file you loaded on the 📤 Your model page (only in this browser tab).",
    )
    if data.is_upload(model):
        up = data.session_upload()
        sb.caption(f"📤 **{escape_markdown(shorten(up.filename, 60))}** · weights only · this browser tab")
        with sb.expander("About this model"):
            st.write(
                "The file you loaded on the Your model page: each floating-point tensor is a layer. The Tensor "
                "explorer, Error curves, Size and the walkthrough's error formulas work on it; pages that run the "
                "model (output drift, sensitivity, QAT, speed) need a sample model. Nobody else sees it, and a "
                "shared link falls back to a sample model."
            )
    else:
        sm = data.sample(model)
        sb.caption(f"**{sm.title}** · task: {sm.task}")
        with sb.expander("About this model"):
            st.write(sm.description)

    infos = data.layers(model)
    tokens = [layer_token(i.name) for i in infos]
    token = _bound(
        sb.selectbox,
        "Layer",
        "layer",
        options=tokens,
        index=default_layer(model, infos),
        help="The layer whose weights (and input activations) the pages look at.",
    )
    info = infos[tokens.index(token)]
    shape = "×".join(str(d) for d in info.shape)
    sb.caption(f"{escape_markdown(info.kind)} · weight {shape} · {info.numel:,} parameters")
    target = _bound(
        sb.radio,
        "Quantize",
        "target",
        options=list(TARGETS),
        index=0,
        horizontal=True,
        help="Weights, the layer's input activations (one static range per tensor, calibrated on sample "
        "inputs), or both.",
    )

    fmt = _bound(sb.selectbox, "Number format", "format", options=list(FORMATS), index=0, help=FORMAT_HELP)
    fixed = FIXED_BITS.get(fmt)
    bits = _bound(
        sb.slider,
        "Bit width",
        "bits",
        min_value=MIN_BITS,
        max_value=MAX_BITS,
        value=DEFAULT_BITS,
        disabled=fixed is not None,
        help="Width of the integer grid: b bits give 2^b levels.",
    )
    if fixed is not None:
        sb.caption(f"{fmt} is always {fixed} bits wide: the slider applies to int and pow2.")
    scheme = _bound(
        sb.radio,
        "Scheme",
        "scheme",
        options=["symmetric"] if fixed else list(SCHEMES),
        index=0,
        horizontal=True,
        disabled=fixed is not None,
        help="Symmetric: zero point 0, grid centred on zero. Asymmetric: the grid is shifted to fit [min, max].",
    )
    granularity = _bound(
        sb.radio,
        "Granularity (one scale per …)",
        "granularity",
        options=list(GRANULARITIES),
        index=0,
        horizontal=True,
        help="tensor: one scale for all weights · channel: one per output channel (row) · group: one per "
        "block of group-size consecutive weights in a row.",
    )
    if target == "activations":
        sb.caption("Activations always get one range per tensor: granularity applies to weights.")
    sizes = group_sizes(info)
    group_size = _bound(
        sb.selectbox,
        "Group size",
        "group_size",
        options=sizes,
        index=sizes.index(default_group_size(sizes)),
        disabled=granularity != "group",
        help=f"Weights per group; the choices divide this layer's rows ({group_row_length(info)} values).",
    )
    calibration = _bound(
        sb.selectbox,
        "Range calibration",
        "calibration",
        options=list(CALIBRATIONS),
        index=0,
        help="How [lo, hi] is chosen: minmax never clips; percentile ignores the rarest values; mse picks "
        "the clip with the lowest error; entropy (KL) keeps the histogram's shape.",
    )
    percentile = _bound(
        sb.number_input,
        "Percentile",
        "percentile",
        min_value=50.01,
        max_value=100.0,
        value=DEFAULT_PERCENTILE,
        step=0.01,
        format="%.3f",
        disabled=calibration != "percentile",
        help="For percentile calibration: the share of |values| kept inside the range.",
    )
    rounding = _bound(
        sb.radio,
        "Rounding",
        "rounding",
        options=["nearest"] if fixed else list(ROUNDINGS),
        index=0,
        horizontal=True,
        disabled=fixed is not None,
        help="nearest (ties to even) · truncate (toward zero) · stochastic (random, unbiased on average).",
    )
    if fixed is not None:
        sb.caption(f"{fmt} is symmetric and rounds to the nearest value, so scheme and rounding are fixed.")
    return Controls(
        model=model,
        layer=info.name,
        bits=int(bits),
        scheme=scheme,
        granularity=granularity,
        group_size=int(group_size),
        calibration=calibration,
        percentile=float(percentile),
        rounding=rounding,
        format=fmt,
        target=target,
    )


def check_link(raw: Mapping[str, str] | None, controls: Controls) -> None:
    """Judge the link against the resolved widgets (end of every full run) and add to this session's notice.

    First run (``raw`` given): the shared settings and the page controls this page drew; the other pages'
    parameters wait in the session. Later runs: each waiting parameter once its page has drawn its widget, so
    ``/?x=abc`` followed by a visit to the walkthrough still names ``x=abc``.
    """
    rendered = _rendered_page_keys()
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
    infos = data.layers(controls.model)
    info = next((i for i in infos if i.name == controls.layer), None)
    resolved = {k: st.session_state[k] for k in (*PARAMS, *rendered) if k in st.session_state}
    if "layer" in resolved:
        resolved["layer"] = controls.layer
    repeated = st.session_state.get(_REPEATED_KEY) or {}
    problems = link_problems(judged, resolved, controls, info, data.model_names(), repeated)
    if problems:
        st.session_state[_NOTICE_KEY] = [*st.session_state.get(_NOTICE_KEY, []), *problems]


def show_link_notice(container) -> None:  # noqa: ANN001 - a Streamlit container
    """The visible notice listing link values that were ignored, until the user dismisses it."""
    problems = st.session_state.get(_NOTICE_KEY)
    if not problems:
        return
    shown = problems[:NOTICE_MAX_LINES]
    if len(problems) > len(shown):
        shown = [*shown, f"… and {len(problems) - len(shown):,} more"]
    with container:
        st.warning(
            "Some settings in this link could not be used as given:\n\n" + "\n".join(f"- {p}" for p in shown),
            icon="⚠️",
        )
        if st.button("Dismiss", key="_qe_dismiss_notice"):
            st.session_state.pop(_NOTICE_KEY, None)
            st.rerun()


def page_extras() -> dict[str, str]:
    """The page-local bound controls rendered on this run, spelled for a link (an off toggle is left out)."""
    extras = {}
    for key in _rendered_page_keys():
        value = st.session_state[key]
        if isinstance(value, bool):
            if value:
                extras[key] = "true"
        elif value is not None and value != "":
            extras[key] = format_number(value) if isinstance(value, (int, float)) else str(value)
    return extras


def render_share(container, controls: Controls) -> None:  # noqa: ANN001 - a Streamlit container
    """The "share this view" affordance: the full link of this page with every setting spelled out."""
    infos = data.layers(controls.model)
    info = next((i for i in infos if i.name == controls.layer), None)
    default_group = default_group_size(group_sizes(info)) if info is not None else DEFAULT_GROUP_SIZE
    url = share_url(st.context.url, link_params(controls, page_extras(), default_group))
    with container.expander("🔗 Share this view"):
        st.code(url, language=None, wrap_lines=True)
        st.caption(
            "Send this link: it opens this page with these settings. The address bar always holds the same "
            "state (settings left at their defaults are omitted there)."
        )
