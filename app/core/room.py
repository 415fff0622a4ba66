"""Rooms: secrets, invite links, posts on the gossipsub topic and history-sync payloads.

A room is a random 16-byte id and a 32-byte secretbox key; whoever holds both is a member.
Every post is signed by its author's Ed25519 identity key, then sealed with the room key, so
gossip relays and sync responders carry posts they can neither read nor forge. The author
signs the room id too, so a post cannot be replayed into another room that shares a key.

This module only turns payloads into bytes and back (see docs/protocol.md, section 8); the
gossipsub plumbing and varint framing live in ``app.node``. It never trusts a length or a field
from a peer: every failure is a ``RoomError`` raised in the order documented on ``decode_post``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import nacl.exceptions
import nacl.secret
import nacl.signing
import nacl.utils

from app.core.identity import (
    Identity,
    is_valid_peer_id,
    peer_id_from_public_key,
    public_key_from_peer_id,
)
from app.core.invite import (
    MAX_ADDR_LENGTH,
    MAX_LINK_LENGTH,
    SCHEME,
    InvalidInvite,
    clean_display_name,
    well_formed_addr,
)

ROOM_ID_SIZE = 16
ROOM_KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE  # 32
POST_ID_SIZE = 16
NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE  # 24
MAC_SIZE = nacl.secret.SecretBox.MACBYTES  # 16
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32

VERSION = 1
KIND_TEXT = 1
KIND_ANNOUNCE = 2
KIND_FILE = 3
KINDS = frozenset({KIND_TEXT, KIND_ANNOUNCE, KIND_FILE})

MAX_POST_TEXT_BYTES = 65536
MAX_ANNOUNCE_BYTES = 4096
MAX_ANNOUNCE_ADDRS = 16
MAX_FILE_BYTES = 8192
MAX_ENVELOPE = 70 * 1024
MAX_NAME = 64  # characters, as for display names
MAX_DESCRIPTION = 280  # characters
MAX_VIA = 8
MAX_U64 = 2**64 - 1

# The numbers of a post are u64 on the wire, but every member stores them as SQLite's i64 and
# keeps counting from them: a receiver refuses a post above these bounds (8.6, check 8).
MAX_LAMPORT = 2**62  # half of i64: room to count past any accepted post
MAX_LAMPORT_STEP = 2**32  # how far a post may lead the highest lamport a member holds
MAX_AUTHOR_SEQ = 2**32 - 1  # posts per author per room
MAX_SENT_AT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z: later is not a plausible clock

TOPIC_PREFIX = "/kith/room/1/"
TOPIC_CONTEXT = b"kith-room-topic-v1"
SIGNATURE_CONTEXT = b"kith-room-v1\x00"

# Inner plaintext layout (big-endian): version, post_id, room_id, author key, lamport,
# author_seq, sent_at_ms, kind; then the body, then the signature.
_HEADER = struct.Struct(">B16s16s32sQQQB")
HEADER_SIZE = _HEADER.size  # 90
_ENVELOPE_OVERHEAD = 1 + NONCE_SIZE + MAC_SIZE  # 41
MIN_ENVELOPE = _ENVELOPE_OVERHEAD + HEADER_SIZE + SIGNATURE_SIZE  # 195, an empty body

SYNC_PROTOCOL_ID = "/kith/sync/1.0.0"
SYNC_VERSION = 1
MAX_SYNC_AUTHORS = 4096
MAX_SYNC_PAGE = 500
_SYNC_ENTRY = struct.Struct(">32sQ")  # author key, have_seq
MAX_SYNC_REQUEST = 16 + 24 + 16 + 1 + 2 + MAX_SYNC_AUTHORS * 40 + 2  # 163901
_MIN_SYNC_REQUEST = ROOM_ID_SIZE + NONCE_SIZE + MAC_SIZE + 1 + 2 + 2  # 61: no authors
SYNC_POST = 0x01
SYNC_END = 0x02
MAX_SYNC_RESPONSE = 1 + MAX_ENVELOPE  # largest response frame payload

# /kith/sync/2.0.0: the requester lists the author_seq ranges it holds (8.9).
SYNC2_PROTOCOL_ID = "/kith/sync/2.0.0"
SYNC2_VERSION = 2
MAX_SYNC_RANGES = 8192  # ranges in one request, all authors together
SYNC_FLAG_CONFLICTS = 0x01
_SYNC2_HEAD = struct.Struct(">BBHH")  # version, flags, page_limit, author count
_SYNC2_AUTHOR = struct.Struct(">32sH")  # author key, range count
_SYNC2_RANGE = struct.Struct(">II")  # first, last author_seq held (inclusive)
MAX_SYNC2_REQUEST = (ROOM_ID_SIZE + NONCE_SIZE + MAC_SIZE + _SYNC2_HEAD.size
                     + MAX_SYNC_AUTHORS * _SYNC2_AUTHOR.size
                     + MAX_SYNC_RANGES * _SYNC2_RANGE.size)  # 204862
_MIN_SYNC2_REQUEST = ROOM_ID_SIZE + NONCE_SIZE + MAC_SIZE + _SYNC2_HEAD.size  # 62

_HEX_ROOM_ID = re.compile(r"[0-9a-fA-F]{32}")
_B64URL_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


class RoomError(ValueError):
    """A room payload that cannot be used; the message is short and plain."""


class MalformedPost(RoomError):
    """Bytes that do not follow the post layout or break a body rule."""


class WrongRoomKey(RoomError):
    """The secretbox did not open: another room's key, or altered on the way."""


