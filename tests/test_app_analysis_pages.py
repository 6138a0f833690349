"""The "Layer sensitivity" and "Size & speed" pages without a browser (Streamlit's AppTest), plus their helpers.

Both pages for every sample model; the long computations (sweeps, latency) running on the job store's worker
thread, on a click for the big models and at once for the small ones; a finished result reaching a new session
without a click; the sidebar layer set from the page; the URL-bound budget; plain-word errors; the shared sample
models left untouched; small chart messages; and the pure pieces (job store, names, specs, figure builders).

MiniLM is only rendered here (its sweep takes minutes on the 2-core reference machine): the tests check that
the page offers the button and starts nothing by itself. The small models run their sweeps for real.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from model_hash import state_hash
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec
from quantlib.model import model_size_bytes
from ui import jobs, widgets
from ui.compute import analysis as ad
from ui.compute.reductions import spec_key
from ui.figures import analysis as af
from ui.views import jobs as job_views
from ui.widgets import human_bytes

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PAGES = {"sensitivity": "app_pages/sensitivity.py", "size_speed": "app_pages/size_speed.py"}
MODELS = sample_models.names()
SMALL_MODELS = ["tiny-linear", "digits-mlp", "digits-cnn"]
MAX_CHART_BYTES = 30_000
TIMEOUT = 600  # seconds per script run: a sweep on a busy 2-core machine


def open_page(page: str, **params: str) -> AppTest:
    """Open ``page`` with ``params`` in the URL.

    Like a shared link, the session's first run is that page where AppTest can do it: before its first run it
    finds a page by file name, which matches the URL path of ``sensitivity`` but not of ``size-speed``; that
    one is reached from the default page.
    """
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    if page != "sensitivity":
        at.run()
    at.switch_page(PAGES[page]).run()
    return at


def sidebar_spec(at: AppTest) -> QuantSpec:
    """The QuantSpec the sidebar resolved to (what the page keys its results by)."""
    return QuantSpec(
        bits=at.slider(key="bits").value,
        scheme=at.radio(key="scheme").value,
        granularity=at.radio(key="granularity").value,
        group_size=at.selectbox(key="group_size").value,
        calibration=at.selectbox(key="calibration").value,
        percentile=float(at.number_input(key="percentile").value),
        rounding=at.radio(key="rounding").value,
        format=at.selectbox(key="format").value,
    )


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [(spec["layout"].get("title") or {}).get("text", "") for spec in chart_specs(at)]


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in getattr(at, kind))


def no_failures(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []


@functools.cache
def run_page(model: str, page: str) -> dict:
    """Open a page for a model once (with its defaults plus 4 bits) and keep what the tests look at."""
    at = open_page(page, model=model, bits="4")
    return {
        "exceptions": [e.value for e in at.exception],
        "errors": [e.value for e in at.error],
        "titles": [t.value for t in at.title],
        "latex": len(at.latex),
        "charts": [el.proto.spec for el in at.get("plotly_chart")],
        "buttons": [b.label for b in at.button],
        "warnings": [w.value for w in at.warning],
    }


# --- every page, every model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", MODELS)
def test_both_pages_run_for_every_sample_model_without_error(baseline_hashes, model, page):
    result = run_page(model, page)
    assert result["exceptions"] == []
    assert result["errors"] == []
    assert result["warnings"] == [], "a clean link raises no notice"
    assert len(result["titles"]) == 1, "each page opens with its title"
    assert result["latex"] >= 1, "each page shows its formula"
    if page == "size_speed":
        assert len(result["charts"]) >= 2, "sizes are always drawn"
        assert any(b.startswith("⏱️ Measure") for b in result["buttons"]), "speed waits for a click"
    else:
        ran = bool(result["charts"])
        offered = any(b.startswith("Run the") for b in result["buttons"])
        assert ran or offered, "the sensitivity page either shows results or offers to compute them"


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", MODELS)
def test_every_chart_message_stays_under_30_kB(baseline_hashes, model, page):
    sizes = [len(spec.encode()) for spec in run_page(model, page)["charts"]]
    assert not sizes or max(sizes) <= MAX_CHART_BYTES, sizes


@pytest.mark.slow
def test_cached_sample_models_are_unchanged_after_both_pages_ran(baseline_hashes):
    for model in MODELS:
        for page in PAGES:
            run_page(model, page)
    # and the long jobs too: a sweep, the mixed-precision search and a latency measurement
    at = open_page("sensitivity", model="digits-cnn", bits="3", sens_view="All bit widths")
    no_failures(at)
    at = open_page("size_speed", model="digits-mlp")
    at.button(key="measure").click().run()
    no_failures(at)
    after = {name: state_hash(sample_models.load(name).model) for name in MODELS}
    assert after == baseline_hashes


# --- sensitivity: running, caching, progress --------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_offers_a_button_and_starts_no_sweep_by_itself():
    at = open_page("sensitivity", model="minilm", bits="4")
    no_failures(at)
    labels = [b.label for b in at.button]
    assert any(label.startswith("Run the sensitivity analysis (40 layers)") for label in labels), labels
    assert any(label.startswith("Run the bit-width sweep") for label in labels), labels
    assert "about" in texts(at, "caption"), "the button says what it costs"
    spec = sidebar_spec(at)
    store = jobs.runner()
    for key in (ad.sensitivity_key("minilm", spec, "only"), ad.sweep_key("minilm", spec)):
        assert store.job(key) is None, "nothing was started without a click"
    assert not chart_specs(at)


@pytest.mark.parametrize("model", SMALL_MODELS)
def test_small_models_show_the_sorted_bar_chart_at_once(model):
    at = open_page("sensitivity", model=model, bits="3")
    no_failures(at)
    bars = chart_specs(at)[0]
    assert "most fragile on top" in bars["layout"]["title"]["text"]
    assert "int3" in bars["layout"]["title"]["text"], "at the sidebar's settings"
    spec = sidebar_spec(at)
    table = jobs.runner().result(ad.sensitivity_key(model, spec, "only"))
    if table is None:  # served from a finished bit-width sweep of the same settings
        sweep = jobs.runner().result(ad.sweep_key(model, spec))
        table = sweep[sweep["bits"] == 3]
    assert list(table["layer"].map(lambda n: n or "root")) == bars["data"][0]["customdata"]
    drops = table["metric_drop"].to_numpy()
    assert (np.diff(drops[np.isfinite(drops)]) <= 1e-12).all(), "most fragile first"
    assert bars["data"][0]["customdata"] is not None, "bars carry the layer name a click selects"


def test_the_heatmap_and_the_mixed_precision_search_run_for_a_small_model():
    at = open_page("sensitivity", model="digits-mlp", bits="4", sens_view="All bit widths")
    no_failures(at)
    specs = chart_specs(at)
    heat = next(s for s in specs if s["data"][0]["type"] == "heatmap")
    assert heat["data"][0]["x"] == ["2", "3", "4", "6", "8"]
    assert len(heat["data"][0]["y"]) == 3, "one row per layer"
    assert heat["layout"]["shapes"], "the sidebar's bit width is framed"
    pareto = next(s for s in specs if "Size vs task metric" in s["layout"]["title"]["text"])
    uniform = next(t for t in pareto["data"] if t["name"].startswith("uniform"))
    assert uniform["text"] == ["int4", "int6", "int8"]
    assert any(t["name"].startswith("your budget") for t in pareto["data"]), "the chosen mix is starred"
    labels = [m.label for m in at.metric]
    assert {"Average width", "Model size", "accuracy (measured)"} <= set(labels)
    assert any(label.startswith("Uniform int") for label in labels)


def test_the_keep_one_layer_in_float_view_ranks_what_each_layer_wins_back():
    at = open_page("sensitivity", model="digits-cnn", bits="2", sens_view="Keep one layer in float")
    no_failures(at)
    bars = chart_specs(at)[0]
    assert "except one" in bars["layout"]["title"]["text"]
    assert bars["data"][0]["name"] == "accuracy won back"
    assert any("every layer quantized" in (t.get("name") or "") for t in bars["data"]), "the reference line"


@pytest.mark.slow
def test_a_slow_sweep_runs_on_a_click_and_a_shared_link_then_shows_it_without_one(monkeypatch):
    # Whether the recsys sweep counts as slow depends on this machine's speed and on the per-probe rate that
    # earlier sweeps in this process recorded; the test is about slow work, so it says the sweep is slow.
    monkeypatch.setattr(ad, "sweep_estimate", lambda model, bits=ad.SWEEP_BITS: 10 * job_views.AUTO_RUN_SECONDS)
    params = {"model": "recsys", "bits": "4", "scheme": "asymmetric"}
    first = open_page("sensitivity", **params)
    no_failures(first)
    titles = chart_titles(first)
    assert not any("Size vs task metric" in t for t in titles)
    first.button(key="run-sweep-mixed").click().run()
    no_failures(first)
    assert any("Size vs task metric" in t for t in chart_titles(first))

    # Someone else opens the same link later: the sweep is on the server, so no button and no waiting.
    second = open_page("sensitivity", **params, sens_view="All bit widths")
    no_failures(second)
    assert not any(b.key and b.key.startswith("run-sweep") for b in second.button)
    assert any(s["data"][0]["type"] == "heatmap" for s in chart_specs(second))
    finished = jobs.runner().finished(ad.sweep_key("recsys", ad.model_wide_spec("recsys", sidebar_spec(second))[0]))
    if finished.seconds >= job_views.AUTO_RUN_SECONDS:
        assert "Computed in" in texts(second, "caption"), "a long result says when and how long"


def test_a_rerun_reads_the_stored_results_and_computes_nothing(monkeypatch):
    at = open_page("sensitivity", model="digits-mlp", bits="4")
    no_failures(at)
    before = chart_specs(at)
    assert before

    def recomputed(*args, **kwargs):
        raise AssertionError("a rerun recomputed a stored result")

    for name in ("compute_sensitivity", "compute_sweep", "compute_choice", "compute_pareto"):
        monkeypatch.setattr(ad, name, recomputed)
    at.run()
    no_failures(at)
    assert chart_specs(at) == before


def test_a_group_size_that_no_layer_shares_falls_back_with_a_note():
    at = open_page("sensitivity", model="digits-cnn", layer="conv2", granularity="group", group_size="48")
    no_failures(at)
    caption = texts(at, "caption")
    assert "per-channel for all layers" in caption
    assert "int8 sym per-channel" in caption


def test_fixed_width_formats_sweep_the_int_grid_and_say_so():
    at = open_page("sensitivity", model="digits-mlp", format="nf4", sens_view="All bit widths")
    no_failures(at)
    assert "nf4 has a fixed width" in texts(at, "caption")
    assert any(s["data"][0]["type"] == "heatmap" for s in chart_specs(at))


# --- sensitivity: selecting a layer, the URL-bound controls ----------------------------------------------------


def test_the_make_layer_button_sets_the_sidebar_layer_and_the_link():
    at = open_page("sensitivity", model="digits-mlp", layer="fc3", bits="4")
    no_failures(at)
    top = chart_specs(at)[0]["data"][0]["customdata"][0]  # the top bar: most fragile
    assert top != "fc3"
    button = next(b for b in at.button if b.key == "make-layer-the most fragile layer")
    button.click().run()
    no_failures(at)
    assert at.selectbox(key="layer").value == top
    link = " ".join(c.value for c in at.code if "model=" in c.value)
    assert f"layer={top}" in link
    bars = chart_specs(at)[0]
    assert f"<b>{top}</b>" in bars["layout"]["yaxis"]["ticktext"], "the chart marks the new layer"


def test_a_bar_click_sets_the_sidebar_layer(monkeypatch):
    """The charts' on_select callback reads the selection a browser click leaves in session state."""
    import streamlit as st

    fake_state: dict = {"sens-only": {"selection": {"points": [{"customdata": "fc2", "y": "fc2"}]}}}
    monkeypatch.setattr(st, "session_state", fake_state)
    widgets.on_layer_click("sens-only", ["fc1", "fc2", "fc3"])
    assert fake_state["layer"] == "fc2"
    del fake_state["layer"]
    fake_state["sens-only"] = {"selection": {"points": [{"customdata": "not-a-layer"}]}}
    widgets.on_layer_click("sens-only", ["fc1", "fc2", "fc3"])
    assert "layer" not in fake_state, "an unknown name is ignored"
    fake_state["sens-only"] = {"selection": {"points": []}}
    widgets.on_layer_click("sens-only", ["fc1"])
    assert "layer" not in fake_state, "a cleared selection changes nothing"


