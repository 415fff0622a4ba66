"""The test vectors of docs/protocol.md: recomputed from the spec, matched by the code and the doc.

``compute_vectors`` is a second, deliberately low-level implementation of the spec (struct,
``nacl.bindings``, hashlib) so that the codec, tests/vectors/dm.json and the document are three
independent things that must agree. After an intentional protocol change, regenerate both with
``PYTHONPATH=. .venv/bin/python tests/test_protocol_vectors.py`` and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest

from app.core import dm
from app.core.base58 import b58encode
from app.core.fingerprint import key_fingerprint, qr_payload, safety_number
from app.core.identity import Identity
from tests.doc_vectors import parse_doc_vectors, render_doc_block

ROOT = Path(__file__).resolve().parent.parent
VECTORS_FILE = ROOT / "tests" / "vectors" / "dm.json"
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- dm-vectors:begin -->", "<!-- dm-vectors:end -->"

INPUTS: dict[str, Any] = {
    "sender.seed": "01" * 32,
    "recipient.seed": "02" * 32,
    "message.message_id": bytes(range(16)).hex(),
    "message.sent_at_ms": 1767225600000,  # 2026-01-01T00:00:00Z
    "message.nonce": bytes(range(0x40, 0x40 + 24)).hex(),
    "message.text": "hello, Kith ✓",
}
INPUT_KEYS = tuple(INPUTS)


def _peer_id_bytes(public_key: bytes) -> bytes:
    # identity multihash (0x00, length 0x24) of protobuf PublicKey{Type: Ed25519, Data: key}
    return bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + public_key


def _fingerprint(public_key: bytes) -> str:
    digest = hashlib.sha512(b"\x00\x00" + public_key + b"kith-fingerprint-v1").digest()
    for _ in range(5199):
        digest = hashlib.sha512(digest + public_key).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def compute_vectors(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every vector, from the inputs alone, following docs/protocol.md step by step."""
    out: dict[str, Any] = {}
    keys: dict[str, tuple[bytes, bytes]] = {}
    for who in ("sender", "recipient"):
        seed = bytes.fromhex(inputs[f"{who}.seed"])
        ed_pk, ed_sk = sodium.crypto_sign_seed_keypair(seed)
        x_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(ed_sk)
        x_pk = sodium.crypto_sign_ed25519_pk_to_curve25519(ed_pk)
        assert sodium.crypto_scalarmult_base(x_sk) == x_pk
        keys[who] = (ed_sk, x_sk)
        out[f"{who}.seed"] = seed.hex()
        out[f"{who}.ed25519_public"] = ed_pk.hex()
        out[f"{who}.peer_id_bytes"] = _peer_id_bytes(ed_pk).hex()
        out[f"{who}.peer_id"] = b58encode(_peer_id_bytes(ed_pk))
        out[f"{who}.x25519_private"] = x_sk.hex()
        out[f"{who}.x25519_public"] = x_pk.hex()
    sender_ed_sk, sender_x_sk = keys["sender"]
    recipient_x_pk = bytes.fromhex(out["recipient.x25519_public"])
    out["box.shared_key"] = sodium.crypto_box_beforenm(recipient_x_pk, sender_x_sk).hex()

    message_id = bytes.fromhex(inputs["message.message_id"])
    sent_at_ms = inputs["message.sent_at_ms"]
    nonce = bytes.fromhex(inputs["message.nonce"])
    text = inputs["message.text"]
    body = text.encode("utf-8")
    unsigned = (
        bytes([1])
        + message_id
        + bytes.fromhex(out["sender.ed25519_public"])
        + bytes.fromhex(out["recipient.ed25519_public"])
        + struct.pack(">Q", sent_at_ms)
        + bytes([1])
        + body
    )
    signed_data = b"kith-dm-v1\x00" + unsigned
    signature = sodium.crypto_sign(signed_data, sender_ed_sk)[:64]
    inner = unsigned + signature
    ciphertext = sodium.crypto_box(inner, nonce, recipient_x_pk, sender_x_sk)
    assert len(ciphertext) == len(inner) + 16
    payload = bytes([0x01]) + nonce + ciphertext
    out.update(
        {
            "message.message_id": message_id.hex(),
            "message.sent_at_ms": sent_at_ms,
            "message.nonce": nonce.hex(),
            "message.text": text,
            "message.text_utf8": body.hex(),
            "message.signed_data": signed_data.hex(),
            "message.signature": signature.hex(),
            "message.inner": inner.hex(),
            "message.ciphertext": ciphertext.hex(),
            "message.payload": payload.hex(),
            "message.frame": (_varint(len(payload)) + payload).hex(),
            "ack.payload": (bytes([0x02]) + message_id).hex(),
            "reject.payload": (bytes([0x03]) + message_id + bytes([2])).hex(),
            "reject_quota.payload": (bytes([0x03]) + message_id + bytes([4])).hex(),
        }
    )
    fp_sender = _fingerprint(bytes.fromhex(out["sender.ed25519_public"]))
    fp_recipient = _fingerprint(bytes.fromhex(out["recipient.ed25519_public"]))
    number = "".join(sorted((fp_sender, fp_recipient)))
    out["fingerprint.sender"] = fp_sender
    out["fingerprint.recipient"] = fp_recipient
    out["safety_number"] = number
    out["qr_payload"] = "kith-verify:1:" + number
    return out


