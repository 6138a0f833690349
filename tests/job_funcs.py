"""Job functions for the job-runner tests: module-level, so worker processes can import them by name."""

from __future__ import annotations

import os
import signal
import time

from ui.jobs import JobStopped, Progress


def count(n: int, pause: float, progress: Progress) -> int:
    """Counts to ``n`` with a progress report (and a chance to stop) at every step."""
    for i in range(n):
        progress(i, n, f"step {i}")
        time.sleep(pause)
    progress(n, n, "done")
    return n


def count_keeping(n: int, pause: float, progress: Progress) -> dict:
    """Like :func:`count`, but a stop returns what was counted (as QAT keeps a stopped run)."""
    done = 0
    try:
        for i in range(n):
            progress(i, n, f"step {i}")
            progress.partial(i)
            time.sleep(pause)
            done += 1
    except JobStopped:
        return {"status": "stopped", "done": done}
    return {"status": "done", "done": done}


def pid(progress: Progress) -> int:
    return os.getpid()


def die(progress: Progress) -> None:
    """The worker dies as if the kernel's OOM killer took it."""
    os.kill(os.getpid(), signal.SIGKILL)


def allocate(gigabytes: float, progress: Progress) -> int:
    """Asks for more memory than a worker may have."""
    import torch

    return int(torch.empty(int(gigabytes * 2**30), dtype=torch.uint8).numel())


def fail(progress: Progress) -> None:
    raise ValueError("group size 7 does not divide 64")
