"""AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-aware Weight Quantization for LLM
Compression and Acceleration", arXiv 2306.00978): scale up the input channels that carry large activations
before rounding, so their weights lose relatively less, and undo the scale on the input side.

    s_j(α) = mean|X_j|^α / sqrt(max_j mean|X_j|^α · min_j mean|X_j|^α)      (normalised, as in the authors' code)
    Ŵ(α)   = Q(W · diag(s)) · diag(s)⁻¹
    α*     = argmin over α ∈ {0, 1/20, …, 19/20} of ‖X Wᵀ − X Ŵ(α)ᵀ‖²

``α = 0`` is plain RTN (s = 1), so the search never ends worse than RTN on the calibration inputs. The loss is
evaluated through ``H = Xᵀ X`` (``tr(ΔW H ΔWᵀ)``), one quantization and one matrix product per α. In a deployed
model ``1/s`` is folded into the previous op (LayerNorm or Linear: ``scale_ln_fcs`` / ``scale_fc_fc`` in
mit-han-lab/llm-awq) and ``Q(W · diag(s))`` is stored; a fake-quantized copy stores the product
``Q(W · diag(s)) · diag(s)⁻¹``, which gives the same outputs, so no op changes here. For a conv the scale is per
input channel (shared by its kernel positions), as a fold into the previous layer needs. The authors' weight
clipping search (``auto_clip.py``) is not included: the range is the spec's calibration.

Worked example: two inputs with ``mean|x| = [10, 0.1]`` and ``α = 0.5`` give ``s = [sqrt(10), sqrt(0.1)] /
sqrt(sqrt(10)·sqrt(0.1)) = [3.16, 0.32]``: the loud channel's weights are spread over 10× more grid steps.
"""

from __future__ import annotations

import torch

from ..spec import QuantSpec
from .grid import rtn_matrix

#: The authors' grid: 20 values of α in [0, 1).
DEFAULT_GRID = 20


def channel_means(x: torch.Tensor, kernel_positions: int = 1) -> torch.Tensor:
    """mean|X_j| per input channel of the rows ``X`` (kernel positions of one conv channel share one value)."""
    m = x.abs().mean(dim=0) if x.shape[0] else torch.zeros(x.shape[1])
    if kernel_positions > 1:
        m = m.reshape(-1, kernel_positions).mean(dim=1).repeat_interleave(kernel_positions)
    return m.to(torch.float32)


def awq_scales(means: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = m^α / sqrt(max(m^α) · min(m^α))`` with ``m`` clamped to 1e-4 (a dead channel keeps a finite scale).

    >>> [round(v, 2) for v in awq_scales(torch.tensor([10.0, 0.1]), 0.5).tolist()]
    [3.16, 0.32]
    """
    s = means.clamp(min=1e-4).pow(alpha)
    return s / (s.max() * s.min()).sqrt()


def awq_matrix(
    w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, grid: int = DEFAULT_GRID, kernel_positions: int = 1
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """``(Ŵ, α*, s)`` for one ``(out, k)`` weight matrix and its input rows ``x``."""
    if grid < 1:
        raise ValueError(f"the α grid needs at least one point, got {grid!r}")
    w = w.to(torch.float32)
    h = (x.double().T @ x.double()).to(torch.float32)
    means = channel_means(x, kernel_positions)
    best = None
    for n in range(grid):
        alpha = n / grid
        s = awq_scales(means, alpha)
        w_hat = rtn_matrix(w * s, spec) / s
        d = w_hat - w
        loss = float(((d @ h) * d).sum())
        if best is None or loss < best[0]:
            best = (loss, alpha, w_hat, s)
    return best[2], best[1], best[3]
