"""Room codec: posts, invites and sync payloads; round trips, every refusal, no crash on input."""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct

import nacl.secret
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import room
from app.core.identity import Identity
from app.core.invite import InvalidInvite, parse_invite

ALICE = Identity(b"\x0a" * 32)
BOB = Identity(b"\x0b" * 32)
SECRETS = room.RoomSecrets(bytes(range(16)), bytes(range(32, 64)))
OTHER_KEY = room.RoomSecrets(SECRETS.room_id, b"\x99" * 32)
OTHER_ROOM_SAME_KEY = room.RoomSecrets(b"\x77" * 16, SECRETS.key)
PID = bytes(range(0xA0, 0xB0))
T = 1_767_225_600_000
ADDR = "/ip4/192.0.2.7/tcp/4001/p2p/" + ALICE.peer_id


def text_post(text: str = "hi room", *, seq: int = 1, lamport: int = 5) -> bytes:
    return room.encode_text_post(
        ALICE, SECRETS, text, lamport=lamport, author_seq=seq, sent_at_ms=T, post_id=PID
    )


def inner(
    body: bytes = b"hi",
    *,
    kind: int = room.KIND_TEXT,
    seq: int = 1,
    signer: Identity = ALICE,
    room_id: bytes = SECRETS.room_id,
    version: int = room.VERSION,
) -> bytes:
    return room.encode_inner(
        signer,
        room_id,
        body,
        kind=kind,
        post_id=PID,
        lamport=5,
        author_seq=seq,
        sent_at_ms=T,
        version=version,
    )


def sealed(inner_bytes: bytes, secrets: room.RoomSecrets = SECRETS) -> bytes:
    return room.seal_inner(secrets, inner_bytes)


def announce_body(name: object = "Ada", addrs: object = (ADDR,)) -> bytes:
    value = {"name": name, "addrs": list(addrs) if isinstance(addrs, tuple) else addrs}
    return json.dumps(value).encode()


# ---- secrets --------------------------------------------------------------------------------


def test_secrets_generate_and_topic() -> None:
    a, b = room.RoomSecrets.generate(), room.RoomSecrets.generate()
    assert a != b and len(a.room_id) == 16 and len(a.key) == 32
    assert a.id_hex == a.room_id.hex()
    digest = hashlib.sha256(b"kith-room-topic-v1" + a.room_id).hexdigest()
    assert a.topic == "/kith/room/1/" + digest[:32]
    assert a.room_id.hex() not in a.topic and a.key.hex()[:8] not in a.topic
    assert a.topic != b.topic
    assert a.key.hex() not in repr(a) and "hidden" in repr(a)


@pytest.mark.parametrize(("room_id", "key"), [(b"x" * 15, b"k" * 32), (b"x" * 16, b"k" * 31)])
def test_secrets_refuse_wrong_sizes(room_id: bytes, key: bytes) -> None:
    with pytest.raises(ValueError):
        room.RoomSecrets(room_id, key)


def test_next_lamport() -> None:
    assert room.next_lamport(0) == 1
    assert room.next_lamport(41) == 42
    # Saturates where every member can still store it and count on from it.
    assert room.next_lamport(room.MAX_LAMPORT) == room.MAX_LAMPORT
    assert room.next_lamport(2**64 - 1) == room.MAX_LAMPORT
    with pytest.raises(ValueError):
        room.next_lamport(-1)


# ---- round trips ----------------------------------------------------------------------------


def test_text_round_trip() -> None:
    post = room.decode_post(SECRETS, text_post("hello, room ✓", seq=3, lamport=7))
    assert post == room.RoomPost(
        post_id=PID,
        room_id=SECRETS.room_id,
        author=ALICE.peer_id,
        lamport=7,
        author_seq=3,
        sent_at_ms=T,
        kind=room.KIND_TEXT,
        body="hello, room ✓".encode(),
    )
    assert post.text == "hello, room ✓"
    assert post.author_key == ALICE.public_key
    with pytest.raises(ValueError):
        _ = post.announce


def test_layout_matches_the_spec() -> None:
    nonce = b"\x42" * 24
    envelope = room.encode_text_post(
        ALICE, SECRETS, "abc", lamport=9, author_seq=2, sent_at_ms=T, post_id=PID, nonce=nonce
    )
    assert envelope[0] == 1 and envelope[1:25] == nonce
    plain = nacl.secret.SecretBox(SECRETS.key).decrypt(envelope[25:], nonce)
    assert len(envelope) == 1 + 24 + 16 + len(plain)
    assert plain[:90] == struct.pack(
        ">B16s16s32sQQQB", 1, PID, SECRETS.room_id, ALICE.public_key, 9, 2, T, 1
    )
    assert plain[90:-64] == b"abc"
    ALICE.signing_key.verify_key.verify(b"kith-room-v1\x00" + plain[:-64], plain[-64:])


def test_random_post_id_and_nonce_by_default() -> None:
    a = room.encode_text_post(ALICE, SECRETS, "x", lamport=1, author_seq=1, sent_at_ms=T)
    b = room.encode_text_post(ALICE, SECRETS, "x", lamport=1, author_seq=1, sent_at_ms=T)
    assert a[1:25] != b[1:25]
    assert room.decode_post(SECRETS, a).post_id != room.decode_post(SECRETS, b).post_id
    assert room.new_post_id() != room.new_post_id()


def test_announce_round_trip() -> None:
    addrs = [ADDR, "/ip4/10.0.0.1/tcp/1"]
    name = "  Ada   Lovelace\x00 "
    envelope = room.encode_announce(ALICE, SECRETS, name, addrs, lamport=4, sent_at_ms=T)
    post = room.decode_post(SECRETS, envelope)
    assert (post.kind, post.author_seq, post.lamport) == (room.KIND_ANNOUNCE, 0, 4)
    assert post.announce == room.Announce(
        name="Ada Lovelace", addrs=(ADDR, "/ip4/10.0.0.1/tcp/1/p2p/" + ALICE.peer_id)
    )
    assert json.loads(post.body)["name"] == "Ada Lovelace"
    with pytest.raises(ValueError):
        _ = post.text


