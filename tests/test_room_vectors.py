"""The room test vectors of docs/protocol.md (section 8): recomputed, matched by code and doc.

``compute_vectors`` is a second, deliberately low-level implementation of the room spec (struct,
``nacl.bindings``, hashlib, base64, string concatenation) so that ``app.core.room``,
tests/vectors/room.json and the document are three independent things that must agree. After an
intentional protocol change, regenerate both with
``PYTHONPATH=. .venv/bin/python tests/test_room_vectors.py`` and review the diff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nacl.bindings as sodium
import pytest

from app.core import room
from app.core.base58 import b58encode
from app.core.identity import Identity
from tests.doc_vectors import parse_doc_vectors, render_doc_block

ROOT = Path(__file__).resolve().parent.parent
VECTORS_FILE = ROOT / "tests" / "vectors" / "room.json"
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- room-vectors:begin -->", "<!-- room-vectors:end -->"

INPUTS: dict[str, Any] = {
    "room.room_id": bytes(range(16)).hex(),
    "room.key": bytes(range(32, 64)).hex(),
    "author.seed": "01" * 32,  # the DM vectors' sender
    "other.seed": "02" * 32,  # the DM vectors' recipient
    "post.post_id": bytes(range(0xA0, 0xB0)).hex(),
    "post.nonce": bytes(range(0x40, 0x40 + 24)).hex(),
    "post.lamport": 7,
    "post.author_seq": 3,
    "post.sent_at_ms": 1767225600000,  # 2026-01-01T00:00:00Z
    "post.text": "hello, room ✓",
    "invite.name": "Kith & friends",
    "invite.description": "Testing, testing ✓",
    "invite.via_addr": "/ip4/192.0.2.7/tcp/4001",
    "sync.have_author": 3,
    "sync.have_other": 5,
    "sync.page_limit": 100,
    "sync.nonce": bytes(range(0x60, 0x60 + 24)).hex(),
    "sync2.author_ranges": "1-3 5-9",
    "sync2.other_ranges": "2-2",
    "sync2.flags": 1,
    "sync2.page_limit": 100,
    "sync2.nonce": bytes(range(0x80, 0x80 + 24)).hex(),
}
INPUT_KEYS = tuple(INPUTS)


def _peer_id(public_key: bytes) -> str:
    return b58encode(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + public_key)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def compute_vectors(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every vector, from the inputs alone, following docs/protocol.md section 8 step by step."""
    out: dict[str, Any] = {k: inputs[k] for k in INPUT_KEYS}
    room_id = bytes.fromhex(inputs["room.room_id"])
    key = bytes.fromhex(inputs["room.key"])
    author_pk, author_sk = sodium.crypto_sign_seed_keypair(bytes.fromhex(inputs["author.seed"]))
    other_pk, _ = sodium.crypto_sign_seed_keypair(bytes.fromhex(inputs["other.seed"]))
    author_id = _peer_id(author_pk)
    out["author.ed25519_public"] = author_pk.hex()
    out["author.peer_id"] = author_id
    out["other.ed25519_public"] = other_pk.hex()

    key_b64 = base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")
    topic_hash = hashlib.sha256(b"kith-room-topic-v1" + room_id).hexdigest()
    out["room.key_b64url"] = key_b64
    out["room.topic_hash"] = topic_hash
    out["room.topic"] = "/kith/room/1/" + topic_hash[:32]

    via = inputs["invite.via_addr"] + "/p2p/" + author_id
    out["invite.via"] = via
    out["invite.link"] = (
        "kith:room?id="
        + room_id.hex()
        + "&key="
        + key_b64
        + "&name="
        + quote(inputs["invite.name"], safe="/")
        + "&desc="
        + quote(inputs["invite.description"], safe="/")
        + "&via="
        + quote(via, safe="/")
    )

    body = inputs["post.text"].encode("utf-8")
    unsigned = (
        bytes([1])
        + bytes.fromhex(inputs["post.post_id"])
        + room_id
        + author_pk
        + struct.pack(
            ">QQQ", inputs["post.lamport"], inputs["post.author_seq"], inputs["post.sent_at_ms"]
        )
        + bytes([1])
        + body
    )
    signed_data = b"kith-room-v1\x00" + unsigned
    signature = sodium.crypto_sign(signed_data, author_sk)[:64]
    inner = unsigned + signature
    nonce = bytes.fromhex(inputs["post.nonce"])
    ciphertext = sodium.crypto_secretbox_easy(inner, nonce, key)
    assert len(ciphertext) == len(inner) + 16
    envelope = bytes([1]) + nonce + ciphertext
    out.update(
        {
            "post.text_utf8": body.hex(),
            "post.signed_data": signed_data.hex(),
            "post.signature": signature.hex(),
            "post.inner": inner.hex(),
            "post.ciphertext": ciphertext.hex(),
            "post.envelope": envelope.hex(),
        }
    )

    entries = sorted(
        [(author_pk, inputs["sync.have_author"]), (other_pk, inputs["sync.have_other"])]
    )
    request_body = (
        struct.pack(">BH", 1, len(entries))
        + b"".join(pk + struct.pack(">Q", seq) for pk, seq in entries)
        + struct.pack(">H", inputs["sync.page_limit"])
    )
    sync_nonce = bytes.fromhex(inputs["sync.nonce"])
    request = room_id + sync_nonce + sodium.crypto_secretbox_easy(request_body, sync_nonce, key)
    out["sync.request_body"] = request_body.hex()
    out["sync.request"] = request.hex()
    out["sync.request_frame"] = (_varint(len(request)) + request).hex()
    out["sync.end"] = bytes([0x02, 0x00]).hex()
    out["sync.end_more"] = bytes([0x02, 0x01]).hex()

    def ranges(text: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in (part.split("-") for part in text.split())]

    authors = sorted([(author_pk, ranges(inputs["sync2.author_ranges"])),
                      (other_pk, ranges(inputs["sync2.other_ranges"]))])
    body2 = struct.pack(">BBHH", 2, inputs["sync2.flags"], inputs["sync2.page_limit"],
                        len(authors))
    for author_key, held in authors:
        body2 += author_key + struct.pack(">H", len(held))
        body2 += b"".join(struct.pack(">II", first, last) for first, last in held)
    nonce2 = bytes.fromhex(inputs["sync2.nonce"])
    request2 = room_id + nonce2 + sodium.crypto_secretbox_easy(body2, nonce2, key)
    out["sync2.request_body"] = body2.hex()
    out["sync2.request"] = request2.hex()
    out["sync2.request_frame"] = (_varint(len(request2)) + request2).hex()
    return out


