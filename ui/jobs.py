"""The job runner: every long computation of the app runs here, in worker processes, shared by key.

A workshop server has few cores and 30-40 browser sessions whose scripts all run in one Python process. A
sensitivity sweep, a QAT training run, a latency measurement or a drift sweep run in that process would hold
its GIL for seconds at a time, and every participant's slider would wait. So long work goes to a
:class:`concurrent.futures.ProcessPoolExecutor` (``forkserver`` workers with torch, quantlib and the sample
models preloaded, at low CPU priority), and the server process only waits, polls and draws.

One :class:`JobRunner` per server process (:func:`runner`):

- **Shared by key.** A job is a string key (model, spec, settings) and a picklable module-level function.
  Submitting a key that is queued or running joins that job; a finished key returns its result from a bounded
  LRU of results. 40 browsers pressing the same button cost one computation, and a shared link shows what the
  server already has.
- **Progress.** The function gets a :class:`Progress` callable, ``progress(done, total, message)`` (the shape
  ``quantlib``'s sweeps call), and ``progress.partial(value)`` to hand over intermediate results (QAT's curve
  points). Workers send these through one queue; a listener thread in the server applies them to the
  :class:`Job` that every waiting session polls.
- **Stop.** :meth:`JobRunner.stop` raises a flag the worker sees at its next progress call
  (:class:`JobStopped`); a function may catch it and return what it has (QAT keeps a stopped run).
- **Shared between replicas.** With a result store (:mod:`ui.result_store`: ``QE_STORE_DIR`` or ``QE_REDIS_URL``)
  a kept result of a shared key (:func:`shared_key`) is also written there, and a key this runner has not got is
  looked up there before anything is computed: a link computed on one replica opens on another at once.
- **Bounded.** At most ``workers`` jobs run, at most ``max_pending`` wait (then :class:`ServerBusy`), and a job
  running longer than ``max_seconds`` has its worker killed. A worker that dies (killed, out of memory,
  crashed) fails its job with a plain message; the pool is rebuilt and the server keeps going.

Nothing here imports Streamlit: the page side (progress bars, buttons) is :mod:`ui.views.jobs`.

**Words for the participant.** The errors below (:class:`ServerBusy`, :class:`JobStopped`, :class:`JobFailed`)
and the progress messages carry an English msgid (marked ``N_``) and its values, not a finished sentence: a
worker's ``_`` answers in English, and a job is shared by sessions in different languages. ``str(err)`` words
the message in the language of whoever asks (the session whose script calls it); ``err.msgid`` and
``err.values`` are there for a view that wants to put its own words in (:func:`ui.views.jobs.message`).

>>> r = JobRunner(workers=1)
>>> job = r.submit("square|7", _square, (7,), label="7²")
>>> r.wait(job, timeout=120).result
49
>>> r.submit("square|7", _square, (7,)).result  # finished: served from the results, not recomputed
49
>>> r.shutdown()
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import multiprocessing.spawn as mp_spawn
import os
import queue
import resource
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ui import result_store
from ui.i18n import N_, _

_LOG = logging.getLogger("quantization_explorer")

#: Finished results kept (tables of tens of rows, QAT curves: memory is not the limit, variety is).
MAX_RESULTS = 256
#: Jobs that may wait behind the running ones; beyond that a request is turned away with a plain message.
MAX_PENDING = 12
#: A job running longer than this is stopped by killing its worker (a MiniLM sweep takes 10-60 s here).
MAX_JOB_SECONDS = 600.0
#: Each worker's address-space limit: a request that slips past the cost estimates fails in its worker with
#: a MemoryError instead of taking the machine's memory from every session (the kernel's OOM killer would pick
#: the biggest process: the server). A worker with torch, transformers and MiniLM loaded maps about 2.5 GB.
WORKER_MEMORY_BYTES = int(float(os.environ.get("QE_WORKER_MEMORY_GB", "6")) * 2**30)
#: Workers run at this ``nice`` level, so interactive sessions in the server process get the CPU first.
WORKER_NICE = 10
#: Modules the forkserver imports once, so that a new worker starts in milliseconds instead of seconds.
PRELOAD = ["torch", "quantlib", "quantlib.model", "sample_models"]


#: Key kinds (the text before the first ``|``) whose results stay on their replica: measurements of this
#: machine (latency, the worker's warm-up timings) are not another machine's figures.
LOCAL_KINDS = frozenset({"speed", "warm"})


def shared_key(key: str) -> bool:
    """Whether the result of ``key`` goes to the result store shared by replicas.

    >>> shared_key("sweep|digits-mlp|2,3,4|…"), shared_key("speed|minilm")
    (True, False)
    """
    return key.split("|", 1)[0] not in LOCAL_KINDS


def _timing_log() -> bool:
    return os.environ.get("QE_TIMING") == "1"


def default_workers() -> int:
    """Worker processes: ``QE_JOB_WORKERS``, else one fewer than the cores (at least one).

    On the 2-core workshop machine that is one worker: long work uses one core, the sessions keep the other.
    """
    env = os.environ.get("QE_JOB_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) - 1)


class _Worded:
    """An error worded for a participant: an English msgid (``N_``-marked) and its values, translated when shown.

    ``args`` hold the English sentence (logs, pickling); ``str(err)`` is the sentence in the language of the
    session that asks (English in a worker or outside a session). Pickling keeps ``msgid`` and ``values``
    (``BaseException`` restores ``__dict__``), so an error raised in a worker is worded in the server.
    """

    def __init__(self, msgid: str = "", /, **values: Any) -> None:
        super().__init__(msgid.format(**values) if values else msgid)
        self.msgid, self.values = msgid, values

    def __str__(self) -> str:
        msgid, values = getattr(self, "msgid", None), getattr(self, "values", None)
        if msgid is None:  # pragma: no cover - built without __init__ (copy protocols)
            return super().__str__()
        return _(msgid, **values) if msgid else ""

    def reworded(self, **values: Any) -> _Worded:
        """The same error with some values replaced (a view puts its own words for the job's label)."""
        return type(self)(self.msgid, **{**self.values, **{k: v for k, v in values.items() if k in self.values}})


class ServerBusy(_Worded, RuntimeError):
    """Too many long computations are already waiting on this server."""


class JobStopped(_Worded, Exception):
    """Raised inside a worker at its next progress call once somebody pressed Stop."""


class JobFailed(_Worded, RuntimeError):
    """A job could not finish for a reason outside its own code (worker died, out of time, out of memory)."""


STOPPED = N_("stopped on request")
SHUTTING_DOWN = N_("the server is shutting down")


@dataclass(frozen=True)
class Finished:
    """A result in the store, with when it was computed (wall clock) and how long it took."""

    value: Any
    at: float
    seconds: float


@dataclass(eq=False)
class Job:
    """One long computation, queued, running or finished; shared by every session that asked for its key.

    Written by the runner's threads, read by the sessions' script threads: plain attribute writes, each
    atomic under the GIL; ``partials`` is only ever appended to.
    """

    key: str
    label: str
    estimate_s: float
    owner: str | None = None
    id: int = 0
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    done: int = 0
    total: int = 0
    message: str = ""
    #: The last progress message as (msgid, values), replaced in one assignment (``message`` is it in English).
    note: tuple[str, dict[str, Any]] = ("", {})
    partials: list[Any] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None
    stop_requested: bool = False
    attempts: int = 0
    pid: int | None = None
    keep: Callable[[Any], bool] | None = field(default=None, repr=False)  # which results go to the shared LRU
    event: threading.Event = field(default_factory=threading.Event)

    @property
    def is_done(self) -> bool:
        return self.event.is_set()

    @property
    def fraction(self) -> float:
        """Share done, from the counted steps; without steps, creeping towards 95 % along the estimate."""
        if self.total:
            return min(1.0, self.done / self.total)
        if self.started is None:
            return 0.0
        return min(0.95, (time.monotonic() - self.started) / max(self.estimate_s, 0.1))

    def seconds_left(self) -> float | None:
        """Seconds to go, from the rate so far (None before the first counted step)."""
        if self.started is None or not self.total or not self.done:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.done * (self.total - self.done)


# --- the worker side -----------------------------------------------------------------------------------------

_WORKER_QUEUE: Any = None
_WORKER_FLAGS: Any = None


class Progress:
    """What a job function is handed: ``progress(done, total, message)`` and ``progress.partial(value)``.

    Every call first checks the job's stop flag, so a Stop press takes effect at the next step.
    """

    def __init__(self, job_id: int, slot: int, channel: Any = None, flags: Any = None) -> None:
        self.job_id, self.slot, self.channel, self.flags = job_id, slot, channel, flags

    def check(self) -> None:
        if self.flags is not None and self.flags[self.slot]:
            raise JobStopped(STOPPED)

    def __call__(self, done: int, total: int, message: str = "", /, **values: Any) -> None:
        """Count a step. ``message`` is what the step did: a ``N_``-marked msgid with ``{placeholders}`` filled
        from ``values`` (plain values) when shown, so each waiting session reads it in its own language."""
        self.check()
        if self.channel is not None:
            self.channel.put(("progress", self.job_id, (int(done), int(total), str(message), dict(values))))

    def partial(self, value: Any) -> None:
        self.check()
        if self.channel is not None:
            self.channel.put(("partial", self.job_id, value))


class _NoProgress(Progress):
    """The progress of a job run in-process (tests, notebooks): counts nothing, never stops."""

    def __init__(self) -> None:
        super().__init__(0, 0)

    def check(self) -> None:
        return None


#: Streamlit loggers whose warnings are noise in a job worker (no server runs there).
_WORKER_QUIET_LOGGERS = (
    "streamlit.runtime.scriptrunner_utils.script_run_context",
    "streamlit.runtime.caching.cache_data_api",
    "streamlit.runtime.caching.cache_resource_api",
)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _init_worker(q: Any, flags: Any, threads: int, memory_bytes: int) -> None:
    """Runs once in every new worker: the channels back to the server, one torch thread, low priority."""
    global _WORKER_QUEUE, _WORKER_FLAGS
    _WORKER_QUEUE, _WORKER_FLAGS = q, flags
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server stops the server, which stops us
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    if memory_bytes > 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        except (ValueError, OSError):
            pass
    import torch

    torch.set_num_threads(threads)
    # Streamlit's cached helpers (``sources.sample``) work outside a server; their "no script run context" and
    # "No runtime found" warnings say nothing useful here. A filter, not a level: Streamlit's get_logger sets
    # each logger's level when the module is imported, after this, but keeps the filters already there.
    for name in _WORKER_QUIET_LOGGERS:
        logging.getLogger(name).addFilter(_errors_only)


def _run_in_worker(
    job_id: int, slot: int, fn: Callable[..., Any], args: tuple, kwargs: dict, channel: Any = None, flags: Any = None
) -> Any:
    """The body of every job: announce the start, call ``fn`` with a progress callable.

    In a worker process the channels are the ones :func:`_init_worker` kept; in-process (threads) they are
    passed in.
    """
    channel = _WORKER_QUEUE if channel is None else channel
    flags = _WORKER_FLAGS if flags is None else flags
    if channel is not None:
        channel.put(("start", job_id, os.getpid()))
    import torch

    with torch.no_grad():
        return fn(*args, progress=Progress(job_id, slot, channel, flags), **kwargs)


_spawning = threading.local()
_original_preparation_data = mp_spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """``multiprocessing.spawn.get_preparation_data``, minus the main module while our dispatcher starts workers.

    A new worker re-imports its parent's ``__main__`` - and during a script run Streamlit's ``__main__`` *is*
    ``app.py``, which must not run in a worker (it draws a page; outside a server it fails). Job functions live
    in importable modules, so a worker needs no ``__main__``. Other threads' processes keep the usual behaviour.
    """
    data = _original_preparation_data(name)
    if getattr(_spawning, "active", False):
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
    return data


mp_spawn.get_preparation_data = _preparation_data


class _workers_skip_main:  # noqa: N801 - used as a context manager, like a function
    """Within this block, processes started by this thread do not re-import ``__main__``."""

    def __enter__(self) -> None:
        _spawning.active = True

    def __exit__(self, *exc: object) -> None:
        _spawning.active = False


def _square(x: int, progress: Progress) -> int:
    """A tiny job for the doctest above."""
    progress(1, 1, "squared")
    return x * x


# --- the server side -------------------------------------------------------------------------------------------


def _plain_error(err: BaseException, job: Job) -> BaseException:
    """The error a page shows for a failed job: a plain sentence for what went wrong outside the job's code."""
    if isinstance(err, MemoryError) or "can't allocate memory" in str(err) or "not enough memory" in str(err):
        return JobFailed(
            N_(
                "{label} needed more memory than a background job may use on this server ({gb} GB), so it was "
                "stopped; the server carries on. Choose a cheaper setting (per-channel instead of small groups, "
                "minmax calibration, a smaller model)."
            ),
            label=job.label,
            gb=f"{WORKER_MEMORY_BYTES / 2**30:.0f}",
        )
    return err


class JobRunner:
    """Long computations in worker processes, shared by key, with progress, stop, bounds and crash recovery."""

    def __init__(
        self,
        workers: int | None = None,
        max_pending: int = MAX_PENDING,
        max_results: int = MAX_RESULTS,
        max_seconds: float = MAX_JOB_SECONDS,
        memory_bytes: int = WORKER_MEMORY_BYTES,
        threads: int | None = None,
        in_process: bool = False,
        store: result_store.ResultStore | None = None,
    ) -> None:
        """``in_process=True`` runs jobs on threads of this process instead (same API; for tests that replace
        a job function, which a worker process would not see). A thread can not be killed: a job over its
        time is reported failed but runs on. ``store``: where kept results of shared keys also go, for the
        other replicas (None: this process only)."""
        self.in_process = in_process
        self.store = store
        self.store_hits = 0  # results this runner took from the store instead of computing them
        self._store_writer: ThreadPoolExecutor | None = None
        self.workers = workers or default_workers()
        self.max_pending = max_pending
        self.max_results = max_results
        self.max_seconds = max_seconds
        self.memory_bytes = memory_bytes
        self.threads = threads or int(os.environ.get("QE_TORCH_THREADS", "1"))
        self._lock = threading.RLock()
        self._results: OrderedDict[str, Finished] = OrderedDict()
        self._jobs: dict[str, Job] = {}  # queued and running, by key
        self._by_id: dict[int, Job] = {}
        self._pending: deque[tuple[Job, Callable[..., Any], tuple, dict]] = deque()
        self._running: dict[int, tuple[Job, Callable[..., Any], tuple, dict, int]] = {}  # id -> (..., slot)
        self._ids = itertools.count(1)
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)
        self._slots = self.workers * 4
        self._flags: Any = None
        self._queue: Any = None
        self._pool: Executor | None = None
        self._listener: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._wake = threading.Event()
        self._pools: dict[int, ProcessPoolExecutor] = {}  # job id -> the pool it runs in
        self._generations = itertools.count(1)  # a pool's number: never reused, unlike id()
        self._broken: dict[int, set[int]] = {}  # pool number -> jobs that were running when it broke
        self._killed: dict[int, int] = {}  # pool number -> the job killed there for its time
        self._closed = False
        self.restarts = 0

    # --- reading (never computes) ---

    def finished(self, key: str) -> Finished | None:
        """The finished result of ``key`` with its timing (from this runner, else the shared store), or None."""
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                return hit
        return self._from_store(key)

    def _from_store(self, key: str) -> Finished | None:
        """``key``'s result from the shared store, kept in this runner's results too (lock not held: a store
        read is file or network I/O)."""
        if self.store is None or not shared_key(key):
            return None
        entry = self.store.get(key)
        if entry is None:
            return None
        hit = Finished(*entry)
        with self._lock:
            self._results[key] = hit
            self._results.move_to_end(key)
            self._trim()
            self.store_hits += 1
        if _timing_log():
            _LOG.warning("QE_TIMING job-from-store key=%s", key)
        return hit

    def _trim(self) -> None:
        while len(self._results) > self.max_results:
            self._results.popitem(last=False)

    def result(self, key: str) -> Any:
        hit = self.finished(key)
        return None if hit is None else hit.value

    def finished_items(self, prefix: str) -> list[tuple[str, Finished]]:
        """The finished results whose key starts with ``prefix`` (oldest first)."""
        with self._lock:
            return [(k, v) for k, v in self._results.items() if k.startswith(prefix)]

    def job(self, key: str) -> Job | None:
        """The queued or running job of ``key``, or None."""
        with self._lock:
            return self._jobs.get(key)

    def ahead_of(self, job: Job) -> int:
        """How many jobs start before ``job`` (0 once it runs)."""
        if job.started is not None or job.is_done:
            return 0
        with self._lock:
            if job.id in self._running:  # handed to a worker that is starting up
                return 0
            queued = [j for j, *_rest in self._pending]
            position = next((i for i, j in enumerate(queued) if j is job), len(queued))
            return position + len(self._running)

    def busy(self) -> tuple[int, int]:
        """(running, waiting) jobs right now."""
        with self._lock:
            return len(self._running), len(self._pending)

    # --- writing ---

    def submit(
        self,
        key: str,
        fn: Callable[..., Any],
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
        *,
        label: str = "",
        estimate_s: float = 1.0,
        owner: str | None = None,
        keep: Callable[[Any], bool] | None = None,
    ) -> Job:
        """Run ``fn(*args, progress=…, **kwargs)`` in a worker under ``key``; join it if already there.

        ``fn`` must be a module-level function and its arguments and result picklable (plain values, tables).
        It runs under ``torch.no_grad()``: a job that trains enables gradients itself.
        A finished result comes back as an already finished job. ``keep(result)`` decides whether a result
        goes to the shared results (a stopped QAT run is shown but can be trained again). Raises
        :class:`ServerBusy` when ``max_pending`` jobs already wait.
        """
        hit = None if key in self._jobs else self.finished(key)
        with self._lock:
            if self._closed:
                raise ServerBusy(SHUTTING_DOWN)
            hit = hit or self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                job = Job(key, label or key, estimate_s, owner, result=hit.value, finished=time.monotonic())
                job.event.set()
                return job
            if key in self._jobs:
                return self._jobs[key]
            free = max(0, self.workers - len(self._running))
            if len(self._pending) - free >= self.max_pending:  # jobs that a free worker is about to take don't wait
                raise ServerBusy(
                    N_(
                        "{n} long computations are already running or waiting on this server; try again in a "
                        "minute (finished results are shared with everybody)"
                    ),
                    n=len(self._pending) + len(self._running),
                )
            job = Job(key, label or key, estimate_s, owner, id=next(self._ids), keep=keep)
            self._jobs[key] = job
            self._by_id[job.id] = job
            self._pending.append((job, fn, tuple(args), dict(kwargs or {})))
            self._dispatch()
            return job

    def stop(self, key: str, owner: str | None = None) -> bool:
        """Ask the job of ``key`` to stop (only its owner, when it has one). True if a job was told."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or (job.owner is not None and owner is not None and job.owner != owner):
                return False
            job.stop_requested = True
            for i, (queued, *_rest) in enumerate(self._pending):
                if queued is job:  # not started yet: it simply never runs
                    del self._pending[i]
                    self._end(job, error=JobStopped(N_("stopped before it started")))
                    return True
            entry = self._running.get(job.id)
            if entry is not None and self._flags is not None:
                self._flags[entry[4]] = 1
            return True

    def forget(self, key: str) -> None:
        """Drop the finished result of ``key`` (to compute it again), here and in the shared store."""
        with self._lock:
            self._results.pop(key, None)
        if self.store is not None and shared_key(key):
            self.store.delete(key)

    def clear(self) -> None:
        """Forget every finished result (jobs in flight finish and are stored)."""
        with self._lock:
            self._results.clear()

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until ``job`` is done (for tests and notebooks; pages poll with progress instead)."""
        if not job.event.wait(timeout):
            raise TimeoutError(f"{job.label} did not finish within {timeout} s")
        return job

    def shutdown(self) -> None:
        """Stop the workers (jobs in flight are lost). The runner can not be used afterwards."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            pending = list(self._pending)
            self._pending.clear()
        for job, *_rest in pending:
            self._end(job, error=JobFailed(SHUTTING_DOWN))
        if pool is not None:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public handle on them
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
        if self._queue is not None and not self.in_process:
            self._queue.close()
        if self._store_writer is not None:
            self._store_writer.shutdown(wait=True, cancel_futures=False)  # results already computed are kept

    # --- internals ---

    def _ensure_pool(self) -> Executor:
        if self._pool is None:
            if self._queue is None:
                if self.in_process:
                    self._queue, self._flags = queue.Queue(), [0] * self._slots
                else:
                    self._queue = self._ctx.Queue()
                    self._flags = self._ctx.Array("b", self._slots, lock=False)
                self._listener = threading.Thread(target=self._listen, name="qe-jobs-listener", daemon=True)
                self._listener.start()
            if self.in_process:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="qe-job")
            else:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=self._ctx,
                    initializer=_init_worker,
                    initargs=(self._queue, self._flags, self.threads, self.memory_bytes),
                )
            self._pool.qe_generation = next(self._generations)  # type: ignore[attr-defined]
        return self._pool

    def _free_slot(self) -> int:
        used = {entry[4] for entry in self._running.values()}
        return next(s for s in range(self._slots) if s not in used)

    def _dispatch(self) -> None:
        """Wake the dispatcher thread (called with the lock held): queued jobs go to free workers.

        Handing a job to a pool may start its workers (the forkserver imports torch: seconds), so it never
        happens under the lock or on a session's script thread: every session reading the runner meanwhile
        would wait.
        """
        if self._dispatcher is None or not self._dispatcher.is_alive():
            self._dispatcher = threading.Thread(target=self._dispatch_loop, name="qe-jobs-dispatch", daemon=True)
            self._dispatcher.start()
        self._wake.set()

    def _next_to_run(self) -> tuple[Job, Callable[..., Any], tuple, dict, int, Executor] | None:
        """Take the next queued job for a free worker and mark it running (lock held), or None."""
        if not self._pending or len(self._running) >= self.workers or self._closed:
            return None
        job, fn, args, kwargs = self._pending.popleft()
        pool = self._ensure_pool()
        slot = self._free_slot()
        self._flags[slot] = 0
        job.attempts += 1
        job.started = None
        self._running[job.id] = (job, fn, args, kwargs, slot)
        self._pools[job.id] = pool
        return job, fn, args, kwargs, slot, pool

    def _dispatch_loop(self) -> None:
        """The dispatcher thread: submit queued jobs to the pool while workers are free.

        The pool never holds more than ``workers`` jobs, so when a worker dies only the jobs that were really
        running are affected, and the queue survives in this process.
        """
        while not self._closed:
            self._wake.wait(0.5)
            self._wake.clear()
            while True:
                with self._lock:
                    task = self._next_to_run()
                if task is None:
                    break
                job, fn, args, kwargs, slot, pool = task
                extra = (self._queue, self._flags) if self.in_process else ()
                try:
                    with _workers_skip_main():
                        future = pool.submit(_run_in_worker, job.id, slot, fn, args, kwargs, *extra)
                except (BrokenProcessPool, RuntimeError):  # broken, or shut down by a rebuild meanwhile
                    with self._lock:
                        if self._running.pop(job.id, None) is not None:
                            self._pools.pop(job.id, None)
                            job.attempts -= 1
                            self._pending.appendleft((job, fn, args, kwargs))
                        if self._pool is pool:
                            self._rebuild()
                    continue
                future.add_done_callback(lambda f, job=job, pool=pool: self._on_done(job, f, pool))

    def _rebuild(self) -> None:
        """Replace a broken pool (a worker died): the next dispatch starts fresh workers."""
        pool, self._pool = self._pool, None
        self.restarts += 1
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _on_done(self, job: Job, future: Future, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            entry = self._running.pop(job.id, None)
            self._pools.pop(job.id, None)
            if entry is None:  # already ended (killed for its time and reported)
                self._dispatch()
                return
            err = future.exception()
            if isinstance(err, BrokenProcessPool):
                self._on_broken(job, entry, pool)
            elif err is not None:
                self._end(job, error=_plain_error(err, job))
            else:
                self._end(job, result=future.result())
            self._dispatch()

    def _on_broken(self, job: Job, entry: tuple, pool: ProcessPoolExecutor) -> None:
        """A worker of ``pool`` died: every job that ran there fails with BrokenProcessPool (lock held).

        The first such report replaces the pool and notes who was on it. A job killed for its time was ended
        already; the others that shared the pool with it, or with an unknown culprit, get one more try. A job
        that was alone on the pool is the culprit (most likely out of memory) and fails with a plain message.
        """
        generation = pool.qe_generation  # type: ignore[attr-defined]
        victims = self._broken.get(generation)
        if victims is None:
            victims = {job.id} | {j.id for j, *_r in self._running.values() if self._pools.get(j.id) is pool}
            self._broken[generation] = victims
            if self._pool is pool:
                self._rebuild()
        innocent = self._killed.get(generation) not in (None, job.id) or len(victims) > 1
        if job.stop_requested:
            self._end(job, error=JobStopped(STOPPED))
        elif innocent and job.attempts < 2:
            self._pending.appendleft((job, *entry[1:4]))
        else:
            self._end(job, error=JobFailed(
                N_(
                    "The background worker computing {label} stopped unexpectedly (most likely it ran out of "
                    "memory). The server carries on; try a cheaper setting."
                ),
                label=job.label,
            ))

    def _end(self, job: Job, result: Any = None, error: BaseException | None = None) -> None:
        """Finish ``job`` (lock held): store a kept result, wake its waiters."""
        now = time.monotonic()
        job.finished = now
        if error is not None:
            job.error = error
            if not isinstance(error, (JobStopped, JobFailed, ValueError)):
                _LOG.warning("job %s failed: %r", job.label, error)
        else:
            job.result = result
            if job.keep is None or job.keep(result):
                kept = Finished(result, time.time(), now - (job.started or job.submitted))
                self._results[job.key] = kept
                self._results.move_to_end(job.key)
                self._trim()
                self._share(job.key, kept)
            if _timing_log():
                _LOG.warning("QE_TIMING job-computed key=%s s=%.2f", job.key, now - (job.started or job.submitted))
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]
        self._by_id.pop(job.id, None)
        job.event.set()

    def _share(self, key: str, kept: Finished) -> None:
        """Write a kept result to the shared store on a writer thread (the lock is held here; I/O is not)."""
        if self.store is None or not shared_key(key):
            return
        if self._store_writer is None:
            self._store_writer = ThreadPoolExecutor(1, thread_name_prefix="qe-store")
        self._store_writer.submit(self._write_to_store, key, kept)

    def _write_to_store(self, key: str, kept: Finished) -> None:
        self.store.put(key, kept.value, kept.at, kept.seconds)
        if _timing_log():
            _LOG.warning("QE_TIMING job-stored key=%s", key)

    def flush_store(self, timeout: float = 10.0) -> None:
        """Wait until every result handed to the store is written (tests; shutdown)."""
        writer = self._store_writer
        if writer is not None:
            writer.submit(lambda: None).result(timeout)

    def _listen(self) -> None:
        """The listener thread: apply workers' messages to their jobs; stop jobs over their time."""
        while not self._closed:
            try:
                kind, job_id, payload = self._queue.get(timeout=0.5)
            except queue.Empty:
                self._check_time()
                continue
            except (EOFError, OSError):
                return
            job = self._by_id.get(job_id)
            if job is None:
                continue
            if kind == "start":
                job.pid, job.started = payload, time.monotonic()
            elif kind == "progress":
                done, total, msgid, values = payload
                job.note = (msgid, values)
                job.message = msgid.format(**values) if values else msgid
                job.done, job.total = done, total
            elif kind == "partial":
                job.partials.append(payload)
            self._check_time()

    def _check_time(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [e for e in self._running.values()
                    if e[0].started is not None and now - e[0].started > self.max_seconds]
            for job, *_rest in late:
                pool = self._pools.get(job.id)
                if pool is not None:
                    self._killed[pool.qe_generation] = job.id
                del self._running[job.id]
                self._end(job, error=JobFailed(
                    N_(
                        "{label} took longer than {seconds} s, the most a background job may run on this server, "
                        "so it was stopped. Choose a cheaper setting or a smaller model."
                    ),
                    label=job.label,
                    seconds=f"{self.max_seconds:.0f}",
                ))
                if job.pid and not self.in_process:
                    try:
                        os.kill(job.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


_RUNNER: JobRunner | None = None
_RUNNER_LOCK = threading.Lock()


def runner() -> JobRunner:
    """The process-wide runner (created on first use; its workers start on the first job).

    A module global rather than ``st.cache_resource``: the same object for every session, for its own threads
    and for a test that imports this module, and "Clear cache" in the app menu does not drop running jobs.
    """
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None or _RUNNER._closed:  # noqa: SLF001
            _RUNNER = JobRunner(store=_configured_store())
        return _RUNNER


def _configured_store() -> result_store.ResultStore | None:
    """The store of ``QE_STORE_DIR`` / ``QE_REDIS_URL``; a store that can not be set up is logged and skipped
    (the server still works, it only shares nothing)."""
    try:
        return result_store.from_env()
    except Exception as err:  # noqa: BLE001 - a bad path or URL must not take the app down
        _LOG.warning("result store not available (%r): results stay on this server", err)
        return None


def set_runner(new: JobRunner | None) -> JobRunner | None:
    """Replace the process-wide runner (tests); returns the previous one. None: a default one on next use."""
    global _RUNNER
    with _RUNNER_LOCK:
        old, _RUNNER = _RUNNER, new
        return old


def run_inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a job function in this process, without progress (notebooks, and tests of the function itself)."""
    return fn(*args, progress=_NoProgress(), **kwargs)
