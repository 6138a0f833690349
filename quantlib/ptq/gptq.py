"""GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", arXiv 2210.17323): quantize one column at a time and push its rounding error onto the
columns not yet quantized, through the inverse Hessian of the layer's reconstruction error.

For a layer ``Y = X Wᵀ`` the error ``‖X Wᵀ − X Ŵᵀ‖²`` has Hessian ``H = 2 Xᵀ X`` (averaged over rows here).
With ``U`` the upper Cholesky factor of ``(H + λI)⁻¹``, ``λ = damp · mean(diag H)``, column ``i`` is handled as

    q_i   = Q(w_i)                          # round onto the layer's grid
    e_i   = (w_i − q_i) / U_ii
    W[:, j] −= e_i · U_ij      for j > i    # the optimal update of the remaining columns (OBS)

Options, as in the authors' code (IST-DASLab/gptq ``gptq.py``): ``block_size`` columns are updated lazily
(the rank-``B`` update ``W[:, i2:] −= E · U[i1:i2, i2:]`` once per block, which is what makes it fast);
``act_order`` quantizes columns by decreasing ``diag H`` (the inputs with the most energy first); per-group
grids are fitted on the group's current (error-updated) columns when the group starts - with ``act_order`` the
groups are fitted up front on the original weights ("static groups"), so every group stays contiguous and the
result is an ordinary per-group quantized tensor. Columns whose input is always zero (``H_ii = 0``) carry no
error and are simply rounded.

Worked example (2-bit symmetric per-tensor, grid {-2, -1, 0, 1} with s = 1; three perfectly correlated inputs,
``H`` all ones): ``w = [1.0, 0.3, 0.3]`` sums to 1.6 on an input of ones. RTN gives ``[1, 0, 0]`` (output 1, error
0.6); GPTQ rounds 0.3 down, pushes the 0.3 onto the last column (→ 0.6 → 1): ``[1, 0, 1]``, output 2, error 0.4.
"""

from __future__ import annotations

import torch

from ..spec import QuantSpec
from .grid import column_qparams, round_columns

#: The authors' defaults: damping 1 % of the mean diagonal, blocks of 128 columns.
DEFAULT_DAMP = 0.01
DEFAULT_BLOCK = 128


def inverse_hessian_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor ``U`` of ``(H + λI)⁻¹`` with ``λ = damp · mean(diag H)`` (float64 in, float32 out).

    Raises ``ValueError`` in plain words if even the damped Hessian is not positive definite.
    """
    h = h.clone()
    lam = damp * float(torch.diagonal(h).mean())
    if lam <= 0:
        lam = 1e-8
    h.diagonal().add_(lam)
    try:
        l_fac = torch.linalg.cholesky(h)
        hinv = torch.cholesky_inverse(l_fac)
        u = torch.linalg.cholesky(hinv, upper=True)
    except torch.linalg.LinAlgError:
        raise ValueError(
            f"the damped Hessian is not positive definite (damping {damp:g}); try a larger damping"
        ) from None
    return u.to(torch.float32)


def gptq_matrix(
    w: torch.Tensor,
    h: torch.Tensor,
    spec: QuantSpec,
    damp: float = DEFAULT_DAMP,
    block_size: int = DEFAULT_BLOCK,
    act_order: bool = False,
) -> torch.Tensor:
    """GPTQ of one ``(out, k)`` weight matrix with Hessian ``h`` (``(k, k)``, any positive scale): the quantized
    matrix, every value on the grid of its block (tensor / row / group of ``spec``)."""
    if not 0 <= damp:
        raise ValueError(f"damping must be a non-negative fraction, got {damp!r}")
    if block_size < 1:
        raise ValueError(f"block size must be a positive integer, got {block_size!r}")
    w = w.to(torch.float32).clone()
    out_features, k = w.shape
    h = h.to(torch.float64).clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0  # no input energy: the column's error costs nothing and feeds nothing
    group = spec.granularity == "group"
    g = spec.group_size
    static = {}
    if not group:
        fixed = column_qparams(w, spec)  # per-tensor / per-row: fitted once on the original weights
    elif act_order:
        static = {j: column_qparams(w[:, j : j + g], spec) for j in range(0, k, g)}
    perm = None
    if act_order:
        perm = torch.argsort(torch.diagonal(h), descending=True, stable=True)
        w, h = w[:, perm], h[perm][:, perm]
    u = inverse_hessian_factor(h, damp)
    if group and not act_order:
        block_size = g * max(1, round(block_size / g))  # each group inside one block: fitted on updated values
    q_all = torch.empty_like(w)
    current = None
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.empty_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not group:
                qp = fixed
            elif act_order:
                qp = static[int(perm[col]) // g * g]
            else:
                if col % g == 0:
                    current = column_qparams(w1[:, i : i + g], spec)
                qp = current
            wcol = w1[:, i : i + 1]
            q = round_columns(wcol, qp, spec)
            q_all[:, col : col + 1] = q
            e = (wcol - q) / u1[i, i]
            if i + 1 < i2 - i1:
                w1[:, i + 1 :].sub_(e @ u1[i : i + 1, i + 1 :])
            err1[:, i : i + 1] = e
        if i2 < k:
            w[:, i2:].sub_(err1 @ u[i1:i2, i2:])
    if perm is not None:
        q_all = q_all[:, torch.argsort(perm)]
    return q_all
