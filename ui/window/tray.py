"""The tray icon and desktop notifications: unread counts and new messages while you are away.

Whether to notify is decided here, apart from the tray itself: many desktops (and the tests'
offscreen platform) have no tray, and Kith must work the same without one. ``notify`` is the one
place a notification leaves: through the tray icon when there is one, else through the desktop's
notification service (``DesktopNotifications``, D-Bus). Muted conversations never notify; the
sound is a setting. ``notified`` lets anything (tests included) see that a notification left.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QIcon, QPainter
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from app.core.events import MessageReceived, RoomMessage
from app.core.markdown import plain
from ui.style import palette as pal
from ui.style.resources import app_icon
from ui.window.desktop_notifications import DesktopNotifications

PREVIEW_CHARS = 120
MESSAGE_MS = 6000


def badged_icon(total: int) -> QIcon:
    """The app icon with a red unread count in its corner (plain icon at zero)."""
    base = app_icon()
    if total <= 0 or base.isNull():
        return base
    pixmap = base.pixmap(64, 64)
    if pixmap.isNull():
        return base
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    badge = QRectF(28, 0, 36, 36)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(pal.ERROR)
    painter.drawEllipse(badge)
    font = QFont(painter.font())
    font.setBold(True)
    font.setPixelSize(22 if total < 10 else 17)
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, str(total) if total < 100 else "99+")
    painter.end()
    return QIcon(pixmap)


def preview(text: str) -> str:
    """One line of at most ``PREVIEW_CHARS``, without Markdown's markers."""
    flat = " ".join(plain(text).split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


class Tray(QObject):
    """Unread total in the tray, notifications for messages that arrive while you are away.

    ``open_requested(key)`` when a notification or the tray icon is clicked: the window comes
    forward and opens that conversation, a peer id or a room id (``""``: just come forward).
    """

    open_requested = Signal(str)
    notified = Signal(str, str, str)  # title, body, peer id or room id

    def __init__(self, window_active: Callable[[], bool], parent: QObject | None = None,
                 quit_action: QAction | None = None) -> None:
        super().__init__(parent)
        self.window_active = window_active
        self.enabled = True  # Settings ▸ Notifications; the unread badge stays either way
        self.sound = False   # Settings ▸ Notifications: a sound with each notification
        self.is_muted: Callable[[str], bool] = lambda _key: False  # the chat list knows
        self.unread = 0
        self._last_peer = ""
        self.desktop = DesktopNotifications(parent=self)  # when there is no tray
        self.desktop.activated.connect(self.open_requested)
        self.icon: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(app_icon(), self)
            self.icon.messageClicked.connect(self._message_clicked)
            self.icon.activated.connect(self._activated)
            menu = QMenu()
            show = menu.addAction(self.tr("&Show Kith"))
            show.triggered.connect(lambda: self.open_requested.emit(""))
            if quit_action is not None:
                menu.addSeparator()
                menu.addAction(quit_action)
            self._menu = menu
            self.icon.setContextMenu(menu)
            self.icon.show()
        self.set_unread(0)

    def tooltip(self) -> str:
        if self.unread == 0:
            return self.tr("Kith")
        if self.unread == 1:
            return self.tr("Kith — 1 unread message")
        return self.tr("Kith — {count} unread messages").format(count=self.unread)

    def set_unread(self, total: int) -> None:
        self.unread = max(0, total)
        if self.icon is not None:
            self.icon.setIcon(badged_icon(self.unread))
            self.icon.setToolTip(self.tooltip())

    @property
    def available(self) -> bool:
        """A tray icon shows (closing the window can then keep Kith running in it)."""
        return self.icon is not None

    def _quiet(self, key: str) -> bool:
        return self.window_active() or not self.enabled or self.is_muted(key)

    def message_received(self, event: MessageReceived, sender: str) -> bool:
        """Notify about ``event`` unless the window is in front, notifications are off or the
        conversation is muted."""
        if self._quiet(event.from_):
            return False
        if event.request:
            title = self.tr("Message request from {name}").format(name=sender)
        else:
            title = sender
        self.notify(title, preview(event.text), event.from_)
        return True

    def room_message(self, event: RoomMessage, author: str, room: str) -> bool:
        """Notify "<author> in <room>" unless the window is in front, notifications are off or
        the room is muted."""
        if self._quiet(event.room):
            return False
        title = self.tr("{author} in {room}").format(author=author, room=room)
        self.notify(title, preview(event.text), event.room)
        return True

    def notify(self, title: str, body: str, peer: str) -> None:
        self._last_peer = peer
        self.notified.emit(title, body, peer)
        if self.icon is not None and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, body, app_icon(), MESSAGE_MS)
            if self.sound:  # a tray message has no sound of its own
                QApplication.beep()
        elif not self.desktop.show(title, body, peer, self.sound) and self.sound:
            QApplication.beep()

    def _message_clicked(self) -> None:
        self.open_requested.emit(self._last_peer)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            peer = self._last_peer if self.unread else ""
            self.open_requested.emit(peer)

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
