"""A presence dot with its word ("Online"), so status is never colour alone."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ui.identity.node_state import Presence
from ui.style import palette as pal


def presence_colour(presence: Presence, palette: QPalette) -> QColor:
    if presence is Presence.ONLINE:
        return pal.ONLINE
    if presence is Presence.CONNECTING:
        return pal.CONNECTING
    return pal.muted_text(palette)


class _Dot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.presence = Presence.CONNECTING
        self.setFixedSize(QSize(10, 10))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(presence_colour(self.presence, self.palette()))
        painter.drawEllipse(QRectF(1, 1, 8, 8))


class PresenceIndicator(QWidget):
    """``● Online``; the text is what tests and screen readers see."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(5)
        self._dot = _Dot(self)
        self._label = QLabel(self)
        layout.addWidget(self._dot, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self._label, 0, Qt.AlignmentFlag.AlignVCenter)
        self.set_presence(Presence.CONNECTING)

    def set_presence(self, presence: Presence) -> None:
        self._dot.presence = presence
        self._dot.update()
        self._label.setText(presence.label())
        self.setAccessibleName(presence.label())

    def text(self) -> str:
        return self._label.text()

    def label(self) -> QLabel:
        return self._label
