"""First run: explain in two sentences what Kith is, and ask for the name contacts will see.

A display name is the only thing Kith needs before it can make your identity; there is no
account and no server, which is worth saying up front because people expect a sign-up.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.invite import MAX_NAME_LENGTH, clean_display_name
from ui.style.resources import app_icon


class FirstRunDialog(QDialog):
    import_requested = Signal()  # "Import a profile…": the controller owns the profile

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Welcome to Kith"))
        self.setWindowIcon(app_icon())
        self.setMinimumWidth(460)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 20)
        layout.setSpacing(14)

        header = QHBoxLayout()
        header.setSpacing(16)
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(56, 56))
        header.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        heading = QLabel(self.tr("Welcome to Kith"), self)
        font = QFont(heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        heading.setFont(font)
        header.addWidget(heading, 1, Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(header)

        self.welcome = QLabel(
            self.tr(
                "Kith is peer-to-peer: your messages and files go straight to the people you "
                "talk to, end-to-end encrypted, with no server and no account in between."
            ),
            self,
        )
        self.welcome.setWordWrap(True)
        layout.addWidget(self.welcome)

        prompt = QLabel(self.tr("Your name is what your contacts will see."), self)
        prompt.setWordWrap(True)
        layout.addWidget(prompt)

        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText(self.tr("Your name"))
        self.name_edit.setAccessibleName(self.tr("Display name"))
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        prompt.setBuddy(self.name_edit)
        layout.addWidget(self.name_edit)
        layout.addSpacing(6)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button: QPushButton = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(self.tr("Start Kith"))
        self.ok_button.setDefault(True)
        self.cancel_button: QPushButton = self.buttons.button(
            QDialogButtonBox.StandardButton.Cancel
        )
        self.cancel_button.setText(self.tr("Quit"))
        self.import_button = QPushButton(self.tr("&Import a Profile…"), self)
        self.import_button.setToolTip(self.tr("Move to this computer from one where you used "
                                              "Kith, with a file made by Export Profile…"))
        self.buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button.clicked.connect(self.import_requested)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.name_edit.textChanged.connect(self._validate)
        self._validate()
        self.name_edit.setFocus()

    def display_name(self) -> str:
        """The cleaned name, or "" while the box holds nothing usable."""
        try:
            return clean_display_name(self.name_edit.text())
        except ValueError:
            return ""

    def _validate(self) -> None:
        self.ok_button.setEnabled(bool(self.display_name()))

    def accept(self) -> None:
        if self.display_name():  # Enter in the box must not slip past a disabled OK
            super().accept()
