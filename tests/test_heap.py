"""The GC fix for a class (ui.heap, .streamlit/config.toml): no full collection per script run."""

from __future__ import annotations

import gc
import tomllib
from pathlib import Path

import pytest

from ui import heap

REPO = Path(__file__).resolve().parent.parent


def test_streamlit_does_not_collect_after_every_script_run():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert 0 < config["server"]["disconnectedSessionTTL"] <= 120


def test_settle_freezes_once_per_new_long_lived_objects(monkeypatch: pytest.MonkeyPatch):
    marker = [(1000, 1)]
    monkeypatch.setattr(heap, "_long_lived_marker", lambda: marker[0])
    monkeypatch.setattr(heap, "_seen", None)
    try:
        assert heap.settle(), "the first call freezes what is loaded"
        frozen = heap.frozen_objects()
        assert frozen > 0
        assert not heap.settle(), "nothing new: no collection, no freeze (each run's garbage stays collectable)"
        marker[0] = (1000, 2)  # a sample model was loaded
        assert heap.settle()
    finally:
        gc.unfreeze()


def test_garbage_made_after_a_freeze_is_still_collected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(heap, "_long_lived_marker", lambda: (1, 1))
    monkeypatch.setattr(heap, "_seen", None)
    try:
        heap.settle()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle, as a script run leaves behind
        import weakref

        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
