"""Identity keys, peer ids and the key file, checked against libp2p's own derivation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.base58 import b58decode, b58encode
from app.core.identity import (
    Identity,
    InvalidKeyFile,
    InvalidPeerId,
    public_key_from_peer_id,
    verify,
)


def test_peer_id_matches_libp2p() -> None:
    from libp2p.peer.id import ID

    from app.node.host import key_pair

    identity = Identity(bytes(range(32)))
    assert identity.peer_id == ID.from_pubkey(key_pair(identity).public_key).to_base58()
    assert identity.peer_id.startswith("12D3KooW")


def test_key_file_round_trip_in_the_libp2p_spec_layout() -> None:
    identity = Identity.generate()
    data = identity.to_key_file()
    # crypto.proto PrivateKey{Type: Ed25519, Data: seed || public key}, as go-libp2p writes it.
    assert data == b"\x08\x01\x12\x40" + identity.seed + identity.public_key
    assert Identity.from_key_file(data) == identity


@pytest.mark.parametrize(
    "data",
    [b"", b"\x08\x01\x12\x40" + b"\0" * 63, b"garbage" * 20, b"\x08\x02\x12\x40" + b"\0" * 64],
)
def test_damaged_key_file_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidKeyFile):
        Identity.from_key_file(data)


def test_mismatched_public_half_is_refused() -> None:
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(InvalidKeyFile):
        Identity.from_key_file(a.to_key_file()[:-32] + b.public_key)


def test_sign_and_verify_by_peer_id() -> None:
    identity, other = Identity.generate(), Identity.generate()
    signature = identity.sign(b"hello")
    assert verify(identity.peer_id, b"hello", signature)
    assert not verify(identity.peer_id, b"hellO", signature)
    assert not verify(other.peer_id, b"hello", signature)
    assert not verify("not-a-peer-id", b"hello", signature)


@pytest.mark.parametrize(
    "text", ["", "0OIl", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "12D3KooW"]
)
def test_invalid_peer_ids(text: str) -> None:
    with pytest.raises(InvalidPeerId):
        public_key_from_peer_id(text)


@given(st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data
