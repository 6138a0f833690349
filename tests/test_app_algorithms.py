"""The "Algorithms" page without a browser (Streamlit's AppTest): every sample model, the URL-bound algorithm
checkboxes (one ``algos`` parameter) and SmoothQuant's α, jobs running on a click for MiniLM and at once for
the small models, shared results, the activation-outliers section, plain-word errors, untouched shared models.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from model_hash import state_hash
from streamlit.testing.v1 import AppTest

import sample_models
from ui import jobs
from ui.compute import ptq as pd_
from ui.figures import ptq as pf

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PAGE = "app_pages/algorithms.py"
MODELS = sample_models.names()
MAX_CHART_BYTES = 30_000
TIMEOUT = 600


def open_page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(PAGE).run()
    return at


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in getattr(at, kind))


@functools.cache
def run_page(model: str) -> dict:
    at = open_page(model=model)
    return {
        "exceptions": [e.value for e in at.exception],
        "errors": [e.value for e in at.error],
        "titles": [t.value for t in at.title],
        "latex": len(at.latex),
        "charts": [el.proto.spec for el in at.get("plotly_chart")],
        "buttons": [b.label for b in at.button],
        "markdown": texts(at, "markdown"),
        "captions": texts(at, "caption"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_the_page_runs_for_every_sample_model_without_error(baseline_hashes, model):
    result = run_page(model)
    assert result["exceptions"] == [] and result["errors"] == []
    assert result["titles"] == ["🧪 Algorithms"]
    assert result["latex"] >= 3, "the page formula and one per default algorithm"
    assert result["charts"], "at least the activation outliers (or the comparison)"


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_every_chart_message_stays_under_30_kB(baseline_hashes, model):
    assert max(len(s.encode()) for s in run_page(model)["charts"]) <= MAX_CHART_BYTES


@pytest.mark.slow
def test_cached_sample_models_are_unchanged_after_the_page_ran(baseline_hashes):
    for model in MODELS:
        run_page(model)
    assert {n: state_hash(sample_models.load(n).model) for n in MODELS} == baseline_hashes


def test_minilm_offers_buttons_and_starts_no_long_job_by_itself():
    result = run_page("minilm")
    assert "Run GPTQ" in result["buttons"] and "Run AWQ" in result["buttons"]
    assert not [k for k in jobs.runner().finished_items("ptq|minilm|gptq")]
    assert "The input of `bert.encoder.layer.0.attention.self.query`" in result["markdown"]


def test_small_models_compare_the_default_algorithms_at_once():
    result = run_page("digits-mlp")
    titles = [(json.loads(s)["layout"].get("title") or {}).get("text", "") for s in result["charts"]]
    assert titles[0] == "Task metric: accuracy"
    assert titles[1].startswith("Layer reconstruction error")
    bars = json.loads(result["charts"][0])["data"][0]
    assert bars["x"] == ["RTN", "GPTQ", "AWQ"]
    assert "ran in" in result["markdown"]


def test_the_algos_parameter_sets_the_checkboxes_and_bad_tokens_are_reported():
    at = open_page(model="digits-cnn", bits="3", algos="cle_bias,Magic,bias")
    assert not at.exception and not at.error
    assert at.checkbox(key="_algo_cle_bias").value and at.checkbox(key="_algo_bias").value
    assert not at.checkbox(key="_algo_gptq").value
    assert "Not an algorithm of this page, ignored: `magic`" in texts(at, "warning")
    labels = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]
    assert labels == ["RTN", "CLE + bias correction", "Bias correction"], "in the link's order"
    at.run()
    assert at.text_input(key="algos").value == "cle_bias,bias", "the next run keeps only what was used"


def test_ticking_a_checkbox_rewrites_the_one_bound_parameter():
    at = open_page(model="digits-mlp")
    assert at.text_input(key="algos").value == "gptq,awq"
    at.checkbox(key="_algo_bias").check().run()
    assert not at.exception and not at.error
    assert at.text_input(key="algos").value == "gptq,awq,bias"
    at.checkbox(key="_algo_gptq").uncheck().run()
    at.checkbox(key="_algo_awq").uncheck().run()
    assert at.text_input(key="algos").value == "bias"
    assert at.query_params["algos"] in ("bias", ["bias"])
    assert "Bias correction" in texts(at, "markdown")


def test_typing_a_list_ticks_the_boxes():
    at = open_page(model="digits-mlp")
    at.text_input(key="algos").input("bias, cle").run()
    assert not at.exception and not at.error
    assert at.checkbox(key="_algo_bias").value and at.checkbox(key="_algo_cle").value
    assert not at.checkbox(key="_algo_gptq").value


def test_smoothquant_is_compared_with_rtn_on_weights_and_activations():
    at = open_page(model="digits-mlp", algos="smoothquant", sq_alpha="0.75")
    assert not at.exception and not at.error
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert bars["x"] == ["RTN", "RTN W+A", "SmoothQuant"]
    assert at.select_slider(key="sq_alpha").value == 0.75


def test_cle_on_a_model_without_relu_pairs_says_why_in_plain_words():
    at = open_page(model="tiny-linear", algos="cle")
    assert not at.exception
    assert "joined only by ReLU" in texts(at, "error")


def test_adaround_on_minilm_is_not_offered_and_says_why():
    at = open_page(model="minilm", algos="adaround")
    assert not at.exception and not at.error
    assert "meant for small layers" in texts(at, "info")
    assert "Run AdaRound" not in [b.label for b in at.button]


def test_an_embedding_layer_in_the_sidebar_gets_a_pointer_instead_of_outliers():
    at = open_page(model="recsys", layer="user_emb", algos="")
    assert not at.exception and not at.error
    assert "is not a Linear / Conv layer" in texts(at, "caption")


def test_a_failing_job_becomes_a_plain_error_message(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("the Hessian is upside down")

    monkeypatch.setattr(pd_, "compute_run", broken)
    at = open_page(model="tiny-linear", bits="5", algos="awq")
    assert not at.exception
    assert "the Hessian is upside down" in texts(at, "error")


def test_parse_algos_keeps_the_links_order_and_reports_unknown_tokens():
    assert pd_.parse_algos("awq,gptq") == (["awq", "gptq"], [])
    assert pd_.parse_algos(" X , cle ") == (["cle"], ["x"])
    assert pd_.parse_algos(None) == ([], [])


def test_figure_builders_are_pure_and_small_for_minilm_sizes():
    errors = {label: [0.01 * (i + 1)] * 37 for i, label in enumerate(["RTN", "GPTQ", "AWQ", "AdaRound"])}
    fig = pf.layer_errors([f"L{i}" for i in range(37)], errors)
    assert len(fig.to_json()) < MAX_CHART_BYTES
    out = pf.outlier_chart([1.0] * 1536, [0.5] * 1536, 0.5, 0.1, 0.01)
    assert len(out.to_json()) < MAX_CHART_BYTES
    bars = pf.metric_bars(["RTN", "GPTQ"], [0.9, 0.95], 1.0, "spearman")
    assert list(bars.data[0].x) == ["RTN", "GPTQ"]


def test_a_crafted_algos_link_adds_no_markup_and_a_long_one_is_cut():
    at = open_page(model="tiny-linear", algos="[x](http://evil.example)`,**b**,<b>h</b>," + "z" * 10_000)
    assert not at.exception and not at.error
    warning = texts(at, "warning")
    assert "Not an algorithm of this page" in warning
    # every name sits in a code span (markdown shows it as text), each cut to 40 characters
    assert "`` [x](http://evil.example)` ``, `**b**`, `<b>h</b>`, `" + "z" * 40 + "`" in warning
    assert len(warning) < 600
    assert not any(at.checkbox(key=f"_algo_{a.key}").value for a in pd_.ALGORITHMS)


def test_a_bad_smoothquant_strength_falls_back_with_a_notice():
    at = open_page(model="digits-mlp", algos="", sq_alpha="9")
    assert not at.exception and not at.error
    assert at.select_slider(key="sq_alpha").value == pd_.SQ_DEFAULT_ALPHA
