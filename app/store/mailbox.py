"""Mailboxes in SQLite: the mail and file blobs a serving Kith holds for its users, which
outgoing messages a mailbox holds for their recipient, each contact's newest signed mailbox
record, and which mailbox blob holds the bytes of a direct file transfer.

A blob's pieces live in a file of their own in the profile folder (``mailbox-blobs/<row>.blob``,
piece ``i`` at offset ``i * MAX_PIECE``), each recorded in SQLite only once it is written and
synced, so a restart or a crash never leaves a piece counted and missing. Not SQLite rows: they
were two to three times slower to write and five times slower to read and delete
(tests/benchmarks/mailbox_blobs.py), and would have grown the profile database, and every
backup of it, to the largest amount ever held. A file whose blob
row went (deleted, expired, its user gone: SQL cascades) is removed by ``remove_orphans``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.core.blob import MAX_PIECE


@dataclass(frozen=True)
class HeldBlob:
    """A blob a sender declared for a user: ``size`` bytes in ``pieces`` pieces, ``stored``
    bytes of them received so far."""

    row: int
    sender: str
    size: int
    pieces: int
    stored: int


class _TooMuch(Exception):
    """A piece that would pass its blob's declared size: its record is rolled back."""


def write_piece(path: Path, offset: int, data: bytes) -> None:
    """Write a piece into its blob's file and sync it (a worker thread: before it is
    recorded, so a piece counted as held is on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_piece(path: Path, offset: int, size: int) -> bytes | None:
    """A piece as written (a worker thread); None if the file lost it."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError:
        return None
    return data if len(data) == size else None


@dataclass(frozen=True)
class HeldItem:
    id: int
    sender: str
    deposited_at_ms: int
    payload: bytes