def _load() -> dict[str, Any]:
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    vectors: dict[str, Any] = data["vectors"]
    return vectors


def _as_doc_values(vectors: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else str(v) for k, v in vectors.items()}


def test_json_vectors_recompute_from_their_inputs() -> None:
    vectors = _load()
    assert {k: vectors[k] for k in INPUT_KEYS} == INPUTS
    assert compute_vectors(vectors) == vectors


def test_author_is_the_dm_vectors_sender() -> None:
    dm_vectors = json.loads((ROOT / "tests" / "vectors" / "dm.json").read_text(encoding="utf-8"))
    v = _load()
    assert v["author.seed"] == dm_vectors["vectors"]["sender.seed"]
    assert v["author.peer_id"] == dm_vectors["vectors"]["sender.peer_id"]


def test_codec_produces_the_vectors() -> None:
    v = _load()
    author = Identity(bytes.fromhex(v["author.seed"]))
    other = Identity(bytes.fromhex(v["other.seed"]))
    secrets = room.RoomSecrets(bytes.fromhex(v["room.room_id"]), bytes.fromhex(v["room.key"]))
    assert author.peer_id == v["author.peer_id"]
    assert secrets.topic == v["room.topic"]
    assert secrets.key_b64 == v["room.key_b64url"]

    invite = room.RoomInvite(
        secrets=secrets,
        name=v["invite.name"],
        description=v["invite.description"],
        via=(v["invite.via"],),
    )
    assert invite.to_link() == v["invite.link"]
    assert room.parse_room_invite(v["invite.link"]) == invite
    assert room.invite_kind(v["invite.link"]) == "room"

    post_id = bytes.fromhex(v["post.post_id"])
    envelope = room.encode_text_post(
        author,
        secrets,
        v["post.text"],
        lamport=v["post.lamport"],
        author_seq=v["post.author_seq"],
        sent_at_ms=v["post.sent_at_ms"],
        post_id=post_id,
        nonce=bytes.fromhex(v["post.nonce"]),
    )
    assert envelope.hex() == v["post.envelope"]
    post = room.decode_post(secrets, envelope)
    assert post == room.RoomPost(
        post_id=post_id,
        room_id=secrets.room_id,
        author=author.peer_id,
        lamport=v["post.lamport"],
        author_seq=v["post.author_seq"],
        sent_at_ms=v["post.sent_at_ms"],
        kind=room.KIND_TEXT,
        body=bytes.fromhex(v["post.text_utf8"]),
    )
    assert post.text == v["post.text"]
    inner = room.encode_inner(
        author,
        secrets.room_id,
        v["post.text"].encode(),
        kind=room.KIND_TEXT,
        post_id=post_id,
        lamport=v["post.lamport"],
        author_seq=v["post.author_seq"],
        sent_at_ms=v["post.sent_at_ms"],
    )
    assert inner.hex() == v["post.inner"]
    assert inner[-64:].hex() == v["post.signature"]

    have = {other.public_key: v["sync.have_other"], author.public_key: v["sync.have_author"]}
    request = room.encode_sync_request(
        secrets, have, v["sync.page_limit"], nonce=bytes.fromhex(v["sync.nonce"])
    )
    assert request.hex() == v["sync.request"]
    assert room.sync_request_room_id(request) == secrets.room_id
    assert room.decode_sync_request(secrets, request) == room.SyncRequest(
        have=have, page_limit=v["sync.page_limit"]
    )
    assert room.encode_sync_end(False).hex() == v["sync.end"]
    assert room.encode_sync_end(True).hex() == v["sync.end_more"]
    assert room.decode_sync_response(bytes.fromhex(v["sync.end_more"])) == room.SyncEnd(True)
    assert room.encode_sync_post(envelope) == b"\x01" + envelope

    def ranges(text: str) -> tuple[tuple[int, int], ...]:
        return tuple((int(a), int(b)) for a, b in (p.split("-") for p in text.split()))

    held = {author.public_key: ranges(v["sync2.author_ranges"]),
            other.public_key: ranges(v["sync2.other_ranges"])}
    request2 = room.encode_range_sync_request(
        secrets, held, v["sync2.page_limit"], conflicts=v["sync2.flags"] == 1,
        nonce=bytes.fromhex(v["sync2.nonce"]),
    )
    assert request2.hex() == v["sync2.request"]
    assert room.decode_range_sync_request(secrets, request2) == room.RangeSyncRequest(
        held=held, page_limit=v["sync2.page_limit"], conflicts=True
    )


