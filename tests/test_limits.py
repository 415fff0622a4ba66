"""The resource manager against real attackers on 127.0.0.1 (app/node/resources.py).

Each attack was first run against the node without its limit, and broke it: these tests fail
there. Attackers are bare py-libp2p hosts (``tests.attackers``) or plain TCP sockets; victims
are real Kith nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import multiaddr
import pytest
import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol

from app.core import dm
from app.core import files as fc
from app.core.events import LimitReached
from app.core.records import ContactState, Delivery
from app.node.framing import encode_frame, read_frame
from app.node.node import KithNode
from app.node.resources import DEFAULT_LIMITS, Limits, PeerClass, PerClass
from tests.attackers import (
    YAMUX_DATA,
    YAMUX_HEADER,
    RawHost,
    multistream_hello,
    muxed_connection,
    open_streams,
    peer,
    raw_streams,
    send_messages,
    tcp_port,
)
from tests.peers import Peer, befriend, peers

T = TypeVar("T")


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


async def _now(value: T) -> T:
    return value


async def peek(victim: Peer, read: Callable[[KithNode], T]) -> T:
    """Read the victim node's state in its own thread."""
    return await victim.client.call(lambda node: _now(read(node)))


async def eventually(victim: Peer, check: Callable[[KithNode], object], what: str,
                     timeout: float = 10) -> None:
    """Wait until ``check`` holds in the victim node (polled in its own thread)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await peek(victim, check):
        if loop.time() > deadline:
            raise AssertionError(f"{victim.name}: timed out waiting for {what}")
        await asyncio.sleep(0.02)


def limits_reached(victim: Peer, limit: str) -> list[LimitReached]:
    return [e for e in victim.named("limit_reached")
            if isinstance(e, LimitReached) and e.limit == limit]


@contextlib.asynccontextmanager
async def started(path: Path, name: str, limits: Limits) -> Any:
    victim = await Peer(path / name.lower(), name, limits=limits).start()
    try:
        yield victim
    finally:
        await victim.stop()


async def exchange(a: Peer, b: Peer, timeout: float = 15) -> None:
    """A message each way between two contacts, delivered within ``timeout``."""
    there = await a.client.send(b.peer_id, f"from {a.name}")
    back = await b.client.send(a.peer_id, f"from {b.name}")
    await b.wait_event("message", id=there.id, timeout=timeout)
    await a.wait_event("message", id=back.id, timeout=timeout)


def test_peers_are_counted_by_who_they_are_to_us(tmp_path: Path) -> None:
    """Contacts, members of our rooms and strangers: the classes every limit depends on."""
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy), RawHost() as eve:
            await befriend(ada, bob)
            room = await ada.client.create_room("Lobby", "")
            await cy.client.join_room(room.invite)
            await ada.wait_for(lambda: any(
                cy.peer_id in {m.peer_id for m in e.members}  # type: ignore[attr-defined]
                for e in ada.named("room_members")), what="Cy as a member")
            classes = await peek(ada, lambda node: [
                node.peer_class(p) for p in (bob.peer_id, cy.peer_id, eve.peer_id)])
            assert classes == [PeerClass.CONTACT, PeerClass.MEMBER, PeerClass.STRANGER]

    run(scenario)


# -- streams ----------------------------------------------------------------------------------


def test_ten_thousand_silent_dm_streams_from_a_stranger_silence_nobody(tmp_path: Path) -> None:
    """py-libp2p's only stream limit was node-wide (10,000, both directions): one stranger's
    silent streams made Ada unreachable and unable to write to anyone. (Without limits, the
    flood outruns what Ada can take, and the streams waiting for a slot queue before Bob's.)"""
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob), RawHost() as eve:
            await befriend(ada, bob)
            await eve.connect(ada.invite)
            hello = multistream_hello(dm.PROTOCOL_ID)

            async def flood(host: IHost) -> None:
                with contextlib.suppress(Exception):  # Ada hangs up
                    await raw_streams(host, ada.peer_id, 20_000, hello, batch=200, pause=0.05)

            def absorbed(node: KithNode) -> bool:  # cut off, or (without limits) all held
                conns = node.host.get_network().get_connections(peer(eve.peer_id))
                return sum(len(c.get_streams()) for c in conns) >= 9_990 or not conns

            await eve.call(flood)
            await eventually(ada, absorbed, "the flood to be absorbed", timeout=60)
            await exchange(ada, bob)
            assert limits_reached(ada, "refusals")[0].peer_id == eve.peer_id
            (notice, *_) = limits_reached(ada, "protocol_streams")
            assert notice.peer_id == eve.peer_id

    run(scenario)


