"""``python -m serving [streamlit options]``: start the app for a workshop and warm it before anyone arrives.

Runs ``streamlit run app.py`` with the given options (e.g. ``--server.address 0.0.0.0``), waits for its health
check, opens every warm-up link once (:mod:`serving.warmup`), prints when the server is ready, and then stays
in the foreground until the server exits (Ctrl-C or SIGTERM stops both).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .warmup import links_to_warm, wait_until_healthy, warm

ROOT = Path(__file__).resolve().parent.parent


def _option(args: list[str], name: str, default: str) -> str:
    """The value of ``--name value`` or ``--name=value`` among streamlit's options."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = _option(argv, "--server.port", "8501")
    # The app's own first-run warm-up of the links is not needed: this launcher opens them, before anyone comes.
    # The app still starts its job worker (QE_WARM=workers), unless the warm-up is off altogether.
    env = {**os.environ, "QE_WARM": "0" if os.environ.get("QE_WARM") == "0" else "workers"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), *argv],
                              cwd=ROOT, env=env)

    def forward(signum: int, _frame: object) -> None:
        # Stopping the launcher (Ctrl-C, `kill`, a service manager) stops the server it started.
        if server.poll() is None:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        base = f"http://127.0.0.1:{port}"
        if not wait_until_healthy(base, timeout=120):
            print("The server did not start; see the messages above.", file=sys.stderr)
            return 1
        if os.environ.get("QE_WARM", "1") != "0":
            links = links_to_warm()
            print(f"Warming up {len(links)} links…", flush=True)
            start = time.monotonic()
            results = warm(base, links)
            for r in results:
                if not r.ok:
                    print(f"  not warmed: {r.link} ({r.status}; {'; '.join(r.errors)[:200]})", flush=True)
            ok = sum(r.ok for r in results)
            print(f"Ready: {ok} of {len(results)} links warmed in {time.monotonic() - start:.0f} s.", flush=True)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
