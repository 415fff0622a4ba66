"""File transfers in SQLite: offers we made, offers we got, and which chunks are verified.

A transfer's ``state`` column holds a ``TransferState`` value; it changes only by the steps of
``app.core.transfer_state.TRANSITIONS`` (``move``), checked in the statement that makes them.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from app.core.files import FileOffer
from app.core.transfer_state import Step, TransferState, sources, target


@dataclass
class StoredTransfer:
    offer: FileOffer
    outgoing: bool
    peer_id: str
    room_id: bytes | None
    state: TransferState
    reason: str | None
    path: str | None
    dir: str | None
    part_path: str | None
    src_size: int | None
    src_mtime: int | None
    hashes: bytes | None
    verified: bytearray
    done_bytes: int

    @property
    def id_hex(self) -> str:
        return self.offer.transfer.hex()


_COLUMNS = (
    "transfer_id, name, size, chunk_size, hash, mime, outgoing, peer_id, room_id, state, "
    "reason, path, dir, part_path, src_size, src_mtime, hashes, verified, done_bytes"
)


def _row(row: tuple) -> StoredTransfer:
    (tid, name, size, chunk, hsh, mime, outgoing, peer_id, room_id, state, reason, path,
     folder, part, src_size, src_mtime, hashes, verified, done) = row
    offer = FileOffer(bytes(tid), name, size, chunk, bytes(hsh), mime)
    return StoredTransfer(
        offer, bool(outgoing), peer_id, bytes(room_id) if room_id is not None else None,
        TransferState(state),
        reason, path, folder, part, src_size, src_mtime,
        bytes(hashes) if hashes is not None else None,
        bytearray(verified) if verified is not None else bytearray((offer.chunks + 7) // 8),
        done,
    )


class TransferStore:
    """All reads and writes of ``transfers``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, offer: FileOffer, *, outgoing: bool, peer_id: str, room_id: bytes | None,
            path: str | None = None, src_size: int | None = None,
            src_mtime: int | None = None, hashes: bytes | None = None) -> bool:
        """Record an offer (made or received); False if its id is already known (a replayed
        offer)."""
        now = time.time()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO transfers (transfer_id, outgoing, peer_id, room_id, name, size, "
                "chunk_size, hash, mime, state, path, src_size, src_mtime, hashes, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (offer.transfer, int(outgoing), peer_id, room_id, offer.name, offer.size,
                 offer.chunk_size, offer.hash, offer.mime, TransferState.OFFERED.value, path,
                 src_size,
                 src_mtime, hashes, now, now),
            )
        return bool(cur.rowcount)

    def get(self, transfer_id: bytes) -> StoredTransfer | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE transfer_id = ?", (transfer_id,)
        ).fetchone()
        return _row(row) if row else None

    def all(self) -> list[StoredTransfer]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM transfers ORDER BY created_at")
        return [_row(r) for r in rows]

    def in_state(self, state: TransferState, outgoing: bool) -> list[StoredTransfer]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM transfers WHERE state = ? AND outgoing = ? "
            "ORDER BY created_at", (state.value, int(outgoing)),
        )
        return [_row(r) for r in rows]

    def pending_offers(self, peer_id: str) -> int:
        """Direct file offers from ``peer_id`` still waiting for our answer."""
        row = self._conn.execute(
            "SELECT count(*) FROM transfers WHERE state = ? AND outgoing = 0 "
            "AND peer_id = ? AND room_id IS NULL", (TransferState.OFFERED.value, peer_id),
        )
        return int(row.fetchone()[0])

    def move(self, transfer_id: bytes, step: Step, *, outgoing: bool,
             reason: str | None = None) -> bool:
        """Take ``step`` if the transfer is in a state it may be taken from
        (``transfer_state.TRANSITIONS``); False if it is not (or there is no such transfer)."""
        froms = sorted(s.value for s in sources(step, outgoing))
        if not froms:
            return False
        with self._conn:
            return bool(self._conn.execute(
                "UPDATE transfers SET state = ?, reason = ?, updated_at = ? WHERE transfer_id = ? "
                f"AND outgoing = ? AND state IN ({','.join('?' * len(froms))})",
                [target(step, outgoing).value, reason, time.time(), transfer_id, int(outgoing),
                 *froms],
            ).rowcount)

    def start_receiving(self, transfer_id: bytes, folder: str, part_path: str) -> None:
        """Accepted (or retried, or restarted where it was): fetch into ``part_path``."""
        with self._conn:
            self._conn.execute(
                "UPDATE transfers SET state = ?, reason = NULL, dir = ?, part_path = ?, "
                "updated_at = ? WHERE transfer_id = ?",
                (TransferState.RECEIVING.value, folder, part_path, time.time(), transfer_id),
            )

    def set_hashes(self, transfer_id: bytes, hashes: bytes) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE transfers SET hashes = ? WHERE transfer_id = ?", (hashes, transfer_id)
            )

    def save_progress(self, transfer_id: bytes, verified: bytes, done_bytes: int) -> None:
        """One commit for a batch of verified chunks (the data is already written)."""
        with self._conn:
            self._conn.execute(
                "UPDATE transfers SET verified = ?, done_bytes = ?, updated_at = ? "
                "WHERE transfer_id = ?", (verified, done_bytes, time.time(), transfer_id),
            )

    def set_final_path(self, transfer_id: bytes, path: str) -> None:
        """Incoming: the name the finished file is about to get (found by it after a crash)."""
        with self._conn:
            self._conn.execute(
                "UPDATE transfers SET path = ?, updated_at = ? WHERE transfer_id = ?",
                (path, time.time(), transfer_id),
            )

    def complete(self, transfer_id: bytes, path: str) -> None:
        """A download is verified and has its final name ``path``."""
        with self._conn:
            self._conn.execute(
                "UPDATE transfers SET state = ?, path = ?, reason = NULL, "
                "part_path = NULL, updated_at = ? WHERE transfer_id = ?",
                (TransferState.COMPLETE.value, path, time.time(), transfer_id),
            )
