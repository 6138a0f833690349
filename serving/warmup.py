"""Warm a freshly started server before the class arrives: load the models, compute each page's default view.

The first visit of a page pays for everything the server has not done yet: importing transformers and loading
MiniLM (seconds), running the calibration inputs, the first histograms. A room of 40 opening the same link in
the same minute would all wait for that. :func:`warm` opens a list of links once, through the server's own
websocket (:mod:`serving.protocol`), as a participant would: whatever a page computes for them is then in the
server's caches for everybody.

Which links:

- :data:`DEFAULT_LINKS`: every page at its default view, and each sample model's default tensor-explorer view;
- plus the instructor's own, from ``QE_WARM_LINKS``: links separated by spaces, commas or new lines, or
  ``@path/to/file`` with one link per line (``#`` starts a comment). A link is a path and query as in the
  address bar, ``/error-curves?model=digits-mlp&bits=3``; a full ``http://host:port/...`` address works too
  (only its path and query are used). ``QE_WARM=0`` turns the warm-up off; ``QE_WARM_DEFAULTS=0`` warms only
  the instructor's links.

Who starts it: ``python -m serving`` (the workshop launcher) once the server answers its health check; and
``app.py`` on the first script run of a process started with plain ``streamlit run app.py``
(:func:`start_once`), so that everything after the first visitor is warm.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from .protocol import Result, open_link

_LOG = logging.getLogger("quantization_explorer")

#: Every page's default view, then each sample model's first view (loads every model).
DEFAULT_LINKS: tuple[str, ...] = (
    "/",
    "/error-curves",
    "/output-drift",
    "/sensitivity",
    "/size-speed",
    "/qat",
    "/walkthrough",
    "/your-model",
    "/algorithms",
    "/glossary",
    "/?model=tiny-linear",
    "/?model=digits-cnn",
    "/?model=recsys",
    "/?model=minilm",
    "/output-drift?model=digits-cnn",
)
#: Seconds one link may take (MiniLM's first load on a busy 2-core server takes ~10 s).
LINK_TIMEOUT = 180.0

_started = threading.Event()


def parse_links(text: str, base_dir: Path | None = None) -> list[str]:
    """Links from ``QE_WARM_LINKS``: separated by spaces, commas or new lines, or ``@file`` (one per line).

    >>> parse_links("/?model=minilm, /error-curves?bits=3\\nhttp://10.0.0.5:8501/qat?model=digits-mlp")
    ['/?model=minilm', '/error-curves?bits=3', '/qat?model=digits-mlp']
    """
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        lines = [line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
        text = "\n".join(lines)
    links = []
    for token in text.replace(",", " ").split():
        parts = urlsplit(token)
        path = parts.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        links.append(path + (f"?{parts.query}" if parts.query else ""))
    return links


def links_to_warm(env: dict[str, str] | None = None) -> list[str]:
    """The default links plus the instructor's (``QE_WARM_LINKS``), without repeats, in order."""
    env = dict(os.environ) if env is None else env
    extra = parse_links(env.get("QE_WARM_LINKS", ""), Path.cwd()) if env.get("QE_WARM_LINKS") else []
    defaults = [] if env.get("QE_WARM_DEFAULTS", "1") == "0" else list(DEFAULT_LINKS)
    return list(dict.fromkeys([*defaults, *extra]))


def wait_until_healthy(base_url: str, timeout: float = 120.0) -> bool:
    """Poll ``/_stcore/health`` until the server answers ``ok`` (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/_stcore/health", timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def warm(base_url: str, links: list[str] | None = None, timeout: float = LINK_TIMEOUT) -> list[Result]:
    """Open every link once, one after the other (the server's cores are the limit, not the client), and log
    a line per link and a summary. Returns the results; a failing link is reported, never raised."""
    links = links_to_warm() if links is None else links
    start = time.monotonic()
    results = []
    for link in links:
        result = open_link(base_url, link, timeout)
        results.append(result)
        if result.ok:
            _LOG.info("warm-up: %s in %.1f s", link, result.seconds)
        else:
            _LOG.warning("warm-up: %s did not open cleanly (%s%s)", link, result.status,
                         f": {'; '.join(result.errors)[:200]}" if result.errors else "")
    ok = sum(r.ok for r in results)
    _LOG.warning("warm-up: %d of %d links ready in %.0f s", ok, len(results), time.monotonic() - start)
    return results


def enabled() -> bool:
    """Whether this server warms anything up (``QE_WARM`` is not ``0``)."""
    return os.environ.get("QE_WARM", "1") != "0"


def start_once(port: int, address: str = "127.0.0.1", base_path: str = "") -> bool:
    """Warm this server's links in a background thread, once per process (True if this call started it).

    Called from the app's first script run: the thread opens the links through the server's own port.
    ``QE_WARM=0`` disables it, and ``QE_WARM=workers`` (set by ``python -m serving``, which opens the links
    itself) leaves only the job worker's warm-up to the app.
    """
    if os.environ.get("QE_WARM", "1") in ("0", "workers") or _started.is_set():
        return False
    _started.set()
    host = "127.0.0.1" if address in ("", "0.0.0.0", "::") else address
    base_url = f"http://{host}:{port}/{base_path.strip('/')}".rstrip("/")
    threading.Thread(target=warm, args=(base_url,), name="qe-warm-up", daemon=True).start()
    return True
