"""One call that answers "what does this spec do to this tensor?" - the numbers behind the tensor explorer.

>>> r = summarize(torch.linspace(-1, 1, 1001), QuantSpec(bits=4))
>>> r.levels_used, r.levels_available, r.fraction_clipped
(15.0, 16, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import metrics
from .calibration import minmax_range
from .grids import clip_range
from .kernels import fake_quant_with, in_range_mask
from .layout import BlockLayout
from .quantizer import as_float32, choose_qparams, quantize
from .spec import QParams, QuantSpec


@dataclass(frozen=True)
class QuantReport:
    """The effect of one spec on one tensor.

    ``levels_used`` counts the distinct codes that occur, averaged over blocks when there are several;
    ``fraction_clipped`` is the share of values outside the grid's reach (for integer grids: where
    ``round(x / s) + z`` falls outside ``[qmin, qmax]``; for fp8, beyond the largest value by more than half
    a step), exactly the values the straight-through estimator blocks (:func:`quantlib.kernels.in_range_mask`).
    ``block_*`` arrays hold one entry per block (channel or group) for the per-block chart.
    """

    spec: QuantSpec
    qparams: QParams
    x_hat: torch.Tensor
    mse: float
    sqnr_db: float
    max_abs_error: float
    cosine_similarity: float
    levels_used: float
    levels_available: int
    fraction_clipped: float
    block_min: np.ndarray
    block_max: np.ndarray
    block_clip_lo: np.ndarray
    block_clip_hi: np.ndarray
    block_mse: np.ndarray


def _distinct_per_row(codes: torch.Tensor) -> torch.Tensor:
    """Number of distinct values in every row of a 2-D tensor."""
    if codes.shape[1] == 0:
        return torch.zeros(codes.shape[0])
    srt, _ = torch.sort(codes, dim=1)
    return (srt[:, 1:] != srt[:, :-1]).sum(dim=1).to(torch.float32) + 1


def summarize(x: torch.Tensor, spec: QuantSpec, qparams: QParams | None = None) -> QuantReport:
    """Quantize ``x`` with ``spec`` and measure everything the tensor explorer shows."""
    xf = as_float32(x)
    if xf.numel() == 0:
        raise ValueError("cannot summarize an empty tensor")
    layout = BlockLayout.of(xf.shape, spec)
    qparams = qparams if qparams is not None else choose_qparams(xf, spec)
    qt = quantize(xf, spec, qparams)
    rows = layout.rows(xf)
    codes = layout.rows(spec.number_format.codes_for_counting(qt.q))
    scale = qparams.scale.reshape(-1, 1).to(torch.float32)
    zp = qparams.zero_point.reshape(-1, 1)
    if qparams.scale.dim() == 0:
        scale, zp = scale.reshape(1, 1), zp.reshape(1, 1)
    x_hat = layout.unview(fake_quant_with(layout.view(xf), qparams.scale, qparams.zero_point, spec))
    x_hat_rows = layout.rows(x_hat)
    clipped = ~in_range_mask(rows, scale, zp, spec)
    lo, hi = clip_range(spec, qparams)
    err = (x_hat_rows - rows).double()
    bmin, bmax = minmax_range(rows) if rows.shape[1] else (torch.zeros(1), torch.zeros(1))
    return QuantReport(
        spec=spec,
        qparams=qparams,
        x_hat=x_hat,
        mse=metrics.mse(xf, x_hat),
        sqnr_db=metrics.sqnr_db(xf, x_hat),
        max_abs_error=metrics.max_abs_error(xf, x_hat),
        cosine_similarity=metrics.cosine_similarity(xf, x_hat),
        levels_used=float(_distinct_per_row(codes).mean()),
        levels_available=spec.levels,
        fraction_clipped=float(clipped.float().mean()),
        block_min=bmin.numpy(),
        block_max=bmax.numpy(),
        block_clip_lo=lo.reshape(-1).numpy(),
        block_clip_hi=hi.reshape(-1).numpy(),
        block_mse=err.square().mean(dim=1).numpy(),
    )


def histogram(
    values: torch.Tensor, bins: int = 100, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of ``values`` (flattened), for drawing as bars instead of shipping raw values.

    >>> counts, edges = histogram(torch.tensor([0.0, 0.1, 0.9, 1.0]), bins=2)
    >>> counts.tolist(), edges.tolist()
    ([2, 2], [0.0, 0.5, 1.0])
    """
    v = as_float32(values).reshape(-1)
    if v.numel() == 0:
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    lo, hi = (float(v.min()), float(v.max())) if value_range is None else map(float, value_range)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(v, bins=bins, min=lo, max=hi)
    return counts.to(torch.int64).numpy(), np.linspace(lo, hi, bins + 1)
