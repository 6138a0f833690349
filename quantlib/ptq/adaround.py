"""AdaRound (Nagel, Amjad, van Baalen, Louizos, Blankevoort 2020, "Up or Down? Adaptive Rounding for
Post-Training Quantization", arXiv 2004.10568): learn, for every weight, whether to round down or up so the
layer's output is reconstructed, instead of rounding each weight to its nearest grid point.

    W̃ = s · (clamp(⌊W/s⌋ + h(V) + z, qmin, qmax) − z),   h(V) = clamp(σ(V)(ζ − γ) + γ, 0, 1),  ζ = 1.1, γ = −0.1
    min_V  ‖X Wᵀ − X W̃ᵀ‖² / N  +  λ Σ (1 − |2h(V) − 1|^β)

The rectified sigmoid ``h`` can reach exactly 0 and 1; the regulariser pushes every ``h`` there while ``β``
is annealed from 20 to 2 (after a warm-up of 20 % of the iterations with ``λ = 0``, as in yhhhli/BRECQ
``adaptive_rounding.py`` / ``layer_recon.py``). At the end ``h ≥ 0.5`` rounds up. ``V`` starts where ``h`` equals
the fractional part of ``W/s``, i.e. at round-to-nearest. Scales come from the spec's calibration and stay
fixed. Each layer is reconstructed from the float model's inputs (not the partly quantized model's), with Adam,
mini-batches of rows, and a bounded number of iterations for CPU (the paper uses 10-20k; 500-2000 get most of
the gain on small layers).

Worked example: two weights ``0.45 s`` and ``0.45 s`` on inputs that are always equal: nearest rounds both down
(output error ``0.9 s``); rounding one of them up instead leaves ``0.1 s``, and that is what the
reconstruction loss steers ``V`` towards.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..kernels import code_bounds
from ..spec import QuantSpec
from .grid import column_qparams

ZETA, GAMMA = 1.1, -0.1
DEFAULT_ITERS = 500
DEFAULT_LR = 1e-2
DEFAULT_LAMBDA = 0.01
WARMUP = 0.2
BETA_START, BETA_END = 20.0, 2.0
BATCH_ROWS = 1024


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """``h(V) = clamp(σ(V)(ζ − γ) + γ, 0, 1)``: 0 and 1 are reached for finite V."""
    return (torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def init_v(frac: torch.Tensor) -> torch.Tensor:
    """``V`` with ``h(V) = frac`` (the fractional part of ``W/s``): ``σ(V) = (frac − γ) / (ζ − γ)``."""
    p = ((frac - GAMMA) / (ZETA - GAMMA)).clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def beta_at(it: int, iters: int) -> float:
    """The annealed exponent: ``β`` falls linearly (in the BRECQ schedule, cosine-free) from 20 to 2 after the
    warm-up."""
    start = int(WARMUP * iters)
    if it < start:
        return BETA_START
    t = (it - start) / max(1, iters - start)
    return BETA_END + (BETA_START - BETA_END) * max(0.0, 1.0 - t)


def _learn_v(
    frac: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    grid_value: Callable[[torch.Tensor], torch.Tensor],
    iters: int,
    lr: float,
    reg: float,
    seed: int,
    batch_rows: int,
    progress: Callable[[int, int], None] | None,
) -> torch.Tensor:
    """Adam on V: reconstruction ``‖x·W̃(h(V))ᵀ − x·Wᵀ‖²`` plus, after the warm-up, the annealed rounding term
    ``λ·Σ(1 − |2h(V) − 1|^β)`` that pushes every h to 0 or 1. Returns the learned V."""
    v = init_v(frac).requires_grad_(True)
    target = x @ w.T
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([v], lr=lr)
    n = x.shape[0]
    step = max(1, iters // 20)
    for it in range(iters):
        if n > batch_rows:
            idx = torch.randint(0, n, (batch_rows,), generator=gen)
            xb, yb = x[idx], target[idx]
        else:
            xb, yb = x, target
        h = rectified_sigmoid(v)
        w_soft = grid_value(h)
        rec = (xb @ w_soft.T - yb).square().sum(dim=1).mean()
        if it < int(WARMUP * iters):
            loss = rec
        else:
            beta = beta_at(it, iters)
            loss = rec + reg * (1 - (2 * h - 1).abs().pow(beta)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (it + 1) % step == 0:
            progress(it + 1, iters)
    return v.detach()


def adaround_matrix(
    w: torch.Tensor,
    x: torch.Tensor,
    spec: QuantSpec,
    iters: int = DEFAULT_ITERS,
    lr: float = DEFAULT_LR,
    reg: float = DEFAULT_LAMBDA,
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, float]:
    """``(W̃, fraction of weights rounded the other way than nearest)`` for one ``(out, k)`` matrix."""
    if not spec.is_integer_grid:
        raise ValueError(f"AdaRound learns up / down on an integer grid; {spec.format} has none: use format int")
    if iters < 0:
        raise ValueError(f"iterations must be a non-negative whole number, got {iters!r}")
    w = w.to(torch.float32)
    k = w.shape[1]
    if spec.granularity == "group":
        qps = [column_qparams(w[:, j : j + spec.group_size], spec) for j in range(0, k, spec.group_size)]
        scale = torch.cat([q.scale.expand(w.shape[0], spec.group_size) for q in qps], dim=1)
        zp = torch.cat([q.zero_point.expand(w.shape[0], spec.group_size) for q in qps], dim=1).float()
    else:
        qp = column_qparams(w, spec)
        scale = qp.scale.expand_as(w).clone()
        zp = qp.zero_point.to(torch.float32).expand_as(w).clone()
    lo, hi = code_bounds(scale, zp.to(torch.int32), spec)
    w_over_s = w * (1.0 / scale)
    w_floor = torch.floor(w_over_s)
    nearest = torch.round(w_over_s)

    def grid_value(h: torch.Tensor) -> torch.Tensor:
        r = w_floor + h
        r = torch.maximum(torch.minimum(r, torch.as_tensor(hi)), torch.as_tensor(lo))
        return r * scale

    # The rounding is learned by gradient descent on V: gradients on, whatever the caller set (a job runner or a
    # notebook cell under torch.no_grad() would otherwise make loss.backward() fail).
    with torch.enable_grad():
        v = _learn_v(w_over_s - w_floor, x.to(torch.float32), w, grid_value, iters, lr, reg, seed, batch_rows,
                     progress)
    with torch.no_grad():
        h_hard = (v >= 0).to(torch.float32)  # σ(V) ≥ 0.5 ⇔ h(V) ≥ 0.5
        if iters == 0:
            h_hard = (nearest - w_floor).clamp(0, 1)
        w_hat = grid_value(h_hard)
        flipped = float(((w_floor + h_hard) != nearest).float().mean()) if w.numel() else 0.0
    if not math.isfinite(float(w_hat.abs().sum())):
        raise ValueError("AdaRound diverged (non-finite weights); try a smaller learning rate")
    return w_hat, flipped
