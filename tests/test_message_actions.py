"""Reply, react, edit and delete between real peers in one process on 127.0.0.1: direct
messages both ways, a peer running the previous version, forged and early actions."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path

import pytest

from app.core import actions as ac
from app.core.config import NodeConfig
from app.core.events import RoomChanged
from app.core.records import Delivery, MessageInfo
from app.node.message_actions import ActionError
from app.node.node import KithNode
from tests.peers import LOOPBACK, Peer, befriend, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


async def _now(value):
    return value


async def features_of(peer: Peer, other: Peer) -> frozenset[str] | None:
    return await peer.client.call(
        lambda node: _now(node.actions.store.features(other.peer_id)))


async def wait_features(peer: Peer, other: Peer) -> None:
    """``peer`` has had ``other``'s profile (what it can read)."""
    box: list[object] = [None]
    while True:
        box[0] = await features_of(peer, other)
        if box[0] is not None:
            return
        await asyncio.sleep(0.02)


def rows_holding(peer: Peer, text: str) -> list[tuple]:
    """Every row of the peer's database that still holds ``text`` (messages, index)."""
    conn = sqlite3.connect(peer.profile.db_path)
    try:
        found = conn.execute("SELECT seq FROM messages WHERE instr(text, ?) > 0",
                             (text,)).fetchall()
        found += conn.execute("SELECT rowid FROM search_index WHERE search_index MATCH ?",
                              (f'"{text}"',)).fetchall()
        return found
    finally:
        conn.close()


def test_reply_react_edit_delete_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            await wait_features(ada, bob)
            await wait_features(bob, ada)
            assert ac.FEATURE_ACTIONS in (await features_of(ada, bob) or ())
            first = await ada.client.send(bob.peer_id, "lunch at noon? zebrafish")
            await bob.wait_event("message", id=first.id)

            # Reply: the quote relation travels; the event and history carry it.
            answer = await bob.client.send(ada.peer_id, "yes!", reply_to=first.id)
            (got,) = await ada.wait_event("message", id=answer.id)
            assert got.reply_to == first.id and got.text == "yes!"  # type: ignore[attr-defined]
            with pytest.raises(ActionError):
                await bob.client.send(ada.peer_id, "to nothing", reply_to="ab" * 16)

            # Reactions, toggled, one of each emoji per person, both sides.
            await ada.client.react(answer.id, "👍")
            await ada.client.react(answer.id, "👍")  # again: no change, no second event
            await bob.client.react(answer.id, "👍")
            await bob.wait_event("reaction", message_id=answer.id, by=ada.peer_id, emoji="👍")
            await ada.wait_event("reaction", message_id=answer.id, by=bob.peer_id)
            history = await bob.client.history(ada.peer_id)
            replied = next(m for m in history if m.id == answer.id)
            assert replied.reply_to == first.id
            assert {e: set(who) for e, who in replied.reactions} == {
                "👍": {ada.peer_id, bob.peer_id}}
            await ada.client.react(answer.id, "👍", remove=True)
            await bob.wait_event("reaction", message_id=answer.id, by=ada.peer_id,
                                 removed=True)
            history = await bob.client.history(ada.peer_id)
            assert dict(next(m for m in history if m.id == answer.id).reactions) == {
                "👍": (bob.peer_id,)}
            assert len(ada.named("reaction")) == 3  # set, bob's, taken back

            # Edit: only one's own; the latest text everywhere, search included.
            with pytest.raises(ActionError):
                await ada.client.edit(answer.id, "not mine to change")
            await ada.client.edit(first.id, "lunch at one? octopus")
            (edited,) = await bob.wait_event("message_edited", message_id=first.id)
            assert edited.text == "lunch at one? octopus"  # type: ignore[attr-defined]
            assert edited.by == ada.peer_id  # type: ignore[attr-defined]
            for peer in (ada, bob):
                history = await peer.client.history(
                    bob.peer_id if peer is ada else ada.peer_id)
                message = next(m for m in history if m.id == first.id)
                assert message.text == "lunch at one? octopus" and message.edited_at
                assert [h.message_id for h in await peer.client.search("octopus")] == [first.id]
                assert await peer.client.search("zebrafish") == []
            contact = await bob.client.contact(ada.peer_id)
            assert contact is not None

            # Delete for everyone: the text leaves history, search and the database.
            await ada.client.delete(first.id, for_everyone=True)
            await bob.wait_event("message_deleted", message_id=first.id, by=ada.peer_id)
            for peer, other in ((ada, bob), (bob, ada)):
                assert first.id not in [m.id for m in await peer.client.history(other.peer_id)]
                assert await peer.client.search("octopus") == []
                assert rows_holding(peer, "octopus") == []
                assert rows_holding(peer, "zebrafish") == []
            # The reply stays; its quote's original is gone (a view shows a placeholder).
            history = await bob.client.history(ada.peer_id)
            assert [m.id for m in history] == [answer.id]
            with pytest.raises(ActionError):
                await ada.client.delete(answer.id, for_everyone=True)  # not ours

            # Delete for me: here only.
            await ada.client.delete(answer.id, for_everyone=False)
            assert await ada.client.history(bob.peer_id) == []
            assert [m.id for m in await bob.client.history(ada.peer_id)] == [answer.id]
            assert not ada.named("failed") and not bob.named("failed")

    run(scenario)


