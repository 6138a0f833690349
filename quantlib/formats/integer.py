"""Integer grids: ``int`` (any scale) and ``pow2`` (the scale rounded up to a power of two).

    q  = clamp(round(x · (1/s)) + z, qmin, qmax)       x̂ = (q − z) · s

with ``qmin..qmax = −2^(b−1)..2^(b−1)−1`` symmetric (``z = 0``) or ``0..2^b−1`` asymmetric. The arithmetic is
:mod:`quantlib.kernels`' (float32, as PyTorch's fake-quant kernels compute it); this module chooses the grid and
the scale.

Example, 2-bit asymmetric over ``[-1, 3]``: ``s = 4/3``, ``z = 0 − round(−0.75) = 1``, grid ``{−4/3, 0, 4/3, 8/3}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..kernels import (
    MIN_SCALE,
    code_bounds,
    int_dequantize,
    int_fake_quant,
    int_in_range_mask,
    int_quantize,
    pow2_at_least,
)
from .base import NumberFormat

if TYPE_CHECKING:
    from ..spec import QuantSpec


class IntFormat(NumberFormat):
    """The uniform integer grid of ``spec.bits`` bits."""

    name = "int"
    integer_grid = True
    #: A constant block gets a scale that holds the constant exactly (see :meth:`qparams_from_range`).
    exact_constants = True

    def code_range(self, spec: QuantSpec) -> tuple[int, int]:
        if spec.scheme == "asymmetric":
            return 0, 2**spec.bits - 1
        return -(2 ** (spec.bits - 1)) + (1 if spec.narrow_range else 0), 2 ** (spec.bits - 1) - 1

    def values(self, scale: float, zero_point: int, spec: QuantSpec) -> torch.Tensor:
        lo, hi = code_bounds(torch.tensor(scale), torch.tensor(zero_point, dtype=torch.int32), spec)
        k = torch.arange(spec.qmin, spec.qmax + 1, dtype=torch.float32) - zero_point
        return k[(k >= lo) & (k <= hi)] * scale

    def clip_bounds(self, scale: torch.Tensor, zero_point: torch.Tensor,
                    spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = code_bounds(scale, zero_point, spec)
        return torch.as_tensor(lo, dtype=torch.float32) * scale, torch.as_tensor(hi, dtype=torch.float32) * scale

    def qparams_from_range(self, lo: torch.Tensor, hi: torch.Tensor,
                           spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """- symmetric: ``s = max(|lo|, |hi|) / (2^(b-1) - 1)``, ``z = 0``; e.g. ``[-0.5, 1.27]`` at 8 bits gives
          ``s = 1.27 / 127 = 0.01``.
        - asymmetric: the range is widened to include 0, ``s = (hi - lo) / (2^b - 1)``,
          ``z = clamp(qmin - round(lo / s), qmin, qmax)`` (``torch.ao``'s ``MinMaxObserver`` arithmetic).

        A constant block (``lo == hi != 0``) gets ``s = |c| / 2^(b-2)`` (symmetric) or ``|c| / 2^(b-1)``
        (asymmetric): the constant lands on the grid by a power of two and comes back exactly. An all-zero
        block gets ``MIN_SCALE``.
        """
        lo, hi = lo.to(torch.float32), hi.to(torch.float32)
        constant = (lo == hi) & (lo != 0) & self.exact_constants
        c = lo.abs()
        if spec.scheme == "symmetric":
            amax = torch.maximum(-lo, hi).clamp_(min=0)
            scale = torch.where(constant, c / float(2 ** (spec.bits - 2)), amax / float(spec.qmax))
            return self._final_scale(scale), torch.zeros(scale.shape, dtype=torch.int32)
        lo_neg, hi_pos = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        span = float(spec.qmax - spec.qmin)
        scale = (hi_pos - lo_neg) / span
        overflow = ~torch.isfinite(scale)
        if overflow.any():
            # hi - lo overflows float32 for ranges near ±3.4e38: compute the same quotient in float64.
            scale = torch.where(overflow, (hi_pos.double() / span - lo_neg.double() / span).float(), scale)
        scale = self._final_scale(torch.where(constant, c / float(2 ** (spec.bits - 1)), scale))
        zero_point = (spec.qmin - torch.round(lo_neg / scale)).clamp_(spec.qmin, spec.qmax).to(torch.int32)
        return scale, zero_point

    def _final_scale(self, scale: torch.Tensor) -> torch.Tensor:
        return scale.clamp_(min=MIN_SCALE)

    def encode(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        return int_quantize(x, scale, zero_point, spec)

    def decode(self, q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        return int_dequantize(q, scale, zero_point)

    def fake_quant(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        return int_fake_quant(x, scale, zero_point, spec)

    def in_range(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        return int_in_range_mask(x, scale, zero_point, spec)


class Pow2Format(IntFormat):
    """The integer grid with the scale rounded *up* to a power of two (a shift in hardware), so the range still
    fits; e.g. ``s = 0.3`` becomes ``0.5``. A constant block keeps the plain scale rounded up (no exact rule)."""

    name = "pow2"
    exact_constants = False

    def _final_scale(self, scale: torch.Tensor) -> torch.Tensor:
        return pow2_at_least(scale.clamp_(min=MIN_SCALE))


INT = IntFormat()
POW2 = Pow2Format()
