"""The arithmetic of one quantizer, given its scale and zero point: round, clamp, read back.

All functions take float32 tensors and scale / zero-point tensors that broadcast against them. They are shared
by :mod:`quantlib.quantize` (the public API) and :mod:`quantlib.calibration` (which tries many clip ranges).

Integer grid, with ``inv_s = 1 / s`` computed in float32 as PyTorch's kernels do (``x * inv_s`` and ``x / s``
differ in the last bit for a few values, which can flip a tie):

    q  = clamp(round(x * inv_s) + z, qmin, qmax)
    x̂ = (q - z) * s

Example, ``s = 0.5, z = 0`` on the int4 grid ``[-8, 7]``: ``x = 1.3 -> 2.6 -> q = 3 -> x̂ = 1.5``;
``x = 9.0 -> 18 -> q = 7 -> x̂ = 3.5`` (clipped).
"""

from __future__ import annotations

import math

import torch

from .spec import QuantSpec, fp8_dtype, fp8_max

#: The 16 values of the NF4 data type (QLoRA, Dettmers et al. 2023): quantiles of a standard normal,
#: normalised to [-1, 1], with an exact zero. A block is scaled by its absmax onto this codebook.
NF4_CODEBOOK = torch.tensor(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ],
    dtype=torch.float32,
)
_NF4_MIDPOINTS = (NF4_CODEBOOK[1:] + NF4_CODEBOOK[:-1]) / 2

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


def in_range_mask(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Where ``x`` is *not* clipped, for any format: the straight-through estimator's mask.

    Integer grids: :func:`int_in_range_mask` (``x`` may pass the grid's end by less than half a step, as it
    then rounds to the end anyway). fp8, likewise: ``|x / s|`` below the largest finite value plus half the
    spacing there (464 for e4m3, 61440 for e5m2), i.e. the values that round to a finite fp8 value without
    saturating - so a block's own absmax, whose ``x / s`` can come out a last bit above 448, is not clipped.
    nf4: ``|x / s| <= 1`` (``s`` is the absmax, and ``absmax / absmax`` is exactly 1).
    """
    if spec.is_integer_grid:
        return int_in_range_mask(x, scale, zero_point, spec)
    v = torch.div(x, scale).abs_()
    if spec.format == "nf4":
        return v <= 1.0
    return v < fp8_reach(spec.format)


def fp8_reach(fmt: str) -> float:
    """Where an fp8 format starts to saturate: its largest finite value plus half the spacing below it.

    >>> fp8_reach("fp8_e4m3"), fp8_reach("fp8_e5m2")
    (464.0, 61440.0)
    """
    info = torch.finfo(fp8_dtype(fmt))
    top_spacing = info.eps * 2.0 ** math.floor(math.log2(info.max))
    return info.max + top_spacing / 2


def fp8_quantize(x: torch.Tensor, scale: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """fp8 codes of ``x / s``: clamp to the format's finite range, then cast (round to nearest even).

    Clamping first matters: casting an out-of-range float32 to fp8 is not a saturating operation on every
    backend, and e4m3fn has no infinity to land on.
    """
    m = fp8_max(spec.format)
    # A true division, as documented: ``x * (1 / s)`` differs from ``x / s`` in the last bit for a few values,
    # which can move the result to the neighbouring fp8 value.
    return torch.div(x, scale).clamp_(-m, m).to(fp8_dtype(spec.format))


def fp8_fake_quant(x: torch.Tensor, scale: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """``x̂ = fp8(clamp(x / s)) * s``."""
    return fp8_quantize(x, scale, spec).to(torch.float32).mul_(scale)


def nf4_quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Index (uint8, 0..15) of the NF4 code nearest to ``x / absmax``; ties go to the lower code."""
    v = (x / scale).clamp_(-1.0, 1.0).contiguous()  # bucketize copies (and warns) otherwise
    return torch.bucketize(v, _NF4_MIDPOINTS).to(torch.uint8)


def nf4_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x̂ = codebook[q] * absmax``."""
    return NF4_CODEBOOK[q.long()] * scale


def fake_quant_with(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Fake-quantize ``x`` (float32) with given scale / zero point, for any format."""
    if spec.is_integer_grid:
        return int_fake_quant(x, scale, zero_point, spec)
    if spec.format == "nf4":
        return nf4_dequantize(nf4_quantize(x, scale), scale)
    return fp8_fake_quant(x, scale, spec)


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
    lo = lo.to(torch.float32)
    hi = hi.to(torch.float32)
    constant = (lo == hi) & (lo != 0)
    c = lo.abs()
    if spec.scheme == "symmetric":
        amax = torch.maximum(-lo, hi).clamp_(min=0)
        if spec.format == "nf4":
            scale = amax.clone()
        elif spec.format in ("fp8_e4m3", "fp8_e5m2"):
            scale = amax / fp8_max(spec.format)
            scale = torch.where(constant, c / 256.0, scale)
        else:
            scale = amax / float(spec.qmax)
            if spec.format == "int":
                scale = torch.where(constant, c / float(2 ** (spec.bits - 2)), scale)
        zero_point = torch.zeros(scale.shape, dtype=torch.int32)
    else:
        lo_neg = torch.clamp(lo, max=0.0)
        hi_pos = torch.clamp(hi, min=0.0)
        span = float(spec.qmax - spec.qmin)
        scale = (hi_pos - lo_neg) / span
        overflow = ~torch.isfinite(scale)
        if overflow.any():
            # hi - lo overflows float32 for ranges near ±3.4e38: compute the same quotient in float64.
            scale = torch.where(overflow, (hi_pos.double() / span - lo_neg.double() / span).float(), scale)
        if spec.format == "int":
            scale = torch.where(constant, c / float(2 ** (spec.bits - 1)), scale)
        zero_point = None  # computed after the scale is final
    scale = scale.clamp_(min=MIN_SCALE)
    if spec.format == "pow2":
        scale = pow2_at_least(scale)
    if zero_point is None:
        zero_point = _zero_point(lo_neg, scale, spec)
    return scale, zero_point


def _zero_point(lo_neg: torch.Tensor, scale: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    z = spec.qmin - torch.round(lo_neg / scale)
    return z.clamp_(spec.qmin, spec.qmax).to(torch.int32)


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
