"""Error metrics between a float tensor ``x`` and its quantized version ``x̂``.

All are computed in float64 over the flattened tensors, which must have the same number of elements:

- ``mse = (1/N) Σ (x_i - x̂_i)²`` - a mean, not a sum;
- ``sqnr_db = 10 · log10(Σ x_i² / Σ (x_i - x̂_i)²)`` in dB; ``+inf`` when the error is 0 (exact), ``-inf`` when the
  signal is 0 but the error is not. Each extra bit of a uniform grid adds ≈ 6.02 dB;
- ``max_abs_error = max |x_i - x̂_i|``;
- ``cosine_similarity = <x, x̂> / (‖x‖ ‖x̂‖)``, 1.0 when both are all-zero, 0.0 when only one is.

Example: ``x = [1, 2]``, ``x̂ = [1, 1.5]`` gives ``mse = 0.125``, ``sqnr_db = 10·log10(5 / 0.25) ≈ 13.01``,
``max_abs_error = 0.5``.
"""

from __future__ import annotations

import math

import torch


def _pair(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(x).detach().reshape(-1).to(torch.float64)
    b = torch.as_tensor(x_hat).detach().reshape(-1).to(torch.float64)
    if a.numel() != b.numel():
        raise ValueError(f"tensors differ in size: {a.numel()} vs {b.numel()} values")
    if a.numel() == 0:
        raise ValueError("metrics need at least one value; got empty tensors")
    return a, b


def sqnr_from_sums(signal_power: float, noise_power: float) -> float:
    """``10 · log10(signal / noise)`` with the conventions above for zero noise or zero signal."""
    if noise_power == 0.0:
        return math.inf
    if signal_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean squared error ``(1/N) Σ (x - x̂)²``."""
    a, b = _pair(x, x_hat)
    d = a - b
    return float(torch.dot(d, d)) / d.numel()


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10 · log10(Σx² / Σ(x - x̂)²)`` in dB."""
    a, b = _pair(x, x_hat)
    d = a - b
    return sqnr_from_sums(float(torch.dot(a, a)), float(torch.dot(d, d)))


def max_abs_error(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """``max |x - x̂|``."""
    a, b = _pair(x, x_hat)
    return float((a - b).abs().max())


def cosine_similarity(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Cosine of the angle between the flattened tensors."""
    a, b = _pair(x, x_hat)
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, float(torch.dot(a, b)) / (na * nb)))
