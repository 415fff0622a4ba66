"""Paints a file message as a card inside ``MessageDelegate``, and hit-tests its buttons.

A card is a row like any other (no widget per message): its geometry is a pure function of
the row rectangle, so painting and clicking agree without storing anything. Progress, which
changes every few hundred milliseconds, never changes the height, so it repaints a row without
relaying out the list. A picture that is here (sent, or received whole) is shown above the
card's text, up to ``PREVIEW`` pixels and in its own shape; the row grows once, when the
preview is decoded (``previews_ready``), and a click on it opens the viewer. Live state comes
from the ``TransferCache``; pictures from ``ThumbnailCache``s (decoded off the Qt thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QAbstractItemView, QStyle, QStyleOptionViewItem

from app.core.records import TransferInfo, short_peer_id
from app.core.transfer_state import TransferState
from ui.conversation.chat_item import ChatItem
from ui.conversation.message_model import MessageListModel
from ui.conversation.row_spacing import GROUP_GAP, INNER_GAP, SIDE_MARGIN
from ui.files.file_actions import FileAction, action_label, actions_for, is_transferring
from ui.files.file_kind import FileKind, file_kind
from ui.files.thumbnails import ThumbnailCache
from ui.files.transfer_text import human_size, status_text
from ui.style import palette as pal

if TYPE_CHECKING:
    from ui.files.transfer_cache import TransferCache

PREVIEW = 320         # a picture's preview fits a square this big
PREVIEW_CACHE = 48    # decoded previews kept (about 400 KB each)
CARD_WIDTH = 340      # at least, so the buttons fit
MAX_CARD_WIDTH = 560  # at most: wide enough for most names, which are elided only beyond it
PAD = 10
ICON = 44
BAR = 4
BUTTON_H = 26
BUTTON_GAP = 6
RADIUS = 12


ModelIndex = QModelIndex | QPersistentModelIndex
KIND_HUES = {
    FileKind.IMAGE: QColor("#2f9e73"), FileKind.VIDEO: QColor("#c2417c"),
    FileKind.AUDIO: QColor("#8a5cd6"), FileKind.ARCHIVE: QColor("#c98a1b"),
    FileKind.DOCUMENT: QColor("#3a78d4"), FileKind.OTHER: QColor("#7a8491"),
}


def paint_kind_glyph(painter: QPainter, rect: QRectF, kind: FileKind, palette: QPalette) -> None:
    """A page with a folded corner in the kind's hue, and a small mark for the kind on it."""
    hue = KIND_HUES[kind]
    base = palette.color(QPalette.ColorRole.Base)
    fill = pal.mix(base, hue, 0.22 if pal.is_dark(palette) else 0.14)
    ink = hue.lighter(135) if pal.is_dark(palette) else hue
    w, h = rect.width() * 0.72, rect.height() * 0.9
    page = QRectF(rect.center().x() - w / 2, rect.center().y() - h / 2, w, h)
    fold = w * 0.32
    path = QPainterPath(QPointF(page.left() + 4, page.top()))
    path.lineTo(page.right() - fold, page.top())
    path.lineTo(page.right(), page.top() + fold)
    path.lineTo(page.right(), page.bottom() - 4)
    path.quadTo(page.right(), page.bottom(), page.right() - 4, page.bottom())
    path.lineTo(page.left() + 4, page.bottom())
    path.quadTo(page.left(), page.bottom(), page.left(), page.bottom() - 4)
    path.lineTo(page.left(), page.top() + 4)
    path.quadTo(page.left(), page.top(), page.left() + 4, page.top())
    pen = QPen(ink, 1.4)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(fill)
    painter.drawPath(path)
    corner = QPainterPath(QPointF(page.right() - fold, page.top()))
    corner.lineTo(page.right() - fold, page.top() + fold)
    corner.lineTo(page.right(), page.top() + fold)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(corner)
    c = QPointF(page.center().x(), page.center().y() + h * 0.1)
    s = w * 0.22
    painter.setBrush(ink)
    if kind is FileKind.IMAGE:
        mountain = QPainterPath(QPointF(c.x() - s * 1.3, c.y() + s))
        mountain.lineTo(c.x() - s * 0.3, c.y() - s * 0.2)
        mountain.lineTo(c.x() + s * 0.4, c.y() + s * 0.5)
        mountain.lineTo(c.x() + s * 0.8, c.y() + s * 0.1)
        mountain.lineTo(c.x() + s * 1.3, c.y() + s)
        mountain.closeSubpath()
        painter.drawPath(mountain)
        painter.drawEllipse(QPointF(c.x() + s * 0.7, c.y() - s * 0.8), s * 0.3, s * 0.3)
    elif kind is FileKind.VIDEO:
        play = QPainterPath(QPointF(c.x() - s * 0.7, c.y() - s))
        play.lineTo(c.x() + s, c.y())
        play.lineTo(c.x() - s * 0.7, c.y() + s)
        play.closeSubpath()
        painter.drawPath(play)
    elif kind is FileKind.AUDIO:
        painter.drawEllipse(QPointF(c.x() - s * 0.5, c.y() + s * 0.7), s * 0.45, s * 0.35)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawLine(QPointF(c.x() - s * 0.08, c.y() + s * 0.7),
                         QPointF(c.x() - s * 0.08, c.y() - s))
        painter.drawLine(QPointF(c.x() - s * 0.08, c.y() - s),
                         QPointF(c.x() + s * 0.8, c.y() - s * 0.6))
    elif kind is FileKind.ARCHIVE:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        x = page.left() + w * 0.42
        for i in range(4):
            y = page.top() + 5 + i * s * 0.7
            painter.drawLine(QPointF(x, y), QPointF(x + s * 0.5, y))
        painter.drawRoundedRect(QRectF(x - 1, c.y(), s * 0.8, s * 0.9), 2, 2)
    elif kind is FileKind.DOCUMENT:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for i, share in enumerate((1.0, 1.0, 0.6)):
            y = c.y() - s * 0.8 + i * s * 0.8
            left = c.x() - s * 1.1
            painter.drawLine(QPointF(left, y), QPointF(left + 2.2 * s * share, y))


