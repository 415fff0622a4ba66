"""The chat list as a whole: this device's choices per conversation and moving between them.

Pin, mute and mark unread come from a room's or a contact's context menu and are kept by the
node (``client.set_chat_prefs``; ``ChatPrefsChanged`` tells the list). A muted conversation
never notifies; one marked unread shows a dot until it is opened again. Unsent drafts are
marked in the list as they are saved, and "typing…" replaces an entry's preview for a few
seconds after a typing signal. Ctrl+Tab / Ctrl+Shift+Tab and Alt+Down / Alt+Up open
the next and previous conversation in the list's order; at start the conversation that was
open when Kith closed opens again.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence

from app.core.events import ChatPrefsChanged, TypingChanged
from ui.conversation.message_actions import TYPING_SHOW_MS
from ui.sidebar.actions import ChatAction

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.bridge import EventBridge
    from ui.window.frame import WindowFrame


class WindowChats(QObject):
    """Pin, mute, mark unread, drafts in the list, next and previous chat."""

    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self._typing_timers: dict[str, QTimer] = {}
        model = window.sidebar.model
        window.sidebar.chat_action.connect(self.chat_action)
        window.conversation.draft_saved.connect(model.set_draft)
        window.conversation_changed.connect(self._opened)
        window.tray.is_muted = lambda key: model.prefs(key).muted

        self.next_action = QAction(self.tr("&Next Chat"), window)
        self.next_action.setShortcuts([QKeySequence("Ctrl+Tab"), QKeySequence("Alt+Down")])
        self.next_action.triggered.connect(lambda: self.step(1))
        self.previous_action = QAction(self.tr("&Previous Chat"), window)
        self.previous_action.setShortcuts([QKeySequence("Ctrl+Shift+Tab"),
                                           QKeySequence("Alt+Up")])
        self.previous_action.triggered.connect(lambda: self.step(-1))
        for action in (self.next_action, self.previous_action):
            window.addAction(action)  # the shortcuts work wherever the focus is

    # -- the client and its events ----------------------------------------------------------

    async def load(self, client: KithClient) -> None:
        model = self.window.sidebar.model
        model.load_prefs(await client.chat_prefs())
        model.load_drafts(await client.drafts())

    def listen(self, events: EventBridge) -> None:
        events.subscribe(ChatPrefsChanged, self._prefs_changed)
        events.subscribe(TypingChanged, self._typing)

    def _typing(self, event: TypingChanged) -> None:
        """"typing…" in the list entry for a few seconds after each signal."""
        key = event.room if event.room is not None else event.by
        timer = self._typing_timers.get(key)
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.setInterval(TYPING_SHOW_MS)
            timer.timeout.connect(functools.partial(self._typing_over, key))
            self._typing_timers[key] = timer
        timer.start()
        self.window.sidebar.model.set_typing(key, self.tr("typing…"))

    def _typing_over(self, key: str) -> None:
        self._typing_timers.pop(key, None)
        self.window.sidebar.model.set_typing(key, "")

    def _prefs_changed(self, event: ChatPrefsChanged) -> None:
        self.window.sidebar.model.set_prefs(event.prefs)

    # -- choices ------------------------------------------------------------------------------

    def chat_action(self, action: str, key: str) -> None:
        """From the context menu of a room or a contact."""
        what = ChatAction(action)
        if what is ChatAction.MARK_READ:
            self.window.mark_read(key)
            if self.window.sidebar.model.prefs(key).marked_unread:
                self._set(key, self.tr("Marking as read"), marked_unread=False)
            return
        changes = {
            ChatAction.PIN: {"pinned": True}, ChatAction.UNPIN: {"pinned": False},
            ChatAction.MUTE: {"muted": True}, ChatAction.UNMUTE: {"muted": False},
            ChatAction.MARK_UNREAD: {"marked_unread": True},
        }[what]
        words = {
            ChatAction.PIN: self.tr("Pinning"), ChatAction.UNPIN: self.tr("Unpinning"),
            ChatAction.MUTE: self.tr("Muting"), ChatAction.UNMUTE: self.tr("Unmuting"),
            ChatAction.MARK_UNREAD: self.tr("Marking as unread"),
        }
        self._set(key, words[what], **changes)

    def _set(self, key: str, what: str, **changes: bool) -> None:
        self.window.call_client(
            what, lambda client: client.set_chat_prefs(key, **changes))

    def _opened(self) -> None:
        """Opening a conversation marked unread reads it: the mark goes."""
        key = self.window.conversation.conversation_key
        if key is not None and self.window.sidebar.model.prefs(key).marked_unread:
            self._set(key, self.tr("Marking as read"), marked_unread=False)

    # -- moving between conversations ---------------------------------------------------------

    def step(self, by: int) -> bool:
        """Open the conversation ``by`` places down the list (up when negative), round the
        end; False when the list is empty."""
        keys = self.window.sidebar.visible_keys()
        if not keys:
            return False
        current = self.window.conversation.conversation_key
        at = keys.index(current) if current in keys else (-1 if by > 0 else 0)
        return self.open(keys[(at + by) % len(keys)])

    def open(self, key: str) -> bool:
        """Open a room or a contact by key; False if the list does not have it."""
        return self.window.open_room(key) or self.window.open_peer(key)
