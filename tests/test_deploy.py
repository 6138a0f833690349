"""``deploy/``: replicas behind nginx on loopback, as ``deploy/run_replicas.sh`` starts them for a large class.

Two replicas and nginx (Debian's; ``.ci/run`` installs it, and ``redis-server``) with the warm-up off (it would
only spend the CPU the tests need), ``QE_TIMING=1`` so that each replica's log says which script runs and jobs
it did. The checks: the shipped configuration passes ``nginx -t``; a link opens and a slider round-trips over the
websocket through nginx; a browser's requests stay on one replica; an upload through nginx works (Chromium);
a result computed on one replica is served by the other without recomputing (directory and Redis stores);
static files come gzipped with long-lived caching; killing a replica leaves the other serving; ``stop`` leaves
no process behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from browser_support import REPO, free_port, free_port_run, wait_charts
from deploy_support import redis_server, require

from deploy import nginx_config, replicas
from serving.protocol import Session, open_link
from ui.jobs import shared_key

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]

SCRIPT = REPO / "deploy" / "run_replicas.sh"


class Replicas(SimpleNamespace):
    """A running ``run_replicas.sh N PORT``: ``url`` (nginx), ``ports`` (replicas), ``run_dir``."""

    def log(self, port: int) -> str:
        return (Path(self.run_dir) / f"replica-{port}.log").read_text(errors="replace")

    def runs(self, port: int) -> int:
        """Script runs the replica on ``port`` has done (its QE_TIMING lines)."""
        return self.log(port).count("QE_TIMING run ")


@contextmanager
def running_replicas(n: int, extra_env: dict[str, str] | None = None) -> Iterator[Replicas]:
    require("nginx", "nginx")
    port = free_port_run(n)
    with tempfile.TemporaryDirectory(prefix="qe-replicas-") as run_dir:
        env = {**os.environ, "QE_RUN_DIR": run_dir, "QE_WARM": "0", "QE_TIMING": "1", "QE_PYTHON": sys.executable,
               "QE_START_TIMEOUT": "180", **(extra_env or {})}
        started = subprocess.run([str(SCRIPT), str(n), str(port)], env=env, capture_output=True, text=True,
                                 timeout=240)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"Ready: {n} replicas behind nginx on port {port}." in started.stdout
        state = (Path(run_dir) / "replicas.json").read_text()
        groups = [int(pid) for pid in re.findall(r'"pid": (\d+)', state)]
        try:
            yield Replicas(url=f"http://127.0.0.1:{port}", ports=[port + i for i in range(1, n + 1)],
                           run_dir=run_dir, env=env, groups=groups)
        finally:
            stopped = subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60)
            assert stopped.returncode == 0, stopped.stderr
            assert not any(replicas._alive(g) for g in groups), "a replica or job worker outlived `stop`"  # noqa: SLF001
            assert not (Path(run_dir) / "nginx.pid").exists(), "nginx outlived `stop`"


@pytest.fixture(scope="module")
def replica_set() -> Iterator[Replicas]:
    with running_replicas(2) as r:
        yield r


def _run(make_coro) -> None:
    """Run an async check on a thread of its own: after a Playwright test this thread has a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(make_coro())).result()


def _session_runs(base: str, cookie: str, link: str = "/?model=tiny-linear") -> None:
    async def go() -> None:
        s = Session(base, timeout=120, cookies={"qe_replica": cookie})
        try:
            result = await s.open(link)
            assert result.ok, result
        finally:
            await s.close()

    _run(go)


# --- the configuration -----------------------------------------------------------------------------------------


