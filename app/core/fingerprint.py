"""Safety numbers that two people can compare aloud or by QR code.

Signal-style: a slow-ish iterated SHA-512 of each Ed25519 public key, read as 30 decimal
digits (``key_fingerprint``: one person's half); the safety number of two people is their two
halves, the smaller first, so both see the same 60 digits. Comparing the digits out of band is
what proves that a contact link was not swapped; the iteration count makes grinding a key with
a colliding half expensive. The interface calls the 30 digits "your half of the safety number",
never a second concept.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from app.core.identity import public_key_from_peer_id

FINGERPRINT_VERSION = b"\x00\x00"
FINGERPRINT_LABEL = b"kith-fingerprint-v1"
ITERATIONS = 5200
FINGERPRINT_DIGITS = 30
SAFETY_NUMBER_DIGITS = 2 * FINGERPRINT_DIGITS
QR_PREFIX = "kith-verify:1:"

_CHUNK_BYTES = 5
_CHUNK_DIGITS = 5
_GROUPS_PER_LINE = 4


@lru_cache(maxsize=256)
def key_fingerprint(public_key: bytes) -> str:
    """30 digits for one Ed25519 public key (cached: the contact list asks again and again)."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha512(FINGERPRINT_VERSION + public_key + FINGERPRINT_LABEL).digest()
    for _ in range(ITERATIONS - 1):
        digest = hashlib.sha512(digest + public_key).digest()
    chunks = (
        digest[i : i + _CHUNK_BYTES]
        for i in range(0, FINGERPRINT_DIGITS // _CHUNK_DIGITS * _CHUNK_BYTES, _CHUNK_BYTES)
    )
    return "".join(f"{int.from_bytes(c, 'big') % 100000:05d}" for c in chunks)


def fingerprint_for_peer(peer_id: str) -> str:
    """The fingerprint of the key behind a peer id; raises ``InvalidPeerId``."""
    return key_fingerprint(public_key_from_peer_id(peer_id))


def safety_number(key_a: bytes, key_b: bytes) -> str:
    """60 digits for a pair of keys, the same whichever side computes it (sorted halves)."""
    return "".join(sorted((key_fingerprint(key_a), key_fingerprint(key_b))))


def format_digits(digits: str) -> str:
    """Groups of five for reading aloud; a safety number becomes 3 lines of 4 groups."""
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("only digits can be formatted")
    groups = [digits[i : i + _CHUNK_DIGITS] for i in range(0, len(digits), _CHUNK_DIGITS)]
    if len(digits) == SAFETY_NUMBER_DIGITS:
        lines = [groups[i : i + _GROUPS_PER_LINE] for i in range(0, len(groups), _GROUPS_PER_LINE)]
        return "\n".join(" ".join(line) for line in lines)
    return " ".join(groups)


def own_half_first(own_key: bytes, their_key: bytes) -> bool:
    """True when ``own_key``'s half comes first in the pair's safety number."""
    return key_fingerprint(own_key) <= key_fingerprint(their_key)


def qr_payload(key_a: bytes, key_b: bytes) -> str:
    """What the verification QR code carries; scanning it compares the whole safety number."""
    return QR_PREFIX + safety_number(key_a, key_b)


def parse_qr_payload(text: str) -> str:
    """The safety number in a scanned verification code; ``ValueError`` if it is not one."""
    text = text.strip()
    number = text[len(QR_PREFIX) :]
    if (
        not text.startswith(QR_PREFIX)
        or len(number) != SAFETY_NUMBER_DIGITS
        or not (number.isascii() and number.isdigit())
    ):
        raise ValueError("this is not a Kith verification code")
    return number
