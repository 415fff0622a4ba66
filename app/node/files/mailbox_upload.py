"""Leaving a file at the recipient's mailbox, so that it arrives while we are offline.

A file offered to a contact who names a mailbox gets a fresh ``BlobRef`` in its offer (the
mailbox, a blob id, a random key: only the sealed offer carries it). When the contact is out of
reach as we offer it, or has been for ``AWAY`` seconds while the offer is still open (they
closed their laptop before accepting, or in the middle of the download), the file goes to that
mailbox as a blob (docs/protocol.md 10.8): its hash list, then each chunk, sealed one by one. A
contact who is online gets the bytes directly and the mailbox never sees them. Each chunk is
read back and checked against its hash before it is sealed, as for serving it, so only the
offered bytes ever go out, and a piece index is never sealed twice with different content under
one key. The upload resumes (the mailbox says which pieces it holds) after a lost connection and
at every start, until the mailbox holds it all, refuses it, or the transfer is over. The offer
stands whatever happens here (the recipient can always fetch the file from us directly), unless
the file is not the offered one any more: then the transfer fails, as serving it would make it
fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from app.core import blob as bl
from app.core import files as fc
from app.core import mailbox as mb
from app.core.events import FileDeposited, FileDepositRefused, FileFailed
from app.core.transfer_state import Step, TransferState
from app.node.files.disk import read_served
from app.node.interfaces import BlobSession, Connections, Emit, MailboxBlobs, Tasks
from app.node.isolation import is_local_fault
from app.store.mailbox import TransferBlobs
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)

MAX_UPLOAD = 100 << 20     # a mailbox's share per sender for files (docs/protocol.md 10.4)
FIRST_RETRY = 5.0          # a mailbox out of reach is tried again after this, doubling...
MAX_RETRY = 300.0          # ... up to this
AWAY = 120.0               # a contact offline this long (two checks in a row) gets the blob
PLANNED, UPLOADING, DEPOSITED, REFUSED = "planned", "uploading", "deposited", "refused"
CHANGED = "the file changed on disk"

Tell = Callable[[str, fc.FileControl], None]  # tell a peer about a transfer (a file control)


class MailboxUploads:
    """Blobs we leave at contacts' mailboxes, one task per transfer."""

    def __init__(self, store: TransferStore, blobs: TransferBlobs, *, mailboxes: MailboxBlobs,
                 nursery: Tasks, emit: Emit, connections: Connections, tell: Tell) -> None:
        self.store = store
        self._tell = tell
        self.blobs = blobs
        self._mailboxes = mailboxes
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._running: set[bytes] = set()
        # One upload at a time per mailbox: a mailbox takes 2 streams from a stranger, and the
        # outbox may be depositing messages there meanwhile.
        self._turns: dict[str, trio.Lock] = {}
        self._away: set[bytes] = set()  # planned blobs whose contact was offline at the last check

    def plan(self, to: str, size: int, chunk_size: int) -> bl.BlobRef | None:
        """A blob for a file offered to ``to`` now, or None: they name no mailbox, or the file
        cannot be one."""
        mailbox = self._mailboxes.blob_mailbox(to)
        chunks = fc.chunk_count(size, chunk_size)
        if mailbox is None or not bl.fits(size, chunk_size, chunks) or (
                bl.sealed_size(size, chunks) > MAX_UPLOAD):
            return None
        return bl.new_ref(mailbox)

    def held_by(self, tid: bytes) -> str | None:
        """The mailbox that holds all of ``tid``, if one does."""
        row = self.blobs.get(tid)
        return row.mailbox if row is not None and row.state == DEPOSITED else None

    def leave(self, tid: bytes, ref: bl.BlobRef, to: str) -> None:
        """Record that the offer ``tid`` (recorded too) names ``ref``; upload it now if ``to``
        is out of reach, else only if they go away before they have the file."""
        if self._connections.is_connected(to):
            self.blobs.add(tid, ref.mailbox, ref.blob, ref.key, PLANNED)
            return
        self.blobs.add(tid, ref.mailbox, ref.blob, ref.key, UPLOADING)
        self._spawn(tid)

    def start(self) -> None:
        """Go on with every upload that did not end before the last stop, and watch planned
        ones."""
        for tid in self.blobs.in_state(UPLOADING):
            self._spawn(tid)
        self._nursery.start_soon(self._watch_planned)

    async def _watch_planned(self) -> None:
        """Every ``AWAY / 2`` seconds: a planned blob whose contact was offline at this check
        and the one before is uploaded (a short drop of the connection uploads nothing)."""
        while True:
            await trio.sleep(AWAY / 2)
            away = set()
            for tid in self.blobs.in_state(PLANNED):
                t = self.store.get(tid)
                if t is None or t.state.final:
                    continue
                if not self._connections.is_connected(t.peer_id):
                    away.add(tid)
                    if tid in self._away and t.state is TransferState.OFFERED:
                        self.blobs.set_state(tid, UPLOADING)
                        self._spawn(tid)
            self._away = away

    def _spawn(self, tid: bytes) -> None:
        if tid not in self._running:
            self._running.add(tid)
            self._nursery.start_soon(self._upload, tid)

    async def _upload(self, tid: bytes) -> None:
        retry = FIRST_RETRY
        try:
            while True:
                t, row = self.store.get(tid), self.blobs.get(tid)
                if t is None or row is None or t.state is not TransferState.OFFERED:
                    return
                ref = bl.BlobRef(row.mailbox, row.blob, row.key)
                put: list[int] = []
                try:
                    async with self._turns.setdefault(ref.mailbox, trio.Lock()), \
                            self._mailboxes.blob_session(ref.mailbox, t.peer_id) as session:
                        if not await self._put_all(session, t, ref, put):
                            return
                    self.blobs.set_state(tid, DEPOSITED)
                    self._emit(FileDeposited(transfer=t.id_hex, peer_id=t.peer_id,
                                             mailbox=ref.mailbox))
                    return
                except mb.BlobRefused as exc:
                    if exc.code != mb.REFUSED_RATE:
                        log.info("mailbox %s refused file %s: %s", ref.mailbox, t.id_hex,
                                 exc.reason)
                        self.blobs.set_state(tid, REFUSED)
                        self._emit(FileDepositRefused(transfer=t.id_hex, peer_id=t.peer_id,
                                                      mailbox=ref.mailbox, reason=exc.reason))
                        return
                    log.info("mailbox %s: too many requests; later", ref.mailbox)
                except Exception as exc:
                    if is_local_fault(exc):
                        raise
                    log.info("could not leave file %s at %s: %s", t.id_hex, ref.mailbox, exc)
                if put:  # it was moving (a stream lasts 300 s): go on soon
                    retry = FIRST_RETRY
                await trio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY)
        finally:
            self._running.discard(tid)

    async def _put_all(self, session: BlobSession, t: StoredTransfer, ref: bl.BlobRef,
                       put: list[int]) -> bool:
        """Put every piece the mailbox lacks (each index put is added to ``put``); False if
        the transfer is over or the file is not the offered one any more (the offer's own
        serving says so to the recipient)."""
        offer = t.offer
        chunks = offer.chunks
        held = await session.open(t.peer_id, ref.blob, bl.sealed_size(offer.size, chunks),
                                  bl.pieces(chunks))
        for index in range(bl.pieces(chunks)):
            if held.has(index):
                continue
            fresh = self.store.get(offer.transfer)
            if fresh is None or fresh.state is not TransferState.OFFERED:
                return False
            plain = await self._plain(t, index)
            if plain is None:
                self._changed(t)
                return False
            sealed = await trio.to_thread.run_sync(bl.seal, ref, index, plain)
            await session.put(t.peer_id, ref.blob, index, sealed)
            put.append(index)
        return True

    def _changed(self, t: StoredTransfer) -> None:
        """The file is not the offered one any more: the transfer fails, and the recipient
        is told, as when serving it finds out."""
        if self.store.move(t.offer.transfer, Step.FAIL, outgoing=True, reason=CHANGED):
            log.warning("stopped leaving %s at a mailbox: %s", t.path, CHANGED)
            self._emit(FileFailed(transfer=t.id_hex, reason=CHANGED))
            self._tell(t.peer_id, fc.FileControl(t.offer.transfer, "fail", CHANGED))

    @staticmethod
    async def _plain(t: StoredTransfer, index: int) -> bytes | bytearray | None:
        """Piece ``index`` in the clear: the hash list, or a chunk that still matches it."""
        if t.hashes is None or t.path is None:
            return None
        if index == bl.HASH_PIECE:
            return t.hashes
        chunk = index - 1
        offer = t.offer
        return await trio.to_thread.run_sync(
            read_served, t.path, chunk * offer.chunk_size,
            fc.chunk_length(chunk, offer.size, offer.chunk_size), (t.src_size, t.src_mtime),
            t.hashes[chunk * fc.HASH_SIZE:(chunk + 1) * fc.HASH_SIZE])
