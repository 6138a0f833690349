"""The two teaching pages without a browser: PTQ vs QAT and the formula walkthrough, through Streamlit's AppTest.

- Both pages run for every sample model without an exception or an error message, open with a title and a
  formula, and ship charts under 30 kB.
- The walkthrough's numbers are quantlib's: the displayed integer q of a value (checked against
  ``quantlib.quantize`` itself), the 10 → 1 layer's three outputs (``integer_linear``), the MSE of the layer.
- QAT: models without a train split explain why; a short digits-mlp run completes and shows float / PTQ / QAT;
  a second session with the same settings shows the stored result without training; a run stopped by
  Streamlit (what a Stop click does) is kept as "stopped at epoch k"; the same settings give the same curve;
  the store stays bounded; a run in progress elsewhere is watched, not duplicated.
- The pages' own inputs (QAT's epochs and learning rate; the walkthrough's value, range and example) come from
  a link, go into the share link, survive a page switch, and bad values fall back with a notice.
- The shared sample models are unchanged after all of it.
"""

from __future__ import annotations

import ast
import base64
import json
import math
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from model_hash import state_hash
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec, choose_qparams, fake_quant, metrics, quantize
from quantlib.walkthrough import integer_linear, trace_value
from ui import teach_data, teach_figures
from ui.data import spec_key
from ui.teach_data import QATRun, QATStore, RunSettings, TrainPlan

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
    """An empty QAT store for the test (the store is process-wide, like on a server)."""
    teach_data.store.clear()
    yield teach_data.store()
    teach_data.store.clear()


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


def test_a_short_qat_run_completes_and_a_second_session_gets_it_from_the_store(fresh_store, monkeypatch):
    params = {"model": "digits-mlp", "bits": "2", "granularity": "channel"}
    at = open_page(QAT_PAGE, **params)
    at.slider(key="epochs").set_value(2).run()
    at.button(key="qat_train").click().run()
    assert not at.exception and not at.error
    shown = metric_values(at)
    float_acc, ptq_acc, qat_acc = (float(shown[k][0].rstrip(" %")) for k in ("Float model", "PTQ", "QAT"))
    assert float_acc == pytest.approx(98.3, abs=0.1)
    assert ptq_acc < 40 < 85 < qat_acc, "2-bit per-channel: QAT wins back most of what PTQ loses"
    specs = [json.loads(s) for s in charts(at)]
    names = {t.get("name") for s in specs for t in s["data"]}
    assert {"training loss", "QAT model on the evaluation set", "PTQ"} <= names
    assert max(len(s.encode()) for s in charts(at)) <= MAX_CHART_BYTES
    assert "trained just now" in texts(at, "caption")

    # Another browser, same link: the stored run, no training (train_qat would fail the test).
    def no_training(*args, **kwargs):
        raise AssertionError("the second session retrained")

    monkeypatch.setattr(teach_data, "train_qat", no_training)
    at2 = open_page(QAT_PAGE, **params)
    at2.slider(key="epochs").set_value(2).run()
    assert not at2.exception and not at2.error
    assert metric_values(at2)["QAT"] == shown["QAT"]
    assert "trained earlier on this server" in texts(at2, "caption")
    assert not [b for b in at2.button if b.key == "qat_train"], "nothing to train"


def test_models_without_a_train_split_explain_why(fresh_store):
    for model in ("tiny-linear", "minilm"):
        at = open_page(QAT_PAGE, model=model)
        assert not at.exception and not at.error
        info = texts(at, "info")
        assert "QAT needs training data" in info and teach_data.NO_TRAIN_REASONS[model][:30] in info
        assert not at.button


def test_bits_above_8_are_clamped_with_a_caption(fresh_store):
    at = open_page(QAT_PAGE, model="digits-mlp", bits="12")
    assert not at.exception and not at.error
    assert "using **8 bits**" in texts(at, "caption")
    assert "PTQ at int8" in " ".join(m.label for m in at.metric)


def test_a_run_interrupted_by_streamlit_is_kept_as_stopped(fresh_store):
    """What a Stop click does: Streamlit raises a control exception at the page's next st.* call."""
    settings = settings_for("digits-mlp", QuantSpec(bits=2, granularity="channel"), epochs=3)
    run, mine = fresh_store.claim(settings, "me", teach_data.plan_for("digits-mlp"))
    assert mine

    def stop_after_first_epoch(r: QATRun) -> None:
        if r.last.epoch >= 1:
            raise StopException()

    with pytest.raises(StopException):
        teach_data.drive(run, stop_after_first_epoch)
    stopped = fresh_store.get(settings)
    assert stopped.status == "stopped" and stopped.epoch_reached == pytest.approx(1.0)
    assert stopped.qat_metric == stopped.last.eval_metric and stopped.codes

    # The page shows it as such, with a button to train it all.
    at = open_page(QAT_PAGE, model="digits-mlp", bits="2", granularity="channel")
    assert not at.exception and not at.error
    assert "Stopped at epoch 1 of 3" in texts(at, "warning")
    assert "Train again" in at.button(key="qat_train").label
    assert "stopped early" in " ".join(m.label for m in at.metric)


