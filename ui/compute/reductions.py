"""Per-tensor reductions shared by sample models and uploaded files: cache keys, budgets, the explorer's view.

Pure and uncached (no Streamlit): :mod:`ui.compute.explorer` caches them for the sample models, :mod:`ui.compute.upload` keeps an
uploaded file's in its session's memo. Both build on this module, so neither has to import the other to share
them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from quantlib import QuantReport, QuantSpec, budget, grid, histogram, summarize
from ui.i18n import N_

#: Bars of the value histograms; fine enough to show 4-bit spikes, small enough to ship.
HIST_BINS = 120
ERROR_BINS = 60
#: Grid levels drawn as a rug; beyond this (11+ bit integer grids) the grid is too dense to see anyway.
MAX_GRID_LEVELS = 1024
#: How a refused error curve is named in its message (English, inside quantlib's ``BudgetExceeded``: the page's
#: ``ui.widgets.friendly_errors`` words the refusal in the session's language).
CURVE_DOING = f"the error curve over {budget.CURVE_WIDTHS} bit widths"


# --- notes: data now, words at display time ----------------------------------------------------------------------


class Note(str):
    """A note for the participant that a cached function returns: the English sentence (so ``str`` joins and
    f-strings work as before), plus its ``N_``-marked msgid and values, so the page can show it in the session's
    language with :meth:`text` (cached results are shared by sessions of both languages: no translation inside).

    >>> n = Note(N_("every {stride}th value"), stride=3)
    >>> n, n.msgid, n.values
    ('every 3th value', 'every {stride}th value', {'stride': 3})
    """

    msgid: str
    values: dict[str, Any]

    def __new__(cls, msgid: str, /, **values: Any) -> Note:
        self = super().__new__(cls, msgid.format(**values) if values else msgid)
        self.msgid = msgid
        self.values = values
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # st.cache_data pickles results: rebuild from msgid and values
        return (_note, (self.msgid, self.values))

    def text(self) -> str:
        """The note in the session's language (call it where it is shown)."""
        from ui.i18n import _

        return _(self.msgid, **self.values)


def _note(msgid: str, values: dict[str, Any]) -> Note:
    return Note(msgid, **values)


def note_text(note: str) -> str:
    """A note in the session's language: :meth:`Note.text` for a :class:`Note`, anything else as it is."""
    return note.text() if isinstance(note, Note) else note


# --- keys ---------------------------------------------------------------------------------------------------


def spec_key(spec: QuantSpec) -> str:
    """A QuantSpec as a canonical string, the cache key of everything computed with it."""
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_key(key: str) -> QuantSpec:
    """Inverse of :func:`spec_key`."""
    return QuantSpec(**json.loads(key))


# --- budgets ------------------------------------------------------------------------------------------------


def check_budget(
    cost: Callable[[tuple[int, ...], QuantSpec], budget.Cost], x: torch.Tensor, spec: QuantSpec, doing: str = ""
) -> None:
    """Refuse, with ``quantlib.budget.BudgetExceeded`` in plain words, a computation priced by ``cost`` (e.g.
    ``budget.view_cost``) on ``x`` at ``spec`` that is over the interactive budget. Reads only ``x.shape``.
    ``doing`` names the computation when it is more than one calibration (``"the error curve over 15 bit
    widths"``)."""
    shape = tuple(int(d) for d in x.shape)
    what = budget.describe(shape, spec)
    budget.require(cost(shape, spec), cost(shape, budget.plain(spec)), shape, spec, f"{doing} ({what})" if doing else what)


def check_view_budget(x: torch.Tensor, spec: QuantSpec) -> None:
    """:func:`check_budget` for quantizing and summarizing one tensor (the explorer's view, the walkthrough's
    error formula, a point on the curves chart)."""
    check_budget(budget.view_cost, x, spec)


