"""Invite people to a room: send it to contacts, or share its link (Copy, or its QR code).

Sending it to contacts needs no link to be copied around: each chosen contact gets a direct
message with the link, which their Kith shows as "Join the room “…”" to click. The room link
carries the room's key: whoever holds it can join and read the whole history, and nobody can
take that back. So the warning is part of the dialog, not a tooltip, and the link is read-only
so it is copied whole.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
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
    """Shows one room's invite; ``set_room`` refreshes it (the link lists current addresses),
    ``set_contacts`` the contacts who may be sent it."""

    send_requested = Signal(list)  # the peer ids of the contacts checked, when Send is pressed

    def __init__(self, room: RoomInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(640)
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

        columns = QHBoxLayout()
        columns.setSpacing(16)
        columns.addLayout(self._contact_picker(), 1)
        code = QVBoxLayout()
        self.qr = QrCode("", self)
        self.qr.setFixedSize(QR_SIDE, QR_SIDE)
        code.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignHCenter)
        self.qr_hint = QLabel(self.tr("Or let them scan this code."),
                              self)
        self.qr_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.qr_hint.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        code.addWidget(self.qr_hint)
        code.addStretch(1)
        columns.addLayout(code)
        layout.addLayout(columns)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._room = room
        self._styling = False
        self._style()
        self.set_room(room)
        self.copy_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def _contact_picker(self) -> QVBoxLayout:
        column = QVBoxLayout()
        column.setSpacing(6)
        label = QLabel(self.tr("&Send it to contacts"), self)
        column.addWidget(label)
        self.contact_list = QListWidget(self)
        self.contact_list.setAccessibleName(self.tr("Contacts to invite"))
        self.contact_list.itemChanged.connect(lambda _: self._checked_changed())
        label.setBuddy(self.contact_list)
        column.addWidget(self.contact_list, 1)
        self.no_contacts = QLabel(self)
        self.no_contacts.setWordWrap(True)
        self.no_contacts.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        column.addWidget(self.no_contacts)
        row = QHBoxLayout()
        self.send_button = QPushButton(self.tr("Send &Invitation"), self)
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(self._send)
        row.addWidget(self.send_button)
        row.addStretch(1)
        column.addLayout(row)
        self.send_status = QLabel(self)
        self.send_status.setWordWrap(True)
        self.send_status.setTextFormat(Qt.TextFormat.PlainText)
        column.addWidget(self.send_status)
        self._sending = False
        self.set_contacts([])
        return column

    @property
    def room_id(self) -> str:
        return self._room.room_id

    def set_contacts(self, contacts: list[tuple[str, str]]) -> None:
        """(peer id, name) of the contacts who may be invited (not already members), in the
        order to list them; those already checked stay checked."""
        checked = set(self.checked())
        self.contact_list.blockSignals(True)
        self.contact_list.clear()
        for peer_id, name in contacts:
            item = QListWidgetItem(name, self.contact_list)
            item.setData(Qt.ItemDataRole.UserRole, peer_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if peer_id in checked
                               else Qt.CheckState.Unchecked)
        self.contact_list.blockSignals(False)
        self.contact_list.setVisible(bool(contacts))
        self.no_contacts.setVisible(not contacts)
        self.no_contacts.setText(self.tr(
            "Your contacts who are not in this room yet would be listed here. Anyone else can "
            "join with the link."))
        self._checked_changed()

    def invitees(self) -> list[str]:
        """The names listed, in order."""
        return [self.contact_list.item(i).text() for i in range(self.contact_list.count())]

    def checked(self) -> list[str]:
        items = (self.contact_list.item(i) for i in range(self.contact_list.count()))
        return [item.data(Qt.ItemDataRole.UserRole) for item in items
                if item.checkState() == Qt.CheckState.Checked]

    def check(self, peer_id: str, on: bool = True) -> None:
        for i in range(self.contact_list.count()):
            item = self.contact_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == peer_id:
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _checked_changed(self) -> None:
        self.send_button.setEnabled(bool(self.checked()) and not self._sending)

    def _send(self) -> None:
        chosen = self.checked()
        if not chosen or self._sending:
            return
        self._sending = True
        self._checked_changed()
        self.send_status.setText(self.tr("Sending…"))
        self.send_requested.emit(chosen)

    def sent(self, names: list[str]) -> None:
        """The invitations went into the outbox: say to whom, and uncheck them."""
        self._sending = False
        for i in range(self.contact_list.count()):
            self.contact_list.item(i).setCheckState(Qt.CheckState.Unchecked)
        shown = (names[0] if len(names) == 1
                 else self.tr("{first} and {last}").format(first=", ".join(names[:-1]),
                                                           last=names[-1]))
        self.send_status.setText(self.tr("Invitation sent to {names}.").format(names=shown))

    def send_failed(self, reason: str) -> None:
        self._sending = False
        self._checked_changed()
        self.send_status.setText(reason)

    def status(self) -> str:
        return self.send_status.text()

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
