"""The warm-up (serving.warmup, ``python -m serving``): the server computes the instructor's links before the class."""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_support import REPO, StreamlitServer, free_port

from serving import warmup
from serving.protocol import open_link


def test_warmup_doctests_pass() -> None:
    assert doctest.testmod(warmup).failed == 0


def test_links_come_from_spaces_commas_lines_full_addresses_and_a_file_with_comments(tmp_path) -> None:
    listing = tmp_path / "links.txt"
    listing.write_text("# for Tuesday's class\n/?model=minilm   # the big one\n\nhttp://10.0.0.5:8501/qat?model=recsys\n")
    assert warmup.parse_links(f"@{listing}") == ["/?model=minilm", "/qat?model=recsys"]
    assert warmup.parse_links("error-curves?bits=3,/walkthrough") == ["/error-curves?bits=3", "/walkthrough"]


def test_the_instructors_links_follow_the_defaults_once_each_and_can_stand_alone() -> None:
    both = warmup.links_to_warm({"QE_WARM_LINKS": "/?model=minilm /qat?model=digits-mlp&bits=2"})
    assert both[: len(warmup.DEFAULT_LINKS)] == list(warmup.DEFAULT_LINKS)
    assert both.count("/?model=minilm") == 1 and both[-1] == "/qat?model=digits-mlp&bits=2"
    alone = warmup.links_to_warm({"QE_WARM_LINKS": "/walkthrough", "QE_WARM_DEFAULTS": "0"})
    assert alone == ["/walkthrough"]


def test_every_default_link_names_a_page_of_the_app() -> None:
    app = (REPO / "app.py").read_text()
    for link in warmup.DEFAULT_LINKS:
        path = link.split("?")[0].strip("/")
        assert path == "" or f'url_path="{path}"' in app, link


def test_every_page_of_the_app_is_warmed_at_its_default_view() -> None:
    app = (REPO / "app.py").read_text()
    pages = set(re.findall(r'url_path="([^"]+)"', app)) - {"start", "tensor-explorer"}  # both served at "/"
    assert pages <= {link.strip("/") for link in warmup.DEFAULT_LINKS}, pages


def _servers_on(port: int) -> list[int]:
    """Pids of processes whose command line names ``--server.port <port>`` (the launcher and its server)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--server.port" in cmd and str(port).encode() in cmd and b"streamlit" in b" ".join(cmd):
            pids.append(int(proc.name))
    return pids


@pytest.mark.server
def test_the_launcher_warms_the_links_serves_and_takes_its_server_down_with_it(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "QE_WARM": "1", "QE_WARM_DEFAULTS": "0",
           "QE_WARM_LINKS": "/error-curves?model=digits-mlp&bits=3, /no-such-page"}
    log = tmp_path / "launcher.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--server.port", str(port), "--server.headless", "true"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "Ready:" not in log.read_text():
            assert proc.poll() is None, "the launcher ended early:\n" + log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        assert "Ready: 1 of 2 links warmed" in text, text
        assert "not warmed: /no-such-page" in text, "a bad link is named, not fatal"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as r:
            assert r.status == 200, "the server goes on serving after the warm-up"
        assert _servers_on(port), "the server runs under the launcher"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _servers_on(port):
        assert time.monotonic() < deadline, "stopping the launcher left its streamlit server running"
        time.sleep(0.5)


@pytest.mark.server
def test_a_plain_streamlit_run_warms_everything_else_after_the_first_visit() -> None:
    env = {"QE_WARM": "1", "QE_WARM_DEFAULTS": "0", "QE_WARM_LINKS": "/walkthrough?model=tiny-linear&bits=3"}
    with StreamlitServer(env=env) as server:
        assert open_link(server.url, "/?model=digits-mlp", 120).ok
        deadline = time.monotonic() + 120
        while "warm-up: 1 of 1 links ready" not in server.log(None):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.5)
        assert server.log(None).count("warm-up: 1 of 1 links ready") == 1


def test_the_job_worker_is_warmed_once_per_server_with_every_sample_model(monkeypatch) -> None:
    from ui import jobs, sources
    from ui.compute import analysis as ad

    monkeypatch.setattr(sources, "model_names", lambda: ["tiny-linear", "digits-mlp"])
    monkeypatch.setattr(ad, "_warmed", set())
    runner = jobs.runner()
    runner.forget("warm|load-models")
    ad.warm_workers()
    job = runner.job("warm|load-models")
    assert job is not None or runner.finished("warm|load-models") is not None
    if job is not None:
        runner.wait(job, 120)
    ad.warm_workers()  # a second call submits nothing: the result is there
    assert runner.job("warm|load-models") is None
    warm = runner.result("warm|load-models")
    assert warm["models"] == ["tiny-linear", "digits-mlp"]
    assert all(t > 0 for t in warm["probe_seconds"].values())
    # Cost estimates read the worker's timing: nothing is timed in the server process.
    monkeypatch.setattr(ad, "_probe_seconds_here", lambda model: (_ for _ in ()).throw(AssertionError(model)))
    assert ad.probe_seconds("digits-mlp") == warm["probe_seconds"]["digits-mlp"]


def test_a_full_queue_never_makes_the_warm_up_fail_a_page(monkeypatch) -> None:
    from ui import jobs
    from ui.compute import analysis as ad

    def busy(*args, **kwargs):
        raise jobs.ServerBusy("12 long computations are already running or waiting")

    monkeypatch.setattr(ad, "_warmed", set())
    monkeypatch.setattr(jobs.runner(), "submit", busy)
    ad.warm_workers()  # no exception
    ad.warm_workers()  # and no second try in this process
