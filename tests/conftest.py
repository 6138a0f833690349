"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _quantlib_tests_run_single_threaded(request: pytest.FixtureRequest):
    """Run the ``test_quantlib_*`` files on one intra-op thread.

    They make thousands of small tensor operations; on a busy 2-core machine every parallel region waits for a
    descheduled worker thread, which made them 4-5x slower than on one thread. Results do not depend on it
    (the kernels are elementwise; the few float64 reductions compared with each other run in the same setting).
    """
    if not request.node.path.name.startswith("test_quantlib_"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
