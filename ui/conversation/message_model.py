"""The rows of one conversation, for a ``QListView`` and ``MessageDelegate``.

A conversation can hold 100,000 messages, so the view never owns a widget per message and the
model only holds the pages loaded so far: ``prepend_page`` adds older ones at the top,
``append`` adds new ones at the bottom, and ``update_state`` finds a row by key in O(1).

Keys map to *positions* that never change once given out (older pages get smaller numbers), so
prepending does not renumber the map; row = position - position of row 0. Day separators and
message groups are not fake rows: ``starts_day``/``starts_group`` compare a row with the one
above, and the delegate paints the date header inside the first row of each day.

Room posts carry the room's shared order; ``insert_sorted`` puts a post that history sync brought
late where it belongs instead of at the bottom. That is the one write that renumbers positions
(of the rows below it), which stays cheap because late posts are rare and usually recent.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QDate,
    QLocale,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from app.core.records import Delivery, short_peer_id
from ui.conversation.chat_item import ChatItem, RoomOrder

ModelIndex = QModelIndex | QPersistentModelIndex

GROUP_GAP_MS = 5 * 60 * 1000  # messages from one author closer than this form one group


class Role(IntEnum):
    ITEM = Qt.ItemDataRole.UserRole + 1        # the ChatItem itself
    KEY = Qt.ItemDataRole.UserRole + 2
    SEQ = Qt.ItemDataRole.UserRole + 3
    OUTGOING = Qt.ItemDataRole.UserRole + 4
    STATE = Qt.ItemDataRole.UserRole + 5       # Delivery
    ERROR = Qt.ItemDataRole.UserRole + 6
    TIME = Qt.ItemDataRole.UserRole + 7        # "14:05"
    DAY_START = Qt.ItemDataRole.UserRole + 8   # bool: a date header goes above this row
    DAY_LABEL = Qt.ItemDataRole.UserRole + 9   # "Today", "Yesterday", or the date
    GROUP_START = Qt.ItemDataRole.UserRole + 10  # bool: first of a run by the same author
    AUTHOR_ID = Qt.ItemDataRole.UserRole + 11
    AUTHOR_NAME = Qt.ItemDataRole.UserRole + 12
    SHOW_AUTHOR = Qt.ItemDataRole.UserRole + 13  # bool: paint the author's name above it
    SENT_AT = Qt.ItemDataRole.UserRole + 14      # milliseconds since the epoch


class MessageListModel(QAbstractListModel):
    """Oldest message at row 0; ``show_author`` is for rooms, where names go on bubbles."""

    def __init__(self, parent: QObject | None = None, *, show_author: bool = False) -> None:
        super().__init__(parent)
        self.show_author = show_author
        self.peer_name = ""  # a contact's conversation: their name, for "held for Bob"
        self._items: list[ChatItem] = []
        self._days: list[int] = []
        self._positions: dict[str, int] = {}
        self._first = 0  # the position of row 0

    # -- reading ------------------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's API
        return 0 if parent.isValid() else len(self._items)

    def item(self, row: int) -> ChatItem:
        return self._items[row]

    def items(self) -> Sequence[ChatItem]:
        return self._items

    def row_of(self, key: str) -> int | None:
        position = self._positions.get(key)
        return None if position is None else position - self._first

    def index_of(self, key: str) -> QModelIndex:
        row = self.row_of(key)
        return QModelIndex() if row is None else self.index(row)

    @property
    def oldest_seq(self) -> int | None:
        return self._items[0].seq if self._items else None

    @property
    def oldest_order(self) -> RoomOrder | None:
        """The room order of row 0: the ``before`` cursor for the next older page."""
        return self._items[0].order if self._items else None

    def starts_day(self, row: int) -> bool:
        return row == 0 or self._days[row] != self._days[row - 1]

    def starts_group(self, row: int) -> bool:
        if self.starts_day(row):
            return True
        item, previous = self._items[row], self._items[row - 1]
        return (
            item.notice or previous.notice
            or item.outgoing != previous.outgoing
            or item.author_id != previous.author_id
            or item.sent_at_ms - previous.sent_at_ms > GROUP_GAP_MS
        )

    def shows_author(self, row: int) -> bool:
        return self.show_author and not self._items[row].outgoing and self.starts_group(row)

    def day_label(self, row: int, today: date | None = None) -> str:
        day = date.fromordinal(self._days[row])
        today = today or date.today()
        delta = (today - day).days
        if delta == 0:
            return self.tr("Today")
        if delta == 1:
            return self.tr("Yesterday")
        locale, qday = QLocale(), QDate(day.year, day.month, day.day)
        if day.year == today.year and 0 < delta < 180:
            return locale.toString(qday, "dddd, d MMMM")
        return locale.toString(qday, "d MMMM yyyy")

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        row = index.row()
        item = self._items[row]
        if role == Role.ITEM:
            return item
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return item.text
        if role == Qt.ItemDataRole.ToolTipRole:
            if item.state is Delivery.FAILED:
                return self.tr("Not delivered: {reason}").format(
                    reason=item.error or self.tr("unknown reason")
                )
            if item.held_by is not None and item.state is Delivery.SENT:
                return self.tr(
                    "Held for {name} by the mailbox {mailbox}: they get it when they next come "
                    "online, even if you are offline then."
                ).format(name=self.peer_name or self.tr("them"),
                         mailbox=short_peer_id(item.held_by))
            return item.local_time.strftime("%Y-%m-%d %H:%M:%S")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.author_name}, {item.local_time.strftime('%H:%M')}: {item.text}"
        simple = {
            Role.KEY: item.key,
            Role.SEQ: item.seq,
            Role.OUTGOING: item.outgoing,
            Role.STATE: item.state,
            Role.ERROR: item.error,
            Role.AUTHOR_ID: item.author_id,
            Role.AUTHOR_NAME: item.author_name,
            Role.SENT_AT: item.sent_at_ms,
        }
        if role in simple:
            return simple[Role(role)]
        if role == Role.TIME:
            return item.local_time.strftime("%H:%M")
        if role == Role.DAY_START:
            return self.starts_day(row)
        if role == Role.DAY_LABEL:
            return self.day_label(row)
        if role == Role.GROUP_START:
            return self.starts_group(row)
        if role == Role.SHOW_AUTHOR:
            return self.shows_author(row)
        return None

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        # Editable only so the view can open the read-only text browser for partial selection.
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable
        )

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        for role in Role:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names

    # -- writing ------------------------------------------------------------------------------

    def reset(self, items: Iterable[ChatItem] = ()) -> None:
        """Replace everything (a conversation was opened)."""
        self.beginResetModel()
        self._items = []
        self._positions = {}
        self._first = 0
        for item in items:
            if item.key not in self._positions:
                self._positions[item.key] = len(self._items)
                self._items.append(item)
        self._days = [item.day for item in self._items]
        self.endResetModel()

    def clear(self) -> None:
        self.reset(())

    def prepend_page(self, items: Iterable[ChatItem]) -> int:
        """Insert an older page (oldest first) at the top; returns how many rows were added."""
        fresh: list[ChatItem] = []
        seen: set[str] = set()
        for item in items:
            if item.key not in self._positions and item.key not in seen:
                seen.add(item.key)
                fresh.append(item)
        if not fresh:
            return 0
        count = len(fresh)
        self.beginInsertRows(QModelIndex(), 0, count - 1)
        self._first -= count
        for offset, item in enumerate(fresh):
            self._positions[item.key] = self._first + offset
        self._items[:0] = fresh
        self._days[:0] = [item.day for item in fresh]
        self.endInsertRows()
        if len(self._items) > count:  # the old first row may no longer start a day or group
            boundary = self.index(count)
            self.dataChanged.emit(boundary, boundary)
        return count

    def append(self, item: ChatItem) -> bool:
        """Add a new message at the bottom; False if that key is already shown."""
        if item.key in self._positions:
            return False
        row = len(self._items)
        self.beginInsertRows(QModelIndex(), row, row)
        self._positions[item.key] = self._first + row
        self._items.append(item)
        self._days.append(item.day)
        self.endInsertRows()
        return True

    def insert_sorted(self, item: ChatItem) -> bool:
        """Add a room post at its place in the room's order; False if that key is shown.

        Usually that is the bottom (a live post); a post synced late lands above newer ones.
        Rows must all carry an ``order`` (room conversations); without one it is appended.
        """
        if item.key in self._positions:
            return False
        if item.order is None or not self._items or (
            self._items[-1].order is not None and self._items[-1].order < item.order
        ):
            return self.append(item)
        orders = [i.order or (0, "", "") for i in self._items]
        row = bisect.bisect_left(orders, item.order)
        self.beginInsertRows(QModelIndex(), row, row)
        if row == 0:
            self._first -= 1  # like a page above: no position changes
            self._positions[item.key] = self._first
        else:
            for below in self._items[row:]:  # shift everything under the new row down by one
                self._positions[below.key] += 1
            self._positions[item.key] = self._first + row
        self._items.insert(row, item)
        self._days.insert(row, item.day)
        self.endInsertRows()
        if row + 1 < len(self._items):  # the next row may no longer start a day or a group
            after = self.index(row + 1)
            self.dataChanged.emit(after, after)
        return True

    def remove(self, key: str) -> bool:
        """Take a message off the list (a room post that lost an equivocation); False if it
        is not shown."""
        row = self.row_of(key)
        if row is None:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._positions[key]
        for below in self._items[row + 1:]:  # everything under it moves up by one
            self._positions[below.key] -= 1
        del self._items[row]
        del self._days[row]
        self.endRemoveRows()
        if row < len(self._items):  # the next row may now start a day or a group
            after = self.index(row)
            self.dataChanged.emit(after, after)
        return True

    def update_held(self, key: str, mailbox: str) -> bool:
        """A mailbox holds the sent message ``key`` for its recipient ("held for Bob")."""
        row = self.row_of(key)
        if row is None:
            return False
        item = self._items[row]
        if item.state not in (Delivery.SENDING, Delivery.SENT):
            return True  # delivered (or refused) meanwhile: that wins
        self._items[row] = dataclasses.replace(item, state=Delivery.SENT, held_by=mailbox)
        index = self.index(row)
        self.dataChanged.emit(index, index, [Role.STATE, Qt.ItemDataRole.ToolTipRole])
        return True

    def update_state(self, key: str, state: Delivery, error: str | None = None) -> bool:
        """A delivery state changed; False if the message is not loaded (nothing to do)."""
        row = self.row_of(key)
        if row is None:
            return False
        item = self._items[row]
        if item.state is state and item.error == error:
            return True
        self._items[row] = item.with_state(state, error)
        index = self.index(row)
        self.dataChanged.emit(index, index, [Role.STATE, Role.ERROR, Qt.ItemDataRole.ToolTipRole])
        return True

    def row_of_message(self, message_id: str) -> int | None:
        """The row of a message or post by its id (a file card is keyed by its transfer)."""
        row = self.row_of(message_id)
        if row is not None:
            return row
        return next((r for r, item in enumerate(self._items) if item.message_id == message_id),
                    None)

    def change(self, message_id: str, **changes: Any) -> bool:
        """Replace fields of a loaded message (its text after an edit, its reactions); False
        if it is not loaded."""
        row = self.row_of_message(message_id)
        if row is None:
            return False
        self._items[row] = dataclasses.replace(self._items[row], **changes)
        index = self.index(row)
        self.dataChanged.emit(index, index)
        return True

    def rename_author(self, author_id: str, name: str) -> None:
        """A contact was renamed: their name on every loaded row (used by rooms)."""
        changed = False
        for row, item in enumerate(self._items):
            if item.author_id == author_id and item.author_name != name:
                self._items[row] = dataclasses.replace(item, author_name=name)
                changed = True
        if changed and self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))
