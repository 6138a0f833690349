"""The "Layer sensitivity" and "Size & speed" pages in headless Chromium against ``streamlit run app.py``.

A shared link (URL with query parameters) opens each page with its settings applied and its charts drawn; a
click on a sensitivity bar makes that layer the sidebar's layer (and the URL follows); the speed measurement
runs on a click and says which figures are real integer kernels and which are simulated; nothing is fetched
from outside the machine. Screenshots at 1280 px and 420 px go to ``test-artifacts/``.

Without Chromium or playwright these tests are skipped on a developer machine, but FAIL under CI=true (the
module is marked ``browser``: see ``_require_browser`` in ``tests/conftest.py``; the server and browser fixtures
come from there too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import (
    JS_CHART_COUNT,
    REPO,
    bits_slider,
    heading,
    selectbox_text,
    sidebar,
    wait_charts,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"

#: Centre of the bar of ``token`` in trace ``trace`` of chart ``n`` (bars are SVG paths in data order), or null
#: while plotly has not drawn it yet (its data arrives before its SVG).
JS_BAR_CENTRE = """([n, trace, token]) => {
  const gd = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')[n];
  if (!gd || !gd.data || !gd.data[trace]) return null;
  const i = Array.from(gd.data[trace].customdata).indexOf(token);
  const layer = gd.querySelectorAll('.barlayer .trace')[trace];
  const bar = layer ? layer.querySelectorAll('.point')[i] : null;
  if (!bar) return null;
  const r = bar.getBoundingClientRect();
  return r.width > 0 ? {x: r.x + r.width / 2, y: r.y + r.height / 2, width: r.width} : null;
}"""
#: The chart types drawn on the page, in page order.
JS_CHART_TYPES = """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
  .map(gd => (gd.data && gd.data.length) ? gd.data[0].type : null)"""
#: The chart titles, in page order.
JS_CHART_TITLES = """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
  .map(gd => (gd.layout && gd.layout.title) ? gd.layout.title.text : '')"""



def link_notices(page) -> int:
    return page.locator('[data-testid="stAlert"]').filter(has_text="could not be used").count()


def screenshots(page, name: str) -> None:
    """The page at 1280 px and at a phone's 420 px (the viewport as a participant sees it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # let plotly finish its transition
    wide = ARTIFACTS / f"{name}-1280.png"
    page.screenshot(path=str(wide))
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(800)
    narrow = ARTIFACTS / f"{name}-420.png"
    page.screenshot(path=str(narrow))
    page.set_viewport_size({"width": 1280, "height": 800})
    for path in (wide, narrow):
        assert Path(path).stat().st_size > 10_000


def test_a_shared_link_opens_the_sensitivity_page_with_its_settings_and_charts(server, page):
    page.goto(
        f"{server.url}/sensitivity?model=digits-mlp&layer=fc2&bits=4&granularity=channel"
        "&sens_view=All+bit+widths&avg_bits=4.5"
    )
    wait_charts(page, 3)
    assert "Layer sensitivity" in heading(page)
    assert selectbox_text(page, "Model") == "digits-mlp"
    assert selectbox_text(page, "Layer") == "fc2"
    assert bits_slider(page).get_attribute("aria-valuetext") == "4"
    assert sidebar(page).get_by_role("radio", name="channel").is_checked()
    assert page.get_by_role("radio", name="All bit widths").is_checked()
    budget = page.get_by_role("slider", name="Budget: average bits per weight")
    assert budget.input_value() == "4.5"
    types = page.evaluate(JS_CHART_TYPES)
    titles = page.evaluate(JS_CHART_TITLES)
    assert "heatmap" in types, types
    assert any("Bits per layer for ≤ 4.5" in t for t in titles), titles
    assert any("Size vs task metric" in t for t in titles), titles
    assert link_notices(page) == 0, "every value of the link was used"
    for fragment in ("bits=4", "granularity=channel", "layer=fc2", "avg_bits=4.5", "sens_view=All"):
        assert fragment in page.url, page.url
    assert "Traceback" not in page.content()
    screenshots(page, "sensitivity")


def test_clicking_a_bar_makes_that_layer_the_sidebar_layer(server, page):
    page.goto(f"{server.url}/sensitivity?model=digits-mlp&bits=4&layer=fc3")
    wait_charts(page, 1)
    # The SQNR panel (trace 1): a layer whose drop is 0 has a zero-width drop bar but always an SQNR bar.
    centre = page.wait_for_function(JS_BAR_CENTRE, arg=[0, 1, "fc2"]).json_value()
    assert centre["width"] > 5
    page.mouse.click(centre["x"], centre["y"])
    page.wait_for_url(re.compile(r"layer=fc2"))
    wait_idle(page)
    assert selectbox_text(page, "Layer") == "fc2"
    page.wait_for_function(f"() => ({JS_CHART_COUNT})() >= 1")
    ticks = page.evaluate(
        """() => document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')[0]
                   .layout.yaxis.ticktext"""
    )
    assert "<b>fc2</b>" in ticks, "the chart marks the new sidebar layer"
    # and the layer carries over to the other pages
    sidebar(page).get_by_role("link", name="Tensor explorer").click()
    page.wait_for_function("() => document.querySelector('h1') && document.querySelector('h1').innerText.includes('Tensor')")
    wait_charts(page, 1)
    assert selectbox_text(page, "Layer") == "fc2" and "layer=fc2" in page.url


def test_a_shared_link_opens_the_size_page_and_speed_is_measured_on_a_click(server, page):
    page.goto(f"{server.url}/size-speed?model=digits-cnn&layer=conv2&bits=4&granularity=group&group_size=48")
    wait_charts(page, 2)
    assert "Size & speed" in heading(page)
    assert selectbox_text(page, "Model") == "digits-cnn"
    assert selectbox_text(page, "Layer") == "conv2"
    assert selectbox_text(page, "Group size") == "48"
    assert bits_slider(page).get_attribute("aria-valuetext") == "4"
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert "Size at int4 sym per-group(48)" in text
    assert "Compression" in text and "Bits per weight, all in" in text
    assert "What the scales cost at 4 bits, symmetric" in text
    tables = page.locator('[data-testid="stDataFrame"]')
    assert tables.count() >= 1 and "one scale per" in tables.first.locator("table").inner_text(), "the overhead table"
    assert "Real integer kernels" in text and "Simulated (fake quant)" in text and "not faster" in text
    assert link_notices(page) == 0
    screenshots(page, "size-speed")
    page.get_by_role("button", name=re.compile("Measure on this server now")).click()
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
                   .filter(gd => gd.layout && gd.layout.title && /time per call/.test(gd.layout.title.text))
                   .length >= 2"""
    )
    # The charts arrive before the captions under them: wait for the caption that dates the measurement.
    main.get_by_text(re.compile("measured on this server at")).first.wait_for()
    wait_idle(page)
    text = main.inner_text()
    assert "Speed-up" in text and "Where int8 kernels shine" in text
    labels = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
                   .find(gd => /time per call/.test(gd.layout.title.text)).data[0].y"""
    )
    assert list(labels) == ["float32 (real)", "int8 dynamic (real int8 kernels)", "fake quant int8 (simulated)"]
    assert "Traceback" not in page.content()
    page.get_by_text("Where int8 kernels shine").scroll_into_view_if_needed()
    screenshots(page, "size-speed-measured")


def test_nothing_is_fetched_from_outside_the_machine(browser):
    assert browser.blocked == [], f"the app tried to reach: {browser.blocked}"
