"""The sidebar's rows: sections of requests, rooms and contacts, and the filter over them.

One tree with sections keeps a single scroll area and a single keyboard cursor (``view``). Rooms
and Contacts each own a placeholder row that tells a newcomer what to do next, or that the search
matched nothing; the filter proxy shows it exactly when the section has no visible entries.
Message requests from strangers get a section of their own that only exists while there are any.

The model is fed from ``client.contacts()`` and ``client.rooms()`` once and then from contact and
room events; blocked peers are kept (for "Blocked people…") but never listed. Rooms and contacts
alike are ordered by their last activity, newest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from enum import Enum, IntEnum
from typing import TypeVar

from PySide6.QtCore import (
    QCoreApplication,
    QDateTime,
    QLocale,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QStandardItem, QStandardItemModel

from app.core.records import ContactInfo, ContactState, RoomInfo, contact_tag

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