def test_announce_with_empty_name_and_no_addresses() -> None:
    envelope = room.encode_announce(ALICE, SECRETS, "\x00 ", [], lamport=0, sent_at_ms=T)
    assert room.decode_post(SECRETS, envelope).announce == room.Announce("", ())


def test_announce_refuses_an_address_of_another_peer() -> None:
    with pytest.raises(room.MalformedPost):
        room.encode_announce(
            ALICE,
            SECRETS,
            "Ada",
            ["/ip4/1.2.3.4/tcp/1/p2p/" + BOB.peer_id],
            lamport=1,
            sent_at_ms=T,
        )


def test_file_round_trip() -> None:
    body = json.dumps({"name": "a.txt", "size": 3, "sha256": "00" * 32}).encode()
    envelope = room.encode_post(
        ALICE, SECRETS, kind=room.KIND_FILE, body=body, lamport=2, author_seq=4, sent_at_ms=T
    )
    post = room.decode_post(SECRETS, envelope)
    assert (post.kind, post.body, post.author_seq) == (room.KIND_FILE, body, 4)


def test_largest_text_fits_in_an_envelope() -> None:
    text = "é" * (room.MAX_POST_TEXT_BYTES // 2)
    envelope = text_post(text)
    assert len(envelope) == 1 + 24 + 16 + 90 + 65536 + 64 <= room.MAX_ENVELOPE
    assert room.decode_post(SECRETS, envelope).text == text


def test_order_key_sorts_equal_lamports_by_author_then_post_id() -> None:
    def post(author: Identity, lamport: int, post_id: bytes) -> room.RoomPost:
        envelope = room.encode_text_post(
            author, SECRETS, "x", lamport=lamport, author_seq=1, sent_at_ms=T, post_id=post_id
        )
        return room.decode_post(SECRETS, envelope)

    low, high = sorted([ALICE, BOB], key=lambda i: i.public_key)
    posts = [
        post(high, 5, b"\x00" * 16),
        post(low, 5, b"\x02" * 16),
        post(low, 6, b"\x00" * 16),
        post(low, 5, b"\x01" * 16),
        post(high, 4, b"\xff" * 16),
    ]
    ordered = sorted(posts, key=lambda p: p.order_key)
    assert [(p.lamport, p.author_key, p.post_id[0]) for p in ordered] == [
        (4, high.public_key, 0xFF),
        (5, low.public_key, 0x01),
        (5, low.public_key, 0x02),
        (5, high.public_key, 0x00),
        (6, low.public_key, 0x00),
    ]
    assert posts[0].order_key == (5, high.public_key, b"\x00" * 16)


# ---- refusals when encoding -----------------------------------------------------------------


def test_oversized_text_refused_on_encode() -> None:
    with pytest.raises(room.MalformedPost, match="too long"):
        text_post("x" * (room.MAX_POST_TEXT_BYTES + 1))
    with pytest.raises(room.MalformedPost):
        text_post("✓" * (room.MAX_POST_TEXT_BYTES // 3 + 1))


@pytest.mark.parametrize("text", ["", "lone \ud800 surrogate"])
def test_empty_or_broken_text_refused_on_encode(text: str) -> None:
    with pytest.raises(room.MalformedPost):
        text_post(text)


def test_text_with_author_seq_zero_refused_on_encode() -> None:
    with pytest.raises(room.MalformedPost, match="author_seq"):
        text_post(seq=0)


def test_unknown_kind_refused_on_encode() -> None:
    with pytest.raises(room.UnsupportedKind):
        room.encode_post(ALICE, SECRETS, kind=9, body=b"x", lamport=1, author_seq=1, sent_at_ms=T)


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"post_id": b"short"}, "post id"),
        ({"nonce": b"\0" * 23}, "nonce"),
        ({"lamport": -1}, "lamport"),
        ({"lamport": 2**64}, "lamport"),
        ({"sent_at_ms": 2**64}, "sent_at_ms"),
        ({"author_seq": 2**64}, "author_seq"),
        ({"lamport": room.MAX_LAMPORT + 1}, "lamport"),
        ({"author_seq": room.MAX_AUTHOR_SEQ + 1}, "author_seq"),
        ({"sent_at_ms": room.MAX_SENT_AT_MS + 1}, "sent_at"),
    ],
)
def test_bad_arguments_refused_on_encode(kwargs: dict[str, object], what: str) -> None:
    args: dict[str, object] = {"lamport": 1, "author_seq": 1, "sent_at_ms": T, **kwargs}
    with pytest.raises(ValueError, match=what):
        room.encode_text_post(ALICE, SECRETS, "hi", **args)  # type: ignore[arg-type]


# ---- refusals when decoding -----------------------------------------------------------------


def test_forged_signature() -> None:
    unsigned = inner()[:-64]
    resigned = unsigned + BOB.sign(b"kith-room-v1\x00" + unsigned)  # says Alice, signed by Bob
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(resigned))


def test_signature_without_the_context_is_refused() -> None:
    unsigned = inner()[:-64]
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(unsigned + ALICE.sign(unsigned)))


def test_dm_signature_context_is_refused() -> None:
    unsigned = inner()[:-64]
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(unsigned + ALICE.sign(b"kith-dm-v1\x00" + unsigned)))


def test_signed_body_altered_inside_the_box() -> None:
    genuine = inner(b"pay Bob 10")
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(genuine[:90] + b"pay Bob 99" + genuine[-64:]))


def test_wrong_key() -> None:
    with pytest.raises(room.WrongRoomKey):
        room.decode_post(OTHER_KEY, text_post())


def test_tampered_byte_anywhere() -> None:
    envelope = text_post("hello")
    for index in range(len(envelope)):
        tampered = bytearray(envelope)
        tampered[index] ^= 0x01
        expected = room.MalformedPost if index == 0 else room.WrongRoomKey
        with pytest.raises(expected):
            room.decode_post(SECRETS, bytes(tampered))


