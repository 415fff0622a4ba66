"""``FileTransfers``: what the user does with files, and the parts that do the rest.

Sending hashes a file and offers it through the outbox (``interfaces.Outbox``: a direct message
of kind 2) or to a room (``interfaces.RoomChannel``: a post of kind 3); accepting, pausing,
resuming, declining and cancelling move a transfer by the steps of
``app.core.transfer_state``. The parts: ``serving`` answers ``/kith/file/1.0.0``,
``downloading`` fetches, ``intake`` takes offers and controls from peers (its handlers are
registered by kind with ``DirectMessages`` and ``RoomService``). With mailboxes in use
(``use_mailboxes``), ``mailbox_upload`` leaves a file for an offline contact at their mailbox
and ``mailbox_source`` reads one left for us at ours.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
from collections.abc import Callable

import trio
from libp2p.abc import IHost

from app.core import dm
from app.core import files as fc
from app.core import room as rc
from app.core.events import (
    FileAccepted,
    FileCancelled,
    FileDeclined,
    FileOffered,
    FilePaused,
    FileResumed,
)
from app.core.records import ContactState, TransferInfo
from app.core.transfer_state import Step, TransferState, can
from app.node.files.disk import NotAFile, create_part, hash_source, in_place, stat_source
from app.node.files.downloading import Downloads
from app.node.files.intake import FileControls, FileOffers, Intake, RoomFiles
from app.node.files.mailbox_source import MailboxSource
from app.node.files.mailbox_upload import MailboxUploads
from app.node.files.progress import Meters
from app.node.files.serving import Serving
from app.node.interfaces import (
    Connections,
    ContactBook,
    Emit,
    MailboxBlobs,
    Outbox,
    Quotas,
    RoomChannel,
    Tasks,
)
from app.store.mailbox import TransferBlobs
from app.store.profile import Profile, default_download_dir
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)


class TransferError(ValueError):
    """A file operation the user asked for that cannot be done; the message says why."""


def _parse_id(transfer_hex: str) -> bytes:
    try:
        raw = bytes.fromhex(transfer_hex)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != fc.TRANSFER_ID_SIZE:
        raise TransferError(f"not a transfer id: {transfer_hex!r}")
    return raw


class FileTransfers:
    """Every file transfer of this node, either direction, direct or in a room."""

    def __init__(self, store: TransferStore, *, host: IHost, nursery: Tasks, emit: Emit,
                 me: str, profile: Profile, contacts: ContactBook, rooms: RoomChannel,
                 connections: Connections, outbox: Outbox, quotas: Quotas,
                 first_frame_timeout: float) -> None:
        self.store = store
        self._emit = emit
        self._profile = profile
        self._contacts = contacts
        self._rooms = rooms
        self._outbox = outbox
        self._nursery = nursery
        self._connections = connections
        self._meters = Meters()
        self.uploads: MailboxUploads | None = None
        self.serving = Serving(store, host=host, emit=emit, me=me, contacts=contacts, rooms=rooms,
                               meters=self._meters, tell=self._control,
                               first_frame_timeout=first_frame_timeout)
        self.downloads = Downloads(store, host=host, nursery=nursery, emit=emit, me=me,
                                   rooms=rooms, connections=connections, meters=self._meters,
                                   tell=self._control)
        self.intake = Intake(store, nursery=nursery, emit=emit, contacts=contacts, quotas=quotas,
                             downloads=self.downloads, auto_accept_limit=self._auto_accept_limit,
                             auto_accept=self._auto_accept)
        # What others send us, by payload kind (registered with DirectMessages and RoomService).
        self.offers = FileOffers(self.intake)
        self.controls = FileControls(self.intake)
        self.room_files = RoomFiles(self.intake)

    def use_mailboxes(self, mailboxes: MailboxBlobs, blobs: TransferBlobs) -> None:
        """File bytes through mailboxes: left at an offline contact's, read from ours."""
        self.uploads = MailboxUploads(self.store, blobs, mailboxes=mailboxes,
                                      nursery=self._nursery, emit=self._emit,
                                      connections=self._connections, tell=self._control)
        source = MailboxSource(blobs, mailboxes=mailboxes, nursery=self._nursery)
        self.downloads.mailbox = self.intake.mailbox = source

    def start(self) -> None:
        self.serving.start()
        if self.uploads is not None:
            self.uploads.start()
        if self.downloads.mailbox is not None:
            self.downloads.mailbox.start(self.store)
        for t in self.store.in_state(TransferState.RECEIVING, outgoing=False):
            self.downloads.spawn(t.offer.transfer)

    def peer_connected(self, peer_id: str) -> None:
        """A source may be back: waiting downloads look again now."""
        self.downloads.peer_connected()

    def revoke_offers_to(self, peer_id: str) -> None:
        """``peer_id`` is no longer a contact: what was offered to them is cancelled."""
        self.intake.revoke_offers_to(peer_id)

    @property
    def send_hook(self) -> Callable[[int, bytes], bytes] | None:
        """Tests set it to play a sender whose chunks go bad after the check."""
        return self.serving.send_hook

    @send_hook.setter
    def send_hook(self, hook: Callable[[int, bytes], bytes] | None) -> None:
        self.serving.send_hook = hook

    # -- what the user does -------------------------------------------------------------------

    async def send(self, to: str, path: str, name: str | None = None) -> TransferInfo:
        """Hash ``path`` and offer it to a contact or a room.

        ``name`` is what the receiver is told (default: the file's own name); it may be a
        relative path with "/" separators for a file of a dropped folder ("Photos/a.jpg").
        """
        if name is not None:
            name = "/".join(p for p in name.replace("\\", "/").split("/") if p)
            if not name or len(name) > fc.MAX_NAME_CHARS:
                raise TransferError(
                    f"a file name is 1 to {fc.MAX_NAME_CHARS} characters")
        room_id: bytes | None = None
        if len(to) == 2 * 16 and all(c in "0123456789abcdefABCDEF" for c in to):
            room_id = bytes.fromhex(to)
            if not self._rooms.has_room(room_id):
                raise TransferError(f"you are not in room {to}")
        else:
            state = self._contacts.state(to)
            if state is None:
                raise TransferError("add this person as a contact before sending them files")
            if state is ContactState.BLOCKED:
                raise TransferError("this person is blocked; unblock them to send files")
        try:
            source, before = await trio.to_thread.run_sync(stat_source, path)
        except NotAFile:
            raise TransferError(f"{path} is not a file") from None
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
        chunk_size = fc.choose_chunk_size(before.st_size)
        if fc.chunk_count(before.st_size, chunk_size) > fc.MAX_CHUNKS:
            largest = fc.MAX_CHUNKS * fc.MAX_CHUNK_SIZE >> 30
            raise TransferError(f"Kith sends files of at most {largest} GiB")
        try:
            hashes, size, after, full_path = await trio.to_thread.run_sync(
                hash_source, source, chunk_size, before.st_size
            )
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
            size != after.st_size
        ):
            raise TransferError("the file changed while it was being read; try again")
        name = name or source.name[: fc.MAX_NAME_CHARS] or "file"
        mime = mimetypes.guess_type(name.rsplit("/", 1)[-1])[0] or "application/octet-stream"
        # The file may also wait at the contact's mailbox (the offer carries the key).
        blob = (self.uploads.plan(to, size, chunk_size)
                if room_id is None and self.uploads is not None else None)
        offer = fc.FileOffer(fc.new_transfer_id(), name, size, chunk_size,
                             fc.content_hash(hashes), mime[: fc.MAX_MIME_CHARS], blob)
        body = offer.to_json()  # raises if too large
        self.store.add(offer, outgoing=True, peer_id="" if room_id else to, room_id=room_id,
                       path=full_path, src_size=after.st_size, src_mtime=after.st_mtime_ns,
                       hashes=hashes)
        if blob is not None and self.uploads is not None:
            self.uploads.leave(offer.transfer, blob, to)
        if room_id is not None:
            await self._rooms.post_payload(room_id, rc.KIND_FILE, body)
        else:  # the conversation shows the offer as a file card
            self._outbox.queue(to, dm.KIND_FILE_OFFER, body.decode("utf-8"))
        self._emit(FileOffered(transfer=offer.id_hex, to=to, name_=name, size=size,
                               hash=offer.hash.hex()))
        return self.info(offer.transfer)

    def download_dir(self) -> str:
        """The folder accepted files go to unless another is given."""
        return self._profile.settings.download_dir or str(default_download_dir())

    def file_settings(self) -> tuple[str, int]:
        settings = self._profile.settings
        return self.download_dir(), settings.auto_accept_verified_bytes

    async def set_file_settings(self, download_dir: str, auto_accept_verified_bytes: int
                                ) -> tuple[str, int]:
        """Validate (``Settings.with_changes``) and save; the network thread is the only
        writer of the settings file."""
        change = functools.partial(self._profile.settings.with_changes, download_dir=download_dir,
                                   auto_accept_verified_bytes=auto_accept_verified_bytes)
        try:
            self._profile.settings = await trio.to_thread.run_sync(change)
        except ValueError as exc:
            raise TransferError(str(exc)) from None
        await trio.to_thread.run_sync(self._profile.save_settings)
        return self.file_settings()

    def _auto_accept_limit(self) -> int:
        return self._profile.settings.auto_accept_verified_bytes

    async def _auto_accept(self, transfer_hex: str) -> None:
        try:
            await self.accept(transfer_hex, "", auto=True)
        except TransferError as exc:
            log.warning("could not auto-accept %s: %s", transfer_hex, exc)

    async def accept(self, transfer_hex: str, folder: str = "", auto: bool = False
                     ) -> TransferInfo:
        """Start downloading into ``folder`` (empty: the download folder); a paused or
        failed transfer continues from its verified part, in its first folder."""
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        folder = folder or self.download_dir()
        if t.state is TransferState.PAUSED:
            return await self.resume(transfer_hex)
        if t.state in (TransferState.FAILED, TransferState.RECEIVING) and t.part_path and (
                not self.downloads.running(tid)) and await trio.to_thread.run_sync(in_place, t):
            # Retrying a failed download (a full disk, a bad sender), or restarting one whose
            # task stopped when not even its failure could be recorded: keep what is verified,
            # or the file it already became.
            self.store.start_receiving(tid, t.dir or folder, t.part_path)
        elif can(t.state, Step.ACCEPT, outgoing=False):
            try:
                target, part = await trio.to_thread.run_sync(create_part, folder, t.offer.name)
            except OSError as exc:
                raise TransferError(f"cannot write to {folder}: {exc.strerror or exc}") from None
            self.store.start_receiving(tid, target, part)
        else:
            raise TransferError(f"this transfer is {t.state}")
        self.downloads.spawn(tid)
        info = self.info(tid)
        fresh = self.store.get(tid)
        self._emit(FileAccepted(transfer=info.transfer, dir=(fresh.dir if fresh else "")
                                or folder, auto=auto))
        return info

    async def pause(self, transfer_hex: str) -> TransferInfo:
        """Stop fetching; the .part and its verified chunks stay (state "paused", kept
        across restarts) until ``resume``."""
        tid = _parse_id(transfer_hex)
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {transfer_hex}")
        if t.outgoing:
            raise TransferError("only the receiver can pause a transfer")
        if not self.store.move(tid, Step.PAUSE, outgoing=False):
            raise TransferError(f"only a download in progress can be paused; it is {t.state}")
        await self.downloads.stop(tid)
        self._meters.forget(tid)
        info = self.info(tid)
        self._emit(FilePaused(transfer=info.transfer, bytes=info.bytes, size=info.size))
        return info

    async def resume(self, transfer_hex: str) -> TransferInfo:
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        if not self.store.move(tid, Step.RESUME, outgoing=False):
            raise TransferError(f"only a paused transfer can be resumed; it is {t.state}")
        self.downloads.spawn(tid)
        self._emit(FileResumed(transfer=t.id_hex))
        return self.info(tid)

    async def decline(self, transfer_hex: str) -> None:
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        if not self.store.move(tid, Step.DECLINE, outgoing=False):
            raise TransferError(f"only an offer can be declined; this transfer is {t.state}")
        if t.room_id is None:
            self._control(t.peer_id, fc.FileControl(tid, "decline"))
            self._release_blob(t)
        self._emit(FileDeclined(transfer=transfer_hex.lower(), by="me"))

    async def cancel(self, transfer_hex: str) -> None:
        tid = _parse_id(transfer_hex)
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {transfer_hex}")
        if not self.store.move(tid, Step.CANCEL, outgoing=t.outgoing):
            raise TransferError(f"this transfer is already {t.state}")
        if not t.outgoing:
            await self.downloads.stop(tid)
            await self.downloads.remove_part(t)
            self._release_blob(t)
        if t.room_id is None:
            self._control(t.peer_id, fc.FileControl(tid, "cancel"))
        self._emit(FileCancelled(transfer=t.id_hex, by="me"))

    # -- what the interfaces read ---------------------------------------------------------------

    def transfers(self) -> list[TransferInfo]:
        return [self._info(t) for t in self.store.all()]

    def lookup(self, transfer_hex: str) -> TransferInfo | None:
        """One transfer by id; None if unknown (or not an id)."""
        try:
            tid = _parse_id(transfer_hex)
        except TransferError:
            return None
        t = self.store.get(tid)
        return self._info(t) if t is not None else None

    def info(self, tid: bytes) -> TransferInfo:
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {tid.hex()}")
        return self._info(t)

    def _info(self, t: StoredTransfer) -> TransferInfo:
        tid = t.offer.transfer
        complete = t.state is TransferState.COMPLETE
        if t.outgoing:
            done = t.offer.size if complete else self.serving.served_bytes(tid)
        else:
            done = t.done_bytes
        # An incoming file's path is its final name once complete (before, only a plan).
        path = t.path if t.outgoing or complete else None
        return TransferInfo(
            transfer=t.id_hex, outgoing=t.outgoing, peer_id=t.peer_id,
            room_id=t.room_id.hex() if t.room_id else None, name=t.offer.name, size=t.offer.size,
            hash=t.offer.hash.hex(), state=t.state, bytes=done, path=path, reason=t.reason,
            served=self.serving.served.get(tid, 0), speed=self._meters.speed(tid, t.state),
            held_by=self.uploads.held_by(tid) if t.outgoing and self.uploads else None,
        )

    def _incoming(self, tid: bytes) -> StoredTransfer:
        t = self.store.get(tid)
        if t is None or t.outgoing:
            raise TransferError(f"no incoming transfer {tid.hex()}")
        return t

    def _release_blob(self, t: StoredTransfer) -> None:
        """An incoming direct transfer is over: its blob at our mailbox, if any, may go."""
        if t.room_id is None and self.downloads.mailbox is not None:
            self.downloads.mailbox.release(t)

    def _control(self, peer_id: str, control: fc.FileControl) -> None:
        """Tell the other side of a direct transfer what changed (a file control)."""
        try:
            self._outbox.queue(peer_id, dm.KIND_FILE_CONTROL, control.to_json().decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - the local state changed anyway
            log.info("could not tell %s about transfer %s: %s", peer_id,
                     control.transfer.hex(), exc)
