"""Finished job results shared between server processes: a directory, or Redis.

One Streamlit process serves ~40 participants; a class of 200 runs several replicas behind nginx (``deploy/``).
Each replica has its own job runner (:mod:`ui.jobs`), so without a shared store a sweep computed for a link on
replica 1 would be computed again by whoever opens that link on replica 3. A store holds the results every
replica writes and reads:

- :class:`DirectoryStore` (``QE_STORE_DIR=/path``): one file per result, written to a temporary file and
  renamed into place (``os.replace`` is atomic, so a reader sees a whole file or none, and concurrent writers of
  the same key simply leave the last one), pruned to ``QE_STORE_MB`` megabytes, least recently used first. Every
  replica on one machine (or on several, over a shared filesystem) points at the same directory.
- :class:`RedisStore` (``QE_REDIS_URL=redis://host:6379/0``): one key per result with a time to live; Redis'
  own ``maxmemory`` bounds it. For replicas on several machines.

Only the results of the job runner come here: sweeps, sensitivity tables, mixed-precision plans, drift curves,
QAT runs. Uploaded files never reach the runner, so they never reach a store; machine measurements (latency, the
worker's warm-up timings) stay on their replica (:func:`ui.jobs.shared_key`).

**Trust.** Values are pickled Python objects (tables, dataclasses), and unpickling runs code: a store is server
infrastructure, never user input. Each entry is signed with HMAC-SHA256 under a secret: ``QE_STORE_KEY`` if set
(set the same one on every replica), else one the store keeps beside its entries (a ``0600`` file in the
directory; a key in Redis). An entry whose signature does not match — truncated, written by another version,
or by somebody who can write the directory but not read the secret — is ignored, never unpickled.

**Versions.** Keys are namespaced by a fingerprint of the code that computes results (quantlib, ui, the sample
models and their weights, torch's version): replicas running another checkout neither read nor overwrite each
other's entries, and an upgrade starts from an empty namespace while old entries age out.

**Failures.** A store that cannot be reached or written is logged once and otherwise ignored: every replica
still has its own results, a shared store only saves recomputation.

>>> import tempfile
>>> store = DirectoryStore(tempfile.mkdtemp(), namespace="doc")
>>> store.put("sweep|digits-mlp|4", {"fc1": 0.91}, at=0.0, seconds=2.5)
>>> store.get("sweep|digits-mlp|4")
({'fc1': 0.91}, 0.0, 2.5)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

_LOG = logging.getLogger("quantization_explorer")

#: The largest result a store takes (a QAT run with its curves is ~50 kB, a sensitivity table a few kB).
MAX_ENTRY_BYTES = 16 * 2**20
#: Directory store: total size kept, in megabytes (``QE_STORE_MB``).
DEFAULT_STORE_MB = 512
#: Redis store: how long an entry lives after it was written (``QE_STORE_TTL_HOURS``).
DEFAULT_TTL_HOURS = 7 * 24
#: Signature scheme and pickle layout of an entry; a change here makes old entries unreadable, hence the version.
_MAGIC = b"QEST1"
_SIG_BYTES = 32

Entry = tuple[Any, float, float]  # (value, computed at (wall clock), seconds it took)


class ResultStore(Protocol):
    """Where finished results go so that every replica can serve them."""

    def get(self, key: str) -> Entry | None: ...

    def put(self, key: str, value: Any, at: float, seconds: float) -> None: ...

    def delete(self, key: str) -> None: ...


def code_fingerprint(root: Path | None = None) -> str:
    """12 hex digits naming the code that computes results: the sources of ``quantlib/``, ``ui/``,
    ``sample_models/`` (with the weights) and torch's version. Same checkout, same fingerprint."""
    import torch  # the results are torch's arithmetic as much as ours

    root = root or Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(torch.__version__.encode())
    for folder in ("quantlib", "ui", "sample_models"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".safetensors", ".json"}:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _encode(secret: bytes, key: str, value: Any, at: float, seconds: float) -> bytes:
    body = pickle.dumps((key, value, at, seconds), protocol=pickle.HIGHEST_PROTOCOL)
    return _MAGIC + hmac.new(secret, body, hashlib.sha256).digest() + body


def _decode(secret: bytes, key: str, blob: bytes) -> Entry | None:
    """The entry in ``blob`` if it is whole, signed with ``secret`` and really ``key``'s; else None."""
    head = len(_MAGIC) + _SIG_BYTES
    if len(blob) <= head or not blob.startswith(_MAGIC):
        return None
    signature, body = blob[len(_MAGIC):head], blob[head:]
    if not hmac.compare_digest(signature, hmac.new(secret, body, hashlib.sha256).digest()):
        return None
    try:
        stored_key, value, at, seconds = pickle.loads(body)  # noqa: S301 - signed by this deployment, see above
    except Exception:  # noqa: BLE001 - a class renamed since: treat as absent
        return None
    if stored_key != key:  # a hash collision, in theory
        return None
    return value, float(at), float(seconds)


