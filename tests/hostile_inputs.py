"""Hypothesis strategies for what a hostile peer sends a Kith (tests/test_fuzz.py).

Numbers are the extremes a store or a codec trips on (``EXTREME_INTS``) or anything in their
range; lengths are empty, at the protocol's limit and one past it; text is hostile Unicode:
lone surrogates (where JSON can carry them, or as the bytes a broken encoder writes), bidi
controls, NUL, combining marks, very long grapheme clusters, path tricks. Payloads are built
from them field by field, each field now valid and now not, so that both the checks and what
comes after them are reached.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from app.core import files as fc
from app.core import room as rc
from app.core.identity import Identity
from app.core.room.membership import OPS

EXTREME_INTS = (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**53 + 1, 2**62, 2**62 + 1,
                2**63 - 1, 2**63, 2**64 - 1)
LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
HOSTILE_PIECES = (
    "\x00", "\x1b[31m", "\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
    "\u200f", "\u061c", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u0301", "\u0336", "\uffff",
    "\ufffe", "\U0010ffff", "\n", "\r\n", "\t", " ", "/", "..", "\\", "CON", "nul.txt", "%00",
    "e\u0301", "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f1fa\U0001f1f3",
)
LONG_CLUSTER = "e" + "\u0301" * 2000


def u64() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EXTREME_INTS), st.integers(0, 2**64 - 1))


def u32() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([n for n in EXTREME_INTS if n < 2**32]),
                     st.integers(0, 2**32 - 1))


def twist(draw: st.DrawFn, fields: tuple[str, ...]) -> str | None:
    """Which one field of a payload to get wrong (None, half the time: none). One wrong field
    at a time reaches every check and, when it passes, what comes after it."""
    return draw(st.sampled_from((None,) * len(fields) + fields))


def pick(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any],
         wrong: bool) -> Any:
    return draw(bad if wrong else good)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good``, now and then ``bad`` (for values that are not a payload's field)."""
    return st.one_of(good, good, good, bad)


def hostile_text(max_size: int = 120, surrogates: bool = True) -> st.SearchStrategy[str]:
    pieces = HOSTILE_PIECES + (LONE_SURROGATES if surrogates else ())
    return st.one_of(
        st.text(max_size=max_size),
        st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=6)),
                 max_size=max(1, max_size // 6)).map("".join),
    )


def utf8(text: str) -> bytes:
    """``text`` as bytes; a lone surrogate becomes the 3 invalid bytes a broken encoder writes."""
    return text.encode("utf-8", "surrogatepass")


def json_junk() -> st.SearchStrategy[Any]:
    """A JSON value of the wrong kind for any field."""
    return st.one_of(
        st.none(), st.booleans(), u64(), st.integers(), st.sampled_from([-1, -(2**63), 2**64]),
        st.floats(allow_nan=True, allow_infinity=True), hostile_text(20),
        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                              max_size=2),
    )


def hex_field(size: int) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(``size`` bytes of hex as a peer may write them, and as it should not)."""
    raw = st.binary(min_size=size, max_size=size)
    return (
        st.one_of(raw.map(bytes.hex), raw.map(lambda b: b.hex().upper())),
        st.one_of(st.binary(max_size=size + 1).map(bytes.hex), st.just(" " + "0" * (2 * size - 1)),
                  st.text(alphabet="0123456789abcdefg \n", min_size=2 * size,
                          max_size=2 * size), json_junk()),
    )


@st.composite
def json_payload(draw: st.DrawFn, value: Any, limit: int) -> bytes:
    """``value`` as JSON bytes, mostly ASCII-escaped (so that lone surrogates arrive as
    ``\\ud800`` escapes, which decode), maybe padded (an unknown field) to exactly ``limit``
    bytes or one more."""
    ascii_only = draw(mostly(st.just(True), st.just(False)))
    target = draw(st.sampled_from([None, None, limit, limit + 1]))

    def encode(v: Any) -> bytes:
        return utf8(json.dumps(v, ensure_ascii=ascii_only, separators=(",", ":")))

    body = encode(value)
    if target is not None and isinstance(value, dict):
        padded = dict(value, pad="")
        missing = target - len(encode(padded))
        if missing >= 0:
            padded["pad"] = "x" * missing
            body = encode(padded)
    return body


@st.composite
def json_object(draw: st.DrawFn, fields: dict[str, Any], limit: int,
                wrong: str | None) -> bytes:
    """``fields`` as a JSON object; with ``wrong`` = "missing" one is left out, with "not an
    object" the payload is some other JSON value."""
    value: Any = dict(fields)
    if wrong == "missing":
        value.pop(draw(st.sampled_from(sorted(fields))))
    elif wrong == "not an object":
        value = draw(json_junk())
    return draw(json_payload(value, limit))


