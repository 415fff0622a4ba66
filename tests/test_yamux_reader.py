"""Kith's one-pass Yamux-over-Noise reader (app.node.libp2p_patches.yamux_reader), fed by a
peer that writes exactly the bytes a test chooses over a real socket pair: frames split at
every byte, many Noise messages in one read, a body that never comes, a bad MAC."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
from libp2p.stream_muxer.yamux.yamux import DEFAULT_WINDOW_SIZE
from noise.connection import Keypair, NoiseConnection

from app.node.libp2p_patches import apply_process_patches
from app.node.libp2p_patches.yamux import WindowedYamux, _WindowedBuffer
from app.node.libp2p_patches.yamux_reader import read_stream_into

HEADER = struct.Struct("!BBHII")
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8


def frame(kind: int, flags: int, stream_id: int, body: bytes = b"", length: int | None = None
          ) -> bytes:
    return HEADER.pack(0, kind, flags, stream_id, len(body) if length is None else length) + body


def noise_pair() -> tuple[NoiseConnection, NoiseConnection]:
    """Two ends of a finished Noise XX handshake, as libp2p's Noise runs it."""
    ends = []
    for initiator in (True, False):
        end = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
        end.set_as_initiator() if initiator else end.set_as_responder()
        end.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
        end.start_handshake()
        ends.append(end)
    dialer, listener = ends
    listener.read_message(dialer.write_message())
    dialer.read_message(listener.write_message())
    listener.read_message(dialer.write_message())
    return dialer, listener


