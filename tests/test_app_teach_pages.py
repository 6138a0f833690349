"""The two teaching pages without a browser: PTQ vs QAT and the formula walkthrough, through Streamlit's AppTest.

- Both pages run for every sample model without an exception or an error message, open with a title and a
  formula, and ship charts under 30 kB.
- The walkthrough's numbers are quantlib's: the displayed integer q of a value (checked against
  ``quantlib.quantize`` itself), the 10 → 1 layer's three outputs (``integer_linear``), the MSE of the layer.
- QAT (training runs in the job runner: on threads here, in a worker process in one test): models without a
  train split explain why; a short digits-mlp run completes and shows float / PTQ / QAT; a second session with
  the same settings shows the kept result without training; Stop keeps a partial run "stopped at epoch k"
  (evaluated once more between reports) for everyone, and "Train again" trains it in full; a failed run is a
  plain message; the same settings give the same curve; a run in progress elsewhere is watched, not
  duplicated; the bits sweep queues one job per width, fills its chart and stops.
- The pages' own inputs (QAT's epochs and learning rate; the walkthrough's value, range and example) come from
  a link, go into the share link, survive a page switch, and bad values fall back with a notice.
- The shared sample models are unchanged after all of it.
"""

from __future__ import annotations

import ast
import base64
import json
import math
import os
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from model_hash import state_hash
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec, choose_qparams, fake_quant, metrics, quantize
from quantlib.walkthrough import integer_linear, trace_value
from ui import jobs
from ui.compute import teach as teach_data
from ui.compute.reductions import spec_key
from ui.compute.teach import RunSettings
from ui.figures import teach as teach_figures

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
MAX_CHART_BYTES = 30_000
TIMEOUT = 300  # seconds for one script run (MiniLM's first load on a busy 2-core machine)
QAT_PAGE = "app_pages/qat.py"
WALK_PAGE = "app_pages/walkthrough.py"
MODELS = sample_models.names()
TRAINABLE = [m for m in MODELS if sample_models.load(m).train_inputs is not None]


@pytest.fixture()
def fresh_store():
    """The job runner with no QAT run kept or in flight (it is process-wide, like on a server).

    Afterwards whatever the test left in flight is stopped and waited for, so the next test starts clean.
    """
    runner = jobs.runner()
    runner.clear()
    yield runner
    for job in list(runner._jobs.values()):  # the runner's private table: the only list of what is in flight
        runner.stop(job.key)
        runner.wait(job, timeout=TIMEOUT)
    runner.clear()


def open_page(page: str, **params: str) -> AppTest:
    """Land on the default page with ``params`` (as a shared link does), then switch to ``page``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(page).run()
    return at


def open_link(page: str, **params: str) -> AppTest:
    """A shared link straight to ``page``: its first run is that page, so the page's own parameters are read
    (and judged) from the URL."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.switch_page(page).run()
    return at


def link_query(at: AppTest) -> dict[str, str]:
    """The parameters of the page's "share this view" link."""
    link = next(c.value for c in at.code if "model=" in c.value)
    return dict(parse_qsl(urlparse(link).query))


def charts(at: AppTest) -> list[str]:
    return [el.proto.spec for el in at.get("plotly_chart")]