def numbered(lamport: int = 5, seq: int = 1, sent_at_ms: int = T,
             kind: int = room.KIND_TEXT, body: bytes = b"hi") -> bytes:
    """An envelope with any u64 numbers, signed correctly (encode_inner has no bounds)."""
    return sealed(room.encode_inner(ALICE, SECRETS.room_id, body, kind=kind, post_id=PID,
                                    lamport=lamport, author_seq=seq, sent_at_ms=sent_at_ms))


@pytest.mark.parametrize(
    ("numbers", "what"),
    [
        ({"lamport": 2**63}, "lamport"),  # beyond i64: an OverflowError in the store
        ({"lamport": 2**63 - 1}, "lamport"),  # fits, but the next post would overflow
        ({"lamport": room.MAX_LAMPORT + 1}, "lamport"),
        ({"lamport": 2**64 - 1}, "lamport"),
        ({"seq": 2**63}, "author_seq"),
        ({"seq": room.MAX_AUTHOR_SEQ + 1}, "author_seq"),
        ({"sent_at_ms": 2**64 - 1}, "sent_at"),
        ({"sent_at_ms": room.MAX_SENT_AT_MS + 1}, "sent_at"),
    ],
)
def test_numbers_beyond_what_members_store_are_refused(numbers: dict[str, int],
                                                       what: str) -> None:
    with pytest.raises(room.OutOfRange, match=what):
        room.decode_post(SECRETS, numbered(**numbers))  # type: ignore[arg-type]


def test_largest_numbers_members_accept() -> None:
    post = room.decode_post(SECRETS, numbered(room.MAX_LAMPORT, room.MAX_AUTHOR_SEQ,
                                              room.MAX_SENT_AT_MS))
    assert (post.lamport, post.author_seq, post.sent_at_ms) == (
        2**62, 2**32 - 1, 4_102_444_800_000)
    assert room.decode_post(SECRETS, numbered(0, 1, 0)).sent_at_ms == 0


def test_numbers_are_checked_after_the_body_rules() -> None:
    with pytest.raises(room.MalformedPost, match="empty"):
        room.decode_post(SECRETS, numbered(lamport=2**64 - 1, body=b""))
    assert issubclass(room.OutOfRange, room.MalformedPost)


def test_announce_numbers_are_bounded_too() -> None:
    with pytest.raises(room.OutOfRange):
        room.decode_post(SECRETS, numbered(lamport=2**63, seq=0, kind=room.KIND_ANNOUNCE,
                                           body=announce_body()))


def test_precedence_orders_conflicting_posts() -> None:
    low, high = b"\x01" * 16, b"\x02" * 16

    def post(post_id: bytes, seq: int, text: str) -> room.RoomPost:
        return room.decode_post(SECRETS, room.encode_text_post(
            ALICE, SECRETS, text, lamport=5, author_seq=seq, sent_at_ms=T, post_id=post_id))

    assert post(low, 7, "b").precedence < post(high, 3, "a").precedence  # the id decides first
    assert post(low, 3, "b").precedence < post(low, 7, "a").precedence  # then author_seq
    a, b = post(low, 3, "a"), post(low, 3, "b")  # then the signed content
    assert (a.precedence < b.precedence) == (
        hashlib.sha256(room.encode_inner(ALICE, SECRETS.room_id, b"a", kind=1, post_id=low,
                                         lamport=5, author_seq=3, sent_at_ms=T)[:-64]).digest()
        < hashlib.sha256(room.encode_inner(ALICE, SECRETS.room_id, b"b", kind=1, post_id=low,
                                           lamport=5, author_seq=3, sent_at_ms=T)[:-64]).digest()
    )
    resealed = room.decode_post(SECRETS, sealed(room.encode_inner(
        ALICE, SECRETS.room_id, b"a", kind=1, post_id=low, lamport=5, author_seq=3,
        sent_at_ms=T)))
    assert resealed.same_content(a) and not a.same_content(b)


def test_post_replayed_into_another_room_with_the_same_key() -> None:
    # A genuine post of this room, re-sealed (same key) as if it belonged to another room.
    with pytest.raises(room.WrongRoom):
        room.decode_post(OTHER_ROOM_SAME_KEY, text_post())
    # Even when the replayer controls the box, the signed room id gives it away.
    with pytest.raises(room.WrongRoom):
        room.decode_post(SECRETS, sealed(inner(room_id=b"\x77" * 16)))


def test_wrong_room_is_checked_before_the_signature() -> None:
    unsigned = inner(room_id=b"\x77" * 16)[:-64]
    with pytest.raises(room.WrongRoom):
        room.decode_post(SECRETS, sealed(unsigned + b"\0" * 64))


def test_unsupported_kind_is_checked_after_the_signature() -> None:
    with pytest.raises(room.UnsupportedKind):
        room.decode_post(SECRETS, sealed(inner(kind=7)))
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(inner(kind=7)[:-64] + b"\0" * 64))


def test_body_rules_are_checked_after_the_kind_and_signature() -> None:
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, sealed(inner(b"")[:-64] + b"\0" * 64))


def test_announce_with_nonzero_seq() -> None:
    with pytest.raises(room.MalformedPost, match="author_seq"):
        room.decode_post(SECRETS, sealed(inner(announce_body(), kind=room.KIND_ANNOUNCE, seq=1)))
    with pytest.raises(room.MalformedPost, match="author_seq"):
        room.encode_post(
            ALICE,
            SECRETS,
            kind=room.KIND_ANNOUNCE,
            body=announce_body(),
            lamport=1,
            author_seq=2,
            sent_at_ms=T,
        )


@pytest.mark.parametrize("kind", [room.KIND_TEXT, room.KIND_FILE])
def test_stored_kinds_with_seq_zero(kind: int) -> None:
    with pytest.raises(room.MalformedPost, match="author_seq"):
        room.decode_post(SECRETS, sealed(inner(b"{}", kind=kind, seq=0)))


