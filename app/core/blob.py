"""A file's bytes held at a mailbox (docs/protocol.md 10.8): a *blob*, sealed under a per-file
key that only the sealed offer carries, so the mailbox learns its size and who left it for
whom, never its content or name.

A blob is a list of *pieces*: piece 0 is the file's chunk hash list (docs/protocol.md 9.1),
piece ``1 + i`` is chunk ``i``. Each is sealed alone with XChaCha20-Poly1305 (IETF), the
nonce made of its index and the blob id as associated data, so that a piece opens only at its
own place in its own blob: one moved, swapped or altered by the mailbox does not open. Every
opened chunk is then checked against the hash list, exactly as a chunk from the sender.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
from nacl import bindings as sodium

from app.core.identity import is_valid_peer_id

BLOB_ID_SIZE = 16
KEY_SIZE = 32
TAG_SIZE = 16                  # Poly1305
MAX_PIECE_PLAIN = 1 << 20      # one chunk of a file under 256 MiB (docs/protocol.md 9.2)
MAX_PIECE = MAX_PIECE_PLAIN + TAG_SIZE
MAX_PIECES = 4096              # the hash list and up to 4095 chunks
HASH_PIECE = 0

_NONCE_PAD = bytes(24 - 4)
_U32 = struct.Struct(">I")


class BlobError(ValueError):
    """A piece that does not open under its blob's key at its index."""


@dataclass(frozen=True)
class BlobRef:
    """Where a file's bytes wait and how to open them: the recipient's mailbox (a peer id),
    the blob's id there, its key. It travels only inside the sealed offer."""

    mailbox: str
    blob: bytes
    key: bytes

    def to_json(self) -> dict[str, str]:
        return {"mailbox": self.mailbox, "id": self.blob.hex(), "key": self.key.hex()}


def new_ref(mailbox: str) -> BlobRef:
    return BlobRef(mailbox, os.urandom(BLOB_ID_SIZE), os.urandom(KEY_SIZE))


def _hex(value: Any, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    if not all(c in "0123456789abcdefABCDEF" for c in value):
        return None
    return bytes.fromhex(value)


def parse_ref(value: Any) -> BlobRef | None:
    """An offer's ``blob`` member, or None if it is absent or malformed (the offer stands
    without it: the bytes then come from the sender only)."""
    if not isinstance(value, dict):
        return None
    mailbox = value.get("mailbox")
    blob, key = _hex(value.get("id"), BLOB_ID_SIZE), _hex(value.get("key"), KEY_SIZE)
    if not isinstance(mailbox, str) or len(mailbox) > 64 or not is_valid_peer_id(mailbox):
        return None
    if blob is None or key is None:
        return None
    return BlobRef(mailbox, blob, key)


def pieces(chunks: int) -> int:
    """Pieces of the blob of a file of ``chunks`` chunks: the hash list, then each chunk."""
    return 1 + chunks


def sealed_size(size: int, chunks: int) -> int:
    """The blob's bytes as the mailbox holds them (what counts toward its quotas)."""
    return 32 * chunks + size + TAG_SIZE * pieces(chunks)


def fits(size: int, chunk_size: int, chunks: int) -> bool:
    """Whether a file can be a blob at all (quotas aside): not empty, chunks of at most
    ``MAX_PIECE_PLAIN``, at most ``MAX_PIECES`` pieces."""
    return (size > 0 and chunk_size <= MAX_PIECE_PLAIN and pieces(chunks) <= MAX_PIECES
            and 32 * chunks <= MAX_PIECE_PLAIN)


def nonce(index: int) -> bytes:
    """20 zero bytes, then the piece index (u32, big-endian): each index is sealed once per
    key, and the key is fresh for every blob."""
    return _NONCE_PAD + _U32.pack(index)


def seal(ref: BlobRef, index: int, plain: bytes | bytearray | memoryview) -> bytes:
    return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        bytes(plain), ref.blob, nonce(index), ref.key))


def open_piece(ref: BlobRef, index: int, sealed: bytes) -> bytes:
    try:
        return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, ref.blob, nonce(index), ref.key))
    except nacl.exceptions.CryptoError:
        raise BlobError(f"piece {index} does not open under the offer's key") from None