def reduce_view(x: torch.Tensor, spec: QuantSpec) -> tuple[dict[str, Any], QuantReport]:
    """What the value and error charts and the stats panel draw for one tensor at ``spec``, as small arrays.

    Pure and uncached, so session-private tensors (uploads) can use it without touching a shared cache. Returns
    the view (histogram counts of the float and dequantized values on shared bins, the grid of the block with
    the widest range, that block's clip range, the error histogram and ``quantlib.summarize``'s headline numbers)
    and the report it came from. Refused (``BudgetExceeded``) up front when over the budget.
    """
    check_view_budget(x, spec)
    rep = summarize(x, spec)
    xf = x.detach().reshape(-1).to(torch.float32)
    xh = rep.x_hat.reshape(-1).to(torch.float32)
    lo = float(torch.minimum(xf.min(), xh.min()))
    hi = float(torch.maximum(xf.max(), xh.max()))
    counts_f, edges = histogram(xf, HIST_BINS, (lo, hi))
    counts_q, _ = histogram(xh, HIST_BINS, (lo, hi))
    err_counts, err_edges = histogram(xh - xf, ERROR_BINS)
    widest = int(np.argmax(rep.block_max - rep.block_min)) if rep.block_min.size > 1 else 0
    levels = grid(spec, rep.qparams, widest).numpy()
    scale = rep.qparams.scale.reshape(-1).to(torch.float64).numpy()
    zero_point = rep.qparams.zero_point.reshape(-1).to(torch.float64).numpy()
    view = {
        "shape": tuple(int(d) for d in x.shape),
        "numel": int(x.numel()),
        "spec_label": spec.label(),
        "spec_key": spec_key(spec),
        "edges": edges.astype(np.float32),
        "float_counts": counts_f,
        "quant_counts": counts_q,
        "err_edges": err_edges.astype(np.float32),
        "err_counts": err_counts,
        "grid": levels.astype(np.float32) if levels.size <= MAX_GRID_LEVELS else None,
        "grid_size": int(levels.size),
        "grid_block": widest,
        "num_blocks": int(rep.block_min.size),
        "clip_lo": float(rep.block_clip_lo[widest]),
        "clip_hi": float(rep.block_clip_hi[widest]),
        "scale": (float(scale.min()), float(np.median(scale)), float(scale.max())),
        "zero_point": (float(zero_point.min()), float(np.median(zero_point)), float(zero_point.max())),
        "levels_used": rep.levels_used,
        "levels_available": rep.levels_available,
        "fraction_clipped": rep.fraction_clipped,
        "mse": rep.mse,
        "sqnr_db": rep.sqnr_db,
        "max_abs_error": rep.max_abs_error,
    }
    return view, rep


#: How a scheme and a granularity are named in labels; English unless a page passes ``translate=_``.
SCHEME_NAMES = {"symmetric": N_("symmetric"), "asymmetric": N_("asymmetric")}
SCHEME_SHORT = {"symmetric": N_("sym"), "asymmetric": N_("asym")}
GRANULARITY_NAMES = {"tensor": N_("per-tensor"), "channel": N_("per-channel"), "group": N_("per-group({group_size})")}


def _english(message: str, /, **values: Any) -> str:
    return message.format(**values) if values else message


def granularity_name(granularity: str, group_size: int = 64, translate: Callable[..., str] = _english) -> str:
    """``per-channel``, ``per-group(64)``; ``translate=_`` at display time for the session's language."""
    return translate(GRANULARITY_NAMES[granularity], group_size=group_size)


def curve_label(scheme: str, granularity: str, group_size: int = 64, translate: Callable[..., str] = _english) -> str:
    """``symmetric · per-tensor``: the key of a curve (English by default: keys, tables); pass ``translate=_``
    for a label shown in the session's language."""
    return f"{translate(SCHEME_NAMES[scheme])} · {granularity_name(granularity, group_size, translate)}"


def view_label(view: dict[str, Any], translate: Callable[..., str] = _english) -> str:
    """The label of the spec a :func:`reduce_view` view was computed with (as fitted to its tensor)."""
    key = view.get("spec_key")
    return spec_label(spec_from_key(key), translate) if key else view["spec_label"]


def spec_label(spec: QuantSpec, translate: Callable[..., str] = _english) -> str:
    """``QuantSpec.label()`` (``int4 asym per-channel``) with its words in the session's language when
    ``translate=_`` (format names such as ``int4`` or ``fp8_e4m3`` stay as they are)."""
    fmt = f"{spec.format}{spec.bits}" if spec.is_integer_grid else spec.format
    return f"{fmt} {translate(SCHEME_SHORT[spec.scheme])} {granularity_name(spec.granularity, spec.group_size, translate)}"
