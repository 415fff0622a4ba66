"""Invite people to a room: its link, a Copy button, the link's QR code and a plain warning.

The room link carries the room's key: whoever holds it can join and read the whole history, and
nobody can take that back. So the warning is part of the dialog, not a tooltip, and the link is
read-only so it is copied whole.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.records import RoomInfo
from ui.style import palette as pal
from ui.style.resources import tinted_icon, tinted_pixmap
from ui.style.theme import set_style_sheet
from ui.widgets.qr import QrCode

COPIED_FEEDBACK_MS = 1500
QR_SIDE = 220


class RoomInviteDialog(QDialog):
    """Shows one room's invite; ``set_room`` refreshes it (the link lists current addresses)."""

    def __init__(self, room: RoomInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(480)
        self._feedback = QTimer(self)
        self._feedback.setSingleShot(True)
        self._feedback.setInterval(COPIED_FEEDBACK_MS)
        self._feedback.timeout.connect(self._reset_copy_button)

        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)
        layout.addWidget(self.title)

        self.warning = QFrame(self)
        self.warning.setObjectName("inviteWarning")
        warning_row = QHBoxLayout(self.warning)
        warning_row.setContentsMargins(12, 10, 12, 10)
        warning_row.setSpacing(10)
        self.warning_icon = QLabel(self.warning)
        warning_row.addWidget(self.warning_icon, 0, Qt.AlignmentFlag.AlignTop)
        self.warning_label = QLabel(
            self.tr("Anyone who has this link can join the room and read its history. Share it "
                    "only with people you want in the room."), self.warning)
        self.warning_label.setWordWrap(True)
        warning_row.addWidget(self.warning_label, 1)
        layout.addWidget(self.warning)

        link_row = QHBoxLayout()
        link_row.setSpacing(6)
        self.link_edit = QLineEdit(self)
        self.link_edit.setReadOnly(True)
        self.link_edit.setAccessibleName(self.tr("Room link"))
        link_label = QLabel(self.tr("&Link"), self)
        link_label.setBuddy(self.link_edit)
        link_row.addWidget(link_label)
        link_row.addWidget(self.link_edit, 1)
        self.copy_button = QPushButton(self)
        self.copy_button.setObjectName("primary")
        self.copy_button.setAccessibleName(self.tr("Copy the room link"))
        self.copy_button.setDefault(True)
        self.copy_button.clicked.connect(self.copy_link)
        link_row.addWidget(self.copy_button)
        layout.addLayout(link_row)

        self.qr = QrCode("", self)
        self.qr.setFixedSize(QR_SIDE, QR_SIDE)
        layout.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignHCenter)
        self.qr_hint = QLabel(self.tr("Or let them scan this code."),
                              self)
        self.qr_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.qr_hint.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.qr_hint)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._room = room
        self._styling = False
        self._style()
        self.set_room(room)
        self.copy_button.setFocus(Qt.FocusReason.OtherFocusReason)

    @property
    def room_id(self) -> str:
        return self._room.room_id

    def set_room(self, room: RoomInfo) -> None:
        self._room = room
        self.setWindowTitle(self.tr("Invite People to {name}").format(name=room.name))
        self.title.setText(self.tr("Invite people to “{name}”").format(name=room.name))
        if self.link_edit.text() != room.invite:
            self.link_edit.setText(room.invite)
            self.link_edit.setCursorPosition(0)
            self.qr.set_payload(room.invite)
            self.qr.setAccessibleName(self.tr("QR code of the room link"))
        if not self._feedback.isActive():
            self._reset_copy_button()

    def link(self) -> str:
        return self.link_edit.text()

    def copy_link(self) -> None:
        QGuiApplication.clipboard().setText(self._room.invite)
        self.copy_button.setText(self.tr("Copied"))
        self.copy_button.setIcon(self._copied_icon)
        self._feedback.start()

    def _reset_copy_button(self) -> None:
        self.copy_button.setText(self.tr("&Copy"))
        self.copy_button.setIcon(self._copy_icon)

    def _style(self) -> None:
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.ButtonText)
        self._copy_icon = tinted_icon("copy", text)
        self._copied_icon = tinted_icon("check", text)
        self.warning_icon.setPixmap(tinted_pixmap("warning", pal.CONNECTING, 18,
                                                  self.devicePixelRatioF()))
        background = pal.mix(palette.color(QPalette.ColorRole.Base), pal.CONNECTING, 0.14)
        border = pal.mix(palette.color(QPalette.ColorRole.Base), pal.CONNECTING, 0.5)
        set_style_sheet(
            self.warning,
            f"QFrame#inviteWarning {{ background: {background.name()}; "
            f"border: 1px solid {border.name()}; border-radius: 8px; }}"
        )

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and not self._styling:
            self._styling = True  # a style sheet change can report a palette change: no loop
            try:
                self._style()
            finally:
                self._styling = False
            self.copy_button.setIcon(self._copied_icon if self._feedback.isActive()
                                     else self._copy_icon)
