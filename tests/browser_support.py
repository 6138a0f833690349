"""Run the real app and drive it with headless Chromium: shared by tests/test_browser.py and benchmarks/bench_app.py.

- :class:`StreamlitServer` starts ``streamlit run app.py`` on a free loopback port (the checked-in
  ``.streamlit/config.toml`` applies), waits for ``/_stcore/health`` and stops the process it started.
- :func:`launch_browser` opens Debian's Chromium through Playwright with a fresh profile every time. Playwright
  refuses ``--user-data-dir`` in ``args``, so the profile goes through ``launch_persistent_context``, which is
  the same thing.
- :func:`guard_network` makes every request that is not for this machine fail (and records it), so a test
  can assert that the app needs nothing from outside.
- The ``js_*`` snippets read charts straight from the page: Plotly keeps each figure's data on its ``div``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def browser_missing() -> str | None:
    """Why a browser test cannot run here (no Chromium, no playwright), or None when it can."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (install Debian's chromium or set CHROMIUM_PATH)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -r requirements-dev.txt)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(n: int) -> int:
    """A loopback port with the ``n`` ports after it free too (nginx on it, replicas after it)."""
    for _ in range(50):
        port = free_port()
        if port + n < 65535 and all(_unused(port + i) for i in range(n + 1)):
            return port
    raise RuntimeError(f"no run of {n + 1} free loopback ports")


def _unused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Terminate ``proc`` (if it still runs), give it ``grace`` seconds to stop, then kill it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class StreamlitServer:
    """``streamlit run app.py`` (in ``app_dir``, the repo by default) on a free port of 127.0.0.1."""

    def __init__(
        self,
        startup_timeout: float = 90.0,
        extra_args: list[str] | None = None,
        app_dir: Path = REPO,
        env: dict[str, str] | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="streamlit-", suffix=".log")[1])

    def __enter__(self) -> StreamlitServer:
        cmd = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(self.port), "--server.headless", "true", *self.extra_args,
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.app_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy in {self.startup_timeout:.0f} s:\n{self.log()}")

    def log(self, tail: int | None = 5000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def stop(self) -> None:
        stop_process(self.proc)

    def __exit__(self, *exc: object) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.log_path.unlink()


@contextlib.contextmanager
def launch_browser(width: int = 1280, height: int = 800) -> Iterator[object]:
    """A Playwright browser context on Chromium with a throw-away profile (yields the context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def guard_network(context: object) -> list[str]:
    """Abort every request to a host other than this machine; returns the (live) list of blocked URLs."""
    blocked: list[str] = []

    def route(r) -> None:  # noqa: ANN001 - playwright Route
        host = urlparse(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return blocked


# --- reading the page ---------------------------------------------------------------------------------------

#: Signature of the n-th Plotly chart's data (its traces' x / y values), or null while it is not drawn. Arrays
#: arrive as base64 ``{dtype, bdata}`` objects (or typed arrays once decoded); JSON covers both.
JS_CHART_SIGNATURE = """(n) => {
  const plots = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const gd = plots[n];
  if (!gd || !gd.data) return null;
  return JSON.stringify(gd.data.map(t => [t.x, t.y]));
}"""

#: Number of Plotly charts that have data on the page.
JS_CHART_COUNT = """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
  .filter(gd => gd.data && gd.data.length).length"""

#: Install a timer: the time of the next keydown, and of the first frame after it where chart n changed.
JS_ARM_TIMER = """(n) => {
  const sig = () => {
    const gd = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')[n];
    return gd && gd.data ? JSON.stringify(gd.data.map(t => [t.x, t.y])) : null;
  };
  window.__qe = {t0: null, t1: null, before: sig()};
  document.addEventListener('keydown', () => { if (window.__qe.t0 === null) window.__qe.t0 = performance.now(); },
                            {capture: true, once: true});
  const tick = () => {
    if (window.__qe.t0 !== null) {
      const now = sig();
      if (now !== null && now !== window.__qe.before) { window.__qe.t1 = performance.now(); return; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def wait_idle(page: object, timeout_ms: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script (its "running" indicator is gone)."""
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                  && document.querySelector('[data-testid="stApp"]')""",
        timeout=timeout_ms,
    )


def wait_charts(page: object, count: int = 1, timeout_ms: float = 90_000) -> None:
    """Wait until at least ``count`` Plotly charts are drawn and the script run is over."""
    page.wait_for_function(f"() => ({JS_CHART_COUNT})() >= {count}", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def bits_slider(page: object) -> object:
    """The sidebar's bit-width slider thumb (a native range input in Streamlit 1.67)."""
    return page.locator('[data-testid="stSidebar"]').get_by_role("slider", name="Bit width")


def sidebar(page: object) -> object:
    """The app's shared sidebar."""
    return page.locator('[data-testid="stSidebar"]')


def selectbox_text(page: object, label: str) -> str:
    """The value a sidebar selectbox shows (a combobox input in Streamlit 1.67)."""
    return sidebar(page).get_by_role("combobox", name=label, exact=True).input_value()


def heading(page: object) -> str:
    """The page's title."""
    return page.locator("h1").first.inner_text()
