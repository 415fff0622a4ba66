"""``escape_html``: what Kith writes into HTML instead of importing ``html``."""

from __future__ import annotations

import html

from app.core.markdown import escape_html


def test_escape_html_is_the_standard_librarys_escape() -> None:
    samples = ("", "plain", "<b>&amp;\"it's\"</b>", "a < b > c & d", "\u00fcn \U0001F600 '\"",
               "".join(chr(c) for c in range(0x20, 0x250)))
    for text in samples:
        assert escape_html(text) == html.escape(text, quote=True)
