"""The sidebar's shared controls and the pages' own bound controls; the resolved settings of a run.

Constraints between controls are encoded in the widgets' options, so Streamlit's own validation enforces them
and a bad combination in a link is reported like any other bad value (:mod:`ui.links`): fp8 / nf4 offer only
the symmetric scheme and nearest rounding (and switch the bit slider off), and the group-size choices are the
divisors of the chosen layer's row length.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

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
from ui import i18n, sources
from ui.i18n import N_, _
from ui.text import escape_markdown
from ui.views import upload as upload_views

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
    # Drawn first (above the settings), spelled last in a link: the language the receiver opens it in.
    "lang",
)
#: Page-local controls that are bound to the URL too (a shared link reproduces them on their page).
PAGE_PARAMS: dict[str, str] = {
    "log": N_("true or false"),
    "only_layer": N_("true or false"),
    "sens_view": N_("one of the three views of the sensitivity page"),
    "avg_bits": N_("a number of bits per weight from 2 to 8"),
    "epochs": N_("a whole number of QAT epochs from 1 to 10"),
    "lr": N_("one of the learning rates 0.0001, 0.0003, 0.001, 0.003, 0.01"),
    "x": N_("a finite number"),
    "lo": N_("a finite number: the low end of the range"),
    "hi": N_("a finite number: the high end of the range"),
    "example": N_("the number of one of tiny-linear's evaluation inputs, from 0"),
    "algos": N_("a comma list of gptq, awq, smoothquant, adaround, bias, cle, cle_bias"),
    "sq_alpha": N_("one of the SmoothQuant strengths 0.25, 0.5, 0.75, 0.85"),
}

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

_CONTROLS_KEY = "_qe_controls"
_PAGE_KEYS = "_qe_page_keys"
_RUN_START = "_qe_run_start"
_LOG = logging.getLogger("quantization_explorer")

FORMAT_HELP = N_(
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
    lang: str = "en"

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


# --- small pure helpers (tested without Streamlit) ----------------------------------------------------------


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
    chosen = sources.get(model).default_layer()
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


# --- Streamlit side ----------------------------------------------------------------------------------------


def _bound(widget, label: str, key: str, **kwargs):  # noqa: ANN001, ANN202 - thin wrapper over st widgets
    """Create ``widget`` bound to the query parameter ``key`` (the widget key is the parameter name)."""
    return widget(label, key=key, bind="query-params", **kwargs)


def begin_run() -> None:
    """Start of every run: forget last run's page-local widgets, note the time (see :func:`end_run`)."""
    st.session_state[_PAGE_KEYS] = []
    st.session_state[_RUN_START] = time.perf_counter()


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


def rendered_page_keys() -> list[str]:
    return [k for k in st.session_state.get(_PAGE_KEYS, []) if k in st.session_state]


# --- the sidebar, one row per setting --------------------------------------------------------------------------


class SidebarContext:
    """What the rows drawn so far chose, for the rows below them (options, defaults, notes depend on it)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self._model: str | None = None
        self._source: sources.ModelSource | None = None
        self._infos: list[LayerInfo] = []

    def _load(self) -> None:
        """The model row's source and layers, asked once per run (a cached call copies the layer list)."""
        model = str(self.values["model"])
        if model != self._model:
            self._model, self._source, self._infos = model, sources.get(model), sources.layers(model)

    @property
    def source(self) -> sources.ModelSource:
        self._load()
        return self._source

    @property
    def infos(self) -> list[LayerInfo]:
        self._load()
        return self._infos

    @property
    def info(self) -> LayerInfo:
        tokens = [layer_token(i.name) for i in self.infos]
        return self.infos[tokens.index(str(self.values["layer"]))]

    @property
    def fixed(self) -> int | None:
        """The width a fixed-width format imposes (fp8: 8, nf4: 4), else None."""
        return FIXED_BITS.get(str(self.values.get("format")))


def _never(_ctx: SidebarContext) -> bool:
    return False


def _nothing(_ctx: SidebarContext) -> str | None:
    return None


