"""Keep Python's garbage collector off the long-lived heap, so that no session waits for another's collection.

With torch, transformers, plotly and pandas imported and the sample models loaded, the server holds ~250,000
container objects that live as long as the process. A full (generation 2) collection walks all of them:
115-170 ms on the 2-core workshop machine, holding the GIL, so every other session's script waits. Two
things trigger one:

- Streamlit itself, after every script run (``runner.postScriptGC``): switched off in
  ``.streamlit/config.toml``. With 40 participants that was a full collection several times a second.
- Python's own automatic collections, when enough new objects have survived. :func:`settle` moves everything
  alive at that moment into the permanent generation (:func:`gc.freeze`), which collections skip; garbage the
  sessions create afterwards is still collected as usual, and cheaply.

:func:`settle` freezes again only when something long-lived was added (a sample model loaded, a module
imported): freezing after every run would also freeze each run's garbage cycles, which would then never be
freed.
"""

from __future__ import annotations

import gc
import sys
import threading

import sample_models

_lock = threading.Lock()
_seen: tuple[int, int] | None = None


def _long_lived_marker() -> tuple[int, int]:
    """What changes when long-lived objects arrive: modules imported, sample models built."""
    return len(sys.modules), sample_models.loaded_count()


def settle() -> bool:
    """Freeze the heap if modules or sample models were added since the last freeze. True if it froze.

    Collects first, so the garbage of loading is freed rather than frozen. Called at the end of a script run.
    """
    global _seen
    marker = _long_lived_marker()
    if marker == _seen:
        return False
    with _lock:
        if marker == _seen:
            return False
        gc.collect()
        gc.freeze()
        _seen = marker
        return True


def frozen_objects() -> int:
    """Objects in the permanent generation (for the benchmark and tests)."""
    return gc.get_freeze_count()
