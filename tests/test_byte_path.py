"""The byte-path changes to py-libp2p's Yamux (app.node.libp2p_patches.yamux) between real
hosts on 127.0.0.1."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import trio
import trio.testing
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux
from libp2p.stream_muxer.yamux.yamux import DEFAULT_WINDOW_SIZE, Yamux, YamuxStream
from multiaddr import Multiaddr

from app.core.identity import Identity
from app.node.host import build_host
from app.node.libp2p_patches import apply_process_patches
from app.node.libp2p_patches import yamux as yamux_patches
from app.node.libp2p_patches.quick_lock import QuickLock
from app.node.libp2p_patches.yamux import BULK_WINDOW, FRAME_PAYLOAD, widen_receive_window

LOOPBACK = Multiaddr("/ip4/127.0.0.1/tcp/0")
PROTOCOL = TProtocol("/kith-test/bytes/1.0.0")
HALF_WINDOW = DEFAULT_WINDOW_SIZE // 2


async def two_hosts(
    stack: AsyncExitStack, serve: Callable[[INetStream], Awaitable[None]]
) -> tuple[IHost, IHost]:
    """Two connected hosts; the second answers PROTOCOL streams with ``serve``."""
    hosts = []
    for _ in range(2):
        host = build_host(Identity.generate(), [LOOPBACK])
        await stack.enter_async_context(host.run([LOOPBACK]))
        hosts.append(host)
    hosts[1].set_stream_handler(PROTOCOL, serve)
    await hosts[0].connect(PeerInfo(hosts[1].get_id(), hosts[1].get_addrs()))
    return hosts[0], hosts[1]


async def read_exactly(stream: INetStream, size: int, piece: int) -> bytes:
    """``size`` bytes read ``piece`` bytes at a time: many small reads, as a message reader does."""
    data = bytearray()
    while len(data) < size:
        data += await stream.read(min(piece, size - len(data)))
    return bytes(data)


def test_a_reader_of_small_messages_returns_credit_once_half_the_window_is_read() -> None:
    """py-libp2p 0.8.1 sent a WINDOW_UPDATE after every read; go-yamux waits for half."""

    async def scenario() -> None:
        phases = [100_000, 100_000]  # below half the window, then past it

        async def serve(stream: INetStream) -> None:
            for size in phases:
                await read_exactly(stream, size, 500)
                await stream.write(b"ok")  # after any credit this read sent

        async with AsyncExitStack() as stack:
            a, b = await two_hosts(stack, serve)
            stream = await a.new_stream(b.get_id(), [PROTOCOL])
            sender = stream.muxed_stream  # type: ignore[attr-defined]
            assert isinstance(sender, YamuxStream)
            window = sender.send_window  # what protocol negotiation left of the initial window
            with trio.fail_after(20):
                for _ in range(phases[0] // 500):
                    await stream.write(b"x" * 500)
                assert await stream.read(2) == b"ok"
                # 200 reads, and not one byte of credit came back: frames are ordered, so
                # any WINDOW_UPDATE sent before "ok" has been applied by now.
                assert sender.send_window == window - phases[0]
                for _ in range(phases[1] // 500):
                    await stream.write(b"y" * 500)
                assert await stream.read(2) == b"ok"
                # Past half the window the reader returned what it had read.
                assert sender.send_window > window - HALF_WINDOW

    trio.run(scenario)


def test_bodies_arrive_whole_in_one_noise_message_or_split_over_two() -> None:
    """The fast path takes a body the Noise session holds; a body split over two Noise
    messages (a peer writing 64 KiB Yamux frames, as py-libp2p does by default) goes the
    original way. Every byte arrives either way."""

    async def scenario() -> None:
        sizes = [1, 300, 70_000, 300_000]
        payloads = [os.urandom(size) for size in sizes]
        received: list[bytes] = []

        async def serve(stream: INetStream) -> None:
            for size in sizes:
                received.append(await read_exactly(stream, size, 1 << 20))

        async with AsyncExitStack() as stack:
            a, b = await two_hosts(stack, serve)
            stream = await a.new_stream(b.get_id(), [PROTOCOL])
            capped = yamux.MAX_MESSAGE_SIZE
            with trio.fail_after(20):
                for i, payload in enumerate(payloads):
                    # Odd payloads in frames larger than a Noise message: split bodies.
                    yamux.MAX_MESSAGE_SIZE = 64 * 1024 if i % 2 else capped
                    try:
                        await stream.write(payload)
                    finally:
                        yamux.MAX_MESSAGE_SIZE = capped
                while len(received) < len(sizes):
                    await trio.sleep(0.01)
        assert received == payloads

    trio.run(scenario)


def test_a_large_write_goes_out_a_few_frames_per_socket_write() -> None:
    """py-libp2p 0.8.1 wrote every frame to the socket alone (64 writes for 4 MiB)."""

    async def scenario() -> None:
        payload = os.urandom(4 << 20)
        received: list[bytes] = []

        async def serve(stream: INetStream) -> None:
            await widen_receive_window(stream, BULK_WINDOW)  # the sender never waits for credit
            assert await stream.read(1) == b"?"
            await stream.write(b"go")
            received.append(await read_exactly(stream, len(payload), 1 << 20))
            await stream.write(b"ok")

        async with AsyncExitStack() as stack:
            a, b = await two_hosts(stack, serve)
            stream = await a.new_stream(b.get_id(), [PROTOCOL])
            await stream.write(b"?")  # opens the stream at the other side
            assert await stream.read(2) == b"go"
            session = stream.muxed_conn.secured_conn  # type: ignore[attr-defined]
            raw = session.conn.read_writer.read_write_closer
            writes: list[int] = []
            real_write = raw.write

            async def counted(data: bytes) -> None:
                writes.append(len(data))
                await real_write(data)

            raw.write = counted
            with trio.fail_after(20):
                await stream.write(payload)
                assert await stream.read(2) == b"ok"
        assert received == [payload]
        frames = -(-len(payload) // FRAME_PAYLOAD)
        assert len(writes) <= frames // 4 + 4  # four frames a write (and a credit frame or so)

    trio.run(scenario)


async def _echo(stream: INetStream) -> None:
    while data := await stream.read(1 << 16):
        await stream.write(data)


async def echo_stream(stack: AsyncExitStack) -> INetStream:
    """A stream to a host that echoes it, opened at both ends (answered once)."""
    a, b = await two_hosts(stack, _echo)
    stream = await a.new_stream(b.get_id(), [PROTOCOL])
    await stream.write(b"open")
    assert await read_exactly(stream, 4, 4) == b"open"
    return stream


def test_a_small_write_goes_straight_to_the_socket_when_nothing_is_in_its_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forwarded room post used to pass three locks, two cancel scopes and ``send_all``,
    each a round through trio's scheduler; with all of them free it is one ``send``."""
    through_tcp_write: list[int] = []
    tcp_write = TrioTCPStream.write

    async def counted(self: TrioTCPStream, data: bytes) -> None:
        through_tcp_write.append(len(data))
        await tcp_write(self, data)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            stream = await echo_stream(stack)
            monkeypatch.setattr(TrioTCPStream, "write", counted)
            messages = [os.urandom(300 + i) for i in range(20)]
            with trio.fail_after(10):
                for message in messages:
                    await stream.write(message)
                    assert await read_exactly(stream, len(message), 1 << 16) == message
            monkeypatch.setattr(TrioTCPStream, "write", tcp_write)
        # The echoing side's credit frames still take the ordinary path; no data frame does.
        assert all(size < 100 for size in through_tcp_write), through_tcp_write

    trio.run(scenario)


