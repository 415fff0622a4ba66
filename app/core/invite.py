"""``kith:`` contact links: who someone is and where to reach them.

A link looks like ``kith:contact?id=12D3KooW...&name=Ada&addr=/ip4/192.0.2.7/tcp/4001``.
The peer id is what matters: Noise authenticates it on every connection, so a tampered
address can at worst fail to connect, never impersonate. Everything else is a hint, except
``mailboxes``: the owner's signed mailbox record (``app.core.mailbox``), checked against the
peer id before it is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlencode

from app.core.identity import is_valid_peer_id

SCHEME = "kith:"
MAX_LINK_LENGTH = 8192
MAX_ADDRS = 16
MAX_ADDR_LENGTH = 256
MAX_NAME_LENGTH = 64
MAX_MAILBOX_RECORD_TEXT = 2048  # base64url of a signed mailbox record (at most 1105 bytes)


# A contact or room link inside other text: "kith:", the kind, "?" and everything up to the next
# space or quote (percent-encoding keeps spaces and quotes out of a link Kith writes).
LINK_PATTERN = re.compile(r"kith:(?://)?(?:contact|room)\?[^\s<>\"'`«»“”‘’]+", re.IGNORECASE)
LINK_TRAILING = ".,;:!?)]}"


def find_links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, link) of each ``kith:`` contact or room link in ``text``, without the
    punctuation that ends a sentence after it."""
    found = []
    for match in LINK_PATTERN.finditer(text[: 4 * MAX_LINK_LENGTH]):
        link = match.group(0).rstrip(LINK_TRAILING)
        found.append((match.start(), match.start() + len(link), link))
    return found


def find_link(text: str) -> str | None:
    """The first ``kith:`` link in pasted text ("Add me: kith:contact?id=… see you!")."""
    found = find_links(text)
    return found[0][2] if found else None


class InvalidInvite(ValueError):
    """A ``kith:`` link that cannot be used, with a message fit for the user."""


def clean_display_name(name: str) -> str:
    """Trim and bound a display name (docs/protocol.md section 3 says how, character by
    character); raises ``ValueError`` for an empty one."""
    visible = "".join(ch if ch.isprintable() else " " if ch.isspace() else "" for ch in name)
    cleaned = " ".join(visible.split())[:MAX_NAME_LENGTH].rstrip(" ")
    if not cleaned:
        raise ValueError("a display name cannot be empty")
    return cleaned


def well_formed_addr(addr: object) -> bool:
    """An address as a peer may hand one over (a profile answer, a room announce): text that
    starts with "/", at most ``MAX_ADDR_LENGTH`` characters, every one printable. JSON can
    carry a lone surrogate (``\\ud800``), which neither UTF-8 nor SQLite can hold; control
    and format characters have no place in a multiaddress either."""
    return (isinstance(addr, str) and addr.startswith("/") and len(addr) <= MAX_ADDR_LENGTH
            and addr.isprintable())


def strip_p2p(addr: str) -> str:
    """``/ip4/1.2.3.4/tcp/5/p2p/12D3...`` -> ``/ip4/1.2.3.4/tcp/5``; other addresses unchanged."""
    head, sep, tail = addr.rpartition("/p2p/")
    if sep and "/" not in tail:
        return head
    return addr


@dataclass(frozen=True)
class ContactInvite:
    peer_id: str
    name: str = ""
    addrs: tuple[str, ...] = field(default_factory=tuple)
    mailboxes: str = ""  # the signed mailbox record as text, not yet verified

    def to_link(self) -> str:
        query: list[tuple[str, str]] = [("id", self.peer_id)]
        if self.name:
            query.append(("name", self.name))
        query.extend(("addr", a) for a in self.addrs[:MAX_ADDRS])
        if self.mailboxes:
            query.append(("mailboxes", self.mailboxes))
        return SCHEME + "contact?" + urlencode(query, quote_via=quote, safe="/")


def parse_invite(link: str) -> ContactInvite:
    """Parse a link pasted or clicked by the user; errors say what is wrong in plain words."""
    link = link.strip()
    if len(link) > MAX_LINK_LENGTH:
        raise InvalidInvite("this link is too long to be a Kith invite")
    if not link.lower().startswith(SCHEME):
        raise InvalidInvite("a Kith invite starts with 'kith:'")
    rest = link[len(SCHEME):].lstrip("/")
    kind, _, query = rest.partition("?")
    if kind != "contact":
        raise InvalidInvite(f"this Kith link is not a contact invite ({kind or 'empty'})")
    try:
        params = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_ADDRS + 4)
    except ValueError:
        raise InvalidInvite("the invite carries too many fields") from None
    ids = params.get("id", [])
    if len(ids) != 1 or not is_valid_peer_id(ids[0]):
        raise InvalidInvite("the invite does not carry a valid peer id")
    name = params.get("name", [""])[0]
    name = clean_display_name(name) if name.strip() else ""
    addrs = []
    for addr in params.get("addr", []):
        if not addr.startswith("/") or len(addr) > MAX_ADDR_LENGTH:
            raise InvalidInvite(f"the invite carries a malformed address: {addr[:40]!r}")
        addrs.append(strip_p2p(addr))
    mailboxes = params.get("mailboxes", [""])[0]
    if len(mailboxes) > MAX_MAILBOX_RECORD_TEXT:
        mailboxes = ""  # ignored alone, like a forged one
    return ContactInvite(peer_id=ids[0], name=name, addrs=tuple(addrs), mailboxes=mailboxes)
