r"""User text inside Streamlit markdown, shown as the plain text it is.

Link keys and values, file names, tensor and layer names come from whoever made the link or the file. Streamlit
renders every ``st.markdown`` / ``st.caption`` / ``st.info`` / ``st.subheader`` / widget label as Markdown with
extras, so such text is never pasted in raw: ``bits=`x` [Sign in](https://evil) `` in a link would close our
code span and draw a link, ``![](https://…)`` an image fetched from anywhere, ``# hi`` a heading, ``$x$`` LaTeX,
``:red[…]`` colour.

What Streamlit 1.67's renderer does (read from its ``StreamlitMarkdown`` bundle and checked in Chromium by
``tests/test_browser_untrusted_text.py``):

- CommonMark + GFM (tables, ``~strike~``, autolinked ``https://…`` / ``www.…`` / ``a@b.c``), ``$…$`` math,
  ``:name[…]`` directives (colours, badges, ``:small[…]``); raw HTML only with ``unsafe_allow_html``;
- text-level replacements made *after* backslash escapes are resolved: ``:emoji:`` shortcodes, ``:streamlit:``
  (a logo image), ``:material_name:`` icons, autolinks, ``->`` → ``→`` and its kin; and before parsing, every
  ``:material/`` in the *source* (code spans included) becomes ``:material_``.

So :func:`escape_markdown` backslash-escapes what can start markup (an escaped punctuation character renders as
itself) and breaks the text-level patterns with an invisible U+2060 WORD JOINER; :func:`code_span` puts text in
a code span whose backtick fence is longer than any run inside it, so nothing in it is parsed. Both first make
line breaks and other control characters visible (``\n``): a blank line would end the paragraph, and the
escaping with it. :func:`shorten` cuts what is echoed.

>>> escape_markdown("![x](https://e.com/i.png)")
'!\\[x\\](https:\u2060//e.com/i.png)'
>>> code_span("a`b")
'``a`b``'
>>> shorten("x" * 100, 10)
'xxxxxxxxx… (100 characters)'
"""

from __future__ import annotations

import re
import unicodedata

from ui.i18n import _

#: Invisible and not a line-break opportunity: splits ``:smile:`` without changing what the reader sees.
WORD_JOINER = "\u2060"
#: Characters that start markup anywhere in a line: always escaped (``_`` only where it can, see below).
_ALWAYS = frozenset("\\`*[]<>#$|~&")
#: Bidirectional overrides and isolates: they would make the text *look* different from what it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: What the renderer turns into links, icons or emoji *after* backslash escapes are resolved.
_TEXT_PATTERNS = re.compile(
    r"(?<=:)(?=[\w+/-])"  # :smile:  :streamlit:  :material/x:  :red[…]  https://…
    r"|(?<=[wW]{3})(?=\.)"  # www.…
    r"|(?=@)"  # a@b.c
    r"|(?<=[<>~-])(?=[>=-])"  # ->  <-  <->  --  >=  <=  ~=  (typographic arrows and dashes)
)
#: A list item's marker at the start of the text: ``-``, ``+``, ``1.``, ``1)``.
_LIST_MARKER = re.compile(r"^(\d{1,9})([.)])|^()([-+])")
#: Streamlit rewrites this in the source, before parsing (code spans included).
_MATERIAL = ":material/"


def visible(text: object) -> str:
    r"""``text`` as a string with line breaks, tabs, other control characters and bidi overrides spelled out.

    >>> visible("a\nb\x00\u202e")
    'a\\nb\\x00\\u202e'
    """
    out = []
    for ch in str(text):
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch in _BIDI or unicodedata.category(ch) == "Cc":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_markdown(text: object) -> str:
    r"""``text`` written so that Streamlit's markdown shows it literally, for use inside running text.

    What can start markup gets a backslash: ``\ ` * [ ] < > # $ | ~ &`` always, ``_`` unless it sits between
    two letters or digits (``item_emb`` cannot be emphasis: CommonMark's intraword rule), and a list marker
    (``-``, ``+``, ``1.``) at the start, where the text may begin a line. Shortcodes, ``://``, ``www.``, ``@``
    and arrows get an invisible word joiner; so does a leading space (four would start a code block); control
    characters become visible escapes. Dots, commas, parentheses and colons are left alone, so
    ``model.safetensors`` reads the same in the page's source.

    >>> escape_markdown("# **hi** $x$ :red[a] item_emb _x_")
    '\\# \\*\\*hi\\*\\* \\$x\\$ :\u2060red\\[a\\] item_emb \\_x\\_'
    >>> escape_markdown("1. one"), escape_markdown("- two"), escape_markdown("a -> b")
    ('1\\. one', '\\- two', 'a -\u2060\\> b')
    """
    plain = _TEXT_PATTERNS.sub(WORD_JOINER, visible(text))
    out = []
    for i, ch in enumerate(plain):
        intraword = ch == "_" and 0 < i < len(plain) - 1 and plain[i - 1].isalnum() and plain[i + 1].isalnum()
        out.append("\\" + ch if ch in _ALWAYS or (ch == "_" and not intraword) else ch)
    escaped = "".join(out)
    if escaped[:1].isspace():
        return WORD_JOINER + escaped
    return _LIST_MARKER.sub(lambda m: f"{m.group(1) or ''}\\{m.group(2) or m.group(4)}", escaped, count=1)


def code_span(text: object) -> str:
    r"""``text`` as an inline code span that holds it verbatim, whatever backticks or markup it contains.

    CommonMark: the fence is one backtick more than the longest run inside; where the text starts or ends with
    a backtick, one space of padding on each side keeps it off the fence (the parser strips that padding
    again), and text with a space at both ends is padded too, or the parser would strip its own spaces. Empty
    text gets a one-space span.

    >>> code_span("``x"), code_span("[a](b)")
    ('``` ``x ```', '`[a](b)`')
    """
    body = visible(text).replace(_MATERIAL, ":" + WORD_JOINER + "material/")
    if not body:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    edge_tick = body[0] == "`" or body[-1] == "`"
    spaced = body[0] == " " and body[-1] == " " and body.strip(" ") != ""
    return f"{fence} {body} {fence}" if edge_tick or spaced else f"{fence}{body}{fence}"


def shorten(text: object, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis and its full length (in the session's
    language), for echoing.

    >>> shorten("abc", 80), shorten("abcdef", 4)
    ('abc', 'abc… (6 characters)')
    """
    s = str(text)
    if len(s) <= limit:
        return s
    return _("{text}… ({n} characters)", text=s[: max(limit - 1, 1)], n=f"{len(s):,}")
