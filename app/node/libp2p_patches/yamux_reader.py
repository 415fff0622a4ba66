"""Patch to py-libp2p 0.8.1's Yamux over Noise: one pass from the socket to the stream buffers.

In py-libp2p each received Yamux frame costs a ``read_exactly`` of its 12-byte header through
``SecureSession`` (which reads a Noise message: its 2-byte length, its body, a decryption),
another for its body under a fresh timeout, a trip through the scheduler for ``streams_lock``,
and about eight debug calls whose f-strings are formatted whether or not anyone logs them;
each stream read takes ``streams_lock`` again and formats four more. For a room post (three
copies in per member) that was about 40 % of the network thread's Python time, and for a
downloaded gigabyte most of the receiver's network thread besides decryption.

Here one reader per connection reads the socket in large pieces, decrypts every whole Noise
message it holds, and hands each Yamux frame to its stream in the same pass: a DATA frame for
a known stream is appended to that stream's buffer (which enforces the window granted, see
``yamux.WindowedYamux``) and its reader woken, with no lock, timeout scope or string. Frames
that open, acknowledge, close or reset streams, pings and GO_AWAY do exactly what py-libp2p's
``Yamux.handle_incoming`` does with them. What a peer can make us hold is what it could
before: at most one socket read and one unfinished Noise message of ciphertext, and one
unfinished frame of plaintext (a DATA frame announces at most what its stream's window has
left, and its body must come within py-libp2p's DATA read timeout, or the connection is
closed).
Connections that are not Yamux over Noise read the original way.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import trio
from libp2p.io.exceptions import IOException
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.stream.exceptions import StreamEOF, StreamError, StreamReset
from libp2p.network.stream.net_stream import NetStream, StreamState
from libp2p.security.noise.io import NoisePacketReadWriter, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
from libp2p.stream_muxer.yamux import yamux
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    HEADER_SIZE,
    MAX_WINDOW_SIZE,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_PING,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)

from app.node.libp2p_patches.tcp import has_read_ahead
from app.node.libp2p_patches.yamux import (
    FlowControlViolation,
    ReadTarget,
    WindowedYamux,
    check_window,
)

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # one socket read (tcp.READ_AHEAD serves it whole)
NO_DEADLINE = float("inf")
_HEADER = struct.Struct(YAMUX_HEADER_FORMAT)


class _ConnectionLost(Exception):
    """The socket ended or failed, or a Noise message did not authenticate."""


class _NoiseFrames:
    """The plaintext of one Noise session, read a socket read at a time.

    ``plain`` holds decrypted bytes not yet taken as frames; ``sealed`` the start of a Noise
    message whose end has not arrived.
    """

    def __init__(self, session: SecureSession) -> None:
        noise = session.conn
        assert isinstance(noise, NoiseTransportReadWriter)
        # ``NoiseConnection.decrypt`` takes only bytes, so each message would be sliced out of
        # the read (a 64 KiB copy); its cipher state decrypts from a view. What the wrapper
        # adds does not apply here: its handshake is done, and a 2-byte length cannot exceed
        # its 65535-byte limit. A message that does not authenticate raises either way.
        self._decrypt = partial(
            noise.noise_state.noise_protocol.cipher_state_decrypt.decrypt_with_ad, None)
        self._raw = noise.read_writer.read_write_closer
        raw = self._raw
        self._tcp = (raw.stream if isinstance(raw, RawConnection)
                     and isinstance(raw.stream, TrioTCPStream) else None)
        # trio's socket keeps the non-blocking stdlib socket as ``_sock``.
        self._sock: socket.socket | None = (
            getattr(self._tcp.stream.socket, "_sock", None) if self._tcp is not None else None)
        self._waited = True  # whether this task yielded since its last socket read
        self._drained = False  # whether the last read took everything the socket held
        self._sealed = b""
        self.took_all = False  # whether the last ``fill`` read less than it asked for
        # What the session decrypted before the muxer started and nobody read yet.
        self.plain = bytearray(session._drain(None))

    async def _read(self) -> bytes:
        """One socket read: straight from a TCP socket once ``tcp.read_tcp_ahead`` holds
        nothing more (nothing else reads this socket), otherwise through the raw
        connection."""
        if self._tcp is None or self._sock is None or has_read_ahead(self._tcp):
            return await self._raw.read(READ_SIZE)
        return await self._receive(self._sock)

    async def _receive(self, sock: socket.socket) -> bytes:
        """What ``SocketStream.receive_some`` does, for less: its lock and wrappers cost a
        room post's every copy a trip through the scheduler after the read as well as the
        wait before it, and a ``recv`` that found nothing before the wait. A read that
        follows a wait returns at once; one that finds bytes without having waited yields
        first, so a busy connection still lets others run."""
        while True:
            if self._drained:
                if (fd := sock.fileno()) == -1:
                    return b""  # closed here
                try:
                    await trio.lowlevel.wait_readable(fd)
                except trio.ClosedResourceError:
                    return b""  # closed here while waiting, as TrioTCPStream.read says it
                self._waited = True
            try:
                data = sock.recv(READ_SIZE)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError:
                if sock.fileno() == -1:
                    return b""  # closed here
                raise
            # A read short of READ_SIZE took all the socket held: the next one waits first
            # rather than trying a ``recv`` that would find nothing.
            self._drained = len(data) < READ_SIZE
            if not self._waited:
                await trio.lowlevel.checkpoint()
            self._waited = False
            return data

    def after_pause(self) -> None:
        """The reader slept (a checkpoint): read the socket before waiting on it."""
        self._drained = False
        self._waited = True

    async def fill(self) -> None:
        """Read the socket once and decrypt every whole Noise message read so far."""
        try:
            data = await self._read()
        except Exception as error:  # any failure of the socket ends it
            raise _ConnectionLost(str(error)) from error
        if not data:
            raise _ConnectionLost("end of stream")
        self.took_all = len(data) < READ_SIZE
        at, size = (self._finish_sealed(data) if self._sealed else 0), len(data)
        plain, decrypt = self.plain, self._decrypt
        view = memoryview(data)  # each message decrypted from a view: no slice copied
        while size - at >= 2:
            end = at + 2 + (data[at] << 8 | data[at + 1])
            if end > size:
                break
            plain += self._open(view[at + 2:end], decrypt)
            at = end
        if at < size:
            self._sealed = data[at:]

    def _finish_sealed(self, data: bytes) -> int:
        """Complete the Noise message an earlier read began with the start of ``data``, and
        return how much of ``data`` it took. Only that message is joined: joining the whole
        read to it copied nearly every byte received once more."""
        sealed = self._sealed
        head = sealed if len(sealed) >= 2 else sealed + data[:2 - len(sealed)]
        if len(head) < 2:
            self._sealed = head
            return len(data)
        take = 2 + (head[0] << 8 | head[1]) - len(sealed)
        if take > len(data):
            self._sealed = sealed + data
            return len(data)
        message = sealed + data[:take]
        self._sealed = b""
        self.plain += self._open(memoryview(message)[2:], self._decrypt)
        return take

    @staticmethod
    def _open(message: memoryview, decrypt: Callable[[memoryview], bytes]) -> bytes:
        try:
            return decrypt(message)
        except Exception as error:
            raise _ConnectionLost(f"undecryptable Noise message: {error}") from error


async def handle_incoming(self: WindowedYamux) -> None:
    """``Yamux.handle_incoming`` in one pass over each socket read (see the module's docstring).

    Ends, as the original does, by closing the connection (``_cleanup_on_error``) when the
    socket ends or fails, a Noise message does not authenticate, a DATA frame announces more
    than ``MAX_WINDOW_SIZE`` or its body does not come in time, a peer sends past a window it
    was granted, or GO_AWAY arrives; and without it when the connection is closed locally.
    """
    session = self.secured_conn
    if not (isinstance(session, SecureSession)
            and isinstance(session.conn, NoiseTransportReadWriter)
            and isinstance(session.conn.read_writer, NoisePacketReadWriter)
            and session.conn.read_writer.size_len_bytes == 2):
        await Yamux.handle_incoming(self)
        return
    frames = _NoiseFrames(session)
    deadline = NO_DEADLINE  # for the body of the DATA frame whose header was read
    while True:
        self.last_received = trio.current_time()  # the handshake, then each socket read
        try:
            progress, pending, patient = await _dispatch_frames(self, frames)
            if self.event_shutting_down.is_set():
                return  # closed here (Yamux.close), which cleans up itself
            if not pending:
                deadline = NO_DEADLINE
            elif progress or deadline == NO_DEADLINE:
                deadline = trio.current_time() + yamux._yamux_data_read_timeout()
            if deadline == NO_DEADLINE:
                read_at = self.last_received
                # A read that filled its buffer left more in the socket: read on.
                if (wake := self.pacer.next_read_at(read_at, patient and frames.took_all)
                        ) > read_at:
                    await trio.sleep_until(wake)
                    frames.after_pause()
                await frames.fill()
                continue
            with trio.move_on_at(deadline) as waiting:
                await frames.fill()
            if waiting.cancelled_caught:
                log.warning("%s did not send the body of a DATA frame in time; closing the "
                            "connection", self.peer_id)
                break
        except _ConnectionLost as lost:
            log.debug("Yamux connection to %s ended: %s", self.peer_id, lost)
            break
        except (trio.TooSlowError, _GoAway):  # TooSlowError: yamux.FlowControlViolation
            break
        except (IOException, OSError, trio.ClosedResourceError,
                trio.BrokenResourceError) as error:
            log.debug("Yamux connection to %s failed: %r", self.peer_id, error)
            break
        except Exception as error:  # noqa: BLE001 - as the original: log, and read on
            if self.event_shutting_down.is_set():
                break
            log.error("Error in handle_incoming for peer %s: %r", self.peer_id, error)
            await trio.sleep(0.01)
    self.event_shutting_down.set()
    await self._cleanup_on_error()


class _GoAway(Exception):
    """The peer sent GO_AWAY, or a DATA frame larger than any window: the connection ends."""


async def _dispatch_frames(self: WindowedYamux, frames: _NoiseFrames
                           ) -> tuple[bool, bool, bool]:
    """Hand every whole frame in ``frames.plain`` to its stream: (whether any was, whether the
    body of a DATA frame whose header is there is still on its way, whether every frame was
    a plain DATA or WINDOW_UPDATE frame of a patient stream)."""
    plain = frames.plain
    at, size = 0, len(plain)
    streams, buffers, events = self.streams, self.stream_buffers, self.stream_events
    targets = self.read_targets
    patient_streams = self.patient_streams
    patient = urgent = False
    view = memoryview(plain)
    try:
        while size - at >= HEADER_SIZE:
            _, kind, flags, stream_id, length = _HEADER.unpack_from(view, at)
            if flags or stream_id not in patient_streams:
                urgent = True
            else:
                patient = True
            if kind != TYPE_DATA:
                at += HEADER_SIZE
                if kind == TYPE_WINDOW_UPDATE and not flags & (FLAG_SYN | FLAG_ACK):
                    stream = streams.get(stream_id)
                    if stream is not None:
                        stream.send_window += length
                        if flags:
                            _close_or_reset(self, stream, flags)
                        if stream.closed:
                            self._finalize_stream_locked(stream, fully_closed=True)
                else:
                    await _control(self, kind, flags, stream_id, length, b"")
                continue
            if length > MAX_WINDOW_SIZE:
                log.warning("%s announced a DATA frame of %d bytes (more than any window); "
                            "closing the connection", self.peer_id, length)
                raise _GoAway
            end = at + HEADER_SIZE + length
            if end > size:
                _check_announced(self, flags, stream_id, length)
                return at > 0, True, False
            if flags & (FLAG_SYN | FLAG_ACK):
                body = bytes(view[at + HEADER_SIZE:end])
                at = end
                await _control(self, kind, flags, stream_id, length, body)
                continue
            body_at, at = at + HEADER_SIZE, end  # taken, whatever happens to it below
            stream = streams.get(stream_id)
            buffer = buffers.get(stream_id)
            if stream is not None and buffer is not None:
                target = targets.get(stream_id) if not buffer else None
                with view[body_at:end] as piece:
                    if target is None:
                        buffer.extend(piece)
                    else:  # straight into the waiting reader's buffer, the rest after
                        check_window(self, stream_id, length)
                        taken = target.fill(piece)
                        if taken < length:
                            buffer.extend(piece[taken:])
                stream.recv_window -= length
                if stream.recv_window < 0:
                    stream.recv_window = 0
                event = events.get(stream_id)
                if event is not None:
                    event.set()
                if flags:
                    _close_or_reset(self, stream, flags)
                if stream.closed:
                    self._finalize_stream_locked(stream, fully_closed=True)
        return at > 0, False, patient and not urgent
    finally:
        view.release()
        del plain[:at]


def _check_announced(self: WindowedYamux, flags: int, stream_id: int, length: int) -> None:
    """A DATA frame whose body is still coming must fit the window its stream has left.

    Its body would be refused when whole anyway (``yamux._WindowedBuffer``), but a peer could
    make us hold up to 16 MiB of it per connection first, or keep us waiting for it; go-yamux
    checks the header. Frames that open a stream get its initial window; bodies for streams we
    no longer know are read and dropped, as py-libp2p does.
    """
    if flags & FLAG_SYN:
        window = yamux.DEFAULT_WINDOW_SIZE
    elif (stream := self.streams.get(stream_id)) is not None:
        window = max(stream.recv_window, 0)
    else:
        return
    if length > window:
        log.warning("%s announced %d bytes on a stream with %d bytes of window left; closing "
                    "the connection", self.peer_id, length, window)
        raise FlowControlViolation


def _close_or_reset(self: WindowedYamux, stream: YamuxStream, flags: int) -> None:
    """What ``Yamux.handle_incoming`` does with FIN and RST on a DATA or WINDOW_UPDATE frame of
    a known stream (finalizing a closed stream is the caller's)."""
    if flags & FLAG_FIN:
        stream.recv_closed = True
        if stream.send_closed:
            stream.closed = True
    if flags & FLAG_RST:
        stream.closed = True
        stream.reset_received = True
    event = self.stream_events.get(stream.stream_id)
    if event is not None and flags & (FLAG_FIN | FLAG_RST):
        event.set()


async def _control(self: WindowedYamux, kind: int, flags: int, stream_id: int, length: int,
                   body: bytes) -> None:
    """A frame that opens or acknowledges a stream, a ping or GO_AWAY: as py-libp2p 0.8.1's
    ``Yamux.handle_incoming`` handles it (its branches, in its order, without the logging)."""
    if kind in (TYPE_DATA, TYPE_WINDOW_UPDATE) and flags & FLAG_SYN:
        await _open_inbound(self, kind, flags, stream_id, length, body)
    elif kind in (TYPE_DATA, TYPE_WINDOW_UPDATE) and flags & FLAG_ACK:
        async with self.streams_lock:
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            if kind == TYPE_WINDOW_UPDATE:
                if length > 0:
                    async with stream.window_lock:
                        stream.send_window += length
            elif length > 0:
                self.stream_buffers[stream_id].extend(body)
                stream.recv_window = max(stream.recv_window - len(body), 0)
                self.stream_events[stream_id].set()
    elif kind == TYPE_GO_AWAY:
        log.debug("%s sent GO_AWAY (code %d)", self.peer_id, length)
        raise _GoAway
    elif kind == TYPE_PING:
        if flags & FLAG_SYN:
            await self._write_frame(_HEADER.pack(0, TYPE_PING, FLAG_ACK, 0, length))
        elif flags & FLAG_ACK:
            rtt = trio.current_time() - self._ping_sent_time
            self._rtt = rtt if self._rtt == 0.0 else (self._rtt + rtt) / 2
            self._ping_event.set()


async def _open_inbound(self: WindowedYamux, kind: int, flags: int, stream_id: int,
                        length: int, body: bytes) -> None:
    """A SYN: a new stream from the peer, acknowledged and handed to ``accept_stream`` (or, for
    an id in use, a reset), as ``Yamux.handle_incoming`` does."""
    answer: bytes | None = None
    accepted: YamuxStream | None = None
    async with self.streams_lock:
        if stream_id in self.streams:
            answer = _HEADER.pack(0, TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
        else:
            stream = YamuxStream(stream_id, self, False)
            self.streams[stream_id] = stream
            self.stream_buffers[stream_id] = bytearray()
            self.stream_events[stream_id] = trio.Event()
            if kind == TYPE_WINDOW_UPDATE and length > 0:
                async with stream.window_lock:
                    stream.send_window += length
            elif kind == TYPE_DATA and length > 0:
                self.stream_buffers[stream_id].extend(body)
                stream.recv_window = max(stream.recv_window - len(body), 0)
                self.stream_events[stream_id].set()
            if flags & FLAG_FIN:
                stream.recv_closed = True
                if stream.send_closed:
                    stream.closed = True
                self.stream_events[stream_id].set()
                if stream.closed:
                    self._finalize_stream_locked(stream, fully_closed=True)
            if flags & FLAG_RST:
                # Reset on arrival: delivered, so the acceptor sees it, but not acknowledged.
                stream.closed = True
                stream.reset_received = True
                self.stream_events[stream_id].set()
                self._finalize_stream_locked(stream, fully_closed=True)
            else:
                answer = _HEADER.pack(0, TYPE_WINDOW_UPDATE, FLAG_ACK, stream_id, 0)
            accepted = stream
    if answer is not None:
        await self._write_frame(answer)
    if accepted is not None:
        await self.new_stream_send_channel.send(accepted)


def _readable(self: WindowedYamux, stream_id: int) -> tuple[YamuxStream, bytearray, bool]:
    """(the stream, its buffer, whether a read takes from the buffer now), or the error a
    read of the stream raises now: ``Yamux.read_stream``'s checks, in its order."""
    stream = self.streams.get(stream_id)
    if stream is None:
        raise MuxedStreamEOF("Stream closed")
    if self.event_shutting_down.is_set():
        raise MuxedStreamEOF("Connection shut down")
    buffer = self.stream_buffers.get(stream_id)
    if buffer is None:
        if stream.reset_received:
            raise MuxedStreamReset("Stream was reset")
        raise MuxedStreamEOF("Stream buffer closed")
    return stream, buffer, bool(buffer) and (stream.recv_closed or not stream.reset_received)


def _event_to_wait(self: WindowedYamux, stream: YamuxStream, stream_id: int) -> trio.Event:
    """The event a read of an empty stream waits for, or the error it raises instead."""
    if stream.reset_received:
        raise MuxedStreamReset("Stream was reset")
    if stream.recv_closed:
        raise MuxedStreamEOF("Stream is closed for receiving")
    if stream.closed:
        raise MuxedStreamReset("Stream is reset or closed")
    event = self.stream_events.get(stream_id)
    if event is None:
        raise MuxedStreamEOF("Stream was removed")
    return event


def _renew_event(self: WindowedYamux, stream_id: int, event: trio.Event) -> None:
    if self.stream_events.get(stream_id) is event:  # not if the stream went meanwhile
        self.stream_events[stream_id] = trio.Event()


async def read_stream(self: WindowedYamux, stream_id: int, n: int | None = -1) -> bytes:
    """``Yamux.read_stream`` without ``streams_lock`` and its debug strings.

    Its checks, in its order, run with no ``await`` between them, so no other task can change
    what they see: the lock only cost every read a trip through the scheduler.
    """
    if n is None:
        n = -1
    while True:
        stream, buffer, ready = _readable(self, stream_id)
        if ready:
            if n == -1 or n >= len(buffer):
                data = bytes(buffer)
                buffer.clear()
            else:
                data = bytes(buffer[:n])
                del buffer[:n]
            if stream.closed:
                self._finalize_stream_locked(stream, fully_closed=True)
            return data
        event = _event_to_wait(self, stream, stream_id)
        await event.wait()
        _renew_event(self, stream_id, event)


async def read_stream_into(self: WindowedYamux, stream_id: int, into: memoryview) -> int:
    """``read_stream`` into the caller's buffer: how many bytes it put at the start of
    ``into``, at least one.

    With nothing buffered it waits with ``into`` registered as the stream's read target, and
    ``_dispatch_frames`` copies DATA bodies straight there. A bulk reader (a file chunk) then
    gets each byte copied once after decryption, not three times (into the stream's buffer,
    out of it as ``bytes``, into its own buffer), and no buffer grows by reallocation.
    """
    while True:
        stream, buffer, ready = _readable(self, stream_id)
        if ready:
            n = min(len(buffer), len(into))
            with memoryview(buffer) as held:
                into[:n] = held[:n]
            del buffer[:n]
            if stream.closed:
                self._finalize_stream_locked(stream, fully_closed=True)
            return n
        event = _event_to_wait(self, stream, stream_id)
        if stream_id in self.read_targets:  # another reader waits: share the buffer instead
            await event.wait()
            continue
        target = self.read_targets[stream_id] = ReadTarget(into)
        try:
            await event.wait()
        except BaseException:
            # Cancelled after bytes were copied: they go back in front of the buffer, and
            # the next read has them (the window already counted them).
            if target.filled and stream_id in self.stream_buffers:
                self.stream_buffers[stream_id][:0] = into[:target.filled]
            raise
        finally:
            del self.read_targets[stream_id]
        _renew_event(self, stream_id, event)
        if not target.filled:
            continue
        if stream.reset_received and not stream.recv_closed:
            raise MuxedStreamReset("Stream was reset")  # as a plain read drops its buffer
        if stream.closed and not self.stream_buffers.get(stream_id):
            self._finalize_stream_locked(stream, fully_closed=True)
        return target.filled


async def read_into(stream: Any, into: memoryview) -> int:
    """Read at least one byte of ``stream`` (a ``NetStream``) into ``into``: how many.

    On a Yamux-over-Noise stream (``read_in_one_pass``) the bytes come straight from the
    decrypted frames (``read_stream_into``), with ``NetStream.read``'s state checks and its
    errors, and the credit ``YamuxStream.read`` sends. Any other stream is read as usual and
    copied. ``StreamEOF`` at the end, as ``NetStream.read`` raises it.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if (not isinstance(stream, NetStream) or not isinstance(muxed, YamuxStream)
            or not isinstance(muxed.conn, WindowedYamux)
            or not getattr(WindowedYamux.read_stream, "_kith", False)):
        piece = await stream.read(len(into))
        into[:len(piece)] = piece
        return len(piece)
    # NetStream.read checks these under its state lock; nothing can change them between a
    # check and its raise, and taking the lock lets the frame loop run first, filling the
    # stream's buffer instead of ``into``.
    if stream._state == StreamState.ERROR:
        raise StreamError("Cannot read from stream; stream is in error state")
    if stream._state == StreamState.RESET:
        raise StreamReset("Cannot read from stream; stream is reset")
    try:
        n = await read_stream_into(muxed.conn, muxed.stream_id, into)
    except MuxedStreamEOF as error:
        async with stream._state_lock:
            if stream._state == StreamState.CLOSE_WRITE:
                stream._state = StreamState.CLOSE_BOTH
            elif stream._state == StreamState.OPEN:
                stream._state = StreamState.CLOSE_READ
        raise StreamEOF() from error
    except MuxedStreamReset as error:
        async with stream._state_lock:
            stream._state = StreamState.RESET
        raise StreamReset() from error
    await muxed._auto_tune_and_send_window_update(bytes_read=n)
    return n


def read_in_one_pass() -> None:
    """py-libp2p 0.8.1: every ``WindowedYamux`` connection reads with ``handle_incoming`` and
    ``read_stream`` of this module (``Yamux``, py-libp2p's class, keeps its own)."""
    if getattr(WindowedYamux.handle_incoming, "_kith", False):
        return
    replacements: dict[str, Any] = {"handle_incoming": handle_incoming,
                                     "read_stream": read_stream}
    for name, replacement in replacements.items():
        replacement._kith = True
        replacement.__wrapped__ = getattr(Yamux, name)  # upstream's, for the guards
        setattr(WindowedYamux, name, replacement)