def test_the_shipped_configuration_is_what_the_generator_writes_and_passes_nginx_t(tmp_path):
    nginx = require("nginx", "nginx")
    shipped = (REPO / "deploy" / "nginx.conf").read_text()
    assert shipped == nginx_config.site("0.0.0.0:8080", ["127.0.0.1:8501", "127.0.0.1:8502", "127.0.0.1:8503"]), (
        "deploy/nginx.conf is out of date: python deploy/nginx_config.py --listen 0.0.0.0:8080 --replica "
        "127.0.0.1:8501 --replica 127.0.0.1:8502 --replica 127.0.0.1:8503 > deploy/nginx.conf")
    (tmp_path / "nginx-tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config.standalone(str(tmp_path), shipped))
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_nginx_refuses_the_same_uploads_as_the_app():
    limit = nginx_config.max_upload_mb()
    assert f"client_max_body_size {limit + nginx_config.UPLOAD_SLACK_MB}m;" in (REPO / "deploy" / "nginx.conf").read_text()


def test_the_launcher_refuses_nonsense_arguments_with_a_plain_message():
    for args in (["0", "8080"], ["99", "8080"], ["2", "80"], ["two", "8080"], []):
        done = subprocess.run([str(SCRIPT), *args], env={**os.environ, "QE_PYTHON": sys.executable},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.strip(), args


# --- through nginx ---------------------------------------------------------------------------------------------


def test_a_link_opens_and_a_slider_change_round_trips_through_nginx(replica_set):
    async def go() -> None:
        s = Session(replica_set.url, timeout=120)
        try:
            first = await s.open("/error-curves?model=digits-mlp&bits=4")
            assert first.ok, first
            assert "qe_replica" in s.cookies  # nginx gave this browser its replica
            moved = await s.set_widget("Bit width", 3)
            assert moved.ok, moved
            assert s.query.get("bits") == "3"
        finally:
            await s.close()

    _run(go)


def test_a_browser_stays_on_its_replica_and_browsers_spread_over_all_of_them(replica_set):
    landed: dict[str, set[int]] = {}
    for _ in range(8):
        cookie = uuid.uuid4().hex
        for _visit in range(3):  # three separate connections, as page loads and reconnects are
            before = {p: replica_set.runs(p) for p in replica_set.ports}
            _session_runs(replica_set.url, cookie)
            grew = {p for p in replica_set.ports if replica_set.runs(p) > before[p]}
            landed.setdefault(cookie, set()).update(grew)
    assert all(len(ports) == 1 for ports in landed.values()), landed
    assert set().union(*landed.values()) == set(replica_set.ports), "8 browsers all landed on one replica"


def test_static_files_come_gzipped_from_nginx_and_are_cached_for_a_year(replica_set):
    page = urllib.request.urlopen(replica_set.url + "/", timeout=30).read().decode()
    script = re.search(r'src="\./(static/js/index\.[^"]+\.js)"', page).group(1)
    request = urllib.request.Request(f"{replica_set.url}/{script}", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert "immutable" in resp.headers["Cache-Control"] and "max-age=31536000" in resp.headers["Cache-Control"]
    plain = urllib.request.urlopen(f"{replica_set.url}/{script}", timeout=30).read()
    assert gzip.decompress(body) == plain and len(body) < len(plain) / 2


def test_a_file_uploaded_through_nginx_reaches_its_session(replica_set, page, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "through-nginx.safetensors"
    save_file({"proj.weight": torch.randn(16, 32, generator=torch.Generator().manual_seed(1))}, str(path))
    page.goto(f"{replica_set.url}/your-model?bits=4")
    page.get_by_role("heading", name="Your model").first.wait_for()
    page.set_input_files("input[type=file]", str(path))
    wait_charts(page, 1)
    assert page.get_by_role("heading", name="through-nginx.safetensors").is_visible()


def _computed_and_served(r: Replicas, link: str) -> tuple[list[str], list[str], list[str]]:
    a, b = r.ports
    assert open_link(f"http://127.0.0.1:{a}", link).ok
    computed = [k for k in re.findall(r"job-computed key=(\S+)", r.log(a)) if shared_key(k)]
    # Results go to the store on a writer thread just after the page has them: wait for that write.
    deadline = time.monotonic() + 30
    while not set(computed) <= set(re.findall(r"job-stored key=(\S+)", r.log(a))):
        assert time.monotonic() < deadline, "replica A never wrote its results to the store"
        time.sleep(0.1)
    assert open_link(f"http://127.0.0.1:{b}", link).ok
    return computed, re.findall(r"job-from-store key=(\S+)", r.log(b)), re.findall(r"job-computed key=(\S+)", r.log(b))


def _assert_shared(r: Replicas, model: str) -> None:
    computed, served, recomputed = _computed_and_served(r, f"/sensitivity?model={model}")
    ours = [k for k in computed if k.startswith(f"sensitivity|{model}|")]
    assert ours, computed
    assert ours[0] in served
    assert not [k for k in recomputed if k.startswith(f"sensitivity|{model}|")], recomputed


def test_a_result_computed_on_one_replica_is_served_by_another_from_the_shared_directory(replica_set):
    _assert_shared(replica_set, "digits-mlp")
    assert list(Path(replica_set.run_dir, "results").glob("*.qe"))


def test_a_result_computed_on_one_replica_is_served_by_another_from_redis():
    with redis_server() as url, running_replicas(2, {"QE_REDIS_URL": url}) as r:
        _assert_shared(r, "tiny-linear")
        assert not Path(r.run_dir, "results").exists()  # Redis, not the directory


def test_killing_one_replica_leaves_the_other_serving_every_browser(replica_set):
    victim = replica_set.groups[0]
    os.killpg(victim, signal.SIGKILL)
    for _ in range(6):  # fresh browsers, half of which hash to the dead replica
        _session_runs(replica_set.url, uuid.uuid4().hex)
    assert urllib.request.urlopen(replica_set.url + "/_stcore/health", timeout=10).status == 200


# --- containers (no Docker engine here: the files are checked, the launcher they run is exercised) -----------


def test_the_container_runs_the_tested_launcher_in_the_foreground_and_compose_wires_redis():
    import yaml

    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert 'exec deploy/run_replicas.sh serve \\"$QE_REPLICAS\\" \\"$QE_PORT\\"' in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile  # torch's CPU build, never the CUDA one
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    app = compose["services"]["app"]
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert app["environment"]["QE_REDIS_URL"].startswith("redis://redis:")
    assert "redis" in compose["services"]


def test_serve_stays_in_the_foreground_until_sigterm_then_stops_everything():
    require("nginx", "nginx")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="qe-serve-") as run_dir:
        env = {**os.environ, "QE_RUN_DIR": run_dir, "QE_WARM": "0", "QE_PYTHON": sys.executable}
        proc = subprocess.Popen([str(SCRIPT), "serve", "1", str(port)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("Ready:"):
                    break
            assert any(line.startswith("Ready: 1 replicas") for line in lines), lines
            assert proc.poll() is None  # still in the foreground
            state = (Path(run_dir) / "replicas.json").read_text()
            groups = [int(pid) for pid in re.findall(r'"pid": (\d+)', state)]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
            assert not any(replicas._alive(g) for g in groups)  # noqa: SLF001
            assert not (Path(run_dir) / "nginx.pid").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
