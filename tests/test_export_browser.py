"""The download buttons in headless Chromium against ``streamlit run app.py``: a click builds the file on the
server (Streamlit's deferred download: the page does not rerun) and the browser receives a compressed-tensors
file that compressed-tensors decompresses to quantlib's weights, and the recipe that rebuilds the same model.

Marked ``browser`` (skipped without Chromium on a developer machine, failing under CI=true: tests/conftest.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from browser_support import wait_charts
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config

import sample_models
from quantlib import QuantSpec, recipe
from quantlib.export import read
from quantlib.model import quantize_weights

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def download(page, label: str) -> bytes:
    button = page.get_by_role("button", name=label).first
    button.scroll_into_view_if_needed()
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes(), info.value.suggested_filename


def test_the_explorers_download_is_the_model_at_the_sidebars_setting(server, page):
    page.goto(f"{server.url}/?model=digits-mlp&bits=4&granularity=group&group_size=32")
    wait_charts(page, 3, timeout_ms=180_000)
    blob, name = download(page, "Quantized weights (.safetensors)")
    assert name == "digits-mlp-int4-sym-per-group-32.safetensors"
    tensors, meta = read(blob)
    config = QuantizationConfig.model_validate(meta["quantization_config"])
    sm = sample_models.load("digits-mlp")
    fresh = copy.deepcopy(sm.model)
    apply_quantization_config(fresh, config, show_progress=False)
    compressor = ModelCompressor(quantization_config=config)
    compressor.compress_model(fresh)
    fresh.load_state_dict(tensors, strict=True)
    compressor.decompress_model(fresh)
    expected = quantize_weights(sm.model, QuantSpec(bits=4, granularity="group", group_size=32))
    for layer in ("fc1", "fc2", "fc3"):
        assert torch.equal(fresh.get_submodule(layer).weight, expected.get_submodule(layer).weight)
    text, recipe_name = download(page, "Recipe (.json)")
    assert recipe_name == "digits-mlp-int4-sym-per-group-32.recipe.json"
    rebuilt = recipe.apply(sm.model, text.decode())
    assert torch.equal(sm.run(rebuilt), sm.run(expected))
    assert json.loads(text)["model"] == "digits-mlp"
    assert not page.locator('[data-testid="stException"]').count()
