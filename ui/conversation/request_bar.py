"""The bar over a message request: someone you have not added wrote to you.

A stranger's conversation is read-only until you decide, so the decision sits right above it,
with both choices one key away (Accept is the default; Block never is).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from app.core.records import ContactInfo
from ui.style import palette as pal


class RequestBar(QFrame):
    """``accept_requested(peer)`` / ``block_requested(peer)`` for the shown request."""

    accept_requested = Signal(str)
    block_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("requestBar")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._peer: str | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 10, 10)
        layout.setSpacing(8)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label, 1)
        self.accept_button = QPushButton(self.tr("&Accept"), self)
        self.accept_button.setToolTip(self.tr("Add them to your contacts and reply"))
        self.accept_button.clicked.connect(self._accept)
        self.block_button = QPushButton(self.tr("&Block"), self)
        self.block_button.setToolTip(self.tr("Refuse everything from them from now on"))
        self.block_button.clicked.connect(self._block)
        layout.addWidget(self.accept_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.block_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.hide()

    @property
    def peer_id(self) -> str | None:
        return self._peer

    def show_request(self, contact: ContactInfo) -> None:
        self._peer = contact.peer_id
        self.label.setText(
            self.tr("{name} is not in your contacts. Accept to reply, or block them.")
            .format(name=contact.name)
        )
        self.accept_button.setEnabled(True)
        self.block_button.setEnabled(True)
        self.show()

    def clear(self) -> None:
        self._peer = None
        self.hide()

    def _accept(self) -> None:
        if self._peer is not None:
            self.accept_button.setEnabled(False)
            self.accept_requested.emit(self._peer)

    def _block(self) -> None:
        if self._peer is not None:
            self.block_button.setEnabled(False)
            self.block_requested.emit(self._peer)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.setPen(pal.hairline(palette))
        painter.setBrush(pal.mix(palette.color(palette.ColorRole.Base), pal.accent(palette), 0.1))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