class WrongRoom(RoomError):
    """Sealed with this room's key but signed for another room: a replayed post."""


class BadSignature(RoomError):
    """The author's signature does not cover these bytes."""


class UnsupportedKind(RoomError):
    """A kind of post this version does not know (checked after the signature)."""


class OutOfRange(MalformedPost):
    """A post whose lamport, author_seq or sent_at is beyond what members can store."""


class MalformedSync(RoomError):
    """A sync request or response frame that breaks the layout or its limits."""


# ---- room secrets and invites ---------------------------------------------------------------


@dataclass(frozen=True)
class RoomSecrets:
    """What makes someone a member: the room id and the room key."""

    room_id: bytes
    key: bytes

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

    def _box(self) -> nacl.secret.SecretBox:
        return nacl.secret.SecretBox(self.key)


def _clean_name(name: str) -> str:
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


def _via_peer_id(addr: str) -> str | None:
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
        return SCHEME + "room?" + urlencode(query, quote_via=quote, safe="/")


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
    name = _clean_name(params.get("name", [""])[0])
    if not name:
        raise InvalidInvite("the invite is missing the room's name")
    description = clean_description(params.get("desc", [""])[0])
    via = params.get("via", [])
    if len(via) > MAX_VIA:
        raise InvalidInvite(f"the invite lists too many members to connect to (over {MAX_VIA})")
    for addr in via:
        if _via_peer_id(addr) is None:
            raise InvalidInvite(f"the invite carries a malformed member address: {addr[:40]!r}")
    secrets = RoomSecrets(bytes.fromhex(ids[0]), key)
    return RoomInvite(secrets=secrets, name=name, description=description, via=tuple(via))


# ---- posts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Announce:
    """A member's presence: display name and full multiaddrs (each ending /p2p/<author>)."""

    name: str
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class RoomPost:
    """A decrypted, verified post; ``author`` is a peer id."""

    post_id: bytes
    room_id: bytes
    author: str
    lamport: int
    author_seq: int
    sent_at_ms: int
    kind: int
    body: bytes

    @property
    def author_key(self) -> bytes:
        return public_key_from_peer_id(self.author)

    @property
    def text(self) -> str:
        if self.kind != KIND_TEXT:
            raise ValueError("not a text post")
        return self.body.decode("utf-8")

    @property
    def announce(self) -> Announce:
        if self.kind != KIND_ANNOUNCE:
            raise ValueError("not an announce")
        return _parse_announce(self.body, self.author)

    @property
    def order_key(self) -> tuple[int, bytes, bytes]:
        """The total order every member shows: lamport, then author key, then post id."""
        return (self.lamport, self.author_key, self.post_id)

    @property
    def precedence(self) -> tuple[bytes, int, bytes]:
        """Which of two conflicting posts of one author every member keeps: the lower."""
        return precedence(self.post_id, self.room_id, self.author_key, self.lamport,
                          self.author_seq, self.sent_at_ms, self.kind, self.body)

    def same_content(self, other: RoomPost) -> bool:
        """The same signed post (perhaps sealed again under another nonce)."""
        return self.precedence == other.precedence


