"""NF4, the 4-bit NormalFloat of QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs").

    s = absmax          code = nearest(x / s) in NF4_CODEBOOK          x̂ = NF4_CODEBOOK[code] · s

Sixteen values: quantiles of a standard normal normalised to [−1, 1], with an exact zero - dense where normally
distributed weights are. The table is bitsandbytes' exactly (tests compare codes and values bit for bit).

Example: ``x = [0.5, −2.0]``, ``s = 2``: ``x / s = [0.25, −1]`` -> codes ``[10, 0]`` ->
``x̂ = [0.2461123 · 2, −2] = [0.4922246, −2]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..kernels import MIN_SCALE
from .base import NumberFormat

if TYPE_CHECKING:
    from ..spec import QuantSpec

#: The 16 values of the NF4 data type, as published (bitsandbytes ``get_4bit_type("nf4")``).
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
_MIDPOINTS = (NF4_CODEBOOK[1:] + NF4_CODEBOOK[:-1]) / 2


class NF4Format(NumberFormat):
    """Codes 0..15 index the codebook; the scale is each block's absmax."""

    name = "nf4"
    fixed_bits = 4
    symmetric_only = True

    def code_range(self, spec: QuantSpec) -> tuple[int, int]:
        return 0, 15

    def values(self, scale: float, zero_point: int, spec: QuantSpec) -> torch.Tensor:
        return NF4_CODEBOOK * scale

    def clip_bounds(self, scale: torch.Tensor, zero_point: torch.Tensor,
                    spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        return -scale, scale.clone()

    def qparams_from_range(self, lo: torch.Tensor, hi: torch.Tensor,
                           spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """``s = max(|lo|, |hi|)`` (a constant block maps onto the codebook's ±1: exact)."""
        amax = torch.maximum(-lo.to(torch.float32), hi.to(torch.float32)).clamp_(min=0)
        scale = amax.clamp_(min=MIN_SCALE)
        return scale, torch.zeros(scale.shape, dtype=torch.int32)

    def encode(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               spec: QuantSpec) -> torch.Tensor:
        """Index (uint8) of the code nearest to ``x / absmax``; ties go to the lower code."""
        v = (x / scale).clamp_(-1.0, 1.0).contiguous()  # bucketize copies (and warns) otherwise
        return torch.bucketize(v, _MIDPOINTS).to(torch.uint8)

    def decode(self, q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        return NF4_CODEBOOK[q.long()] * scale

    def in_range(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 spec: QuantSpec) -> torch.Tensor:
        """``|x / s| <= 1`` (``s`` is the absmax, and ``absmax / absmax`` is exactly 1)."""
        return torch.div(x, scale).abs_() <= 1.0

    def codes_for_counting(self, q: torch.Tensor) -> torch.Tensor:
        return q.to(torch.int32)


NF4 = NF4Format()