@dataclass(frozen=True)
class Control:
    """One row of the sidebar: a widget bound to the URL parameter ``key`` (also its session-state key).

    ``label`` and ``help`` are English msgids (translated when drawn). ``options`` and ``default`` may depend on
    the rows above (the layer list on the model, the group sizes on the layer); for a choice widget ``default`` is
    a value of ``options``. ``note`` is a caption drawn under the widget when it returns text.

    Options show as their codes in every language (``symmetric``, ``per-channel`` …): Streamlit keeps a bound
    choice widget's *shown* option in the URL and in its state, so translated options would break
    ``scheme=symmetric`` links in Chinese and reset the widget when the language changes. The label and the help
    carry the translation.
    """

    key: str
    label: str
    widget: str  # "selectbox" | "radio" | "slider" | "number_input"
    help: Callable[[SidebarContext], str]
    options: Callable[[SidebarContext], list] | None = None
    default: Callable[[SidebarContext], object] | None = None
    disabled: Callable[[SidebarContext], bool] = _never
    note: Callable[[SidebarContext], str | None] = _nothing
    extra: Mapping[str, object] = field(default_factory=dict)

    def draw(self, container: Any, ctx: SidebarContext) -> object:  # noqa: ANN401 - a widget's value
        widget = getattr(container, self.widget)
        kwargs: dict[str, object] = {"help": self.help(ctx), "disabled": self.disabled(ctx), **self.extra}
        if self.options is not None:
            options = self.options(ctx)
            default = self.default(ctx) if self.default is not None else options[0]
            kwargs |= {"options": options, "index": options.index(default)}
        elif self.default is not None:
            kwargs["value"] = self.default(ctx)
        value = _bound(widget, _(self.label), self.key, **kwargs)
        ctx.values[self.key] = value
        note = self.note(ctx)
        if note:
            container.caption(note)
        return value


def _model_options(_ctx: SidebarContext) -> list[str]:
    names = sources.model_names()
    return [*names, sources.UPLOAD_MODEL] if sources.has_session_upload() else names


def _layer_options(ctx: SidebarContext) -> list[str]:
    return [layer_token(i.name) for i in ctx.infos]


def _default_layer(ctx: SidebarContext) -> str:
    infos = ctx.infos
    return layer_token(infos[default_layer(str(ctx.values["model"]), infos)].name)


def _layer_note(ctx: SidebarContext) -> str:
    info = ctx.info
    shape = "×".join(str(d) for d in info.shape)
    # A file's tensor kinds are quantlib.io's words ("kernel (Conv)"); a sample model's are module class names.
    kind = upload_views.kind(info.kind) if not ctx.source.runs_model else info.kind
    return _("{kind} · weight {shape} · {n} parameters", kind=escape_markdown(kind), shape=shape,
             n=f"{info.numel:,}")


def _group_sizes(ctx: SidebarContext) -> list[int]:
    return group_sizes(ctx.info)


def _fixed_bits_note(ctx: SidebarContext) -> str | None:
    if ctx.fixed is None:
        return None
    return _("{format} is always {bits} bits wide: the slider applies to int and pow2.",
             format=ctx.values["format"], bits=ctx.fixed)


def _fixed_rounding_note(ctx: SidebarContext) -> str | None:
    if ctx.fixed is None:
        return None
    return _("{format} is symmetric and rounds to the nearest value, so scheme and rounding are fixed.",
             format=ctx.values["format"])


def _granularity_note(ctx: SidebarContext) -> str | None:
    if ctx.values.get("target") != "activations":
        return None
    return _("Activations always get one range per tensor: granularity applies to weights.")


def _fixed(text: str) -> Callable[[SidebarContext], str]:
    return lambda _ctx: _(text)


