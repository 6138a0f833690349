"""Workshop load: 30-40 participants on one 2-core server, simulated with Streamlit's own websocket protocol.

    python benchmarks/bench_workshop.py warm --users 10      # 10 participants on three warm pages
    python benchmarks/bench_workshop.py warm stampede        # several scenarios, each on a fresh server
    python benchmarks/bench_workshop.py cold                 # 40 open MiniLM on a plain, unwarmed `streamlit run`
    python benchmarks/bench_workshop.py mixed                # sliders while others train QAT / sweep MiniLM
    python benchmarks/bench_workshop.py soak --minutes 10    # 40 sessions cycling; RSS every 10 s
    python benchmarks/bench_workshop.py warm --chromium 2    # + 2 real headless Chromium participants
    python benchmarks/bench_workshop.py minimal              # 1 Chromium: Tensor explorer vs benchmarks/minimal_app.py
    python benchmarks/bench_workshop.py warm --links "/?model=digits-cnn&layer=conv2" \\
        --streamlit-args "--runner.postScriptGC false"       # one link, a server option
    python benchmarks/bench_workshop.py warm --url http://127.0.0.1:8501   # a server already running
    python benchmarks/bench_workshop.py warm --users 120 --url http://127.0.0.1:8080 --pid 101 --pid 102
        # through deploy/'s nginx: sample every replica (see benchmarks/bench_replicas.py)

A participant (:func:`participant`) opens a link, then moves the sidebar's "Bit width" slider 5 times to a
random other width from 2 to 8, thinking 1-3 s between moves (seeded). Each open / move is timed from the
request to ``script_finished`` (:mod:`serving.protocol`): the server's answer, without the browser's drawing.
``--chromium K`` adds K real browsers doing the same (keydown -> histogram changed) as a cross-check.

Printed per scenario: open and interaction p50 / p95 / max, errors (runs that did not finish, or left an
st.exception / st.error on the page), the server's own script time (``QE_TIMING``), RSS start / end / growth and
CPU % of the server and its worker processes (from /proc: 200 % is both cores), how long their threads waited for
a core (other work on the machine), and the CPU % of this load generator, which shares the cores. A benchmark, not a test: nothing fails. Loopback only; every scenario is bounded in time; servers this
script starts are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser_support import (  # noqa: E402 - after the path tweak above
    JS_ARM_TIMER,
    bits_slider,
    browser_missing,
    free_port,
    launch_browser,
    stop_process,
    wait_charts,
    wait_idle,
)

from serving import warmup  # noqa: E402
from serving.protocol import Result, Session  # noqa: E402

WARM_LINKS = ("/?model=digits-cnn&layer=conv2", "/?model=minilm", "/output-drift?model=digits-cnn")
MINILM_LINK = "/?model=minilm"
QAT_LINK = "/qat?model=digits-mlp"
QAT_BITS = (2, 3, 4)  # 2 first (the link of the brief); then more widths, for more runs nobody trained yet
SWEEP_LINKS = ("/sensitivity?model=minilm", "/sensitivity?model=minilm&bits=4")  # two different computations
SOAK_LINKS = (*WARM_LINKS, "/error-curves?model=digits-mlp")
#: The sidebar's bit-width slider, by its URL parameter: the same widget whatever the page's language.
BITS_PARAM = "bits"
MOVE_BITS = range(2, 9)
QAT_EPOCHS = range(1, 11)
QAT_LRS = ("0.0001", "0.0003", "0.001", "0.003", "0.01")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the server -------------------------------------------------------------------------------------------------


class AppServer:
    """``streamlit run SCRIPT`` on a free loopback port (the repo's .streamlit/config.toml applies)."""

    def __init__(self, script: str = "app.py", extra_args: list[str] | None = None, timeout: float = 120.0,
                 warm: str = "workers") -> None:
        """``warm`` is the server's ``QE_WARM``: ``workers`` (the default here: the job worker loads the models,
        and the page links are warmed by the scenario itself, as ``python -m serving`` does), ``1`` (a plain
        ``streamlit run``: the app warms its pages after the first visit) or ``0``."""
        self.script, self.extra_args, self.timeout, self.warm = script, extra_args or [], timeout, warm
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="qe-workshop-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.keep_log = False  # set when a run failed: the traceback is in there

    def __enter__(self) -> AppServer:
        cmd = [sys.executable, "-m", "streamlit", "run", self.script, "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--server.headless", "true", *self.extra_args]
        with open(self.log_path, "wb") as log:
            env = {**os.environ, "QE_TIMING": "1", "QE_WARM": self.warm}
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.timeout, self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc, grace=15)
        if not self.keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f} s")


