"""中文 in a real browser: a ``lang=zh`` link renders Chinese with a CJK font, not tofu (issue 13).

A machine without a CJK font still "shows" the Chinese text: every character becomes the same empty box (tofu),
and every text-only check passes. So these tests look at pixels:

- the width of a Chinese string as the page's own font stack draws it (canvas ``measureText`` with the
  computed ``font`` of the page's title) is that of real glyphs, not zero;
- two **different** Chinese strings of equal length draw **different** pixels (tofu boxes are identical), both
  on a canvas and as two spans in the page itself (element screenshots);
- a Chinese string does not draw like a string of private-use characters, which no font has (the tofu itself).

Debian's ``fonts-noto-cjk`` provides the font (``.ci/run`` installs it). Without Chromium or playwright the
module is skipped on a developer machine but FAILS under ``CI=true`` (``conftest._require_browser``); without a
CJK font it fails everywhere, naming the package. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import pytest
from browser_support import REPO, heading, sidebar, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"
FONT_HINT = "install a CJK font (Debian: apt-get install fonts-noto-cjk; .ci/run does)"
#: Two different strings of four common characters each, and four private-use characters (no glyph anywhere).
SAMPLE_A, SAMPLE_B, NO_GLYPHS = "量化网格", "缩放因子", "\ue000\ue001\ue002\ue003"

#: Draw ``texts`` with the computed font of ``selector`` on a canvas: widths and a hash of the pixels of each.
JS_DRAW = """([selector, texts]) => {
  const el = document.querySelector(selector);
  const style = getComputedStyle(el);
  const font = `${style.fontWeight} 32px ${style.fontFamily}`;
  const out = {font, items: []};
  for (const text of texts) {
    const canvas = document.createElement('canvas');
    canvas.width = 400; canvas.height = 60;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 400, 60);
    ctx.font = font; ctx.fillStyle = '#000'; ctx.textBaseline = 'middle';
    ctx.fillText(text, 4, 30);
    const data = ctx.getImageData(0, 0, 400, 60).data;
    let hash = 0, ink = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = data[i];
      if (v < 128) ink++;
      hash = (hash * 31 + v) | 0;
    }
    out.items.push({text, width: ctx.measureText(text).width, hash, ink});
  }
  return out;
}"""

#: Two spans with the title's style, for element screenshots of the page's own rendering.
JS_SPANS = """([a, b]) => {
  const h1 = document.querySelector('h1');
  for (const [id, text] of [['qe-cjk-a', a], ['qe-cjk-b', b]]) {
    const span = document.createElement('span');
    span.id = id; span.textContent = text;
    span.style.cssText = 'display:inline-block;padding:4px;background:#fff;color:#000;font-size:32px';
    h1.parentElement.appendChild(span);
  }
}"""


def open_chinese(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("h1", timeout=120_000)
    wait_idle(page, 120_000)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def test_a_lang_zh_link_draws_chinese_glyphs_not_tofu(server, page):
    open_chinese(page, f"{server.url}/glossary?lang=zh")
    screenshot(page, "i18n-zh-glossary")
    assert "术语表" in heading(page), heading(page)
    assert "Traceback" not in page.content()

    drawn = page.evaluate(JS_DRAW, ["h1", [SAMPLE_A, SAMPLE_B, NO_GLYPHS, "MMMM"]])
    a, b, tofu, latin = drawn["items"]
    assert a["ink"] > 0 and b["ink"] > 0, f"Chinese drew no pixels with {drawn['font']!r}: {FONT_HINT}"
    assert a["hash"] != b["hash"], (
        f"two different Chinese strings drew identical pixels (tofu boxes) with {drawn['font']!r}: {FONT_HINT}"
    )
    assert a["hash"] != tofu["hash"], f"Chinese draws like characters no font has (tofu): {FONT_HINT}"
    # A CJK glyph is about one em wide: four of them at 32 px are about 128 px, far from 0 and from tofu.
    assert a["width"] > 0.8 * 4 * 32, f"Chinese is {a['width']:.0f} px wide at 32 px ({drawn}): {FONT_HINT}"
    assert latin["width"] > 0

    page.evaluate(JS_SPANS, [SAMPLE_A, SAMPLE_B])
    shot_a = page.locator("#qe-cjk-a").screenshot()
    shot_b = page.locator("#qe-cjk-b").screenshot()
    assert shot_a != shot_b, f"two different Chinese spans render the same pixels in the page: {FONT_HINT}"


def test_a_lang_zh_link_opens_the_app_in_chinese(server, page):
    open_chinese(page, f"{server.url}/?model=digits-mlp&lang=zh")
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)
    wait_idle(page, 120_000)
    screenshot(page, "i18n-zh-tensor-explorer")
    assert "Traceback" not in page.content()
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "术语表" in nav, nav
    assert sidebar(page).get_by_role("radio", name="zh").is_checked(), "the switch shows the link's language"
    assert "lang=zh" in page.url
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "**" not in main, (
        "bold that Markdown did not render (full-width punctuation before a closing **, e.g. **试一试：**把): "
        + main[max(main.find("**") - 20, 0) : main.find("**") + 40]
    )
