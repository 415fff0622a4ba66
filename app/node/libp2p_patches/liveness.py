"""Patch to py-libp2p 0.8.1's Yamux ping: a peer whose process hangs is noticed.

A peer that hangs with its TCP connection up (a process stopped, deadlocked or swapped out) goes
on acknowledging what we send, because its kernel does that, so neither TCP keepalive nor
``TCP_USER_TIMEOUT`` (``tcp.detect_dead_links``) ever fires. The contact stayed online and every
message went into a connection nobody read. py-libp2p pings each connection to measure its round
trip and ignores a ping that goes unanswered.

Here the ping loop also judges the silence that follows. The hard part is a live peer on a slow
link: our ping waits behind whatever we queued before it (a file being sent keeps the socket's
send buffer full: seconds of data behind a slow uplink, more than the silence allowed behind a
256 kbit/s one), and its answer behind whatever the peer is sending us. So the clock starts only
once the peer's kernel has acknowledged every byte up to our ping (Linux's ``TCP_INFO`` counts
the bytes acknowledged; the socket's queue, when the ping went in, says how many that must be),
and anything at all received from the peer starts it again. A connection is closed when, for
``ANSWER_WITHIN`` seconds, the peer's kernel has held our ping (or taken nothing more of what
was queued before it) and its process has sent nothing. A live peer answers within a round trip;
one behind a slow link keeps acknowledging our queue, or keeps sending. Nothing changes on the
wire: Yamux pings, one every ``PING_INTERVAL``.

The same count keeps a live peer behind a slow link from being cut off by the limit on a write
waiting for the socket (``yamux.FRAME_WRITE_TIMEOUT``, 10 s, as go-yamux's): a batch of file
data (256 KiB) could take longer than that to go into the socket at 256 kbit/s, and connections were
closed in the middle of transfers. Here, while the peer's kernel acknowledges more of what
we sent, the limit of the write waiting is pushed back (``push_write_limits``): a write fails
only when nothing at all was acknowledged for that long.

Where the socket says nothing of this (a relayed connection, whose relay notices a hung end on
its own TCP connection; a system without ``TCP_INFO``), pings only measure the round trip and a
write has its 10 s, as before.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys

import trio
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux.yamux import FLAG_SYN, TYPE_PING, YAMUX_HEADER_FORMAT, Yamux

import app.node.libp2p_patches.yamux as yamux_patches
from app.node.libp2p_patches.yamux import WindowedYamux, close_quietly

log = logging.getLogger(__name__)

PING_INTERVAL = 15.0  # between the answer to one ping and the next ping
ANSWER_WITHIN = 20.0  # seconds of silence after the peer's kernel took our ping
POLL = 1.0  # how often a ping awaiting its answer looks at the socket
PONG_WAIT = 10.0  # py-libp2p's wait for an answer where nothing is judged

# Linux's ``struct tcp_info``: ``tcpi_bytes_acked``, a u64 at this offset (Linux 4.1 and later).
_BYTES_ACKED_AT = 120
_TCP_INFO_SIZE = _BYTES_ACKED_AT + 8


def bytes_acked(sock: trio.socket.SocketType) -> int | None:
    """How many bytes the peer's kernel has acknowledged on ``sock``; None where the system
    does not say (not Linux, a kernel before 4.1, a closed socket)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    return int.from_bytes(info[_BYTES_ACKED_AT:_TCP_INFO_SIZE], sys.byteorder)


def bytes_queued(sock: trio.socket.SocketType) -> int | None:
    """How many bytes written to ``sock`` its peer has not acknowledged yet (Linux's
    ``SIOCOUTQ``); None where the system does not say."""
    if not sys.platform.startswith("linux"):
        return None
    import fcntl  # Unix only
    import termios

    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)  # SIOCOUTQ, same number
    except (OSError, ValueError):  # ValueError: closed (its descriptor is -1)
        return None
    return int(struct.unpack("i", raw)[0])


class PingWatch:
    """Whether the peer's process has stayed silent too long after a ping (the module's rule).

    Made right after the ping went into the socket, so the socket's queue ends with it.
    """

    def __init__(self, sock: trio.socket.SocketType, queued: int, acked: int, now: float
                 ) -> None:
        self._sock = sock
        self._ping_acked_at = acked + queued  # bytes acknowledged once the ping is
        self._acked = acked
        self.quiet_since = now

    @classmethod
    def start(cls, sock: trio.socket.SocketType, now: float) -> PingWatch | None:
        """A watch for the ping just written to ``sock``; None where the system cannot say
        what its peer acknowledged."""
        queued = bytes_queued(sock)  # before the count acknowledged, so an acknowledgement
        acked = bytes_acked(sock)  # in between makes the mark later, never earlier
        if queued is None or acked is None:
            return None
        return cls(sock, queued, acked, now)

    def silent_too_long(self, now: float, last_received: float) -> bool:
        """Whether the peer took our ping (or nothing more of what preceded it) and sent
        nothing for ``ANSWER_WITHIN`` seconds."""
        self.quiet_since = max(self.quiet_since, last_received)
        acked = bytes_acked(self._sock)
        if acked is None:  # closed meanwhile: whoever closed it says why
            return False
        if acked != self._acked and self._acked < self._ping_acked_at:
            self.quiet_since = max(self.quiet_since, now)  # the queue before the ping moved
        self._acked = acked
        return now - self.quiet_since >= ANSWER_WITHIN


