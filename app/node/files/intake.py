"""Offers and controls from peers: what a file offer or a file control we received leads to.

Offers arrive as direct messages of kind 2 (``dm.KIND_FILE_OFFER``) or as room posts of kind 3
(``room.KIND_FILE``), controls (decline, cancel, complete, fail) as direct messages of kind 3.
``FileOffers``, ``FileControls`` and ``RoomFiles`` are their handlers, registered by kind with
``DirectMessages`` and ``RoomService`` when the node is wired; each hands over to ``Intake``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.core import dm
from app.core import files as fc
from app.core.events import (
    FileCancelled,
    FileComplete,
    FileDeclined,
    FileFailed,
    FileOffer,
    FileProgress,
)
from app.core.records import ContactState, MessageInfo
from app.core.room import RoomPost
from app.core.transfer_state import Step, TransferState
from app.node.files.downloading import Downloads
from app.node.files.mailbox_source import MailboxSource
from app.node.interfaces import ContactBook, Emit, Quotas, Refusal, Tasks
from app.store.messages import as_file_message, offer_summary
from app.store.transfers import StoredTransfer, TransferStore

log = logging.getLogger(__name__)

# What a control from the other side of a transfer does, by its action and our direction.
_PEER_STEPS: dict[tuple[str, bool], Step] = {
    ("decline", True): Step.DECLINE,
    ("cancel", True): Step.CANCEL,
    ("complete", True): Step.COMPLETE,
    ("cancel", False): Step.CANCEL,
    ("fail", False): Step.STOP,
}
STOPPED = "the sender stopped the transfer"  # a "fail" control without a reason


class Intake:
    """Records received offers, applies received controls, and revokes offers."""

    def __init__(self, store: TransferStore, *, nursery: Tasks, emit: Emit,
                 contacts: ContactBook, quotas: Quotas, downloads: Downloads,
                 auto_accept_limit: Callable[[], int],
                 auto_accept: Callable[[str], Awaitable[object]]) -> None:
        self.store = store
        self._nursery = nursery
        self._emit = emit
        self._contacts = contacts
        self._quotas = quotas
        self._downloads = downloads
        self._auto_accept_limit = auto_accept_limit
        self._auto_accept = auto_accept
        self.mailbox: MailboxSource | None = None  # where a direct offer's blob is noted

    # -- offers -------------------------------------------------------------------------------

    def offer_refusal(self, peer_id: str, body: str) -> Refusal | None:
        """Why a direct offer will not be kept (a limit); None to keep it.

        An offer that is malformed in another way is kept and ignored, as before: only limits
        are refused here, so that the sender learns why its offer went nowhere.
        """
        try:
            fc.parse_offer(body.encode("utf-8"))
        except fc.TooManyChunks as exc:
            return Refusal(dm.REJECT_TOO_LARGE, "file_offers",
                           f"{exc}: its list of chunk hashes would not fit")
        except fc.FileError:
            return None
        why = self._quotas.offer_refusal(peer_id, self.store.pending_offers(peer_id))
        return Refusal(dm.REJECT_QUOTA, "file_offers", why) if why is not None else None

    def direct_offer(self, peer_id: str, body: str, via: str = "direct") -> bool:
        """A file offer from a contact or a request (that came ``via`` a route: "direct",
        "relay" or "mailbox"); True if it is new and valid."""
        try:
            offer = fc.parse_offer(body.encode("utf-8"))
        except fc.FileError as exc:
            log.info("ignored a file message from %s: %s", peer_id, exc)
            return False
        return self._on_offer(peer_id, offer, None, via)

    def room_file(self, room_id: bytes, author: str, body: bytes) -> None:
        """A kind-3 post from another member: a file shared in the room."""
        try:
            offer = fc.parse_offer(body, fc.MAX_ROOM_FILE_BYTES)
        except fc.FileError as exc:
            log.info("ignored a room file post by %s: %s", author, exc)
            return
        self._on_offer(author, offer, room_id)

    def _on_offer(self, peer_id: str, offer: fc.FileOffer, room_id: bytes | None,
                  via: str = "direct") -> bool:
        if not self.store.add(offer, outgoing=False, peer_id=peer_id, room_id=room_id):
            log.info("ignored a repeated file offer %s from %s", offer.id_hex, peer_id)
            return False
        if room_id is None and offer.blob is not None and self.mailbox is not None:
            self.mailbox.offered(offer.transfer, offer.blob)
        self._emit(FileOffer(
            transfer=offer.id_hex, from_=peer_id, name_=offer.name, size=offer.size,
            hash=offer.hash.hex(), mime=offer.mime, room=room_id.hex() if room_id else None,
            via=via,
        ))
        if room_id is None and self._auto_accepts(peer_id, offer):
            self._nursery.start_soon(self._auto_accept, offer.id_hex)
        return True

    def _auto_accepts(self, peer_id: str, offer: fc.FileOffer) -> bool:
        """A direct offer from a contact whose safety number was verified, small enough."""
        limit = self._auto_accept_limit()
        if limit <= 0 or offer.size > limit:
            return False
        contact = self._contacts.info(peer_id)
        return contact is not None and contact.state is ContactState.CONTACT and contact.verified

    def offer_refused(self, message: MessageInfo, reason: str) -> None:
        """The recipient's Kith refused our offer (an older version, say)."""
        try:
            tid = fc.transfer_id_of(message.text.encode("utf-8"))
        except fc.FileError:
            return
        if self.store.move(tid, Step.FAIL, outgoing=True, reason=reason):
            self._emit(FileFailed(transfer=tid.hex(), reason=reason))

    def revoke_offers_to(self, peer_id: str) -> None:
        """``peer_id`` is no longer a contact: every file still offered to them is cancelled,
        so none of it can be fetched any more, even if they become a contact again."""
        for t in self.store.in_state(TransferState.OFFERED, outgoing=True):
            if t.room_id is None and t.peer_id == peer_id and self.store.move(
                    t.offer.transfer, Step.CANCEL, outgoing=True,
                    reason="the contact was removed"):
                log.info("revoked the offer of %s to %s", t.id_hex, peer_id)
                self._emit(FileCancelled(transfer=t.id_hex, by="me"))

    # -- controls -----------------------------------------------------------------------------

    def control(self, peer_id: str, body: str) -> None:
        """A file control from the other side of one of our direct transfers."""
        try:
            control = fc.parse_control(body.encode("utf-8"))
        except fc.FileError as exc:
            log.info("ignored a file message from %s: %s", peer_id, exc)
            return
        tid = control.transfer
        t = self.store.get(tid)
        if t is None or t.peer_id != peer_id or t.room_id is not None:
            log.info("ignored a file control for an unknown transfer from %s", peer_id)
            return
        step = _PEER_STEPS.get((control.action, t.outgoing))
        reason = (control.reason or STOPPED) if step is Step.STOP else None
        if step is None or not self.store.move(tid, step, outgoing=t.outgoing, reason=reason):
            return
        if step is Step.DECLINE:
            self._emit(FileDeclined(transfer=t.id_hex, by="peer"))
        elif step is Step.CANCEL and t.outgoing:
            self._emit(FileCancelled(transfer=t.id_hex, by="peer"))
        elif step is Step.CANCEL:
            self._nursery.start_soon(self._cancelled_by_peer, t)
        elif step is Step.COMPLETE:
            self._emit(FileProgress(transfer=t.id_hex, bytes=t.offer.size, size=t.offer.size))
            self._emit(FileComplete(transfer=t.id_hex, path=t.path or "",
                                    hash=t.offer.hash.hex()))
        elif step is Step.STOP:
            self._nursery.start_soon(self._downloads.stop, tid)
            self._emit(FileFailed(transfer=t.id_hex, reason=reason or STOPPED))

    async def _cancelled_by_peer(self, t: StoredTransfer) -> None:
        await self._downloads.stop(t.offer.transfer)
        await self._downloads.remove_part(t)
        if self.mailbox is not None:
            self.mailbox.release(t)
        self._emit(FileCancelled(transfer=t.id_hex, by="peer"))


