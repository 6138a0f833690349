"""The values a quantizer can output (its grid) and the range it covers without clipping.

For the integer formats the grid is uniform: ``x̂ ∈ {(q - z) · s : q = qmin..qmax}``; e.g. 2-bit asymmetric with
``s = 4/3, z = 1`` gives ``{-4/3, 0, 4/3, 8/3}``. fp8 and nf4 grids are non-uniform: dense near zero, sparse at
the ends. These are what the tensor explorer draws over its histograms.
"""

from __future__ import annotations

import torch

from .kernels import NF4_CODEBOOK, code_bounds
from .spec import QParams, QuantSpec, fp8_dtype, fp8_max


def _block_params(qparams: QParams, block: int) -> tuple[float, int]:
    n = qparams.scale.numel()
    if not 0 <= block < n:
        raise ValueError(f"block {block} is out of range: these qparams have {n} block(s)")
    s = float(qparams.scale.reshape(-1)[block])
    z = int(qparams.zero_point.reshape(-1)[block]) if qparams.zero_point.numel() > 1 else int(qparams.zero_point)
    return s, z


def fp8_values(fmt: str) -> torch.Tensor:
    """All distinct finite values of an fp8 format, sorted (253 for e4m3, 247 for e5m2... see tests)."""
    codes = torch.arange(256, dtype=torch.uint8).view(fp8_dtype(fmt)).to(torch.float32)
    return torch.unique(codes[torch.isfinite(codes)])


def grid(spec: QuantSpec, qparams: QParams, block: int = 0) -> torch.Tensor:
    """Sorted 1-D float32 tensor of every value block ``block`` can be dequantized to.

    >>> from quantlib import choose_qparams
    >>> grid(QuantSpec(bits=2, scheme="asymmetric"),
    ...      choose_qparams(torch.tensor([-1.0, 3.0]), QuantSpec(bits=2, scheme="asymmetric"))).tolist()
    [-1.3333333730697632, 0.0, 1.3333333730697632, 2.6666667461395264]
    """
    s, z = _block_params(qparams, block)
    if spec.is_integer_grid:
        lo, hi = code_bounds(torch.tensor(s), torch.tensor(z, dtype=torch.int32), spec)
        q = torch.arange(spec.qmin, spec.qmax + 1, dtype=torch.float32)
        k = q - z
        return k[(k >= lo) & (k <= hi)] * s
    if spec.format == "nf4":
        return NF4_CODEBOOK * s
    return fp8_values(spec.format) * s


def clip_range(spec: QuantSpec, qparams: QParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block ``(lo, hi)``: values outside are clipped to these. Shaped like ``qparams.scale``."""
    scale = qparams.scale.to(torch.float32)
    if spec.is_integer_grid:
        lo, hi = code_bounds(scale, qparams.zero_point, spec)
        return torch.as_tensor(lo, dtype=torch.float32) * scale, torch.as_tensor(hi, dtype=torch.float32) * scale
    top = scale * (1.0 if spec.format == "nf4" else fp8_max(spec.format))
    return -top, top
