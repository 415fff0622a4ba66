"""Reply, react, edit and delete in the conversation view; typing and read marks.

``MessageActionsUi`` is the conversation view's part for message actions: the context menu of a
bubble (Reply, React, Edit, Copy text, Delete for me, Delete for everyone, Copy link), the bar
over the composer while replying or editing (Esc cancels it; Up in an empty composer edits
your last message), the quote and reaction chips the delegate reports clicks on, the events
that change loaded rows (reactions, edits, deletions, read marks), "Ada is typing..." in the
header, our own typing signals, and the read receipt for what a focused window showed.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QWidget,
)

from app.core.events import (
    MessageDeleted,
    MessageEdited,
    MessageRead,
    ReactionChanged,
    TypingChanged,
)
from app.core.records import Delivery
from ui.conversation.chat_item import ChatItem
from ui.conversation.emoji_picker import EmojiPicker, RecentEmoji

if TYPE_CHECKING:
    from app.client import KithClient
    from app.core.records import ContactInfo, RoomInfo
    from ui.bridge import EventBridge, TaskRunner
    from ui.conversation.composer import Composer
    from ui.conversation.header import ConversationHeader
    from ui.conversation.message_list import MessageListView
    from ui.conversation.message_model import MessageListModel

TYPING_SEND_MS = 3000    # at most one typing signal per conversation this often
TYPING_SHOW_MS = 5000    # "is typing" shown this long after the last signal


class ActionBar(QFrame):
    """"Replying to Ada: …" or "Editing your message" over the composer, with a close button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("actionBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 4, 16, 0)
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label, 1)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip(self.tr("Cancel (Esc)"))
        self.close_button.setAccessibleName(self.tr("Cancel"))
        layout.addWidget(self.close_button)
        self.hide()

    def show_text(self, text: str) -> None:
        metrics = self.label.fontMetrics()
        self.label.setText(metrics.elidedText(text.replace("\n", " "),
                                              Qt.TextElideMode.ElideRight, 600))
        self.show()


class Conversation(Protocol):
    """What of the conversation view the message actions use (``ConversationView``)."""

    messages: MessageListView
    model: MessageListModel
    composer: Composer
    header: ConversationHeader
    runner: TaskRunner

    @property
    def client(self) -> KithClient | None: ...

    @property
    def conversation_key(self) -> str | None: ...

    @property
    def contact(self) -> ContactInfo | None: ...

    @property
    def room(self) -> RoomInfo | None: ...

    def reveal(self, key: str, max_pages: int = ...) -> None: ...

    def extras_name(self, peer_id: str) -> str: ...


