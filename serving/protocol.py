"""A participant without a browser: Streamlit 1.67's websocket protocol, spoken from Python.

What a browser does - and so what :class:`Session` does - read from ``streamlit/web/server/starlette/
starlette_websocket.py`` and the frontend bundle (``getSessionTokens``, ``sendRerunBackMsg``):

1. ``GET <base>/_stcore/health``. The answer sets the ``_streamlit_xsrf`` cookie (``enableXsrfProtection``).
2. Open ``ws://HOST:PORT<base>/_stcore/stream`` with the subprotocols ``["streamlit", <that cookie's value>]``,
   the cookie and a same-origin ``Origin``. The server checks the token only before reading auth cookies (this app
   has none), but the handshake is then byte for byte a browser's one.
3. Send a ``BackMsg`` whose ``rerun_script`` is a ``ClientState``: ``query_string`` without the ``?``,
   ``page_name`` = the URL path below the base (``""`` for ``/``, ``"error-curves"``: ``st.navigation`` picks the
   page by it), an empty ``page_script_hash`` on the first run, ``context_info.url`` = the page URL without query.
4. Read ``ForwardMsg`` frames (one message per binary frame): ``new_session``, ``navigation`` (with
   ``st.navigation`` it names the page this run shows: ``new_session`` carries the main script's hash), deltas
   that put an element or a block at a ``delta_path`` (``[0, ...]`` main area, ``[1, ...]`` sidebar), ...,
   ``script_finished``. A run stopped by ``st.rerun()`` ends ``FINISHED_EARLY_FOR_RERUN`` and the next one follows
   on its own, so a run is over at the first *other* finish status.
5. Move a widget: send ``rerun_script`` again with the current page's hash, the query string the address bar now
   shows, and ``widget_states`` - one ``WidgetState`` per widget on the page, with the value the browser holds
   (the frontend sends them all, not just the one that moved). A widget's value is what the server last set
   (``set_value``) or else what the client had, or else the element's default. A button press is a
   ``trigger_value`` true for that one rerun.

Example: ``open_link("http://127.0.0.1:8501", "/error-curves?model=digits-mlp&bits=3", 60)`` returns a
:class:`Result` with ``status == "finished"``, the seconds from the health request to ``script_finished``, and the
texts of any ``st.exception`` / ``st.error`` / ``st.warning`` left on the page.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

XSRF_COOKIE = "_streamlit_xsrf"
#: What the frontend sends when it has no XSRF cookie.
PLACEHOLDER_TOKEN = "PLACEHOLDER_AUTH_TOKEN"
#: Element types that hold a value the client sends back (a button's is a one-off trigger).
WIDGET_KINDS = frozenset(
    {"slider", "selectbox", "radio", "checkbox", "number_input", "text_input", "text_area", "button"}
)
_STATUS = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "finished",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile-error",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "finished",
}

Path = tuple[int, ...]


@dataclass
class Widget:
    """A widget on the page as the client holds it.

    ``value`` is the wire value: a list of floats for a slider (option strings for a select slider), the option
    string for a selectbox / radio, a bool, a number or a string; None when it has none yet (empty selectbox).
    """

    id: str
    kind: str
    label: str
    value: Any
    query_param: str
    fragment_id: str
    proto: Any  # the element's own message (Slider, Selectbox, ...)

    @property
    def scalar(self) -> Any:
        """A one-thumb slider's value as a number (int for an int slider); other widgets' value unchanged."""
        if self.kind == "slider" and isinstance(self.value, list) and len(self.value) == 1:
            v = self.value[0]
            return int(v) if self.proto.data_type == Slider.INT and isinstance(v, float) else v
        return self.value


@dataclass
class Result:
    """One script run as a client saw it: how it ended, how long it took, what it left on the page."""

    link: str
    status: str  # finished | compile-error | timeout | closed | failed
    seconds: float
    errors: list[str] = field(default_factory=list)  # st.exception / st.error texts, page-not-found
    warnings: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    first_delta_seconds: float | None = None  # until the first element arrived
    widgets: int = 0
    detail: str = ""  # why a run did not finish (exception text)

    @property
    def ok(self) -> bool:
        return self.status == "finished" and not self.errors


def _ws_url(base_url: str) -> str:
    """``http://h:p/prefix`` -> ``ws://h:p/prefix/_stcore/stream`` (https -> wss)."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/_stcore/stream"


