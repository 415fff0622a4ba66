"""Join a room from a pasted ``kith:room`` link, checked as it is typed.

The link is the room: its id, its key and members to connect to. The dialog says what is wrong
with a link in plain words before anything is sent, names the room it would join, and notices
a room you are already in (then it just opens it). A contact invite pasted here is pointed to
Add Contact instead of failing with a parser's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import InvalidInvite
from app.core.records import RoomInfo
from app.core.room import RoomInvite, invite_kind, parse_room_invite
from ui import palette as pal
from ui.add_contact import plain_words
from ui.bridge import TaskRunner

JoinRoom = Callable[[str], Awaitable[RoomInfo]]
KnownRoom = Callable[[str], RoomInfo | None]


class JoinRoomDialog(QDialog):
    """``joined(RoomInfo)`` once the room is joined (or was already); the dialog then closes."""

    joined = Signal(object)

    def __init__(self, runner: TaskRunner, join: JoinRoom | None = None,
                 known: KnownRoom | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Join Room"))
        self.setMinimumWidth(480)
        self._runner = runner
        self._join = join
        self._known = known
        self._busy = False
        self._invite: RoomInvite | None = None

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(
            self.tr("Paste the room link someone shared with you. It starts with “kith:room”."),
            self,
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.link_edit = QLineEdit(self)
        self.link_edit.setPlaceholderText("kith:room?id=…")
        self.link_edit.setAccessibleName(self.tr("Room link"))
        self.link_edit.setClearButtonEnabled(True)
        self.link_edit.textChanged.connect(self.validate)
        layout.addWidget(self.link_edit)
        intro.setBuddy(self.link_edit)

        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText(self.tr("Join Room"))
        self.ok_button: QPushButton = ok
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.validate()

    def set_joiner(self, join: JoinRoom | None) -> None:
        """``client.join_room``, or None while offline."""
        self._join = join
        self.validate()

    def set_link(self, link: str) -> None:
        self.link_edit.setText(link)
        self.link_edit.setCursorPosition(0)

    def error(self) -> str:
        return self.status_label.text() if self.status_label.property("error") else ""

    def status(self) -> str:
        return self.status_label.text()

    def _say(self, text: str, error: bool) -> None:
        self.status_label.setText(text)
        self.status_label.setProperty("error", error)
        colour = pal.ERROR if error else pal.muted_text(self.palette())
        self.status_label.setStyleSheet(f"color: {colour.name()};")

    def _already(self) -> RoomInfo | None:
        if self._invite is None or self._known is None:
            return None
        return self._known(self._invite.secrets.id_hex)

    def validate(self, *_: object) -> bool:
        """OK only for a usable room link (or one for a room you are in: it opens)."""
        self._invite = None
        link = self.link_edit.text().strip()
        ok = False
        self.ok_button.setText(self.tr("Join Room"))
        if not link:
            self._say("", False)
        else:
            try:
                if invite_kind(link) == "contact":
                    raise InvalidInvite(self.tr(
                        "this is a contact invite, not a room link: add it with File ▸ Add "
                        "Contact"))
                invite = parse_room_invite(link)
            except (InvalidInvite, ValueError) as exc:
                self._say(plain_words(str(exc)), True)
            else:
                self._invite = invite
                already = self._already()
                if already is not None:
                    self._say(self.tr("You are already in “{name}”.").format(name=already.name),
                              False)
                    self.ok_button.setText(self.tr("Open Room"))
                    ok = True
                elif self._join is None:
                    self._say(self.tr("Kith is not online yet; you can join “{name}” once it is.")
                              .format(name=invite.name), True)
                else:
                    about = f" — {invite.description}" if invite.description else ""
                    self._say(self.tr("Joins “{name}”{about}. The members will see your name.")
                              .format(name=invite.name, about=about), False)
                    ok = True
        self.ok_button.setEnabled(ok and not self._busy)
        return ok

    def submit(self) -> None:
        if self._busy or not self.validate():
            return
        already = self._already()
        if already is not None:
            self.joined.emit(already)
            self.accept()
            return
        if self._join is None:
            return
        self._busy = True
        self.ok_button.setEnabled(False)
        self.link_edit.setReadOnly(True)
        self._say(self.tr("Joining…"), False)
        self._runner.run(self._submit(self.link_edit.text().strip(), self._join),
                         self.tr("Joining a room"))

    async def _submit(self, link: str, join: JoinRoom) -> None:
        try:
            info = await join(link)
        except Exception as exc:  # noqa: BLE001 - every failure is shown inline, in plain words
            self._busy = False
            self.link_edit.setReadOnly(False)
            self.validate()
            self._say(plain_words(str(exc)) or self.tr("The room could not be joined."), True)
            self.ok_button.setEnabled(False)
            return
        self._busy = False
        self.joined.emit(info)
        self.accept()
