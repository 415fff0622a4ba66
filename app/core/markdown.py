"""The Markdown a message may use: **bold**, *italic* (or _italic_), `inline code` and fenced
code blocks.

Messages come from peers, so nothing in them is ever interpreted as HTML or fetched: this is
not a Markdown renderer but a small parser that turns the four markers into style ranges over
the text with the markers removed (``Styled``). The window's message delegate paints those
ranges in its text layout; ``styled_html`` writes the same text as HTML for its read-only text
browser, escaping every character itself; ``plain`` is the text for previews. Anything that
is not one of the four stays as typed: a stray ``*``, ``snake_case_names``, ``2*3*4``,
``__init__.py``, an unclosed fence. A backslash keeps a marker literal (``\\*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

_HTML_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def escape_html(text: str) -> str:
    """``html.escape(text, quote=True)``: the same five characters, the same entities.
    Importing ``html`` loads its table of 2,231 named entities (0.3 MiB) for ``unescape``,
    which the window needs only in its search panel."""
    return text.translate(_HTML_ESCAPES)


class Style(StrEnum):
    BOLD = "bold"
    ITALIC = "italic"
    CODE = "code"      # `inline`
    BLOCK = "block"    # ``` fenced ```


@dataclass(frozen=True)
class Styled:
    """Text as shown (markers removed) and the styled ranges in it, (start, end, style)."""

    text: str
    spans: tuple[tuple[int, int, Style], ...] = field(default_factory=tuple)

    def in_code(self, start: int, end: int) -> bool:
        """True when [start, end) overlaps code, where links are not links."""
        return any(s < end and start < e for s, e, style in self.spans
                   if style in (Style.CODE, Style.BLOCK))


FENCE = re.compile(r"^\s*```[\w+#.-]*\s*$")
INLINE = re.compile(
    r"\\(?P<escaped>[\\`*_])"
    r"|`(?P<code>[^`\n]+)`"
    r"|\*\*(?P<bold>\S(?:.*?\S)?)\*\*"
    r"|(?<![\w*])\*(?P<italic>[^\s*](?:.*?[^\s*])?)\*(?![\w*])"
    r"|(?<!\w)_(?P<italic2>[^\s_](?:.*?[^\s_])?)_(?!\w)"
)
STYLE_OF = {"code": Style.CODE, "bold": Style.BOLD, "italic": Style.ITALIC,
            "italic2": Style.ITALIC}


def _inline(line: str, offset: int) -> tuple[str, list[tuple[int, int, Style]]]:
    out: list[str] = []
    spans: list[tuple[int, int, Style]] = []
    length = 0
    last = 0
    for match in INLINE.finditer(line):
        before = line[last:match.start()]
        out.append(before)
        length += len(before)
        last = match.end()
        group = match.lastgroup or ""
        content = match.group(group)
        if group == "escaped":
            out.append(content)
            length += len(content)
            continue
        spans.append((offset + length, offset + length + len(content), STYLE_OF[group]))
        out.append(content)
        length += len(content)
    out.append(line[last:])
    return "".join(out), spans


def render(source: str) -> Styled:
    """Parse ``source``; text that uses no marker comes back unchanged and unstyled."""
    if not any(mark in source for mark in "*_`\\"):
        return Styled(source)
    lines = source.split("\n")
    shown: list[str] = []
    spans: list[tuple[int, int, Style]] = []
    offset = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            close = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"),
                         None)
            if close is not None:
                block = "\n".join(lines[i + 1:close])
                shown.append(block)
                spans.append((offset, offset + len(block), Style.BLOCK))
                offset += len(block) + 1
                i = close + 1
                continue
        text, found = _inline(line, offset)
        shown.append(text)
        spans += found
        offset += len(text) + 1
        i += 1
    return Styled("\n".join(shown), tuple(spans))


def plain(source: str) -> str:
    """The text without its markers (previews, notifications)."""
    return render(source).text


TAGS = {Style.BOLD: ("<b>", "</b>"), Style.ITALIC: ("<i>", "</i>"),
        Style.CODE: ("<code>", "</code>"), Style.BLOCK: ("<pre>", "</pre>")}


def styled_html(styled: Styled, links: list[tuple[int, int, str]]) -> str:
    """``styled`` as HTML with its links as anchors; every character of the text escaped."""
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for start, end, style in styled.spans:
        opens.setdefault(start, []).append(TAGS[style][0])
        closes.setdefault(end, []).insert(0, TAGS[style][1])
    for start, end, url in links:
        opens.setdefault(start, []).append(f'<a href="{escape_html(url)}">')
        closes.setdefault(end, []).insert(0, "</a>")
    parts: list[str] = []
    for i, char in enumerate(styled.text):
        parts += closes.get(i, [])
        parts += opens.get(i, [])
        parts.append("<br>" if char == "\n" else escape_html(char))
    parts += closes.get(len(styled.text), [])
    return f'<div style="white-space: pre-wrap">{"".join(parts)}</div>'