def split_link(link: str) -> tuple[str, str]:
    """A link below the app's base as (page_name, query_string).

    >>> split_link("/error-curves?model=digits-mlp&bits=3")
    ('error-curves', 'model=digits-mlp&bits=3')
    >>> split_link("/?model=minilm")
    ('', 'model=minilm')
    """
    parts = urlsplit(link)
    return parts.path.strip("/"), parts.query


def _cookies(base_url: str, timeout: float, cookies: dict[str, str] | None = None) -> dict[str, str]:
    """The cookies the health endpoint sets, over ``cookies`` already held: the XSRF token (when
    ``enableXsrfProtection`` is on) and, behind ``deploy/``'s nginx, the ``qe_replica`` cookie that keeps a
    browser on one replica. Sending the ones held makes the request land where the browser's would."""
    held = dict(cookies or {})
    request = urllib.request.Request(f"{base_url.rstrip('/')}/_stcore/health")
    if held:
        request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in held.items()))
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        for header in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            held[name.strip()] = rest.split(";", 1)[0]
    return held


def _bare(label: str) -> str:
    """A label without leading icons and spaces.

    >>> _bare("▶️ Train")
    'Train'
    """
    i = 0
    while i < len(label) and not label[i].isalnum():
        i += 1
    return label[i:]


def _text_of(kind: str, el: Any) -> str | None:
    """The visible text of an element, for tests and error reports (None for charts and the like)."""
    if kind in ("markdown", "heading", "alert"):
        return el.body
    if kind == "metric":
        return f"{el.label}: {el.body}"
    if kind == "code":
        return el.code_text
    if kind == "exception":
        return f"{el.type}: {el.message}"
    if kind == "text":
        return el.body
    if kind == "progress":
        return el.text
    return None


def _wire_value(kind: str, p: Any) -> Any:
    """The value a freshly drawn widget holds in the browser: the server-set value, else the default."""
    if kind == "slider":
        vals = list(p.value) if p.set_value else list(p.default)
        return [p.options[int(v)] for v in vals] if p.type == Slider.SELECT_SLIDER else vals
    if kind in ("selectbox", "radio"):
        if p.set_value:
            return p.raw_value if p.HasField("raw_value") else None
        return p.options[p.default] if p.HasField("default") and p.default < len(p.options) else None
    if kind == "checkbox":
        return p.value if p.set_value else p.default
    if kind == "number_input":
        if p.set_value:
            v = p.value if p.HasField("value") else None
        else:
            v = p.default if p.HasField("default") else None
        return int(v) if v is not None and p.data_type == NumberInput.INT else v
    if kind in ("text_input", "text_area"):
        if p.set_value:
            return p.value if p.HasField("value") else None
        return p.default if p.HasField("default") else None
    return None  # button: a trigger, never held


def _widget_state(w: Widget, trigger: bool = False) -> WidgetState | None:
    """``w`` as the browser reports it in ``rerun_script.widget_states`` (None: nothing to report)."""
    ws = WidgetState(id=w.id)
    if w.kind == "button":
        if not trigger:
            return None
        ws.trigger_value = True
        return ws
    if w.value is None:
        return None
    if w.kind == "slider":
        if w.proto.type == Slider.SELECT_SLIDER:
            ws.string_array_value.data.extend(str(v) for v in w.value)
        else:
            ws.double_array_value.data.extend(float(v) for v in w.value)
    elif w.kind in ("selectbox", "radio", "text_input", "text_area"):
        ws.string_value = str(w.value)
    elif w.kind == "checkbox":
        ws.bool_value = bool(w.value)
    elif w.kind == "number_input":
        if w.proto.data_type == NumberInput.INT:
            ws.int_value = int(w.value)
        else:
            ws.double_value = float(w.value)
    else:
        return None
    return ws


def _to_wire(w: Widget, value: Any) -> Any:
    """A value as a person would pick it (``3``, ``"channel"``, ``True``) in ``w``'s wire form; checks options."""
    if w.kind == "slider":
        vals = list(value) if isinstance(value, list | tuple) else [value]
        if w.proto.type == Slider.SELECT_SLIDER:
            bad = [v for v in map(str, vals) if v not in w.proto.options]
            if bad:
                raise ValueError(f"{w.label!r} has no option {bad[0]!r}")
            return [str(v) for v in vals]
        return [float(v) for v in vals]
    if w.kind in ("selectbox", "radio"):
        if str(value) not in w.proto.options:
            raise ValueError(f"{w.label!r} has no option {value!r} (options: {list(w.proto.options)})")
        return str(value)
    if w.kind == "checkbox":
        return bool(value)
    if w.kind == "number_input":
        return int(value) if w.proto.data_type == NumberInput.INT else float(value)
    return str(value)


