"""The arithmetic of one quantizer, given its scale and zero point: round, clamp, read back.

All functions take float32 tensors and scale / zero-point tensors that broadcast against them. They are shared
by :mod:`quantlib.quantizer` (the public API) and :mod:`quantlib.calibration` (which tries many clip ranges).
The integer-grid arithmetic lives here; :func:`fake_quant_with`, :func:`in_range_mask` and
:func:`qparams_from_range` work for any format by asking :mod:`quantlib.formats`, where each format's own
grid and code arithmetic live.

Integer grid, with ``inv_s = 1 / s`` computed in float32 as PyTorch's kernels do (``x * inv_s`` and ``x / s``
differ in the last bit for a few values, which can flip a tie):

    q  = clamp(round(x * inv_s) + z, qmin, qmax)
    x̂ = (q - z) * s

Example, ``s = 0.5, z = 0`` on the int4 grid ``[-8, 7]``: ``x = 1.3 -> 2.6 -> q = 3 -> x̂ = 1.5``;
``x = 9.0 -> 18 -> q = 7 -> x̂ = 3.5`` (clipped).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .formats import NumberFormat
    from .spec import QuantSpec

#: Smallest scale we allow: a zero range (all-zero block) must not divide by zero. ``finfo.tiny`` rather than
#: ``eps`` keeps very small but non-zero tensors (say 1e-20) quantizable instead of collapsing them to 0.
MIN_SCALE = torch.finfo(torch.float32).tiny


def round_values(v: torch.Tensor, spec: QuantSpec, inplace: bool = False) -> torch.Tensor:
    """Round ``v`` to integers with the spec's rounding mode.

    ``nearest`` rounds half to even (``torch.round``: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2); ``truncate`` rounds
    toward zero; ``stochastic`` returns ``floor(v + u)`` with ``u ~ U[0, 1)`` drawn from a generator seeded
    with ``spec.seed`` (unbiased: ``E[result] = v``).
    """
    if spec.rounding == "nearest":
        return v.round_() if inplace else torch.round(v)
    if spec.rounding == "truncate":
        return v.trunc_() if inplace else torch.trunc(v)
    gen = torch.Generator().manual_seed(spec.seed)
    noise = torch.rand(v.shape, generator=gen, dtype=v.dtype)
    return (v.add_(noise) if inplace else v + noise).floor_()


#: Largest finite float32 (~3.4e38).
_FLOAT32_MAX = torch.finfo(torch.float32).max


def code_bounds(
    scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec
) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """Bounds on ``q - z`` per block: ``[qmin - z, qmax - z]``, narrowed only where ``(q - z) · s`` would be
    beyond float32 (±inf).

    That takes a range within about one grid step of float32's largest value (~3.4e38), e.g. 2-bit
    asymmetric over ``[-3e38, 3e38]``, whose rounded zero point pushes the grid's top end past it: the codes
    there are dropped, so those values clip to the largest finite grid value instead of becoming inf. For
    every other range these are exactly ``[qmin - z, qmax - z]``. Bounds that are the same for every block
    (per-tensor, or symmetric) come back as Python numbers - a scalar clamp is the fastest - others as tensors
    shaped like the params.
    """
    if scale.dim() == 0 and zero_point.dim() == 0:
        z = int(zero_point)
        limit = math.floor(_FLOAT32_MAX / float(scale))
        return float(max(spec.qmin - z, -limit)), float(min(spec.qmax - z, limit))
    zf = zero_point.to(torch.float32)
    limit = torch.floor(_FLOAT32_MAX / scale.to(torch.float64)).to(torch.float32)  # inf for small scales
    lo, hi = torch.maximum(spec.qmin - zf, -limit), torch.minimum(spec.qmax - zf, limit)
    if lo.numel() and bool((lo == lo.min()).all() & (hi == hi.max()).all()):
        return float(lo.min()), float(hi.max())  # the same for every block (e.g. symmetric): a scalar clamp
    return lo, hi


def int_fake_quant(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    spec: QuantSpec,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(clamp(round(x * inv_s) + z, qmin, qmax) - z) * s`` in four passes over memory.

    ``clamp(r + z, qmin, qmax) - z == clamp(r, qmin - z, qmax - z)`` exactly because ``r`` and ``z`` are
    integers held exactly in float32, so the zero point never has to be added and removed. The bounds are
    :func:`code_bounds` (the same as these except near float32's largest value). ``out`` (float32, shaped like
    ``x``) receives the result when given: reusing a buffer across calls avoids the page faults of a fresh
    large allocation, which cost more than the arithmetic.
    """
    inv = 1.0 / scale
    r = round_values(torch.mul(x, inv, out=out) if out is not None else x * inv, spec, inplace=True)
    lo, hi = code_bounds(scale, zero_point, spec)
    if isinstance(lo, float):
        r.clamp_(lo, hi)
    else:
        r.clamp_(min=lo).clamp_(max=hi)  # two one-sided clamps: ~8x faster than clamp(r, lo, hi) with tensors
    return r.mul_(scale)


