"""The mailbox protocol ``/kith/mailbox/1.0.0`` and signed mailbox records (docs/protocol.md,
"Mailboxes").

A mailbox is a Kith that holds sealed direct messages for its contacts who registered with it,
while they are offline. What it holds is the very MESSAGE payload the sender would have written
on ``/kith/dm/1.0.0``: sealed to the recipient and signed by the sender, so the mailbox learns
who wrote to whom, how much and when, never what. Which mailboxes hold someone's mail is a
record signed by that someone's identity key: nobody else can redirect it. A file's bytes may
wait there too, as a blob of sealed pieces (``app.core.blob``) that only its recipient reads.

This module only turns frames and records into bytes and back; every failure is a
``MailboxError`` and nothing from a peer is trusted for a length or a count.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from app.core import blob as bl
from app.core import dm
from app.core.identity import (
    Identity,
    InvalidPeerId,
    is_valid_peer_id,
    public_key_from_peer_id,
)
from app.core.invite import MAX_ADDR_LENGTH

PROTOCOL_ID = "/kith/mailbox/1.0.0"

# Requests (the first frame of a stream; one request per stream).
OP_REGISTER = 0x01
OP_DEPOSIT = 0x02
OP_FETCH = 0x03
OP_DELETE = 0x04
OP_BLOB_OPEN = 0x05
OP_BLOB_PUT = 0x06
OP_BLOB_GET = 0x07
OP_BLOB_DELETE = 0x08
# Answers.
ANSWER_OK = 0x10
ANSWER_REFUSED = 0x11
ANSWER_ITEM = 0x12
ANSWER_END = 0x13
ANSWER_BLOB_HELD = 0x14
ANSWER_PIECE = 0x15

REFUSED_NOT_SERVING = 1    # this Kith keeps no mail for others
REFUSED_NOT_CONTACT = 2    # registration: only the mailbox's contacts may register
REFUSED_NOT_ACCEPTED = 3   # deposit: no such user here, or the user does not take your mail
REFUSED_FULL = 4           # deposit: a quota is reached (the user's or yours)
REFUSED_RATE = 5           # deposit: too many deposits from you; try later
REFUSED_TOO_LARGE = 6      # deposit: the payload is larger than a direct message can be
REFUSED_NOT_REGISTERED = 7  # fetch or delete by a peer that is not a registered user
REFUSED_MALFORMED = 8      # a request that does not follow the layout
REFUSED_NOT_HELD = 9       # blob read: no such blob for you, or not that piece (yet)
REFUSED_REASONS: dict[int, str] = {
    REFUSED_NOT_SERVING: "this Kith does not keep messages for others",
    REFUSED_NOT_CONTACT: "the mailbox keeps messages only for its own contacts",
    REFUSED_NOT_ACCEPTED: "the mailbox does not take messages for this person from you",
    REFUSED_FULL: "the mailbox is full for this person",
    REFUSED_RATE: "too many messages left at this mailbox; it takes more later",
    REFUSED_TOO_LARGE: "the message is too large for the mailbox",
    REFUSED_NOT_REGISTERED: "you are not registered with this mailbox",
    REFUSED_MALFORMED: "the mailbox did not understand the request",
    REFUSED_NOT_HELD: "the mailbox does not hold that file for you",
}

MAX_PEER_ID_BYTES = 64     # a base58 Ed25519 peer id is 52 characters
MAX_PAYLOAD = dm.MAX_FRAME
MAX_BLOCKED = 1024         # peer ids a user's block list hands to its mailbox
MAX_FETCH = 64             # items per FETCH answer
MAX_DELETE = 256           # ids per DELETE
MAX_REASON_BYTES = 200
# The largest request is a BLOB_PUT of a whole piece, the largest answer a PIECE.
MAX_REQUEST = 1 + 1 + MAX_PEER_ID_BYTES + bl.BLOB_ID_SIZE + 4 + bl.MAX_PIECE
MAX_ANSWER = 1 + 4 + bl.MAX_PIECE

RECORD_CONTEXT = b"kith-mailboxes-v1\x00"
MAX_RECORD_MAILBOXES = 4
MAX_RECORD_BYTES = 8 + 1 + MAX_RECORD_MAILBOXES * (2 + MAX_ADDR_LENGTH) + 64
SIGNATURE_SIZE = 64
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class MailboxError(ValueError):
    """A mailbox frame or record that cannot be used."""


class BlobRefused(Exception):
    """A mailbox refused a blob request; ``code`` is its REFUSED code, ``reason`` for people."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    """A user asks to have mail held; ``blocked``: senders whose deposits the mailbox refuses."""

    blocked: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deposit:
    recipient: str
    payload: bytes


@dataclass(frozen=True)
class Fetch:
    after: int = 0
    limit: int = MAX_FETCH


@dataclass(frozen=True)
class Delete:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class BlobOpen:
    """A sender declares a blob for ``recipient`` before putting pieces (or to resume)."""

    recipient: str
    blob: bytes
    size: int
    pieces: int


@dataclass(frozen=True)
class BlobPut:
    recipient: str
    blob: bytes
    index: int
    data: bytes


@dataclass(frozen=True)
class BlobGet:
    blob: bytes
    index: int


@dataclass(frozen=True)
class BlobDelete:
    blob: bytes


Request = Register | Deposit | Fetch | Delete | BlobOpen | BlobPut | BlobGet | BlobDelete


def _peer(peer_id: str) -> bytes:
    raw = peer_id.encode("ascii")
    if len(raw) > MAX_PEER_ID_BYTES:
        raise ValueError("peer id too long")
    return bytes([len(raw)]) + raw


class _Reader:
    """Reads fields off a frame; running short or a bad value is a ``MailboxError``."""

    def __init__(self, data: bytes, start: int = 1) -> None:
        self._data = data
        self._at = start

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise MailboxError("frame too short")
        out = self._data[self._at:self._at + n]
        self._at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def peer(self) -> str:
        length = self.u8()
        if not 1 <= length <= MAX_PEER_ID_BYTES:
            raise MailboxError("bad peer id length")
        try:
            text = self.take(length).decode("ascii")
        except UnicodeDecodeError:
            raise MailboxError("peer id is not ASCII") from None
        if not is_valid_peer_id(text):
            raise MailboxError("not a peer id")
        return text

    def rest(self) -> bytes:
        out = self._data[self._at:]
        self._at = len(self._data)
        return out

    def end(self) -> None:
        if self._at != len(self._data):
            raise MailboxError("trailing bytes")


def encode_request(request: Request) -> bytes:
    if isinstance(request, Register):
        if len(request.blocked) > MAX_BLOCKED:
            raise ValueError("too many blocked peers")
        return (bytes([OP_REGISTER]) + _U16.pack(len(request.blocked))
                + b"".join(_peer(p) for p in request.blocked))
    if isinstance(request, Deposit):
        if len(request.payload) > MAX_PAYLOAD:
            raise ValueError("payload too large")
        return bytes([OP_DEPOSIT]) + _peer(request.recipient) + request.payload
    if isinstance(request, Fetch):
        return bytes([OP_FETCH]) + _U64.pack(request.after) + _U16.pack(request.limit)
    if isinstance(request, BlobOpen):
        return (bytes([OP_BLOB_OPEN]) + _peer(request.recipient) + _blob_id(request.blob)
                + _U64.pack(request.size) + _U32.pack(request.pieces))
    if isinstance(request, BlobPut):
        if not 1 <= len(request.data) <= bl.MAX_PIECE:
            raise ValueError("a piece is 1 to MAX_PIECE bytes")
        return (bytes([OP_BLOB_PUT]) + _peer(request.recipient) + _blob_id(request.blob)
                + _U32.pack(request.index) + request.data)
    if isinstance(request, BlobGet):
        return bytes([OP_BLOB_GET]) + _blob_id(request.blob) + _U32.pack(request.index)
    if isinstance(request, BlobDelete):
        return bytes([OP_BLOB_DELETE]) + _blob_id(request.blob)
    if len(request.ids) > MAX_DELETE:
        raise ValueError("too many ids")
    return bytes([OP_DELETE]) + _U16.pack(len(request.ids)) + b"".join(
        _U64.pack(i) for i in request.ids)


def _blob_id(blob: bytes) -> bytes:
    if len(blob) != bl.BLOB_ID_SIZE:
        raise ValueError("a blob id is 16 bytes")
    return blob


def decode_request(frame: bytes) -> Request:
    if not frame:
        raise MailboxError("empty frame")
    read = _Reader(frame)
    op = frame[0]
    request: Request
    if op == OP_REGISTER:
        count = read.u16()
        if count > MAX_BLOCKED:
            raise MailboxError("too many blocked peers")
        request = Register(tuple(read.peer() for _ in range(count)))
    elif op == OP_DEPOSIT:
        recipient = read.peer()
        payload = read.rest()
        if not payload:
            raise MailboxError("empty payload")
        request = Deposit(recipient, payload)
    elif op == OP_FETCH:
        after, limit = read.u64(), read.u16()
        if after >= 2**63:
            raise MailboxError("item id out of range")
        request = Fetch(after, max(1, min(limit, MAX_FETCH)))
    elif op == OP_DELETE:
        count = read.u16()
        if count > MAX_DELETE:
            raise MailboxError("too many ids")
        ids = tuple(read.u64() for _ in range(count))
        if any(i >= 2**63 for i in ids):
            raise MailboxError("item id out of range")
        request = Delete(ids)
    elif op == OP_BLOB_OPEN:
        recipient, blob = read.peer(), read.take(bl.BLOB_ID_SIZE)
        size, pieces = read.u64(), read.u32()
        if not 1 <= size < 2**63 or pieces < 1:
            raise MailboxError("blob size or piece count out of range")
        request = BlobOpen(recipient, blob, size, pieces)
    elif op == OP_BLOB_PUT:
        recipient, blob, index = read.peer(), read.take(bl.BLOB_ID_SIZE), read.u32()
        data = read.rest()
        if not data:
            raise MailboxError("empty piece")
        request = BlobPut(recipient, blob, index, data)
    elif op == OP_BLOB_GET:
        request = BlobGet(read.take(bl.BLOB_ID_SIZE), read.u32())
    elif op == OP_BLOB_DELETE:
        request = BlobDelete(read.take(bl.BLOB_ID_SIZE))
    else:
        raise MailboxError(f"unknown request {op}")
    read.end()
    return request


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class Refused:
    code: int
    reason: str

    @property
    def description(self) -> str:
        return REFUSED_REASONS.get(self.code, self.reason or f"refused (code {self.code})")


@dataclass(frozen=True)
class Item:
    """One held message: the mailbox's id for it, when it arrived, who left it, what it is."""

    id: int
    deposited_at_ms: int
    sender: str
    payload: bytes


