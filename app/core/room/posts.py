"""Room posts on the gossipsub topic: signed by their author, sealed with the room key.

Every post is signed by its author's Ed25519 identity key, then sealed with the room key, so
gossip relays and sync responders carry posts they can neither read nor forge. The author
signs the room id too, so a post cannot be replayed into another room that shares a key. It
never trusts a length or a field from a peer: every failure is a ``RoomError`` raised in the
order documented on ``decode_post`` (docs/protocol.md, 8.1-8.7).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.secret
import nacl.signing
import nacl.utils

from app.core.actions import (
    ACTION_KINDS,
    MAX_FEATURES,
    ActionError,
    clean_features,
    decode_action,
)
from app.core.identity import (
    Identity,
    peer_id_from_public_key,
    public_key_from_peer_id,
)
from app.core.invite import well_formed_addr
from app.core.room.secrets import (
    MAC_SIZE,
    NONCE_SIZE,
    ROOM_ID_SIZE,
    RoomSecrets,
    clean_name,
    via_peer_id,
)

POST_ID_SIZE = 16
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32

VERSION = 1
KIND_TEXT = 1
KIND_ANNOUNCE = 2
KIND_FILE = 3
KIND_MEMBERSHIP = 32  # a governed room's membership log entry (8.12)
# Kinds 16-19 are message actions (reply, reaction, edit, delete: app.core.actions).
KINDS = frozenset({KIND_TEXT, KIND_ANNOUNCE, KIND_FILE, KIND_MEMBERSHIP} | ACTION_KINDS)
# Kinds sealed with the link key even in a governed room: whoever holds the link reads the
# log and finds members; everything else is sealed with the current epoch key (8.12).
LINK_KEY_KINDS = frozenset({KIND_ANNOUNCE, KIND_MEMBERSHIP})
EPOCH_VERSION = 2  # the envelope version of a post sealed with an epoch key
EPOCH_ID_SIZE = 16

MAX_POST_TEXT_BYTES = 65536
MAX_ANNOUNCE_BYTES = 4096
MAX_ANNOUNCE_ADDRS = 16
MAX_FILE_BYTES = 8192
MAX_MEMBERSHIP_BYTES = 48 * 1024
MAX_ENVELOPE = 70 * 1024
MAX_U64 = 2**64 - 1

# The numbers of a post are u64 on the wire, but every member stores them as SQLite's i64 and
# keeps counting from them: a receiver refuses a post above these bounds (8.6, check 8).
MAX_LAMPORT = 2**62  # half of i64: room to count past any accepted post
MAX_LAMPORT_STEP = 2**32  # how far a post may lead the highest lamport a member holds
MAX_AUTHOR_SEQ = 2**32 - 1  # posts per author per room
MAX_SENT_AT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z: later is not a plausible clock

SIGNATURE_CONTEXT = b"kith-room-v1\x00"

# Inner plaintext layout (big-endian): version, post_id, room_id, author key, lamport,
# author_seq, sent_at_ms, kind; then the body, then the signature.
_HEADER = struct.Struct(">B16s16s32sQQQB")
HEADER_SIZE = _HEADER.size  # 90
_ENVELOPE_OVERHEAD = 1 + NONCE_SIZE + MAC_SIZE  # 41
MIN_ENVELOPE = _ENVELOPE_OVERHEAD + HEADER_SIZE + SIGNATURE_SIZE  # 195, an empty body


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


class UnknownEpoch(WrongRoomKey):
    """Sealed with an epoch key we do not hold (yet, or ever: we were removed)."""



@dataclass(frozen=True)
class Announce:
    """A member's presence: display name and full multiaddrs (each ending /p2p/<author>)."""

    name: str
    addrs: tuple[str, ...]
    features: frozenset[str] = frozenset()  # what the member's Kith reads (docs/protocol 10.3)


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
    epoch: bytes | None = None  # the epoch key it was sealed with; None: the link key

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


def check_u64(name: str, value: int) -> None:
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
        if not well_formed_addr(addr) or via_peer_id(addr) != author:
            raise MalformedPost("the announce carries a malformed address")
    return Announce(name=clean_name(name), addrs=tuple(addrs),
                    features=clean_features(value.get("features")))


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
    elif kind in ACTION_KINDS:
        try:
            decode_action(kind, body.decode("utf-8"))
        except (ActionError, UnicodeDecodeError) as exc:
            raise MalformedPost(f"the action is malformed: {exc}") from None
    elif kind == KIND_MEMBERSHIP:
        _json_object(body, MAX_MEMBERSHIP_BYTES, "membership entry")


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
    check_u64("lamport", lamport)
    check_u64("author_seq", author_seq)
    check_u64("sent_at_ms", sent_at_ms)
    header = _HEADER.pack(
        version, post_id, room_id, identity.public_key, lamport, author_seq, sent_at_ms, kind
    )
    unsigned = header + body
    return unsigned + identity.sign(_signed_part(unsigned))


def seal_inner(secrets: RoomSecrets, inner: bytes, nonce: bytes | None = None,
               epoch: bytes | None = None) -> bytes:
    """Seal any inner plaintext as an envelope (version byte included): with the room's link
    key, or with the key of ``epoch`` (which ``secrets`` must hold) as a version 2 envelope."""
    if nonce is None:
        nonce = nacl.utils.random(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    # PyNaCl returns nonce || MAC || ciphertext, which is the envelope after its version byte.
    if epoch is None:
        return bytes([VERSION]) + bytes(secrets.box().encrypt(inner, nonce))
    box = nacl.secret.SecretBox(secrets.epochs[epoch])
    return bytes([EPOCH_VERSION]) + epoch + bytes(box.encrypt(inner, nonce))


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
    check_u64("lamport", lamport)
    check_u64("author_seq", author_seq)
    check_u64("sent_at_ms", sent_at_ms)
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
    epoch = None if kind in LINK_KEY_KINDS else secrets.current_epoch
    envelope = seal_inner(secrets, inner, nonce, epoch)
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
    features: Sequence[str] = (),
) -> bytes:
    """An announce (author_seq 0); an address without ``/p2p/`` gets our own peer id appended.
    ``features`` (what this Kith reads beyond the base kinds) is left out when empty."""
    suffix = "/p2p/" + identity.peer_id
    full = [a if via_peer_id(a) is not None else a + suffix for a in addrs]
    fields: dict[str, object] = {"name": clean_name(name), "addrs": full[:MAX_ANNOUNCE_ADDRS]}
    if features:
        fields["features"] = sorted(features)[:MAX_FEATURES]
    body = json.dumps(
        fields,
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
    epoch: bytes | None = None
    if envelope[0] == VERSION:
        box, start = secrets.box(), 1
    elif envelope[0] == EPOCH_VERSION and len(envelope) >= MIN_ENVELOPE + EPOCH_ID_SIZE:
        epoch = bytes(envelope[1 : 1 + EPOCH_ID_SIZE])
        key = secrets.epochs.get(epoch)
        if key is None:
            raise UnknownEpoch("the post is sealed with an epoch key we do not hold")
        box, start = nacl.secret.SecretBox(key), 1 + EPOCH_ID_SIZE
    else:
        raise MalformedPost(f"unsupported envelope version {envelope[0]}")
    nonce = envelope[start : start + NONCE_SIZE]
    try:
        inner = box.decrypt(bytes(envelope[start + NONCE_SIZE :]), bytes(nonce))
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
        epoch=epoch,
    )
