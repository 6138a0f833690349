"""Sweeps for the error-curve charts: error vs bit width, and error vs clipping ratio.

Both work on the rows view and reuse the calibrated range across bit widths when the calibration method does
not depend on the width (min-max, percentile), so a 15-point curve over a million values stays interactive.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

from .calibration import clip_errors, compute_range, minmax_range, range_depends_on_bits
from .kernels import int_fake_quant, qparams_from_range
from .layout import BlockLayout
from .metrics import sqnr_from_sums
from .quantizer import as_float32
from .spec import QuantSpec

CURVE_COLUMNS = ["bits", "mse", "sqnr_db", "max_abs_error"]


def _rows_of(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    xf = as_float32(x)
    if xf.numel() == 0:
        raise ValueError("cannot draw an error curve for an empty tensor")
    return BlockLayout.of(xf.shape, spec).rows(xf)


def error_curve(x: torch.Tensor, spec: QuantSpec, bits: Iterable[int] = range(2, 17)) -> pd.DataFrame:
    """MSE, SQNR (dB) and max error of ``fake_quant(x, spec.replace(bits=b))`` for every ``b`` in ``bits``.

    Returns a DataFrame with columns ``bits, mse, sqnr_db, max_abs_error`` (definitions in
    :mod:`quantlib.metrics`). Only integer grids (``int``, ``pow2``) have a bit width to sweep.

    >>> df = error_curve(torch.linspace(-1, 1, 10_001), QuantSpec(), bits=[4, 8])
    >>> [round(v) for v in df.sqnr_db]      # ≈ 6.02 dB per bit on uniform data
    [23, 48]
    """
    if not spec.is_integer_grid:
        raise ValueError(f"format {spec.format!r} has a fixed width; error curves sweep integer grids")
    bit_list = [int(b) for b in bits]
    for b in bit_list:
        spec.replace(bits=b)  # validates every width up front, with the spec's own message
    xf = as_float32(x)
    if xf.numel() == 0:
        raise ValueError("cannot draw an error curve for an empty tensor")
    layout = BlockLayout.of(xf.shape, spec)
    rows = layout.rows(xf)
    # Quantize in the same layout as fake_quant (not the rows view), so stochastic rounding draws the same
    # noise for the same element and every point equals fake_quant's error exactly.
    view = layout.view(xf)
    x64 = xf.reshape(-1).double()
    signal = float(torch.dot(x64, x64))
    fixed = None if range_depends_on_bits(spec) else compute_range(rows, spec)
    # Two buffers reused for every width: fresh multi-megabyte tensors per width cost more in page faults
    # than the arithmetic itself.
    x_hat = torch.empty(view.shape, dtype=torch.float32)
    err = torch.empty(x64.shape, dtype=torch.float64)
    records = []
    for b in bit_list:
        sb = spec.replace(bits=b)
        lo, hi = fixed if fixed is not None else compute_range(rows, sb)
        scale, zp = qparams_from_range(lo, hi, sb)
        scale, zp = layout.to_params(scale), layout.to_params(zp)
        int_fake_quant(view, scale, zp, sb, out=x_hat)
        # x̂ - x in float64 is exact (as in quantlib.metrics); in float32 it is exact only for unclipped values
        # rounded to the nearest grid point.
        err.copy_(x_hat.reshape(-1)).sub_(x64)
        lo_e, hi_e = torch.aminmax(err)
        noise = float(torch.dot(err, err))
        records.append(
            {
                "bits": b,
                "mse": noise / err.numel(),
                "sqnr_db": sqnr_from_sums(signal, noise),
                "max_abs_error": max(-float(lo_e), float(hi_e)),
            }
        )
    return pd.DataFrame.from_records(records, columns=CURVE_COLUMNS)


def clip_sweep(x: torch.Tensor, spec: QuantSpec, ratios: Iterable[float] | None = None) -> pd.DataFrame:
    """MSE and SQNR when every block's min-max range is shrunk by a clip ratio ``α`` (1.0 = min-max).

    Small ``α`` clips many values; ``α = 1`` rounds everything coarsely. The best ``α`` sits in between for
    heavy-tailed tensors at low bit widths. Returns columns ``ratio, mse, sqnr_db``.
    """
    ratio_t = torch.linspace(0.05, 1.0, 39) if ratios is None else torch.as_tensor(list(ratios), dtype=torch.float32)
    rows = _rows_of(x, spec)
    lo, hi = minmax_range(rows)
    sse = clip_errors(rows, lo, hi, spec, ratio_t).sum(dim=1)
    flat = rows.reshape(-1).double()
    signal = float(torch.dot(flat, flat))
    return pd.DataFrame(
        {
            "ratio": ratio_t.tolist(),
            "mse": (sse / rows.numel()).tolist(),
            "sqnr_db": [sqnr_from_sums(signal, float(s)) for s in sse],
        }
    )


def calibrated_clip_ratio(x: torch.Tensor, spec: QuantSpec) -> float:
    """How far the spec's calibration shrinks the min-max range, averaged over blocks (1.0 = no clipping).

    The ratio of a block is ``max(|lo|, |hi|) / max(|min|, |max|)`` of the calibrated vs the min-max range.
    """
    rows = _rows_of(x, spec)
    lo, hi = compute_range(rows, spec)
    mlo, mhi = minmax_range(rows)
    cal = torch.maximum(lo.abs(), hi.abs())
    full = torch.maximum(mlo.abs(), mhi.abs())
    ratio = torch.where(full > 0, cal / torch.where(full > 0, full, torch.ones_like(full)), torch.ones_like(full))
    return float(ratio.mean())
