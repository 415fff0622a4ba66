"""The navigable part of the sidebar: a search box over one list of rooms and contacts.

One tree with two sections keeps a single scroll area and a single keyboard cursor. Each section
owns a placeholder row that tells a newcomer what to do next, or that the search matched nothing;
the filter proxy shows it exactly when the section has no visible entries. Later issues replace
``SidebarModel`` with real room and contact models; the view, delegate and filter stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, IntEnum

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QPainter,
    QPalette,
    QResizeEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ui import palette as pal
from ui.avatar import paint_avatar
from ui.resources import tinted_icon

ModelIndex = QModelIndex | QPersistentModelIndex

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
SHOWN_ROLE = Qt.ItemDataRole.UserRole + 3
SECTION_ROLE = Qt.ItemDataRole.UserRole + 4


class Section(Enum):
    ROOMS = "rooms"
    CONTACTS = "contacts"


class RowKind(IntEnum):
    SECTION = 0
    PLACEHOLDER = 1
    ENTRY = 2


def _matches(name: str, query: str) -> bool:
    return query.casefold() in name.casefold()


class SidebarModel(QStandardItemModel):
    """Two sections, each a placeholder row followed by entries (key, display name)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sections: dict[Section, QStandardItem] = {}
        for section, title in (
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
            placeholder.setData(True, SHOWN_ROLE)
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            item.appendRow(placeholder)
            self.appendRow(item)
            self._sections[section] = item

    def empty_text(self, section: Section) -> str:
        if section is Section.ROOMS:
            return self.tr("No rooms yet.")
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
        parent = self._sections[section]
        out = []
        for row in range(1, parent.rowCount()):
            child = parent.child(row)
            if child is not None:
                out.append((str(child.data(KEY_ROLE)), child.text()))
        return out

    def add_entry(self, section: Section, key: str, name: str) -> QStandardItem:
        item = QStandardItem(name)
        item.setData(RowKind.ENTRY, KIND_ROLE)
        item.setData(key, KEY_ROLE)
        item.setData(section.value, SECTION_ROLE)
        item.setToolTip(name)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self._sections[section].appendRow(item)
        return item

    def set_entries(self, section: Section, entries: Iterable[tuple[str, str]]) -> None:
        parent = self._sections[section]
        if parent.rowCount() > 1:
            parent.removeRows(1, parent.rowCount() - 1)
        for key, name in entries:
            self.add_entry(section, key, name)

    def update_placeholders(self, query: str) -> None:
        """Show a section's placeholder when it has no entry matching ``query``."""
        for section in Section:
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
    """Filters entries by name; sections always show, placeholders when the model says so."""

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
        return True


class SidebarDelegate(QStyledItemDelegate):
    """Paints section titles, wrapped placeholder text, and entries with an avatar."""

    ENTRY_HEIGHT = 44
    PAD = 16

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self._view = view

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
        return QSize(width, self.ENTRY_HEIGHT)

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
        elif kind == RowKind.PLACEHOLDER:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            text_rect = rect.adjusted(self.PAD, 2, -self.PAD, -2)
            painter.drawText(
                text_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap), text
            )
        else:
            self._paint_entry(painter, option, rect, palette, text)
        painter.restore()

    def _paint_entry(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        rect: QRect,
        palette: QPalette,
        text: str,
    ) -> None:
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


class SidebarView(QTreeView):
    """The tree without tree chrome: no header, no indentation, no collapsing."""

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

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            # Wrapped placeholder text changes height with the width.
            self.scheduleDelayedItemsLayout()


class Sidebar(QWidget):
    """Search box and list; ``activated(section, key)`` when an entry is opened."""

    activated = Signal(str, str)

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
        search_row = QVBoxLayout()
        search_row.setContentsMargins(12, 0, 12, 0)
        search_row.addWidget(self.search)
        layout.addLayout(search_row)

        self.model = SidebarModel(self)
        self.proxy = SidebarFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = SidebarView(self)
        self.view.setModel(self.proxy)
        self.view.setAccessibleName(self.tr("Rooms and contacts"))
        self.view.activated.connect(self._on_activated)
        self.view.clicked.connect(self._on_activated)
        layout.addWidget(self.view, 1)

        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset):
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
        self.model.update_placeholders(query)
        self.proxy.set_query(query)
        self.view.expandAll()

    def visible_entries(self) -> list[str]:
        """Names of the entries the filter lets through, in display order."""
        names = []
        for row in range(self.proxy.rowCount()):
            section = self.proxy.index(row, 0)
            for child in range(self.proxy.rowCount(section)):
                index = self.proxy.index(child, 0, section)
                if index.data(KIND_ROLE) == RowKind.ENTRY:
                    names.append(str(index.data(Qt.ItemDataRole.DisplayRole)))
        return names

    def placeholder_texts(self) -> list[str]:
        """The placeholder rows currently shown (empty states and "no match")."""
        texts = []
        for row in range(self.proxy.rowCount()):
            section = self.proxy.index(row, 0)
            for child in range(self.proxy.rowCount(section)):
                index = self.proxy.index(child, 0, section)
                if index.data(KIND_ROLE) == RowKind.PLACEHOLDER:
                    texts.append(str(index.data(Qt.ItemDataRole.DisplayRole)))
        return texts

    def _first_entry(self) -> QModelIndex | None:
        for row in range(self.proxy.rowCount()):
            section = self.proxy.index(row, 0)
            for child in range(self.proxy.rowCount(section)):
                index = self.proxy.index(child, 0, section)
                if index.data(KIND_ROLE) == RowKind.ENTRY:
                    return index
        return None

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
        self.activated.emit(str(index.data(SECTION_ROLE)), str(index.data(KEY_ROLE)))
