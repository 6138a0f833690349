"""Bias correction (Nagel, van Baalen, Blankevoort, Welling 2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", arXiv 1906.04721, §4.2; empirical form as in torch's
``torch/ao/quantization/_correct_bias.py``): rounding errors do not average out per output channel - their
sum over a channel's inputs has a mean, which shifts the channel's output. Subtract it from the bias:

    b'_c = b_c − E[ŷ_c − y_c]        (mean over the calibration examples and positions)

where ``ŷ = Ŵ x + b`` and ``y = W x + b`` see the *same* input ``x``, the input the quantized model gives this
layer. Layers are corrected in order, each on inputs from the already-corrected layers before it: the
procedure of ``_correct_bias.bias_correction``, done in one forward pass (a hook corrects each layer when the
pass reaches it, before its output moves on). Layers without a bias are left alone, as torch does. The
data-free form of the paper, ``b' = b − (Ŵ − W) E[x]`` with ``E[x]`` from BatchNorm statistics, needs BN layers,
which the sample models do not have.

Worked example: ``Ŵ − W = [[0.1, 0.1]]`` on inputs with mean ``[1, 2]`` shifts the output by ``+0.3``;
``b' = b − 0.3`` removes it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Inputs, call
from .layers import channel_dim


def _functional(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    return module._conv_forward(x, weight, bias)


def correct_biases(
    quantized: nn.Module,
    reference: nn.Module,
    names: list[str],
    calibration_inputs: Inputs,
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> tuple[nn.Module, dict[str, float]]:
    """A copy of ``quantized`` with the biases of ``names`` corrected against the float layers of
    ``reference`` (same structure); returns it and the mean |shift| removed per layer (NaN: no bias)."""
    out = copy.deepcopy(quantized).eval()
    shifts: dict[str, float] = {}
    done: set[str] = set()
    handles = []
    for name in names:
        q_mod = out.get_submodule(name)
        f_mod = reference.get_submodule(name)
        if q_mod.bias is None:
            shifts[name] = float("nan")
            continue
        w_f = f_mod.weight.detach()
        b_f = f_mod.bias.detach() if f_mod.bias is not None else None

        def hook(m, args, output, name=name, w_f=w_f, b_f=b_f):  # noqa: ANN001
            if name in done or not args:
                return None  # a layer that runs twice is corrected once, on its first call
            x = args[0]
            float_out = _functional(m, x, w_f, b_f)
            error = output - float_out
            dims = [d for d in range(error.dim()) if d != channel_dim(m, error)]
            expected = torch.mean(error, dims) if dims else error
            with torch.no_grad():
                m.bias.sub_(expected.to(m.bias.dtype))
            shifts[name] = float(expected.abs().mean())
            done.add(name)
            return _functional(m, x, m.weight, m.bias)

        handles.append(q_mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(out, calibration_inputs)
    finally:
        for h in handles:
            h.remove()
    return out, shifts
