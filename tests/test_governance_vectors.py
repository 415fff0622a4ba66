"""The governed-room vectors of docs/protocol.md (8.12): recomputed, matched by code and doc.

``compute_vectors`` follows the document with hashlib, struct and ``nacl.bindings`` only, so
``app.core.room.membership``, tests/vectors/governance.json and the document must agree. After
an intentional change, regenerate with ``PYTHONPATH=. .venv/bin/python
tests/test_governance_vectors.py`` and review the diff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from app.core import room
from app.core.identity import Identity
from app.core.room import membership as ms
from tests.doc_vectors import parse_doc_vectors, render_doc_block

ROOT = Path(__file__).resolve().parent.parent
VECTORS_FILE = ROOT / "tests" / "vectors" / "governance.json"
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- governance-vectors:begin -->", "<!-- governance-vectors:end -->"

INPUTS: dict[str, Any] = {
    "creator.seed": "01" * 32,
    "member.seed": "02" * 32,
    "genesis.nonce": bytes(range(16)).hex(),
    "room.link_key": bytes(range(32, 64)).hex(),
    "epoch.key": bytes(range(0x30, 0x50)).hex(),
    # crypto_box_seal(epoch.key, member's X25519 key), made once (sealed boxes are random).
    "epoch.sealed_for_member": (
        "d6172bcf00aec11fd23266c5f242a153286af0eccdbefd26e367c6f16678a904"
        "43c498e11e51a56ac822cd61dbaf31e9f294c3c262baa0dbea26166c9c372f5e"
        "82fa3743a42099f693f2d47da55544c0"),
    "post.post_id": bytes(range(0xA0, 0xB0)).hex(),
    "post.nonce": bytes(range(0x40, 0x58)).hex(),
    "post.lamport": 3,
    "post.author_seq": 1,
    "post.sent_at_ms": 1767225600000,
    "post.text": "only members read this",
    "invite.seed": "05" * 32,
}
INPUT_KEYS = tuple(INPUTS)


def compute_vectors(inputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: inputs[k] for k in INPUT_KEYS}
    creator_pk, creator_sk = sodium.crypto_sign_seed_keypair(bytes.fromhex(inputs["creator.seed"]))
    member_pk, member_sk = sodium.crypto_sign_seed_keypair(bytes.fromhex(inputs["member.seed"]))
    nonce = bytes.fromhex(inputs["genesis.nonce"])
    room_id = hashlib.sha256(b"kith-room-genesis-v1" + creator_pk + nonce).digest()[:16]
    key = bytes.fromhex(inputs["epoch.key"])
    epoch = hashlib.sha256(b"kith-room-epoch-v1" + key).digest()[:16]
    out["creator.ed25519_public"] = creator_pk.hex()
    out["member.ed25519_public"] = member_pk.hex()
    out["room.room_id"] = room_id.hex()
    out["epoch.id"] = epoch.hex()

    member_x_pk = sodium.crypto_sign_ed25519_pk_to_curve25519(member_pk)
    member_x_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(member_sk)
    opened = sodium.crypto_box_seal_open(bytes.fromhex(inputs["epoch.sealed_for_member"]),
                                         member_x_pk, member_x_sk)
    out["epoch.opened_by_member"] = opened.hex()

    body = inputs["post.text"].encode("utf-8")
    unsigned = (bytes([1]) + bytes.fromhex(inputs["post.post_id"]) + room_id + creator_pk
                + struct.pack(">QQQ", inputs["post.lamport"], inputs["post.author_seq"],
                              inputs["post.sent_at_ms"])
                + bytes([1]) + body)
    signature = sodium.crypto_sign(b"kith-room-v1\x00" + unsigned, creator_sk)[:64]
    post_nonce = bytes.fromhex(inputs["post.nonce"])
    envelope = (bytes([2]) + epoch + post_nonce
                + sodium.crypto_secretbox_easy(unsigned + signature, post_nonce, key))
    out["post.envelope_v2"] = envelope.hex()

    invite_pk, invite_sk = sodium.crypto_sign_seed_keypair(bytes.fromhex(inputs["invite.seed"]))
    signed = b"kith-room-invite-v1\x00" + room_id + member_pk
    out["invite.key"] = invite_pk.hex()
    out["invite.join_sig"] = sodium.crypto_sign(signed, invite_sk)[:64].hex()
    out["invite.inv_field"] = base64.urlsafe_b64encode(
        bytes.fromhex(inputs["invite.seed"])).decode("ascii").rstrip("=")

    member_id = Identity(bytes.fromhex(inputs["member.seed"])).peer_id
    sealed_b64 = base64.b64encode(bytes.fromhex(inputs["epoch.sealed_for_member"])).decode()
    genesis = {"epoch": epoch.hex(), "keys": [[member_id, sealed_b64]], "nonce": nonce.hex(),
               "op": "genesis", "settings": {}}
    out["genesis.body"] = json.dumps(genesis, separators=(",", ":"), sort_keys=True)
    return out


def _load() -> dict[str, Any]:
    vectors: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
    return vectors


def test_json_vectors_recompute_from_their_inputs() -> None:
    vectors = _load()
    assert {k: vectors[k] for k in INPUT_KEYS} == INPUTS
    assert compute_vectors(vectors) == vectors


def test_codec_produces_the_vectors() -> None:
    v = _load()
    creator = Identity(bytes.fromhex(v["creator.seed"]))
    member = Identity(bytes.fromhex(v["member.seed"]))
    room_id = bytes.fromhex(v["room.room_id"])
    key = bytes.fromhex(v["epoch.key"])
    assert ms.genesis_room_id(creator.public_key, bytes.fromhex(v["genesis.nonce"])) == room_id
    assert ms.epoch_id(key).hex() == v["epoch.id"]
    sealed = bytes.fromhex(v["epoch.sealed_for_member"])
    assert ms.open_key(sealed, member, ms.epoch_id(key)) == key
    assert ms.open_key(sealed, creator, ms.epoch_id(key)) is None

    secrets = room.RoomSecrets(room_id, bytes.fromhex(v["room.link_key"])).with_epochs(
        {ms.epoch_id(key): key}, ms.epoch_id(key))
    envelope = room.encode_text_post(
        creator, secrets, v["post.text"], lamport=v["post.lamport"],
        author_seq=v["post.author_seq"], sent_at_ms=v["post.sent_at_ms"],
        post_id=bytes.fromhex(v["post.post_id"]), nonce=bytes.fromhex(v["post.nonce"]))
    assert envelope.hex() == v["post.envelope_v2"]
    post = room.decode_post(secrets, envelope)
    assert post.text == v["post.text"] and post.epoch == ms.epoch_id(key)

    invite_key, sig = ms.invite_proof(bytes.fromhex(v["invite.seed"]), room_id, member.peer_id)
    assert (invite_key, sig) == (v["invite.key"], v["invite.join_sig"])

    body = json.loads(v["genesis.body"])
    assert ms.encode_body(body).decode() == v["genesis.body"]
    state = ms.replay(room_id, [ms.Entry(creator.peer_id, 1, creator.public_key, b"\0" * 16, 1,
                                         0, body)])
    assert state.governed and state.roles[creator.peer_id] is ms.Role.OWNER


def test_document_carries_exactly_the_json_vectors() -> None:
    in_doc = parse_doc_vectors(PROTOCOL_DOC.read_text(encoding="utf-8"), BEGIN, END)
    assert in_doc == {k: v if isinstance(v, str) else str(v) for k, v in _load().items()}


if __name__ == "__main__":
    vectors = compute_vectors(INPUTS)
    VECTORS_FILE.write_text(json.dumps(
        {"about": "Test vectors for governed rooms; see docs/protocol.md, section 8.12.",
         "vectors": vectors}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    PROTOCOL_DOC.write_text(doc[:start] + "\n" + render_doc_block(vectors) + "\n" + doc[end:],
                            encoding="utf-8")
    sys.exit(0)
