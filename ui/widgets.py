"""Page furniture shared by the pages: the intro block, stats panels, and turning errors into plain words."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from quantlib.budget import human_bytes  # noqa: F401 - the pages' sizes are spelled as the budget's messages
from ui import jobs, sources

_LOG = logging.getLogger("quantization_explorer")


def page_intro(title: str, icon: str, text: str, formula: str, try_this: str) -> None:
    """Title, two or three plain sentences, the formula, and the one thing to try."""
    st.title(f"{icon} {title}")
    st.markdown(text)
    # Side by side on a wide screen (the charts start higher), stacked on a phone.
    left, right = st.columns([1, 1], vertical_alignment="center")
    with left:
        st.latex(formula)
    with right:
        st.info(f"**Try this:** {try_this}", icon="👉")


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
    st.info(f"{reason} {sample_extra}" if sample_extra and source.runs_model else reason, icon="ℹ️")
    return True


def needs_a_running_model(title: str, icon: str, what: str) -> None:
    """The page, for an uploaded file: what it would show, and why a file of weights cannot show it."""
    st.title(f"{icon} {title}")
    st.info(
        f"This page {what}, so it needs a model that runs: an uploaded file holds weights, but no code to run "
        "them and no inputs to run them on. Pick a sample model in the sidebar to use this page; the Tensor "
        "explorer, Error curves and Size pages work on your file.",
        icon="ℹ️",
    )


@contextmanager
def friendly_errors(what: str) -> Iterator[None]:
    """Run a block; if it fails, show what could not be done in plain words instead of a traceback.

    ``quantlib`` raises ``ValueError`` with a message that names the setting (e.g. a group size that does not
    divide the layer); that message is shown as is. Anything else is logged on the server with its traceback
    and shown as a short generic message. Streamlit's own control-flow exceptions (rerun, stop) derive from
    ``BaseException`` and pass through untouched.
    """
    try:
        yield
    except (jobs.JobFailed, jobs.JobStopped, jobs.ServerBusy) as err:
        # Long work that could not finish for a reason outside its settings: a full queue, a stop, a worker
        # over its time or memory. The runner words these for the participant.
        st.warning(f"Could not {what}: {err}", icon="⏳")
    except ValueError as err:
        st.error(f"Could not {what} with these settings: {err}", icon="🚫")
    except Exception as err:  # noqa: BLE001 - the page must never show a traceback
        _LOG.exception("failed to %s", what)
        st.error(
            f"Could not {what}: {type(err).__name__}: {err}. Try another setting; the server log has details.",
            icon="🚫",
        )


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
    session's own uploaded file, which must never reach a cache shared between sessions.
    """
    fig = build() if figure_key is None else _shared_figure(figure_key, build)
    return st.plotly_chart(fig, **plotly_chart)


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a stats panel: ``0.01234``, ``1.23e-07``, ``∞`` or ``–``."""
    if value is None:
        return "–"
    if value != value:  # NaN
        return "n/a"
    if value in (float("inf"), float("-inf")):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def stats_panel(view: dict, per_block: bool) -> None:
    """The headline numbers of one quantized tensor (from ``quantlib.summarize``), in two rows of metrics."""
    n = view["num_blocks"]
    c = st.columns(4)
    c[0].metric(
        "Scale s" + (" (median)" if per_block else ""),
        fmt(view["scale"][1]),
        help="Step between neighbouring grid levels (for fp8 / nf4: the factor applied to the format's values).",
    )
    c[1].metric(
        "Zero point z" + (" (median)" if per_block else ""),
        fmt(view["zero_point"][1], 6),
        help="The integer that represents 0.0; always 0 for the symmetric scheme.",
    )
    c[2].metric(
        "Levels used",
        f"{view['levels_used']:.0f} / {view['levels_available']:,}",
        help="Distinct grid values that occur (averaged over blocks) out of the grid's levels.",
    )
    c[3].metric(
        "Clipped",
        f"{100 * view['fraction_clipped']:.3g} %",
        help="Share of values outside the range, set to the nearest end of the grid.",
    )
    c = st.columns(4)
    c[0].metric("SQNR", f"{fmt(view['sqnr_db'], 3)} dB", help="10·log10(Σx² / Σ(x − x̂)²): about +6 dB per extra bit.")
    c[1].metric("MSE", fmt(view["mse"], 3), help="Mean of (x − x̂)².")
    c[2].metric("Max error", fmt(view["max_abs_error"], 3), help="Largest |x − x̂|.")
    if per_block:
        c[3].metric("Scales", f"{n:,}", help="One scale (and zero point) per block.")
        lo, _, hi = view["scale"]
        zlo, _, zhi = view["zero_point"]
        zp = f", zero points {fmt(zlo, 6)} – {fmt(zhi, 6)}" if zlo != zhi else ""
        st.caption(f"Across the {n:,} blocks: scales {fmt(lo, 3)} – {fmt(hi, 3)}{zp}.")


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
