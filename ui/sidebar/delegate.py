"""Paints the sidebar's rows: no widget per row, like the conversation's ``MessageDelegate``.

Section titles are small capitals, and the Rooms (or Chats) title carries a painted "+" (New
Room; Ctrl+Shift+N is its keyboard path) so the way to make a room sits where rooms are.
Contacts get an avatar with a presence dot, the verified mark, a preview of the last message
and an unread badge; rooms a rounded-square avatar and how many of their members are online.
Every entry shows this device's choices: a pin, a muted bell (its badge goes grey), a dot when
marked unread, and "Draft:" before an unsent draft.

Colours come from one place, ``row_colours``: the view sits on the sidebar pane and its own
palette is not what shows behind a row, so unselected rows take the window's colours, selected
ones the highlight, and text is made readable on whatever background it lands on.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTreeView

from app.core.markdown import plain
from app.core.records import ChatPrefs, ContactInfo, ContactState, RoomInfo, contact_tag
from ui.sidebar.model import (
    CONTACT_ROLE,
    DRAFT_ROLE,
    KIND_ROLE,
    PREFS_ROLE,
    ROOM_ROLE,
    SECTION_ROLE,
    TYPING_ROLE,
    ModelIndex,
    RowKind,
    Section,
    room_counts_text,
)
from ui.style import palette as pal
from ui.style.resources import tinted_pixmap
from ui.widgets.avatar import avatar_colour, paint_avatar, paint_initials

NEW_ROOM_SECTIONS = (Section.ROOMS.value, Section.CHATS.value)  # titles with a "+"
MARK = 14  # the pin, the muted bell and the verified mark


@dataclass(frozen=True)
class RowColours:
    """What one row is painted with; text colours are readable on ``background``."""

    background: QColor
    name: QColor
    preview: QColor
    draft: QColor       # the "Draft:" before an unsent draft
    mark: QColor        # pin and bell
    verified: QColor    # the verified mark
    badge: QColor
    badge_text: QColor


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

    # -- colours --------------------------------------------------------------------------------

    def row_colours(self, option: QStyleOptionViewItem, muted: bool = False) -> RowColours:
        """The colours of an entry painted with ``option`` (selected or not)."""
        window = self._view.window().palette()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            background = option.palette.color(QPalette.ColorRole.Highlight)
            name = pal.readable_on(background,
                                   option.palette.color(QPalette.ColorRole.HighlightedText))
            preview = name
            draft = name
            badge, badge_text = name, background
            verified = name
        else:
            background = pal.sidebar_background(window)
            name = pal.readable_on(background, window.color(QPalette.ColorRole.WindowText))
            preview = pal.readable_on(background, pal.mix(name, background, 0.35))
            draft = pal.readable_on(background, pal.mix(pal.ERROR, name, 0.2))
            badge = pal.accent(window)
            badge_text = pal.readable_on(badge, window.color(QPalette.ColorRole.HighlightedText))
            verified = pal.accent(window)
        if muted and not selected:
            badge = pal.mix(background, name, 0.45)
            badge_text = pal.readable_on(badge, background)
        return RowColours(background, name, preview, draft, pal.mix(preview, background, 0.15),
                          verified, badge, badge_text)

    # -- painting -------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        kind = index.data(KIND_ROLE)
        rect: QRect = option.rect
        palette = self._view.window().palette()
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        painter.save()
        if kind == RowKind.SECTION:
            painter.setFont(self._section_font(option.font))
            painter.setPen(pal.readable_on(pal.sidebar_background(palette),
                                           palette.color(QPalette.ColorRole.PlaceholderText)))
            text_rect = rect.adjusted(self.PAD, 0, -self.PAD, -6)
            painter.drawText(
                text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, text
            )
            if index.data(SECTION_ROLE) in NEW_ROOM_SECTIONS:
                self._paint_add_room(painter, rect, palette)
        elif kind == RowKind.PLACEHOLDER:
            painter.setPen(pal.readable_on(pal.sidebar_background(palette),
                                           palette.color(QPalette.ColorRole.PlaceholderText)))
            text_rect = rect.adjusted(self.PAD, 2, -self.PAD, -2)
            painter.drawText(
                text_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap), text
            )
        else:
            info = index.data(CONTACT_ROLE)
            room = index.data(ROOM_ROLE)
            prefs = index.data(PREFS_ROLE)
            prefs = prefs if isinstance(prefs, ChatPrefs) else ChatPrefs("")
            draft = str(index.data(DRAFT_ROLE) or "")
            typing = str(index.data(TYPING_ROLE) or "")
            if isinstance(info, ContactInfo):
                self._paint_contact(painter, option, info, prefs, draft, typing)
            elif isinstance(room, RoomInfo):
                self._paint_room(painter, option, room, prefs, draft, typing)
            else:
                self._paint_entry(painter, option, text)
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

    def _card(self, painter: QPainter, option: QStyleOptionViewItem,
              colours: RowColours) -> QRectF:
        """The row's rounded card: the highlight when selected, a tint under the mouse."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = QRectF(option.rect.adjusted(8, 2, -8, -2))
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colours.background)
            painter.drawRoundedRect(card, 8, 8)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.hairline(self._view.window().palette()))
            painter.drawRoundedRect(card, 8, 8)
        return card

    def _paint_entry(self, painter: QPainter, option: QStyleOptionViewItem, text: str) -> None:
        colours = self.row_colours(option)
        card = self._card(painter, option, colours)
        avatar = QRectF(card.left() + 8, card.center().y() - 14, 28, 28)
        paint_avatar(painter, avatar, text)
        painter.setPen(colours.name)
        text_rect = card.adjusted(avatar.width() + 18, 0, -8, 0).toRect()
        elided = option.fontMetrics.elidedText(
            text, Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
        )

    def _paint_room(self, painter: QPainter, option: QStyleOptionViewItem, info: RoomInfo,
                    prefs: ChatPrefs, draft: str, typing: str = "") -> None:
        colours = self.row_colours(option, prefs.muted)
        card = self._card(painter, option, colours)
        # A rounded square, not a circle: rooms and people read apart at a glance.
        avatar = QRectF(card.left() + 8, card.center().y() - 16, 32, 32)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(avatar_colour(info.name))
        painter.drawRoundedRect(avatar, 9, 9)
        paint_initials(painter, avatar, info.name)  # as the round avatars draw them
        small = QFont(option.font)
        small.setPointSizeF(option.font.pointSizeF() * 0.85)
        counts = f"{info.online}/{info.members}"
        preview = " ".join(plain(info.last_message).split()) or info.description
        self._paint_lines(painter, option, card, avatar, colours, info.name, info.unread, prefs,
                          "" if typing else draft, typing or preview or room_counts_text(info),
                          after_name=(counts, small, info.online > 1))

    def _paint_contact(self, painter: QPainter, option: QStyleOptionViewItem, info: ContactInfo,
                       prefs: ChatPrefs, draft: str, typing: str = "") -> None:
        colours = self.row_colours(option, prefs.muted)
        card = self._card(painter, option, colours)
        avatar = QRectF(card.left() + 8, card.center().y() - 16, 32, 32)
        paint_avatar(painter, avatar, info.name)
        # Presence dot on the avatar, ringed in the row colour so it reads on any avatar hue.
        dot = QRectF(avatar.right() - 9, avatar.bottom() - 9, 11, 11)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colours.background)
        painter.drawEllipse(dot.adjusted(-2, -2, 2, 2))
        painter.setBrush(pal.ONLINE if info.online else colours.preview)
        painter.drawEllipse(dot)
        preview = plain(info.last_message)
        if info.state is ContactState.REQUEST and not preview:
            preview = self.tr("Message request")
        self._paint_lines(painter, option, card, avatar, colours, info.name, info.unread, prefs,
                          "" if typing else draft, typing or " ".join(preview.split()),
                          verified=info.verified,
                          tag=contact_tag(info))

    def _paint_lines(self, painter: QPainter, option: QStyleOptionViewItem, card: QRectF,
                     avatar: QRectF, colours: RowColours, name: str, unread: int,
                     prefs: ChatPrefs, draft: str, preview: str, *, verified: bool = False,
                     after_name: tuple[str, QFont, bool] | None = None, tag: str = "") -> None:
        """The name line (name, the end of an unverified contact's peer id, verified mark,
        room counts, muted bell, pin) and the preview line (or the draft), with the unread
        badge on the right."""
        left = int(avatar.right() + 10)
        right = int(card.right() - 8)
        ratio = painter.device().devicePixelRatioF()
        badge_width = 0
        if unread or prefs.marked_unread:
            badge_width = self._paint_badge(painter, option, right, card, unread, colours)
        name_font = QFont(option.font)
        name_font.setBold(unread > 0 or prefs.marked_unread)
        metrics = QFontMetrics(name_font)
        line_height = metrics.height()
        top = int(card.center().y() - line_height - 1)

        marks = [icon for icon, on in (("verified", verified), ("bell-off", prefs.muted),
                                        ("pin", prefs.pinned)) if on]
        marks_width = len(marks) * (MARK + 4)
        extra = 0
        if after_name is not None:
            text, font, _ = after_name
            extra = QFontMetrics(font).horizontalAdvance(text) + 20
        # Until verified, the end of the peer id follows the name: look-alike names differ.
        tag_width = option.fontMetrics.horizontalAdvance(tag) + 6 if tag else 0
        name_width = max(10, right - left - badge_width - marks_width - extra - tag_width - 4)
        shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, name_width)
        painter.setFont(name_font)
        painter.setPen(colours.name)
        painter.drawText(QRect(left, top, name_width, line_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
        x = left + metrics.horizontalAdvance(shown) + 4
        if tag:
            painter.setFont(option.font)
            painter.setPen(colours.preview)
            painter.drawText(QRect(x + 2, top, tag_width, line_height),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, tag)
            x += tag_width
        if after_name is not None:  # "● 2/3": online of members, right after the name
            text, font, lively = after_name
            dot = QRectF(x + 4, top + line_height / 2 - 3, 6, 6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.ONLINE if lively else colours.preview)
            painter.drawEllipse(dot)
            painter.setFont(font)
            painter.setPen(colours.preview)
            painter.drawText(QRect(int(dot.right() + 3), top, extra, line_height),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
            x += extra
        for icon in marks:
            colour = colours.verified if icon == "verified" else colours.mark
            pixmap = tinted_pixmap(icon, colour, MARK, ratio)
            painter.drawPixmap(x, top + (line_height - MARK) // 2, pixmap)
            x += MARK + 4

        painter.setFont(option.font)
        fm = option.fontMetrics
        preview_width = max(10, right - left - badge_width - 4)
        line = QRect(left, int(card.center().y() + 1), preview_width, fm.height())
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        if draft:
            label = self.tr("Draft:") + " "
            painter.setPen(colours.draft)
            painter.drawText(line, flags, label)
            offset = fm.horizontalAdvance(label)
            line = line.adjusted(offset, 0, 0, 0)
            preview = " ".join(plain(draft).split())
        painter.setPen(colours.preview)
        painter.drawText(line, flags,
                         fm.elidedText(preview, Qt.TextElideMode.ElideRight, line.width()))

    def _paint_badge(self, painter: QPainter, option: QStyleOptionViewItem, right: int,
                     card: QRectF, count: int, colours: RowColours) -> int:
        """The unread count on the right; a plain dot for a conversation marked unread."""
        font = QFont(option.font)
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        metrics = QFontMetrics(font)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colours.badge)
        if count <= 0:
            side = 10
            painter.drawEllipse(QRectF(right - side, card.center().y() - side / 2, side, side))
            return side + 6
        text = str(count) if count < 1000 else "999+"
        height = metrics.height() + 4
        width = max(height, metrics.horizontalAdvance(text) + 10)
        badge = QRectF(right - width, card.center().y() - height / 2, width, height)
        painter.drawRoundedRect(badge, height / 2, height / 2)
        painter.setFont(font)
        painter.setPen(colours.badge_text)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        return width + 6
