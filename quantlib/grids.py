"""The values a quantizer can output (its grid) and the range it covers without clipping.

For the integer formats the grid is uniform: ``x̂ ∈ {(q - z) · s : q = qmin..qmax}``; e.g. 2-bit asymmetric with
``s = 4/3, z = 1`` gives ``{-4/3, 0, 4/3, 8/3}``. fp8 and nf4 grids are non-uniform: dense near zero, sparse at
the ends. These are what the tensor explorer draws over its histograms. Each format's own grid is in
:mod:`quantlib.formats`.
"""

from __future__ import annotations

import torch

from .spec import QParams, QuantSpec


def _block_params(qparams: QParams, block: int) -> tuple[float, int]:
    n = qparams.scale.numel()
    if not 0 <= block < n:
        raise ValueError(f"block {block} is out of range: these qparams have {n} block(s)")
    s = float(qparams.scale.reshape(-1)[block])
    z = int(qparams.zero_point.reshape(-1)[block]) if qparams.zero_point.numel() > 1 else int(qparams.zero_point)
    return s, z


def grid(spec: QuantSpec, qparams: QParams, block: int = 0) -> torch.Tensor:
    """Sorted 1-D float32 tensor of every value block ``block`` can be dequantized to.

    >>> from quantlib import choose_qparams
    >>> grid(QuantSpec(bits=2, scheme="asymmetric"),
    ...      choose_qparams(torch.tensor([-1.0, 3.0]), QuantSpec(bits=2, scheme="asymmetric"))).tolist()
    [-1.3333333730697632, 0.0, 1.3333333730697632, 2.6666667461395264]
    """
    s, z = _block_params(qparams, block)
    return spec.number_format.values(s, z, spec)


def clip_range(spec: QuantSpec, qparams: QParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block ``(lo, hi)``: values outside are clipped to these. Shaped like ``qparams.scale``."""
    return spec.number_format.clip_bounds(qparams.scale.to(torch.float32), qparams.zero_point, spec)
