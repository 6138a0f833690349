"""Choosing the range ``[lo, hi]`` a quantizer covers, for every block (row) at once.

Values outside the range are *clipped*; values inside are *rounded*. A wide range never clips but rounds coarsely;
a narrow one rounds finely but clips the outliers. The methods trade the two differently:

- ``minmax``: ``[min(x), max(x)]`` - never clips.
- ``percentile``: the ``p``-th percentile of ``|x|`` (symmetric) or the ``(100-p)``-th and ``p``-th percentiles
  (asymmetric), nearest-rank. E.g. ``p = 99`` on 1000 values ignores the 10 largest magnitudes.
- ``mse``: shrink the min-max range by a clip ratio ``α`` in ``{0.02, 0.04, ..., 1.0}`` and keep the ``α`` with
  the lowest squared error ``Σ(x - x̂)²`` (ties keep the wider range).
- ``entropy``: TensorRT's KL method - histogram ``|x|`` into 2048 bins, and pick the threshold whose clipped,
  re-quantized histogram ``Q`` is closest to the original ``P`` in ``KL(P || Q)``. The asymmetric scheme applies it
  to each side of zero with half the levels.

Every function here takes the rows view ``(R, K)`` (see :mod:`quantlib.layout`) and returns per-row tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import torch

from .kernels import code_bounds, fake_quant_with, qparams_from_range
from .spec import QuantSpec

#: Clip ratios tried by the MSE search, largest first so ties keep the wider range.
MSE_CLIP_RATIOS = torch.linspace(1.0, 0.02, 50)
#: Entropy calibration evaluates this many (candidate x row x chunk) entries at a time (~10 float64 arrays of
#: this many entries are alive at once: ~40 MB).
_KL_CHUNK_ELEMENTS = 1 << 19
#: The MSE search looks at no more than this many values (a strided subsample beyond), to stay interactive.
MSE_SEARCH_MAX_VALUES = 1 << 20
#: Working memory of the per-row searches (entropy, MSE clip, clip sweeps): their rows are processed in chunks
#: that need about this much at once. Each row is searched on its own, so the result does not depend on the
#: chunking - only the memory does, which no longer grows with the number of blocks.
ROW_CHUNK_BYTES = 64 << 20
#: Bytes of working memory per (row, clip ratio) of the MSE search and clip sweep: the float64 error, the
#: ratio's scale and zero point and their temporaries.
MSE_BYTES_PER_ROW_RATIO = 48
#: Bytes per value the MSE search and clip sweep hold while fake-quantizing a chunk (the float32 result, and
#: the stochastic-rounding noise when that is the rounding mode).
MSE_BYTES_PER_VALUE = 12
#: Bytes per value of entropy calibration: magnitudes, 0/1 weights (float32 and float64), bin indices (int64,
#: twice: per row and flattened).
KL_BYTES_PER_VALUE = 40
#: Bytes per histogram bin of a row (float64): the histogram, its three prefix sums, p, p log p and temporaries.
KL_BYTES_PER_BIN = 80
#: Bytes per (row, quantization level) of the KL evaluation of one candidate threshold: about ten float64
#: arrays of shape (candidates, rows, levels + 1).
KL_BYTES_PER_LEVEL = 96


def row_chunks(r_count: int, bytes_per_row: int, budget: int | None = None) -> Iterator[slice]:
    """Consecutive slices of ``range(r_count)`` whose rows need at most ``budget`` bytes (default
    :data:`ROW_CHUNK_BYTES`) at ``bytes_per_row`` each; at least one row per slice.

    >>> [(s.start, s.stop) for s in row_chunks(10, 300, budget=1000)]
    [(0, 3), (3, 6), (6, 9), (9, 10)]
    """
    per = max(1, (ROW_CHUNK_BYTES if budget is None else budget) // max(1, bytes_per_row))
    for start in range(0, r_count, per):
        yield slice(start, min(start + per, r_count))


def minmax_range(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(min, max)``; an empty row gives ``(0, 0)``."""
    if rows.shape[1] == 0:
        z = torch.zeros(rows.shape[0], dtype=torch.float32)
        return z, z.clone()
    # amin + amax, not aminmax(dim=1): the fused row-wise kernel is ~15x slower on CPU (torch 2.13).
    return torch.amin(rows, dim=1), torch.amax(rows, dim=1)


def _kth(rows: torch.Tensor, q: float | Fraction) -> torch.Tensor:
    """Nearest-rank ``q``-quantile (``q`` in [0, 1]) of every row: the ``ceil(q·K)``-th smallest value."""
    k = min(max(math.ceil(q * rows.shape[1]), 1), rows.shape[1])
    return torch.kthvalue(rows, k, dim=1).values