def test_oversized_text_refused_on_decode() -> None:
    envelope = sealed(inner(b"x" * (room.MAX_POST_TEXT_BYTES + 1)))
    assert len(envelope) <= room.MAX_ENVELOPE  # the envelope limit alone would not catch it
    with pytest.raises(room.MalformedPost, match="too long"):
        room.decode_post(SECRETS, envelope)


def test_empty_text_refused_on_decode() -> None:
    with pytest.raises(room.MalformedPost, match="empty"):
        room.decode_post(SECRETS, sealed(inner(b"")))


@pytest.mark.parametrize("body", [b"\xff", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80"])
def test_bad_utf8(body: bytes) -> None:
    for kind, seq in ((room.KIND_TEXT, 1), (room.KIND_ANNOUNCE, 0), (room.KIND_FILE, 1)):
        with pytest.raises(room.MalformedPost, match="UTF-8"):
            room.decode_post(SECRETS, sealed(inner(body, kind=kind, seq=seq)))


@pytest.mark.parametrize(
    "body", [b"", b"{", b"nope", b'{"a": 1,}', b"[" * 4000, b"NaN]", b'"unterminated']
)
def test_bad_json(body: bytes) -> None:
    for kind, seq in ((room.KIND_ANNOUNCE, 0), (room.KIND_FILE, 1)):
        with pytest.raises(room.MalformedPost, match="JSON"):
            room.decode_post(SECRETS, sealed(inner(body, kind=kind, seq=seq)))


@pytest.mark.parametrize("body", [b"[]", b"1", b'"x"', b"null"])
def test_json_that_is_not_an_object(body: bytes) -> None:
    for kind, seq in ((room.KIND_ANNOUNCE, 0), (room.KIND_FILE, 1)):
        with pytest.raises(room.MalformedPost, match="object"):
            room.decode_post(SECRETS, sealed(inner(body, kind=kind, seq=seq)))


@pytest.mark.parametrize(
    "body",
    [
        b'{"addrs": []}',
        b'{"name": "Ada"}',
        announce_body(name=7),
        announce_body(addrs="not a list"),
        announce_body(addrs=[7]),
        announce_body(addrs=["ip4/1.2.3.4/tcp/1/p2p/" + ALICE.peer_id]),
        announce_body(addrs=["/ip4/1.2.3.4/tcp/1"]),  # not a full multiaddr
        announce_body(addrs=["/ip4/1.2.3.4/tcp/1/p2p/" + BOB.peer_id]),  # someone else's
        announce_body(addrs=["/ip4/1.2.3.4/tcp/1/p2p/12D3KooWnope"]),
        announce_body(addrs=["/dns/" + "a" * 250 + "/p2p/" + ALICE.peer_id]),  # > 256 chars
        announce_body(addrs=[ADDR] * 17),
        json.dumps({"name": "x" * 4100, "addrs": []}).encode(),  # > 4096 bytes
    ],
)
def test_bad_announces(body: bytes) -> None:
    with pytest.raises(room.MalformedPost):
        room.decode_post(SECRETS, sealed(inner(body, kind=room.KIND_ANNOUNCE, seq=0)))


def test_announce_ignores_unknown_members() -> None:
    body = json.dumps({"name": "Ada", "addrs": [ADDR], "avatar": "later"}).encode()
    post = room.decode_post(SECRETS, sealed(inner(body, kind=room.KIND_ANNOUNCE, seq=0)))
    assert post.announce == room.Announce("Ada", (ADDR,))


def test_file_body_over_the_limit() -> None:
    body = json.dumps({"name": "x" * room.MAX_FILE_BYTES}).encode()
    with pytest.raises(room.MalformedPost, match="too large"):
        room.decode_post(SECRETS, sealed(inner(body, kind=room.KIND_FILE)))


@pytest.mark.parametrize("version", [0, 2, 255])
def test_bad_inner_version(version: int) -> None:
    with pytest.raises(room.MalformedPost, match="version"):
        room.decode_post(SECRETS, sealed(inner(version=version)))


@pytest.mark.parametrize("first", [0x00, 0x02, 0xFF])
def test_bad_envelope_version(first: int) -> None:
    with pytest.raises(room.MalformedPost, match="version"):
        room.decode_post(SECRETS, bytes([first]) + text_post()[1:])


def test_envelope_over_the_limit() -> None:
    with pytest.raises(room.MalformedPost, match="too large"):
        room.decode_post(SECRETS, text_post() + b"\0" * room.MAX_ENVELOPE)


def test_every_truncation_is_refused() -> None:
    envelope = text_post("hello")
    for n in range(len(envelope)):
        with pytest.raises(room.RoomError):
            room.decode_post(SECRETS, envelope[:n])
    whole = inner(b"hello")
    for n in range(len(whole)):
        with pytest.raises(room.RoomError):
            room.decode_post(SECRETS, sealed(whole[:n]))


def test_errors_are_short_and_plain() -> None:
    with pytest.raises(room.RoomError) as info:
        room.decode_post(OTHER_KEY, text_post())
    text = str(info.value)
    assert text and len(text) < 80 and "\n" not in text


def test_error_hierarchy() -> None:
    for error in (
        room.MalformedPost,
        room.WrongRoomKey,
        room.WrongRoom,
        room.BadSignature,
        room.UnsupportedKind,
        room.MalformedSync,
    ):
        assert issubclass(error, room.RoomError)
    assert issubclass(room.RoomError, ValueError)


# ---- invites --------------------------------------------------------------------------------


def invite(**changes: object) -> room.RoomInvite:
    fields: dict[str, object] = {
        "secrets": SECRETS,
        "name": "Zoë & friends?",
        "description": "Plans, recipes, 100% ✓",
        "via": (ADDR, "/ip6/::1/tcp/4001/p2p/" + BOB.peer_id),
        **changes,
    }
    return room.RoomInvite(**fields)  # type: ignore[arg-type]


def test_invite_round_trip() -> None:
    link = invite().to_link()
    assert link.startswith("kith:room?id=" + SECRETS.id_hex + "&key=" + SECRETS.key_b64 + "&")
    assert len(SECRETS.key_b64) == 43 and "=" not in SECRETS.key_b64
    assert room.parse_room_invite(link) == invite()
    assert room.parse_room_invite("  KITH:" + link[5:] + "\n") == invite()
    assert room.parse_room_invite(link.replace("kith:", "kith://")) == invite()


def test_invite_without_description_or_via() -> None:
    plain = invite(description="", via=())
    link = plain.to_link()
    assert "desc=" not in link and "via=" not in link
    assert room.parse_room_invite(link) == plain


def test_invite_generated_key_round_trips() -> None:
    for _ in range(50):  # exercises keys whose base64 ends in every possible character
        secrets = room.RoomSecrets.generate()
        assert room.parse_room_invite(invite(secrets=secrets).to_link()).secrets == secrets


def test_invite_cleans_name_and_bounds_description() -> None:
    link = invite(name="  Ada \t room\x00 ", description="d\n" * 400).to_link()
    parsed = room.parse_room_invite(link)
    assert parsed.name == "Ada room"
    assert parsed.description == ("d " * 140).strip()
    assert room.clean_description("line one\nline\ttwo\x00 ") == "line one line two"
    assert len(room.parse_room_invite(invite(name="n" * 200).to_link()).name) == room.MAX_NAME


def test_invite_accepts_uppercase_room_id() -> None:
    link = invite().to_link().replace(SECRETS.id_hex, SECRETS.id_hex.upper())
    assert room.parse_room_invite(link).secrets == SECRETS


def _link(**params: str | list[str]) -> str:
    base: dict[str, str | list[str]] = {
        "id": SECRETS.id_hex,
        "key": SECRETS.key_b64,
        "name": "Room",
        **params,
    }
    parts = []
    for key, value in base.items():
        for v in [value] if isinstance(value, str) else value:
            parts.append(f"{key}={v}")
    return "kith:room?" + "&".join(parts)


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("https://example.org", "starts with 'kith:'"),
        ("kith:" + "x" * 9000, "too long"),
        (invite().to_link().replace("kith:room", "kith:contact"), "not a room invite"),
        ("kith:?id=x", "not a room invite"),
        (_link(id="00" * 15), "room id"),
        (_link(id="zz" * 16), "room id"),
        (_link(id=[SECRETS.id_hex, SECRETS.id_hex]), "room id"),
        (_link(id=" " + "00" * 16), "room id"),
        (_link(key=SECRETS.key_b64 + "A"), "room key"),
        (_link(key=SECRETS.key_b64[:-1]), "room key"),
        (_link(key=SECRETS.key_b64 + "="), "room key"),
        (_link(key=SECRETS.key_b64[:-1] + "9"), "room key"),  # non-zero spare bits
        (_link(key=SECRETS.key_b64.replace("I", "+")), "room key"),  # not base64url
        (_link(key=[SECRETS.key_b64, SECRETS.key_b64]), "room key"),
        (_link(name=""), "missing the room's name"),
        (_link(name="%20%09"), "missing the room's name"),
        (_link(name="%00"), "missing the room's name"),
        ("kith:room?id=" + SECRETS.id_hex + "&key=" + SECRETS.key_b64, "missing the room's name"),
        (_link(via=[ADDR] * 9), "too many members"),
        (_link(via=[ADDR] * 30), "too many"),
        (_link(via="/ip4/1.2.3.4/tcp/1"), "malformed member address"),
        (_link(via="ip4/1.2.3.4/tcp/1/p2p/" + BOB.peer_id), "malformed member address"),
        (_link(via="/ip4/1.2.3.4/tcp/1/p2p/12D3KooWnope"), "malformed member address"),
        (_link(via="/p2p/" + BOB.peer_id), "malformed member address"),
        (_link(via="/dns/" + "a" * 250 + "/p2p/" + BOB.peer_id), "malformed member address"),
    ],
)
def test_bad_room_links_say_what_is_wrong(link: str, words: str) -> None:
    with pytest.raises(InvalidInvite, match=words):
        room.parse_room_invite(link)