@dataclass(frozen=True)
class End:
    more: bool


@dataclass(frozen=True)
class BlobHeld:
    """Which pieces of a blob the mailbox holds: bit ``i`` (byte ``i // 8``, bit ``i % 8``,
    least significant first) for piece ``i``."""

    held: bytes

    def has(self, index: int) -> bool:
        return index >> 3 < len(self.held) and bool(self.held[index >> 3] & (1 << (index & 7)))


@dataclass(frozen=True)
class Piece:
    index: int
    data: bytes


Answer = Ok | Refused | Item | End | BlobHeld | Piece


def encode_answer(answer: Answer) -> bytes:
    if isinstance(answer, Ok):
        return bytes([ANSWER_OK])
    if isinstance(answer, Refused):
        reason = (answer.reason or REFUSED_REASONS.get(answer.code, "")).encode()
        return bytes([ANSWER_REFUSED, answer.code]) + reason[:MAX_REASON_BYTES]
    if isinstance(answer, Item):
        return (bytes([ANSWER_ITEM]) + _U64.pack(answer.id) + _U64.pack(answer.deposited_at_ms)
                + _peer(answer.sender) + answer.payload)
    if isinstance(answer, BlobHeld):
        return bytes([ANSWER_BLOB_HELD]) + answer.held
    if isinstance(answer, Piece):
        return bytes([ANSWER_PIECE]) + _U32.pack(answer.index) + answer.data
    return bytes([ANSWER_END, int(answer.more)])


