"""Search: the FTS5 index kept by triggers (migration 5), the safe query builder, the hits the
store returns, and a message received over a real connection being found.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from app.cli import JsonLines, handle_line
from app.client import _now
from app.core.actions import KIND_REPLY
from app.core.identity import Identity
from app.core.records import MATCH_END, MATCH_START, ContactState
from app.core.room import KIND_FILE, KIND_TEXT, RoomPost, RoomSecrets
from app.node.search_indexing import index_room_posts
from app.store.actions import ActionStore
from app.store.contacts import ContactStore
from app.store.db import MIGRATIONS, SCHEMA_VERSION, migrate
from app.store.messages import MessageStore
from app.store.rooms import RoomStore
from app.store.search import INDEX_DELAY, SearchStore, match_expression
from tests.peers import befriend, peers

ME = Identity.generate().peer_id
BOB = Identity.generate().peer_id
CAROL = Identity.generate().peer_id


class World:
    """The stores over one database, with helpers that write like the node does."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.contacts = ContactStore(conn)
        self.messages = MessageStore(conn)
        self.rooms = RoomStore(conn)
        self.search_store = SearchStore(conn)
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def contact(self, peer_id: str, name: str) -> None:
        self.contacts.upsert(peer_id, ContactState.CONTACT, name)

    def receive(self, peer_id: str, text: str, kind: int = 1) -> str:
        n = self._next()
        info = self.messages.store_incoming(peer_id, n.to_bytes(16, "big"), text, 1000 * n, kind)
        assert info is not None
        return info.id

    def send(self, peer_id: str, text: str) -> str:
        n = self._next()
        return self.messages.queue_outgoing(peer_id, n.to_bytes(16, "big"), text, 1000 * n).id

    def room(self, name: str) -> RoomSecrets:
        secrets = RoomSecrets.generate()
        self.rooms.add_room(secrets, name, "")
        return secrets

    def post(self, room: RoomSecrets, author: str, text: str, kind: int = KIND_TEXT) -> str:
        n = self._next()
        post = RoomPost(post_id=n.to_bytes(16, "big"), room_id=room.room_id, author=author,
                        lamport=n, author_seq=n, sent_at_ms=1000 * n, kind=kind,
                        body=text.encode())
        assert self.rooms.store_post(post, b"envelope", "received", read=False)
        return post.post_id.hex()

    def search(self, text: str, limit: int = 50) -> list[str]:
        return [h.message_id for h in self.search_store.search(text, limit, "Me", ME)]

    def indexed(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM search_index").fetchone()[0])


@pytest.fixture
def world(db: sqlite3.Connection) -> World:
    return World(db)


# -- the query builder -------------------------------------------------------------------------


def test_match_expression_quotes_every_word_and_prefixes_the_last() -> None:
    assert match_expression("hello wor") == '"hello" "wor"*'
    assert match_expression("hi") == '"hi"*'
    assert match_expression("a") == '"a"'  # one letter alone: exact, never the whole index
    assert match_expression("a b") == '"a"'
    assert match_expression("see you l") == '"see" "you"*'  # until the next letter
    assert match_expression("") is None
    assert match_expression("   ") is None
    assert match_expression('"*-:()^+') is None


@pytest.mark.parametrize("hostile", [
    '"', '""', '"hello', "hel*lo", "*", "NEAR(hello world)", "NEAR(", "-hello", "content:hello",
    "hello AND", "OR", "NOT hello", "^hello", "hello + world", "{content}: x", "'; DROP TABLE",
    "hello\x00world", "(((", ")", "\\", "\u200b", "x" * 5000,
])
def test_fts_syntax_in_user_text_is_harmless(world: World, hostile: str) -> None:
    world.contact(BOB, "Bob")
    world.receive(BOB, "hello world, near content")
    world.search(hostile)  # never raises (sqlite3.OperationalError on bad syntax)


def test_operators_are_searched_as_words(world: World) -> None:
    world.contact(BOB, "Bob")
    first = world.receive(BOB, "meet me near the station")
    world.receive(BOB, "the station is closed")
    assert world.search("NEAR(station") == [first]
    assert world.search('"near" station"') == [first]
    assert world.search("content:near") == []  # "content" is a word here, not a column
    assert world.search("station:near") == [first]
    assert world.search("-near") == [first]


# -- the index ---------------------------------------------------------------------------------


def test_direct_messages_are_found_newest_first_with_a_marked_snippet(world: World) -> None:
    world.contact(BOB, "Bob")
    old = world.receive(BOB, "the lighthouse keeper waved")
    world.receive(BOB, "nothing to see here")
    new = world.send(BOB, "I saw the Lighthouse too")
    hits = world.search_store.search("lighthouse", my_name="Me", me=ME)
    assert [h.message_id for h in hits] == [new, old]
    assert hits[0].outgoing and hits[0].author_name == "Me"
    assert hits[1].author == BOB and hits[1].author_name == "Bob"
    assert hits[0].kind == "dm" and hits[0].conversation == BOB
    assert hits[0].conversation_name == "Bob"
    assert f"{MATCH_START}Lighthouse{MATCH_END}" in hits[0].snippet
    assert hits[1].sent_at_ms < hits[0].sent_at_ms


def test_room_posts_are_found_with_room_and_author(world: World) -> None:
    room = world.room("Climbing club")
    world.rooms.upsert_member(room.room_id, CAROL, "Carol", (), None)
    post = world.post(room, CAROL, "Bouldering on Saturday?")
    hits = world.search_store.search("boulder", my_name="Me", me=ME)
    assert [h.message_id for h in hits] == [post]
    hit = hits[0]
    assert hit.kind == "room" and hit.conversation == room.room_id.hex()
    assert hit.conversation_name == "Climbing club"
    assert hit.author == CAROL and hit.author_name == "Carol" and not hit.outgoing
    assert hit.order is not None and hit.order[2] == post


def test_prefix_and_all_words(world: World) -> None:
    world.contact(BOB, "Bob")
    both = world.receive(BOB, "quarterly planning meeting")
    world.receive(BOB, "planning a party")
    assert world.search("pla") == [world.search("planning")[0], both]
    assert world.search("quarterly plan") == [both]
    assert world.search("quart plan") == []  # only the last word is a prefix
    assert world.search("meeting planning") == [both]  # any order
    assert world.search("quarterly partying") == []


def test_diacritics_and_case_are_folded(world: World) -> None:
    world.contact(BOB, "Bob")
    cafe = world.receive(BOB, "Rendez-vous au Café Noël")
    assert world.search("cafe") == [cafe]
    assert world.search("CAFÉ noel") == [cafe]
    assert world.search("noë") == [cafe]


def test_only_text_is_indexed(world: World) -> None:
    world.contact(BOB, "Bob")
    world.receive(BOB, '{"transfer": "00", "name": "holiday.jpg"}', kind=2)
    world.receive(BOB, '{"control": "holiday"}', kind=3)
    room = world.room("Pics")
    world.post(room, CAROL, '{"name": "holiday.png"}', kind=KIND_FILE)
    assert world.indexed() == 0
    assert world.search("holiday") == []


def test_limit(world: World) -> None:
    world.contact(BOB, "Bob")
    ids = [world.receive(BOB, f"ping number {i}") for i in range(30)]
    assert world.search("ping", limit=5) == ids[::-1][:5]
    assert len(world.search("ping")) == 30


def test_removed_contact_and_left_room_leave_the_index(world: World) -> None:
    world.contact(BOB, "Bob")
    world.contact(CAROL, "Carol")
    world.receive(BOB, "secret plans from bob")
    kept = world.receive(CAROL, "public plans from carol")
    room = world.room("Plotters")
    world.post(room, CAROL, "room plans")
    assert len(world.search("plans")) == 3
    world.contacts.remove(BOB)
    assert world.search("plans")[-1] == kept and len(world.search("plans")) == 2
    world.rooms.remove_room(room.room_id)
    assert world.search("plans") == [kept]
    assert world.indexed() == 1
    docs = world.conn.execute("SELECT count(*) FROM search_docs").fetchone()[0]
    assert docs == 1


def test_blocked_contacts_are_not_shown(world: World) -> None:
    world.contact(BOB, "Bob")
    world.receive(BOB, "annoying spam")
    world.contacts.upsert(BOB, ContactState.BLOCKED)
    assert world.search("spam") == []


def test_a_duplicate_message_is_indexed_once(world: World) -> None:
    world.contact(BOB, "Bob")
    assert world.messages.store_incoming(BOB, b"\x01" * 16, "echo echo", 5) is not None
    assert world.messages.store_incoming(BOB, b"\x01" * 16, "echo echo", 5) is None
    assert world.indexed() == 1


def test_insert_keeps_the_messages_rowid(world: World) -> None:
    """Triggers insert elsewhere; the store still gets the message's own seq back."""
    world.contact(BOB, "Bob")
    world.receive(BOB, "one")
    info = world.messages.store_incoming(BOB, b"\x09" * 16, "two", 5)
    assert info is not None
    assert world.conn.execute("SELECT max(seq) FROM messages").fetchone()[0] == info.seq


def pending(world: World) -> int:
    return int(world.conn.execute("SELECT count(*) FROM search_pending").fetchone()[0])


def test_room_posts_wait_for_the_index_and_a_search_takes_them_first(world: World) -> None:
    """Storing a room post writes no index segment; the next search indexes it, in arrival
    order with the direct messages indexed at once."""
    world.contact(BOB, "Bob")
    room = world.room("Garden")
    first = world.post(room, CAROL, "tomatoes ripen")
    dm = world.receive(BOB, "tomatoes for sale")
    last = world.post(room, BOB, "tomatoes everywhere")
    assert (world.indexed(), pending(world)) == (1, 2)  # the direct message only
    assert world.search("tomatoes") == [last, dm, first]
    assert (world.indexed(), pending(world)) == (3, 0)
    assert world.search_store.index_pending() == 0  # nothing twice
    assert world.indexed() == 3


def test_room_posts_are_indexed_a_batch_per_transaction(world: World) -> None:
    room = world.room("Batch")
    ids = [world.post(room, CAROL, f"note {i}") for i in range(5)]
    assert [world.search_store.index_pending(batch=2) for _ in range(4)] == [2, 2, 1, 0]
    assert world.search("note") == ids[::-1]


def test_an_edit_that_came_before_its_post_is_what_gets_indexed(world: World) -> None:
    room = world.room("Edits")
    post_id = (1000).to_bytes(16, "big")
    post = RoomPost(post_id=post_id, room_id=room.room_id, author=CAROL, lamport=1,
                    author_seq=1, sent_at_ms=1000, kind=KIND_TEXT, body=b"first draft")
    actions = ActionStore(world.conn)
    assert actions.edit_post(room.room_id, post.author_key, post_id, "final wording", 2,
                             b"\x01" * 16, 2000)
    assert world.rooms.store_post(post, b"envelope", "received", read=False)
    assert world.search("draft") == []
    assert world.search("wording") == [post_id.hex()]
    # A reply is indexed without the id of what it answers.
    target = "ab" * 16
    reply = world.post(room, CAROL, target + "count me in", kind=KIND_REPLY)
    assert world.search("count") == [reply] and world.search(target[:5]) == []


def test_a_post_waiting_though_indexed_already_does_not_stop_indexing(world: World) -> None:
    """A damaged profile: a waiting post whose docid the index holds already. It is indexed
    again with its text, and the posts after it are indexed too."""
    room = world.room("Mended")
    first = world.post(room, CAROL, "original words")
    assert world.search_store.index_pending() == 1
    world.conn.execute("INSERT INTO search_pending (docid) SELECT max(docid) FROM search_docs")
    world.conn.commit()
    later = world.post(room, CAROL, "later words")
    assert world.search("words") == [later, first]
    assert (world.indexed(), pending(world)) == (2, 0)


def test_a_room_post_removed_before_it_was_indexed_leaves_nothing(world: World) -> None:
    room = world.room("Gone")
    world.post(room, CAROL, "ephemeral words")
    kept = world.room("Kept")
    world.post(kept, CAROL, "ephemeral but kept")
    world.rooms.remove_room(room.room_id)
    assert pending(world) == 1
    assert world.search_store.index_pending() == 1
    assert world.indexed() == 1 and world.search("ephemeral") != []
    assert world.conn.execute("SELECT count(*) FROM search_docs").fetchone()[0] == 1


BEFORE_BATCHES = 13  # the schema version before room posts were indexed in batches


def test_migration_to_batched_room_posts_keeps_what_was_indexed(tmp_path: Path) -> None:
    """A profile of the version before: its posts stay indexed, new ones wait, and removing
    an old one still takes it out of the index."""
    conn = sqlite3.connect(tmp_path / "before.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (0)")
    for script in MIGRATIONS[:BEFORE_BATCHES]:
        conn.executescript("BEGIN;" + script + ";COMMIT;")
    conn.execute("UPDATE schema_version SET version = ?", (BEFORE_BATCHES,))
    conn.commit()
    secrets = RoomSecrets.generate()
    conn.execute("INSERT INTO rooms (room_id, key, name, joined_at, last_activity) "
                 "VALUES (?, ?, 'Old', 0, 0)", (secrets.room_id, secrets.key))
    conn.execute("INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                 "author_seq, sent_at, kind, body, envelope, state) VALUES "
                 "(?, x'0101', ?, x'02', 1, 1, 1000, ?, 'older words', x'00', 'received')",
                 (secrets.room_id, CAROL, KIND_TEXT))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == 1
    assert migrate(conn) == BEFORE_BATCHES
    world = World(conn)
    newer = world.post(secrets, CAROL, "newer words")
    assert pending(world) == 1
    assert world.search("words") == [newer, "0101"]
    conn.execute("DELETE FROM room_posts WHERE post_id = x'0101'")
    conn.commit()
    assert world.search("words") == [newer] and world.indexed() == 1
    conn.close()


