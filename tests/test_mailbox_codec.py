"""The mailbox codec and signed records: round trips, and nothing from a peer raises anything
but ``MailboxError`` (a dropped frame or record, never a crash)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import blob as bl
from app.core import dm
from app.core import mailbox as mb
from app.core.identity import Identity
from app.node.mailbox.client import decode_receipt
from app.node.profile_exchange import decode_profile, encode_profile

ADA, BOB = Identity(b"\x01" * 32), Identity(b"\x02" * 32)
ADDR = f"/ip4/192.0.2.7/tcp/4001/p2p/{BOB.peer_id}"


@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_mailbox_error(data: bytes) -> None:
    for frame in (data, *(bytes([op]) + data for op in range(1, 9))):
        try:
            request = mb.decode_request(frame)
        except mb.MailboxError:
            continue
        assert mb.decode_request(mb.encode_request(request)) == request


@given(st.binary(max_size=300))
def test_any_bytes_are_an_answer_or_a_mailbox_error(data: bytes) -> None:
    for frame in (data, *(bytes([op]) + data for op in range(0x10, 0x16))):
        with contextlib.suppress(mb.MailboxError):
            mb.decode_answer(frame)


@given(st.binary(max_size=1200))
def test_any_bytes_are_a_record_or_a_mailbox_error(data: bytes) -> None:
    with pytest.raises(mb.MailboxError):
        mb.verify_record(ADA.peer_id, data)  # unsigned bytes never verify


@given(st.text(max_size=3000))
def test_any_text_is_a_record_text_or_a_mailbox_error(text: str) -> None:
    with contextlib.suppress(mb.MailboxError):
        mb.record_bytes(text)


def test_records_round_trip_and_are_bound_to_their_owner() -> None:
    raw = mb.sign_record(ADA, 5, [ADDR])
    assert mb.verify_record(ADA.peer_id, raw) == mb.MailboxRecord(ADA.peer_id, 5, (ADDR,))
    assert mb.verify_record(ADA.peer_id, mb.sign_record(ADA, 6, [])).mailboxes == ()
    with pytest.raises(mb.MailboxError, match="not signed by its owner"):
        mb.verify_record(BOB.peer_id, raw)  # Ada's record passed off as Bob's
    for bad in ([ADDR] * 5, ["/ip4/192.0.2.7/tcp/4001"], [ADDR + "x" * 300]):
        with pytest.raises(ValueError):
            mb.sign_record(ADA, 1, bad)


def test_requests_and_answers_refuse_what_they_cannot_hold() -> None:
    with pytest.raises(mb.MailboxError, match="trailing"):
        mb.decode_request(mb.encode_request(mb.Fetch()) + b"\x00")
    with pytest.raises(mb.MailboxError, match="out of range"):
        mb.decode_request(b"\x04\x00\x01" + (2**63).to_bytes(8, "big"))
    with pytest.raises(mb.MailboxError, match="too many"):
        mb.decode_request(b"\x04" + (mb.MAX_DELETE + 1).to_bytes(2, "big"))
    with pytest.raises(mb.MailboxError, match="not a peer id"):
        mb.decode_request(b"\x02\x05hello\x01")
    assert mb.decode_request(mb.encode_request(mb.Fetch(0, 60000))) == mb.Fetch(0, mb.MAX_FETCH)
    far = mb.Item(1, 2**64 - 1, BOB.peer_id, b"\x01")  # a mailbox's clock past 2100
    assert mb.decode_answer(mb.encode_answer(far)).deposited_at_ms == dm.MAX_SENT_AT_MS  # type: ignore[union-attr]


def test_a_bad_mailbox_field_is_dropped_alone_from_a_profile() -> None:
    good = mb.record_text(mb.sign_record(ADA, 1, [ADDR]))
    assert decode_profile(encode_profile("Ada", [], mailboxes=good)).mailboxes == good
    for bad in ("x" * 5000,):
        profile = decode_profile(encode_profile("Ada", ["/ip4/192.0.2.7/tcp/1"], mailboxes=bad))
        assert (profile.name, profile.mailboxes) == ("Ada", "")
    profile = decode_profile(b'{"name": "Ada", "addrs": [], "mailboxes": 7}')
    assert (profile.name, profile.mailboxes) == ("Ada", "")


@pytest.mark.parametrize("text", [
    "", "[]", "{}", '{"ack": 5}', '{"ack": ["zz"], "reject": [["00", 4]]}',
    '{"reject": [["' + "00" * 16 + '", true], ["' + "00" * 16 + '", 999]]}',
])
def test_a_malformed_receipt_settles_nothing(text: str) -> None:
    assert decode_receipt(text) == []


def test_blob_frames_out_of_bounds_are_mailbox_errors() -> None:
    """A BLOB_OPEN of nothing, an empty piece, a bitmap or a piece longer than the protocol
    allows: each a ``MailboxError`` (a refused request or a dropped answer)."""
    blob = b"\x05" * bl.BLOB_ID_SIZE
    head = bytes([mb.OP_BLOB_OPEN]) + bytes([len(BOB.peer_id)]) + BOB.peer_id.encode() + blob
    for frame in (head + bytes(8) + b"\x00\x00\x00\x01",       # size 0
                  head + b"\x00" * 7 + b"\x01" + bytes(4),        # no piece
                  head + b"\xff" * 8 + b"\x00\x00\x00\x01",     # size 2^64 - 1
                  head + bytes(11),                                # cut short
                  bytes([mb.OP_BLOB_PUT]) + head[1:] + bytes(4),   # an empty piece
                  bytes([mb.OP_BLOB_GET]) + blob + bytes(5),       # trailing byte
                  bytes([mb.OP_BLOB_DELETE]) + blob[:-1]):         # short id
        with pytest.raises(mb.MailboxError):
            mb.decode_request(frame)
    for frame in (bytes([mb.ANSWER_BLOB_HELD]) + bytes(bl.MAX_PIECES // 8 + 1),
                  bytes([mb.ANSWER_PIECE]) + bytes(4) + bytes(bl.MAX_PIECE + 1),
                  bytes([mb.ANSWER_PIECE]) + bytes(4)):
        with pytest.raises(mb.MailboxError):
            mb.decode_answer(frame)
    ref = bl.new_ref(BOB.peer_id)
    sealed = bl.seal(ref, 3, b"chunk")
    assert bl.open_piece(ref, 3, sealed) == b"chunk"
    for index, other in ((4, sealed), (3, sealed[:-1]), (3, b"\x00" + sealed[1:])):
        with pytest.raises(bl.BlobError):
            bl.open_piece(ref, index, other)  # moved, cut, altered
    with pytest.raises(bl.BlobError):
        bl.open_piece(bl.BlobRef(ref.mailbox, bytes(16), ref.key), 3, sealed)  # another blob
    assert bl.parse_ref({"mailbox": BOB.peer_id, "id": "00" * 16, "key": "zz" * 32}) is None
    assert bl.parse_ref({"mailbox": "nobody", "id": "00" * 16, "key": "00" * 32}) is None
    assert bl.parse_ref(["not", "an", "object"]) is None


def test_an_offer_with_a_malformed_blob_stands_without_it() -> None:
    """The offer's ``blob`` member is optional: a malformed one is dropped, the offer kept."""
    from app.core import files as fc

    offer = fc.FileOffer(bytes(16), "a.bin", 5, 65536, fc.content_hash(fc.chunk_hash(b"hello")))
    assert b"blob" not in offer.to_json()  # as before, for whoever offers no blob
    body = json.loads(offer.to_json())
    body["blob"] = {"mailbox": BOB.peer_id, "id": "00" * 15, "key": "00" * 32}
    parsed = fc.parse_offer(json.dumps(body).encode())
    assert parsed == offer and parsed.blob is None


@given(st.one_of(st.none(), st.integers(), st.text(max_size=80),
                 st.dictionaries(st.sampled_from(["mailbox", "id", "key", "x"]),
                                 st.one_of(st.text(max_size=80), st.integers(), st.none(),
                                           st.lists(st.integers(), max_size=3)))))
def test_any_blob_member_is_a_ref_or_none(value: object) -> None:
    ref = bl.parse_ref(value)
    assert ref is None or bl.parse_ref(ref.to_json()) == ref
