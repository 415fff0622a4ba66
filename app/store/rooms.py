"""Rooms, their members and their posts in SQLite.

Posts are kept with their original envelope, so a member can serve them to others through
history sync exactly as the author sealed them. The room's shared order is
(lamport, author key, post id); ``seq`` is only the local arrival order.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from app.core.room import KIND_FILE, KIND_TEXT, RoomPost, RoomSecrets
from app.store.messages import offer_summary

_POST_COLUMNS = "room_id, post_id, author, author_key, lamport, sent_at, kind, body, state"
_ORDER = "lamport, author_key, post_id"
_ORDER_DESC = "lamport DESC, author_key DESC, post_id DESC"


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
    sent_at_ms: int
    kind: int
    body: bytes
    state: str

    @property
    def order(self) -> tuple[int, bytes, bytes]:
        return (self.lamport, self.author_key, self.post_id)


@dataclass(frozen=True)
class StoredMember:
    peer_id: str
    name: str
    addrs: tuple[str, ...]
    last_seen: float | None


def _room(row: tuple) -> StoredRoom:
    room_id, key, name, description, lamport, my_seq, activity = row
    return StoredRoom(RoomSecrets(bytes(room_id), bytes(key)), name, description, lamport,
                      my_seq, activity)


def _post(row: tuple) -> StoredPost:
    room_id, post_id, author, author_key, lamport, sent_at, kind, body, state = row
    return StoredPost(bytes(room_id), bytes(post_id), author, bytes(author_key), lamport, sent_at,
                      kind, bytes(body), state)


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
            "SELECT room_id, key, name, description, lamport, my_seq, last_activity FROM rooms "
            "WHERE room_id = ?", (room_id,),
        ).fetchone()
        return _room(row) if row else None

    def rooms(self) -> list[StoredRoom]:
        rows = self._conn.execute(
            "SELECT room_id, key, name, description, lamport, my_seq, last_activity FROM rooms "
            "ORDER BY last_activity DESC"
        )
        return [_room(r) for r in rows]

    def remove_room(self, room_id: bytes) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM room_posts WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM room_members WHERE room_id = ?", (room_id,))
            self._conn.execute("DELETE FROM drafts WHERE conversation = ?", (room_id.hex(),))
            self._conn.execute("DELETE FROM rooms WHERE room_id = ?", (room_id,))

    def next_post_numbers(self, room_id: bytes) -> tuple[int, int]:
        """Reserve (lamport, author_seq) for our next post, durably, before it is published."""
        with self._conn:
            self._conn.execute(
                "UPDATE rooms SET lamport = lamport + 1, my_seq = my_seq + 1 WHERE room_id = ?",
                (room_id,),
            )
            row = self._conn.execute(
                "SELECT lamport, my_seq FROM rooms WHERE room_id = ?", (room_id,)
            ).fetchone()
        return int(row[0]), int(row[1])

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
        if last:
            text = bytes(last[1]).decode("utf-8", "replace")
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

    def store_post(self, post: RoomPost, envelope: bytes, state: str, read: bool) -> bool:
        """Store a verified post; False for a duplicate (same id, or same author and seq)."""
        now = time.time()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                "author_seq, sent_at, kind, body, envelope, state, read) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (post.room_id, post.post_id, post.author, post.author_key, post.lamport,
                 post.author_seq, post.sent_at_ms, post.kind, post.body, envelope, state,
                 int(read)),
            )
            if not cur.rowcount:
                return False
            self._conn.execute(
                "UPDATE rooms SET lamport = max(lamport, ?), last_activity = ? WHERE room_id = ?",
                (post.lamport, now, post.room_id),
            )
        return True

    def set_post_state(self, room_id: bytes, post_id: bytes, state: str) -> bool:
        with self._conn:
            cur = self._conn.execute(
                "UPDATE room_posts SET state = ? WHERE room_id = ? AND post_id = ? AND state != ?",
                (state, room_id, post_id, state),
            )
        return bool(cur.rowcount)

    def pending_posts(self, room_id: bytes) -> list[StoredPost]:
        rows = self._conn.execute(
            f"SELECT {_POST_COLUMNS} FROM room_posts WHERE room_id = ? AND state = 'pending' "
            "ORDER BY seq", (room_id,),
        )
        return [_post(r) for r in rows]

    def envelope(self, room_id: bytes, post_id: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT envelope FROM room_posts WHERE room_id = ? AND post_id = ?", (room_id, post_id)
        ).fetchone()
        return bytes(row[0]) if row else None

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
        return [_post(r) for r in reversed(rows)]

    # -- sync ---------------------------------------------------------------------------------

    def have_vector(self, room_id: bytes) -> dict[bytes, int]:
        """For each author: the highest author_seq held with no gap before it."""
        rows = self._conn.execute(
            "SELECT author_key, sum(author_seq = rn) FROM (SELECT author_key, author_seq, "
            "row_number() OVER (PARTITION BY author_key ORDER BY author_seq) AS rn "
            "FROM room_posts WHERE room_id = ? AND author_seq > 0) GROUP BY author_key",
            (room_id,),
        )
        return {bytes(key): int(have) for key, have in rows}

    def has_seq(self, room_id: bytes, author_key: bytes, author_seq: int) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM room_posts WHERE room_id = ? AND author_key = ? AND author_seq = ?",
            (room_id, author_key, author_seq),
        ).fetchone() is not None

    def missing_for(self, room_id: bytes, have: dict[bytes, int], limit: int
                    ) -> tuple[list[bytes], bool]:
        """Envelopes the asker lacks (in the room's order), at most ``limit``; and whether
        there are more."""
        authors = [bytes(r[0]) for r in self._conn.execute(
            "SELECT DISTINCT author_key FROM room_posts WHERE room_id = ? AND author_seq > 0",
            (room_id,),
        )]
        candidates: list[tuple[tuple[int, bytes, bytes], bytes]] = []
        for author in authors:
            rows = self._conn.execute(
                "SELECT lamport, post_id, envelope FROM room_posts WHERE room_id = ? AND "
                "author_key = ? AND author_seq > ? ORDER BY author_seq LIMIT ?",
                (room_id, author, have.get(author, 0), limit + 1),
            )
            candidates.extend(
                ((lamport, author, bytes(post_id)), bytes(envelope))
                for lamport, post_id, envelope in rows
            )
        candidates.sort(key=lambda c: c[0])
        return [env for _, env in candidates[:limit]], len(candidates) > limit

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

    def members(self, room_id: bytes) -> list[StoredMember]:
        rows = self._conn.execute(
            "SELECT peer_id, name, addrs, last_seen FROM room_members WHERE room_id = ? "
            "ORDER BY name, peer_id", (room_id,),
        )
        return [StoredMember(p, n, tuple(json.loads(a)), s) for p, n, a, s in rows]

    def rooms_of(self, peer_id: str) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT room_id FROM room_members WHERE peer_id = ?", (peer_id,)
        )
        return [bytes(r[0]) for r in rows]
