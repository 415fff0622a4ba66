"""Paints a ``MessageListModel`` row as a chat bubble: no widget per message.

Text is wrapped with a ``QTextLayout`` built once per (message, width) and cached: ``sizeHint``
runs for every loaded row on each relayout, so the row height is cached separately from the
(heavier) layouts, which only the visible rows need. The text is shown with its Markdown
(``ui.conversation.markdown``: bold, italic, code) as format ranges, and so are links, so
hit-testing a click is a lookup in the same object that painted it. Day headers and author names
are painted inside the row they belong to instead of being fake rows; so are the quote of the
message a reply answers and the reaction chips (``bubble_extras``).

Length: sizing, painting and hit-testing a bubble must agree on every rectangle, so they stay
in one class; what is not the bubble itself lives in ``file_card`` and ``bubble_extras``.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QTextLayout,
    QTextLine,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QToolTip,
    QWidget,
)

from app.core.markdown import styled_html
from app.core.records import Delivery
from ui.conversation.bubble_extras import BubbleExtras
from ui.conversation.bubble_text import Colours, lay_out, styled_text
from ui.conversation.chat_item import ChatItem
from ui.conversation.file_card import FileCardPainter
from ui.conversation.message_model import MessageListModel, Role
from ui.conversation.row_spacing import GROUP_GAP, INNER_GAP, SIDE_MARGIN
from ui.files.file_actions import FileAction
from ui.style import palette as pal

ModelIndex = QModelIndex | QPersistentModelIndex


PAD_H, PAD_V = 12, 7     # inside the bubble
RADIUS = 14
MAX_BUBBLE = 620
BUBBLE_SHARE = 0.78      # of the content width
GLYPH = 16               # delivery glyph box
NOTICE_PAD = 4           # above and below a governed room's notice line
FAILED = 20              # the red "!" left of a failed bubble
META_GAP = 10
SIZE_CACHE_LIMIT = 50_000
LAYOUT_CACHE_LIMIT = 600


class Glyph(StrEnum):
    """The delivery mark drawn on an outgoing bubble."""

    NONE = ""
    CLOCK = "clock"          # sending
    TICK = "tick"            # sent
    DOUBLE_TICK = "double"   # delivered
    READ = "read"            # read: the double tick, bold
    FAILED = "failed"        # red "!", click to retry
    HELD = "held"            # sent, and a mailbox holds it for the recipient (an envelope)


GLYPHS = {
    Delivery.SENDING: Glyph.CLOCK,
    Delivery.SENT: Glyph.TICK,
    Delivery.DELIVERED: Glyph.DOUBLE_TICK,
    Delivery.READ: Glyph.READ,
    Delivery.FAILED: Glyph.FAILED,
    Delivery.RECEIVED: Glyph.NONE,
}


def glyph_of(item: ChatItem) -> Glyph:
    """The delivery mark of a row: none on others' messages, the envelope while held."""
    if not item.outgoing:
        return Glyph.NONE
    if item.state is Delivery.SENT and item.held_by is not None:
        return Glyph.HELD
    return GLYPHS[item.state]


@dataclass
class _Bubble:
    """One message laid out at one width."""

    layout: QTextLayout
    links: list[tuple[int, int, str]]
    time: str
    width: int               # the bubble
    height: int
    quote_h: int = 0         # the quote of the message it answers, above the text
    chips_h: int = 0         # the reaction chips, under the bubble


