"""The main window: the frame's widgets, given behaviour by one part per concern.

``WindowFrame`` builds the widgets (sidebar, conversation, member panel, ...) and opens
conversations. The parts act: ``WindowContacts`` and ``WindowRooms`` (their actions, dialogs and
events), ``WindowFiles`` (drops, cards, transfers), ``WindowSearch`` (Ctrl+F, Ctrl+K) and
``WindowSettings`` (Settings…, Your Identity…). This module arranges their actions in the menus,
hands them the client once the network is up (until then the window works, it just has nobody to
talk to), and subscribes each to the client events it shows. Closing the window only emits
``closed`` so the controller can shut the network down in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.core.events import MessageReceived, RoomMessage, UnreadChanged
from app.core.invite import InvalidInvite
from app.core.records import short_peer_id
from app.core.room import invite_kind
from ui.bridge import EventBridge, TaskRunner
from ui.identity.node_state import NodeState
from ui.window.frame import WindowFrame
from ui.window.window_chats import WindowChats
from ui.window.window_contacts import WindowContacts
from ui.window.window_files import WindowFiles
from ui.window.window_rooms import WindowRooms
from ui.window.window_search import WindowSearch
from ui.window.window_settings import WindowSettings

if TYPE_CHECKING:
    from app.client import KithClient
    from ui.window.shortcuts_dialog import ShortcutsDialog


class MainWindow(WindowFrame):
    """The window with its parts; ``events`` is the bridge they subscribe to (its own when none
    is given, so a window alone is fed with ``events.publish``)."""

    def __init__(self, state: NodeState, runner: TaskRunner | None = None,
                 events: EventBridge | None = None, parent: QWidget | None = None) -> None:
        super().__init__(state, runner, parent)
        self.contacts = WindowContacts(self)   # add, accept, rename, verify, block, remove
        self.rooms = WindowRooms(self)         # new, join, invite, members, leave
        self.files = WindowFiles(self)         # drops, file cards, transfers panel
        self.search = WindowSearch(self)       # Ctrl+F message search, Ctrl+K quick switcher
        self.preferences = WindowSettings(self)  # Settings…, Your Identity…, Export Profile…
        self.chats = WindowChats(self)         # pin, mute, mark unread, drafts, next chat
        self.lists_loaded = False  # contacts, rooms and the unread count shown since set_client
        self.contacts.join_room_requested.connect(self.rooms.show_join_room)
        self.conversation.messages.kith_link_activated.connect(self.open_kith_link)
        self._build_menus()
        self.events = events if events is not None else EventBridge(self)
        self.listen(self.events)

    def _build_menus(self) -> None:
        contacts, rooms, search = self.contacts, self.rooms, self.search
        settings = self.preferences
        self.file_menu = file_menu = self.menuBar().addMenu(self.tr("&File"))
        file_menu.addAction(contacts.add_contact_action)
        file_menu.addAction(rooms.new_room_action)
        file_menu.addAction(rooms.join_room_action)
        file_menu.addSeparator()
        file_menu.addAction(self.copy_invite_action)
        file_menu.addSeparator()
        file_menu.addAction(contacts.blocked_action)
        file_menu.addSeparator()
        file_menu.addAction(settings.settings_action)
        file_menu.addAction(settings.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.view_menu = view_menu = self.menuBar().addMenu(self.tr("&View"))
        view_menu.addAction(search.search_action)
        view_menu.addAction(search.switcher_action)
        view_menu.addAction(search.filter_action)
        view_menu.addAction(self.chats.next_action)
        view_menu.addAction(self.chats.previous_action)
        view_menu.addSeparator()
        view_menu.addAction(settings.identity_page_action)
        view_menu.addAction(rooms.members_action)
        view_menu.addAction(self.files.transfers_action)
        room_menu = self.menuBar().addMenu(self.tr("&Room"))
        room_menu.addAction(rooms.invite_action)
        room_menu.addAction(rooms.members_action)
        room_menu.addAction(rooms.settings_action)
        room_menu.addSeparator()
        room_menu.addAction(rooms.leave_action)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        self.shortcuts_action = QAction(self.tr("&Keyboard Shortcuts"), self)
        self.shortcuts_action.setShortcut(QKeySequence("Ctrl+/"))
        self.shortcuts_action.triggered.connect(lambda: self.show_shortcuts())
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        self.shortcuts: ShortcutsDialog | None = None

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help ▸ Keyboard Shortcuts, Ctrl+/."""
        if self.shortcuts is None:
            from ui.window.shortcuts_dialog import ShortcutsDialog  # when first asked for

            self.shortcuts = ShortcutsDialog(self.menuBar(), self)
        self.shortcuts.open()
        self.shortcuts.raise_()
        return self.shortcuts

    def open_kith_link(self, link: str) -> None:
        """A ``kith:`` link (clicked in a message, or one Kith was started with): a room link
        opens Join Room, a contact invite Add Contact, filled in; both say what is wrong."""
        try:
            room = invite_kind(link) == "room"
        except InvalidInvite:
            room = False  # Add Contact says what is wrong with it
        if room:
            self.rooms.show_join_room(link)
        else:
            self.contacts.show_add_contact(link)

    # -- events -----------------------------------------------------------------------------

    def listen(self, events: EventBridge) -> None:
        """Subscribe every part to the events it shows. Handlers run in the order they
        subscribed, so the sidebar's lists (contacts, rooms) come first: everything after them
        sees the names and rooms current. The open conversation comes last."""
        self.contacts.listen(events)
        self.rooms.listen(events)
        self.chats.listen(events)
        events.subscribe(UnreadChanged, self._unread_changed)
        events.subscribe(MessageReceived, self._message_received)
        events.subscribe(RoomMessage, self._room_message)
        self.files.listen(events)
        self.nearby.listen(events)
        self.conversation.listen(events)

    def _unread_changed(self, event: UnreadChanged) -> None:
        self.set_unread(event.total)

    def _message_received(self, event: MessageReceived) -> None:
        known = self.sidebar.model.contact(event.from_)
        sender = known.name if known is not None else short_peer_id(event.from_)
        self.tray.message_received(event, sender)

    def _room_message(self, event: RoomMessage) -> None:
        room = self.sidebar.model.room(event.room)
        self.tray.room_message(event, self.rooms.author_name(event.from_),
                               room.name if room is not None else "")

    # -- the client -------------------------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        """The network is up (or gone): load contacts, rooms and the unread count."""
        self.client = client
        self.files.set_client(client)
        self.preferences.set_client(client)
        self.search.set_client(client)
        self.conversation.set_client(client)
        self.contacts.set_client(client)
        self.rooms.set_client(client)
        self.lists_loaded = False
        if client is not None:
            self.runner.run(self._load(client), self.tr("Loading your contacts"))

    async def _load(self, client: KithClient) -> None:
        await self.contacts.load(client)
        await self.rooms.load(client)
        await self.chats.load(client)
        self.set_unread(await client.unread_total())
        self.lists_loaded = True
        last = self.preferences.last_conversation
        if last and self.conversation.conversation_key is None:
            self.chats.open(last)  # where the user left off
