"""Payloads of the direct-message protocol ``/kith/dm/1.0.0`` (see docs/protocol.md).

A message is signed by the sender's Ed25519 identity key and sealed with NaCl ``crypto_box``
to the recipient's X25519 key, which is derived from the recipient's peer id alone, so anyone
who holds a contact link can write to that contact. Noise already protects the connection;
this layer keeps a message sealed and attributable wherever it travels or rests.

This module only turns payloads into bytes and back; the varint framing lives in
``app.node.framing``. It never trusts a length or a field from the peer: every failure is a
``DmError`` with a short message, raised in the order documented on ``decode_message``.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from typing import ClassVar

import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from app.core.actions import DM_ACTION_KINDS, MAX_ACTION_BODY
from app.core.identity import (
    Identity,
    InvalidPeerId,
    peer_id_from_public_key,
    public_key_from_peer_id,
    x25519_public_from_peer_id,
)

PROTOCOL_ID = "/kith/dm/1.0.0"

MAX_TEXT_BYTES = 65536
MAX_FRAME = 65536 + 1024  # largest payload a reader accepts; a full message is 65731 bytes
MESSAGE_ID_SIZE = 16
VERSION = 1
KIND_TEXT = 1
KIND_FILE_OFFER = 2    # body: UTF-8 JSON file offer (docs/protocol.md section 9)
KIND_FILE_CONTROL = 3  # body: UTF-8 JSON {"transfer", "action"[, "reason"]}
KIND_MAILBOX_RECEIPT = 48  # body: UTF-8 JSON {"ack": [id hex], "reject": [[id hex, code]]}
KIND_ROOM_INVITE = 32  # body: a kith:room link, a room's join card (docs/protocol.md 8.12)
# Kinds 16-20 are message actions (reply, reaction, edit, delete, read: app.core.actions).
KINDS = frozenset({KIND_TEXT, KIND_FILE_OFFER, KIND_FILE_CONTROL, KIND_ROOM_INVITE,
                   KIND_MAILBOX_RECEIPT} | DM_ACTION_KINDS)
MAX_FILE_BODY_BYTES = 4096  # every kind but text (the name is older than the other kinds)
# A later ``sent_at`` (2100-01-01T00:00:00Z, as for room posts) is taken as this: it is the
# sender's clock, informational, and nothing after it can show or store a time beyond.
MAX_SENT_AT_MS = 4_102_444_800_000

FRAME_MESSAGE = 0x01
FRAME_ACK = 0x02
FRAME_REJECT = 0x03

REJECT_TOO_LARGE = 1
REJECT_UNSUPPORTED_KIND = 2
REJECT_UNSUPPORTED_VERSION = 3
REJECT_QUOTA = 4
REJECT_REASONS: dict[int, str] = {
    REJECT_TOO_LARGE: "the message, or the file it offers, is too large for the recipient",
    REJECT_UNSUPPORTED_KIND: "the recipient's Kith cannot show this kind of message",
    REJECT_UNSUPPORTED_VERSION: "the recipient's Kith does not understand this message version",
    REJECT_QUOTA: "the recipient's Kith keeps no more from you until they answer what you sent",
}

SIGNATURE_CONTEXT = b"kith-dm-v1\x00"
NONCE_SIZE = nacl.public.Box.NONCE_SIZE  # 24
MAC_SIZE = 16
SIGNATURE_SIZE = 64

# Inner plaintext layout (big-endian): version, message_id, sender key, recipient key,
# sent_at (u64 ms), kind; then the body, then the signature.
_HEADER = struct.Struct(">B16s32s32sQB")
HEADER_SIZE = _HEADER.size  # 90
# Version and message id keep their place in every version, so a REJECT can name the message.
_VERSIONED_PREFIX = 1 + MESSAGE_ID_SIZE
_MIN_MESSAGE_PAYLOAD = 1 + NONCE_SIZE + MAC_SIZE + _VERSIONED_PREFIX
# The peers whose shared key is kept (a few hundred bytes each): every contact of a large
# address book; a stranger cycling peer ids only pushes out the oldest.
BOXES_KEPT = 1024


class DmError(ValueError):
    """A direct-message payload that cannot be used.

    ``message_id`` is set once the message decrypted far enough to name it. ``reject_reason``
    is a REJECT code when the sender deserves a REJECT frame; ``None`` means reset the stream.
    """

    reject_reason: ClassVar[int | None] = None

    def __init__(self, message: str, *, message_id: bytes | None = None) -> None:
        super().__init__(message)
        self.message_id = message_id


class MalformedFrame(DmError):
    """Bytes that do not follow the layout: wrong type, wrong length, bad UTF-8."""


class DecryptionFailed(DmError):
    """The box did not open: not sealed by this sender to us, or altered on the way."""


class UnsupportedVersion(DmError):
    """A newer inner format; answered with a REJECT so the sender can tell the user."""

    reject_reason: ClassVar[int | None] = REJECT_UNSUPPORTED_VERSION


class WrongRecipient(DmError):
    """Signed for someone else and re-sealed to us; accepting it would misattribute it."""


class WrongSender(DmError):
    """The signed sender is not the peer the connection authenticated."""


class BadSignature(DmError):
    """The sender's signature does not cover these bytes."""


