"""The chat list's own choices (pinned, muted, marked unread): stored by the node, announced,
kept across restarts, gone with their contact or room; and the drafts the list marks."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from app.core.events import ChatPrefsChanged
from app.core.records import ChatPrefs
from app.store.chat_prefs import ChatPrefsStore
from app.store.db import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from tests.peers import Peer, befriend, peers


def test_pin_mute_and_mark_unread_are_kept_and_announced(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            room = await ada.client.create_room("Book club")
            assert await ada.client.chat_prefs() == []
            pinned = await ada.client.set_chat_prefs(bob.peer_id, pinned=True)
            assert pinned == ChatPrefs(bob.peer_id, pinned=True)
            both = await ada.client.set_chat_prefs(bob.peer_id, muted=True)
            assert both == ChatPrefs(bob.peer_id, pinned=True, muted=True)  # pin left alone
            await ada.client.set_chat_prefs(room.room_id, marked_unread=True)
            await ada.wait_for(lambda: len(ada.named("chat_prefs")) == 3, what="three events")
            events = [e for e in ada.events if isinstance(e, ChatPrefsChanged)]
            assert events[-1].prefs == ChatPrefs(room.room_id, marked_unread=True)
            assert events[-1].to_json() == {"event": "chat_prefs", "prefs": {
                "conversation": room.room_id, "pinned": False, "muted": False,
                "marked_unread": True}}
            assert sorted(await ada.client.chat_prefs(), key=lambda p: p.conversation) == sorted(
                [both, ChatPrefs(room.room_id, marked_unread=True)],
                key=lambda p: p.conversation)
            # Back at the default: no row is left behind.
            await ada.client.set_chat_prefs(room.room_id, marked_unread=False)
            assert await ada.client.chat_prefs() == [both]
            # Never anything a peer could see: Bob knows nothing of it.
            assert await bob.client.chat_prefs() == []

    asyncio.run(scenario())


def test_choices_survive_a_restart_and_leave_with_their_conversation(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Bob") as (bob,):
            ada = await Peer(tmp_path / "ada", "Ada").start()
            try:
                await befriend(ada, bob)
                room = await ada.client.create_room("Walks")
                await ada.client.set_chat_prefs(bob.peer_id, pinned=True)
                await ada.client.set_chat_prefs(room.room_id, muted=True)
                await ada.client.set_draft(bob.peer_id, "half a thought")
            finally:
                await ada.stop()
            ada = await Peer(tmp_path / "ada", "Ada").start()
            try:
                assert {p.conversation: p for p in await ada.client.chat_prefs()} == {
                    bob.peer_id: ChatPrefs(bob.peer_id, pinned=True),
                    room.room_id: ChatPrefs(room.room_id, muted=True),
                }
                assert await ada.client.drafts() == {bob.peer_id: "half a thought"}
                await ada.client.remove_contact(bob.peer_id)
                await ada.client.leave_room(room.room_id)
                assert await ada.client.chat_prefs() == []
                assert await ada.client.drafts() == {}
            finally:
                await ada.stop()

    asyncio.run(scenario())


def test_unknown_conversations_and_values_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            for key in ("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", "zz", "00" * 16):
                with pytest.raises(ValueError, match="no such conversation"):
                    await ada.client.set_chat_prefs(key, pinned=True)
            assert await ada.client.chat_prefs() == []

    asyncio.run(scenario())
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    store = ChatPrefsStore(conn)
    with pytest.raises(ValueError, match="true or false"):
        store.update("x", pinned=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        store.update("x", starred=True)


BEFORE_CHAT_PREFS = 7  # the schema version before the chat list's choices had a table


def test_the_migration_adds_the_table_to_a_profile_of_the_previous_version(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (0)")
    for script in MIGRATIONS[:BEFORE_CHAT_PREFS]:
        conn.executescript(script)
    conn.execute("UPDATE schema_version SET version = ?", (BEFORE_CHAT_PREFS,))
    conn.execute("INSERT INTO drafts VALUES ('someone', 'kept')")
    conn.commit()
    assert "chat_prefs" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert migrate(conn) == BEFORE_CHAT_PREFS
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT text FROM drafts").fetchall() == [("kept",)]
    assert ChatPrefsStore(conn).all() == []
