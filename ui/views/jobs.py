"""The page side of long work: offer it, show its progress to everyone who waits, show its result or its error.

The work itself runs in :mod:`ui.jobs` (worker processes, shared by key). A page asks for a key with
:func:`obtain`: a finished result comes back at once; a job somebody already started is joined with its
progress bar; quick work starts by itself; longer work waits for a click on a button that says what it costs.
A script run that is stopped while it waits (a slider moved) leaves the job running: its result is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from ui import jobs
from ui.i18n import _, ngettext

#: Work estimated to take less than this starts as soon as the page opens; longer work waits for a click.
AUTO_RUN_SECONDS = 2.5
#: How often a waiting page redraws its progress bar.
POLL_SECONDS = 0.25


def seconds_text(s: float) -> str:
    """``7 s``, ``3 min``: a duration for a button or a caption (at least 1 s).

    >>> seconds_text(0.2), seconds_text(42.4), seconds_text(200)
    ('1 s', '42 s', '3 min')
    """
    if s < 90:
        return _("{n} s", n=max(1, round(s)))
    return _("{n} min", n=f"{s / 60:.0f}")


def message(err: BaseException, label: str | None = None) -> str:
    """An error of the job runner in the session's language (any other error: its own text).

    ``label`` replaces the job's label in the sentence: the job's label is the words of the session that
    started it, maybe in another language; a waiting session names the work in its own.
    """
    if label is not None and isinstance(err, (jobs.ServerBusy, jobs.JobStopped, jobs.JobFailed)):
        err = err.reworded(label=label)
    return str(err)


def note_text(job: jobs.Job) -> str:
    """The job's last progress message in the session's language (a msgid from the job, or a layer name)."""
    msgid, values = job.note
    if not msgid:
        return job.message
    try:
        return _(msgid, **values)
    except (KeyError, IndexError, ValueError):  # a translation that does not fit its values: the English one
        return job.message


def progress_text(job: jobs.Job, ahead: int) -> str:
    """The line under a progress bar: the queue position, or the steps done and the time left."""
    if job.started is None:
        if ahead <= 0:
            return _("Starting a background worker…")
        return ngettext(
            "Waiting: {n} computation ahead of you on this server…",
            "Waiting: {n} computations ahead of you on this server…",
            ahead,
            n=ahead,
        )
    elapsed = time.monotonic() - job.started
    left = job.seconds_left()
    if left is not None:
        note = note_text(job)
        if note:
            return _("{done} of {total} · {note} · about {left} left", done=job.done, total=job.total, note=note,
                     left=seconds_text(left))
        return _("{done} of {total} · about {left} left", done=job.done, total=job.total, left=seconds_text(left))
    return _("{elapsed} s so far (about {estimate} in all)", elapsed=f"{elapsed:.0f}",
             estimate=seconds_text(job.estimate_s))


def wait(job: jobs.Job, what: str) -> Any:
    """Show ``job``'s progress until it is done; return its result (or raise its error in this script).

    Every session waiting on the same job polls the same counters, so everyone sees the one computation move.
    The loop sleeps between polls: it holds no lock and almost no CPU while the worker computes.
    """
    if not job.is_done:
        runner = jobs.runner()
        box = st.empty()
        with box.container(border=True):
            st.markdown(f"⏳ **{what}**")
            bar = st.progress(0.0, text=_("Waiting to start…"))
            st.caption(_("Runs in the background for everyone who asks: moving a slider does not lose it."))
        while not job.event.wait(POLL_SECONDS):
            bar.progress(job.fraction, text=progress_text(job, runner.ahead_of(job)))
        box.empty()
    if job.error is not None:
        if isinstance(job.error, (jobs.ServerBusy, jobs.JobStopped, jobs.JobFailed)):
            # The same error, naming the work in this session's words (the job's label is its starter's).
            raise job.error.reworded(label=what.rstrip("…. ")) from job.error
        raise job.error
    return job.result


def obtain(
    key: str,
    fn: Callable[..., Any],
    args: tuple,
    what: str,
    estimate: Callable[[], float],
    button: str,
    button_key: str,
    auto: bool | None = None,
) -> Any:
    """The result of ``key``: from the runner if anyone computed it, else computed now or on a click.

    ``fn(*args, progress=…)`` runs in a worker process (a module-level function, picklable arguments). Quick
    work (``estimate()`` seconds under :data:`AUTO_RUN_SECONDS`, or ``auto=True``) starts right away; longer
    work shows ``button`` and a line on what it costs, and returns None until clicked. A job someone else
    already started is joined, with its progress. ``estimate`` is a callable so that a finished result costs
    no estimate (timing MiniLM takes seconds).
    """
    runner = jobs.runner()
    hit = runner.finished(key)
    if hit is not None:
        return hit.value
    job = runner.job(key)
    if job is None:
        with st.spinner(_("Estimating how long this takes…")):  # shown only past half a second (timing a model)
            estimate_s = estimate()
        quick = estimate_s <= AUTO_RUN_SECONDS if auto is None else auto
        if not quick:
            offer = st.empty()  # cleared once clicked: the progress bar takes its place
            with offer.container():
                st.caption(
                    _(
                        "This takes about {duration} on this server. The result is kept for everybody: once "
                        "computed, a shared link shows it straight away.",
                        duration=seconds_text(estimate_s),
                    )
                )
                clicked = st.button(button, key=button_key, type="primary")
            if not clicked:
                return None
            offer.empty()
        job = runner.submit(key, fn, args, label=what.rstrip("…. "), estimate_s=estimate_s)
    return wait(job, what)


def computed_at(key: str, min_seconds: float = 0.0) -> dict[str, str] | None:
    """``{"seconds": "19.0", "time": "14:02:10"}`` of a finished result that took at least ``min_seconds``."""
    hit = jobs.runner().finished(key)
    if hit is None or hit.seconds < min_seconds:
        return None
    return {"seconds": f"{hit.seconds:.1f}", "time": time.strftime("%H:%M:%S", time.localtime(hit.at))}


def computed_note(key: str, min_seconds: float = 0.0) -> str | None:
    """``computed in 19 s at 14:02:10`` for a finished result that took at least ``min_seconds``, else None."""
    at = computed_at(key, min_seconds)
    return None if at is None else _("computed in {seconds} s at {time}", **at)