def int_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Integer codes ``q = clamp(round(x * inv_s) + z, qmin, qmax)`` as int32 (bounds: :func:`code_bounds`)."""
    r = round_values(x * (1.0 / scale), spec, inplace=True)
    lo, hi = code_bounds(scale, zero_point, spec)
    if isinstance(lo, float):
        r.clamp_(lo, hi)
    else:
        r.clamp_(min=lo).clamp_(max=hi)  # two one-sided clamps: ~8x faster than clamp(r, lo, hi) with tensors
    return r.add_(zero_point.to(torch.float32)).to(torch.int32)


def int_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``x̂ = (q - z) * s`` in float32."""
    return (q.to(torch.float32) - zero_point.to(torch.float32)) * scale


def int_in_range_mask(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Where the straight-through estimator passes the gradient: ``qmin <= round(x * inv_s) + z <= qmax``.

    This is the mask of ``torch.fake_quantize_per_tensor_affine``'s backward (bounds: :func:`code_bounds`).
    """
    r = round_values(x * (1.0 / scale), spec, inplace=True)
    lo, hi = code_bounds(scale, zero_point, spec)
    return (r >= lo) & (r <= hi)


def number_format(spec: QuantSpec) -> NumberFormat:
    """The :class:`~quantlib.formats.NumberFormat` of ``spec`` (imported here on first use: the formats build
    on the integer arithmetic above)."""
    from .formats import get

    return get(spec.format)


def in_range_mask(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Where ``x`` is *not* clipped, for any format: the straight-through estimator's mask.

    Integer grids: :func:`int_in_range_mask` (``x`` may pass the grid's end by less than half a step, as it
    then rounds to the end anyway); fp8 and nf4: see their :meth:`~quantlib.formats.NumberFormat.in_range`.
    """
    return number_format(spec).in_range(x, scale, zero_point, spec)


def fake_quant_with(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Fake-quantize ``x`` (float32) with given scale / zero point, for any format."""
    return number_format(spec).fake_quant(x, scale, zero_point, spec)


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point (per row) that map the range ``[lo, hi]`` onto the spec's grid.

    - symmetric int: ``s = max(|lo|, |hi|) / (2^(b-1) - 1)``, ``z = 0``;
      e.g. ``[-0.5, 1.27]`` at 8 bits gives ``s = 1.27 / 127 = 0.01``.
    - asymmetric int: the range is widened to include 0, ``s = (hi - lo) / (2^b - 1)``,
      ``z = clamp(qmin - round(lo / s), qmin, qmax)``; e.g. ``[-1, 3]`` at 2 bits gives
      ``s = 4 / 3``, ``z = 0 - round(-0.75) = 1``, grid ``{-4/3, 0, 4/3, 8/3}``. Same arithmetic as
      ``torch.ao.quantization.MinMaxObserver`` (float32, ``torch.round``).
    - pow2: the int scale rounded *up* to a power of two (:func:`pow2_at_least`), so the range still fits.
    - fp8: ``s = amax / max_finite`` (448 for e4m3); nf4: ``s = amax`` (the codebook spans [-1, 1]).

    A constant block (``lo == hi != 0``) gets a scale that puts the constant on the grid by a power of two
    (``|c| / 2^(b-2)`` symmetric, ``|c| / 2^(b-1)`` asymmetric, ``|c| / 256`` fp8), so it comes back exactly;
    an all-zero block gets ``MIN_SCALE`` and comes back as zeros.
    """
    return number_format(spec).qparams_from_range(lo, hi, spec)


#: Largest power of two a float32 holds (2^127); 2^128 is already infinite.
_MAX_POW2 = 2.0**127


def pow2_at_least(s: torch.Tensor) -> torch.Tensor:
    """The smallest power of two ``>= s`` (positive float32), capped at 2^127.

    Read off the float's exponent with ``frexp`` rather than ``exp2(ceil(log2(s)))``: float32 ``log2`` of a
    value just above ``2^k`` rounds to exactly ``k`` for most ``k``, which would give a scale *below* ``s`` (the
    range would no longer fit).

    >>> pow2_at_least(torch.tensor([0.3, 0.25, 3.0])).tolist()
    [0.5, 0.25, 4.0]
    """
    mant, exp = torch.frexp(s)  # s = mant * 2^exp, mant in [0.5, 1)
    exp = exp - (mant == 0.5).to(exp.dtype)
    return torch.ldexp(torch.ones_like(s), exp).clamp_(max=_MAX_POW2)
