"""A download's second source: the file's sealed blob at our own mailbox.

A direct offer may name a blob at our mailbox (``BlobRef``: the sender left the file there
while we were out of reach). When the sender cannot be reached, the download reads it from
the mailbox instead: piece 0 is the chunk hash list, piece ``1 + i`` chunk ``i``, each opened
with the offer's key and then verified, written and recorded exactly as a chunk from the
sender (``downloading``). A piece the mailbox does not hold (yet), one that does not open (the
mailbox altered it), or a mailbox out of reach sets the mailbox aside for ``RETRY`` seconds;
the sender, once back, serves whatever is still missing. When the transfer is over (complete,
declined, cancelled) the blob is deleted at the mailbox; one that could not be deleted then is
deleted at the next start.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import trio

from app.core import blob as bl
from app.core import files as fc
from app.node.interfaces import MailboxBlobs, Tasks
from app.node.isolation import is_local_fault
from app.store.mailbox import TransferBlobs
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)

MAILBOX = "mailbox"        # this source's name among a download's sources
RETRY = 60.0               # a mailbox set aside is asked again after this
OFFERED, DELETED = "offered", "deleted"

Chunks = trio.MemorySendChannel[tuple[str, int, memoryview]]


class MailboxSource:
    """Reads the blobs of direct offers from our own mailboxes."""

    def __init__(self, blobs: TransferBlobs, *, mailboxes: MailboxBlobs, nursery: Tasks
                 ) -> None:
        self.blobs = blobs
        self._mailboxes = mailboxes
        self._nursery = nursery
        self._aside: dict[bytes, float] = {}   # transfer -> until when the mailbox is not asked

    def offered(self, tid: bytes, ref: bl.BlobRef) -> None:
        """A direct offer named a blob: remember where (only the offer carries the key)."""
        self.blobs.add(tid, ref.mailbox, ref.blob, ref.key, OFFERED)

    def _ref(self, t: StoredTransfer) -> bl.BlobRef | None:
        row = self.blobs.get(t.offer.transfer) if t.room_id is None else None
        if row is None or row.state != OFFERED or not self._mailboxes.is_mine(row.mailbox):
            return None
        return bl.BlobRef(row.mailbox, row.blob, row.key)

    def usable(self, t: StoredTransfer) -> bool:
        """Whether to read ``t`` from our mailbox now."""
        return (self._ref(t) is not None
                and self._aside.get(t.offer.transfer, 0.0) <= time.monotonic())

    def _set_aside(self, t: StoredTransfer, why: str) -> None:
        log.info("transfer %s: the mailbox is set aside for %.0f s: %s", t.id_hex, RETRY, why)
        self._aside[t.offer.transfer] = time.monotonic() + RETRY

    async def hashes(self, t: StoredTransfer) -> bytes | None:
        """The chunk hash list as the blob holds it (the caller checks it against the offer),
        or None if the mailbox cannot give it now."""
        ref = self._ref(t)
        if ref is None:
            return None
        try:
            async with self._mailboxes.blob_session(ref.mailbox, t.peer_id) as session:
                sealed = await session.get(ref.blob, bl.HASH_PIECE)
            if sealed is None:
                self._set_aside(t, "it does not hold the file (yet)")
                return None
            return await trio.to_thread.run_sync(bl.open_piece, ref, bl.HASH_PIECE, sealed)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            self._set_aside(t, str(exc))
            return None

    async def read(self, t: StoredTransfer, pending: deque[int], send: Chunks) -> None:
        """Take chunk indexes off ``pending`` and hand each chunk, opened, to the writer
        (which verifies it); an index not delivered goes back on ``pending``."""
        ref = self._ref(t)
        if ref is None:
            return
        offer = t.offer
        index: int | None = None
        delivered = 0
        try:
            async with self._mailboxes.blob_session(ref.mailbox, t.peer_id) as session:
                while pending:
                    index = pending.popleft()
                    sealed = await session.get(ref.blob, 1 + index)
                    if sealed is None:
                        self._set_aside(t, f"it does not hold chunk {index} (yet)")
                        return
                    plain = await trio.to_thread.run_sync(bl.open_piece, ref, 1 + index, sealed)
                    if len(plain) != fc.chunk_length(index, offer.size, offer.chunk_size):
                        self._set_aside(t, f"chunk {index} has the wrong size")
                        return
                    await send.send((MAILBOX, index, memoryview(plain)))
                    index = None
                    delivered += 1
        except bl.BlobError as exc:
            self._set_aside(t, str(exc))
        except Exception as exc:
            if is_local_fault(exc):
                raise
            if delivered:  # a stream that ended after serving (it lasts 300 s): go on at once
                log.info("transfer %s: the mailbox stream ended: %s", t.id_hex, exc)
            else:
                self._set_aside(t, str(exc))
        finally:
            if index is not None:
                pending.appendleft(index)

    def start(self, store: TransferStore) -> None:
        """Delete the blobs of transfers that ended while their mailbox was out of reach."""
        for tid in self.blobs.in_state(OFFERED):
            t = store.get(tid)
            if t is not None and t.state.final:
                self.release(t)

    def release(self, t: StoredTransfer) -> None:
        """The transfer is over: the mailbox may let its blob go."""
        if self._ref(t) is not None:
            self._nursery.start_soon(self._delete, t)

    async def _delete(self, t: StoredTransfer) -> None:
        ref = self._ref(t)
        if ref is None:
            return
        try:
            async with self._mailboxes.blob_session(ref.mailbox, t.peer_id) as session:
                await session.delete(ref.blob)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            log.info("could not delete the blob of %s at %s: %s", t.id_hex, ref.mailbox, exc)
            return
        self.blobs.set_state(t.offer.transfer, DELETED)
