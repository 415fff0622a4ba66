"""Unread counts kept by the schema's triggers (migration 15) on real SQLite: whatever the
stores do, in any order, each contact's and each room's count is what counting the rows
gives, and a profile of the previous version gets its counts on migrating."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import room as rc
from app.core.actions import KIND_REPLY
from app.core.identity import Identity
from app.core.records import ContactState
from app.store.actions import ActionStore
from app.store.contacts import ContactStore
from app.store.db import MIGRATIONS, migrate
from app.store.messages import MessageStore
from app.store.rooms import RoomStore

PEERS = [Identity(bytes([0x20 + i]) * 32).peer_id for i in range(3)]
AUTHOR = Identity(b"\x0a" * 32)
T = 1_767_225_600_000
BEFORE_COUNTS = 14  # the version before unread counts were kept


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    return conn


def counted_contacts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT c.peer_id, (SELECT count(*) FROM messages m WHERE m.peer_id = c.peer_id "
        "AND m.outgoing = 0 AND m.read = 0) FROM contacts c"))


def counted_rooms(conn: sqlite3.Connection) -> dict[bytes, int]:
    return dict(conn.execute(
        "SELECT r.room_id, (SELECT count(*) FROM room_posts p WHERE p.room_id = r.room_id "
        "AND p.read = 0) FROM rooms r"))


def assert_counts_hold(conn: sqlite3.Connection) -> None:
    contacts, messages = ContactStore(conn), MessageStore(conn)
    counted = counted_contacts(conn)
    assert {c.peer_id: c.unread for c in contacts.all()} == counted
    blocked = set(contacts.peer_ids(ContactState.BLOCKED))
    assert messages.unread_total() == sum(n for p, n in counted.items() if p not in blocked)
    rooms = RoomStore(conn)
    by_room = counted_rooms(conn)
    assert {r: rooms.stats(r)[0] for r in by_room} == by_room
    assert rooms.unread_total() == sum(by_room.values())


DM_STEPS = st.lists(st.tuples(
    st.sampled_from(["contact", "request", "block", "remove", "in", "in_control", "out",
                     "read", "delete", "reply", "forget"]),
    st.integers(0, len(PEERS) - 1),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(DM_STEPS)
def test_a_contacts_unread_count_follows_every_change_to_its_messages(
    steps: list[tuple[str, int]],
) -> None:
    conn = fresh()
    contacts, messages, actions = ContactStore(conn), MessageStore(conn), ActionStore(conn)
    received: dict[str, list[bytes]] = {p: [] for p in PEERS}
    for step, which in steps:
        peer = PEERS[which]
        if step in ("contact", "request", "block"):
            state = {"contact": ContactState.CONTACT, "request": ContactState.REQUEST,
                     "block": ContactState.BLOCKED}[step]
            contacts.upsert(peer, state)
        elif step == "remove":
            contacts.remove(peer)
            received[peer].clear()
        elif step in ("in", "in_control"):  # a message may come before its contact row
            msg_id = os.urandom(16)
            messages.store_incoming(peer, msg_id, "hello", T, kind=1 if step == "in" else 3)
            received[peer].append(msg_id)
        elif step == "out":
            messages.queue_outgoing(peer, os.urandom(16), "hi", T)
        elif step == "read":
            messages.mark_read(peer)
        elif step == "delete" and received[peer]:
            actions.delete_dm(peer, received[peer][0].hex(), outgoing=False)
        elif step == "reply":  # stored read as bookkeeping, then shown (and unread) as text
            stored = messages.store_incoming(peer, os.urandom(16), "x" * 32 + "re", T,
                                             kind=KIND_REPLY)
            assert stored is not None
            actions.take_reply(stored.seq, peer, stored.id, "re", None)
        elif step == "forget" and received[peer]:
            # No store deletes one message today (removing a contact deletes them all), but
            # the count must not depend on that.
            with conn:
                conn.execute("DELETE FROM messages WHERE msg_id = ?", (received[peer].pop(),))
        assert_counts_hold(conn)


ROOM_STEPS = st.lists(st.tuples(
    st.sampled_from(["post", "post_read", "read", "delete", "leave", "join"]),
    st.integers(0, 1),
), max_size=30)


@settings(max_examples=60, deadline=None)
@given(ROOM_STEPS)
def test_a_rooms_unread_count_follows_every_change_to_its_posts(
    steps: list[tuple[str, int]],
) -> None:
    conn = fresh()
    rooms, actions = RoomStore(conn), ActionStore(conn)
    joined: dict[int, rc.RoomSecrets] = {}
    posts: dict[int, list[rc.RoomPost]] = {0: [], 1: []}
    seq = 0
    for step, which in [("join", 0), ("join", 1), *steps]:
        secrets = joined.get(which)
        if step == "join" and secrets is None:
            joined[which] = rc.RoomSecrets.generate()
            rooms.add_room(joined[which], "Room", "")
        elif secrets is None:
            continue
        elif step in ("post", "post_read"):
            seq += 1
            data = rc.encode_text_post(AUTHOR, secrets, f"post {seq}", lamport=seq,
                                       author_seq=seq, sent_at_ms=T + seq)
            post = rc.decode_post(secrets, data)
            rooms.store_post(post, data, "received", read=step == "post_read")
            posts[which].append(post)
        elif step == "read":
            rooms.mark_read(secrets.room_id)
        elif step == "delete" and posts[which]:
            post = posts[which].pop(0)
            actions.delete_post(secrets.room_id, post.author_key, post.post_id)
        elif step == "leave":
            rooms.remove_room(secrets.room_id)
            del joined[which]
            posts[which].clear()
        assert_counts_hold(conn)


def test_a_profile_of_version_14_gets_its_counts(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?)", (BEFORE_COUNTS,))
    for script in MIGRATIONS[:BEFORE_COUNTS]:
        conn.executescript("BEGIN;" + script + ";COMMIT;")
    ada, bob = PEERS[0], PEERS[1]
    for peer in (ada, bob):
        conn.execute("INSERT INTO contacts (peer_id, state, their_name, added_at, last_activity) "
                     "VALUES (?, 'contact', '', 0, 0)", (peer,))
    for i, (peer, outgoing, read) in enumerate(
            [(ada, 0, 0), (ada, 0, 0), (ada, 0, 1), (ada, 1, 0), (bob, 0, 1)]):
        conn.execute("INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, "
                     "state, read) VALUES (?, ?, ?, 'x', 0, 0, 'received', ?)",
                     (peer, bytes([i]) * 16, outgoing, read))
    secrets = rc.RoomSecrets.generate()
    conn.execute("INSERT INTO rooms (room_id, key, name, joined_at, last_activity) "
                 "VALUES (?, ?, 'Old', 0, 0)", (secrets.room_id, secrets.key))
    for i, read in enumerate([0, 0, 0, 1]):
        conn.execute("INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                     "author_seq, sent_at, kind, body, envelope, state, read) VALUES "
                     "(?, ?, 'a', x'02', ?, ?, 0, 1, 'w', x'00', 'received', ?)",
                     (secrets.room_id, bytes([i]), i + 1, i + 1, read))
    conn.commit()
    assert migrate(conn) == BEFORE_COUNTS
    assert {c.peer_id: c.unread for c in ContactStore(conn).all()} == {ada: 2, bob: 0}
    assert RoomStore(conn).stats(secrets.room_id)[0] == 3
    assert MessageStore(conn).unread_total() == 2 and RoomStore(conn).unread_total() == 3
    MessageStore(conn).store_incoming(bob, os.urandom(16), "new", T)
    RoomStore(conn).mark_read(secrets.room_id)
    assert_counts_hold(conn)
    assert MessageStore(conn).unread_total() == 3 and RoomStore(conn).unread_total() == 0
    conn.close()
