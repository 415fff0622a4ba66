"""Icons from ``resources/icons``, tinted from the palette so they work in light and dark mode.

Line icons are drawn with ``stroke="currentColor"``; Qt's SVG renderer does not know the current
colour, so we substitute a palette colour before rendering instead of shipping one set per theme.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICONS = RESOURCES / "icons"
APP_ICON = ICONS / "kith.svg"


def app_icon() -> QIcon:
    """The window icon; an empty icon when the resources folder is missing (never fatal)."""
    return QIcon(str(APP_ICON)) if APP_ICON.exists() else QIcon()


@cache
def _svg_source(name: str) -> bytes:
    path = ICONS / f"{name}.svg"
    return path.read_bytes() if path.exists() else b""


def tinted_pixmap(name: str, color: QColor, size: int, ratio: float = 1.0) -> QPixmap:
    """Render ``resources/icons/<name>.svg`` with ``currentColor`` replaced by ``color``."""
    pixels = max(1, round(size * ratio))
    pixmap = QPixmap(QSize(pixels, pixels))
    pixmap.fill(Qt.GlobalColor.transparent)
    source = _svg_source(name)
    if source:
        svg = source.replace(b"currentColor", color.name(QColor.NameFormat.HexRgb).encode())
        renderer = QSvgRenderer(QByteArray(svg))
        painter = QPainter(pixmap)
        painter.setOpacity(color.alphaF())
        renderer.render(painter, QRectF(0, 0, pixels, pixels))
        painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def tinted_icon(name: str, color: QColor, disabled: QColor | None = None) -> QIcon:
    """An icon in ``color`` (and ``disabled`` for the disabled state) at the usual sizes."""
    icon = QIcon()
    for size in (16, 20, 24, 32, 48):
        icon.addPixmap(tinted_pixmap(name, color, size), QIcon.Mode.Normal)
        if disabled is not None:
            icon.addPixmap(tinted_pixmap(name, disabled, size), QIcon.Mode.Disabled)
    return icon
