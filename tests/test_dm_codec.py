"""The /kith/dm/1.0.0 codec: round trips, every refusal, and no crash on any input."""

from __future__ import annotations

import os
import struct

import nacl.public
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import dm
from app.core.identity import (
    Identity,
    InvalidPeerId,
    peer_id_from_public_key,
    x25519_public_from_peer_id,
)

ALICE = Identity(b"\x0a" * 32)
BOB = Identity(b"\x0b" * 32)
CAROL = Identity(b"\x0c" * 32)
MID = bytes(range(16))
T = 1_767_225_600_000


def send(text: str = "hi Bob", sender: Identity = ALICE, to: Identity = BOB) -> bytes:
    return dm.encode_message(sender, to.peer_id, text, message_id=MID, sent_at_ms=T)


def sealed(inner: bytes, sender: Identity = ALICE, to: Identity = BOB) -> bytes:
    """A MESSAGE payload boxed correctly from ``sender`` to ``to`` around any inner bytes."""
    return dm.seal_inner(sender, to.peer_id, inner)


def inner(
    body: bytes = b"hi",
    *,
    signer: Identity = ALICE,
    recipient: Identity = BOB,
    kind: int = dm.KIND_TEXT,
    version: int = dm.VERSION,
) -> bytes:
    return dm.encode_inner(
        signer, recipient.public_key, body, message_id=MID, sent_at_ms=T, kind=kind, version=version
    )


# ---- round trips ---------------------------------------------------------------------------


def test_round_trip() -> None:
    message = dm.decode_message(BOB, ALICE.peer_id, send("hello, Kith ✓"))
    assert message == dm.DirectMessage(
        message_id=MID,
        sender=ALICE.peer_id,
        recipient=BOB.peer_id,
        sent_at_ms=T,
        kind=dm.KIND_TEXT,
        text="hello, Kith ✓",
    )


def test_layout_matches_the_spec() -> None:
    nonce = b"\x42" * 24
    payload = dm.encode_message(
        ALICE, BOB.peer_id, "abc", message_id=MID, sent_at_ms=T, nonce=nonce
    )
    assert payload[0] == dm.FRAME_MESSAGE and payload[1:25] == nonce
    box = nacl.public.Box(
        nacl.public.PrivateKey(BOB.x25519_private),
        nacl.public.PublicKey(x25519_public_from_peer_id(ALICE.peer_id)),
    )
    plain = box.decrypt(payload[25:], nonce)
    assert len(payload) == 1 + 24 + 16 + len(plain)
    assert plain[:90] == struct.pack(
        ">B16s32s32sQB", 1, MID, ALICE.public_key, BOB.public_key, T, 1
    )
    assert plain[90:-64] == b"abc"
    ALICE.signing_key.verify_key.verify(b"kith-dm-v1\x00" + plain[:-64], plain[-64:])


def test_random_nonce_by_default() -> None:
    assert send()[1:25] != send()[1:25]
    assert dm.decode_message(BOB, ALICE.peer_id, send()).text == "hi Bob"


def test_message_to_oneself() -> None:
    payload = send("note to self", ALICE, ALICE)
    assert dm.decode_message(ALICE, ALICE.peer_id, payload).text == "note to self"


