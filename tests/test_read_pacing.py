"""Reading a busy room in batches (app.node.libp2p_patches.read_pacing).

The rule on its own, then Kith's Yamux reader on trio's ``MockClock`` (the clock moves only
when a test moves it, so "the reader waits" is seen as a post not yet read, never as a time
measured), fed by a peer that writes the frames a test chooses over a real socket pair
(tests/test_yamux_reader.py), and last two real hosts whose gossip streams are patient and
whose other streams are not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import trio
import trio.testing
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.net_stream import NetStream
from libp2p.stream_muxer.yamux.yamux import YamuxStream

from app.node.libp2p_patches import read_pacing, yamux_reader
from app.node.libp2p_patches.read_pacing import BUSY_WITHIN, PATIENCE, ReadPacer
from app.node.libp2p_patches.yamux import WindowedYamux
from tests.test_gossip import TOPIC, line
from tests.test_yamux_reader import DATA, FIN, SYN, WINDOW_UPDATE, Peer, connection, frame

POST = b"p" * 200  # a room post's size, about


def test_the_rule_holds_only_a_lasting_streak_of_room_reads() -> None:
    pacer = ReadPacer()
    # A connection's first moments: a few gossip messages close together, never held.
    assert [pacer.next_read_at(t, True) for t in (10.0, 10.001, 10.004)] == [
        10.0, 10.001, 10.004]
    # Room-only reads each within BUSY_WITHIN of the last, for BUSY_FOR: a busy room.
    assert pacer.next_read_at(10.1, True) == 10.1
    assert pacer.next_read_at(10.2, True) == 10.2
    assert pacer.next_read_at(10.3, True) == 10.3 + PATIENCE
    assert pacer.next_read_at(10.4, True) == 10.4 + PATIENCE  # still busy
    # Anything else: at once, and the streak starts again.
    assert pacer.next_read_at(10.45, False) == 10.45
    assert pacer.next_read_at(10.5, True) == 10.5
    # A gap longer than BUSY_WITHIN ends a streak too.
    assert pacer.next_read_at(10.7, True) == 10.7
    assert pacer.next_read_at(10.9, True) == 10.9
    assert pacer.pauses == 2


def test_without_patience_nothing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_pacing, "PATIENCE", 0.0)
    pacer = ReadPacer()
    assert [pacer.next_read_at(t, True) for t in (1.0, 1.01, 1.02)] == [1.0, 1.01, 1.02]
    assert pacer.pauses == 0


async def patient_stream(peer: Peer, stream_id: int) -> NetStream:
    """A stream the peer opens on our connection, marked as gossip's streams are."""
    await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, stream_id)))
    stream = await peer.muxed.accept_stream()
    peer.muxed.patient_streams.add(stream_id)
    return stream  # type: ignore[return-value]


async def settled() -> None:
    """Every task is blocked: what the reader could read without the clock moving, it read."""
    await trio.testing.wait_all_tasks_blocked()


async def busy(peer: Peer, stream: NetStream, stream_id: int) -> None:
    """Posts read 0.1 s apart for longer than BUSY_FOR: the reader now waits PATIENCE before
    reading on."""
    clock = mock_clock()
    for n in range(4):  # read at 0, 0.1, 0.2 and 0.3 s
        if n:
            clock.jump(0.1)
        assert peer.muxed.pacer.pauses == 0
        await peer.send(peer.seal(frame(DATA, 0, stream_id, POST)))
        assert await stream.read(10_000) == POST
        await settled()
    assert peer.muxed.pacer.pauses == 1


async def room_and_direct(peer: Peer) -> tuple[NetStream, NetStream]:
    """A patient stream (1) and a direct one (3), both opened by the peer."""
    room = await patient_stream(peer, 1)
    await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, 3)))
    return room, await peer.muxed.accept_stream()  # type: ignore[return-value]


def mock_clock() -> trio.testing.MockClock:
    """This run's clock, which moves only when a test jumps it."""
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    return clock


def run_on_mock_clock(scenario: Callable[[], Awaitable[None]]) -> None:
    trio.run(scenario, clock=trio.testing.MockClock())


def test_a_busy_room_is_read_once_per_pause_and_nothing_is_lost() -> None:
    async def scenario() -> None:
        clock = mock_clock()
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            stream = await patient_stream(peer, 1)
            await busy(peer, stream, 1)
            reads = peer.ours.reads
            burst = [bytes([i]) * 200 for i in range(30)]
            for post in burst:
                await peer.send(peer.seal(frame(DATA, 0, 1, post)))
            await settled()
            assert peer.ours.reads == reads  # held: the reader waits for its time
            assert peer.muxed.stream_buffers[1] == b""
            clock.jump(PATIENCE)
            got = b""
            while len(got) < 30 * 200:
                got += await stream.read(100_000)
            assert got == b"".join(burst)  # whole, in order
            await settled()
            # One read for the burst (two if the socket handed it over in two pieces), and
            # the one now waiting.
            assert peer.ours.reads - reads <= 3
            nursery.cancel_scope.cancel()

    run_on_mock_clock(scenario)


