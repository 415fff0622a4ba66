"""Links in message text: found once for painting and clicking, and as HTML for selecting.

Only http(s) URLs count; punctuation that ends a sentence, and a ")" that closes something the
URL did not open, stay outside the link.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QUrl

URL_PATTERN = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
TRAILING = ".,;:!?'\""


def find_links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every http(s) URL, without trailing punctuation or an unpaired ')'."""
    links = []
    for match in URL_PATTERN.finditer(text):
        url = match.group(0)
        while url and (url[-1] in TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url = url[:-1]
        if len(url) > len("https://") and QUrl(url, QUrl.ParsingMode.StrictMode).isValid():
            links.append((match.start(), match.start() + len(url), url))
    return links


def linkified_html(text: str) -> str:
    """The text as HTML with its links as anchors (for the read-only text browser)."""
    parts, last = [], 0
    for start, end, url in find_links(text):
        parts.append(html.escape(text[last:start]))
        parts.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>')
        last = end
    parts.append(html.escape(text[last:]))
    body = "".join(parts).replace("\n", "<br>")
    return f'<div style="white-space: pre-wrap">{body}</div>'
