"""A large class through deploy/'s nginx: N replicas on this machine, simulated participants, transfer sizes.

    python benchmarks/bench_replicas.py                       # 120 participants over 3 replicas, then over 1
    python benchmarks/bench_replicas.py --replicas 3 --users 120 --window 30 --no-baseline
    python benchmarks/bench_replicas.py --transfer-only       # only the page-load transfer sizes

What it does:

1. ``deploy/run_replicas.sh N PORT`` on a free loopback port, warm-up on (as a class would get it), timed.
2. **Transfer size of a fresh page load**, in a fresh headless Chromium: through nginx (gzip, static files
   from nginx) and straight from one replica (what a single ``streamlit run`` sends), plus a reload through
   nginx (year-long ``immutable`` caching: the static files are not fetched again). Bytes on the wire are the
   encoded body sizes Chromium reports for every response until the first chart is drawn.
3. **Load**: ``benchmarks/bench_workshop.py warm --users U --url <nginx> --pid <each replica>``: each participant
   opens one of three links and moves the bit-width slider 5 times (think 1-3 s); every participant gets its
   own ``qe_replica`` cookie, so nginx spreads them over the replicas. Then, unless ``--no-baseline``, the same
   load on one replica behind the same nginx, for comparison.

A benchmark, not a test: nothing fails; figures are printed. Loopback only, bounded in time; everything it
starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import free_port_run  # noqa: E402 - tests/ is on the path from here on

SCRIPT = ROOT / "deploy" / "run_replicas.sh"
LINK = "/?model=digits-cnn&layer=conv2"


class Replicas:
    """``run_replicas.sh N PORT`` in a throw-away run directory; stopped on exit."""

    def __init__(self, n: int, warm: bool = True) -> None:
        self.n = n
        self.port = free_port_run(n)
        self.run_dir = tempfile.mkdtemp(prefix="qe-bench-replicas-")
        self.env = {**os.environ, "QE_RUN_DIR": self.run_dir, "QE_PYTHON": sys.executable,
                    "QE_WARM": "1" if warm else "0"}
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Replicas:
        start = time.monotonic()
        done = subprocess.run([str(SCRIPT), str(self.n), str(self.port)], env=self.env, capture_output=True,
                              text=True, timeout=900)
        self.seconds = time.monotonic() - start
        if done.returncode != 0:
            raise RuntimeError(done.stdout + done.stderr)
        print(done.stdout.rstrip())
        state = json.loads((Path(self.run_dir) / "replicas.json").read_text())
        self.pids = [r["pid"] for r in state["replicas"]]
        self.replica_urls = [f"http://127.0.0.1:{r['port']}" for r in state["replicas"]]
        print(f"  {self.n} replica(s) warm and behind nginx in {self.seconds:.0f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([str(SCRIPT), "stop"], env=self.env, capture_output=True, timeout=120)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def page_load_bytes(url: str, reload: bool = False) -> tuple[int, int, float]:
    """(bytes on the wire, responses, seconds) of loading ``url`` in a fresh Chromium until a chart is drawn;
    with ``reload``, of a second load in the same browser (its cache warm)."""
    from browser_support import launch_browser, wait_charts

    with launch_browser(1280, 800) as context:
        page = context.new_page()
        page.set_default_timeout(120_000)
        if reload:
            page.goto(url)
            wait_charts(page, 1)
        sizes: list[int] = []

        def count(response) -> None:  # noqa: ANN001 - playwright Response
            try:
                s = response.request.sizes()
                sizes.append(s["responseBodySize"] + s["responseHeadersSize"])
            except Exception:  # noqa: BLE001 - a response that failed has no sizes
                pass

        page.on("requestfinished", lambda request: count(request.response()) if request.response() else None)
        start = time.monotonic()
        page.goto(url)
        wait_charts(page, 1)
        seconds = time.monotonic() - start
        page.wait_for_timeout(500)
        return sum(sizes), len(sizes), seconds


def transfer(replicas: Replicas) -> None:
    print("\n== transfer size of a fresh page load (Chromium, until the first chart is drawn)")
    rows = [
        ("straight from one replica (no gzip)", replicas.replica_urls[0] + LINK, False),
        ("through nginx (gzip, static from nginx)", replicas.url + LINK, False),
        ("through nginx, reloaded (browser cache)", replicas.url + LINK, True),
    ]
    for label, url, reload in rows:
        total, n, seconds = page_load_bytes(url, reload)
        print(f"  {label:<42} {total / 2**20:6.2f} MB in {n:3d} responses, first chart after {seconds:4.1f} s")


def load(replicas: Replicas, users: int, window: float, minutes: float) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_workshop.py"), "warm", "--users", str(users),
           "--window", str(window), "--url", replicas.url, "--max-minutes", str(minutes)]
    for pid in replicas.pids:
        cmd += ["--pid", str(pid)]
    print(f"\n== {users} participants over {replicas.n} replica(s) through nginx, arriving over {window:g} s", flush=True)
    subprocess.run(cmd, check=False, timeout=60 * (minutes + 5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which participants arrive")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="budget of one load run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the same load on one replica")
    parser.add_argument("--transfer-only", action="store_true")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.replicas} replicas; {args.users} participants")
    with Replicas(args.replicas) as replicas:
        transfer(replicas)
        if not args.transfer_only:
            load(replicas, args.users, args.window, args.max_minutes)
    if not args.transfer_only and not args.no_baseline:
        with Replicas(1) as one:
            load(one, args.users, args.window, args.max_minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
