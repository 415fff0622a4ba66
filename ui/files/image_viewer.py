"""A received or sent picture, big: fitted to the window, or at its own size.

Opened from a picture's preview in the conversation (a click, or Enter on its card). It reads
the file itself, so a picture larger than the screen is scaled down, never the window blown
up; a double click (or the button) switches between fitting and actual size. Open and Show in
Folder hand the file to the desktop, as on the card.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import (
    QGuiApplication,
    QImageReader,
    QMouseEvent,
    QPixmap,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

MARGIN = 80  # the viewer leaves this much of the screen around it


class ImageViewer(QDialog):
    """``open_requested`` / ``show_requested``: Open and Show in Folder, for the window to do."""

    open_requested = Signal()
    show_requested = Signal()

    def __init__(self, path: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(name)
        self.path = path
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        self.pixmap = QPixmap.fromImage(reader.read())
        self._fit = True
        layout = QVBoxLayout(self)
        self.scroller = QScrollArea(self)
        self.scroller.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroller.setWidgetResizable(False)
        self.picture = QLabel(self.scroller)
        self.picture.setAccessibleName(name)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if self.pixmap.isNull():
            self.picture.setText(self.tr("“{name}” cannot be shown.").format(name=name))
        self.scroller.setWidget(self.picture)
        layout.addWidget(self.scroller, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.size_button = QPushButton(self.tr("&Actual Size"), self)
        self.size_button.clicked.connect(self.toggle_fit)
        self.buttons.addButton(self.size_button, QDialogButtonBox.ButtonRole.ActionRole)
        for text, signal in ((self.tr("&Open"), self.open_requested),
                             (self.tr("Show in &Folder"), self.show_requested)):
            button = QPushButton(text, self)
            button.clicked.connect(signal)
            self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(self._first_size())
        self._show()

    def _first_size(self) -> QSize:
        screen = QGuiApplication.primaryScreen()
        room = (screen.availableSize() - QSize(MARGIN, MARGIN) if screen is not None
                else QSize(1024, 768))
        wanted = self.pixmap.size() + QSize(40, 90) if not self.pixmap.isNull() else QSize(
            360, 200)
        return wanted.boundedTo(room).expandedTo(QSize(320, 240))

    def fits(self) -> bool:
        """Fitted to the window (True) or at the picture's own size."""
        return self._fit

    def shown_size(self) -> QSize:
        return self.picture.pixmap().size() if not self.pixmap.isNull() else QSize()

    def toggle_fit(self) -> None:
        self._fit = not self._fit
        self.size_button.setText(self.tr("&Actual Size") if self._fit else self.tr("&Fit"))
        self._show()

    def _show(self) -> None:
        if self.pixmap.isNull():
            self.picture.adjustSize()
            return
        shown = self.pixmap
        if self._fit:
            room = self.scroller.viewport().size()
            if self.pixmap.width() > room.width() or self.pixmap.height() > room.height():
                shown = self.pixmap.scaled(room, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation)
        self.picture.setPixmap(shown)
        self.picture.resize(shown.size())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._show()  # the scroll area has its real size only now

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit:
            self._show()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.toggle_fit()
        event.accept()
