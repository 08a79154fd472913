"""Markdown to safe HTML: markdown-it renders, Pygments highlights code, nh3 (ammonia)
sanitises.

The same function renders a recorded reply and every snapshot of one that streams, so
the page never shows raw Markdown that later jumps into shape. Highlighting emits CSS
classes (static/css/highlight.css), never inline styles, so the allow-list stays short.
"""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

# Pygments' short class names ("k", "s2"), nested in `.highlight`.
_formatter = HtmlFormatter(nowrap=True)
HIGHLIGHT_MAX_CHARS = 20_000


def _highlight(code: str, language: str, _attrs: str) -> str:
    """A fenced block in a named language, as highlighted spans; "" leaves it plain."""
    if not language or len(code) > HIGHLIGHT_MAX_CHARS:
        return ""
    try:
        lexer = get_lexer_by_name(language.split()[0], stripnl=False)
    except ClassNotFound:
        return ""
    body = highlight(code, lexer, _formatter)
    label = html.escape(language.split()[0])
    return f'<pre class="highlight"><code class="language-{label}">{body}</code></pre>\n'


_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    .enable("table")
    .enable("strikethrough")
)

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "del",
    "code",
    "pre",
    "span",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "th": {"align"},
    "td": {"align"},
}


_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
# Inline marks a streaming reply may have opened and not yet closed, longest first.
_INLINE_MARKS = ("**", "~~", "`")


def close_open_marks(text: str) -> str:
    """A partial reply as it will read once its open inline marks close: "is **the f"
    renders "is <strong>the f</strong>", never a literal "**" that later jumps. A mark
    with nothing after it yet is held back. Code blocks (open ones too) are left alone:
    Markdown renders an open fence to the end of the text already."""
    if len(_FENCE.findall(text)) % 2:
        return text
    head, sep, tail = text.rpartition("\n\n")
    opened: list[tuple[int, str]] = []
    i = 0
    while i < len(tail):
        mark = next((m for m in _INLINE_MARKS if tail.startswith(m, i)), None)
        if mark is None:
            i += 1
            continue
        if opened and opened[-1][1] == mark:
            opened.pop()
        elif not (opened and opened[-1][1] == "`"):
            # Inside inline code nothing but a backtick is a mark.
            opened.append((i, mark))
        i += len(mark)
    for position, mark in reversed(opened):
        if not tail[position + len(mark) :].strip():
            tail = tail[:position]
        else:
            tail = tail.rstrip() + mark
    return head + sep + tail


def markdown_to_html(text: str) -> str:
    return nh3.clean(
        _markdown.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
