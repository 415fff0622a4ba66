"""History sync between real peers on 127.0.0.1: no number spent without a post, rooms with
holes that still converge, peers of the previous version, and what a requester can make a
member spend."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.host.exceptions import StreamFailure
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID

from app.core import room as rc
from app.node.framing import read_frame, write_frame
from app.node.node import KithNode
from app.node.room_limits import MAX_SERVES_PER_PEER, Rate, ServeLimits
from app.node.rooms import MAX_SYNC_PAGE_BYTES, SYNC2_PROTOCOL_ID, SYNC_PROTOCOL_ID
from tests.peers import Peer, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


async def node_value(peer: Peer, fn):
    async def call(node: KithNode):
        return fn(node)

    return await peer.client.call(call)


async def fill(peer: Peer, room_id: str, count: int, size: int = 0) -> None:
    """``count`` posts by ``peer`` stored as its own, without gossip (as if nobody was online)."""

    async def write(node: KithNode) -> None:
        secrets = node.rooms.store.room(bytes.fromhex(room_id)).secrets  # type: ignore[union-attr]
        for i in range(count):
            text = f"filled {i} " + "x" * size

            def build(lamport: int, seq: int, text: str = text, i: int = i
                      ) -> tuple[rc.RoomPost, bytes]:
                data = rc.encode_text_post(node.identity, secrets, text, lamport=lamport,
                                           author_seq=seq, sent_at_ms=1_767_225_600_000 + i)
                return rc.decode_post(secrets, data), data

            node.rooms.store.store_own_post(secrets.room_id, node.identity.public_key, build,
                                              "pending")

    await peer.client.call(write)


async def history_ids(peer: Peer, room_id: str) -> list[str]:
    """Every post id of the room, in the room's order (any number of pages)."""
    return await node_value(peer, lambda node: [bytes(r[0]).hex() for r in node.db.execute(
        "SELECT post_id FROM room_posts WHERE room_id = ? ORDER BY lamport, author_key, post_id",
        (bytes.fromhex(room_id),))])


async def converge(room_id: str, reference: Peer, *members: Peer, timeout: float = 30) -> None:
    expected = await history_ids(reference, room_id)
    for member in members:
        box: list[list[str]] = [[]]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (box.__setitem__(0, await history_ids(member, room_id)) or box[0]) != expected:
            assert loop.time() < deadline, (
                f"{member.name} holds {len(box[0])} of {len(expected)} posts")
            await asyncio.sleep(0.05)


def held_by(peer: Peer, room_id: str, author: Peer):
    return node_value(peer, lambda node: node.rooms.store.held_ranges(bytes.fromhex(room_id))
                      .get(author.profile.identity.public_key))


