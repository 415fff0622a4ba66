"""Who you are talking to: avatar, name, verified mark and presence, above the messages.

The whole header is one button (click, or Enter/Space when focused) that asks for the contact's
details (for a room: its member list), so there is a keyboard path and one large target instead
of a tiny "info" icon. A room adds two buttons on the right, driven by the window's actions so
their shortcuts and checked state are the same everywhere: members and invite people.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.records import ContactInfo, RoomInfo
from ui.identity.reachability import as_tooltip, route_text, route_tooltip
from ui.style import palette as pal
from ui.style.resources import tinted_pixmap
from ui.widgets.avatar import Avatar
from ui.widgets.elided_label import ElidedLabel


class ConversationHeader(QWidget):
    activated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(self.tr("Show contact details"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(20, 10, 20, 10)
        layout.setSpacing(12)
        self.avatar = Avatar("", 38, self)
        layout.addWidget(self.avatar)
        text = QVBoxLayout()
        text.setSpacing(1)
        line = QHBoxLayout()
        line.setSpacing(6)
        self.name_label = ElidedLabel(self)
        font = self.name_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.12)
        self.name_label.setFont(font)
        line.addWidget(self.name_label)
        self.verified_mark = QLabel(self)
        self.verified_mark.setToolTip(self.tr("Verified: you compared safety numbers"))
        self.verified_mark.setAccessibleName(self.tr("Verified"))
        line.addWidget(self.verified_mark)
        line.addStretch(1)
        text.addLayout(line)
        self.presence_label = ElidedLabel(self)
        text.addWidget(self.presence_label)
        layout.addLayout(text, 1)
        self.members_button = QToolButton(self)
        self.invite_button = QToolButton(self)
        for button in (self.members_button, self.invite_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setAutoRaise(True)
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            button.hide()
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignVCenter)
        self._contact: ContactInfo | None = None
        self._room: RoomInfo | None = None
        self._typing = ""  # "Ada is typing…", shown in place of the presence line
        # How we reach a peer now ("relay", "local", ...); the window points this at its routes.
        self.route_of: Callable[[str], str] = lambda _peer: ""
        self._tint()

    def set_room_actions(self, members: QAction, invite: QAction) -> None:
        """The window's "Members" and "Invite People…" actions, shown as buttons for rooms."""
        self.members_button.setDefaultAction(members)
        self.invite_button.setDefaultAction(invite)

    def set_room(self, room: RoomInfo) -> None:
        self._contact = None
        self._room = room
        self.avatar.set_name(room.name)
        self.name_label.set_full_text(room.name)
        self.verified_mark.setVisible(False)
        self.presence_label.set_full_text(self.room_text(room))
        self.setToolTip(room.description or self.tr("Show members"))
        self.setAccessibleName(self.tr("{name}, {members}. Show members").format(
            name=room.name, members=self.presence_label.full_text()))
        for button in (self.members_button, self.invite_button):
            button.setVisible(button.defaultAction() is not None)
        if self._typing:
            self.presence_label.set_full_text(self._typing)
        self._tint()

    def room_text(self, room: RoomInfo) -> str:
        """"3 members, 2 online"."""
        members = (self.tr("1 member") if room.members == 1
                   else self.tr("{count} members").format(count=room.members))
        return self.tr("{members}, {online} online").format(members=members, online=room.online)

    @property
    def room(self) -> RoomInfo | None:
        return self._room

    @property
    def contact(self) -> ContactInfo | None:
        return self._contact

    def refresh_route(self, peer_id: str) -> None:
        """The route to ``peer_id`` changed: say so if it is the contact shown."""
        if self._contact is not None and self._contact.peer_id == peer_id:
            self.set_contact(self._contact)

    def set_contact(self, contact: ContactInfo) -> None:
        self._contact = contact
        self._room = None
        self.members_button.hide()
        self.invite_button.hide()
        self.setToolTip(self.tr("Show contact details"))
        self.avatar.set_name(contact.name)
        self.name_label.set_full_text(contact.name)
        self.verified_mark.setVisible(contact.verified)
        text = self.presence_text(contact)
        route = self.route_of(contact.peer_id) if contact.online else ""
        if route_text(route):
            text = self.tr("{presence} · {route}").format(presence=text, route=route_text(route))
        self.presence_label.set_full_text(text)
        if contact.online and route_tooltip(route):
            self.presence_label.setToolTip(as_tooltip(route_tooltip(route)))
        self.setAccessibleName(self.tr("{name}, {presence}. Show details").format(
            name=contact.name, presence=self.presence_label.full_text()))
        if self._typing:
            self.presence_label.set_full_text(self._typing)
        self._tint()

    def set_typing(self, text: str) -> None:
        """"Ada is typing…" in place of the presence line; "" shows the presence again."""
        self._typing = text
        if self._contact is not None:
            self.set_contact(self._contact)
        elif self._room is not None:
            self.set_room(self._room)

    def presence_text(self, contact: ContactInfo, now: datetime | None = None) -> str:
        if contact.online:
            return self.tr("online")
        if contact.last_seen is None:
            return self.tr("offline")
        seen = datetime.fromtimestamp(contact.last_seen)
        now = now or datetime.now()
        days = (now.date() - seen.date()).days
        time = seen.strftime("%H:%M")
        if days <= 0:
            return self.tr("last seen today at {time}").format(time=time)
        if days == 1:
            return self.tr("last seen yesterday at {time}").format(time=time)
        return self.tr("last seen {date}").format(date=seen.strftime("%d %b %Y").lstrip("0"))

    def _tint(self) -> None:
        palette = self.palette()
        online = self._contact is not None and self._contact.online
        colour = pal.ONLINE if online else pal.muted_text(palette)
        labels = self.presence_label.palette()
        labels.setColor(QPalette.ColorRole.WindowText, colour)
        self.presence_label.setPalette(labels)
        ratio = self.devicePixelRatioF()
        self.verified_mark.setPixmap(tinted_pixmap("check", pal.ONLINE, 16, ratio))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._tint()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.activated.emit()
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self.update()
        super().focusOutEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.setPen(pal.hairline(palette))
        painter.drawLine(0, self.height() - 1, self.width(), self.height() - 1)
        if self.hasFocus():
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(pal.accent(palette))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(4, 4, -4, -5), 8, 8)

    def sizeHint(self) -> QSize:
        return QSize(400, super().sizeHint().height())
