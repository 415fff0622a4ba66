"""The navigable part of the sidebar: a search box over one list of requests, rooms and contacts.

``Sidebar`` holds the search box, the "+" that adds a contact, and the list (``SidebarView``, a
tree without tree chrome over ``SidebarModel`` through ``SidebarFilter``, painted by
``SidebarDelegate``). It keeps the open conversation's row selected while rows move, and asks
the window to act through signals: an entry activated, a context-menu action, "+" clicked.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QContextMenuEvent,
    QIcon,
    QKeyEvent,
    QMouseEvent,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.core.records import ContactInfo, ContactState, RoomInfo
from ui.sidebar.actions import ChatAction, ContactAction, RoomAction
from ui.sidebar.delegate import NEW_ROOM_SECTIONS, SidebarDelegate
from ui.sidebar.model import (
    CONTACT_ROLE,
    KEY_ROLE,
    KIND_ROLE,
    ROOM_ROLE,
    SECTION_ROLE,
    RowKind,
    Section,
    SidebarFilter,
    SidebarModel,
)
from ui.style import palette as pal
from ui.style.resources import tinted_icon
from ui.style.theme import set_style_sheet


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
        # The sidebar's colour shows through. Not by a style sheet: one on the view styles
        # its scroll bar too, which then draws as a bare box (no theme, a black handle).
        transparent = self.palette()
        transparent.setColor(QPalette.ColorRole.Base, Qt.GlobalColor.transparent)
        self.setPalette(transparent)
        self.viewport().setAutoFillBackground(False)
        self.delegate = SidebarDelegate(self)
        self.setItemDelegate(self.delegate)

    def _over_add_room(self, pos: QPoint) -> bool:
        index = self.indexAt(pos)
        if index.data(KIND_ROLE) != RowKind.SECTION or (
            index.data(SECTION_ROLE) not in NEW_ROOM_SECTIONS
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
    chat_action = Signal(str, str)  # ChatAction value, peer id or room id
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
        set_style_sheet(
            self.search,
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
            self._add_chat_actions(menu, peer_id, info.unread)
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
        self._add_chat_actions(menu, room_id, info.unread)
        menu.addSeparator()
        add(self.tr("&Leave Room…"), RoomAction.LEAVE)
        return menu

    def _add_chat_actions(self, menu: QMenu, key: str, unread: int) -> None:
        """Pin, mute, mark unread: this device's choices for the conversation."""
        prefs = self.model.prefs(key)
        menu.addSeparator()
        for text, action in (
            (self.tr("Un&pin") if prefs.pinned else self.tr("&Pin to the Top"),
             ChatAction.UNPIN if prefs.pinned else ChatAction.PIN),
            (self.tr("Un&mute") if prefs.muted else self.tr("&Mute Notifications"),
             ChatAction.UNMUTE if prefs.muted else ChatAction.MUTE),
            (self.tr("Mark as Rea&d") if unread or prefs.marked_unread
             else self.tr("Mark as &Unread"),
             ChatAction.MARK_READ if unread or prefs.marked_unread else ChatAction.MARK_UNREAD),
        ):
            item = menu.addAction(text)
            item.setObjectName(action.value)
            item.triggered.connect(lambda _=False, a=action: self.chat_action.emit(a.value, key))

    def set_one_list(self, one: bool) -> None:
        """Rooms and contacts in one list by recent activity, or in sections of their own."""
        self.model.set_one_list(one)
        self._refresh()

    def visible_keys(self) -> list[str]:
        """The keys of the listed entries, top to bottom (what Ctrl+Tab walks)."""
        return [str(i.data(KEY_ROLE)) for i in self._visible(RowKind.ENTRY)]

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
