"""The message-action test vectors of docs/protocol.md (11.5), recomputed from their inputs."""

from __future__ import annotations

import json
from pathlib import Path

import nacl.bindings
import nacl.signing

from app.core import actions as ac
from app.core import dm
from app.core.identity import Identity
from app.node.profile_exchange import decode_profile, encode_profile
from tests.doc_vectors import parse_doc_vectors, render_doc_block

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
BEGIN, END = "<!-- action-vectors:begin -->", "<!-- action-vectors:end -->"
TARGET = bytes(range(16)).hex()
SENDER, RECIPIENT = Identity(b"\x01" * 32), Identity(b"\x02" * 32)
MESSAGE_ID = bytes(range(16, 32))
SENT_AT = 1767225600000
NONCE = bytes(range(0x40, 0x58))


def vectors() -> dict[str, str]:
    """Every vector, the bodies written out by hand rather than by the codec."""
    reaction = TARGET + "+👍"
    payload = dm.encode_payload(SENDER, RECIPIENT.peer_id, ac.KIND_REACTION,
                                reaction.encode(), message_id=MESSAGE_ID, sent_at_ms=SENT_AT,
                                nonce=NONCE)
    profile = encode_profile("Ada", ["/ip4/192.0.2.1/tcp/4001"], features=[ac.FEATURE_ACTIONS])
    return {
        "target": TARGET,
        "reply.body": (TARGET + "sounds good").encode().hex(),
        "reaction.body": reaction.encode().hex(),
        "reaction_remove.body": (TARGET + "-👍").encode().hex(),
        "edit.body": (TARGET + "see you at one").encode().hex(),
        "delete.body": TARGET.encode().hex(),
        "dm_reaction.message_id": MESSAGE_ID.hex(),
        "dm_reaction.payload": payload.hex(),
        "profile.json": profile.decode(),
    }


def test_the_document_holds_the_vectors() -> None:
    block = render_doc_block(vectors())
    text = DOC.read_text(encoding="utf-8")
    assert text[text.index(BEGIN) + len(BEGIN): text.index(END)].strip() == block
    assert parse_doc_vectors(text, BEGIN, END) == vectors()


def test_the_bodies_decode_as_documented() -> None:
    v = vectors()
    assert ac.decode_action(16, bytes.fromhex(v["reply.body"]).decode()) == ac.Action(
        16, TARGET, "sounds good")
    assert ac.decode_action(17, bytes.fromhex(v["reaction_remove.body"]).decode()) == ac.Action(
        17, TARGET, "👍", remove=True)
    assert ac.decode_action(19, bytes.fromhex(v["delete.body"]).decode()) == ac.Action(19, TARGET)
    assert decode_profile(v["profile.json"].encode()).features == {"actions/1"}


def test_the_payload_opens_with_libsodium_alone() -> None:
    payload = bytes.fromhex(vectors()["dm_reaction.payload"])
    assert payload[0] == 1 and payload[1:25] == NONCE
    _, sender_sk = nacl.bindings.crypto_sign_seed_keypair(b"\x01" * 32)
    recipient_pk, recipient_sk = nacl.bindings.crypto_sign_seed_keypair(b"\x02" * 32)
    sender_pk = nacl.bindings.crypto_sign_ed25519_sk_to_pk(sender_sk)
    inner = nacl.bindings.crypto_box_open_easy(
        payload[25:], NONCE, nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(sender_pk),
        nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(recipient_sk))
    assert inner[49:81] == recipient_pk
    assert inner[0] == 1 and inner[1:17] == MESSAGE_ID and inner[89] == 17
    assert inner[90:-64] == (TARGET + "+👍").encode()
    nacl.signing.VerifyKey(sender_pk).verify(b"kith-dm-v1\x00" + inner[:-64],
                                                     inner[-64:])


def test_json_of_the_profile_is_compact() -> None:
    assert json.loads(vectors()["profile.json"])["features"] == ["actions/1"]