class MailboxStore:
    """What a serving mailbox keeps: its users, their block lists, their held mail."""

    def __init__(self, conn: sqlite3.Connection, blob_dir: Path) -> None:
        self._conn = conn
        self.blob_dir = blob_dir

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
        """(items, bytes) held for everyone; bytes count blobs at their declared size."""
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM mailbox_items").fetchone()
        return int(row[0]), int(row[1]) + self.blob_usage()[1]

    # -- blobs ---------------------------------------------------------------------------------

    def blob_usage(self, recipient: str | None = None, sender: str | None = None
                   ) -> tuple[int, int]:
        """(blobs, declared bytes) held, for ``recipient`` (from ``sender``) if given."""
        where, args = "", tuple[str, ...]()
        if recipient is not None and sender is not None:
            where, args = " WHERE recipient = ? AND sender = ?", (recipient, sender)
        elif recipient is not None:
            where, args = " WHERE recipient = ?", (recipient,)
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM mailbox_blobs" + where, args
        ).fetchone()
        return int(row[0]), int(row[1])

    def blob(self, recipient: str, blob: bytes) -> HeldBlob | None:
        row = self._conn.execute(
            "SELECT id, sender, size, pieces, stored FROM mailbox_blobs "
            "WHERE recipient = ? AND blob = ?", (recipient, blob)).fetchone()
        return HeldBlob(*row) if row else None

    def open_blob(self, recipient: str, sender: str, blob: bytes, size: int, pieces: int
                  ) -> HeldBlob:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO mailbox_blobs (recipient, sender, blob, size, pieces, opened_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (recipient, sender, blob, size, pieces, int(time.time() * 1000)))
        assert cur.lastrowid is not None
        return HeldBlob(cur.lastrowid, sender, size, pieces, 0)

    def held_pieces(self, held: HeldBlob) -> bytes:
        """A bitmap of the pieces held (bit ``i % 8`` of byte ``i // 8``)."""
        bitmap = bytearray((held.pieces + 7) // 8)
        for (index,) in self._conn.execute(
                "SELECT idx FROM mailbox_blob_pieces WHERE blob_row = ?", (held.row,)):
            bitmap[index >> 3] |= 1 << (index & 7)
        return bytes(bitmap)

    def blob_path(self, row: int) -> Path:
        return self.blob_dir / f"{row}.blob"

    def has_piece(self, held: HeldBlob, index: int) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM mailbox_blob_pieces WHERE blob_row = ? AND idx = ?",
            (held.row, index)).fetchone() is not None

    def record_piece(self, held: HeldBlob, index: int, size: int) -> bool:
        """Count a piece written to the blob's file (``write_piece``); False if it was held
        already, would pass the declared size, or the blob is gone meanwhile."""
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO mailbox_blob_pieces (blob_row, idx, size) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING", (held.row, index, size))
                if not cur.rowcount:
                    return False
                cur = self._conn.execute(
                    "UPDATE mailbox_blobs SET stored = stored + ? "
                    "WHERE id = ? AND stored + ? <= size", (size, held.row, size))
                if not cur.rowcount:
                    raise _TooMuch
        except (_TooMuch, sqlite3.IntegrityError):
            return False
        return True

    def piece_at(self, recipient: str, blob: bytes, index: int) -> tuple[Path, int, int] | None:
        """Where the user's piece is: (file, offset, size); None if it is not held."""
        row = self._conn.execute(
            "SELECT b.id, p.size FROM mailbox_blob_pieces p "
            "JOIN mailbox_blobs b ON b.id = p.blob_row "
            "WHERE b.recipient = ? AND b.blob = ? AND p.idx = ?",
            (recipient, blob, index)).fetchone()
        return (self.blob_path(row[0]), index * MAX_PIECE, row[1]) if row else None

    def delete_blob(self, recipient: str, blob: bytes) -> bool:
        held = self.blob(recipient, blob)
        if held is None:
            return False
        with self._conn:
            self._conn.execute("DELETE FROM mailbox_blobs WHERE id = ?", (held.row,))
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(held.row).unlink()
        return True

    def remove_orphans(self) -> int:
        """Delete blob files whose blob is gone; how many."""
        rows = {r[0] for r in self._conn.execute("SELECT id FROM mailbox_blobs")}
        removed = 0
        for path in self.blob_dir.glob("*.blob") if self.blob_dir.is_dir() else []:
            if not path.stem.isdigit() or int(path.stem) not in rows:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
        return removed

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
        """Delete everything deposited (or blobs opened) before ``older_than_ms``, oldest
        first; how many."""
        with self._conn:
            cur = self._conn.execute(
                "DELETE FROM mailbox_items WHERE deposited_at < ?", (older_than_ms,))
            blobs = self._conn.execute(
                "DELETE FROM mailbox_blobs WHERE opened_at < ?", (older_than_ms,))
        return cur.rowcount + blobs.rowcount

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


@dataclass(frozen=True)
class TransferBlob:
    """The mailbox blob of a direct transfer, on the sender's side or the receiver's."""

    mailbox: str
    blob: bytes
    key: bytes
    state: str


class TransferBlobs:
    """Which mailbox blob holds the bytes of a direct transfer (``transfer_blobs``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, transfer_id: bytes, mailbox: str, blob: bytes, key: bytes, state: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO transfer_blobs (transfer_id, mailbox, blob, key, state) "
                "VALUES (?, ?, ?, ?, ?)", (transfer_id, mailbox, blob, key, state))

    def get(self, transfer_id: bytes) -> TransferBlob | None:
        row = self._conn.execute(
            "SELECT mailbox, blob, key, state FROM transfer_blobs WHERE transfer_id = ?",
            (transfer_id,)).fetchone()
        return TransferBlob(row[0], bytes(row[1]), bytes(row[2]), row[3]) if row else None

    def in_state(self, state: str) -> list[bytes]:
        return [bytes(r[0]) for r in self._conn.execute(
            "SELECT transfer_id FROM transfer_blobs WHERE state = ?", (state,))]

    def set_state(self, transfer_id: bytes, state: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE transfer_blobs SET state = ? WHERE transfer_id = ?",
                               (state, transfer_id))
