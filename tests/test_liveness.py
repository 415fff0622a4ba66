"""How a ping's silence is judged (app.node.libp2p_patches.liveness), over real TCP sockets on
127.0.0.1 whose far end reads when the test says: what the kernel reports of acknowledged and
queued bytes, and a watch that never judges a peer whose queue before our ping still moves (a
live peer behind a slow link) and judges one that has held our ping, or taken nothing, for the
time allowed. The watch is given the time, so the test never waits for a clock; the whole path
through two ``kith node`` processes is tests/test_hung_peer.py."""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from libp2p.stream_muxer.yamux.yamux import FLAG_ACK, FLAG_SYN, TYPE_PING, YAMUX_HEADER_FORMAT

from app.node.libp2p_patches.liveness import (
    ANSWER_WITHIN,
    PingWatch,
    bytes_acked,
    bytes_queued,
)

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="Linux's TCP_INFO")

CHUNK = 64 * 1024


@contextmanager
def connected(receive_buffer: int | None = None) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A sending end and a receiving end of one TCP connection; the receiver's buffer as given
    (set before the connection, so its window is that small from the start)."""
    listener = socket.socket()
    if receive_buffer is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    try:
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def trio_socket(sock: socket.socket) -> trio.socket.SocketType:
    return trio.socket.from_stdlib_socket(sock)


def until(what: str, condition: object) -> None:
    """Wait (5 s at most) for the kernel to get somewhere: ``condition()`` true."""
    deadline = time.monotonic() + 5
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def fill(sender: socket.socket) -> int:
    """Write to ``sender`` until its queue is full; how many bytes it took."""
    sender.setblocking(False)
    taken = 0
    try:
        while True:
            taken += sender.send(b"x" * CHUNK)
    except BlockingIOError:
        return taken


def test_the_kernel_says_what_was_acknowledged_and_what_waits() -> None:
    with connected() as (sender, receiver):
        sock = trio_socket(sender)
        before = bytes_acked(sock)
        assert before is not None and bytes_queued(sock) == 0
        sender.sendall(b"p" * 1000)  # the peer's kernel takes it although nobody reads it
        until("the peer's kernel acknowledged 1000 bytes",
              lambda: bytes_acked(sock) == before + 1000)
        assert bytes_queued(sock) == 0
        assert receiver.recv(2000) == b"p" * 1000


def test_a_ping_behind_a_queue_that_moves_is_never_judged_and_judged_once_held() -> None:
    """A live peer behind a slow link: what we queued before our ping keeps being taken, a bit
    at a time, however long that lasts; once its kernel holds the ping, the clock runs."""
    with connected(receive_buffer=32 * 1024) as (sender, receiver):
        sock = trio_socket(sender)
        fill(sender)
        watch = PingWatch.start(sock, now=0.0)
        assert watch is not None
        assert bytes_queued(sock)  # the ping would wait behind this
        now, steps = 0.0, 0
        while bytes_queued(sock):
            acked = bytes_acked(sock)
            receiver.recv(CHUNK)  # the peer reads a little, its kernel takes a little more
            until("the sender's queue moved", lambda acked=acked: bytes_acked(sock) != acked)
            now += ANSWER_WITHIN + 1  # far longer than allowed between two steps
            steps += 1
            assert not watch.silent_too_long(now, last_received=0.0), steps
        assert steps > 2
        # Everything up to the ping is with the peer, which says nothing from now on.
        assert watch.silent_too_long(now + ANSWER_WITHIN, last_received=0.0)


def test_a_peer_whose_kernel_takes_nothing_more_is_judged() -> None:
    """A hung peer whose buffer is full: nothing moves, nothing comes back."""
    with connected(receive_buffer=32 * 1024) as (sender, _receiver):
        sock = trio_socket(sender)
        fill(sender)
        watch = PingWatch.start(sock, now=0.0)
        assert watch is not None
        assert not watch.silent_too_long(ANSWER_WITHIN - 1, last_received=0.0)
        # The kernel may still have been settling at the first look; after that, nothing.
        assert any(watch.silent_too_long(k * (ANSWER_WITHIN + 1), last_received=0.0)
                   for k in range(1, 4))


def test_anything_received_from_the_peer_starts_the_clock_again() -> None:
    with connected() as (sender, receiver):
        sock = trio_socket(sender)
        sender.sendall(b"ping")
        watch = PingWatch.start(sock, now=0.0)
        assert watch is not None
        until("the peer's kernel took the ping", lambda: bytes_queued(sock) == 0)
        assert not watch.silent_too_long(ANSWER_WITHIN - 1, last_received=0.0)
        # It sends something (anything) at ANSWER_WITHIN - 1: alive until that long after.
        assert not watch.silent_too_long(ANSWER_WITHIN + 1, last_received=ANSWER_WITHIN - 1)
        assert not watch.silent_too_long(2 * ANSWER_WITHIN - 2, last_received=ANSWER_WITHIN - 1)
        assert watch.silent_too_long(2 * ANSWER_WITHIN, last_received=ANSWER_WITHIN - 1)
        assert receiver.recv(10) == b"ping"


def test_a_closed_socket_is_not_judged() -> None:
    """Whoever closed the connection says why; the watch does not add a second verdict."""
    with connected() as (sender, _receiver):
        sock = trio_socket(sender)
        watch = PingWatch.start(sock, now=0.0)
        assert watch is not None
        sender.close()
        assert bytes_acked(sock) is None and bytes_queued(sock) is None
        assert not watch.silent_too_long(10 * ANSWER_WITHIN, last_received=0.0)


def test_the_ping_frames_in_the_protocol_document_are_the_ones_sent() -> None:
    """docs/protocol.md ("Hung peers") gives the 7th ping and its answer byte for byte."""
    text = " ".join((Path(__file__).parent.parent / "docs" / "protocol.md").read_text().split())
    found = re.search(r"for the 7th ping: `([0-9a-f ]+)` \(ping, SYN\) and `([0-9a-f ]+)` "
                      r"\(answer, ACK\)", text)
    assert found is not None
    ping, answer = (bytes.fromhex(group) for group in found.groups())
    assert ping == struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING, FLAG_SYN, 0, 7)
    assert answer == struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING, FLAG_ACK, 0, 7)
