"""Fingerprints and safety numbers: symmetric, distinct, readable, and as specified."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.fingerprint import (
    QR_PREFIX,
    fingerprint_for_peer,
    format_digits,
    key_fingerprint,
    parse_qr_payload,
    qr_payload,
    safety_number,
)
from app.core.identity import Identity, InvalidPeerId

ALICE = Identity(b"\x0a" * 32)
BOB = Identity(b"\x0b" * 32)
CAROL = Identity(b"\x0c" * 32)


def test_both_sides_compute_the_same_safety_number() -> None:
    number = safety_number(ALICE.public_key, BOB.public_key)
    assert number == safety_number(BOB.public_key, ALICE.public_key)
    assert len(number) == 60 and number.isdigit()
    assert qr_payload(ALICE.public_key, BOB.public_key) == qr_payload(
        BOB.public_key, ALICE.public_key
    )


def test_safety_number_is_the_sorted_fingerprints() -> None:
    a, b = key_fingerprint(ALICE.public_key), key_fingerprint(BOB.public_key)
    assert safety_number(ALICE.public_key, BOB.public_key) == min(a, b) + max(a, b)


def test_different_keys_differ() -> None:
    prints = {key_fingerprint(i.public_key) for i in (ALICE, BOB, CAROL)}
    assert len(prints) == 3
    numbers = {
        safety_number(ALICE.public_key, BOB.public_key),
        safety_number(ALICE.public_key, CAROL.public_key),
        safety_number(BOB.public_key, CAROL.public_key),
    }
    assert len(numbers) == 3


def test_fingerprint_shape() -> None:
    digits = key_fingerprint(ALICE.public_key)
    assert len(digits) == 30 and digits.isascii() and digits.isdigit()


def test_fingerprint_algorithm_spelled_out() -> None:
    key = ALICE.public_key
    digest = hashlib.sha512(b"\x00\x00" + key + b"kith-fingerprint-v1").digest()
    for _ in range(5199):
        digest = hashlib.sha512(digest + key).digest()
    chunks = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 30, 5)]
    assert key_fingerprint(key) == "".join(f"{c:05d}" for c in chunks)


def test_fingerprint_for_peer() -> None:
    assert fingerprint_for_peer(BOB.peer_id) == key_fingerprint(BOB.public_key)
    with pytest.raises(InvalidPeerId):
        fingerprint_for_peer("not a peer id")


def test_key_length_checked() -> None:
    with pytest.raises(ValueError):
        key_fingerprint(b"\x01" * 31)


def test_format_fingerprint() -> None:
    assert format_digits("0" * 5 + "1" * 5 + "2" * 20) == "00000 11111 22222 22222 22222 22222"


def test_format_safety_number_three_lines_of_four_groups() -> None:
    text = format_digits(safety_number(ALICE.public_key, BOB.public_key))
    lines = text.split("\n")
    assert len(lines) == 3
    assert all(len(line.split(" ")) == 4 for line in lines)
    assert all(len(group) == 5 for line in lines for group in line.split(" "))
    assert text.replace("\n", "").replace(" ", "") == safety_number(
        ALICE.public_key, BOB.public_key
    )


@pytest.mark.parametrize("bad", ["12345 67890", "١٢٣٤٥", "abc"])
def test_format_refuses_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        format_digits(bad)


def test_qr_payload() -> None:
    payload = qr_payload(ALICE.public_key, BOB.public_key)
    assert payload == "kith-verify:1:" + safety_number(ALICE.public_key, BOB.public_key)
    assert parse_qr_payload(payload) == payload[len(QR_PREFIX) :]


@pytest.mark.parametrize(
    "text", ["", "kith-verify:1:", "kith-verify:2:" + "1" * 60, QR_PREFIX + "1" * 59, "1" * 60]
)
def test_parse_qr_payload_refuses_others(text: str) -> None:
    with pytest.raises(ValueError):
        parse_qr_payload(text)


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_symmetry_for_any_keys(key_a: bytes, key_b: bytes) -> None:
    assert safety_number(key_a, key_b) == safety_number(key_b, key_a)
