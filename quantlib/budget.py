"""What a computation will cost before it runs, and a plain-words refusal when that is too much for a shared server.

A class of 40 shares one 2-core server, so no single request may take the memory or the CPU of everyone. The
settings of a link or an upload decide the cost of a request, and some multiply it: entropy calibration builds
a 512-bin histogram and tries ~128 thresholds *per block*, so per-group of 2 on a 30522×384 embedding table is
5.9 million searches (tens of GB, hours); per-channel on a 1-D tensor is one block per value. :func:`estimate`
predicts peak memory and CPU time from the tensor's shape and the spec alone (nothing is allocated), and
:func:`check` refuses with :class:`BudgetExceeded` when the prediction is over the budget.

**The cost model.** For a tensor of ``N`` values in ``R`` blocks of ``K = N / R`` values
(:mod:`quantlib.layout`), each term is a measured constant times a count:

- fake quant: ``FQ_*`` per value and per block; the tensor explorer's summary (``summarize`` and histograms):
  ``VIEW_*`` per value and per block;
- min-max: nothing more; percentile: ``PERCENTILE_*`` per value;
- MSE clip: 50 clip ratios × the searched values ``S`` (at most ``MSE_SEARCH_MAX_VALUES``, but never fewer than
  one per block) and × ``R``;
- entropy (per side of zero, two for the asymmetric scheme): ``KL_SECONDS_PER_VALUE · N`` + ``R · bins`` for the
  histograms + ``R · C · (n + 1)`` for the KL of ``C`` candidate thresholds against ``n`` levels;
- memory of the row-wise searches is their chunk (:data:`quantlib.calibration.ROW_CHUNK_BYTES`), not ``R`` times
  a row.

Worked example: 8-bit symmetric entropy per-group(64) on MiniLM's word embeddings, ``N = 11,720,448``,
``R = 183,132``, ``bins = 512``, ``n = 128``, ``C = 129``: ``R · C · (n + 1) = 3.05e9`` cells at 35 ns plus
``R · bins = 9.4e7`` bins at 75 ns is ~117 s of CPU (forced through anyway it took 104 s and ~180 MB, where the
unchunked code took 6.6 GB), over the budget, so it is refused in well under a millisecond.

**The budget.** A request may cost what looking at the same values plainly costs (per-tensor min-max, the
cheapest view: the baseline a page needs to show the tensor at all), plus :data:`INTERACTIVE_BYTES` and
:data:`INTERACTIVE_SECONDS` for what its settings add; and never more than :data:`MAX_BYTES` /
:data:`MAX_SECONDS` in all. Whole-model computations (output drift) add up their layers; error curves count
every bit width they sweep.

The constants were measured on the 2-core reference server (torch 2.13, one intra-op thread as the app runs,
CPU time from ``time.process_time`` and peak RSS growth from ``ru_maxrss`` in a fresh process, while other
work ran) by timing each term on tensors of 10^5-10^7 values and dividing by the count; they are rounded *up*,
so estimates err towards refusing. ``benchmarks/`` is the place for speed goals; this is for saying no early.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .calibration import (
    _KL_CHUNK_ELEMENTS,
    MSE_CLIP_RATIOS,
    MSE_SEARCH_MAX_VALUES,
    ROW_CHUNK_BYTES,
    _side_levels,
    kl_bins,
    kl_bytes_per_row,
    kl_candidates,
    mse_bytes_per_row,
)
from .layout import BlockLayout
from .spec import QuantSpec

# --- the budget ---------------------------------------------------------------------------------------------

#: What the settings of one interactive request may add to the plain per-tensor min-max cost of the same values.
INTERACTIVE_SECONDS = 2.0
INTERACTIVE_BYTES = 256 << 20
#: What no request may exceed at all, whatever the baseline (an upload's biggest tensor included).
MAX_BYTES = 1 << 30
MAX_SECONDS = 20.0

# --- measured constants (see the module doc for how) --------------------------------------------------------

#: ``fake_quant``: the float32 result and its temporaries; per block, scale / zero point / bounds (measured:
#: 2.7 ns per value per-tensor, 21 ns per value in groups of 2, 28 ns per value with one value per channel).
FQ_BYTES_PER_VALUE = 12
FQ_SECONDS_PER_VALUE = 5e-9
FQ_BYTES_PER_BLOCK = 64
FQ_SECONDS_PER_BLOCK = 80e-9
#: ``summarize`` plus the explorer's histograms: codes, x̂, errors in float64, a sort of the codes per block to
#: count the levels used (measured per-tensor: 80 B and 190 ns per value on 4M values, 51 B and 213 ns per value
#: on MiniLM's 11.7M-value embedding table; in groups of 2, 72 B and 285 ns per value).
VIEW_BYTES_PER_VALUE = 80
VIEW_SECONDS_PER_VALUE = 220e-9
VIEW_BYTES_PER_BLOCK = 48
VIEW_SECONDS_PER_BLOCK = 150e-9
#: Percentile: ``|x|`` and ``kthvalue`` (a partial sort) per value (measured 11-15 ns).
PERCENTILE_BYTES_PER_VALUE = 24
PERCENTILE_SECONDS_PER_VALUE = 20e-9
#: MSE clip search / clip sweep, per (searched value × clip ratio) and per (block × clip ratio) (measured on 512k
#: values: 4.2 ns per value-ratio in rows of 64 or 1024, 45 ns per value-ratio in rows of one; a 39-ratio clip
#: sweep of 4M values: 4.7 ns per value-ratio).
MSE_SECONDS_PER_VALUE_RATIO = 5e-9
MSE_SECONDS_PER_BLOCK_RATIO = 50e-9
#: Entropy, per value (magnitudes, bin indices, bincount), per histogram bin of a block (prefix sums), and per
#: (block × candidate threshold × level) cell of the KL evaluation (measured on 10^4 blocks of 2, 4000 of 64, 100
#: of 4096 and 1 of 200k at 4 and 8 bits: 29-33 ns per cell, 40-72 ns per bin).
KL_SECONDS_PER_VALUE = 25e-9
KL_SECONDS_PER_BIN = 75e-9
KL_SECONDS_PER_CELL = 35e-9
#: ``error_curve``, per value and bit width: quantize into a reused buffer, the float64 error, its sums (measured
#: on 4M values over 15 widths: 22 B and 6.5 ns per value and width).
CURVE_BYTES_PER_VALUE = 28
CURVE_SECONDS_PER_VALUE_WIDTH = 10e-9
#: Clip ratios of ``quantlib.clip_sweep`` (the error-vs-clip chart) and bit widths of an error curve.
CLIP_SWEEP_RATIOS = 39
CURVE_WIDTHS = 15


class BudgetExceeded(ValueError):
    """A computation was refused before it ran because it would take too much memory or CPU.

    ``str(err)`` is one plain sentence for the person who asked: what is too big, how big, what to change.
    """


@dataclass(frozen=True)
class Cost:
    """Predicted peak memory (bytes above what is already held) and CPU seconds of a computation."""

    bytes_peak: int
    seconds: float

    def then(self, other: Cost) -> Cost:
        """This, then ``other``: times add up, memory is the larger peak (the first frees its working set)."""
        return Cost(max(self.bytes_peak, other.bytes_peak), self.seconds + other.seconds)

    def holding(self, extra_bytes: int) -> Cost:
        """The same work while ``extra_bytes`` more are held throughout."""
        return Cost(self.bytes_peak + int(extra_bytes), self.seconds)

    def times(self, n: int) -> Cost:
        """``n`` rounds of the same work, one after the other (memory is reused)."""
        return Cost(self.bytes_peak, self.seconds * n)


ZERO = Cost(0, 0.0)


def sequence(costs: Iterable[Cost]) -> Cost:
    """Costs of steps run one after the other."""
    total = ZERO
    for c in costs:
        total = total.then(c)
    return total


def _shape(x: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(x, int):
        return (int(x),)
    return tuple(int(d) for d in x)


def blocks(x: Sequence[int] | int, spec: QuantSpec) -> tuple[int, int]:
    """``(R, K)``: blocks and values per block of a tensor of this shape (or ``numel``) under ``spec``.

    >>> blocks((30522, 384), QuantSpec(granularity="group", group_size=2))
    (5860224, 2)
    """
    shape = _shape(x)
    layout = BlockLayout.of(shape, spec)  # the library's own validation and message for a spec that does not fit
    n = math.prod(shape)
    r = max(1, layout.num_blocks)
    return r, (n // r if n else 0)


def _chunk_bytes(r: int, bytes_per_row: int) -> int:
    """Memory of the biggest chunk :func:`quantlib.calibration.row_chunks` makes."""
    per = max(1, ROW_CHUNK_BYTES // max(1, bytes_per_row))
    return min(r, per) * bytes_per_row


def calibration_cost(r: int, k: int, spec: QuantSpec) -> Cost:
    """What ``spec.calibration`` costs beyond min-max on ``r`` blocks of ``k`` values."""
    n = r * k
    if n == 0 or spec.calibration == "minmax":
        return ZERO
    if spec.calibration == "percentile":
        return Cost(PERCENTILE_BYTES_PER_VALUE * n, PERCENTILE_SECONDS_PER_VALUE * n)
    if spec.calibration == "mse":
        ratios = len(MSE_CLIP_RATIOS)
        stride = math.ceil(n / MSE_SEARCH_MAX_VALUES) if n > MSE_SEARCH_MAX_VALUES else 1
        ks = math.ceil(k / stride)  # a strided subsample of every row's columns, at least one per row
        searched = r * ks
        held = searched * 4 * (2 if spec.rounding == "stochastic" else 1) + r * 24
        seconds = ratios * (MSE_SECONDS_PER_VALUE_RATIO * searched + MSE_SECONDS_PER_BLOCK_RATIO * r)
        return Cost(_chunk_bytes(r, mse_bytes_per_row(ks, ratios)) + held, seconds)
    # entropy
    levels = _side_levels(spec)
    bins = kl_bins(r)
    sides = 2 if spec.scheme == "asymmetric" else 1
    if levels >= bins:  # wide grids keep the whole range: only the maxima are computed
        return Cost(8 * n, KL_SECONDS_PER_VALUE * n)
    cells = r * len(kl_candidates(bins, levels)) * (levels + 1)
    seconds = sides * (KL_SECONDS_PER_VALUE * n + KL_SECONDS_PER_BIN * r * bins + KL_SECONDS_PER_CELL * cells)
    kl_work = min(_KL_CHUNK_ELEMENTS, r * (levels + 1)) * 80  # the candidate loop's ~10 float64 arrays
    return Cost(_chunk_bytes(r, kl_bytes_per_row(k, bins, levels)) + kl_work + r * 24, seconds)


def estimate(x: Sequence[int] | int, spec: QuantSpec) -> Cost:
    """Calibration plus fake quant of one tensor of shape (or ``numel``) ``x`` under ``spec``.

    >>> c = estimate((30522, 384), QuantSpec(granularity="group", group_size=2, calibration="entropy"))
    >>> c.seconds > 3600, c.bytes_peak < 1 << 30   # hours of CPU; chunked, the memory stays bounded
    (True, True)
    """
    r, k = blocks(x, spec)
    n = r * k
    fq = Cost(FQ_BYTES_PER_VALUE * n + FQ_BYTES_PER_BLOCK * r, FQ_SECONDS_PER_VALUE * n + FQ_SECONDS_PER_BLOCK * r)
    return calibration_cost(r, k, spec).then(fq)


def view_cost(x: Sequence[int] | int, spec: QuantSpec) -> Cost:
    """The tensor explorer's view of one tensor (``summarize`` and histograms), calibration included."""
    r, k = blocks(x, spec)
    n = r * k
    view = Cost(
        VIEW_BYTES_PER_VALUE * n + VIEW_BYTES_PER_BLOCK * r, VIEW_SECONDS_PER_VALUE * n + VIEW_SECONDS_PER_BLOCK * r
    )
    cal = calibration_cost(r, k, spec)
    # the calibration runs first and frees its working memory, but the float32 copy it works on is held
    return Cost(max(view.bytes_peak, cal.bytes_peak + 4 * n), view.seconds + cal.seconds)