#: The shared controls in sidebar order: one row each - widget, options, default, help, note.
SIDEBAR: tuple[Control, ...] = (
    Control(
        "model", N_("Model"), "selectbox",
        help=lambda _ctx: _(
            "A small ready model with its own data and task metric. `{file}`: the file you loaded on the "
            "📤 Your model page (only in this browser tab).", file=sources.UPLOAD_MODEL,
        ),
        options=_model_options, default=lambda _ctx: DEFAULT_MODEL,
        note=lambda ctx: ctx.source.caption(),
    ),
    Control(
        "layer", N_("Layer"), "selectbox",
        help=_fixed(N_("The layer whose weights (and input activations) the pages look at.")),
        options=_layer_options, default=_default_layer, note=_layer_note,
    ),
    Control(
        "target", N_("Quantize"), "radio",
        help=_fixed(N_(
            "weights, the layer's input activations (one static range per tensor, calibrated on sample "
            "inputs), or both."
        )),
        options=lambda _ctx: list(TARGETS), extra={"horizontal": True},
    ),
    Control(
        "format", N_("Number format"), "selectbox", help=_fixed(FORMAT_HELP), options=lambda _ctx: list(FORMATS),
    ),
    Control(
        "bits", N_("Bit width"), "slider",
        help=_fixed(N_("Width of the integer grid: b bits give 2^b levels.")),
        default=lambda _ctx: DEFAULT_BITS, disabled=lambda ctx: ctx.fixed is not None, note=_fixed_bits_note,
        extra={"min_value": MIN_BITS, "max_value": MAX_BITS},
    ),
    Control(
        "scheme", N_("Scheme"), "radio",
        help=_fixed(N_(
            "Symmetric: zero point 0, grid centred on zero. Asymmetric: the grid is shifted to fit [min, max]."
        )),
        options=lambda ctx: ["symmetric"] if ctx.fixed else list(SCHEMES),
        disabled=lambda ctx: ctx.fixed is not None, extra={"horizontal": True},
    ),
    Control(
        "granularity", N_("Granularity (one scale per …)"), "radio",
        help=_fixed(N_(
            "tensor: one scale for all weights · channel: one per output channel (row) · group: one per "
            "block of group-size consecutive weights in a row."
        )),
        options=lambda _ctx: list(GRANULARITIES), note=_granularity_note, extra={"horizontal": True},
    ),
    Control(
        "group_size", N_("Group size"), "selectbox",
        help=lambda ctx: _("Weights per group; the choices divide this layer's rows ({n} values).",
                           n=group_row_length(ctx.info)),
        options=_group_sizes, default=lambda ctx: default_group_size(_group_sizes(ctx)),
        disabled=lambda ctx: ctx.values.get("granularity") != "group",
    ),
    Control(
        "calibration", N_("Range calibration"), "selectbox",
        help=_fixed(N_(
            "How [lo, hi] is chosen: minmax never clips; percentile ignores the rarest values; mse picks "
            "the clip with the lowest error; entropy (KL) keeps the histogram's shape."
        )),
        options=lambda _ctx: list(CALIBRATIONS),
    ),
    Control(
        "percentile", N_("Percentile"), "number_input",
        help=_fixed(N_("For percentile calibration: the share of |values| kept inside the range.")),
        default=lambda _ctx: DEFAULT_PERCENTILE, disabled=lambda ctx: ctx.values.get("calibration") != "percentile",
        extra={"min_value": 50.01, "max_value": 100.0, "step": 0.01, "format": "%.3f"},
    ),
    Control(
        "rounding", N_("Rounding"), "radio",
        help=_fixed(N_(
            "nearest (ties to even) · truncate (toward zero) · stochastic (random, unbiased on average)."
        )),
        options=lambda ctx: ["nearest"] if ctx.fixed else list(ROUNDINGS),
        disabled=lambda ctx: ctx.fixed is not None, note=_fixed_rounding_note, extra={"horizontal": True},
    ),
)
assert tuple(c.key for c in SIDEBAR) == PARAMS[:-1], "the table and the URL parameters list the same settings"


def render_language_switch(container: Any) -> str:  # noqa: ANN401 - a Streamlit container
    """English / 中文, bound to the ``lang`` parameter; its default is the browser's language when offered."""
    default = i18n.browser_language() or i18n.DEFAULT
    options = list(i18n.LANGUAGES)
    # A link may spell the language as a browser does (zh-CN, zh_Hans, ZH): the widget takes only its own codes,
    # so the link's value is put in that form before the widget reads it (ui.links accepts the spelling).
    raw = st.query_params.get(i18n.KEY)
    spelled = i18n.normalize(raw)
    if raw is not None and spelled is not None and raw != spelled and i18n.KEY not in st.session_state:
        st.session_state[i18n.KEY] = spelled
    return _bound(
        container.radio, "🌐 Language · 语言", i18n.KEY, options=options, index=options.index(default),
        horizontal=True,
        help=_("en: English · zh: 简体中文. A shared link opens in its language (`lang=en` / `lang=zh`)."),
    )


def render_sidebar() -> Controls:
    """Draw the language switch and the shared controls in the sidebar and return their resolved values."""
    sb = st.sidebar
    lang = render_language_switch(sb)
    sb.subheader(_("⚙️ Quantization settings"))
    ctx = SidebarContext()
    for row in SIDEBAR:
        row.draw(sb, ctx)
        if row.key == "model":
            with sb.expander(_("About this model")):
                st.write(ctx.source.about())
    v = ctx.values
    return Controls(
        model=str(v["model"]),
        layer=ctx.info.name,
        bits=int(v["bits"]),
        scheme=str(v["scheme"]),
        granularity=str(v["granularity"]),
        group_size=int(v["group_size"]),
        calibration=str(v["calibration"]),
        percentile=float(v["percentile"]),
        rounding=str(v["rounding"]),
        format=str(v["format"]),
        target=str(v["target"]),
        lang=str(lang),
    )