def test_invite_kind() -> None:
    assert room.invite_kind(invite().to_link()) == "room"
    contact = "kith:contact?id=" + ALICE.peer_id
    assert room.invite_kind(contact) == "contact"
    assert room.invite_kind(" kith://contact?id=x") == "contact"  # parse_invite says what's wrong
    parse_invite(contact)
    for bad in ("kith:chat?x", "kith:", "http://x", "kith:" + "x" * 9000):
        with pytest.raises(InvalidInvite):
            room.invite_kind(bad)
    with pytest.raises(InvalidInvite):  # a room link is not a contact link
        parse_invite(invite().to_link())


def test_link_says_nothing_secret_beyond_the_key() -> None:
    link = invite().to_link()
    assert "key=" + SECRETS.key_b64 in link
    assert SECRETS.key.hex() not in link


# ---- sync -----------------------------------------------------------------------------------

HAVE = {ALICE.public_key: 3, BOB.public_key: 0}


def test_sync_request_round_trip() -> None:
    payload = room.encode_sync_request(SECRETS, HAVE, 100)
    assert room.sync_request_room_id(payload) == SECRETS.room_id
    assert room.decode_sync_request(SECRETS, payload) == room.SyncRequest(HAVE, 100)
    empty = room.encode_sync_request(SECRETS, {}, room.MAX_SYNC_PAGE)
    assert len(empty) == 61
    assert room.decode_sync_request(SECRETS, empty) == room.SyncRequest({}, room.MAX_SYNC_PAGE)