OBJECT_TWISTS = ("missing", "not an object")


def _names() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    return hostile_text().filter(bool), st.one_of(
        st.just(""), st.just(LONG_CLUSTER[:1024]), st.text(min_size=1020, max_size=1030),
        json_junk())


@st.composite
def offer_body(draw: st.DrawFn, limit: int = fc.MAX_OFFER_BYTES) -> bytes:
    """A file offer (docs/protocol.md 9.2), one field wrong at most."""
    wrong = twist(draw, ("transfer", "name", "size", "chunk_size", "hash", "mime", *OBJECT_TWISTS))
    chunk = pick(draw, st.sampled_from([fc.MIN_CHUNK_SIZE, fc.DEFAULT_CHUNK_SIZE,
                                        fc.MAX_CHUNK_SIZE]),
                 st.one_of(st.sampled_from([fc.MIN_CHUNK_SIZE - 1, fc.MAX_CHUNK_SIZE + 1]),
                           u64(), json_junk()), wrong == "chunk_size")
    size = pick(draw, st.one_of(st.just(0), st.integers(1, fc.MAX_CHUNKS * chunk)
                                if isinstance(chunk, int) and chunk > 0 else st.just(1)),
                st.one_of(u64(), st.sampled_from([fc.MAX_SIZE, fc.MAX_SIZE + 1]), json_junk()),
                wrong == "size")
    fields = {
        "transfer": pick(draw, *hex_field(fc.TRANSFER_ID_SIZE), wrong == "transfer"),
        "name": pick(draw, *_names(), wrong == "name"),
        "size": size,
        "chunk_size": chunk,
        "hash": fc.EMPTY_HASH.hex() if size == 0 and wrong != "hash"
        else pick(draw, *hex_field(fc.HASH_SIZE), wrong == "hash"),
        "mime": pick(draw, hostile_text(), st.one_of(st.text(min_size=256, max_size=300),
                                                     json_junk()), wrong == "mime"),
    }
    return draw(json_object(fields, limit, wrong))


@st.composite
def control_body(draw: st.DrawFn, transfers: tuple[str, ...]) -> bytes:
    """A file control (9.7) about one of ``transfers`` (hex) or another."""
    wrong = twist(draw, ("transfer", "action", "reason", *OBJECT_TWISTS))
    fields = {
        "transfer": draw(st.sampled_from(transfers)) if wrong != "transfer"
        else draw(st.one_of(*hex_field(fc.TRANSFER_ID_SIZE))),
        "action": pick(draw, st.sampled_from(sorted(fc.ACTIONS)), json_junk(),
                       wrong == "action"),
        "reason": pick(draw, hostile_text(), st.one_of(st.text(min_size=300, max_size=300),
                                                       json_junk()), wrong == "reason"),
    }
    return draw(json_object(fields, fc.MAX_OFFER_BYTES, wrong))


