"""A large profile: what a node does on a long history.

    .venv/bin/python -m tests.benchmarks.large_profile [--messages 200000] [--posts 200000]
        [--runs 5] [--against <revision>]

Each version builds its own profile with its own code (so each opens it at its own schema):
50 contacts sharing ``--messages`` messages, half of them ours, the last 2,500 received ones
unread; 5 rooms sharing ``--posts`` posts of one author, the last 5,000 unread. Each run then
works on a fresh copy of it:

* a receiver's store taking in that author's next post: the validator's look-up and storing
  it, in the version's own ``RoomStore`` (median of 50; what every received post costs);
* ``kith node`` from start to ``ready`` (each room's membership log is read then);
* the ``contacts`` command (the chat list), the first one after ``ready``, while the node
  still does its start-up work;
* ``mark_read`` of the newest received message (what the window asks for each message it
  shows in a focused window: a read receipt), median of 20.

Prints each run, then a table of median (min - max) per version. ``--against`` runs another
revision's ``app`` in alternate runs, as ``tests.benchmarks.rooms``. Nothing leaves
127.0.0.1: the nodes listen on loopback and have no contact online.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.rooms import (
    in_turn,
    load_average,
    print_table,
    spread,
    versions_to_run,
)
from tests.nodeproc import NodeProcess

CONTACTS = 50
ROOMS = 5
UNREAD_MESSAGES = 2500
UNREAD_POSTS = 5000
AUTHOR_SEED = b"\x07" * 32
REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


def build(profile: Path, messages: int, posts: int) -> None:
    """The profile, written by the ``app`` this process imports (the version's own)."""
    from app.core.identity import Identity
    from app.core.room import RoomSecrets
    from app.store.db import open_database
    from app.store.profile import DB_FILE, Profile
    from app.store.rooms import RoomStore
    from app.store.search import SearchStore

    with Profile.open(profile) as opened:
        opened.initialise("Large")
    conn = open_database(profile / DB_FILE)
    peers = [Identity(bytes([i + 1]) * 32).peer_id for i in range(CONTACTS)]
    conn.executemany(
        "INSERT INTO contacts (peer_id, state, their_name, added_at, last_activity) "
        "VALUES (?, 'contact', ?, 0, ?)", [(p, f"Friend {i}", i) for i, p in enumerate(peers)])
    conn.executemany(
        "INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, state, read) "
        "VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        ((peers[i % CONTACTS], os.urandom(16), i % 2, f"message number {i} with some words",
          T0 + i, "delivered" if i % 2 else "received", int(i < messages - 2 * UNREAD_MESSAGES))
         for i in range(messages)))
    rooms = RoomStore(conn)
    secrets = [RoomSecrets.generate() for _ in range(ROOMS)]
    for number, room in enumerate(secrets):
        rooms.add_room(room, f"Room {number}", "")
    author = Identity(AUTHOR_SEED)
    conn.executemany(
        "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, author_seq, "
        "sent_at, kind, body, envelope, state, read) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, x'00', "
        "'received', ?)",
        ((secrets[i % ROOMS].room_id, os.urandom(16), author.peer_id, author.public_key, i + 1,
          i // ROOMS + 1, T0 + i, f"post number {i}".encode(), int(i < posts - UNREAD_POSTS))
         for i in range(posts)))
    conn.commit()
    search = SearchStore(conn)
    while search.has_pending():
        search.index_pending(5000)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def store_probe(profile: Path, takes: int) -> float:
    """Median µs for the version's store to look up and store the author's next post in the
    first room (a fresh post each time, as gossip brings them)."""
    from app.core import room as rc
    from app.core.identity import Identity
    from app.store.db import open_database
    from app.store.profile import DB_FILE
    from app.store.rooms import RoomStore

    conn = open_database(profile / DB_FILE)
    rooms = RoomStore(conn)
    room_id, key = conn.execute("SELECT room_id, key FROM rooms ORDER BY rowid LIMIT 1").fetchone()
    secrets = rc.RoomSecrets(bytes(room_id), bytes(key))
    author = Identity(AUTHOR_SEED)
    last = conn.execute("SELECT max(author_seq), max(lamport) FROM room_posts WHERE room_id = ?",
                        (room_id,)).fetchone()
    times = []
    for step in range(1, takes + 1):
        data = rc.encode_text_post(author, secrets, f"fresh {step}", lamport=last[1] + step,
                                   author_seq=last[0] + step, sent_at_ms=T0 + 10**9 + step)
        post = rc.decode_post(secrets, data)
        started = time.perf_counter()
        rooms.held_versions(post)
        rooms.store_post(post, data, "received", read=False)
        times.append((time.perf_counter() - started) * 1e6)
    conn.close()
    return statistics.median(times)


def in_version(source: Path | None, *args: str) -> str:
    """Run this module with ``args`` on the version's ``app`` (its directory comes first)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.large_profile", *args],
                          cwd=source or REPO, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


def newest_received(profile: Path) -> str:
    conn = sqlite3.connect(profile / "kith.db")
    try:
        row = conn.execute("SELECT hex(msg_id) FROM messages WHERE outgoing = 0 "
                           "ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return str(row[0]).lower()


def run_once(source: Path | None, built: Path, tmp: Path) -> dict[str, float]:
    work = tmp / "run"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(built, work)
    result = {"store": float(in_version(source, "--probe", str(work)))}
    message_id = newest_received(work)
    started = time.monotonic()
    node = NodeProcess(work, name="Large", source=source)
    try:
        node.expect("ready", timeout=300)
        result["ready"] = time.monotonic() - started
        started = time.monotonic()
        node.request({"cmd": "contacts"}, "contacts", timeout=120)
        result["contacts"] = 1000 * (time.monotonic() - started)
        receipts = []
        for _ in range(20):
            started = time.monotonic()
            node.request({"cmd": "mark_read", "message_id": message_id}, "marked_read",
                         timeout=120)
            receipts.append(1000 * (time.monotonic() - started))
        result["mark_read"] = statistics.median(receipts)
    finally:
        node.quit(timeout=120)
    return result


MEASURES = [
    ("store", "a received post looked up and stored", "µs"),
    ("ready", "start to ready", "s"),
    ("contacts", "first `contacts` command", "ms"),
    ("mark_read", "`mark_read` of a shown message, median of 20", "ms"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per version (5)")
    parser.add_argument("--against", help="a git revision (or a directory holding an app "
                        "package) to compare with, runs alternating")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        build(args.build, args.messages, args.posts)
        return
    if args.probe is not None:
        print(store_probe(args.probe, 50))
        return
    print(f"{args.messages} messages, {args.posts} posts, {args.runs} run(s); "
          f"load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = versions_to_run(args.against, Path(tmp))
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in versions}
        built: dict[str, Path] = {}
        for number, (name, source) in enumerate(versions):
            built[name] = Path(tmp) / f"built-{number}"
            in_version(source, "--build", str(built[name]), "--messages", str(args.messages),
                       "--posts", str(args.posts))
        for run in range(args.runs):
            for name, source in in_turn(versions, run):
                r = run_once(source, built[name], Path(tmp))
                results[name].append(r)
                print(f"  run {run + 1} {name:<12} " + json.dumps(
                    {k: round(v, 3) for k, v in r.items()}), flush=True)
    rows: list[tuple[str, ...]] = [("measure", *(name for name, _ in versions))]
    for key, label, unit in MEASURES:
        rows.append((label, *(spread([r[key] for r in results[name]]).strip() + " " + unit
                              for name, _ in versions)))
    print_table(rows)
    print(f"load average now {load_average()}")


if __name__ == "__main__":
    main()