# -- handlers by payload kind -----------------------------------------------------------------


class FileOffers:
    """Direct messages of kind 2: a file offer, shown in the conversation as a file card."""

    shown = True

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def refusal(self, peer_id: str, message: dm.DirectMessage) -> Refusal | None:
        return self._intake.offer_refusal(peer_id, message.text)

    def take(self, peer_id: str, message: dm.DirectMessage) -> bool:
        # A new, valid offer appears in the conversation after its transfer is recorded, so
        # that a view can look it up.
        return self._intake.direct_offer(peer_id, message.text, message.via)

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return as_file_message(message)

    def refused(self, message: MessageInfo, reason: str) -> None:
        self._intake.offer_refused(message, reason)


class FileControls:
    """Direct messages of kind 3: decline, cancel, complete or fail one transfer; never shown."""

    shown = False

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def refusal(self, peer_id: str, message: dm.DirectMessage) -> Refusal | None:
        return None

    def take(self, peer_id: str, message: dm.DirectMessage) -> bool:
        self._intake.control(peer_id, message.text)
        return False

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return None

    def refused(self, message: MessageInfo, reason: str) -> None:
        pass  # the local state changed anyway; the other side learns of it otherwise


class RoomFiles:
    """Room posts of kind 3: a file shared with the room, shown as a file card."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def take(self, room_id: bytes, post: RoomPost) -> None:
        self._intake.room_file(room_id, post.author, post.body)

    def present(self, body: bytes) -> tuple[str, str | None] | None:
        summary = offer_summary(body.decode("utf-8", "replace"))
        return None if summary is None else (summary[1], summary[0])