def test_a_read_holding_anything_else_is_followed_by_the_next_at_once() -> None:
    """A direct message's frame among the room's: it waited for the read like the posts
    around it, and the read after it does not wait."""

    async def scenario() -> None:
        clock = mock_clock()
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            room, direct = await room_and_direct(peer)
            await busy(peer, room, 1)
            await peer.send(peer.seal(frame(DATA, 0, 1, POST) + frame(DATA, 0, 3, b"hello")))
            await settled()
            assert peer.muxed.stream_buffers[3] == b""  # held with the post
            clock.jump(PATIENCE)
            assert await direct.read(100) == b"hello"
            assert await room.read(10_000) == POST
            await settled()
            # The next posts are read with no time passing: the streak starts again.
            for _ in range(3):
                await peer.send(peer.seal(frame(DATA, 0, 1, POST)))
                assert await room.read(10_000) == POST
                await settled()
            assert peer.muxed.pacer.pauses == 1
            nursery.cancel_scope.cancel()

    run_on_mock_clock(scenario)


def test_a_read_that_leaves_more_in_the_socket_is_followed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy room whose posts fill a read (here 1000 bytes) is read on until the socket is
    empty, and its streak starts again."""
    monkeypatch.setattr(yamux_reader, "READ_SIZE", 1000)

    async def scenario() -> None:
        clock = mock_clock()
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            room = await patient_stream(peer, 1)
            await busy(peer, room, 1)
            burst = [bytes([i]) * 200 for i in range(20)]  # about 4.6 KB on the wire
            await peer.send(b"".join(peer.seal(frame(DATA, 0, 1, post)) for post in burst))
            await settled()
            assert peer.muxed.stream_buffers[1] == b""
            reads = peer.ours.reads
            clock.jump(PATIENCE)
            await settled()  # no more time passes: each full read is followed by the next
            assert peer.muxed.stream_buffers[1] == b"".join(burst)
            assert peer.ours.reads - reads >= 5
            assert peer.muxed.pacer.pauses == 1
            nursery.cancel_scope.cancel()

    run_on_mock_clock(scenario)


def test_a_quiet_room_and_direct_traffic_are_never_held() -> None:
    async def scenario() -> None:
        clock = mock_clock()
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            room, direct = await room_and_direct(peer)
            for _ in range(5):  # a connection's first moments: gossip close together
                await peer.send(peer.seal(frame(DATA, 0, 1, POST)))
                assert await room.read(10_000) == POST
                await settled()
            for _ in range(5):  # a post now and then: each read at once
                clock.jump(BUSY_WITHIN + 0.01)
                await peer.send(peer.seal(frame(DATA, 0, 1, POST)))
                assert await room.read(10_000) == POST
                await settled()
            for i in range(50):  # direct messages back to back, the clock still
                await peer.send(peer.seal(frame(DATA, 0, 3, b"dm %d" % i)))
                assert await direct.read(100) == b"dm %d" % i
                await settled()
            # A patient stream's frame with a flag (its end) is not a post: a read that
            # held one right after a post's does not make the room busy.
            clock.jump(BUSY_WITHIN + 0.01)
            for flags in (0, FIN):
                await peer.send(peer.seal(frame(DATA, flags, 1, POST)))
                assert await room.read(10_000) == POST
                await settled()
            assert peer.muxed.pacer.pauses == 0
            nursery.cancel_scope.cancel()

    run_on_mock_clock(scenario)


def test_a_patient_stream_that_ends_is_forgotten() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            stream = await patient_stream(peer, 1)
            await peer.send(peer.seal(frame(DATA, FIN, 1, POST)))
            assert await stream.read(10_000) == POST
            await stream.close()
            await settled()
            assert 1 not in peer.muxed.streams
            assert peer.muxed.patient_streams == set()
            nursery.cancel_scope.cancel()

    run_on_mock_clock(scenario)


def on_connection(stream: INetStream) -> tuple[WindowedYamux, int]:
    """A stream's Yamux connection and its id there."""
    assert isinstance(stream, NetStream)
    muxed = stream.muxed_stream
    assert isinstance(muxed, YamuxStream) and isinstance(muxed.conn, WindowedYamux)
    return muxed.conn, muxed.stream_id


def test_gossip_streams_are_patient_both_ways_and_other_streams_are_not() -> None:
    """Two Kith hosts in a room: each side's gossip streams (the one it reads and the one it
    writes, whose window updates come back) are marked; a direct stream is not. A burst of
    posts then arrives whole and in order through reads that waited."""

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            hs, pubsubs, subs = await line(stack, 2)
            direct_protocol = TProtocol("/kith-test/direct/1")

            async def echo(stream: NetStream) -> None:
                await stream.write(await stream.read(100))
                await stream.close()

            hs[1].set_stream_handler(direct_protocol, echo)  # type: ignore[arg-type]
            direct = await hs[0].new_stream(hs[1].get_id(), [direct_protocol])
            for ours, theirs in ((0, 1), (1, 0)):
                muxed, outbound = on_connection(pubsubs[ours].peers[hs[theirs].get_id()])
                assert outbound in muxed.patient_streams
                # and the stream the peer's gossip comes on
                assert len([s for s in muxed.streams if s != outbound
                            and s in muxed.patient_streams]) == 1
            muxed, stream_id = on_connection(direct)
            assert stream_id not in muxed.patient_streams
            sent = [b"post %03d " % i + b"x" * 100 for i in range(60)]
            with trio.fail_after(30):
                for data in sent:  # a post every 10 ms or so: a busy room
                    await pubsubs[0].publish(TOPIC, data)
                    await trio.sleep(0.01)
                got = [(await subs[1].get()).data for _ in sent]
                await direct.write(b"still direct")
                assert await direct.read(100) == b"still direct"
            assert got == sent
            receiving, _ = on_connection(pubsubs[1].peers[hs[0].get_id()])
            assert receiving.pacer.pauses >= 1

    trio.run(scenario)
