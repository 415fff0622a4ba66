"""Where messages are written: Enter sends, Shift+Enter starts a new line (design section 4).

The composer knows nothing about sending; it emits ``submitted(text)`` and clears itself, and the
window decides where the text goes. It grows with its text up to a few lines, then scrolls.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from ui import palette as pal
from ui.resources import tinted_icon

MAX_VISIBLE_LINES = 6


class ComposerEdit(QPlainTextEdit):
    """The text box; turns a plain Enter into ``send_requested``."""

    send_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)  # Tab leaves the box: keyboard users can reach Send
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setStyleSheet("QPlainTextEdit { background: transparent; }")  # the frame paints
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().setDocumentMargin(4)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.send_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _fit_height(self, *_: object) -> None:
        lines = self.document().documentLayout().documentSize().height()  # lines, in plain text
        visible = int(min(max(lines, 1), MAX_VISIBLE_LINES))
        margins = self.contentsMargins()
        doc_margin = 2 * self.document().documentMargin()
        height = visible * self.fontMetrics().lineSpacing() + doc_margin
        self.setFixedHeight(int(height + margins.top() + margins.bottom() + 2))


class Composer(QFrame):
    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.setSpacing(8)
        self.edit = ComposerEdit(self)
        self.edit.setAccessibleName(self.tr("Message"))
        self.edit.send_requested.connect(self.submit)
        self.edit.textChanged.connect(self._update_send_button)
        self.edit.installEventFilter(self)
        layout.addWidget(self.edit, 1, Qt.AlignmentFlag.AlignVCenter)
        self.send_button = QToolButton(self)
        self.send_button.setAutoRaise(True)
        self.send_button.setIconSize(QSize(22, 22))
        self.send_button.setToolTip(self.tr("Send (Enter)"))
        self.send_button.setAccessibleName(self.tr("Send"))
        self._tint()
        self.send_button.clicked.connect(self.submit)
        layout.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        self._target: str | None = None
        self.set_target(None)

    def _tint(self) -> None:
        palette = self.palette()
        self.send_button.setIcon(
            tinted_icon(
                "send",
                palette.color(QPalette.ColorRole.Highlight),
                palette.color(QPalette.ColorRole.PlaceholderText),
            )
        )

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self._tint()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit and event.type() in (QEvent.Type.FocusIn, QEvent.Type.FocusOut):
            self.update()  # the border shows focus
        return super().eventFilter(watched, event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        focused = self.edit.hasFocus()
        border = palette.color(QPalette.ColorRole.Highlight) if focused else pal.hairline(palette)
        painter.setPen(QPen(border, 1.5 if focused else 1.0))
        background = palette.color(QPalette.ColorRole.Base)
        if not self.edit.isEnabled():
            background = pal.sidebar_background(palette)
        painter.setBrush(background)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 12, 12)

    def set_target(self, name: str | None) -> None:
        """The open conversation's name, or ``None`` when there is nowhere to send to."""
        self._target = name
        enabled = name is not None
        self.edit.setEnabled(enabled)
        if enabled:
            self.edit.setPlaceholderText(self.tr("Message {name}").format(name=name))
        else:
            self.edit.setPlaceholderText(self.tr("Select a conversation to write"))
        self._update_send_button()

    def text(self) -> str:
        return self.edit.toPlainText()

    def submit(self) -> None:
        """Emit the text (trimmed) and clear the box; blank text and no target send nothing."""
        text = self.edit.toPlainText().strip()
        if not text or self._target is None:
            return
        self.edit.clear()
        self.submitted.emit(text)

    def _update_send_button(self) -> None:
        self.send_button.setEnabled(
            self._target is not None and bool(self.edit.toPlainText().strip())
        )
