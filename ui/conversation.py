"""The centre of the window: who you talk to, the messages, and the composer.

It turns client events into rows of a ``MessageListModel`` (a model and a delegate, never a widget
per message: design section 4) and calls the client for pages of history, sends, retries and
drafts. Client calls are coroutines run by the shared ``TaskRunner``; every result is checked
against the conversation still being open (``_generation``), because the user may have switched
while it was on its way. Events that arrive while the first page loads are replayed after it, so
nothing sent or delivered in that window is lost or shown twice.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.core.events import (
    ContactChanged,
    ContactOffline,
    ContactOnline,
    ContactRemoved,
    Event,
    MessageDelivered,
    MessageFailed,
    MessageQueued,
    MessageReceived,
    MessageSent,
)
from app.core.records import ContactInfo, Delivery, MessageInfo
from ui.bridge import TaskRunner
from ui.chat_item import ChatItem
from ui.composer import Composer
from ui.conversation_header import ConversationHeader
from ui.message_list import MessageListView
from ui.message_model import MessageListModel

if TYPE_CHECKING:
    from app.client import KithClient

PAGE_SIZE = 100
DRAFT_DELAY_MS = 700
_MESSAGE_EVENTS = (MessageQueued, MessageReceived, MessageSent, MessageDelivered, MessageFailed)


class ConversationView(QWidget):
    """The centre of the window: a header, the message list and the composer."""

    read = Signal(str)               # the user has now seen this conversation's newest messages
    details_requested = Signal(str)  # the header was activated: show this peer's details

    def __init__(
        self, runner: TaskRunner | QWidget | None = None, parent: QWidget | None = None
    ) -> None:
        # ``ConversationView(parent)`` is still accepted while the window moves to the new
        # signature; a private runner is made when none is given.
        if isinstance(runner, QWidget) and parent is None:
            runner, parent = None, runner
        super().__init__(parent)
        self.runner = runner if isinstance(runner, TaskRunner) else TaskRunner(self)
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self._client: KithClient | None = None
        self._contact: ContactInfo | None = None
        self._generation = 0
        self._loading_first = False
        self._loading_older = False
        self._exhausted = False
        self._pending: list[Event] = []   # events that arrived while the first page loaded
        self._unseen = False
        self._draft_peer: str | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = ConversationHeader(self)
        self.header.activated.connect(self._header_activated)
        self.header.hide()
        layout.addWidget(self.header)
        self.model = MessageListModel(self)
        self.messages = MessageListView(self)
        self.messages.setModel(self.model)
        self.messages.near_top.connect(self.load_older)
        self.messages.reached_bottom.connect(self._maybe_read)
        self.messages.retry_requested.connect(self.retry)
        layout.addWidget(self.messages, 1)
        self.composer = Composer(self)
        self.composer.submitted.connect(self.send)
        self.composer.edited.connect(self._schedule_draft)
        composer_box = QVBoxLayout()
        composer_box.setContentsMargins(16, 8, 16, 16)
        composer_box.addWidget(self.composer)
        layout.addLayout(composer_box)
        self.setFocusProxy(self.composer.edit)

        self._watched_window: QWidget | None = None
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self.save_draft)
        self._show_empty_state()

    # -- the contract with the window ---------------------------------------------------------

    @property
    def current_peer(self) -> str | None:
        return self._contact.peer_id if self._contact is not None else None

    @property
    def contact(self) -> ContactInfo | None:
        return self._contact

    def set_client(self, client: KithClient | None) -> None:
        """The running client, or ``None`` when the network stopped (the composer disables)."""
        if client is self._client:
            return
        if client is None:
            self.save_draft()
        self._client = client
        self._update_composer()
        if client is not None and self._contact is not None:
            self.open_contact(self._contact)  # (re)load what the new client knows

    def open_contact(self, contact: ContactInfo) -> None:
        """Show ``contact``'s conversation: newest page at the bottom, their draft restored."""
        if self._contact is not None and self._contact.peer_id != contact.peer_id:
            self.save_draft()
        same = self._contact is not None and self._contact.peer_id == contact.peer_id
        self._contact = contact
        self._generation += 1
        self._pending = []
        self._exhausted = False
        self._loading_older = False
        self._unseen = True
        self.header.set_contact(contact)
        self.header.show()
        if not same:
            self.composer.set_text("")
            self.composer.clear_error()
        self._update_composer()
        self._loading_first = self._client is not None
        self.model.clear()
        self._show_empty_state()
        self.composer.edit.setFocus(Qt.FocusReason.OtherFocusReason)
        if self._client is None:
            return
        generation = self._generation
        self.runner.run(self._load_first(generation, contact.peer_id), self.tr("Loading messages"))
        if not same:
            self.runner.run(self._load_draft(generation, contact.peer_id),
                            self.tr("Loading the draft"))

    def update_contact(self, contact: ContactInfo) -> None:
        """New name, presence or verification for the open conversation (others are ignored)."""
        if self._contact is None or contact.peer_id != self._contact.peer_id:
            return
        self._contact = contact
        self.header.set_contact(contact)
        self._update_composer()
        if self.model.rowCount() == 0:
            self._show_empty_state()

    def close_conversation(self) -> None:
        """Back to the empty state; the draft is saved first."""
        self.save_draft()
        self._contact = None
        self._generation += 1
        self._pending = []
        self._loading_first = self._loading_older = False
        self.header.hide()
        self.model.clear()
        self.composer.set_text("")
        self._update_composer()
        self._show_empty_state()

    def handle_event(self, event: Event) -> None:
        """Every client event comes here; only those about the open conversation matter."""
        peer = self.current_peer
        if isinstance(event, ContactChanged):
            self.update_contact(event.contact)
            return
        if peer is None:
            return
        if isinstance(event, ContactOnline | ContactOffline) and event.peer_id == peer:
            assert self._contact is not None
            last_seen = event.last_seen if isinstance(event, ContactOffline) else None
            self.update_contact(dataclasses.replace(
                self._contact, online=isinstance(event, ContactOnline),
                last_seen=last_seen or self._contact.last_seen,
            ))
            return
        if isinstance(event, ContactRemoved) and event.peer_id == peer:
            self.close_conversation()
            return
        if not isinstance(event, _MESSAGE_EVENTS):
            return
        if self._event_peer(event) != peer:
            return
        if self._loading_first:
            self._pending.append(event)
            return
        self._apply(event)

    # -- compatibility with the window's placeholder API --------------------------------------

    def set_empty_state(self, title: str, hint: str) -> None:
        self.messages.set_empty_state(title, hint)

    def empty_text(self) -> str:
        return self.messages.empty_text()

    def empty_title(self) -> str:
        return self.messages.empty_title()

    def is_empty(self) -> bool:
        return self.messages.is_empty()

    # -- events -------------------------------------------------------------------------------

    @staticmethod
    def _event_peer(event: Event) -> str | None:
        if isinstance(event, MessageQueued | MessageReceived):
            return event.message.peer_id
        if isinstance(event, MessageSent | MessageDelivered | MessageFailed):
            return event.peer_id
        return None

    def _apply(self, event: Event) -> None:
        if isinstance(event, MessageQueued):
            self._add(event.message)
        elif isinstance(event, MessageReceived):
            if self._add(event.message):
                self._unseen = True
                self._maybe_read()
        elif isinstance(event, MessageSent):
            row = self.model.row_of(event.id)
            if row is not None and self.model.item(row).state is Delivery.SENDING:
                self.model.update_state(event.id, Delivery.SENT)
        elif isinstance(event, MessageDelivered):
            self.model.update_state(event.id, Delivery.DELIVERED)
        elif isinstance(event, MessageFailed):
            self.model.update_state(event.id, Delivery.FAILED, event.reason)

    def _item(self, info: MessageInfo) -> ChatItem:
        contact = self._contact
        me = self._client.peer_id if self._client is not None else ""
        my_name = self._client.profile.settings.display_name if self._client is not None else ""
        return ChatItem.from_message(
            info, me=me, my_name=my_name or self.tr("You"),
            their_name=contact.name if contact is not None else info.peer_id,
        )

    def _add(self, info: MessageInfo) -> bool:
        added = self.model.append(self._item(info))
        if added and info.outgoing:
            self.messages.scroll_to_bottom()  # your own message: always show it
        return added

    # -- loading ------------------------------------------------------------------------------

    async def _load_first(self, generation: int, peer: str) -> None:
        client = self._client
        assert client is not None
        try:
            page = await client.history(peer, None, PAGE_SIZE)
        finally:
            if generation == self._generation:
                self._loading_first = False
        if generation != self._generation:
            return
        self.model.reset(self._item(info) for info in page)
        self._exhausted = len(page) < PAGE_SIZE
        pending, self._pending = self._pending, []
        for event in pending:
            self._apply(event)
        self._show_empty_state()
        self.messages.scroll_to_bottom()
        self._maybe_read()
        self._fill_viewport()

    def _fill_viewport(self) -> None:
        """A short page that does not fill the window would never scroll to the top: load on."""
        self.messages.executeDelayedItemsLayout()
        bar = self.messages.verticalScrollBar()
        if bar.value() <= self.messages.viewport().height():
            self.load_older()

    def load_older(self) -> None:
        """Fetch the page before the oldest loaded message (the list asks near its top)."""
        if (self._client is None or self._contact is None or self._loading_first
                or self._loading_older or self._exhausted):
            return
        oldest = self.model.oldest_seq
        if oldest is None:
            return
        self._loading_older = True
        self.runner.run(
            self._load_older(self._generation, self._contact.peer_id, oldest),
            self.tr("Loading older messages"),
        )

    async def _load_older(self, generation: int, peer: str, before: int) -> None:
        client = self._client
        assert client is not None
        try:
            page = await client.history(peer, before, PAGE_SIZE)
        finally:
            if generation == self._generation:
                self._loading_older = False
        if generation != self._generation:
            return
        self._exhausted = len(page) < PAGE_SIZE
        with self.messages.keep_anchor():
            self.model.prepend_page(self._item(info) for info in page)
        if not self._exhausted:
            self._fill_viewport()

    @property
    def loading(self) -> bool:
        return self._loading_first or self._loading_older

    @property
    def history_complete(self) -> bool:
        """Every stored message of this conversation is loaded."""
        return self._exhausted

    # -- sending ------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self._client is None or self._contact is None:
            return
        self.runner.run(self._send(self._generation, self._contact.peer_id, text),
                        self.tr("Sending"))

    async def _send(self, generation: int, peer: str, text: str) -> None:
        client = self._client
        assert client is not None
        try:
            info = await client.send(peer, text)
        except Exception as exc:  # noqa: BLE001 - shown where the user typed, text kept
            if generation == self._generation:
                if not self.composer.text():
                    self.composer.set_text(text)
                message = str(exc) or type(exc).__name__
                self.composer.show_error(
                    self.tr("Not sent: {reason}").format(reason=message[:1].upper() + message[1:])
                )
            return
        if generation == self._generation:
            self._add(info)  # usually already added by MessageQueued; append ignores repeats

    def retry(self, key: str) -> None:
        if self._client is None:
            return
        self.runner.run(self._retry(self._generation, key), self.tr("Retrying"))

    async def _retry(self, generation: int, key: str) -> None:
        client = self._client
        assert client is not None
        info = await client.retry(key)
        if generation == self._generation:
            # retry() publishes no event for going back to "sending"; the result says it.
            self.model.update_state(info.id, info.state, info.error)

    # -- drafts -------------------------------------------------------------------------------

    async def _load_draft(self, generation: int, peer: str) -> None:
        client = self._client
        assert client is not None
        text = await client.draft(peer)
        if generation == self._generation and not self.composer.text():
            self.composer.set_text(text)

    def _schedule_draft(self) -> None:
        self._draft_peer = self.current_peer
        self._draft_timer.start()

    def save_draft(self) -> None:
        """Write the composer's text as the draft of the conversation it was typed in."""
        self._draft_timer.stop()
        peer, client = self._draft_peer, self._client
        if peer is None or client is None or peer != self.current_peer:
            return
        self._draft_peer = None
        self.runner.run(client.set_draft(peer, self.composer.text()), self.tr("Saving the draft"))

    # -- read marks ---------------------------------------------------------------------------

    def _maybe_read(self) -> None:
        """Emit ``read`` once the newest messages are really in front of the user."""
        peer = self.current_peer
        if (peer is None or not self._unseen or self._loading_first
                or not self.isVisible() or not self.isActiveWindow()
                or not self.messages.is_at_bottom()):
            return
        self._unseen = False
        self.read.emit(peer)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # Activation is reported to the top-level window, not to this child: watch it there.
        window = self.window()
        if window is not self and window is not self._watched_window:
            window.installEventFilter(self)
            self._watched_window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._watched_window and event.type() in (
            QEvent.Type.WindowActivate, QEvent.Type.ActivationChange
        ):
            QTimer.singleShot(0, self._maybe_read)
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange:
            self._maybe_read()

    # -- small things -------------------------------------------------------------------------

    def _header_activated(self) -> None:
        if self._contact is not None:
            self.details_requested.emit(self._contact.peer_id)

    def _update_composer(self) -> None:
        if self._contact is None or self._client is None:
            self.composer.set_target(None)
        else:
            self.composer.set_target(self._contact.name)

    def _show_empty_state(self) -> None:
        if self._contact is None:
            self.messages.set_empty_state(
                self.tr("No conversation open"),
                self.tr("Pick a contact or room on the left, or share your invite to start."),
            )
        elif self._loading_first:
            self.messages.set_empty_state("", "")
        else:
            self.messages.set_empty_state(
                self.tr("No messages yet"),
                self.tr("This is the start of your conversation with {name}. Say hello!").format(
                    name=self._contact.name
                ),
            )