def decode_answer(frame: bytes) -> Answer:
    if not frame:
        raise MailboxError("empty frame")
    read = _Reader(frame)
    answer: Answer
    if frame[0] == ANSWER_OK:
        answer = Ok()
    elif frame[0] == ANSWER_REFUSED:
        code = read.u8()
        raw = read.rest()
        if len(raw) > MAX_REASON_BYTES:
            raise MailboxError("reason too long")
        answer = Refused(code, raw.decode("utf-8", "replace"))
    elif frame[0] == ANSWER_ITEM:
        item_id, at, sender = read.u64(), read.u64(), read.peer()
        payload = read.rest()
        if not payload or len(payload) > MAX_PAYLOAD or item_id >= 2**63:
            raise MailboxError("bad item")
        answer = Item(item_id, min(at, dm.MAX_SENT_AT_MS), sender, payload)
    elif frame[0] == ANSWER_END:
        more = read.u8()
        if more > 1:
            raise MailboxError("bad END")
        answer = End(bool(more))
    elif frame[0] == ANSWER_BLOB_HELD:
        held = read.rest()
        if len(held) > (bl.MAX_PIECES + 7) // 8:
            raise MailboxError("bad BLOB_HELD")
        answer = BlobHeld(held)
    elif frame[0] == ANSWER_PIECE:
        index = read.u32()
        data = read.rest()
        if not data or len(data) > bl.MAX_PIECE:
            raise MailboxError("bad PIECE")
        answer = Piece(index, data)
    else:
        raise MailboxError(f"unknown answer {frame[0]}")
    read.end()
    return answer