def test_migration_from_4_indexes_existing_rows_oldest_first(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (0)")
    for script in MIGRATIONS[:4]:
        conn.executescript("BEGIN;" + script + ";COMMIT;")
    conn.execute("UPDATE schema_version SET version = 4")
    conn.commit()
    world = World(conn)
    world.contact(BOB, "Bob")
    room = world.room("Old room")
    # Stored out of time order: the index must still rank by when they were written.
    conn.execute("INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, "
                 "state, kind) VALUES (?, x'02', 0, 'legacy newer', 3000, 0, 'received', 1)",
                 (BOB,))
    conn.execute("INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, "
                 "state, kind) VALUES (?, x'01', 0, 'legacy older', 1000, 0, 'received', 1)",
                 (BOB,))
    conn.execute("INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, "
                 "state, kind) VALUES (?, x'03', 0, 'legacy offer', 1500, 0, 'received', 2)",
                 (BOB,))
    post = RoomPost(post_id=b"\x07" * 16, room_id=room.room_id, author=CAROL, lamport=1,
                    author_seq=1, sent_at_ms=2000, kind=KIND_TEXT, body="legacy café".encode())
    # As version 4 stored it (today's RoomStore needs today's tables).
    conn.execute("INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                 "author_seq, sent_at, kind, body, envelope, state) "
                 "VALUES (?, ?, ?, ?, 1, 1, 2000, ?, ?, x'00', 'received')",
                 (post.room_id, post.post_id, post.author, post.author_key, KIND_TEXT,
                  post.body))
    conn.commit()
    assert migrate(conn) == 4
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert world.search("legacy") == ["02", (b"\x07" * 16).hex(), "01"]
    assert world.search("cafe") == [(b"\x07" * 16).hex()]
    # And the triggers work after the migration.
    new = world.receive(BOB, "legacy continues")
    assert world.search("legacy")[0] == new
    conn.close()


