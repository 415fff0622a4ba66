"""Read receipts in direct messages (docs/protocol.md 11.4): kind 20, "shown up to here".

The window marks a message read when it was shown in a focused window; then a receipt naming
the newest such message goes to its sender, if they announced ``receipts/1`` and our setting
allows. A receipt moves our messages up to the one it names from delivered to read. The
setting is reciprocal: with it off none are sent and the ones received are ignored. Rooms have
no receipts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.core import actions as ac
from app.core.dm import REJECT_QUOTA, DirectMessage
from app.core.events import MessageRead
from app.core.records import ContactState, MessageInfo
from app.node.interfaces import ContactBook, Emit, Outbox, Refusal
from app.store.actions import ActionStore

log = logging.getLogger(__name__)


class ReadReceipts:
    """Kind 20 (``interfaces.DmKindHandler``), and sending receipts for what we read."""

    shown = False

    def __init__(self, store: ActionStore, *, emit: Emit, contacts: ContactBook,
                 outbox: Outbox, enabled: Callable[[], bool]) -> None:
        self._store = store
        self._emit = emit
        self._contacts = contacts
        self._outbox = outbox
        self._enabled = enabled
        self._last_sent: dict[str, str] = {}  # peer -> the newest id a receipt named

    # -- what we read -------------------------------------------------------------------------

    def mark_read(self, message_id: str) -> bool:
        """A message from a contact was shown: tell them (True if a receipt was queued)."""
        found = self._store.find_dm(message_id.lower())
        if found is None or found.peer_id is None or found.outgoing:
            raise ValueError(f"there is no message {message_id} from a contact")
        peer_id = found.peer_id
        features = self._store.features(peer_id) or frozenset()
        if (not self._enabled() or ac.FEATURE_RECEIPTS not in features
                or self._contacts.state(peer_id) is not ContactState.CONTACT
                or self._last_sent.get(peer_id) == found.id):
            return False
        self._last_sent[peer_id] = found.id
        self._outbox.queue(peer_id, ac.KIND_READ,
                           ac.encode_action(ac.Action(ac.KIND_READ, found.id)))
        return True

    # -- receipts from others -----------------------------------------------------------------

    def refusal(self, peer_id: str, message: DirectMessage) -> Refusal | None:
        if self._contacts.state(peer_id) is ContactState.CONTACT:
            return None
        return Refusal(REJECT_QUOTA, "request_quota", "read receipts are taken from contacts only")

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        try:
            action = ac.decode_action(message.kind, message.text)
        except ac.ActionError as exc:
            log.info("ignored a malformed read receipt from %s: %s", peer_id, exc)
            return False
        if not self._enabled():
            return False
        for read in self._store.mark_read_up_to(peer_id, action.target):
            self._emit(MessageRead(conversation=peer_id, message_id=read, by=peer_id))
        return False

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return None

    def refused(self, message: MessageInfo, reason: str) -> None:
        log.info("read receipt %s to %s refused: %s", message.id, message.peer_id, reason)