# -- signed mailbox records ------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxRecord:
    """Where ``owner``'s mail may be left: full multiaddrs ending ``/p2p/<mailbox id>``.

    ``seq`` orders records of one owner (milliseconds since the epoch when it was signed): the
    highest wins, so an old record replayed changes nothing.
    """

    owner: str
    seq: int
    mailboxes: tuple[str, ...]

    def mailbox_ids(self) -> list[str]:
        return [mailbox_peer_id(a) for a in self.mailboxes]


def mailbox_peer_id(addr: str) -> str:
    """The peer id at the end of a mailbox's multiaddr; ``MailboxError`` if there is none."""
    head, sep, tail = addr.rpartition("/p2p/")
    if not sep or not head.startswith("/") or not is_valid_peer_id(tail):
        raise MailboxError(f"a mailbox address ends with /p2p/<peer id>: {addr[:80]!r}")
    return tail


def _record_body(seq: int, mailboxes: tuple[str, ...]) -> bytes:
    out = bytearray(_U64.pack(seq))
    out.append(len(mailboxes))
    for addr in mailboxes:
        raw = addr.encode("utf-8")
        out += _U16.pack(len(raw)) + raw
    return bytes(out)


def sign_record(identity: Identity, seq: int, mailboxes: list[str] | tuple[str, ...]) -> bytes:
    """The record's wire form: body (seq, count, addresses) then the owner's signature over
    ``RECORD_CONTEXT || owner public key || body``."""
    addrs = tuple(mailboxes)
    if len(addrs) > MAX_RECORD_MAILBOXES:
        raise ValueError(f"at most {MAX_RECORD_MAILBOXES} mailboxes")
    if not 0 <= seq < 2**63:
        raise ValueError("seq out of range")
    for addr in addrs:
        mailbox_peer_id(addr)
        if len(addr.encode("utf-8")) > MAX_ADDR_LENGTH:
            raise ValueError("mailbox address too long")
    body = _record_body(seq, addrs)
    return body + identity.sign(RECORD_CONTEXT + identity.public_key + body)


def verify_record(owner: str, raw: bytes) -> MailboxRecord:
    """Check ``raw`` is ``owner``'s record, signed by ``owner``; ``MailboxError`` otherwise."""
    if len(raw) > MAX_RECORD_BYTES or len(raw) < 8 + 1 + SIGNATURE_SIZE:
        raise MailboxError("mailbox record of a wrong size")
    try:
        key = public_key_from_peer_id(owner)
    except InvalidPeerId:
        raise MailboxError("the owner is not a peer id") from None
    body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    try:
        nacl.signing.VerifyKey(key).verify(RECORD_CONTEXT + key + body, signature)
    except nacl.exceptions.CryptoError:
        raise MailboxError("the mailbox record is not signed by its owner") from None
    read = _Reader(body, 0)
    seq, count = read.u64(), read.u8()
    if seq >= 2**63 or count > MAX_RECORD_MAILBOXES:
        raise MailboxError("mailbox record out of range")
    addrs = []
    for _ in range(count):
        length = read.u16()
        if length > MAX_ADDR_LENGTH:
            raise MailboxError("mailbox address too long")
        try:
            addr = read.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise MailboxError("mailbox address is not UTF-8") from None
        if not addr.isprintable():
            raise MailboxError("mailbox address is not printable")
        mailbox_peer_id(addr)
        addrs.append(addr)
    read.end()
    return MailboxRecord(owner, seq, tuple(addrs))


def record_text(raw: bytes) -> str:
    """A record as text for JSON and links: base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def record_bytes(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 2 * MAX_RECORD_BYTES:
        raise MailboxError("mailbox record text of a wrong size")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise MailboxError("mailbox record is not base64url") from None
