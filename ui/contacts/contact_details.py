"""One contact's page: their name, who they are on the network, and proof that it is them.

An invite link can be swapped on its way to you; the safety number cannot be faked without the
other person's key. Reading it aloud or scanning its QR code is how two people make sure the
end-to-end encryption ends at the right person, so the number sits in the middle of the page.
The dialog only asks; the window does the work through ``action_requested``.
"""

from __future__ import annotations

from PySide6.QtCore import QDateTime, QLocale, Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.events import ContactMailbox
from app.core.fingerprint import format_digits, own_half_first, qr_payload, safety_number
from app.core.identity import public_key_from_peer_id
from app.core.records import ContactInfo
from ui.identity.reachability import as_tooltip, route_text, route_tooltip
from ui.sidebar.actions import ContactAction
from ui.widgets.qr import QrCode


class ContactDetailsDialog(QDialog):
    """``rename_requested(peer, name)``, ``verified_toggled(peer, on)`` and
    ``action_requested(action, peer)`` (block, remove) for the window to carry out."""

    rename_requested = Signal(str, str)
    verified_toggled = Signal(str, bool)
    action_requested = Signal(str, str)
    use_mailbox_requested = Signal(str)

    def __init__(self, own_peer_id: str, contact: ContactInfo,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(440)
        self._contact = contact
        mine = public_key_from_peer_id(own_peer_id)
        theirs = public_key_from_peer_id(contact.peer_id)
        self._digits = safety_number(mine, theirs)
        self._mine_first = own_half_first(mine, theirs)

        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.name_edit = QLineEdit(self)
        self.name_edit.setAccessibleName(self.tr("Name"))
        self.name_edit.returnPressed.connect(self._rename)
        self.rename_button = QPushButton(self.tr("&Rename"), self)
        self.rename_button.setAutoDefault(False)
        self.rename_button.clicked.connect(self._rename)
        name_row = QHBoxLayout()
        name_row.addWidget(self.name_edit, 1)
        name_row.addWidget(self.rename_button)
        name_label = QLabel(self.tr("&Name"), self)
        name_label.setBuddy(self.name_edit)
        form.addRow(name_label, name_row)

        self.peer_id_label = QLabel(contact.peer_id, self)
        self.peer_id_label.setWordWrap(True)
        self.peer_id_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.peer_id_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.peer_id_label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.peer_id_label.setAccessibleName(self.tr("Peer id"))
        form.addRow(self.tr("Peer id"), self.peer_id_label)
        self.presence_label = QLabel(self)
        form.addRow(self.tr("Status"), self.presence_label)
        self.route_label = QLabel(self)
        self.route_label.setObjectName("route")
        self._route = ""
        form.addRow(self.tr("Connection"), self.route_label)
        self.mailbox_label = QLabel(self.tr("Not known yet"), self)
        self.mailbox_label.setWordWrap(True)
        self.mailbox_button = QPushButton(self.tr("&Use as My Mailbox"), self)
        self.mailbox_button.setAutoDefault(False)
        self.mailbox_button.setToolTip(self.tr(
            "They keep your messages while you are offline. They see who writes to you, when "
            "and how much, never what."))
        self.mailbox_button.hide()
        self.mailbox_button.clicked.connect(
            lambda: self.use_mailbox_requested.emit(self._contact.peer_id))
        mailbox_row = QHBoxLayout()
        mailbox_row.addWidget(self.mailbox_label, 1)
        mailbox_row.addWidget(self.mailbox_button)
        form.addRow(self.tr("Mailbox"), mailbox_row)
        layout.addLayout(form)

        title = QLabel(self.tr("Safety number"), self)
        bold = QFont(title.font())
        bold.setBold(True)
        title.setFont(bold)
        layout.addWidget(title)
        self.explanation = QLabel(self)
        self.explanation.setWordWrap(True)
        layout.addWidget(self.explanation)
        numbers = QHBoxLayout()
        numbers.setSpacing(16)
        self.safety_label = QLabel(format_digits(self._digits), self)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(mono.pointSizeF() * 1.2)
        self.safety_label.setFont(mono)
        self.safety_label.setTextFormat(Qt.TextFormat.PlainText)
        self.safety_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.safety_label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.safety_label.setAccessibleName(self.tr("Safety number"))
        numbers.addWidget(self.safety_label, 1, Qt.AlignmentFlag.AlignVCenter)
        self.qr = QrCode(qr_payload(mine, theirs), self)
        self.qr.setFixedSize(self.qr.sizeHint())
        numbers.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(numbers)

        self.verified_box = QCheckBox(self.tr("&Mark as verified"), self)
        self.verified_box.setToolTip(
            self.tr("Only after comparing the safety number with them.")
        )
        self.verified_box.toggled.connect(
            lambda on: self.verified_toggled.emit(self._contact.peer_id, on)
        )
        layout.addWidget(self.verified_box)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.block_button = self.buttons.addButton(
            self.tr("&Block"), QDialogButtonBox.ButtonRole.ActionRole
        )
        self.remove_button = self.buttons.addButton(
            self.tr("Re&move…"), QDialogButtonBox.ButtonRole.DestructiveRole
        )
        for button in (self.block_button, self.remove_button):
            assert button is not None
            button.setAutoDefault(False)
        self.block_button.clicked.connect(
            lambda: self.action_requested.emit(ContactAction.BLOCK.value, self._contact.peer_id)
        )
        self.remove_button.clicked.connect(
            lambda: self.action_requested.emit(ContactAction.REMOVE.value, self._contact.peer_id)
        )
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.update_contact(contact)

    @property
    def peer_id(self) -> str:
        return self._contact.peer_id

    def safety_digits(self) -> str:
        """The 60 digits, without the spacing."""
        return self._digits

    def update_contact(self, contact: ContactInfo) -> None:
        """Show what changed (a rename, presence, the verified flag) without losing edits."""
        self._contact = contact
        self.setWindowTitle(self.tr("{name} — Contact Details").format(name=contact.name))
        if not self.name_edit.hasFocus() or not self.name_edit.isModified():
            self.name_edit.setText(contact.name)
            self.name_edit.setModified(False)
        self.name_edit.setPlaceholderText(contact.their_name)
        if contact.online:
            presence = self.tr("Online")
        elif contact.last_seen is None:
            presence = self.tr("Offline, not seen yet")
        else:
            when = QDateTime.fromSecsSinceEpoch(int(contact.last_seen))
            presence = self.tr("Offline, last seen {when}").format(
                when=QLocale().toString(when, QLocale.FormatType.ShortFormat)
            )
        self.presence_label.setText(presence)
        self._show_route()
        halves = (self.tr("The first half is yours, the second {name}'s.") if self._mine_first
                  else self.tr("The first half is {name}'s, the second yours."))
        self.explanation.setText(
            self.tr(
                "Compare these numbers with {name} in person or on a call. If they match, your "
                "conversation is end-to-end encrypted with the right person."
            ).format(name=contact.name) + " " + halves.format(name=contact.name)
        )
        self.verified_box.blockSignals(True)
        self.verified_box.setChecked(contact.verified)
        self.verified_box.blockSignals(False)

    def set_mailbox(self, info: ContactMailbox) -> None:
        """Whether their messages wait in a mailbox while they are offline, and whether they
        keep messages for others (then they can be ours)."""
        name = self._contact.name
        if info.uses:
            text = self.tr("{name} has a mailbox: your messages wait there while they are "
                           "offline.").format(name=name)
        else:
            text = self.tr("{name} has no mailbox: messages wait until you are both "
                           "online.").format(name=name)
        if info.mine:
            text += " " + self.tr("{name} keeps your messages while you are offline.").format(
                name=name)
        elif info.serves:
            text += " " + self.tr("{name} keeps messages for their contacts.").format(name=name)
        self.mailbox_label.setText(text)
        self.mailbox_button.setVisible(bool(info.serves) and not info.mine)

    def set_route(self, route: str) -> None:
        """How we reach them now (``ui.identity.reachability``); "" while not connected."""
        self._route = route
        self._show_route()

    def _show_route(self) -> None:
        route = self._route if self._contact.online else ""
        text = route_text(route)
        self.route_label.setText(text[:1].upper() + text[1:] if text else self.tr("None"))
        self.route_label.setToolTip(as_tooltip(route_tooltip(route)))

    def _rename(self) -> None:
        name = self.name_edit.text().strip()
        if name != self._contact.name:
            self.rename_requested.emit(self._contact.peer_id, name)
        self.name_edit.setModified(False)
