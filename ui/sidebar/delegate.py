"""Paints the sidebar's rows: no widget per row, like the conversation's ``MessageDelegate``.

Section titles are small capitals, and the Rooms title carries a painted "+" (New Room;
Ctrl+Shift+N is its keyboard path) so the way to make a room sits where rooms are. Contacts get
an avatar with a presence dot, the verified mark, a preview of the last message and an unread
badge; rooms a rounded-square avatar and how many of their members are online.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTreeView

from app.core.records import ContactInfo, ContactState, RoomInfo, contact_tag
from ui.sidebar.model import (
    CONTACT_ROLE,
    KIND_ROLE,
    ROOM_ROLE,
    SECTION_ROLE,
    ModelIndex,
    RowKind,
    Section,
    room_counts_text,
)
from ui.style import palette as pal
from ui.style.resources import tinted_pixmap
from ui.widgets.avatar import avatar_colour, paint_avatar, paint_initials


class SidebarDelegate(QStyledItemDelegate):
    """Paints section titles, wrapped placeholder text, and entries with an avatar; contacts
    get presence, the verified mark, a message preview and an unread badge."""

    ENTRY_HEIGHT = 44
    CONTACT_HEIGHT = 54
    PAD = 16

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self._view = view
        self.hovered_add_room = False  # the mouse is over the Rooms title's "+"

    def _section_font(self, base: QFont) -> QFont:
        font = QFont(base)
        font.setBold(True)
        font.setPointSizeF(base.pointSizeF() * 0.85)
        font.setCapitalization(QFont.Capitalization.AllUppercase)
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 106)
        return font

    def _text_width(self) -> int:
        return max(40, self._view.viewport().width() - 2 * self.PAD)

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        kind = index.data(KIND_ROLE)
        width = self._view.viewport().width()
        if kind == RowKind.SECTION:
            metrics = QFontMetrics(self._section_font(option.font))
            return QSize(width, metrics.height() + (22 if index.row() else 16))
        if kind == RowKind.PLACEHOLDER:
            metrics = QFontMetrics(option.font)
            rect = metrics.boundingRect(
                QRect(0, 0, self._text_width(), 10_000),
                int(Qt.TextFlag.TextWordWrap),
                str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
            )
            return QSize(width, rect.height() + 10)
        if isinstance(index.data(CONTACT_ROLE), ContactInfo) or isinstance(
            index.data(ROOM_ROLE), RoomInfo
        ):
            return QSize(width, self.CONTACT_HEIGHT)
        return QSize(width, self.ENTRY_HEIGHT)

    def add_room_rect(self, rect: QRect) -> QRect:
        """Where the Rooms title's "+" is painted (and clicked), in viewport pixels."""
        side = 22
        return QRect(rect.right() - self.PAD - side + 6, rect.bottom() - side - 2, side, side)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        kind = index.data(KIND_ROLE)
        rect: QRect = option.rect
        palette: QPalette = option.palette
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        painter.save()
        if kind == RowKind.SECTION:
            painter.setFont(self._section_font(option.font))
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            text_rect = rect.adjusted(self.PAD, 0, -self.PAD, -6)
            painter.drawText(
                text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, text
            )
            if index.data(SECTION_ROLE) == Section.ROOMS.value:
                self._paint_add_room(painter, rect, palette)
        elif kind == RowKind.PLACEHOLDER:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            text_rect = rect.adjusted(self.PAD, 2, -self.PAD, -2)
            painter.drawText(
                text_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap), text
            )
        else:
            info = index.data(CONTACT_ROLE)
            room = index.data(ROOM_ROLE)
            if isinstance(info, ContactInfo):
                self._paint_contact(painter, option, rect, palette, info)
            elif isinstance(room, RoomInfo):
                self._paint_room(painter, option, rect, palette, room)
            else:
                self._paint_entry(painter, option, rect, palette, text)
        painter.restore()

    def _paint_add_room(self, painter: QPainter, rect: QRect, palette: QPalette) -> None:
        box = self.add_room_rect(rect)
        hovered = self.hovered_add_room
        if hovered:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.hairline(palette))
            painter.drawRoundedRect(QRectF(box), 6, 6)
        colour = palette.color(
            QPalette.ColorRole.WindowText if hovered else QPalette.ColorRole.PlaceholderText
        )
        ratio = painter.device().devicePixelRatioF()
        pixmap = tinted_pixmap("plus", colour, 16, ratio)
        painter.drawPixmap(box.left() + (box.width() - 16) // 2,
                           box.top() + (box.height() - 16) // 2, pixmap)

    def _paint_room(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        rect: QRect,
        palette: QPalette,
        info: RoomInfo,
    ) -> None:
        card, selected = self._card(painter, option, rect, palette)
        window_palette = self._view.window().palette()
        row_bg = (
            palette.color(QPalette.ColorRole.Highlight) if selected
            else pal.sidebar_background(window_palette)
        )
        # A rounded square, not a circle: rooms and people read apart at a glance.
        avatar = QRectF(card.left() + 8, card.center().y() - 16, 32, 32)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(avatar_colour(info.name))
        painter.drawRoundedRect(avatar, 9, 9)
        paint_initials(painter, avatar, info.name)  # as the round avatars draw them

        text_colour = (palette.color(QPalette.ColorRole.HighlightedText) if selected
                       else window_palette.color(QPalette.ColorRole.WindowText))
        muted = pal.mix(text_colour, row_bg, 0.4)
        left = int(avatar.right() + 10)
        right = int(card.right() - 8)

        badge_width = 0
        if info.unread:
            badge_width = self._paint_badge(painter, option, right, card, info.unread, selected,
                                            palette)
        small = QFont(option.font)
        small.setPointSizeF(option.font.pointSizeF() * 0.85)
        small_metrics = QFontMetrics(small)
        counts = f"{info.online}/{info.members}"
        counts_width = small_metrics.horizontalAdvance(counts) + 14
        name_font = QFont(option.font)
        name_font.setBold(info.unread > 0)
        metrics = QFontMetrics(name_font)
        line_height = metrics.height()
        top = int(card.center().y() - line_height - 1)
        name_width = max(10, right - left - badge_width - counts_width - 6)
        name = metrics.elidedText(info.name, Qt.TextElideMode.ElideRight, name_width)
        painter.setFont(name_font)
        painter.setPen(text_colour)
        painter.drawText(QRect(left, top, name_width, line_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        # "● 2/3": online of members, right after the name.
        x = left + metrics.horizontalAdvance(name) + 8
        dot = QRectF(x, top + line_height / 2 - 3, 6, 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pal.ONLINE if info.online > 1 else muted)
        painter.drawEllipse(dot)
        painter.setFont(small)
        painter.setPen(muted)
        painter.drawText(QRect(int(dot.right() + 3), top, counts_width, line_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, counts)

        preview = " ".join(info.last_message.split()) or info.description
        if not preview:
            preview = room_counts_text(info)
        painter.setFont(option.font)
        painter.setPen(muted)
        fm = option.fontMetrics
        preview_width = max(10, right - left - badge_width - 4)
        painter.drawText(
            QRect(left, int(card.center().y() + 1), preview_width, fm.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            fm.elidedText(preview, Qt.TextElideMode.ElideRight, preview_width),
        )

    def _card(self, painter: QPainter, option: QStyleOptionViewItem, rect: QRect,
              palette: QPalette) -> tuple[QRectF, bool]:
        state = option.state
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = QRectF(rect.adjusted(8, 2, -8, -2))
        selected = bool(state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
            painter.drawRoundedRect(card, 8, 8)
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.hairline(palette))
            painter.drawRoundedRect(card, 8, 8)
        return card, selected

    def _paint_entry(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        rect: QRect,
        palette: QPalette,
        text: str,
    ) -> None:
        card, selected = self._card(painter, option, rect, palette)
        avatar = QRectF(card.left() + 8, card.center().y() - 14, 28, 28)
        paint_avatar(painter, avatar, text)
        role = (
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.WindowText
        )
        painter.setPen(palette.color(role))
        text_rect = card.adjusted(avatar.width() + 18, 0, -8, 0).toRect()
        elided = option.fontMetrics.elidedText(
            text, Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
        )

    def _paint_contact(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        rect: QRect,
        palette: QPalette,
        info: ContactInfo,
    ) -> None:
        card, selected = self._card(painter, option, rect, palette)
        # The view's own palette has a transparent background (it sits on the sidebar pane):
        # blend against the window's colours instead.
        window_palette = self._view.window().palette()
        row_bg = (
            palette.color(QPalette.ColorRole.Highlight) if selected
            else pal.sidebar_background(window_palette)
        )
        avatar = QRectF(card.left() + 8, card.center().y() - 16, 32, 32)
        paint_avatar(painter, avatar, info.name)
        # Presence dot on the avatar, ringed in the row colour so it reads on any avatar hue.
        dot = QRectF(avatar.right() - 9, avatar.bottom() - 9, 11, 11)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(row_bg)
        painter.drawEllipse(dot.adjusted(-2, -2, 2, 2))
        painter.setBrush(pal.ONLINE if info.online else pal.muted_text(window_palette))
        painter.drawEllipse(dot)

        text_colour = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.WindowText
        )
        muted = pal.mix(text_colour, row_bg, 0.4)
        left = int(avatar.right() + 10)
        right = int(card.right() - 8)

        badge_width = 0
        if info.unread:
            badge_width = self._paint_badge(painter, option, right, card, info.unread, selected,
                                            palette)
        name_font = QFont(option.font)
        name_font.setBold(info.unread > 0)
        metrics = QFontMetrics(name_font)
        line_height = metrics.height()
        top = int(card.center().y() - line_height - 1)
        mark = 14 if info.verified else 0
        # Until verified, the end of the peer id follows the name: look-alike names differ.
        tag = contact_tag(info)
        tag_width = option.fontMetrics.horizontalAdvance(tag) + 6 if tag else 0
        name_width = max(10, right - left - badge_width - (mark + 4 if mark else 0)
                         - tag_width - 4)
        name = metrics.elidedText(info.name, Qt.TextElideMode.ElideRight, name_width)
        painter.setFont(name_font)
        painter.setPen(text_colour)
        painter.drawText(QRect(left, top, name_width, line_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        if tag:
            painter.setFont(option.font)
            painter.setPen(muted)
            painter.drawText(QRect(left + metrics.horizontalAdvance(name) + 6, top, tag_width,
                                   line_height),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, tag)
        if mark:
            x = left + metrics.horizontalAdvance(name) + 4
            colour = text_colour if selected else pal.accent(palette)
            pixmap = tinted_pixmap("verified", colour, mark, painter.device().devicePixelRatioF())
            painter.drawPixmap(x, top + (line_height - mark) // 2, pixmap)

        preview = info.last_message
        if info.state is ContactState.REQUEST and not preview:
            preview = self.tr("Message request")
        preview = " ".join(preview.split())
        painter.setFont(option.font)
        painter.setPen(muted)
        small = option.fontMetrics
        preview_width = max(10, right - left - badge_width - 4)
        painter.drawText(
            QRect(left, int(card.center().y() + 1), preview_width, small.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            small.elidedText(preview, Qt.TextElideMode.ElideRight, preview_width),
        )

    def _paint_badge(self, painter: QPainter, option: QStyleOptionViewItem, right: int,
                     card: QRectF, count: int, selected: bool, palette: QPalette) -> int:
        text = str(count) if count < 1000 else "999+"
        font = QFont(option.font)
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        metrics = QFontMetrics(font)
        height = metrics.height() + 4
        width = max(height, metrics.horizontalAdvance(text) + 10)
        badge = QRectF(right - width, card.center().y() - height / 2, width, height)
        fill = palette.color(QPalette.ColorRole.HighlightedText) if selected else pal.accent(
            palette)
        ink = pal.accent(palette) if selected else palette.color(
            QPalette.ColorRole.HighlightedText)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(badge, height / 2, height / 2)
        painter.setFont(font)
        painter.setPen(QColor(ink))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        return width + 6