def test_a_peer_of_the_previous_version_sees_text_and_nothing_else(tmp_path: Path) -> None:
    """A node with message actions switched off answers and announces exactly as the
    version before them: no features, kinds 16-19 REJECTed (code 2)."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            old = await Peer(tmp_path / "old", "Old",
                             NodeConfig(listen=(LOOPBACK,), message_actions=False)).start()
            try:
                await befriend(ada, old)
                await wait_features(ada, old)
                assert await features_of(ada, old) == frozenset()
                theirs = await old.client.send(ada.peer_id, "what time is it")
                await ada.wait_event("message", id=theirs.id)

                # A reply reaches them as plain text with a quote line, and is delivered.
                reply = await ada.client.send(old.peer_id, "noon", reply_to=theirs.id)
                (got,) = await old.wait_event("message", id=reply.id)
                assert got.text == "> what time is it\nnoon"  # type: ignore[attr-defined]
                await ada.wait_event("delivered", id=reply.id)
                # Here it is still a reply.
                history = await ada.client.history(old.peer_id)
                assert next(m for m in history if m.id == reply.id).reply_to == theirs.id

                # Reactions, edits and deletions stay here; nothing reaches them, nothing fails.
                await ada.client.react(theirs.id, "🎉")
                await ada.client.edit(reply.id, "one o'clock")
                await ada.wait_event("message_edited", message_id=reply.id)
                marker = await ada.client.send(old.peer_id, "marker")
                await old.wait_event("message", id=marker.id)
                await ada.wait_event("delivered", id=marker.id)
                old_history = await old.client.history(ada.peer_id)
                assert [m.text for m in old_history] == [
                    "what time is it", "> what time is it\nnoon", "marker"]
                assert not ada.named("failed") and not old.named("failed")
                with pytest.raises(RuntimeError):
                    await old.client.react(reply.id, "🎉")

                # Sent anyway (as before the features were known): REJECTed with code 2,
                # which the old peer logs and nothing shows on either side.
                body = ac.encode_action(ac.Action(ac.KIND_REACTION, theirs.id, "👀"))
                queued: MessageInfo = await ada.client.call(
                    lambda node: _now(node.dms.queue(old.peer_id, ac.KIND_REACTION, body)))

                def refused() -> bool:
                    return bool(ada.named("failed")) or _state(ada, queued) == "failed"

                await ada.wait_for(refused, what="the reaction refused")
                assert not ada.named("failed")  # refused quietly: not a message anyone sees
                assert [m.text for m in await old.client.history(ada.peer_id)] == [
                    "what time is it", "> what time is it\nnoon", "marker"]
            finally:
                await old.stop()

    run(scenario)


def _state(peer: Peer, message: MessageInfo) -> str:
    conn = sqlite3.connect(peer.profile.db_path)
    try:
        row = conn.execute("SELECT state FROM messages WHERE seq = ?",
                           (message.seq,)).fetchone()
        return str(row[0]) if row else ""
    finally:
        conn.close()


def test_forged_edit_and_delete_by_someone_else_are_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Mal") as (ada, bob, mal):
            await befriend(ada, bob)
            await befriend(mal, bob)
            sent = await ada.client.send(bob.peer_id, "the real text")
            await bob.wait_event("message", id=sent.id)
            forged_edit = ac.encode_action(ac.Action(ac.KIND_EDIT, sent.id, "forged"))
            forged_delete = ac.encode_action(ac.Action(ac.KIND_DELETE, sent.id))

            def forge(node: KithNode) -> MessageInfo:
                node.dms.queue(bob.peer_id, ac.KIND_EDIT, forged_edit)
                return node.dms.queue(bob.peer_id, ac.KIND_DELETE, forged_delete)

            last = await mal.client.call(lambda node: _now(forge(node)))
            await mal.wait_for(lambda: _state(mal, last) == Delivery.DELIVERED.value,
                               what="the forgeries delivered")
            history = await bob.client.history(ada.peer_id)
            assert [(m.id, m.text, m.edited_at) for m in history] == [
                (sent.id, "the real text", None)]
            assert not bob.named("message_edited") and not bob.named("message_deleted")

    run(scenario)


async def _room_texts(peer: Peer, room_id: str) -> dict[str, tuple[str, bool]]:
    return {p.id: (p.text, p.edited_at is not None)
            for p in await peer.client.room_history(room_id, limit=1000)}


def test_room_of_three_and_a_late_joiner(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            room = await ada.client.create_room("Lobby")
            for member in (bob, cy):
                await member.client.join_room(room.invite)
            for member in (ada, bob, cy):
                await member.wait_for(functools.partial(member.named, "room_members"),
                                      what="members known")
            for member in (ada, bob, cy):  # their announces say they read replies
                for other in {ada, bob, cy} - {member}:
                    await wait_features(member, other)
            kept = await ada.client.post(room.room_id, "kept post walrus")
            doomed = await ada.client.post(room.room_id, "doomed post narwhal")
            for member in (bob, cy):
                await member.wait_event("room_message", count=2)

            reply = await bob.client.post(room.room_id, "agreed", reply_to=kept.id)
            for member in (ada, cy):
                (got,) = await member.wait_event("room_message", id=reply.id)
                assert got.reply_to == kept.id  # type: ignore[attr-defined]
            await cy.client.react(reply.id, "🔥")
            await ada.client.react(reply.id, "🔥")
            for member in (ada, bob):
                await member.wait_event("reaction", message_id=reply.id, by=cy.peer_id)
            await bob.wait_event("reaction", message_id=reply.id, by=ada.peer_id)

            with pytest.raises(ActionError):
                await bob.client.edit(kept.id, "not his")
            await ada.client.edit(kept.id, "kept post, edited beluga")
            await ada.client.delete(doomed.id, for_everyone=True)
            for member in (bob, cy):
                await member.wait_event("message_edited", message_id=kept.id, by=ada.peer_id)
                await member.wait_event("message_deleted", message_id=doomed.id)

            # A forged edit and delete by Bob of Ada's post: kept by everyone, applied by none.
            def forge(kind: int, text: str = "") -> bytes:
                return ac.encode_action(ac.Action(kind, kept.id, text)).encode()

            room_id = bytes.fromhex(room.room_id)
            await bob.client.call(lambda node: node.rooms.post_payload(
                room_id, ac.KIND_EDIT, forge(ac.KIND_EDIT, "forged by bob")))
            await bob.client.call(lambda node: node.rooms.post_payload(
                room_id, ac.KIND_DELETE, forge(ac.KIND_DELETE)))
            marker = await bob.client.post(room.room_id, "marker")
            for member in (ada, cy):
                await member.wait_event("room_message", id=marker.id)

            expected = {kept.id: ("kept post, edited beluga", True),
                        reply.id: ("agreed", False), marker.id: ("marker", False)}
            for member in (ada, bob, cy):
                assert await _room_texts(member, room.room_id) == expected
                posts = await member.client.room_history(room.room_id)
                fire = next(p for p in posts if p.id == reply.id).reactions
                assert {e: set(who) for e, who in fire} == {"🔥": {ada.peer_id, cy.peer_id}}
                assert [h.message_id for h in await member.client.search("beluga")] == [kept.id]
                assert await member.client.search("narwhal") == []

            # A late joiner syncs: edits and deletions applied, the deleted text never seen.
            dee = await Peer(tmp_path / "dee", "Dee").start()
            try:
                await dee.client.join_room(room.invite)

                async def synced() -> bool:
                    return await _room_texts(dee, room.room_id) == expected

                while not await synced():
                    await asyncio.sleep(0.05)
                assert not [e for e in dee.events if "narwhal" in repr(e)]
                assert [h.message_id for h in await dee.client.search("beluga")] == [kept.id]
                assert await dee.client.search("narwhal") == []
                conn = sqlite3.connect(dee.profile.db_path)
                try:
                    assert not conn.execute(
                        "SELECT 1 FROM room_posts WHERE instr(CAST(body AS TEXT), 'narwhal')"
                    ).fetchall()
                finally:
                    conn.close()
            finally:
                await dee.stop()

    run(scenario)


def test_an_edit_or_delete_that_comes_before_its_message_is_applied_when_it_comes(
        tmp_path: Path) -> None:
    """The outbox delivers in order, so the actions are queued first (as a mailbox or a
    restored outbox can deliver them): the edited text is what the message shows on arrival,
    and the deleted message is never shown nor stored."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            edited_id, deleted_id = bytes(range(16)), bytes(range(16, 32))

            def queue(node: KithNode) -> MessageInfo:
                actions = node.actions
                for kind, target, text in ((ac.KIND_EDIT, edited_id, "the newer text"),
                                           (ac.KIND_DELETE, deleted_id, "")):
                    body = ac.encode_action(ac.Action(kind, target.hex(), text))
                    actions._queue(bob.peer_id, kind, body)
                for msg_id, text in ((edited_id, "the older text"), (deleted_id, "secret")):
                    last = node.dms.store.queue_outgoing(bob.peer_id, msg_id, text, 1)
                node.dms.kick(bob.peer_id)
                return last

            last = await ada.client.call(lambda node: _now(queue(node)))
            await ada.wait_for(lambda: _state(ada, last) == Delivery.DELIVERED.value,
                               what="everything delivered")
            (got,) = bob.named("message")
            assert (got.id, got.text) == (edited_id.hex(), "the newer text")  # type: ignore
            history = await bob.client.history(ada.peer_id)
            assert [(m.id, m.text, m.edited_at is not None) for m in history] == [
                (edited_id.hex(), "the newer text", True)]
            assert rows_holding(bob, "secret") == [] and rows_holding(bob, "older") == []

    run(scenario)


