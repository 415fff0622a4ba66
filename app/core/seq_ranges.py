"""Which author_seq numbers a member holds, per author, as sorted disjoint ranges.

History sync (/kith/sync/2.0.0) tells the responder exactly what the requester has, so a page
never repeats it and a hole (a number nobody holds) never stops the sync: ranges describe
"1-40 and 42-900" where a single count could only say "1-40".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

Range = tuple[int, int]  # first and last number, inclusive


class HeldRanges:
    """Per author: the numbers held, merged into canonical ranges (gaps between neighbours)."""

    def __init__(self, held: Mapping[bytes, Iterable[Range]] | None = None) -> None:
        self._starts: dict[bytes, list[int]] = {}
        self._ends: dict[bytes, list[int]] = {}
        for author, ranges in (held or {}).items():
            for first, last in ranges:
                self.add_range(author, first, last)

    def __contains__(self, item: tuple[bytes, int]) -> bool:
        author, seq = item
        starts = self._starts.get(author)
        if not starts:
            return False
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and seq <= self._ends[author][i]

    def add(self, author: bytes, seq: int) -> bool:
        """Hold ``seq`` of ``author``; False if it was held already."""
        if (author, seq) in self:
            return False
        self.add_range(author, seq, seq)
        return True

    def add_range(self, author: bytes, first: int, last: int) -> None:
        if first > last:
            raise ValueError("a range's first number is above its last")
        starts = self._starts.setdefault(author, [])
        ends = self._ends.setdefault(author, [])
        # Every range that overlaps or touches [first, last] merges into it.
        lo = bisect.bisect_left(ends, first - 1)
        hi = bisect.bisect_right(starts, last + 1)
        if lo < hi:
            first = min(first, starts[lo])
            last = max(last, ends[hi - 1])
        starts[lo:hi] = [first]
        ends[lo:hi] = [last]

    def ranges(self, author: bytes) -> tuple[Range, ...]:
        return tuple(zip(self._starts.get(author, ()), self._ends.get(author, ()), strict=True))

    def authors(self) -> list[bytes]:
        return sorted(a for a, starts in self._starts.items() if starts)

    def count(self, author: bytes) -> int:
        """How many numbers of ``author`` are held."""
        return sum(last - first + 1 for first, last in self.ranges(author))

    def prefix(self, author: bytes) -> int:
        """The highest n such that 1..n are all held (0 if 1 is not): /kith/sync/1.0.0's
        ``have_seq``."""
        starts = self._starts.get(author)
        return self._ends[author][0] if starts and starts[0] == 1 else 0

    def fitted(self, max_authors: int, max_ranges: int) -> dict[bytes, tuple[Range, ...]]:
        """The ranges to send, within the request's limits.

        Over ``max_authors``, the authors holding the most numbers are kept (leaving one out
        costs its posts being sent again). Over ``max_ranges``, an author's last ranges are
        merged into one, which claims the gaps between them: those posts are not asked for in
        this request, and a later sync asks again once the earlier gaps are filled.
        """
        authors = self.authors()
        if len(authors) > max_authors:
            authors = sorted(sorted(authors, key=self.count, reverse=True)[:max_authors])
        lists = {a: self.ranges(a) for a in authors}
        budget = max_ranges
        out: dict[bytes, tuple[Range, ...]] = {}
        by_size = sorted(authors, key=lambda a: len(lists[a]))
        for index, author in enumerate(by_size):
            ranges = lists[author]
            cap = max(1, budget // (len(by_size) - index))
            if len(ranges) > cap:
                ranges = (*ranges[: cap - 1], (ranges[cap - 1][0], ranges[-1][1]))
            out[author] = ranges
            budget -= len(ranges)
        return dict(sorted(out.items()))
