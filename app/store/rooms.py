"""Rooms, their members and their posts in SQLite.

Posts are kept with their original envelope, so a member can serve them to others through
history sync exactly as the author sealed them. The room's shared order is
(lamport, author key, post id); ``seq`` is only the local arrival order.

Every row is read defensively: a profile written by an older Kith may hold numbers no peer can
send any more (a migration repairs those it knows), and a row that still cannot be used is
reported once and skipped, so a damaged row never keeps the profile from starting.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

from app.core.room import (
    KIND_FILE,
    KIND_TEXT,
    MAX_AUTHOR_SEQ,
    MAX_LAMPORT,
    MAX_SENT_AT_MS,
    POST_ID_SIZE,
    PUBLIC_KEY_SIZE,
    RoomPost,
    RoomSecrets,
    next_lamport,
    precedence,
)
from app.core.seq_ranges import Range
from app.store.messages import offer_summary

log = logging.getLogger(__name__)

_POST_COLUMNS = ("room_id, post_id, author, author_key, lamport, author_seq, sent_at, kind, body, "
                 "state")
_ORDER = "lamport, author_key, post_id"
_ORDER_DESC = "lamport DESC, author_key DESC, post_id DESC"
_ROOM_COLUMNS = "room_id, key, name, description, lamport, my_seq, last_activity"
MAX_CONFLICTS_SERVED = 64  # equivocation winners sent in one sync page (8.9)
_reported: set[object] = set()


class DamagedRow(ValueError):
    """A stored row with values no code path can use (written by an older or broken Kith)."""


def _report(key: object, what: str) -> None:
    """Log a damaged row once per run: the profile goes on without it."""
    if key not in _reported:
        _reported.add(key)
        log.warning("skipped a damaged row: %s", what)


def _bounded(value: object, high: int) -> int:
    if isinstance(value, int) and 0 <= value <= high:
        return value
    raise DamagedRow(f"{value!r} is not an integer between 0 and {high}")


def _clamped(value: object, high: int) -> int:
    """A counter that must stay usable: a float or out-of-range value is brought in range."""
    if isinstance(value, int | float) and value == value:  # not NaN
        return int(min(max(value, 0), high))
    return 0


@dataclass(frozen=True)
class StoredRoom:
    secrets: RoomSecrets
    name: str
    description: str
    lamport: int
    my_seq: int
    last_activity: float


@dataclass(frozen=True)
class StoredPost:
    room_id: bytes
    post_id: bytes
    author: str
    author_key: bytes
    lamport: int
    author_seq: int
    sent_at_ms: int
    kind: int
    body: bytes
    state: str

    @property
    def order(self) -> tuple[int, bytes, bytes]:
        return (self.lamport, self.author_key, self.post_id)

    @property
    def precedence(self) -> tuple[bytes, int, bytes]:
        return precedence(self.post_id, self.room_id, self.author_key, self.lamport,
                          self.author_seq, self.sent_at_ms, self.kind, self.body)


@dataclass(frozen=True)
class StoredMember:
    peer_id: str
    name: str
    addrs: tuple[str, ...]
    last_seen: float | None


class Intake(Enum):
    """What storing a verified post did."""

    NEW = "new"  # stored
    DUPLICATE = "duplicate"  # this very post was held already
    LOST = "lost"  # an equivocation (8.7) whose winner is held: not stored
    REPLACED = "replaced"  # an equivocation it won: stored, the losers removed


@dataclass(frozen=True)
class StoreResult:
    intake: Intake
    removed: tuple[StoredPost, ...] = ()

    @property
    def stored(self) -> bool:
        return self.intake in (Intake.NEW, Intake.REPLACED)

    def __bool__(self) -> bool:
        return self.stored


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


def _room(row: tuple) -> StoredRoom:
    room_id, key, name, description, lamport, my_seq, activity = row
    if not isinstance(room_id, bytes) or not isinstance(key, bytes):
        raise DamagedRow("a room's id or key is not binary")
    try:
        secrets = RoomSecrets(room_id, key)
    except ValueError as exc:
        raise DamagedRow(str(exc)) from None
    return StoredRoom(secrets, str(name), str(description), _clamped(lamport, MAX_LAMPORT),
                      _clamped(my_seq, MAX_AUTHOR_SEQ),
                      float(activity) if isinstance(activity, int | float) else 0.0)


def _post(row: tuple) -> StoredPost:
    room_id, post_id, author, author_key, lamport, author_seq, sent_at, kind, body, state = row
    if not (isinstance(post_id, bytes) and len(post_id) == POST_ID_SIZE
            and isinstance(author_key, bytes) and len(author_key) == PUBLIC_KEY_SIZE
            and isinstance(body, bytes) and isinstance(author, str)):
        raise DamagedRow("a post's id, author or body has the wrong type")
    return StoredPost(bytes(room_id), post_id, author, author_key,
                      _bounded(lamport, MAX_LAMPORT), _bounded(author_seq, MAX_AUTHOR_SEQ),
                      _bounded(sent_at, MAX_SENT_AT_MS), _bounded(kind, 255), body, str(state))


def _posts(rows: list[tuple]) -> Iterator[StoredPost]:
    for row in rows:
        try:
            yield _post(row)
        except DamagedRow as exc:
            _report(("post", row[0], row[1]), f"a post of room {_hex(row[0])}: {exc}")


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)


class RoomStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- rooms --------------------------------------------------------------------------------

    def add_room(self, secrets: RoomSecrets, name: str, description: str) -> bool:
        now = time.time()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO rooms (room_id, key, name, description, joined_at, last_activity) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room_id) DO NOTHING",
                (secrets.room_id, secrets.key, name, description, now, now),
            )
        return bool(cur.rowcount)

    def room(self, room_id: bytes) -> StoredRoom | None:
        row = self._conn.execute(
            f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,),
        ).fetchone()
        if not row:
            return None
        try:
            return _room(row)
        except DamagedRow as exc:
            _report(("room", row[0]), f"room {_hex(row[0])}: {exc}")
            return None

    def rooms(self) -> list[StoredRoom]:
        out = []
        for row in self._conn.execute(
            f"SELECT {_ROOM_COLUMNS} FROM rooms ORDER BY last_activity DESC"
        ):
            try:
                out.append(_room(row))
            except DamagedRow as exc:
                _report(("room", row[0]), f"room {_hex(row[0])}: {exc}")
        return out

    def remove_room(self, room_id: bytes) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM room_posts WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM room_members WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM room_conflicts WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM drafts WHERE conversation = ?", (room_id.hex(),))
            self._conn.execute("DELETE FROM rooms WHERE room_id = ?", (room_id,))

    def stats(self, room_id: bytes) -> tuple[int, str]:
        """(unread count, newest text preview)."""
        unread = self._conn.execute(
            "SELECT count(*) FROM room_posts WHERE room_id = ? AND read = 0", (room_id,)
        ).fetchone()[0]
        last = self._conn.execute(
            f"SELECT kind, body FROM room_posts WHERE room_id = ? AND kind IN (?, ?) "
            f"ORDER BY {_ORDER_DESC} LIMIT 1", (room_id, KIND_TEXT, KIND_FILE),
        ).fetchone()
        preview = ""
        if last and isinstance(last[1], bytes):
            text = last[1].decode("utf-8", "replace")
            if last[0] == KIND_FILE:
                summary = offer_summary(text)
                text = f"📎 {summary[1]}" if summary else ""
            preview = text.split("\n", 1)[0][:120]
        return int(unread), preview

    def mark_read(self, room_id: bytes) -> int:
        with self._conn:
            cur = self._conn.execute(
                "UPDATE room_posts SET read = 1 WHERE room_id = ? AND read = 0", (room_id,)
            )
        return cur.rowcount

    def unread_total(self) -> int:
        return int(self._conn.execute(
            "SELECT count(*) FROM room_posts WHERE read = 0"
        ).fetchone()[0])

    # -- posts --------------------------------------------------------------------------------

    def store_own_post(
        self, room_id: bytes, author_key: bytes,
        build: Callable[[int, int], tuple[RoomPost, bytes]], state: str,
    ) -> tuple[RoomPost, bytes]:
        """Number, build and store our next post in one transaction.

        ``build(lamport, author_seq)`` signs the post. A crash or an error at any point leaves
        either the post and its numbers, or neither: a number is never spent without a post
        (a hole that every member would otherwise ask for forever). The number is above every
        post of ours held, whatever the counter says (a profile restored from an older backup,
        or written by an older Kith, may hold posts of ours the counter never saw).
        """
        with self._conn:
            row = self._conn.execute(
                "SELECT lamport, my_seq, (SELECT max(author_seq) FROM room_posts "
                "WHERE room_id = rooms.room_id AND author_key = ?) FROM rooms WHERE room_id = ?",
                (author_key, room_id),
            ).fetchone()
            if row is None:
                raise KeyError("unknown room")
            lamport = next_lamport(_clamped(row[0], MAX_LAMPORT))
            last = max(_clamped(row[1], MAX_AUTHOR_SEQ), _clamped(row[2] or 0, MAX_AUTHOR_SEQ))
            post, envelope = build(lamport, last + 1)
            result = self._store(post, envelope, state, read=True, own=True)
            if not result.stored:  # our number is taken by a post we signed earlier
                raise sqlite3.IntegrityError("this post's number is already used")
        return post, envelope

    def store_post(self, post: RoomPost, envelope: bytes, state: str, read: bool,
                   own: bool = False) -> StoreResult:
        """Store a verified post, applying the equivocation rule (8.7).

        ``own``: we are the author (a post of ours coming back by gossip or sync), so our
        counter moves past it and the number is never used again.
        """
        with self._conn:
            return self._store(post, envelope, state, read, own)

    def _rivals(self, post: RoomPost) -> list[StoredPost]:
        """Held posts of the same author with the post's author_seq or post_id."""
        return list(_posts(self._conn.execute(
            f"SELECT {_POST_COLUMNS} FROM room_posts WHERE room_id = ? AND author_key = ? "
            "AND (author_seq = ? OR post_id = ?)",
            (post.room_id, post.author_key, post.author_seq, post.post_id),
        ).fetchall()))

    def _mark_conflicts(self, post: RoomPost, rivals: list[StoredPost]) -> None:
        seqs = {post.author_seq, *(r.author_seq for r in rivals)}
        self._conn.executemany(
            "INSERT INTO room_conflicts (room_id, author_key, author_seq) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING", [(post.room_id, post.author_key, s) for s in seqs],
        )

    def winner_over(self, post: RoomPost) -> StoredPost | None:
        """A held post that ``post`` conflicts with and loses to (8.7), if any."""
        mine = post.precedence
        return next((r for r in self._rivals(post) if r.precedence < mine), None)

    def record_conflict(self, post: RoomPost) -> None:
        """Remember that ``post`` and the held posts it conflicts with were both seen."""
        with self._conn:
            rivals = [r for r in self._rivals(post) if r.precedence != post.precedence]
            if rivals:
                self._mark_conflicts(post, rivals)

    def _store(self, post: RoomPost, envelope: bytes, state: str, read: bool,
               own: bool = False) -> StoreResult:
        held = self._rivals(post)
        mine = post.precedence
        if any(h.precedence == mine for h in held):
            return StoreResult(Intake.DUPLICATE)
        if held:
            self._mark_conflicts(post, held)
            if any(h.precedence < mine for h in held):
                return StoreResult(Intake.LOST)
            self._conn.executemany(
                "DELETE FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
                [(h.room_id, h.author_key, h.post_id) for h in held],
            )
        self._conn.execute(
            "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
            "author_seq, sent_at, kind, body, envelope, state, read) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (post.room_id, post.post_id, post.author, post.author_key, post.lamport,
             post.author_seq, post.sent_at_ms, post.kind, post.body, envelope, state, int(read)),
        )
        self._conn.execute(
            "UPDATE rooms SET lamport = max(lamport, ?), last_activity = ? WHERE room_id = ?",
            (post.lamport, time.time(), post.room_id),
        )
        if own:
            self._conn.execute(
                "UPDATE rooms SET my_seq = max(my_seq, ?) WHERE room_id = ?",
                (post.author_seq, post.room_id),
            )
        return StoreResult(Intake.REPLACED if held else Intake.NEW, tuple(held))

    def has_post(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id),
        ).fetchone() is not None

    def envelope(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT envelope FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id),
        ).fetchone()
        return row[0] if row and isinstance(row[0], bytes) else None

    def set_post_state(self, room_id: bytes, post_id: bytes, state: str) -> bool:
        with self._conn:
            cur = self._conn.execute(
                "UPDATE room_posts SET state = ? WHERE room_id = ? AND post_id = ? AND state != ?",
                (state, room_id, post_id, state),
            )
        return bool(cur.rowcount)

    def history(
        self, room_id: bytes, before: tuple[int, bytes, bytes] | None, limit: int
    ) -> list[StoredPost]:
        """A page in the room's order, oldest first, ending just before ``before``."""
        if before is None:
            rows = self._conn.execute(
                f"SELECT {_POST_COLUMNS} FROM room_posts WHERE room_id = ? "
                f"ORDER BY {_ORDER_DESC} LIMIT ?", (room_id, limit),
            ).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {_POST_COLUMNS} FROM room_posts WHERE room_id = ? "
                f"AND ({_ORDER}) < (?, ?, ?) ORDER BY {_ORDER_DESC} LIMIT ?",
                (room_id, *before, limit),
            ).fetchall()
        return list(_posts(rows[::-1]))

    # -- sync ---------------------------------------------------------------------------------

    def held_ranges(self, room_id: bytes) -> dict[bytes, list[Range]]:
        """For each author: the author_seq numbers held, as ascending disjoint ranges."""
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
                for _, winner in self._seqs_from(room_id, bytes(author_key), seq, seq, 1):
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

    def _seqs_from(self, room_id: bytes, author_key: bytes, first: int, last: int, limit: int
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

    # -- members ------------------------------------------------------------------------------

    def upsert_member(self, room_id: bytes, peer_id: str, name: str, addrs: tuple[str, ...],
                      seen: float | None) -> bool:
        """Record a member; True if they were new."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO room_members (room_id, peer_id, name, addrs, last_seen) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, peer_id) DO NOTHING",
                (room_id, peer_id, name, json.dumps(list(addrs)), seen),
            )
            if cur.rowcount:
                return True
            self._conn.execute(
                "UPDATE room_members SET name = CASE WHEN ? != '' THEN ? ELSE name END, "
                "addrs = CASE WHEN ? != '[]' THEN ? ELSE addrs END, "
                "last_seen = coalesce(?, last_seen) WHERE room_id = ? AND peer_id = ?",
                (name, name, json.dumps(list(addrs)), json.dumps(list(addrs)), seen, room_id,
                 peer_id),
            )
        return False

    def apply_announce(self, room_id: bytes, peer_id: str, name: str, addrs: tuple[str, ...],
                       seen: float, lamport: int, sent_at_ms: int) -> bool | None:
        """Take a member's announce if it is newer than the last one taken from them.

        Newer means a higher (lamport, sent_at): a replayed old announce, by anyone, changes
        nothing (None). Otherwise True if the member was new, False if updated.
        """
        with self._conn:
            row = self._conn.execute(
                "SELECT announce_lamport, announce_sent_at FROM room_members "
                "WHERE room_id = ? AND peer_id = ?", (room_id, peer_id),
            ).fetchone()
            if row is not None and isinstance(row[0], int) and isinstance(row[1], int) and (
                (lamport, sent_at_ms) <= (row[0], row[1])
            ):
                return None
            self._conn.execute(
                "INSERT INTO room_members (room_id, peer_id, name, addrs, last_seen, "
                "announce_lamport, announce_sent_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (room_id, peer_id) DO UPDATE SET name = excluded.name, "
                "addrs = excluded.addrs, last_seen = excluded.last_seen, "
                "announce_lamport = excluded.announce_lamport, "
                "announce_sent_at = excluded.announce_sent_at",
                (room_id, peer_id, name, json.dumps(list(addrs)), seen, lamport, sent_at_ms),
            )
        return row is None

    def members(self, room_id: bytes) -> list[StoredMember]:
        rows = self._conn.execute(
            "SELECT peer_id, name, addrs, last_seen FROM room_members WHERE room_id = ? "
            "ORDER BY name, peer_id", (room_id,),
        )
        out = []
        for peer_id, name, addrs, seen in rows:
            try:
                parsed = json.loads(addrs)
                if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
                    raise ValueError("not a list of strings")
            except (TypeError, ValueError) as exc:
                _report(("member", room_id, peer_id), f"member {peer_id!r}: addresses {exc}")
                parsed = []
            out.append(StoredMember(str(peer_id), str(name), tuple(parsed),
                                    float(seen) if isinstance(seen, int | float) else None))
        return out

    def rooms_of(self, peer_id: str) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT room_id FROM room_members WHERE peer_id = ?", (peer_id,)
        )
        return [bytes(r[0]) for r in rows]


def _in_ranges(ranges: tuple[Range, ...], seq: int) -> bool:
    return any(first <= seq <= last for first, last in ranges)


class _AuthorCursor:
    """One author's posts that a sync requester lacks, lowest author_seq first, read from the
    (room, author, author_seq) index a few at a time, skipping the requester's ranges."""

    BATCH = 8

    def __init__(self, store: RoomStore, room_id: bytes, author_key: bytes,
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
        found = self._store._seqs_from(self._room_id, self._author_key, self._next_seq, last,
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