def _percentile_fraction(percentile: float) -> Fraction:
    """``percentile / 100`` as the exact decimal the user wrote, so that the rank is not off by one.

    In binary floating point ``99.9 / 100 * 1000 = 999.0000000000001``, whose ceiling (1000) would keep the
    largest value instead of clipping it; ``Fraction("99.9") / 100 * 1000`` is exactly 999.
    """
    return Fraction(repr(float(percentile))) / 100


def percentile_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range from percentiles (see module doc)."""
    if rows.shape[1] == 0:
        return minmax_range(rows)
    p = _percentile_fraction(spec.percentile)
    if spec.scheme == "symmetric":
        amax = _kth(rows.abs(), p)
        return -amax, amax
    return _kth(rows, 1 - p), _kth(rows, p)


def _search_rows(rows: torch.Tensor) -> torch.Tensor:
    """A strided subsample of the columns when there are more values than the MSE search needs."""
    numel = rows.numel()
    if numel <= MSE_SEARCH_MAX_VALUES:
        return rows
    stride = math.ceil(numel / MSE_SEARCH_MAX_VALUES)
    return rows[:, ::stride].contiguous()


def mse_bytes_per_row(k: int, n_ratios: int) -> int:
    """Working memory of one row of ``k`` values in :func:`clip_errors` over ``n_ratios`` clip ratios."""
    return MSE_BYTES_PER_ROW_RATIO * n_ratios + MSE_BYTES_PER_VALUE * k


def _fake_quant_noise(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec, noise: torch.Tensor
) -> torch.Tensor:
    """Stochastic-rounding integer fake quant with the noise given: ``(clamp(floor(x / s + u)) ...) · s``.

    The same operations as :func:`quantlib.kernels.int_fake_quant` with ``round_values``' stochastic branch, but
    with ``u`` passed in, so that a chunk of rows gets exactly the noise it would get in the whole tensor.
    """
    r = (x * (1.0 / scale)).add_(noise).floor_()
    lo, hi = code_bounds(scale, zero_point, spec)
    if isinstance(lo, float):
        r.clamp_(lo, hi)
    else:
        r.clamp_(min=lo).clamp_(max=hi)
    return r.mul_(scale)


def _chunk_errors(
    rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec, ratios: torch.Tensor
) -> Iterator[tuple[slice, torch.Tensor]]:
    """:func:`clip_errors` one chunk of rows at a time: ``(rows slice, errors (A, r))``."""
    r_count, k = rows.shape
    noise = None
    if spec.rounding == "stochastic" and spec.is_integer_grid:
        noise = torch.rand(rows.shape, generator=torch.Generator().manual_seed(spec.seed), dtype=rows.dtype)
    ratio_list = ratios.tolist()
    for sl in row_chunks(r_count, mse_bytes_per_row(k, len(ratio_list))):
        part, part_lo, part_hi = rows[sl], lo[sl], hi[sl]
        errors = torch.empty(len(ratio_list), part.shape[0], dtype=torch.float64)
        for i, ratio in enumerate(ratio_list):
            scale, zp = qparams_from_range(part_lo * ratio, part_hi * ratio, spec)
            if noise is None:
                xq = fake_quant_with(part, scale[:, None], zp[:, None], spec)
            else:
                xq = _fake_quant_noise(part, scale[:, None], zp[:, None], spec, noise[sl])
            # squares and sums in float64: squaring in float32 first would cost ~1e-8 relative accuracy
            errors[i] = torch.linalg.vector_norm(xq.sub_(part), dim=1, dtype=torch.float64).square_()
        yield sl, errors


def clip_errors(
    rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec, ratios: torch.Tensor
) -> torch.Tensor:
    """Sum of squared errors per row, for the range ``[α·lo, α·hi]`` at each ratio ``α``: shape ``(A, R)``.

    Rows are fake-quantized in chunks of about :data:`ROW_CHUNK_BYTES` (one row's error does not depend on the
    others); stochastic rounding draws the noise of the whole ``(R, K)`` tensor, as ``fake_quant`` would, and
    hands every chunk its own part of it.
    """
    errors = torch.empty(len(ratios), rows.shape[0], dtype=torch.float64)
    for sl, part in _chunk_errors(rows, lo, hi, spec, ratios):
        errors[:, sl] = part
    return errors


def mse_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range with the lowest squared error among the clip ratios :data:`MSE_CLIP_RATIOS`."""
    lo, hi = minmax_range(rows)
    if rows.shape[1] == 0:
        return lo, hi
    best = torch.empty(rows.shape[0], dtype=torch.int64)
    for sl, errors in _chunk_errors(_search_rows(rows), lo, hi, spec, MSE_CLIP_RATIOS):
        best[sl] = errors.argmin(dim=0)  # first minimum = the widest range among ties
    ratio = MSE_CLIP_RATIOS[best]
    return lo * ratio, hi * ratio


