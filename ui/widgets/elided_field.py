"""A read-only value that is elided in the middle until focused, then shown whole and selected.

Peer ids and addresses are too long for a sidebar, but people must be able to copy them exactly:
a label that elides would copy the "…". This field shows the elided form at rest, the full value
(selected, ready for Ctrl+C) when it has focus, and the full value in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFocusEvent, QFontDatabase, QResizeEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from ui.style.theme import set_style_sheet


class ElidedField(QLineEdit):
    def __init__(self, parent: QWidget | None = None, *, monospace: bool = True) -> None:
        super().__init__(parent)
        self._full = ""
        self.setReadOnly(True)
        self.setFrame(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        set_style_sheet(self, "QLineEdit { background: transparent; }")
        if monospace:
            self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self._refresh()

    def full_text(self) -> str:
        return self._full

    def _refresh(self) -> None:
        if self.hasFocus():
            if self.text() != self._full:
                self.setText(self._full)
                self.selectAll()
            return
        width = max(0, self.contentsRect().width() - 8)
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, width))
        self.setCursorPosition(0)

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self.setText(self._full)
        self.selectAll()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:  # keep it whole for the menu's Copy
            self._refresh()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._refresh()
