"""The registry of sample models: `names` and `load`.

`load` builds each model once per process and then returns the same cached `SampleModel` object to every
caller and thread. That makes repeated calls free (MiniLM takes seconds to load), but it also means the
returned model is shared: never modify it in place - quantize a ``copy.deepcopy(sm.model)`` instead.
"""

from __future__ import annotations

import functools
import importlib
import threading

from .base import SampleModel

# name -> (module, builder function). Modules are imported on first load, so `import sample_models` stays
# cheap and does not pull in transformers unless MiniLM is actually requested.
_BUILDERS: dict[str, tuple[str, str]] = {
    "tiny-linear": ("sample_models.tiny_linear", "build"),
    "digits-mlp": ("sample_models.digits", "build_mlp"),
    "digits-cnn": ("sample_models.digits", "build_cnn"),
    "minilm": ("sample_models.minilm", "build"),
    "recsys": ("sample_models.recsys", "build"),
}

# One lock per name: two threads asking for the same cold model build it once (lru_cache alone would let
# both build it), while a slow MiniLM load does not hold up a request for tiny-linear.
_LOCKS: dict[str, threading.Lock] = {name: threading.Lock() for name in _BUILDERS}


def names() -> list[str]:
    """Names of the available sample models, in display order (a fresh list)."""
    return list(_BUILDERS)


@functools.cache  # an lru_cache without a size bound
def _build(name: str) -> SampleModel:
    module_name, function_name = _BUILDERS[name]
    return getattr(importlib.import_module(module_name), function_name)()


def loaded_count() -> int:
    """How many sample models this process has built so far."""
    return _build.cache_info().currsize


def load(name: str) -> SampleModel:
    """The sample model called ``name``, built on first use and cached for the life of the process.

    The returned object and its ``model`` are shared by every caller: do not mutate them.
    Raises ValueError for an unknown name, listing the valid ones.
    """
    if not isinstance(name, str) or name not in _BUILDERS:
        raise ValueError(f"unknown sample model {name!r}; valid names are: {', '.join(_BUILDERS)}")
    with _LOCKS[name]:
        return _build(name)
