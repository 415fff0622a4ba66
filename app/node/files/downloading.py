"""Fetching a file: its chunk hash list, then its chunks from every source, verified, written.

The receiver pulls: it fetches the chunk hash list, checks it against the offer's ``hash``, then
asks each source for a few chunks at a time (at most ``IN_FLIGHT_BYTES`` requested and unread
per source), verifies every chunk in a worker thread and writes it at its offset in a ``.part``
file. Each verified chunk is recorded in SQLite as soon as it is written, and only what is
recorded is shown as progress, so a transfer interrupted in any way resumes where it stopped,
from at least the progress last shown. When every chunk is in, chunks verified before a restart
are read back and checked once more, and only then does the file get its name: recorded first,
then linked, then the ``.part`` removed, then the transfer recorded complete (``app.node.files``
says why each step is crash-safe).

Room files have several sources: the author and every member that completed a download. A
fetch asks connected members whether they hold the file (HAVE) and spreads chunk requests over
all of them in parallel; a source that sends ``MAX_BAD_CHUNKS`` bad chunks is dropped.

A direct offer whose sender is out of reach may be read from our own mailbox instead
(``mailbox_source``, the source named ``MAILBOX``), when the sender left the file there.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from app.core import files as fc
from app.core.events import FileComplete, FileFailed, FileProgress
from app.core.transfer_state import Step, TransferState
from app.node.files.disk import (
    PartFile,
    bad_chunks,
    bit,
    finished_name,
    free_name,
    holds,
    link_final,
    set_bit,
    unlink_quietly,
    write_at,
)
from app.node.files.mailbox_source import MAILBOX, MailboxSource
from app.node.files.progress import PROGRESS_SECONDS, Meters
from app.node.files.serving import PROTOCOL_ID
from app.node.framing import read_frame, read_frame_into, write_frame
from app.node.interfaces import Connections, Emit, RoomChannel, Tasks
from app.node.isolation import is_local_fault
from app.node.libp2p_patches.yamux import BULK_WINDOW, widen_receive_window
from app.node.signal import Signal
from app.store.db import storage_error
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)

IN_FLIGHT_BYTES = 8 << 20   # requested and not yet received, per source (8 chunks of 1 MiB)
WRITE_QUEUE_BYTES = 4 << 20  # received and waiting for the disk writer, at most
MAX_BAD_CHUNKS = 3          # a source that sends this many bad chunks is dropped
READ_TIMEOUT = 30.0         # no data for this long: the source is gone
OPEN_TIMEOUT = 10.0
HAVE_TIMEOUT = 5.0
RETRY_SECONDS = 2.0         # between rounds when no source is reachable or all failed
WAIT_SECONDS = 15.0         # a waiting download re-checks its sources at least this often

Tell = Callable[[str, fc.FileControl], None]  # tell a peer about a transfer (a file control)


class TransferFailed(Exception):
    """The download cannot go on; ``reason`` is for the user, ``keep_part`` allows a retry."""

    def __init__(self, reason: str, keep_part: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keep_part = keep_part


class BadSource(Exception):
    """One source misbehaved (bad data or layout); others may still serve."""


@dataclass
class _Download:
    """A running download: what is verified, what is wanted, who misbehaved."""

    t: StoredTransfer
    hashes: bytes = b""
    pending: deque[int] = field(default_factory=deque)
    bad: dict[str, int] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    progress_at: float = 0.0
    readers: dict[str, trio.CancelScope] = field(default_factory=dict)
    # Chunks this process verified and wrote itself: the final check reads back only the rest.
    written: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self.written = bytearray(len(self.t.verified))

    @property
    def offer(self) -> fc.FileOffer:
        return self.t.offer

    def missing(self) -> list[int]:
        return [i for i in range(self.offer.chunks) if not bit(self.t.verified, i)]


@dataclass
class _Task:
    """A download's task: cancelled through ``scope``; ``done`` once its ``.part`` is closed."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


