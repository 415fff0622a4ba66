"""What the store does for each received post or message costs the same however long the
history: counted in SQLite's virtual-machine steps (its progress handler), which do not depend
on the machine. A statement that seeks only part of an index walks every row behind that part,
and a room's or a conversation's history only grows."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import room as rc
from app.core.actions import KIND_EDIT
from app.core.identity import Identity
from app.store.actions import ActionStore
from app.store.contacts import ContactState, ContactStore
from app.store.db import MIGRATIONS, migrate, open_database
from app.store.messages import MessageStore
from app.store.room_governance import GovernanceStore
from app.store.rooms import RoomStore

ADA = Identity(b"\x0a" * 32)
T = 1_767_225_600_000
HISTORY = 1500  # posts already held when the cost is counted the second time


def steps(conn: sqlite3.Connection, work: Callable[[], object]) -> int:
    """SQLite's virtual-machine steps that ``work`` takes (triggers included)."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        work()
    finally:
        conn.set_progress_handler(None, 1)
    return count


def post(secrets: rc.RoomSecrets, seq: int) -> tuple[rc.RoomPost, bytes]:
    """Ada's post number ``seq``; its id is random-looking, but the same at every call."""
    post_id = hashlib.sha256(seq.to_bytes(8, "big")).digest()[:16]
    data = rc.encode_text_post(ADA, secrets, f"post {seq}", lamport=seq, author_seq=seq,
                               sent_at_ms=T + seq, post_id=post_id)
    return rc.decode_post(secrets, data), data


