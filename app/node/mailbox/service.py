"""Serving a mailbox: holding sealed mail on ``/kith/mailbox/1.0.0`` for the contacts who
registered with us, while they are offline.

Only a contact of ours may register, fetch or delete; anyone may deposit for a registered user,
within that user's quotas and their own (``MailboxLimits``), and not when the user's block list
names them. Every refusal says why in one code (docs/protocol.md, "Mailboxes"), and a deposit
for someone who is not a user is refused exactly like one the user's block list refuses: a
stranger learns nothing about whose mail is held here. Held mail is in SQLite and survives a
restart; it goes when its user deletes it after collecting, when it is older than
``max_age`` (oldest first), or with its user.

File blobs (docs/protocol.md 10.8) follow the same rules: a sender declares a blob's size
before putting any piece, and the declared size counts toward the user's quota, the mailbox's
and a per-sender share of its own (``sender_blob_bytes``, so that one 50 MB file fits beside
the sender's messages); only the blob's recipient reads or deletes it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF

from app.core import blob as bl
from app.core import dm
from app.core import mailbox as mb
from app.core.records import ContactState
from app.node.framing import Stream, guarded, read_frame, write_frame
from app.node.interfaces import ContactBook, Quotas, Tasks
from app.store.mailbox import MailboxStore, read_piece, write_piece

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol(mb.PROTOCOL_ID)
REQUEST_IDLE = 30.0        # a stream with no data of a next request for this long is reset
STREAM_TIMEOUT = 300.0     # the longest a stream may last (a FETCH answer is up to ~4 MiB)
MAX_RATE_SENDERS = 4096    # senders whose deposit rate is remembered at once


@dataclass(frozen=True)
class MailboxLimits:
    """What a mailbox holds, per user, per sender and in all (docs/networking.md)."""

    user_items: int = 10_000
    user_bytes: int = 200 << 20
    sender_items: int = 1_000          # from one sender, for one user
    sender_bytes: int = 50 << 20
    sender_blobs: int = 16             # file blobs from one sender, for one user...
    sender_blob_bytes: int = 100 << 20  # ... and their declared bytes
    total_bytes: int = 2 << 30         # for all users together
    max_age: float = 30 * 86400.0      # held mail older than this is deleted, oldest first
    registration_age: float = 90 * 86400.0  # a user who has not renewed for this long goes
    deposit_burst: int = 120           # deposits per sender in a burst...
    deposit_rate: float = 1.0          # ... refilled at this many per second
    sweep_interval: float = 3600.0


DEFAULT_MAILBOX_LIMITS = MailboxLimits()


class _Bucket:
    def __init__(self, burst: int) -> None:
        self.tokens = float(burst)
        self.at = time.monotonic()


class MailboxService:
    """The serving end of ``/kith/mailbox/1.0.0`` (started only with ``serve_mailbox``)."""

    def __init__(self, store: MailboxStore, *, host: IHost, nursery: Tasks,
                 contacts: ContactBook, quotas: Quotas, first_frame_timeout: float,
                 limits: MailboxLimits = DEFAULT_MAILBOX_LIMITS) -> None:
        self.store = store
        self._host = host
        self._nursery = nursery
        self._contacts = contacts
        self._quotas = quotas
        self._first_frame_timeout = first_frame_timeout
        self.limits = limits
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def start(self) -> None:
        self._host.set_stream_handler(
            PROTOCOL_ID, guarded(PROTOCOL_ID, self._serve, timeout=STREAM_TIMEOUT))
        self._nursery.start_soon(self._sweep_forever)

    def stats(self) -> tuple[int, int, int]:
        """(users, held items, held bytes)."""
        items, size = self.store.total()
        return len(self.store.users()), items, size

    # -- housekeeping --------------------------------------------------------------------------

    def sweep(self) -> None:
        """Expire old mail (oldest first), users who stopped renewing, and users who are no
        longer our contacts."""
        now = time.time()
        expired = self.store.expire(int((now - self.limits.max_age) * 1000))
        gone = self.store.expire_users(now - self.limits.registration_age)
        for user in self.store.users():
            if self._contacts.state(user) is not ContactState.CONTACT:
                self.store.drop_user(user)
                gone += 1
        self.store.remove_orphans()  # the files of blobs that went with them
        if expired or gone:
            log.info("mailbox: expired %d held message(s) and %d user(s)", expired, gone)

    async def _sweep_forever(self) -> None:
        while True:
            self.sweep()
            await trio.sleep(self.limits.sweep_interval)

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        first = True
        while True:
            try:
                if first:  # the whole first request, within the first-frame timeout
                    with trio.fail_after(self._first_frame_timeout):
                        frame = await read_frame(stream, mb.MAX_REQUEST)
                else:  # later ones (a piece of 1 MiB on a slow link) as long as bytes come
                    frame = await read_frame(stream, mb.MAX_REQUEST, idle=REQUEST_IDLE)
            except StreamEOF:
                await stream.close()
                return
            except trio.TooSlowError:
                await stream.reset()
                return
            first = False
            try:
                request = mb.decode_request(frame)
            except mb.MailboxError as exc:
                log.info("mailbox: a malformed request from %s: %s", peer_id, exc)
                await self._refuse(stream, mb.REFUSED_MALFORMED)
                continue
            if isinstance(request, mb.Register):
                await write_frame(stream, mb.encode_answer(self._register(peer_id, request)))
            elif isinstance(request, mb.Deposit):
                await write_frame(stream, mb.encode_answer(self._deposit(peer_id, request)))
            elif isinstance(request, mb.Fetch):
                await self._fetch(stream, peer_id, request)
            elif isinstance(request, mb.Delete):
                await write_frame(stream, mb.encode_answer(self._delete(peer_id, request)))
            else:
                await write_frame(stream, mb.encode_answer(await self._blob(peer_id, request)))

    async def _refuse(self, stream: Stream, code: int) -> None:
        await write_frame(stream, mb.encode_answer(mb.Refused(code, "")))

    def _register(self, peer_id: str, request: mb.Register) -> mb.Answer:
        if self._contacts.state(peer_id) is not ContactState.CONTACT:
            log.info("mailbox: refused to register %s, not a contact", peer_id)
            return mb.Refused(mb.REFUSED_NOT_CONTACT, "")
        self.store.register(peer_id, request.blocked)
        log.info("mailbox: %s registered (%d blocked)", peer_id, len(request.blocked))
        return mb.Ok()

    def _user(self, peer_id: str) -> bool:
        return (self.store.is_user(peer_id)
                and self._contacts.state(peer_id) is ContactState.CONTACT)

    def _admit(self, sender: str, recipient: str) -> mb.Refused | None:
        """The checks a deposit and a blob share: the sender's rate, then whether the mailbox
        takes mail for ``recipient`` from ``sender`` (a non-user and a block look the same)."""
        if not self._take_token(sender):
            self._quotas.refused(sender, "mailbox_rate",
                                 f"{self.limits.deposit_burst} deposits in a burst, then "
                                 f"{self.limits.deposit_rate:g} a second", peer_id=sender)
            return mb.Refused(mb.REFUSED_RATE, "")
        if (sender == recipient or not self._user(recipient)
                or self.store.blocks(recipient, sender)):
            return mb.Refused(mb.REFUSED_NOT_ACCEPTED, "")
        return None

    def _deposit(self, sender: str, request: mb.Deposit) -> mb.Answer:
        recipient, payload = request.recipient, request.payload
        if len(payload) > mb.MAX_PAYLOAD:
            return mb.Refused(mb.REFUSED_TOO_LARGE, "")
        if payload[0] != dm.FRAME_MESSAGE:
            return mb.Refused(mb.REFUSED_MALFORMED, "")
        refused = self._admit(sender, recipient)
        if refused is not None:
            return refused
        full = self._full(recipient, sender, len(payload))
        if full is not None:
            self._quotas.refused(sender, "mailbox_quota", full, peer_id=sender)
            return mb.Refused(mb.REFUSED_FULL, "")
        self.store.hold(recipient, sender, payload)
        return mb.Ok()

    def _full(self, recipient: str, sender: str, size: int) -> str | None:
        """Which quota a deposit of ``size`` bytes would break, in words; None if none."""
        limits = self.limits
        items, used = self.store.usage(recipient)
        used += self.store.blob_usage(recipient)[1]
        if items >= limits.user_items or used + size > limits.user_bytes:
            return f"a user's mailbox holds {limits.user_items} messages, {limits.user_bytes} bytes"
        items, used = self.store.usage(recipient, sender)
        if items >= limits.sender_items or used + size > limits.sender_bytes:
            return (f"one sender may leave {limits.sender_items} messages, "
                    f"{limits.sender_bytes} bytes per user")
        if self.store.total()[1] + size > limits.total_bytes:
            return f"the mailbox holds {limits.total_bytes} bytes in all"
        return None

    def _take_token(self, sender: str) -> bool:
        bucket = self._buckets.pop(sender, None) or _Bucket(self.limits.deposit_burst)
        self._buckets[sender] = bucket
        while len(self._buckets) > MAX_RATE_SENDERS:
            self._buckets.popitem(last=False)
        now = time.monotonic()
        bucket.tokens = min(float(self.limits.deposit_burst),
                            bucket.tokens + (now - bucket.at) * self.limits.deposit_rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    async def _fetch(self, stream: Stream, peer_id: str, request: mb.Fetch) -> None:
        if not self._user(peer_id):
            await self._refuse(stream, mb.REFUSED_NOT_REGISTERED)
            return
        items = self.store.items(peer_id, request.after, request.limit + 1)
        more = len(items) > request.limit
        for item in items[:request.limit]:
            await write_frame(stream, mb.encode_answer(mb.Item(
                item.id, item.deposited_at_ms, item.sender, item.payload)))
        await write_frame(stream, mb.encode_answer(mb.End(more)))

    def _delete(self, peer_id: str, request: mb.Delete) -> mb.Answer:
        if not self._user(peer_id):
            return mb.Refused(mb.REFUSED_NOT_REGISTERED, "")
        self.store.delete(peer_id, request.ids)
        return mb.Ok()

    # -- file blobs ----------------------------------------------------------------------------

    async def _blob(self, peer_id: str,
                    request: mb.BlobOpen | mb.BlobPut | mb.BlobGet | mb.BlobDelete) -> mb.Answer:
        if isinstance(request, mb.BlobOpen):
            return self._blob_open(peer_id, request)
        if isinstance(request, mb.BlobPut):
            return await self._blob_put(peer_id, request)
        if not self._user(peer_id):
            return mb.Refused(mb.REFUSED_NOT_REGISTERED, "")
        if isinstance(request, mb.BlobGet):
            where = self.store.piece_at(peer_id, request.blob, request.index)
            data = None if where is None else await trio.to_thread.run_sync(read_piece, *where)
            if data is None:
                return mb.Refused(mb.REFUSED_NOT_HELD, "")
            return mb.Piece(request.index, data)
        self.store.delete_blob(peer_id, request.blob)
        return mb.Ok()

    def _blob_open(self, sender: str, request: mb.BlobOpen) -> mb.Answer:
        """Declare a blob (quotas checked against its whole size before anything is stored),
        or resume one: the answer says which pieces are held."""
        recipient = request.recipient
        if request.pieces > bl.MAX_PIECES or request.size > request.pieces * bl.MAX_PIECE:
            return mb.Refused(mb.REFUSED_TOO_LARGE, "")
        refused = self._admit(sender, recipient)
        if refused is not None:
            return refused
        held = self.store.blob(recipient, request.blob)
        if held is not None:
            if (held.sender, held.size, held.pieces) != (sender, request.size, request.pieces):
                return mb.Refused(mb.REFUSED_NOT_ACCEPTED, "")
            return mb.BlobHeld(self.store.held_pieces(held))
        full = self._blob_full(recipient, sender, request.size)
        if full is not None:
            self._quotas.refused(sender, "mailbox_quota", full, peer_id=sender)
            return mb.Refused(mb.REFUSED_FULL, "")
        held = self.store.open_blob(recipient, sender, request.blob, request.size,
                                    request.pieces)
        return mb.BlobHeld(self.store.held_pieces(held))

    def _blob_full(self, recipient: str, sender: str, size: int) -> str | None:
        """Which quota a blob of ``size`` bytes would break, in words; None if none."""
        limits = self.limits
        used = self.store.usage(recipient)[1] + self.store.blob_usage(recipient)[1]
        if used + size > limits.user_bytes:
            return f"a user's mailbox holds {limits.user_bytes} bytes"
        blobs, used = self.store.blob_usage(recipient, sender)
        if blobs >= limits.sender_blobs or used + size > limits.sender_blob_bytes:
            return (f"one sender may leave {limits.sender_blobs} files, "
                    f"{limits.sender_blob_bytes} bytes per user")
        if self.store.total()[1] + size > limits.total_bytes:
            return f"the mailbox holds {limits.total_bytes} bytes in all"
        return None

    async def _blob_put(self, sender: str, request: mb.BlobPut) -> mb.Answer:
        held = self.store.blob(request.recipient, request.blob)
        if (held is None or held.sender != sender or not self._user(request.recipient)
                or self.store.blocks(request.recipient, sender)):
            return mb.Refused(mb.REFUSED_NOT_ACCEPTED, "")
        if request.index >= held.pieces:
            return mb.Refused(mb.REFUSED_MALFORMED, "")
        if len(request.data) > bl.MAX_PIECE or held.stored + len(request.data) > held.size:
            return mb.Refused(mb.REFUSED_TOO_LARGE, "")
        if not self.store.has_piece(held, request.index):
            path = self.store.blob_path(held.row)
            await trio.to_thread.run_sync(write_piece, path, request.index * bl.MAX_PIECE,
                                          request.data)
            if not self.store.record_piece(held, request.index, len(request.data)):
                fresh = self.store.blob(request.recipient, request.blob)
                if fresh is None:
                    return mb.Refused(mb.REFUSED_NOT_ACCEPTED, "")  # deleted meanwhile
                if not self.store.has_piece(fresh, request.index):
                    return mb.Refused(mb.REFUSED_TOO_LARGE, "")
        return mb.Ok()