def new_post_id() -> bytes:
    """A random id; 128 bits make collisions moot."""
    return os.urandom(POST_ID_SIZE)


def next_lamport(seen_max: int) -> int:
    """The lamport of one's next post: one more than the highest seen in the room.

    Saturates at ``MAX_LAMPORT`` so that a member who published the maximum cannot stop others
    from posting; ties are then broken by author key and post id like any other.
    """
    if seen_max < 0:
        raise ValueError("lamport clocks are not negative")
    return min(seen_max + 1, MAX_LAMPORT)


def check_numbers(lamport: int, author_seq: int, sent_at_ms: int) -> None:
    """Refuse (``OutOfRange``) numbers that a member could not store and count from."""
    if not 0 <= lamport <= MAX_LAMPORT:
        raise OutOfRange(f"the post's lamport is beyond {MAX_LAMPORT}")
    if not 0 <= author_seq <= MAX_AUTHOR_SEQ:
        raise OutOfRange(f"the post's author_seq is beyond {MAX_AUTHOR_SEQ}")
    if not 0 <= sent_at_ms <= MAX_SENT_AT_MS:
        raise OutOfRange("the post's sent_at is not a plausible time (after the year 2100)")


def _check_u64(name: str, value: int) -> None:
    if not 0 <= value <= MAX_U64:
        raise ValueError(f"{name} must fit in an unsigned 64-bit integer")