def fill(rooms: RoomStore, secrets: rc.RoomSecrets, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        rooms.store_post(*post(secrets, seq), "received", read=False)


def test_storing_a_post_costs_the_same_after_its_author_wrote_thousands(
    db: sqlite3.Connection
) -> None:
    """The validator's look-up (tombstone, rivals, predecessor) and the insert: with one
    branch seeking (room, author) only, the 1500th post cost 30 times the 10th."""
    rooms = RoomStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")

    def receive(seq: int) -> int:
        item, data = post(secrets, seq)
        return steps(db, lambda: (rooms.held_versions(item),
                                  rooms.store_post(item, data, "received", read=False)))

    fill(rooms, secrets, 1, 9)
    early = receive(10)
    fill(rooms, secrets, 11, HISTORY)
    late = receive(HISTORY + 1)
    assert late < early * 1.5, (early, late)


def test_decorating_a_received_post_costs_the_same_in_a_room_of_many_edits(
    db: sqlite3.Connection
) -> None:
    """A received post is shown with its newest edit and its reactions: finding them must not
    walk the room's other edits."""
    rooms, actions = RoomStore(db), ActionStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")
    key = ADA.public_key

    def edit(number: int) -> None:
        assert actions.edit_post(secrets.room_id, key, number.to_bytes(16, "big"), "edited",
                                 number, number.to_bytes(16, "big"), T)

    def decorate() -> int:
        return steps(db, lambda: actions.room_decorations(
            secrets.room_id, [(key, b"\xff" * 16)]))

    for number in range(1, 10):
        edit(number)
    early = decorate()
    for number in range(10, HISTORY):
        edit(number)
    late = decorate()
    assert late < early * 1.5, (early, late)


def test_replaying_a_rooms_membership_log_costs_the_same_after_thousands_of_posts(
    db: sqlite3.Connection
) -> None:
    """A governed room's log is read whole when the node starts and when an entry arrives:
    reading it must not walk the room's other posts."""
    rooms, governance = RoomStore(db), GovernanceStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")
    for number in range(3):
        db.execute(
            "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, author_seq, "
            "sent_at, kind, body, envelope, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, x'00', "
            "x'00', 'received')", (secrets.room_id, bytes([number]) * 16, ADA.peer_id,
                                   ADA.public_key, number, 10_000 + number, T, rc.KIND_MEMBERSHIP))
    db.commit()
    fill(rooms, secrets, 1, 9)
    early = steps(db, lambda: governance.entries(secrets.room_id))
    fill(rooms, secrets, 10, HISTORY)
    late = steps(db, lambda: governance.entries(secrets.room_id))
    assert late < early * 1.5, (early, late)


def test_receiving_a_message_costs_the_same_in_a_long_conversation(
    db: sqlite3.Connection
) -> None:
    """A received message: is it held, store it, the contact's list entry and the unread
    total. Half the history unread, as a conversation left for a while."""
    messages, contacts = MessageStore(db), ContactStore(db)
    peer = Identity(b"\x0b" * 32).peer_id
    contacts.upsert(peer, ContactState.CONTACT, "Bob")

    def arrive(number: int) -> None:
        msg_id = number.to_bytes(16, "big")
        assert messages.get(peer, msg_id, outgoing=False) is None
        assert messages.store_incoming(peer, msg_id, f"hello {number}", T + number)

    def receive(number: int) -> int:
        def work() -> None:
            arrive(number)
            contacts.get(peer)
            messages.unread_total()
        return steps(db, work)

    for number in range(1, 10):
        arrive(number)
    early = receive(10)
    for number in range(11, HISTORY):
        arrive(number)
        if number < HISTORY // 2:
            messages.mark_read(peer)
    late = receive(HISTORY)
    assert late < early * 1.5, (early, late)


def test_finding_a_message_or_a_post_by_its_id_costs_the_same_in_a_long_history(
    db: sqlite3.Connection
) -> None:
    """A message shown in a focused window is named by its id alone (its read receipt), a
    reaction or an edit received names its target by id, and so does a user's action: each
    found without walking every message, or every post of the room."""
    rooms, actions, messages = RoomStore(db), ActionStore(db), MessageStore(db)
    governance = GovernanceStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")
    peer = Identity(b"\x0b" * 32).peer_id

    def find(number: int) -> int:
        raw_id = post(secrets, number)[0].post_id
        post_id = raw_id.hex()
        msg_id = number.to_bytes(16, "big").hex()
        found = [actions.find_dm(msg_id), actions.find_dm(msg_id, peer),
                 actions.find_post(post_id), actions.find_post(post_id, secrets.room_id),
                 governance.post_author(secrets.room_id, raw_id)]
        assert all(found)
        return steps(db, lambda: (
            actions.find_dm(msg_id), actions.find_dm(msg_id, peer),
            actions.find_post(post_id), actions.find_post(post_id, secrets.room_id),
            governance.post_author(secrets.room_id, raw_id),
            actions.hide_post(secrets.room_id, raw_id)))  # delete for me: found, then deleted

    def fill_both(first: int, last: int) -> None:
        for number in range(first, last + 1):
            messages.store_incoming(peer, number.to_bytes(16, "big"), "hi", T + number)
            rooms.store_post(*post(secrets, number), "received", read=False)

    fill_both(1, 10)
    early = find(5)
    fill_both(11, HISTORY)
    late = find(HISTORY - 5)
    assert late < early * 1.5, (early, late)


def test_confirming_an_own_post_costs_the_same_in_a_long_history(
    db: sqlite3.Connection
) -> None:
    """Each of our posts is marked confirmed once a member holds it."""
    rooms = RoomStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")

    def confirm(seq: int) -> int:
        item, data = post(secrets, seq)
        rooms.store_post(item, data, "pending", read=True)
        return steps(db, lambda: rooms.set_post_state(secrets.room_id, item.author_key,
                                                      item.post_id, "confirmed"))

    fill(rooms, secrets, 1, 9)
    early = confirm(10)
    fill(rooms, secrets, 11, HISTORY)
    late = confirm(HISTORY + 1)
    assert late < early * 1.5, (early, late)


def test_a_profile_of_version_15_gets_the_indexes(tmp_path: Path) -> None:
    """Migration 16 adds the indexes to a profile that holds messages and posts already,
    and what they serve finds the old rows."""
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (15)")
    for script in MIGRATIONS[:15]:
        conn.executescript("BEGIN;" + script + ";COMMIT;")
    peer = Identity(b"\x0b" * 32).peer_id
    MessageStore(conn).store_incoming(peer, b"\x01" * 16, "hello", T)
    secrets = rc.RoomSecrets.generate()
    rooms = RoomStore(conn)
    rooms.add_room(secrets, "Old", "")
    item, data = post(secrets, 1)
    rooms.store_post(item, data, "received", read=False)
    assert migrate(conn) == 15
    indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                "AND sql IS NOT NULL").fetchall())
    assert {"messages_by_id", "room_posts_by_id"} <= indexes.keys()
    # The partial indexes name their kinds as literals; the queries use the same constants.
    assert f"WHERE kind = {rc.KIND_MEMBERSHIP}" in indexes["room_posts_membership"]
    assert f"WHERE kind = {KIND_EDIT}" in indexes["room_posts_edits"]
    actions = ActionStore(conn)
    found = actions.find_dm((b"\x01" * 16).hex())
    assert found is not None and found.text == "hello"
    found_post = actions.find_post(item.post_id.hex())
    assert found_post is not None and found_post.text == "post 1"
    conn.close()