def test_a_stranger_at_its_stream_limit_leaves_our_streams_alone(tmp_path: Path) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, negotiation_timeout=60.0)
    most = limits.streams_per_peer.stranger

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada, \
                peers(tmp_path, "Bob") as (bob,), RawHost() as eve:
            await befriend(ada, bob)

            async def echo(stream: Any) -> None:
                await stream.close()

            echo_id = TProtocol("/test/echo")
            await eve.call(lambda host: _now(host.set_stream_handler(echo_id, echo)))
            await eve.connect(ada.invite)
            # Silent streams that never name a protocol: each waits in negotiation.
            await eve.call(lambda host: raw_streams(host, ada.peer_id, most))
            await eventually(ada, lambda node: node.resources.streams[eve.peer_id] == most,
                             f"Eve's {most} streams")
            await eve.call(lambda host: raw_streams(host, ada.peer_id, 1, first_id=3_000_001))
            await ada.wait_for(lambda: limits_reached(ada, "streams"), what="the refusal")
            assert await peek(ada, lambda node: node.resources.streams[eve.peer_id]) == most

            async def ours(node: KithNode) -> None:  # Ada's own stream to Eve opens at once
                with trio.fail_after(5):
                    stream = await node.host.new_stream(peer(eve.peer_id), [echo_id])
                    await stream.reset()

            await ada.client.call(ours)
            await exchange(ada, bob, timeout=10)

    run(scenario)


def test_a_peer_that_ignores_flow_control_is_cut_off(tmp_path: Path) -> None:
    """py-libp2p's Yamux kept whatever arrived past a stream's receive window (it buffered
    100 MiB on one stream nobody read)."""
    flood = 100 << 20

    unread = TProtocol("/kith-test/unread/1.0.0")  # a stream Ada opens and never reads

    async def never_read(stream: Any) -> None:
        await trio.sleep_forever()

    async def write_past_the_window(host: IHost, peer_id: str) -> int:
        await raw_streams(host, peer_id, 1, multistream_hello(unread), first_id=1001)
        muxed = muxed_connection(host, peer_id)
        chunk = bytes(256 << 10)
        sent = 0
        # Until the victim hangs up: an error, or (py-libp2p drops writes to a connection it
        # has closed itself) our side of the connection shutting down.
        with contextlib.suppress(Exception):
            while sent < flood and not muxed.event_shutting_down.is_set():
                await muxed._write_frame(
                    YAMUX_HEADER.pack(0, YAMUX_DATA, 0, 1001, len(chunk)) + chunk)
                sent += len(chunk)
        return sent

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            await peek(ada, lambda node: node.host.set_stream_handler(unread, never_read))
            await eve.connect(ada.invite)
            sent = await eve.call(lambda host: write_past_the_window(host, ada.peer_id))
            assert sent < flood
            await eventually(ada, lambda node: not node.is_connected(eve.peer_id), "the cut")

    run(scenario)


def test_a_stranger_s_streams_keep_a_small_receive_window(tmp_path: Path) -> None:
    """py-libp2p grows the window of a stream read quickly up to 16 MiB, which its sender
    could then fill and leave unread; a stranger's stay at 256 KiB."""
    body = "x" * 60_000

    async def burst(host: IHost, eve: RawHost, peer_id: str) -> Any:
        stream = await host.new_stream(peer(peer_id), [TProtocol(dm.PROTOCOL_ID)])
        frames = [encode_frame(dm.encode_message(
            eve.identity, peer_id, body, message_id=dm.new_message_id(), sent_at_ms=1))
            for _ in range(150)]

        async def replies() -> None:
            for _ in frames:
                await read_frame(stream, dm.MAX_FRAME)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(replies)
            await stream.write(b"".join(frames))
        return stream  # left open: Ada's side of it is looked at next

    eve_id = ""

    def largest_window(node: KithNode) -> int:
        conns = node.host.get_network().get_connections(peer(eve_id))
        return max(s.muxed_stream.target_recv_window  # type: ignore[attr-defined]
                   for c in conns for s in c.get_streams())

    async def scenario() -> None:
        nonlocal eve_id
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            eve_id = eve.peer_id
            await eve.connect(ada.invite)
            stream = await eve.call(lambda host: burst(host, eve, ada.peer_id))
            assert await peek(ada, largest_window) == DEFAULT_LIMITS.stream_window.stranger
            await eve.call(lambda _: stream.close())

    run(scenario)