class MessageDelegate(QStyledItemDelegate):
    """Bubbles, day headers, times, delivery glyphs and links for ``MessageListModel`` rows."""

    link_activated = Signal(str)
    retry_requested = Signal(str)  # the message key
    file_action_requested = Signal(str, str)  # transfer id, FileAction value (a card button)
    quote_activated = Signal(str)  # the id of the message a clicked quote names
    reaction_clicked = Signal(str, str)  # message id, emoji: a chip was clicked

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self.view = view
        self._sizes: dict[tuple[str, int, int, int], int] = {}
        self._bubbles: OrderedDict[tuple[str, int, bool, int], _Bubble] = OrderedDict()
        self._fonts()
        self.cards = FileCardPainter(self, self)  # rows with a ``transfer`` are file cards

    # -- fonts, colours, caches -----------------------------------------------------------------

    def _fonts(self) -> None:
        self.font = QFont(self.view.font())
        self.small = QFont(self.font)
        self.small.setPointSizeF(max(7.0, self.font.pointSizeF() * 0.8))
        self.bold_small = QFont(self.small)
        self.bold_small.setBold(True)
        self.day_font = QFont(self.small)
        self.day_font.setWeight(QFont.Weight.DemiBold)
        self.mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.mono.setPointSizeF(self.font.pointSizeF())
        self.fm = QFontMetrics(self.font)
        self.small_fm = QFontMetrics(self.small)
        self.author_h = QFontMetrics(self.bold_small).height() + 2
        self.day_h = self.small_fm.height() + 26
        old = getattr(self, "extras", None)
        self.extras = BubbleExtras(self.font, self.small, self.bold_small)
        if old is not None:
            self.extras.me, self.extras.name_of = old.me, old.name_of

    def invalidate(self) -> None:
        """Forget every layout (the font or palette changed)."""
        self._sizes.clear()
        self._bubbles.clear()
        self._fonts()

    def content_width(self) -> int:
        """The width rows are laid out for; independent of the scroll bar showing, so a bar
        that appears cannot change the heights that made it appear."""
        bar = self.view.verticalScrollBar().sizeHint().width()
        return max(200, self.view.width() - 2 * self.view.frameWidth() - bar)

    def _max_text_width(self, width: int) -> int:
        bubble = min(MAX_BUBBLE, int((width - 2 * SIDE_MARGIN - FAILED) * BUBBLE_SHARE))
        return max(80, bubble - 2 * PAD_H)

    def colours(self, outgoing: bool) -> tuple[QColor, QColor, QColor, QColor]:
        """Bubble, text, meta and link colours from the palette (light and dark alike)."""
        palette = self.view.palette()
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        if outgoing:
            bubble = pal.accent(palette)
            fore = palette.color(QPalette.ColorRole.HighlightedText)
            return bubble, fore, pal.mix(fore, bubble, 0.28), fore
        bubble = pal.mix(base, text, 0.13 if pal.is_dark(palette) else 0.07)
        link = palette.color(QPalette.ColorRole.Link)
        if pal.is_dark(palette) and link.lightnessF() < 0.55:
            link = link.lighter(160)
        return bubble, text, pal.mix(text, bubble, 0.45), link

    # -- geometry -------------------------------------------------------------------------------

    def bubble(self, item: ChatItem, width: int) -> _Bubble:
        """The cached layout of ``item`` for a row ``width`` wide."""
        text_width = self._max_text_width(width)
        cache_key = (item.key, text_width, item.outgoing, item.revision)
        found = self._bubbles.get(cache_key)
        if found is not None:  # a revision's text never changes
            self._bubbles.move_to_end(cache_key)
            return found
        made = self._lay_out(item, text_width)
        self._bubbles[cache_key] = made
        if len(self._bubbles) > LAYOUT_CACHE_LIMIT:
            self._bubbles.popitem(last=False)
        return made

    def _lay_out(self, item: ChatItem, text_width: int) -> _Bubble:
        styled, links = styled_text(item.text)
        bubble, fore, _, link = self.colours(item.outgoing)
        text = lay_out(styled, links, self.font, self.mono, Colours(bubble, fore, link),
                       text_width)
        time = item.local_time.strftime("%H:%M")
        if item.edited:
            time = self.tr("edited") + " " + time
        meta = self._meta_width(time, item.outgoing)
        inline = text.last + META_GAP + meta <= text_width
        if inline:
            content_w = max(text.widest, text.last + META_GAP + meta)
            content_h = text.height
        else:
            content_w = max(text.widest, meta)
            content_h = text.height + self.small_fm.height()
        quote_h = self.extras.quote_height(item)
        if quote_h:
            model = self.view.model()
            quote_w = self.extras.quote_width(
                model if isinstance(model, MessageListModel) else None, item)
            content_w, content_h = max(content_w, min(text_width, quote_w)), content_h + quote_h
        return _Bubble(
            layout=text.layout, links=links, time=time,
            width=math.ceil(content_w) + 2 * PAD_H, height=math.ceil(content_h) + 2 * PAD_V,
            quote_h=quote_h, chips_h=self.extras.chips_height(item, text_width + 2 * PAD_H),
        )

    def _meta_width(self, time: str, outgoing: bool) -> int:
        return self.small_fm.horizontalAdvance(time) + (GLYPH + 3 if outgoing else 0)

    def row_flags(self, model: MessageListModel, row: int) -> tuple[bool, bool, bool]:
        return model.starts_day(row), model.starts_group(row), model.shows_author(row)

    def _row_height(self, bubble: _Bubble, flags: tuple[bool, bool, bool]) -> int:
        day, group, author = flags
        height = (GROUP_GAP if group else INNER_GAP) + bubble.height + 1 + bubble.chips_h
        if day:
            height += self.day_h - GROUP_GAP // 2
        if author:
            height += self.author_h
        return height

    def _bubble_rect(
        self, rect: QRect, bubble: _Bubble, item: ChatItem, flags: tuple[bool, bool, bool]
    ) -> QRect:
        day, group, author = flags
        top = rect.top() + (GROUP_GAP if group else INNER_GAP)
        if day:
            top += self.day_h - GROUP_GAP // 2
        height = bubble.height + (self.author_h if author else 0)
        width = bubble.width
        if author:  # the name may be wider than a short message
            name = QFontMetrics(self.bold_small).horizontalAdvance(item.author_name) + 2 * PAD_H
            width = max(width, min(name, self._max_text_width(rect.width()) + 2 * PAD_H))
        if item.outgoing:
            left = rect.right() - SIDE_MARGIN - width + 1
        else:
            left = rect.left() + SIDE_MARGIN
        return QRect(left, top, width, height)

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        model = index.model()
        if not isinstance(model, MessageListModel):
            return super().sizeHint(option, index)
        row = index.row()
        item = model.item(row)
        width = self.content_width()
        flags = self.row_flags(model, row)
        if item.transfer:
            return QSize(width, self.cards.row_height(item, flags, width))
        if item.notice:
            return QSize(width, self._notice_height(flags))
        packed = flags[0] | flags[1] << 1 | flags[2] << 2
        cache_key = (item.key, width, packed, item.revision)
        height = self._sizes.get(cache_key)
        if height is None:
            height = self._row_height(self.bubble(item, width), flags)
            if len(self._sizes) > SIZE_CACHE_LIMIT:
                self._sizes.clear()
            self._sizes[cache_key] = height
        return QSize(width, height)

    # -- painting -------------------------------------------------------------------------------

    def glyph(self, index: ModelIndex) -> Glyph:
        """The delivery mark this row shows (what tests and screen readers can ask for)."""
        model = index.model()
        if not isinstance(model, MessageListModel):
            return Glyph.NONE
        return glyph_of(model.item(index.row()))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        model = index.model()
        if not isinstance(model, MessageListModel):
            super().paint(painter, option, index)
            return
        row = index.row()
        item = model.item(row)
        if item.transfer:
            flags = self.row_flags(model, row)
            self.cards.paint(painter, option, item, flags, model.day_label(row) if flags[0] else "")
            return
        if item.notice:
            self._paint_notice(painter, option.rect, item, self.row_flags(model, row),
                               model.day_label(row))
            return
        rect: QRect = option.rect
        state: QStyle.StateFlag = option.state
        palette = self.view.palette()
        bubble = self.bubble(item, self.content_width())
        flags = self.row_flags(model, row)
        box = self._bubble_rect(rect, bubble, item, flags)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)

        if state & QStyle.StateFlag.State_Selected:
            band = pal.mix(
                palette.color(QPalette.ColorRole.Base), pal.accent(palette),
                0.22 if pal.is_dark(palette) else 0.14,
            )
            painter.fillRect(QRect(rect.left(), box.top() - 2, rect.width(), box.height() + 4),
                             band)
        if flags[0]:
            self.paint_day(painter, rect, model.day_label(row), palette)

        fill, fore, meta, _ = self.colours(item.outgoing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(box), RADIUS, RADIUS)
        if state & QStyle.StateFlag.State_HasFocus and self.view.hasFocus():
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(pal.mix(fill, palette.color(QPalette.ColorRole.Text), 0.5), 1.5))
            painter.drawRoundedRect(QRectF(box).adjusted(-2.5, -2.5, 2.5, 2.5),
                                    RADIUS + 2, RADIUS + 2)

        top = box.top() + PAD_V
        if flags[2]:
            painter.setFont(self.bold_small)
            painter.setPen(self.author_colour(item.author_id, palette))
            painter.drawText(
                QRect(box.left() + PAD_H, top - 1, box.width() - 2 * PAD_H, self.author_h),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
                QFontMetrics(self.bold_small).elidedText(
                    item.author_name, Qt.TextElideMode.ElideRight, box.width() - 2 * PAD_H
                ),
            )
            top += self.author_h
        if bubble.quote_h:
            self.extras.paint_quote(painter, QRect(box.left() + PAD_H, top,
                                                   box.width() - 2 * PAD_H, bubble.quote_h - 4),
                                    model, item, fore, fill, palette)
            top += bubble.quote_h
        painter.setPen(fore)
        painter.setFont(self.font)
        bubble.layout.draw(painter, QPointF(box.left() + PAD_H, top))

        meta_w = self._meta_width(bubble.time, item.outgoing)
        meta_h = self.small_fm.height()
        meta_rect = QRect(box.right() - PAD_H - meta_w + 1, box.bottom() - PAD_V - meta_h + 2,
                          meta_w, meta_h)
        painter.setFont(self.small)
        painter.setPen(meta)
        painter.drawText(meta_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         bubble.time)
        if item.outgoing:
            glyph_box = QRectF(meta_rect.right() - GLYPH + 1, meta_rect.center().y() - GLYPH / 2,
                               GLYPH, GLYPH)
            if item.state is Delivery.FAILED:  # one large "!" beside the bubble, not two
                self._paint_failed(painter, self.failed_rect(box), palette)
            else:
                self._paint_glyph(painter, glyph_of(item), glyph_box, meta, fore)
        if item.reactions:
            self.extras.paint_chips(painter, item, box, self._chips_width(rect.width()), palette)
        painter.restore()

    def _chips_width(self, width: int) -> int:
        return self._max_text_width(width) + 2 * PAD_H

    def _notice_height(self, flags: tuple[bool, bool, bool]) -> int:
        height = GROUP_GAP + self.small_fm.height() + 2 * NOTICE_PAD
        return height + (self.day_h - GROUP_GAP // 2 if flags[0] else 0)

    def _paint_notice(self, painter: QPainter, rect: QRect, item: ChatItem,
                      flags: tuple[bool, bool, bool], day: str) -> None:
        """A governed room's notice: one muted, centred line ("Cy was removed by Ada")."""
        palette = self.view.palette()
        painter.save()
        if flags[0]:
            self.paint_day(painter, rect, day, palette)
        line_h = self.small_fm.height() + 2 * NOTICE_PAD
        line = QRect(rect.left() + SIDE_MARGIN, rect.bottom() - line_h + 1,
                     rect.width() - 2 * SIDE_MARGIN, line_h)
        painter.setFont(self.small)
        painter.setPen(pal.muted_text(palette))
        text = self.small_fm.elidedText(item.text, Qt.TextElideMode.ElideRight, line.width())
        painter.drawText(line, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()

    def paint_day(self, painter: QPainter, rect: QRect, label: str, palette: QPalette) -> None:
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        metrics = QFontMetrics(self.day_font)
        width = metrics.horizontalAdvance(label) + 24
        height = metrics.height() + 8
        top = rect.top() + (self.day_h - height) // 2 + 2
        pill = QRectF(rect.center().x() - width / 2, top, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pal.mix(base, text, 0.1 if pal.is_dark(palette) else 0.055))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setFont(self.day_font)
        painter.setPen(pal.mix(text, base, 0.38))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, label)

    def _paint_glyph(
        self, painter: QPainter, glyph: Glyph, box: QRectF, meta: QColor, fore: QColor
    ) -> None:
        pen = QPen(meta, 1.4)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        c = box.center()
        if glyph is Glyph.CLOCK:
            painter.setPen(pen)
            painter.drawEllipse(c, 5.0, 5.0)
            path = QPainterPath(QPointF(c.x(), c.y() - 3))
            path.lineTo(c)
            path.lineTo(c.x() + 2.5, c.y() + 1.5)
            painter.drawPath(path)
        elif glyph is Glyph.HELD:  # an envelope: waiting in the recipient's mailbox
            painter.setPen(pen)
            painter.drawRect(QRectF(c.x() - 5, c.y() - 3.5, 10, 7))
            path = QPainterPath(QPointF(c.x() - 5, c.y() - 3.5))
            path.lineTo(c.x(), c.y() + 0.5)
            path.lineTo(c.x() + 5, c.y() - 3.5)
            painter.drawPath(path)
        elif glyph in (Glyph.TICK, Glyph.DOUBLE_TICK, Glyph.READ):
            if glyph is not Glyph.TICK:
                pen.setColor(fore)  # delivered reads brighter than merely sent
            if glyph is Glyph.READ:
                pen.setWidthF(2.4)  # and read bolder still
            painter.setPen(pen)
            offsets = (-1.0,) if glyph is Glyph.TICK else (-3.0, 1.5)
            for dx in offsets:
                path = QPainterPath(QPointF(c.x() + dx - 4, c.y()))
                path.lineTo(c.x() + dx - 1, c.y() + 3)
                path.lineTo(c.x() + dx + 4.5, c.y() - 3.5)
                painter.drawPath(path)

    def failed_rect(self, box: QRect) -> QRect:
        """The red "!" beside a failed bubble: click it to retry."""
        return QRect(box.left() - FAILED - 6, box.center().y() - FAILED // 2, FAILED, FAILED)

    def _paint_failed(self, painter: QPainter, rect: QRect, palette: QPalette) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pal.ERROR)
        painter.drawEllipse(QRectF(rect))
        font = QFont(self.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(QRectF(rect), Qt.AlignmentFlag.AlignCenter, "!")

    @staticmethod
    def author_colour(author_id: str, palette: QPalette) -> QColor:
        """Each room member keeps a hue; lightness follows the theme so names stay readable."""
        hue = zlib.crc32(author_id.encode("utf-8")) % 360
        return QColor.fromHsl(hue, 170, 175 if pal.is_dark(palette) else 90)

    # -- hit testing ----------------------------------------------------------------------------

    def _geometry(self, index: ModelIndex) -> tuple[ChatItem, _Bubble, QRect, QPoint] | None:
        """The item, its layout, its bubble and the origin of its text, in viewport pixels."""
        model = index.model()
        if not isinstance(model, MessageListModel) or not index.isValid():
            return None
        row = index.row()
        item = model.item(row)
        if item.transfer or item.notice:  # a file card or notice: no links, no retry mark
            return None
        bubble = self.bubble(item, self.content_width())
        flags = self.row_flags(model, row)
        box = self._bubble_rect(self.view.visualRect(index), bubble, item, flags)
        origin = QPoint(box.left() + PAD_H, box.top() + PAD_V + bubble.quote_h
                        + (self.author_h if flags[2] else 0))
        return item, bubble, box, origin

    def extras_at(self, index: ModelIndex, pos: QPoint) -> tuple[str, str, tuple[str, ...]]:
        """What of the quote and chips is under ``pos``: ("quote", the id it names, ()) or
        ("chip", its emoji, who), else ("", "", ())."""
        found = self._geometry(index)
        if found is None:
            return "", "", ()
        item, bubble, box, origin = found
        quote = QRect(box.left(), origin.y() - bubble.quote_h, box.width(), bubble.quote_h)
        if item.reply_to and quote.contains(pos):
            return "quote", item.reply_to, ()
        chip = self.extras.chip_at(item, box, self._chips_width(self.view.visualRect(index)
                                                                .width()), pos)
        return ("chip", chip[0], chip[1]) if chip else ("", "", ())

    def chip_rect(self, index: ModelIndex, emoji: str) -> QRect:
        """Where the chip of ``emoji`` is (for tests and keyboard users), viewport pixels."""
        found = self._geometry(index)
        if found is None:
            return QRect()
        item, _, box, _ = found
        width = self._chips_width(self.view.visualRect(index).width())
        return next((r for r, e, _ in self.extras.chip_rects(item, box, width) if e == emoji),
                    QRect())

    def quote_rect(self, index: ModelIndex) -> QRect:
        found = self._geometry(index)
        if found is None or not found[0].reply_to:
            return QRect()
        _, bubble, box, origin = found
        return QRect(box.left() + PAD_H, origin.y() - bubble.quote_h, box.width() - 2 * PAD_H,
                     bubble.quote_h - 4)

    def painted_rects(self, index: ModelIndex) -> tuple[QRect, QRect] | None:
        """(the bubble, its text) where ``paint`` puts them for ``index``, in viewport pixels:
        what a reader sees must fit the row the view gave it."""
        found = self._geometry(index)
        if found is None:
            return None
        _, bubble, box, origin = found
        text = QRectF()
        for i in range(bubble.layout.lineCount()):
            text = text.united(bubble.layout.lineAt(i).naturalTextRect())
        return box, text.toAlignedRect().translated(origin)

    def link_at(self, index: ModelIndex, pos: QPoint) -> str | None:
        """The URL under ``pos`` (viewport coordinates), if any."""
        found = self._geometry(index)
        if found is None:
            return None
        _, bubble, _, origin = found
        if not bubble.links:
            return None
        x, y = pos.x() - origin.x(), pos.y() - origin.y()
        layout = bubble.layout
        for i in range(layout.lineCount()):
            line = layout.lineAt(i)
            if line.y() <= y < line.y() + line.height():
                if not 0 <= x <= line.naturalTextWidth():
                    return None
                cursor = line.xToCursor(x, QTextLine.CursorPosition.CursorOnCharacter)
                for start, end, url in bubble.links:
                    if start <= cursor < end:
                        return url
                return None
        return None

    def link_rect(self, index: ModelIndex, link: int = 0) -> QRect:
        """Where the ``link``-th URL starts (for tests and keyboard users), viewport pixels."""
        found = self._geometry(index)
        if found is None or link >= len(found[1].links):
            return QRect()
        _, bubble, _, origin = found
        start = bubble.links[link][0]
        line = bubble.layout.lineForTextPosition(start)
        x = line.cursorToX(start)
        if isinstance(x, tuple):  # PySide returns (x, cursor) for the in/out argument
            x = x[0]
        assert isinstance(x, float | int)
        return QRect(origin.x() + int(x), origin.y() + int(line.y()), 12, int(line.height()))

    def retry_hit(self, index: ModelIndex, pos: QPoint) -> bool:
        found = self._geometry(index)
        if found is None:
            return False
        item, _, box, _ = found
        if not (item.outgoing and item.state is Delivery.FAILED):
            return False
        return self.failed_rect(box).adjusted(-4, -4, 4, 4).contains(pos)

    def failed_point(self, index: ModelIndex) -> QPoint:
        found = self._geometry(index)
        return QPoint() if found is None else self.failed_rect(found[2]).center()

    def editorEvent(
        self, event: QEvent, model: QAbstractItemModel, option: QStyleOptionViewItem,
        index: ModelIndex,
    ) -> bool:
        if (
            event.type() == QEvent.Type.MouseButtonRelease
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
            and event.modifiers() == Qt.KeyboardModifier.NoModifier
        ):
            pos = event.position().toPoint()
            action = self.cards.action_at(index, pos)
            if action is None and self.cards.picture_at(index, pos):
                action = FileAction.VIEW  # a click on a picture shows it big
            if action is not None:
                self.file_action_requested.emit(model.data(index, Role.KEY), action.value)
                return True
            if self.retry_hit(index, pos):
                self.retry_requested.emit(model.data(index, Role.KEY))
                return True
            what, value, _ = self.extras_at(index, pos)
            if what == "quote":
                self.quote_activated.emit(value)
                return True
            if what == "chip":
                item = model.data(index, Role.ITEM)
                self.reaction_clicked.emit(item.message_id or item.key, value)
                return True
            url = self.link_at(index, pos)
            if url is not None:
                self.link_activated.emit(url)
                return True
        return super().editorEvent(event, model, option, index)

    def helpEvent(self, event: QHelpEvent, view: QAbstractItemView,
                  option: QStyleOptionViewItem, index: ModelIndex) -> bool:
        """A reaction chip's tooltip names who reacted."""
        what, _, who = self.extras_at(index, event.pos())
        if what == "chip":
            QToolTip.showText(event.globalPos(), self.extras.who(who), view)
            return True
        return super().helpEvent(event, view, option, index)

    # -- the read-only editor: select part of a message, click its links -------------------------

    def createEditor(
        self, parent: QWidget, option: QStyleOptionViewItem, index: ModelIndex
    ) -> QWidget:
        model = index.model()
        assert isinstance(model, MessageListModel)
        item = model.item(index.row())
        if item.transfer or item.notice:  # a card or a notice: no text to select
            return None  # type: ignore[return-value]
        editor = QTextBrowser(parent)
        editor.setObjectName("messageText")
        editor.setFrameShape(QFrame.Shape.NoFrame)
        editor.setReadOnly(True)
        editor.setOpenLinks(False)
        editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setTextInteractionFlags(  # keyboard users select with Shift and the arrows too
            Qt.TextInteractionFlag.TextBrowserInteraction
            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        editor.document().setDocumentMargin(0)
        editor.setFont(self.font)
        fill, fore, _, link = self.colours(item.outgoing)
        palette = editor.palette()
        for role, colour in (
            (QPalette.ColorRole.Base, fill), (QPalette.ColorRole.Text, fore),
            (QPalette.ColorRole.Link, link), (QPalette.ColorRole.LinkVisited, link),
        ):
            palette.setColor(role, colour)
        palette.setColor(QPalette.ColorRole.Highlight, pal.mix(fill, fore, 0.35))
        palette.setColor(QPalette.ColorRole.HighlightedText, fore)
        editor.setPalette(palette)
        styled, links = styled_text(item.text)
        editor.document().setDefaultStyleSheet(
            f"a {{ color: {link.name()}; text-decoration: underline; }} "
            f"code, pre {{ font-family: '{self.mono.family()}'; }}")
        editor.setHtml(styled_html(styled, links))
        editor.anchorClicked.connect(lambda url: self.link_activated.emit(url.toString()))
        editor.setAccessibleName(self.tr("Message text"))
        return editor

    def setEditorData(self, editor: QWidget, index: ModelIndex) -> None:
        """The text was set when the editor was made; nothing is ever written back."""

    def setModelData(
        self, editor: QWidget, model: QAbstractItemModel, index: ModelIndex
    ) -> None:
        """Read-only: the browser only selects and opens links."""

    def updateEditorGeometry(
        self, editor: QWidget, option: QStyleOptionViewItem, index: ModelIndex
    ) -> None:
        found = self._geometry(index)
        if found is None:
            return
        _, bubble, box, origin = found
        width = max(40, box.right() - PAD_H - origin.x() + 2)
        if isinstance(editor, QTextBrowser):
            editor.document().setTextWidth(width)
            height = math.ceil(editor.document().size().height())
        else:
            height = bubble.height
        editor.setGeometry(QRect(origin.x(), origin.y(), width, max(height, self.fm.height())))