def _at(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[r, idx[c, k]]`` as a ``(C, R, k)`` tensor, for a per-row table ``(R, B)`` and indices ``(C, k)``."""
    return table[:, idx].permute(1, 0, 2)


def _kl_per_candidate(hist: torch.Tensor, cand: torch.Tensor, n_levels: int) -> torch.Tensor:
    """``KL(P || Q)`` of every row's histogram ``(R, B)`` for every candidate threshold bin in ``cand`` ``(C,)``.

    TensorRT's construction for a threshold at bin ``i``: ``P`` is ``hist[:i]`` with everything beyond (the
    outliers, ``S_i``) added to bin ``i - 1``; ``Q`` merges ``hist[:i]`` into ``n_levels`` chunks (bin ``j`` in
    chunk ``floor(j * n / i)``) and spreads each chunk's count evenly over its non-empty bins. Both are then
    normalised (``P`` by the total ``T``, ``Q`` by ``H_i = sum(hist[:i])``), and a bin where ``P > 0 = Q`` gets
    ``Q = 1e-12``. Written per bin that is ``O(C · R · B)`` work; grouped per chunk it is

        KL_i = sum_{j < i} p_j log p_j  -  sum_c P_c log(sum_c / (cnt_c · H_i))  [- p_{i-1} log 1e-12]

    where ``P_c`` is the mass of ``P`` in chunk ``c``, and prefix sums of ``hist``, of ``hist > 0`` and of
    ``p log p`` give every term in ``O(C · R · n_levels)``. Counts are integers, so the chunk sums are exact.
    """
    r_count, bins = hist.shape
    total = hist.sum(dim=1, keepdim=True).clamp_(min=1e-30)  # (R, 1)
    zeros = torch.zeros(r_count, 1, dtype=torch.float64)
    prefix = torch.cat([zeros, hist.cumsum(dim=1)], dim=1)  # (R, B + 1)
    prefix_nz = torch.cat([zeros, (hist > 0).to(torch.float64).cumsum(dim=1)], dim=1)
    p_bins = hist / total
    plogp = torch.where(p_bins > 0, p_bins * torch.log(torch.where(p_bins > 0, p_bins, 1.0)), 0.0)
    prefix_plogp = torch.cat([zeros, plogp.cumsum(dim=1)], dim=1)

    kl_rows = []
    c = torch.arange(n_levels + 1)
    per_chunk = max(1, _KL_CHUNK_ELEMENTS // (r_count * (n_levels + 1)))
    for start in range(0, len(cand), per_chunk):
        i = cand[start : start + per_chunk]  # (C,)
        bounds = torch.div(c[None, :] * i[:, None] + n_levels - 1, n_levels, rounding_mode="floor")  # (C, n+1)

        sums = _at(prefix, bounds).diff(dim=2)  # (C, R, n): count in every chunk
        cnts = _at(prefix_nz, bounds).diff(dim=2)
        head = _at(prefix, i[:, None]).squeeze(2)  # (C, R): H_i
        outliers = prefix[:, -1][None, :] - head  # S_i
        last = _at(hist, (i - 1)[:, None]).squeeze(2)  # hist[i - 1]
        p_last = (last + outliers) / total.T
        # sum_{j < i} p_j log p_j, with bin i - 1 holding the outliers too
        a = _at(prefix_plogp, (i - 1)[:, None]).squeeze(2)
        a = a + torch.where(p_last > 0, p_last * torch.log(torch.where(p_last > 0, p_last, 1.0)), 0.0)
        # sum_c P_c log q_c, q_c = sum_c / (cnt_c H_i) on every non-empty bin of chunk c
        safe_head = torch.where(head > 0, head, 1.0)[:, :, None]
        log_q = torch.log(torch.where(sums > 0, sums, 1.0) / (cnts.clamp(min=1) * safe_head))
        mass = sums / total.T[:, :, None]
        b = torch.where(sums > 0, mass * log_q, 0.0).sum(dim=2)
        b = b + torch.where(last > 0, outliers / total.T * log_q[:, :, -1], 0.0)  # outliers in a non-empty bin
        e = torch.where((last == 0) & (p_last > 0), p_last * math.log(1e-12), 0.0)  # ... or in an empty one
        kl_rows.append(a - b - e)
    return torch.cat(kl_rows, dim=0)


def kl_bins(r_count: int) -> int:
    """Histogram bins of entropy calibration: 2048 for up to 16 blocks, 512 beyond (fewer values per block)."""
    return 2048 if r_count <= 16 else 512


def kl_candidates(bins: int, n_levels: int) -> list[int]:
    """Threshold bins tried by entropy calibration: ``n_levels .. bins`` in about 128 steps (the last included)."""
    step = max(1, (bins - n_levels) // 128)
    candidates = list(range(n_levels, bins + 1, step))
    if candidates[-1] != bins:
        candidates.append(bins)
    return candidates


def kl_bytes_per_row(k: int, bins: int, n_levels: int) -> int:
    """Working memory of one row of ``k`` values in entropy calibration (see the ``KL_BYTES_*`` constants)."""
    return KL_BYTES_PER_VALUE * k + KL_BYTES_PER_BIN * bins + KL_BYTES_PER_LEVEL * (n_levels + 1)


def _kl_thresholds(mags: torch.Tensor, weights: torch.Tensor, n_levels: int, bins: int) -> torch.Tensor:
    """TensorRT entropy calibration on per-row magnitudes: the threshold (per row) minimising KL(P || Q).

    ``mags`` are non-negative ``(R, K)``; ``weights`` (0/1) say which entries belong to the histogram; ``bins``
    is :func:`kl_bins` of the *whole* tensor's row count (this may be one chunk of it).
    """
    r_count = mags.shape[0]
    amax = (mags * weights).amax(dim=1)
    if n_levels >= bins:
        return amax
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    idx = (mags / safe[:, None] * bins).long().clamp_(0, bins - 1)
    flat = (idx + torch.arange(r_count)[:, None] * bins).reshape(-1)
    del idx
    hist = torch.bincount(flat, weights=weights.reshape(-1).double(), minlength=r_count * bins).reshape(r_count, bins)
    del flat

    candidates = kl_candidates(bins, n_levels)
    kl = _kl_per_candidate(hist, torch.tensor(candidates), n_levels)  # (C, R)
    # The first candidate within rounding of the minimum: the smallest threshold among (near-)ties, as a
    # sequential scan with a strict "<" would pick, but not swayed by the last bit of a sum.
    best_kl = kl.min(dim=0).values
    near = kl <= best_kl + 1e-12 * best_kl.abs().clamp(min=1.0)
    first = near.to(torch.int8).argmax(dim=0)
    best_i = torch.tensor(candidates)[first]
    return torch.minimum(best_i.to(torch.float32) / bins * amax, amax)


def _side_levels(spec: QuantSpec) -> int:
    return max(1, spec.levels // 2)


def _entropy_chunk(rows: torch.Tensor, spec: QuantSpec, levels: int, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    if spec.scheme == "symmetric":
        t = _kl_thresholds(rows.abs(), torch.ones_like(rows), levels, bins)
        return -t, t
    pos = (rows > 0).to(torch.float32)
    hi = _kl_thresholds(rows.clamp(min=0), pos, levels, bins)
    del pos
    neg = (rows < 0).to(torch.float32)
    lo = -_kl_thresholds((-rows).clamp(min=0), neg, levels, bins)
    return lo, hi


def entropy_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range from the KL-divergence method (see module doc).

    Rows are calibrated in chunks of about :data:`ROW_CHUNK_BYTES` of working memory (each row's histogram and
    search are its own), so a per-group spec on a big tensor needs tens of MB rather than ~24 kB per group.
    """
    if rows.shape[1] == 0:
        return minmax_range(rows)
    levels = _side_levels(spec)
    r_count, k = rows.shape
    bins = kl_bins(r_count)
    parts = [
        _entropy_chunk(rows[sl], spec, levels, bins)
        for sl in row_chunks(r_count, kl_bytes_per_row(k, bins, levels))
    ]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([lo for lo, _ in parts]), torch.cat([hi for _, hi in parts])


def compute_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(lo, hi)`` with the spec's calibration method; a constant row ``c`` always gets ``[c, c]``."""
    if spec.calibration == "minmax":
        return minmax_range(rows)
    if spec.calibration == "percentile":
        lo, hi = percentile_range(rows, spec)
    elif spec.calibration == "mse":
        lo, hi = mse_range(rows, spec)
    else:
        lo, hi = entropy_range(rows, spec)
    # A constant row has nothing to calibrate: keep its range [c, c] (the symmetric methods would return
    # [-|c|, |c|] or clip it), so that the constant rule of qparams_from_range brings it back exactly.
    mn, mx = minmax_range(rows)
    constant = mn == mx
    if bool(constant.any()):
        lo = torch.where(constant, mn, lo)
        hi = torch.where(constant, mx, hi)
    return lo, hi


def range_depends_on_bits(spec: QuantSpec) -> bool:
    """Whether the calibrated range changes with the bit width (so a bit sweep must recalibrate)."""
    return spec.calibration in ("mse", "entropy")
