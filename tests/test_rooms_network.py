"""Rooms between real peers in one process on 127.0.0.1: order, completeness, hostility."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr

from app.core import room as rc
from app.core.identity import Identity
from app.core.records import PostState
from app.node.gossip import open_pubsub
from app.node.host import build_host
from app.node.node import KithNode
from tests.attackers import room_attacker
from tests.peers import Peer, peers
from tests.ports import ports_held


def run(coro_fn):
    return asyncio.run(coro_fn())


async def _history_ids(peer: Peer, room_id: str) -> list[str]:
    return [p.id for p in await peer.client.room_history(room_id, limit=1000)]


async def _wait_history(peer: Peer, room_id: str, count: int, timeout: float = 60) -> None:
    box: list[int] = [0]

    async def refresh() -> None:
        box[0] = len(await _history_ids(peer, room_id))

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await refresh()
        if box[0] >= count:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{peer.name} has {box[0]} of {count} posts")
        await asyncio.sleep(0.05)


def test_burst_from_two_authors_reaches_everyone_once_in_the_same_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy", "Dee") as (ada, bob, cy, dee):
            room = await ada.client.create_room("Lobby", "where we meet")
            for member in (bob, cy, dee):
                joined = await member.client.join_room(room.invite)
                assert joined.room_id == room.room_id and joined.name == "Lobby"
            for member in (bob, cy, dee):
                await member.wait_for(
                    functools.partial(member.named, "room_members"), what="members known"
                )
            for i in range(150):
                await ada.client.post(room.room_id, f"ada {i}")
                await bob.client.post(room.room_id, f"bob {i}")
            for member, expected in ((ada, 150), (bob, 150), (cy, 300), (dee, 300)):
                await member.wait_event("room_message", count=expected, timeout=90)
            orders = [await _history_ids(p, room.room_id) for p in (ada, bob, cy, dee)]
            assert len(orders[0]) == 300 and len(set(orders[0])) == 300
            assert orders[0] == orders[1] == orders[2] == orders[3]
            for member in (cy, dee):  # exactly once each
                ids = [e.id for e in member.named("room_message")]  # type: ignore[attr-defined]
                assert len(ids) == len(set(ids)) == 300
            # Each author's own posts stay in the order they were written.
            texts = [p.text for p in await cy.client.room_history(room.room_id, limit=1000)]
            assert [t for t in texts if t.startswith("ada")] == [f"ada {i}" for i in range(150)]
            assert [t for t in texts if t.startswith("bob")] == [f"bob {i}" for i in range(150)]
            # Own posts were confirmed once gossip had peers to hand them to.
            own = await ada.client.room_history(room.room_id, limit=1000)
            assert {p.state for p in own if p.outgoing} == {PostState.CONFIRMED}
            members = await dee.client.room_members(room.room_id)
            assert {m.name for m in members} == {"Ada", "Bob", "Cy", "Dee"}
            # A chat burst is far inside the live-post quotas: nothing was dropped anywhere.
            for member in (ada, bob, cy, dee):
                assert await member.client.call(_quota_drops) == 0

    run(scenario)


async def _quota_drops(node: KithNode) -> int:
    return node.rooms.quotas.dropped


def test_late_joiner_receives_the_earlier_history(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Archive")
            for i in range(30):
                await ada.client.post(room.room_id, f"before {i}")
            await bob.client.join_room(room.invite)
            await bob.wait_event("room_message", count=30)
            texts = [p.text for p in await bob.client.room_history(room.room_id)]
            assert texts == [f"before {i}" for i in range(30)]
            # Posts that were pending (nobody to hand them to) are confirmed once served.
            await ada.wait_event("post_confirmed", count=30)

    run(scenario)


def test_member_stopped_during_posts_catches_up_on_a_new_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Ops")
            cy = await Peer(tmp_path / "cy", "Cy").start()
            await cy.client.join_room(room.invite)
            await bob.client.join_room(room.invite)
            await cy.wait_for(lambda: len(cy.named("room_members")) > 0, what="members")
            await ada.client.post(room.room_id, "hello all")
            await cy.wait_event("room_message")
            old_addrs = cy.ready.addrs if cy.ready else ()
            await cy.stop()
            for i in range(20):
                author = ada if i % 2 == 0 else bob
                await author.client.post(room.room_id, f"while Cy was away {i}")
            with ports_held(old_addrs):  # the old port stays taken: Cy restarts on a new one
                cy = await Peer(tmp_path / "cy", "Cy").start()
            try:
                assert cy.ready is not None and cy.ready.addrs != old_addrs
                await _wait_history(cy, room.room_id, 21)
                ids = await _history_ids(cy, room.room_id)
                assert ids == await _history_ids(ada, room.room_id)
            finally:
                await cy.stop()

    run(scenario)


def _forged_author(attacker: Identity, victim_key: bytes, secrets: rc.RoomSecrets) -> bytes:
    """A post that claims ``victim_key`` as author, signed by someone else."""
    genuine = rc.encode_inner(attacker, secrets.room_id, b"I am Ada", kind=rc.KIND_TEXT,
                              post_id=rc.new_post_id(), lamport=9, author_seq=1, sent_at_ms=1)
    forged = genuine[:33] + victim_key + genuine[65:]
    return rc.seal_inner(secrets, forged)


@pytest.mark.parametrize(
    "attack", ["forged author", "wrong key", "replay", "oversized", "other room", "garbage"]
)
def test_hostile_posts_are_dropped(tmp_path: Path, attack: str) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Mallory") as (ada, mallory):
            room = await ada.client.create_room("Guarded")
            await mallory.client.join_room(room.invite)
            await ada.client.post(room.room_id, "hello")
            await mallory.wait_event("room_message")
            secrets = rc.parse_room_invite(room.invite).secrets
            me = mallory.profile.identity
            valid = rc.encode_text_post(me, secrets, "once", lamport=50, author_seq=500,
                                        sent_at_ms=1)
            other = rc.RoomSecrets(rc.RoomSecrets.generate().room_id, secrets.key)
            payloads = {
                "forged author": [_forged_author(me, ada.profile.identity.public_key, secrets)],
                "wrong key": [rc.encode_text_post(me, rc.RoomSecrets.generate(), "x",
                                                  lamport=1, author_seq=1, sent_at_ms=1)],
                "replay": [valid, valid, valid],
                "oversized": [bytes([1]) + bytes(rc.MAX_ENVELOPE + 100)],
                "other room": [rc.encode_text_post(me, other, "x", lamport=1, author_seq=1,
                                                   sent_at_ms=1)],
                "garbage": [b"\x01" + b"\xee" * 300],
            }

            # Mallory's own node would refuse to publish these: a bare libp2p host does not.
            assert ada.ready is not None
            attacker = await room_attacker(ada.ready.addrs[0], secrets.topic)
            try:
                # One link is one ordered stream: once the marker is in, so is the rest.
                marker = rc.encode_text_post(Identity.generate(), secrets, "marker", lamport=2,
                                             author_seq=1, sent_at_ms=1)
                await attacker.publish(secrets.topic, [*payloads[attack], marker])
                await ada.wait_event("room_message", text="marker")
            finally:
                await attacker.stop()
            genuine = await mallory.client.post(room.room_id, "a real post")
            await ada.wait_event("room_message", id=genuine.id)
            history = await ada.client.room_history(room.room_id)
            texts = [p.text for p in history if p.text != "marker"]
            if attack == "replay":
                assert texts.count("once") == 1
                assert [e.text for e in ada.named("room_message")].count("once") == 1  # type: ignore[attr-defined]
            else:
                assert texts == ["hello", "a real post"]
            assert ada.client.running

    run(scenario)


def test_a_subscriber_without_the_key_sees_only_ciphertext(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            room = await ada.client.create_room("Secret")
            secrets = rc.parse_room_invite(room.invite).secrets
            assert ada.ready is not None
            ada_addr = ada.ready.addrs[0]
            seen: list[bytes] = []
            subscribed = asyncio.Event()
            loop = asyncio.get_running_loop()

            async def eavesdrop() -> None:
                listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
                host = build_host(Identity.generate(), [listen])
                async with host.run([listen]), open_pubsub(host) as pubsub:
                    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(ada_addr)))
                    subscription = await pubsub.subscribe(secrets.topic)
                    loop.call_soon_threadsafe(subscribed.set)
                    with trio.fail_after(30):
                        texts_seen = 0
                        while texts_seen < 3:  # (the test, not the eavesdropper, has the key)
                            message = await subscription.get()
                            seen.append(bytes(message.data))
                            texts_seen += rc.decode_post(secrets, seen[-1]).kind == rc.KIND_TEXT

            thread = loop.run_in_executor(None, trio.run, eavesdrop)
            await asyncio.wait_for(subscribed.wait(), 30)
            texts = ["the plan is at noon", "bring the maps", "tell nobody"]
            posted = 0
            while not thread.done():  # keep posting until the mesh carries three to it
                await ada.client.post(room.room_id, texts[posted % 3])
                posted += 1
                await asyncio.wait([thread], timeout=0.2)
            await thread
            for data in seen:
                assert not any(t.encode() in data for t in [*texts, "Ada", "Secret"])
                with pytest.raises(rc.WrongRoomKey):
                    rc.decode_post(rc.RoomSecrets(secrets.room_id, bytes(32)), data)
                post = rc.decode_post(secrets, data)  # members can read it
                assert post.kind != rc.KIND_TEXT or post.text in texts

    run(scenario)


def test_a_room_member_can_be_added_as_a_contact(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Meet")
            await bob.client.join_room(room.invite)
            await ada.wait_for(lambda: any(
                len(e.members) == 2 for e in ada.named("room_members")  # type: ignore[attr-defined]
            ), what="Bob's announce")
            link = await ada.client.member_invite(room.room_id, bob.peer_id)
            contact = await ada.client.add_contact(link)
            assert (contact.peer_id, contact.name) == (bob.peer_id, "Bob")
            await ada.wait_event("contact_online", peer_id=bob.peer_id)

    run(scenario)


def test_a_post_just_ahead_of_its_predecessor_starts_no_sync_but_a_lost_one_is_fetched(
    tmp_path: Path,
) -> None:
    """Relays deliver a burst slightly out of order; syncing at each such gap cost both sides
    a have-vector and a page. A predecessor still missing after GAP_GRACE is fetched."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Order")
            await bob.client.join_room(room.invite)
            await bob.wait_for(lambda: bob.named("room_members"), what="members known")
            await ada.client.post(room.room_id, "first")
            await bob.wait_event("room_message")
            room_id = bytes.fromhex(room.room_id)
            requested: list[str] = []
            gap_checks: list[int] = []

            async def watch(node: KithNode) -> None:
                rooms = node.rooms
                request, check = rooms.sync.request, rooms._sync_lasting_gaps

                def counting_request(live: Any, peer_id: str) -> None:
                    requested.append(peer_id)
                    request(live, peer_id)

                async def counting_check(live: Any) -> None:
                    await check(live)
                    gap_checks.append(1)

                rooms.sync.request = counting_request  # type: ignore[method-assign]
                rooms._sync_lasting_gaps = counting_check  # type: ignore[method-assign]

            async def written(node: KithNode, texts: list[str]) -> list[bytes]:
                """Posts numbered and stored by Ada as ``post`` would, not yet published."""
                rooms = node.rooms
                secrets = rooms._live[room_id].secrets
                envelopes = []
                for text in texts:
                    def build(lamport: int, seq: int, text: str = text) -> tuple[Any, bytes]:
                        envelope = rc.encode_post(node.identity, secrets, kind=rc.KIND_TEXT,
                                                  body=text.encode(), lamport=lamport,
                                                  author_seq=seq, sent_at_ms=1)
                        return rc.decode_post(secrets, envelope), envelope

                    _, envelope = rooms.store.store_own_post(
                        room_id, node.identity.public_key, build, PostState.PENDING.value)
                    envelopes.append(envelope)
                return envelopes

            def publishing(envelope: bytes) -> Callable[[KithNode], Awaitable[None]]:
                async def publish(node: KithNode) -> None:
                    secrets = node.rooms._live[room_id].secrets
                    await node.rooms._pubsub.publish(secrets.topic, envelope)
                return publish

            def texts_at_bob() -> list[str]:
                return [e.text for e in bob.named("room_message")]  # type: ignore[attr-defined]

            await bob.client.call(watch)
            second, third = await ada.client.call(lambda n: written(n, ["second", "third"]))
            await ada.client.call(publishing(third))
            await bob.wait_for(lambda: "third" in texts_at_bob(), what="third")
            await ada.client.call(publishing(second))
            await bob.wait_for(lambda: gap_checks, what="the gap checked after its grace")
            assert "second" in texts_at_bob()
            assert requested == []

            _, fifth = await ada.client.call(lambda n: written(n, ["fourth", "fifth"]))
            await ada.client.call(publishing(fifth))  # "fourth" is lost on the way
            await bob.wait_for(lambda: "fourth" in texts_at_bob(), what="fourth, by sync")
            assert requested == [ada.peer_id]

    run(scenario)