def test_framing_module_agrees_on_the_frame() -> None:
    pytest.importorskip("trio")
    from app.node.framing import encode_frame

    v = _load()
    assert encode_frame(bytes.fromhex(v["sync.request"])).hex() == v["sync.request_frame"]
    assert encode_frame(bytes.fromhex(v["sync2.request"])).hex() == v["sync2.request_frame"]


def test_document_carries_exactly_the_json_vectors() -> None:
    in_doc = parse_doc_vectors(PROTOCOL_DOC.read_text(encoding="utf-8"), BEGIN, END)
    assert in_doc == _as_doc_values(_load())


def test_document_check_notices_a_changed_digit() -> None:
    vectors = _load()
    signature = vectors["post.signature"]
    flipped = signature[:40] + ("0" if signature[40] != "0" else "1") + signature[41:]
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    start = doc.index(BEGIN)
    line_start = doc.index(signature[:64], start)
    tampered = doc[:line_start] + flipped[:64] + doc[line_start + 64 :]
    assert parse_doc_vectors(tampered, BEGIN, END) != _as_doc_values(vectors)


def write_vectors() -> None:
    """Regenerate tests/vectors/room.json and the room block in docs/protocol.md."""
    vectors = compute_vectors(INPUTS)
    document = {
        "about": "Test vectors for rooms and /kith/sync/1.0.0 and 2.0.0; see docs/protocol.md, "
        "section 8.",
        "vectors": vectors,
    }
    VECTORS_FILE.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    VECTORS_FILE.write_text(text, encoding="utf-8")
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    block = render_doc_block(vectors)
    PROTOCOL_DOC.write_text(doc[:start] + "\n" + block + "\n" + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    write_vectors()
