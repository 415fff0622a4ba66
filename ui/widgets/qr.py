"""A QR code drawn from segno's module matrix, so it stays crisp at any size and scale.

Scanners need dark modules on a light background with a quiet zone around them, whatever the
theme: the code itself is always black on white; only the card around it follows the palette.
"""

from __future__ import annotations

import segno
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.style import palette as pal

QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks
DARK = QColor("black")
LIGHT = QColor("white")


def qr_modules(payload: str) -> list[list[bool]]:
    """Rows of modules (True = dark), quiet zone included."""
    code = segno.make(payload, error="m", micro=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]


def qr_image(payload: str, module_px: int = 4) -> QImage:
    """The code as an image: ``module_px`` pixels per module, no smoothing."""
    modules = qr_modules(payload)
    size = len(modules) * module_px
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(LIGHT)
    painter = QPainter(image)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                painter.fillRect(x * module_px, y * module_px, module_px, module_px, DARK)
    painter.end()
    return image


class QrCode(QWidget):
    """Paints a payload's QR code at the largest whole number of pixels per module that fits."""

    def __init__(self, payload: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._modules: list[list[bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.set_payload(payload)

    def set_payload(self, payload: str) -> None:
        self._payload = payload
        self._modules = qr_modules(payload) if payload else []
        self.setAccessibleName(self.tr("Verification QR code"))
        self.updateGeometry()
        self.update()

    def payload(self) -> str:
        return self._payload

    def module_count(self) -> int:
        return len(self._modules)

    def sizeHint(self) -> QSize:
        side = max(1, self.module_count()) * 4 + 16
        return QSize(side, side)

    def render_image(self) -> QImage:
        """What the widget shows, as an image (for tests and for saving)."""
        image = QImage(self.size(), QImage.Format.Format_RGB32)
        image.fill(pal.card_background(self.palette()))
        self.render(image)
        return image

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pal.hairline(self.palette()))
        painter.setBrush(LIGHT)  # always light under the code, even in dark mode
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        count = self.module_count()
        if not count:
            return
        inner = self.rect().adjusted(6, 6, -6, -6)
        module = max(1, min(inner.width(), inner.height()) // count)
        side = module * count
        left = inner.left() + (inner.width() - side) // 2
        top = inner.top() + (inner.height() - side) // 2
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)  # crisp module edges
        painter.setPen(Qt.PenStyle.NoPen)
        for y, row in enumerate(self._modules):
            for x, dark in enumerate(row):
                if dark:
                    painter.fillRect(QRect(left + x * module, top + y * module, module, module),
                                     DARK)