class _WarnOnce:
    """Log a store failure once per kind, not on every page run of every session."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, kind: str, err: BaseException) -> None:
        with self._lock:
            if kind in self._seen:
                return
            self._seen.add(kind)
        _LOG.warning("result store: %s failed (%r); carrying on with this replica's own results", kind, err)


class DirectoryStore:
    """Results as files in one directory shared by every replica (atomic rename, bounded size, LRU).

    A file is ``<namespace>-<sha256(key)>.qe``; reading one touches its modification time, so pruning (oldest
    first, down to 80 % of ``max_bytes``, after a write that went over) drops what nobody asked for lately.
    Concurrent pruners may both delete the same old file: a file already gone is fine.
    """

    SUFFIX = ".qe"

    def __init__(self, path: str | os.PathLike[str], namespace: str = "", max_bytes: int | None = None,
                 secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.namespace = namespace
        self.max_bytes = max_bytes if max_bytes is not None else int(
            float(os.environ.get("QE_STORE_MB", DEFAULT_STORE_MB)) * 2**20)
        self._secret = secret or _env_secret() or self._own_secret()
        self._warn = _WarnOnce()

    def _own_secret(self) -> bytes:
        """The directory's secret file, created once by whichever replica comes first (``os.link`` of a
        finished temporary file: the winner's whole file or an error, never a half-written one)."""
        target = self.path / ".secret"
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".secret-")
            try:
                os.write(fd, secrets.token_hex(32).encode())
                os.close(fd)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return target.read_bytes().strip()

    def _file(self, key: str) -> Path:
        return self.path / f"{self.namespace}-{hashlib.sha256(key.encode()).hexdigest()}{self.SUFFIX}"

    def get(self, key: str) -> Entry | None:
        path = self._file(key)
        try:
            with open(path, "rb") as f:
                blob = f.read(MAX_ENTRY_BYTES + 1)
            os.utime(path)
        except FileNotFoundError:
            return None
        except OSError as err:
            self._warn("read", err)
            return None
        return _decode(self._secret, key, blob)

    def put(self, key: str, value: Any, at: float, seconds: float) -> None:
        try:
            blob = _encode(self._secret, key, value, at, seconds)
        except Exception as err:  # noqa: BLE001 - an unpicklable result is served locally only
            self._warn("pickle", err)
            return
        if len(blob) > MAX_ENTRY_BYTES:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, self._file(key))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError as err:
            self._warn("write", err)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(key))

    def _prune(self) -> None:
        entries = []
        total = 0
        for item in os.scandir(self.path):
            if not item.name.endswith(self.SUFFIX):
                continue
            try:
                st = item.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, item.path))
            total += st.st_size
        if total <= self.max_bytes:
            return
        for _mtime, size, path in sorted(entries):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            total -= size
            if total <= 0.8 * self.max_bytes:
                break
        # Leftover temporary files of a replica killed mid-write: old ones only (a live write takes milliseconds).
        cutoff = time.time() - 3600
        for item in os.scandir(self.path):
            if item.name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < cutoff:
                        os.unlink(item.path)


class RedisStore:
    """Results in Redis under ``qe:<namespace>:<key>``, each with a time to live.

    Timeouts are short (0.5 s): a Redis that stops answering costs each page run at most that once, then the
    failure is logged and the store is skipped for 30 s.
    """

    RETRY_AFTER_S = 30.0

    def __init__(self, url: str, namespace: str = "", ttl_seconds: int | None = None,
                 secret: bytes | None = None) -> None:
        import redis  # imported here: only deployments that use Redis need the package

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds or int(float(os.environ.get("QE_STORE_TTL_HOURS", DEFAULT_TTL_HOURS)) * 3600)
        self._secret = secret or _env_secret()
        self._down_until = 0.0
        self._warn = _WarnOnce()

    def _name(self, key: str) -> str:
        return f"qe:{self.namespace}:{hashlib.sha256(key.encode()).hexdigest()}"

    def _call(self, kind: str, fn: Any, *args: Any) -> Any:
        if time.monotonic() < self._down_until:
            return None
        try:
            if self._secret is None:
                self.client.set("qe:secret", secrets.token_hex(32), nx=True)
                self._secret = bytes(self.client.get("qe:secret"))
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - redis' errors (connection, timeout, response) all mean "skip"
            self._down_until = time.monotonic() + self.RETRY_AFTER_S
            self._warn(kind, err)
            return None

    def get(self, key: str) -> Entry | None:
        blob = self._call("read", self.client.get, self._name(key))
        if not blob or len(blob) > MAX_ENTRY_BYTES:
            return None
        return _decode(self._secret, key, bytes(blob))

    def put(self, key: str, value: Any, at: float, seconds: float) -> None:
        def write() -> None:
            blob = _encode(self._secret, key, value, at, seconds)
            if len(blob) <= MAX_ENTRY_BYTES:
                self.client.set(self._name(key), blob, ex=self.ttl_seconds)

        self._call("write", write)

    def delete(self, key: str) -> None:
        self._call("delete", self.client.delete, self._name(key))


def _env_secret() -> bytes | None:
    value = os.environ.get("QE_STORE_KEY", "")
    return value.encode() if value else None


def from_env() -> ResultStore | None:
    """The store this process is configured for: ``QE_REDIS_URL``, else ``QE_STORE_DIR``, else none (a single
    server keeps its results in its own job runner)."""
    url = os.environ.get("QE_REDIS_URL", "").strip()
    folder = os.environ.get("QE_STORE_DIR", "").strip()
    if not url and not folder:
        return None
    namespace = code_fingerprint()
    if url:
        return RedisStore(url, namespace=namespace)
    return DirectoryStore(folder, namespace=namespace)
