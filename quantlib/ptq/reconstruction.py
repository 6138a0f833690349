"""Layer reconstruction error: how far a quantized layer's output is from the float layer's, on the same inputs.

    rel_error = ‖(X̂ Ŵᵀ + b̂) − (X Wᵀ + b)‖² / ‖X Wᵀ‖²

``X`` are the float layer's input rows on the calibration inputs (:func:`quantlib.ptq.layers.capture_inputs`),
``X̂`` the same rows after the layer's activation quantizer (``X̂ = X`` for weight-only methods), ``Ŵ, b̂`` the
quantized layer's weight and bias. For weight-only methods with an unchanged bias this is the objective GPTQ,
AWQ and AdaRound minimise, ``‖W X − Ŵ X‖² / ‖W X‖²``; bias correction and activation quantization show up in it
too. Worked example: ``W = [[1, 2]]``, ``Ŵ = [[1, 2.5]]``, ``X = [[1, 1]]`` gives ``(0.5)² / 3² = 0.0278``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import input_rows, weight_matrix


def rel_error(
    x: torch.Tensor,
    w: torch.Tensor,
    w_hat: torch.Tensor,
    b: torch.Tensor | None = None,
    b_hat: torch.Tensor | None = None,
    x_hat: torch.Tensor | None = None,
) -> float:
    """``‖(X̂ Ŵᵀ + b̂) − (X Wᵀ + b)‖² / ‖X Wᵀ‖²`` in float64 (0 when both are 0, inf for an error on a zero output).

    >>> rel_error(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.5]]))
    0.027777777777777776
    """
    x64, w64 = x.double(), w.double()
    xh = x64 if x_hat is None else x_hat.double()
    ref = x64 @ w64.T
    err = xh @ w_hat.double().T - ref
    if b is not None or b_hat is not None:
        zero = torch.zeros(w.shape[0], dtype=torch.float64)
        err = err + ((zero if b_hat is None else b_hat.double()) - (zero if b is None else b.double()))
    num, den = float(err.square().sum()), float(ref.square().sum())
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def hessian(x: torch.Tensor) -> torch.Tensor:
    """``H = Xᵀ X`` (float64): ``‖ΔW Xᵀ‖² = tr(ΔW H ΔWᵀ)``, the quadratic form every layer-wise method minimises."""
    x64 = x.double()
    return x64.T @ x64


def module_error(x_raw_rows: torch.Tensor, float_module: nn.Module, quant_module: nn.Module) -> float:
    """:func:`rel_error` of one layer: ``quant_module`` may be a ``quantlib.model.QuantizedLayer`` (its input
    quantizer is applied to the rows: per-tensor fake quant is elementwise, and keeps 0 - the conv padding - at 0)."""
    x_hat = None
    inner = quant_module
    input_quant = getattr(quant_module, "input_quant", None)
    if hasattr(quant_module, "layer"):
        inner = quant_module.layer
    if input_quant is not None:
        with torch.no_grad():
            x_hat = input_quant(x_raw_rows)
    return rel_error(
        x_raw_rows,
        weight_matrix(float_module),
        weight_matrix(inner),
        None if float_module.bias is None else float_module.bias.detach(),
        None if inner.bias is None else inner.bias.detach(),
        x_hat,
    )


__all__ = ["hessian", "input_rows", "module_error", "rel_error"]