class CountedReads:
    """Our end of the socket pair, counting reads (of the socket, or of the raw connection
    above it: py-libp2p's layers read the latter). Like ``trio.SocketStream`` it has a
    ``socket`` whose ``_sock`` the reader reads straight, counted too, and whose options
    (``tcp.detect_dead_links``, ``liveness.bytes_acked``) are the real socket's."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reads = 0
        self.socket = SimpleNamespace(_sock=_CountedSocket(stream.socket._sock, self),  # type: ignore[attr-defined]
                                      setsockopt=stream.socket.setsockopt,
                                      getsockopt=stream.socket.getsockopt,
                                      fileno=stream.socket.fileno)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def aclose(self) -> None:
        await self.stream.aclose()


class _CountedSocket:
    """A non-blocking stdlib socket whose reads ``owner`` counts."""

    def __init__(self, sock: socket.socket, owner: CountedReads) -> None:
        self._sock, self._owner = sock, owner

    def recv(self, size: int) -> bytes:
        self._owner.reads += 1
        return self._sock.recv(size)

    def fileno(self) -> int:
        return self._sock.fileno()


@dataclass
class Peer:
    """The far end: writes chosen bytes, and decrypts what our Yamux answers."""

    socket: trio.SocketStream
    noise: NoiseConnection
    muxed: WindowedYamux
    raw: RawConnection
    ours: CountedReads
    answers: list[tuple[int, int, int, int]] = field(default_factory=list)

    def seal(self, plaintext: bytes) -> bytes:
        sealed = self.noise.encrypt(plaintext)
        return len(sealed).to_bytes(2, "big") + sealed

    async def send(self, data: bytes) -> None:
        await self.socket.send_all(data)

    async def collect_answers(self) -> None:
        pending = b""
        plain = b""
        while data := await self.socket.receive_some(1 << 16):
            pending += data
            while len(pending) >= 2 and len(pending) >= 2 + int.from_bytes(pending[:2], "big"):
                size = int.from_bytes(pending[:2], "big")
                plain += self.noise.decrypt(pending[2:2 + size])
                pending = pending[2 + size:]
            while len(plain) >= 12:
                _, kind, flags, stream_id, length = HEADER.unpack_from(plain)
                body = length if kind == DATA else 0
                self.answers.append((kind, flags, stream_id, length))
                plain = plain[12 + body:]


@asynccontextmanager
async def connection(nursery: trio.Nursery) -> AsyncIterator[Peer]:
    """Our ``WindowedYamux`` (the listener's side) over Noise over one end of a socket pair."""
    apply_process_patches()
    ours, theirs = trio.socket.socketpair()
    dialer, listener = noise_pair()

    socket = CountedReads(trio.SocketStream(ours))
    raw = RawConnection(TrioTCPStream(socket), initiator=False)  # type: ignore[arg-type]
    keys, remote = create_new_key_pair(), create_new_key_pair()
    session = SecureSession(
        local_peer=ID.from_pubkey(keys.public_key), local_private_key=keys.private_key,
        remote_peer=ID.from_pubkey(remote.public_key),
        remote_permanent_pubkey=remote.public_key, is_initiator=False,
        conn=NoiseTransportReadWriter(raw, listener))
    muxed = WindowedYamux(session, session.remote_peer, is_initiator=False)
    peer = Peer(trio.SocketStream(theirs), dialer, muxed, raw, socket)
    counted = raw.read

    async def read(n: int | None = None) -> bytes:
        socket.reads += 1
        return await counted(n)

    raw.read = read  # type: ignore[method-assign]
    nursery.start_soon(muxed.start)
    nursery.start_soon(peer.collect_answers)
    await muxed.event_started.wait()
    yield peer


async def read_to_end(stream: object) -> bytes:
    data = b""
    while True:
        try:
            data += await stream.read(1000)  # type: ignore[attr-defined]
        except MuxedStreamEOF:
            return data


def seal_with(noise: NoiseConnection, plaintext: bytes) -> bytes:
    sealed = noise.encrypt(plaintext)
    return len(sealed).to_bytes(2, "big") + sealed


def test_frames_split_across_socket_reads_at_every_byte_arrive_whole() -> None:
    """A frame's header and body in separate Noise messages, a body over two, a Noise message
    over two socket reads: whatever byte the socket splits at, every stream gets its bytes."""

    def wire(noise: NoiseConnection, stream_id: int) -> bytes:
        return b"".join(seal_with(noise, plaintext) for plaintext in [
            frame(WINDOW_UPDATE, SYN, stream_id) + frame(DATA, 0, stream_id, length=5)
            + b"hel",  # the body goes on in the next Noise message
            b"lo" + frame(DATA, 0, stream_id, b" world"),
            frame(DATA, FIN, stream_id, length=1),  # a header alone ...
            b"!",  # ... and its body
        ])

    size = len(wire(noise_pair()[0], 1))

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            for split in range(1, size):
                stream_id = 2 * split + 1
                data = wire(peer.noise, stream_id)
                with trio.fail_after(10):
                    await peer.send(data[:split])
                    await trio.testing.wait_all_tasks_blocked()
                    await peer.send(data[split:])
                    stream = await peer.muxed.accept_stream()
                    assert await read_to_end(stream) == b"hello world!", split
                    await stream.close()
            # Each stream was acknowledged once, and nothing was reset.
            assert [a for a in peer.answers if a[1] & ACK] == [
                (WINDOW_UPDATE, ACK, 2 * split + 1, 0) for split in range(1, size)]
            assert not [a for a in peer.answers if a[1] & RST]
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_noise_messages_arriving_a_byte_per_socket_read_arrive_whole() -> None:
    """Every socket read holds one byte: a Noise message's length and body are completed over
    many reads, and the message after it starts in the read that ends the one before."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            data = (peer.seal(frame(WINDOW_UPDATE, SYN, 1) + frame(DATA, 0, 1, b"one "))
                    + peer.seal(frame(DATA, FIN, 1, b"two")))
            with trio.fail_after(10):
                for at in range(len(data)):
                    await trio.testing.wait_all_tasks_blocked()
                    await peer.send(data[at:at + 1])
                stream = await peer.muxed.accept_stream()
                assert await read_to_end(stream) == b"one two"
            assert peer.ours.reads >= len(data)
            nursery.cancel_scope.cancel()

    trio.run(scenario)


async def read_all_into(peer: Peer, stream_id: int, size: int) -> bytes:
    """A stream to its end, read into buffers of ``size`` bytes (a bulk reader's way)."""
    data = b""
    while True:
        into = memoryview(bytearray(size))
        try:
            n = await read_stream_into(peer.muxed, stream_id, into)
        except MuxedStreamEOF:
            return data
        assert 1 <= n <= size
        data += into[:n]


def test_a_reader_with_its_own_buffer_gets_every_byte_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies go straight into a waiting reader's buffer; what does not fit waits in the
    stream's buffer and comes first in the next read, whatever the sizes; FIN ends it. A
    buffer with room for everything gets every byte without the stream's buffer."""
    buffered: list[int] = []
    extend = _WindowedBuffer.extend

    def counted(self: _WindowedBuffer, data: Any) -> None:
        buffered.append(len(data))
        extend(self, data)

    monkeypatch.setattr(_WindowedBuffer, "extend", counted)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            bodies = [bytes([65 + i]) * (100 + 37 * i) for i in range(12)]
            expected = b"".join(bodies)
            for sid, size in enumerate((1, 7, 64, 1000, len(expected) + 10)):
                stream_id = 2 * sid + 1
                buffered.clear()
                await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, stream_id)))
                stream = await peer.muxed.accept_stream()
                async with trio.open_nursery() as readers:
                    got: list[bytes] = []

                    async def reader(size: int = size, stream_id: int = stream_id,
                                     got: list[bytes] = got) -> None:
                        got.append(await read_all_into(peer, stream_id, size))

                    readers.start_soon(reader)
                    with trio.fail_after(10):
                        for i in range(0, len(bodies), 3):  # three frames per message
                            await trio.testing.wait_all_tasks_blocked()
                            flags = FIN if i + 3 >= len(bodies) else 0
                            await peer.send(peer.seal(b"".join(
                                frame(DATA, flags if j == i + 2 else 0, stream_id, bodies[j])
                                for j in range(i, i + 3))))
                assert got == [expected], size
                if size > len(expected):
                    assert not sum(buffered), buffered
                assert stream_id not in peer.muxed.read_targets
                await stream.close()
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_a_reader_cancelled_after_its_bytes_came_leaves_them_for_the_next_read() -> None:
    """Bytes copied into a waiting reader that is cancelled before it runs again are not
    lost: they go back in front of the stream's buffer. The copy is made here as the frame
    loop makes it, in the same step as the cancellation: which of the two runs first is
    otherwise up to trio's scheduler."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, 1)))
            stream = await peer.muxed.accept_stream()
            scope = trio.CancelScope()

            async def reader() -> None:
                with scope:
                    await read_stream_into(peer.muxed, 1, memoryview(bytearray(100)))
                    raise AssertionError("the read was not cancelled")

            with trio.fail_after(10):
                async with trio.open_nursery() as readers:
                    readers.start_soon(reader)
                    await trio.testing.wait_all_tasks_blocked()
                    scope.cancel()  # the reader is woken with Cancelled; before it runs ...
                    target = peer.muxed.read_targets[1]
                    assert target.fill(memoryview(b"first ")) == 6  # ... its bytes come
                    peer.muxed.stream_buffers[1].extend(b"then ")  # and more after them
                    peer.muxed.streams[1].recv_window -= 11
                    peer.muxed.stream_events[1].set()
                assert 1 not in peer.muxed.read_targets
                await peer.send(peer.seal(frame(DATA, FIN, 1, b"second")))
                assert await read_all_into(peer, 1, 4) == b"first then second"
            await stream.close()
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_a_reset_ends_a_reader_waiting_with_its_buffer_as_it_ends_any_reader() -> None:
    """A stream reset while its reader waits: ``read_stream_into`` fails as ``read_stream``
    does, for a reset alone and for data then a reset."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            outcomes: dict[tuple[str, int], str] = {}

            async def reader(way: str, stream_id: int) -> None:
                try:
                    if way == "into":
                        await read_stream_into(peer.muxed, stream_id, memoryview(bytearray(9)))
                    else:
                        await peer.muxed.read_stream(stream_id, 9)
                    outcomes[way, stream_id] = "read"
                except (MuxedStreamEOF, MuxedStreamReset) as error:
                    outcomes[way, stream_id] = type(error).__name__

            with trio.fail_after(10):
                for stream_id, before in ((1, b""), (3, b"data")):
                    for way, sid in (("into", stream_id), ("plain", stream_id + 100)):
                        await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, sid)))
                        await peer.muxed.accept_stream()
                        async with trio.open_nursery() as readers:
                            readers.start_soon(reader, way, sid)
                            await trio.testing.wait_all_tasks_blocked()
                            rst = frame(WINDOW_UPDATE, RST, sid)
                            await peer.send(peer.seal(
                                frame(DATA, 0, sid, before) + rst if before else rst))
                        outcomes[way, stream_id] = outcomes.pop((way, sid))
            for stream_id in (1, 3):
                assert outcomes["into", stream_id] == outcomes["plain", stream_id], outcomes
            assert 1 not in peer.muxed.read_targets and 3 not in peer.muxed.read_targets
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_many_noise_messages_in_one_socket_read_are_read_in_one_pass() -> None:
    """py-libp2p read every frame's header and body through the Noise session: two reads of
    the raw connection per Noise message (its length, then the rest), here 2 x 60."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            messages = [peer.seal(frame(WINDOW_UPDATE, SYN, 1))]
            messages += [peer.seal(frame(DATA, 0, 1, bytes([i]) * 100)) for i in range(59)]
            with trio.fail_after(10):
                await trio.testing.wait_all_tasks_blocked()
                before = peer.ours.reads
                await peer.send(b"".join(messages))
                stream = await peer.muxed.accept_stream()
                data = b""
                while len(data) < 5900:
                    data += await stream.read(10_000)
            assert data == b"".join(bytes([i]) * 100 for i in range(59))
            await trio.testing.wait_all_tasks_blocked()
            assert peer.ours.reads - before <= 3  # the burst, and the read now waiting
            nursery.cancel_scope.cancel()

    trio.run(scenario)


async def talk(peer: Peer, stream_id: int) -> None:
    """One stream opened, written and read on ``peer``'s connection: it still works."""
    await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, stream_id)
                              + frame(DATA, FIN, stream_id, b"still here")))
    stream = await peer.muxed.accept_stream()
    assert await read_to_end(stream) == b"still here"


