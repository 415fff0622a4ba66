"""The test vectors of docs/protocol.md section 10.1, "In the DHT record": recomputed from the
spec with struct and libsodium (protobuf written by hand), matched by the code, and printed in
the document exactly.

Regenerate the document's block with ``PYTHONPATH=. .venv/bin/python
tests/test_mailbox_dht_vectors.py`` and review the diff.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.peer.envelope import consume_envelope
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from multiaddr import Multiaddr
from nacl import bindings as sodium

from app.core import mailbox as mb
from app.core.base58 import b58encode
from app.core.identity import Identity
from app.node.dht_records import mailbox_field, mailbox_record_in
from app.node.libp2p_patches.peer_record import seal_payload
from tests.doc_vectors import parse_doc_vectors, render_doc_block

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- mailbox-dht-vectors:begin -->", "<!-- mailbox-dht-vectors:end -->"

INPUTS: dict[str, Any] = {
    "owner.seed": "03" * 32,  # the owner and mailbox of section 10.7's vectors
    "mailbox.seed": "04" * 32,
    "record.seq": 1767225600000,
    "record.addr_host": "/ip4/192.0.2.7/tcp/4001",
    "peer_record.seq": 1767225600000000000,  # py-libp2p: nanoseconds since the epoch
    "peer_record.addr": "/ip4/198.51.100.5/tcp/4001",
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _ip4_tcp(text: str) -> bytes:
    """A binary multiaddr /ip4/A.B.C.D/tcp/P: code 4, the address, code 6, the port."""
    _, _, host, _, port = text.split("/")
    return bytes([0x04]) + bytes(int(x) for x in host.split(".")) + bytes([0x06]) + \
        struct.pack(">H", int(port))


def compute_vectors(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every vector from the inputs alone, following section 10.1 step by step."""
    owner_seed, mailbox_seed = (bytes.fromhex(inputs[k]) for k in ("owner.seed", "mailbox.seed"))
    owner_pk, owner_sk = sodium.crypto_sign_seed_keypair(owner_seed)
    mailbox_pk, _ = sodium.crypto_sign_seed_keypair(mailbox_seed)
    owner_id = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + owner_pk  # identity multihash
    mailbox = b58encode(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + mailbox_pk)
    addr = f"{inputs['record.addr_host']}/p2p/{mailbox}".encode()
    body = struct.pack(">QB", inputs["record.seq"], 1) + struct.pack(">H", len(addr)) + addr
    record = body + sodium.crypto_sign(b"kith-mailboxes-v1\x00" + owner_pk + body,
                                       owner_sk)[:64]
    address_info = _field(1, _ip4_tcp(inputs["peer_record.addr"]))
    kith_field = _field(27497, record)
    payload = (_field(1, owner_id) + bytes([0x10]) + _varint(inputs["peer_record.seq"])
               + _field(3, address_info) + kith_field)
    payload_type = bytes([0x03, 0x01])
    domain = b"libp2p-peer-record"
    unsigned = (_varint(len(domain)) + domain + _varint(len(payload_type)) + payload_type
                + _varint(len(payload)) + payload)
    signature = sodium.crypto_sign(unsigned, owner_sk)[:64]
    public_key = bytes([0x08, 0x01, 0x12, 0x20]) + owner_pk  # crypto.proto PublicKey
    envelope = (_field(1, public_key) + _field(2, payload_type) + _field(3, payload)
                + _field(5, signature))
    return {
        **inputs,
        "record": record.hex(),
        "kith_field": kith_field.hex(),
        "peer_record.payload": payload.hex(),
        "envelope.signed_data": unsigned.hex(),
        "envelope.signature": signature.hex(),
        "envelope": envelope.hex(),
    }


def test_the_code_produces_the_vectors() -> None:
    v = compute_vectors(INPUTS)
    owner, mailbox = (Identity(bytes.fromhex(v[k])) for k in ("owner.seed", "mailbox.seed"))
    record = mb.sign_record(owner, v["record.seq"],
                            [f"{v['record.addr_host']}/p2p/{mailbox.peer_id}"])
    assert record.hex() == v["record"]
    assert mailbox_field(record).hex() == v["kith_field"]
    payload = PeerRecord(ID.from_base58(owner.peer_id), [Multiaddr(v["peer_record.addr"])],
                         v["peer_record.seq"]).marshal_record() + mailbox_field(record)
    assert payload.hex() == v["peer_record.payload"]
    envelope = seal_payload(Ed25519PrivateKey.new(owner.seed), payload)
    assert envelope.signature.hex() == v["envelope.signature"]
    assert envelope.marshal_envelope().hex() == v["envelope"]
    # And read back as a receiver does: py-libp2p checks the envelope, Kith takes the field.
    checked, peer_record = consume_envelope(bytes.fromhex(v["envelope"]), "libp2p-peer-record")
    assert peer_record.seq == v["peer_record.seq"]
    assert mailbox_record_in(checked.raw_payload) == record
    assert mb.verify_record(owner.peer_id, record).mailbox_ids() == [mailbox.peer_id]


def test_the_document_carries_exactly_these_vectors() -> None:
    in_doc = parse_doc_vectors(PROTOCOL_DOC.read_text(encoding="utf-8"), BEGIN, END)
    computed = {k: v if isinstance(v, str) else str(v) for k, v in compute_vectors(INPUTS).items()}
    assert in_doc == computed


if __name__ == "__main__":
    print(render_doc_block(compute_vectors(INPUTS)))
