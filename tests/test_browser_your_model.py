"""The "Your model" page in a real browser: a file goes through the page's actual ``<input type=file>`` into a
spawned ``streamlit run app.py``, and the page lists its tensors and draws its charts.

Without Chromium or playwright these tests are skipped on a developer machine, but FAIL under CI=true (as in
tests/test_browser.py). The screenshot goes to ``test-artifacts/your-model-1280.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from browser_support import (
    JS_CHART_SIGNATURE,
    REPO,
    selectbox_text,
    sidebar,
    wait_charts,
    wait_idle,
)
from safetensors.torch import save_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"
TENSORS = {
    "decoder.proj.weight": (24, 64),
    "decoder.proj.bias": (24,),
    "embed.table": (50, 16),
}


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    """A small .safetensors file, written the way the page tells notebook users to."""
    g = torch.Generator().manual_seed(3)
    path = tmp_path / "my-model.safetensors"
    save_file({name: torch.randn(*shape, generator=g) for name, shape in TENSORS.items()}, str(path))
    return path


def open_page(page, server) -> None:
    page.goto(f"{server.url}/your-model?bits=4")
    page.get_by_role("heading", name="Your model").first.wait_for()
    wait_idle(page)


def tensor_table_text(page) -> str:
    """The text of the page's tensor table: the data grid draws on a canvas and keeps an accessible table."""
    return page.locator('[data-testid="stDataFrame"]').first.locator("table").inner_text()


def tensor_options(page) -> list[str]:
    """The names the Tensor picker offers (open the drop-down, read its options, close it)."""
    picker = page.get_by_role("combobox", name="Tensor")
    for _ in range(3):  # right after a rerun the first click may only focus the input
        picker.click()
        if picker.get_attribute("aria-expanded") == "true":
            break
        page.wait_for_timeout(300)
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


def test_a_safetensors_file_uploaded_through_the_file_input_shows_its_tensors_and_charts(server, page, model_file):
    open_page(page, server)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
    page.set_input_files("input[type=file]", str(model_file))
    wait_charts(page, 3)
    assert page.get_by_role("heading", name="my-model.safetensors").is_visible()
    listed = tensor_table_text(page)
    options = tensor_options(page)
    for name, shape in TENSORS.items():
        assert name in listed and "×".join(map(str, shape)) in listed, (name, listed)
        assert any(o.startswith(name) for o in options), (name, options)
    assert page.evaluate(JS_CHART_SIGNATURE, 0), "the value histogram has data"
    assert "decoder.proj.weight" in page.get_by_role("combobox", name="Tensor").input_value()
    assert page.get_by_text("Not available for an uploaded file").is_visible()
    assert "Traceback" not in page.content()
    assert not page.context.blocked, f"requests left the machine: {page.context.blocked}"

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 3400})  # the whole page: upload, table, charts, sizes
    page.evaluate("() => { document.activeElement?.blur(); document.querySelector('[data-testid=\"stMain\"]')"
                  "?.scrollTo(0, 0); window.scrollTo(0, 0); }")
    page.mouse.move(0, 0)
    page.wait_for_timeout(800)  # let plotly re-lay out at the new size
    page.screenshot(path=str(ARTIFACTS / "your-model-1280.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_bad_file_shows_a_plain_message_and_a_good_one_then_works(server, page, model_file, tmp_path):
    open_page(page, server)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    page.set_input_files("input[type=file]", str(bad))
    page.get_by_text("could not be used").wait_for()
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert any("notes.txt" in t and "not a model file" in t for t in alerts), alerts
    assert "Quantization settings" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Traceback" not in page.content()

    page.set_input_files("input[type=file]", str(model_file))
    wait_charts(page, 3)
    assert not page.get_by_text("could not be used").count()


def test_the_uploaded_file_opens_in_the_tensor_explorer_and_error_curves(server, page, model_file):
    open_page(page, server)
    page.set_input_files("input[type=file]", str(model_file))
    wait_charts(page, 3)
    page.get_by_role("button", name=re.compile("Make this file the sidebar's model")).click()
    page.get_by_role("link", name="🔬 Tensor explorer of this file").click()
    page.get_by_role("heading", name="Tensor explorer").first.wait_for()
    wait_charts(page, 3)
    assert selectbox_text(page, "Model") == "your-file"
    assert selectbox_text(page, "Layer") == "decoder.proj.weight"
    assert page.get_by_text("Weights of decoder.proj.weight").count() == 1
    assert page.evaluate(JS_CHART_SIGNATURE, 0), "the value histogram has data"
    assert re.search(r"[?&]model=your-file(&|$)", page.url), page.url
    sidebar(page).get_by_role("link", name="Error curves").click()
    page.get_by_role("heading", name="Error curves").first.wait_for()
    wait_charts(page, 2)
    sidebar(page).get_by_role("link", name="Output drift").click()
    page.get_by_text("needs a model that runs").wait_for()
    assert "Traceback" not in page.content()