@pytest.mark.parametrize("protocol", [dm.PROTOCOL_ID, fc.PROTOCOL_ID])
def test_a_stream_without_a_first_frame_is_closed_soon(tmp_path: Path, protocol: str) -> None:
    """The message and file handlers waited 120 s for a stranger's first frame."""
    limits = dataclasses.replace(DEFAULT_LIMITS, first_frame_timeout=0.5)

    async def held_open(host: IHost, peer_id: str) -> float:
        stream = await host.new_stream(peer(peer_id), [TProtocol(protocol)])
        started_at = trio.current_time()
        with trio.fail_after(10), contextlib.suppress(Exception):
            await stream.read(1)
        return trio.current_time() - started_at

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada, RawHost() as eve:
            await eve.connect(ada.invite)
            assert await eve.call(lambda host: held_open(host, ada.peer_id)) < 5

    run(scenario)


# -- connections ------------------------------------------------------------------------------


async def idle_sockets(port: int, count: int, source: str) -> list[tuple[Any, Any]]:
    """``count`` TCP connections to 127.0.0.1:``port`` from ``source`` that never speak."""
    out = []
    for _ in range(count):
        out.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)))
    return out


async def closed_by_peer(sockets: list[tuple[Any, Any]], within: float) -> int:
    """How many of ``sockets`` the other side closed within ``within`` seconds."""
    async def until_end(reader: Any) -> None:
        while await reader.read(1 << 16):  # a listener speaks first (multistream-select)
            pass

    async def closed(reader: Any) -> bool:
        try:
            await asyncio.wait_for(until_end(reader), within)
        except TimeoutError:
            return False
        except ConnectionError:
            return True  # reset
        return True

    results = await asyncio.gather(*(closed(r) for r, _ in sockets))
    return sum(results)


def _close_all(sockets: list[tuple[Any, Any]]) -> None:
    for _, writer in sockets:
        writer.close()


def test_idle_sockets_from_one_address_leave_room_for_everyone_else(tmp_path: Path) -> None:
    """260 idle sockets used to take py-libp2p's 250 inbound slots for 10 s each."""
    per_ip = DEFAULT_LIMITS.handshakes_per_ip

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            sockets = await idle_sockets(tcp_port(ada.invite), 260, "127.0.0.2")
            try:
                # All but the first few are closed at once; a new peer gets in meanwhile.
                assert await closed_by_peer(sockets[per_ip:], 3.0) == 260 - per_ip
                await befriend(ada, bob)
                assert limits_reached(ada, "handshakes")
            finally:
                _close_all(sockets)

    run(scenario)


def test_a_handshake_that_does_not_come_is_cut_off(tmp_path: Path) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, handshake_timeout=0.5)

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada:
            sockets = await idle_sockets(tcp_port(ada.invite), 4, "127.0.0.1")
            try:
                assert await closed_by_peer(sockets, 5.0) == 4  # py-libp2p waited 10 s
            finally:
                _close_all(sockets)

    run(scenario)


def test_inbound_connections_give_their_slot_back_when_they_close(tmp_path: Path) -> None:
    """py-libp2p kept an inbound slot per connection until the node stopped: after 250
    connections in a node's life, nobody could connect to it any more."""
    async def cycle(host: IHost, peer_id: str, addr: str, times: int) -> None:
        """Connect and hang up ``times`` times, a few at once."""
        target = multiaddr.Multiaddr(addr)
        limiter = trio.CapacityLimiter(4)

        async def once() -> None:
            async with limiter:
                with trio.fail_after(10):
                    conn = await host.get_network().dial_addr(target, peer(peer_id))
                    await conn.muxed_conn.close()

        async with trio.open_nursery() as nursery:
            for _ in range(times):
                nursery.start_soon(once)

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob), RawHost() as eve:
            addr = f"/ip4/127.0.0.1/tcp/{tcp_port(ada.invite)}"
            await eve.call(lambda host: cycle(host, ada.peer_id, addr, 260))
            await bob.client.add_contact(ada.invite)  # Bob dials Ada
            await bob.wait_event("contact_online", peer_id=ada.peer_id)
            # Eve's 260 are gone from the count as from the swarm; Bob's is counted.
            await eventually(ada, lambda node: not node.resources.account().mismatches()
                             and node.resources.connections == {PeerClass.STRANGER: 1},
                             "only Bob's connection counted")

    run(scenario)


