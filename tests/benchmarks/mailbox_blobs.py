"""Where a mailbox keeps file blobs: SQLite rows (what Kith does) against a file per blob.

    .venv/bin/python -m tests.benchmarks.mailbox_blobs [--mib 50] [--runs 3] [--dir /tmp]

Both keep what a restart needs: the SQLite way stores each sealed piece as a row and counts its
bytes in the same transaction; Kith's way (``MailboxStore``) writes the piece at its offset in
the blob's file and syncs it, then records it as held in SQLite (one small commit). Both use
the profile database's settings (WAL, synchronous=NORMAL). Prints the medians: putting every
piece, reading every piece, and deleting the blob, in MB/s or ms, and the database file's size
once the blob is gone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app.core import blob as bl
from app.store.db import open_database
from app.store.mailbox import MailboxStore, read_piece, write_piece

USER, SENDER = "user", "sender"


def _sqlite(folder: Path, pieces: list[bytes]) -> tuple[float, float, float, int]:
    """The alternative: each piece a row of the profile database, counted in one commit."""
    conn = open_database(folder / "kith.db")
    conn.execute("CREATE TABLE pieces (blob BLOB, idx INTEGER, data BLOB, "
                 "PRIMARY KEY (blob, idx))")
    conn.execute("CREATE TABLE blobs (blob BLOB PRIMARY KEY, stored INTEGER)")
    blob = os.urandom(16)
    conn.execute("INSERT INTO blobs VALUES (?, 0)", (blob,))
    conn.commit()
    start = time.perf_counter()
    for index, piece in enumerate(pieces):
        with conn:
            conn.execute("INSERT INTO pieces VALUES (?, ?, ?)", (blob, index, piece))
            conn.execute("UPDATE blobs SET stored = stored + ? WHERE blob = ?",
                         (len(piece), blob))
    put = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(len(pieces)):
        assert conn.execute("SELECT data FROM pieces WHERE blob = ? AND idx = ?",
                            (blob, index)).fetchone() is not None
    get = time.perf_counter() - start
    start = time.perf_counter()
    with conn:
        conn.execute("DELETE FROM pieces WHERE blob = ?", (blob,))
    delete = time.perf_counter() - start
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (folder / "kith.db").stat().st_size
    conn.close()
    return put, get, delete, size


def _files(folder: Path, pieces: list[bytes]) -> tuple[float, float, float, int]:
    """What Kith does (``MailboxStore``): a file per blob, each piece synced, then recorded."""
    conn = open_database(folder / "kith.db")
    conn.execute("INSERT INTO mailbox_users VALUES (?, 0, 0)", (USER,))
    conn.commit()
    store = MailboxStore(conn, folder / "mailbox-blobs")
    blob = os.urandom(16)
    start = time.perf_counter()
    held = store.open_blob(USER, SENDER, blob, sum(map(len, pieces)), len(pieces))
    for index, piece in enumerate(pieces):
        write_piece(store.blob_path(held.row), index * bl.MAX_PIECE, piece)
        assert store.record_piece(held, index, len(piece))
    put = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(len(pieces)):
        where = store.piece_at(USER, blob, index)
        assert where is not None and read_piece(*where) is not None
    get = time.perf_counter() - start
    start = time.perf_counter()
    store.delete_blob(USER, blob)
    delete = time.perf_counter() - start
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (folder / "kith.db").stat().st_size
    conn.close()
    return put, get, delete, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    pieces = [os.urandom(bl.MAX_PIECE) for _ in range(args.mib)]
    total = sum(map(len, pieces))
    ways: dict[str, Callable[[Path, list[bytes]], tuple[float, float, float, int]]] = {
        "SQLite rows": _sqlite, "a file per blob (Kith)": _files}
    print(f"{args.mib} pieces of {bl.MAX_PIECE} bytes, median of {args.runs} runs, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"| {'how':24} | put MB/s | get MB/s | delete ms | db after delete |")
    print(f"|{'-' * 26}|----------|----------|-----------|-----------------|")
    for name, way in ways.items():
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                runs.append(way(Path(tmp), pieces))
        put, get, delete, size = (statistics.median(r[i] for r in runs) for i in range(4))
        print(f"| {name:24} | {total / put / 1e6:8.0f} | {total / get / 1e6:8.0f} "
              f"| {delete * 1000:9.1f} | {int(size):15,} |")


if __name__ == "__main__":
    main()
