"""The navigable part of the sidebar: a search box over one list of requests, rooms and contacts.

One tree with sections keeps a single scroll area and a single keyboard cursor. Rooms and
Contacts each own a placeholder row that tells a newcomer what to do next, or that the search
matched nothing; the filter proxy shows it exactly when the section has no visible entries.
Message requests from strangers get a section of their own that only exists while there are any.

The model is fed from ``client.contacts()`` and ``client.rooms()`` once and then from contact and
room events; blocked peers are kept (for "Blocked people…") but never listed. Rooms and contacts
alike are ordered by their last activity, newest first. The Rooms title carries a painted "+"
(New Room; Ctrl+Shift+N is its keyboard path) so the way to make a room sits where rooms are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from enum import Enum, IntEnum
from typing import TypeVar

from PySide6.QtCore import (
    QCoreApplication,
    QDateTime,
    QEvent,
    QLocale,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPalette,
    QResizeEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.core.records import ContactInfo, ContactState, RoomInfo, contact_tag
from ui import palette as pal
from ui.avatar import avatar_colour, paint_avatar, paint_initials
from ui.resources import tinted_icon, tinted_pixmap

ModelIndex = QModelIndex | QPersistentModelIndex

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
SHOWN_ROLE = Qt.ItemDataRole.UserRole + 3
SECTION_ROLE = Qt.ItemDataRole.UserRole + 4
CONTACT_ROLE = Qt.ItemDataRole.UserRole + 5  # the ContactInfo behind a contact or request row
ROOM_ROLE = Qt.ItemDataRole.UserRole + 6     # the RoomInfo behind a room row


class Section(Enum):
    REQUESTS = "requests"
    ROOMS = "rooms"
    CONTACTS = "contacts"


class RowKind(IntEnum):
    SECTION = 0
    PLACEHOLDER = 1
    ENTRY = 2


class ContactAction(Enum):
    """What the context menu (and the details page) can ask the window to do with a peer."""

    OPEN = "open"
    ACCEPT = "accept"
    RENAME = "rename"
    DETAILS = "details"
    BLOCK = "block"
    REMOVE = "remove"


class RoomAction(Enum):
    """What a room's context menu can ask the window to do."""

    OPEN = "open"
    INVITE = "invite"
    MEMBERS = "members"
    LEAVE = "leave"


def _matches(name: str, query: str) -> bool:
    return query.casefold() in name.casefold()


def _order(info: ContactInfo) -> tuple[float, str]:
    return (-info.last_activity, info.peer_id)


def _room_order(info: RoomInfo) -> tuple[float, str]:
    return (-info.last_activity, info.room_id)


def room_counts_text(info: RoomInfo) -> str:
    """"3 members, 2 online": the room row's tooltip and part of its accessible text."""
    members = (QCoreApplication.translate("Sidebar", "1 member") if info.members == 1
               else QCoreApplication.translate("Sidebar", "{count} members")
               .format(count=info.members))
    return QCoreApplication.translate("Sidebar", "{members}, {online} online").format(
        members=members, online=info.online)


def last_seen_text(info: ContactInfo) -> str:
    """The tooltip of a contact row: online, or when they were last seen."""
    if info.online:
        return QCoreApplication.translate("Sidebar", "Online")
    if info.last_seen is None:
        return QCoreApplication.translate("Sidebar", "Not seen yet")
    when = QDateTime.fromSecsSinceEpoch(int(info.last_seen))
    if time.time() - info.last_seen < 86_400:
        shown = QLocale().toString(when.time(), QLocale.FormatType.ShortFormat)
    else:
        shown = QLocale().toString(when, QLocale.FormatType.ShortFormat)
    return QCoreApplication.translate("Sidebar", "Last seen {when}").format(when=shown)


_Item = TypeVar("_Item")