def metric_values(at: AppTest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in at.metric:
        out.setdefault(m.label, []).append(m.value)
    return out


def texts(at: AppTest, kind: str) -> str:
    return " ".join(e.value for e in getattr(at, kind))


def settings_for(model: str, spec: QuantSpec, epochs: int = 1, lr: float = 1e-3, target: str = "weights"):
    return RunSettings(model, spec_key(spec), target, epochs, lr, teach_data.SEED)


# --- every page, every model -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", [QAT_PAGE, WALK_PAGE])
@pytest.mark.parametrize("model", MODELS)
def test_teach_pages_run_for_every_sample_model(baseline_hashes, fresh_store, model, page):
    at = open_page(page, model=model)
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []
    assert len(at.title) == 1 and at.latex, "each page opens with its title and formula"
    sizes = [len(spec.encode()) for spec in charts(at)]
    assert not sizes or max(sizes) <= MAX_CHART_BYTES, sizes
    if page == WALK_PAGE:
        assert len(sizes) == 4, "two number lines, the layer's outputs, the SQNR rule"
    elif model in TRAINABLE:
        assert at.button(key="qat_train").label.endswith("Train"), "nothing trained yet: a Train button"
        assert "PTQ" in " ".join(m.label for m in at.metric)
    else:
        assert "QAT needs training data" in texts(at, "info") and "digits-mlp" in texts(at, "info")
        assert not sizes, "no charts for a model QAT cannot train"


# --- walkthrough: its numbers are quantlib's ------------------------------------------------------------------


def test_the_displayed_q_of_a_value_is_quantlibs():
    at = open_page(WALK_PAGE, model="digits-mlp", bits="4", rounding="nearest")
    at.number_input(key="lo").set_value(-0.8).run()
    at.number_input(key="hi").set_value(2.1).run()
    at.number_input(key="x").set_value(0.77).run()
    assert not at.exception and not at.error
    shown = metric_values(at)["stored integer q"]
    for scheme, q_text in zip(("symmetric", "asymmetric"), shown, strict=True):
        spec = QuantSpec(bits=4, scheme=scheme)
        qp = choose_qparams(torch.tensor([-0.8, 2.1]), spec)  # min-max of the range = the range
        expected = int(quantize(torch.tensor([0.77]), spec, qp).q[0])
        assert int(q_text) == expected == trace_value(0.77, -0.8, 2.1, 4, scheme).q
    assert at.slider(key="wt_x_slider").value == pytest.approx(0.77), "slider and typed value stay in step"


def test_a_value_beyond_the_range_is_clipped_and_says_so():
    at = open_page(WALK_PAGE, model="tiny-linear", bits="3")
    at.number_input(key="x").set_value(5.0).run()
    assert not at.exception
    assert metric_values(at)["stored integer q"] == ["3", "7"], "the top of each 3-bit grid"
    assert "clipping" in texts(at, "warning")


def test_an_empty_range_is_a_plain_message():
    at = open_page(WALK_PAGE, model="tiny-linear")
    at.number_input(key="hi").set_value(-1.0).run()
    assert not at.exception
    assert "Range low must be below range high" in texts(at, "error")
    assert len(charts(at)) == 2, "the other two sections still draw"


def test_page_inputs_survive_a_page_switch():
    at = open_page(WALK_PAGE, model="tiny-linear")
    at.number_input(key="x").set_value(1.25).run()
    at.switch_page("app_pages/tensor_explorer.py").run()
    at.switch_page(WALK_PAGE).run()
    assert at.number_input(key="x").value == pytest.approx(1.25)


def test_a_walkthrough_link_reproduces_the_value_its_range_and_the_example():
    at = open_link(WALK_PAGE, model="tiny-linear", bits="4", x="0.77", lo="-0.8", hi="2.1", example="7")
    assert not at.exception and not at.error
    assert not [w for w in at.warning if "could not be used" in w.value]
    values = {k: at.number_input(key=k).value for k in ("x", "lo", "hi", "example")}
    assert values == {"x": pytest.approx(0.77), "lo": pytest.approx(-0.8), "hi": pytest.approx(2.1), "example": 7}
    assert at.slider(key="wt_x_slider").value == pytest.approx(0.77)
    assert metric_values(at)["stored integer q"][0] == str(trace_value(0.77, -0.8, 2.1, 4, "symmetric").q)
    assert {"x": "0.77", "lo": "-0.8", "hi": "2.1", "example": "7"}.items() <= link_query(at).items()


def test_moving_the_slider_moves_the_typed_value_and_the_link():
    at = open_link(WALK_PAGE, model="tiny-linear")
    at.slider(key="wt_x_slider").set_value(1.0).run()
    assert not at.exception
    assert at.number_input(key="x").value == pytest.approx(1.0)
    assert link_query(at)["x"] == "1"


def test_a_qat_link_sets_epochs_and_learning_rate(fresh_store):
    at = open_link(QAT_PAGE, model="digits-mlp", epochs="4", lr="0.0001")
    assert not at.exception and not at.error
    assert at.slider(key="epochs").value == 4
    assert at.select_slider(key="lr").value == pytest.approx(1e-4)
    assert {"epochs": "4", "lr": "0.0001"}.items() <= link_query(at).items()
    assert not [w for w in at.warning if "could not be used" in w.value]


@pytest.mark.parametrize(
    ("page", "params", "expected"),
    [
        (QAT_PAGE, {"epochs": "50", "lr": "0.5"}, ["`epochs=50`", "using `3`", "`lr=0.5`", "using `0.001`"]),
        (WALK_PAGE, {"x": "abc", "lo": "nan", "example": "9999"}, ["`x=abc`", "`lo=nan`", "`example=9999`"]),
    ],
)
def test_bad_page_values_in_a_link_fall_back_with_a_notice(page, params, expected):
    at = open_link(page, model="digits-mlp", **params)
    assert not at.exception and not at.error
    notice = " ".join(w.value for w in at.warning if "could not be used" in w.value)
    for part in expected:
        assert part in notice


def test_the_layer_three_ways_matches_integer_linear():
    at = open_page(WALK_PAGE, model="digits-mlp", scheme="asymmetric")
    at.number_input(key="example").set_value(7).run()
    sm = sample_models.load("tiny-linear")
    r = integer_linear(sm.model.linear.weight.detach(), sm.model.linear.bias.detach(), sm.eval_inputs, bits=8,
                       input_scheme="asymmetric")
    shown = metric_values(at)
    assert float(shown["float y"][0]) == pytest.approx(float(r.float_output[7, 0]), rel=1e-4)
    assert float(shown["correct ŷ"][0]) == pytest.approx(float(r.correct.output[7, 0]), rel=1e-4)
    assert float(shown["naive ŷ"][0]) == pytest.approx(float(r.naive.output[7, 0]), rel=1e-4)
    assert r.explanation in texts(at, "warning")
    assert "z_x·Σq_w" in texts(at, "markdown"), "asymmetric inputs show the zero-point correction"
    assert r.naive.max_abs_error > 10 * r.correct.max_abs_error


def test_the_mse_on_the_chosen_layer_is_quantlibs():
    at = open_page(WALK_PAGE, model="digits-cnn", layer="conv2", bits="3", granularity="channel")
    assert not at.exception and not at.error
    w = sample_models.load("digits-cnn").model.conv2.weight.detach()
    expected = metrics.mse(w, fake_quant(w, QuantSpec(bits=3, granularity="channel")))
    caption = next(c.value for c in at.caption if "MSE =" in c.value)
    shown = float(caption.split("MSE = ")[1].split(" ")[0])
    assert shown == pytest.approx(expected, rel=1e-5)
    assert any("\\mathrm{MSE}" in t.value for t in at.latex)
    sqnr = json.loads(charts(at)[-1])
    assert {t["name"].split(":")[0] for t in sqnr["data"]} >= {"measured", "rule"}


def test_a_failure_in_one_section_is_a_plain_message(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(teach_data, "tiny_linear_paths", broken)
    at = open_page(WALK_PAGE, model="tiny-linear")
    assert not at.exception
    assert "RuntimeError: boom" in texts(at, "error")
    assert len(charts(at)) == 3, "the other sections still draw"


# --- QAT ------------------------------------------------------------------------------------------------------


def train_on_page(at: AppTest) -> jobs.Job | None:
    """Press Train, let the runner finish the job, and draw the page again; the job (None when it was over
    before the page drew it: the page then shows its end at once)."""
    at.button(key="qat_train").click().run()
    assert not at.exception and not at.error
    seen = at.session_state["_qat_seen"] if "_qat_seen" in at.session_state else {}
    job = list(seen.values())[-1] if seen else None  # the job this session draws
    if job is not None:
        jobs.runner().wait(job, timeout=TIMEOUT)
    at.run()
    return job


def until(condition, what: str) -> None:
    """Wait for ``condition()`` (set by the runner's threads), at most TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


class ScriptedStop(jobs.Progress):
    """A job's progress whose stop flag goes up when ``when(self)`` says so (what ``runner.stop`` does), keeping
    the reports it was sent."""

    def __init__(self, when) -> None:
        super().__init__(0, 0)
        self.when, self.points, self.done = when, [], 0

    def check(self) -> None:
        if self.when(self):
            raise jobs.JobStopped("stopped on request")

    def __call__(self, done: int, total: int, message: str = "", /, **values) -> None:
        self.check()
        self.done = done

    def partial(self, value) -> None:
        self.check()
        self.points.append(value)


def held(point: teach_data.Point, release: threading.Event, progress: jobs.Progress) -> None:
    """A stand-in for somebody's QAT job: one report, then it trains until released."""
    progress(10, 60, "epoch 0.50 of 3")
    progress.partial(point)
    release.wait(TIMEOUT)


def returns(value, progress: jobs.Progress):
    """A job that hands back ``value`` (to put a given run into the runner's results)."""
    return value


def test_a_short_qat_run_completes_and_a_second_session_gets_it_from_the_store(fresh_store, monkeypatch):
    params = {"model": "digits-mlp", "bits": "2", "granularity": "channel"}
    settings = settings_for("digits-mlp", QuantSpec(bits=2, granularity="channel"), epochs=2)
    at = open_page(QAT_PAGE, **params)
    at.slider(key="epochs").set_value(2).run()
    train_on_page(at)
    assert not at.exception and not at.error
    assert fresh_store.result(settings.key).status == "done", "the run is kept by the runner, under its settings"
    shown = metric_values(at)
    float_acc, ptq_acc, qat_acc = (float(shown[k][0].rstrip(" %")) for k in ("Float model", "PTQ", "QAT"))
    assert float_acc == pytest.approx(98.3, abs=0.1)
    assert ptq_acc < 40 < 85 < qat_acc, "2-bit per-channel: QAT wins back most of what PTQ loses"
    specs = [json.loads(s) for s in charts(at)]
    names = {t.get("name") for s in specs for t in s["data"]}
    assert {"training loss", "QAT model on the evaluation set", "PTQ"} <= names
    assert max(len(s.encode()) for s in charts(at)) <= MAX_CHART_BYTES
    assert "trained just now" in texts(at, "caption")

    # Another browser, same link: the kept run, no training (train_qat would fail the job, and the test).
    def no_training(*args, **kwargs):
        raise AssertionError("the second session retrained")

    monkeypatch.setattr(teach_data, "train_qat", no_training)
    at2 = open_page(QAT_PAGE, **params)
    at2.slider(key="epochs").set_value(2).run()
    assert not at2.exception and not at2.error
    assert fresh_store.job(settings.key) is None, "nothing submitted"
    assert metric_values(at2)["QAT"] == shown["QAT"]
    assert "trained earlier on this server" in texts(at2, "caption")
    assert not [b for b in at2.button if b.key == "qat_train"], "nothing to train"


def test_a_real_training_run_in_a_worker_process_reaches_the_page(worker_processes):
    settings = settings_for("digits-mlp", QuantSpec(bits=2, granularity="channel"), epochs=1)
    at = open_page(QAT_PAGE, model="digits-mlp", bits="2", granularity="channel")
    at.slider(key="epochs").set_value(1).run()
    job = train_on_page(at)
    assert job is not None and job.error is None
    assert job.pid is not None and job.pid != os.getpid(), "trained in a worker process, not in the session"
    assert len(job.partials) == 5 and all(isinstance(p, teach_data.Point) for p in job.partials), (
        "the start and four reports reached the server as curve points"
    )
    run = worker_processes.result(settings.key)
    assert run.status == "done" and run.last.step == run.total_steps == 20 and run.codes
    shown = metric_values(at)
    assert shown["QAT"] == [f"{100 * run.qat_metric:.1f} %"]
    assert float(shown["QAT"][0].rstrip(" %")) > float(shown["PTQ"][0].rstrip(" %")) + 20
    assert "trained just now" in texts(at, "caption")
    assert worker_processes.restarts == 0


def test_a_failed_run_is_a_plain_message_and_keeps_nothing(fresh_store, monkeypatch):
    def diverges(*args, **kwargs):
        raise ValueError("training diverged: the loss is nan at epoch 1, step 3; try a smaller learning rate")

    monkeypatch.setattr(teach_data, "train_qat", diverges)
    settings = settings_for("digits-mlp", QuantSpec(bits=4), epochs=1)
    at = open_page(QAT_PAGE, model="digits-mlp", bits="4")
    at.slider(key="epochs").set_value(1).run()
    train_on_page(at)
    assert not at.exception
    assert "training diverged" in texts(at, "error") and "try a smaller learning rate" in texts(at, "error")
    assert fresh_store.result(settings.key) is None
    assert at.button(key="qat_train").label == "▶️ Train", "it can be tried again"
    at.run()
    assert not at.error, "the failure is reported once"


def test_stop_keeps_the_partly_trained_run_for_everyone(fresh_store):
    """recsys, MSE calibration, 10 epochs: a run long enough to press Stop in the middle."""
    params = {"model": "recsys", "bits": "4", "calibration": "mse"}
    at = open_page(QAT_PAGE, **params)
    at.slider(key="epochs").set_value(10).run()
    at.button(key="qat_train").click().run()
    assert not at.exception and not at.error
    (job,) = at.session_state["_qat_seen"].values()  # the job this session is drawing
    assert job.key.startswith("qat|recsys|weights|10|") and fresh_store.job(job.key) is job
    until(lambda: job.done >= 1, "the first training step")
    at.run()
    assert "Training: epoch 0.0" in " ".join(p.proto.text for p in at.get("progress"))
    at.button(key="qat_stop").click().run()
    fresh_store.wait(job, timeout=TIMEOUT)
    at.run()
    assert not at.exception and not at.error
    run = fresh_store.result(job.key)
    assert run.status == "stopped" and 0 < run.last.step < run.total_steps
    assert run.qat_metric == run.last.eval_metric and run.codes
    assert f"Stopped at epoch {run.last.epoch:.2g} of 10" in texts(at, "warning")
    assert "Train again (all 10 epochs)" in at.button(key="qat_train").label
    assert "stopped early" in " ".join(m.label for m in at.metric)

    other = open_page(QAT_PAGE, **params)  # another browser: the same partial run, and it may train it in full
    other.slider(key="epochs").set_value(10).run()
    assert "Stopped at epoch" in texts(other, "warning") and "Train again" in other.button(key="qat_train").label


def test_train_again_forgets_the_stopped_run_and_trains_in_full(fresh_store, monkeypatch):
    monkeypatch.setattr(teach_data, "TICK_SECONDS", 0.0)  # the step count is reported before every step
    settings = settings_for("digits-mlp", QuantSpec(bits=3), epochs=1)
    stopped = teach_data.train_run(settings, progress=ScriptedStop(lambda p: p.done >= 7))
    monkeypatch.undo()
    fresh_store.wait(fresh_store.submit(settings.key, returns, (stopped,), keep=teach_data.keep_run))
    at = open_page(QAT_PAGE, model="digits-mlp", bits="3")
    at.slider(key="epochs").set_value(1).run()
    assert "Stopped at epoch 0.4 of 1" in texts(at, "warning")
    train_on_page(at)
    assert not at.exception and not at.error
    run = fresh_store.result(settings.key)
    assert run.status == "done" and run.last.step == run.total_steps
    assert not texts(at, "warning") and "trained just now" in texts(at, "caption")


def test_a_stopped_job_keeps_what_it_trained_up_to_the_last_report():
    settings = settings_for("digits-mlp", QuantSpec(bits=2, granularity="channel"), epochs=3)
    progress = ScriptedStop(lambda p: bool(p.points) and p.points[-1].epoch >= 1)
    stopped = teach_data.train_run(settings, progress=progress)
    assert stopped.status == "stopped" and stopped.epoch_reached == pytest.approx(1.0)
    assert stopped.points == tuple(progress.points), "no evaluation after the last report: no step was made since"
    assert stopped.qat_metric == stopped.last.eval_metric and stopped.codes
    assert stopped.total_steps == 60 and stopped.steps_per_epoch == 20


def test_a_stop_between_reports_evaluates_the_partly_trained_model(monkeypatch):
    monkeypatch.setattr(teach_data, "TICK_SECONDS", 0.0)  # the step count is reported before every step
    settings = settings_for("digits-mlp", QuantSpec(bits=3), epochs=2)
    progress = ScriptedStop(lambda p: p.done >= 7)
    stopped = teach_data.train_run(settings, progress=progress)
    # The flag went up once step 7 was reported done; step 8 was under way and finishes, step 9 never starts.
    assert stopped.status == "stopped" and stopped.last.step == 8
    assert stopped.last.loss is None and stopped.last.eval_metric is not None, "evaluated once more"
    assert stopped.points[:-1] == tuple(progress.points)
    assert stopped.epoch_reached == pytest.approx(8 / stopped.steps_per_epoch)
    assert stopped.qat_metric == stopped.last.eval_metric


def test_a_stop_before_the_first_step_keeps_nothing(fresh_store):
    settings = settings_for("digits-mlp", QuantSpec(bits=3))
    assert teach_data.train_run(settings, progress=ScriptedStop(lambda p: True)) is None
    assert not teach_data.keep_run(None), "nothing goes to the runner's results"


def test_the_same_settings_give_the_same_curve():
    settings = settings_for("digits-cnn", QuantSpec(bits=2, scheme="asymmetric"))
    runs = [jobs.run_inline(teach_data.train_run, settings) for _ in range(2)]
    assert all(r.status == "done" for r in runs)
    assert [(p.step, p.loss, p.eval_metric) for p in runs[0].points] == [
        (p.step, p.loss, p.eval_metric) for p in runs[1].points
    ]


def test_a_run_in_progress_elsewhere_is_watched_not_duplicated(fresh_store):
    settings = settings_for("digits-mlp", QuantSpec(bits=5), epochs=3)
    release = threading.Event()
    point = teach_data.Point(0.5, 10, 0.3, 0.9, 0.95, 0.1)
    job = fresh_store.submit(settings.key, held, (point, release), owner="another-browser")
    try:
        until(lambda: job.partials, "the other browser's first report")
        at = open_page(QAT_PAGE, model="digits-mlp", bits="5")
        assert not at.exception and not at.error
        assert "Another browser on this server is training exactly these settings" in texts(at, "caption")
        progress = " ".join(p.proto.text for p in at.get("progress"))
        assert "Training in another browser: epoch 0.50 of 3 · step 10 of 60" in progress
        assert not [b for b in at.button if b.key in ("qat_train", "qat_stop")], "no second run, no Stop"
        assert fresh_store.job(settings.key) is job and job.owner == "another-browser"
    finally:
        release.set()
        fresh_store.wait(job, timeout=TIMEOUT)


def test_the_sweep_trains_every_width_and_fills_the_chart(fresh_store):
    at = open_page(QAT_PAGE, model="digits-mlp", bits="3", scheme="asymmetric")
    at.slider(key="epochs").set_value(1).run()
    at.button(key="qat_sweep").click().run()
    assert not at.exception and not at.error
    keys = [settings_for("digits-mlp", QuantSpec(bits=b, scheme="asymmetric")).key for b in range(2, 9)]
    for job in [fresh_store.job(k) for k in keys]:
        if job is not None:
            fresh_store.wait(job, timeout=TIMEOUT)
    at.run()
    sweep = json.loads(charts(at)[-1])
    qat = next(t for t in sweep["data"] if t["name"] == "QAT")
    values = np.frombuffer(base64.b64decode(qat["y"]["bdata"]), dtype=np.float32)
    assert values.size == 7 and np.isfinite(values).all()
    assert "7 of 7 widths" in texts(at, "caption")
    assert all(teach_data.is_done(fresh_store.result(k)) for k in keys)
    assert not [b for b in at.button if b.key in ("qat_sweep", "qat_sweep_stop")], "nothing left to train"


def test_the_sweep_queues_behind_other_work_and_stops(fresh_store):
    release = threading.Event()
    busy = fresh_store.submit("test|somebody-else", held, (teach_data.Point(0, 0, None, None, None, 0), release))
    try:
        until(lambda: busy.started is not None, "the other job's start")
        at = open_page(QAT_PAGE, model="digits-mlp", bits="3")
        at.slider(key="epochs").set_value(1).run()
        at.button(key="qat_sweep").click().run()
        assert not at.exception and not at.error
        progress = " ".join(p.proto.text for p in at.get("progress"))
        assert "0 of 7 widths trained · 7 widths queued · Waiting: 1 computation ahead of you" in progress
        keys = [settings_for("digits-mlp", QuantSpec(bits=b)).key for b in range(2, 9)]
        assert all(fresh_store.job(k).owner == at.session_state["_qat_owner"] for k in keys), "7 jobs, this session's"
        at.button(key="qat_sweep_stop").click().run()
        assert not at.exception and not at.error
        assert all(fresh_store.job(k) is None and fresh_store.result(k) is None for k in keys), "all stopped"
        at.run()
        assert at.button(key="qat_sweep").label.startswith("▶️ Train the missing 7 widths")
    finally:
        release.set()
        fresh_store.wait(busy, timeout=TIMEOUT)


@pytest.mark.slow
def test_cached_sample_models_are_unchanged_after_the_teach_pages_ran(baseline_hashes, fresh_store):
    for model in MODELS:
        at = open_page(QAT_PAGE, model=model, bits="2")
        if model in TRAINABLE:
            at.slider(key="epochs").set_value(1).run()
            job = train_on_page(at)
            assert not at.exception and not at.error
            assert job is not None and teach_data.is_done(fresh_store.result(job.key))
        open_page(WALK_PAGE, model=model)
    assert {name: state_hash(sample_models.load(name).model) for name in MODELS} == baseline_hashes


# --- pure parts -----------------------------------------------------------------------------------------------


def test_teach_figures_are_pure_and_small():
    tree = ast.parse(Path(teach_figures.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    ours = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ui")}
    assert imported <= {"__future__", "collections", "typing", "numpy", "plotly", "ui"}, imported
    assert ours <= {"ui.figures.explorer", "ui.i18n"}, "only the sibling pure figure module and the translations"

    t = trace_value(0.123, -3.0, 7.0, 16, "asymmetric")
    line = teach_data.number_line(t)
    assert line["grid"].size <= teach_data.MAX_LINE_TICKS + 1 and line["levels"] == 65536
    figs = [
        teach_figures.number_line(t.x, t.x_hat, t.q, line, t.range_lo, t.range_hi, "16 bits"),
        teach_figures.qat_curves(np.linspace(0, 10, 41), np.ones(41), np.ones(41), [None] * 41, 1.0, 0.5, "acc", 10),
        teach_figures.sweep_figure(list(range(2, 9)), [0.1] * 7, [0.9, None, 0.9, 0.9, 0.9, 0.9, 0.9], 1.0, "acc", 2),
        teach_figures.integer_linear_scatter(np.arange(256.0), np.arange(256.0), np.clip(np.arange(256.0), 0, 9), 9.0),
        teach_figures.codes_moved(["a", "b"], [5.0, 2.0], [4.0, 2.0], "a"),
        teach_figures.comparison_bars([0.9, 0.3, 0.8], ["float", "PTQ", "QAT"], ["90 %", "30 %", "80 %"], "acc", "t"),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure) and len(fig.to_json()) < MAX_CHART_BYTES


def test_rule_lines_follow_quantlibs_rule_of_thumb():
    uniform, tensor = teach_data.rule_lines(np.array([4, 8]), 4.0)
    assert uniform == pytest.approx([4 * 6.0206, 8 * 6.0206], abs=1e-3)
    assert tensor[1] == pytest.approx(40.89, abs=0.01)
    assert teach_data.rule_lines(np.array([4]), math.inf)[1] is None


def test_settings_key_changes_with_every_setting():
    base = settings_for("digits-mlp", QuantSpec(bits=4))
    variants = [base, base.with_bits(5), settings_for("digits-mlp", QuantSpec(bits=4), epochs=2),
                settings_for("digits-mlp", QuantSpec(bits=4), lr=3e-3),
                settings_for("digits-mlp", QuantSpec(bits=4), lr=3.0001e-3),
                settings_for("digits-mlp", QuantSpec(bits=4), target="both"),
                settings_for("digits-cnn", QuantSpec(bits=4)),
                RunSettings("digits-mlp", spec_key(QuantSpec(bits=4)), "weights", 1, 1e-3, seed=1)]
    assert len({v.key for v in variants}) == len(variants)
    assert all(v.key.startswith(teach_data.KEY_PREFIX + v.model + "|") for v in variants)
    assert settings_for("digits-mlp", QuantSpec(bits=4)).key == base.key, "the same settings, the same key"
