"""The sidebar's rows: sections of requests, rooms and contacts, and the filter over them.

One tree with sections keeps a single scroll area and a single keyboard cursor (``view``). Rooms
and Contacts each own a placeholder row that tells a newcomer what to do next, or that the search
matched nothing; the filter proxy shows it exactly when the section has no visible entries.
Message requests from strangers get a section of their own that only exists while there are any.

The model is fed from ``client.contacts()`` and ``client.rooms()`` once and then from contact and
room events; blocked peers are kept (for "Blocked people…") but never listed. Rooms and contacts
alike are ordered by their last activity, newest first, pinned ones first of all. With
``one_list`` (Settings ▸ Appearance) rooms and contacts share one section, Chats, ordered the
same way. Each entry also carries this device's choices for it (``ChatPrefs``: pinned, muted,
marked unread) and its unsent draft, which the delegate marks.

An entry's ``SECTION_ROLE`` says what it is (a room, a contact or a request) whichever section
it is listed under, so the window opens it the same way in both layouts.
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

from app.core.records import ChatPrefs, ContactInfo, ContactState, RoomInfo, contact_tag

ModelIndex = QModelIndex | QPersistentModelIndex

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
SHOWN_ROLE = Qt.ItemDataRole.UserRole + 3
SECTION_ROLE = Qt.ItemDataRole.UserRole + 4
CONTACT_ROLE = Qt.ItemDataRole.UserRole + 5  # the ContactInfo behind a contact or request row
ROOM_ROLE = Qt.ItemDataRole.UserRole + 6     # the RoomInfo behind a room row
PREFS_ROLE = Qt.ItemDataRole.UserRole + 7    # the entry's ChatPrefs
DRAFT_ROLE = Qt.ItemDataRole.UserRole + 8    # the entry's unsent draft ("" when none)
TYPING_ROLE = Qt.ItemDataRole.UserRole + 30  # "typing…" in place of the preview ("" when not)


class Section(Enum):
    REQUESTS = "requests"
    CHATS = "chats"         # rooms and contacts together (``one_list``)
    ROOMS = "rooms"
    CONTACTS = "contacts"


class RowKind(IntEnum):
    SECTION = 0
    PLACEHOLDER = 1
    ENTRY = 2


def _matches(name: str, query: str) -> bool:
    return query.casefold() in name.casefold()


def _key(info: ContactInfo | RoomInfo) -> str:
    return info.peer_id if isinstance(info, ContactInfo) else info.room_id


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
    """Sections of placeholder rows followed by entries; contact rows carry their ContactInfo,
    room rows their RoomInfo, both their ChatPrefs and draft."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sections: dict[Section, QStandardItem] = {}
        self._known: dict[str, ContactInfo] = {}  # everyone, blocked included
        self._contacts_load = _SnapshotLoad()
        self._rooms: dict[str, RoomInfo] = {}
        self._rooms_load = _SnapshotLoad()
        self._prefs: dict[str, ChatPrefs] = {}
        self._drafts: dict[str, str] = {}
        self._typing: dict[str, str] = {}
        self.one_list = False
        for section, title in (
            (Section.REQUESTS, self.tr("Requests")),
            (Section.CHATS, self.tr("Chats")),
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
        if section is Section.CHATS:
            return self.tr("No conversations yet. Share your invite below so people can add "
                           "you, or create a room with “+”.")
        return self.tr("No contacts yet. Share your invite below so people can add you.")

    def no_match_text(self, section: Section, query: str) -> str:
        if section is Section.ROOMS:
            return self.tr("No rooms match “{query}”.").format(query=query)
        if section is Section.CHATS:
            return self.tr("Nothing matches “{query}”.").format(query=query)
        return self.tr("No contacts match “{query}”.").format(query=query)

    def shown_sections(self) -> tuple[Section, ...]:
        """The sections of the current layout, top to bottom (Requests only while any)."""
        if self.one_list:
            return (Section.REQUESTS, Section.CHATS)
        return (Section.REQUESTS, Section.ROOMS, Section.CONTACTS)

    def placeholder(self, section: Section) -> QStandardItem:
        item = self._sections[section].child(0)
        assert item is not None
        return item

    def _children(self, section: Section) -> list[QStandardItem]:
        parent = self._sections[section]
        return [child for row in range(1, parent.rowCount())
                if (child := parent.child(row)) is not None]

    def entries(self, section: Section) -> list[tuple[str, str]]:
        """(key, shown name) of a section's rows, in display order."""
        return [(str(child.data(KEY_ROLE)), child.text()) for child in self._children(section)]

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

    # -- where an entry goes ----------------------------------------------------------------

    def _listed_in(self, kind: Section) -> Section:
        """The section an entry of ``kind`` (rooms, contacts, requests) is listed under."""
        if self.one_list and kind in (Section.ROOMS, Section.CONTACTS):
            return Section.CHATS
        return kind

    def _order(self, info: ContactInfo | RoomInfo) -> tuple[bool, float, str]:
        """Pinned first, then the newest activity first."""
        key = _key(info)
        return (not self.prefs(key).pinned, -info.last_activity, key)

    def _locate(self, key: str) -> tuple[Section, int] | None:
        for section, parent in self._sections.items():
            for row in range(1, parent.rowCount()):
                child = parent.child(row)
                if child is not None and child.data(KEY_ROLE) == key:
                    return section, row
        return None

    def _infos(self, section: Section) -> list[ContactInfo | RoomInfo]:
        out: list[ContactInfo | RoomInfo] = []
        for child in self._children(section):
            info = child.data(CONTACT_ROLE) or child.data(ROOM_ROLE)
            if isinstance(info, ContactInfo | RoomInfo):
                out.append(info)
        return out

    def _place(self, kind: Section, info: ContactInfo | RoomInfo) -> QStandardItem:
        """Put the entry for ``info`` where its kind and order say; returns its item (the same
        item when it stays where it is, so the selection and the scroll position stay)."""
        key = _key(info)
        target = self._listed_in(kind)
        parent = self._sections[target]
        others = [i for i in self._infos(target) if _key(i) != key]
        position = 1 + sum(1 for i in others if self._order(i) < self._order(info))
        found = self._locate(key)
        if found is not None and found[0] is target and found[1] == position:
            item = parent.child(position)
            assert item is not None
            if item.data(SECTION_ROLE) == kind.value:
                return item
        if found is not None:
            self._sections[found[0]].removeRow(found[1])
        item = self._entry_item(kind, key, info.name)
        parent.insertRow(position, [item])  # the list form hands ownership to Qt
        return item

    def _mark(self, item: QStandardItem, key: str) -> None:
        prefs = self.prefs(key)
        if item.data(PREFS_ROLE) != prefs:
            item.setData(prefs, PREFS_ROLE)
        draft = self._drafts.get(key, "")
        if item.data(DRAFT_ROLE) != draft:
            item.setData(draft, DRAFT_ROLE)
        typing = self._typing.get(key, "")
        if (item.data(TYPING_ROLE) or "") != typing:
            item.setData(typing, TYPING_ROLE)

    def set_one_list(self, one: bool) -> None:
        """Rooms and contacts in one Chats list (True) or in sections of their own."""
        if one == self.one_list:
            return
        self.one_list = one
        for info in list(self._known.values()):
            self._apply(info)
        for room in list(self._rooms.values()):
            self._apply_room(room)

    # -- this device's choices and drafts ---------------------------------------------------

    def prefs(self, key: str) -> ChatPrefs:
        """Pinned, muted, marked unread (the defaults when nothing was chosen)."""
        return self._prefs.get(key) or ChatPrefs(key)

    def load_prefs(self, prefs: Iterable[ChatPrefs]) -> None:
        """Apply ``client.chat_prefs()``: every conversation not in it is at the default."""
        fresh = {p.conversation: p for p in prefs}
        for key in set(self._prefs) | set(fresh):
            self.set_prefs(fresh.get(key) or ChatPrefs(key))

    def set_prefs(self, prefs: ChatPrefs) -> None:
        key = prefs.conversation
        if prefs.is_default:
            self._prefs.pop(key, None)
        else:
            self._prefs[key] = prefs
        self._refresh_entry(key)

    def draft(self, key: str) -> str:
        return self._drafts.get(key, "")

    def load_drafts(self, drafts: dict[str, str]) -> None:
        for key in set(self._drafts) | set(drafts):
            self.set_draft(key, drafts.get(key, ""))

    def set_draft(self, key: str, text: str) -> None:
        if text.strip():
            self._drafts[key] = text
        else:
            self._drafts.pop(key, None)
        self._refresh_entry(key)

    def typing(self, key: str) -> str:
        return self._typing.get(key, "")

    def set_typing(self, key: str, text: str) -> None:
        """"typing…" in place of the entry's preview while someone types there ("" ends it)."""
        if text:
            self._typing[key] = text
        else:
            self._typing.pop(key, None)
        self._refresh_entry(key)

    def _refresh_entry(self, key: str) -> None:
        contact, room = self._known.get(key), self._rooms.get(key)
        if contact is not None:
            self._apply(contact)
        elif room is not None:
            self._apply_room(room)

    # -- contacts ---------------------------------------------------------------------------

    def contact(self, peer_id: str) -> ContactInfo | None:
        """What we know about a peer (contact, request or blocked)."""
        return self._known.get(peer_id)

    def contacts(self, section: Section = Section.CONTACTS) -> list[ContactInfo]:
        """The contacts (or requests) in display order, whichever section lists them."""
        state = ContactState.REQUEST if section is Section.REQUESTS else ContactState.CONTACT
        return [info for info in self._infos(self._listed_in(section))
                if isinstance(info, ContactInfo) and info.state is state]

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

    def _drop(self, peer_id: str) -> None:
        self._known.pop(peer_id, None)
        self._remove_row(peer_id)

    def _remove_row(self, key: str) -> None:
        found = self._locate(key)
        if found is not None:
            self._sections[found[0]].removeRow(found[1])

    def _apply(self, info: ContactInfo) -> None:
        self._known[info.peer_id] = info
        kind = {
            ContactState.REQUEST: Section.REQUESTS,
            ContactState.CONTACT: Section.CONTACTS,
        }.get(info.state)
        if kind is None:  # blocked: kept for the "Blocked people" dialog, never listed
            self._remove_row(info.peer_id)
            return
        item = self._place(kind, info)
        self._fill(item, info)

    def _fill(self, item: QStandardItem, info: ContactInfo) -> None:
        item.setData(info, CONTACT_ROLE)
        if item.text() != info.name:
            item.setText(info.name)
        item.setToolTip(last_seen_text(info))
        self._mark(item, info.peer_id)
        prefs = self.prefs(info.peer_id)
        parts = [info.name, self.tr("online") if info.online else self.tr("offline")]
        if info.verified:
            parts.append(self.tr("verified"))
        else:
            parts.append(self.tr("not verified, id ending {tag}").format(
                tag=contact_tag(info).lstrip("…")))
        parts += self._described(info.unread, prefs, info.peer_id)
        if info.state is ContactState.REQUEST:
            parts.append(self.tr("message request"))
        item.setData(", ".join(parts), Qt.ItemDataRole.AccessibleTextRole)

    def _described(self, unread: int, prefs: ChatPrefs, key: str) -> list[str]:
        """What a screen reader hears after the name: unread, pinned, muted, a draft."""
        parts = []
        if unread:
            parts.append(self.tr("{count} unread").format(count=unread))
        elif prefs.marked_unread:
            parts.append(self.tr("marked unread"))
        if prefs.pinned:
            parts.append(self.tr("pinned"))
        if prefs.muted:
            parts.append(self.tr("muted"))
        if self._drafts.get(key):
            parts.append(self.tr("draft"))
        return parts

    # -- rooms ------------------------------------------------------------------------------

    def room(self, room_id: str) -> RoomInfo | None:
        return self._rooms.get(room_id)

    def rooms(self) -> list[RoomInfo]:
        """The rooms in display order."""
        return [info for info in self._infos(self._listed_in(Section.ROOMS))
                if isinstance(info, RoomInfo)]

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

    def _drop_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        self._remove_row(room_id)

    def _apply_room(self, info: RoomInfo) -> None:
        self._rooms[info.room_id] = info
        item = self._place(Section.ROOMS, info)
        self._fill_room(item, info)

    def _fill_room(self, item: QStandardItem, info: RoomInfo) -> None:
        item.setData(info, ROOM_ROLE)
        if item.text() != info.name:
            item.setText(info.name)
        counts = room_counts_text(info)
        item.setToolTip(f"{info.description}\n{counts}" if info.description else counts)
        self._mark(item, info.room_id)
        parts = [self.tr("Room {name}").format(name=info.name), counts]
        parts += self._described(info.unread, self.prefs(info.room_id), info.room_id)
        item.setData(", ".join(parts), Qt.ItemDataRole.AccessibleTextRole)

    # -- placeholders -----------------------------------------------------------------------

    def update_placeholders(self, query: str) -> None:
        """Show a section's placeholder when it has no entry matching ``query``."""
        for section in (Section.CHATS, Section.ROOMS, Section.CONTACTS):
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
        section = Section(index.data(SECTION_ROLE))
        if isinstance(model, SidebarModel) and section not in model.shown_sections():
            return False  # the other layout's sections (Chats, or Rooms and Contacts)
        if section is Section.REQUESTS:
            return any(
                _matches(str(model.index(row, 0, index).data() or ""), self._query)
                for row in range(1, model.rowCount(index))
            )
        return True
