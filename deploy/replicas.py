"""Start, check and stop several app replicas behind nginx on this machine (``deploy/run_replicas.sh``).

    deploy/run_replicas.sh 3 8080      # replicas on 8081-8083, nginx on 8080; returns once all are warm
    deploy/run_replicas.sh status      # each replica's and nginx's health
    deploy/run_replicas.sh stop        # every replica (with its job workers) and nginx, cleanly
    deploy/run_replicas.sh serve 3 8080  # start, stay in the foreground, stop all on SIGTERM (containers)

Each replica is ``python -m serving`` (a Streamlit server that warms itself up) in a session of its own, so that
stopping it stops its job workers too. nginx runs from a configuration written by :mod:`deploy.nginx_config`,
with its pid file, logs and temporary files in the run directory, as any user. Streamlit's static files are
copied there once and pre-compressed, so nginx serves them (gzipped, cached for a year) without asking a
replica. Replicas share finished results through a directory in the run directory, or Redis if
``QE_REDIS_URL`` is set (:mod:`ui.result_store`).

Settings (environment):

- ``QE_RUN_DIR``: where pid files, logs, the nginx configuration, static files and results go
  (``$TMPDIR/quantization-explorer-<uid>``);
- ``QE_LISTEN_ADDRESS``: nginx's address (``127.0.0.1``; ``0.0.0.0`` to serve the LAN);
- ``QE_REPLICA_ADDRESS``: the replicas' address (``127.0.0.1``; ``0.0.0.0`` when nginx runs on another host);
- ``QE_NGINX=0``: replicas only (this host is one of several behind an nginx elsewhere);
- ``QE_START_TIMEOUT``: seconds to wait for every replica to be warm (600);
- everything the app reads (``QE_WARM``, ``QE_WARM_LINKS``, ``QE_JOB_WORKERS``, ``QE_STORE_DIR``, …).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deploy import nginx_config

ROOT = Path(__file__).resolve().parent.parent
MAX_REPLICAS = 32
#: Static files worth compressing ahead (fonts are compressed already).
COMPRESS = {".js", ".css", ".svg", ".json", ".map", ".txt", ".html"}


def run_dir() -> Path:
    default = Path(os.environ.get("TMPDIR", "/tmp")) / f"quantization-explorer-{os.getuid()}"
    return Path(os.environ.get("QE_RUN_DIR") or default)


def _state_file(run: Path) -> Path:
    return run / "replicas.json"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs. Zombies don't count: a replica whose parent (this
    script) has exited is reaped by whatever init the machine has, and some containers' init never reaps."""
    proc = Path("/proc")
    if not proc.exists():
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            return True
    return False


def static_copy(run: Path) -> Path:
    """Streamlit's ``static/static`` folder copied into ``run`` with a ``.gz`` beside each text file (for
    ``gzip_static``); redone only when the installed Streamlit changes."""
    import streamlit

    source = Path(streamlit.__file__).parent / "static" / "static"
    target = run / "static"
    stamp = target / ".streamlit-version"
    if stamp.exists() and stamp.read_text() == streamlit.__version__:
        return target
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    files = [p for p in target.rglob("*") if p.is_file() and p.suffix in COMPRESS and p.stat().st_size >= 1024]
    subprocess.run(["gzip", "-k", "-6", "-f", *map(str, files)], check=True)
    stamp.write_text(streamlit.__version__)
    return target


def start(n: int, port: int) -> int:
    if not 1 <= n <= MAX_REPLICAS:
        print(f"The number of replicas must be between 1 and {MAX_REPLICAS}, not {n}.", file=sys.stderr)
        return 2
    if not 1024 <= port <= 65535 - n:
        print(f"PORT must leave room for {n} replica ports after it (1024-{65535 - n}), not {port}.", file=sys.stderr)
        return 2
    run = run_dir()
    state_path = _state_file(run)
    if state_path.exists() and any(_alive(r["pid"]) for r in json.loads(state_path.read_text())["replicas"]):
        print(f"Replicas from {run} are still running: `deploy/run_replicas.sh stop` first.", file=sys.stderr)
        return 1
    use_nginx = os.environ.get("QE_NGINX", "1") != "0"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if use_nginx and not Path(nginx).exists():
        print("nginx is not installed (Debian: apt-get install -y nginx).", file=sys.stderr)
        return 1
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o755)  # nginx's workers (user nobody when started as root) read the static files under it
    (run / "nginx-tmp").mkdir(exist_ok=True)
    env = dict(os.environ)
    if not env.get("QE_REDIS_URL"):
        env.setdefault("QE_STORE_DIR", str(run / "results"))
    address = env.get("QE_REPLICA_ADDRESS", "127.0.0.1")
    ports = [port + i for i in range(1, n + 1)]
    replicas = []
    for p in ports:
        log = open(run / f"replica-{p}.log", "wb")  # noqa: SIM115 - the replica writes it after we exit
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--server.port", str(p), "--server.address", address,
             "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `stop` takes its job workers with it
        )
        replicas.append({"port": p, "pid": proc.pid, "log": log.name})
    state = {"replicas": replicas, "port": port, "nginx": None, "run_dir": str(run)}
    state_path.write_text(json.dumps(state, indent=2))
    if use_nginx:
        site = nginx_config.site(f"{os.environ.get('QE_LISTEN_ADDRESS', '127.0.0.1')}:{port}",
                                 [f"127.0.0.1:{p}" for p in ports], static_dir=str(static_copy(run)))
        conf = run / "nginx.conf"
        conf.write_text(nginx_config.standalone(str(run), site))
        base = [nginx, "-p", str(run), "-e", str(run / "nginx-error.log"), "-c", str(conf)]
        test = subprocess.run([*base, "-t"], capture_output=True, text=True)
        if test.returncode != 0:
            print(test.stderr, file=sys.stderr)
            stop()
            return 1
        subprocess.run(base, check=True)
        state["nginx"] = {"conf": str(conf), "pid_file": str(run / "nginx.pid"), "binary": nginx}
        state_path.write_text(json.dumps(state, indent=2))
    return _wait_ready(state, warm=env.get("QE_WARM", "1") != "0")


