"""Serving files on ``/kith/file/1.0.0``: who may fetch what, and every chunk checked first.

Serving keeps a file to its audience. A direct offer is served only to the contact it was made
to while they are a contact (removing them revokes it); a room file only to the room's members.
Every chunk served is checked against the offer's hash list first, so whatever happens to the
file on disk (edited, replaced by another file of the same name) its bytes never go out under
the offer: the sender's offer fails, and a member that held a room file stops serving it.

One stream serves many requests in turn (HAVE, the hash list, batches of chunks); the first
must come within the resource manager's ``first_frame_timeout``, the next ones within
``SERVE_IDLE``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF

from app.core import files as fc
from app.core.events import FileFailed, FileProgress
from app.core.records import ContactState
from app.core.transfer_state import Step, TransferState
from app.node.files.disk import bit, read_served, set_bit
from app.node.files.progress import PROGRESS_SECONDS, Meters
from app.node.framing import FrameError, Stream, encode_varint, guarded, read_frame, write_frame
from app.node.interfaces import ContactBook, Emit, RoomDirectory
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol(fc.PROTOCOL_ID)
SERVE_IDLE = 120.0          # a serving stream with no request for this long is closed

Tell = Callable[[str, fc.FileControl], None]  # tell a peer about a transfer (a file control)


class _ReadAhead:
    """One chunk being read and checked in a worker thread (``read``'s answer, when done)."""

    def __init__(self, nursery: trio.Nursery, read: Callable[[int], bytearray | None],
                 transfer: bytes, index: int) -> None:
        self.key = (transfer, index)
        self._done = trio.Event()
        self._data: bytearray | None = None
        nursery.start_soon(self._run, read, index)

    async def _run(self, read: Callable[[int], bytearray | None], index: int) -> None:
        self._data = await trio.to_thread.run_sync(read, index)
        self._done.set()

    async def result(self) -> bytearray | None:
        await self._done.wait()
        return self._data


class Serving:
    """The ``/kith/file/1.0.0`` handler, and what it served (``served``, for tests and speed)."""

    def __init__(self, store: TransferStore, *, host: IHost, emit: Emit, me: str,
                 contacts: ContactBook, rooms: RoomDirectory, meters: Meters, tell: Tell,
                 first_frame_timeout: float) -> None:
        self.store = store
        self._host = host
        self._emit = emit
        self._me = me
        self._contacts = contacts
        self._rooms = rooms
        self._meters = meters
        self._tell = tell
        self._first_frame_timeout = first_frame_timeout
        self.served: dict[bytes, int] = {}            # chunks served per transfer, this run
        self._served_bits: dict[bytes, bytearray] = {}
        self._served_bytes: dict[bytes, int] = {}
        self._progress_at: dict[bytes, float] = {}
        self._sent_total: dict[bytes, int] = {}       # bytes served (repeats too), for speed
        self._stale: set[bytes] = set()                # room files we no longer hold intact
        # Tests set it to play a sender whose chunks go bad after the check: (index, data).
        self.send_hook: Callable[[int, bytes], bytes] | None = None

    def start(self) -> None:
        self._host.set_stream_handler(
            PROTOCOL_ID, guarded(PROTOCOL_ID, self._serve, timeout=None)
        )

    def served_bytes(self, tid: bytes) -> int:
        """Distinct bytes of an outgoing direct offer served so far (its progress)."""
        return self._served_bytes.get(tid, 0)

    def _servable(self, t: StoredTransfer | None, peer_id: str) -> tuple[bool, str | None]:
        """(allowed to ask, path we can serve from or None)."""
        if t is None or peer_id == self._me:
            return False, None
        if t.room_id is not None:
            if (peer_id not in self._rooms.member_ids(t.room_id)
                    or not self._rooms.has_room(t.room_id)):
                return False, None
            if t.outgoing and t.state is TransferState.OFFERED:
                return True, t.path
            if (not t.outgoing and t.state is TransferState.COMPLETE and t.path
                    and t.offer.transfer not in self._stale and os.path.exists(t.path)):
                return True, t.path
            return True, None
        if (t.outgoing and t.peer_id == peer_id and t.state is TransferState.OFFERED
                and self._contacts.state(peer_id) is not None):
            return True, t.path  # (a blocked peer's streams were refused before this)
        return False, None

    async def _serve(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        if self._contacts.state(peer_id) is ContactState.BLOCKED:
            await stream.reset()
            return
        async with trio.open_nursery() as nursery:  # for chunks read ahead
            await self._serve_requests(stream, peer_id, nursery)

    async def _serve_requests(self, stream: Stream, peer_id: str, nursery: trio.Nursery) -> None:
        wait = self._first_frame_timeout  # then SERVE_IDLE between requests
        ahead: _ReadAhead | None = None  # the chunk after the last one sent, being read
        while True:
            try:
                with trio.fail_after(wait):
                    payload = await read_frame(stream, fc.MAX_REQUEST)
            except StreamEOF:
                await stream.close()
                return
            except trio.TooSlowError:
                log.info("closing a file stream from %s: no request for %.0f s", peer_id, wait)
                await stream.reset()
                return
            wait = SERVE_IDLE
            request = fc.decode_request(payload)
            t = self.store.get(request.transfer)
            allowed, path = self._servable(t, peer_id)
            if not allowed or t is None:
                raise FrameError("file request for a transfer this peer may not have")
            if request.op == fc.OP_HAVE:
                await write_frame(stream, b"\x01" if path else b"\x00")
                continue
            if path is None or t.hashes is None:
                raise FrameError("file request for a file we do not hold")
            if request.op == fc.OP_GET_HASHES:
                step = fc.MAX_HASHES_FRAME
                for offset in range(0, len(t.hashes), step):
                    await write_frame(stream, t.hashes[offset:offset + step])
                continue
            ahead = await self._serve_chunks(stream, t, path, request.indexes, peer_id,
                                             nursery, ahead)

    async def _serve_chunks(self, stream: Stream, t: StoredTransfer, path: str,
                            indexes: tuple[int, ...], peer_id: str, nursery: trio.Nursery,
                            ahead: _ReadAhead | None) -> _ReadAhead | None:
        """Send the chunks ``indexes``, each read and checked in a worker thread while the one
        before it is sent; the chunk after the last one is read too (the next request usually
        asks for it), and that read, started, is returned for the next request."""
        offer, hashes = t.offer, t.hashes
        assert hashes is not None
        if any(i >= offer.chunks for i in indexes):
            raise FrameError("chunk index out of range")
        unchanged = (t.src_size, t.src_mtime) if t.outgoing else None

        def read(i: int) -> bytearray | None:
            """Chunk ``i`` as the frame that carries it, read behind its header."""
            length = fc.chunk_length(i, offer.size, offer.chunk_size)
            return read_served(path, i * offer.chunk_size, length, unchanged,
                               hashes[i * fc.HASH_SIZE:(i + 1) * fc.HASH_SIZE],
                               encode_varint(4 + length) + fc.encode_chunk_header(i))

        if ahead is None or ahead.key != (offer.transfer, indexes[0]):
            ahead = _ReadAhead(nursery, read, offer.transfer, indexes[0])
        for n, i in enumerate(indexes):
            if n and not self._servable(self.store.get(offer.transfer), peer_id)[1]:
                raise FrameError("the transfer was revoked while being served")
            assert ahead is not None  # started for every index below offer.chunks
            frame = await ahead.result()
            following = indexes[n + 1] if n + 1 < len(indexes) else i + 1
            ahead = (_ReadAhead(nursery, read, offer.transfer, following)
                     if following < offer.chunks else None)
            if frame is None:
                await self._not_the_offered_file(t)
                raise FrameError(f"{path} is no longer the offered file")
            length = fc.chunk_length(i, offer.size, offer.chunk_size)
            if self.send_hook is not None:
                head = len(frame) - length
                frame = frame[:head] + self.send_hook(i, bytes(frame[head:]))
            await stream.write(frame)  # type: ignore[arg-type]  # any buffer: Yamux views it
            self._count_served(t, i, length)
        return ahead

    async def _not_the_offered_file(self, t: StoredTransfer) -> None:
        """What is at ``t.path`` is not the offered file (any more): stop serving it."""
        reason = "the file changed on disk"
        if not t.outgoing:
            if t.offer.transfer not in self._stale:
                self._stale.add(t.offer.transfer)
                log.warning("stopped serving room file %s: %s is not that file any more",
                            t.id_hex, t.path)
            return
        if self.store.move(t.offer.transfer, Step.FAIL, outgoing=True, reason=reason):
            log.warning("stopped serving %s: %s", t.path, reason)
            self._emit(FileFailed(transfer=t.id_hex, reason=reason))
            if t.room_id is None:
                self._tell(t.peer_id, fc.FileControl(t.offer.transfer, "fail", reason))

    def _count_served(self, t: StoredTransfer, index: int, length: int) -> None:
        tid = t.offer.transfer
        self.served[tid] = self.served.get(tid, 0) + 1
        if not t.outgoing or t.room_id is not None:
            return
        bits = self._served_bits.setdefault(tid, bytearray((t.offer.chunks + 7) // 8))
        if not bit(bits, index):
            set_bit(bits, index)
            self._served_bytes[tid] = self._served_bytes.get(tid, 0) + length
        total = self._sent_total[tid] = self._sent_total.get(tid, 0) + length
        rate = self._meters.note(tid, total)
        now = time.monotonic()
        done = self._served_bytes[tid]
        if now - self._progress_at.get(tid, 0.0) >= PROGRESS_SECONDS or done == t.offer.size:
            self._progress_at[tid] = now
            self._emit(FileProgress(transfer=t.id_hex, bytes=done, size=t.offer.size,
                                         speed=rate.speed()))