class _SnapshotLoad:
    """A list snapshot asked for now arrives later; items events changed meanwhile are newer.

    ``begin`` when the snapshot is requested, ``touch`` on every event, ``apply`` when it
    arrives: items the snapshot lacks are dropped and the rest applied, except touched ones.
    """

    def __init__(self) -> None:
        self._touched: set[str] | None = None

    def begin(self) -> None:
        self._touched = set()

    def touch(self, key: str) -> None:
        if self._touched is not None:
            self._touched.add(key)

    def apply(self, fresh: dict[str, _Item], known: list[str], put: Callable[[_Item], None],
                 drop: Callable[[str], None]) -> None:
        touched, self._touched = self._touched or set(), None
        for key in known:
            if key not in fresh and key not in touched:
                drop(key)
        for key, item in fresh.items():
            if key not in touched:
                put(item)


class SidebarModel(QStandardItemModel):
    """Sections of placeholder rows followed by entries; contact rows carry their ContactInfo."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sections: dict[Section, QStandardItem] = {}
        self._known: dict[str, ContactInfo] = {}  # everyone, blocked included
        self._contacts_load = _SnapshotLoad()
        self._rooms: dict[str, RoomInfo] = {}
        self._rooms_load = _SnapshotLoad()
        for section, title in (
            (Section.REQUESTS, self.tr("Requests")),
            (Section.ROOMS, self.tr("Rooms")),
            (Section.CONTACTS, self.tr("Contacts")),
        ):
            item = QStandardItem(title)
            item.setData(RowKind.SECTION, KIND_ROLE)
            item.setData(section.value, SECTION_ROLE)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            placeholder = QStandardItem(self.empty_text(section))
            placeholder.setData(RowKind.PLACEHOLDER, KIND_ROLE)
            placeholder.setData(section.value, SECTION_ROLE)
            placeholder.setData(section is not Section.REQUESTS, SHOWN_ROLE)
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            item.appendRow(placeholder)
            self.appendRow(item)
            self._sections[section] = item

    def empty_text(self, section: Section) -> str:
        if section is Section.ROOMS:
            return self.tr("No rooms yet. Create one with “+”, or join one from an invite link.")
        if section is Section.REQUESTS:
            return ""
        return self.tr("No contacts yet. Share your invite below so people can add you.")

    def no_match_text(self, section: Section, query: str) -> str:
        if section is Section.ROOMS:
            return self.tr("No rooms match “{query}”.").format(query=query)
        return self.tr("No contacts match “{query}”.").format(query=query)

    def section_item(self, section: Section) -> QStandardItem:
        return self._sections[section]

    def placeholder(self, section: Section) -> QStandardItem:
        item = self._sections[section].child(0)
        assert item is not None
        return item

    def entries(self, section: Section) -> list[tuple[str, str]]:
        """(key, shown name) of a section's rows, in display order."""
        parent = self._sections[section]
        out = []
        for row in range(1, parent.rowCount()):
            child = parent.child(row)
            if child is not None:
                out.append((str(child.data(KEY_ROLE)), child.text()))
        return out

    def add_entry(self, section: Section, key: str, name: str) -> QStandardItem:
        item = self._entry_item(section, key, name)
        self._sections[section].appendRow([item])
        return item

    def _entry_item(self, section: Section, key: str, name: str) -> QStandardItem:
        item = QStandardItem(name)
        item.setData(RowKind.ENTRY, KIND_ROLE)
        item.setData(key, KEY_ROLE)
        item.setData(section.value, SECTION_ROLE)
        item.setToolTip(name)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        return item

    def set_entries(self, section: Section, entries: Iterable[tuple[str, str]]) -> None:
        parent = self._sections[section]
        if parent.rowCount() > 1:
            parent.removeRows(1, parent.rowCount() - 1)
        for key, name in entries:
            self.add_entry(section, key, name)

    # -- contacts ---------------------------------------------------------------------------

    def contact(self, peer_id: str) -> ContactInfo | None:
        """What we know about a peer (contact, request or blocked)."""
        return self._known.get(peer_id)

    def contacts(self, section: Section = Section.CONTACTS) -> list[ContactInfo]:
        parent = self._sections[section]
        out = []
        for row in range(1, parent.rowCount()):
            child = parent.child(row)
            info = child.data(CONTACT_ROLE) if child is not None else None
            if isinstance(info, ContactInfo):
                out.append(info)
        return out

    def blocked(self) -> list[ContactInfo]:
        found = [c for c in self._known.values() if c.state is ContactState.BLOCKED]
        return sorted(found, key=lambda c: c.name.casefold())

    def begin_load(self) -> None:
        """A ``contacts()`` snapshot was asked for: remember which peers events touch meanwhile."""
        self._contacts_load.begin()

    def load(self, infos: Iterable[ContactInfo]) -> None:
        """Apply a snapshot; peers that events changed since ``begin_load`` keep the newer data."""
        self._contacts_load.apply({c.peer_id: c for c in infos}, list(self._known),
                                  self._apply, self._drop)

    def upsert_contact(self, info: ContactInfo) -> None:
        self._contacts_load.touch(info.peer_id)
        self._apply(info)

    def remove_contact(self, peer_id: str) -> None:
        self._contacts_load.touch(peer_id)
        self._drop(peer_id)

    def _find(self, peer_id: str) -> tuple[Section, int] | None:
        for section in (Section.REQUESTS, Section.CONTACTS):
            parent = self._sections[section]
            for row in range(1, parent.rowCount()):
                child = parent.child(row)
                if child is not None and child.data(KEY_ROLE) == peer_id:
                    return section, row
        return None

    def _drop(self, peer_id: str) -> None:
        self._known.pop(peer_id, None)
        found = self._find(peer_id)
        if found is not None:
            section, row = found
            self._sections[section].removeRow(row)

    def _apply(self, info: ContactInfo) -> None:
        self._known[info.peer_id] = info
        target = {
            ContactState.REQUEST: Section.REQUESTS,
            ContactState.CONTACT: Section.CONTACTS,
        }.get(info.state)
        found = self._find(info.peer_id)
        if target is None:  # blocked: kept for the "Blocked people" dialog, never listed
            if found is not None:
                self._sections[found[0]].removeRow(found[1])
            return
        parent = self._sections[target]
        others = [c for c in self.contacts(target) if c.peer_id != info.peer_id]
        position = 1 + sum(1 for c in others if _order(c) < _order(info))
        if found is not None and found[0] is target and found[1] == position:
            item = parent.child(position)
            assert item is not None
            self._fill(item, info)  # in place: keeps the selection and the scroll position
            return
        if found is not None:
            self._sections[found[0]].removeRow(found[1])
        item = self._entry_item(target, info.peer_id, info.name)
        self._fill(item, info)
        parent.insertRow(position, [item])  # the list form hands ownership to Qt

    def _fill(self, item: QStandardItem, info: ContactInfo) -> None:
        item.setData(info, CONTACT_ROLE)
        if item.text() != info.name:
            item.setText(info.name)
        item.setToolTip(last_seen_text(info))
        parts = [info.name, self.tr("online") if info.online else self.tr("offline")]
        if info.verified:
            parts.append(self.tr("verified"))
        else:
            parts.append(self.tr("not verified, id ending {tag}").format(
                tag=contact_tag(info).lstrip("…")))
        if info.unread:
            parts.append(self.tr("{count} unread").format(count=info.unread))
        if info.state is ContactState.REQUEST:
            parts.append(self.tr("message request"))
        item.setData(", ".join(parts), Qt.ItemDataRole.AccessibleTextRole)

    # -- rooms ------------------------------------------------------------------------------

    def room(self, room_id: str) -> RoomInfo | None:
        return self._rooms.get(room_id)

    def rooms(self) -> list[RoomInfo]:
        """The rooms in display order."""
        parent = self._sections[Section.ROOMS]
        out = []
        for row in range(1, parent.rowCount()):
            child = parent.child(row)
            info = child.data(ROOM_ROLE) if child is not None else None
            if isinstance(info, RoomInfo):
                out.append(info)
        return out

    def begin_rooms_load(self) -> None:
        self._rooms_load.begin()

    def load_rooms(self, infos: Iterable[RoomInfo]) -> None:
        """Apply a ``rooms()`` snapshot; rooms events changed since the load began keep theirs."""
        self._rooms_load.apply({r.room_id: r for r in infos}, list(self._rooms),
                               self._apply_room, self._drop_room)

    def upsert_room(self, info: RoomInfo) -> None:
        self._rooms_load.touch(info.room_id)
        self._apply_room(info)

    def remove_room(self, room_id: str) -> None:
        self._rooms_load.touch(room_id)
        self._drop_room(room_id)

    def _room_row(self, room_id: str) -> int | None:
        parent = self._sections[Section.ROOMS]
        for row in range(1, parent.rowCount()):
            child = parent.child(row)
            if child is not None and child.data(KEY_ROLE) == room_id:
                return row
        return None

    def _drop_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        row = self._room_row(room_id)
        if row is not None:
            self._sections[Section.ROOMS].removeRow(row)

    def _apply_room(self, info: RoomInfo) -> None:
        self._rooms[info.room_id] = info
        parent = self._sections[Section.ROOMS]
        found = self._room_row(info.room_id)
        others = [r for r in self.rooms() if r.room_id != info.room_id]
        position = 1 + sum(1 for r in others if _room_order(r) < _room_order(info))
        if found == position:
            item = parent.child(position)
            assert item is not None
            self._fill_room(item, info)  # in place: keeps the selection and the scroll position
            return
        if found is not None:
            parent.removeRow(found)
        item = self._entry_item(Section.ROOMS, info.room_id, info.name)
        self._fill_room(item, info)
        parent.insertRow(position, [item])

    def _fill_room(self, item: QStandardItem, info: RoomInfo) -> None:
        item.setData(info, ROOM_ROLE)
        if item.text() != info.name:
            item.setText(info.name)
        counts = room_counts_text(info)
        item.setToolTip(f"{info.description}\n{counts}" if info.description else counts)
        parts = [self.tr("Room {name}").format(name=info.name), counts]
        if info.unread:
            parts.append(self.tr("{count} unread").format(count=info.unread))
        item.setData(", ".join(parts), Qt.ItemDataRole.AccessibleTextRole)

    # -- placeholders -----------------------------------------------------------------------

    def update_placeholders(self, query: str) -> None:
        """Show a section's placeholder when it has no entry matching ``query``."""
        for section in (Section.ROOMS, Section.CONTACTS):
            names = [name for _, name in self.entries(section)]
            placeholder = self.placeholder(section)
            if not names:
                text, shown = self.empty_text(section), True
            elif query and not any(_matches(n, query) for n in names):
                text, shown = self.no_match_text(section, query), True
            else:
                text, shown = placeholder.text(), False
            if placeholder.text() != text:
                placeholder.setText(text)
            if placeholder.data(SHOWN_ROLE) != shown:
                placeholder.setData(shown, SHOWN_ROLE)