def test_largest_text_fits_in_a_frame() -> None:
    text = "é" * (dm.MAX_TEXT_BYTES // 2)
    payload = send(text)
    assert len(payload) <= dm.MAX_FRAME
    assert dm.decode_message(BOB, ALICE.peer_id, payload).text == text


def test_new_message_id() -> None:
    assert len(dm.new_message_id()) == dm.MESSAGE_ID_SIZE
    assert dm.new_message_id() != dm.new_message_id()


# ---- refusals when sending -----------------------------------------------------------------


def test_oversized_text_refused_on_encode() -> None:
    with pytest.raises(dm.MessageTooLarge):
        send("x" * (dm.MAX_TEXT_BYTES + 1))
    with pytest.raises(dm.MessageTooLarge):
        send("✓" * (dm.MAX_TEXT_BYTES // 3 + 1))  # few characters, too many bytes


def test_text_that_is_not_unicode_refused_on_encode() -> None:
    with pytest.raises(dm.DmError, match="Unicode"):
        send("lone \ud800 surrogate")


def test_empty_text_refused_on_encode() -> None:
    with pytest.raises(dm.EmptyMessage):
        send("")


@pytest.mark.parametrize(
    "recipient", ["", "12D3KooWnotapeerid", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"]
)
def test_bad_recipient_refused_on_encode(recipient: str) -> None:
    with pytest.raises(InvalidPeerId):
        dm.encode_message(ALICE, recipient, "hi", message_id=MID, sent_at_ms=T)


def test_recipient_key_that_is_not_a_point_refused_on_encode() -> None:
    with pytest.raises(InvalidPeerId):
        dm.encode_message(
            ALICE, peer_id_from_public_key(bytes(32)), "hi", message_id=MID, sent_at_ms=T
        )


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"message_id": b"short"}, "message id"),
        ({"sent_at_ms": -1}, "64-bit"),
        ({"sent_at_ms": 2**64}, "64-bit"),
        ({"nonce": b"\0" * 23}, "nonce"),
    ],
)
def test_bad_arguments_refused_on_encode(kwargs: dict[str, object], what: str) -> None:
    args: dict[str, object] = {"message_id": MID, "sent_at_ms": T, **kwargs}
    with pytest.raises(ValueError, match=what):
        dm.encode_message(ALICE, BOB.peer_id, "hi", **args)  # type: ignore[arg-type]


# ---- refusals when receiving ---------------------------------------------------------------


def test_forged_signature() -> None:
    # The sender field says Alice, but the bytes are re-signed with Carol's key.
    unsigned = inner()[:-64]
    resigned = unsigned + CAROL.sign(b"kith-dm-v1\x00" + unsigned)
    with pytest.raises(dm.BadSignature) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(resigned))
    assert info.value.message_id == MID and info.value.reject_reason is None


def test_signature_over_other_bytes() -> None:
    genuine = inner(b"pay Carol 10")
    altered = genuine[:90] + b"pay Carol 99" + genuine[-64:]
    with pytest.raises(dm.BadSignature):
        dm.decode_message(BOB, ALICE.peer_id, sealed(altered))


def test_signature_without_the_context_is_refused() -> None:
    unsigned = inner()[:-64]
    with pytest.raises(dm.BadSignature):
        dm.decode_message(BOB, ALICE.peer_id, sealed(unsigned + ALICE.sign(unsigned)))


def test_message_encrypted_to_a_third_party() -> None:
    for_carol = send(to=CAROL)
    with pytest.raises(dm.DecryptionFailed):
        dm.decode_message(BOB, ALICE.peer_id, for_carol)


def test_tampered_ciphertext() -> None:
    payload = bytearray(send())
    for index in (1, 30, 60, len(payload) - 1):  # nonce, tag, ciphertext, last byte
        tampered = bytearray(payload)
        tampered[index] ^= 0x01
        with pytest.raises(dm.DecryptionFailed):
            dm.decode_message(BOB, ALICE.peer_id, bytes(tampered))


def test_wrong_sender_peer_id() -> None:
    # Boxed by Alice but the connection says Carol: the box does not open with Carol's key.
    with pytest.raises(dm.DecryptionFailed):
        dm.decode_message(BOB, CAROL.peer_id, send())


def test_wrong_sender_inside() -> None:
    # Carol relays, under her own box, a message Alice signed for Bob.
    relayed = sealed(inner(), sender=CAROL)
    with pytest.raises(dm.WrongSender):
        dm.decode_message(BOB, CAROL.peer_id, relayed)


def test_sender_peer_id_without_a_usable_key() -> None:
    with pytest.raises(dm.WrongSender):
        dm.decode_message(BOB, peer_id_from_public_key(bytes(32)), send())
    with pytest.raises(dm.WrongSender):
        dm.decode_message(BOB, "not a peer id", send())


def test_wrong_recipient_inside() -> None:
    # Alice's signed message to Carol, boxed to Bob.
    with pytest.raises(dm.WrongRecipient) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(inner(recipient=CAROL)))
    assert info.value.message_id == MID and info.value.reject_reason is None


def test_unsupported_version_carries_message_id() -> None:
    future = bytes([2]) + MID + b"some future layout"
    with pytest.raises(dm.UnsupportedVersion) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(future))
    assert info.value.message_id == MID
    assert info.value.reject_reason == dm.REJECT_UNSUPPORTED_VERSION
    with pytest.raises(dm.UnsupportedVersion):
        dm.decode_message(BOB, ALICE.peer_id, sealed(inner(version=0)))


