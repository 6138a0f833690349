"""Cross-layer equalization (Nagel, van Baalen, Blankevoort, Welling 2019, "Data-Free Quantization Through
Weight Equalization and Bias Correction", arXiv 1906.04721, §4.1): ReLU is positively homogeneous,
``relu(x / s) = relu(x) / s`` for ``s > 0``, so a channel's range can be moved from one layer into the next
without changing the network's output:

    r1_i = range of layer 1's output channel i,   r2_i = range of layer 2's input channel i
    s_i  = sqrt(r1_i / r2_i)
    W1' = diag(s)⁻¹ W1,   b1' = b1 / s,   W2' = W2 diag(s)

after which both channels have range ``sqrt(r1_i · r2_i)``; repeated over all pairs until the weights change
by less than ``1e-4``. Per-tensor quantization then wastes far fewer levels on channels whose range was tiny.
The arithmetic is that of ``torch/ao/quantization/_equalize.py`` (``cross_layer_equalization``, ``equalize``,
``converged``), range ``max − min`` and ``+1e-9``, so results agree with torch's to the bit.

Pairs are found by tracing the model (``torch.fx``): two Linear / Conv layers where the first one's output goes
only through ReLU / MaxPool (both commute with a positive per-channel scale) into the second. Worked example:
``r1 = [4, 1]``, ``r2 = [1, 4]`` → ``s = [2, 0.5]``, and both layers' ranges become ``[2, 2]``.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import is_target

#: Ops that commute with a positive per-channel scale and may sit between the two layers of a pair.
_HOMOGENEOUS_MODULES = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Identity, nn.Dropout)
_HOMOGENEOUS_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.max_pool2d, torch.nn.functional.max_pool2d}
DEFAULT_THRESHOLD = 1e-4
MAX_ROUNDS = 1000


def find_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(first, second)`` layer names joined only by ReLU / max-pool, in graph order; ``[]`` when the model
    cannot be traced or has no such pair (a transformer: GELU and LayerNorm are not homogeneous)."""
    try:
        from torch import fx

        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any model that fx cannot trace simply has no pairs we can prove
        return []
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_target(modules.get(node.target, nn.Identity())):
            continue
        cur = node
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if nxt.op == "call_module" and isinstance(modules.get(nxt.target), _HOMOGENEOUS_MODULES):
                cur = nxt
                continue
            if nxt.op == "call_function" and nxt.target in _HOMOGENEOUS_FUNCTIONS and nxt.args[0] is cur:
                cur = nxt
                continue
            if nxt.op == "call_module" and is_target(modules.get(nxt.target, nn.Identity())) and cur is not node:
                first, second = modules[node.target], modules[nxt.target]
                if first.weight.shape[0] == second.weight.shape[1]:
                    pairs.append((node.target, nxt.target))
            break
    return pairs


def channel_range(w: torch.Tensor, axis: int) -> torch.Tensor:
    """``max − min`` of ``w`` over every dimension but ``axis`` (torch's ``channel_range``)."""
    moved = w.movedim(axis, 0).reshape(w.shape[axis], -1)
    return moved.max(dim=1).values - moved.min(dim=1).values


def equalize_pair(first: nn.Module, second: nn.Module) -> torch.Tensor:
    """Equalize one pair in place (on a private copy) and return the scales ``s``."""
    w1, w2 = first.weight.detach(), second.weight.detach()
    r1 = channel_range(w1, 0)
    r2 = channel_range(w2, 1) + 1e-9
    s = torch.sqrt(r1 / r2)
    inv = torch.reciprocal(s)
    shape1 = [1] * w1.dim()
    shape1[0] = w1.shape[0]
    shape2 = [1] * w2.dim()
    shape2[1] = w2.shape[1]
    with torch.no_grad():
        if first.bias is not None:
            first.bias.copy_(first.bias * inv)
        first.weight.copy_(w1 * inv.reshape(shape1))
        second.weight.copy_(w2 * s.reshape(shape2))
    return s


def equalize(model: nn.Module, pairs: list[tuple[str, str]], threshold: float = DEFAULT_THRESHOLD) -> int:
    """Equalize ``pairs`` of ``model`` (a private copy, changed in place) until the summed norm of the weight
    changes of one round is below ``threshold`` (torch's ``converged``); returns the number of rounds."""
    names = list(dict.fromkeys(n for pair in pairs for n in pair))
    modules = {n: model.get_submodule(n) for n in names}
    rounds = 0
    prev: dict[str, torch.Tensor] = {}
    while rounds < MAX_ROUNDS:
        if rounds:
            total = torch.tensor(0.0)
            for n in names:
                total += torch.norm(modules[n].weight.detach() - prev[n])
            if bool(total < threshold):
                break
        for a, b in pairs:
            prev[a] = modules[a].weight.detach().clone()
            prev[b] = modules[b].weight.detach().clone()
            equalize_pair(modules[a], modules[b])
        rounds += 1
    return rounds