def _url_spelling(w: Widget) -> str:
    """How the address bar spells a bound widget's value (``bits=3``, ``log=true``)."""
    v = w.scalar
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer() and w.kind == "slider":
        return str(int(v))
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


class Session:
    """One browser tab: a websocket session on a running Streamlit server.

    Usage (inside ``async`` code; one run at a time per session)::

        s = Session("http://127.0.0.1:8501")
        r = await s.open("/?model=digits-mlp")          # Result of the first run
        r = await s.set_widget("Bit width", 3)          # move the slider: a rerun with every widget's state
        r = await s.click("Train")                      # a button whose label contains "Train"
        await s.close()
    """

    def __init__(self, base_url: str, timeout: float = 120.0, cookies: dict[str, str] | None = None) -> None:
        """``cookies``: what the browser already holds (e.g. ``qe_replica`` to land on a given replica)."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies: dict[str, str] = dict(cookies or {})
        self.link = ""
        self.page_name = ""
        self.query: dict[str, str] = {}
        self.page_hash = ""
        self.session_id = ""
        self.auto_reruns: dict[str, float] = {}  # fragment id -> seconds (st.fragment(run_every)); not followed
        self.page_not_found = ""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tree: dict[Path, tuple[str, Any, str]] = {}  # path -> (kind, element message, fragment id)
        self._values: dict[str, Any] = {}  # widget id -> wire value (what the browser holds)
        self._touched: set[Path] = set()
        self._full_run = True
        self._done = asyncio.Event()
        self._status = ""
        self._messages = 0
        self._bytes = 0
        self._first_delta: float | None = None
        self._closed = False

    # --- connection -------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Health request (XSRF cookie), then the websocket handshake as the browser does it."""
        self.cookies = await asyncio.to_thread(_cookies, self.base_url, self.timeout, self.cookies)
        token = self.cookies.get(XSRF_COOKIE)
        parts = urlsplit(self.base_url)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        self._ws = await connect(
            _ws_url(self.base_url),
            subprotocols=["streamlit", token or PLACEHOLDER_TOKEN],  # type: ignore[list-item]
            additional_headers=headers,
            origin=f"{parts.scheme}://{parts.netloc}",  # type: ignore[arg-type]
            max_size=None,  # a figure message can be large; the server caps them (maxMessageSize)
            ping_interval=None,  # browsers do not ping; a busy server must not look dead to us
            open_timeout=self.timeout,
            compression=None,  # Streamlit's server does not negotiate permessage-deflate for browsers either
        )
        self._closed = False
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._ws = self._reader = None
        self._closed = True

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what a participant does ------------------------------------------------------------------------------

    async def open(self, link: str) -> Result:
        """Open ``link`` (path and query below the base URL, e.g. ``/error-curves?model=minilm``): first run.

        The time includes the health request and the websocket handshake (not the browser's static files).
        """
        start = time.perf_counter()
        self.link = link
        self.page_name, query = split_link(link)
        self.query = dict(parse_qsl(query, keep_blank_values=True))
        try:
            if self._ws is None:
                await self.connect()
        except Exception as exc:  # noqa: BLE001 - any connection failure is a result, not a crash of the caller
            return Result(link, "failed", time.perf_counter() - start, detail=f"{type(exc).__name__}: {exc}")
        return await self._rerun(start, query_string=query, page_hash="", page_name=self.page_name)

    async def set_widget(self, label: str, value: Any) -> Result:
        """Set the widget labelled ``label`` to ``value`` and rerun, as a browser does when a person moves it."""
        w = self.widget(label)
        if w.proto.disabled:
            raise ValueError(f"{w.label!r} is disabled: a browser cannot move it")
        self._values[w.id] = _to_wire(w, value)
        w.value = self._values[w.id]
        if w.query_param:
            self.query[w.query_param] = _url_spelling(w)
        return await self._rerun(time.perf_counter(), fragment_id=w.fragment_id)

    async def click(self, label: str) -> Result:
        """Press the button labelled ``label`` (exact, else the one label containing it) and wait for the run."""
        w = self.widget(label, kind="button")
        return await self._rerun(time.perf_counter(), trigger=w.id, fragment_id=w.fragment_id)

    async def rerun(self) -> Result:
        """The "Rerun" menu item: the same widget states again."""
        return await self._rerun(time.perf_counter())

    async def stop(self) -> None:
        """The "Stop" menu item: ask the server to stop the current run."""
        await self._send(BackMsg(stop_script=True))

    # --- reading the page -------------------------------------------------------------------------------------

    def elements(self) -> Iterator[tuple[Path, str, Any]]:
        """(path, element type, element message) of everything on the page, in page order; blocks included."""
        for path in sorted(self._tree):
            kind, el, _ = self._tree[path]
            yield path, kind, el

    def widgets(self) -> list[Widget]:
        """The widgets on the page, in page order."""
        out = []
        for path in sorted(self._tree):
            kind, el, frag = self._tree[path]
            if kind in WIDGET_KINDS:
                out.append(
                    Widget(el.id, kind, el.label, self._values.get(el.id), getattr(el, "query_param_key", ""), frag, el)
                )
        return out

    def widget(self, label: str, kind: str | None = None) -> Widget:
        """The widget with this label: exact match, else exact once a leading icon is dropped (``"▶️ Train"``
        is ``"Train"``), else the widget bound to the URL parameter of that name (``"bits"``: the same widget in
        every language), else the only one whose label contains it."""
        candidates = [w for w in self.widgets() if kind is None or w.kind == kind]
        exact = (
            [w for w in candidates if w.label == label]
            or [w for w in candidates if _bare(w.label) == label]
            or [w for w in candidates if w.query_param == label]
        )
        if exact:
            return exact[0]
        partial = [w for w in candidates if label in w.label]
        if len(partial) == 1:
            return partial[0]
        labels = [w.label for w in candidates]
        why = "several match" if partial else "none matches"
        raise LookupError(f"no single {kind or 'widget'} labelled {label!r} ({why}); on the page: {labels}")

    def texts(self) -> list[str]:
        """Visible texts on the page (markdown, headings, alerts, metrics, code), in page order."""
        return [t for _, kind, el in self.elements() if (t := _text_of(kind, el)) is not None]

    def problems(self) -> tuple[list[str], list[str]]:
        """(errors, warnings) on the page: st.exception and st.error texts; st.warning texts."""
        errors, warnings = [], []
        for _, kind, el in self.elements():
            if kind == "exception":
                errors.append(f"exception {el.type}: {el.message}")
            elif kind == "alert" and el.format == Alert.ERROR:
                errors.append(el.body)
            elif kind == "alert" and el.format == Alert.WARNING:
                warnings.append(el.body)
        if self.page_not_found:
            errors.append(f"page not found: {self.page_not_found}")
        return errors, warnings

    # --- protocol -----------------------------------------------------------------------------------------------

    async def _send(self, msg: BackMsg) -> None:
        if self._ws is None:
            raise RuntimeError("not connected")
        await self._ws.send(msg.SerializeToString())

    async def _rerun(
        self,
        start: float,
        query_string: str | None = None,
        page_hash: str | None = None,
        page_name: str = "",
        trigger: str | None = None,
        fragment_id: str = "",
    ) -> Result:
        link = self.link
        if self._closed or self._ws is None:
            return Result(link, "closed", 0.0, detail="session is closed")
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = urlencode(self.query) if query_string is None else query_string
        cs.page_script_hash = self.page_hash if page_hash is None else page_hash
        cs.page_name = page_name
        cs.fragment_id = fragment_id
        parts = urlsplit(self.base_url)
        cs.context_info.url = f"{parts.scheme}://{parts.netloc}{parts.path}/{self.page_name}"
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        cs.context_info.color_scheme = "light"
        for w in self.widgets():  # every widget, as the browser sends them (fragment reruns too)
            state = _widget_state(w, trigger=w.id == trigger)
            if state is not None:
                cs.widget_states.widgets.append(state)
        self._done.clear()
        self._status = ""
        self._messages = self._bytes = 0
        self._first_delta = None
        self.page_not_found = ""
        sent = time.perf_counter()
        try:
            await self._send(msg)
            await asyncio.wait_for(self._done.wait(), self.timeout)
            status = self._status
        except TimeoutError:
            status = "timeout"
        except ConnectionClosed as exc:
            status = "closed"
            self._status = f"{exc}"
        end = time.perf_counter()
        errors, warnings = self.problems()
        if status == "compile-error":
            errors.append("the script failed to compile")
        return Result(
            link,
            status,
            end - start,
            errors,
            warnings,
            self._messages,
            self._bytes,
            None if self._first_delta is None else self._first_delta - sent,
            len(self.widgets()),
            "" if status in ("finished", "compile-error") else self._status,
        )

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                data = frame if isinstance(frame, bytes) else frame.encode()
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._messages += 1
                self._bytes += len(data)
                self._handle(msg)
        except ConnectionClosed as exc:
            self._status = f"connection closed: {exc}"
        finally:
            self._closed = True
            if not self._done.is_set():
                self._status = self._status if self._status.startswith("connection") else "connection closed"
                self._done.set()

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            # (its page_script_hash is the main script's under st.navigation: the page's comes in "navigation")
            if msg.new_session.HasField("initialize"):
                self.session_id = msg.new_session.initialize.session_id
            self._full_run = not msg.metadata.run.fragment_ids
            if self._full_run:
                self._touched = set()
        elif kind == "navigation":
            self.page_hash = msg.navigation.page_script_hash  # the page this run shows: the next rerun names it
        elif kind == "delta":
            self._delta(msg)
        elif kind == "page_not_found":
            self.page_not_found = msg.page_not_found.page_name or "(unnamed)"
        elif kind == "auto_rerun":
            self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            self.auto_reruns.clear()
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return  # st.rerun() or a newer request: the next run follows
            if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self._drop_stale()
            self._status = _STATUS.get(msg.script_finished, "finished")
            self._done.set()

    def _delta(self, msg: ForwardMsg) -> None:
        delta = msg.delta
        which = delta.WhichOneof("type")
        if which not in ("new_element", "add_block"):
            return  # transients (spinners, toasts) and the like
        if self._first_delta is None:
            self._first_delta = time.perf_counter()
        path: Path = tuple(msg.metadata.delta_path)
        # A new element or block at a path replaces whatever was there, children included.
        for old in [p for p in self._tree if len(p) > len(path) and p[: len(path)] == path]:
            del self._tree[old]
        if which == "add_block":
            self._tree[path] = ("block", delta.add_block, delta.fragment_id)
        else:
            el = delta.new_element
            kind = el.WhichOneof("type") or "empty"
            sub = getattr(el, kind)
            self._tree[path] = (kind, sub, delta.fragment_id)
            if kind in WIDGET_KINDS and kind != "button":
                wire = _wire_value(kind, sub)
                if getattr(sub, "set_value", False) or sub.id not in self._values:
                    self._values[sub.id] = wire
        self._touched.add(path)

    def _drop_stale(self) -> None:
        """After a full run, the browser drops every element the run did not draw (and forgets their widgets)."""
        if not self._full_run:
            return
        for path in [p for p in self._tree if p not in self._touched]:
            del self._tree[path]
        live = {el.id for kind, el, _ in self._tree.values() if kind in WIDGET_KINDS}
        for wid in [w for w in self._values if w not in live]:
            del self._values[wid]


async def open_once(base_url: str, link: str, timeout: float = 120.0) -> Result:
    """Open ``link`` in a fresh session, wait for its first run, close the session."""
    session = Session(base_url, timeout)
    try:
        return await session.open(link)
    finally:
        await session.close()


def open_link(base_url: str, link: str, timeout: float = 120.0) -> Result:
    """Blocking :func:`open_once` with its own event loop: callable from any thread (e.g. a server warm-up).

    >>> r = open_link("http://127.0.0.1:1", "/", timeout=2)  # nothing listens on port 1
    >>> r.status, r.ok
    ('failed', False)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop in this thread: the usual case
    else:  # called from async code: give the session a thread (and so a loop) of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(open_link, base_url, link, timeout).result()
    try:
        return asyncio.run(open_once(base_url, link, timeout))
    except Exception as exc:  # noqa: BLE001 - a warm-up must get a Result whatever happened
        return Result(link, "failed", 0.0, detail=f"{type(exc).__name__}: {exc}")
