"""Create a room: a name (required) and an optional description, checked as they are typed.

A room has no owner and no server; creating one only makes a key and a name on this device, so
the dialog is small and says up front that the invite link is what brings people in. Failures
stay inline, and the dialog awaits the client without a nested event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.records import RoomInfo
from app.core.room import MAX_DESCRIPTION, MAX_NAME
from ui.bridge import TaskRunner
from ui.style import palette as pal
from ui.style.theme import set_style_sheet
from ui.widgets.link_dialog import plain_words

CreateRoom = Callable[[str, str, bool], Awaitable[RoomInfo]]


class NewRoomDialog(QDialog):
    """``created(RoomInfo)`` once the room exists; the dialog then closes."""

    created = Signal(object)

    def __init__(self, runner: TaskRunner, create: CreateRoom | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("New Room"))
        self.setMinimumWidth(440)
        self._runner = runner
        self._create = create
        self._busy = False

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(self.tr("A room is a group conversation. You invite people with its link; "
                               "everyone who has the link can join."), self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.name_edit = QLineEdit(self)
        self.name_edit.setMaxLength(MAX_NAME)
        self.name_edit.setPlaceholderText(self.tr("Book club"))
        self.name_edit.setAccessibleName(self.tr("Room name"))
        self.name_edit.textChanged.connect(self.validate)
        name_label = QLabel(self.tr("&Name"), self)
        name_label.setBuddy(self.name_edit)
        form.addRow(name_label, self.name_edit)
        self.description_edit = QLineEdit(self)
        self.description_edit.setMaxLength(MAX_DESCRIPTION)
        self.description_edit.setPlaceholderText(self.tr("Optional: what the room is for"))
        self.description_edit.setAccessibleName(self.tr("Room description"))
        description_label = QLabel(self.tr("&Description"), self)
        description_label.setBuddy(self.description_edit)
        form.addRow(description_label, self.description_edit)
        layout.addLayout(form)
        self.governed_box = QCheckBox(self.tr("I &manage this room: roles, removing people, "
                                              "invites that can be revoked"), self)
        self.governed_box.setToolTip(self.tr(
            "You own the room. You can make others admins, remove or ban people (they then "
            "read nothing new), and choose who may join. Without it, everyone with the link "
            "is in for good."))
        layout.addWidget(self.governed_box)

        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.status_label)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText(self.tr("Create Room"))
        self.ok_button: QPushButton = ok
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.validate()

    def set_creator(self, create: CreateRoom | None) -> None:
        """``client.create_room``, or None while offline."""
        self._create = create
        self.validate()

    def error(self) -> str:
        return self.status_label.text() if self.status_label.property("error") else ""

    def _say(self, text: str, error: bool) -> None:
        self.status_label.setText(text)
        self.status_label.setProperty("error", error)
        colour = pal.ERROR if error else pal.muted_text(self.palette())
        set_style_sheet(self.status_label, f"color: {colour.name()};")

    def validate(self, *_: object) -> bool:
        """OK only with a name and a running client."""
        ok = bool(self.name_edit.text().strip())
        if self._create is None:
            self._say(self.tr("Kith is not online yet; you can create the room once it is."),
                      True)
            ok = False
        elif not self._busy:
            self._say("", False)
        self.ok_button.setEnabled(ok and not self._busy)
        return ok

    def submit(self) -> None:
        if self._busy or not self.validate() or self._create is None:
            return
        self._busy = True
        self.ok_button.setEnabled(False)
        self._say(self.tr("Creating…"), False)
        self._runner.run(
            self._submit(self.name_edit.text().strip(), self.description_edit.text().strip(),
                         self.governed_box.isChecked(), self._create),
            self.tr("Creating a room"),
        )

    async def _submit(self, name: str, description: str, governed: bool,
                      create: CreateRoom) -> None:
        try:
            info = await create(name, description, governed)
        except Exception as exc:  # noqa: BLE001 - every failure is shown inline, in plain words
            self._busy = False
            self.validate()
            self._say(plain_words(str(exc)) or self.tr("The room could not be created."), True)
            return
        self._busy = False
        self.created.emit(info)
        self.accept()