def script_times(log: str) -> list[float]:
    """Script run times (ms) the app logged with ``QE_TIMING=1``."""
    return [float(m) for m in re.findall(r"QE_TIMING run page=\S+ ms=([0-9.]+)", log)]


def pid_listening_on(port: int) -> int | None:
    """The process that listens on 127.0.0.1:``port`` (via /proc/net/tcp and the fds' socket inodes), if ours to see."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A: LISTEN
                    inodes.add(cols[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
    return None


# --- resource sampling (/proc: psutil is not a dependency) ------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/PID/stat, after the parenthesised name)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_delay(pid: int) -> float:
    """Seconds the threads of ``pid`` spent runnable but waiting for a CPU (2nd field of each thread's schedstat).

    On a machine shared with other work this separates "the server is slow" from "the server did not get a core":
    100 % means one thread-second of waiting per second.
    """
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[1])
    return total / 1e9


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the job runner's worker processes), from the ppid field of /proc/*/stat."""
    parent: dict[int, int] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{name}/stat") as f:
            parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, p in parent.items() if p in frontier]
        tree += frontier
    return tree


@dataclass
class Sampler:
    """RSS, CPU and run-queue wait of the server and its worker processes, and this process's CPU, every
    ``interval`` s in a thread. CPU and wait are summed per process as deltas, so a worker that exits between two
    samples keeps what it had used."""

    pid: int | list[int] | None  # one server, or every replica's (summed)
    interval: float = 1.0
    on_sample: Callable[[float, float], None] | None = None  # (elapsed s, RSS MB), e.g. to print a soak series
    #: (t, RSS MB, server CPU s so far, own CPU s, server run-queue wait s so far, processes)
    samples: list[tuple[float, float, float, float, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: dict[int, tuple[float, float]] = field(default_factory=dict)
    _cpu: float = 0.0
    _wait: float = 0.0

    def _sample(self) -> None:
        t = time.monotonic()
        rss, now = 0.0, {}
        roots = self.pid if isinstance(self.pid, list) else [self.pid] if self.pid else []
        for p in (q for root in roots for q in process_tree(root)):
            with contextlib.suppress(OSError, IndexError, ValueError):
                now[p] = (cpu_seconds(p), run_delay(p))
                rss += rss_mb(p)
        if self.samples:  # a process new since the last sample counts from 0: it started in between
            self._cpu += sum(c - self._last.get(p, (0.0, 0.0))[0] for p, (c, _) in now.items())
            self._wait += sum(w - self._last.get(p, (0.0, 0.0))[1] for p, (_, w) in now.items())
        self._last = now
        self.samples.append((t, rss if now else float("nan"), self._cpu, cpu_seconds("self"), self._wait, len(now)))
        if self.on_sample:
            self.on_sample(t - self.samples[0][0], rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        with contextlib.suppress(OSError):
            self._sample()

    def summary(self) -> dict[str, float]:
        (t0, r0, s0, o0, w0, _), (t1, r1, s1, o1, w1, _) = self.samples[0], self.samples[-1]
        dt = max(t1 - t0, 1e-9)
        steps = [100 * (b[2] - a[2]) / max(b[0] - a[0], 1e-9) for a, b in itertools.pairwise(self.samples)]
        return {
            "rss_start": r0, "rss_end": r1, "rss_max": max(s[1] for s in self.samples), "growth": r1 - r0,
            "cpu": 100 * (s1 - s0) / dt, "cpu_max": max(steps, default=float("nan")),
            "own_cpu": 100 * (o1 - o0) / dt, "seconds": dt, "wait": 100 * (w1 - w0) / dt,
            "procs": max(s[5] for s in self.samples),
        }


# --- participants -----------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Results of one group of participants (sliders, trainers, ...)."""

    name: str
    opens: list[Result] = field(default_factory=list)
    moves: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # exceptions of the client itself (label not found, ...)
    move_times: list[tuple[float, float]] = field(default_factory=list)  # (when it started, seconds)

    def timeline(self, step: float = 5.0) -> list[tuple[float, int, float, float]]:
        """Moves by when they started: (from s, count, p50, max) per ``step`` seconds after the first one."""
        if not self.move_times:
            return []
        t0 = min(t for t, _ in self.move_times)
        out = []
        for lo in np.arange(0.0, max(t for t, _ in self.move_times) - t0 + step, step):
            xs = sorted(d for t, d in self.move_times if lo <= t - t0 < lo + step)
            if xs:
                out.append((float(lo), len(xs), xs[len(xs) // 2], xs[-1]))
        return out

    def failed(self) -> list[Result]:
        return [r for r in self.opens + self.moves if not r.ok]


@dataclass
class Plan:
    """What every participant of a scenario does."""

    base_url: str
    moves: int = 5
    think: tuple[float, float] = (1.0, 3.0)
    timeout: float = 120.0


async def participant(plan: Plan, link: str, delay: float, rng: random.Random, stats: Stats,
                      until: float | None = None) -> None:
    """Open ``link`` after ``delay`` s, then move the bit slider ``plan.moves`` times; with ``until`` (a monotonic
    deadline), start over in a new session until then (the soak)."""
    await asyncio.sleep(delay)
    while True:
        session = Session(plan.base_url, plan.timeout)
        try:
            result = await session.open(link)
            stats.opens.append(result)
            if result.status != "finished":
                return
            for _ in range(plan.moves):
                await asyncio.sleep(rng.uniform(*plan.think))
                current = session.widget(BITS_PARAM).scalar
                started = time.monotonic()
                result = await session.set_widget(BITS_PARAM, rng.choice([b for b in MOVE_BITS if b != current]))
                stats.moves.append(result)
                stats.move_times.append((started, result.seconds))
                if result.status != "finished":
                    return
        except (LookupError, ValueError) as exc:
            stats.problems.append(f"{link}: {exc}")
            return
        finally:
            await session.close()
        if until is None or time.monotonic() >= until:
            return
        link = rng.choice(SOAK_LINKS)


async def trainer(plan: Plan, combos: Iterator[tuple[int, int, str]], rng: random.Random, stats: Stats,
                  stop: asyncio.Event) -> None:
    """Press Train on the PTQ vs QAT page, each time with epochs / lr nobody trained yet (finished runs are kept
    for everyone, and a kept run has no Train button), until ``stop``."""
    while not stop.is_set():
        combo = next(combos, None)
        if combo is None:
            stats.problems.append("every epochs / lr / bits combination trained: trainer stops")
            return
        bits, epochs, lr = combo
        async with Session(plan.base_url, plan.timeout) as session:
            opened = await session.open(f"{QAT_LINK}&bits={bits}&epochs={epochs}&lr={lr}")
            stats.opens.append(opened)
            if opened.status != "finished":
                return
            try:
                session.widget("Train", kind="button")
            except LookupError:
                stats.problems.append(f"bits={bits} epochs={epochs} lr={lr}: no Train button (trained before?)")
                continue
            stats.moves.append(await session.click("Train"))
        await asyncio.sleep(rng.uniform(*plan.think))


async def sweeper(plan: Plan, link: str, stats: Stats) -> None:
    """Open a MiniLM sensitivity link and press its compute button; the run lasts as long as the sweep."""
    async with Session(plan.base_url, plan.timeout) as session:
        opened = await session.open(link)
        stats.opens.append(opened)
        try:
            session.widget("Run the sensitivity analysis", kind="button")
        except LookupError as exc:
            stats.problems.append(f"{link}: {exc}")
            return
        stats.moves.append(await session.click("Run the sensitivity analysis"))


def chromium_participant(base_url: str, link: str, presses: int, think: tuple[float, float], seed: int,
                         out: dict[str, list[float]]) -> None:
    """A real headless Chromium (fresh profile) opening ``link`` and pressing ArrowLeft / ArrowRight on the bit
    slider: open = until the charts are drawn and the run is over; interaction = keydown -> histogram changed."""
    rng = random.Random(seed)
    try:
        with launch_browser(1280, 800) as context:
            page = context.new_page()
            page.set_default_timeout(180_000)
            start = time.perf_counter()
            page.goto(base_url + link)
            wait_charts(page, 1, 180_000)
            out["open"].append(time.perf_counter() - start)
            bits = 8
            for _ in range(presses):
                time.sleep(rng.uniform(*think))
                key = "ArrowLeft" if bits > 2 and (bits >= 8 or rng.random() < 0.5) else "ArrowRight"
                bits += -1 if key == "ArrowLeft" else 1
                page.evaluate(JS_ARM_TIMER, 0)
                bits_slider(page).focus()
                page.keyboard.press(key)
                page.wait_for_function("() => window.__qe.t1 !== null", timeout=180_000)
                out["move"].append(page.evaluate("() => window.__qe.t1 - window.__qe.t0") / 1000)
                wait_idle(page, 180_000)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other participants go on
        out["problems"].append(f"chromium: {type(exc).__name__}: {str(exc)[:200]}")


# --- scenarios --------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    groups: list[Stats]
    resources: dict[str, float]
    server_ms: list[float]
    chromium: dict[str, list[float]] | None = None
    series: list[tuple[float, float]] = field(default_factory=list)


def spread(n: int, window: float, rng: random.Random) -> list[float]:
    """Start delays of ``n`` participants arriving at random over ``window`` seconds."""
    return sorted(rng.uniform(0, window) for _ in range(n))


async def warm_up(plan: Plan, links: tuple[str, ...]) -> None:
    for link in links:
        async with Session(plan.base_url, plan.timeout) as session:
            result = await session.open(link)
            print(f"  warm-up {link}: {result.status} in {result.seconds:.1f} s"
                  + (f" - {result.errors[:1]}" if result.errors else ""))


async def run_sliders(plan: Plan, links: tuple[str, ...], users: int, window: float, seed: int,
                      name: str = "sliders", until: float | None = None) -> Stats:
    rng = random.Random(seed)
    stats = Stats(name)
    delays = spread(users, window, rng)
    await asyncio.gather(*(
        participant(plan, links[i % len(links)], d, random.Random(seed * 1000 + i), stats, until)
        for i, d in enumerate(delays)
    ))
    return stats


async def run_mixed(plan: Plan, links: tuple[str, ...], users: int, seed: int) -> list[Stats]:
    """``users`` slider participants; meanwhile 5 sessions press Train and 2 start MiniLM sweeps (at t=0, so the
    heavy work overlaps every slider move). When the sliders are done the others are cut off: a sweep can take
    minutes, and what matters here is what the sliders felt meanwhile."""
    trainers, sweepers = Stats("qat-train"), Stats("minilm-sweep")
    combos = iter([(b, e, lr) for b in QAT_BITS for lr in QAT_LRS for e in QAT_EPOCHS])
    stop = asyncio.Event()
    background = [asyncio.create_task(trainer(plan, combos, random.Random(seed + 50 + i), trainers, stop))
                  for i in range(5)]
    background += [asyncio.create_task(sweeper(plan, link, sweepers)) for link in SWEEP_LINKS]
    await asyncio.sleep(1.0)
    sliders = await run_sliders(plan, links, users, 5.0, seed)
    stop.set()
    done, pending = await asyncio.wait(background, timeout=5.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if any(t in pending for t in background[5:]):
        sweepers.problems.append("sweep still running when the sliders were done: cut off (not an error)")
    return [sliders, trainers, sweepers]


def start_chromium(k: int, base_url: str, link: str, plan: Plan, seed: int) -> tuple[list[threading.Thread], dict]:
    out: dict[str, list] = {"open": [], "move": [], "problems": []}
    if k <= 0:
        return [], out
    reason = browser_missing()
    if reason:
        out["problems"].append(f"no Chromium: {reason}")
        return [], out
    threads = [threading.Thread(target=chromium_participant,
                                args=(base_url, link, plan.moves, plan.think, seed + 900 + i, out), daemon=True)
               for i in range(k)]
    for t in threads:
        t.start()
    return threads, out


def run_scenario(name: str, args: argparse.Namespace) -> Outcome:
    """One scenario on a fresh server (or on ``--url``), bounded by ``--max-minutes``."""
    links = tuple(args.links) if args.links else WARM_LINKS
    users = args.users or {"mixed": 30}.get(name, 40)
    server = contextlib.nullcontext() if args.url else AppServer(
        extra_args=shlex.split(args.streamlit_args), warm="1" if name == "cold" else "workers")
    with server as srv:
        base = args.url or srv.url
        pid = args.pid or (srv.proc.pid if srv else pid_listening_on(urlsplit(base).port or 80))
        plan = Plan(base, moves=args.moves, think=(args.think_min, args.think_max), timeout=args.timeout)
        budget = 60 * (args.minutes + 3 if name == "soak" else args.max_minutes)
        series: list[tuple[float, float]] = []

        def soak_point(t: float, rss: float) -> None:
            if name == "soak" and (not series or t - series[-1][0] >= 10):
                series.append((t, rss))
                print(f"    t={t:5.0f} s  server RSS {rss:7.1f} MB", flush=True)

        ctx: dict = {}  # what body() leaves behind even when the budget cuts it off

        async def body() -> list[Stats]:
            if name == "stampede":  # as `python -m serving` does before the class arrives
                start = time.monotonic()
                results = await asyncio.to_thread(warmup.warm, base, warmup.links_to_warm())
                print(f"  warm-up (python -m serving's links): {sum(r.ok for r in results)} of {len(results)} "
                      f"links in {time.monotonic() - start:.0f} s", flush=True)
            elif name != "cold":
                await warm_up(plan, SOAK_LINKS if name == "soak" else links)
            ctx["log_start"] = len(srv.log()) if srv else 0  # script times from here on: not the warm-up's
            threads, ctx["chromium"] = start_chromium(args.chromium, base, links[0], plan, args.seed)
            with Sampler(pid, 1.0, soak_point) as ctx["sampler"]:
                if name == "warm":
                    groups = [await run_sliders(plan, links, users, args.window, args.seed)]
                elif name in ("stampede", "cold"):
                    groups = [await run_sliders(plan, (MINILM_LINK,), users, 5.0, args.seed)]
                elif name == "mixed":
                    groups = await run_mixed(plan, links, users, args.seed)
                else:  # soak
                    until = time.monotonic() + 60 * args.minutes
                    groups = [await run_sliders(plan, SOAK_LINKS, users, 10.0, args.seed, until=until)]
                await asyncio.to_thread(lambda: [t.join(timeout=300) for t in threads])
            return groups

        print(f"\n== {name}: {users} participants on {base}"
              + (f" (streamlit {args.streamlit_args})" if args.streamlit_args else ""), flush=True)
        try:
            groups = asyncio.run(asyncio.wait_for(body(), budget))
        except TimeoutError:
            print(f"  {name}: stopped after its {budget / 60:.0f} min budget")
            groups = []
        server_ms = script_times(srv.log()[ctx.get("log_start", 0):]) if srv else []
        if srv and any(g.failed() for g in groups):
            srv.keep_log = True
            print(f"  runs failed: the server log is kept at {srv.log_path}")
        resources = ctx["sampler"].summary() if "sampler" in ctx else {}
        return Outcome(name, groups, resources, server_ms, ctx.get("chromium"), series)


def run_minimal(args: argparse.Namespace) -> None:
    """One Chromium, the same presses on the Tensor explorer and on benchmarks/minimal_app.py, in this run."""
    reason = browser_missing()
    if reason:
        print(f"cannot run minimal: {reason}")
        return
    link = args.links[0] if args.links else WARM_LINKS[0]
    presses = max(args.moves, 10)
    print(f"\n== minimal: 1 Chromium, {presses} key presses each, think {args.think_min:g}-{args.think_max:g} s")
    rows = []
    for label, script, path in (("tensor explorer", "app.py", link), ("minimal app", "benchmarks/minimal_app.py", "/")):
        with AppServer(script, shlex.split(args.streamlit_args)) as srv:
            out: dict[str, list] = {"open": [], "move": [], "problems": []}
            chromium_participant(srv.url, path, presses, (args.think_min, args.think_max), args.seed, out)
            rows.append((f"{label} {path}", out))
    print(f"  {'page':<48} {'open s':>7} {'move p50':>9} {'p95':>6} {'max':>6}  (ms, keydown -> chart changed)")
    for label, out in rows:
        mv = [1000 * v for v in out["move"]]
        print(f"  {label:<48} {fmt(out['open'][0] if out['open'] else None, 2):>7} {fmt(pct(mv, 50), 0):>9} "
              f"{fmt(pct(mv, 95), 0):>6} {fmt(max(mv, default=None), 0):>6}  n={len(mv)}")
        for p in out["problems"]:
            print(f"    ! {p}")


# --- the report -------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: ``pct([1, 2, 3, 4], 50) == 2``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def trio(values: list[float], digits: int = 2) -> str:
    return f"{fmt(pct(values, 50), digits)}/{fmt(pct(values, 95), digits)}/{fmt(max(values, default=None), digits)}"


def report(o: Outcome) -> None:
    keys = ("rss_start", "rss_end", "rss_max", "growth", "cpu", "cpu_max", "own_cpu", "seconds", "wait", "procs")
    r = {**dict.fromkeys(keys, float("nan")), **o.resources}
    print(f"  {'group':<13} {'n open':>6} {'open s p50/p95/max':>20} {'n act':>6} {'action s p50/p95/max':>22} "
          f"{'errors':>6}")
    for g in o.groups:
        opens = [x.seconds for x in g.opens if x.status == "finished"]
        moves = [x.seconds for x in g.moves if x.status == "finished"]
        print(f"  {g.name:<13} {len(g.opens):>6} {trio(opens):>20} {len(g.moves):>6} {trio(moves):>22} "
              f"{len(g.failed()):>6}")
        seen: dict[str, int] = {}
        for x in g.failed():
            key = f"{x.status}: {(x.errors or [x.detail])[0][:150]}"
            seen[key] = seen.get(key, 0) + 1
        for key, n in list(seen.items())[:5]:
            print(f"      ! {n} x {key}")
        for p in g.problems[:3]:
            print(f"      ! {p}")
        line = g.timeline()
        if len(line) > 1:  # when the moves were slow: during the arrival of the others, or all along
            print("      moves by start time: " + "  ".join(f"{lo:.0f}s: {n}× p50 {p50:.2f} max {mx:.2f}"
                                                        for lo, n, p50, mx in line[:8]))
    if o.chromium is not None and (o.chromium["open"] or o.chromium["problems"]):
        c = o.chromium
        print(f"  {'chromium':<13} {len(c['open']):>6} {trio(c['open']):>20} {len(c['move']):>6} {trio(c['move']):>22} "
              f"{len(c['problems']):>6}   (move = keydown -> chart changed)")
        for p in c["problems"][:3]:
            print(f"      ! {p}")
    runs = len(o.server_ms)
    per_run = r["cpu"] / 100 * r["seconds"] / runs if runs else float("nan")  # server CPU-s per script run
    print(f"  server script (QE_TIMING) ms p50/p95/max: {trio(o.server_ms, 0)}  over {runs} runs;"
          f"  server CPU per run {fmt(1000 * per_run, 0)} ms (the capacity figure: 1 core / this = runs per s)")
    print(f"  server + {fmt(r['procs'] - 1, 0)} worker processes: RSS MB start/end/max: {fmt(r['rss_start'], 0)}/{fmt(r['rss_end'], 0)}/{fmt(r['rss_max'], 0)}  "
          f"growth {fmt(r['growth'], 0)} MB   server CPU {fmt(r['cpu'], 0)} % avg, {fmt(r['cpu_max'], 0)} % max (1 s)"
          f"   load generator CPU {fmt(r['own_cpu'], 0)} %   ({fmt(r['seconds'], 0)} s)")
    print(f"  server threads runnable but waiting for a CPU: {fmt(r['wait'], 0)} % (high = the cores were busy with"
          f" other work; load average now {os.getloadavg()[0]:.1f})")
    if len(o.series) > 2:
        (t0, r0), (t1, r1) = o.series[1], o.series[-1]  # from the first 10 s point: after the first opens
        print(f"  soak: RSS {r0:.0f} -> {r1:.0f} MB from t={t0:.0f} s to t={t1:.0f} s "
              f"({60 * (r1 - r0) / max(t1 - t0, 1):+.1f} MB/min)")


def code_version() -> str:
    """The commit and how many files differ from it: figures from a dirty tree say so."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}" + (f" + {len(dirty)} modified files" if dirty else "")


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"--url must be a loopback address (127.0.0.1, localhost, ::1), not {host!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("scenarios", nargs="+", choices=("warm", "stampede", "cold", "mixed", "soak", "minimal"))
    parser.add_argument("--users", type=int, default=0, help="participants (default 40; 30 sliders in mixed)")
    parser.add_argument("--url", help="an already running server (loopback only) instead of a fresh one each")
    parser.add_argument("--pid", type=int, action="append",
                        help="the server process to sample, repeatable for replicas (default: ours, or the port's owner)")
    parser.add_argument("--links", action="append", help="link(s) for warm / mixed / --chromium (repeatable)")
    parser.add_argument("--minutes", type=float, default=5.0, help="soak length")
    parser.add_argument("--chromium", type=int, default=0, help="real headless Chromium participants alongside")
    parser.add_argument("--moves", type=int, default=5, help="slider moves per participant")
    parser.add_argument("--think-min", type=float, default=1.0)
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one run may take")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="budget of one scenario (soak: minutes+3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds over which the warm scenario's participants arrive (default 5: all at once)")
    parser.add_argument("--streamlit-args", default="", help='extra server options, e.g. "--runner.postScriptGC false"')
    args = parser.parse_args(argv)
    if args.url:
        check_loopback(args.url)
        args.url = args.url.rstrip("/")
        if {"stampede", "cold"} & set(args.scenarios):
            print("note: stampede wants a freshly started server; with --url the server is whatever it is now")

    print("Workshop benchmark (Streamlit protocol clients against `streamlit run app.py`)")
    print(f"code: {code_version()}  (other work in the tree moves these numbers)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; seed {args.seed}; "
          f"{args.moves} moves, think {args.think_min:g}-{args.think_max:g} s")
    for name in args.scenarios:
        if name == "minimal":
            run_minimal(args)
        else:
            report(run_scenario(name, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
