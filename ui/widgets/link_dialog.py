"""What Add Contact and Join Room share: a pasted ``kith:`` link, checked as it is typed.

``LinkDialog`` lays out the intro, the link field, an inline status line (errors in plain words,
never a separate box) and OK/Cancel; a subclass checks the link in ``validate`` and sends it with
``_send``, which awaits the client without a nested event loop and keeps a failure inline.
People paste whole messages ("Add me! kith:contact?id=… see you"): ``link`` is the ``kith:``
link found in the field, or the field as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import find_link
from ui.bridge import TaskRunner
from ui.style import palette as pal
from ui.style.theme import set_style_sheet

T = TypeVar("T")


def plain_words(message: str) -> str:
    """``a Kith invite starts with 'kith:'`` -> ``A Kith invite starts with 'kith:'.``"""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


class LinkDialog(QDialog):
    """Intro, link field, status line and OK/Cancel; the texts come translated from a subclass."""

    def __init__(self, runner: TaskRunner, *, title: str, min_width: int, intro: str,
                 placeholder: str, field_name: str, ok_text: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(min_width)
        self._runner = runner
        self._busy = False

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro_label = QLabel(intro, self)
        intro_label.setWordWrap(True)
        layout.addWidget(intro_label)
        self.link_edit = QLineEdit(self)
        self.link_edit.setPlaceholderText(placeholder)
        self.link_edit.setAccessibleName(field_name)
        self.link_edit.setClearButtonEnabled(True)
        self.link_edit.textChanged.connect(self.validate)
        layout.addWidget(self.link_edit)
        intro_label.setBuddy(self.link_edit)

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
        ok.setText(ok_text)
        self.ok_button: QPushButton = ok
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        assert cancel is not None
        self.cancel_button: QPushButton = cancel
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def validate(self, *_: object) -> bool:
        """Check the link as typed, say what is wrong or what OK will do; True if OK may."""
        raise NotImplementedError

    def submit(self) -> None:
        raise NotImplementedError

    def link(self) -> str:
        """The ``kith:`` link in the field, even when other text was pasted around it."""
        text = self.link_edit.text().strip()
        return find_link(text) or text

    def found_in_text(self) -> bool:
        """The field holds more than the link: say that the link inside is the one used."""
        return self.link() != self.link_edit.text().strip()

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
        set_style_sheet(self.status_label, f"color: {colour.name()};")

    def _send(self, send: Callable[[str], Awaitable[T]], done: Callable[[T], object], *,
              doing: str, failed: str, task: str) -> None:
        """Hand the link to ``send`` (a client call); ``done(result)`` and close on success."""
        self._busy = True
        self.ok_button.setEnabled(False)
        self.link_edit.setReadOnly(True)
        self._say(doing, False)
        self._runner.run(self._sent(self.link(), send, done, failed), task)

    async def _sent(self, link: str, send: Callable[[str], Awaitable[T]],
                    done: Callable[[T], object], failed: str) -> None:
        try:
            result = await send(link)
        except Exception as exc:  # noqa: BLE001 - every failure is shown inline, in plain words
            self._busy = False
            self.link_edit.setReadOnly(False)
            self.validate()
            self._say(plain_words(str(exc)) or failed, True)
            self.ok_button.setEnabled(False)
            return
        self._busy = False
        done(result)
        self.accept()
