"""What a model is run on, and the one way quantlib runs it.

``Inputs`` is one Tensor (``model(x)``), a tuple of Tensors passed positionally (``model(*x)``), or a dict of
Tensors passed by keyword (``model(**x)``, as Hugging Face models take ``input_ids=…``). Every tensor has the
batch as its first dimension. A list is refused rather than guessed at: two tensors in a list could be one
argument or two, and guessing silently changes the meaning of a batch.

    >>> import torch
    >>> from torch import nn
    >>> call(nn.Linear(3, 2), torch.ones(4, 3)).shape
    torch.Size([4, 2])
    >>> batch_size((torch.ones(5, 3), torch.zeros(5))), batch_size({"input_ids": torch.ones(2, 7)})
    (5, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

import torch
from torch import nn

Inputs: TypeAlias = torch.Tensor | tuple[torch.Tensor, ...] | Mapping[str, torch.Tensor]

_EXPECTED = "a torch.Tensor, a tuple of torch.Tensors, or a dict of torch.Tensors (keyword arguments)"


def _tensors(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """The tensors of ``inputs``; ``TypeError`` for anything outside the convention."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, tuple) and all(isinstance(t, torch.Tensor) for t in inputs):
        return inputs
    if isinstance(inputs, Mapping) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                           for k, t in inputs.items()):
        return tuple(inputs.values())
    raise TypeError(f"model inputs must be {_EXPECTED}, got {type(inputs).__name__}")


def call(model: nn.Module | Callable[..., torch.Tensor], inputs: Inputs) -> torch.Tensor:
    """Run ``model`` on ``inputs`` by the convention above and return its output, which must be one Tensor
    (what drift, sensitivity and QAT compare)."""
    _tensors(inputs)
    if isinstance(inputs, torch.Tensor):
        out = model(inputs)
    elif isinstance(inputs, tuple):
        out = model(*inputs)
    else:
        out = model(**inputs)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a single torch.Tensor, got {type(out).__name__}")
    return out


def batch_size(inputs: Inputs) -> int:
    """Examples in ``inputs``: the shared first dimension of its tensors."""
    sizes = {int(t.shape[0]) if t.dim() else 1 for t in _tensors(inputs)}
    if len(sizes) != 1:
        raise ValueError(f"input tensors differ in batch size: {sorted(sizes)}")
    return sizes.pop()


def take(inputs: Inputs, index: torch.Tensor | slice) -> Inputs:
    """The examples ``index`` selects, in the same structure (a mini-batch, the first N for a latency run)."""
    _tensors(inputs)
    if isinstance(inputs, torch.Tensor):
        return inputs[index]
    if isinstance(inputs, tuple):
        return tuple(t[index] for t in inputs)
    return {k: t[index] for k, t in inputs.items()}
