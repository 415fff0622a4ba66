"""What a bubble shows besides its text: the quote of the message it answers, and the reaction
chips under it. ``MessageDelegate`` sizes, paints and hit-tests them through this one class,
so what is painted and what a click finds are the same rectangles.

The quote reads the original from the model each time it is painted: an edit of the original
shows at once, and one that is not loaded or was deleted shows a placeholder.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QPoint, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette

from ui.conversation.chat_item import ChatItem
from ui.conversation.message_model import MessageListModel
from ui.style import palette as pal

QUOTE_PAD = 6
QUOTE_BAR = 3
CHIP_PAD_H, CHIP_PAD_V, CHIP_GAP = 8, 3, 4
CHIPS_TOP = 3


def _tr(text: str) -> str:
    return QCoreApplication.translate("BubbleExtras", text)


class BubbleExtras:
    """Quote and reaction chips of one bubble, for the delegate."""

    def __init__(self, font: QFont, small: QFont, bold_small: QFont) -> None:
        self.small, self.bold_small = small, bold_small
        self.emoji_font = QFont(font)
        self.fm, self.bold_fm = QFontMetrics(small), QFontMetrics(bold_small)
        self.emoji_fm = QFontMetrics(self.emoji_font)
        self.me = ""                                  # our peer id: our chips are marked
        self.name_of: Callable[[str], str] = lambda peer_id: peer_id[:12]

    # -- the quote ------------------------------------------------------------------------------

    def quote_height(self, item: ChatItem) -> int:
        if not item.reply_to:
            return 0
        return self.bold_fm.height() + self.fm.height() + 2 * QUOTE_PAD + 4

    def quoted(self, model: MessageListModel, item: ChatItem) -> tuple[str, str] | None:
        """(author, start of the text or the file name) of the original, if loaded."""
        row = model.row_of_message(item.reply_to or "")
        if row is None:
            return None
        original = model.item(row)
        text = ("📎 " + original.text) if original.transfer else original.text
        return original.author_name, text.split("\n", 1)[0]

    def quote_width(self, model: MessageListModel | None, item: ChatItem) -> int:
        found = self.quoted(model, item) if model is not None else None
        author, text = found or ("", _tr("Original message not available"))
        return max(self.bold_fm.horizontalAdvance(author),
                   self.fm.horizontalAdvance(text)) + 2 * QUOTE_PAD + QUOTE_BAR

    def paint_quote(self, painter: QPainter, rect: QRect, model: MessageListModel,
                    item: ChatItem, fore: QColor, fill: QColor, palette: QPalette) -> None:
        found = self.quoted(model, item)
        box = QRectF(rect)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pal.mix(fill, fore, 0.12))
        painter.drawRoundedRect(box, 6, 6)
        painter.setBrush(pal.accent(palette) if not item.outgoing else fore)
        painter.drawRect(QRectF(box.left(), box.top() + 2, QUOTE_BAR, box.height() - 4))
        inner = rect.adjusted(QUOTE_PAD + QUOTE_BAR, QUOTE_PAD, -QUOTE_PAD, -QUOTE_PAD)
        width = max(10, inner.width())
        if found is None:
            painter.setFont(self.small)
            painter.setPen(pal.mix(fore, fill, 0.4))
            painter.drawText(inner, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                             self.fm.elidedText(_tr("Original message not available"),
                                                Qt.TextElideMode.ElideRight, width))
            return
        author, text = found
        painter.setFont(self.bold_small)
        painter.setPen(fore)
        painter.drawText(QRect(inner.left(), inner.top(), width, self.bold_fm.height()),
                         int(Qt.AlignmentFlag.AlignLeft),
                         self.bold_fm.elidedText(author, Qt.TextElideMode.ElideRight, width))
        painter.setFont(self.small)
        painter.setPen(pal.mix(fore, fill, 0.25))
        painter.drawText(QRect(inner.left(), inner.top() + self.bold_fm.height(), width,
                               self.fm.height()), int(Qt.AlignmentFlag.AlignLeft),
                         self.fm.elidedText(text, Qt.TextElideMode.ElideRight, width))

    # -- reaction chips -------------------------------------------------------------------------

    def _chip_size(self, emoji: str, count: int) -> tuple[int, int]:
        width = (self.emoji_fm.horizontalAdvance(emoji) + 4 + self.fm.horizontalAdvance(str(count))
                 + 2 * CHIP_PAD_H)
        return width, max(self.emoji_fm.height(), self.fm.height()) + 2 * CHIP_PAD_V

    def chip_rects(self, item: ChatItem, box: QRect, max_width: int
                   ) -> list[tuple[QRect, str, tuple[str, ...]]]:
        """Each chip's rectangle (under ``box``, wrapping at ``max_width``), emoji and who."""
        out: list[tuple[QRect, str, tuple[str, ...]]] = []
        x, y, line_h = 0, box.bottom() + 1 + CHIPS_TOP, 0
        for emoji, who in item.reactions:
            width, height = self._chip_size(emoji, len(who))
            if x and x + width > max_width:
                x, y = 0, y + line_h + CHIP_GAP
            out.append((QRect(x, y, width, height), emoji, who))
            x, line_h = x + width + CHIP_GAP, max(line_h, height)
        if not out:
            return out
        used = max(r.right() for r, _, _ in out) + 1
        left = box.right() + 1 - used if item.outgoing else box.left()
        return [(r.translated(left, 0), e, w) for r, e, w in out]

    def chips_height(self, item: ChatItem, max_width: int) -> int:
        rects = self.chip_rects(item, QRect(0, -1, max_width, 0), max_width)
        return (max(r.bottom() for r, _, _ in rects) + 1 + 2) if rects else 0

    def paint_chips(self, painter: QPainter, item: ChatItem, box: QRect, max_width: int,
                    palette: QPalette) -> None:
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        accent = pal.accent(palette)
        for rect, emoji, who in self.chip_rects(item, box, max_width):
            mine = self.me in who
            painter.setPen(accent if mine else pal.mix(base, text, 0.2))
            painter.setBrush(pal.mix(base, accent, 0.18) if mine else pal.mix(base, text, 0.06))
            painter.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5),
                                    rect.height() / 2, rect.height() / 2)
            painter.setFont(self.emoji_font)
            painter.setPen(text)
            emoji_w = self.emoji_fm.horizontalAdvance(emoji)
            painter.drawText(QRect(rect.left() + CHIP_PAD_H, rect.top(), emoji_w, rect.height()),
                             int(Qt.AlignmentFlag.AlignVCenter), emoji)
            painter.setFont(self.small)
            painter.drawText(QRect(rect.left() + CHIP_PAD_H + emoji_w + 4, rect.top(),
                                   rect.width(), rect.height()),
                             int(Qt.AlignmentFlag.AlignVCenter), str(len(who)))

    def chip_at(self, item: ChatItem, box: QRect, max_width: int, pos: QPoint
                ) -> tuple[str, tuple[str, ...]] | None:
        """(emoji, who) of the chip under ``pos``."""
        for rect, emoji, who in self.chip_rects(item, box, max_width):
            if rect.contains(pos):
                return emoji, who
        return None

    def who(self, who: tuple[str, ...]) -> str:
        """A chip's tooltip: the names of who reacted."""
        names = [_tr("You") if peer == self.me else self.name_of(peer) for peer in who]
        return ", ".join(names)
