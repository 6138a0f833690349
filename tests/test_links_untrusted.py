"""Links and user text are untrusted: the hostile-input sweep's recipes, each as a test (AppTest, no browser).

- a crafted link key or value cannot put a link, an image, a heading or HTML into the ⚠️ notice, and a 10 kB
  value is echoed as 80 characters;
- a key given twice counts with its last value, and the notice says so;
- a page parameter of another page (``/?x=abc``, then the walkthrough) is judged when that page first runs;
- a share link reopens the view exactly: numbers round-trip bit for bit, and a setting the view does not show
  (the bit slider under nf4, which the walkthrough still uses) is kept when it is not the default;
- extreme but finite walkthrough numbers get a plain message, never OverflowError / "math domain error";
- tensor names and file names of an upload show as plain text on every page that quotes them.

tests/test_browser_untrusted_text.py checks the rendering itself in Chromium.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from ui.controls import PAGE_PARAMS, PARAMS, format_number
from ui.links import ECHO_KEY_CHARS, NOTICE_MAX_LINES, link_params
from ui.text import WORD_JOINER, shorten

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 300
PAGES = {
    "tensor_explorer": "app_pages/tensor_explorer.py",
    "error_curves": "app_pages/error_curves.py",
    "walkthrough": "app_pages/walkthrough.py",
    "your_model": "app_pages/your_model.py",
}
#: What markup user text must never produce.
FORBIDDEN_TAGS = {"a", "img", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "del", "script", "iframe"}
WIDGET_KINDS = ("selectbox", "slider", "radio", "number_input", "toggle", "select_slider")


def new_app(**params: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    return at


def open_view(page: str, **params: str | list[str]) -> AppTest:
    """A fresh session opened on ``page`` with ``params`` (first run on the default page, as a landing there)."""
    at = new_app(**params)
    at.run()
    if page != "tensor_explorer":
        at.switch_page(PAGES[page]).run()
    return at


def notice(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning if w.value.startswith("Some settings in this link"))


def markdown_tags(source: str) -> set[str]:
    """The HTML tags a CommonMark renderer (markdown-it-py, + GFM tables and strikethrough) makes of ``source``."""
    markdown_it = pytest.importorskip("markdown_it")
    out = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
    return set(re.findall(r"<([a-z0-9]+)", out))


def markdown_text(source: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    out = markdown_it.MarkdownIt("commonmark").render(source)
    return html.unescape(re.sub(r"<[^>]+>", "", out)).replace(WORD_JOINER, "")


def widget_values(at: AppTest) -> dict[str, object]:
    """Every URL-bound widget on the page (sidebar and page controls) and its value."""
    values = {}
    for kind in WIDGET_KINDS:
        for w in at.get(kind):
            if w.key in PARAMS or w.key in PAGE_PARAMS:
                values[w.key] = w.value
    return values


def share_params(at: AppTest) -> dict[str, str]:
    link = next(c.value for c in at.code if "model=" in c.value)
    return {k: v[0] for k, v in parse_qs(urlparse(link).query, keep_blank_values=True).items()}


# --- 1. markup in keys and values ------------------------------------------------------------------------------------

HOSTILE_LINK = {
    "`a` [Sign in again](https://evil.example/login) `b`": "1",
    "bits": "` ![logo](https://evil.example/i.png) `",
    "layer": "# Heading <img src=https://evil.example/j.png>",
    "scheme": "<a href=https://evil.example>click</a>",
    "format": ":red[alarm] $x^2$ :material/home:",
}


def test_a_crafted_link_adds_no_link_image_heading_or_html_to_the_notice():
    at = open_view("tensor_explorer", **HOSTILE_LINK)
    assert not at.exception
    text = notice(at)
    assert markdown_tags(text) <= {"p", "ul", "li", "code"}, text
    shown = markdown_text(text)
    for key, value in HOSTILE_LINK.items():
        assert f"{shorten(key, ECHO_KEY_CHARS)}={value}" in shown, (key, shown)


def test_a_10_kB_value_is_echoed_as_80_characters_with_its_length():
    at = open_view("tensor_explorer", bits="9" * 10_000, **{"k" * 5_000: "v"})
    text = notice(at)
    assert "… (10,000 characters)" in text and "… (5,000 characters)" in text
    assert len(text) < 600, len(text)
    assert at.slider(key="bits").value == 8


def test_a_link_with_hundreds_of_keys_gets_a_notice_of_a_dozen_lines():
    at = open_view("tensor_explorer", **{f"k{i}": "v" for i in range(900)})  # Streamlit ignores > 1000
    assert not at.exception
    lines = notice(at).splitlines()
    assert len(lines) == 2 + NOTICE_MAX_LINES + 1 and lines[-1] == f"- … and {900 - NOTICE_MAX_LINES:,} more"


# --- 2. a key given twice ---------------------------------------------------------------------------------------------


def test_a_key_given_twice_uses_the_last_value_and_says_so():
    at = open_view("tensor_explorer", bits=["4", "5"])
    assert at.slider(key="bits").value == 5
    assert at.query_params["bits"] == "5", "the address bar keeps the value used"
    assert "`bits` given twice (`4, 5`): using the last, `5`" in notice(at)


def test_a_key_given_three_times_with_a_bad_last_value_falls_back_and_names_all():
    at = open_view("tensor_explorer", bits=["4", "5", "99"], foo=["1", "2"])
    assert at.slider(key="bits").value == 8
    text = notice(at)
    assert "`bits` given 3 times (`4, 5, 99`): the last, `bits=99` (a whole number from 2 to 16): using `8`" in text
    assert "`foo` given twice (`1, 2`): not a setting of this app, ignored" in text


# --- 3. a page parameter carried to its page -----------------------------------------------------------------------------


def test_a_bad_walkthrough_value_in_a_link_to_another_page_is_named_when_the_walkthrough_opens():
    at = open_view("tensor_explorer", x="abc", lo="inf", hi="1e309", example="nan")
    assert not notice(at), "not judged yet: the walkthrough has not drawn these inputs"
    at.switch_page(PAGES["walkthrough"]).run()
    assert not at.exception
    text = notice(at)
    for fragment in ("`x=abc` (a finite number): using `0.3`", "`lo=inf`", "`hi=1e309`", "`example=nan`"):
        assert fragment in text, text
    at.switch_page(PAGES["tensor_explorer"]).run()
    at.switch_page(PAGES["walkthrough"]).run()
    assert notice(at).count("x=abc") == 1, "judged once"


def test_a_good_walkthrough_value_in_a_link_to_another_page_is_used_without_a_notice():
    at = open_view("tensor_explorer", x="0.7", lo="-2", hi="3")
    at.switch_page(PAGES["walkthrough"]).run()
    assert (at.number_input(key="x").value, at.number_input(key="lo").value) == (0.7, -2.0)
    assert not notice(at)


def test_a_later_notice_comes_back_after_the_first_was_dismissed():
    at = open_view("tensor_explorer", bits="abc", x="abc")
    at.button(key="_qe_dismiss_notice").click().run()
    assert not notice(at)
    at.switch_page(PAGES["walkthrough"]).run()
    assert "x=abc" in notice(at) and "bits=abc" not in notice(at)


# --- 4. share links round-trip exactly -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**20), 10**20))
def test_numbers_in_links_read_back_exactly(x):
    text = format_number(x)
    assert (int(text) if isinstance(x, int) else float(text)) == x
    assert math.copysign(1, float(text)) == math.copysign(1, x)
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        assert "." not in text, "whole numbers drop the .0"


@pytest.mark.parametrize(
    "page, params, must_have",
    [
        ("tensor_explorer", {"calibration": "percentile", "percentile": "99.99995"}, {"percentile": "99.99995"}),
        ("walkthrough", {"lo": "1e15", "hi": "1.0000000000000002e15"}, {"hi": "1000000000000000.2"}),
        ("walkthrough", {"model": "digits-mlp", "format": "nf4", "bits": "3"}, {"bits": "3", "format": "nf4"}),
        ("tensor_explorer", {"granularity": "tensor", "group_size": "32"}, {"group_size": "32"}),
    ],
)
def test_the_share_link_keeps_what_the_sweep_found_it_dropping(page, params, must_have):
    at = open_view(page, **params)
    link = share_params(at)
    for key, value in must_have.items():
        assert link.get(key) == value, link
    again = open_view(page, **link)
    assert widget_values(again) == widget_values(at)


def test_the_walkthrough_uses_the_bit_slider_under_nf4_so_its_link_keeps_it():
    at = open_view("walkthrough", model="digits-mlp", format="nf4", bits="3")
    assert "Quantizing to **3 bits**" in " ".join(m.value for m in at.markdown)
    assert "bits" not in link_params(_controls(format="nf4", bits=8)), "the default is still left out"


def _controls(**changes):
    from ui.controls import Controls

    base = {
        "model": "digits-mlp", "layer": "fc1", "bits": 8, "scheme": "symmetric", "granularity": "tensor",
        "group_size": 64, "calibration": "minmax", "percentile": 99.99, "rounding": "nearest", "format": "int",
        "target": "weights",
    }
    return Controls(**{**base, **changes})


finite_numbers = st.floats(-1e30, 1e30, allow_nan=False) | st.sampled_from([0.3, -0.0, 1e-30, 99.99995])
views = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["tiny-linear", "digits-mlp"]),
        "format": st.sampled_from(["int", "pow2", "nf4", "fp8_e4m3"]),
        "bits": st.integers(2, 16).map(str),
        "scheme": st.sampled_from(["symmetric", "asymmetric"]),
        "granularity": st.sampled_from(["tensor", "channel", "group"]),
        "group_size": st.sampled_from(["2", "5", "10", "16", "32", "64"]),
        "calibration": st.sampled_from(["minmax", "percentile", "mse"]),
        "percentile": st.floats(50.01, 100.0).map(format_number),
        "rounding": st.sampled_from(["nearest", "truncate", "stochastic"]),
        "target": st.sampled_from(["weights", "activations", "both"]),
        "log": st.sampled_from(["true", "false"]),
        "x": finite_numbers.map(format_number),
        "lo": finite_numbers.map(format_number),
        "hi": finite_numbers.map(format_number),
        "example": st.integers(0, 300).map(str),
    }
)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=st.sampled_from(["tensor_explorer", "walkthrough"]), view=views)
def test_a_share_link_reopens_every_widget_with_the_same_value(page, view):
    at = open_view(page, **view)
    assert not at.exception
    before = widget_values(at)
    again = open_view(page, **share_params(at))
    assert not again.exception
    assert widget_values(again) == before
    assert not notice(again), "a share link is always a clean link"


# --- 5. walkthrough extremes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"lo": "-1e308", "hi": "1e308", "x": "1e308"}, "lo = -1e\\+308 is beyond float32"),
        ({"lo": "-0", "hi": "5e-324", "x": "-5e-324"}, "too narrow for a float32 scale"),
        ({"lo": "0", "hi": "1", "x": "1e308"}, "x = 1e\\+308 is beyond float32"),
        ({"lo": "-3.4e38", "hi": "3.4e38", "x": "-3.4e38", "bits": "2", "scheme": "asymmetric"}, "too wide for float32"),
    ],
)
def test_extreme_walkthrough_links_get_a_plain_message(params, message):
    at = open_view("walkthrough", model="tiny-linear", **params)
    assert not at.exception
    errors = " ".join(markdown_text(e.value) for e in at.error)
    assert re.search(message, errors), errors
    assert "OverflowError" not in errors and "math domain" not in errors


def test_infinite_and_nan_walkthrough_values_fall_back_with_a_notice():
    at = open_view("walkthrough", model="tiny-linear", lo="-inf", hi="1e309", x="nan")
    assert not at.exception and not at.error
    assert (at.number_input(key="lo").value, at.number_input(key="hi").value) == (-0.5, 1.5)
    assert all(f"{k}=" in notice(at) for k in ("lo", "hi", "x"))


def test_the_widest_float32_range_is_traced():
    at = open_view("walkthrough", model="tiny-linear", lo="-3.4e38", hi="3.4e38", x="3e38")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 2


# --- 6. names in an uploaded file ---------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "![logo](https://evil.example/i.png)",
    "`a` [Sign in again](https://evil.example/login) `b`",
    "# Heading <img src=https://evil.example/j.png>",
    "line1\n\n# h2\n- item",
]
HOSTILE_FILE = "<img src=x onerror=y>[a](evil) _b_ ![i](j.png) :red[c].safetensors"  # a file name has no "/"


def hostile_upload() -> bytes:
    g = torch.Generator().manual_seed(0)
    tensors = {name: torch.randn(8, 16, generator=g) for name in HOSTILE_NAMES}
    tensors["![nan](https://evil.example/n.png)"] = torch.full((4, 4), float("nan"))
    return save(tensors)


#: Every hostile name carries one of these, so the elements that quote one can be told from the page's own.
MARKERS = ("evil", "Heading", "line1", "onerror")


def markup_in_page(at: AppTest) -> list[str]:
    """Every text element (sidebar included) quoting a hostile name whose markdown would draw forbidden markup."""
    bad = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        for el in at.get(kind):
            value = str(getattr(el, "value", ""))
            if any(m in value for m in MARKERS) and markdown_tags(value) & FORBIDDEN_TAGS:
                bad.append(value)
    return bad


def quoted_names(at: AppTest) -> int:
    """How many text elements quote a hostile name (so the check above is not vacuous)."""
    return sum(
        any(m in str(getattr(el, "value", "")) for m in MARKERS)
        for kind in ("subheader", "markdown", "caption", "warning", "error")
        for el in at.get(kind)
    )


def test_hostile_tensor_and_file_names_show_as_plain_text_on_every_page_that_quotes_them():
    at = open_view("your_model")
    at.file_uploader[0].set_value((HOSTILE_FILE, hostile_upload(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert [markdown_text(s.value) for s in at.subheader][0].strip() == f"📄 {HOSTILE_FILE}"
    assert quoted_names(at) >= 3, "file name, NaN note, tensor caption"
    assert markup_in_page(at) == []
    names = at.selectbox(key="_qe_upload_tensor").options
    for name in HOSTILE_NAMES[:3]:
        at.selectbox(key="_qe_upload_tensor").set_value(next(o for o in names if o.startswith(name))).run()
        assert not at.exception and markup_in_page(at) == []
    at.button(key="_qe_upload_open").click().run()
    for page in ("tensor_explorer", "walkthrough"):
        at.switch_page(PAGES[page]).run()
        for name in HOSTILE_NAMES:
            at.selectbox(key="layer").set_value(name).run()
            assert not at.exception
            assert quoted_names(at) >= 1, (page, name)
            assert markup_in_page(at) == [], (page, name)
    sidebar_caption = next(c.value for c in at.sidebar.caption if "📤" in c.value)
    assert shorten(HOSTILE_FILE, 60) in markdown_text(sidebar_caption)