def test_layer_from_selection_reads_the_first_point():
    assert widgets.layer_from_selection({"selection": {"points": [{"customdata": ["fc1", 3]}]}}) == "fc1"
    assert widgets.layer_from_selection({"selection": {"points": [{"x": 1}, {"customdata": "fc3"}]}}) == "fc3"
    assert widgets.layer_from_selection(None) is None
    assert widgets.layer_from_selection({"selection": {"points": []}}) is None


def test_the_budget_slider_is_bound_to_the_url_and_moves_the_choice():
    at = open_page("sensitivity", model="digits-mlp", bits="4", avg_bits="3")
    no_failures(at)
    assert not at.warning, "avg_bits is a known page setting"
    slider = at.slider(key="avg_bits")
    assert slider.value == pytest.approx(3.0)
    avg = next(m for m in at.metric if m.label == "Average width")
    assert float(avg.value.split()[0]) <= 3.0 + 1e-9
    slider.set_value(8.0).run()
    no_failures(at)
    avg = next(m for m in at.metric if m.label == "Average width")
    assert avg.value == "8.00 bits"
    link = next(c.value for c in at.code if "model=" in c.value)
    query = dict(parse_qsl(urlparse(link).query))
    assert float(query["avg_bits"]) == 8.0 and "sens_view" in query