@st.composite
def text_body(draw: st.DrawFn, limit: int) -> bytes:
    """Message text: hostile, or wrong (lone surrogates make it invalid UTF-8; empty; exactly
    at ``limit`` bytes or one over)."""
    return draw(mostly(
        st.one_of(hostile_text(400, surrogates=False).filter(bool).map(utf8),
                  st.sampled_from([utf8(LONG_CLUSTER), b"x" * limit,
                                   "\u00e9".encode() * (limit // 2)])),
        st.one_of(hostile_text(400).map(utf8), st.binary(max_size=200),
                  st.sampled_from([b"", b"x" * (limit + 1)])),
    ))


@st.composite
def profile_frame(draw: st.DrawFn) -> bytes:
    """What a peer answers on ``/kith/profile/1.0.0`` (section 7): name and addresses."""
    wrong = twist(draw, ("name", "addrs", "an address", "bytes", *OBJECT_TWISTS))
    if wrong == "bytes":
        return draw(st.binary(max_size=64))
    addr = st.one_of(st.just("/ip4/127.0.0.1/tcp/1"), hostile_text(60).map(lambda t: "/" + t),
                     st.sampled_from(["/" + "a" * 255]))
    bad_addr = st.one_of(st.sampled_from(["/" + "a" * 256, "no-slash", ""]), json_junk())
    addrs = pick(draw, st.lists(addr, max_size=16), st.one_of(
        st.lists(addr, min_size=17, max_size=17), json_junk()), wrong == "addrs")
    if wrong == "an address" and isinstance(addrs, list):
        addrs.append(draw(bad_addr))
    fields = {
        "name": pick(draw, hostile_text(), st.one_of(st.text(min_size=65, max_size=300),
                                                     json_junk()), wrong == "name"),
        "addrs": addrs,
    }
    return draw(json_object(fields, 8192, wrong))


@dataclass(frozen=True)
class HostilePost:
    """A room post with any numbers, body and kind; the author is a fresh key (``seed``).
    ``{author}`` in the body stands for the author's peer id (announce addresses)."""

    seed: bytes
    kind: int
    body: bytes
    lamport: int
    author_seq: int
    sent_at_ms: int
    version: int
    post_id: bytes

    def envelope(self, secrets: rc.RoomSecrets) -> bytes:
        author = Identity(self.seed)
        body = self.body.replace(b"{author}", author.peer_id.encode())
        inner = rc.encode_inner(author, secrets.room_id, body, kind=self.kind,
                                post_id=self.post_id, lamport=self.lamport,
                                author_seq=self.author_seq, sent_at_ms=self.sent_at_ms,
                                version=self.version)
        return rc.seal_inner(secrets, inner)


@st.composite
def announce_body(draw: st.DrawFn) -> bytes:
    wrong = twist(draw, ("name", "addrs", "an address", *OBJECT_TWISTS))
    addr = st.one_of(st.just("/ip4/127.0.0.1/tcp/9/p2p/{author}"),
                     hostile_text(40).map(lambda t: "/ip4/" + t + "/p2p/{author}"))
    addrs = pick(draw, st.lists(addr, max_size=rc.MAX_ANNOUNCE_ADDRS), st.one_of(
        st.lists(addr, min_size=17, max_size=17), json_junk()), wrong == "addrs")
    if wrong == "an address" and isinstance(addrs, list):
        addrs.append(draw(st.one_of(hostile_text(40), st.just("/" + "a" * 300 + "/p2p/{author}"),
                                    json_junk())))
    fields = {"name": pick(draw, hostile_text(), json_junk(), wrong == "name"), "addrs": addrs}
    return draw(json_object(fields, rc.MAX_ANNOUNCE_BYTES, wrong))


@st.composite
def hostile_post(draw: st.DrawFn) -> HostilePost:
    """A room post (8.6), one field wrong at most."""
    wrong = twist(draw, ("kind", "lamport", "author_seq", "sent_at", "version"))
    kind = pick(draw, st.sampled_from([rc.KIND_TEXT, rc.KIND_ANNOUNCE, rc.KIND_FILE]),
                st.integers(0, 255), wrong == "kind")
    if kind == rc.KIND_ANNOUNCE:
        body = draw(announce_body())
        seq = pick(draw, st.just(0), u64(), wrong == "author_seq")
    else:
        body = draw(offer_body(rc.MAX_FILE_BYTES) if kind == rc.KIND_FILE
                    else text_body(rc.MAX_POST_TEXT_BYTES))
        seq = pick(draw, st.one_of(st.integers(1, 3), st.just(rc.MAX_AUTHOR_SEQ)),
                   st.one_of(st.just(0), u64()), wrong == "author_seq")
    return HostilePost(
        seed=draw(st.binary(min_size=32, max_size=32)),
        kind=kind, body=body,
        lamport=pick(draw, st.one_of(st.integers(0, 1000), st.just(rc.MAX_LAMPORT_STEP)), u64(),
                     wrong == "lamport"),
        author_seq=seq,
        sent_at_ms=pick(draw, st.one_of(st.integers(0, rc.MAX_SENT_AT_MS),
                                        st.sampled_from([0, rc.MAX_SENT_AT_MS])), u64(),
                        wrong == "sent_at"),
        version=pick(draw, st.just(rc.VERSION), st.integers(0, 255), wrong == "version"),
        post_id=draw(st.binary(min_size=rc.POST_ID_SIZE, max_size=rc.POST_ID_SIZE)),
    )


_SYNC2_HEAD = struct.Struct(">BBHH")
_SYNC2_AUTHOR = struct.Struct(">32sH")
_SYNC2_RANGE = struct.Struct(">II")


@st.composite
def held_ranges(draw: st.DrawFn, wrong: bool) -> list[tuple[int, int]]:
    """Canonical ranges of author_seq (ascending, at least one number apart), or not."""
    points = sorted(draw(st.sets(st.one_of(st.integers(1, 50), st.integers(1, rc.MAX_AUTHOR_SEQ),
                                           st.just(rc.MAX_AUTHOR_SEQ)), min_size=2, max_size=8)))
    ranges = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    canonical = [r for i, r in enumerate(ranges) if i == 0 or r[0] > ranges[i - 1][1] + 1]
    if not wrong:
        return canonical
    return draw(st.one_of(st.just(list(reversed(ranges))), st.just([]),
                          st.lists(st.tuples(u32(), u32()), min_size=1, max_size=3)))


@st.composite
def sync2_body(draw: st.DrawFn) -> bytes:
    """The plaintext of a /kith/sync/2.0.0 request (8.9), one thing wrong at most."""
    wrong = twist(draw, ("version", "page_limit", "count", "order", "ranges", "range count",
                         "trailing"))
    authors = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=4, unique=True))
    authors.sort(reverse=wrong == "order" and len(authors) > 1)
    bad_one = draw(st.integers(0, max(0, len(authors) - 1)))
    held = [(key, draw(held_ranges(wrong == "ranges" and i == bad_one)))
            for i, key in enumerate(authors)]
    body = _SYNC2_HEAD.pack(
        pick(draw, st.just(2), st.integers(0, 255).filter(lambda v: v != 2), wrong == "version"),
        draw(st.integers(0, 255)),
        pick(draw, st.integers(1, 500), st.sampled_from([0, 501, 65535]), wrong == "page_limit"),
        pick(draw, st.just(len(held)), st.integers(0, 65535), wrong == "count"))
    for i, (key, ranges) in enumerate(held):
        declared = pick(draw, st.just(len(ranges)), st.integers(0, 65535),
                        wrong == "range count" and i == bad_one)
        body += _SYNC2_AUTHOR.pack(key, declared)
        body += b"".join(_SYNC2_RANGE.pack(first, last) for first, last in ranges)
    return body + (draw(st.sampled_from([b"\x00", b"\xff" * 8])) if wrong == "trailing"
                   else b"")


@st.composite
def sync1_body(draw: st.DrawFn) -> bytes:
    """The plaintext of a /kith/sync/1.0.0 request (8.11), one thing wrong at most."""
    wrong = twist(draw, ("version", "count", "duplicate", "page_limit", "trailing"))
    entries = draw(st.lists(st.tuples(st.binary(min_size=32, max_size=32), u64()), max_size=4,
                            unique_by=lambda e: e[0]))
    if wrong == "duplicate" and entries:
        entries.append(entries[0])
    count = pick(draw, st.just(len(entries)), st.integers(0, 65535), wrong == "count")
    body = struct.pack(">BH", pick(draw, st.just(1), st.integers(0, 255).filter(
        lambda v: v != 1), wrong == "version"), count)
    body += b"".join(struct.pack(">32sQ", key, seq) for key, seq in entries)
    body += struct.pack(">H", pick(draw, st.integers(1, 500), st.sampled_from([0, 501, 65535]),
                                   wrong == "page_limit"))
    return body + (b"\x00" if wrong == "trailing" else b"")


@st.composite
def file_request(draw: st.DrawFn, transfers: int) -> tuple[int, bytes]:
    """(which of ``transfers`` known ids it names, or ``transfers`` for a random one, the
    request after the 16-byte id): op, count and chunk indexes (9.4), one wrong at most."""
    wrong = twist(draw, ("op", "count", "index", "trailing"))
    which = draw(st.integers(0, transfers))
    op = pick(draw, st.sampled_from([fc.OP_GET_HASHES, fc.OP_GET_CHUNKS, fc.OP_HAVE]),
              st.integers(0, 255), wrong == "op")
    indexes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=fc.MAX_CHUNKS_PER_REQUEST))
    if wrong == "index":
        indexes.append(draw(u32()))
    count = pick(draw, st.just(len(indexes)), u32(), wrong == "count")
    rest = bytes([op])
    if op == fc.OP_GET_CHUNKS or wrong == "trailing":
        rest += struct.pack(">I", count) + b"".join(struct.pack(">I", i) for i in indexes)
    return which, rest


