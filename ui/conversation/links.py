"""Links in message text: found once, for painting, clicking and the text browser alike.

http(s) URLs, bare ``www.`` addresses (opened as https), and ``kith:`` contact and room links
(opened in Add Contact or Join Room, never handed to the desktop). Punctuation that ends a
sentence, and a ")" that closes something the URL did not open, stay outside the link.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QUrl

from app.core import invite, room

URL_PATTERN = re.compile(r"\bhttps?://[^\s<>\"'`]+|(?<![\w.@/])www\.[^\s<>\"'`]+",
                         re.IGNORECASE)
TRAILING = ".,;:!?'\""


def find_links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every link, in order; a ``www.`` address becomes https."""
    links = []
    for match in URL_PATTERN.finditer(text):
        shown = match.group(0)
        while shown and (shown[-1] in TRAILING
                         or (shown[-1] == ")" and shown.count("(") < shown.count(")"))):
            shown = shown[:-1]
        url = shown if "://" in shown[:8] else "https://" + shown
        host = QUrl(url, QUrl.ParsingMode.StrictMode)
        if len(url) > len("https://") and host.isValid() and "." in host.host():
            links.append((match.start(), match.start() + len(shown), url))
    links += invite.find_links(text)
    return sorted(links)


def is_kith_link(url: str) -> bool:
    return url[:5].lower() == invite.SCHEME


def kith_label(url: str) -> str | None:
    """What a ``kith:`` link does, in words, to show instead of it ("Join the room “Walks”",
    "Add Cleo as a contact"); None for any other link, or one that is not a valid invite (shown
    as it is: clicking it says what is wrong). The name comes from the link, cleaned as every
    name is, and is quoted, so that it reads as the room's name and nothing more."""
    if not is_kith_link(url):
        return None
    try:
        if room.invite_kind(url) == "room":
            return f"Join the room “{room.parse_room_invite(url).name}”"
        contact = invite.parse_invite(url)
    except invite.InvalidInvite:
        return None
    return f"Add “{contact.name}” as a contact" if contact.name else "Add this contact"
