"""The Algorithms page in a real browser: a shared link opens with its algorithms ticked and charted, and ticking
one more box reruns the comparison and writes the link.

Without Chromium or playwright these tests are skipped on a developer machine, but FAIL under CI=true (as in
tests/test_browser.py). Screenshots at 1280 px and 420 px go to ``test-artifacts/``.
"""

from __future__ import annotations

import re

import pytest
from browser_support import REPO, heading, selectbox_text, wait_charts, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"

#: The traces of the per-layer error chart: one line per method, in legend order.
JS_ERROR_TRACES = """() => {
  const gd = Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
    .find(g => g.data && g.data.length && g.data[0].type === 'scatter' && g.data.some(t => t.name === 'RTN'));
  return gd ? gd.data.map(t => t.name) : null;
}"""



def error_traces(page) -> list[str]:
    page.wait_for_function(JS_ERROR_TRACES)
    return page.evaluate(JS_ERROR_TRACES)


def test_a_shared_link_compares_its_algorithms_and_a_new_tick_joins_the_chart_and_the_link(server, page):
    page.goto(f"{server.url}/algorithms?model=digits-mlp&bits=3&algos=gptq")
    wait_charts(page, 2)
    assert "Algorithms" in heading(page)
    assert selectbox_text(page, "Model") == "digits-mlp"
    assert page.get_by_role("checkbox", name="GPTQ", exact=True).is_checked()
    assert not page.get_by_role("checkbox", name="Bias correction", exact=True).is_checked()
    assert error_traces(page) == ["RTN", "GPTQ"]
    page.get_by_text("Bias correction", exact=True).first.click()  # the checkbox's label
    page.wait_for_url(re.compile(r"algos=gptq(%2C|,)bias"))  # (gptq,awq would be the default: left out)
    page.wait_for_function(f"() => {{ const t = ({JS_ERROR_TRACES})(); return t && t.length === 3; }}")
    wait_idle(page)
    assert error_traces(page)[:2] == ["RTN", "GPTQ"] and "ias" in error_traces(page)[2]
    main_text = page.locator('[data-testid="stMain"]').inner_text()
    assert "Frantar et al. 2022" in main_text and "Nagel et al." in main_text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "algorithms-1280.png"))
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "algorithms-420.png"))
