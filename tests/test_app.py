"""The app without a browser: every page for every sample model through Streamlit's AppTest, URL state, link
checking, chart sizes, friendly errors, and the shared models staying untouched. Plus the pure helpers.

AppTest runs the script in this process, so the sample models it loads are the very objects
``sample_models.load`` caches here: hashing their state dicts before and after proves no page mutated them.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from model_hash import state_hash
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec
from quantlib.model import LayerInfo
from ui.compute.reductions import spec_from_key, spec_key
from ui.controls import Controls, default_group_size, group_sizes, layer_token
from ui.figures import explorer as figures
from ui.links import link_params, link_problems, same_value, share_url

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PAGES = {
    "tensor_explorer": "app_pages/tensor_explorer.py",
    "error_curves": "app_pages/error_curves.py",
    "output_drift": "app_pages/output_drift.py",
}
MODELS = sample_models.names()
MAX_CHART_BYTES = 30_000
TIMEOUT = 300  # seconds for one script run: MiniLM's first whole-model run on a busy 2-core machine


def new_app(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    return at


def chart_specs(at: AppTest) -> list[str]:
    """The JSON of every plotly chart message on the page, in page order."""
    return [el.proto.spec for el in at.get("plotly_chart")]


@functools.cache
def run_page(model: str, page: str) -> dict:
    """Open ``page`` for ``model`` (first run on the default page, as a browser landing there would), once."""
    at = new_app(model=model)
    at.run()
    at.switch_page(PAGES[page]).run()
    return {
        "exceptions": [e.value for e in at.exception],
        "errors": [e.value for e in at.error],
        "titles": [t.value for t in at.title],
        "charts": chart_specs(at),
        "latex": len(at.latex),
        "buttons": [b.label for b in at.button],
    }


# --- every page, every model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", MODELS)
def test_every_page_runs_for_every_sample_model_without_error(baseline_hashes, model, page):
    result = run_page(model, page)
    assert result["exceptions"] == []
    assert result["errors"] == []
    assert len(result["titles"]) == 1, "each page opens with its title"
    assert result["latex"] >= 1, "each page shows its formula"
    assert result["charts"], "each page draws at least one chart"


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", MODELS)
def test_every_chart_message_stays_under_30_kB(baseline_hashes, model, page):
    sizes = [len(spec.encode()) for spec in run_page(model, page)["charts"]]
    assert max(sizes) <= MAX_CHART_BYTES, sizes


@pytest.mark.slow
def test_cached_sample_models_are_unchanged_after_every_page_ran(baseline_hashes):
    for model in MODELS:
        for page in PAGES:
            run_page(model, page)
    after = {name: state_hash(sample_models.load(name).model) for name in MODELS}
    assert after == baseline_hashes


def test_largest_tensors_still_ship_small_charts():
    """MiniLM's widest feed-forward layer (1536×384) and recsys's item table, per-channel and per-group."""
    for params in (
        {"model": "minilm", "layer": "bert.encoder.layer.0.intermediate.dense", "granularity": "channel"},
        {"model": "minilm", "layer": "bert.encoder.layer.0.output.dense", "granularity": "group", "bits": "3"},
        {"model": "recsys", "layer": "item_emb", "granularity": "group", "group_size": "4", "bits": "4"},
    ):
        at = new_app(**params)
        at.run()
        assert not at.exception
        sizes = [len(s.encode()) for s in chart_specs(at)]
        assert sizes and max(sizes) <= MAX_CHART_BYTES, (params, sizes)


# --- URL state --------------------------------------------------------------------------------------------


def test_moving_the_bit_slider_changes_the_histogram():
    at = new_app(model="digits-mlp")
    at.run()
    before = chart_specs(at)[0]
    at.slider(key="bits").set_value(3).run()
    after = chart_specs(at)[0]
    assert before != after
    assert json.loads(before)["data"][1] != json.loads(after)["data"][1], "the dequantized counts moved"
    assert not at.exception
    # The address bar follows the slider in the browser (the frontend writes bound widgets to the URL):
    # tests/test_browser.py checks that part.


def test_query_parameters_set_the_initial_controls():
    params = {
        "model": "digits-cnn",
        "layer": "conv2",
        "bits": "5",
        "scheme": "asymmetric",
        "granularity": "group",
        "group_size": "48",
        "calibration": "percentile",
        "percentile": "99.9",
        "rounding": "stochastic",
        "format": "pow2",
        "target": "both",
    }
    at = new_app(**params)
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "digits-cnn"
    assert at.selectbox(key="layer").value == "conv2"
    assert at.slider(key="bits").value == 5
    assert at.radio(key="scheme").value == "asymmetric"
    assert at.radio(key="granularity").value == "group"
    assert at.selectbox(key="group_size").value == 48
    assert at.selectbox(key="calibration").value == "percentile"
    assert at.number_input(key="percentile").value == pytest.approx(99.9)
    assert at.radio(key="rounding").value == "stochastic"
    assert at.selectbox(key="format").value == "pow2"
    assert at.radio(key="target").value == "both"
    assert not at.warning, "a valid link raises no notice"
    assert "asym per-group(48)" in " ".join(c.value for c in at.caption)
    assert len(chart_specs(at)) == 6, "weights and activations: three charts each"


@pytest.mark.parametrize("page", list(PAGES))
def test_a_link_to_any_page_reproduces_its_settings(page):
    at = new_app(model="digits-mlp", layer="fc2", bits="3", granularity="channel")
    at.run()
    at.switch_page(PAGES[page]).run()
    assert not at.exception
    assert (at.selectbox(key="layer").value, at.slider(key="bits").value) == ("fc2", 3)
    assert at.radio(key="granularity").value == "channel"


def test_settings_carry_over_when_switching_pages():
    at = new_app(model="tiny-linear")
    at.run()
    at.slider(key="bits").set_value(4).run()
    at.radio(key="scheme").set_value("asymmetric").run()
    at.switch_page(PAGES["error_curves"]).run()
    assert (at.slider(key="bits").value, at.radio(key="scheme").value) == (4, "asymmetric")
    assert "bits=4" in " ".join(c.value for c in at.code), "the share link of the new page keeps them"
    assert not at.exception


def test_a_bad_link_value_falls_back_to_the_default_with_a_visible_notice():
    at = new_app(bits="99", layer="no_such_layer", scheme="diagonal", percentile="12", foo="1")
    at.run()
    assert not at.exception
    assert at.slider(key="bits").value == 8
    assert at.selectbox(key="layer").value == "fc1"
    assert at.radio(key="scheme").value == "symmetric"
    notice = " ".join(w.value for w in at.warning)
    for fragment in ("bits=99", "layer=no_such_layer", "scheme=diagonal", "percentile=12", "foo=1"):
        assert fragment in notice
    assert chart_specs(at), "the page still renders with the defaults"


def test_the_notice_can_be_dismissed():
    at = new_app(bits="abc")
    at.run()
    assert at.warning
    at.button(key="_qe_dismiss_notice").click().run()
    assert not at.warning


def test_combinations_the_library_rejects_are_adapted_and_reported():
    at = new_app(format="nf4", scheme="asymmetric", rounding="stochastic", bits="3")
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="scheme").value == "symmetric"
    assert at.radio(key="rounding").value == "nearest"
    assert at.slider(key="bits").disabled, "nf4 switches the bit slider off"
    notice = " ".join(w.value for w in at.warning)
    assert "scheme=asymmetric" in notice and "rounding=stochastic" in notice
    assert "bits=3" not in notice, "a bit width under a fixed-width format is kept, not an error"


def test_a_group_size_that_does_not_divide_the_layer_is_reported():
    at = new_app(model="tiny-linear", granularity="group", group_size="64")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="group_size").value in (2, 5, 10)
    assert "group_size=64" in " ".join(w.value for w in at.warning)


def test_the_share_link_spells_out_the_current_view():
    at = new_app(model="digits-mlp", bits="6")
    at.run()
    at.radio(key="granularity").set_value("channel").run()
    link = " ".join(c.value for c in at.code if "model=" in c.value)
    assert "bits=6" in link and "granularity=channel" in link and "model=digits-mlp" in link


def test_the_log_scale_toggle_is_bound_to_the_url_and_changes_the_chart():
    at = new_app(log="true")
    at.run()
    assert at.toggle(key="log").value is True
    assert json.loads(chart_specs(at)[0])["layout"]["yaxis"]["type"] == "log"


def test_embedding_tables_explain_they_have_no_float_activations():
    at = new_app(model="recsys", layer="item_emb", target="activations")
    at.run()
    assert not at.exception and not at.error
    assert "integer ids" in " ".join(i.value for i in at.info)


def test_a_failure_inside_a_page_becomes_a_plain_error_message(monkeypatch):
    import ui.compute.explorer

    def broken(*args, **kwargs):
        raise ValueError("group size 7 does not divide the last dimension")

    monkeypatch.setattr(ui.compute.explorer, "tensor_view", broken)
    at = new_app()
    at.run()
    assert not at.exception
    assert "group size 7 does not divide" in " ".join(e.value for e in at.error)


def test_an_unexpected_failure_is_shown_without_a_traceback(monkeypatch):
    import ui.compute.explorer

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ui.compute.explorer, "curve", broken)
    at = new_app()
    at.run()
    at.switch_page(PAGES["error_curves"]).run()
    assert not at.exception
    assert "RuntimeError: boom" in " ".join(e.value for e in at.error)


# --- pure helpers -------------------------------------------------------------------------------------------


def _controls(**changes) -> Controls:
    base = {
        "model": "digits-mlp", "layer": "fc1", "bits": 8, "scheme": "symmetric", "granularity": "tensor",
        "group_size": 64, "calibration": "minmax", "percentile": 99.99, "rounding": "nearest", "format": "int",
        "target": "weights",
    }
    return Controls(**{**base, **changes})


def test_link_problems_lists_only_values_that_were_not_used_verbatim():
    controls = _controls(bits=4)
    info = LayerInfo("fc1", "Linear", (128, 64), 8192, 0)
    raw = {"bits": "4", "model": "digits-mlp", "layer": "fc9", "percentile": "99.99", "embed": "true"}
    resolved = {"bits": 4, "model": "digits-mlp", "layer": "fc1", "percentile": 99.99}
    problems = link_problems(raw, resolved, controls, info, ["digits-mlp"])
    assert len(problems) == 1 and problems[0].startswith("`layer=fc9`")


def test_same_value_parses_link_strings_strictly():
    assert same_value("4", 4) and not same_value("4.5", 4) and not same_value("four", 4)
    assert same_value("99.9", 99.9) and not same_value("x", 99.9)
    assert same_value("true", True) and not same_value("yes", True)
    assert same_value("channel", "channel") and not same_value("Channel", "channel")


def test_group_sizes_divide_the_rows_quantlib_groups():
    assert group_sizes(LayerInfo("fc", "Linear", (1, 10), 10, 0)) == [2, 5, 10]
    conv = LayerInfo("conv2", "Conv2d", (32, 16, 3, 3), 4608, 0)
    assert all(144 % g == 0 for g in group_sizes(conv)) and 48 in group_sizes(conv)
    assert default_group_size([2, 5, 10]) == 10
    assert default_group_size([16, 32, 64, 128]) == 64


def test_share_links_round_trip_and_omit_unused_settings():
    controls = _controls(bits=4, granularity="channel", layer="")
    params = link_params(controls, {"log": "true"})
    assert params["layer"] == layer_token("") == "root"
    assert "group_size" not in params and "percentile" not in params
    url = share_url("http://127.0.0.1:8501/error-curves", params)
    assert url.startswith("http://127.0.0.1:8501/error-curves?model=digits-mlp&layer=root")
    assert url.endswith("&log=true")
    assert "bits" not in link_params(_controls(format="nf4"))
    assert share_url("http://10.0.0.5:8501", {"bits": "4"}) == "http://10.0.0.5:8501/?bits=4"


def test_spec_keys_round_trip():
    spec = QuantSpec(bits=3, scheme="asymmetric", granularity="group", group_size=16, calibration="percentile")
    assert spec_from_key(spec_key(spec)) == spec
    assert isinstance(spec_key(spec), str)


def test_figure_builders_are_pure_and_ship_no_raw_values():
    tree = ast.parse((REPO / "ui" / "figures" / "explorer.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    ours = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ui")}
    assert imported <= {"__future__", "collections", "typing", "numpy", "pandas", "plotly", "ui"}, imported
    assert ours <= {"ui.i18n"}, "only the translations"

    edges = np.linspace(-1, 1, 121)
    counts = np.arange(120)
    grid = np.linspace(-1, 1, 256)
    fig = figures.value_histogram(edges, counts, counts[::-1], grid, (-0.9, 0.9), log_y=True)
    assert isinstance(fig, go.Figure)
    assert len(fig.to_json()) < MAX_CHART_BYTES
    df = pd.DataFrame({"bits": range(2, 17), "mse": np.logspace(-1, -9, 15), "sqnr_db": np.arange(15) * 6.0})
    curves = figures.error_curves_figure({"a": df, "b": df * 1.1}, "a", 4)
    assert {t.name for t in curves.data} >= {"a (current)", "current setting"}


@pytest.mark.parametrize("page", ["tensor_explorer", "error_curves"])
def test_activations_of_an_embedding_table_get_a_plain_note_not_an_error(page):
    at = new_app(model="recsys", layer="user_emb", target="activations")
    at.run()
    at.switch_page(PAGES[page]).run()
    assert not at.exception and not at.error
    notes = [i.value for i in at.info]
    assert any("`user_emb` is an embedding table" in n and "no float activations" in n for n in notes), notes