# -- over the network --------------------------------------------------------------------------


def test_a_received_message_and_room_post_are_found(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            sent = await ada.client.send(bob.peer_id, "Shall we meet at the Ångström lab?")
            await bob.wait_event("message", id=sent.id)
            hits = await bob.client.search("angstr")
            assert [h.message_id for h in hits] == [sent.id]
            assert hits[0].conversation == ada.peer_id and hits[0].author_name == "Ada"
            assert hits[0].kind == "dm" and not hits[0].outgoing
            mine = await ada.client.search("angstrom lab")
            assert [h.message_id for h in mine] == [sent.id] and mine[0].outgoing

            room = await ada.client.create_room("Lab")
            await bob.client.join_room(room.invite)
            post = await bob.client.post(room.room_id, "The lab is booked for Thursday")
            await ada.wait_event("room_message", id=post.id)
            # The node indexes it within INDEX_DELAY without a search asking.
            deadline = asyncio.get_running_loop().time() + INDEX_DELAY + 10
            while await ada.client.call(lambda node: _now(SearchStore(node.db).has_pending())):
                assert asyncio.get_running_loop().time() < deadline, "never indexed"
                await asyncio.sleep(0.05)
            assert await ada.client.call(lambda node: _now(node.db.execute(
                "SELECT count(*) FROM search_index WHERE search_index MATCH 'booked'"
            ).fetchone()[0])) == 1
            found = await ada.client.search("lab booked")
            assert [h.message_id for h in found] == [post.id]
            assert found[0].kind == "room" and found[0].conversation == room.room_id
            assert await ada.client.search("") == []

            out = io.StringIO()  # the headless node answers the same
            await handle_line(ada.client, '{"cmd": "search", "text": "booked", "limit": 5}',
                              JsonLines(out))
            reply = json.loads(out.getvalue())
            assert reply["event"] == "search" and reply["hits"][0]["message_id"] == post.id
            assert "\u0002booked\u0003" in reply["hits"][0]["snippet"]

    asyncio.run(scenario())


def test_the_node_indexes_waiting_posts_and_outlasts_a_full_disk(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """``index_room_posts`` on trio's mock clock: a turn that finds the disk full leaves the
    posts waiting and logs it; the next turn with room indexes them, and nothing stops."""
    room = world.room("Disk")
    ids = [world.post(room, CAROL, f"waiting post {i} " + "word " * 200) for i in range(20)]
    pages = world.conn.execute("PRAGMA page_count").fetchone()[0]
    world.conn.execute(f"PRAGMA max_page_count = {pages}")

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(index_room_posts, world.search_store)
            await trio.sleep(INDEX_DELAY * 1.5)
            assert pending(world) == 20 and world.indexed() == 0
            assert "wait for the next try" in caplog.text
            world.conn.execute("PRAGMA max_page_count = 1073741823")
            await trio.sleep(INDEX_DELAY)
            assert pending(world) == 0 and world.indexed() == 20
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=MockClock(autojump_threshold=0))
    assert world.search("waiting") == ids[::-1]
