"""Rooms, their members and their posts in SQLite.

Posts are kept with their original envelope, so a member can serve them to others through
history sync exactly as the author sealed them. The room's shared order is
(lamport, author key, post id); ``seq`` is only the local arrival order.

Every row is read defensively (``app.store.room_rows``): a damaged row is reported once and
skipped. Choosing what a sync request gets is ``app.store.room_sync``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping

from app.core.actions import KIND_REPLY
from app.core.room import (
    KIND_FILE,
    KIND_TEXT,
    MAX_AUTHOR_SEQ,
    MAX_LAMPORT,
    RoomPost,
    RoomSecrets,
    next_lamport,
)
from app.core.seq_ranges import Range
from app.store.messages import offer_summary
from app.store.room_rows import (
    ORDER,
    ORDER_DESC,
    POST_COLUMNS,
    ROOM_COLUMNS,
    Announced,
    DamagedRow,
    Intake,
    StoredMember,
    StoredPost,
    StoredRoom,
    StoreResult,
    clamped,
    hex_of,
    posts_from_rows,
    report_damaged,
    room_from_row,
)
from app.store.room_sync import SyncPage, SyncPages

_NO_POST = ", ".join(["NULL"] * len(POST_COLUMNS.split(",")))  # a tombstone's row, as a post's
# A post's tombstone and the held posts of its author with its post_id, its author_seq or the
# one before. Each branch seeks a whole unique index: "author_seq IN (..) OR post_id = ?" in one
# branch made SQLite walk every post of the author in the room (32 ms at 40,000 posts).
_LOOK_UP = (
    f"SELECT 0, {POST_COLUMNS} FROM room_posts WHERE room_id = ?1 AND author_key = ?2 "
    "AND author_seq IN (?3, ?4) "
    f"UNION ALL SELECT 0, {POST_COLUMNS} FROM room_posts WHERE room_id = ?1 AND author_key = ?2 "
    "AND post_id = ?5 AND author_seq NOT IN (?3, ?4) "
    f"UNION ALL SELECT 1, {_NO_POST} FROM room_tombstones "
    "WHERE room_id = ?1 AND author_key = ?2 AND post_id = ?5"
)


class RoomStore:
    """All reads and writes of ``rooms``, ``room_posts``, ``room_members``, ``room_conflicts``.

    The node has one per profile, and it is the only writer of a room's lamport clock, so
    it keeps the clocks it has read: every received post is checked against its room's
    clock, twice (the validator and the reader), and each read was an SQL statement.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # The last ``_look_up``: (its post, the connection's total_changes then, its answer).
        self._looked: tuple[tuple[bytes, bytes, bytes, int], int,
                            tuple[bool, list[StoredPost]]] | None = None
        self._sync = SyncPages(conn)
        self._lamports: dict[bytes, int] = {}  # room id -> its stored lamport clock

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

    def lamport(self, room_id: bytes) -> int | None:
        """The room's lamport clock (None: not a room of ours); what checking a received post
        against the clock needs, without reading and checking the whole row."""
        known = self._lamports.get(room_id)
        if known is not None:
            return known
        row = self._conn.execute("SELECT lamport FROM rooms WHERE room_id = ?",
                                 (room_id,)).fetchone()
        if row is None:
            return None
        self._lamports[room_id] = lamport = clamped(row[0], MAX_LAMPORT)
        return lamport

    def _clock_moved(self, post: RoomPost) -> None:
        """After the commit that stored ``post`` (a rolled-back one leaves the clock alone)."""
        known = self._lamports.get(post.room_id)
        if known is not None and post.lamport > known:
            self._lamports[post.room_id] = post.lamport

    def room(self, room_id: bytes) -> StoredRoom | None:
        row = self._conn.execute(
            f"SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,),
        ).fetchone()
        if not row:
            return None
        try:
            return room_from_row(row)
        except DamagedRow as exc:
            report_damaged(("room", row[0]), f"room {hex_of(row[0])}: {exc}")
            return None

    def rooms(self) -> list[StoredRoom]:
        out = []
        for row in self._conn.execute(
            f"SELECT {ROOM_COLUMNS} FROM rooms ORDER BY last_activity DESC"
        ):
            try:
                out.append(room_from_row(row))
            except DamagedRow as exc:
                report_damaged(("room", row[0]), f"room {hex_of(row[0])}: {exc}")
        return out

    def remove_room(self, room_id: bytes) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM room_posts WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM room_members WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM room_conflicts WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM drafts WHERE conversation = ?", (room_id.hex(),))
            self._conn.execute("DELETE FROM rooms WHERE room_id = ?", (room_id,))
        self._lamports.pop(room_id, None)
        self._sync.forget(room_id)

    def stats(self, room_id: bytes) -> tuple[int, str]:
        """(unread count, newest text preview)."""
        found = self._conn.execute(
            "SELECT unread FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        unread = found[0] if found else 0
        last = self._conn.execute(
            f"SELECT kind, body, (SELECT text FROM room_edits e WHERE e.room_id = p.room_id "
            f"AND e.author_key = p.author_key AND e.post_id = p.post_id) FROM room_posts p "
            f"WHERE room_id = ? AND kind IN (?, ?, ?) ORDER BY {ORDER_DESC} LIMIT 1",
            (room_id, KIND_TEXT, KIND_FILE, KIND_REPLY),
        ).fetchone()
        preview = ""
        if last and isinstance(last[1], bytes):
            text = last[1].decode("utf-8", "replace")
            if last[0] == KIND_REPLY:
                text = text[32:]  # after the id of the post it answers
            if last[2] is not None:
                text = last[2]  # its newest edit
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
        """Unread posts in every room (kept per room by the schema's triggers, migration 15)."""
        return int(self._conn.execute(
            "SELECT coalesce(sum(unread), 0) FROM rooms"
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
            lamport = next_lamport(clamped(row[0], MAX_LAMPORT))
            last = max(clamped(row[1], MAX_AUTHOR_SEQ), clamped(row[2] or 0, MAX_AUTHOR_SEQ))
            post, envelope = build(lamport, last + 1)
            result = self._store(post, envelope, state, read=True, own=True)
            if not result.stored:  # our number is taken by a post we signed earlier
                raise sqlite3.IntegrityError("this post's number is already used")
        self._clock_moved(post)
        return post, envelope

    def store_post(self, post: RoomPost, envelope: bytes, state: str, read: bool,
                   own: bool = False) -> StoreResult:
        """Store a verified post, applying the equivocation rule (8.7).

        ``own``: we are the author (a post of ours coming back by gossip or sync), so our
        counter moves past it and the number is never used again.
        """
        with self._conn:
            result = self._store(post, envelope, state, read, own)
        if result.stored:
            self._clock_moved(post)
        return result

    def _mark_conflicts(self, post: RoomPost, rivals: list[StoredPost]) -> None:
        seqs = {post.author_seq, *(r.author_seq for r in rivals)}
        self._conn.executemany(
            "INSERT INTO room_conflicts (room_id, author_key, author_seq) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING", [(post.room_id, post.author_key, s) for s in seqs],
        )

    def held_versions(self, post: RoomPost) -> list[StoredPost]:
        """Held posts of ``post``'s author with its post_id or author_seq: the post itself if
        held, and the posts it conflicts with (8.7)."""
        _, found = self._look_up(post)
        return [p for p in found if p.author_seq == post.author_seq or p.post_id == post.post_id]

    def _look_up(self, post: RoomPost) -> tuple[bool, list[StoredPost]]:
        """Whether ``post`` was deleted for everyone, and the held posts of its author with
        its post_id, its author_seq or the one before: one statement, whose answer stands
        while this connection writes nothing (``total_changes``; it is the profile's only
        writer). The room's validator looks a live post up, and storing it just after asks
        the same: each statement costs a received post more than its work."""
        key = (post.room_id, post.author_key, post.post_id, post.author_seq)
        looked = self._looked
        if looked is not None and looked[0] == key and looked[1] == self._conn.total_changes:
            return looked[2]
        rows = self._conn.execute(_LOOK_UP, (post.room_id, post.author_key, post.author_seq,
                                             post.author_seq - 1, post.post_id)).fetchall()
        answer = (any(row[0] for row in rows),
                  list(posts_from_rows([row[1:] for row in rows if not row[0]])))
        self._looked = (key, self._conn.total_changes, answer)
        return answer

    def winner_over(self, post: RoomPost) -> StoredPost | None:
        """A held post that ``post`` conflicts with and loses to (8.7), if any."""
        mine = post.precedence
        return next((r for r in self.held_versions(post) if r.precedence < mine), None)

    def record_conflict(self, post: RoomPost) -> None:
        """Remember that ``post`` and the held posts it conflicts with were both seen."""
        with self._conn:
            rivals = [r for r in self.held_versions(post) if r.precedence != post.precedence]
            if rivals:
                self._mark_conflicts(post, rivals)

    def _store(self, post: RoomPost, envelope: bytes, state: str, read: bool,
               own: bool = False) -> StoreResult:
        tombstoned, found = self._look_up(post)
        if tombstoned:
            return StoreResult(Intake.DUPLICATE)  # deleted for everyone: never taken again
        held = [p for p in found
                if p.author_seq == post.author_seq or p.post_id == post.post_id]
        gap_before = post.author_seq > 1 and not any(
            p.author_seq == post.author_seq - 1 for p in found)
        if held:
            mine = post.precedence  # a hash of the post: only worked out when it is needed
            if any(h.precedence == mine for h in held):
                return StoreResult(Intake.DUPLICATE)
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
        return StoreResult(Intake.REPLACED if held else Intake.NEW, tuple(held), gap_before)

    def envelope(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT envelope FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id),
        ).fetchone()
        return row[0] if row and isinstance(row[0], bytes) else None

    def set_post_state(self, room_id: bytes, author_key: bytes, post_id: bytes, state: str
                       ) -> bool:
        with self._conn:
            cur = self._conn.execute(
                "UPDATE room_posts SET state = ? WHERE room_id = ? AND author_key = ? "
                "AND post_id = ? AND state != ?", (state, room_id, author_key, post_id, state),
            )
        return bool(cur.rowcount)

    def history(
        self, room_id: bytes, before: tuple[int, bytes, bytes] | None, limit: int
    ) -> list[StoredPost]:
        """A page in the room's order, oldest first, ending just before ``before``."""
        if before is None:
            rows = self._conn.execute(
                f"SELECT {POST_COLUMNS} FROM room_posts WHERE room_id = ? "
                f"ORDER BY {ORDER_DESC} LIMIT ?", (room_id, limit),
            ).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {POST_COLUMNS} FROM room_posts WHERE room_id = ? "
                f"AND ({ORDER}) < (?, ?, ?) ORDER BY {ORDER_DESC} LIMIT ?",
                (room_id, *before, limit),
            ).fetchall()
        return list(posts_from_rows(rows[::-1]))

    # -- sync (app.store.room_sync) ------------------------------------------------------------

    def held_ranges(self, room_id: bytes) -> dict[bytes, list[Range]]:
        """For each author: the author_seq numbers held, as ascending disjoint ranges."""
        return self._sync.held_ranges(room_id)

    def has_seq(self, room_id: bytes, author_key: bytes, author_seq: int) -> bool:
        return self._sync.has_seq(room_id, author_key, author_seq)

    def sync_page(self, room_id: bytes, held: Mapping[bytes, tuple[Range, ...]], limit: int,
                  max_bytes: int, conflicts: bool = False) -> SyncPage:
        """What a sync requester holding ``held`` gets next (``SyncPages.sync_page``)."""
        return self._sync.sync_page(room_id, held, limit, max_bytes, conflicts)

    def envelope_at(self, row: int) -> bytes | None:
        """The envelope of the post stored at ``row`` (None if it was removed since)."""
        return self._sync.envelope_at(row)

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
                       seen: float, lamport: int, sent_at_ms: int) -> Announced | None:
        """Take a member's announce if it is newer than the last one taken from them.

        Newer means a higher (lamport, sent_at): a replayed old announce, by anyone, changes
        nothing (None). Otherwise what the member was before it.
        """
        with self._conn:
            row = self._conn.execute(
                "SELECT announce_lamport, announce_sent_at, name, last_seen FROM room_members "
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
        if row is None:
            return Announced(new=True)
        return Announced(new=False, name=str(row[2] or ""),
                         last_seen=float(row[3]) if isinstance(row[3], int | float) else None)

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
                report_damaged(("member", room_id, peer_id), f"member {peer_id!r}: addresses {exc}")
                parsed = []
            out.append(StoredMember(str(peer_id), str(name), tuple(parsed),
                                    float(seen) if isinstance(seen, int | float) else None))
        return out

    def member_ids(self, room_id: bytes) -> list[str]:
        """The room's members' peer ids alone: a count or a connection check needs no more
        (``members`` parses every member's addresses)."""
        rows = self._conn.execute(
            "SELECT peer_id FROM room_members WHERE room_id = ?", (room_id,))
        return [str(r[0]) for r in rows]

    def rooms_of(self, peer_id: str) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT room_id FROM room_members WHERE peer_id = ?", (peer_id,)
        )
        return [bytes(r[0]) for r in rows]
