"""Add a contact from a pasted ``kith:`` invite, checked as it is typed.

There is no directory to search: an invite is the only way to find someone, so the dialog says
exactly what is wrong with a link before anything is sent, and keeps network errors inline
instead of in a separate box. It is opened with ``open()`` and awaits the client without a
nested event loop. A room link pasted here is not an error: the dialog offers to join the room
and hands the link to the Join Room dialog (``join_room_requested``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import ContactInvite, InvalidInvite, parse_invite
from app.core.records import ContactInfo, short_peer_id
from app.core.room import invite_kind, parse_room_invite
from ui import palette as pal
from ui.bridge import TaskRunner

AddContact = Callable[[str], Awaitable[ContactInfo]]


def plain_words(message: str) -> str:
    """``a Kith invite starts with 'kith:'`` -> ``A Kith invite starts with 'kith:'.``"""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


class AddContactDialog(QDialog):
    """``added(ContactInfo)`` once the contact is stored; the dialog then closes."""

    added = Signal(object)
    join_room_requested = Signal(str)  # a room link was pasted and the user chose to join it

    def __init__(
        self,
        runner: TaskRunner,
        own_peer_id: str,
        add: AddContact | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Add Contact"))
        self.setMinimumWidth(460)
        self._runner = runner
        self._own_peer_id = own_peer_id
        self._add = add
        self._busy = False

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(
            self.tr("Paste the invite link someone sent you. It starts with “kith:”."), self
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.link_edit = QLineEdit(self)
        self.link_edit.setPlaceholderText("kith:contact?id=…")
        self.link_edit.setAccessibleName(self.tr("Invite link"))
        self.link_edit.setClearButtonEnabled(True)
        self.link_edit.textChanged.connect(self.validate)
        layout.addWidget(self.link_edit)
        intro.setBuddy(self.link_edit)

        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        small = QFont(self.status_label.font())
        small.setPointSizeF(small.pointSizeF() * 0.95)
        self.status_label.setFont(small)
        layout.addWidget(self.status_label)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText(self.tr("Add Contact"))
        self.ok_button: QPushButton = ok
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        assert cancel is not None
        self.cancel_button: QPushButton = cancel
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._invite: ContactInvite | None = None
        self._room_link: str | None = None
        self.validate()

    def set_adder(self, add: AddContact | None) -> None:
        """The coroutine that adds (``client.add_contact``); None while offline."""
        self._add = add
        self.validate()

    def set_link(self, link: str) -> None:
        self.link_edit.setText(link)
        self.link_edit.setCursorPosition(0)

    def error(self) -> str:
        """The inline problem shown now, or empty."""
        return self.status_label.text() if self.status_label.property("error") else ""

    def status(self) -> str:
        return self.status_label.text()

    def _say(self, text: str, error: bool) -> None:
        self.status_label.setText(text)
        self.status_label.setProperty("error", error)
        colour = pal.ERROR if error else pal.muted_text(self.palette())
        self.status_label.setStyleSheet(f"color: {colour.name()};")

    def validate(self, *_: object) -> bool:
        """Check the link as typed; OK is enabled only for a usable contact invite."""
        self._invite = None
        self._room_link = None
        link = self.link_edit.text().strip()
        ok = False
        self.ok_button.setText(self.tr("Add Contact"))
        if not link:
            self._say("", False)
        else:
            try:
                kind = invite_kind(link)
                if kind == "room":
                    room = parse_room_invite(link)
                    self._room_link = link
                    self._say(self.tr("This link invites you to the room “{name}”, not to a "
                                      "contact. Join the room instead?").format(name=room.name),
                              False)
                    self.ok_button.setText(self.tr("Join Room…"))
                    self.ok_button.setEnabled(not self._busy)
                    return True
                invite = parse_invite(link)
                if invite.peer_id == self._own_peer_id:
                    raise InvalidInvite(self.tr("this is your own invite: send it to others"))
            except (InvalidInvite, ValueError) as exc:
                self._say(plain_words(str(exc)), True)
            else:
                self._invite = invite
                who = invite.name or short_peer_id(invite.peer_id)
                if self._add is None:
                    self._say(self.tr("Kith is not online yet; you can add {name} once it is.")
                              .format(name=who), True)
                else:
                    self._say(self.tr("Adds {name} ({peer}).").format(
                        name=who, peer=short_peer_id(invite.peer_id)), False)
                    ok = True
        self.ok_button.setEnabled(ok and not self._busy)
        return ok

    def submit(self) -> None:
        if self._busy or not self.validate():
            return
        if self._room_link is not None:
            self.join_room_requested.emit(self._room_link)
            self.accept()
            return
        if self._add is None:
            return
        self._busy = True
        self.ok_button.setEnabled(False)
        self.link_edit.setReadOnly(True)
        self._say(self.tr("Adding…"), False)
        self._runner.run(self._submit(self.link_edit.text().strip(), self._add),
                         self.tr("Adding a contact"))

    async def _submit(self, link: str, add: AddContact) -> None:
        try:
            info = await add(link)
        except Exception as exc:  # noqa: BLE001 - every failure is shown inline, in plain words
            self._busy = False
            self.link_edit.setReadOnly(False)
            self.validate()
            self._say(plain_words(str(exc)) or self.tr("The contact could not be added."), True)
            self.ok_button.setEnabled(False)
            return
        self._busy = False
        self.added.emit(info)
        self.accept()
