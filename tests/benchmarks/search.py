"""Search benchmark: full-text queries over 1,000,000 stored messages.

    .venv/bin/python -m tests.benchmarks.search [--messages 1000000] [--queries 50] [--keep DIR]

Builds a temporary profile's ``kith.db`` through the real schema and triggers (direct inserts in
big transactions: 80% direct messages over 40 contacts, 20% posts in 8 rooms), with text from a
fixed, seeded generator (a Zipf-like mix of common words and a large invented vocabulary, so some
words are in most messages and most are rare). Then it runs ``--queries`` typical queries (one to
three words, the last often a partial word, as typed) through ``SearchStore.search`` with the
default page of 50 — the work ``client.search`` does in the network thread — and prints build
time, database and index size, and p50/p95/max query time. Target: every query under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from app.core.identity import Identity
from app.core.records import ContactState
from app.core.room import RoomSecrets
from app.store.contacts import ContactStore
from app.store.db import open_database
from app.store.profile import Profile
from app.store.rooms import RoomStore
from app.store.search import SearchStore

SEED = 20240501
BATCH = 50_000
_COMMON_TEXT = (
    "the a to and of i you it is in that for on be have we this with are not at so do but can "
    "what just was my me will if about all get like no your one up out go know there time they "
    "how when think good see now yes then ok would did more from some could here today tomorrow "
    "thanks meet later call send file photo room chat home work lunch dinner weekend tonight "
    "project meeting plan idea great sure maybe soon back let new still again"
)
COMMON = _COMMON_TEXT.split()
_SYLLABLE_TEXT = "ka lo mi ne ru sa te vi zo ba de fi gu ha jo ku le mo nu pi ra si to wu ya"
SYLLABLES = _SYLLABLE_TEXT.split()


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """Invented words of 2-4 syllables (kalomi, ...), deterministic for a seed."""
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class TextMaker:
    """Messages of 3-25 words: half common words, half a Zipf-like draw from the vocabulary."""

    def __init__(self, rng: random.Random, vocab: list[str]) -> None:
        self.rng = rng
        self.vocab = vocab
        weights = [1 / (rank + 1) for rank in range(len(vocab))]
        total = sum(weights)
        cumulative, acc = [], 0.0
        for w in weights:
            acc += w / total
            cumulative.append(acc)
        self.cumulative = cumulative

    def word(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(COMMON)
        return self.rng.choices(self.vocab, cum_weights=self.cumulative, k=1)[0]

    def text(self) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(3, 25)))


def build(profile_dir: Path, count: int) -> tuple[float, list[str]]:
    """Write ``count`` messages and posts; returns (seconds, the vocabulary used)."""
    rng = random.Random(SEED)
    vocab = vocabulary(rng, 20_000)
    maker = TextMaker(rng, vocab)
    with Profile.open(profile_dir) as profile:
        if not profile.is_initialised:
            profile.initialise("Ada")
        me = profile.identity.peer_id
        conn = open_database(profile.db_path)
        try:
            contacts = [Identity.generate().peer_id for _ in range(40)]
            store = ContactStore(conn)
            for n, peer in enumerate(contacts):
                store.upsert(peer, ContactState.CONTACT, f"Contact {n}")
            rooms = [RoomSecrets.generate() for _ in range(8)]
            for n, room in enumerate(rooms):
                RoomStore(conn).add_room(room, f"Room {n}", "")
            authors = [Identity.generate() for _ in range(20)]
            started = time.perf_counter()
            now_ms = int(time.time() * 1000)
            done = 0
            while done < count:
                size = min(BATCH, count - done)
                dms, posts = [], []
                for i in range(done, done + size):
                    sent_at = now_ms - (count - i) * 30_000
                    if rng.random() < 0.8:
                        outgoing = rng.random() < 0.4
                        dms.append((rng.choice(contacts), os.urandom(16), int(outgoing),
                                    maker.text(), sent_at, time.time(),
                                    "delivered" if outgoing else "received"))
                    else:
                        author = rng.choice(authors)
                        posts.append((rng.choice(rooms).room_id, os.urandom(16),
                                      author.peer_id if rng.random() < 0.9 else me,
                                      author.public_key, i, i, sent_at, 1,
                                      maker.text().encode(), b"", "received"))
                with conn:
                    conn.executemany(
                        "INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, "
                        "stored_at, state, read) VALUES (?, ?, ?, ?, ?, ?, ?, 1)", dms)
                    conn.executemany(
                        "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                        "author_seq, sent_at, kind, body, envelope, state, read) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)", posts)
                done += size
                print(f"\r  {done:,} / {count:,}", end="", flush=True)
            print()
            SearchStore(conn).index_all_pending()  # room posts: what the node does in 2 s
            with conn:  # what a long-running node's automerge would reach over time
                conn.execute("INSERT INTO search_index (search_index) VALUES ('optimize')")
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
    return elapsed, vocab


def queries(vocab: list[str], n: int) -> list[str]:
    """Typical queries: common and rare words, two- and three-word phrases, partial words."""
    rng = random.Random(SEED + 1)
    out = ["the", "meeting", "lunch tom", "send the file", "ph", "tomo", "see you lat",
           "zz", "ka", "photo"]
    while len(out) < n:
        shape = rng.random()
        rare = vocab[rng.randrange(len(vocab))]
        frequent = vocab[rng.randrange(50)]
        common = rng.choice(COMMON)
        if shape < 0.25:
            out.append(rare)
        elif shape < 0.45:
            out.append(rare[: rng.randint(2, max(2, len(rare) - 1))])
        elif shape < 0.65:
            out.append(f"{common} {frequent[: rng.randint(2, len(frequent))]}")
        elif shape < 0.85:
            out.append(f"{frequent} {rare}")
        else:
            out.append(f"{common} {frequent} {rare[:3]}")
    return out[:n]


def size_mib(conn_path: Path) -> tuple[float, float]:
    import sqlite3

    conn = sqlite3.connect(conn_path)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        total = conn.execute("PRAGMA page_count").fetchone()[0] * page
        try:
            index = conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search_%'").fetchone()[0]
        except sqlite3.OperationalError:  # dbstat not compiled in
            index = None
    finally:
        conn.close()
    return total / 2**20, (index or 0) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the profile here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profile_dir = args.keep or Path(tmp) / "profile"
        built = (profile_dir / "kith.db").exists()
        print(f"building {args.messages:,} messages…" if not built else "reusing the profile")
        seconds, vocab = (0.0, vocabulary(random.Random(SEED), 20_000)) if built else build(
            profile_dir, args.messages)
        total_mib, index_mib = size_mib(profile_dir / "kith.db")
        conn = open_database(profile_dir / "kith.db")
        store = SearchStore(conn)
        count = conn.execute("SELECT count(*) FROM search_docs").fetchone()[0]
        timings: list[tuple[float, str, int]] = []
        for query in queries(vocab, args.queries):
            started = time.perf_counter()
            hits = store.search(query, 50, "Ada")
            timings.append(((time.perf_counter() - started) * 1000, query, len(hits)))
        conn.close()
    ms = sorted(t for t, _, _ in timings)
    p95 = ms[min(len(ms) - 1, round(0.95 * len(ms)) - 1)]
    slowest = max(timings)
    rows = [
        ("indexed messages", f"{count:,}"),
        ("build (inserts + triggers + optimize)", f"{seconds:.1f} s" if seconds else "reused"),
        ("database size", f"{total_mib:.0f} MiB"),
        ("search index size", f"{index_mib:.0f} MiB" if index_mib else "n/a (no dbstat)"),
        ("queries", f"{len(ms)} (page of 50, newest first, with snippets)"),
        ("p50", f"{statistics.median(ms):.2f} ms"),
        ("p95", f"{p95:.2f} ms"),
        ("max", f"{slowest[0]:.2f} ms ({slowest[1]!r}, {slowest[2]} hits)"),
        ("target", "< 50 ms: " + ("met" if slowest[0] < 50 else "NOT met")),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print()
    print("slowest queries:")
    for t, query, found in sorted(timings, reverse=True)[:5]:
        print(f"  {t:7.2f} ms  {query!r} ({found} hits)")


if __name__ == "__main__":
    main()
