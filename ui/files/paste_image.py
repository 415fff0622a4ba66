"""A picture pasted into the composer: seen before it is sent, with a caption if wanted.

A screenshot on the clipboard is easy to paste by mistake, and people often want to say
something with it. The dialog shows the picture as it will be sent and a one-line caption;
Send (Enter) hands both back, Cancel (Escape) sends nothing.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

PREVIEW = QSize(420, 320)  # the picture is shown at most this big (never larger than it is)


class PasteImageDialog(QDialog):
    """``send_requested(image, caption)`` on Send; the caption may be empty."""

    send_requested = Signal(QImage, str)

    def __init__(self, image: QImage, target: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Send a Picture to {name}").format(name=target))
        self.image = image
        layout = QVBoxLayout(self)
        self.preview = QLabel(self)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setAccessibleName(self.tr("The pasted picture"))
        shown = QPixmap.fromImage(image)
        if shown.width() > PREVIEW.width() or shown.height() > PREVIEW.height():
            shown = shown.scaled(PREVIEW, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(shown)
        layout.addWidget(self.preview, 1)
        self.size_label = QLabel(self.tr("{w} × {h} pixels").format(
            w=image.width(), h=image.height()), self)
        self.size_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.size_label)
        self.caption = QLineEdit(self)
        self.caption.setPlaceholderText(self.tr("Add a caption (optional)"))
        self.caption.setAccessibleName(self.tr("Caption"))
        layout.addWidget(self.caption)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.send_button = QPushButton(self.tr("&Send"), self)
        self.send_button.setDefault(True)
        self.buttons.addButton(self.send_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._send)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.caption.setFocus(Qt.FocusReason.OtherFocusReason)

    def shown_size(self) -> QSize:
        return self.preview.pixmap().size()

    def _send(self) -> None:
        self.send_requested.emit(self.image, self.caption.text().strip())
        self.accept()