def curve_cost(x: Sequence[int] | int, spec: QuantSpec, widths: int = CURVE_WIDTHS) -> Cost:
    """``quantlib.error_curve`` over ``widths`` bit widths: MSE / entropy recalibrate at every width."""
    r, k = blocks(x, spec)
    n = r * k
    per_width = Cost(CURVE_BYTES_PER_VALUE * n + FQ_BYTES_PER_BLOCK * r, CURVE_SECONDS_PER_VALUE_WIDTH * n)
    cal = calibration_cost(r, k, spec)
    calibrations = widths if spec.calibration in ("mse", "entropy") else 1
    return Cost(
        per_width.bytes_peak + cal.bytes_peak,
        per_width.seconds * widths + cal.seconds * calibrations + FQ_SECONDS_PER_BLOCK * r * widths,
    )


def clip_curve_cost(x: Sequence[int] | int, spec: QuantSpec, ratios: int = CLIP_SWEEP_RATIOS) -> Cost:
    """``quantlib.clip_sweep`` (every ratio on every value, an error per block and ratio) and the clip ratio
    the spec's calibration picks (one calibration)."""
    r, k = blocks(x, spec)
    n = r * k
    sweep = Cost(
        ratios * r * 8 + _chunk_bytes(r, mse_bytes_per_row(k, ratios)),
        ratios * (MSE_SECONDS_PER_VALUE_RATIO * n + MSE_SECONDS_PER_BLOCK_RATIO * r),
    )
    return sweep.then(calibration_cost(r, k, spec).then(Cost(FQ_BYTES_PER_BLOCK * r, FQ_SECONDS_PER_BLOCK * r)))