def test_sync_request_layout() -> None:
    nonce = b"\x24" * 24
    payload = room.encode_sync_request(SECRETS, HAVE, 7, nonce=nonce)
    assert payload[:16] == SECRETS.room_id and payload[16:40] == nonce
    body = nacl.secret.SecretBox(SECRETS.key).decrypt(payload[40:], nonce)
    first, second = sorted(HAVE.items())
    assert body == (
        b"\x01\x00\x02"
        + first[0]
        + struct.pack(">Q", first[1])
        + second[0]
        + struct.pack(">Q", second[1])
        + b"\x00\x07"
    )


def test_largest_sync_request() -> None:
    have = {i.to_bytes(32, "big"): 2**64 - 1 for i in range(room.MAX_SYNC_AUTHORS)}
    payload = room.encode_sync_request(SECRETS, have, 1)
    assert len(payload) == room.MAX_SYNC_REQUEST
    assert room.decode_sync_request(SECRETS, payload).have == have


@pytest.mark.parametrize(
    ("have", "page_limit"),
    [
        ({}, 0),
        ({}, room.MAX_SYNC_PAGE + 1),
        ({b"short": 1}, 10),
        ({ALICE.public_key: -1}, 10),
        ({ALICE.public_key: 2**64}, 10),
        ({i.to_bytes(32, "big"): 0 for i in range(room.MAX_SYNC_AUTHORS + 1)}, 10),
    ],
)
def test_bad_sync_requests_refused_on_encode(have: dict[bytes, int], page_limit: int) -> None:
    with pytest.raises(ValueError):
        room.encode_sync_request(SECRETS, have, page_limit)


def raw_request(body: bytes, secrets: room.RoomSecrets = SECRETS) -> bytes:
    """A request payload boxed correctly around any body bytes."""
    nonce = b"\x01" * 24
    return secrets.room_id + bytes(nacl.secret.SecretBox(secrets.key).encrypt(body, nonce))


def entry(key: bytes, seq: int) -> bytes:
    return key + struct.pack(">Q", seq)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x01\x00",
        b"\x01\x00\x00\x00",  # no room for page_limit
        b"\x02\x00\x00\x00\x0a",  # version 2
        b"\x00\x00\x00\x00\x0a",  # version 0
        b"\x01\x00\x00\x00\x00",  # page_limit 0
        b"\x01\x00\x00\x01\xf5",  # page_limit 501
        b"\x01\x00\x00\xff\xff",
        b"\x01\x00\x00\x00\x0a\x00",  # trailing byte
        b"\x01\x00\x01\x00\x0a",  # count 1, no entry
        b"\x01\x00\x01" + entry(ALICE.public_key, 1)[:-1] + b"\x00\x0a",  # short entry
        b"\x01\x00\x02" + entry(ALICE.public_key, 1) * 2 + b"\x00\x0a",  # duplicate author
        b"\x01\x10\x01" + b"\x00" * (40 * 4097) + b"\x00\x0a",  # count 4097
        b"\x01\xff\xff\x00\x0a",  # count far beyond the bytes
    ],
)
def test_malformed_sync_request_bodies(body: bytes) -> None:
    payload = raw_request(body)
    if len(payload) > room.MAX_SYNC_REQUEST:
        with pytest.raises(room.MalformedSync, match="size"):
            room.decode_sync_request(SECRETS, payload)
        return
    with pytest.raises(room.MalformedSync):
        room.decode_sync_request(SECRETS, payload)


def test_sync_request_size_limits() -> None:
    for payload in (b"", SECRETS.room_id, b"\0" * 60, b"\0" * (room.MAX_SYNC_REQUEST + 1)):
        with pytest.raises(room.MalformedSync):
            room.sync_request_room_id(payload)
        with pytest.raises(room.MalformedSync):
            room.decode_sync_request(SECRETS, payload)


def test_sync_request_with_the_wrong_key_or_room() -> None:
    payload = room.encode_sync_request(SECRETS, HAVE, 10)
    with pytest.raises(room.WrongRoomKey):
        room.decode_sync_request(OTHER_KEY, payload)
    with pytest.raises(room.WrongRoomKey):
        room.decode_sync_request(OTHER_ROOM_SAME_KEY, payload)
    tampered = bytearray(payload)
    tampered[-1] ^= 1
    with pytest.raises(room.WrongRoomKey):
        room.decode_sync_request(SECRETS, bytes(tampered))


def test_sync_response_round_trip() -> None:
    envelope = text_post()
    assert room.decode_sync_response(room.encode_sync_post(envelope)) == room.SyncPostFrame(
        envelope
    )
    assert room.encode_sync_end(True) == b"\x02\x01"
    assert room.encode_sync_end(False) == b"\x02\x00"
    assert room.decode_sync_response(b"\x02\x01") == room.SyncEnd(more=True)
    assert room.decode_sync_response(b"\x02\x00") == room.SyncEnd(more=False)
    largest = text_post("x" * room.MAX_POST_TEXT_BYTES)
    assert room.decode_sync_response(b"\x01" + largest) == room.SyncPostFrame(largest)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        b"\x01" + b"\0" * (room.MIN_ENVELOPE - 1),
        b"\x01" + b"\0" * (room.MAX_ENVELOPE + 1),
        b"\x02",
        b"\x02\x02",
        b"\x02\xff",
        b"\x02\x00\x00",
        b"\x03\x00",
        b"\x00",
    ],
)
def test_malformed_sync_responses(payload: bytes) -> None:
    with pytest.raises(room.MalformedSync):
        room.decode_sync_response(payload)


def test_encode_sync_post_refuses_non_envelopes() -> None:
    for bad in (b"", b"\x01" * 10, b"\x01" * (room.MAX_ENVELOPE + 1)):
        with pytest.raises(ValueError):
            room.encode_sync_post(bad)


def test_synced_envelope_is_verified_like_a_live_one() -> None:
    forged = sealed(inner()[:-64] + b"\0" * 64)
    frame = room.decode_sync_response(room.encode_sync_post(forged))
    assert isinstance(frame, room.SyncPostFrame)
    with pytest.raises(room.BadSignature):
        room.decode_post(SECRETS, frame.envelope)


