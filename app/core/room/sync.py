"""History-sync payloads: ``/kith/sync/1.0.0`` and ``/kith/sync/2.0.0`` requests and responses.

A request is sealed with the room key (answering it proves nothing to a non-member, and opening
it proves the requester holds the key); a response is the posts' own envelopes, framed
(docs/protocol.md, 8.8-8.9).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import nacl.exceptions
import nacl.utils

from app.core.room.posts import (
    MAX_AUTHOR_SEQ,
    MAX_ENVELOPE,
    MIN_ENVELOPE,
    PUBLIC_KEY_SIZE,
    RoomError,
    WrongRoomKey,
    check_u64,
)
from app.core.room.secrets import MAC_SIZE, NONCE_SIZE, ROOM_ID_SIZE, RoomSecrets

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


class MalformedSync(RoomError):
    """A sync request or response frame that breaks the layout or its limits."""



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
        check_u64("have_seq", seq)
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
        return secrets.box().decrypt(bytes(payload[ROOM_ID_SIZE + NONCE_SIZE :]), bytes(nonce))
    except nacl.exceptions.CryptoError:
        raise WrongRoomKey("the request could not be decrypted with this room's key") from None


def _seal_sync_request(secrets: RoomSecrets, body: bytes, nonce: bytes | None) -> bytes:
    if nonce is None:
        nonce = nacl.utils.random(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    return secrets.room_id + bytes(secrets.box().encrypt(body, nonce))


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