class SidebarFilter(QSortFilterProxyModel):
    """Filters entries by name; sections show (Requests only with a match), placeholders when
    the model says so."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._query = ""

    def set_query(self, query: str) -> None:
        self.beginFilterChange()
        self._query = query
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        kind = index.data(KIND_ROLE)
        if kind == RowKind.PLACEHOLDER:
            return bool(index.data(SHOWN_ROLE))
        if kind == RowKind.ENTRY:
            return _matches(str(index.data(Qt.ItemDataRole.DisplayRole) or ""), self._query)
        if index.data(SECTION_ROLE) == Section.REQUESTS.value:
            return any(
                _matches(str(model.index(row, 0, index).data() or ""), self._query)
                for row in range(1, model.rowCount(index))
            )
        return True


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


class SidebarView(QTreeView):
    """The tree without tree chrome: no header, no indentation, no collapsing.

    The context menu (right click, the Menu key, Shift+F10) is asked for with
    ``menu_requested(index, global position)`` so the owner decides what it offers.
    """

    menu_requested = Signal(QModelIndex, QPoint)
    add_room_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setItemsExpandable(False)
        self.setIndentation(0)
        self.setUniformRowHeights(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setStyleSheet("QTreeView { background: transparent; }")
        self.viewport().setAutoFillBackground(False)
        self.delegate = SidebarDelegate(self)
        self.setItemDelegate(self.delegate)

    def add_room_point(self) -> QPoint | None:
        """The centre of the Rooms title's "+" in viewport pixels (for tests and hit testing)."""
        model = self.model()
        if model is None:
            return None
        for row in range(model.rowCount()):
            index = model.index(row, 0)
            if index.data(SECTION_ROLE) == Section.ROOMS.value:
                return self.delegate.add_room_rect(self.visualRect(index)).center()
        return None

    def _over_add_room(self, pos: QPoint) -> bool:
        index = self.indexAt(pos)
        if index.data(KIND_ROLE) != RowKind.SECTION or (
            index.data(SECTION_ROLE) != Section.ROOMS.value
        ):
            return False
        return self.delegate.add_room_rect(self.visualRect(index)).adjusted(-3, -3, 3, 3).contains(
            pos)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        over = self._over_add_room(event.position().toPoint())
        if over != self.delegate.hovered_add_room:
            self.delegate.hovered_add_room = over
            self.viewport().setCursor(
                Qt.CursorShape.PointingHandCursor if over else Qt.CursorShape.ArrowCursor)
            self.viewport().update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        if self.delegate.hovered_add_room:
            self.delegate.hovered_add_room = False
            self.viewport().update()
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if (event.button() == Qt.MouseButton.LeftButton
                and self._over_add_room(event.position().toPoint())):
            self.add_room_clicked.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            # Wrapped placeholder text changes height with the width.
            self.scheduleDelayedItemsLayout()

    def _menu_at_current(self) -> None:
        index = self.currentIndex()
        if index.isValid():
            centre = self.visualRect(index).center()
            self.menu_requested.emit(index, self.viewport().mapToGlobal(centre))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        shift_f10 = (event.key() == Qt.Key.Key_F10
                     and event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if event.key() == Qt.Key.Key_Menu or shift_f10:
            self._menu_at_current()
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            self._menu_at_current()
            return
        index = self.indexAt(event.pos())
        if index.isValid():
            self.setCurrentIndex(index)
            self.menu_requested.emit(index, event.globalPos())


class Sidebar(QWidget):
    """Search box, "+" (add a contact) and the list.

    ``activated(section, key)`` when an entry is opened; ``contact_action(action, peer id)``
    from the context menu; ``add_requested`` from the "+" button.
    """

    activated = Signal(str, str)
    contact_action = Signal(str, str)
    room_action = Signal(str, str)  # RoomAction value, room id
    add_requested = Signal()
    new_room_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        self.search = QLineEdit(self)
        self.search.setObjectName("search")
        self.search.setPlaceholderText(self.tr("Search"))
        self.search.setAccessibleName(self.tr("Search rooms and contacts"))
        self.search.setClearButtonEnabled(True)
        self._search_icon = self.search.addAction(
            QIcon(), QLineEdit.ActionPosition.LeadingPosition
        )
        self.search.textChanged.connect(self._on_query)
        self.search.installEventFilter(self)
        self.add_button = QToolButton(self)
        self.add_button.setAutoRaise(True)
        self.add_button.setToolTip(self.tr("Add a contact (Ctrl+N)"))
        self.add_button.setAccessibleName(self.tr("Add a contact"))
        self.add_button.clicked.connect(self.add_requested)
        search_row = QHBoxLayout()
        search_row.setContentsMargins(12, 0, 8, 0)
        search_row.setSpacing(4)
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.add_button)
        layout.addLayout(search_row)

        self.model = SidebarModel(self)
        self.proxy = SidebarFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = SidebarView(self)
        self.view.setModel(self.proxy)
        self.view.setAccessibleName(self.tr("Rooms and contacts"))
        self.view.activated.connect(self._on_activated)
        self.view.clicked.connect(self._on_activated)
        self.view.menu_requested.connect(self._show_menu)
        self.view.add_room_clicked.connect(self.new_room_requested)
        layout.addWidget(self.view, 1)
        self.menu: QMenu | None = None  # the last context menu shown (tests look at it)
        self._open_key: str | None = None

        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset,
                       self.model.dataChanged):
            signal.connect(self._refresh)
        self.proxy.rowsInserted.connect(lambda *_: self.view.expandAll())
        self.proxy.layoutChanged.connect(lambda *_: self.view.expandAll())
        self._apply_style()
        self._refresh()

    def _apply_style(self) -> None:
        palette = self.palette()
        self._search_icon.setIcon(
            tinted_icon("search", palette.color(QPalette.ColorRole.PlaceholderText))
        )
        self.add_button.setIcon(tinted_icon("plus", palette.color(QPalette.ColorRole.WindowText)))
        self.search.setStyleSheet(
            f"""
            QLineEdit#search {{
                border: 1px solid {pal.hairline(palette).name()}; border-radius: 8px;
                padding: 5px 6px; background: palette(base);
            }}
            QLineEdit#search:focus {{ border: 1px solid {pal.accent(palette).name()}; }}
            """
        )

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_style()

    def query(self) -> str:
        return self.search.text().strip()

    def _on_query(self, _text: str) -> None:
        self._refresh()

    def _refresh(self, *_: object) -> None:
        query = self.query()
        self.model.blockSignals(True)  # placeholder text is not a change worth re-filtering for
        try:
            self.model.update_placeholders(query)
        finally:
            self.model.blockSignals(False)
        self.proxy.set_query(query)
        self.view.expandAll()
        self._restore_selection()

    # -- what is shown ----------------------------------------------------------------------

    def _visible(self, kind: RowKind) -> list[QModelIndex]:
        found = []
        for row in range(self.proxy.rowCount()):
            section = self.proxy.index(row, 0)
            for child in range(self.proxy.rowCount(section)):
                index = self.proxy.index(child, 0, section)
                if index.data(KIND_ROLE) == kind:
                    found.append(index)
        return found

    def visible_entries(self) -> list[str]:
        """Names of the entries the filter lets through, in display order."""
        return [str(i.data(Qt.ItemDataRole.DisplayRole)) for i in self._visible(RowKind.ENTRY)]

    def visible_sections(self) -> list[str]:
        return [
            str(self.proxy.index(row, 0).data(SECTION_ROLE)) for row in range(self.proxy.rowCount())
        ]

    def placeholder_texts(self) -> list[str]:
        """The placeholder rows currently shown (empty states and "no match")."""
        return [
            str(i.data(Qt.ItemDataRole.DisplayRole)) for i in self._visible(RowKind.PLACEHOLDER)
        ]

    def index_of(self, peer_id: str) -> QModelIndex | None:
        """The visible row of a peer, if the filter shows it."""
        for index in self._visible(RowKind.ENTRY):
            if index.data(KEY_ROLE) == peer_id:
                return index
        return None

    def row_info(self, peer_id: str) -> ContactInfo | None:
        """The ContactInfo a visible row shows."""
        index = self.index_of(peer_id)
        info = index.data(CONTACT_ROLE) if index is not None else None
        return info if isinstance(info, ContactInfo) else None

    def room_row_info(self, room_id: str) -> RoomInfo | None:
        """The RoomInfo a visible room row shows."""
        index = self.index_of(room_id)
        info = index.data(ROOM_ROLE) if index is not None else None
        return info if isinstance(info, RoomInfo) else None

    def _first_entry(self) -> QModelIndex | None:
        entries = self._visible(RowKind.ENTRY)
        return entries[0] if entries else None

    # -- selection --------------------------------------------------------------------------

    def select_peer(self, peer_id: str | None) -> None:
        """Highlight the open conversation's row (kept across re-ordering); None clears it."""
        self._open_key = peer_id
        if peer_id is None:
            self.view.clearSelection()
            return
        self._restore_selection()

    def _restore_selection(self) -> None:
        if self._open_key is None:
            return
        index = self.index_of(self._open_key)
        if index is None:
            return
        selection = self.view.selectionModel()
        if selection is not None and not selection.isSelected(index):
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)

    # -- keyboard and menus -----------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Down in the search box moves into the list; Enter opens the first match."""
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            first = self._first_entry()
            if event.key() == Qt.Key.Key_Down and first is not None:
                self.view.setFocus(Qt.FocusReason.TabFocusReason)
                self.view.setCurrentIndex(first)
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and first is not None:
                self.view.setCurrentIndex(first)
                self._on_activated(first)
                return True
        return super().eventFilter(watched, event)

    def _on_activated(self, index: QModelIndex) -> None:
        if index.data(KIND_ROLE) != RowKind.ENTRY:
            return
        key = str(index.data(KEY_ROLE))
        self._open_key = key
        self.activated.emit(str(index.data(SECTION_ROLE)), key)

    def contact_menu(self, peer_id: str) -> QMenu | None:
        """The actions offered for a contact or a request; None for anything else."""
        info = self.model.contact(peer_id)
        if info is None or info.state is ContactState.BLOCKED:
            return None
        menu = QMenu(self)
        menu.setAccessibleName(self.tr("Actions for {name}").format(name=info.name))

        def add(text: str, action: ContactAction) -> QAction:
            item = menu.addAction(text)
            item.setObjectName(action.value)
            item.triggered.connect(lambda: self.contact_action.emit(action.value, peer_id))
            return item

        add(self.tr("&Open"), ContactAction.OPEN)
        if info.state is ContactState.REQUEST:
            add(self.tr("&Accept"), ContactAction.ACCEPT)
        else:
            add(self.tr("&Rename…"), ContactAction.RENAME)
            add(self.tr("&Details and verification…"), ContactAction.DETAILS)
        menu.addSeparator()
        add(self.tr("&Block"), ContactAction.BLOCK)
        if info.state is ContactState.CONTACT:
            add(self.tr("Re&move…"), ContactAction.REMOVE)
        return menu

    def room_menu(self, room_id: str) -> QMenu | None:
        """Open, Invite people…, Members, Leave room… for a room; None for anything else."""
        info = self.model.room(room_id)
        if info is None:
            return None
        menu = QMenu(self)
        menu.setAccessibleName(self.tr("Actions for {name}").format(name=info.name))

        def add(text: str, action: RoomAction) -> QAction:
            item = menu.addAction(text)
            item.setObjectName(action.value)
            item.triggered.connect(lambda: self.room_action.emit(action.value, room_id))
            return item

        add(self.tr("&Open"), RoomAction.OPEN)
        add(self.tr("&Invite People…"), RoomAction.INVITE)
        add(self.tr("&Members"), RoomAction.MEMBERS)
        menu.addSeparator()
        add(self.tr("&Leave Room…"), RoomAction.LEAVE)
        return menu

    def _show_menu(self, index: QModelIndex, where: QPoint) -> None:
        if index.data(KIND_ROLE) != RowKind.ENTRY:
            return
        key = str(index.data(KEY_ROLE))
        if index.data(SECTION_ROLE) == Section.ROOMS.value:
            menu = self.room_menu(key)
        else:
            menu = self.contact_menu(key)
        if menu is None:
            return
        if self.menu is not None:
            self.menu.deleteLater()
        self.menu = menu
        menu.popup(where)