def test_unsupported_kind_carries_message_id() -> None:
    # Kinds 2 and 3 are file offers and controls (section 9); 4 is not known yet.
    with pytest.raises(dm.UnsupportedKind) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(inner(b"\x89PNG", kind=4)))
    assert info.value.message_id == MID
    assert info.value.reject_reason == dm.REJECT_UNSUPPORTED_KIND


def test_file_kinds_carry_json_bodies_within_their_limit() -> None:
    body = b'{"transfer":"00","action":"cancel"}'
    for kind in (dm.KIND_FILE_OFFER, dm.KIND_FILE_CONTROL):
        payload = dm.encode_payload(ALICE, BOB.peer_id, kind, body, message_id=MID, sent_at_ms=T)
        message = dm.decode_message(BOB, ALICE.peer_id, payload)
        assert (message.kind, message.text) == (kind, body.decode())
        with pytest.raises(dm.MessageTooLarge):
            dm.decode_message(BOB, ALICE.peer_id, sealed(inner(b"x" * 4097, kind=kind)))
        with pytest.raises(dm.MessageTooLarge):
            dm.encode_payload(ALICE, BOB.peer_id, kind, b"x" * 4097, message_id=MID,
                              sent_at_ms=T)


def test_unsupported_kind_is_checked_after_the_signature() -> None:
    unsigned = inner(kind=7)[:-64]
    with pytest.raises(dm.BadSignature):
        dm.decode_message(BOB, ALICE.peer_id, sealed(unsigned + b"\0" * 64))


def test_oversized_text_carries_message_id() -> None:
    payload = sealed(inner(b"x" * (dm.MAX_TEXT_BYTES + 1)))
    assert len(payload) <= dm.MAX_FRAME  # the frame limit alone would not catch it
    with pytest.raises(dm.MessageTooLarge) as info:
        dm.decode_message(BOB, ALICE.peer_id, payload)
    assert isinstance(info.value, dm.MalformedFrame)
    assert info.value.message_id == MID
    assert info.value.reject_reason == dm.REJECT_TOO_LARGE


def test_empty_body_refused() -> None:
    with pytest.raises(dm.EmptyMessage) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(inner(b"")))
    assert isinstance(info.value, dm.MalformedFrame) and info.value.reject_reason is None


@pytest.mark.parametrize("body", [b"\xff", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80"])
def test_invalid_utf8(body: bytes) -> None:
    with pytest.raises(dm.MalformedFrame) as info:
        dm.decode_message(BOB, ALICE.peer_id, sealed(inner(body)))
    assert info.value.reject_reason is None


def test_frame_over_the_limit() -> None:
    with pytest.raises(dm.MalformedFrame):
        dm.decode_message(BOB, ALICE.peer_id, send() + b"\0" * dm.MAX_FRAME)


@pytest.mark.parametrize("first", [0x00, dm.FRAME_ACK, dm.FRAME_REJECT, 0x04, 0xFF])
def test_wrong_frame_type(first: int) -> None:
    with pytest.raises(dm.MalformedFrame):
        dm.decode_message(BOB, ALICE.peer_id, bytes([first]) + send()[1:])


def test_every_truncation_of_a_payload_is_refused() -> None:
    payload = send()
    for n in range(len(payload)):
        with pytest.raises(dm.DmError):
            dm.decode_message(BOB, ALICE.peer_id, payload[:n])


def test_every_truncation_of_an_inner_is_refused() -> None:
    whole = inner(b"hello")
    for n in range(len(whole)):
        with pytest.raises(dm.DmError):
            dm.decode_message(BOB, ALICE.peer_id, sealed(whole[:n]))


def test_check_order_version_before_recipient_and_sender() -> None:
    # A future version naming nobody we know is still answered with REJECT, not dropped.
    future = bytes([9]) + MID + CAROL.public_key * 2
    with pytest.raises(dm.UnsupportedVersion):
        dm.decode_message(BOB, ALICE.peer_id, sealed(future))


def test_errors_are_short_and_plain() -> None:
    with pytest.raises(dm.DmError) as info:
        dm.decode_message(BOB, ALICE.peer_id, send(to=CAROL))
    text = str(info.value)
    assert text and len(text) < 80 and "\n" not in text


# ---- replies -------------------------------------------------------------------------------


def test_ack_round_trip() -> None:
    payload = dm.encode_ack(MID)
    assert payload == b"\x02" + MID
    assert dm.decode_reply(payload) == dm.Ack(MID)


@pytest.mark.parametrize("reason", sorted(dm.REJECT_REASONS))
def test_reject_round_trip(reason: int) -> None:
    reply = dm.decode_reply(dm.encode_reject(MID, reason))
    assert reply == dm.Reject(MID, reason)
    assert isinstance(reply, dm.Reject) and reply.description == dm.REJECT_REASONS[reason]


def test_unknown_reject_reason_is_kept() -> None:
    reply = dm.decode_reply(b"\x03" + MID + b"\x63")
    assert reply == dm.Reject(MID, 99)
    assert isinstance(reply, dm.Reject) and "99" in reply.description


def test_encode_reject_refuses_unknown_reasons() -> None:
    with pytest.raises(ValueError):
        dm.encode_reject(MID, 99)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x02",
        b"\x02" + MID[:-1],
        b"\x02" + MID + b"\0",
        b"\x03" + MID,
        b"\x03" + MID + b"\x01\x00",
        b"\x01" + MID,
        b"\x04" + MID,
    ],
)
def test_malformed_replies(payload: bytes) -> None:
    with pytest.raises(dm.MalformedFrame):
        dm.decode_reply(payload)


