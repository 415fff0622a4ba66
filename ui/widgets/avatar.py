"""A round avatar with initials, its hue derived from the name so each person keeps a colour."""

from __future__ import annotations

import zlib

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget


def initials(name: str) -> str:
    words = [w for w in name.split() if w[:1].isalnum()]
    if not words:
        return "?"
    letters = words[0][0] + (words[1][0] if len(words) > 1 else "")
    return letters.upper()


def avatar_colour(name: str) -> QColor:
    """A stable, mid-lightness colour: white initials read on it in light and dark mode."""
    hue = zlib.crc32(name.casefold().encode("utf-8")) % 360
    return QColor.fromHsl(hue, 140, 110)


def paint_avatar(painter: QPainter, rect: QRectF, name: str) -> None:
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(avatar_colour(name))
    painter.drawEllipse(rect)
    painter.restore()
    paint_initials(painter, rect, name)


def paint_initials(painter: QPainter, rect: QRectF, name: str) -> None:
    """White initials centred in ``rect`` (round avatars for people, squares for rooms)."""
    painter.save()
    font = QFont(painter.font())
    font.setBold(True)
    font.setPixelSize(max(8, round(rect.height() * 0.4)))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, initials(name))
    painter.restore()


class Avatar(QWidget):
    def __init__(self, name: str = "", size: int = 40, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self.setFixedSize(QSize(size, size))

    def set_name(self, name: str) -> None:
        self._name = name
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        paint_avatar(painter, QRectF(self.rect()), self._name)