class Downloads:
    """Every running download of this node, one task each in the node's nursery."""

    def __init__(self, store: TransferStore, *, host: IHost, nursery: Tasks, emit: Emit,
                 me: str, rooms: RoomChannel, connections: Connections, meters: Meters,
                 tell: Tell) -> None:
        self.store = store
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._me = me
        self._rooms = rooms
        self._connections = connections
        self._meters = meters
        self._tell = tell
        self._running: dict[bytes, _Task] = {}
        self._connected = Signal()
        self.mailbox: MailboxSource | None = None  # set when the node wires mailboxes

    def peer_connected(self) -> None:
        """A source may be back: waiting downloads look again now."""
        self._connected.set()

    def running(self, tid: bytes) -> bool:
        return tid in self._running

    def spawn(self, tid: bytes) -> None:
        """Run the download of ``tid`` (a transfer ``receiving``) unless it runs already."""
        if tid not in self._running:
            task = self._running[tid] = _Task()
            self._nursery.start_soon(self._download, tid, task)

    async def stop(self, tid: bytes) -> None:
        """Stop the download of ``tid`` and wait until it closed its ``.part`` (so that it may
        be deleted)."""
        task = self._running.get(tid)
        if task is not None:
            task.scope.cancel()
            await task.done.wait()

    async def remove_part(self, t: StoredTransfer) -> None:
        fresh = self.store.get(t.offer.transfer)
        part = (fresh or t).part_path
        if part:
            try:
                await trio.to_thread.run_sync(os.unlink, part)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", part, exc)

    async def _download(self, tid: bytes, task: _Task) -> None:
        try:
            with task.scope:
                t = self.store.get(tid)
                if t is None or t.state is not TransferState.RECEIVING or not t.part_path:
                    return
                job = _Download(t)
                self._emit_progress(job, force=True)  # after a restart: what is verified
                try:
                    await self._download_loop(job)
                except TransferFailed as exc:
                    self._failed(job, exc)
                    if not exc.keep_part:
                        await self.remove_part(t)
                except Exception as exc:
                    if is_local_fault(exc):
                        raise
                    # A bug, not the download's fault: it fails with its part kept, so that
                    # accepting it again goes on, instead of waiting forever as "receiving".
                    log.warning("transfer %s stopped: %s", t.id_hex, exc, exc_info=True)
                    self._failed(job, TransferFailed(f"the download stopped: {exc}"))
        finally:
            self._running.pop(tid, None)
            task.done.set()

    def _failed(self, job: _Download, exc: TransferFailed) -> None:
        tid = job.offer.transfer
        log.warning("transfer %s failed: %s", job.t.id_hex, exc.reason)
        try:
            recorded = self.store.move(tid, Step.FAIL, outgoing=False, reason=exc.reason)
        except sqlite3.Error as db_exc:  # the profile's disk is full too: accepting retries
            log.warning("could not record the failure of %s: %s", job.t.id_hex, db_exc)
            recorded = True
        if recorded:
            self._emit(FileFailed(transfer=job.t.id_hex, reason=exc.reason))

    async def _download_loop(self, job: _Download) -> None:
        offer = job.offer
        while True:
            have_hashes = job.t.hashes is not None or offer.chunks == 0
            if have_hashes:
                job.hashes = job.t.hashes or b""
                if not job.missing():
                    if await self._finish(job):
                        return
                    continue
            sources = await self._sources(job)
            if not sources:
                await self._connected.wait(WAIT_SECONDS)
                continue
            if not have_hashes:
                if sources == [MAILBOX]:
                    await self._mailbox_hashes(job)
                else:
                    await self._fetch_hashes(job, sources)
                continue
            before = job.t.done_bytes
            await self._fetch_round(job, sources)
            if job.t.done_bytes == before and job.missing():
                await self._connected.wait(RETRY_SECONDS)

    async def _sources(self, job: _Download) -> list[str]:
        """Connected peers that can serve this file now (the sender, or room holders)."""
        t = job.t
        if t.room_id is None:
            if self._connections.is_connected(t.peer_id):
                return [t.peer_id]
            return [MAILBOX] if self.mailbox is not None and self.mailbox.usable(t) else []
        candidates = self._rooms.member_ids(t.room_id)
        candidates.add(t.peer_id)
        candidates = {p for p in candidates if p != self._me and p not in job.banned}
        connected = [p for p in candidates if self._connections.is_connected(p)]
        if not connected:
            self._nursery.start_soon(self._rooms.reach_members, t.room_id)
            return []
        holders: list[str] = []

        async def probe(peer_id: str) -> None:
            if await self._have(peer_id, t.offer.transfer):
                holders.append(peer_id)

        async with trio.open_nursery() as nursery:
            for peer_id in connected:
                nursery.start_soon(probe, peer_id)
        return sorted(holders, key=lambda p: p != t.peer_id)  # the author first

    async def _have(self, peer_id: str, tid: bytes) -> bool:
        try:
            with trio.fail_after(HAVE_TIMEOUT):
                stream = await self._host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
                try:
                    await write_frame(stream, fc.encode_request(tid, fc.OP_HAVE))
                    answer = await read_frame(stream, 1)
                    await stream.close()
                except BaseException:
                    await stream.reset()
                    raise
            return answer == b"\x01"
        except Exception as exc:  # noqa: BLE001 - not a holder (or not reachable)
            log.debug("HAVE %s from %s: %s", tid.hex(), peer_id, exc)
            return False

    async def _fetch_hashes(self, job: _Download, sources: list[str]) -> None:
        offer = job.offer
        want = offer.chunks * fc.HASH_SIZE
        for peer_id in sources:
            try:
                with trio.fail_after(OPEN_TIMEOUT + READ_TIMEOUT):
                    stream = await self._host.new_stream(
                        ID.from_base58(peer_id), [PROTOCOL_ID])
                    try:
                        await write_frame(stream, fc.encode_request(offer.transfer,
                                                                    fc.OP_GET_HASHES))
                        got = bytearray()
                        while len(got) < want:
                            frame = await read_frame(stream, fc.MAX_HASHES_FRAME)
                            if not frame or len(frame) % fc.HASH_SIZE:
                                raise BadSource("malformed hash list frame")
                            got += frame
                        await stream.close()
                    except BaseException:
                        await stream.reset()
                        raise
            except Exception as exc:  # noqa: BLE001 - try the next source, or later
                log.info("hash list of %s from %s: %s", offer.id_hex, peer_id, exc)
                continue
            if len(got) != want or fc.content_hash(bytes(got)) != offer.hash:
                self._bad(job, peer_id, "its list of chunk hashes does not match the offer")
                continue
            job.hashes = job.t.hashes = bytes(got)
            self.store.set_hashes(offer.transfer, job.hashes)
            return
        await self._connected.wait(RETRY_SECONDS)

    async def _mailbox_hashes(self, job: _Download) -> None:
        """The hash list from the blob at our mailbox, checked as one from a peer."""
        assert self.mailbox is not None
        got = await self.mailbox.hashes(job.t)
        if got is None:
            return
        if len(got) != job.offer.chunks * fc.HASH_SIZE or fc.content_hash(got) != job.offer.hash:
            self._bad(job, MAILBOX, "its list of chunk hashes does not match the offer")
            return
        job.hashes = job.t.hashes = got
        self.store.set_hashes(job.offer.transfer, got)

    async def _mailbox_reader(self, job: _Download, peer_id: str,
                              send: trio.MemorySendChannel[tuple[str, int, memoryview]],
                              scope: trio.CancelScope) -> None:
        assert self.mailbox is not None
        async with send:
            with scope:
                await self.mailbox.read(job.t, job.pending, send)

    def _bad(self, job: _Download, peer_id: str, what: str) -> None:
        """Count a bad chunk from ``peer_id``; too many and it is dropped (or the transfer)."""
        count = job.bad.get(peer_id, 0) + 1
        job.bad[peer_id] = count
        log.warning("transfer %s: %s sent bad data (%d): %s", job.t.id_hex, peer_id, count, what)
        if count < MAX_BAD_CHUNKS:
            return
        job.banned.add(peer_id)
        scope = job.readers.get(peer_id)
        if scope is not None:
            scope.cancel()
        if job.t.room_id is None or not any(p not in job.banned for p in job.readers):
            who = "the sender" if job.t.room_id is None else "every holder of the file"
            raise TransferFailed(
                f"{who} kept sending corrupted data ({count} bad chunks; last: {what})"
            )

    async def _fetch_round(self, job: _Download, sources: list[str]) -> None:
        """Fetch missing chunks from all ``sources`` in parallel until none is left."""
        job.pending = deque(job.missing())
        offer = job.offer
        path = job.t.part_path
        assert path is not None
        try:
            f = await trio.to_thread.run_sync(PartFile, path)
        except FileNotFoundError:
            # The .part vanished (deleted by hand): start over, nothing verified survives it.
            f = await trio.to_thread.run_sync(PartFile, path, "w+b")
            job.t.verified[:] = bytes(len(job.t.verified))
            job.t.done_bytes = 0
            job.written[:] = bytes(len(job.written))
            job.pending = deque(range(offer.chunks))
            self._save(job)
        except OSError as exc:
            raise TransferFailed(f"cannot open {path}: {exc.strerror or exc}") from None
        # Received chunks wait here for the writer: few, so memory stays bounded when the disk
        # is slower than the network (what is requested but unread waits in Yamux).
        queue = max(1, WRITE_QUEUE_BYTES // offer.chunk_size)
        send, receive = trio.open_memory_channel[tuple[str, int, memoryview]](queue)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, job, f, receive)
                async with send:
                    for peer_id in sources:
                        scope = trio.CancelScope()
                        job.readers[peer_id] = scope
                        reader = self._mailbox_reader if peer_id == MAILBOX else self._reader
                        nursery.start_soon(reader, job, peer_id, send.clone(), scope)
        except BaseExceptionGroup as group:
            failed, _ = group.split(TransferFailed)
            if failed is None:
                raise
            first: BaseException = failed
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            job.readers.clear()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(f.close)

    async def _reader(self, job: _Download, peer_id: str,
                      send: trio.MemorySendChannel[tuple[str, int, memoryview]],
                      scope: trio.CancelScope) -> None:
        offer = job.offer
        inflight: deque[int] = deque()
        in_flight = max(2, IN_FLIGHT_BYTES // offer.chunk_size)
        batch_size = min(in_flight // 2, fc.MAX_CHUNKS_PER_REQUEST)  # asked for at half-empty
        try:
            async with send:
                with scope:
                    with trio.fail_after(OPEN_TIMEOUT):
                        stream = await self._host.new_stream(
                            ID.from_base58(peer_id), [PROTOCOL_ID])
                        await widen_receive_window(stream, BULK_WINDOW)
                    try:
                        while True:
                            if len(inflight) <= in_flight - batch_size and job.pending:
                                batch = [job.pending.popleft()
                                         for _ in range(min(batch_size, len(job.pending)))]
                                inflight.extend(batch)
                                await write_frame(stream, fc.encode_request(
                                    offer.transfer, fc.OP_GET_CHUNKS, batch))
                                continue
                            if not inflight:
                                break
                            # The data after the 4-byte header starts a page: direct I/O.
                            frame = await read_frame_into(stream, 4 + offer.chunk_size,
                                                          idle=READ_TIMEOUT, align_at=4)
                            index, data = fc.decode_chunk(frame)
                            if index != inflight[0] or len(data) != fc.chunk_length(
                                    index, offer.size, offer.chunk_size):
                                raise BadSource("a chunk out of order or of the wrong size")
                            inflight.popleft()
                            await send.send((peer_id, index, data))
                        await stream.close()
                    except BaseException:
                        with trio.CancelScope(shield=True):
                            await stream.reset()
                        raise
        except BadSource as exc:
            self._bad(job, peer_id, str(exc))
        except Exception as exc:  # noqa: BLE001 - the source went away; others or later
            log.info("transfer %s: source %s stopped: %s", job.t.id_hex, peer_id, exc)
        finally:
            job.pending.extendleft(reversed(inflight))  # asked but never received: ask again

    async def _writer(self, job: _Download, f: PartFile,
                      receive: trio.MemoryReceiveChannel[tuple[str, int, memoryview]]) -> None:
        offer, t = job.offer, job.t
        async with receive:
            async for peer_id, index, data in receive:
                if bit(t.verified, index):
                    continue
                expected = job.hashes[index * 32:(index + 1) * 32]
                try:
                    ok = await trio.to_thread.run_sync(
                        write_at, f, index * offer.chunk_size, data, expected)
                except OSError as exc:
                    job.pending.appendleft(index)
                    if exc.errno == errno.ENOSPC:
                        raise TransferFailed(
                            "the disk is full; the verified part is kept in "
                            f"{t.part_path} and the transfer resumes from there when accepted "
                            "again after freeing space") from None
                    raise TransferFailed(f"cannot write the file: {exc.strerror or exc}") from None
                if not ok:
                    job.pending.appendleft(index)  # ask again, maybe from someone else
                    self._bad(job, peer_id, f"chunk {index} failed verification")
                    continue
                set_bit(t.verified, index)
                set_bit(job.written, index)
                t.done_bytes += len(data)
                # Recorded before it is shown: progress a crash could take back is never shown,
                # and a crash costs only the chunks in flight.
                self._save(job)
                self._meters.note(offer.transfer, t.done_bytes)
                self._emit_progress(job)

    def _save(self, job: _Download) -> None:
        """Record what is verified (one small commit; the data is already written)."""
        try:
            self.store.save_progress(job.offer.transfer, bytes(job.t.verified), job.t.done_bytes)
        except sqlite3.Error as exc:
            raise TransferFailed(f"cannot record the download: {storage_error(exc)}") from None

    def _emit_progress(self, job: _Download, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - job.progress_at >= PROGRESS_SECONDS:
            job.progress_at = now
            self._emit(FileProgress(
                transfer=job.t.id_hex, bytes=job.t.done_bytes, size=job.offer.size,
                speed=self._meters.speed(job.offer.transfer, TransferState.RECEIVING)))

    async def _finish(self, job: _Download) -> bool:
        """Check the whole file, give it its name, tell the sender; False if chunks need
        fetching."""
        t, offer = job.t, job.offer
        part = t.part_path
        assert part is not None
        try:
            if not await trio.to_thread.run_sync(os.path.exists, part):
                return await self._finished_before(job)
            # The file's hash is the hash of its chunk hashes, checked against the offer when
            # the list came. So the file matches it once every chunk on disk matches its hash.
            bad = await trio.to_thread.run_sync(bad_chunks, part, offer, job.hashes, job.written)
            if bad:
                # Verified chunks lost on the way to the disk (a crash before the OS wrote
                # them): forget them, fetch them again.
                for i in bad:
                    if bit(t.verified, i):
                        set_bit(t.verified, i, False)
                        t.done_bytes -= fc.chunk_length(i, offer.size, offer.chunk_size)
                self._save(job)
                return False
            # Shielded: a pause or cancel must not land between the name and the record.
            with trio.CancelScope(shield=True):
                final = await self._publish(job)
                self._completed(job, final)
        except OSError as exc:
            raise TransferFailed(f"cannot finish the file: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise TransferFailed(f"cannot finish the file: {storage_error(exc)}") from None
        return True

    async def _finished_before(self, job: _Download) -> bool:
        """Every chunk is verified but the ``.part`` is gone: either a crash came after it
        became the finished file (complete now, if that file still matches), or someone
        deleted it (fetch everything again)."""
        t, offer = job.t, job.offer
        part = t.part_path
        assert part is not None
        final = finished_name(t)
        if final is not None and await trio.to_thread.run_sync(
                holds, final, offer, job.hashes):
            log.info("transfer %s was finished before a restart: %s", t.id_hex, final)
            self._completed(job, final)
            return True
        if offer.size == 0:
            await trio.to_thread.run_sync(lambda: open(part, "wb").close())
            return False
        t.verified[:] = bytes(len(t.verified))
        job.written[:] = bytes(len(job.written))
        t.done_bytes = 0
        self._save(job)
        return False

    async def _publish(self, job: _Download) -> str:
        """Give the verified ``.part`` its final name without replacing any file: the name is
        recorded first, then linked, then the ``.part`` removed, so that a crash between any
        two steps leaves a name to find the finished file by (``_finished_before``)."""
        t = job.t
        part = t.part_path
        assert part is not None
        for _ in range(100):
            if t.path is None:
                t.path = await trio.to_thread.run_sync(free_name, part, t.offer.name)
                self.store.set_final_path(t.offer.transfer, t.path)
            if await trio.to_thread.run_sync(link_final, part, t.path):
                await trio.to_thread.run_sync(unlink_quietly, part)
                return t.path
            t.path = None  # another file took the name meanwhile
        raise OSError("no free name for the file")

    def _completed(self, job: _Download, final: str) -> None:
        """Record the download complete and tell the sender, who is told first: a crash
        before the record tells them again at the next start (a repeat they ignore)."""
        t, offer = job.t, job.offer
        if t.room_id is None:
            self._tell(t.peer_id, fc.FileControl(offer.transfer, "complete"))
            if self.mailbox is not None:
                self.mailbox.release(t)
        t.done_bytes = offer.size
        self._save(job)
        self.store.complete(offer.transfer, final)
        self._emit_progress(job, force=True)
        self._emit(FileComplete(transfer=t.id_hex, path=final, hash=offer.hash.hex()))