def _json_object(body: bytes, limit: int, what: str) -> dict[str, Any]:
    if len(body) > limit:
        raise MalformedPost(f"the {what} is too large")
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedPost(f"the {what} is not valid UTF-8") from None
    except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
        raise MalformedPost(f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedPost(f"the {what} is not a JSON object")
    return value


def _parse_announce(body: bytes, author: str) -> Announce:
    value = _json_object(body, MAX_ANNOUNCE_BYTES, "announce")
    name, addrs = value.get("name"), value.get("addrs")
    if not isinstance(name, str) or not isinstance(addrs, list):
        raise MalformedPost("the announce needs a name and a list of addresses")
    if len(addrs) > MAX_ANNOUNCE_ADDRS:
        raise MalformedPost("the announce lists too many addresses")
    for addr in addrs:
        if not well_formed_addr(addr) or _via_peer_id(addr) != author:
            raise MalformedPost("the announce carries a malformed address")
    return Announce(name=_clean_name(name), addrs=tuple(addrs))


def _check_body(kind: int, body: bytes, author_seq: int, author: str) -> None:
    """The rules of a known kind, shared by the encoder and the decoder."""
    if kind == KIND_ANNOUNCE:
        if author_seq != 0:
            raise MalformedPost("an announce is not stored, so its author_seq must be 0")
        _parse_announce(body, author)
        return
    if author_seq == 0:
        raise MalformedPost("a stored post needs an author_seq of 1 or more")
    if kind == KIND_TEXT:
        if not body:
            raise MalformedPost("the post is empty")
        if len(body) > MAX_POST_TEXT_BYTES:
            raise MalformedPost(
                f"the post is too long ({len(body)} bytes; the limit is {MAX_POST_TEXT_BYTES})"
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPost("the text is not valid UTF-8") from None
    elif kind == KIND_FILE:
        _json_object(body, MAX_FILE_BYTES, "file offer")


def precedence(post_id: bytes, room_id: bytes, author_key: bytes, lamport: int,
               author_seq: int, sent_at_ms: int, kind: int, body: bytes
               ) -> tuple[bytes, int, bytes]:
    """The equivocation rule (8.7): of two different posts by one author with the same
    ``author_seq`` or the same ``post_id``, the one with the lower (post_id, author_seq,
    SHA-256 of the inner plaintext before its signature) is kept by every member."""
    unsigned = _HEADER.pack(VERSION, post_id, room_id, author_key, lamport, author_seq,
                            sent_at_ms, kind) + body
    return (post_id, author_seq, hashlib.sha256(unsigned).digest())


def _signed_part(inner_without_signature: bytes) -> bytes:
    return SIGNATURE_CONTEXT + inner_without_signature


def encode_inner(
    identity: Identity,
    room_id: bytes,
    body: bytes,
    *,
    kind: int,
    post_id: bytes,
    lamport: int,
    author_seq: int,
    sent_at_ms: int,
    version: int = VERSION,
) -> bytes:
    """The signed inner plaintext, without limits on body or kind (tests build bad ones)."""
    if len(post_id) != POST_ID_SIZE:
        raise ValueError(f"a post id is {POST_ID_SIZE} bytes")
    if len(room_id) != ROOM_ID_SIZE:
        raise ValueError(f"a room id is {ROOM_ID_SIZE} bytes")
    _check_u64("lamport", lamport)
    _check_u64("author_seq", author_seq)
    _check_u64("sent_at_ms", sent_at_ms)
    header = _HEADER.pack(
        version, post_id, room_id, identity.public_key, lamport, author_seq, sent_at_ms, kind
    )
    unsigned = header + body
    return unsigned + identity.sign(_signed_part(unsigned))


def seal_inner(secrets: RoomSecrets, inner: bytes, nonce: bytes | None = None) -> bytes:
    """Seal any inner plaintext with the room key as an envelope (version byte included)."""
    if nonce is None:
        nonce = nacl.utils.random(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    # PyNaCl returns nonce || MAC || ciphertext, which is the envelope after its version byte.
    return bytes([VERSION]) + bytes(secrets._box().encrypt(inner, nonce))


def encode_post(
    identity: Identity,
    secrets: RoomSecrets,
    *,
    kind: int,
    body: bytes,
    lamport: int,
    author_seq: int,
    sent_at_ms: int,
    post_id: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A whole envelope, refused (RoomError) if a receiver would refuse it."""
    if kind not in KINDS:
        raise UnsupportedKind(f"unsupported post kind {kind}")
    _check_body(kind, body, author_seq, identity.peer_id)
    _check_u64("lamport", lamport)
    _check_u64("author_seq", author_seq)
    _check_u64("sent_at_ms", sent_at_ms)
    check_numbers(lamport, author_seq, sent_at_ms)
    inner = encode_inner(
        identity,
        secrets.room_id,
        body,
        kind=kind,
        post_id=new_post_id() if post_id is None else post_id,
        lamport=lamport,
        author_seq=author_seq,
        sent_at_ms=sent_at_ms,
    )
    envelope = seal_inner(secrets, inner, nonce)
    if len(envelope) > MAX_ENVELOPE:  # cannot happen with the body limits above
        raise MalformedPost("the post is too large")
    return envelope


def encode_text_post(
    identity: Identity,
    secrets: RoomSecrets,
    text: str,
    *,
    lamport: int,
    author_seq: int,
    sent_at_ms: int,
    post_id: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A text post's envelope."""
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a broken clipboard
        raise MalformedPost("the text is not valid Unicode") from None
    return encode_post(
        identity,
        secrets,
        kind=KIND_TEXT,
        body=body,
        lamport=lamport,
        author_seq=author_seq,
        sent_at_ms=sent_at_ms,
        post_id=post_id,
        nonce=nonce,
    )


def encode_announce(
    identity: Identity,
    secrets: RoomSecrets,
    name: str,
    addrs: list[str] | tuple[str, ...],
    *,
    lamport: int,
    sent_at_ms: int,
    post_id: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """An announce (author_seq 0); an address without ``/p2p/`` gets our own peer id appended."""
    suffix = "/p2p/" + identity.peer_id
    full = [a if _via_peer_id(a) is not None else a + suffix for a in addrs]
    body = json.dumps(
        {"name": _clean_name(name), "addrs": full[:MAX_ANNOUNCE_ADDRS]},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return encode_post(
        identity,
        secrets,
        kind=KIND_ANNOUNCE,
        body=body,
        lamport=lamport,
        author_seq=0,
        sent_at_ms=sent_at_ms,
        post_id=post_id,
        nonce=nonce,
    )


def decode_post(secrets: RoomSecrets, envelope: bytes) -> RoomPost:
    """Open, check and parse an envelope from the topic or from sync (they are checked alike).

    Checks run in this order and stop at the first failure: envelope size and version
    (MalformedPost), secretbox (WrongRoomKey), inner size and version (MalformedPost), room id
    (WrongRoom), signature (BadSignature), kind (UnsupportedKind), the kind's body and
    author_seq rules (MalformedPost), then the numbers' bounds (OutOfRange, a MalformedPost).
    Nothing from the body is read before the signature holds.
    """
    if len(envelope) > MAX_ENVELOPE:
        raise MalformedPost("the post is too large")
    if len(envelope) < MIN_ENVELOPE:
        raise MalformedPost("the post is too short")
    if envelope[0] != VERSION:
        raise MalformedPost(f"unsupported envelope version {envelope[0]}")
    nonce = envelope[1 : 1 + NONCE_SIZE]
    try:
        inner = secrets._box().decrypt(bytes(envelope[1 + NONCE_SIZE :]), bytes(nonce))
    except nacl.exceptions.CryptoError:
        raise WrongRoomKey("the post could not be decrypted with this room's key") from None
    if inner[0] != VERSION:
        raise MalformedPost(f"unsupported post version {inner[0]}")
    header = _HEADER.unpack_from(inner)
    _, post_id, room_id, author_key, lamport, author_seq, sent_at_ms, kind = header
    if room_id != secrets.room_id:
        raise WrongRoom("the post belongs to another room")
    unsigned, signature = inner[:-SIGNATURE_SIZE], inner[-SIGNATURE_SIZE:]
    try:
        nacl.signing.VerifyKey(author_key).verify(_signed_part(unsigned), signature)
    except nacl.exceptions.CryptoError:
        raise BadSignature("the author's signature does not match") from None
    if kind not in KINDS:
        raise UnsupportedKind(f"unsupported post kind {kind}")
    author = peer_id_from_public_key(author_key)
    body = unsigned[HEADER_SIZE:]
    _check_body(kind, body, author_seq, author)
    check_numbers(lamport, author_seq, sent_at_ms)
    return RoomPost(
        post_id=post_id,
        room_id=room_id,
        author=author,
        lamport=lamport,
        author_seq=author_seq,
        sent_at_ms=sent_at_ms,
        kind=kind,
        body=body,
    )


# ---- history sync: /kith/sync/1.0.0 ---------------------------------------------------------


@dataclass(frozen=True)
class SyncRequest:
    """What the requester holds: author key -> highest author_seq with no gap before it."""

    have: dict[bytes, int]
    page_limit: int


@dataclass(frozen=True)
class SyncPostFrame:
    """One stored post, exactly the envelope as it was published."""

    envelope: bytes


@dataclass(frozen=True)
class SyncEnd:
    """The last frame of a response; ``more`` means the page limit was hit: ask again."""

    more: bool


def encode_sync_request(
    secrets: RoomSecrets,
    have: dict[bytes, int],
    page_limit: int,
    nonce: bytes | None = None,
) -> bytes:
    """A request payload; authors are written in ascending key order so it is deterministic."""
    if len(have) > MAX_SYNC_AUTHORS:
        raise ValueError(f"a sync request names at most {MAX_SYNC_AUTHORS} authors")
    if not 1 <= page_limit <= MAX_SYNC_PAGE:
        raise ValueError(f"page_limit must be between 1 and {MAX_SYNC_PAGE}")
    entries = []
    for author, seq in sorted(have.items()):
        if len(author) != PUBLIC_KEY_SIZE:
            raise ValueError("an Ed25519 public key is 32 bytes")
        _check_u64("have_seq", seq)
        entries.append(_SYNC_ENTRY.pack(author, seq))
    body = struct.pack(">BH", SYNC_VERSION, len(have)) + b"".join(entries)
    body += struct.pack(">H", page_limit)
    return _seal_sync_request(secrets, body, nonce)


def sync_request_room_id(payload: bytes, version: int = SYNC_VERSION) -> bytes:
    """The clear room id of a request, so the responder can look up the key."""
    low, high = ((_MIN_SYNC_REQUEST, MAX_SYNC_REQUEST) if version == SYNC_VERSION
                 else (_MIN_SYNC2_REQUEST, MAX_SYNC2_REQUEST))
    if not low <= len(payload) <= high:
        raise MalformedSync("sync request of the wrong size")
    return bytes(payload[:ROOM_ID_SIZE])


def _open_sync_request(secrets: RoomSecrets, payload: bytes, version: int) -> bytes:
    if sync_request_room_id(payload, version) != secrets.room_id:
        raise WrongRoomKey("the request is for another room")
    nonce = payload[ROOM_ID_SIZE : ROOM_ID_SIZE + NONCE_SIZE]
    try:
        return secrets._box().decrypt(bytes(payload[ROOM_ID_SIZE + NONCE_SIZE :]), bytes(nonce))
    except nacl.exceptions.CryptoError:
        raise WrongRoomKey("the request could not be decrypted with this room's key") from None


def _seal_sync_request(secrets: RoomSecrets, body: bytes, nonce: bytes | None) -> bytes:
    if nonce is None:
        nonce = nacl.utils.random(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    return secrets.room_id + bytes(secrets._box().encrypt(body, nonce))


def decode_sync_request(secrets: RoomSecrets, payload: bytes) -> SyncRequest:
    """Open and parse a request; opening it proves the requester holds the room key.

    Checks: size (MalformedSync), room id is ours and the box opens (WrongRoomKey), then the
    body layout (MalformedSync): version 1, count <= MAX_SYNC_AUTHORS, exact length, no
    duplicate author, 1 <= page_limit <= MAX_SYNC_PAGE.
    """
    body = _open_sync_request(secrets, payload, SYNC_VERSION)
    if len(body) < 5:
        raise MalformedSync("sync request too short")
    version, count = struct.unpack_from(">BH", body)
    if version != SYNC_VERSION:
        raise MalformedSync(f"unsupported sync version {version}")
    if count > MAX_SYNC_AUTHORS:
        raise MalformedSync("the sync request names too many authors")
    if len(body) != 3 + count * _SYNC_ENTRY.size + 2:
        raise MalformedSync("sync request of the wrong length")
    have: dict[bytes, int] = {}
    for author, seq in _SYNC_ENTRY.iter_unpack(body[3 : 3 + count * _SYNC_ENTRY.size]):
        if author in have:
            raise MalformedSync("the sync request names an author twice")
        have[author] = seq
    (page_limit,) = struct.unpack_from(">H", body, len(body) - 2)
    if not 1 <= page_limit <= MAX_SYNC_PAGE:
        raise MalformedSync("the sync request's page limit is out of range")
    return SyncRequest(have=have, page_limit=page_limit)


Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class RangeSyncRequest:
    """A /kith/sync/2.0.0 request: author key -> the author_seq ranges the requester holds.

    ``conflicts`` asks the responder to send, besides what is missing, its post at each
    (author, author_seq) where it saw an equivocation (8.7), so a requester holding the losing
    post learns the winner.
    """

    held: dict[bytes, Ranges]
    page_limit: int
    conflicts: bool = False


def _check_ranges(ranges: Ranges) -> None:
    """Canonical ranges: ascending, each 1 <= first <= last <= MAX_AUTHOR_SEQ, and a gap of
    at least one number between neighbours (touching ranges are written as one)."""
    if not ranges:
        raise MalformedSync("an author is listed without ranges")
    previous = -1
    for first, last in ranges:
        if not 1 <= first <= last <= MAX_AUTHOR_SEQ or first <= previous + 1:
            raise MalformedSync("the sync request's ranges are not canonical")
        previous = last


def encode_range_sync_request(
    secrets: RoomSecrets,
    held: dict[bytes, Ranges],
    page_limit: int,
    *,
    conflicts: bool = False,
    nonce: bytes | None = None,
) -> bytes:
    """A /kith/sync/2.0.0 request payload; authors in ascending key order."""
    if len(held) > MAX_SYNC_AUTHORS:
        raise ValueError(f"a sync request names at most {MAX_SYNC_AUTHORS} authors")
    if sum(len(r) for r in held.values()) > MAX_SYNC_RANGES:
        raise ValueError(f"a sync request lists at most {MAX_SYNC_RANGES} ranges")
    if not 1 <= page_limit <= MAX_SYNC_PAGE:
        raise ValueError(f"page_limit must be between 1 and {MAX_SYNC_PAGE}")
    flags = SYNC_FLAG_CONFLICTS if conflicts else 0
    parts = [_SYNC2_HEAD.pack(SYNC2_VERSION, flags, page_limit, len(held))]
    for author, ranges in sorted(held.items()):
        if len(author) != PUBLIC_KEY_SIZE:
            raise ValueError("an Ed25519 public key is 32 bytes")
        try:
            _check_ranges(ranges)
        except MalformedSync as exc:
            raise ValueError(str(exc)) from None
        parts.append(_SYNC2_AUTHOR.pack(author, len(ranges)))
        parts.extend(_SYNC2_RANGE.pack(first, last) for first, last in ranges)
    return _seal_sync_request(secrets, b"".join(parts), nonce)


def decode_range_sync_request(secrets: RoomSecrets, payload: bytes) -> RangeSyncRequest:
    """Open and parse a /kith/sync/2.0.0 request (8.9).

    Checks: size (MalformedSync), room id is ours and the box opens (WrongRoomKey), then the
    body (MalformedSync): version 2, 1 <= page_limit <= MAX_SYNC_PAGE, at most
    MAX_SYNC_AUTHORS authors in strictly ascending key order, each with canonical ranges, at
    most MAX_SYNC_RANGES ranges in all, and nothing after the last range. Unknown flag bits
    are ignored.
    """
    body = _open_sync_request(secrets, payload, SYNC2_VERSION)
    if len(body) < _SYNC2_HEAD.size:
        raise MalformedSync("sync request too short")
    version, flags, page_limit, count = _SYNC2_HEAD.unpack_from(body)
    if version != SYNC2_VERSION:
        raise MalformedSync(f"unsupported sync version {version}")
    if not 1 <= page_limit <= MAX_SYNC_PAGE:
        raise MalformedSync("the sync request's page limit is out of range")
    if count > MAX_SYNC_AUTHORS:
        raise MalformedSync("the sync request names too many authors")
    held: dict[bytes, Ranges] = {}
    offset, total, previous = _SYNC2_HEAD.size, 0, b""
    for _ in range(count):
        if len(body) < offset + _SYNC2_AUTHOR.size:
            raise MalformedSync("sync request of the wrong length")
        author, n = _SYNC2_AUTHOR.unpack_from(body, offset)
        offset += _SYNC2_AUTHOR.size
        if author <= previous:
            raise MalformedSync("the sync request's authors are not in ascending order")
        total += n
        if total > MAX_SYNC_RANGES:
            raise MalformedSync("the sync request lists too many ranges")
        end = offset + n * _SYNC2_RANGE.size
        if len(body) < end:
            raise MalformedSync("sync request of the wrong length")
        ranges = tuple(_SYNC2_RANGE.iter_unpack(body[offset:end]))
        _check_ranges(ranges)
        held[author] = ranges
        offset, previous = end, author
    if offset != len(body):
        raise MalformedSync("sync request of the wrong length")
    return RangeSyncRequest(held=held, page_limit=page_limit,
                            conflicts=bool(flags & SYNC_FLAG_CONFLICTS))


def encode_sync_post(envelope: bytes) -> bytes:
    """POST frame payload around a stored envelope."""
    if not MIN_ENVELOPE <= len(envelope) <= MAX_ENVELOPE:
        raise ValueError("not an envelope of a valid size")
    return bytes([SYNC_POST]) + envelope


def encode_sync_end(more: bool) -> bytes:
    """END frame payload: the last frame of every response."""
    return bytes([SYNC_END, 1 if more else 0])


def decode_sync_response(payload: bytes) -> SyncPostFrame | SyncEnd:
    """Parse one response frame; the envelope inside still goes through ``decode_post``."""
    if not payload:
        raise MalformedSync("empty sync frame")
    if payload[0] == SYNC_POST:
        if not MIN_ENVELOPE <= len(payload) - 1 <= MAX_ENVELOPE:
            raise MalformedSync("sync POST frame of the wrong size")
        return SyncPostFrame(bytes(payload[1:]))
    if payload[0] == SYNC_END:
        if len(payload) != 2 or payload[1] not in (0, 1):
            raise MalformedSync("malformed sync END frame")
        return SyncEnd(more=payload[1] == 1)
    raise MalformedSync("not a sync response frame")
