"""Choosing a sync page (docs/protocol.md 8.9): what a member that holds some of a room's
posts gets next, read with index seeks only.

Authors take turns in ascending key order, each giving its lowest missing author_seq per turn,
so the work grows with the page, the requester's ranges and the number of authors, not with the
room's history; only keys are kept while choosing, never envelopes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.core.room import MAX_AUTHOR_SEQ
from app.core.seq_ranges import HeldRanges, Range

MAX_CONFLICTS_SERVED = 64  # equivocation winners sent in one sync page (8.9)


@dataclass(frozen=True)
class PageEntry:
    """One post chosen for a sync page; its envelope is read when it is sent."""

    order: tuple[int, bytes, bytes]
    row: int
    size: int
    author: str
    state: str


@dataclass
class SyncPage:
    """The posts a sync request gets (in the room's order), and what choosing them cost."""

    entries: list[PageEntry] = field(default_factory=list)
    more: bool = False
    queries: int = 0


@dataclass
class _Held:
    """A room's held ranges as of row ``last_row`` and the room's ``removals``-th deletion."""

    ranges: HeldRanges
    last_row: int
    removals: int


class SyncPages:
    """The sync side of the ``room_posts`` table (``RoomStore`` hands these out)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._held: dict[bytes, _Held] = {}
        # Deletions counted per room by a trigger of this connection only (temp, never in
        # the profile): a room's kept ranges stand until one of its posts is deleted, by
        # whichever store. New rows are found by their rowid, which only grows.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS room_post_removals "
                     "(room_id BLOB PRIMARY KEY, removals INTEGER NOT NULL)")
        conn.execute("CREATE TEMP TRIGGER IF NOT EXISTS room_post_removed AFTER DELETE ON "
                     "main.room_posts BEGIN INSERT INTO room_post_removals VALUES (old.room_id, 1)"
                     " ON CONFLICT DO UPDATE SET removals = removals + 1; END")

    def held_ranges(self, room_id: bytes) -> dict[bytes, list[Range]]:
        """For each author: the author_seq numbers held, as ascending disjoint ranges.

        Worked out from the whole room once, then kept: each sync (every minute or so, and
        at each connection) adds the rows stored since. Walking the room took 0.1 s at
        40,000 posts on the network thread. A deletion in the room starts again from it.
        """
        row = self._conn.execute("SELECT removals FROM room_post_removals WHERE room_id = ?",
                                 (room_id,)).fetchone()
        removals = int(row[0]) if row else 0
        last_row = int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM room_posts"
                                          ).fetchone()[0])
        held = self._held.get(room_id)
        if held is None or held.removals != removals:
            held = _Held(HeldRanges(self._whole_room(room_id)), last_row, removals)
            self._held[room_id] = held
        else:
            for key, author_seq in self._conn.execute(
                    "SELECT author_key, author_seq FROM room_posts WHERE seq > ? AND seq <= ? "
                    "AND +room_id = ?",  # "+": read by rowid, not through the room's index
                    (held.last_row, last_row, room_id)):
                if isinstance(author_seq, int) and author_seq > 0:
                    held.ranges.add(bytes(key), author_seq)
            held.last_row = last_row
        return {author: list(held.ranges.ranges(author)) for author in held.ranges.authors()}

    def forget(self, room_id: bytes) -> None:
        """The room was left: its kept ranges go with it."""
        self._held.pop(room_id, None)

    def _whole_room(self, room_id: bytes) -> dict[bytes, list[Range]]:
        rows = self._conn.execute(
            "SELECT author_key, min(author_seq), max(author_seq) FROM (SELECT author_key, "
            "author_seq, author_seq - row_number() OVER (PARTITION BY author_key "
            "ORDER BY author_seq) AS island FROM room_posts WHERE room_id = ? AND author_seq > 0) "
            "GROUP BY author_key, island ORDER BY author_key, 2",
            (room_id,),
        )
        held: dict[bytes, list[Range]] = {}
        for key, first, last in rows:
            held.setdefault(bytes(key), []).append((int(first), int(last)))
        return held

    def has_seq(self, room_id: bytes, author_key: bytes, author_seq: int) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM room_posts WHERE room_id = ? AND author_key = ? AND author_seq = ?",
            (room_id, author_key, author_seq),
        ).fetchone() is not None

    def sync_page(self, room_id: bytes, held: Mapping[bytes, tuple[Range, ...]], limit: int,
                  max_bytes: int, conflicts: bool = False) -> SyncPage:
        """Choose what a sync requester holding ``held`` gets next (docs/protocol.md 8.9).

        Authors take turns in ascending key order, each giving its lowest missing author_seq
        per turn, until ``limit`` posts or ``max_bytes`` of envelopes (at least one post); the
        page is then sorted in the room's order. Only keys are kept here, never envelopes, and
        each author is reached with index seeks, so the work grows with the page, the
        requester's ranges and the number of authors, not with the room's history.
        """
        page = SyncPage()
        size = 0

        def full() -> bool:
            return len(page.entries) >= limit or (size >= max_bytes and bool(page.entries))

        if conflicts:
            page.queries += 1
            for author_key, seq in self._conn.execute(
                "SELECT author_key, author_seq FROM room_conflicts WHERE room_id = ? "
                "ORDER BY author_key, author_seq LIMIT ?", (room_id, MAX_CONFLICTS_SERVED),
            ).fetchall():
                if full():
                    page.more = True
                    break
                if not _in_ranges(held.get(bytes(author_key), ()), seq):
                    continue  # missing there: it comes with the rest
                page.queries += 1
                for _, winner in self.seqs_from(room_id, bytes(author_key), seq, seq, 1):
                    page.entries.append(winner)
                    size += winner.size
        turns: list[_AuthorCursor] = []
        after = b""
        while not full():  # the first turn, one author at a time in key order
            page.queries += 1
            row = self._conn.execute(
                "SELECT author_key FROM room_posts WHERE room_id = ? AND author_key > ? "
                "AND author_seq > 0 ORDER BY author_key LIMIT 1", (room_id, after),
            ).fetchone()
            if row is None:
                break
            after = bytes(row[0])
            cursor = _AuthorCursor(self, room_id, after, held.get(after, ()), page)
            entry = cursor.next()
            if entry is not None:
                page.entries.append(entry)
                size += entry.size
                turns.append(cursor)
        else:
            page.more = True
        while turns and not full():  # then round and round over those with more
            still: list[_AuthorCursor] = []
            for cursor in turns:
                if full():
                    page.more = True
                    break
                entry = cursor.next()
                if entry is not None:
                    page.entries.append(entry)
                    size += entry.size
                    still.append(cursor)
            else:
                turns = still
                continue
            break
        else:
            page.more = page.more or bool(turns)
        page.entries.sort(key=lambda e: e.order)
        return page

    def seqs_from(self, room_id: bytes, author_key: bytes, first: int, last: int, limit: int
                   ) -> list[tuple[int, PageEntry]]:
        rows = self._conn.execute(
            "SELECT lamport, post_id, seq, length(envelope), author, state, author_seq "
            "FROM room_posts WHERE room_id = ? AND author_key = ? AND author_seq BETWEEN ? AND ? "
            "ORDER BY author_seq LIMIT ?", (room_id, author_key, first, last, limit),
        ).fetchall()
        return [(int(seq), PageEntry((int(lamport), author_key, bytes(post_id)), row, int(size),
                                     author, str(state)))
                for lamport, post_id, row, size, author, state, seq in rows]

    def envelope_at(self, row: int) -> bytes | None:
        """The envelope of the post stored at ``row`` (None if it was removed since)."""
        found = self._conn.execute(
            "SELECT envelope FROM room_posts WHERE seq = ?", (row,)
        ).fetchone()
        return found[0] if found and isinstance(found[0], bytes) else None


def _in_ranges(ranges: tuple[Range, ...], seq: int) -> bool:
    return any(first <= seq <= last for first, last in ranges)


class _AuthorCursor:
    """One author's posts that a sync requester lacks, lowest author_seq first, read from the
    (room, author, author_seq) index a few at a time, skipping the requester's ranges."""

    BATCH = 8

    def __init__(self, store: SyncPages, room_id: bytes, author_key: bytes,
                 held: tuple[Range, ...], page: SyncPage) -> None:
        self._store = store
        self._room_id = room_id
        self._author_key = author_key
        self._held = held
        self._page = page
        self._next_seq = 1
        self._range = 0  # the first held range that may still be ahead
        self._buffer: list[PageEntry] = []
        self._done = False

    def next(self) -> PageEntry | None:
        while not self._buffer and not self._done:
            self._fill()
        return self._buffer.pop(0) if self._buffer else None

    def _fill(self) -> None:
        held = self._held
        while self._range < len(held) and held[self._range][1] < self._next_seq:
            self._range += 1
        if self._range < len(held) and held[self._range][0] <= self._next_seq:
            self._next_seq = held[self._range][1] + 1  # skip what the requester holds
            return
        if self._next_seq > MAX_AUTHOR_SEQ:
            self._done = True
            return
        last = held[self._range][0] - 1 if self._range < len(held) else MAX_AUTHOR_SEQ
        self._page.queries += 1
        found = self._store.seqs_from(self._room_id, self._author_key, self._next_seq, last,
                                       self.BATCH)
        if found:
            self._buffer = [entry for _, entry in found]
            self._next_seq = found[-1][0] + 1
            if len(found) < self.BATCH:
                self._next_seq = last + 1  # nothing else in this gap
        elif self._range < len(held):
            self._next_seq = last + 1
        else:
            self._done = True
        if self._next_seq > MAX_AUTHOR_SEQ and not self._buffer:
            self._done = True
