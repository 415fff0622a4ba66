"""A governed room's log as stored posts, what replaying it gave, and the keys we hold.

The membership log is room posts of kind 32 (``app.core.room.membership``), kept in
``room_posts`` like any post so that history sync carries it to every member. This module
reads them back as entries, caches the replayed roles and statuses (``room_roles``), keeps the
epoch keys we were given (``room_epoch_keys``) and the invite tokens we made
(``room_invites``), and drops posts the log voids (a removed member's later posts, a post an
admin deleted: their text leaves the search index with them, by the search triggers).
"""

from __future__ import annotations

import sqlite3
import time

from app.core.room import KIND_MEMBERSHIP
from app.core.room import membership as ms

MAX_ENTRY_ROWS = ms.MAX_LOG_ENTRIES
MAX_PARSED = 4 * ms.MAX_LOG_ENTRIES  # parsed entries kept, across rooms
MAX_LOG_BYTES = 8 * 1024 * 1024      # a log's bodies read per replay; later entries are void


class GovernanceStore:
    """Reads and writes of ``room_roles``, ``room_epoch_keys``, ``room_invites``, and of the
    membership posts in ``room_posts``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # Entries parsed once: a log is replayed whole at every new entry.
        self._parsed: dict[tuple[bytes, bytes, bytes, int, int, int], ms.Entry | None] = {}

    def entries(self, room_id: bytes) -> list[ms.Entry]:
        """The room's log entries as stored (a body that does not parse is left out)."""
        rows = self._conn.execute(
            "SELECT author_key, lamport, post_id, author_seq, sent_at, body FROM room_posts "
            f"WHERE room_id = ? AND kind = {KIND_MEMBERSHIP} "  # a literal: the partial index
            "ORDER BY lamport, author_key, post_id LIMIT ?",
            (room_id, MAX_ENTRY_ROWS),
        ).fetchall()
        out = []
        total = 0
        for author_key, lamport, post_id, seq, sent_at, body in rows:
            if not (isinstance(author_key, bytes) and isinstance(body, bytes)
                    and isinstance(post_id, bytes) and isinstance(lamport, int)
                    and isinstance(seq, int) and isinstance(sent_at, int)):
                continue
            total += len(body)
            if total > MAX_LOG_BYTES:
                break
            key = (room_id, author_key, post_id, lamport, seq, hash(body))
            if key in self._parsed:
                entry = self._parsed[key]
            else:
                entry = ms.entry_of(author_key, lamport, post_id, seq, sent_at, body)
                if len(self._parsed) >= MAX_PARSED:
                    self._parsed.clear()
                self._parsed[key] = entry
            if entry is not None:
                out.append(entry)
        return out

    def save_state(self, room_id: bytes, state: ms.RoomState) -> None:
        """Cache who is who after a replay (written only when it changed)."""
        wanted = {peer: (state.roles.get(peer, ms.Role.MEMBER).value, status.value)
                  for peer, status in state.status.items()}
        if wanted == self.roles(room_id):
            return
        with self._conn:
            self._conn.execute("DELETE FROM room_roles WHERE room_id = ?", (room_id,))
            self._conn.executemany(
                "INSERT INTO room_roles (room_id, peer_id, role, status) VALUES (?, ?, ?, ?)",
                [(room_id, peer, state.roles.get(peer, ms.Role.MEMBER).value, status.value)
                 for peer, status in state.status.items()],
            )

    def roles(self, room_id: bytes) -> dict[str, tuple[str, str]]:
        """peer id -> (role, status), as the last replay left them."""
        return {str(p): (str(r), str(s)) for p, r, s in self._conn.execute(
            "SELECT peer_id, role, status FROM room_roles WHERE room_id = ?", (room_id,))}

    def epoch_keys(self, room_id: bytes) -> dict[bytes, bytes]:
        return {bytes(e): bytes(k) for e, k in self._conn.execute(
            "SELECT epoch_id, key FROM room_epoch_keys WHERE room_id = ?", (room_id,))}

    def add_epoch_key(self, room_id: bytes, epoch_id: bytes, key: bytes) -> bool:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO room_epoch_keys (room_id, epoch_id, key) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", (room_id, epoch_id, key))
        return bool(cur.rowcount)

    def drop_posts(self, room_id: bytes, author_key: bytes, fences: tuple[tuple[int, int], ...]
                   ) -> list[bytes]:
        """Delete the author's content posts numbered inside ``fences``; their ids."""
        gone: list[bytes] = []
        with self._conn:
            for lo, hi in fences:
                hi = min(hi, 2**62)
                rows = self._conn.execute(
                    "DELETE FROM room_posts WHERE room_id = ? AND author_key = ? AND "
                    "author_seq > ? AND author_seq < ? AND kind != ? RETURNING post_id",
                    (room_id, author_key, lo, hi, KIND_MEMBERSHIP)).fetchall()
                gone.extend(bytes(r[0]) for r in rows)
        return gone

    def drop_post(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bool:
        """Delete one content post (an admin deleted it): row, text and index entry."""
        with self._conn:
            cur = self._conn.execute(
                "DELETE FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ? "
                "AND kind != ?", (room_id, author_key, post_id, KIND_MEMBERSHIP))
        return bool(cur.rowcount)

    def add_invite(self, room_id: bytes, invite_key: str, seed: bytes, link: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO room_invites (room_id, invite_key, seed, link, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (room_id, invite_key, seed, link, time.time()))

    def invites(self, room_id: bytes) -> list[tuple[str, str, float]]:
        """(invite key, link, created at) of the invites we made."""
        return [(str(k), str(link), float(t)) for k, link, t in self._conn.execute(
            "SELECT invite_key, link, created_at FROM room_invites WHERE room_id = ? "
            "ORDER BY created_at", (room_id,))]

    def last_seq(self, room_id: bytes, author_key: bytes) -> int:
        """The highest author_seq we hold from an author in a room (0: none)."""
        row = self._conn.execute(
            "SELECT max(author_seq) FROM room_posts WHERE room_id = ? AND author_key = ?",
            (room_id, author_key)).fetchone()
        return int(row[0]) if row and isinstance(row[0], int) else 0

    def post_author(self, room_id: bytes, post_id: bytes) -> str | None:
        row = self._conn.execute(
            "SELECT author FROM room_posts INDEXED BY room_posts_by_id WHERE room_id = ? "
            "AND post_id = ? AND kind != ?",
            (room_id, post_id, KIND_MEMBERSHIP)).fetchone()
        return str(row[0]) if row else None

    def drop_link_key_posts(self, room_id: bytes) -> list[bytes]:
        """Delete content posts sealed with the link key (a governed room has none)."""
        with self._conn:
            rows = self._conn.execute(
                "DELETE FROM room_posts WHERE room_id = ? AND kind NOT IN (?, 2) AND "
                "substr(envelope, 1, 1) = X'01' RETURNING post_id",
                (room_id, KIND_MEMBERSHIP)).fetchall()
        return [bytes(r[0]) for r in rows]

    def rename_room(self, room_id: bytes, name: str, description: str) -> bool:
        """The room's name and description as its settings say (owners and admins set them)."""
        with self._conn:
            cur = self._conn.execute(
                "UPDATE rooms SET name = ?, description = ? WHERE room_id = ? AND "
                "(name != ? OR description != ?)",
                (name, description, room_id, name, description))
        return bool(cur.rowcount)

    def count_entries(self, room_id: bytes) -> int:
        row = self._conn.execute(
            f"SELECT count(*) FROM room_posts WHERE room_id = ? AND kind = {KIND_MEMBERSHIP}",
            (room_id,)).fetchone()  # a literal kind: the partial index of entries
        return int(row[0]) if row else 0

    def member_name(self, peer_id: str) -> str:
        """A peer's name as some room's announces gave it ("" if none)."""
        row = self._conn.execute(
            "SELECT name FROM room_members WHERE peer_id = ? AND name != '' LIMIT 1",
            (peer_id,)).fetchone()
        return str(row[0]) if row else ""