def tcp_socket(conn: Yamux) -> trio.socket.SocketType | None:
    """The TCP socket under a Yamux-over-Noise connection; None for any other (a relayed
    connection runs over a stream of another connection)."""
    session = conn.secured_conn
    if not (isinstance(session, SecureSession)
            and isinstance(session.conn, NoiseTransportReadWriter)):
        return None
    raw = session.conn.read_writer.read_write_closer
    if not (isinstance(raw, RawConnection) and isinstance(raw.stream, TrioTCPStream)):
        return None
    return raw.stream.stream.socket


def notice_hung_peers() -> None:
    """py-libp2p 0.8.1: ``Yamux._measure_rtt_loop``, the ping every connection runs, closes a
    connection whose peer stays silent after a ping (the module's docstring), and pings every
    ``PING_INTERVAL`` seconds instead of 30.

    The round trip is still measured as before: ``yamux_reader._control`` times the answer
    against ``_ping_sent_time`` and sets ``_ping_event``. Connections not read by
    ``yamux_reader`` (no ``last_received``) or without a TCP socket that reports
    acknowledgements are only pinged.
    """
    if getattr(Yamux._measure_rtt_loop, "_kith", False):
        return

    async def ping_loop(self: Yamux) -> None:
        sock = tcp_socket(self) if isinstance(self, WindowedYamux) else None
        async with trio.open_nursery() as nursery:
            if sock is not None and isinstance(self, WindowedYamux):
                nursery.start_soon(push_write_limits, self, sock)
            await _ping_until_closed(self, sock)
            nursery.cancel_scope.cancel()

    ping_loop._kith = True  # type: ignore[attr-defined]
    ping_loop.__wrapped__ = Yamux._measure_rtt_loop  # type: ignore[attr-defined]  # upstream's
    Yamux._measure_rtt_loop = ping_loop  # type: ignore[method-assign]


async def push_write_limits(conn: WindowedYamux, sock: trio.socket.SocketType) -> None:
    """While the peer's kernel acknowledges more of what we sent, the write waiting on the
    socket (``yamux.write_on_time``) gets ``FRAME_WRITE_TIMEOUT`` more seconds; looks twice
    in that time."""
    acked = bytes_acked(sock)
    while acked is not None:
        await trio.sleep(yamux_patches.FRAME_WRITE_TIMEOUT / 2)
        before, acked = acked, bytes_acked(sock)
        limit = conn.write_in_progress
        if limit is not None and acked is not None and acked != before:
            limit.deadline = max(limit.deadline,
                                 trio.current_time() + yamux_patches.FRAME_WRITE_TIMEOUT)


async def _ping_until_closed(conn: Yamux, sock: trio.socket.SocketType | None) -> None:
    """Ping every ``PING_INTERVAL`` seconds; close the connection if the peer is judged hung
    (only where ``sock``, its TCP socket, is known)."""
    await trio.sleep(0.5)  # as upstream: let the connection settle
    while not conn.event_shutting_down.is_set():
        try:
            if not await _ping_once(conn, sock):
                log.warning("%s stayed silent %.0f s after its kernel took our ping; "
                            "closing the connection", conn.peer_id, ANSWER_WITHIN)
                await close_quietly(conn.secured_conn)
                return
        except Exception:  # noqa: BLE001 - as upstream; the reader or writer says why
            return
        with trio.move_on_after(PING_INTERVAL):
            await conn.event_shutting_down.wait()


async def _ping_once(conn: Yamux, sock: trio.socket.SocketType | None) -> bool:
    """Ping ``conn`` and wait for the answer: False when the peer is judged hung."""
    conn._ping_id += 1
    conn._ping_event = answered = trio.Event()
    await conn._write_frame(struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING, FLAG_SYN, 0,
                                        conn._ping_id))
    now = conn._ping_sent_time = trio.current_time()
    watch = PingWatch.start(sock, now) if sock is not None else None
    if watch is None or not isinstance(conn, WindowedYamux) or conn.last_received is None:
        with trio.move_on_after(PONG_WAIT):  # nothing to judge by: as upstream
            await answered.wait()
        return True
    while not answered.is_set() and not conn.event_shutting_down.is_set():
        with trio.move_on_after(POLL):
            await answered.wait()
        received = conn.last_received
        if (not answered.is_set() and received is not None
                and watch.silent_too_long(trio.current_time(), received)):
            return False
    return True