class CardHost(Protocol):
    """What a card uses of the ``MessageDelegate`` that paints it: its view and fonts, and the
    parts of a row that cards share with bubbles (day header, author line, colours)."""

    view: QAbstractItemView
    font: QFont
    small: QFont
    bold_small: QFont
    small_fm: QFontMetrics
    author_h: int
    day_h: int

    def row_flags(self, model: MessageListModel, row: int) -> tuple[bool, bool, bool]: ...

    def paint_day(self, painter: QPainter, rect: QRect, label: str, palette: QPalette) -> None: ...

    def colours(self, outgoing: bool) -> tuple[QColor, QColor, QColor, QColor]: ...

    def author_colour(self, author_id: str, palette: QPalette) -> QColor: ...


@dataclass(frozen=True)
class Card:
    """Where one card's parts are, in viewport pixels."""

    box: QRect                 # the whole card
    body: QRect                # name, size, status and buttons (inside the padding)
    picture: QRect | None      # the preview above the body, when there is one
    author: bool               # a room card with its author's name on top


class FileCardPainter:
    """Geometry, painting and hit-testing of file rows, for one ``MessageDelegate``."""

    def __init__(self, delegate: CardHost, parent: QObject) -> None:
        self._d = delegate
        self.transfers: TransferCache | None = None
        self.thumbnails = ThumbnailCache(QSize(ICON * 2, ICON * 2), parent)
        self.previews = ThumbnailCache(QSize(PREVIEW, PREVIEW), parent,
                                       mode=Qt.AspectRatioMode.KeepAspectRatio,
                                       limit=PREVIEW_CACHE)
        self.name_of: Callable[[str], str] = short_peer_id  # the window knows better names
        self.thumbnails.ready.connect(lambda _path: delegate.view.viewport().update())
        self.previews.ready.connect(self._preview_ready)

    def _preview_ready(self, _path: str) -> None:
        """A preview decoded: its row is taller now."""
        self._d.view.scheduleDelayedItemsLayout()
        self._d.view.viewport().update()

    # -- geometry -------------------------------------------------------------------------------

    def info(self, item: ChatItem) -> TransferInfo | None:
        return self.transfers.get(item.transfer or "") if self.transfers is not None else None

    def picture_path(self, item: ChatItem) -> str | None:
        """The local picture a card can show: one we sent, or one received whole."""
        info = self.info(item)
        if info is None or not info.path or file_kind(info.name) is not FileKind.IMAGE:
            return None
        return info.path if info.outgoing or info.state is TransferState.COMPLETE else None

    def _picture_size(self, item: ChatItem, room: int) -> QSize | None:
        """The preview's size in a card with ``room`` pixels inside; None until decoded."""
        path = self.picture_path(item)
        pixmap = self.previews.get(path) if path else None
        if pixmap is None or pixmap.isNull():
            return None
        size = pixmap.size()
        if size.width() > room:
            size = size.scaled(room, size.height(), Qt.AspectRatioMode.KeepAspectRatio)
        return size

    def _lead(self, picture: bool) -> int:
        """The height of the name and size: beside the icon, or under a picture (no icon)."""
        if not picture:
            return ICON
        return QFontMetrics(self._name_font()).height() + 4 + self._d.small_fm.height() + 2

    def body_height(self, picture: bool = False) -> int:
        small = self._d.small_fm.height()
        return 2 * PAD + self._lead(picture) + 8 + BAR + 4 + small + 8 + BUTTON_H

    def row_height(self, item: ChatItem, flags: tuple[bool, bool, bool], width: int) -> int:
        day, group, _ = flags
        card = self.layout(QRect(0, 0, width, 0), item, flags)
        height = (GROUP_GAP if group else INNER_GAP) + card.box.height() + 1
        if day:
            height += self._d.day_h - GROUP_GAP // 2
        return height

    def layout(self, rect: QRect, item: ChatItem, flags: tuple[bool, bool, bool]) -> Card:
        """The card of ``item`` in a row at ``rect``."""
        day, group, author = flags
        d = self._d
        top = rect.top() + (GROUP_GAP if group else INNER_GAP)
        if day:
            top += d.day_h - GROUP_GAP // 2
        available = max(200, rect.width() - 2 * SIDE_MARGIN - 40)
        needed = 2 * PAD + ICON + 10 + QFontMetrics(self._name_font()).horizontalAdvance(
            item.text) + 2
        width = min(available, max(CARD_WIDTH, min(needed, MAX_CARD_WIDTH)))
        picture = self._picture_size(item, available - 2 * PAD)
        if picture is not None:
            width = min(available, max(width, picture.width() + 2 * PAD))
        author_h = d.author_h if author else 0
        picture_h = picture.height() + PAD if picture is not None else 0
        height = self.body_height(picture is not None) + author_h + picture_h
        if item.outgoing:
            left = rect.right() - SIDE_MARGIN - width + 1
        else:
            left = rect.left() + SIDE_MARGIN
        box = QRect(left, top, width, height)
        body = box.adjusted(PAD, PAD + author_h + picture_h, -PAD, -PAD)
        image = None
        if picture is not None:
            image = QRect(left + (width - picture.width()) // 2, top + PAD + author_h,
                          picture.width(), picture.height())
        return Card(box, body, image, author)

    def button_rects(self, card: Card, actions: list[FileAction]) -> list[
            tuple[FileAction, QRect]]:
        inner = card.body
        metrics = QFontMetrics(self._button_font())
        x, y = inner.left(), inner.bottom() - BUTTON_H + 1
        out = []
        for action in actions:
            width = metrics.horizontalAdvance(action_label(action)) + 22
            if x + width > inner.right() - 30:  # keep room for the time
                break
            out.append((action, QRect(x, y, width, BUTTON_H)))
            x += width + BUTTON_GAP
        return out

    def _name_font(self) -> QFont:
        bold = QFont(self._d.font)
        bold.setWeight(QFont.Weight.DemiBold)
        return bold

    def _name_rect(self, card: Card) -> QRect:
        inner = card.body
        left = inner.left() + (0 if card.picture is not None else ICON + 10)
        return QRect(left, inner.top() + 2, inner.right() - left, QFontMetrics(
            self._name_font()).height())

    def shown_name(self, index: ModelIndex) -> str:
        """The file name as the card shows it: whole unless there is no room for it."""
        found = self._geometry(index)
        if found is None:
            return ""
        item, card = found
        return self._elided_name(item, card)

    def picture_rect(self, index: ModelIndex) -> QRect:
        """Where the card's picture is shown (viewport pixels); empty without one."""
        found = self._geometry(index)
        return QRect() if found is None or found[1].picture is None else found[1].picture

    def picture_at(self, index: ModelIndex, pos: QPoint) -> bool:
        return self.picture_rect(index).contains(pos)

    def _elided_name(self, item: ChatItem, card: Card) -> str:
        info = self.info(item)
        name = info.name if info is not None else item.text
        return QFontMetrics(self._name_font()).elidedText(
            name, Qt.TextElideMode.ElideMiddle, self._name_rect(card).width())

    def _button_font(self) -> QFont:
        font = QFont(self._d.small)
        font.setWeight(QFont.Weight.DemiBold)
        return font

    def _geometry(self, index: ModelIndex) -> tuple[ChatItem, Card] | None:
        model = index.model()
        if not isinstance(model, MessageListModel) or not index.isValid():
            return None
        row = index.row()
        item = model.item(row)
        if not item.transfer:
            return None
        flags = self._d.row_flags(model, row)
        return item, self.layout(self._d.view.visualRect(index), item, flags)

    def actions(self, item: ChatItem) -> list[FileAction]:
        info = self.info(item)
        if info is None or self.transfers is None:
            return []
        return actions_for(info)

    def action_at(self, index: ModelIndex, pos: QPoint) -> FileAction | None:
        """The card button under ``pos`` (viewport pixels), if any."""
        found = self._geometry(index)
        if found is None:
            return None
        item, card = found
        for action, rect in self.button_rects(card, self.actions(item)):
            if rect.contains(pos):
                return action
        return None

    def action_rect(self, index: ModelIndex, action: FileAction) -> QRect:
        """Where a card button is painted (for keyboard focus rings and tests); empty if absent."""
        found = self._geometry(index)
        if found is None:
            return QRect()
        item, card = found
        for act, rect in self.button_rects(card, self.actions(item)):
            if act is action:
                return rect
        return QRect()

    def status_of(self, item: ChatItem) -> str:
        """The card's status line ("Waiting for Bob to accept", "45% · 1.2 MB/s · 3 s left")."""
        info = self.info(item)
        speed = self.transfers.speed(item.transfer or "") if self.transfers is not None else 0.0
        peer = self.name_of(info.peer_id) if info is not None else ""
        return status_text(info, speed, peer)

    # -- painting -------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, item: ChatItem,
              flags: tuple[bool, bool, bool], day_label: str) -> None:
        d = self._d
        rect: QRect = option.rect
        palette = d.view.palette()
        card = self.layout(rect, item, flags)
        box = card.box
        info = self.info(item)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        state = option.state
        if state & QStyle.StateFlag.State_Selected:
            band = pal.mix(palette.color(QPalette.ColorRole.Base), pal.accent(palette),
                           0.22 if pal.is_dark(palette) else 0.14)
            painter.fillRect(QRect(rect.left(), box.top() - 2, rect.width(), box.height() + 4),
                             band)
        if flags[0]:
            d.paint_day(painter, rect, day_label, palette)

        fill, fore, meta, _ = d.colours(False)  # neutral card on both sides: buttons read
        border = pal.accent(palette) if item.outgoing else pal.hairline(palette)
        painter.setPen(QPen(border, 1.2))
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(box).adjusted(0.5, 0.5, -0.5, -0.5), RADIUS, RADIUS)
        if state & QStyle.StateFlag.State_HasFocus and d.view.hasFocus():
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(pal.mix(fill, fore, 0.5), 1.5))
            painter.drawRoundedRect(QRectF(box).adjusted(-2.5, -2.5, 2.5, 2.5),
                                    RADIUS + 2, RADIUS + 2)
        inner = card.body
        if flags[2]:
            painter.setFont(d.bold_small)
            painter.setPen(d.author_colour(item.author_id, palette))
            painter.drawText(QRect(inner.left(), box.top() + PAD - 1, inner.width(), d.author_h),
                             int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
                             item.author_name)

        name = info.name if info is not None else item.text
        lead = self._lead(card.picture is not None)
        icon = QRect(inner.left(), inner.top(), ICON if card.picture is None else 0, lead)
        if card.picture is not None:
            self._paint_picture(painter, card.picture, item)
        else:
            self._paint_icon(painter, icon, name, info, palette)

        name_rect = self._name_rect(card)
        text_left, text_w, name_h = name_rect.left(), name_rect.width(), name_rect.height()
        painter.setFont(self._name_font())
        painter.setPen(fore)
        painter.drawText(name_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         self._elided_name(item, card))
        painter.setFont(d.small)
        painter.setPen(meta)
        size = human_size(info.size) if info is not None else ""
        painter.drawText(QRect(text_left, icon.top() + 4 + name_h, text_w, d.small_fm.height()),
                         int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), size)

        status_top = icon.bottom() + 9
        if info is not None and is_transferring(info):
            track = QRectF(inner.left(), status_top, inner.width(), BAR)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.mix(fill, fore, 0.15))
            painter.drawRoundedRect(track, BAR / 2, BAR / 2)
            share = min(1.0, info.bytes / info.size) if info.size else 1.0
            painter.setBrush(pal.muted_text(palette) if info.state is TransferState.PAUSED
                             else pal.accent(palette))
            painter.drawRoundedRect(QRectF(track.left(), track.top(), track.width() * share, BAR),
                                    BAR / 2, BAR / 2)
        status = self.status_of(item)
        colour = pal.ERROR if info is not None and info.state is TransferState.FAILED else meta
        painter.setPen(colour)
        painter.setFont(d.small)
        status_rect = QRect(inner.left(), status_top + BAR + 4, inner.width(), d.small_fm.height())
        painter.drawText(status_rect, int(Qt.AlignmentFlag.AlignLeft
                                          | Qt.AlignmentFlag.AlignVCenter),
                         d.small_fm.elidedText(status, Qt.TextElideMode.ElideRight, inner.width()))

        buttons = self.button_rects(card, self.actions(item))
        for i, (action, button) in enumerate(buttons):
            self._paint_button(painter, button, action_label(action), i == 0, palette, fill, fore)
        time = item.local_time.strftime("%H:%M")
        painter.setFont(d.small)
        painter.setPen(meta)
        time_rect = QRect(inner.left(), inner.bottom() - BUTTON_H + 1, inner.width(), BUTTON_H)
        painter.drawText(time_rect, int(Qt.AlignmentFlag.AlignRight
                                        | Qt.AlignmentFlag.AlignVCenter), time)
        painter.restore()

    def _paint_picture(self, painter: QPainter, where: QRect, item: ChatItem) -> None:
        path = self.picture_path(item)
        pixmap = self.previews.get(path) if path else None
        if pixmap is None:
            return
        painter.save()
        clip = QPainterPath()
        clip.addRoundedRect(QRectF(where), RADIUS - 4, RADIUS - 4)
        painter.setClipPath(clip)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(where, pixmap)
        painter.restore()

    def _paint_icon(self, painter: QPainter, icon: QRect, name: str, info: TransferInfo | None,
                    palette: QPalette) -> None:
        kind = file_kind(name)
        path = info.path if info is not None else None
        if kind is FileKind.IMAGE and path and (info is not None and (
                info.outgoing or info.state is TransferState.COMPLETE)):
            pixmap = self.thumbnails.get(path)
            if pixmap is not None:
                painter.save()
                clip = QPainterPath()
                clip.addRoundedRect(QRectF(icon), 8, 8)
                painter.setClipPath(clip)
                source = QRect(QPoint(0, 0), pixmap.size())
                side = min(source.width(), source.height())
                source = QRect((source.width() - side) // 2, (source.height() - side) // 2,
                               side, side)
                painter.drawPixmap(icon, pixmap, source)
                painter.restore()
                return
        paint_kind_glyph(painter, QRectF(icon), kind, palette)

    def _paint_button(self, painter: QPainter, rect: QRect, label: str, primary: bool,
                      palette: QPalette, fill: QColor, fore: QColor) -> None:
        accent = pal.accent(palette)
        painter.setFont(self._button_font())
        shape = QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5)
        if primary:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(accent)
            painter.drawRoundedRect(shape, BUTTON_H / 2, BUTTON_H / 2)
            painter.setPen(palette.color(QPalette.ColorRole.HighlightedText))
        else:
            painter.setPen(QPen(pal.mix(fill, fore, 0.3), 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(shape, BUTTON_H / 2, BUTTON_H / 2)
            painter.setPen(fore)
        painter.drawText(shape, Qt.AlignmentFlag.AlignCenter, label)
