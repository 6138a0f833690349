"""fp8: e4m3 (OCP ``float8_e4m3fn``, largest value 448) and e5m2 (largest 57344), as PyTorch's dtypes hold them.

    s = amax / max_finite         code = fp8(clamp(x / s, −max, max))         x̂ = code · s

A block's absmax maps onto the format's largest value; the cast rounds to the nearest fp8 value (ties to even).
The grid is non-uniform: e4m3 has 253 distinct finite values, dense near zero. Values past the range
saturate at ±max (a plain cast to e5m2 would overflow to inf).

Example, e4m3 with ``amax = 4.48``: ``s = 0.01``, ``x = 1.234 -> 123.4 -> 120`` (fp8 values are 8 apart between 64
and 128) ``-> x̂ = 1.2``.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING

import torch

from ..kernels import MIN_SCALE
from .base import NumberFormat

if TYPE_CHECKING:
    from ..spec import QuantSpec


class FP8Format(NumberFormat):
    """One fp8 layout, backed by a torch dtype."""

    fixed_bits = 8
    symmetric_only = True

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name = name
        self.dtype = dtype
        self.max = float(torch.finfo(dtype).max)

    @property
    def reach(self) -> float:
        """Where saturation starts: the largest finite value plus half the spacing below it (464 for e4m3,
        61440 for e5m2): values below round to a finite value of the format."""
        info = torch.finfo(self.dtype)
        return info.max + info.eps * 2.0 ** math.floor(math.log2(info.max)) / 2

    def all_values(self) -> torch.Tensor:
        """Every distinct finite value of the format, sorted (+0 and −0 count once)."""
        return _fp8_values(self.dtype)

    def code_range(self, spec: QuantSpec) -> tuple[int, int]:
        return -int(self.max), int(self.max)

    def levels(self, spec: QuantSpec) -> int:
        return int(self.all_values().numel())

    def values(self, scale: float, zero_point: int, spec: QuantSpec) -> torch.Tensor:
        return self.all_values() * scale

    def clip_bounds(self, scale: torch.Tensor, zero_point: torch.Tensor,
                    spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        top = scale * self.max
        return -top, top

    def qparams_from_range(self, lo: torch.Tensor, hi: torch.Tensor,
                           spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """``s = amax / max_finite``; a constant block gets ``s = |c| / 256`` (a power of two: exact)."""
        lo, hi = lo.to(torch.float32), hi.to(torch.float32)
        amax = torch.maximum(-lo, hi).clamp_(min=0)
        constant = (lo == hi) & (lo != 0)
        scale = torch.where(constant, lo.abs() / 256.0, amax / self.max).clamp_(min=MIN_SCALE)
        return scale, torch.zeros(scale.shape, dtype=torch.int32)

    def encode(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        """fp8 codes of ``x / s``: clamp to the finite range first (e4m3fn has no infinity, and casting out of
        range does not saturate on every backend), then cast. A true division: ``x · (1/s)`` differs from
        ``x / s`` in the last bit for a few values, which can move the result to the neighbouring fp8 value."""
        return torch.div(x, scale).clamp_(-self.max, self.max).to(self.dtype)

    def decode(self, q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        return q.to(torch.float32) * scale

    def in_range(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 spec: QuantSpec) -> torch.Tensor:
        """``|x / s|`` below :attr:`reach`: a block's own absmax, whose ``x / s`` can come out a last bit above
        the largest value, is not clipped."""
        return torch.div(x, scale).abs_() < self.reach


@cache
def _fp8_values(dtype: torch.dtype) -> torch.Tensor:
    codes = torch.arange(256, dtype=torch.uint8).view(dtype).to(torch.float32)
    return torch.unique(codes[torch.isfinite(codes)])


FP8_E4M3 = FP8Format("fp8_e4m3", torch.float8_e4m3fn)
FP8_E5M2 = FP8Format("fp8_e5m2", torch.float8_e5m2)
