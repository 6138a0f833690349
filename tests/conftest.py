"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest
import torch

# App tests and the servers the browser tests start do not warm themselves up (serving.warmup): it would only
# spend the CPU the tests need. tests/test_warmup.py turns it on where it is the subject.
os.environ.setdefault("QE_WARM", "0")
# Nothing a developer's shell says about a shared result store (deploy/) reaches the tests: a test that wants a
# store makes its own, so no result computed by an earlier run or another checkout can answer for a test.
for _name in ("QE_STORE_DIR", "QE_REDIS_URL", "QE_STORE_KEY"):
    os.environ.pop(_name, None)


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


# --- the job runner -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _jobs_run_in_process():
    """App tests run the long jobs on threads of the test process (``JobRunner(in_process=True)``).

    Same runner, same sharing and progress; but a test that replaces a job function (to prove a rerun
    computes nothing, or to make one fail) is seen by a thread and not by a worker process. The worker
    processes themselves are tested in ``test_jobs.py``, and every browser test's server uses them.
    """
    from ui import jobs

    runner = jobs.JobRunner(workers=1, in_process=True)
    previous = jobs.set_runner(runner)
    yield runner
    jobs.set_runner(previous)
    runner.shutdown()


@pytest.fixture
def worker_processes():
    """This test's app runs its long jobs in real worker processes (a fresh runner, shut down after)."""
    from ui import jobs

    runner = jobs.JobRunner(workers=1)
    previous = jobs.set_runner(runner)
    yield runner
    jobs.set_runner(previous)
    runner.shutdown()


# --- browser tests (modules marked ``pytest.mark.browser``) --------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _require_browser(request: pytest.FixtureRequest) -> None:
    """Browser modules skip on a developer machine without Chromium or playwright, but FAIL under CI=true:
    a CI run that silently skipped its browser tests would claim a coverage it does not have."""
    if request.node.get_closest_marker("browser") is None:
        return
    from browser_support import browser_missing

    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    """``streamlit run app.py`` on a free loopback port, for the whole module."""
    from browser_support import StreamlitServer

    with StreamlitServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with a fresh profile; every request off this machine is aborted and recorded."""
    from browser_support import guard_network, launch_browser

    with launch_browser(1280, 800) as context:
        context.blocked = guard_network(context)  # type: ignore[attr-defined]
        yield context


@pytest.fixture()
def page(browser):
    """A tab of the module's browser, with room for a sweep or an export on a busy 2-core machine."""
    p = browser.new_page()
    p.set_default_timeout(180_000)
    yield p
    p.close()


# --- app tests ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    """app.py sets torch to one thread for the server; give the rest of the test session its setting back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def baseline_hashes() -> dict[str, str]:
    """Fingerprints of the cached sample models before a module's pages ran (see ``model_hash``)."""
    from model_hash import state_hash

    import sample_models

    return {name: state_hash(sample_models.load(name).model) for name in sample_models.names()}