def plain(spec: QuantSpec) -> QuantSpec:
    """The cheapest way to look at the same values: per-tensor min-max, round to nearest (the baseline)."""
    return spec.replace(granularity="tensor", calibration="minmax", rounding="nearest")


# --- refusing ----------------------------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    """``300 MB``, ``24 GB`` (decimal units, as people read them); the app's one spelling of a size.

    >>> human_bytes(512), human_bytes(9400), human_bytes(2.4e10)
    ('512 B', '9.4 kB', '24 GB')
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def human_seconds(s: float) -> str:
    """``0.4 s``, ``85 s``, ``40 min``, ``3.2 h``."""
    if s < 10:
        return f"{s:.1g} s" if s < 1 else f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def describe(x: Sequence[int] | int, spec: QuantSpec) -> str:
    """The computation in words: ``per-group entropy calibration of 11,720,448 values in 5,860,224 groups of 2``."""
    r, k = blocks(x, spec)
    n = r * k
    gran = {"tensor": "per-tensor", "channel": "per-channel", "group": "per-group"}[spec.granularity]
    what = f"{gran} {spec.calibration} calibration of {n:,} values"
    if spec.granularity == "group":
        what += f" in {r:,} groups of {k:,}"
    elif spec.granularity == "channel":
        what += f" in {r:,} channels of {k:,}"
    return what