# ---- sync by ranges (/kith/sync/2.0.0) ------------------------------------------------------

HELD = {ALICE.public_key: ((1, 3), (5, 9)), BOB.public_key: ((2, 2),)}


def test_range_sync_request_round_trip() -> None:
    payload = room.encode_range_sync_request(SECRETS, HELD, 100, conflicts=True)
    assert room.sync_request_room_id(payload, room.SYNC2_VERSION) == SECRETS.room_id
    assert room.decode_range_sync_request(SECRETS, payload) == room.RangeSyncRequest(
        HELD, 100, conflicts=True)
    empty = room.encode_range_sync_request(SECRETS, {}, room.MAX_SYNC_PAGE)
    assert len(empty) == 62
    assert room.decode_range_sync_request(SECRETS, empty) == room.RangeSyncRequest(
        {}, room.MAX_SYNC_PAGE, conflicts=False)


def test_range_sync_request_layout() -> None:
    nonce = b"\x24" * 24
    payload = room.encode_range_sync_request(SECRETS, HELD, 7, nonce=nonce)
    assert payload[:16] == SECRETS.room_id and payload[16:40] == nonce
    body = nacl.secret.SecretBox(SECRETS.key).decrypt(payload[40:], nonce)
    (first, first_ranges), (second, second_ranges) = sorted(HELD.items())
    assert body == (
        b"\x02\x00\x00\x07\x00\x02"
        + first + struct.pack(">H", len(first_ranges))
        + b"".join(struct.pack(">II", *r) for r in first_ranges)
        + second + struct.pack(">H", len(second_ranges))
        + b"".join(struct.pack(">II", *r) for r in second_ranges)
    )


def test_largest_range_sync_request() -> None:
    per_author = room.MAX_SYNC_RANGES // room.MAX_SYNC_AUTHORS
    ranges = tuple((3 * i + 1, 3 * i + 2) for i in range(per_author))
    held = {i.to_bytes(32, "big"): ranges for i in range(room.MAX_SYNC_AUTHORS)}
    payload = room.encode_range_sync_request(SECRETS, held, 1)
    assert len(payload) == room.MAX_SYNC2_REQUEST
    assert room.decode_range_sync_request(SECRETS, payload).held == held


@pytest.mark.parametrize(
    ("held", "page_limit"),
    [
        ({}, 0),
        ({}, room.MAX_SYNC_PAGE + 1),
        ({b"short": ((1, 1),)}, 10),
        ({ALICE.public_key: ()}, 10),
        ({ALICE.public_key: ((0, 1),)}, 10),
        ({ALICE.public_key: ((2, 1),)}, 10),
        ({ALICE.public_key: ((1, room.MAX_AUTHOR_SEQ + 1),)}, 10),
        ({ALICE.public_key: ((1, 2), (3, 4))}, 10),  # touching: one range
        ({ALICE.public_key: ((5, 6), (1, 2))}, 10),  # not ascending
        ({ALICE.public_key: tuple((2 * i + 1, 2 * i + 1)
                                  for i in range(room.MAX_SYNC_RANGES + 1))}, 10),
        ({i.to_bytes(32, "big"): ((1, 1),) for i in range(room.MAX_SYNC_AUTHORS + 1)}, 10),
    ],
)
def test_bad_range_sync_requests_refused_on_encode(
    held: dict[bytes, tuple[tuple[int, int], ...]], page_limit: int
) -> None:
    with pytest.raises(ValueError):
        room.encode_range_sync_request(SECRETS, held, page_limit)


def author(key: bytes, *ranges: tuple[int, int]) -> bytes:
    return key + struct.pack(">H", len(ranges)) + b"".join(struct.pack(">II", *r) for r in ranges)


A_KEY, B_KEY = sorted((ALICE.public_key, BOB.public_key))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x02\x00\x00",
        b"\x01\x00\x00\x0a\x00\x00",  # version 1 on the 2.0.0 protocol
        b"\x03\x00\x00\x0a\x00\x00",
        b"\x02\x00\x00\x00\x00\x00",  # page_limit 0
        b"\x02\x00\x01\xf5\x00\x00",  # page_limit 501
        b"\x02\x00\x00\x0a\x00\x00\x00",  # trailing byte
        b"\x02\x00\x00\x0a\x00\x01",  # one author announced, none there
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (1, 1))[:-1],  # cut short
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY),  # no ranges
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (0, 3)),
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (4, 3)),
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (1, 2), (3, 4)),  # touching
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (1, 5), (3, 9)),  # overlapping
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, (1, 2**32 - 1), (1, 1)),
        b"\x02\x00\x00\x0a\x00\x02" + author(B_KEY, (1, 1)) + author(A_KEY, (1, 1)),  # order
        b"\x02\x00\x00\x0a\x00\x02" + author(A_KEY, (1, 1)) * 2,  # an author twice
        b"\x02\x00\x00\x0a\x10\x01" + author(A_KEY, (1, 1)) * 4097,  # 4097 authors
        b"\x02\x00\x00\x0a\x00\x01" + author(A_KEY, *((2 * i + 1, 2 * i + 1)
                                                      for i in range(8193))),
        b"\x02\x00\x00\x0a\xff\xff",  # count far beyond the bytes
    ],
)
def test_malformed_range_sync_request_bodies(body: bytes) -> None:
    with pytest.raises(room.MalformedSync):
        room.decode_range_sync_request(SECRETS, raw_request(body))


def test_unknown_flag_bits_are_ignored() -> None:
    body = b"\x02\xfe\x00\x0a\x00\x01" + author(A_KEY, (1, 4))
    request = room.decode_range_sync_request(SECRETS, raw_request(body))
    assert request == room.RangeSyncRequest({A_KEY: ((1, 4),)}, 10, conflicts=False)


