"""The window's search and quick switcher: Ctrl+F searches messages, Ctrl+K jumps to a
conversation, Ctrl+Shift+F keeps the sidebar's own name filter one key away.

Kept apart from ``MainWindow`` (like ``WindowFiles``): this makes the three actions and wires the
panels to the sidebar and the conversation; the window places the actions in its menus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from app.core.records import SearchHit
from ui.sidebar.model import Section

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.search.quick_switcher import QuickSwitcher
    from ui.search.search_panel import Searcher, SearchPanel
    from ui.window.frame import WindowFrame


class WindowSearch(QObject):
    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self._panel: SearchPanel | None = None  # both made when first opened
        self._switcher: QuickSwitcher | None = None
        self._searcher: Searcher | None = None

        self.search_action = QAction(self.tr("&Search Messages…"), window)
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.search_action.triggered.connect(lambda: self.show_search())
        self.filter_action = QAction(self.tr("&Filter Rooms and Contacts"), window)
        self.filter_action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.filter_action.triggered.connect(self.focus_filter)
        self.switcher_action = QAction(self.tr("&Go to Room or Contact…"), window)
        self.switcher_action.setShortcut(QKeySequence("Ctrl+K"))
        self.switcher_action.triggered.connect(lambda: self.show_switcher())

    @property
    def panel(self) -> SearchPanel:
        if self._panel is None:
            from ui.search.search_panel import SearchPanel

            self._panel = SearchPanel(self.window.runner, self.window)
            self._panel.hit_activated.connect(self.open_hit)
            self._panel.set_searcher(self._searcher)
        return self._panel

    @property
    def switcher(self) -> QuickSwitcher:
        if self._switcher is None:
            from ui.search.quick_switcher import QuickSwitcher

            self._switcher = QuickSwitcher(self.window)
            self._switcher.chosen.connect(self.switch_to)
        return self._switcher

    def set_client(self, client: KithClient | None) -> None:
        self._searcher = client.search if client is not None else None
        if self._panel is not None:
            self._panel.set_searcher(self._searcher)

    def focus_filter(self) -> None:
        """View ▸ Filter Rooms and Contacts, Ctrl+Shift+F: the sidebar's search box."""
        search = self.window.sidebar.search
        search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        search.selectAll()

    def show_search(self) -> SearchPanel:
        """View ▸ Search Messages…, Ctrl+F."""
        if self._switcher is not None:
            self._switcher.close_panel(restore_focus=False)
        self.panel.open()
        return self.panel

    def show_switcher(self) -> QuickSwitcher:
        """View ▸ Go to Room or Contact…, Ctrl+K: rooms and contacts, most recent first."""
        if self._panel is not None:
            self._panel.close_panel(restore_focus=False)
        model = self.window.sidebar.model
        from ui.search.quick_switcher import Candidate

        entries: list[tuple[float, Candidate]] = [
            (room.last_activity, Candidate("room", room.room_id, room.name))
            for room in model.rooms()
        ]
        for section in (Section.CONTACTS, Section.REQUESTS):
            detail = self.window.tr("request") if section is Section.REQUESTS else ""
            entries.extend(
                (info.last_activity, Candidate("contact", info.peer_id, info.name, detail))
                for info in model.contacts(section)
            )
        entries.sort(key=lambda e: -e[0])
        self.switcher.open_with([c for _, c in entries])
        return self.switcher

    def switch_to(self, kind: str, key: str) -> None:
        if kind == "room":
            self.window.open_room(key)
        else:
            self.window.open_peer(key)

    def open_hit(self, hit: SearchHit) -> None:
        """Open the hit's conversation and scroll to the message, selected."""
        window = self.window
        opened = window.open_room(hit.conversation) if hit.kind == "room" else window.open_peer(
            hit.conversation)
        if opened:
            window.conversation.reveal(hit.message_id)
        else:
            window.show_error(window.tr("That conversation is no longer in your list."))
