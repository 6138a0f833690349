"""The download buttons through AppTest: Tensor explorer (the sidebar's setting), Layer sensitivity (the
mixed-precision mix) and Your model (the session's file). The safetensors button hands Streamlit a callable that
builds the file on click: these tests capture it, call it, and decompress the result with compressed-tensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
import torch
from compressed_tensors_support import decompress_with_compressed_tensors
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib import QuantSpec, budget, recipe
from quantlib.export import read
from quantlib.model import quantize_weights
from ui.compute import export as export_data
from ui.views import export as export_views

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 600


@pytest.fixture
def downloads(monkeypatch):
    """Every ``st.download_button`` call of the scripts AppTest runs here: ``{key: kwargs}`` (data included)."""
    calls: dict[str, dict] = {}
    real = st.download_button

    def spy(label, data, *args, **kwargs):
        calls[kwargs.get("key")] = {"label": label, "data": data, **kwargs}
        return real(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    return calls


def open_app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def no_failures(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_tensor_explorer_offers_the_model_at_the_sidebar_setting_built_on_click(downloads):
    at = open_app(model="digits-mlp", bits="3", granularity="channel")
    no_failures(at)
    button = downloads["export-explorer-safetensors"]
    assert callable(button["data"]), "the file is built when clicked, not on every run"
    assert button["on_click"] == "ignore" and button["file_name"] == "digits-mlp-int3-sym-per-channel.safetensors"
    assert "3 tensors quantized" in captions(at) and "compressed-tensors" in captions(at)
    blob = button["data"]()
    sm = sample_models.load("digits-mlp")
    spec = QuantSpec(bits=3, granularity="channel")
    expected = quantize_weights(sm.model, spec)
    got = decompress_with_compressed_tensors(sm.model, blob)
    for name in ("fc1", "fc2", "fc3"):
        assert torch.equal(got.get_submodule(name).weight, expected.get_submodule(name).weight)
    text = downloads["export-explorer-recipe"]["data"]
    assert torch.equal(sm.run(recipe.apply(sm.model, text)), sm.run(expected)), "the recipe rebuilds the same model"
    assert read(blob)[1]["quantlib_recipe"]["model"] == "digits-mlp"


def test_conv_layers_of_the_cnn_are_named_as_kept_in_float(downloads):
    at = open_app(model="digits-cnn", bits="4")
    no_failures(at)
    assert "Kept as they are: `conv1`, `conv2`" in captions(at)
    assert "Linear and Embedding weights only" in captions(at)


def test_a_setting_compressed_tensors_cannot_hold_still_offers_the_recipe(downloads):
    at = open_app(model="tiny-linear", format="nf4")
    no_failures(at)
    assert downloads["export-explorer-safetensors"]["disabled"] is True
    assert "no NF4 layout" in captions(at)
    parsed = recipe.from_json(downloads["export-explorer-recipe"]["data"])
    assert parsed.layers["linear"].format == "nf4"


def test_the_mixed_precision_mix_downloads_as_the_model_the_page_measured(downloads):
    at = open_app("app_pages/sensitivity.py", model="digits-mlp", bits="4", sens_view="All bit widths", avg_bits="4")
    no_failures(at)
    text = downloads["export-mixed-recipe"]["data"]
    plan = recipe.from_json(text).layers
    assert set(plan) == {"fc1", "fc2", "fc3"}
    sm = sample_models.load("digits-mlp")
    bits = sum(sm.model.get_submodule(n).weight.numel() * s.bits for n, s in plan.items()) / sum(
        sm.model.get_submodule(n).weight.numel() for n in plan
    )
    assert bits <= 4.0
    measured = next(m.value for m in at.metric if m.label == "accuracy (measured)")
    assert f"{sm.evaluate(recipe.apply(sm.model, text))['accuracy']:.4g}" == measured
    blob = downloads["export-mixed-safetensors"]["data"]()
    got = decompress_with_compressed_tensors(sm.model, blob)
    expected = quantize_weights(sm.model, plan)
    for name in plan:
        assert torch.equal(got.get_submodule(name).weight, expected.get_submodule(name).weight)
    assert downloads["export-mixed-safetensors"]["file_name"] == "digits-mlp-mixed-4bits.safetensors"


def test_an_uploaded_file_exports_from_the_session_and_keeps_what_it_cannot_quantize(downloads):
    g = torch.Generator().manual_seed(0)
    bad = torch.randn(8, 16, generator=g)
    bad[0, 0] = float("nan")
    state = {
        "enc.weight": torch.randn(32, 64, generator=g),
        "enc.bias": torch.randn(32, generator=g),
        "conv.weight": torch.randn(4, 2, 3, 3, generator=g),
        "bad.weight": bad,
    }
    at = open_app("app_pages/your_model.py", bits="4", granularity="group", group_size="32")
    at.file_uploader[0].set_value(("mine.safetensors", save(state), "application/octet-stream")).run()
    assert not at.exception
    button = downloads["export-upload-safetensors"]
    assert callable(button["data"]) and button["file_name"].startswith("mine-int4")
    page = captions(at)
    assert "1 tensor quantized" in page and "`bad.weight`" in page and "`conv.weight`" in page
    tensors, meta = read(button["data"]())
    assert {"enc.weight_packed", "enc.weight_scale", "enc.weight_shape"} <= set(tensors)
    assert torch.equal(tensors["enc.bias"], state["enc.bias"]) and torch.equal(tensors["conv.weight"], state["conv.weight"])
    assert torch.equal(tensors["bad.weight"].nan_to_num(), bad.nan_to_num()), "kept as it is, NaN included"
    assert meta["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] == 32
    assert json.loads(downloads["export-upload-recipe"]["data"])["layers"]["enc"]["bits"] == 4


def test_upload_exports_never_go_through_a_shared_cache():
    for fn in (export_data.upload_plan, export_data.check_upload, export_data.upload_file):
        assert not hasattr(fn, "clear"), f"{fn.__name__} must not be st.cache_data / st.cache_resource"
    assert hasattr(export_data.sample_file, "clear"), "sample models' files are shared"


def test_an_export_too_big_for_the_server_is_refused_before_it_runs():
    spec = QuantSpec(bits=8, granularity="group", group_size=2, calibration="entropy")
    plan = export_data.mixed_plan(spec, {"bert.embeddings.word_embeddings": 8})
    with pytest.raises(budget.BudgetExceeded, match="too big for this shared server"):
        export_data.check("minilm", plan)


def test_file_names_are_safe():
    assert export_views.slug("int4 sym per-group(64)") == "int4-sym-per-group-64"
    assert export_views.slug("../../etc/passwd") == "..-..-etc-passwd"
    assert export_views.slug("///") == "export"


# --- the walkthrough's "Bits on the wire" -------------------------------------------------------------------------


def open_walkthrough(**params: str) -> AppTest:
    return open_app("app_pages/walkthrough.py", **params)


def test_bits_on_the_wire_packs_the_layers_first_codes_and_unpacks_them_unchanged():
    at = open_walkthrough(model="digits-mlp", layer="fc2", bits="3", scheme="asymmetric", granularity="group",
                          group_size="16")
    no_failures(at)
    assert any(h.value == "4 · Bits on the wire" for h in at.header)
    sm = sample_models.load("digits-mlp")
    spec = QuantSpec(bits=3, scheme="asymmetric", granularity="group", group_size=16)
    from quantlib import pack, quantize

    codes = quantize(sm.model.fc2.weight.detach(), spec).q.reshape(-1)[:16]
    expected = pack.pack_bits(codes, 3)  # asymmetric codes are already 0..7
    packed = next(df.value for df in at.dataframe if "bits 7 … 0" in df.value.columns)
    assert packed["hex"].tolist() == [f"0x{b:02X}" for b in expected.tolist()]
    assert len(packed) == 6, "16 codes x 3 bits = 48 bits = 6 bytes"
    assert any("the same codes ✅" in m.value for m in at.markdown)
    metrics = {m.label: m.value for m in at.metric}
    # fc2 is 64x128: 8,192 codes of 3 bits = 3,072 bytes; 512 groups with a 4-byte scale and a 1-byte zero point.
    assert metrics["Codes"] == "3.07 kB" and metrics["Scales"] == "2.05 kB" and metrics["Zero points"] == "512 B"
    assert metrics["Bits per weight, all in"] == "5.5"


def test_bits_on_the_wire_shows_symmetric_codes_offset_and_compressed_tensors_words():
    at = open_walkthrough(model="tiny-linear", bits="4")
    no_failures(at)
    table = next(df.value for df in at.dataframe if "stored" in df.value.columns)
    assert (table["stored"] == table["code"] + 8).all(), "signed int4 codes are stored as 0..15"
    assert any("int32 words" in c.value and "8 codes per word" in c.value for c in at.caption)


@pytest.mark.parametrize("params", [{"format": "nf4"}, {"format": "fp8_e4m3"}, {"bits": "12"}])
def test_bits_on_the_wire_covers_every_format_without_errors(params):
    at = open_walkthrough(model="tiny-linear", **params)
    no_failures(at)
    assert any(h.value == "4 · Bits on the wire" for h in at.header)
    if params.get("bits") == "12":
        assert any("16-bit integers" in i.value for i in at.info)


def test_an_export_over_the_budget_still_offers_the_recipe(downloads):
    at = open_app(model="minilm", calibration="entropy", granularity="group", group_size="64")
    assert not at.exception
    assert downloads["export-explorer-safetensors"]["disabled"] is True
    assert "not available for this setting" in captions(at) and "too big for this shared server" in captions(at)
    assert recipe.from_json(downloads["export-explorer-recipe"]["data"]).layers["bert.pooler.dense"].calibration == (
        "entropy"
    )
