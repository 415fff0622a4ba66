"""The centre of the window: who you talk to (a contact or a room), the messages, the composer.

It turns the client events it subscribes to into rows of a ``MessageListModel`` (a model and a
delegate, never a widget per message: docs/architecture.md, "The window") and calls the client
for pages of history, sends, retries and drafts. Client calls are coroutines run by the shared
``TaskRunner``; every result is checked against the conversation still being open
(``_generation``), because the user may have switched while it was on its way. Events that
arrive while the first page loads are applied after it, so nothing sent or delivered meanwhile
is lost or shown twice.

Contacts and rooms share one model, one list and one composer; what differs is small: a room
shows authors' names, pages by the room's shared order instead of a local sequence, and slots
posts that history sync brought late into their place (``MessageListModel.insert_sorted``).

Length: every part here reads and writes the same few facts about the open conversation (which
one, its generation, whether its first page is loading, what waits for it); split, they would be
passed around instead of kept in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.core.events import (
    ContactChanged,
    ContactOffline,
    ContactOnline,
    ContactRemoved,
    MessageDelivered,
    MessageDeposited,
    MessageFailed,
    MessageQueued,
    MessageReceived,
    MessageSent,
    RoomChanged,
    RoomLeft,
    RoomMembersChanged,
    RoomPostAdded,
    RoomPostConfirmed,
    RoomPostRemoved,
)
from app.core.records import (
    ContactInfo,
    Delivery,
    MessageInfo,
    RoomInfo,
    RoomPostInfo,
)
from ui.bridge import TaskRunner
from ui.conversation.chat_item import ChatItem
from ui.conversation.composer import Composer
from ui.conversation.file_offer import (
    as_file_item,
    is_file_control,
    is_file_post,
)
from ui.conversation.header import ConversationHeader
from ui.conversation.message_actions import MessageActionsUi
from ui.conversation.message_list import MessageListView
from ui.conversation.message_model import MessageListModel

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import EventBridge

PAGE_SIZE = 100
MIN_WIDTH = 360  # narrower, and bubbles of a few words a line stop being readable
REVEAL_MAX_PAGES = 200  # how far back a search hit is looked for: 20,000 messages
DRAFT_DELAY_MS = 700


class ConversationView(QWidget):
    """The centre of the window: a header, the message list and the composer."""

    read = Signal(str)               # the user has now seen this conversation's newest messages
    details_requested = Signal(str)  # the header was activated: show this peer's details
    members_requested = Signal(str)  # the header of a room was activated: show its members
    draft_saved = Signal(str, str)   # conversation key, its draft ("" when none is left)

    def __init__(self, runner: TaskRunner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner if runner is not None else TaskRunner(self)  # own one when alone
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self.setMinimumWidth(MIN_WIDTH)  # side panels take what is left, not the conversation
        self._client: KithClient | None = None
        self._contact: ContactInfo | None = None
        self._room: RoomInfo | None = None
        self._generation = 0
        self._loading_first = False
        self._loading_older = False
        self._exhausted = False
        self._pending: list[Callable[[], object]] = []  # events come while the first page loads
        self._unseen = False
        self._draft_key: str | None = None
        self._reveal: tuple[int, str, int] | None = None  # (generation, key, pages left)
        # One send at a time: the network runs each call as its own (randomly scheduled) trio
        # task, and posts typed in a row must get their numbers in the order they were typed.
        self._send_lock = asyncio.Lock()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = ConversationHeader(self)
        self.header.activated.connect(self._header_activated)
        self.header.hide()
        layout.addWidget(self.header)
        self._below_header = QVBoxLayout()  # the bar over a message request goes here
        self._below_header.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._below_header)
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
        self.message_actions = MessageActionsUi(self, self)  # reply, react, edit, delete...
        self.read.connect(self.message_actions.shown)
        layout.addWidget(self.message_actions.bar)
        layout.addLayout(composer_box)
        self.messages.delegate.extras.name_of = self.extras_name
        self.setFocusProxy(self.composer.edit)

        self._watched_window: QWidget | None = None
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self.save_draft)
        self._show_empty_state()

    # -- the contract with the window ---------------------------------------------------------

    def below_header(self) -> QVBoxLayout:
        """Where a bar about the open conversation sits: under its header, over its messages."""
        return self._below_header

    @property
    def client(self) -> KithClient | None:
        return self._client

    @property
    def current_peer(self) -> str | None:
        return self._contact.peer_id if self._contact is not None else None

    @property
    def contact(self) -> ContactInfo | None:
        return self._contact

    @property
    def current_room(self) -> str | None:
        return self._room.room_id if self._room is not None else None

    @property
    def room(self) -> RoomInfo | None:
        return self._room

    @property
    def conversation_key(self) -> str | None:
        """The open conversation's id: the peer id, or the room id (drafts are kept by it)."""
        if self._room is not None:
            return self._room.room_id
        return self.current_peer

    def set_client(self, client: KithClient | None) -> None:
        """The running client, or ``None`` when the network stopped (the composer disables)."""
        if client is self._client:
            return
        if client is None:
            self.save_draft()
        self._client = client
        self.messages.delegate.extras.me = client.peer_id if client is not None else ""
        self._update_composer()
        if client is not None and self._contact is not None:
            self.open_contact(self._contact)  # (re)load what the new client knows
        elif client is not None and self._room is not None:
            self.open_room(self._room)

    def open_contact(self, contact: ContactInfo) -> None:
        """Show ``contact``'s conversation: newest page at the bottom, their draft restored."""
        same = self._begin_open(contact.peer_id)
        self._contact, self._room = contact, None
        self.model.show_author = False
        self.model.peer_name = contact.name
        self.header.set_contact(contact)
        self._finish_open(contact.peer_id, same)

    def open_room(self, room: RoomInfo) -> None:
        """Show a room: newest page of posts at the bottom with authors' names, its draft."""
        same = self._begin_open(room.room_id)
        self._contact, self._room = None, room
        self.model.show_author = True
        self.header.set_room(room)
        self._finish_open(room.room_id, same)

    def _begin_open(self, key: str) -> bool:
        """Save the draft of the conversation being left; True if ``key`` is already open."""
        current = self.conversation_key
        if current is not None and current != key:
            self.save_draft()
        return current == key

    def _finish_open(self, key: str, same: bool) -> None:
        self._generation += 1
        self._pending = []
        self._exhausted = False
        self._loading_older = False
        self._unseen = True
        self.message_actions.conversation_changed()
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
        self.runner.run(self._load_first(generation, key), self.tr("Loading messages"))
        if not same:
            self.runner.run(self._load_draft(generation, key), self.tr("Loading the draft"))

    def update_room(self, room: RoomInfo) -> None:
        """New name or member counts for the open room (others are ignored)."""
        if self._room is None or room.room_id != self._room.room_id:
            return
        self._room = room
        self.header.set_room(room)
        self._update_composer()
        if self.model.rowCount() == 0:
            self._show_empty_state()

    def update_contact(self, contact: ContactInfo) -> None:
        """New name, presence or verification for the open conversation (others are ignored)."""
        if self._contact is None or contact.peer_id != self._contact.peer_id:
            return
        self._contact = contact
        self.model.peer_name = contact.name
        self.header.set_contact(contact)
        self._update_composer()
        if self.model.rowCount() == 0:
            self._show_empty_state()

    def close_conversation(self) -> None:
        """Back to the empty state; the draft is saved first."""
        self.save_draft()
        self._contact = None
        self._room = None
        self._generation += 1
        self._pending = []
        self._loading_first = self._loading_older = False
        self.message_actions.conversation_changed()
        self.header.hide()
        self.model.clear()
        self.composer.set_text("")
        self._update_composer()
        self._show_empty_state()

    def listen(self, events: EventBridge) -> None:
        """Subscribe to what a conversation shows; each handler ignores other conversations."""
        events.subscribe(ContactChanged, self._contact_changed)
        events.subscribe(ContactOnline, self._presence_changed)
        events.subscribe(ContactOffline, self._presence_changed)
        events.subscribe(ContactRemoved, self._contact_removed)
        events.subscribe(MessageQueued, self._message_queued)
        events.subscribe(MessageReceived, self._message_received)
        events.subscribe(MessageSent, self._message_sent)
        events.subscribe(MessageDelivered, self._message_delivered)
        events.subscribe(MessageDeposited, self._message_deposited)
        events.subscribe(MessageFailed, self._message_failed)
        events.subscribe(RoomChanged, self._room_changed)
        events.subscribe(RoomLeft, self._room_left)
        events.subscribe(RoomMembersChanged, self._members_changed)
        events.subscribe(RoomPostAdded, self._post_added)
        events.subscribe(RoomPostConfirmed, self._post_confirmed)
        events.subscribe(RoomPostRemoved, self._post_removed)
        self.message_actions.listen(events)

    # -- the open contact's events ------------------------------------------------------------

    def _contact_changed(self, event: ContactChanged) -> None:
        self.update_contact(event.contact)

    def _presence_changed(self, event: ContactOnline | ContactOffline) -> None:
        if self._contact is None or event.peer_id != self._contact.peer_id:
            return
        last_seen = event.last_seen if isinstance(event, ContactOffline) else None
        self.update_contact(dataclasses.replace(
            self._contact, online=isinstance(event, ContactOnline),
            last_seen=last_seen or self._contact.last_seen,
        ))

    def _contact_removed(self, event: ContactRemoved) -> None:
        if event.peer_id == self.current_peer:
            self.close_conversation()

    def _message_queued(self, event: MessageQueued) -> None:
        self._for_contact(event.message.peer_id, lambda: self._add(event.message))

    def _message_received(self, event: MessageReceived) -> None:
        def apply() -> None:
            if self._add(event.message):
                self._unseen = True
                self._maybe_read()

        self._for_contact(event.message.peer_id, apply)

    def _message_sent(self, event: MessageSent) -> None:
        self._for_contact(event.peer_id, lambda: self._sent(event.id))

    def _message_deposited(self, event: MessageDeposited) -> None:
        self._for_contact(event.peer_id, lambda: self.model.update_held(event.id, event.mailbox))

    def _message_delivered(self, event: MessageDelivered) -> None:
        self._for_contact(event.peer_id,
                          lambda: self.model.update_state(event.id, Delivery.DELIVERED))

    def _message_failed(self, event: MessageFailed) -> None:
        self._for_contact(event.peer_id,
                          lambda: self.model.update_state(event.id, Delivery.FAILED, event.reason))

    def _for_contact(self, peer_id: str, apply: Callable[[], object]) -> None:
        """Apply a message event if it is about the open contact."""
        if peer_id == self.current_peer:
            self._in_order(apply)

    # -- the open room's events ---------------------------------------------------------------

    def _room_changed(self, event: RoomChanged) -> None:
        self.update_room(event.room)

    def _room_left(self, event: RoomLeft) -> None:
        if event.room_id == self.current_room:
            self.close_conversation()

    def _members_changed(self, event: RoomMembersChanged) -> None:
        if event.room_id != self.current_room:
            return
        for member in event.members:  # a name learnt after the post arrived
            if not member.is_me and member.name:
                self.model.rename_author(member.peer_id, member.name)

    def _post_added(self, event: RoomPostAdded) -> None:
        def apply() -> None:
            if self._add_post(event.post) and not event.post.outgoing:
                self._unseen = True
                self._maybe_read()

        if event.post.room_id == self.current_room:
            self._in_order(apply)

    def _post_confirmed(self, event: RoomPostConfirmed) -> None:
        if event.room == self.current_room:
            self._in_order(lambda: self._sent(event.id))

    def _post_removed(self, event: RoomPostRemoved) -> None:
        """A post that lost an equivocation (docs/protocol.md 8.6) leaves the room."""
        if event.room == self.current_room:
            self._in_order(lambda: self.model.remove(event.id))

    # -- applying -----------------------------------------------------------------------------

    def _in_order(self, apply: Callable[[], object]) -> None:
        """Apply now, or after the first page if it is still loading (it may not have it)."""
        if self._loading_first:
            self._pending.append(apply)
        else:
            apply()

    def _sent(self, key: str) -> None:
        """A message or post left: "sending" becomes "sent" (a later state is kept)."""
        row = self.model.row_of(key)
        if row is not None and self.model.item(row).state is Delivery.SENDING:
            self.model.update_state(key, Delivery.SENT)

    # -- the empty state ----------------------------------------------------------------------

    def empty_text(self) -> str:
        return self.messages.empty_text()

    def empty_title(self) -> str:
        return self.messages.empty_title()

    def is_empty(self) -> bool:
        return self.messages.is_empty()

    def _item(self, info: MessageInfo) -> ChatItem:
        contact = self._contact
        me = self._client.peer_id if self._client is not None else ""
        my_name = self._client.display_name if self._client is not None else ""
        return as_file_item(ChatItem.from_message(
            info, me=me, my_name=my_name or self.tr("You"),
            their_name=contact.name if contact is not None else info.peer_id,
        ), info)

    def _add(self, info: MessageInfo) -> bool:
        if is_file_control(info):
            return False
        added = self.model.append(self._item(info))
        if added and info.outgoing:
            self.messages.scroll_to_bottom()  # your own message: always show it
        return added

    def _me(self) -> str:
        return self._client.peer_id if self._client is not None else ""

    def _add_post(self, info: RoomPostInfo) -> bool:
        if not info.text and not is_file_post(info):
            return False
        item = as_file_item(ChatItem.from_post(info, self._me()), info)
        if not item.text and not item.transfer:
            return False  # a notice this version cannot word
        added = self.model.insert_sorted(item)
        if added and info.outgoing:
            self.messages.scroll_to_bottom()
        return added

    # -- loading ------------------------------------------------------------------------------

    async def _page(self, key: str, before: object) -> list[ChatItem]:
        """One page of the open conversation, oldest first, as rows."""
        client = self._client
        assert client is not None
        if self._room is not None:
            cursor = before if isinstance(before, tuple) else None
            posts = await client.room_history(key, cursor, PAGE_SIZE)
            me = self._me()
            items = [as_file_item(ChatItem.from_post(p, me), p) for p in posts
                     if p.text or is_file_post(p)]
            return [i for i in items if i.text or i.transfer]
        seq = before if isinstance(before, int) else None
        return [self._item(info) for info in await client.history(key, seq, PAGE_SIZE)
                if not is_file_control(info)]

    def _is_last_page(self, page: list[ChatItem]) -> bool:
        # Room pages may come back short without being the last (file posts are left out).
        return not page if self._room is not None else len(page) < PAGE_SIZE

    async def _load_first(self, generation: int, key: str) -> None:
        try:
            page = await self._page(key, None)
        finally:
            if generation == self._generation:
                self._loading_first = False
        if generation != self._generation:
            return
        self.model.reset(page)
        self._exhausted = self._is_last_page(page)
        pending, self._pending = self._pending, []
        for apply in pending:
            apply()
        self._show_empty_state()
        self.messages.scroll_to_bottom()
        self._maybe_read()
        self._fill_viewport()
        self._continue_reveal()

    def _fill_viewport(self) -> None:
        """A short page that does not fill the window would never scroll to the top: load on."""
        self.messages.executeDelayedItemsLayout()
        bar = self.messages.verticalScrollBar()
        if bar.value() <= self.messages.viewport().height():
            self.load_older()

    def load_older(self) -> None:
        """Fetch the page before the oldest loaded message (the list asks near its top)."""
        key = self.conversation_key
        if (self._client is None or key is None or self._loading_first
                or self._loading_older or self._exhausted):
            return
        oldest = self.model.oldest_order if self._room is not None else self.model.oldest_seq
        if oldest is None:
            return
        self._loading_older = True
        self.runner.run(
            self._load_older(self._generation, key, oldest), self.tr("Loading older messages"),
        )

    async def _load_older(self, generation: int, key: str, before: object) -> None:
        try:
            page = await self._page(key, before)
        finally:
            if generation == self._generation:
                self._loading_older = False
        if generation != self._generation:
            return
        self._exhausted = self._is_last_page(page)
        with self.messages.keep_anchor():
            self.model.prepend_page(page)
        if not self._exhausted and self._reveal is None:
            self._fill_viewport()
        self._continue_reveal()

    def reveal(self, key: str, max_pages: int = REVEAL_MAX_PAGES) -> None:
        """Scroll to the message ``key`` of the open conversation and select it (a search hit),
        loading older pages until it is there: at most ``max_pages``, then it gives up."""
        self._reveal = (self._generation, key, max_pages)
        self._continue_reveal()

    def _continue_reveal(self) -> None:
        """One step of ``reveal``: show the row if loaded, else ask for the next older page
        (its arrival calls this again)."""
        if self._reveal is None:
            return
        generation, key, pages_left = self._reveal
        if generation != self._generation:
            self._reveal = None  # another conversation was opened meanwhile
            return
        if self.loading:
            return
        index = self.model.index_of(key)
        if index.isValid():
            self._reveal = None
            self.messages.executeDelayedItemsLayout()
            self.messages.setCurrentIndex(index)
            self.messages.scrollTo(index, self.messages.ScrollHint.PositionAtCenter)
            self.messages.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        if self._exhausted or pages_left <= 0:
            self._reveal = None
            return
        self._reveal = (generation, key, pages_left - 1)
        self.load_older()

    @property
    def revealing(self) -> bool:
        return self._reveal is not None

    @property
    def loading(self) -> bool:
        return self._loading_first or self._loading_older

    @property
    def history_complete(self) -> bool:
        """Every stored message of this conversation is loaded."""
        return self._exhausted

    # -- sending ------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        key = self.conversation_key
        if self._client is None or key is None:
            return
        edited, reply_to = self.message_actions.take_submit(text)
        if not edited:
            self.runner.run(self._send(self._generation, key, text, reply_to), self.tr("Sending"))

    async def _send(self, generation: int, key: str, text: str, reply_to: str | None = None
                    ) -> None:
        client = self._client
        assert client is not None
        room = self._room is not None
        try:
            info: MessageInfo | RoomPostInfo
            async with self._send_lock:
                info = (await client.post(key, text, reply_to) if room
                        else await client.send(key, text, reply_to))
        except Exception as exc:  # noqa: BLE001 - shown where the user typed, text kept
            if generation == self._generation:
                if not self.composer.text():
                    self.composer.set_text(text)
                message = str(exc) or type(exc).__name__
                self.composer.show_error(
                    self.tr("Not sent: {reason}").format(reason=message[:1].upper() + message[1:])
                )
            return
        if generation != self._generation:
            return
        # Usually already added by the event (MessageQueued, RoomPostAdded): repeats are ignored.
        if isinstance(info, RoomPostInfo):
            self._add_post(info)
        else:
            self._add(info)

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

    async def _load_draft(self, generation: int, key: str) -> None:
        client = self._client
        assert client is not None
        text = await client.draft(key)
        if generation == self._generation and not self.composer.text():
            self.composer.set_text(text)

    def _schedule_draft(self) -> None:
        self._draft_key = self.conversation_key
        self._draft_timer.start()

    def save_draft(self) -> None:
        """Write the composer's text as the draft of the conversation it was typed in."""
        self._draft_timer.stop()
        key, client = self._draft_key, self._client
        if key is None or client is None or key != self.conversation_key:
            return
        self._draft_key = None
        text = self.composer.text()
        self.runner.run(client.set_draft(key, text), self.tr("Saving the draft"))
        self.draft_saved.emit(key, text)

    # -- read marks ---------------------------------------------------------------------------

    def _maybe_read(self) -> None:
        """Emit ``read`` once the newest messages are really in front of the user."""
        peer = self.conversation_key
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

    def extras_name(self, peer_id: str) -> str:
        """A name for ``peer_id`` in the open conversation (who reacted, who is typing)."""
        if self._contact is not None and peer_id == self._contact.peer_id:
            return self._contact.name
        return next((i.author_name for i in self.model.items() if i.author_id == peer_id),
                    peer_id[:12])

    def _header_activated(self) -> None:
        if self._contact is not None:
            self.details_requested.emit(self._contact.peer_id)
        elif self._room is not None:
            self.members_requested.emit(self._room.room_id)

    def _update_composer(self) -> None:
        name = (self._contact.name if self._contact is not None
                else self._room.name if self._room is not None else None)
        self.composer.set_target(name if self._client is not None else None)

    def _show_empty_state(self) -> None:
        if self._room is not None and not self._loading_first:
            self.messages.set_empty_state(
                self.tr("No posts yet"),
                self.tr("This is the start of {room}. Everyone in the room reads what you write "
                        "here.").format(room=self._room.name),
            )
        elif self._contact is None and self._room is None:
            self.messages.set_empty_state(
                self.tr("No conversation open"),
                self.tr("Pick a contact or room on the left, or share your invite to start."),
            )
        elif self._loading_first:
            self.messages.set_empty_state("", "")
        elif self._contact is not None:
            self.messages.set_empty_state(
                self.tr("No messages yet"),
                self.tr("This is the start of your conversation with {name}. Say hello!").format(
                    name=self._contact.name
                ),
            )
