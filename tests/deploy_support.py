"""Helpers for the tests of ``deploy/`` and the shared result store: Debian services started on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent


def require(binary: str, package: str) -> str:
    """The path of ``binary``; skip without it on a developer machine, FAIL under CI=true (``.ci/run``
    installs ``package`` from Debian, so a missing one there is a broken CI, not a reason to skip)."""
    path = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}")
                                         if Path(p).exists()), None)
    if path:
        return path
    reason = f"{binary} is not installed (Debian: apt-get install -y {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free loopback port, nothing saved to disk; yields its URL."""
    binary = require("redis-server", "redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-") as folder:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        try:
            import redis

            client = redis.Redis(port=port, socket_timeout=1)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_process(proc)