def _wait_ready(state: dict, warm: bool) -> int:
    """Wait until every replica is healthy (and warmed, when the warm-up is on); then nginx answers."""
    deadline = time.monotonic() + float(os.environ.get("QE_START_TIMEOUT", "600"))
    waiting = {r["port"]: r for r in state["replicas"]}
    while waiting and time.monotonic() < deadline:
        for p, r in list(waiting.items()):
            text = Path(r["log"]).read_text(errors="replace")
            if not _alive(r["pid"]) or "did not start" in text:
                print(f"Replica on port {p} stopped while starting; its log ({r['log']}):\n{text[-3000:]}",
                      file=sys.stderr)
                stop()
                return 1
            if healthy(f"http://127.0.0.1:{p}") and (not warm or "Ready:" in text):
                ready = next((line for line in text.splitlines() if line.startswith("Ready:")), "healthy")
                print(f"replica :{p} {ready}", flush=True)
                del waiting[p]
        time.sleep(0.5)
    if waiting:
        print(f"Replicas on ports {sorted(waiting)} were not ready in time; stopping everything.", file=sys.stderr)
        stop()
        return 1
    if state["nginx"]:
        front = f"http://127.0.0.1:{state['port']}"
        if not healthy(front, timeout=5):
            print(f"nginx on port {state['port']} does not answer; see {state['run_dir']}/nginx-error.log",
                  file=sys.stderr)
            stop()
            return 1
        print(f"Ready: {len(state['replicas'])} replicas behind nginx on port {state['port']}.", flush=True)
    else:
        print(f"Ready: {len(state['replicas'])} replicas (no nginx on this host).", flush=True)
    return 0


def stop(grace: float = 20.0) -> int:
    """Stop every replica's process group (server, launcher, job workers) and nginx; wait until they are gone."""
    state_path = _state_file(run_dir())
    if not state_path.exists():
        print("No replicas are running from this run directory.")
        return 0
    state = json.loads(state_path.read_text())
    nginx = state.get("nginx")
    if nginx and Path(nginx["pid_file"]).exists():
        run = state["run_dir"]
        subprocess.run([nginx["binary"], "-p", run, "-e", f"{run}/nginx-error.log", "-c", nginx["conf"],
                        "-s", "quit"], capture_output=True)
    groups = [r["pid"] for r in state["replicas"]]
    for pid in groups:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in groups):
        time.sleep(0.2)
    for pid in groups:
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    if nginx:
        pid_file = Path(nginx["pid_file"])
        end = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < end:
            time.sleep(0.1)
    state_path.unlink()
    print(f"Stopped {len(groups)} replica(s){' and nginx' if nginx else ''}.")
    return 0


def status() -> int:
    state_path = _state_file(run_dir())
    if not state_path.exists():
        print("No replicas are running from this run directory.")
        return 1
    state = json.loads(state_path.read_text())
    ok = True
    for r in state["replicas"]:
        up = healthy(f"http://127.0.0.1:{r['port']}")
        ok &= up
        print(f"replica :{r['port']} pid {r['pid']}: {'ok' if up else 'NOT ANSWERING'}")
    if state["nginx"]:
        up = healthy(f"http://127.0.0.1:{state['port']}")
        ok &= up
        print(f"nginx :{state['port']}: {'ok' if up else 'NOT ANSWERING'}")
    return 0 if ok else 1


def serve(n: int, port: int) -> int:
    """:func:`start`, then stay in the foreground until SIGTERM / SIGINT (then :func:`stop`) or until every
    replica has died: a container's main process, which its runtime stops with SIGTERM."""
    code = start(n, port)
    if code != 0:
        return code
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    groups = [r["pid"] for r in json.loads(_state_file(run_dir()).read_text())["replicas"]]
    while not stopping and any(_alive(g) for g in groups):
        time.sleep(1.0)
    stop()
    return 0 if stopping else 1


USAGE = "usage: deploy/run_replicas.sh N PORT | serve N PORT | stop | status"


def _numbers(args: list[str]) -> tuple[int, int] | None:
    if len(args) == 2 and all(a.isdigit() for a in args):
        return int(args[0]), int(args[1])
    return None


def main(argv: list[str]) -> int:
    if argv == ["stop"]:
        return stop()
    if argv == ["status"]:
        return status()
    if argv[:1] == ["serve"] and _numbers(argv[1:]):
        return serve(*_numbers(argv[1:]))
    if _numbers(argv):
        return start(*_numbers(argv))
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
