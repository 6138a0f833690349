"""The two teaching pages in a real browser: ``streamlit run app.py`` driven by headless Chromium (Playwright).

Each page is opened from a shared link (the way a workshop participant arrives) and must show its content with
the link's settings; screenshots at 1280 px and 420 px go to ``test-artifacts/``. On the QAT page a short run is
trained (in the server's job worker process), a second browser opening the same link sees the kept result
without training, a second browser opening a link that is training right now watches that run (no second
run, no Stop button of its own), and the Stop button interrupts a long run and keeps it as "stopped at epoch k".

Without Chromium or playwright these tests are skipped on a developer machine, but FAIL under CI=true.
"""

from __future__ import annotations

import re

import pytest
from browser_support import REPO, heading, sidebar, wait_charts, wait_idle

from quantlib.walkthrough import trace_value

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"


def new_page(browser):
    p = browser.new_page()
    p.set_default_timeout(90_000)
    return p


def metric(page, label: str, n: int = 1) -> list[str]:
    """The values of the st.metrics labelled ``label``, in page order, once ``n`` of them are drawn."""
    boxes = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]').get_by_text(label, exact=True)
    )
    values = boxes.locator('[data-testid="stMetricValue"]')
    values.nth(n - 1).wait_for()
    return [v.strip() for v in values.all_inner_texts()]


def screenshots(page, name: str) -> None:
    """The page at 1280 px and at a phone's 420 px, into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(800)  # plotly's transition
    path = ARTIFACTS / f"{name}-1280.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(800)
    path = ARTIFACTS / f"{name}-420.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    page.set_viewport_size({"width": 1280, "height": 800})


def test_walkthrough_from_a_shared_link(server, browser):
    p = new_page(browser)
    try:
        p.goto(f"{server.url}/walkthrough?model=digits-cnn&layer=conv2&bits=3&scheme=asymmetric&granularity=channel")
        wait_charts(p, 4)
        assert "Formula walkthrough" in heading(p)
        assert sidebar(p).get_by_role("slider", name="Bit width").get_attribute("aria-valuetext") == "3"
        assert sidebar(p).get_by_role("radio", name="asymmetric").is_checked()
        for text in ("One value on its way", "A 10 → 1 layer in integers", "The error formulas on your layer"):
            assert p.get_by_text(text).count() >= 1, text
        # The default value 0.3 in [-0.5, 1.5] at the link's 3 bits, both schemes, as quantlib computes it.
        expected = [str(trace_value(0.3, -0.5, 1.5, 3, s).q) for s in ("symmetric", "asymmetric")]
        assert metric(p, "stored integer q", 2) == expected
        assert "conv2" in p.get_by_text("The weights of").first.inner_text()
        assert "Traceback" not in p.content()
        screenshots(p, "walkthrough")
    finally:
        p.close()


def test_the_walkthrough_value_lives_in_the_address_bar_and_survives_a_page_switch(server, browser):
    p = new_page(browser)
    try:
        p.goto(f"{server.url}/walkthrough?model=tiny-linear&bits=4&x=0.77&lo=-0.8&hi=2.1&example=7")
        wait_charts(p, 4)
        expected = [str(trace_value(0.77, -0.8, 2.1, 4, s).q) for s in ("symmetric", "asymmetric")]
        assert metric(p, "stored integer q", 2) == expected
        assert p.get_by_role("spinbutton", name="Evaluation input (0 – 255)").input_value() == "7"
        slider = p.locator('[data-testid="stMain"]').get_by_role("slider", name="Value x")
        slider.focus()
        slider.press("ArrowRight")  # one step of 0.01 on this range
        p.wait_for_url(re.compile(r"[?&]x=0\.78(&|$)"))
        wait_idle(p)
        assert p.get_by_role("spinbutton", name="… or type it").input_value() == "0.780000"
        sidebar(p).get_by_role("link", name="Tensor explorer").click()
        wait_charts(p, 1)
        sidebar(p).get_by_role("link", name="Formula walkthrough").click()
        wait_charts(p, 4)
        assert p.get_by_role("spinbutton", name="… or type it").input_value() == "0.780000"
        assert re.search(r"[?&]x=0\.78(&|$)", p.url), p.url
    finally:
        p.close()


def test_qat_from_a_shared_link_trains_and_a_second_browser_gets_the_stored_result(server, browser):
    link = f"{server.url}/qat?model=digits-mlp&bits=2&granularity=channel"
    p = new_page(browser)
    try:
        p.goto(link)
        wait_charts(p, 1)
        assert "PTQ vs QAT" in heading(p)
        p.get_by_role("button", name="▶️ Train", exact=True).click()
        p.get_by_text("trained just now").wait_for()
        wait_charts(p, 4)
        float_acc, ptq_acc, qat_acc = (float(metric(p, k)[0].rstrip(" %")) for k in ("Float model", "PTQ", "QAT"))
        assert ptq_acc < 40 < 85 < qat_acc <= float_acc + 1
        assert "Traceback" not in p.content()
        screenshots(p, "qat")
    finally:
        p.close()
    other = new_page(browser)  # another participant opening the same link: no Train button, the result is there
    try:
        other.goto(link)
        other.get_by_text("trained earlier on this server").wait_for()
        assert other.get_by_role("button", name="▶️ Train", exact=True).count() == 0
        assert metric(other, "QAT")[0] == f"{qat_acc:.1f} %"
    finally:
        other.close()


def test_stop_keeps_the_partly_trained_run(server, browser):
    """recsys with MSE calibration: ~10 s per epoch, slow enough to press Stop in the middle."""
    p = new_page(browser)
    try:
        p.goto(f"{server.url}/qat?model=recsys&bits=4&calibration=mse")
        wait_charts(p, 1)
        p.get_by_role("button", name="▶️ Train", exact=True).click()
        stop = p.get_by_role("button", name="⏹ Stop training")
        stop.wait_for()
        p.get_by_text(re.compile(r"Training: epoch 0\.\d+ of 3 · step [1-9]")).wait_for()
        watcher = new_page(browser)  # another participant, same link, mid-run: the same run, live
        try:
            watcher.goto(f"{server.url}/qat?model=recsys&bits=4&calibration=mse")
            watcher.get_by_text("Another browser on this server is training exactly these settings").wait_for()
            watcher.get_by_text(re.compile(r"Training in another browser: epoch 0\.\d+ of 3")).wait_for()
            assert watcher.get_by_role("button", name="▶️ Train", exact=True).count() == 0
            assert watcher.get_by_role("button", name="⏹ Stop training").count() == 0, "Stop is the owner's"
        finally:
            watcher.close()
        stop.click()
        p.get_by_text("Stopped at epoch").wait_for(timeout=30_000)
        assert p.get_by_role("button", name=re.compile("Train again")).count() == 1
        assert metric(p, "QAT (stopped early)"), "the partial result is shown and labelled"
        assert "Traceback" not in p.content()
        screenshots(p, "qat-stopped")
    finally:
        p.close()


def test_nothing_is_fetched_from_outside_the_machine(browser):
    assert browser.blocked == [], f"the app tried to reach: {browser.blocked}"