def _load() -> dict[str, Any]:
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    vectors: dict[str, Any] = data["vectors"]
    return vectors


def test_json_vectors_recompute_from_their_inputs() -> None:
    vectors = _load()
    assert {k: vectors[k] for k in INPUT_KEYS} == INPUTS
    assert compute_vectors(vectors) == vectors


def test_codec_produces_the_vectors() -> None:
    v = _load()
    sender = Identity(bytes.fromhex(v["sender.seed"]))
    recipient = Identity(bytes.fromhex(v["recipient.seed"]))
    assert sender.peer_id == v["sender.peer_id"]
    assert recipient.peer_id == v["recipient.peer_id"]
    assert recipient.x25519_private.hex() == v["recipient.x25519_private"]
    message_id = bytes.fromhex(v["message.message_id"])
    payload = dm.encode_message(
        sender,
        recipient.peer_id,
        v["message.text"],
        message_id=message_id,
        sent_at_ms=v["message.sent_at_ms"],
        nonce=bytes.fromhex(v["message.nonce"]),
    )
    assert payload.hex() == v["message.payload"]
    assert dm.decode_message(recipient, sender.peer_id, payload) == dm.DirectMessage(
        message_id=message_id,
        sender=sender.peer_id,
        recipient=recipient.peer_id,
        sent_at_ms=v["message.sent_at_ms"],
        kind=dm.KIND_TEXT,
        text=v["message.text"],
    )
    assert dm.encode_ack(message_id).hex() == v["ack.payload"]
    assert dm.encode_reject(message_id, dm.REJECT_UNSUPPORTED_KIND).hex() == v["reject.payload"]
    assert dm.encode_reject(message_id, dm.REJECT_QUOTA).hex() == v["reject_quota.payload"]
    assert key_fingerprint(sender.public_key) == v["fingerprint.sender"]
    assert key_fingerprint(recipient.public_key) == v["fingerprint.recipient"]
    assert safety_number(sender.public_key, recipient.public_key) == v["safety_number"]
    assert qr_payload(recipient.public_key, sender.public_key) == v["qr_payload"]


def test_framing_module_agrees_on_the_frame() -> None:
    pytest.importorskip("trio")
    from app.node.framing import encode_frame

    v = _load()
    assert encode_frame(bytes.fromhex(v["message.payload"])).hex() == v["message.frame"]


def _as_doc_values(vectors: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else str(v) for k, v in vectors.items()}


def test_document_carries_exactly_the_json_vectors() -> None:
    in_doc = parse_doc_vectors(PROTOCOL_DOC.read_text(encoding="utf-8"), BEGIN, END)
    assert in_doc == _as_doc_values(_load())


def test_document_check_notices_a_changed_digit() -> None:
    vectors = _load()
    signature = vectors["message.signature"]
    flipped = signature[:40] + ("0" if signature[40] != "0" else "1") + signature[41:]
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    start = doc.index(BEGIN)
    line_start = doc.index(signature[:64], start)
    tampered = doc[:line_start] + flipped[:64] + doc[line_start + 64 :]
    assert parse_doc_vectors(tampered, BEGIN, END) != _as_doc_values(vectors)


def write_vectors() -> None:
    """Regenerate tests/vectors/dm.json and the block in docs/protocol.md from ``INPUTS``."""
    vectors = compute_vectors(INPUTS)
    document = {
        "about": "Test vectors for /kith/dm/1.0.0 and fingerprints; see docs/protocol.md.",
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