class UnsupportedKind(DmError):
    """A kind of message this version cannot show; answered with a REJECT."""

    reject_reason: ClassVar[int | None] = REJECT_UNSUPPORTED_KIND


class EmptyMessage(MalformedFrame):
    """A text message needs at least one byte (refused when sending and when receiving)."""


class MessageTooLarge(MalformedFrame):
    """Text over MAX_TEXT_BYTES UTF-8 bytes: refused when sending, REJECTed when receiving."""

    reject_reason: ClassVar[int | None] = REJECT_TOO_LARGE


@dataclass(frozen=True)
class DirectMessage:
    """A decrypted, verified message; ``sender`` and ``recipient`` are peer ids."""

    message_id: bytes
    sender: str
    recipient: str
    sent_at_ms: int
    kind: int
    text: str
    via: str = "direct"  # how it reached us: "direct", "relay" or "mailbox" (not on the wire)


@dataclass(frozen=True)
class Ack:
    """The recipient stored the message (or already had it)."""

    message_id: bytes


@dataclass(frozen=True)
class Reject:
    """The recipient read the message but cannot accept it; ``reason`` may be a future code."""

    message_id: bytes
    reason: int

    @property
    def description(self) -> str:
        """Plain words for the user, even for a reason code this version does not know."""
        fallback = f"the recipient refused the message (code {self.reason})"
        return REJECT_REASONS.get(self.reason, fallback)


def new_message_id() -> bytes:
    """A random id; collisions matter only per sender, and 128 bits make them moot."""
    return os.urandom(MESSAGE_ID_SIZE)


def frame_type(payload: bytes) -> int:
    """The first byte, which says how to read the rest."""
    if not payload:
        raise MalformedFrame("empty frame")
    return payload[0]


def _check_message_id(message_id: bytes) -> None:
    if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_SIZE:
        raise ValueError(f"a message id is {MESSAGE_ID_SIZE} bytes")


@functools.lru_cache(maxsize=BOXES_KEPT)
def _box(identity: Identity, peer_id: str) -> nacl.public.Box:
    """The crypto_box between our key and the X25519 form of the key behind ``peer_id``.

    Kept per peer: deriving it is three curve operations (the peer's key to X25519, our
    public key, the shared key), several times the cost of sealing a message. A peer id that
    holds no usable key raises, and nothing is kept for it.
    """
    try:
        peer_x25519 = x25519_public_from_peer_id(peer_id)
    except nacl.exceptions.CryptoError:
        # Well-formed peer id, but the key is not a point that converts to X25519.
        raise InvalidPeerId("the peer id does not hold a usable key") from None
    return nacl.public.Box(
        nacl.public.PrivateKey(identity.x25519_private), nacl.public.PublicKey(peer_x25519)
    )


def _signed_part(inner_without_signature: bytes) -> bytes:
    return SIGNATURE_CONTEXT + inner_without_signature