def test_the_view_is_bound_to_the_url_and_a_bad_value_is_reported():
    at = open_page("sensitivity", model="tiny-linear", sens_view="Sideways")
    no_failures(at)
    assert at.radio(key="sens_view").value == "Quantize one layer"
    assert "sens_view=Sideways" in texts(at, "warning")


# --- errors ---------------------------------------------------------------------------------------------------


def test_a_failing_computation_becomes_a_plain_error_message(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("group size 7 does not divide the last dimension")

    monkeypatch.setattr(ad, "compute_sensitivity", broken)
    at = open_page("sensitivity", model="tiny-linear", bits="7", scheme="asymmetric", rounding="truncate")
    assert not at.exception
    assert "group size 7 does not divide" in texts(at, "error")
    assert jobs.runner().result(ad.sensitivity_key("tiny-linear", sidebar_spec(at), "only")) is None, "not cached"


def test_an_unexpected_failure_is_shown_without_a_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ad, "size_view", broken)
    at = open_page("size_speed", model="tiny-linear")
    assert not at.exception
    assert "RuntimeError: boom" in texts(at, "error")


# --- size & speed -----------------------------------------------------------------------------------------------


def test_the_size_figures_agree_with_quantlib():
    at = open_page("size_speed", model="digits-mlp", bits="4", granularity="channel")
    no_failures(at)
    sm = sample_models.load("digits-mlp")
    spec = QuantSpec(bits=4, granularity="channel")
    quantized = model_size_bytes(sm.model, spec)
    floats = model_size_bytes(sm.model)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Quantized model"] == human_bytes(quantized)
    assert metrics["float32 model"] == human_bytes(floats)
    assert metrics["Compression"] == f"{floats / quantized:.2f}×"
    table = at.dataframe[0].value
    assert list(table["one scale per"])[:2] == ["tensor", "channel  ← current"]
    overhead = ad.overhead_table("digits-mlp", spec_key(spec))
    groups = overhead[overhead["one scale per"].str.startswith("group")]
    assert groups["overhead_bytes"].is_monotonic_decreasing, "bigger groups, fewer scales"