def test_frame_type() -> None:
    assert dm.frame_type(send()) == dm.FRAME_MESSAGE
    assert dm.frame_type(dm.encode_ack(MID)) == dm.FRAME_ACK
    with pytest.raises(dm.MalformedFrame):
        dm.frame_type(b"")


def test_constants_are_the_contract() -> None:
    assert dm.PROTOCOL_ID == "/kith/dm/1.0.0"
    assert dm.MAX_FRAME == 65536 + 1024
    assert (dm.FRAME_MESSAGE, dm.FRAME_ACK, dm.FRAME_REJECT) == (1, 2, 3)
    assert (dm.REJECT_TOO_LARGE, dm.REJECT_UNSUPPORTED_KIND, dm.REJECT_UNSUPPORTED_VERSION) == (
        1,
        2,
        3,
    )
    assert all(issubclass(e, ValueError) for e in (dm.DmError, dm.MessageTooLarge, dm.EmptyMessage))


# ---- properties ----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_dm_errors(data: bytes) -> None:
    for payload in (data, b"\x01" + data):
        with pytest.raises(dm.DmError):
            dm.decode_message(BOB, ALICE.peer_id, payload)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_replies_raise_only_dm_errors(data: bytes) -> None:
    for payload in (data, b"\x02" + data, b"\x03" + data):
        try:
            reply = dm.decode_reply(payload)
        except dm.DmError:
            continue
        assert isinstance(reply, dm.Ack | dm.Reject)
        assert len(reply.message_id) == dm.MESSAGE_ID_SIZE


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_inner_bytes_boxed_correctly_raise_only_dm_errors(data: bytes) -> None:
    try:
        message = dm.decode_message(BOB, ALICE.peer_id, sealed(data))
    except dm.DmError:
        return
    assert message.text  # only a well-formed, signed message could get here


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 255), st.integers(0, 255), st.data())
def test_mutated_inners_raise_only_dm_errors(
    body: bytes, version: int, kind: int, data: st.DataObject
) -> None:
    raw = bytearray(inner(body, kind=kind, version=version))
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        message = dm.decode_message(BOB, ALICE.peer_id, sealed(bytes(raw[:cut])))
    except dm.DmError:
        return
    assert message.sender == ALICE.peer_id and message.recipient == BOB.peer_id


@FUZZ
@given(st.text(min_size=1, max_size=2000), st.integers(0, 2**64 - 1))
def test_round_trip_for_any_text(text: str, sent_at_ms: int) -> None:
    message_id = os.urandom(16)
    payload = dm.encode_message(
        ALICE, BOB.peer_id, text, message_id=message_id, sent_at_ms=sent_at_ms
    )
    message = dm.decode_message(BOB, ALICE.peer_id, payload)
    # A time after 2100 is the sender's broken clock: taken as 2100 (4.4).
    assert (message.text, message.message_id, message.sent_at_ms) == (
        text, message_id, min(sent_at_ms, dm.MAX_SENT_AT_MS))