def test_a_flood_from_many_addresses_leaves_our_dials_to_contacts_alone(tmp_path: Path) -> None:
    """Before the handshake nobody is known, so contacts cannot be told from attackers: when
    sockets from many addresses fill every handshake slot, new inbound connections wait, but
    the dials we make to our contacts are never counted, and messages flow."""
    limits = dataclasses.replace(DEFAULT_LIMITS, handshakes=32)

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada, peers(tmp_path, "Bob") as (bob,):
            await ada.client.add_contact(bob.invite)
            sockets: list[tuple[Any, Any]] = []
            try:
                for i in range(2, 2 + 40):
                    sockets += await idle_sockets(tcp_port(ada.invite), 1, f"127.0.0.{i}")
                await ada.wait_for(lambda: limits_reached(ada, "handshakes"), what="saturation")
                sent = await ada.client.send(bob.peer_id, "through the flood")
                await bob.wait_event("message", id=sent.id)
                await ada.wait_event("delivered", id=sent.id)
            finally:
                _close_all(sockets)

    run(scenario)


# -- what a stranger can make us store ---------------------------------------------------------


def test_a_stranger_cannot_fill_the_database_with_messages(tmp_path: Path) -> None:
    """1,500 messages of 60 KB from one stranger were all stored (190 MB)."""
    body = "x" * 60_000
    quota = DEFAULT_LIMITS.request_bytes // len(body)

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            await eve.connect(ada.invite)
            replies = await eve.call(lambda host: send_messages(
                host, eve.identity, ada.peer_id, [(dm.KIND_TEXT, body)] * 40))
            kinds = [type(r).__name__ for r in replies]
            assert kinds == ["Ack"] * quota + ["Reject"] * (40 - quota)
            assert {r.reason for r in replies if isinstance(r, dm.Reject)} == {dm.REJECT_QUOTA}
            assert len(await ada.client.history(eve.peer_id)) == quota
            (notice,) = limits_reached(ada, "request_quota")
            assert notice.peer_id == eve.peer_id
            # Once accepted, Eve is a contact and is no longer held to a request's quota.
            await ada.client.accept_request(eve.peer_id)
            replies = await eve.call(lambda host: send_messages(
                host, eve.identity, ada.peer_id, [(dm.KIND_TEXT, body)] * 5))
            assert all(isinstance(r, dm.Ack) for r in replies)

    run(scenario)


def test_throwaway_identities_cannot_pile_up_message_requests(tmp_path: Path) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, pending_requests=5)

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada:
            outcomes = []
            for _ in range(8):
                async with RawHost() as stranger:
                    await stranger.connect(ada.invite)
                    (reply,) = await stranger.call(functools.partial(
                        send_messages, identity=stranger.identity, peer_id=ada.peer_id,
                        bodies=[(dm.KIND_TEXT, "hello")]))
                    outcomes.append(type(reply).__name__)
            assert outcomes == ["Ack"] * 5 + ["Reject"] * 3
            contacts = await ada.client.contacts()
            assert [c.state for c in contacts] == [ContactState.REQUEST] * 5
            assert len(limits_reached(ada, "message_requests")) == 1  # one notice, not three

    run(scenario)


def _offer(chunks: int = 1) -> str:
    return fc.FileOffer(fc.new_transfer_id(), "a.bin", chunks * fc.MIN_CHUNK_SIZE,
                        fc.MIN_CHUNK_SIZE, bytes(32)).to_json().decode()


def test_file_offers_waiting_from_a_stranger_are_capped(tmp_path: Path) -> None:
    """302 offers from one stranger were all kept."""
    cap = DEFAULT_LIMITS.pending_offers.stranger

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            await eve.connect(ada.invite)
            offers = [(dm.KIND_FILE_OFFER, _offer()) for _ in range(cap + 2)]
            replies = await eve.call(lambda host: send_messages(
                host, eve.identity, ada.peer_id, offers))
            assert [type(r).__name__ for r in replies] == ["Ack"] * cap + ["Reject"] * 2
            assert {r.reason for r in replies if isinstance(r, dm.Reject)} == {dm.REJECT_QUOTA}
            await ada.wait_event("file_offer", count=cap)
            assert len(await ada.client.transfers()) == cap
            assert limits_reached(ada, "file_offers")

    run(scenario)