def encode_inner(
    identity: Identity,
    recipient_key: bytes,
    body: bytes,
    *,
    message_id: bytes,
    sent_at_ms: int,
    kind: int = KIND_TEXT,
    version: int = VERSION,
) -> bytes:
    """The signed inner plaintext, without limits on body or kind (tests build bad ones)."""
    _check_message_id(message_id)
    if len(recipient_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    if not 0 <= sent_at_ms < 2**64:
        raise ValueError("sent_at_ms must fit in an unsigned 64-bit integer")
    header = _HEADER.pack(version, message_id, identity.public_key, recipient_key, sent_at_ms, kind)
    unsigned = header + body
    return unsigned + identity.sign(_signed_part(unsigned))


def seal_inner(
    identity: Identity, recipient: str, inner: bytes, nonce: bytes | None = None
) -> bytes:
    """Box any inner plaintext to ``recipient`` as a MESSAGE payload."""
    if nonce is None:
        nonce = nacl.utils.random(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    sealed = _box(identity, recipient).encrypt(inner, nonce)
    # PyNaCl returns nonce || MAC || ciphertext, which is exactly the MESSAGE body.
    return bytes([FRAME_MESSAGE]) + bytes(sealed)


def _body_limit(kind: int) -> int:
    if kind in DM_ACTION_KINDS:
        return MAX_ACTION_BODY
    return MAX_TEXT_BYTES if kind == KIND_TEXT else MAX_FILE_BODY_BYTES


def check_payload(identity: Identity, recipient: str, kind: int, body: bytes) -> bytes:
    """Refuse a payload the recipient would refuse, or that cannot be sealed to them;
    returns the recipient's Ed25519 key."""
    if kind not in KINDS:
        raise UnsupportedKind(f"unsupported message kind {kind}")
    if not body:
        raise EmptyMessage("the message is empty")
    limit = _body_limit(kind)
    if len(body) > limit:
        raise MessageTooLarge(f"the message is too long ({len(body)} bytes; the limit is {limit})")
    recipient_key = public_key_from_peer_id(recipient)  # raises InvalidPeerId
    _box(identity, recipient)  # raises InvalidPeerId for a key with no X25519 form
    return recipient_key


def encode_payload(
    identity: Identity,
    recipient: str,
    kind: int,
    body: bytes,
    *,
    message_id: bytes,
    sent_at_ms: int,
    nonce: bytes | None = None,
) -> bytes:
    """A whole MESSAGE payload of any known kind, refused if the recipient would refuse it."""
    recipient_key = check_payload(identity, recipient, kind, body)
    inner = encode_inner(
        identity, recipient_key, body, message_id=message_id, sent_at_ms=sent_at_ms, kind=kind
    )
    return seal_inner(identity, recipient, inner, nonce)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a broken clipboard
        raise DmError("the text is not valid Unicode") from None


def check_message(identity: Identity, recipient: str, text: str, kind: int = KIND_TEXT) -> None:
    """Raise what ``encode_message`` would, without signing or sealing: a message queued
    for later is refused at once, and sealed only when it is sent."""
    check_payload(identity, recipient, kind, _utf8(text))


def encode_message(
    identity: Identity,
    recipient: str,
    text: str,
    *,
    message_id: bytes,
    sent_at_ms: int,
    nonce: bytes | None = None,
    kind: int = KIND_TEXT,
) -> bytes:
    """A whole MESSAGE payload (type byte included); a fresh random nonce unless given.

    ``text`` is the body as text: the message for kind 1, the JSON for file kinds.
    """
    return encode_payload(identity, recipient, kind, _utf8(text), message_id=message_id,
                          sent_at_ms=sent_at_ms, nonce=nonce)


def decode_message(identity: Identity, sender: str, payload: bytes) -> DirectMessage:
    """Open, check and parse a MESSAGE payload received from ``sender``.

    ``identity`` is ours (the recipient); ``sender`` is the peer id the connection
    authenticated. Checks run in this order, each with its own ``DmError``: layout
    (MalformedFrame), box (DecryptionFailed), version (UnsupportedVersion), recipient
    (WrongRecipient), sender (WrongSender), signature (BadSignature), kind (UnsupportedKind),
    body (EmptyMessage / MessageTooLarge / MalformedFrame). An error whose ``reject_reason``
    is not None deserves a REJECT naming ``error.message_id``; any other means reset the stream.
    """
    if len(payload) > MAX_FRAME:
        raise MalformedFrame("frame too large")
    if frame_type(payload) != FRAME_MESSAGE:
        raise MalformedFrame("not a message frame")
    if len(payload) < _MIN_MESSAGE_PAYLOAD:
        raise MalformedFrame("message frame too short")
    try:
        box = _box(identity, sender)
    except InvalidPeerId:
        raise WrongSender("the sender's peer id holds no usable key") from None
    nonce = payload[1 : 1 + NONCE_SIZE]
    try:
        inner = box.decrypt(payload[1 + NONCE_SIZE :], nonce)
    except nacl.exceptions.CryptoError:
        raise DecryptionFailed("the message could not be decrypted") from None

    message_id = inner[1:_VERSIONED_PREFIX]
    if inner[0] != VERSION:
        raise UnsupportedVersion(f"unsupported message version {inner[0]}", message_id=message_id)
    if len(inner) < HEADER_SIZE + SIGNATURE_SIZE:
        raise MalformedFrame("message too short", message_id=message_id)
    _, _, sender_key, recipient_key, sent_at_ms, kind = _HEADER.unpack_from(inner)
    if recipient_key != identity.public_key:
        raise WrongRecipient("the message was meant for someone else", message_id=message_id)
    if sender_key != public_key_from_peer_id(sender):
        raise WrongSender("the message names another sender", message_id=message_id)
    unsigned, signature = inner[:-SIGNATURE_SIZE], inner[-SIGNATURE_SIZE:]
    try:
        nacl.signing.VerifyKey(sender_key).verify(_signed_part(unsigned), signature)
    except nacl.exceptions.CryptoError:
        raise BadSignature("the signature does not match", message_id=message_id) from None
    if kind not in KINDS:
        raise UnsupportedKind(f"unsupported message kind {kind}", message_id=message_id)

    body = unsigned[HEADER_SIZE:]
    if not body:
        raise EmptyMessage("the message is empty", message_id=message_id)
    if len(body) > _body_limit(kind):
        raise MessageTooLarge("the message is too large", message_id=message_id)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFrame("the text is not valid UTF-8", message_id=message_id) from None
    return DirectMessage(
        message_id=message_id,
        sender=peer_id_from_public_key(sender_key),
        recipient=identity.peer_id,
        sent_at_ms=min(sent_at_ms, MAX_SENT_AT_MS),
        kind=kind,
        text=text,
    )


def encode_ack(message_id: bytes) -> bytes:
    """ACK payload: sent after the message is stored (or was already)."""
    _check_message_id(message_id)
    return bytes([FRAME_ACK]) + message_id


def encode_reject(message_id: bytes, reason: int) -> bytes:
    """REJECT payload for a message that verified but cannot be accepted."""
    _check_message_id(message_id)
    if reason not in REJECT_REASONS:
        raise ValueError(f"unknown reject reason {reason}")
    return bytes([FRAME_REJECT]) + message_id + bytes([reason])


def decode_reply(payload: bytes) -> Ack | Reject:
    """Parse what the recipient answers on the stream; anything else is MalformedFrame."""
    kind = frame_type(payload)
    if kind == FRAME_ACK:
        if len(payload) != 1 + MESSAGE_ID_SIZE:
            raise MalformedFrame("ACK frame of the wrong length")
        return Ack(bytes(payload[1:]))
    if kind == FRAME_REJECT:
        if len(payload) != 1 + MESSAGE_ID_SIZE + 1:
            raise MalformedFrame("REJECT frame of the wrong length")
        return Reject(bytes(payload[1 : 1 + MESSAGE_ID_SIZE]), payload[-1])
    raise MalformedFrame("not a reply frame")