def test_a_socket_emptied_by_a_read_is_waited_for_before_the_next() -> None:
    """A room post arrives alone, in one socket read: a ``recv`` right after it, before
    waiting, found nothing, one system call and one exception per post for nothing."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            with trio.fail_after(10):
                await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, 1)))
                stream = await peer.muxed.accept_stream()
                await trio.testing.wait_all_tasks_blocked()
                before = peer.ours.reads
                for i in range(20):
                    await peer.send(peer.seal(frame(DATA, 0, 1, bytes([i]) * 300)))
                    assert await stream.read(10_000) == bytes([i]) * 300
                    await trio.testing.wait_all_tasks_blocked()
            assert peer.ours.reads - before == 20  # one read per post, none in vain
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_a_body_that_never_comes_closes_its_connection_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PY_YAMUX_DATA_READ_TIMEOUT", "0.5")

    async def scenario() -> None:
        async with (trio.open_nursery() as nursery, connection(nursery) as stalled,
                    connection(nursery) as other):
            with trio.fail_after(20):
                await stalled.send(stalled.seal(frame(WINDOW_UPDATE, SYN, 1)
                                                + frame(DATA, 0, 1, length=1000) + b"x" * 10))
                await talk(other, 1)
                await stalled.muxed.event_closed.wait()
                await talk(other, 3)
            assert not other.muxed.event_shutting_down.is_set()
            nursery.cancel_scope.cancel()

    trio.run(scenario)


@pytest.mark.parametrize("hostile", ["bad MAC", "oversized frame", "past the window",
                                     "announced past the window", "GO_AWAY"])
def test_a_hostile_or_closing_peer_ends_its_connection_only(hostile: str) -> None:
    async def scenario() -> None:
        async with (trio.open_nursery() as nursery, connection(nursery) as peer,
                    connection(nursery) as other):
            with trio.fail_after(20):
                await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, 1)))
                stream = await peer.muxed.accept_stream()
                if hostile == "bad MAC":
                    sealed = bytearray(peer.seal(frame(DATA, 0, 1, b"forged")))
                    sealed[-1] ^= 1
                    await peer.send(bytes(sealed))
                elif hostile == "oversized frame":
                    await peer.send(peer.seal(frame(DATA, 0, 1, length=(16 << 20) + 1)))
                elif hostile == "past the window":
                    body = bytes(60_000)
                    for _ in range(DEFAULT_WINDOW_SIZE // len(body) + 1):
                        await peer.send(peer.seal(frame(DATA, 0, 1, body)))
                elif hostile == "announced past the window":
                    # Only the header and a little: closed at once, not after the 60 s a body
                    # may take, and without holding what it announced.
                    await peer.send(peer.seal(frame(DATA, 0, 1, length=DEFAULT_WINDOW_SIZE + 1)
                                              + b"x" * 10))
                else:
                    await peer.send(peer.seal(frame(GO_AWAY, 0, 0, length=0)))
                await peer.muxed.event_closed.wait()
                with pytest.raises((MuxedStreamEOF, MuxedStreamReset)):
                    await read_to_end(stream)
                await talk(other, 1)
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_resets_pings_and_credit_do_what_py_libp2p_does() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery, connection(nursery) as peer:
            with trio.fail_after(20):
                await peer.send(peer.seal(frame(WINDOW_UPDATE, SYN, 1, length=1000)
                                          + frame(WINDOW_UPDATE, SYN, 3)))
                first = await peer.muxed.accept_stream()
                second = await peer.muxed.accept_stream()
                window = first.send_window  # type: ignore[attr-defined]
                assert window == DEFAULT_WINDOW_SIZE + 1000
                await peer.send(peer.seal(frame(WINDOW_UPDATE, 0, 1, length=500)
                                          + frame(WINDOW_UPDATE, RST, 3)
                                          + frame(WINDOW_UPDATE, SYN, 1)  # an id in use
                                          + frame(PING, SYN, 0, length=77)))
                with pytest.raises((MuxedStreamEOF, MuxedStreamReset)):  # EOF: it is gone
                    await second.read(10)
                assert second.reset_received  # type: ignore[attr-defined]
                assert first.send_window == window + 500  # type: ignore[attr-defined]
                await trio.testing.wait_all_tasks_blocked()  # every answer read
                assert (PING, ACK, 0, 77) in peer.answers
                assert (WINDOW_UPDATE, RST, 1, 0) in peer.answers
            nursery.cancel_scope.cancel()

    trio.run(scenario)
