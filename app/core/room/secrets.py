"""A room's secrets and its invite links.

A room is a random 16-byte id and a 32-byte secretbox key; whoever holds both is a member. A
room link carries both, with the room's name and description and a few members to connect to,
so it is a secret (docs/protocol.md, section 8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, quote, urlencode

import nacl.secret
import nacl.utils

from app.core.identity import (
    is_valid_peer_id,
)
from app.core.invite import (
    MAX_ADDR_LENGTH,
    MAX_LINK_LENGTH,
    SCHEME,
    InvalidInvite,
    clean_display_name,
)

ROOM_ID_SIZE = 16
ROOM_KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE  # 32
NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE  # 24
MAC_SIZE = nacl.secret.SecretBox.MACBYTES  # 16
MAX_NAME = 64  # characters, as for display names
MAX_DESCRIPTION = 280  # characters
MAX_VIA = 8
TOPIC_PREFIX = "/kith/room/1/"
TOPIC_CONTEXT = b"kith-room-topic-v1"

_HEX_ROOM_ID = re.compile(r"[0-9a-fA-F]{32}")
_B64URL_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class RoomSecrets:
    """What makes someone a member: the room id and the room key."""

    room_id: bytes
    key: bytes
    # A governed room's epoch keys held (epoch id -> key, docs/protocol.md 8.12), and the one
    # our posts are sealed with; neither changes what the room is (equality, hash).
    epochs: Mapping[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)
    current_epoch: bytes | None = field(default=None, compare=False, repr=False)

    def with_epochs(self, epochs: Mapping[bytes, bytes], current: bytes | None) -> RoomSecrets:
        """These secrets holding ``epochs``, sealing new posts with ``current``."""
        return replace(self, epochs=dict(epochs), current_epoch=current)

    def __post_init__(self) -> None:
        if not isinstance(self.room_id, bytes) or len(self.room_id) != ROOM_ID_SIZE:
            raise ValueError(f"a room id is {ROOM_ID_SIZE} bytes")
        if not isinstance(self.key, bytes) or len(self.key) != ROOM_KEY_SIZE:
            raise ValueError(f"a room key is {ROOM_KEY_SIZE} bytes")

    def __repr__(self) -> str:
        # Keep the key out of logs and tracebacks.
        return f"RoomSecrets(room_id={self.id_hex}, key=<hidden>)"

    @classmethod
    def generate(cls) -> RoomSecrets:
        return cls(os.urandom(ROOM_ID_SIZE), nacl.utils.random(ROOM_KEY_SIZE))

    @property
    def id_hex(self) -> str:
        return self.room_id.hex()

    @property
    def topic(self) -> str:
        """The gossipsub topic: a hash, so subscriptions reveal neither the id nor the key."""
        digest = hashlib.sha256(TOPIC_CONTEXT + self.room_id).hexdigest()
        return TOPIC_PREFIX + digest[:32]

    @property
    def key_b64(self) -> str:
        """The key as it appears in invite links: base64url without padding (43 characters)."""
        return base64.urlsafe_b64encode(self.key).rstrip(b"=").decode("ascii")

    def box(self) -> nacl.secret.SecretBox:
        """The room key as a secretbox: what seals posts and sync requests."""
        return nacl.secret.SecretBox(self.key)


def clean_name(name: str) -> str:
    """A cleaned display name, or "" when nothing printable is left."""
    try:
        return clean_display_name(name)
    except ValueError:
        return ""


def clean_description(text: str) -> str:
    """Printable text on one line, up to MAX_DESCRIPTION chars.

    Unlike display names, line breaks and tabs become spaces first, so lines do not run together.
    """
    kept = "".join(ch if ch.isprintable() else " " if ch.isspace() else "" for ch in text)
    return " ".join(kept.split())[:MAX_DESCRIPTION].rstrip()


def via_peer_id(addr: str) -> str | None:
    """The peer id after the final ``/p2p/`` of a full multiaddr, or None."""
    if not addr.startswith("/") or len(addr) > MAX_ADDR_LENGTH:
        return None
    head, sep, peer_id = addr.rpartition("/p2p/")
    if not sep or not head or not is_valid_peer_id(peer_id):
        return None
    return peer_id


@dataclass(frozen=True)
class RoomInvite:
    """A room link: the secrets, a name and description, and members to connect to."""

    secrets: RoomSecrets
    name: str
    description: str = ""
    via: tuple[str, ...] = field(default_factory=tuple)
    # A governed room's invite token (docs/protocol.md 8.12): the seed of the invite's key,
    # which signs the join; None for an open link.
    invite_seed: bytes | None = field(default=None, repr=False)

    def to_link(self) -> str:
        """The link to share; it carries the room key, so it is a secret."""
        query: list[tuple[str, str]] = [
            ("id", self.secrets.id_hex),
            ("key", self.secrets.key_b64),
            ("name", self.name),
        ]
        if self.description:
            query.append(("desc", self.description))
        query.extend(("via", v) for v in self.via[:MAX_VIA])
        if self.invite_seed is not None:
            query.append(("inv", base64.urlsafe_b64encode(self.invite_seed).rstrip(b"=")
                          .decode("ascii")))
        return SCHEME + "room?" + urlencode(query, quote_via=quote, safe="/")


def invitation_text(name: str, link: str) -> str:
    """The direct message that invites a contact into a room: one sentence and the room's link,
    which Kith shows as a card to click (any ``kith:room`` link in a message is one), and which
    reads as plain text in any other client."""
    return f"You are invited to the room “{name}” on Kith:\n{link}"


def _split_link(link: str) -> tuple[str, str]:
    """(kind, query) of a ``kith:`` link, with the checks every kind shares."""
    link = link.strip()
    if len(link) > MAX_LINK_LENGTH:
        raise InvalidInvite("this link is too long to be a Kith invite")
    if not link.lower().startswith(SCHEME):
        raise InvalidInvite("a Kith invite starts with 'kith:'")
    kind, _, query = link[len(SCHEME) :].lstrip("/").partition("?")
    return kind, query


def invite_kind(link: str) -> str:
    """``"contact"`` or ``"room"``, so a pasted link goes to the right dialog."""
    kind, _ = _split_link(link)
    if kind not in ("contact", "room"):
        shown = kind[:20] or "empty"
        raise InvalidInvite(f"this Kith link is neither a contact nor a room invite ({shown})")
    return kind


def _decode_key(text: str) -> bytes | None:
    """The 32-byte key from exactly its canonical 43-character base64url form."""
    if not _B64URL_KEY.fullmatch(text):
        return None
    try:
        key = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        return None
    # 43 characters hold 258 bits: refuse the spellings whose 2 spare bits are not zero.
    if len(key) != ROOM_KEY_SIZE or base64.urlsafe_b64encode(key).rstrip(b"=") != text.encode():
        return None
    return key


def parse_room_invite(link: str) -> RoomInvite:
    """Parse a room link pasted or clicked by the user; errors say what is wrong in plain words."""
    kind, query = _split_link(link)
    if kind != "room":
        raise InvalidInvite(f"this Kith link is not a room invite ({kind[:20] or 'empty'})")
    try:
        params = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_VIA + 8)
    except ValueError:
        raise InvalidInvite("the invite carries too many fields") from None
    ids = params.get("id", [])
    if len(ids) != 1 or not _HEX_ROOM_ID.fullmatch(ids[0]):
        raise InvalidInvite("the invite does not carry a valid room id")
    keys = params.get("key", [])
    key = _decode_key(keys[0]) if len(keys) == 1 else None
    if key is None:
        raise InvalidInvite("the invite does not carry a valid room key")
    name = clean_name(params.get("name", [""])[0])
    if not name:
        raise InvalidInvite("the invite is missing the room's name")
    description = clean_description(params.get("desc", [""])[0])
    via = params.get("via", [])
    if len(via) > MAX_VIA:
        raise InvalidInvite(f"the invite lists too many members to connect to (over {MAX_VIA})")
    for addr in via:
        if via_peer_id(addr) is None:
            raise InvalidInvite(f"the invite carries a malformed member address: {addr[:40]!r}")
    tokens = params.get("inv", [])
    seed = _decode_key(tokens[0]) if len(tokens) == 1 else None
    if tokens and seed is None:
        raise InvalidInvite("the invite carries a malformed invite token")
    secrets = RoomSecrets(bytes.fromhex(ids[0]), key)
    return RoomInvite(secrets=secrets, name=name, description=description, via=tuple(via),
                      invite_seed=seed)