def test_a_post_that_fails_while_being_written_spends_no_number(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Ops")
            await bob.client.join_room(room.invite)
            for text in ("one", "two"):
                posted = await ada.client.post(room.room_id, text)
                await bob.wait_event("room_message", id=posted.id)

            async def fault(node: KithNode) -> None:  # the disk fails, or power goes, here
                node.db.execute(
                    "CREATE TEMP TRIGGER fault BEFORE INSERT ON room_posts WHEN NEW.author = "
                    f"'{node.identity.peer_id}' BEGIN SELECT RAISE(ABORT, 'write failed'); END")

            await ada.client.call(fault)
            with pytest.raises(Exception, match="write failed"):
                await ada.client.post(room.room_id, "lost")
            await ada.client.call(lambda node: _now(node.db.execute("DROP TRIGGER fault")))
            for text in ("three", "four"):
                posted = await ada.client.post(room.room_id, text)
                await bob.wait_event("room_message", id=posted.id)
            assert await held_by(bob, room.room_id, ada) == [(1, 4)]
            assert [p.text for p in await bob.client.room_history(room.room_id)] == [
                "one", "two", "three", "four"]

    run(scenario)


async def _now(value: Any) -> Any:
    return value


def test_a_room_with_a_hole_converges_on_every_member(tmp_path: Path) -> None:
    """A profile holed by an older Kith (a number spent without a post), then more than a
    sync page of posts past the hole: a member coming back and a late joiner get them all."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Ops")
            await bob.client.join_room(room.invite)
            first = await ada.client.post(room.room_id, "before the hole")
            await bob.wait_event("room_message", id=first.id)
            await bob.stop()
            await ada.client.call(lambda node: _now(node.db.execute(
                "UPDATE rooms SET my_seq = my_seq + 1")))  # what a crash used to leave
            await fill(ada, room.room_id, 2 * rc.MAX_SYNC_PAGE + 150)
            assert await held_by(ada, room.room_id, ada) == [(1, 1), (3, 1152)]
            bob = await Peer(tmp_path / "bob", "Bob").start()
            cy = await Peer(tmp_path / "cy", "Cy").start()
            try:
                await cy.client.join_room(room.invite)
                await converge(room.room_id, ada, bob, cy)
                assert len(await history_ids(cy, room.room_id)) == 1151
            finally:
                await asyncio.gather(bob.stop(), cy.stop())

    run(scenario)


async def as_previous_version(peer: Peer) -> None:
    """Make ``peer`` speak /kith/sync/1.0.0 only, as Kith did before 2.0.0 existed."""

    async def downgrade(node: KithNode) -> None:
        node.host.remove_stream_handler(SYNC2_PROTOCOL_ID)
        node.rooms.sync.protocols = (SYNC_PROTOCOL_ID,)

    await peer.client.call(downgrade)


def test_sync_with_a_peer_of_the_previous_version_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await as_previous_version(bob)  # before anyone connects
            room = await ada.client.create_room("Mixed")
            await fill(ada, room.room_id, 30)
            await bob.client.join_room(room.invite)  # an old requester, a new responder
            await converge(room.room_id, ada, bob)
            from_bob = await bob.client.post(room.room_id, "from the old one")
            await ada.wait_event("room_message", id=from_bob.id)
            bob_invite = (await bob.client.rooms())[0].invite
            await ada.stop()
            cy = await Peer(tmp_path / "cy", "Cy").start()
            try:
                await cy.client.join_room(bob_invite)  # a new requester, an old responder
                await converge(room.room_id, bob, cy)
                assert len(await history_ids(cy, room.room_id)) == 31
            finally:
                await cy.stop()

    run(scenario)


# ---- what a requester can make a member spend -----------------------------------------------


async def raw_request(node: KithNode, to: str, secrets: rc.RoomSecrets,
                      protocol: str = SYNC2_PROTOCOL_ID) -> Any:
    stream = await node.host.new_stream(ID.from_base58(to), [protocol])  # type: ignore[list-item]
    if protocol == SYNC2_PROTOCOL_ID:
        await write_frame(stream, rc.encode_range_sync_request(secrets, {}, rc.MAX_SYNC_PAGE))
    else:
        await write_frame(stream, rc.encode_sync_request(secrets, {}, rc.MAX_SYNC_PAGE))
    return stream


async def read_page(stream: Any) -> tuple[int, int, bool]:
    """(posts, bytes of envelopes, more) of one response."""
    posts = size = 0
    while True:
        frame = rc.decode_sync_response(await read_frame(stream, rc.MAX_SYNC_RESPONSE))
        if isinstance(frame, rc.SyncEnd):
            await stream.close()
            return posts, size, frame.more
        posts += 1
        size += len(frame.envelope)


def test_serving_sync_is_bounded_per_page_per_peer_and_in_budget(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Big")
            secrets = rc.parse_room_invite(room.invite).secrets
            await fill(ada, room.room_id, 100, size=60_000)  # 6 MB of history
            await bob.client.join_room(room.invite)
            await converge(room.room_id, ada, bob)  # Bob's own sync is done

            async def one_page(node: KithNode, protocol: str) -> tuple[int, int, bool]:
                return await read_page(await raw_request(node, ada.peer_id, secrets, protocol))

            # A 62-byte request gets one page of at most 4 MiB (plus the post that crossed it).
            for protocol in (SYNC2_PROTOCOL_ID, SYNC_PROTOCOL_ID):
                posts, size, more = await bob.client.call(
                    functools.partial(one_page, protocol=protocol))
                assert more and MAX_SYNC_PAGE_BYTES <= size < MAX_SYNC_PAGE_BYTES + 61_000
                assert posts == 70

            # Slow readers: two requests of one peer are served at once, a third is refused.
            async def readers(node: KithNode) -> list[Any]:
                return [await raw_request(node, ada.peer_id, secrets)
                        for _ in range(MAX_SERVES_PER_PEER)]

            held = await bob.client.call(readers)
            await wait_serving(ada, bob.peer_id, MAX_SERVES_PER_PEER)

            async def third(node: KithNode) -> str:
                try:
                    with trio.fail_after(10):
                        await read_page(await raw_request(node, ada.peer_id, secrets))
                except (StreamError, StreamFailure) as exc:  # reset at once, or mid-request
                    return type(exc).__name__
                return "served"

            assert await bob.client.call(third) != "served"

            async def drain(node: KithNode) -> list[tuple[int, int, bool]]:
                return [await read_page(stream) for stream in held]

            assert [p for p, _, _ in await bob.client.call(drain)] == [70, 70]

            # Over its byte budget, a peer's pages are cut short: paced, not refused.
            async def tight(node: KithNode) -> None:
                node.rooms.sync.serves = ServeLimits(Rate(burst=100_000, per_second=1_000))

            await ada.client.call(tight)
            posts, _, more = await bob.client.call(lambda node: one_page(node, SYNC2_PROTOCOL_ID))
            assert (posts, more) == (1, True)

    run(scenario)


async def wait_serving(peer: Peer, requester: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    def serving(node: KithNode) -> int:
        return node.rooms.sync.serves._active.get(requester, 0)

    while await node_value(peer, serving) < count:
        assert loop.time() < deadline, "the requests were never being served"
        await asyncio.sleep(0.02)