# -- py-libp2p's own messages: circuit relay v2 and the DHT -----------------------------------

# Placeholders for peer ids known only at run time (``RunTimeIds.resolve`` in the test).
PEER_SLOTS = (b"<attacker>", b"<victim>", b"<other>")


def peer_id_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(PEER_SLOTS), st.binary(max_size=80))


def multiaddr_bytes(loopback_only: bool = False) -> st.SearchStrategy[bytes]:
    """Addresses as bytes: loopback ones (the only ones a test may make a node dial), odd
    ones, and junk (unless ``loopback_only``: the node may dial what it is given)."""
    from multiaddr import Multiaddr

    loopback = st.integers(1, 65535).map(
        lambda port: Multiaddr(f"/ip4/127.0.0.1/tcp/{port}").to_bytes())
    if loopback_only:
        return loopback
    odd = [Multiaddr(a).to_bytes() for a in ("/ip4/0.0.0.0/tcp/0", "/ip6/::1/tcp/65535",
                                             "/dns4/localhost/tcp/80", "/unix/tmp/x",
                                             "/ip4/127.0.0.1/udp/1/quic-v1")]
    return st.one_of(loopback, st.sampled_from(odd), st.binary(max_size=64))


@st.composite
def hop_message(draw: st.DrawFn) -> Any:
    """A circuit relay v2 HOP message (RESERVE, CONNECT, STATUS or unknown)."""
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage

    message = HopMessage(type=draw(st.one_of(st.integers(0, 2), st.integers(0, 2**31 - 1))))  # type: ignore[arg-type]  # any int32 value
    if draw(st.booleans()):
        message.peer.id = draw(peer_id_bytes())
        message.peer.addrs.extend(draw(st.lists(multiaddr_bytes(), max_size=4)))
    if draw(st.booleans()):
        message.limit.duration = draw(u32())
        message.limit.data = draw(u64())
    if draw(st.booleans()):
        message.reservation.expire = draw(u64())
        message.reservation.addrs.extend(draw(st.lists(multiaddr_bytes(), max_size=3)))
        message.reservation.voucher = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        message.status = draw(st.one_of(st.sampled_from([0, 100, 200, 400]),  # type: ignore[assignment]
                                        st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        message.senderRecord = draw(st.binary(max_size=128))
    return message


@st.composite
def stop_message(draw: st.DrawFn) -> Any:
    """A circuit relay v2 STOP message, as a relay hands a circuit to its destination."""
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import StopMessage

    message = StopMessage(type=draw(st.one_of(st.integers(0, 1), st.integers(0, 2**31 - 1))))  # type: ignore[arg-type]  # any int32 value
    if draw(st.booleans()):
        message.peer.id = draw(peer_id_bytes())
        message.peer.addrs.extend(draw(st.lists(multiaddr_bytes(), max_size=4)))
    if draw(st.booleans()):
        message.limit.duration = draw(u32())
        message.limit.data = draw(u64())
    if draw(st.booleans()):
        message.status = draw(st.integers(0, 2**31 - 1))  # type: ignore[assignment]  # an enum: int32 on the wire
    return message


@st.composite
def dht_message(draw: st.DrawFn, loopback_only: bool = False) -> Any:
    """A Kademlia message of any type, with peers, a record and a sender record (with
    ``loopback_only``, every address a node may dial is on 127.0.0.1)."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message

    message = Message(type=draw(st.one_of(st.integers(0, 5), st.integers(0, 2**31 - 1))))  # type: ignore[arg-type]  # any int32 value
    message.key = draw(st.one_of(peer_id_bytes(), st.binary(max_size=100)))
    message.clusterLevelRaw = draw(st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)))
    for _ in range(draw(st.integers(0, 3))):
        peer = message.closerPeers.add()
        peer.id = draw(peer_id_bytes())
        peer.addrs.extend(draw(st.lists(multiaddr_bytes(loopback_only), max_size=3)))
        peer.connection = draw(st.integers(0, 3))  # type: ignore[assignment]  # any int32 value
        if draw(st.booleans()):
            peer.signedRecord = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        message.record.key = draw(st.binary(max_size=64))
        message.record.value = draw(st.binary(max_size=512))
        message.record.timeReceived = draw(hostile_text(30, surrogates=False))
    if draw(st.booleans()):
        message.senderRecord = draw(st.binary(max_size=256))
    return message


@st.composite
def membership_body(draw: st.DrawFn) -> bytes:
    """A governed room's log entry (docs/protocol.md 8.12), one field wrong at most."""
    op = draw(mostly(st.sampled_from(sorted(OPS)), hostile_text(12)))
    peer_ok, peer_bad = st.just(Identity(b"\x07" * 32).peer_id), json_junk()
    hex16_ok, hex16_bad = hex_field(16)
    hex32_ok, hex32_bad = hex_field(32)
    wrong = twist(draw, ("peer", "epoch", "keys", "role", "invite", "settings", "seq",
                         *OBJECT_TWISTS))
    key_pair = st.tuples(st.just(Identity(b"\x07" * 32).peer_id),
                         st.binary(min_size=80, max_size=80).map(
                             lambda b: base64.b64encode(b).decode()))
    fields = {
        "op": op,
        "peer": pick(draw, peer_ok, peer_bad, wrong == "peer"),
        "epoch": pick(draw, hex16_ok, hex16_bad, wrong == "epoch"),
        "keys": pick(draw, st.lists(key_pair.map(list), max_size=3),
                     st.one_of(json_junk(), st.lists(json_junk(), max_size=3)), wrong == "keys"),
        "role": pick(draw, st.sampled_from(["owner", "admin", "member", "observer"]),
                     json_junk(), wrong == "role"),
        "invite": pick(draw, hex32_ok, hex32_bad, wrong == "invite"),
        "settings": pick(draw, st.fixed_dictionaries({}, optional={
            "join": st.sampled_from(["open", "invite", "approve"]),
            "history": st.booleans(), "name": hostile_text(70)}),
            json_junk(), wrong == "settings"),
        "seq": pick(draw, st.integers(0, 10), u64(), wrong == "seq"),
        "ban": draw(st.one_of(st.booleans(), json_junk())),
        "nonce": draw(hex16_ok),
    }
    return draw(json_object(fields, rc.MAX_MEMBERSHIP_BYTES,
                            wrong if wrong in OBJECT_TWISTS else None))
