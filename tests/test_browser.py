"""The real thing: ``streamlit run app.py`` driven by headless Chromium through Playwright.

Checks what only a browser shows: a shared link sets the controls and draws the charts, the keyboard moves the
bit slider and the address bar follows, settings survive page switches, the very first request to a fresh server
can be a deep link to any page, bad links show a notice and never a traceback, and nothing is fetched from
outside the machine. Screenshots of every page go to ``test-artifacts/``.

Without Chromium or playwright these tests are skipped on a developer machine, but FAIL under CI=true: a CI run
that silently skipped its browser tests would claim a coverage it does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import (
    JS_CHART_SIGNATURE,
    REPO,
    StreamlitServer,
    bits_slider,
    heading,
    selectbox_text,
    sidebar,
    wait_charts,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"
PAGE_TITLES = {"": "Tensor explorer", "error-curves": "Error curves", "output-drift": "Output drift"}


def chart_signature(page, n: int = 0) -> str | None:
    return page.evaluate(JS_CHART_SIGNATURE, n)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_first_request_to_a_fresh_server_can_be_a_deep_link_to_another_page(browser):
    with StreamlitServer() as fresh:
        p = browser.new_page()
        try:
            p.goto(f"{fresh.url}/output-drift?model=digits-cnn&bits=5&granularity=channel")
            wait_charts(p, 2)
            assert "Output drift" in heading(p)
            assert "Quantization settings" in sidebar(p).inner_text(), "the shared sidebar is there"
            assert selectbox_text(p, "Model") == "digits-cnn"
            assert bits_slider(p).get_attribute("aria-valuetext") == "5"
            assert sidebar(p).get_by_role("radio", name="channel").is_checked()
            assert "/output-drift" in p.url and "bits=5" in p.url
            assert "Traceback" not in p.content()
        finally:
            p.close()


def test_a_link_naming_the_default_page_opens_it_without_a_not_found_dialog(server, page):
    page.goto(f"{server.url}/tensor-explorer?model=digits-cnn&bits=3")
    wait_charts(page, 1)
    assert "Tensor explorer" in heading(page)
    assert "Page not found" not in page.content()
    assert selectbox_text(page, "Model") == "digits-cnn"
    assert bits_slider(page).get_attribute("aria-valuetext") == "3"


def test_a_shared_link_sets_the_controls_and_renders_the_charts(server, page):
    page.goto(f"{server.url}/error-curves?model=digits-mlp&layer=fc2&bits=3&scheme=asymmetric&calibration=mse")
    wait_charts(page, 2)
    assert "Error curves" in heading(page)
    assert selectbox_text(page, "Layer") == "fc2"
    assert selectbox_text(page, "Range calibration") == "mse"
    assert bits_slider(page).get_attribute("aria-valuetext") == "3"
    assert sidebar(page).get_by_role("radio", name="asymmetric").is_checked()
    assert chart_signature(page, 0) and chart_signature(page, 1)


def test_the_bit_slider_moves_with_the_keyboard_and_the_histogram_and_url_follow(server, page):
    page.goto(f"{server.url}/?model=digits-mlp&bits=6")
    wait_charts(page, 3)
    before = chart_signature(page, 0)
    slider = bits_slider(page)
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(re.compile(r"bits=5"))
    page.wait_for_function(f"(before) => ({JS_CHART_SIGNATURE})(0) !== before", arg=before)
    wait_idle(page)
    assert slider.get_attribute("aria-valuetext") == "5"
    assert chart_signature(page, 0) != before
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(r"bits=7"))


def test_switching_pages_keeps_the_settings(server, page):
    page.goto(f"{server.url}/?model=digits-cnn&layer=conv2&bits=4&granularity=channel")
    wait_charts(page, 3)
    for title, path in (("Error curves", "error-curves"), ("Output drift", "output-drift"), ("Tensor explorer", "")):
        sidebar(page).get_by_role("link", name=title).click()
        page.wait_for_function(f"() => document.querySelector('h1') && document.querySelector('h1').innerText.includes('{title}')")
        wait_charts(page, 1)
        assert f"/{path}" in page.url
        for fragment in ("model=digits-cnn", "layer=conv2", "bits=4", "granularity=channel"):
            assert fragment in page.url, (title, page.url)
        assert bits_slider(page).get_attribute("aria-valuetext") == "4"
        assert selectbox_text(page, "Layer") == "conv2"


def test_a_bad_link_shows_a_notice_and_no_traceback(server, page):
    page.goto(f"{server.url}/error-curves?bits=99&layer=nope&scheme=sideways")
    wait_charts(page, 1)
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="could not be used")
    assert alert.count() == 1
    text = alert.inner_text()
    assert "bits=99" in text and "layer=nope" in text and "scheme=sideways" in text
    assert bits_slider(page).get_attribute("aria-valuetext") == "8"
    assert "Traceback" not in page.content()


def test_the_share_affordance_shows_the_full_link(server, page):
    page.goto(f"{server.url}/output-drift?model=tiny-linear&bits=4")
    wait_charts(page, 1)
    sidebar(page).get_by_text("Share this view").click()
    code = sidebar(page).locator('[data-testid="stCode"]').filter(has_text="model=tiny-linear")
    code.wait_for()
    link = code.inner_text()
    assert link.startswith(f"{server.url}/output-drift?") and "bits=4" in link


def test_the_log_toggle_redraws_only_the_charts_and_goes_into_the_url(server, page):
    page.goto(f"{server.url}/?model=digits-mlp&bits=4")
    wait_charts(page, 3)
    page.get_by_text("Log-scale counts").click()
    page.wait_for_url(re.compile(r"log=true"))
    page.wait_for_function(
        """() => { const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
                   return gd && gd.layout && gd.layout.yaxis && gd.layout.yaxis.type === 'log'; }"""
    )
    assert "bits=4" in page.url


@pytest.mark.parametrize("path", list(PAGE_TITLES))
def test_screenshot_of_every_page(server, page, path):
    page.goto(f"{server.url}/{path}?model=digits-mlp&bits=4&granularity=channel")
    wait_charts(page, 1)
    page.wait_for_timeout(500)  # let plotly finish its transition
    name = path or "tensor-explorer"
    assert screenshot(page, f"{name}-1280").stat().st_size > 10_000
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(800)
    assert screenshot(page, f"{name}-420").stat().st_size > 10_000
    assert PAGE_TITLES[path] in heading(page)


def test_nothing_is_fetched_from_outside_the_machine(browser):
    """Every page above ran with outside requests blocked and recorded: there must have been none."""
    assert browser.blocked == [], f"the app tried to reach: {browser.blocked}"
