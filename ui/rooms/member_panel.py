"""Who is in the open room: a panel on the right, with presence and "you".

Members come from ``client.room_members`` and ``RoomMembersChanged``; the panel only shows them
and says which one the user activated (click, Enter, or the context menu: ``member_activated``),
so the window decides what to offer (add as a contact, or open the conversation). Presence is a
dot and a word in the tooltip and accessible text, never colour alone.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QContextMenuEvent,
    QIcon,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.records import RoomMember
from ui.style import palette as pal
from ui.style.resources import tinted_icon
from ui.widgets.avatar import paint_avatar

PANEL_WIDTH = 240
AVATAR = 28
PEER_ROLE = Qt.ItemDataRole.UserRole + 1
ROLE_WORDS = {"owner": "owner", "admin": "admin", "observer": "reads only"}


class _MemberList(QListWidget):
    """The list; Enter, the Menu key and Shift+F10 activate the current member too."""

    menu_requested = Signal(str, QPoint)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        shift_f10 = (event.key() == Qt.Key.Key_F10
                     and event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Menu) or shift_f10:
            item = self.currentItem()
            if item is not None:
                centre = self.visualItemRect(item).center()
                self.menu_requested.emit(str(item.data(PEER_ROLE)),
                                         self.viewport().mapToGlobal(centre))
                event.accept()
                return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        item = self.itemAt(event.pos())
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            item = self.currentItem()
        if item is not None:
            self.setCurrentItem(item)
            where = (self.viewport().mapToGlobal(self.visualItemRect(item).center())
                     if event.reason() == QContextMenuEvent.Reason.Keyboard else event.globalPos())
            self.menu_requested.emit(str(item.data(PEER_ROLE)), where)


class MemberPanel(QFrame):
    """``member_activated(room id, peer id, where)``; ``close_requested`` from its × button."""

    member_activated = Signal(str, str, QPoint)
    close_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("memberPanel")
        self.setFixedWidth(PANEL_WIDTH)
        self._room_id: str | None = None
        self._members: list[RoomMember] = []
        self.is_contact: Callable[[str], bool] = lambda _peer: False  # the window knows
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 8, 12)
        layout.setSpacing(8)
        top = QHBoxLayout()
        self.title = QLabel(self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        top.addWidget(self.title, 1)
        self.close_button = QToolButton(self)
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip(self.tr("Hide members (Ctrl+Shift+M)"))
        self.close_button.setAccessibleName(self.tr("Hide members"))
        self.close_button.clicked.connect(self.close_requested)
        top.addWidget(self.close_button)
        layout.addLayout(top)
        self.list = _MemberList(self)
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setIconSize(QSize(AVATAR, AVATAR))
        self.list.setSpacing(2)
        self.list.setAccessibleName(self.tr("Room members"))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.viewport().setAutoFillBackground(False)  # the panel paints its shade
        self.list.itemClicked.connect(self._clicked)
        self.list.menu_requested.connect(self._menu)
        layout.addWidget(self.list, 1)
        self.hint = QLabel(self)
        self.hint.setWordWrap(True)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.hint)
        self.setFocusProxy(self.list)
        self._style()
        self._fill()

    @property
    def room_id(self) -> str | None:
        return self._room_id

    def set_members(self, room_id: str, members: list[RoomMember] | tuple[RoomMember, ...]
                    ) -> None:
        """The members of ``room_id``: you first, then online people, then by name."""
        self._room_id = room_id
        self._members = sorted(members, key=lambda m: (not m.is_me, not m.online,
                                                       m.name.casefold(), m.peer_id))
        self._fill()

    def clear(self) -> None:
        self._room_id = None
        self._members = []
        self._fill()

    def names(self) -> list[str]:
        """The shown rows' text, in order (what tests and screen readers see)."""
        return [self.list.item(row).text() for row in range(self.list.count())]

    def members(self) -> list[RoomMember]:
        return list(self._members)

    def member(self, peer_id: str) -> RoomMember | None:
        return next((m for m in self._members if m.peer_id == peer_id), None)

    def refresh(self) -> None:
        """Someone became (or stopped being) a contact: rows and the hint say so."""
        self._fill()

    def hint_text(self) -> str:
        """What selecting someone does: add a stranger, or open a contact's conversation."""
        others = [m for m in self._members if not m.is_me]
        strangers = [m for m in others if not self.is_contact(m.peer_id)]
        if not others:
            return ""
        if not strangers:
            return self.tr("Select someone to write to them.")
        if len(strangers) < len(others):
            return self.tr("Select someone to write to them, or to add them as a contact.")
        return self.tr("Select someone to add them as a contact.")

    def _fill(self) -> None:
        hint = self.hint_text()
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        current = self.list.currentItem()
        keep = current.data(PEER_ROLE) if current is not None else None
        self.list.clear()
        online = sum(1 for m in self._members if m.online)
        self.title.setText(self.tr("Members — {count}").format(count=len(self._members))
                           if self._members else self.tr("Members"))
        self.title.setToolTip(self.tr("{online} of {count} online").format(
            online=online, count=len(self._members)))
        for member in self._members:
            text = (self.tr("{name} (you)").format(name=member.name) if member.is_me
                    else member.name)
            if member.role in ROLE_WORDS:  # a governed room: say who runs it
                text = f"{text} · {self.tr(ROLE_WORDS[member.role])}"
            item = QListWidgetItem(self._icon(member), text)
            item.setData(PEER_ROLE, member.peer_id)
            presence = self.tr("online") if member.online else self.tr("offline")
            if member.is_me:
                item.setToolTip(presence.capitalize())
            elif self.is_contact(member.peer_id):
                item.setToolTip(self.tr("{presence}. Select to write to them.").format(
                    presence=presence.capitalize()))
            else:
                item.setToolTip(self.tr("{presence}. Select to add them as a contact.").format(
                    presence=presence.capitalize()))
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{text}, {presence}")
            item.setSizeHint(QSize(PANEL_WIDTH - 24, AVATAR + 8))
            self.list.addItem(item)
            if member.peer_id == keep:
                self.list.setCurrentItem(item)

    def _icon(self, member: RoomMember) -> QIcon:
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(int(AVATAR * ratio), int(AVATAR * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        avatar = QRectF(0, 0, AVATAR, AVATAR)
        paint_avatar(painter, avatar, member.name)
        dot = QRectF(avatar.right() - 10, avatar.bottom() - 10, 10, 10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.palette().color(QPalette.ColorRole.Window))
        painter.drawEllipse(dot.adjusted(-2, -2, 2, 2))
        painter.setBrush(pal.ONLINE if member.online else pal.muted_text(self.palette()))
        painter.drawEllipse(dot)
        painter.end()
        return QIcon(pixmap)

    def _clicked(self, item: QListWidgetItem) -> None:
        where = self.list.viewport().mapToGlobal(self.list.visualItemRect(item).center())
        self._menu(str(item.data(PEER_ROLE)), where)

    def _menu(self, peer_id: str, where: QPoint) -> None:
        member = self.member(peer_id)
        if member is None or member.is_me or self._room_id is None:
            return
        self.member_activated.emit(self._room_id, peer_id, where)

    def _style(self) -> None:
        palette = self.palette()
        self.close_button.setIcon(tinted_icon("close", palette.color(
            QPalette.ColorRole.WindowText)))

    def paintEvent(self, event: QPaintEvent) -> None:
        """The sidebar's shade with a hairline on the left, in light and dark alike."""
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), pal.sidebar_background(palette))
        painter.setPen(pal.hairline(palette))
        painter.drawLine(0, 0, 0, self.height())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._style()
            self._fill()
