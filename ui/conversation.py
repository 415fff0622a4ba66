"""The conversation pane: a list view that will show messages, and says what to do while empty.

Messages will come from a ``QAbstractListModel`` with a delegate (design section 4), never a
widget per message; this view is that list already, with an empty-state drawn on its viewport so
a newcomer sees a next step instead of a blank page.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPaintEvent, QPalette, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QFrame, QListView, QWidget

from ui.resources import app_icon

ICON_SIZE = 72


class ConversationView(QListView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setAccessibleName(self.tr("Conversation"))
        self.setModel(QStandardItemModel(self))
        self._title = self.tr("No conversation open")
        self._hint = self.tr("Pick a contact or room on the left, or share your invite to start.")

    def set_empty_state(self, title: str, hint: str) -> None:
        """What to say while there are no messages (differs with and without a conversation)."""
        self._title, self._hint = title, hint
        self.viewport().update()

    def empty_text(self) -> str:
        """What the empty state says (shown while the model has no rows)."""
        return self._hint

    def empty_title(self) -> str:
        return self._title

    def is_empty(self) -> bool:
        model = self.model()
        return model is None or model.rowCount() == 0

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self.is_empty():
            return
        viewport = self.viewport().rect()
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()

        title_font = QFont(self.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.35)
        title_font.setBold(True)
        width = min(420, viewport.width() - 48)
        hint_rect = painter.fontMetrics().boundingRect(
            QRect(0, 0, width, 10_000),
            int(Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap),
            self._hint,
        )
        title_height = QFontMetrics(title_font).height()
        total = ICON_SIZE + 20 + title_height + 8 + hint_rect.height()
        top = viewport.center().y() - total // 2 - 20
        left = viewport.center().x() - width // 2

        painter.setOpacity(0.55)
        icon_left = viewport.center().x() - ICON_SIZE // 2
        app_icon().paint(painter, QRect(icon_left, top, ICON_SIZE, ICON_SIZE))
        painter.setOpacity(1.0)

        top += ICON_SIZE + 20
        painter.setFont(title_font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(
            QRect(left, top, width, title_height), Qt.AlignmentFlag.AlignCenter, self._title
        )
        top += title_height + 8
        painter.setFont(self.font())
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(
            QRect(left, top, width, hint_rect.height()),
            int(Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap),
            self._hint,
        )

    def sizeHint(self) -> QSize:
        return QSize(520, 400)

