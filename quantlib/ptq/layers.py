"""What the PTQ algorithms work on: the target layers, their weights as matrices, their inputs as rows.

Every algorithm in :mod:`quantlib.ptq` sees a layer as a matrix product ``Y = X Wᵀ + b``:

- ``nn.Linear``: ``W`` is the weight ``(out, in)``, ``X`` the input reshaped to ``(tokens, in)``;
- ``nn.Conv1d`` / ``nn.Conv2d`` (``groups=1``): ``W`` is the weight seen as ``(out, in·kh·kw)`` - the same view
  quantlib quantizes it in (:func:`quantlib.model.weight_view_shape`) - and ``X`` the input unfolded into
  patches (``F.unfold``), one row per output position, columns in the same ``(in, kh, kw)`` order.

Worked example: a ``Conv2d(1, 16, 3, padding=1)`` on 128 images of 8×8 has ``W`` of ``(16, 9)`` and ``X`` of
``(128·64, 9)``; its output ``X Wᵀ + b`` is the convolution, position by position.

Inputs are captured on a private copy (``copy.deepcopy``) of the model, so a shared model never carries a hook.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Inputs, call, list_layers
from ..spec import QuantSpec

#: Layer types the PTQ algorithms rewrite (transposed convs and embeddings stay as they are: see target_layers).
TARGET_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def is_target(module: nn.Module) -> bool:
    """Whether the algorithms can treat ``module`` as ``X Wᵀ + b``: Linear, or a plain (groups=1, zero-padded,
    numerically padded) Conv1d / Conv2d."""
    if type(module) is nn.Linear:
        return True
    if type(module) in (nn.Conv1d, nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return False


def target_layers(model: nn.Module) -> list[str]:
    """Names of the layers PTQ rewrites, in module order: Linear and plain Conv1d / Conv2d layers.

    Embedding tables (MiniLM's 11.7 M-value word embeddings, recsys' user / item tables) are lookups, not
    products with an input, so calibration-based algorithms have nothing to work with there; they stay float
    for every method, RTN included, so the methods are compared on the same layers.
    """
    return [info.name for info in list_layers(model) if is_target(model.get_submodule(info.name))]


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as the ``(out, k)`` float32 matrix of ``Y = X Wᵀ`` (a copy)."""
    w = module.weight.detach().to(torch.float32)
    return w.reshape(w.shape[0], -1).clone()


def set_weight_matrix(module: nn.Module, w2: torch.Tensor) -> None:
    """Write a ``(out, k)`` matrix back into ``module.weight`` (of a private copy), in its shape and dtype."""
    with torch.no_grad():
        module.weight.copy_(w2.reshape(module.weight.shape).to(module.weight.dtype))


def matrix_spec(spec: QuantSpec) -> QuantSpec:
    """The spec for a ``(out, k)`` weight matrix: per-channel along rows (axis 0), per-group along ``k``."""
    return spec.replace(axis=0) if spec.granularity == "channel" else spec


def check_spec(module_name: str, w2: torch.Tensor, spec: QuantSpec) -> None:
    """Plain words when a group size does not divide the layer's rows."""
    if spec.granularity == "group" and w2.shape[1] % spec.group_size:
        raise ValueError(
            f"layer {module_name!r}: group size {spec.group_size} does not divide its rows of {w2.shape[1]} "
            "values; pick a group size that divides every layer's rows, or per-channel"
        )


def input_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input ``x`` as rows ``X`` with ``layer(x) = X Wᵀ + b`` row by row (float32)."""
    x = x.detach().to(torch.float32)
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(-2)
        kernel, dil, pad, stride = (1, *module.kernel_size), (1, *module.dilation), (0, *module.padding), (
            1, *module.stride)
    else:
        kernel, dil, pad, stride = module.kernel_size, module.dilation, module.padding, module.stride
    cols = F.unfold(x, kernel, dilation=dil, padding=pad, stride=stride)  # (N, C·kh·kw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def channel_dim(module: nn.Module, output: torch.Tensor) -> int:
    """Which dimension of the layer's output holds the output channels: last for Linear, 1 for conv."""
    return output.dim() - 1 if isinstance(module, nn.Linear) else 1


def capture_inputs(
    model: nn.Module,
    names: list[str],
    calibration_inputs: Inputs,
    forward: Callable[[nn.Module, Inputs], Any] = call,
) -> dict[str, torch.Tensor]:
    """The input rows ``X`` (see :func:`input_rows`) of each named layer on the calibration inputs.

    One forward pass of a private copy; a layer that runs more than once (a shared module) has its calls
    stacked. A layer that never runs raises ``ValueError``.
    """
    work = copy.deepcopy(model).eval()
    found: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = []
    for name in names:
        module = work.get_submodule(name)

        def hook(m, args, _out, name=name):  # noqa: ANN001
            if args and isinstance(args[0], torch.Tensor):
                found[name].append(input_rows(m, args[0]))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(work, calibration_inputs)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, v in found.items() if not v]
    if missing:
        raise ValueError(f"layer {missing[0]!r} did not run on the calibration inputs")
    return {n: v[0] if len(v) == 1 else torch.cat(v) for n, v in found.items()}

