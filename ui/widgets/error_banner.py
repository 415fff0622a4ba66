"""A dismissable banner across the top of the window for problems the user should know about.

Network failures are not modal: the rest of the window (your invite, your history) stays usable,
so the problem is stated in plain words in a banner rather than only in a dialog.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from ui.style import palette as pal
from ui.style.resources import tinted_icon, tinted_pixmap

MAX_MESSAGES = 3


class ErrorBanner(QFrame):
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self._messages: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 8, 10)
        layout.setSpacing(10)
        self._icon = QLabel(self)
        self._icon.setPixmap(tinted_pixmap("warning", pal.ERROR, 20, self.devicePixelRatioF()))
        self._icon.setFixedSize(20, 20)
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._label.setTextFormat(Qt.TextFormat.PlainText)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._close = QToolButton(self)
        self._close.setAutoRaise(True)
        self._close.setToolTip(self.tr("Dismiss"))
        self._close.setAccessibleName(self.tr("Dismiss the message"))
        self._close.clicked.connect(self.dismiss)
        layout.addWidget(self._icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._label, 1)
        layout.addWidget(self._close, 0, Qt.AlignmentFlag.AlignTop)
        self._tint()
        self.hide()

    def _tint(self) -> None:
        self._close.setIcon(
            tinted_icon("close", self.palette().color(QPalette.ColorRole.WindowText))
        )

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self._tint()

    def show_message(self, message: str) -> None:
        """Add ``message`` (the latest few distinct messages stay until dismissed)."""
        if self.isHidden():
            self._messages.clear()
        if message in self._messages:
            self._messages.remove(message)
        self._messages = [*self._messages, message][-MAX_MESSAGES:]
        text = "\n".join(self._messages)
        self._label.setText(text)
        self.setAccessibleDescription(text)
        self.show()

    def message(self) -> str:
        """What the banner says now; empty while hidden."""
        return "" if self.isHidden() else self._label.text()

    def dismiss(self) -> None:
        self.hide()
        self._messages.clear()
        self.dismissed.emit()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pal.error_border(self.palette()))
        painter.setBrush(pal.error_background(self.palette()))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