def test_range_sync_request_size_limits_and_keys() -> None:
    for payload in (b"", b"\0" * 61, b"\0" * (room.MAX_SYNC2_REQUEST + 1)):
        with pytest.raises(room.MalformedSync):
            room.decode_range_sync_request(SECRETS, payload)
    payload = room.encode_range_sync_request(SECRETS, HELD, 10)
    for wrong in (OTHER_KEY, OTHER_ROOM_SAME_KEY):
        with pytest.raises(room.WrongRoomKey):
            room.decode_range_sync_request(wrong, payload)
    with pytest.raises(room.MalformedSync):  # a 1.0.0 request is not a 2.0.0 one
        room.decode_range_sync_request(SECRETS, room.encode_sync_request(SECRETS, HAVE, 10))


def test_constants_are_the_contract() -> None:
    assert (room.ROOM_ID_SIZE, room.ROOM_KEY_SIZE) == (16, 32)
    assert room.MAX_POST_TEXT_BYTES == 65536
    assert room.MAX_ENVELOPE == 70 * 1024
    assert (room.MAX_NAME, room.MAX_DESCRIPTION, room.MAX_VIA) == (64, 280, 8)
    assert (room.KIND_TEXT, room.KIND_ANNOUNCE, room.KIND_FILE) == (1, 2, 3)
    assert room.SYNC_PROTOCOL_ID == "/kith/sync/1.0.0"
    assert (room.MAX_SYNC_AUTHORS, room.MAX_SYNC_PAGE) == (4096, 500)
    assert room.MAX_SYNC_REQUEST == 16 + 24 + 16 + 1 + 2 + 4096 * 40 + 2 == 163901
    assert room.MIN_ENVELOPE == 195 and room.HEADER_SIZE == 90
    assert room.SYNC2_PROTOCOL_ID == "/kith/sync/2.0.0" and room.MAX_SYNC_RANGES == 8192
    assert room.MAX_SYNC2_REQUEST == 16 + 24 + 16 + 6 + 4096 * 34 + 8192 * 8 == 204862
    assert (room.MAX_LAMPORT, room.MAX_LAMPORT_STEP) == (2**62, 2**32)
    assert room.MAX_AUTHOR_SEQ == 2**32 - 1
    assert room.MAX_SENT_AT_MS == 4_102_444_800_000  # 2100-01-01T00:00:00Z


# ---- properties -----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_envelopes_raise_only_room_errors(data: bytes) -> None:
    for envelope in (data, b"\x01" + data, b"\x01" + data + b"\0" * 200):
        with pytest.raises(room.RoomError):
            room.decode_post(SECRETS, envelope)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 255), st.integers(0, 255), st.data())
def test_arbitrary_sealed_inners_raise_only_room_errors(
    body: bytes, kind: int, seq: int, data: st.DataObject
) -> None:
    raw = bytearray(inner(body, kind=kind, seq=seq))
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw[:cut]), data.draw(st.binary(max_size=300))):
        try:
            post = room.decode_post(SECRETS, sealed(candidate))
        except room.RoomError:
            continue
        assert post.author == ALICE.peer_id and post.room_id == SECRETS.room_id


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_sync_requests_raise_only_room_errors(data: bytes) -> None:
    for payload in (data, SECRETS.room_id + data, raw_request(data)):
        try:
            request = room.decode_sync_request(SECRETS, payload)
        except room.RoomError:
            continue
        assert 1 <= request.page_limit <= room.MAX_SYNC_PAGE
        assert all(len(k) == 32 for k in request.have)
    with contextlib.suppress(room.RoomError):
        room.sync_request_room_id(data)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_sync_responses_raise_only_room_errors(data: bytes) -> None:
    for payload in (data, b"\x01" + data, b"\x02" + data):
        try:
            frame = room.decode_sync_response(payload)
        except room.RoomError:
            continue
        assert isinstance(frame, room.SyncPostFrame | room.SyncEnd)


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_links_raise_only_invalid_invite(text: str) -> None:
    for link in (text, "kith:room?" + text, _link() + "&" + text, _link(via=text)):
        with contextlib.suppress(InvalidInvite):
            room.parse_room_invite(link)
        with contextlib.suppress(InvalidInvite):
            assert room.invite_kind(link) in ("contact", "room")


@FUZZ
@given(
    st.text(min_size=1, max_size=64).filter(lambda s: s.strip() and s.isprintable()),
    st.text(max_size=280),
    st.lists(st.sampled_from([ADDR, "/ip6/::1/tcp/1/p2p/" + BOB.peer_id]), max_size=8),
)
def test_invite_round_trip_for_any_name(name: str, description: str, via: list[str]) -> None:
    original = invite(name=name, description=description, via=tuple(via))
    parsed = room.parse_room_invite(original.to_link())
    assert parsed.secrets == SECRETS and parsed.via == tuple(via)
    assert parsed.name == " ".join(name.split())
    assert parsed.description == room.clean_description(description)


@FUZZ
@given(st.text(min_size=1, max_size=2000), st.integers(0, room.MAX_LAMPORT),
       st.integers(1, room.MAX_AUTHOR_SEQ))
def test_round_trip_for_any_text(text: str, lamport: int, seq: int) -> None:
    try:
        envelope = room.encode_text_post(
            ALICE, SECRETS, text, lamport=lamport, author_seq=seq, sent_at_ms=T
        )
    except room.MalformedPost:  # surrogates
        return
    post = room.decode_post(SECRETS, envelope)
    assert (post.text, post.lamport, post.author_seq) == (text, lamport, seq)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_range_sync_requests_raise_only_room_errors(data: bytes) -> None:
    for payload in (data, SECRETS.room_id + data, raw_request(data),
                    raw_request(b"\x02\x00\x00\x0a" + data)):
        try:
            request = room.decode_range_sync_request(SECRETS, payload)
        except room.RoomError:
            continue
        assert 1 <= request.page_limit <= room.MAX_SYNC_PAGE
        for key, ranges in request.held.items():
            assert len(key) == 32 and ranges
            assert all(1 <= a <= b <= room.MAX_AUTHOR_SEQ for a, b in ranges)