def test_previews_follow_edits_and_deletions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            older = await ada.client.send(bob.peer_id, "older")
            newest = await ada.client.send(bob.peer_id, "newest")
            await bob.wait_event("message", id=newest.id)
            await ada.client.edit(newest.id, "newest, corrected")
            await bob.wait_event("message_edited", message_id=newest.id)
            for peer, other in ((ada, bob), (bob, ada)):
                info = await peer.client.contact(other.peer_id)
                assert info is not None and info.last_message == "newest, corrected"
                assert any(e.contact.last_message == "newest, corrected"  # type: ignore
                           for e in peer.named("contact"))
            await ada.client.delete(newest.id, for_everyone=True)
            await bob.wait_event("message_deleted", message_id=newest.id)
            info = await bob.client.contact(ada.peer_id)
            assert info is not None and info.last_message == "older"
            assert older.id

            room = await ada.client.create_room("Lobby")
            post = await ada.client.post(room.room_id, "a post")
            await ada.client.edit(post.id, "a post, corrected")
            rooms = await ada.client.rooms()
            assert rooms[0].last_message == "a post, corrected"

    run(scenario)


def test_a_file_offer_deleted_for_everyone_stops_being_served(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            path = tmp_path / "plan.txt"
            path.write_bytes(b"the plan" * 1000)
            offered = await ada.client.send_file(bob.peer_id, str(path))
            await bob.wait_event("file_offer", transfer=offered.transfer)
            history = await ada.client.history(bob.peer_id)
            (offer,) = [m for m in history if m.transfer == offered.transfer]
            await ada.client.delete(offer.id, for_everyone=True)
            await ada.wait_event("file_cancelled", transfer=offered.transfer)
            await bob.wait_event("message_deleted", message_id=offer.id)
            await bob.wait_for(lambda: bob.named("file_cancelled"), what="cancelled at Bob's")
            assert await bob.client.history(ada.peer_id) == []
            info = await ada.client.transfer(offered.transfer)
            assert info is not None and info.state.value == "cancelled"
            with pytest.raises(Exception, match=r"cancelled|declined|offer"):
                await bob.client.accept_file(offered.transfer, str(tmp_path / "in"))

    run(scenario)


def test_a_stranger_gets_no_reaction_in(tmp_path: Path) -> None:
    """A reaction, edit or delete from someone who is not a contact is REJECTed (4) before it
    is stored: it makes no message request, while a reply is a message like any other."""

    async def scenario() -> None:
        async with peers(tmp_path, "Bob", "Mal") as (bob, mal):
            await mal.client.add_contact(bob.invite)  # Bob never adds Mal
            body = ac.encode_action(ac.Action(ac.KIND_REACTION, "ab" * 16, "👀"))
            queued: MessageInfo = await mal.client.call(
                lambda node: _now(node.dms.queue(bob.peer_id, ac.KIND_REACTION, body)))
            await mal.wait_for(lambda: _state(mal, queued) == Delivery.FAILED.value,
                               what="the reaction refused")
            assert await bob.client.contact(mal.peer_id) is None
            assert bob.named("limit_reached")

    run(scenario)


def test_a_deleted_unread_message_leaves_the_unread_counts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            sent = await ada.client.send(bob.peer_id, "oops")
            await bob.wait_event("message", id=sent.id)
            assert await bob.client.unread_total() == 1
            await ada.client.delete(sent.id, for_everyone=True)
            await bob.wait_event("unread", total=0)
            assert await bob.client.unread_total() == 0

            room = await ada.client.create_room("Lobby")
            await bob.client.join_room(room.invite)
            post = await ada.client.post(room.room_id, "room oops")
            await bob.wait_event("room_message", id=post.id, timeout=30)
            def room_unread() -> int:
                entries = [e for e in bob.events if isinstance(e, RoomChanged)]
                return entries[-1].room.unread if entries else -1

            await bob.wait_for(lambda: room_unread() == 1, what="the post unread")
            await ada.client.delete(post.id, for_everyone=True)
            await bob.wait_event("message_deleted", message_id=post.id, timeout=30)
            await bob.wait_for(lambda: room_unread() == 0, what="the room's entry without it")
            # Deleted here only: no post announces the room, the deletion does.
            other = await ada.client.post(room.room_id, "another")
            await bob.wait_event("room_message", id=other.id, timeout=30)
            await bob.wait_for(lambda: room_unread() == 1, what="the other post unread")
            await bob.client.delete(other.id, for_everyone=False)
            await bob.wait_for(lambda: room_unread() == 0, what="the room's entry without it")
            assert await bob.client.unread_total() == 0

    run(scenario)


def test_a_room_with_a_member_of_the_previous_version_gets_replies_as_text(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            old = await Peer(tmp_path / "old", "Old",
                             NodeConfig(listen=(LOOPBACK,), message_actions=False)).start()
            try:
                room = await ada.client.create_room("Mixed")
                for member in (bob, old):
                    await member.client.join_room(room.invite)
                await wait_features(bob, ada)
                await wait_features(bob, old)
                assert await features_of(bob, old) == frozenset()
                first = await ada.client.post(room.room_id, "who brings the map?")
                await bob.wait_event("room_message", id=first.id, timeout=30)
                reply = await bob.client.post(room.room_id, "I do", reply_to=first.id)
                for member in (ada, old):
                    (got,) = await member.wait_event("room_message", id=reply.id, timeout=30)
                    assert got.text == "> who brings the map?\nI do"  # type: ignore
                    assert got.reply_to is None  # type: ignore[attr-defined]
                # Reactions and edits do not reach the old member's view; nothing garbles it.
                await ada.client.react(first.id, "🗺️")
                await ada.client.edit(first.id, "who brings the big map?")
                marker = await ada.client.post(room.room_id, "marker")
                await old.wait_event("room_message", id=marker.id, timeout=30)
                texts = [p.text for p in await old.client.room_history(room.room_id)]
                assert texts == ["who brings the map?", "> who brings the map?\nI do", "marker"]
            finally:
                await old.stop()

    run(scenario)


@pytest.mark.parametrize("order", ["in order", "take-back first", "shuffled"])
def test_reactions_end_the_same_whatever_order_their_changes_arrive(
    tmp_path: Path, order: str,
) -> None:
    """Room members get one person's reaction changes in different orders (gossip and sync):
    the newest change (by lamport) wins on every member, and an older "set" that comes after
    a take-back changes nothing."""
    from app.store.actions import ActionStore
    from app.store.db import open_database

    changes = [(3, False), (5, True), (7, False), (9, True)]  # (lamport, taken back)
    arrival = {"in order": changes, "take-back first": [changes[1], changes[0]],
               "shuffled": [changes[3], changes[1], changes[2], changes[0]]}[order]
    store = ActionStore(open_database(tmp_path / "kith.db"))
    for lamport, removed in arrival:
        store.react("ab" * 16, "cd" * 16, "Ada", "👍", removed, lamport)
    newest = max(arrival)
    shown = store.reactions("ab" * 16, ["cd" * 16])
    assert shown == ({} if newest[1] else {"cd" * 16: (("👍", ("Ada",)),)})
    # A repeat of anything seen changes nothing.
    for lamport, removed in arrival:
        assert not store.react("ab" * 16, "cd" * 16, "Ada", "👍", removed, lamport)
    assert store.reactions("ab" * 16, ["cd" * 16]) == shown


def test_room_posts_are_decorated_with_one_statement_per_page(tmp_path: Path) -> None:
    """Edits and reactions of a page of room posts come from one query: an edit belongs to
    its author's post only (post ids are the author's to choose), taken-back reactions are
    not shown, and pages beyond one statement's share are read in turn."""
    from app.core.room import RoomSecrets
    from app.store.actions import ActionStore
    from app.store.db import open_database
    from app.store.rooms import RoomStore

    conn = open_database(tmp_path / "kith.db")
    secrets = RoomSecrets.generate()
    RoomStore(conn).add_room(secrets, "Room", "")
    room, hexed = secrets.room_id, secrets.room_id.hex()
    store = ActionStore(conn)
    ada, bob, same = b"\x0a" * 32, b"\x0b" * 32, b"\x01" * 16
    many = [(ada, i.to_bytes(16, "big")) for i in range(2, 902)]
    assert store.edit_post(room, ada, same, "Ada's newer text", 5, b"\x09" * 16, 1234)
    assert store.edit_post(room, ada, many[-1][1], "the last one", 6, b"\x08" * 16, 99)
    store.react(hexed, same.hex(), "Ada", "👍", False, 1)
    store.react(hexed, same.hex(), "Bob", "❤️", False, 2)
    store.react(hexed, same.hex(), "Cy", "🎉", False, 3)
    store.react(hexed, same.hex(), "Cy", "🎉", True, 4)  # taken back
    store.react(hexed, many[0][1].hex(), "Bob", "👍", False, 5)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    edits, reactions = store.room_decorations(room, [(ada, same), (bob, same)])
    assert len(statements) == 1
    assert edits == {(ada, same): ("Ada's newer text", 1234)}
    assert reactions == {same.hex(): (("👍", ("Ada",)), ("❤️", ("Bob",)))}
    assert reactions == store.reactions(hexed, [same.hex()])
    statements.clear()
    edits, reactions = store.room_decorations(room, [(bob, same), *many])
    assert len(statements) == 3  # 901 posts, 400 a statement
    assert edits == {many[-1]: ("the last one", 99)}
    assert reactions == store.reactions(hexed, [same.hex(), *(p.hex() for _, p in many)])
    conn.close()