def test_asymmetric_scales_cost_a_zero_point_each():
    spec = QuantSpec(bits=4, granularity="channel")
    sym = ad.size_view("digits-mlp", spec_key(spec))
    asym = ad.size_view("digits-mlp", spec_key(spec.replace(scheme="asymmetric")))
    channels = 128 + 64 + 10
    assert sym["overhead_bytes"] == 4 * channels
    assert asym["overhead_bytes"] == 5 * channels


def test_the_speed_section_measures_on_a_click_and_says_what_is_real():
    at = open_page("size_speed", model="digits-cnn")
    no_failures(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Real integer kernels" in text and "Simulated (fake quant)" in text
    assert "`conv1` (Conv2d)" in text, "layers without an int8 kernel are named"
    at.button(key="measure").click().run()
    no_failures(at)
    latency = [s for s in chart_specs(at) if "time per call" in s["layout"]["title"]["text"]]
    assert len(latency) == 2, "the model and the 1024×1024 reference"
    labels = latency[0]["data"][0]["y"]
    assert labels == ["float32 (real)", "int8 dynamic (real int8 kernels)", "fake quant int8 (simulated)"]
    assert "measured on this server at" in texts(at, "caption")
    assert " thread" in texts(at, "caption"), "the thread count is stated"
    assert {"float32, median", "int8 dynamic, median", "Speed-up"} <= {m.label for m in at.metric}


def test_a_second_click_within_a_minute_reuses_the_measurement():
    at = open_page("size_speed", model="tiny-linear")
    at.button(key="measure").click().run()
    first = jobs.runner().finished(ad.speed_key("tiny-linear"))
    at.button(key="measure").click().run()
    assert jobs.runner().finished(ad.speed_key("tiny-linear")) is first


# --- pure pieces ------------------------------------------------------------------------------------------------


def test_the_sensitivity_page_computes_in_a_worker_process_and_shows_the_result(worker_processes):
    at = open_page("sensitivity", model="digits-mlp", bits="3")
    no_failures(at)
    assert "most fragile on top" in chart_specs(at)[0]["layout"]["title"]["text"]
    spec = sidebar_spec(at)
    assert worker_processes.finished(ad.sensitivity_key("digits-mlp", spec, "only")) is not None
    assert worker_processes.restarts == 0


def test_short_names_are_unique_and_readable():
    names = [
        "bert.embeddings.word_embeddings",
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.output.dense",
        "bert.encoder.layer.0.intermediate.dense",
        "bert.encoder.layer.0.output.dense",
        "bert.pooler.dense",
    ]
    short = ad.short_names(names)
    assert short == ["emb.word_embeddings", "L0.attn.query", "L0.attn.out.dense", "L0.ffn.in.dense",
                     "L0.out.dense", "pooler.dense"]
    assert ad.short_names(["fc1", "fc2"]) == ["fc1", "fc2"]
    assert ad.short_names(["a.x", "b.x"]) == ["a.x", "b.x"]


def test_model_wide_spec_keeps_a_group_size_that_fits_every_layer():
    spec = QuantSpec(bits=4, granularity="group", group_size=64)
    assert ad.model_wide_spec("digits-mlp", spec) == (spec, None)
    adapted, note = ad.model_wide_spec("recsys", spec)
    assert adapted.group_size == 32 and "group size 32" in note
    fallback, note = ad.model_wide_spec("digits-cnn", spec)
    assert fallback.granularity == "channel" and "per-channel" in note


def test_figure_builders_are_pure_and_small_for_forty_layers():
    tree = ast.parse((REPO / "ui" / "figures" / "analysis.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    ours = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ui")}
    assert imported <= {"__future__", "collections", "typing", "numpy", "pandas", "plotly", "ui"}, imported
    assert ours <= {"ui.figures.explorer", "ui.i18n"}, "only the sibling pure figure module and the translations"

    n = 40
    names = [f"bert.encoder.layer.{i // 6}.attention.self.query_{i}" for i in range(n)]
    short = ad.short_names(names)
    rng = np.random.default_rng(0)
    figs = [
        af.layer_bars(short, names, rng.random(n), rng.random(n) * 40, "drop", "SQNR", "t", current=names[3]),
        af.sensitivity_heatmap(short, names, [2, 3, 4, 6, 8], rng.random((n, 5)), rng.random((n, 5)) * 40, "m", 4),
        af.bits_per_layer(short, names, rng.choice([2, 4, 8], n), rng.integers(1, 10**6, n), "t"),
        af.storage_bars(short, names, rng.integers(1, 10**6, n), rng.integers(1, 10**4, n),
                        rng.integers(1, 10**7, n)),
        af.storage_totals(10**7, 10**6, 10**4, 10**3),
        af.latency_bars([{"label": "a", "median_ms": 1.0, "p10_ms": 0.9, "p90_ms": 1.2, "kind": "float"}], "t"),
    ]
    front = pd.DataFrame({"kind": ["mixed", "mixed", "uniform"], "label": ["≤ 2", "≤ 4", "uniform int4"],
                          "size_bytes": [10, 20, 21], "metric": [0.5, 0.9, 0.8], "avg_bits": [2.0, 4.0, 4.0]})
    figs.append(af.pareto_chart(front, "acc", True, 0.95, {"size_bytes": 20, "metric": 0.9, "avg_bits": 4.0}))
    for fig in figs:
        assert isinstance(fig, go.Figure)
        assert len(fig.to_json()) < MAX_CHART_BYTES


def test_sqnr_of_an_unchanged_output_does_not_break_the_chart():
    fig = af.layer_bars(["a", "b"], ["a", "b"], [0.0, 0.1], [float("inf"), 12.0], "drop", "SQNR", "t")
    x = fig.data[1].x
    assert np.isnan(x[0]) and x[1] == pytest.approx(12.0)
