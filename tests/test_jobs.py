"""The job runner (``ui.jobs``): long work in worker processes, shared by key, with progress, stop and bounds."""

from __future__ import annotations

import os
import time

import job_funcs as jf
import pytest

from ui.jobs import JobFailed, JobRunner, JobStopped, ServerBusy, run_inline

pytestmark = pytest.mark.slow


@pytest.fixture
def runner():
    r = JobRunner(workers=1, max_seconds=60)
    yield r
    r.shutdown()


def _until(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.05)


def test_same_key_is_one_job_and_a_finished_key_is_not_recomputed(runner):
    first = runner.submit("count|3", jf.count, (3, 0.05), label="count")
    assert runner.submit("count|3", jf.count, (3, 0.05)) is first
    runner.wait(first, 120)
    assert first.result == 3 and first.error is None
    again = runner.submit("count|3", jf.pid)  # would return a pid if it ran
    assert again.is_done and again.result == 3
    assert runner.finished("count|3").seconds > 0


def test_jobs_run_in_another_process(runner):
    job = runner.wait(runner.submit("pid", jf.pid), 120)
    assert job.result != os.getpid()


def test_progress_and_partial_results_reach_the_server(runner):
    job = runner.submit("keep", jf.count_keeping, (40, 0.05), label="keep")
    _until(lambda: len(job.partials) >= 3 and job.total == 40)
    assert job.partials[:3] == [0, 1, 2]
    assert 0 < job.fraction < 1
    runner.stop("keep")
    runner.wait(job, 60)


def test_stop_ends_a_running_job_at_its_next_step_and_keeps_what_it_returns(runner):
    job = runner.submit("keep", jf.count_keeping, (400, 0.05), label="keep")
    _until(lambda: job.done >= 2)
    assert runner.stop("keep")
    runner.wait(job, 60)
    assert job.result["status"] == "stopped" and 2 <= job.result["done"] < 400


def test_stop_of_a_job_that_does_not_catch_it_reports_stopped_and_keeps_nothing(runner):
    job = runner.submit("count", jf.count, (400, 0.05), label="count")
    _until(lambda: job.done >= 1)
    runner.stop("count")
    runner.wait(job, 60)
    assert isinstance(job.error, JobStopped)
    assert runner.result("count") is None


def test_only_the_owner_may_stop_a_job(runner):
    job = runner.submit("mine", jf.count, (400, 0.05), owner="alice")
    assert not runner.stop("mine", owner="bob")
    assert runner.stop("mine", owner="alice")
    runner.wait(job, 60)


def test_a_queued_job_that_is_stopped_never_runs(runner):
    runner.submit("long", jf.count, (400, 0.05))
    queued = runner.submit("queued", jf.pid)
    assert runner.ahead_of(queued) == 1
    runner.stop("queued")
    assert isinstance(queued.error, JobStopped)
    runner.stop("long")


def test_a_worker_that_dies_fails_its_job_in_plain_words_and_the_next_job_runs(runner):
    dead = runner.wait(runner.submit("die", jf.die, label="the crash test"), 120)
    assert isinstance(dead.error, JobFailed)
    assert "stopped unexpectedly" in str(dead.error) and "the crash test" in str(dead.error)
    after = runner.wait(runner.submit("after", jf.pid), 120)
    assert isinstance(after.result, int) and runner.restarts == 1
    assert not runner._pools, "finished jobs keep no reference to their pool (a rebuilt one can go)"


def test_a_job_over_the_memory_limit_fails_with_a_plain_message():
    r = JobRunner(workers=1, memory_bytes=3 * 2**30)
    try:
        job = r.wait(r.submit("big", jf.allocate, (6.0,), label="a huge table"), 120)
        assert isinstance(job.error, JobFailed) and "more memory" in str(job.error)
        assert r.wait(r.submit("after", jf.pid), 120).result
    finally:
        r.shutdown()


def test_a_job_over_its_time_is_killed_and_the_queue_goes_on():
    r = JobRunner(workers=1, max_seconds=1.0)
    try:
        slow = r.submit("slow", jf.count, (1000, 0.05), label="the slow one")
        behind = r.submit("behind", jf.pid)
        r.wait(slow, 60)
        assert isinstance(slow.error, JobFailed) and "took longer than" in str(slow.error)
        assert isinstance(r.wait(behind, 120).result, int)
    finally:
        r.shutdown()


def test_a_value_error_from_the_job_reaches_the_page_unchanged(runner):
    job = runner.wait(runner.submit("fail", jf.fail), 120)
    assert isinstance(job.error, ValueError) and "does not divide" in str(job.error)
    assert runner.result("fail") is None  # failures are not kept: a retry computes again


def test_the_queue_is_bounded_with_a_plain_message():
    r = JobRunner(workers=1, max_pending=2)
    try:
        r.submit("running", jf.count, (400, 0.05))
        r.submit("w1", jf.pid)
        r.submit("w2", jf.pid)
        with pytest.raises(ServerBusy, match="already running or waiting"):
            r.submit("w3", jf.pid)
    finally:
        r.shutdown()


def test_a_job_function_runs_inline_without_a_worker():
    assert run_inline(jf.count, 3, 0.0) == 3


def test_in_process_mode_shares_progress_and_stop_the_same_way():
    r = JobRunner(workers=1, in_process=True)
    try:
        job = r.submit("keep", jf.count_keeping, (400, 0.02), label="keep")
        _until(lambda: job.done >= 2 and job.partials)
        assert job.pid == os.getpid()  # a thread of this process
        r.stop("keep")
        r.wait(job, 60)
        assert job.result["status"] == "stopped"
        assert r.wait(r.submit("fail", jf.fail), 60).error.args[0].startswith("group size 7")
    finally:
        r.shutdown()


def test_finished_results_are_bounded_and_failures_are_not_kept():
    r = JobRunner(workers=1, max_results=2, in_process=True)
    try:
        for i in range(4):
            r.wait(r.submit(f"k{i}", jf.count, (i, 0.0)), 60)
        assert r.result("k0") is None and r.result("k3") == 3
        assert [k for k, _ in r.finished_items("k")] == ["k2", "k3"]
    finally:
        r.shutdown()


def test_workers_do_not_rerun_the_servers_main_script(tmp_path, monkeypatch):
    # During a script run Streamlit's __main__ is app.py itself; a worker that re-imported it would draw a page
    # (and fail outside a server). A __main__ whose import fails proves the worker never imports it.
    import sys
    import types

    script = tmp_path / "app_like.py"
    script.write_text("raise RuntimeError('the worker ran the server script')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    fake_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    r = JobRunner(workers=1)
    try:
        job = r.wait(r.submit("pid", jf.pid), 120)
        assert job.error is None and job.result != os.getpid()
    finally:
        r.shutdown()


def test_submitting_never_waits_for_workers_to_start():
    r = JobRunner(workers=1)
    try:
        start = time.monotonic()
        job = r.submit("pid", jf.pid)
        r.finished("anything")  # another session reading the runner meanwhile
        waited = time.monotonic() - start
        r.wait(job, 120)
        # Starting the forkserver and a worker imports torch (seconds); submit only queues the job.
        assert waited < job.finished - start
        assert waited < 1.0
    finally:
        r.shutdown()
