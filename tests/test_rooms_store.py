"""The room store on real SQLite files: repairing a profile a hostile post already damaged,
reading past damaged rows, one transaction per own post, the equivocation rule, announces that
only move forward, and choosing sync pages past holes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core import room as rc
from app.core.identity import Identity
from app.core.seq_ranges import HeldRanges
from app.store.actions import ActionStore
from app.store.db import MIGRATIONS, SCHEMA_VERSION, open_database
from app.store.room_rows import Announced, Intake
from app.store.rooms import RoomStore

ADA = Identity(b"\x0a" * 32)
MALLORY = Identity(b"\x0c" * 32)
T = 1_767_225_600_000
# This branch's migration, found by what it does (other branches append migrations too).
ROOM_REPAIR = next(i for i, m in enumerate(MIGRATIONS) if "room_conflicts" in m)


def envelope(secrets: rc.RoomSecrets, seq: int, *, author: Identity = ADA, lamport: int = 0,
             text: str | None = None, post_id: bytes | None = None, size: int = 0) -> bytes:
    body = text if text is not None else f"post {seq}" + "x" * size
    return rc.encode_text_post(author, secrets, body, lamport=lamport or seq, author_seq=seq,
                               sent_at_ms=T + seq, post_id=post_id)


def store(rooms: RoomStore, secrets: rc.RoomSecrets, data: bytes) -> Intake:
    post = rc.decode_post(secrets, data)
    return rooms.store_post(post, data, "received", read=False).intake


def new_room(rooms: RoomStore) -> rc.RoomSecrets:
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")
    return secrets


# ---- a profile already hit by a hostile post ------------------------------------------------


def test_migration_repairs_a_profile_a_hostile_post_damaged(tmp_path: Path) -> None:
    path = tmp_path / "kith.db"
    # The schema from before the repair, with rows as that version stored them.
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (0)")
    for script in MIGRATIONS[:ROOM_REPAIR]:
        conn.executescript("BEGIN;" + script + ";COMMIT;")
    secrets = new_room(RoomStore(conn))
    for seq in (1, 2, 3):
        data = envelope(secrets, seq)
        post = rc.decode_post(secrets, data)
        conn.execute(
            "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, author_seq, "
            "sent_at, kind, body, envelope, state) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, "
            "'received')", (secrets.room_id, post.post_id, post.author, post.author_key,
                            post.lamport, post.author_seq, post.sent_at_ms, post.body, data))
    # What the attack left: a post at lamport 2^63 - 1 (it fit), the room clock pushed past
    # i64 by "lamport + 1" and stored as REAL, and the schema from before the repair.
    hostile = rc.seal_inner(secrets, rc.encode_inner(
        MALLORY, secrets.room_id, b"boom", kind=rc.KIND_TEXT, post_id=b"\x01" * 16,
        lamport=2**63 - 1, author_seq=2**62, sent_at_ms=2**63 - 1))
    conn.execute(
        "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, author_seq, "
        "sent_at, kind, body, envelope, state) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 'received')",
        (secrets.room_id, b"\x01" * 16, MALLORY.peer_id, MALLORY.public_key, 2**63 - 1, 2**62,
         2**63 - 1, b"boom", hostile),
    )
    conn.execute("UPDATE rooms SET lamport = 9.223372036854776e18, my_seq = 1e300")
    conn.execute("UPDATE schema_version SET version = ?", (ROOM_REPAIR,))
    conn.commit()
    conn.close()

    conn = open_database(path)  # the repair runs here
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT typeof(lamport), lamport, my_seq FROM rooms").fetchone() == (
            "integer", 3, 3)
        assert [r[0] for r in conn.execute("SELECT author_seq FROM room_posts")] == [1, 2, 3]
        post = post_own(RoomStore(conn), secrets)
        assert (post.lamport, post.author_seq) == (4, 4)
    finally:
        conn.close()


def _own(secrets: rc.RoomSecrets, lamport: int, seq: int) -> tuple[rc.RoomPost, bytes]:
    data = rc.encode_text_post(ADA, secrets, "mine", lamport=lamport, author_seq=seq,
                               sent_at_ms=T)
    return rc.decode_post(secrets, data), data


def post_own(rooms: RoomStore, secrets: rc.RoomSecrets) -> rc.RoomPost:
    """Ada's next post, numbered and stored as the node does."""
    post, _ = rooms.store_own_post(secrets.room_id, ADA.public_key,
                                   lambda lamport, seq: _own(secrets, lamport, seq), "pending")
    return post


