"""A message's text laid out for its bubble: Markdown styles and links as format ranges.

``styled_text`` decides what is shown (``app.core.markdown``) and where the links are (never
inside code); ``lay_out`` wraps it to a width in a ``QTextLayout`` whose format ranges paint the
styles and links, so what is painted and what a click finds are one object.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextLayout, QTextOption

from app.core.markdown import Style, Styled, render
from ui.conversation.links import find_links, kith_label
from ui.style import palette as pal

Links = list[tuple[int, int, str]]


def styled_text(text: str) -> tuple[Styled, Links]:
    """The text as shown (its Markdown applied) and its links, outside code; a ``kith:`` link
    is shown by what it does ("Join the room “Walks”"), not as its long query string."""
    styled = render(text)
    links = [link for link in find_links(styled.text) if not styled.in_code(*link[:2])]
    return _labelled(styled, links)


def _labelled(styled: Styled, links: Links) -> tuple[Styled, Links]:
    """``styled`` with each ``kith:`` link's text replaced by its label; every span and link
    after it moves with it (a style around the link stretches to cover the label)."""
    text, spans, out = styled.text, list(styled.spans), list(links)
    for i in range(len(out) - 1, -1, -1):
        start, end, url = out[i]
        label = kith_label(url)
        if label is None:
            continue
        delta = len(label) - (end - start)
        text = text[:start] + label + text[end:]
        spans = [(a + delta if a >= end else a, b + delta if b >= end else b, style)
                 for a, b, style in spans]
        out[i] = (start, start + len(label), url)
        out[i + 1:] = [(a + delta, b + delta, u) for a, b, u in out[i + 1:]]
    if text is styled.text:
        return styled, links
    return Styled(text, tuple(spans)), out


@dataclass(frozen=True)
class Colours:
    bubble: QColor
    text: QColor
    link: QColor


@dataclass
class LaidOut:
    layout: QTextLayout
    height: float      # of all lines
    widest: float      # the widest line's natural width
    last: float        # the last line's natural width (the time may fit beside it)


def _range(start: int, end: int, fmt: QTextCharFormat) -> QTextLayout.FormatRange:
    span = QTextLayout.FormatRange()
    span.start, span.length, span.format = start, end - start, fmt
    return span


def formats(styled: Styled, links: Links, mono: QFont, colours: Colours
            ) -> list[QTextLayout.FormatRange]:
    ranges = []
    for start, end, style in styled.spans:
        fmt = QTextCharFormat()
        if style is Style.BOLD:
            fmt.setFontWeight(QFont.Weight.Bold)
        elif style is Style.ITALIC:
            fmt.setFontItalic(True)
        else:  # code: monospace on a tint of the bubble
            fmt.setFontFamilies([mono.family()])
            fmt.setBackground(pal.mix(colours.bubble, colours.text, 0.12))
        ranges.append(_range(start, end, fmt))
    for start, end, _ in links:
        fmt = QTextCharFormat()
        fmt.setForeground(colours.link)
        fmt.setFontUnderline(True)
        ranges.append(_range(start, end, fmt))
    return ranges


def lay_out(styled: Styled, links: Links, font: QFont, mono: QFont, colours: Colours,
            width: int) -> LaidOut:
    """Wrap ``styled`` to ``width`` pixels, styles and links applied."""
    layout = QTextLayout(styled.text.replace("\n", "\u2028"), font)  # breaks on U+2028 only
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    ranges = formats(styled, links, mono, colours)
    if ranges:
        layout.setFormats(ranges)
    layout.setCacheEnabled(True)
    layout.beginLayout()
    y, widest, last = 0.0, 0.0, 0.0
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        line.setPosition(QPointF(0, y))
        y += line.height()
        last = line.naturalTextWidth()
        widest = max(widest, last)
    layout.endLayout()
    return LaidOut(layout, y, widest, last)
