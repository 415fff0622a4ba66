"""The mailbox test vectors of docs/protocol.md (section 10.6): recomputed from the spec with
struct and libsodium, matched by the codec, and printed in the document exactly.

Regenerate the document's block with ``PYTHONPATH=. .venv/bin/python
tests/test_mailbox_vectors.py`` and review the diff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from nacl import bindings as sodium

from app.core import blob as bl
from app.core import dm
from app.core import files as fc
from app.core import mailbox as mb
from app.core.base58 import b58encode
from app.core.identity import Identity
from app.node.mailbox.client import decode_receipt, encode_receipt
from tests.doc_vectors import parse_doc_vectors, render_doc_block

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- mailbox-vectors:begin -->", "<!-- mailbox-vectors:end -->"

INPUTS: dict[str, Any] = {
    "owner.seed": "03" * 32,
    "mailbox.seed": "04" * 32,
    "record.seq": 1767225600000,  # 2026-01-01T00:00:00Z
    "record.addr_host": "/ip4/192.0.2.7/tcp/4001",
    "deposit.payload": "01" + "ab" * 40,  # a MESSAGE payload's first bytes stand in for one
    "item.id": 42,
    "item.deposited_at_ms": 1767225600123,
    "message_id": bytes(range(16)).hex(),
    "blob.id": "05" * 16,
    "blob.key": "06" * 32,
    "blob.file": "68656c6c6f",  # "hello": one chunk
}


def _peer_id(seed: bytes) -> str:
    public, _ = sodium.crypto_sign_seed_keypair(seed)
    return b58encode(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + public)


def _peer_field(peer_id: str) -> bytes:
    return bytes([len(peer_id)]) + peer_id.encode("ascii")


def compute_vectors(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every vector from the inputs alone, following section 10 step by step."""
    owner_seed, mailbox_seed = (bytes.fromhex(inputs[k]) for k in ("owner.seed", "mailbox.seed"))
    owner_pk, owner_sk = sodium.crypto_sign_seed_keypair(owner_seed)
    owner, mailbox = _peer_id(owner_seed), _peer_id(mailbox_seed)
    addr = f"{inputs['record.addr_host']}/p2p/{mailbox}".encode()
    body = struct.pack(">QB", inputs["record.seq"], 1) + struct.pack(">H", len(addr)) + addr
    signed = b"kith-mailboxes-v1\x00" + owner_pk + body
    signature = sodium.crypto_sign(signed, owner_sk)[:64]
    record = body + signature
    text = base64.urlsafe_b64encode(record).rstrip(b"=").decode()
    payload = bytes.fromhex(inputs["deposit.payload"])
    message_id = bytes.fromhex(inputs["message_id"])
    blob_id, key = bytes.fromhex(inputs["blob.id"]), bytes.fromhex(inputs["blob.key"])
    file = bytes.fromhex(inputs["blob.file"])
    hash_list = hashlib.sha256(file).digest()

    def sealed(index: int, plain: bytes) -> bytes:
        nonce = bytes(20) + struct.pack(">I", index)
        return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, blob_id, nonce, key)

    piece0, piece1 = sealed(0, hash_list), sealed(1, file)
    blob_size = len(piece0) + len(piece1)
    return {
        **inputs,
        "owner.peer_id": owner,
        "mailbox.peer_id": mailbox,
        "record.body": body.hex(),
        "record.signed_data": signed.hex(),
        "record.signature": signature.hex(),
        "record": record.hex(),
        "record.text": text,
        "register.payload": (bytes([0x01]) + struct.pack(">H", 1)
                             + _peer_field(mailbox)).hex(),
        "deposit.request": (bytes([0x02]) + _peer_field(owner) + payload).hex(),
        "fetch.payload": (bytes([0x03]) + struct.pack(">QH", 0, 64)).hex(),
        "delete.payload": (bytes([0x04]) + struct.pack(">HQ", 1, inputs["item.id"])).hex(),
        "ok.payload": "10",
        "refused_full.payload": (bytes([0x11, 4]) + b"the mailbox is full for this person").hex(),
        "item.payload": (bytes([0x12]) + struct.pack(">QQ", inputs["item.id"],
                                                     inputs["item.deposited_at_ms"])
                         + _peer_field(mailbox) + payload).hex(),
        "end.payload": "1300",
        "receipt.body": '{"ack":["' + message_id.hex() + '"],"reject":[["'
                        + message_id[::-1].hex() + '",4]]}',
        "offer.blob": json.dumps({"mailbox": mailbox, "id": blob_id.hex(), "key": key.hex()},
                                 separators=(",", ":")),
        "blob.piece0.plain": hash_list.hex(),
        "blob.piece0.nonce": (bytes(20) + struct.pack(">I", 0)).hex(),
        "blob.piece0": piece0.hex(),
        "blob.piece1.nonce": (bytes(20) + struct.pack(">I", 1)).hex(),
        "blob.piece1": piece1.hex(),
        "blob.size": blob_size,
        "blob_open.payload": (bytes([0x05]) + _peer_field(owner) + blob_id
                              + struct.pack(">QI", blob_size, 2)).hex(),
        "blob_put.payload": (bytes([0x06]) + _peer_field(owner) + blob_id
                             + struct.pack(">I", 1) + piece1).hex(),
        "blob_get.payload": (bytes([0x07]) + blob_id + struct.pack(">I", 1)).hex(),
        "blob_delete.payload": (bytes([0x08]) + blob_id).hex(),
        "blob_held.payload": "1401",
        "piece.payload": (bytes([0x15]) + struct.pack(">I", 1) + piece1).hex(),
        "refused_not_held.payload": (bytes([0x11, 9])
                                     + b"the mailbox does not hold that file for you").hex(),
    }