def test_migration_numbers_are_the_codec_bounds() -> None:
    repair = MIGRATIONS[ROOM_REPAIR]
    for bound in (rc.MAX_LAMPORT, rc.MAX_AUTHOR_SEQ, rc.MAX_SENT_AT_MS):
        assert str(bound) in repair


def test_damaged_rows_are_skipped_not_fatal(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    good = new_room(rooms)
    store(rooms, good, envelope(good, 1))
    db.execute("INSERT INTO rooms (room_id, key, name, joined_at, last_activity, lamport) "
               "VALUES (?, ?, 'Broken', 0, 0, 5.5e30)", (b"\x05" * 16, b"short"))
    db.execute("INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
               "author_seq, sent_at, kind, body, envelope, state) "
               "VALUES (?, ?, 'x', ?, 1, 2, 3, 1, 'text, not blob', x'00', 'received')",
               (good.room_id, b"\x02" * 16, b"\x03" * 32))
    db.execute("INSERT INTO room_members (room_id, peer_id, name, addrs) VALUES (?, ?, ?, ?)",
               (good.room_id, "someone", "Someone", "{not json"))
    db.execute("UPDATE rooms SET lamport = 9.3e18 WHERE room_id = ?", (good.room_id,))
    db.commit()
    assert [r.name for r in rooms.rooms()] == ["Room"]
    assert rooms.room(b"\x05" * 16) is None
    assert rooms.room(good.room_id).lamport == rc.MAX_LAMPORT  # type: ignore[union-attr]
    assert [p.author_seq for p in rooms.history(good.room_id, None, 10)] == [1]
    assert [(m.name, m.addrs) for m in rooms.members(good.room_id)] == [("Someone", ())]


# ---- our own posts --------------------------------------------------------------------------


def test_own_post_numbers_and_post_commit_together(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    post_own(rooms, secrets)
    # The disk fails (or the process dies) while the post is written.
    db.execute("CREATE TEMP TRIGGER fault BEFORE INSERT ON room_posts "
               "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END")
    with pytest.raises(sqlite3.IntegrityError):
        post_own(rooms, secrets)
    db.execute("DROP TRIGGER fault")
    post = post_own(rooms, secrets)
    assert post.author_seq == 2  # the failed post spent no number
    assert rooms.held_ranges(secrets.room_id) == {ADA.public_key: [(1, 2)]}


def test_own_posts_coming_back_move_the_counter_past_them(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    old = rc.decode_post(secrets, envelope(secrets, 7))  # e.g. after restoring an old backup
    rooms.store_post(old, envelope(secrets, 7), "confirmed", read=True, own=True)
    post = post_own(rooms, secrets)
    assert post.author_seq == 8 and post.lamport == 8


def test_a_counter_behind_our_own_held_posts_never_reuses_their_numbers(
    db: sqlite3.Connection
) -> None:
    """A profile where our posts came back by sync before the counter learnt from them."""
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    for seq in (1, 2, 3):
        store(rooms, secrets, envelope(secrets, seq))  # stored as anyone's: counter still 0
    assert rooms.room(secrets.room_id).my_seq == 0  # type: ignore[union-attr]
    assert post_own(rooms, secrets).author_seq == 4
    assert len(rooms.history(secrets.room_id, None, 10)) == 4


def test_the_room_clock_read_once_follows_what_is_stored(db: sqlite3.Connection) -> None:
    """The store keeps a room's clock after reading it once: posts stored, ours built, a
    rolled-back store and leaving the room must all be reflected as a read would."""
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    room_id = secrets.room_id
    assert rooms.lamport(room_id) == 0
    store(rooms, secrets, envelope(secrets, 1, lamport=40))
    assert rooms.lamport(room_id) == 40
    store(rooms, secrets, envelope(secrets, 2, lamport=30))  # behind: the clock stays
    assert rooms.lamport(room_id) == 40
    assert post_own(rooms, secrets).lamport == 41 and rooms.lamport(room_id) == 41
    # Numbered after our own post (3), so it reaches the insert, which a trigger refuses.
    data = envelope(secrets, 4, lamport=90)
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON room_posts BEGIN "
               "SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError):
        rooms.store_post(rc.decode_post(secrets, data), data, "received", read=False)
    db.execute("DROP TRIGGER refuse")
    assert rooms.lamport(room_id) == 41 == RoomStore(db).lamport(room_id)
    rooms.remove_room(room_id)
    assert rooms.lamport(room_id) is None


def test_storing_a_post_says_whether_its_authors_previous_one_is_held(
    db: sqlite3.Connection
) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)

    def gap(seq: int, **kw: object) -> bool:
        data = envelope(secrets, seq, author=MALLORY, **kw)  # type: ignore[arg-type]
        result = rooms.store_post(rc.decode_post(secrets, data), data, "received", read=False)
        assert result.stored
        return result.gap_before

    assert gap(1) is False  # the first has no predecessor
    assert gap(3) is True
    assert gap(2) is False
    assert gap(4) is False
    assert gap(9, post_id=b"\x33" * 16) is True
    other = envelope(secrets, 8, author=ADA)  # another author's 8 is not MALLORY's
    assert store(rooms, secrets, other) is Intake.NEW
    assert gap(10) is False and gap(12) is True


def test_a_post_deleted_for_everyone_is_never_taken_again(db: sqlite3.Connection) -> None:
    """One query looks for a post's rivals and its tombstone: a deleted post offered again
    (by sync, or a member who missed the deletion) is a duplicate, and so is a rival with
    its post id; its neighbours by number, and the same id from another author, are not."""
    rooms, actions = RoomStore(db), ActionStore(db)
    secrets = new_room(rooms)
    doomed = envelope(secrets, 2, post_id=b"\x44" * 16)
    assert store(rooms, secrets, envelope(secrets, 1)) is Intake.NEW
    assert store(rooms, secrets, doomed) is Intake.NEW
    post = rc.decode_post(secrets, doomed)
    assert actions.delete_post(secrets.room_id, post.author_key, post.post_id) == doomed
    assert store(rooms, secrets, doomed) is Intake.DUPLICATE
    assert store(rooms, secrets, envelope(secrets, 7, post_id=b"\x44" * 16)) is Intake.DUPLICATE
    assert not rooms.has_seq(secrets.room_id, post.author_key, 2)
    result = rooms.store_post(*_decoded(secrets, envelope(secrets, 3)), "received", read=False)
    assert result.intake is Intake.NEW and result.gap_before  # its predecessor is gone
    mallory = envelope(secrets, 2, author=MALLORY, post_id=b"\x44" * 16)
    assert store(rooms, secrets, mallory) is Intake.NEW


def test_a_post_looked_up_by_the_validator_is_stored_without_asking_again(
    db: sqlite3.Connection
) -> None:
    """The validator's look-up answers the store's question too while the connection has
    written nothing since; a write in between (a rival stored first, a deletion for everyone
    of the post itself) is seen."""
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    post, data = _decoded(secrets, envelope(secrets, 1))
    assert rooms.held_versions(post) == []
    looked = len(statements)
    assert rooms.store_post(post, data, "received", read=False).intake is Intake.NEW
    assert not [s for s in statements[looked:] if "room_tombstones" in s]
    later, later_data = _decoded(secrets, envelope(secrets, 2))
    assert rooms.held_versions(later) == []
    rival = envelope(secrets, 2, post_id=b"\x55" * 16)  # another post numbered 2
    assert store(rooms, secrets, rival) is Intake.NEW
    looked = len(statements)
    result = rooms.store_post(later, later_data, "received", read=False)
    assert result.intake in (Intake.LOST, Intake.REPLACED)  # the rival was seen
    assert [s for s in statements[looked:] if "room_tombstones" in s]
    doomed, doomed_data = _decoded(secrets, envelope(secrets, 3))
    assert rooms.held_versions(doomed) == []
    ActionStore(db).delete_post(secrets.room_id, doomed.author_key, doomed.post_id)
    assert rooms.store_post(doomed, doomed_data, "received", read=False).intake is (
        Intake.DUPLICATE)
    db.set_trace_callback(None)


def _decoded(secrets: rc.RoomSecrets, data: bytes) -> tuple[rc.RoomPost, bytes]:
    return rc.decode_post(secrets, data), data


# ---- equivocation ---------------------------------------------------------------------------


def test_equivocation_converges_whatever_arrives_first(tmp_path: Path) -> None:
    secrets = rc.RoomSecrets.generate()
    low = envelope(secrets, 3, author=MALLORY, text="the real one", post_id=b"\x10" * 16)
    high = envelope(secrets, 3, author=MALLORY, text="a rewrite", post_id=b"\x90" * 16)
    outcomes = []
    for order, name in (((low, high), "a"), ((high, low), "b")):
        conn = open_database(tmp_path / f"{name}.db")
        rooms = RoomStore(conn)
        rooms.add_room(secrets, "Room", "")
        outcomes.append([store(rooms, secrets, data) for data in order])
        assert [p.body for p in rooms.history(secrets.room_id, None, 10)] == [b"the real one"]
        assert conn.execute("SELECT author_seq FROM room_conflicts").fetchall() == [(3,)]
        conn.close()
    assert outcomes == [[Intake.NEW, Intake.LOST], [Intake.NEW, Intake.REPLACED]]


def test_same_post_id_with_other_content_is_an_equivocation_too(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    pid = b"\x42" * 16
    first = envelope(secrets, 5, author=MALLORY, text="five", post_id=pid)
    second = envelope(secrets, 6, author=MALLORY, text="six", post_id=pid)
    assert store(rooms, secrets, second) is Intake.NEW
    assert store(rooms, secrets, first) is Intake.REPLACED  # same id: the lower author_seq
    assert store(rooms, secrets, second) is Intake.LOST
    resealed = rc.seal_inner(secrets, rc.encode_inner(  # the same post under a new nonce
        MALLORY, secrets.room_id, b"five", kind=rc.KIND_TEXT, post_id=pid, lamport=5,
        author_seq=5, sent_at_ms=T + 5))
    assert store(rooms, secrets, resealed) is Intake.DUPLICATE
    assert [p.body for p in rooms.history(secrets.room_id, None, 10)] == [b"five"]


# ---- announces ------------------------------------------------------------------------------


def test_only_a_newer_announce_changes_a_member(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    room_id, who = secrets.room_id, MALLORY.peer_id
    rooms.upsert_member(room_id, who, "", (), None)  # known from a post, not announced yet
    assert rooms.apply_announce(room_id, who, "Bob", (), 1.0, lamport=4,
                                sent_at_ms=T) == Announced(new=False, name="", last_seen=None)
    assert rooms.apply_announce(room_id, who, "Robert", (), 2.0, 4,
                                T + 60_000) == Announced(new=False, name="Bob", last_seen=1.0)
    assert rooms.apply_announce(room_id, who, "Bob", (), 3.0, 4, T) is None  # replayed
    assert rooms.apply_announce(room_id, who, "Bob", (), 3.0, 3, T + 90_000) is None  # older
    assert [(m.name, m.last_seen) for m in rooms.members(room_id)] == [("Robert", 2.0)]
    assert rooms.apply_announce(room_id, who, "Rob", (), 4.0, 5, T) == Announced(
        new=False, name="Robert", last_seen=2.0)  # a later clock
    assert rooms.apply_announce(room_id, "someone else", "Cy", (), 4.0, 0, 0) == Announced(
        new=True)
    assert sorted(rooms.member_ids(room_id)) == sorted([who, "someone else"])


# ---- sync pages -----------------------------------------------------------------------------


def _sync_everything(rooms: RoomStore, secrets: rc.RoomSecrets, held: HeldRanges,
                     limit: int = rc.MAX_SYNC_PAGE, max_bytes: int = 4 << 20
                     ) -> tuple[int, list[int]]:
    """Ask page after page as a requester holding ``held`` would; (pages, seqs received)."""
    got: list[int] = []
    for pages in range(1, 100):
        page = rooms.sync_page(secrets.room_id, held.fitted(4096, 8192), limit, max_bytes)
        for entry in page.entries:
            data = rooms.envelope_at(entry.row)
            assert data is not None
            post = rc.decode_post(secrets, data)
            assert held.add(post.author_key, post.author_seq), "a page repeated a held post"
            got.append(post.author_seq)
        assert [e.order for e in page.entries] == sorted(e.order for e in page.entries)
        if not page.more:
            return pages, got
    raise AssertionError("the sync never ended")


def test_pages_get_past_a_hole_nobody_can_fill(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    for seq in [1, *range(3, 1203)]:  # 2 was reserved by a post that was never stored
        store(rooms, secrets, envelope(secrets, seq))
    held = HeldRanges({ADA.public_key: [(1, 1), (3, 700)]})  # a member with the same hole
    pages, got = _sync_everything(rooms, secrets, held)
    assert got == list(range(701, 1203)) and pages == 2
    assert held.ranges(ADA.public_key) == ((1, 1), (3, 1202))


def test_pages_take_turns_between_authors_and_stop_at_the_byte_cap(
    db: sqlite3.Connection
) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    for seq in range(1, 41):
        store(rooms, secrets, envelope(secrets, seq, size=60_000))
        store(rooms, secrets, envelope(secrets, seq, author=MALLORY, lamport=seq + 1000))
    first = rooms.sync_page(secrets.room_id, {}, 500, 1 << 20)
    authors = [e.order[1] for e in first.entries]
    sizes = [e.size for e in first.entries]
    # The page ends with the post that reaches 1 MiB; Mallory's small posts took turns between
    # Ada's big ones rather than waiting for all of them.
    assert first.more and sum(sizes) >= 1 << 20 > sum(sizes) - max(sizes)
    assert authors.count(ADA.public_key) == 18
    assert authors.count(MALLORY.public_key) in (17, 18)
    pages, got = _sync_everything(rooms, secrets, HeldRanges(), max_bytes=1 << 20)
    assert sorted(got) == sorted(list(range(1, 41)) * 2) and pages == 3


def test_conflict_winners_are_served_to_whoever_asks_for_them(db: sqlite3.Connection) -> None:
    rooms = RoomStore(db)
    secrets = new_room(rooms)
    winner = envelope(secrets, 2, author=MALLORY, text="kept", post_id=b"\x01" * 16)
    loser = envelope(secrets, 2, author=MALLORY, text="dropped", post_id=b"\x02" * 16)
    for data in (envelope(secrets, 1, author=MALLORY), winner, loser):
        store(rooms, secrets, data)
    held = {MALLORY.public_key: ((1, 2),)}  # a requester that holds the loser at 2
    assert rooms.sync_page(secrets.room_id, held, 10, 1 << 20).entries == []
    page = rooms.sync_page(secrets.room_id, held, 10, 1 << 20, conflicts=True)
    assert [rooms.envelope_at(e.row) for e in page.entries] == [winner]
