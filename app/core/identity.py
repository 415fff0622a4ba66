"""The profile's identity: one Ed25519 key that is both the libp2p host key and the signing key.

The peer id is derived exactly as libp2p does for Ed25519 keys (an identity multihash of the
protobuf-encoded public key), so the id shown in the window is the id the network sees.
The X25519 form of the same key (libsodium's conversion) is the encryption key for direct messages.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from app.core.base58 import b58decode, b58encode

# libp2p crypto.proto: KeyType Ed25519 = 1; field 1 = type, field 2 = data.
_PUBKEY_PREFIX = bytes([0x08, 0x01, 0x12, 0x20])
_PRIVKEY_PREFIX = bytes([0x08, 0x01, 0x12, 0x40])
# multihash: identity function (0x00), digest length 36.
_PEER_ID_PREFIX = bytes([0x00, 0x24]) + _PUBKEY_PREFIX


class InvalidPeerId(ValueError):
    """A string that is not the peer id of an Ed25519 key."""


class InvalidKeyFile(ValueError):
    """Identity key bytes that are not a libp2p-encoded Ed25519 private key."""


# Both conversions are pure and base58 is big-integer arithmetic in Python: every room post
# received needs its author's id, so the ids of the last few thousand keys seen are kept.
_KNOWN_IDS = 4096


@functools.lru_cache(maxsize=_KNOWN_IDS)
def peer_id_from_public_key(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return b58encode(_PEER_ID_PREFIX + public_key)


@functools.lru_cache(maxsize=_KNOWN_IDS)
def public_key_from_peer_id(peer_id: str) -> bytes:
    """Recover the Ed25519 public key embedded in a peer id (Kith only accepts Ed25519 peers)."""
    try:
        raw = b58decode(peer_id)
    except ValueError as exc:
        raise InvalidPeerId(f"not a peer id: {exc}") from None
    if len(raw) != len(_PEER_ID_PREFIX) + 32 or not raw.startswith(_PEER_ID_PREFIX):
        raise InvalidPeerId("not the peer id of an Ed25519 key")
    return raw[len(_PEER_ID_PREFIX):]


@functools.lru_cache(maxsize=_KNOWN_IDS)
def peer_id_bytes(peer_id: str) -> bytes:
    """The binary form of an Ed25519 peer id (what libp2p's ``ID`` holds); raises
    ``InvalidPeerId``."""
    return _PEER_ID_PREFIX + public_key_from_peer_id(peer_id)


def is_valid_peer_id(peer_id: str) -> bool:
    try:
        public_key_from_peer_id(peer_id)
    except InvalidPeerId:
        return False
    return True


def verify(peer_id: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``message`` was made by the key behind ``peer_id``."""
    try:
        nacl.signing.VerifyKey(public_key_from_peer_id(peer_id)).verify(message, signature)
    except (InvalidPeerId, nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def x25519_public_from_peer_id(peer_id: str) -> bytes:
    return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key_from_peer_id(peer_id))


@dataclass(frozen=True)
class Identity:
    """An Ed25519 signing key and everything derived from it.

    The derived values are computed once (deriving the public key is a scalar multiplication,
    the peer id a base58 encoding, and a node asks for its own id on every room post).
    """

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")

    @classmethod
    def generate(cls) -> Identity:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @functools.cached_property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @functools.cached_property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @functools.cached_property
    def peer_id(self) -> str:
        return peer_id_from_public_key(self.public_key)

    @property
    def x25519_private(self) -> bytes:
        return nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(self.seed + self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def to_key_file(self) -> bytes:
        """libp2p's protobuf private-key encoding: seed || public key, as go-libp2p writes it."""
        return _PRIVKEY_PREFIX + self.seed + self.public_key

    @classmethod
    def from_key_file(cls, data: bytes) -> Identity:
        if len(data) != len(_PRIVKEY_PREFIX) + 64 or not data.startswith(_PRIVKEY_PREFIX):
            raise InvalidKeyFile("not a libp2p Ed25519 private key")
        body = data[len(_PRIVKEY_PREFIX):]
        identity = cls(body[:32])
        if identity.public_key != body[32:]:
            raise InvalidKeyFile("the public half does not match the private key")
        return identity