class HoverBar(QFrame):
    """Reply, React and More beside the bubble under the mouse."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("hoverBar")
        self.setAutoFillBackground(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        self.buttons: dict[str, QToolButton] = {}
        for name, text, tip in (("reply", "↩", self.tr("Reply")), ("react", "🙂", self.tr("React")),
                                ("more", "⋯", self.tr("More"))):
            button = QToolButton(self)
            button.setText(text)
            button.setAutoRaise(True)
            button.setToolTip(tip)
            button.setAccessibleName(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the context menu is the key path
            layout.addWidget(button)
            self.buttons[name] = button
        self.item: ChatItem | None = None
        self.menu: QMenu | None = None  # the last menu a button opened
        self.hide()


class MessageActionsUi(QObject):
    """The conversation view's message actions (see the module docstring)."""

    def __init__(self, view: Conversation, parent: QWidget) -> None:
        super().__init__(parent)
        self.view = view
        self.widget = parent  # menus and dialogs open over it
        # Whether we may delete anyone's post in this room (an owner or admin of a governed
        # room): set by the window, which knows our roles.
        self.may_moderate: Callable[[str], bool] = lambda room_id: False
        self.reply_to: ChatItem | None = None
        self.editing: ChatItem | None = None
        self.recent = RecentEmoji()
        self.picker: EmojiPicker | None = None  # the last one opened
        self.bar = ActionBar(parent)
        self.bar.close_button.clicked.connect(self.cancel)
        self._typists: dict[str, QTimer] = {}  # peer id -> when their "typing" ends
        self._last_typing: dict[str, float] = {}
        view.messages.item_actions = self.add_actions
        delegate = view.messages.delegate
        delegate.quote_activated.connect(self.show_original)
        delegate.reaction_clicked.connect(self.toggle_reaction)
        # Compared by identity in eventFilter, which also runs while the view is torn down.
        self._edit, self._viewport = view.composer.edit, view.messages.viewport()
        self._edit.installEventFilter(self)
        view.composer.edited.connect(self._typed)
        self.hover = HoverBar(view.messages.viewport())
        self.hover.buttons["reply"].clicked.connect(lambda: self._hovered(self.start_reply))
        self.hover.buttons["react"].clicked.connect(lambda: self._hover_menu(react_only=True))
        self.hover.buttons["more"].clicked.connect(lambda: self._hover_menu(react_only=False))
        self._viewport.installEventFilter(self)

    def listen(self, events: EventBridge) -> None:
        events.subscribe(ReactionChanged, self._reaction)
        events.subscribe(MessageEdited, self._edited)
        events.subscribe(MessageDeleted, self._deleted)
        events.subscribe(MessageRead, self._read_mark)
        events.subscribe(TypingChanged, self._typing)

    # -- replying and editing ---------------------------------------------------------------

    def start_reply(self, item: ChatItem) -> None:
        self.editing, self.reply_to = None, item
        text = f"📎 {item.text}" if item.transfer else item.text
        self.bar.show_text(self.tr("Replying to {name}: {text}").format(
            name=item.author_name, text=text))
        self.view.composer.edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def start_edit(self, item: ChatItem) -> None:
        self.reply_to, self.editing = None, item
        self.bar.show_text(self.tr("Editing your message"))
        self.view.composer.set_text(item.text)
        self.view.composer.edit.moveCursor(self.view.composer.edit.textCursor().MoveOperation.End)
        self.view.composer.edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def cancel(self) -> None:
        """Esc: no reply, no edit (an edit's text leaves the composer)."""
        if self.editing is not None:
            self.view.composer.set_text("")
        self.reply_to = self.editing = None
        self.bar.hide()

    def conversation_changed(self) -> None:
        """Another conversation opened: nothing carries over."""
        self.reply_to = self.editing = None
        self.bar.hide()
        for timer in self._typists.values():
            timer.stop()
        self._typists.clear()
        self.view.header.set_typing("")

    def take_submit(self, text: str) -> tuple[bool, str | None]:
        """The composer submitted ``text``: (handled as an edit, else the id it replies to)."""
        editing, reply = self.editing, self.reply_to
        self.reply_to = self.editing = None
        self.bar.hide()
        if editing is not None:
            if text != editing.text:
                self._run(self._client().edit(editing.message_id, text), self.tr("Editing"))
            return True, None
        return False, reply.message_id if reply is not None else None

    def last_own_text(self) -> ChatItem | None:
        model = self.view.model
        for row in range(model.rowCount() - 1, -1, -1):
            item = model.item(row)
            if item.outgoing and not item.transfer:
                return item
        return None

    # -- hovering -----------------------------------------------------------------------------

    def _hover_at(self, pos: QPoint) -> None:
        """Put the hover bar beside the bubble under ``pos`` (or hide it)."""
        index = self.view.messages.indexAt(pos)
        rects = self.view.messages.delegate.painted_rects(index) if index.isValid() else None
        if rects is None or self.view.client is None:
            if not self.hover.geometry().contains(pos):
                self.hover.hide()
            return
        box = rects[0]
        item = self.view.model.item(index.row())
        self.hover.item = item
        self.hover.adjustSize()
        width = self.hover.width()
        x = box.left() - width - 6 if item.outgoing else box.right() + 6
        x = max(0, min(x, self.view.messages.viewport().width() - width))
        self.hover.move(x, max(0, box.top()))
        self.hover.show()
        self.hover.raise_()

    def _hovered(self, act: Callable[[ChatItem], None]) -> None:
        if self.hover.item is not None:
            act(self.hover.item)

    def _hover_menu(self, react_only: bool) -> None:
        item = self.hover.item
        if item is None:
            return
        menu = QMenu(self.widget)
        if react_only:
            for emoji in self.recent.row():
                menu.addAction(emoji, functools.partial(self.react, item, emoji))
            menu.addAction(self.tr("Other emoji…"), lambda: self.pick_emoji(item))
        else:
            self.add_actions(menu, item)
        button = self.hover.buttons["react" if react_only else "more"]
        menu.popup(button.mapToGlobal(QPoint(0, button.height())))
        self.hover.menu = menu

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._viewport:
            if event.type() == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
                self._hover_at(event.position().toPoint())
            elif event.type() == QEvent.Type.Leave:
                self.hover.hide()
            return False
        if watched is self._edit and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_Escape and (self.reply_to or self.editing):
                self.cancel()
                return True
            if (event.key() == Qt.Key.Key_Up and not self.view.composer.text()
                    and event.modifiers() == Qt.KeyboardModifier.NoModifier):
                last = self.last_own_text()
                if last is not None:
                    self.start_edit(last)
                    return True
        return super().eventFilter(watched, event)

    # -- the context menu ---------------------------------------------------------------------

    def add_actions(self, menu: QMenu, item: ChatItem) -> None:
        """The actions on one message, at the top of its context menu."""
        if self.view.client is None:
            return
        menu.addAction(self.tr("Reply"), lambda: self.start_reply(item))
        react = menu.addMenu(self.tr("React"))
        for emoji in self.recent.row():
            react.addAction(emoji, functools.partial(self.react, item, emoji))
        react.addAction(self.tr("Other emoji…"), lambda: self.pick_emoji(item))
        if item.outgoing and not item.transfer:
            menu.addAction(self.tr("Edit"), lambda: self.start_edit(item))
        menu.addAction(self.tr("Copy text"),
                       lambda: QGuiApplication.clipboard().setText(item.text))
        menu.addAction(self.tr("Delete for me"), lambda: self.delete(item, False))
        room = self.view.room
        if item.outgoing or (room is not None and self.may_moderate(room.room_id)):
            menu.addAction(self.tr("Delete for everyone"), lambda: self.delete(item, True))

    def pick_emoji(self, item: ChatItem) -> EmojiPicker:
        """The full picker (it does not block: the reaction goes when one is chosen)."""
        picker = EmojiPicker(self.widget)
        picker.chosen.connect(functools.partial(self.react, item))
        picker.open()
        self.picker = picker
        return picker

    # -- doing it -----------------------------------------------------------------------------

    def react(self, item: ChatItem, emoji: str) -> None:
        self.recent.used(emoji)
        me = self._client().peer_id
        mine = any(e == emoji and me in who for e, who in item.reactions)
        self._run(self._client().react(item.message_id, emoji, remove=mine), self.tr("Reacting"))

    def toggle_reaction(self, message_id: str, emoji: str) -> None:
        row = self.view.model.row_of_message(message_id)
        if row is not None and self.view.client is not None:
            self.react(self.view.model.item(row), emoji)

    def delete(self, item: ChatItem, for_everyone: bool) -> None:
        self._run(self._client().delete(item.message_id, for_everyone), self.tr("Deleting"))

    def show_original(self, message_id: str) -> None:
        """A quote was clicked: scroll to the original and select it (if it is known)."""
        row = self.view.model.row_of_message(message_id)
        self.view.reveal(self.view.model.item(row).key if row is not None else message_id)

    def _client(self) -> KithClient:
        client = self.view.client
        assert client is not None
        return client

    def _run(self, coro: Coroutine[Any, Any, object], what: str) -> None:
        async def shown() -> None:
            try:
                await coro
            except Exception as exc:  # noqa: BLE001 - shown where the user acted
                message = str(exc) or type(exc).__name__
                self.view.composer.show_error(message[:1].upper() + message[1:])

        self.view.runner.run(shown(), what)

    # -- events -------------------------------------------------------------------------------

    def _here(self, conversation: str) -> bool:
        return conversation == self.view.conversation_key

    def _reaction(self, event: ReactionChanged) -> None:
        if not self._here(event.conversation):
            return
        row = self.view.model.row_of_message(event.message_id)
        if row is None:
            return
        reactions = {e: list(who) for e, who in self.view.model.item(row).reactions}
        who = reactions.setdefault(event.emoji, [])
        if event.removed and event.by in who:
            who.remove(event.by)
        elif not event.removed and event.by not in who:
            who.append(event.by)
        self.view.model.change(event.message_id, reactions=tuple(
            (e, tuple(w)) for e, w in reactions.items() if w))

    def _edited(self, event: MessageEdited) -> None:
        if self._here(event.conversation):
            self.view.model.change(event.message_id, text=event.text, edited=True)

    def _deleted(self, event: MessageDeleted) -> None:
        if not self._here(event.conversation):
            return
        row = self.view.model.row_of_message(event.message_id)
        if row is not None:
            self.view.model.remove(self.view.model.item(row).key)

    def _read_mark(self, event: MessageRead) -> None:
        if self._here(event.conversation):
            self.view.model.update_state(event.message_id, Delivery.READ)

    # -- typing -------------------------------------------------------------------------------

    def _typing(self, event: TypingChanged) -> None:
        place = event.room if event.room is not None else event.by
        if not self._here(place):
            return
        timer = self._typists.get(event.by)
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(functools.partial(self._stopped, event.by))
            self._typists[event.by] = timer
        timer.start(TYPING_SHOW_MS)
        self._show_typists()

    def _stopped(self, by: str) -> None:
        self._typists.pop(by, None)
        self._show_typists()

    def _show_typists(self) -> None:
        names = [self.view.extras_name(peer) for peer in self._typists]
        if not names:
            text = ""
        elif len(names) == 1:
            text = self.tr("{name} is typing…").format(name=names[0])
        elif len(names) == 2:
            text = self.tr("{a} and {b} are typing…").format(a=names[0], b=names[1])
        else:
            text = self.tr("Several people are typing…")
        self.view.header.set_typing(text)

    def _typed(self) -> None:
        """The user typed: a typing signal, at most one per conversation every 3 s."""
        key, client = self.view.conversation_key, self.view.client
        if key is None or client is None or not self.view.composer.text():
            return
        moment = time.monotonic()
        if moment - self._last_typing.get(key, -1e9) < TYPING_SEND_MS / 1000:
            return
        self._last_typing[key] = moment
        if self.view.room is not None:
            self._run_quietly(client.typing(room=key))
        else:
            self._run_quietly(client.typing(to=key))

    def _run_quietly(self, coro: Coroutine[Any, Any, object]) -> None:
        async def quiet() -> None:
            with contextlib.suppress(Exception):  # a lost typing signal or receipt is nothing
                await coro

        self.view.runner.run(quiet(), self.tr("Typing"))

    # -- read receipts ------------------------------------------------------------------------

    def shown(self, conversation: str) -> None:
        """The newest messages were shown in a focused window: a receipt for the newest of
        theirs (direct conversations only; the node decides whether it goes)."""
        if self.view.contact is None or self.view.client is None:
            return
        model = self.view.model
        for row in range(model.rowCount() - 1, -1, -1):
            item = model.item(row)
            if not item.outgoing:
                self._run_quietly(self.view.client.mark_message_read(item.message_id))
                return