def test_what_a_sync_says_we_hold_costs_the_same_after_thousands_of_posts(
    db: sqlite3.Connection
) -> None:
    """Every sync request lists the numbers held per author. Worked out from the whole room
    it walked every post (0.1 s at 40,000, on the network thread, once a minute per room);
    now only the rows stored since the last one are read."""
    rooms = RoomStore(db)
    secrets = rc.RoomSecrets.generate()
    rooms.add_room(secrets, "Room", "")

    def sync(seq: int) -> int:
        rooms.store_post(*post(secrets, seq), "received", read=False)
        return steps(db, lambda: rooms.held_ranges(secrets.room_id))

    fill(rooms, secrets, 1, 9)
    rooms.held_ranges(secrets.room_id)
    early = sync(10)
    fill(rooms, secrets, 11, HISTORY)
    rooms.held_ranges(secrets.room_id)
    late = sync(HISTORY + 1)
    assert late < early * 1.5, (early, late)
    assert rooms.held_ranges(secrets.room_id) == {ADA.public_key: [(1, HISTORY + 1)]}


HELD_STEPS = st.lists(st.tuples(
    st.sampled_from(["post", "delete", "fence", "rival", "raw", "leave"]),
    st.integers(0, 1), st.integers(1, 40),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(HELD_STEPS)
def test_the_held_ranges_kept_always_equal_the_rooms_rows(
    actions_taken: list[tuple[str, int, int]],
) -> None:
    """Whatever stores, deletes or replaces posts (delete for everyone, a governed room's
    fence, an equivocation's winner, a row written by SQL alone, leaving), the ranges a sync
    lists are those of the rows: a number listed but not held would never be asked for."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_database(Path(tmp) / "kith.db")
        try:
            check_held_ranges(conn, actions_taken)
        finally:
            conn.close()


def check_held_ranges(conn: sqlite3.Connection, actions_taken: list[tuple[str, int, int]]
                      ) -> None:
    rooms, actions, governance = RoomStore(conn), ActionStore(conn), GovernanceStore(conn)
    joined = [rc.RoomSecrets.generate() for _ in range(2)]
    for secrets in joined:
        rooms.add_room(secrets, "Room", "")
    held: dict[int, list[rc.RoomPost]] = {0: [], 1: []}
    for step, which, seq in actions_taken:
        secrets = joined[which]
        if step == "post":
            item, data = post(secrets, seq)
            if rooms.store_post(item, data, "received", read=False).stored:
                held[which].append(item)
        elif step == "delete" and held[which]:
            gone = held[which].pop(0)
            actions.delete_post(secrets.room_id, gone.author_key, gone.post_id)
        elif step == "fence":
            governance.drop_posts(secrets.room_id, ADA.public_key, ((seq - 3, seq + 3),))
        elif step == "rival":  # the same number, another post: one of the two stays
            data = rc.encode_text_post(ADA, secrets, "rival", lamport=seq, author_seq=seq,
                                       sent_at_ms=T, post_id=bytes([seq]) * 16)
            rooms.store_post(rc.decode_post(secrets, data), data, "received", read=False)
        elif step == "raw":
            conn.execute(
                "INSERT OR IGNORE INTO room_posts (room_id, post_id, author, author_key, "
                "lamport, author_seq, sent_at, kind, body, envelope, state) VALUES "
                "(?, ?, 'x', x'01', 1, ?, 0, 1, x'00', x'00', 'received')",
                (secrets.room_id, bytes([seq, 1]) * 8, seq))
            conn.commit()
        elif step == "leave":
            rooms.held_ranges(secrets.room_id)
            rooms.remove_room(secrets.room_id)
            assert secrets.room_id not in rooms._sync._held  # nothing kept of a room left
            joined[which] = rc.RoomSecrets.generate()
            rooms.add_room(joined[which], "Room", "")
            held[which].clear()
        for room in joined:
            assert rooms.held_ranges(room.room_id) == RoomStore(conn).held_ranges(room.room_id)
