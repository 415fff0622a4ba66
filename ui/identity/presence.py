"""Your status as one dot and one line: whether Kith runs, and once it does, how others reach
you ("Reachable through a relay"), never "Online" beside "Not reachable by others".

The dot is never the only sign: the words say the same.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ui.identity.node_state import Presence
from ui.identity.reachability import DIRECT, RELAY, own_text
from ui.style import palette as pal


def status_text(presence: Presence, reachability: str) -> str:
    """"Connecting…", "Offline", or once running, how others reach you."""
    if presence is Presence.ONLINE and reachability:
        return own_text(reachability)
    return presence.label()


def presence_colour(presence: Presence, palette: QPalette, reachability: str = "") -> QColor:
    """Green when others can reach you, amber while starting or reachable only nearby."""
    if presence is Presence.ONLINE:
        return pal.ONLINE if reachability in (DIRECT, RELAY, "") else pal.CONNECTING
    if presence is Presence.CONNECTING:
        return pal.CONNECTING
    return pal.muted_text(palette)


class _Dot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.presence = Presence.CONNECTING
        self.reachability = ""
        self.setFixedSize(QSize(10, 10))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(presence_colour(self.presence, self.palette(), self.reachability))
        painter.drawEllipse(QRectF(1, 1, 8, 8))


class PresenceIndicator(QWidget):
    """``● Reachable through a relay``; the text is what tests and screen readers see."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(5)
        self._dot = _Dot(self)
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        layout.addWidget(self._dot, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self._label, 1, Qt.AlignmentFlag.AlignVCenter)
        self.set_presence(Presence.CONNECTING)

    def set_presence(self, presence: Presence, reachability: str = "") -> None:
        self._dot.presence = presence
        self._dot.reachability = reachability
        self._dot.update()
        text = status_text(presence, reachability)
        self._label.setText(text)
        self.setAccessibleName(text)

    def text(self) -> str:
        return self._label.text()

    def label(self) -> QLabel:
        return self._label
