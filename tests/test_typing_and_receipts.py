"""Typing signals and read receipts between real peers in one process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from pathlib import Path

from app.core import actions as ac
from app.core.records import Delivery, MessageInfo
from app.node.node import KithNode
from app.node.typing_signals import FEATURE_TYPING, SHOW_INTERVAL
from tests.peers import Peer, befriend, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


async def wait_features(peer: Peer, other: Peer) -> frozenset[str]:
    while True:
        found = await peer.client.call(
            lambda node: _now(node.actions.store.features(other.peer_id)))
        if found is not None:
            return found
        await asyncio.sleep(0.02)


async def _now(value):
    return value


def _typing_from(peer: Peer, other: Peer) -> list:
    return [e for e in peer.named("typing") if e.by == other.peer_id]  # type: ignore[attr-defined]


def test_typing_in_a_conversation_and_a_room_bounded_and_switchable(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            await befriend(ada, bob)
            assert FEATURE_TYPING in await wait_features(ada, bob)
            assert await ada.client.typing(to=bob.peer_id)
            (shown,) = await bob.wait_event("typing", by=ada.peer_id)
            assert shown.to == bob.peer_id and shown.room is None  # type: ignore[attr-defined]
            assert shown.to_json() == {"event": "typing", "by": ada.peer_id, "to": bob.peer_id}
            assert not await ada.client.typing(to=bob.peer_id)  # a moment later: not sent

            # A flood straight to the protocol, past the sender's own limit: announced at most
            # once per SHOW_INTERVAL (each signal returns once Bob took it).
            async def flood(node: KithNode) -> None:
                for _ in range(40):
                    await node.actions.signals()[1]._signal(bob.peer_id, b"")

            started = time.monotonic()
            await ada.client.call(flood)
            elapsed = time.monotonic() - started
            assert len(_typing_from(bob, ada)) <= 2 + int(elapsed / SHOW_INTERVAL)

            # Switched off on Bob's side: none shown; on Ada's: none sent.
            await bob.client.set_privacy(typing=False)
            before = len(_typing_from(bob, ada))
            await ada.client.call(lambda node: node.actions.signals()[1]._signal(bob.peer_id, b""))
            assert len(_typing_from(bob, ada)) == before
            await ada.client.set_privacy(typing=False)
            assert not await ada.client.typing(to=bob.peer_id)

            # A room: the members we are connected to.
            room = await ada.client.create_room("Lobby")
            await bob.client.set_privacy(typing=True)
            for member in (bob, cy):
                await member.client.join_room(room.invite)
            for member in (ada, bob, cy):
                await member.wait_for(functools.partial(member.named, "room_members"))

            async def connected_to_both(node: KithNode) -> bool:
                return node.is_connected(ada.peer_id) and node.is_connected(bob.peer_id)

            while not await cy.client.call(connected_to_both):
                await asyncio.sleep(0.05)
            assert await cy.client.typing(room=room.room_id)
            (in_room,) = await bob.wait_event("typing", by=cy.peer_id)
            assert in_room.room == room.room_id  # type: ignore[attr-defined]
            assert not ada.named("typing") or all(
                e.by != cy.peer_id for e in ada.named("typing"))  # type: ignore[attr-defined]

    run(scenario)


def _state(peer: Peer, message: MessageInfo) -> str:
    conn = sqlite3.connect(peer.profile.db_path)
    try:
        row = conn.execute("SELECT state FROM messages WHERE msg_id = ? AND outgoing = 1",
                           (bytes.fromhex(message.id),)).fetchone()
        return str(row[0]) if row else ""
    finally:
        conn.close()


def _receipt_state(peer: Peer) -> str:
    """The state of the newest read receipt ``peer`` sent."""
    conn = sqlite3.connect(peer.profile.db_path)
    try:
        row = conn.execute("SELECT state FROM messages WHERE outgoing = 1 AND kind = ? "
                           "ORDER BY seq DESC LIMIT 1", (ac.KIND_READ,)).fetchone()
        return str(row[0]) if row else ""
    finally:
        conn.close()


def test_read_receipts_both_ways_and_off_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            assert ac.FEATURE_RECEIPTS in await wait_features(bob, ada)
            await wait_features(ada, bob)
            first = await ada.client.send(bob.peer_id, "one")
            second = await ada.client.send(bob.peer_id, "two")
            for message in (first, second):
                await ada.wait_event("delivered", id=message.id)
            assert await bob.client.mark_message_read(second.id)
            assert not await bob.client.mark_message_read(second.id)  # once is enough
            for message in (first, second):
                (read,) = await ada.wait_event("read", message_id=message.id)
                assert read.by == bob.peer_id  # type: ignore[attr-defined]
            history = await ada.client.history(bob.peer_id)
            assert [m.state for m in history] == [Delivery.READ, Delivery.READ]

            # Bob switches receipts off: he sends none, and shows none of Ada's.
            await bob.client.set_privacy(read_receipts=False)
            third = await ada.client.send(bob.peer_id, "three")
            await bob.wait_event("message", id=third.id)
            assert not await bob.client.mark_message_read(third.id)
            answer = await bob.client.send(ada.peer_id, "answer")
            await ada.wait_event("message", id=answer.id)
            await bob.wait_event("delivered", id=answer.id)
            assert await ada.client.mark_message_read(answer.id)
            await ada.wait_for(lambda: _receipt_state(ada) == Delivery.DELIVERED.value,
                               what="Ada's receipt delivered")
            assert not bob.named("read") and _state(bob, answer) == Delivery.DELIVERED.value
            assert _state(ada, third) == Delivery.DELIVERED.value

    run(scenario)
