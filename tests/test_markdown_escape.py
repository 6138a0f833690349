"""ui.text: user text (link keys and values, file and tensor names) shown in Streamlit markdown as plain text.

Checked three ways: exact outputs for the hostile strings of the input sweep, a CommonMark reference parser
(markdown-it-py, CommonMark + GFM tables and strikethrough) over arbitrary text, and - in
tests/test_browser_untrusted_text.py - Streamlit's own renderer in Chromium, which adds what no reference parser
has (math, directives, emoji and icon shortcodes, autolinks, arrows).
"""

from __future__ import annotations

import doctest
import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ui.text
from ui.text import WORD_JOINER, code_span, escape_markdown, shorten, visible

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (requirements-dev.txt) is the reference parser")

#: The hostile strings of the sweep: a link, an image, a heading, HTML, emphasis, LaTeX, directives, shortcodes.
HOSTILE = [
    "`a` [Sign in again](https://evil.example/login) `b`",
    "![img](https://evil.example/x.png)",
    "# Heading",
    "<b>bold</b><img src=https://evil.example/y.png>",
    "*em* _em_ **strong** ~~strike~~",
    "$x^2$ and $$y$$",
    ":material/home: :smile: :streamlit: :red[red] :small[s] :blue-badge[b]",
    "line1\n\n# h2\n- item",
    "a | b | c\n--|--|--",
    "https://evil.example www.evil.example mail@evil.example",
    "[ref]: https://evil.example\n[ref]",
    "<https://evil.example>",
    "&lt;b&gt; &amp;",
    "`` ` ``",
    "1. one",
    "> quote",
    "- [ ] task",
    "    indented code",
]


def md() -> markdown_it.MarkdownIt:
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])


def rendered(source: str) -> str:
    return md().render(source)


def tags(source: str) -> set[str]:
    return set(re.findall(r"<([a-z0-9]+)", rendered(source)))


def plain_text(source: str) -> str:
    """The text a reader sees: tags dropped, entities decoded, the invisible joiner removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(source))).replace(WORD_JOINER, "").strip()


# --- exact outputs -------------------------------------------------------------------------------------------------


def test_the_module_examples_hold():
    assert doctest.testmod(ui.text).failed == 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("`a` [x](https://e.com) `b`", "\\`a\\` \\[x\\](https:\u2060//e.com) \\`b\\`"),
        ("![i](u)", "!\\[i\\](u)"),
        ("# h", "\\# h"),
        ("<img src=x>", "\\<img src=x\\>"),
        ("$x$ :red[a] :smile:", "\\$x\\$ :\u2060red\\[a\\] :\u2060smile:"),
        ("model.safetensors", "model.safetensors"),
        ("encoder.item_emb.weight", "encoder.item_emb.weight"),
        ("_lead", "\\_lead"),
        ("a\n\nb", "a\\\\n\\\\nb"),
        ("12. x", "12\\. x"),
        ("+ x", "\\+ x"),
        (" x", "\u2060 x"),
    ],
)
def test_escape_markdown_escapes_only_what_can_start_markup(text, expected):
    assert escape_markdown(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bits=4", "`bits=4`"),
        ("a`b", "``a`b``"),
        ("`x`", "`` `x` ``"),
        ("``", "``` `` ```"),
        (" x ", "`  x  `"),
        ("   ", "`   `"),
        ("", "` `"),
        ("a\nb", "`a\\nb`"),
        (":material/home:", "`:\u2060material/home:`"),
    ],
)
def test_code_span_holds_any_text_verbatim(text, expected):
    assert code_span(text) == expected


def test_shorten_echoes_at_most_the_limit_with_an_ellipsis_and_the_length():
    assert shorten("x" * 80) == "x" * 80
    cut = shorten("9" * 10_000)
    assert cut == "9" * 79 + "… (10,000 characters)"
    assert len(cut.split("…")[0]) == 79


def test_control_characters_and_bidi_overrides_are_spelled_out():
    assert visible("a\r\n\tb\x1b\u202e\u2066") == "a\\r\\n\\tb\\x1b\\u202e\\u2066"
    assert visible("ünï ✓ 🔢") == "ünï ✓ 🔢"


# --- against a CommonMark parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_plain_text_in_a_commonmark_parser(text):
    assert tags(escape_markdown(text)) <= {"p"}, rendered(escape_markdown(text))
    assert " ".join(plain_text(escape_markdown(text)).split()) == " ".join(visible(text).split())
    assert tags(code_span(text)) == {"p", "code"}
    assert plain_text(code_span(text)) == visible(text).strip()


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40) | st.text("`*_[]()!#<>$|~&:\\-+. \n1aw@/=", max_size=40))
def test_any_text_in_a_code_span_is_one_code_element_with_that_text(text):
    out = rendered(f"x {code_span(text)} y")
    assert re.findall(r"<([a-z0-9]+)", out) == ["p", "code"], out
    inner = html.unescape(re.search(r"<code>(.*)</code>", out, re.S).group(1))
    # CommonMark turns a line ending inside a code span into a space; code_span has none (they are spelled out).
    assert inner.replace(WORD_JOINER, "") == visible(text) or (not text and inner == " ")


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40) | st.text("`*_[]()!#<>$|~&:\\-+. \n1aw@/=", max_size=40))
def test_any_escaped_text_renders_as_its_own_characters(text):
    source = f"x {escape_markdown(text)} y"
    assert tags(source) <= {"p"}, rendered(source)
    seen = " ".join(plain_text(source).split())
    assert seen == " ".join(f"x {visible(text)} y".split())