def advice(spec: QuantSpec) -> str:
    """What to change, for the settings that make a computation expensive."""
    options = []
    if spec.granularity == "group":
        options += ["per-channel", "a larger group size"]
    elif spec.granularity == "channel":
        options.append("per-tensor")
    if spec.calibration in ("mse", "entropy", "percentile"):
        options.append("minmax calibration")
    if not options:
        return "This tensor is too big to analyse on this shared server whatever the settings."
    if len(options) <= 2:
        text = " or ".join(options)
    else:
        text = ", ".join(options[:-1]) + ", or " + options[-1]
    return f"Use {text}."


def allowance(baseline: Cost) -> Cost:
    """What a request may cost: its baseline plus the interactive budget, at most :data:`MAX_BYTES` /
    :data:`MAX_SECONDS`."""
    return Cost(
        min(MAX_BYTES, baseline.bytes_peak + INTERACTIVE_BYTES),
        min(MAX_SECONDS, baseline.seconds + INTERACTIVE_SECONDS),
    )


def check(cost: Cost, baseline: Cost, what: str, spec: QuantSpec) -> None:
    """Raise :class:`BudgetExceeded` if ``cost`` is over the :func:`allowance` of ``baseline``.

    ``what`` names the computation for the message (:func:`describe`); ``spec`` decides the advice.

    >>> shape = (30522, 384)
    >>> spec = QuantSpec(granularity="group", group_size=2, calibration="entropy")
    >>> try:
    ...     check(view_cost(shape, spec), view_cost(shape, plain(spec)), describe(shape, spec), spec)
    ... except BudgetExceeded as err:
    ...     print(err)  # doctest: +ELLIPSIS
    per-group entropy calibration of 11,720,448 values in 5,860,224 groups of 2 is too big for this shared \
server: it would take ... of CPU, and one request here may use at most about 4.6 s and 1.07 GB. Use per-channel, \
a larger group size, or minmax calibration.
    """
    limit = allowance(baseline)
    over_bytes = cost.bytes_peak > limit.bytes_peak
    over_time = cost.seconds > limit.seconds
    if not (over_bytes or over_time):
        return
    needs = []
    if over_bytes:
        needs.append(f"{human_bytes(cost.bytes_peak)} of memory")
    if over_time:
        needs.append(f"about {human_seconds(cost.seconds)} of CPU")
    if over_bytes and not over_time:
        needs[0] = "about " + needs[0]
    fix = advice(spec)
    if baseline.bytes_peak > MAX_BYTES or baseline.seconds > MAX_SECONDS:
        fix = "This tensor is too big to analyse on this shared server whatever the settings."
    raise BudgetExceeded(
        f"{what} is too big for this shared server: it would take {' and '.join(needs)}, and one request here may "
        f"use at most about {human_seconds(limit.seconds)} and {human_bytes(limit.bytes_peak)}. {fix}"
    )


def require(cost: Cost, baseline: Cost, x: Sequence[int] | int, spec: QuantSpec, what: str | None = None) -> None:
    """:func:`check` with the computation described from the tensor's shape and the spec."""
    check(cost, baseline, what or describe(x, spec), spec)