def test_a_connection_reads_its_socket_straight(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SocketStream.receive_some`` cost each read a trip through the scheduler after the
    bytes came, on top of the wait before them: a connection's reader reads the socket
    itself, on both sides."""
    through_receive_some: list[int] = []
    receive_some = trio.SocketStream.receive_some

    async def counted(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        through_receive_some.append(max_bytes or 0)
        return await receive_some(self, max_bytes)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            stream = await echo_stream(stack)
            monkeypatch.setattr(trio.SocketStream, "receive_some", counted)
            with trio.fail_after(10):
                for size in (1, 300, 70_000, 200_000):  # under the window: echoed while written
                    message = os.urandom(size)
                    await stream.write(message)
                    assert await read_exactly(stream, size, 1 << 16) == message
            monkeypatch.setattr(trio.SocketStream, "receive_some", receive_some)
        assert through_receive_some == []

    trio.run(scenario)


def test_a_free_lock_is_taken_without_a_trip_through_the_scheduler() -> None:
    """Every stream read and write enters its ``NetStream``'s state lock and every frame its
    connection's write lock: free, that no longer lets other tasks run first; held, it is
    waited for as before."""

    async def scenario() -> None:
        lock = QuickLock()
        with trio.testing.assert_no_checkpoints():
            async with lock:
                assert lock.locked()
        assert not lock.locked()

        ran: list[str] = []
        inside = trio.Event()

        async def hold() -> None:
            async with lock:
                inside.set()
                await trio.sleep(0.05)
                ran.append("holder done")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold)
            await inside.wait()
            with pytest.raises(trio.WouldBlock):
                lock.acquire_nowait()
            with trio.testing.assert_checkpoints():
                async with lock:
                    ran.append("waiter in")
        assert ran == ["holder done", "waiter in"]

        # A waiter cancelled while it waits never holds the lock.
        lock.acquire_nowait()
        with trio.move_on_after(0.05):
            await lock.acquire()
        lock.release()
        assert not lock.locked()
        with pytest.raises(RuntimeError):
            lock.release()

        async with AsyncExitStack() as stack:
            a, b = await two_hosts(stack, _echo)
            stream = await a.new_stream(b.get_id(), [PROTOCOL])
            assert isinstance(stream._state_lock, QuickLock)  # type: ignore[attr-defined]
            assert isinstance(stream.muxed_conn._write_lock, QuickLock)  # type: ignore[attr-defined]

    trio.run(scenario)


def test_a_frame_the_socket_takes_in_part_is_finished_before_any_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The straight write encrypts its frame before the socket takes it: what the socket
    leaves must go out next, whole, or the peer's next decryption fails and the connection
    dies with every stream on it."""
    send_now = yamux_patches.send_now
    monkeypatch.setattr(yamux_patches, "send_now", lambda sock, data: send_now(sock, data[:7]))

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            a, b = await two_hosts(stack, _echo)
            streams = [await a.new_stream(b.get_id(), [PROTOCOL]) for _ in range(3)]
            messages = [[os.urandom(200 + 10 * i + j) for i in range(10)] for j in range(3)]

            async def talk(stream: INetStream, mine: list[bytes]) -> None:
                for message in mine:
                    await stream.write(message)
                echoed = await read_exactly(stream, sum(map(len, mine)), 1 << 16)
                assert echoed == b"".join(mine)

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for stream, mine in zip(streams, messages, strict=True):
                        nursery.start_soon(talk, stream, mine)
                large = os.urandom(300_000)  # and the batched path after it
                await streams[0].write(large)
                assert await read_exactly(streams[0], len(large), 1 << 16) == large
            (conn,) = a.get_network().get_connections(b.get_id())
            assert not conn.is_closed

    trio.run(scenario)


def test_the_py_libp2p_internals_the_byte_path_relies_on_are_there() -> None:
    """Guards the byte-path patches: a py-libp2p upgrade that moves these must fail here."""
    apply_process_patches()
    credit = YamuxStream._auto_tune_and_send_window_update
    assert credit.__qualname__.startswith("batch_window_updates.")
    assert Yamux._read_data_body.__qualname__.startswith("take_buffered_bodies.")
    for name in ("_grow_to_delta", "_apply_autotune_epoch", "send_window_update"):
        assert callable(getattr(YamuxStream, name)), name
    # What the replaced method was awaited with, and the state it reads.
    assert "_auto_tune_and_send_window_update(bytes_read=" in inspect.getsource(YamuxStream.read)
    init = inspect.getsource(YamuxStream.__init__)
    for field in ("self.recv_window", "self.target_recv_window", "self.window_lock"):
        assert field in init, field
    assert "self.stream_buffers" in inspect.getsource(Yamux.__init__)
    assert "await self._read_data_body(length)" in inspect.getsource(Yamux.handle_incoming)
    session = inspect.getsource(SecureSession)
    for field in ("self.low_watermark", "self.high_watermark", "def _drain("):
        assert field in session, field
