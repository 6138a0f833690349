"""One fingerprint of a model for the tests that prove a shared model was never changed."""

from __future__ import annotations

import hashlib

import torch


def state_hash(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the state dict (names, dtypes, shapes, bytes), plus hooks and mode.

    Hooks and the training flag count too: a hook left on a shared model, or a ``.train()`` call, changes every
    later session's results as surely as an edited weight.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )
    h.update(f"hooks={hooks}|training={model.training}".encode())
    return h.hexdigest()