def test_the_codec_produces_the_vectors() -> None:
    v = compute_vectors(INPUTS)
    owner = Identity(bytes.fromhex(v["owner.seed"]))
    mailbox = Identity(bytes.fromhex(v["mailbox.seed"]))
    assert (owner.peer_id, mailbox.peer_id) == (v["owner.peer_id"], v["mailbox.peer_id"])
    addr = f"{v['record.addr_host']}/p2p/{mailbox.peer_id}"
    record = mb.sign_record(owner, v["record.seq"], [addr])
    assert record.hex() == v["record"] and mb.record_text(record) == v["record.text"]
    assert mb.verify_record(owner.peer_id, mb.record_bytes(v["record.text"])) == (
        mb.MailboxRecord(owner.peer_id, v["record.seq"], (addr,)))
    payload = bytes.fromhex(v["deposit.payload"])
    requests: list[tuple[str, mb.Request]] = [
        ("register.payload", mb.Register((mailbox.peer_id,))),
        ("deposit.request", mb.Deposit(owner.peer_id, payload)),
        ("fetch.payload", mb.Fetch(0, 64)),
        ("delete.payload", mb.Delete((v["item.id"],))),
    ]
    for name, request in requests:
        assert mb.encode_request(request).hex() == v[name], name
        assert mb.decode_request(bytes.fromhex(v[name])) == request
    answers: list[tuple[str, mb.Answer]] = [
        ("ok.payload", mb.Ok()),
        ("refused_full.payload", mb.Refused(mb.REFUSED_FULL, "")),
        ("item.payload", mb.Item(v["item.id"], v["item.deposited_at_ms"], mailbox.peer_id,
                                 payload)),
        ("end.payload", mb.End(False)),
    ]
    for name, answer in answers:
        assert mb.encode_answer(answer).hex() == v[name], name
    assert mb.decode_answer(bytes.fromhex(v["refused_full.payload"])).code == mb.REFUSED_FULL  # type: ignore[union-attr]
    message_id = bytes.fromhex(v["message_id"])
    replies: list[dm.Ack | dm.Reject] = [dm.Ack(message_id), dm.Reject(message_id[::-1], 4)]
    assert encode_receipt(replies) == v["receipt.body"]
    assert decode_receipt(v["receipt.body"]) == replies

    blob_id, key = bytes.fromhex(v["blob.id"]), bytes.fromhex(v["blob.key"])
    ref = bl.BlobRef(mailbox.peer_id, blob_id, key)
    assert json.dumps(ref.to_json(), separators=(",", ":")) == v["offer.blob"]
    file = bytes.fromhex(v["blob.file"])
    offer = fc.FileOffer(bytes(16), "hello.txt", len(file), 65536,
                         fc.content_hash(fc.chunk_hash(file)), blob=ref)
    assert fc.parse_offer(offer.to_json()).blob == ref
    assert bl.seal(ref, 0, fc.chunk_hash(file)).hex() == v["blob.piece0"]
    piece1 = bl.seal(ref, 1, file)
    assert piece1.hex() == v["blob.piece1"] and bl.open_piece(ref, 1, piece1) == file
    assert bl.sealed_size(len(file), 1) == v["blob.size"]
    blob_requests: list[tuple[str, mb.Request]] = [
        ("blob_open.payload", mb.BlobOpen(owner.peer_id, blob_id, v["blob.size"], 2)),
        ("blob_put.payload", mb.BlobPut(owner.peer_id, blob_id, 1, piece1)),
        ("blob_get.payload", mb.BlobGet(blob_id, 1)),
        ("blob_delete.payload", mb.BlobDelete(blob_id)),
    ]
    for name, request in blob_requests:
        assert mb.encode_request(request).hex() == v[name], name
        assert mb.decode_request(bytes.fromhex(v[name])) == request
    blob_answers: list[tuple[str, mb.Answer]] = [
        ("blob_held.payload", mb.BlobHeld(b"\x01")),
        ("piece.payload", mb.Piece(1, piece1)),
        ("refused_not_held.payload", mb.Refused(mb.REFUSED_NOT_HELD, "")),
    ]
    for name, answer in blob_answers:
        assert mb.encode_answer(answer).hex() == v[name], name
        decoded = mb.decode_answer(bytes.fromhex(v[name]))
        assert decoded == answer or isinstance(decoded, mb.Refused)


def test_the_document_carries_exactly_these_vectors() -> None:
    in_doc = parse_doc_vectors(PROTOCOL_DOC.read_text(encoding="utf-8"), BEGIN, END)
    computed = {k: v if isinstance(v, str) else str(v) for k, v in compute_vectors(INPUTS).items()}
    assert in_doc == computed


if __name__ == "__main__":
    print(render_doc_block(compute_vectors(INPUTS)))
