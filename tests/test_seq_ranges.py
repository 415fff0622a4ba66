"""Held author_seq ranges: the same answers as a plain set, and requests that fit their limits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.seq_ranges import HeldRanges

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def as_set(ranges: tuple[tuple[int, int], ...]) -> set[int]:
    return {n for first, last in ranges for n in range(first, last + 1)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 5)), max_size=40))
def test_ranges_hold_exactly_what_was_added_in_canonical_form(adds: list[tuple[int, int]]) -> None:
    held = HeldRanges()
    model: set[int] = set()
    for first, length in adds:
        held.add_range(A, first, first + length)
        model.update(range(first, first + length + 1))
    ranges = held.ranges(A)
    assert as_set(ranges) == model
    assert all(a <= b for a, b in ranges)
    assert all(ranges[i][1] + 1 < ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert all(((A, n) in held) == (n in model) for n in range(0, 70))
    assert held.count(A) == len(model)
    expected_prefix = 0
    while expected_prefix + 1 in model:
        expected_prefix += 1
    assert held.prefix(A) == expected_prefix


def test_add_says_whether_the_number_was_new() -> None:
    held = HeldRanges({A: [(1, 3)]})
    assert not held.add(A, 2)
    assert held.add(A, 5) and held.ranges(A) == ((1, 3), (5, 5))
    assert held.add(A, 4) and held.ranges(A) == ((1, 5),)
    assert held.authors() == [A] and held.ranges(B) == ()


def test_fitted_keeps_within_the_limits_and_only_claims_tail_gaps() -> None:
    held = HeldRanges({A: [(2 * i + 1, 2 * i + 1) for i in range(10)], B: [(1, 4)], C: [(7, 7)]})
    fitted = held.fitted(max_authors=3, max_ranges=6)
    assert sum(len(r) for r in fitted.values()) <= 6
    assert fitted[B] == ((1, 4),) and fitted[C] == ((7, 7),)
    # A's first ranges stay exact; the last one spans the rest (its gaps are not asked for).
    assert fitted[A] == ((1, 1), (3, 3), (5, 5), (7, 19))
    fewer = held.fitted(max_authors=2, max_ranges=100)
    assert list(fewer) == [A, B]  # the authors holding the most numbers