def test_a_stop_between_reports_evaluates_the_partly_trained_model(fresh_store):
    settings = settings_for("digits-mlp", QuantSpec(bits=3), epochs=2)
    run, _ = fresh_store.claim(settings, "me", teach_data.plan_for("digits-mlp"))

    def stop_at_step_7(r: QATRun, step: int) -> None:
        if step == 7:
            raise StopException()

    with pytest.raises(StopException):
        teach_data.drive(run, lambda r: None, stop_at_step_7)
    stopped = fresh_store.get(settings)
    assert stopped.status == "stopped" and stopped.last.step == 7
    assert stopped.epoch_reached == pytest.approx(7 / stopped.steps_per_epoch)


def test_a_stop_before_the_first_step_keeps_nothing(fresh_store):
    settings = settings_for("digits-mlp", QuantSpec(bits=3))
    run, _ = fresh_store.claim(settings, "me", teach_data.plan_for("digits-mlp"))

    def stop_now(r: QATRun, step: int) -> None:
        raise StopException()

    with pytest.raises(StopException):
        teach_data.drive(run, lambda r: None, stop_now)
    assert fresh_store.get(settings) is None


def test_the_same_settings_give_the_same_curve(fresh_store):
    settings = settings_for("digits-cnn", QuantSpec(bits=2, scheme="asymmetric"))
    curves = []
    for _ in range(2):
        teach_data.store.clear()
        run, _ = teach_data.store().claim(settings, "me", teach_data.plan_for("digits-cnn"))
        done = teach_data.drive(run, lambda r: None)
        assert done.status == "done"
        curves.append([(p.step, p.loss, p.eval_metric) for p in done.points])
    assert curves[0] == curves[1]


def test_a_run_in_progress_elsewhere_is_watched_not_duplicated(fresh_store):
    settings = settings_for("digits-mlp", QuantSpec(bits=5), epochs=3)
    run, _ = fresh_store.claim(settings, "another-browser", teach_data.plan_for("digits-mlp"))
    fresh_store.add_point(settings, "another-browser", teach_data.Point(0.5, 10, 0.3, 0.9, 0.95, 0.1), 20, 60)
    at = open_page(QAT_PAGE, model="digits-mlp", bits="5")
    assert not at.exception and not at.error
    assert "Another browser on this server is training exactly these settings" in texts(at, "caption")
    assert not [b for b in at.button if b.key == "qat_train"]
    assert fresh_store.get(settings).owner == "another-browser"


def test_the_store_is_bounded_and_takes_over_abandoned_runs():
    store = QATStore(max_runs=3)
    plan = TrainPlan(64, 1)
    keys = [settings_for("digits-mlp", QuantSpec(bits=b)) for b in range(2, 7)]
    running, _ = store.claim(keys[0], "a", plan)
    for k in keys[1:]:
        store.claim(k, "b", plan)
        store.update(k, "b", status="done")
    assert len(store) == 3
    assert store.get(keys[0]).status == "running", "a running run is never evicted"
    assert store.get(keys[1]) is None and store.get(keys[-1]) is not None, "oldest finished runs go first"
    same, mine = store.claim(keys[0], "c", plan)
    assert not mine and same.owner == "a", "a live run is watched, not duplicated"
    store._runs[keys[0]] = QATRun(keys[0], "running", "a", time.time() - 2 * teach_data.STALE_SECONDS)
    taken, mine = store.claim(keys[0], "c", plan)
    assert mine and taken.owner == "c", "an abandoned run is taken over"


def test_the_sweep_trains_every_width_and_fills_the_chart(fresh_store):
    at = open_page(QAT_PAGE, model="digits-mlp", bits="3", scheme="asymmetric")
    at.slider(key="epochs").set_value(1).run()
    at.button(key="qat_sweep").click().run()
    assert not at.exception and not at.error
    sweep = json.loads(charts(at)[-1])
    qat = next(t for t in sweep["data"] if t["name"] == "QAT")
    values = np.frombuffer(base64.b64decode(qat["y"]["bdata"]), dtype=np.float32)
    assert values.size == 7 and np.isfinite(values).all()
    assert "7 of 7 widths" in texts(at, "caption")
    assert all(fresh_store.get(settings_for("digits-mlp", QuantSpec(bits=b, scheme="asymmetric"))) for b in range(2, 9))


@pytest.mark.slow
def test_cached_sample_models_are_unchanged_after_the_teach_pages_ran(baseline_hashes, fresh_store):
    for model in MODELS:
        at = open_page(QAT_PAGE, model=model, bits="2")
        if model in TRAINABLE:
            at.slider(key="epochs").set_value(1).run()
            at.button(key="qat_train").click().run()
            assert not at.exception and not at.error
        open_page(WALK_PAGE, model=model)
    assert {name: state_hash(sample_models.load(name).model) for name in MODELS} == baseline_hashes


# --- pure parts -----------------------------------------------------------------------------------------------


def test_teach_figures_are_pure_and_small():
    tree = ast.parse(Path(teach_figures.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections", "typing", "numpy", "plotly", "figures"}, imported

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
    variants = {base, base.with_bits(5), settings_for("digits-mlp", QuantSpec(bits=4), epochs=2),
                settings_for("digits-mlp", QuantSpec(bits=4), lr=3e-3),
                settings_for("digits-mlp", QuantSpec(bits=4), target="both"),
                settings_for("digits-cnn", QuantSpec(bits=4))}
    assert len(variants) == 6
