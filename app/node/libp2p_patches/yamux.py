"""Patches to py-libp2p 0.8.1's Yamux: bounded buffers, whole frames, and a cheaper byte path.

Measured on a 1 GiB file transfer between two processes sharing two cores, where every CPU
cycle spent per byte is on the critical path:

* A Yamux data frame carried up to 64 KiB (header included), 17 bytes more than one Noise
  message holds, so every frame went out as a full Noise message and a 17-byte one: twice the
  encryptions, length prefixes and socket writes (``fit_frames_to_noise``).
* Yamux's receiver sends a WINDOW_UPDATE frame (encrypted, written, then parsed by the sender)
  after every read, even a one-byte read of a length prefix. go-yamux returns credit once half
  the window has been consumed (``batch_window_updates``).
* A DATA frame's body, already decrypted in memory, was read again under a fresh timeout
  scope (``take_buffered_bodies``).
* Each frame went through four layers of locks, copies and checkpoints and a socket write of
  its own (``write_in_batches``).

None changes the protocol: only how bytes are grouped into frames. The other patches here
bound what a peer can make us buffer and keep one cancelled write from breaking a connection.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import INetStream
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux import yamux
from libp2p.stream_muxer.yamux.yamux import (
    HEADER_SIZE,
    MAX_WINDOW_SIZE,
    TYPE_DATA,
    TYPE_GO_AWAY,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)

from app.node.libp2p_patches.quick_lock import QuickLock
from app.node.libp2p_patches.read_pacing import ReadPacer

log = logging.getLogger(__name__)

BULK_WINDOW = MAX_WINDOW_SIZE  # 16 MiB, the most a py-libp2p peer accepts
# How long a write may wait on the socket (go-yamux's ConnectionWriteTimeout) while the peer's
# kernel acknowledges nothing (``liveness`` pushes the limit back while it does); a peer that
# took nothing by then is gone, and the connection is closed.
FRAME_WRITE_TIMEOUT = 10.0


def fit_frames_to_noise() -> None:
    """py-libp2p 0.8.1: a Yamux data frame fits in one Noise message.

    ``YamuxStream.write`` reads the module's ``MAX_MESSAGE_SIZE`` (64 KiB) at each call and
    cuts data into frames of that size plus a 12-byte header, which Noise (at most
    ``MAX_PLAINTEXT_LENGTH`` bytes a message) then sends as two messages.
    """
    yamux.MAX_MESSAGE_SIZE = MAX_PLAINTEXT_LENGTH


def batch_window_updates() -> None:
    """py-libp2p 0.8.1: credit goes back once half a window was read, not after every read
    (go-yamux's GrowTo).

    ``YamuxStream._auto_tune_and_send_window_update``, which every ``YamuxStream.read``
    awaits, sends a WINDOW_UPDATE whenever any read byte is not yet credited (its "partial
    slack" branch, taken whatever ``PY_YAMUX_RELEASE_ON_READ`` says), so a reader of small
    messages sends one frame per read: a 600-byte gossip RPC cost three credit frames, most of
    a room post's frames on every link. This replacement keeps the rest of that method
    (growing back to the target window, doubling the target when updates come within four
    round trips, as ``cap_receive_window`` may limit per stream) and drops the per-read
    release. A sender never stalls for it: it has the other half of the window while the first
    half is read. It takes no ``window_lock``: the check and the update have no ``await``
    between them, so no other task can run in between; the lock only cost every read a trip
    through the scheduler.
    """
    if getattr(YamuxStream._auto_tune_and_send_window_update, "_kith", False):
        return

    async def credit(self: YamuxStream, *, bytes_read: int = 0) -> None:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        read_uncredited = self.target_recv_window - (self.recv_window + buffered)
        if read_uncredited < self.target_recv_window // 2:
            return
        grant = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if grant > 0:
            await self.send_window_update(grant)

    credit._kith = True  # type: ignore[attr-defined]
    # Upstream's method, for the guards in tests/test_libp2p_patches.py (inspect follows it).
    credit.__wrapped__ = YamuxStream._auto_tune_and_send_window_update  # type: ignore[attr-defined]
    YamuxStream._auto_tune_and_send_window_update = credit  # type: ignore[method-assign]


def take_buffered_bodies() -> None:
    """py-libp2p 0.8.1: a Yamux DATA frame's body is taken straight from the Noise session when
    it is all there.

    ``Yamux._read_data_body`` reads every body with ``read_exactly`` inside ``trio.fail_after``
    (a timeout for a peer that announces a body and never sends it). A frame's header and body
    travel in one Noise message, so a body that ``SecureSession`` already holds decrypted
    cannot wait: it is returned as the same bytes ``read_exactly`` would return; anything else
    goes the original way. Upstream could do this with a public "bytes buffered" on the session.
    """
    if getattr(Yamux._read_data_body, "_kith", False):
        return
    read_body = Yamux._read_data_body

    async def read_data_body(self: Yamux, length: int) -> bytes:
        session = self.secured_conn
        if (isinstance(session, SecureSession)
                and session.high_watermark - session.low_watermark >= length):
            return session._drain(length)
        return await read_body(self, length)

    read_data_body._kith = True  # type: ignore[attr-defined]
    read_data_body.__wrapped__ = read_body  # type: ignore[attr-defined]  # upstream's
    Yamux._read_data_body = read_data_body  # type: ignore[method-assign]


def write_frames_whole() -> None:
    """py-libp2p 0.8.1: a Yamux frame is written whole, or its connection is closed.

    ``Yamux._write_frame`` hands each frame to Noise, which encrypts it (using up a nonce) and
    then awaits the socket. A task cancelled at that await (a timeout around a write, a relay
    ending one direction of a circuit while the other is writing) leaves the frame unsent and
    the nonce spent: every later message fails authentication at the peer, and the whole
    connection, with every stream and circuit on it, dies. Seen as a relay's connection to a
    peer dropping when a circuit through it ended. Here the write cannot be cancelled once it
    has the lock; a peer that takes nothing of it for ``FRAME_WRITE_TIMEOUT`` has its
    connection closed, as go-yamux does (``write_on_time``). GO_AWAY, the last frame of a
    connection being closed, is written as before, so closing stays as quick to cancel as it
    was.
    """
    if getattr(Yamux._write_frame, "_kith", False):
        return
    unprotected = Yamux._write_frame

    async def write_frame(self: Yamux, data: bytes) -> None:
        if len(data) > 1 and data[1] == TYPE_GO_AWAY:
            await unprotected(self, data)
            return
        async with self._write_lock:
            await write_on_time(self, self.secured_conn.write, data)
        await trio.lowlevel.checkpoint()

    write_frame._kith = True  # type: ignore[attr-defined]
    Yamux._write_frame = write_frame  # type: ignore[method-assign]


FRAME_PAYLOAD = MAX_PLAINTEXT_LENGTH - HEADER_SIZE  # a DATA frame's body, one Noise message
BATCH_BYTES = 4 * FRAME_PAYLOAD  # a bulk write goes out this many bytes per socket write
WINDOW_WAIT = 5.0  # py-libp2p's: a writer out of credit for this long fails


def write_in_batches() -> None:
    """py-libp2p 0.8.1: a write to a Yamux stream over Noise goes out a few frames per socket
    write, through fewer layers.

    ``YamuxStream.write`` sends each 64 KiB frame through four layers, each with its own lock,
    copy and trio checkpoint (``Yamux._write_frame``, ``SecureSession.write``, Noise's
    ``write_msg``, which prefixes the length by concatenation, and ``TrioTCPStream.write``),
    one socket write per frame: most of a file sender's CPU besides encryption, and for a
    small write (a forwarded room post) five trips through the scheduler. Here a write takes
    credit for up to ``BATCH_BYTES`` at a time, encrypts its frames (from a memoryview,
    without slicing copies) and writes them with one ``send_all``, under the connection's
    write lock and shielded as ``write_frames_whole`` does, so frames and Noise nonces stay
    in order and a cancelled write cannot leave half a batch behind. The bytes on the wire
    are exactly those of separate frames. Empty writes, connections not over Noise, and
    frames not sized by ``fit_frames_to_noise`` take the original path.
    """
    if getattr(YamuxStream.write, "_kith", False):
        return
    one_by_one = YamuxStream.write

    async def write(self: YamuxStream, data: bytes) -> None:
        session = self.conn.secured_conn
        if (not data or yamux.MAX_MESSAGE_SIZE != MAX_PLAINTEXT_LENGTH
                or not isinstance(session, SecureSession)
                or not isinstance(session.conn, NoiseTransportReadWriter)):
            await one_by_one(self, data)
            return
        noise = session.conn
        view = memoryview(data).cast("B")
        sent, total = 0, len(view)
        if total <= FRAME_PAYLOAD and (rest := _write_now(self, noise, view)) is not None:
            if rest:
                await _write_rest(self.conn, noise, rest)
            await trio.lowlevel.checkpoint()
            return
        while sent < total:
            async with self.rw_lock.write_lock():
                if self.send_closed:
                    raise MuxedStreamError("Stream is closed for sending")
                if self.closed:
                    raise MuxedStreamError("Stream is closed")
                size = min(self.send_window, BATCH_BYTES, total - sent)
                if size > 0:
                    # No await since the window was read: nothing else can take it.
                    self.send_window -= size
                    await _write_batch(self.conn, noise, self.stream_id, view[sent:sent + size])
                    sent += size
                    continue
            await _wait_for_credit(self)

    write._kith = True  # type: ignore[attr-defined]
    write.__wrapped__ = one_by_one  # type: ignore[attr-defined]  # upstream's
    YamuxStream.write = write  # type: ignore[method-assign]


async def _write_batch(conn: Yamux, noise: NoiseTransportReadWriter, stream_id: int,
                       body: memoryview) -> None:
    """DATA frames of ``body`` for ``stream_id``, each one Noise message, in one socket write."""
    async with conn._write_lock:
        frames = _sealed_frames(noise, stream_id, body)
        await write_on_time(conn, noise.read_writer.read_write_closer.write, frames)
    await trio.lowlevel.checkpoint()


def _sealed_frames(noise: NoiseTransportReadWriter, stream_id: int, body: memoryview
                   ) -> bytearray:
    """``body`` as DATA frames for ``stream_id``, each one length-prefixed Noise message."""
    out = bytearray()
    for at in range(0, len(body), FRAME_PAYLOAD):
        piece = body[at:at + FRAME_PAYLOAD]
        header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, stream_id, len(piece))
        sealed = noise.noise_state.encrypt(header + piece)
        out += len(sealed).to_bytes(2, "big")
        out += sealed
    return out


def _write_now(stream: YamuxStream, noise: NoiseTransportReadWriter, body: memoryview
               ) -> bytearray | None:
    """A small write straight to the socket when nothing stands in its way; None (nothing
    done) when something does.

    A forwarded room post went through three locks, two cancel scopes and a ``send_all``,
    each a trip through trio's scheduler although all were free and the socket had room.
    Here, with the stream's and the connection's write locks free, credit for the whole
    frame, and no other write on the socket, the frame is encrypted and handed to a
    non-blocking ``send`` at once. What the socket does not take is returned with the
    connection's write lock held, for ``_write_rest`` to finish and release: the nonce is
    spent, so that rest must follow before any other frame.
    """
    conn = stream.conn
    raw = noise.read_writer.read_write_closer
    tcp = raw.stream if isinstance(raw, RawConnection) else None
    if (not isinstance(tcp, TrioTCPStream) or stream.send_closed or stream.closed
            or stream.send_window < len(body) or stream.rw_lock._writer_lock.value < 1
            or conn._write_lock.locked() or tcp.write_lock.locked()):
        return None
    sock = getattr(tcp.stream.socket, "_sock", None)  # trio's socket's own
    if sock is None:
        return None
    frame = _sealed_frames(noise, stream.stream_id, body)  # from here on it must go out
    conn._write_lock.acquire_nowait()
    stream.send_window -= len(body)
    try:
        taken = send_now(sock, frame)
    except OSError:  # full (BlockingIOError) or broken: the ordinary write says which
        taken = 0
    if taken == len(frame):
        conn._write_lock.release()
        return bytearray()
    del frame[:taken]
    return frame


def write_without_waiting(stream: YamuxStream, data: bytes) -> bytearray | None:
    """``data`` (at most one frame's body) written to ``stream`` at once, as ``write`` would
    send it, for a caller that must not wait (the pubsub router forwarding a post, which
    would otherwise wake the peer's sender task to write it).

    None: something stands in the way (see ``_write_now``) and nothing was done. Otherwise
    what the socket did not take, empty when it took everything; a rest holds the
    connection's write lock and must be finished with ``finish_write``.
    """
    session = stream.conn.secured_conn
    if (not data or len(data) > FRAME_PAYLOAD or yamux.MAX_MESSAGE_SIZE != MAX_PLAINTEXT_LENGTH
            or not isinstance(session, SecureSession)
            or not isinstance(session.conn, NoiseTransportReadWriter)):
        return None
    return _write_now(stream, session.conn, memoryview(data).cast("B"))


async def finish_write(stream: YamuxStream, rest: bytearray) -> None:
    """The rest ``write_without_waiting`` left, written and the write lock released."""
    session = stream.conn.secured_conn
    assert isinstance(session, SecureSession) and isinstance(session.conn,
                                                             NoiseTransportReadWriter)
    await _write_rest(stream.conn, session.conn, rest)


def send_now(sock: socket.socket, data: bytearray) -> int:
    """How many bytes of ``data`` the non-blocking ``sock`` takes now (a name of its own so a
    test can stand in a socket that takes nothing)."""
    return sock.send(data)


async def _write_rest(conn: Yamux, noise: NoiseTransportReadWriter, rest: bytearray) -> None:
    """The rest of a frame ``_write_now`` started, through the ordinary socket write,
    shielded and timed as ``_write_batch``; releases the write lock ``_write_now`` took."""
    try:
        await write_on_time(conn, noise.read_writer.read_write_closer.write, rest)
    finally:
        conn._write_lock.release()


async def write_on_time(conn: Yamux, write: Callable[[Any], Awaitable[None]], data: Any
                        ) -> None:
    """``write(data)`` to the socket, uncancellable (``write_frames_whole``); the connection is
    closed and ``RawConnError`` raised when it waits ``FRAME_WRITE_TIMEOUT`` seconds, a limit
    ``liveness`` pushes back while the peer's kernel keeps acknowledging what we sent (a live
    peer behind a slow link takes a batch in more than that)."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(FRAME_WRITE_TIMEOUT) as late:
            if isinstance(conn, WindowedYamux):
                conn.write_in_progress = late
            try:
                await write(data)
            finally:
                if isinstance(conn, WindowedYamux):
                    conn.write_in_progress = None
        if late.cancelled_caught:
            log.warning("%s took nothing we wrote for %.0f s; closing the connection",
                        conn.peer_id, FRAME_WRITE_TIMEOUT)
            await close_quietly(conn.secured_conn)
    if late.cancelled_caught:
        raise RawConnError("a frame could not be written in time")


async def _wait_for_credit(stream: YamuxStream) -> None:
    """Wait until the peer grants ``stream`` credit, as py-libp2p's write does (it polls)."""
    with trio.move_on_after(WINDOW_WAIT) as waited:
        while stream.send_window <= 0 and not stream.closed:  # noqa: ASYNC110 - no event
            await trio.sleep(0.01)
    if waited.cancelled_caught:
        raise MuxedStreamError(f"Timed out waiting for window update after {WINDOW_WAIT:.0f} "
                               "seconds.")


async def close_quietly(conn: Any) -> None:
    """Close ``conn`` (its reader then ends the connection), whatever closing raises."""
    try:
        await conn.close()
    except Exception:
        log.debug("closing a stalled connection failed", exc_info=True)


class FlowControlViolation(trio.TooSlowError):
    """A peer sent more on a Yamux stream than the receive window we granted it.

    A ``trio.TooSlowError`` because that is what py-libp2p 0.8.1's ``Yamux.handle_incoming``
    lets out of its frame handling and answers by closing the connection.
    """


class _WindowedBuffer(bytearray):
    """A stream's receive buffer that takes no more than the stream's receive window."""

    def __init__(self, conn: Yamux, stream_id: int) -> None:
        super().__init__()
        self._conn = conn
        self._stream_id = stream_id

    def extend(self, data: Any) -> None:
        check_window(self._conn, self._stream_id, len(data))
        super().extend(data)


def check_window(conn: Yamux, stream_id: int, length: int) -> None:
    """``FlowControlViolation`` if ``length`` bytes more on ``stream_id`` exceed its window."""
    stream = conn.streams.get(stream_id)
    if stream is not None and length > max(stream.recv_window, 0):
        log.warning("%s sent %d bytes on a stream with %d bytes of window left; "
                    "closing the connection", conn.peer_id, length, stream.recv_window)
        raise FlowControlViolation


class _WindowedBuffers(dict[int, bytearray]):
    def __init__(self, conn: Yamux) -> None:
        super().__init__()
        self._conn = conn

    def __setitem__(self, stream_id: int, buffer: bytearray) -> None:
        windowed = _WindowedBuffer(self._conn, stream_id)
        bytearray.extend(windowed, buffer)
        super().__setitem__(stream_id, windowed)


class WindowedYamux(Yamux):
    """Yamux that holds a peer to the receive windows it granted (``enforce_yamux_windows``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_buffers = _WindowedBuffers(self)
        # Nearly always free (a write holds it across an await only when the socket is full):
        # see ``quick_lock``. Every frame of the connection is written under it.
        self._write_lock = QuickLock()  # type: ignore[assignment]
        # Streams whose reader waits with a buffer of its own (``yamux_reader.read_into``).
        self.read_targets: dict[int, ReadTarget] = {}
        # When ``yamux_reader`` last read anything from the peer (trio's clock); None while
        # it does not read this connection (``liveness`` then judges no silence).
        self.last_received: float | None = None
        # The time limit of the write waiting on the socket, if any (``write_on_time``).
        self.write_in_progress: trio.CancelScope | None = None
        # Streams whose frames may wait for the next read, and when that read is
        # (``let_wait``, ``read_pacing``).
        self.patient_streams: set[int] = set()
        self.pacer = ReadPacer()

    def _finalize_stream_locked(self, stream: YamuxStream, *, fully_closed: bool) -> None:
        """Upstream's, forgetting that the stream was patient: ids are not reused, but a
        peer that opens and closes streams must not grow the set."""
        self.patient_streams.discard(stream.stream_id)
        super()._finalize_stream_locked(stream, fully_closed=fully_closed)


class ReadTarget:
    """The buffer a waiting reader wants its stream's next bytes in, and how much they fill."""

    __slots__ = ("filled", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.filled = 0

    def fill(self, data: memoryview) -> int:
        """Copy as much of ``data`` as there is room for; how much that was."""
        n = min(len(data), len(self.view) - self.filled)
        self.view[self.filled:self.filled + n] = data[:n]
        self.filled += n
        return n


def enforce_yamux_windows() -> None:
    """py-libp2p 0.8.1: every Yamux connection of this process is a ``WindowedYamux``.

    py-libp2p's Yamux appends whatever arrives on a stream to that stream's buffer, past the
    window it granted (it logs a warning): a peer that ignores flow control made a node buffer
    100 MiB on one stream nobody read, and would have gone on. With this, a stream's buffer
    refuses data beyond its window and the connection is closed, as go-yamux does: unread data
    is bounded by the windows granted, 256 KiB per stream unless its reader widened it.
    ``MuxerMultistream.new_conn`` builds ``Yamux`` by that name whatever class the muxer
    options give, so the name is replaced in its module.
    """
    muxer_multistream.Yamux = WindowedYamux  # type: ignore[misc]


def let_wait(stream: INetStream) -> None:
    """Frames of ``stream`` (a ``NetStream``) may wait a moment for the next socket read
    while they come often (``read_pacing``, read by ``yamux_reader``)."""
    muxed = getattr(stream, "muxed_stream", None)
    if isinstance(muxed, YamuxStream) and isinstance(muxed.conn, WindowedYamux):
        muxed.conn.patient_streams.add(muxed.stream_id)


def cap_receive_window(stream: INetStream, cap: int) -> None:
    """py-libp2p 0.8.1: this stream's Yamux receive window grows to ``cap`` at most.

    py-libp2p's auto-tuning doubles a stream's window, from 256 KiB up to 16 MiB, whenever its
    reader consumed a window within four round trips. A stranger could get its streams'
    windows grown, stop being read (by not reading our replies, say), and park 16 MiB on each.
    The growth step, ``YamuxStream._apply_autotune_epoch``, is replaced on this stream only.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if not isinstance(muxed, YamuxStream) or cap >= MAX_WINDOW_SIZE:
        return
    grow = muxed._apply_autotune_epoch

    def capped(buffered: int) -> int:
        if muxed.target_recv_window * 2 > cap:
            return 0
        return grow(buffered)

    muxed._apply_autotune_epoch = capped  # type: ignore[method-assign]


async def widen_receive_window(stream: object, size: int) -> None:
    """py-libp2p 0.8.1: let the peer send up to ``size`` bytes on this Yamux stream before it
    needs credit.

    A Yamux stream starts with 256 KiB of credit and grows it only as reads keep up, and a
    py-libp2p writer that runs out of credit polls for more every 10 ms. A bulk download widens
    its window once, up front, so the sender never waits on credit; what is actually in flight
    stays bounded by the requests the receiver has made. py-libp2p has no call for it: the
    stream's ``recv_window`` and ``target_recv_window`` are set under its ``window_lock`` and
    the credit is sent with ``send_window_update``.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if not isinstance(muxed, YamuxStream):
        return
    async with muxed.window_lock:
        grow = size - muxed.recv_window
        if grow <= 0:
            return
        muxed.target_recv_window = max(muxed.target_recv_window, size)
        muxed.recv_window += grow
    await muxed.send_window_update(grow)
