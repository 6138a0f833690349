"""SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth, Han 2022, "SmoothQuant: Accurate and Efficient Post-Training
Quantization for Large Language Models", arXiv 2211.10438): move activation outliers into the weights with a
per-input-channel scale, so both can be quantized (W8A8, per-tensor activations).

    s_j = max|X_j|^α / max|W_:,j|^(1−α)          (α = 0.5: the difficulty split evenly)
    Y   = X Wᵀ = (X diag(s)⁻¹) (W diag(s))ᵀ      exactly, before quantization

then the layer computes ``Q_a(X / s) · Q_w(W · s)ᵀ``. A channel whose activations reach 50 while the rest stay
near 1 stretches a per-tensor activation grid 50× (most values fall into a handful of steps); divided by
``s_j ≈ sqrt(50 · max|W_j|) / …`` it comes back near the others, and the weights - much easier to quantize -
take the factor.

In the authors' code (mit-han-lab/smoothquant ``smooth.py``, ``smooth_ln_fcs``) ``1/s`` is folded into the
preceding LayerNorm's weight and bias and ``s`` into the Linear weights that read it (q/k/v, fc1), with one
``s`` for the layers sharing an input. Here every Linear / conv gets its own ``s`` and keeps ``1/s`` as an
explicit per-channel multiply in front of it (:class:`SmoothedInput`), so every layer - also those after GELU
or attention, which have no LayerNorm to fold into - can be smoothed; for layers after a LayerNorm the fold is
the same arithmetic. Worked example: ``max|X| = [50, 1]``, ``max|W| = [0.5, 0.5]``, ``α = 0.5`` →
``s = [10, 1.41]``: the activation ranges become ``[5, 0.71]`` and the weight ranges ``[5, 0.71]``.
"""

from __future__ import annotations

import torch
from torch import nn

#: The paper's default migration strength.
DEFAULT_ALPHA = 0.5


class SmoothedInput(nn.Module):
    """``layer(x / s)``: the input divided by the smoothing scale per channel (last dim for Linear, dim 1 for
    conv), then the layer whose weight was multiplied by ``s`` along its input channels. The layer is the
    child ``layer`` so that quantlib quantizes it (and its input activations) as usual."""

    def __init__(self, layer: nn.Module, scale: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.channels_last = isinstance(layer, nn.Linear)  # kept: quantlib may wrap the layer later
        self.register_buffer("inv_scale", (1.0 / scale).to(torch.float32))

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # noqa: ANN002, ANN003
        if self.channels_last:
            x = x * self.inv_scale.to(x.dtype)
        else:
            shape = [1, -1] + [1] * (x.dim() - 2)
            x = x * self.inv_scale.to(x.dtype).reshape(shape)
        return self.layer(x, *args, **kwargs)


def input_channel_max(x: torch.Tensor, kernel_positions: int = 1) -> torch.Tensor:
    """max|X_j| per input channel of the rows ``X`` (over the kernel positions too, for a conv)."""
    m = x.abs().amax(dim=0) if x.shape[0] else torch.zeros(x.shape[1])
    if kernel_positions > 1:
        m = m.reshape(-1, kernel_positions).amax(dim=1)
    return m.to(torch.float32)


def weight_input_max(w: torch.Tensor, kernel_positions: int = 1) -> torch.Tensor:
    """max|W_:,j| per input channel of a ``(out, k)`` matrix (over kernel positions too)."""
    m = w.abs().amax(dim=0)
    if kernel_positions > 1:
        m = m.reshape(-1, kernel_positions).amax(dim=1)
    return m.to(torch.float32)


def smoothing_scales(act_max: torch.Tensor, weight_max: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """``s_j = max|X_j|^α / max|W_j|^(1−α)``, clamped to [1e-5, 1e5]; a channel with no activation or no
    weight keeps ``s = 1`` (nothing to migrate).

    >>> [round(v, 2) for v in smoothing_scales(torch.tensor([50.0, 1.0]), torch.tensor([0.5, 0.5])).tolist()]
    [10.0, 1.41]
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the migration strength alpha must be in [0, 1], got {alpha!r}")
    s = act_max.clamp(min=1e-5).pow(alpha) / weight_max.clamp(min=1e-5).pow(1.0 - alpha)
    s = s.clamp(1e-5, 1e5)
    return torch.where((act_max > 0) & (weight_max > 0), s, torch.ones_like(s))
