"""GPTQ against a textbook implementation written in this test from the paper (Frantar et al. 2022, §3 and
Algorithm 1 before its Cholesky / lazy-batch reformulation): quantize columns in order and, after each column,
apply the Optimal Brain Surgeon update with the explicit inverse Hessian and remove that column from it by
Gaussian elimination:

    δ = (w_i − q_i) / [H⁻¹]_ii ;  W[:, F] −= δ · [H⁻¹]_{i,F} ;  H⁻¹ ← H⁻¹ − H⁻¹_{:,i} H⁻¹_{i,:} / [H⁻¹]_ii

in float64, one column at a time, no blocks. No published GPTQ installs beside this project's pins (checked with
``pip install --dry-run``): the PyPI package ``gptq`` 0.0.3 does not build, auto-gptq / GPTQModel are CUDA
toolkits, and llm-compressor 0.14 accepts torch 2.13 but moves transformers from the pinned 5.24.0 to 5.17.0 (the
MiniLM loader's version). So this is the independent reference. quantlib's version (float32, Cholesky factor, lazy blocks) must agree: the same
weights except for rare ties that float rounding tips the other way, and the same reconstruction error.
"""

from __future__ import annotations

import pytest
import torch

from quantlib import QuantSpec
from quantlib.ptq import gptq
from quantlib.ptq.grid import column_qparams, round_columns
from quantlib.ptq.reconstruction import rel_error


def textbook_gptq(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, damp: float) -> torch.Tensor:
    w = w.double().clone()
    h = h.double().clone()
    h += damp * torch.diagonal(h).mean() * torch.eye(h.shape[0], dtype=torch.float64)
    hinv = torch.linalg.inv(h)
    qp = column_qparams(w.float(), spec)
    q = torch.empty_like(w)
    for i in range(w.shape[1]):
        q[:, i] = round_columns(w[:, i : i + 1].float(), qp, spec)[:, 0].double()
        delta = (w[:, i] - q[:, i]) / hinv[i, i]
        w[:, i + 1 :] -= delta[:, None] * hinv[i, i + 1 :][None, :]
        hinv = hinv - hinv[:, i : i + 1] @ hinv[i : i + 1, :] / hinv[i, i]
    return q.float()


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gptq_agrees_with_the_textbook_algorithm(granularity, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 48, generator=g) @ torch.randn(48, 48, generator=g)  # correlated inputs
    w = torch.randn(24, 48, generator=g)
    h = x.double().T @ x.double()
    spec = QuantSpec(bits=3, granularity=granularity)
    ours = gptq.gptq_matrix(w, h, spec, damp=0.01, block_size=16)  # several lazy blocks
    ref = textbook_gptq(w, h, spec, damp=0.01)
    differ = (ours != ref).float().mean().item()
    assert differ < 0.01, f"{differ:.2%} of weights differ"
    assert rel_error(x, w, ours) == pytest.approx(rel_error(x, w, ref), rel=0.02)


def test_lazy_blocks_do_not_change_the_result_beyond_float_rounding():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(200, 40, generator=g)
    w = torch.randn(10, 40, generator=g)
    h = x.double().T @ x.double()
    spec = QuantSpec(bits=4, granularity="channel")
    one = gptq.gptq_matrix(w, h, spec, block_size=1)
    big = gptq.gptq_matrix(w, h, spec, block_size=128)
    assert (one != big).float().mean() < 0.01


def test_the_worked_example_of_the_module_docstring():
    """Three perfectly correlated inputs: a rounding error pushed onto a later column is cancelled there."""
    w = torch.tensor([[1.0, 0.3, 0.3]])
    h = torch.ones(3, 3, dtype=torch.float64)
    spec = QuantSpec(bits=2)
    assert gptq.gptq_matrix(w, h, spec).tolist() == [[1.0, 0.0, 1.0]]
    assert round_columns(w, column_qparams(w, spec), spec).tolist() == [[1.0, 0.0, 0.0]]
