"""Mailboxes in SQLite: the mail a serving Kith holds for its users, which outgoing messages a
mailbox holds for their recipient, and each contact's newest signed mailbox record."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class HeldItem:
    id: int
    sender: str
    deposited_at_ms: int
    payload: bytes


class MailboxStore:
    """What a serving mailbox keeps: its users, their block lists, their held mail."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- users ---------------------------------------------------------------------------------

    def register(self, peer_id: str, blocked: Iterable[str]) -> None:
        """Register ``peer_id`` (or renew it) and replace its block list."""
        now = time.time()
        with self._conn:
            self._conn.execute(
                "INSERT INTO mailbox_users (peer_id, registered_at, renewed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET renewed_at = excluded.renewed_at",
                (peer_id, now, now))
            self._conn.execute("DELETE FROM mailbox_blocked WHERE user = ?", (peer_id,))
            self._conn.executemany(
                "INSERT OR IGNORE INTO mailbox_blocked (user, sender) VALUES (?, ?)",
                [(peer_id, s) for s in blocked])

    def is_user(self, peer_id: str) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM mailbox_users WHERE peer_id = ?", (peer_id,)).fetchone() is not None

    def users(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT peer_id FROM mailbox_users")]

    def drop_user(self, peer_id: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM mailbox_users WHERE peer_id = ?", (peer_id,))

    def blocks(self, user: str, sender: str) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM mailbox_blocked WHERE user = ? AND sender = ?", (user, sender)
        ).fetchone() is not None

    # -- held mail -----------------------------------------------------------------------------

    def usage(self, recipient: str, sender: str | None = None) -> tuple[int, int]:
        """(items, bytes) held for ``recipient`` (from ``sender`` only, if given)."""
        if sender is None:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM mailbox_items WHERE recipient = ?",
                (recipient,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM mailbox_items "
                "WHERE recipient = ? AND sender = ?", (recipient, sender)).fetchone()
        return int(row[0]), int(row[1])

    def total(self) -> tuple[int, int]:
        """(items, bytes) held for everyone."""
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM mailbox_items").fetchone()
        return int(row[0]), int(row[1])

    def hold(self, recipient: str, sender: str, payload: bytes) -> int:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO mailbox_items (recipient, sender, deposited_at, size, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                (recipient, sender, int(time.time() * 1000), len(payload), payload))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def items(self, recipient: str, after: int, limit: int) -> list[HeldItem]:
        rows = self._conn.execute(
            "SELECT id, sender, deposited_at, payload FROM mailbox_items "
            "WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?", (recipient, after, limit))
        return [HeldItem(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def delete(self, recipient: str, ids: Iterable[int]) -> int:
        """Delete the user's own items among ``ids``; how many went."""
        with self._conn:
            cur = self._conn.executemany(
                "DELETE FROM mailbox_items WHERE recipient = ? AND id = ?",
                [(recipient, i) for i in ids])
        return cur.rowcount

    def expire(self, older_than_ms: int) -> int:
        """Delete everything deposited before ``older_than_ms``, oldest first; how many."""
        with self._conn:
            cur = self._conn.execute(
                "DELETE FROM mailbox_items WHERE deposited_at < ?", (older_than_ms,))
        return cur.rowcount

    def expire_users(self, renewed_before: float) -> int:
        """Users who stopped renewing their registration go, with their mail."""
        with self._conn:
            cur = self._conn.execute(
                "DELETE FROM mailbox_users WHERE renewed_at < ?", (renewed_before,))
        return cur.rowcount


class HeldMessages:
    """Which of our outgoing messages a mailbox holds for their recipient (until the
    recipient acknowledges them: then the message leaves the outbox and this row means
    nothing more)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def held_by(self, seq: int) -> str | None:
        row = self._conn.execute(
            "SELECT mailbox FROM mailbox_held WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def mark(self, seq: int, mailbox: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO mailbox_held (seq, mailbox, held_at) VALUES (?, ?, ?) "
                "ON CONFLICT (seq) DO UPDATE SET mailbox = excluded.mailbox, "
                "held_at = excluded.held_at", (seq, mailbox, time.time()))

    def unmark_all(self, peer_id: str) -> None:
        """The recipient changed mailboxes: what the old ones hold is deposited again."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM mailbox_held WHERE seq IN "
                "(SELECT seq FROM messages WHERE peer_id = ? AND outgoing = 1)", (peer_id,))


class MailboxRecords:
    """Each contact's newest signed mailbox record (the raw bytes, verified before storing)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, peer_id: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT record FROM mailbox_records WHERE peer_id = ?", (peer_id,)).fetchone()
        return bytes(row[0]) if row else None

    def put(self, peer_id: str, seq: int, record: bytes) -> bool:
        """Keep ``record`` if it is newer than the one held; True if it was."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO mailbox_records (peer_id, seq, record) VALUES (?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET seq = excluded.seq, record = excluded.record "
                "WHERE excluded.seq > mailbox_records.seq", (peer_id, seq, record))
        return cur.rowcount > 0