def test_a_contact_over_its_offer_limit_sees_why(tmp_path: Path) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, pending_offers=PerClass(3, 3, 2))

    async def scenario() -> None:
        async with started(tmp_path, "Bob", limits) as bob, peers(tmp_path, "Ada") as (ada,):
            await befriend(ada, bob)
            for i in range(3):
                path = tmp_path / f"f{i}.txt"
                path.write_text(f"file {i}")
                await ada.client.send_file(bob.peer_id, str(path))
            (failed,) = await ada.wait_event("file_failed")
            assert failed.reason == dm.REJECT_REASONS[dm.REJECT_QUOTA]  # type: ignore[attr-defined]
            assert len(bob.named("file_offer")) == 2

    run(scenario)


def test_an_offer_whose_hash_list_would_not_fit_is_refused(tmp_path: Path) -> None:
    """An accepted offer of 2^21 chunks took 226 MB of memory; the format allowed 2^24."""
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            await eve.connect(ada.invite)
            big = json.loads(_offer())
            big["size"] = (1 << 21) * fc.MIN_CHUNK_SIZE
            replies = await eve.call(lambda host: send_messages(
                host, eve.identity, ada.peer_id, [(dm.KIND_FILE_OFFER, json.dumps(big))]))
            assert replies == [dm.Reject(replies[0].message_id, dm.REJECT_TOO_LARGE)]
            assert not await ada.client.transfers() and not ada.named("file_offer")
            biggest = json.loads(_offer(fc.MAX_CHUNKS))  # the largest a receiver holds
            replies = await eve.call(lambda host: send_messages(
                host, eve.identity, ada.peer_id, [(dm.KIND_FILE_OFFER, json.dumps(biggest))]))
            assert isinstance(replies[0], dm.Ack)
            await ada.wait_event("file_offer")

    run(scenario)


def test_a_message_retried_after_the_quota_is_still_acknowledged(tmp_path: Path) -> None:
    """A retry of a message already kept (its ACK was lost) is not refused by the quota."""
    limits = dataclasses.replace(DEFAULT_LIMITS, request_messages=1)

    async def twice(host: IHost, eve: RawHost, peer_id: str) -> list[Any]:
        payload = dm.encode_message(eve.identity, peer_id, "once", message_id=bytes(16),
                                    sent_at_ms=1)
        replies = []
        for _ in range(2):
            stream = await host.new_stream(peer(peer_id), [TProtocol(dm.PROTOCOL_ID)])
            await stream.write(encode_frame(payload))
            replies.append(dm.decode_reply(await read_frame(stream, dm.MAX_FRAME)))
            await stream.close()
        return replies

    async def scenario() -> None:
        async with started(tmp_path, "Ada", limits) as ada, RawHost() as eve:
            await eve.connect(ada.invite)
            replies = await eve.call(lambda host: twice(host, eve, ada.peer_id))
            assert replies == [dm.Ack(bytes(16)), dm.Ack(bytes(16))]
            history = await ada.client.history(eve.peer_id)
            assert [(m.text, m.state) for m in history] == [("once", Delivery.RECEIVED)]

    run(scenario)


def test_streams_over_a_protocol_limit_are_reset_after_negotiation(tmp_path: Path) -> None:
    """py-libp2p's own dialer: the protocol is known only once negotiated, so the streams over
    a stranger's DM limit open and are reset at once; two stay."""
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,), RawHost() as eve:
            await eve.connect(ada.invite)
            opened, failed = await eve.call(
                lambda host: open_streams(host, ada.peer_id, dm.PROTOCOL_ID, 6))
            assert len(opened) + failed == 6
            _, most = DEFAULT_LIMITS.protocol_limit(dm.PROTOCOL_ID, PeerClass.STRANGER)
            held = await peek(ada, lambda node: node.resources.protocol_streams[
                (eve.peer_id, "/kith/dm/")])
            assert held == most
            assert limits_reached(ada, "protocol_streams")

    run(scenario)
