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

import torch

from .kernels import fake_quant_with, qparams_from_range
from .spec import QuantSpec

#: Clip ratios tried by the MSE search, largest first so ties keep the wider range.
MSE_CLIP_RATIOS = torch.linspace(1.0, 0.02, 50)
#: The MSE search looks at no more than this many values (a strided subsample beyond), to stay interactive.
MSE_SEARCH_MAX_VALUES = 1 << 20


def minmax_range(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(min, max)``; an empty row gives ``(0, 0)``."""
    if rows.shape[1] == 0:
        z = torch.zeros(rows.shape[0], dtype=torch.float32)
        return z, z.clone()
    lo, hi = torch.aminmax(rows, dim=1)
    return lo, hi


def _kth(rows: torch.Tensor, q: float) -> torch.Tensor:
    """Nearest-rank ``q``-quantile (``q`` in [0, 1]) of every row."""
    k = min(max(math.ceil(q * rows.shape[1]), 1), rows.shape[1])
    return torch.kthvalue(rows, k, dim=1).values


def percentile_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range from percentiles (see module doc)."""
    if rows.shape[1] == 0:
        return minmax_range(rows)
    p = float(spec.percentile) / 100.0
    if spec.scheme == "symmetric":
        amax = _kth(rows.abs(), p)
        return -amax, amax
    return _kth(rows, 1.0 - p), _kth(rows, p)


def _search_rows(rows: torch.Tensor) -> torch.Tensor:
    """A strided subsample of the columns when there are more values than the MSE search needs."""
    numel = rows.numel()
    if numel <= MSE_SEARCH_MAX_VALUES:
        return rows
    stride = math.ceil(numel / MSE_SEARCH_MAX_VALUES)
    return rows[:, ::stride].contiguous()


def clip_errors(
    rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec, ratios: torch.Tensor
) -> torch.Tensor:
    """Sum of squared errors per row, for the range ``[α·lo, α·hi]`` at each ratio ``α``: shape ``(A, R)``."""
    errors = torch.empty(len(ratios), rows.shape[0], dtype=torch.float64)
    for i, ratio in enumerate(ratios.tolist()):
        scale, zp = qparams_from_range(lo * ratio, hi * ratio, spec)
        xq = fake_quant_with(rows, scale[:, None], zp[:, None], spec)
        errors[i] = xq.sub_(rows).square_().sum(dim=1, dtype=torch.float64)
    return errors


def mse_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range with the lowest squared error among the clip ratios :data:`MSE_CLIP_RATIOS`."""
    lo, hi = minmax_range(rows)
    if rows.shape[1] == 0:
        return lo, hi
    errors = clip_errors(_search_rows(rows), lo, hi, spec, MSE_CLIP_RATIOS)
    best = errors.argmin(dim=0)  # first minimum = the widest range among ties
    ratio = MSE_CLIP_RATIOS[best]
    return lo * ratio, hi * ratio


def _kl_thresholds(mags: torch.Tensor, weights: torch.Tensor, n_levels: int) -> torch.Tensor:
    """TensorRT entropy calibration on per-row magnitudes: the threshold (per row) minimising KL(P || Q).

    ``mags`` are non-negative ``(R, K)``; ``weights`` (0/1) say which entries belong to the histogram.
    """
    r_count = mags.shape[0]
    amax = (mags * weights).amax(dim=1)
    bins = 2048 if r_count <= 16 else 512
    if n_levels >= bins:
        return amax
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    idx = (mags / safe[:, None] * bins).long().clamp_(0, bins - 1)
    flat = (idx + torch.arange(r_count)[:, None] * bins).reshape(-1)
    hist = torch.bincount(flat, weights=weights.reshape(-1).double(), minlength=r_count * bins).reshape(r_count, bins)

    step = max(1, (bins - n_levels) // 128)
    candidates = list(range(n_levels, bins + 1, step))
    if candidates[-1] != bins:
        candidates.append(bins)
    total = hist.sum(dim=1, keepdim=True).clamp_(min=1e-30)
    best_kl = torch.full((r_count,), math.inf, dtype=torch.float64)
    best_i = torch.full((r_count,), bins, dtype=torch.long)
    for i in candidates:
        head = hist[:, :i]
        p = head.clone()
        p[:, -1] += hist[:, i:].sum(dim=1)  # outliers are clipped into the last kept bin
        chunk = torch.div(torch.arange(i) * n_levels, i, rounding_mode="floor")
        nonzero = (head > 0).double()
        q_sum = torch.zeros(r_count, n_levels, dtype=torch.float64).index_add_(1, chunk, head)
        q_cnt = torch.zeros(r_count, n_levels, dtype=torch.float64).index_add_(1, chunk, nonzero)
        q = torch.where(head > 0, q_sum[:, chunk] / q_cnt[:, chunk].clamp(min=1), torch.zeros_like(head))
        p = p / total
        q = q / q.sum(dim=1, keepdim=True).clamp(min=1e-30)
        q = torch.where((p > 0) & (q == 0), torch.full_like(q, 1e-12), q)
        terms = torch.where(p > 0, p * torch.log(p / torch.where(q > 0, q, torch.ones_like(q))), torch.zeros_like(p))
        kl = terms.sum(dim=1)
        better = kl < best_kl
        best_kl = torch.where(better, kl, best_kl)
        best_i = torch.where(better, torch.full_like(best_i, i), best_i)
    return torch.minimum(best_i.to(torch.float32) / bins * amax, amax)


def _side_levels(spec: QuantSpec) -> int:
    return max(1, spec.levels // 2)


def entropy_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range from the KL-divergence method (see module doc)."""
    if rows.shape[1] == 0:
        return minmax_range(rows)
    levels = _side_levels(spec)
    if spec.scheme == "symmetric":
        t = _kl_thresholds(rows.abs(), torch.ones_like(rows), levels)
        return -t, t
    pos = (rows > 0).to(torch.float32)
    neg = (rows < 0).to(torch.float32)
    hi = _kl_thresholds(rows.clamp(min=0), pos, levels)
    lo = -_kl_thresholds((-rows).clamp(min=0), neg, levels)
    return lo, hi


def compute_range(rows: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(lo, hi)`` with the spec's calibration method."""
    if spec.calibration == "minmax":
        return minmax_range(rows)
    if spec.calibration == "percentile":
        return percentile_range(rows, spec)
    if spec.calibration == "mse":
        return mse_range(rows, spec)
    return entropy_range(rows, spec)


def range_depends_on_bits(spec: QuantSpec) -> bool:
    """Whether the calibrated range changes with the bit width (so a bit sweep must recalibrate)."""
    return spec.calibration in ("mse", "entropy")
