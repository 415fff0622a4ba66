"""Gossipsub for rooms (app.node.gossip) between real hosts on 127.0.0.1, one trio run per test.

Peers are connected in a line a - b - c, so c only gets what b relays. Every wait is on a
condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import libp2p.peer.peerstore
import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
import libp2p.pubsub.utils
import pytest
import trio
from libp2p.abc import IHost, INetStream, ISubscriptionAPI
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, MessageTooLarge
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.network.stream.net_stream import NetStream
from libp2p.peer.envelope import Envelope
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerRecordState, create_signed_peer_record
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX, signature_validator
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils import encode_varint_prefixed
from multiaddr import Multiaddr

from app.core.identity import Identity
from app.node import delivery_hint
from app.node.gossip import (
    GOSSIP_PROTOCOLS,
    ChatGossipSub,
    GossipConfig,
    KithPubsub,
    PayloadTooLarge,
    _RpcReader,
    open_pubsub,
)
from app.node.host import build_host, key_pair
from app.node.libp2p_patches import read_pacing
from app.node.libp2p_patches import yamux as yamux_patches

LOOPBACK = Multiaddr("/ip4/127.0.0.1/tcp/0")
ROOT = Path(__file__).resolve().parents[1]
TOPIC = "kith-room-test"
DEADLINE = 15.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    trio.run(scenario)


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll a condition (each poll yields to the network) until it holds or time runs out."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def start_hosts(stack: AsyncExitStack, count: int) -> list[IHost]:
    """Running hosts that stop when ``stack`` closes."""
    started = []
    for _ in range(count):
        host = build_host(Identity.generate(), [LOOPBACK])
        await stack.enter_async_context(host.run([LOOPBACK]))
        started.append(host)
    return started


async def connect(a: IHost, b: IHost) -> None:
    await a.connect(PeerInfo(b.get_id(), b.get_addrs()))


@asynccontextmanager
async def plain_pubsub(host: IHost) -> AsyncIterator[Pubsub]:
    """Stock py-libp2p pubsub with its defaults: a foreign client that is not Kith."""
    router = GossipSub(protocols=[PROTOCOL_ID_V11], degree=6, degree_low=4, degree_high=12)
    pubsub = Pubsub(host, router)
    async with background_trio_service(pubsub), background_trio_service(router):
        await pubsub.wait_until_ready()
        yield pubsub
    pubsub.seen_messages.stop()


async def line(
    stack: AsyncExitStack, count: int, config: GossipConfig | None = None
) -> tuple[list[IHost], list[KithPubsub], list[ISubscriptionAPI]]:
    """``count`` Kith peers connected in a line, all in TOPIC, with the mesh formed."""
    hs = await start_hosts(stack, count)
    config = config or GossipConfig()
    pubsubs = [await stack.enter_async_context(open_pubsub(h, config)) for h in hs]
    for a, b in itertools.pairwise(hs):
        await connect(a, b)
    subs = [await p.subscribe(TOPIC) for p in pubsubs]
    await wait_for_line_mesh(hs, pubsubs)
    return hs, pubsubs, subs


async def wait_for_line_mesh(hs: Sequence[IHost], pubsubs: Sequence[KithPubsub]) -> None:
    def formed() -> bool:
        for i, pubsub in enumerate(pubsubs):
            neighbours = {hs[j].get_id() for j in (i - 1, i + 1) if 0 <= j < len(hs)}
            if not neighbours <= pubsub.gossip.mesh.get(TOPIC, set()):
                return False
        return True

    await wait_until(formed, "the mesh along the line")


async def count_into(subscription: ISubscriptionAPI, counter: Counter[bytes]) -> None:
    async for message in subscription:
        counter[message.data] += 1


async def flush(pubsubs: Sequence[KithPubsub], counters: Sequence[Counter[bytes]]) -> None:
    """Publish a marker from every peer and wait for all of them everywhere.

    Each link is one ordered stream, so once every marker has arrived, anything sent before
    it (duplicates included) has been delivered too.
    """
    markers = [b"marker-" + os.urandom(8) for _ in pubsubs]
    for pubsub, marker in zip(pubsubs, markers, strict=True):
        await pubsub.publish(TOPIC, marker)
    await wait_until(
        lambda: all(c[m] for c in counters for m in markers), "the markers everywhere"
    )
    for counter in counters:
        for marker in markers:
            del counter[marker]


def test_burst_of_1000_from_one_peer_arrives_everywhere_exactly_once() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, pubsubs, subs = await line(stack, 3)
            counters: list[Counter[bytes]] = [Counter() for _ in pubsubs]
            async with trio.open_nursery() as nursery:
                for sub, counter in zip(subs, counters, strict=True):
                    nursery.start_soon(count_into, sub, counter)
                sent = [b"post %04d " % i + os.urandom(16) for i in range(1000)]
                for data in sent:  # as fast as publish returns
                    await pubsubs[0].publish(TOPIC, data)
                await wait_until(
                    lambda: all(len(c) >= len(sent) for c in counters), "1000 posts everywhere"
                )
                await flush(pubsubs, counters)
                nursery.cancel_scope.cancel()
            for counter in counters:  # the publisher gets its own posts back too
                assert set(counter) == set(sent)
                assert set(counter.values()) == {1}
            assert all(p.dropped[TOPIC] == 0 for p in pubsubs)

    run(scenario)


def test_a_relayed_message_reaches_the_mesh_and_waits_for_a_peer_not_yet_in_the_room() -> None:
    """``ChatGossipSub.publish``: a member relays a message to its mesh (a control message
    waiting for a peer riding along), and keeps it for a connected peer not yet subscribed,
    which gets it once it joins (upstream's queue)."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 3)
            [late_host] = await start_hosts(stack, 1)
            late = await stack.enter_async_context(open_pubsub(late_host))
            await connect(hs[1], late_host)
            await wait_until(lambda: late_host.get_id() in pubsubs[1].peers,
                             "the late peer's pubsub stream")
            relay, far = pubsubs[1].gossip, hs[2].get_id()
            relay._push_control_retry(far, rpc_pb2.ControlMessage(
                prune=[rpc_pb2.ControlPrune(topicID="elsewhere")]))
            await pubsubs[0].publish(TOPIC, b"relayed")
            with trio.fail_after(DEADLINE):
                assert (await subs[2].get()).data == b"relayed"
            assert far not in relay._pending_control  # sent with the relayed message
            waiting = relay._pending_messages.get(late_host.get_id(), [])
            assert [m.data for _, rpc in waiting for m in rpc.publish] == [b"relayed"]
            assert relay.time_since_last_publish.get(TOPIC)
            joined = await late.subscribe(TOPIC)
            with trio.fail_after(DEADLINE):
                assert (await joined.get()).data == b"relayed"

    run(scenario)


async def full_mesh(
    stack: AsyncExitStack, count: int
) -> tuple[list[IHost], list[KithPubsub], list[ISubscriptionAPI]]:
    """``count`` Kith peers, each connected to every other, all in TOPIC, each with every
    other in its mesh (a small room)."""
    hs = await start_hosts(stack, count)
    pubsubs = [await stack.enter_async_context(open_pubsub(h)) for h in hs]
    for a, b in itertools.combinations(hs, 2):
        await connect(a, b)
    subs = [await p.subscribe(TOPIC) for p in pubsubs]
    await wait_until(lambda: all(
        {h.get_id() for h in hs} - {own.get_id()} <= pubsub.gossip.mesh.get(TOPIC, set())
        for own, pubsub in zip(hs, pubsubs, strict=True)), "every peer in every mesh")
    return hs, pubsubs, subs


def idontwant_sent(monkeypatch: pytest.MonkeyPatch) -> list[ID]:
    """The peers every router of this process sends IDONTWANT to from now on, in order."""
    sent: list[ID] = []
    emit = ChatGossipSub.emit_idontwant

    async def counted(self: ChatGossipSub, ids: list[bytes], peer: ID) -> None:
        sent.append(peer)
        await emit(self, ids, peer)

    monkeypatch.setattr(ChatGossipSub, "emit_idontwant", counted)
    return sent


def test_an_author_sends_to_the_whole_room_and_no_member_forwards_a_copy_the_others_have(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery hint (``app.node.delivery_hint``): in a room where everyone holds a link to
    the author, each member gets each post once; before, each got it from every mesh
    neighbour too (three copies in a room of four), and for a post of 1 KiB or more told
    each of them it did not want it (IDONTWANT). Forwarding to a peer the author is not
    linked to is the line tests' (``line``)."""
    idontwant = idontwant_sent(monkeypatch)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await full_mesh(stack, 4)
            counters: list[Counter[bytes]] = [Counter() for _ in pubsubs]
            async with trio.open_nursery() as nursery:
                for sub, counter in zip(subs, counters, strict=True):
                    nursery.start_soon(count_into, sub, counter)
                sent = [b"post %03d " % i + os.urandom(16) for i in range(60)]
                sent += [b"long post %03d " % i + os.urandom(2048) for i in range(10)]
                rounds = [(0, sent[:30]), (1, sent[30:60]), (2, sent[60:])]
                for author, posts in rounds:  # the first round is no special case
                    for data in posts:
                        await pubsubs[author].publish(TOPIC, data)
                    await wait_until(lambda p=posts: all(  # type: ignore[misc]
                        c[d] for c in counters for d in p), "the posts everywhere")
                await flush(pubsubs, counters)
                nursery.cancel_scope.cancel()
            for counter in counters:
                assert set(counter) == set(sent) and set(counter.values()) == {1}
            assert [p.seen_copies for p in pubsubs] == [0, 0, 0, 0]
            assert idontwant == []
            # A peer whose link stopped draining (its queue over half full and not moving,
            # as test_a_peer_whose_link_stops_draining... makes one) is not named: the
            # others forward the post there.
            stalled = hs[3].get_id()
            monkeypatch.setattr(pubsubs[0], "is_stalled", lambda peer: peer == stalled)
            await pubsubs[0].publish(TOPIC, b"to a stalled link too")
            await wait_until(lambda: pubsubs[3].seen_copies == 2, "two forwarded copies")
            assert [p.seen_copies for p in pubsubs[:3]] == [0, 0, 0]

    run(scenario)


def answers_of_send_without_waiting(monkeypatch: pytest.MonkeyPatch,
                                    relay: KithPubsub) -> list[bool]:
    """What ``relay.send_without_waiting`` answers from now on, in order."""
    answers: list[bool] = []
    send_without_waiting = relay.send_without_waiting

    def recording(peer: ID, frame_bytes: bytes) -> bool:
        answers.append(send_without_waiting(peer, frame_bytes))
        return answers[-1]

    monkeypatch.setattr(relay, "send_without_waiting", recording)
    return answers


def test_a_relay_writes_forwarded_posts_at_once_and_finishes_what_the_socket_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``KithPubsub.send_without_waiting``: with a peer's queue empty, a relayed post is
    written there and then, not handed to the peer's sender task. Here the socket takes only
    7 bytes of each first try: the rest of that frame, already encrypted, must still go out
    before any later post, or the far end's next decryption fails and every post after it is
    lost with the connection. The relay reads each post as it comes (``read_pacing``
    would hand it the burst in batches, queued for the sender task)."""
    monkeypatch.setattr(read_pacing, "PATIENCE", 0.0)
    send_now = yamux_patches.send_now
    monkeypatch.setattr(yamux_patches, "send_now", lambda sock, data: send_now(sock, data[:7]))

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, pubsubs, subs = await line(stack, 3)
            relay = pubsubs[1]
            send_without_waiting = relay.send_without_waiting
            written = answers_of_send_without_waiting(monkeypatch, relay)
            sent = [b"relayed %03d " % i + os.urandom(8) for i in range(200)]
            for data in sent:
                await pubsubs[0].publish(TOPIC, data)
            with trio.fail_after(DEADLINE):
                got = [(await subs[2].get()).data for _ in sent]
            assert got == sent  # all of them, once each, in order
            assert True in written  # some went out at once, their rest finished by a task
            # Something queued for the peer (its sender task not yet run): nothing overtakes it.
            far, queued = pubsubs[2].host.get_id(), signed(Identity.generate(), b"queued", 1)
            relay.peer_queues[far].push(rpc_pb2.RPC(publish=[queued]))
            later = signed(Identity.generate(), b"later", 1)
            assert not send_without_waiting(
                far, encode_varint_prefixed(rpc_pb2.RPC(publish=[later]).SerializeToString()))
            with trio.fail_after(DEADLINE):
                assert (await subs[2].get()).data == b"queued"

    run(scenario)


def test_a_burst_a_relay_reads_at_once_goes_on_to_each_peer_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages a relay handles while its reader holds more of the sender's bytes are queued,
    not written one by one: the peer's sender task writes the burst in one write (a frame
    and a system call for all), and a message arriving alone is written at once."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 2)
            relay, far = pubsubs[0], hs[1].get_id()
            identity = Identity.generate()
            client = build_host(identity, [LOOPBACK])
            await stack.enter_async_context(client.run([LOOPBACK]))
            await connect(client, hs[0])
            stream = await client.new_stream(hs[0].get_id(), [PROTOCOL_ID_V11])
            at_once = answers_of_send_without_waiting(monkeypatch, relay)
            writes: list[int] = []
            to_far = relay.peers[far]
            write = to_far.write

            async def counting(data: bytes) -> None:
                writes.append(len(data))
                await write(data)

            monkeypatch.setattr(to_far, "write", counting)
            burst = [signed(identity, b"burst %d" % i, i + 1) for i in range(8)]
            await stream.write(frame(*burst[:4]) + frame(*burst[4:6]) + frame(*burst[6:]))
            with trio.fail_after(DEADLINE):
                got = [bytes((await subs[1].get()).data) for _ in burst]
            assert got == [m.data for m in burst]
            assert at_once == [False] * 8 and len(writes) == 1  # the burst in one write
            await stream.write(frame(signed(identity, b"alone", 20)))
            with trio.fail_after(DEADLINE):
                assert (await subs[1].get()).data == b"alone"
            assert at_once[8:] == [True] and len(writes) == 1  # straight to the socket

    run(scenario)


def test_two_authors_interleaving_300_posts_each_all_arrive() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, pubsubs, subs = await line(stack, 3)
            counters: list[Counter[bytes]] = [Counter() for _ in pubsubs]

            async def author(pubsub: KithPubsub, name: bytes) -> None:
                for i in range(300):  # far above py-libp2p's default 10 posts/s limit
                    await pubsub.publish(TOPIC, name + b" %03d" % i)
                    await trio.lowlevel.checkpoint()  # let the other author interleave

            async with trio.open_nursery() as nursery:
                for sub, counter in zip(subs, counters, strict=True):
                    nursery.start_soon(count_into, sub, counter)
                async with trio.open_nursery() as authors:
                    authors.start_soon(author, pubsubs[0], b"ada")
                    authors.start_soon(author, pubsubs[2], b"cy")
                await wait_until(lambda: all(len(c) >= 600 for c in counters), "600 everywhere")
                await flush(pubsubs, counters)
                nursery.cancel_scope.cancel()
            expected = {b"ada %03d" % i for i in range(300)} | {b"cy %03d" % i for i in range(300)}
            for counter in counters:
                assert set(counter) == expected
                assert set(counter.values()) == {1}

    run(scenario)


def test_a_peer_pruned_from_the_mesh_is_not_grafted_again_while_backed_off() -> None:
    """Both sides of a PRUNE back off (the spec; py-libp2p 0.8.1 only on the pruned side, and
    the peer it grafted again took that for a GRAFT flood and pruned it right back)."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, _ = await line(stack, 3)
            await connect(hs[0], hs[2])
            router = pubsubs[0].gossip
            await wait_until(lambda: len(router.mesh[TOPIC]) == 2, "both peers in the mesh")
            # No await from here on: the router's own heartbeat cannot run in between.
            router.degree = router.degree_low = router.degree_high = 1
            _, to_prune = router.mesh_heartbeat()
            assert len(to_prune) == 1 and len(router.mesh[TOPIC]) == 1
            (pruned,) = to_prune
            router.degree = router.degree_low = router.degree_high = 2
            to_graft, _ = router.mesh_heartbeat()
            assert pruned not in to_graft
            assert pruned not in router.mesh[TOPIC]

    run(scenario)


def test_payload_limit_is_refused_on_publish_and_dropped_on_arrival() -> None:
    async def scenario() -> None:
        limit = GossipConfig().max_payload
        async with AsyncExitStack() as stack:
            foreign_host, b_host, c_host = await start_hosts(stack, 3)
            foreign = await stack.enter_async_context(plain_pubsub(foreign_host))
            b = await stack.enter_async_context(open_pubsub(b_host))
            c = await stack.enter_async_context(open_pubsub(c_host))
            await connect(foreign_host, b_host)
            await connect(b_host, c_host)
            foreign_sub = await foreign.subscribe(TOPIC)
            b_sub, c_sub = await b.subscribe(TOPIC), await c.subscribe(TOPIC)
            await wait_until(
                lambda: foreign_host.get_id() in b.gossip.mesh.get(TOPIC, set())
                and c_host.get_id() in b.gossip.mesh.get(TOPIC, set())
                and b_host.get_id() in c.gossip.mesh.get(TOPIC, set()),
                "the mesh",
            )

            with pytest.raises(PayloadTooLarge):
                await b.publish(TOPIC, b"x" * (limit + 1))

            # A client without our limit sends one over it, then a normal one.
            await foreign.publish(TOPIC, b"y" * (limit + 1))
            await foreign.publish(TOPIC, b"after the big one")
            assert (await b_sub.get()).data == b"after the big one"
            assert (await c_sub.get()).data == b"after the big one"
            assert b.oversized == 1 and c.oversized == 0  # b did not relay it
            assert b.manager.is_running and c.manager.is_running

            # Exactly the limit is fine, from Kith to the foreign client too.
            biggest = os.urandom(limit)
            await c.publish(TOPIC, biggest)
            assert (await b_sub.get()).data == biggest
            got = await foreign_sub.get()
            while got.data != biggest:  # its own two posts come back first
                got = await foreign_sub.get()

    run(scenario)


def test_a_foreign_subscriber_sees_exactly_the_published_bytes() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            kith_host, other_host = await start_hosts(stack, 2)
            kith = await stack.enter_async_context(open_pubsub(kith_host))
            other = await stack.enter_async_context(plain_pubsub(other_host))
            await connect(kith_host, other_host)
            await kith.subscribe(TOPIC)
            sub = await other.subscribe(TOPIC)
            await kith.wait_for_mesh(other_host.get_id(), TOPIC, timeout=DEADLINE)
            payloads = [bytes(range(256)) * 4, os.urandom(70 * 1024), b"\x00", b"plain text"]
            for data in payloads:
                await kith.publish(TOPIC, data)
            received = []
            for _ in payloads:
                message = await sub.get()
                received.append(message.data)
                assert ID(message.from_id) == kith_host.get_id()
                assert list(message.topicIDs) == [TOPIC]
                assert len(message.seqno) == 8
                assert signature_validator(message)  # signed with the host key, as go/js expect
            # py-libp2p's own reader starts a task per message: those of one read may run in
            # any order (Kith's reader keeps a peer's order).
            assert sorted(received) == sorted(payloads)

    run(scenario)


def test_hostile_messages_do_not_stop_pubsub() -> None:
    """Stock 0.8.1 dies on both: an undecodable signing key cancels the Pubsub service, and an
    unparsable RPC frame escapes the stream handler and takes the host's Swarm down."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 2)
            (evil,) = await start_hosts(stack, 1)
            await connect(evil, hs[0])
            bad_key = rpc_pb2.Message(
                data=b"evil", topicIDs=[TOPIC], from_id=b"\x12\x20" + b"\x01" * 32,
                seqno=b"\x00" * 8, key=b"not a protobuf key", signature=b"sig",
            )
            stream = await evil.new_stream(hs[0].get_id(), [PROTOCOL_ID_V11])
            frame = rpc_pb2.RPC(publish=[bad_key]).SerializeToString()
            await stream.write(encode_varint_prefixed(frame))
            stream = await evil.new_stream(hs[0].get_id(), [PROTOCOL_ID_V11])
            await stream.write(encode_varint_prefixed(b"\xff\xff\xff\xff\x0f garbage"))
            await pubsubs[1].publish(TOPIC, b"still here")
            assert (await subs[0].get()).data == b"still here"
            assert all(p.manager.is_running for p in pubsubs)

    run(scenario)


def test_a_peer_whose_link_stops_draining_does_not_stall_publishing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A connection whose frame waits this long is closed (at 10 s the test would wait so long
    # for the shielded write to give up when it ends).
    monkeypatch.setattr(yamux_patches, "FRAME_WRITE_TIMEOUT", 1.0)

    async def scenario() -> None:
        config = GossipConfig(outbound_queue_size=16, publish_stall=0.2)
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 3, config)
            a = pubsubs[0]
            await connect(hs[0], hs[2])  # c is now a direct neighbour of a too
            await a.wait_for_mesh(hs[2].get_id(), TOPIC, timeout=DEADLINE)

            # The link to c stops draining (a hung TCP connection, a sleeping laptop): its
            # socket takes nothing, and a write waiting for it never completes.
            stream: Any = a.peers[hs[2].get_id()]
            tcp = stream.muxed_stream.conn.secured_conn.conn.read_writer.read_write_closer.stream
            hung = tcp.stream.socket._sock

            async def never_completes(data: bytes) -> None:
                await trio.sleep_forever()

            def takes_nothing_there(sock: Any, data: bytearray) -> int:
                if sock is hung:
                    raise BlockingIOError
                return send_now(sock, data)

            send_now = yamux_patches.send_now
            monkeypatch.setattr(yamux_patches, "send_now", takes_nothing_there)
            tcp.write = never_completes

            received: Counter[bytes] = Counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(count_into, subs[1], received)
                with trio.fail_after(DEADLINE):
                    for i in range(200):
                        await a.publish(TOPIC, b"%03d" % i)
                await wait_until(lambda: len(received) == 200, "200 posts at b")
                nursery.cancel_scope.cancel()
            assert a.is_stalled(hs[2].get_id())
            assert not a.is_stalled(hs[1].get_id())

    run(scenario)


def test_a_slow_reader_loses_only_what_overflows_and_it_is_counted() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            (host,) = await start_hosts(stack, 1)
            pubsub = await stack.enter_async_context(
                open_pubsub(host, GossipConfig(subscription_buffer=8))
            )
            sub = await pubsub.subscribe(TOPIC)
            for i in range(20):
                await pubsub.publish(TOPIC, b"%d" % i)
            assert pubsub.dropped[TOPIC] == 12
            assert [(await sub.get()).data for _ in range(8)] == [b"%d" % i for i in range(8)]

    run(scenario)


def test_chat_settings_are_in_force_and_stopping_is_clean() -> None:
    """Guards the workarounds: a py-libp2p upgrade that moves these internals must fail here."""

    async def scenario() -> None:
        threads_before = threading.active_count()
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 2)
            router = pubsubs[0].gossip
            assert router.heartbeat_interval == 1
            assert not router.spam_protection_enabled
            assert not router.adaptive_gossip_enabled
            assert not router.eclipse_protection_enabled
            assert pubsubs[0].strict_signing
            assert router.scorer is None
            assert hs[0].get_network().get_connections(hs[1].get_id())
            assert hs[1].get_id() in pubsubs[0].peer_queues
            queue = pubsubs[0].peer_queues[hs[1].get_id()]
            assert queue._queue.max_size == GossipConfig().outbound_queue_size
            channel = subs[0].receive_channel  # type: ignore[attr-defined]
            assert channel.statistics().max_buffer_size == GossipConfig().subscription_buffer
            # The router negotiated the newest protocol both offer.
            assert router.peer_protocol[hs[1].get_id()] == GOSSIP_PROTOCOLS[0]
            # What KithPubsub._handle_new_peer and the rooms' first announce rely on.
            assert {"_handle_new_peer", "_handle_dead_peer"} <= set(vars(Pubsub))
            stream = pubsubs[0].peers[hs[1].get_id()]
            assert stream.muxed_conn.is_closed is False
            assert hs[1].get_id() in router.mesh[TOPIC]
            seen_cache_thread = pubsubs[0].seen_messages._thread
        assert not seen_cache_thread.is_alive()
        assert threading.active_count() <= threads_before

    run(scenario)


def test_peers_connected_before_pubsub_starts_are_picked_up() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs = await start_hosts(stack, 2)
            await connect(hs[0], hs[1])
            pubsubs = [await stack.enter_async_context(open_pubsub(h)) for h in hs]
            subs = [await p.subscribe(TOPIC) for p in pubsubs]
            await wait_for_line_mesh(hs, pubsubs)
            await pubsubs[0].publish(TOPIC, b"hello")
            assert (await subs[1].get()).data == b"hello"

    run(scenario)


def test_a_restarted_peer_learns_our_subscriptions_even_if_its_old_stream_lingers() -> None:
    """A peer that restarts and reconnects before we processed its old connection's end: the
    old pubsub stream is stale, and 0.8.1 skipped the new connection because the peer was
    still "known", so the restarted peer never heard our subscriptions (and sent us nothing)
    until our next write to the dead stream failed, tens of seconds later."""

    async def scenario() -> None:
        identity = Identity.generate()
        async with AsyncExitStack() as stack:
            [b] = await start_hosts(stack, 1)
            pb = await stack.enter_async_context(open_pubsub(b))
            await pb.subscribe(TOPIC)
            async with AsyncExitStack() as first_run:
                a = build_host(identity, [LOOPBACK])
                await first_run.enter_async_context(a.run([LOOPBACK]))
                pa = await first_run.enter_async_context(open_pubsub(a))
                await pa.subscribe(TOPIC)
                await connect(a, b)
                await wait_until(lambda: b.get_id() in pa.peer_topics.get(TOPIC, set()),
                                 "the first run to learn b's subscription")
                stale = pb.peers[a.get_id()]
                await a.get_network().close_peer(b.get_id())
            await wait_until(lambda: a.get_id() not in pb.peers, "b to drop the first run")
            pb.peers[a.get_id()] = stale  # the order the race produces: the end comes late
            assert stale.muxed_conn.is_closed
            a2 = build_host(identity, [LOOPBACK])
            await stack.enter_async_context(a2.run([LOOPBACK]))
            pa2 = await stack.enter_async_context(open_pubsub(a2))
            await pa2.subscribe(TOPIC)
            await connect(a2, b)
            await wait_until(lambda: b.get_id() in pa2.peer_topics.get(TOPIC, set()),
                             "the restarted peer to learn b's subscription", timeout=10)
            assert pb.peers[a2.get_id()] is not stale

    run(scenario)
def test_a_subscription_made_while_a_peer_is_being_set_up_reaches_it() -> None:
    """A topic joined (or left) after a new peer's hello is built but before the peer is
    registered: 0.8.1 put it neither in the hello nor in the peer's queue, so the peer never
    learnt it and the room never formed between the two. The hello's write is held here until
    the subscription is made, the order a scheduler may choose."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            a, b = await start_hosts(stack, 2)
            pa = await stack.enter_async_context(open_pubsub(a))
            pb = await stack.enter_async_context(open_pubsub(b))
            await pa.subscribe("left in the window")
            in_window, go_on = trio.Event(), trio.Event()
            new_stream = a.new_stream

            async def held_new_stream(peer: ID, protocols: Any) -> INetStream:
                stream = await new_stream(peer, protocols)
                write = stream.write

                async def held_write(data: bytes) -> None:
                    stream.write = write  # type: ignore[method-assign]
                    in_window.set()
                    await go_on.wait()
                    await write(data)

                stream.write = held_write  # type: ignore[method-assign]
                return stream

            a.new_stream = held_new_stream  # type: ignore[method-assign,assignment]
            await connect(a, b)
            with trio.fail_after(DEADLINE):
                await in_window.wait()
            a.new_stream = new_stream  # type: ignore[method-assign]
            assert b.get_id() not in pa.peers
            await pa.subscribe(TOPIC)
            await pa.unsubscribe("left in the window")
            go_on.set()
            await wait_until(lambda: a.get_id() in pb.peer_topics.get(TOPIC, set()),
                             "b to learn a's subscription made during the set-up")
            await wait_until(lambda: a.get_id() not in pb.peer_topics.get(
                "left in the window", set()), "b to learn that a left the other topic")

    run(scenario)


def signed(identity: Identity, data: bytes, seqno: int) -> rpc_pb2.Message:
    """A gossip message published by ``identity``, signed as StrictSign requires."""
    keys = key_pair(identity)
    message = rpc_pb2.Message(
        data=data, topicIDs=[TOPIC], from_id=ID.from_pubkey(keys.public_key).to_bytes(),
        seqno=seqno.to_bytes(8, "big"),
    )
    message.signature = keys.private_key.sign(
        PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString()
    )
    return message


def frame(*messages: rpc_pb2.Message, record: bytes | None = None) -> bytes:
    rpc = rpc_pb2.RPC(publish=list(messages))
    if record is not None:
        rpc.senderRecord = record
    return encode_varint_prefixed(rpc.SerializeToString())


async def raw_link(
    stack: AsyncExitStack,
) -> tuple[KithPubsub, ISubscriptionAPI, Identity, IHost, INetStream, list[bytes], list[bytes]]:
    """A Kith peer in TOPIC and a client that writes RPC frames to it by hand. The lists
    collect the data of every message the Kith peer handles (``push_msg``), in order, and of
    every message it starts a task for."""
    (host,) = await start_hosts(stack, 1)
    pubsub = await stack.enter_async_context(open_pubsub(host))
    subscription = await pubsub.subscribe(TOPIC)
    identity = Identity.generate()
    client = build_host(identity, [LOOPBACK])
    await stack.enter_async_context(client.run([LOOPBACK]))
    await connect(client, host)
    handled: list[bytes] = []
    started: list[bytes] = []
    push_msg, run_task = pubsub.push_msg, pubsub.manager.run_task

    async def handling(forwarder: ID, message: rpc_pb2.Message) -> None:
        handled.append(bytes(message.data))
        await push_msg(forwarder, message)

    def starting(fn: Callable[..., Awaitable[None]], *args: object, **kwargs: object) -> None:
        if fn in (push_msg, handling):
            started.append(bytes(args[1].data))  # type: ignore[attr-defined]
        run_task(fn, *args, **kwargs)  # type: ignore[arg-type]

    pubsub.push_msg = handling  # type: ignore[method-assign,assignment]
    pubsub.manager.run_task = starting  # type: ignore[method-assign,assignment]
    stream = await client.new_stream(host.get_id(), [PROTOCOL_ID_V11])
    return pubsub, subscription, identity, client, stream, handled, started


def test_messages_are_handled_in_order_without_a_task_each_and_seen_copies_first_dropped(
) -> None:
    """0.8.1 starts a push_msg task for every message, copies included (walking all the
    service's tasks to find its parent), and the tasks may run in any order."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, sub, identity, _, stream, handled, started = await raw_link(stack)
            first = signed(identity, b"first", 1)
            await stream.write(frame(first))
            assert (await sub.get()).data == b"first"
            burst = [signed(identity, b"%02d" % i, i + 2) for i in range(20)]
            await stream.write(frame(first, *burst[:10]) + frame(*burst[10:]))
            got = [bytes((await sub.get()).data) for _ in burst]
            assert got == [m.data for m in burst]  # in the order the peer sent them
            assert handled == [b"first", *got]  # the second copy of "first" never got this far
            assert started == []

    run(scenario)


def hinted(message: rpc_pb2.Message, hint: bytes) -> bytes:
    """An RPC frame carrying ``message`` and ``hint`` (the delivery hint's field, or any
    bytes) after it, as an RPC's fields may come in any order."""
    return encode_varint_prefixed(rpc_pb2.RPC(publish=[message]).SerializeToString() + hint)


async def raw_link_and_a_neighbour(
    stack: AsyncExitStack,
) -> tuple[Identity, INetStream, IHost, ISubscriptionAPI]:
    """``raw_link``'s Kith peer (the member) with one more Kith peer in TOPIC, each in the
    other's mesh: the raw client's identity and stream, and the neighbour's host and
    subscription, which shows what the member forwards."""
    member, _, identity, _, stream, _, _ = await raw_link(stack)
    [next_host] = await start_hosts(stack, 1)
    neighbour = await stack.enter_async_context(open_pubsub(next_host))
    await connect(member.host, next_host)
    got = await neighbour.subscribe(TOPIC)
    await neighbour.wait_for_mesh(member.host.get_id(), TOPIC, timeout=DEADLINE)
    await wait_until(lambda: next_host.get_id() in member.gossip.mesh.get(TOPIC, set()),
                     "the neighbour in the member's mesh")
    return identity, stream, next_host, got


def test_only_an_authors_own_delivery_hint_keeps_a_member_from_forwarding() -> None:
    """The hint names peers the author sent its message to, and the member skips them when it
    forwards. A hint from anyone but the author, or a malformed one, changes nothing: the
    member forwards to every mesh neighbour, as a peer of the version before does."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            identity, stream, next_host, got = await raw_link_and_a_neighbour(stack)
            names_neighbour = delivery_hint.encode([next_host.get_id()])
            other = Identity.generate()  # an author the raw client only relays for
            seqno = itertools.count(1)
            cases = [
                (identity, names_neighbour, False),  # the author's word: not forwarded
                (other, names_neighbour, True),  # a relay's word: ignored
                (identity, names_neighbour[:2] + b"\x07" + names_neighbour[3:10], True),  # 7 bytes
                (identity, delivery_hint.encode([]) + bytes((0xCA, 0x3E, 0x88, 0x04))
                 + names_neighbour[3:] * 65, True),  # 65 tags: over the limit
                (identity, names_neighbour, False),  # and the author's word again
            ]
            for number, (author, hint, forwarded) in enumerate(cases):
                data = b"case %d" % number
                await stream.write(hinted(signed(author, data, next(seqno)), hint))
                marker = b"marker %d" % number  # the member forwards it: the link is ordered
                await stream.write(frame(signed(other, marker, next(seqno))))
                with trio.fail_after(DEADLINE):
                    first = bytes((await got.get()).data)
                    if forwarded:
                        assert first == data
                        first = bytes((await got.get()).data)
                    assert first == marker, (number, first)

    run(scenario)


def test_idontwant_goes_to_the_mesh_peers_that_might_still_send_the_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A post of 1 KiB or more: IDONTWANT to a mesh neighbour its author did not name, never
    to its author or to the peer it came from, and none to a neighbour the author named."""
    idontwant = idontwant_sent(monkeypatch)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            identity, stream, next_host, got = await raw_link_and_a_neighbour(stack)
            long = os.urandom(2048)
            names_neighbour = delivery_hint.encode([next_host.get_id()])
            for seqno, hint, told in ((1, b"", True), (2, names_neighbour, False)):
                idontwant.clear()
                await stream.write(hinted(signed(identity, long + bytes([seqno]), seqno), hint))
                await stream.write(frame(signed(Identity.generate(), b"marker", 1)))
                with trio.fail_after(DEADLINE):
                    while (await got.get()).data != b"marker":
                        pass
                assert [p for p in idontwant if p != next_host.get_id()] == []
                assert (next_host.get_id() in idontwant) == told, seqno

    run(scenario)


def test_the_delivery_hint_vectors_of_the_protocol_document_hold() -> None:
    """docs/protocol.md 8.8's vectors, computed here without ``delivery_hint``."""
    vectors = json.loads((ROOT / "tests" / "vectors" / "dm.json").read_text())["vectors"]
    peers = [bytes.fromhex(vectors[f"{who}.peer_id_bytes"]) for who in ("sender", "recipient")]
    tags = [peer[-8:] for peer in peers]
    key = bytes(((1001 << 3 | 2) & 0x7F | 0x80, (1001 << 3 | 2) >> 7))
    field = key + bytes((16,)) + b"".join(tags)
    document = (ROOT / "docs" / "protocol.md").read_text()
    for peer, peer_tag in zip(peers, tags, strict=True):
        assert peer.hex() in document and f"`{peer_tag.hex()}`" in document
    assert f"`{field.hex()}`" in document
    assert delivery_hint.encode([ID(peer) for peer in peers]) == field


def test_a_delivery_hint_reads_back_and_a_stock_peer_ignores_it() -> None:
    ids = [ID.from_pubkey(key_pair(Identity.generate()).public_key) for _ in range(70)]
    field = delivery_hint.encode(ids)
    assert len(field) == 2 + 2 + 64 * 8  # key, length, and the first 64 peers only
    assert delivery_hint.decode(field) == {i.to_bytes()[-8:] for i in ids[:64]}
    assert delivery_hint.decode(b"") == frozenset()
    assert delivery_hint.decode(field[:-1]) == frozenset()  # cut short: not a protobuf
    message = rpc_pb2.Message(data=b"post", topicIDs=[TOPIC])
    body = rpc_pb2.RPC(publish=[message]).SerializeToString() + field
    stock = rpc_pb2.RPC()
    stock.ParseFromString(body)  # py-libp2p's own parse of the RPC: the field is unknown
    assert list(stock.publish) == [message]
    assert delivery_hint.decode(body) == delivery_hint.decode(field)


def test_rpcs_arrive_whole_however_their_bytes_are_split() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, sub, identity, _, stream, _, _ = await raw_link(stack)
            frames = [frame(signed(identity, b"m%d" % i, i + 1)) for i in range(6)]
            await stream.write(frames[0] + frames[1] + frames[2])  # three in one write
            joined = frames[3] + frames[4]  # cut inside a length prefix, a body, the next
            for piece in (joined[:1], joined[1:5], joined[5:-3], joined[-3:]):
                await stream.write(piece)
            await stream.write(frames[5])
            with trio.fail_after(DEADLINE):
                got = {bytes((await sub.get()).data) for _ in range(6)}
            assert got == {b"m%d" % i for i in range(6)}

    run(scenario)


class _Pieces:
    """A stream that hands out the given pieces, one per read, then ends."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    async def read(self, n: int | None = None) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""


def test_the_rpc_reader_cuts_rpcs_wherever_reads_split_them() -> None:
    """Every split of three RPCs (a 1-byte, a 2-byte and a 3-byte length prefix) into two
    reads: each comes out whole, in order, with no read beyond what the next one needs."""
    rpcs = [b"a" * 5, b"b" * 200, b"c" * 20000]
    data = b"".join(encode_varint_prefixed(r) for r in rpcs)

    async def cut(pieces: list[bytes]) -> list[bytes]:
        reader = _RpcReader(_Pieces(pieces), 1 << 20)  # type: ignore[arg-type]
        return [await reader.next() for _ in rpcs]

    for at in [*range(1, 215), *range(len(data) - 5, len(data) + 1)]:
        assert trio.run(cut, [data[:at], data[at:]]) == rpcs, at
    assert trio.run(cut, [bytes([b]) for b in data[:300]] + [data[300:]]) == rpcs


def test_the_rpc_reader_refuses_bad_length_prefixes_before_any_body() -> None:
    async def first(pieces: list[bytes], limit: int = 1000) -> bytes:
        return await _RpcReader(_Pieces(pieces), limit).next()  # type: ignore[arg-type]

    with pytest.raises(MessageTooLarge):
        trio.run(first, [encode_varint_prefixed(b"x" * 1001)[:2]])  # the prefix alone
    with pytest.raises(ParseError):
        trio.run(first, [b"\x80" * 10 + b"\x01"])  # a varint of 11 bytes
    with pytest.raises(IncompleteReadError):
        trio.run(first, [encode_varint_prefixed(b"x" * 10)[:5]])  # the stream ends within


def test_a_stream_with_an_overlong_length_prefix_is_reset_alone() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            pubsub, sub, identity, client, stream, _, _ = await raw_link(stack)
            await stream.write(b"\x80" * 11)
            with trio.fail_after(DEADLINE):
                with pytest.raises((StreamReset, StreamEOF)):
                    while True:  # ended by the Kith peer
                        await stream.read(1)
                again = await client.new_stream(pubsub.host.get_id(), [PROTOCOL_ID_V11])
                await again.write(frame(signed(identity, b"after", 1)))
                assert (await sub.get()).data == b"after"
            assert pubsub.manager.is_running

    run(scenario)


def test_the_router_keeps_no_log_of_deliveries() -> None:
    """0.8.1 appends a timestamp per message published or forwarded, and only adaptive gossip
    (off here) ever trims the list: it grew for as long as a node ran."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, pubsubs, subs = await line(stack, 2)
            for i in range(50):
                await pubsubs[0].publish(TOPIC, b"%d" % i)
            for _ in range(50):
                await subs[1].get()
            routers = [p.gossip for p in pubsubs]
            assert not any(any(r.recent_message_deliveries.values()) for r in routers)
            assert all(r.time_since_last_publish.get(TOPIC) for r in routers)

    run(scenario)


def test_a_peers_signed_record_is_checked_once_while_it_does_not_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0.8.1 verifies the sender's signed peer record in every RPC (an Ed25519 signature)."""
    checks: list[bytes] = []
    validate = Envelope.validate

    def counting(self: Envelope, domain: str) -> None:
        checks.append(self.signature)
        validate(self, domain)

    monkeypatch.setattr(Envelope, "validate", counting)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            _, pubsubs, subs = await line(stack, 2)
            checks.clear()
            for i in range(60):
                await pubsubs[0].publish(TOPIC, b"%d" % i)
            for _ in range(60):
                await subs[1].get()
        # Once per peer record (a copy or two may race the first check), not once per RPC.
        assert len(checks) <= 4

    run(scenario)


def test_our_record_is_built_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.8.1 asks the host for its addresses for every RPC it sends, to compare them with the
    cached record (Kith's get_addrs expands wildcards and adds relay circuits)."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 2)
            asked: list[int] = []
            get_addrs = hs[0].get_addrs

            def counting() -> list[Multiaddr]:
                asked.append(1)
                return get_addrs()

            monkeypatch.setattr(hs[0], "get_addrs", counting)
            started = trio.current_time()
            for i in range(60):
                await pubsubs[0].publish(TOPIC, b"%d" % i)
            for _ in range(60):
                await subs[1].get()
            seconds = trio.current_time() - started
        assert len(asked) <= 2 + seconds  # once a second, not once per RPC

    run(scenario)


def test_a_tampered_record_is_refused_after_a_good_one_and_a_new_one_is_stored() -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            pubsub, sub, identity, client, stream, handled, _ = await raw_link(stack)
            keys = key_pair(identity)
            peer = client.get_id()

            def record(addr: str) -> bytes:
                envelope = create_signed_peer_record(peer, [Multiaddr(addr)], keys.private_key)
                return envelope.marshal_envelope()

            genuine = record("/ip4/192.0.2.1/tcp/4001")
            tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])  # the signature's last byte
            newer = record("/ip4/192.0.2.2/tcp/4001")
            store: Any = pubsub.host.get_peerstore()  # the PeerStore, with its record map

            await stream.write(frame(signed(identity, b"one", 1), record=genuine))
            assert (await sub.get()).data == b"one"
            assert store.peer_record_map[peer].envelope.marshal_envelope() == genuine
            await stream.write(frame(signed(identity, b"two", 2), record=tampered))
            await stream.write(frame(signed(identity, b"three", 3), record=newer))
            assert (await sub.get()).data == b"three"
            assert handled == [b"one", b"three"]  # the RPC with a tampered record was dropped
            assert store.peer_record_map[peer].envelope.marshal_envelope() == newer
            assert Multiaddr("/ip4/192.0.2.2/tcp/4001") in store.addrs(peer)

    run(scenario)


def test_an_rpc_carrying_an_older_record_than_the_one_held_is_still_handled() -> None:
    """A peer's addresses change: identify hands us its new record while RPCs it built with
    the old one (queued, or built from its cached record) are still on their way. 0.8.1
    dropped such an RPC whole, subscriptions and GRAFTs with it, and a dropped subscription is
    never sent again: the peer's room never formed with us. The RPC is handled and the newer
    record is kept; a forged record still drops its RPC (the test above)."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            pubsub, sub, identity, client, stream, _, _ = await raw_link(stack)
            keys = key_pair(identity)
            peer = client.get_id()
            older = create_signed_peer_record(peer, [Multiaddr("/ip4/192.0.2.1/tcp/4001")],
                                              keys.private_key)
            newer = create_signed_peer_record(peer, [Multiaddr("/ip4/192.0.2.2/tcp/4001")],
                                              keys.private_key)
            assert older.record().seq < newer.record().seq
            store: Any = pubsub.host.get_peerstore()  # the PeerStore, with its record map
            assert store.consume_peer_record(newer, 7200)  # what identify does
            rpc = rpc_pb2.RPC(
                subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=TOPIC)],
                publish=[signed(identity, b"sent with the older record", 1)],
                senderRecord=older.marshal_envelope(),
            )
            await stream.write(encode_varint_prefixed(rpc.SerializeToString()))
            with trio.fail_after(DEADLINE):
                assert (await sub.get()).data == b"sent with the older record"
            assert peer in pubsub.peer_topics.get(TOPIC, set())
            assert store.peer_record_map[peer].envelope is newer

    run(scenario)


def test_the_py_libp2p_names_kith_swaps_and_wraps_are_there() -> None:
    """Guards app.node.libp2p_patches.pubsub_records and the KithPubsub overrides: an upgrade
    that moves these internals must fail here."""
    from app.node.libp2p_patches import pubsub_records

    pubsub_records.install()
    for module in (libp2p.pubsub.pubsub, libp2p.pubsub.gossipsub):
        assert module.maybe_consume_signed_record.__qualname__.startswith("_check_once.")
        assert module.env_to_send_in_RPC.__qualname__.startswith("_build_once.")
    assert libp2p.pubsub.utils.maybe_consume_signed_record.__module__ == "libp2p.pubsub.utils"
    assert libp2p.peer.peerstore.env_to_send_in_RPC.__module__ == "libp2p.peer.peerstore"
    assert "envelope" in inspect.signature(PeerRecordState).parameters
    # pubsub_records._older_than_held: records are opened under this domain, and an older seq
    # than the one held is refused by the peerstore (what made 0.8.1 drop the RPC).
    check = inspect.getsource(libp2p.pubsub.utils.maybe_consume_signed_record)
    assert f'consume_envelope(msg.senderRecord, "{pubsub_records.PEER_RECORD_DOMAIN}")' in check
    assert "existing.seq > record.seq" in inspect.getsource(
        libp2p.peer.peerstore.PeerStore.consume_peer_record)
    assert "seq" in inspect.signature(PeerRecordState).parameters
    # KithPubsub.continuously_read_stream mirrors upstream's reader: what it does per RPC.
    reader = inspect.getsource(Pubsub.continuously_read_stream)
    for step in ("read_varint_prefixed_bytes_limited(", "ParseFromString(incoming)",
                 "maybe_consume_signed_record(", "self._is_subscribed_to_msg(msg)",
                 "self.manager.run_task(self.push_msg, peer_id, msg)",
                 "self.max_subscriptions_per_rpc", "self.handle_subscription(peer_id, message)",
                 "await self.router.handle_rpc(rpc_incoming, peer_id)",
                 "stream.metric_send_channel", "except MessageTooLarge"):
        assert step in reader, step
    assert reader.count("self.") == 12, "upstream's reader changed: compare it with Kith's"
    assert "await self.continuously_read_stream(stream)" in inspect.getsource(
        Pubsub.stream_handler
    )
    assert "maybe_consume_signed_record(" in inspect.getsource(GossipSub.handle_rpc)
    assert "env_to_send_in_RPC(" in inspect.getsource(GossipSub.publish)
    # ChatGossipSub.publish mirrors upstream's forwarding step by step, and its shortcut past
    # send_rpc sends what send_rpc would for an RPC of one message and no control retry.
    forward = inspect.getsource(GossipSub.publish)
    for step in ("self._check_spam_protection(msg_forwarder, pubsub_msg)",
                 "self._check_equivocation(pubsub_msg)", "self.mcache.put(pubsub_msg)",
                 "self.pubsub.get_message_id(pubsub_msg)", "self._get_peers_to_send(",
                 "rpc_pb2.RPC(publish=[pubsub_msg])", "env_to_send_in_RPC(",
                 "await self._emit_idontwant_for_message(msg_id, pubsub_msg.topicIDs)",
                 "await self._notify_observers(pubsub_msg.topicIDs, msg_id)",
                 "if peer_id not in self.pubsub.peers:", "self.send_rpc(peer_id, rpc_msg)",
                 "self._prune_pending_messages(peer_id)",
                 "self._pending_messages[peer_id].append(", "peer_id not in self.peer_protocol",
                 "for peer_id in pubsub.peers:", "self.time_since_last_publish[topic]",
                 "recent_message_deliveries[topic].append("):
        assert step in forward, step
    assert forward.count("self.") == 26, "upstream's publish changed: compare it with Kith's"
    send = inspect.getsource(GossipSub.send_rpc)
    for step in ("outbound.CopyFrom(rpc)", "self._piggyback_control_retry(peer_id, outbound)",
                 "queue.split_rpc(outbound)", "part.ByteSize() > queue.max_message_size",
                 "queue.push(part, priority=priority)",
                 'self._handle_dropped_rpc(peer_id, part, "queue_full")'):
        assert step in send, step
    assert "self._pending_control.get(peer_id)" in inspect.getsource(
        GossipSub._piggyback_control_retry)
    # KithPubsub.send_without_waiting writes where NetStream.write would: not in these states.
    write = inspect.getsource(NetStream.write)
    for refused in ("StreamState.ERROR", "StreamState.RESET",
                    "[StreamState.CLOSE_WRITE, StreamState.CLOSE_BOTH]"):
        assert refused in write, refused
    assert "await self.muxed_stream.write(data)" in write
    # ChatGossipSub.mesh_heartbeat: the heartbeat prunes what it returns, and a peer in backoff
    # is not grafted (a release that backs off the pruned peer itself makes the override moot).
    heartbeat = inspect.getsource(GossipSub.heartbeat)
    assert "peers_to_graft, peers_to_prune = self.mesh_heartbeat()" in heartbeat
    assert "_add_back_off" not in inspect.getsource(GossipSub.mesh_heartbeat)
    assert "self._check_back_off(peer_id, topic) is False" in inspect.getsource(
        GossipSub._get_in_topic_gossipsub_peers_from_minus)


def test_a_validator_checking_signatures_sees_unchecked_messages_and_a_forgery_frees_its_id(
) -> None:
    """``checks_signatures``: push_msg leaves the gossip signature to the topic's validator
    (one Ed25519 check per room post instead of two), and a forgery the validator rejects
    does not make the genuine message with the same id (publisher + seqno) invalid too."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            pubsub, sub, identity, _, stream, _, _ = await raw_link(stack)
            checked: list[bytes] = []

            def validator(_: ID, message: rpc_pb2.Message) -> bool:
                checked.append(bytes(message.data))
                return bool(signature_validator(message))

            pubsub.set_topic_validator(TOPIC, validator, False, checks_signatures=True)
            forged = signed(identity, b"forged", 5)
            forged.signature = bytes(64)
            await stream.write(frame(forged))
            await wait_until(lambda: checked == [b"forged"], "the validator to see the forgery")
            genuine = signed(identity, b"genuine", 5)
            await stream.write(frame(genuine))
            assert (await sub.get()).data == b"genuine"
            assert checked == [b"forged", b"genuine"]

            # Without the flag, upstream's order again: a bad signature never reaches it.
            pubsub.set_topic_validator(TOPIC, validator, False)
            forged = signed(identity, b"forged again", 6)
            forged.signature = bytes(64)
            await stream.write(frame(forged, signed(identity, b"after", 7)))
            assert (await sub.get()).data == b"after"
            assert checked == [b"forged", b"genuine", b"after"]
            pubsub.remove_topic_validator(TOPIC)
            assert not pubsub._validator_checks_signature(genuine)

    run(scenario)


def test_a_forgery_taken_unchecked_does_not_keep_out_the_genuine_message_with_its_id() -> None:
    """A validator that takes a message on its payload's own signature leaves the message id
    (publisher + seqno) unchecked: a forger who wraps what it saw under the publisher's next
    seqno gets it taken first. The genuine message with that id must still be handled, and
    copies relayed with the same signature, or other forgeries, dropped."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            pubsub, sub, identity, _, stream, handled, _ = await raw_link(stack)
            pubsub.set_topic_validator(TOPIC, lambda _, __: True, False, checks_signatures=True)
            squatter = signed(identity, b"seen before, wrapped under the next seqno", 8)
            squatter.signature = bytes(64)
            await stream.write(frame(squatter))
            assert (await sub.get()).data == squatter.data  # taken: the validator said so
            genuine = signed(identity, b"genuine", 8)
            forged_again = signed(identity, b"forged again", 8)
            forged_again.signature = b"\x01" * 64
            await stream.write(frame(genuine, genuine, forged_again, signed(identity, b"end", 9)))
            assert (await sub.get()).data == b"genuine"
            assert (await sub.get()).data == b"end"
            assert handled.count(b"genuine") == 1 and b"forged again" not in handled

    run(scenario)


def test_validation_verdicts_are_kept_in_order_and_bounded() -> None:
    """``Verdicts``: upstream's cache semantics (TTL, size, least recently used out first)
    without its list scans."""
    from libp2p.pubsub.pubsub import ValidationResult

    from app.node.libp2p_patches.pubsub_signatures import Verdicts

    verdicts = Verdicts(ttl=300, max_size=3)
    for i in range(3):
        verdicts.put(b"%d" % i, ValidationResult(is_valid=True, timestamp=1e12))
    assert verdicts.get(b"0") is not None  # now the most recently used
    verdicts.put(b"3", ValidationResult(is_valid=False, timestamp=1e12))
    assert list(verdicts.cache) == [b"2", b"0", b"3"]
    verdicts.forget(b"2")
    verdicts.put(b"old", ValidationResult(is_valid=True, timestamp=0.0))
    assert verdicts.get(b"old") is None  # expired
    verdicts.clear_expired()
    assert list(verdicts.cache) == [b"0", b"3"]
