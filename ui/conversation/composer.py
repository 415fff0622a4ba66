"""Where messages are written: Enter sends, Shift+Enter starts a new line.

The composer knows nothing about sending; it emits ``submitted(text)`` and clears itself, and the
conversation decides where the text goes. It grows with its text up to a few lines, then scrolls.
Problems are shown inline under the box (a message over the size limit, a refused send) instead
of in a dialog, so the text stays where the user can fix it. ``edited`` fires only for the user's
own typing, so a restored draft does not count as a change to save.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QMimeData, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QResizeEvent,
    QShortcut,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.dm import MAX_TEXT_BYTES
from ui.files.drop_target import local_paths
from ui.style import palette as pal
from ui.style.resources import tinted_icon

MAX_VISIBLE_LINES = 6


class ComposerEdit(QPlainTextEdit):
    """The text box; turns a plain Enter into ``send_requested``."""

    send_requested = Signal()
    files_pasted = Signal(list)     # local paths from the clipboard
    image_pasted = Signal(QImage)   # an image on the clipboard (a screenshot, a copied picture)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)  # Tab leaves the box: keyboard users can reach Send
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().setDocumentMargin(4)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._placeholder = ""
        self._fit_height()

    def set_placeholder(self, text: str) -> None:
        """The hint shown while empty, elided to one line (a wrapped hint pushes itself out of
        a one-line box)."""
        self._placeholder = text
        self._elide_placeholder()

    def full_placeholder(self) -> str:
        return self._placeholder

    def _elide_placeholder(self) -> None:
        room = self.viewport().width() - 2 * math.ceil(self.document().documentMargin()) - 2
        shown = self.fontMetrics().elidedText(self._placeholder, Qt.TextElideMode.ElideRight,
                                              max(0, room))
        if shown != self.placeholderText():
            self.setPlaceholderText(shown)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide_placeholder()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.send_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return bool(local_paths(source)) or source.hasImage() or super().canInsertFromMimeData(
            source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        """Pasted files (or an image) are sent, not typed: their paths are no message."""
        paths = local_paths(source)
        if paths:
            self.files_pasted.emit(paths)
        elif source.hasImage() and not source.hasText():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_pasted.emit(image)
        else:
            super().insertFromMimeData(source)

    def _fit_height(self, *_: object) -> None:
        lines = self.document().documentLayout().documentSize().height()  # lines, in plain text
        visible = int(min(max(lines, 1), MAX_VISIBLE_LINES))
        margins = self.contentsMargins()
        doc_margin = 2 * self.document().documentMargin()
        height = visible * self.fontMetrics().lineSpacing() + doc_margin
        self.setFixedHeight(int(height + margins.top() + margins.bottom() + 2))


class _ComposerBox(QFrame):
    """The rounded field around the text and the Send button; its border shows focus."""

    def __init__(self, edit_owner: Composer) -> None:
        super().__init__(edit_owner)
        self._owner = edit_owner

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        edit = self._owner.edit
        focused = edit.hasFocus()
        if self._owner.error_text():
            border = pal.error_border(palette)
        elif focused:
            border = palette.color(QPalette.ColorRole.Highlight)
        else:
            border = pal.hairline(palette)
        painter.setPen(QPen(border, 1.5 if focused else 1.0))
        background = palette.color(QPalette.ColorRole.Base)
        if not edit.isEnabled():
            background = pal.sidebar_background(palette)
        painter.setBrush(background)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 12, 12)


class Composer(QFrame):
    submitted = Signal(str)
    edited = Signal()  # the user changed the text (not ``set_text``)
    attach_requested = Signal()  # 📎 or Ctrl+Shift+A: choose files to send

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        self.box = _ComposerBox(self)
        layout = QHBoxLayout(self.box)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.setSpacing(8)
        self.attach_button = QToolButton(self.box)
        self.attach_button.setAutoRaise(True)
        self.attach_button.setIconSize(QSize(20, 20))
        self.attach_button.setToolTip(self.tr("Send files (Ctrl+Shift+A)"))
        self.attach_button.setAccessibleName(self.tr("Send files"))
        self.attach_button.clicked.connect(self.attach_requested)
        layout.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.attach_shortcut = QShortcut(QKeySequence("Ctrl+Shift+A"), self)
        self.attach_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.attach_shortcut.activated.connect(self._attach_shortcut)
        self.edit = ComposerEdit(self.box)
        self.edit.setAccessibleName(self.tr("Message"))
        self.edit.send_requested.connect(self.submit)
        self.edit.textChanged.connect(self._text_changed)
        self.edit.installEventFilter(self)
        layout.addWidget(self.edit, 1, Qt.AlignmentFlag.AlignVCenter)
        self.send_button = QToolButton(self.box)
        self.send_button.setAutoRaise(True)
        self.send_button.setIconSize(QSize(22, 22))
        self.send_button.setToolTip(self.tr("Send (Enter)"))
        self.send_button.setAccessibleName(self.tr("Send"))
        self.send_button.clicked.connect(self.submit)
        layout.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addWidget(self.box)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("composerError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setContentsMargins(12, 0, 12, 0)
        self.error_label.setAccessibleName(self.tr("Message problem"))
        self.error_label.hide()
        outer.addWidget(self.error_label)
        self._tint()
        self._target: str | None = None
        self._programmatic = False
        self._too_long = False
        self.set_target(None)

    def _tint(self) -> None:
        palette = self.palette()
        # The box paints the background (rounded, its border showing focus): the text box is
        # transparent on it, and its hint must read on it whatever the theme pairs.
        base = palette.color(QPalette.ColorRole.Base)
        edit = QPalette(self.edit.palette())
        edit.setColor(QPalette.ColorRole.Base, QColor(Qt.GlobalColor.transparent))
        edit.setColor(QPalette.ColorRole.PlaceholderText, pal.readable_on(
            base, palette.color(QPalette.ColorRole.PlaceholderText)))
        self.edit.setPalette(edit)
        self.attach_button.setIcon(tinted_icon(
            "paperclip", palette.color(QPalette.ColorRole.PlaceholderText),
            pal.mix(palette.color(QPalette.ColorRole.PlaceholderText),
                    palette.color(QPalette.ColorRole.Base), 0.5)))
        self.send_button.setIcon(
            tinted_icon(
                "send",
                palette.color(QPalette.ColorRole.Highlight),
                palette.color(QPalette.ColorRole.PlaceholderText),
            )
        )
        error = self.error_label.palette()
        error.setColor(QPalette.ColorRole.WindowText, pal.mix(
            pal.ERROR, palette.color(QPalette.ColorRole.WindowText), 0.15 if pal.is_dark(palette)
            else 0.1))
        self.error_label.setPalette(error)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self._tint()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit and event.type() in (QEvent.Type.FocusIn, QEvent.Type.FocusOut):
            self.box.update()  # the border shows focus
        return super().eventFilter(watched, event)

    def set_target(self, name: str | None) -> None:
        """The open conversation's name, or ``None`` when there is nowhere to send to."""
        self._target = name
        enabled = name is not None
        self.edit.setEnabled(enabled)
        if enabled:
            self.edit.set_placeholder(self.tr("Message {name}").format(name=name))
        else:
            self.edit.set_placeholder(self.tr("Select a conversation to write"))
            self.clear_error()
        self._update_send_button()
        self.attach_button.setEnabled(enabled)
        self.box.update()

    def _attach_shortcut(self) -> None:
        if self.attach_button.isEnabled() and self.isEnabled():
            self.attach_requested.emit()

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the text (a restored draft) without emitting ``edited``; cursor at the end."""
        self._programmatic = True
        try:
            self.edit.setPlainText(text)
            self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)
        finally:
            self._programmatic = False

    # -- inline problems ------------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.box.update()

    def clear_error(self) -> None:
        if self.error_label.isVisible() or self.error_label.text():
            self.error_label.clear()
            self.error_label.hide()
            self.box.update()

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def too_long_message(self, size: int) -> str:
        return self.tr("This message is too long: {size} KB; the limit is {limit} KB.").format(
            size=math.ceil(size / 1024), limit=MAX_TEXT_BYTES // 1024
        )

    def _check_size(self, text: str) -> bool:
        """True if ``text`` fits; otherwise say so under the box."""
        size = len(text.encode("utf-8"))
        too_long = size > MAX_TEXT_BYTES
        if too_long:
            self.show_error(self.too_long_message(size))
        elif self._too_long:
            self.clear_error()
        self._too_long = too_long
        return not too_long

    # -- sending --------------------------------------------------------------------------------

    def submit(self) -> None:
        """Emit the text (trimmed) and clear the box; blank, too long or no target send nothing."""
        text = self.edit.toPlainText().strip()
        if not text or self._target is None:
            return
        if not self._check_size(text):
            return
        self.clear_error()
        self.edit.clear()
        self.submitted.emit(text)

    def _text_changed(self) -> None:
        text = self.edit.toPlainText()
        # Cheap for any size the box can hold: the limit is checked as the user types.
        if len(text) * 4 > MAX_TEXT_BYTES or self._too_long:
            self._check_size(text.strip())
        elif self.error_text() and not self._programmatic:
            self.clear_error()  # the user is fixing whatever the problem was
        self._update_send_button()
        if not self._programmatic:
            self.edited.emit()

    def _update_send_button(self) -> None:
        self.send_button.setEnabled(
            self._target is not None and bool(self.edit.toPlainText().strip())
            and not self._too_long
        )
