"""The main window: sidebar (you, search, requests, rooms and contacts, your invite), the
conversation, and for rooms a member panel on the right.

It arranges widgets and routes between them: client events arrive through ``handle_event``
(every one is also forwarded to the conversation), user actions go to the client through the
``TaskRunner``, and closing the window only emits ``closed`` so the controller can shut the
network down in order. The client arrives with ``set_client`` once the network is up; until
then the window works, it just has nobody to talk to.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QPoint, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.core.events import (
    ContactChanged,
    ContactRemoved,
    ContactRoute,
    Event,
    MessageReceived,
    RoomChanged,
    RoomCreated,
    RoomJoined,
    RoomLeft,
    RoomMembersChanged,
    RoomMessage,
    RoomPostAdded,
    UnreadChanged,
)
from app.core.invite import ContactInvite
from app.core.records import ContactInfo, ContactState, RoomInfo, RoomMember, short_peer_id
from ui.bridge import TaskRunner
from ui.contacts.add_contact import AddContactDialog
from ui.contacts.blocked_dialog import BlockedDialog
from ui.contacts.contact_details import ContactDetailsDialog
from ui.conversation.request_bar import RequestBar
from ui.conversation.view import ConversationView
from ui.identity.identity_panel import IdentityPanel
from ui.identity.node_state import NodeState
from ui.identity.profile_header import ProfileHeader
from ui.rooms.join_room import JoinRoomDialog
from ui.rooms.member_panel import MemberPanel
from ui.rooms.new_room import NewRoomDialog
from ui.rooms.room_invite import RoomInviteDialog
from ui.settings.settings_dialog import WindowSettings
from ui.sidebar.actions import ContactAction, RoomAction
from ui.sidebar.model import Section
from ui.sidebar.nearby_panel import NearbyPanel
from ui.sidebar.view import Sidebar
from ui.style import palette as pal
from ui.style.resources import app_icon, tinted_icon
from ui.widgets.error_banner import ErrorBanner
from ui.widgets.link_dialog import plain_words
from ui.window.tray import Tray
from ui.window.window_files import WindowFiles
from ui.window.window_search import WindowSearch

if TYPE_CHECKING:
    from app.client import KithClient

SIDEBAR_WIDTH = 280
DEFAULT_SIZE = QSize(1100, 720)


class _SidebarPane(QWidget):
    """The left column, one shade off the content so the two panes read apart in any theme."""

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), pal.sidebar_background(self.palette()))
        painter.setPen(pal.hairline(self.palette()))
        painter.drawLine(self.width() - 1, 0, self.width() - 1, self.height())


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, state: NodeState, runner: TaskRunner | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.runner = runner if runner is not None else TaskRunner(self)
        self.client: KithClient | None = None
        self.unread_total = 0
        self.add_dialog: AddContactDialog | None = None
        self.details_dialogs: dict[str, ContactDetailsDialog] = {}
        self.blocked_dialog: BlockedDialog | None = None
        self.rename_dialog: QInputDialog | None = None
        self.remove_box: QMessageBox | None = None
        self.new_room_dialog: NewRoomDialog | None = None
        self.join_dialog: JoinRoomDialog | None = None
        self.invite_dialogs: dict[str, RoomInviteDialog] = {}
        self.leave_box: QMessageBox | None = None
        self.member_menu: QMenu | None = None
        self._author_names: dict[str, str] = {}  # peer id -> name, from room posts
        self.routes: dict[str, str] = {}  # peer id -> how we reach them now (ContactRoute)
        self.title_note = ""  # e.g. "(demo)": said in the title so two windows are told apart
        self.setWindowIcon(app_icon())
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(QSize(720, 480))
        self._about: QMessageBox | None = None
        self._build_actions()
        self._build_menus()
        self._build_body()
        self.files = WindowFiles(self)  # drops, file cards, transfers panel, file settings
        self.tray = Tray(self.isActiveWindow, self, self.quit_action)
        self.tray.open_requested.connect(self.bring_forward)
        self.preferences = WindowSettings(self)  # Settings…, Your Identity…, Export Profile…
        self.search = WindowSearch(self)  # Ctrl+F message search, Ctrl+K quick switcher
        state.changed.connect(self._refresh_title)
        state.failed.connect(self.show_error)
        self._refresh_title()

    # -- construction -----------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.quit_action = QAction(self.tr("&Quit"), self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)

        self.add_contact_action = QAction(self.tr("&Add Contact…"), self)
        self.add_contact_action.setShortcut(QKeySequence("Ctrl+N"))
        self.add_contact_action.triggered.connect(lambda: self.show_add_contact())

        self.blocked_action = QAction(self.tr("&Blocked People…"), self)
        self.blocked_action.triggered.connect(self.show_blocked)

        self.identity_action = QAction(self.tr("Your &Invite and Identity"), self)
        self.identity_action.setShortcut(QKeySequence("Ctrl+I"))
        self.identity_action.setCheckable(True)
        self.identity_action.setToolTip(self.tr("Your invite and identity (Ctrl+I)"))
        self.identity_action.toggled.connect(self._toggle_identity)

        self.copy_invite_action = QAction(self.tr("&Copy Your Invite"), self)
        self.copy_invite_action.setShortcut(QKeySequence("Ctrl+Shift+C"))

        self.new_room_action = QAction(self.tr("&New Room…"), self)
        self.new_room_action.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.new_room_action.triggered.connect(lambda: self.show_new_room())

        self.join_room_action = QAction(self.tr("&Join Room…"), self)
        self.join_room_action.setShortcut(QKeySequence("Ctrl+J"))
        self.join_room_action.triggered.connect(lambda: self.show_join_room())

        self.members_action = QAction(self.tr("Room &Members"), self)
        self.members_action.setShortcut(QKeySequence("Ctrl+Shift+M"))
        self.members_action.setCheckable(True)
        self.members_action.setToolTip(self.tr("Show the room's members (Ctrl+Shift+M)"))
        self.members_action.setIconText(self.tr("Members"))
        self.members_action.toggled.connect(self._toggle_members)

        self.invite_action = QAction(self.tr("&Invite People…"), self)
        self.invite_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.invite_action.setToolTip(self.tr("Invite people to this room (Ctrl+Shift+I)"))
        self.invite_action.setIconText(self.tr("Invite"))
        self.invite_action.triggered.connect(self._invite_to_open_room)

        self.leave_action = QAction(self.tr("&Leave Room…"), self)
        self.leave_action.triggered.connect(self._leave_open_room)
        for action in (self.members_action, self.invite_action, self.leave_action):
            action.setEnabled(False)  # only while a room is open

        self.search_action = QAction(self.tr("&Search Messages…"), self)
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.search_action.triggered.connect(lambda: self.search.show_search())
        self.filter_action = QAction(self.tr("&Filter Rooms and Contacts"), self)
        self.filter_action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.filter_action.triggered.connect(self.focus_search)
        self.switcher_action = QAction(self.tr("&Go to Room or Contact…"), self)
        self.switcher_action.setShortcut(QKeySequence("Ctrl+K"))
        self.switcher_action.triggered.connect(lambda: self.search.show_switcher())

        self.about_action = QAction(self.tr("&About Kith"), self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        self._tint()

    def _tint(self) -> None:
        text = self.palette().color(QPalette.ColorRole.WindowText)
        self.identity_action.setIcon(tinted_icon("user", text))
        self.copy_invite_action.setIcon(tinted_icon("copy", text))
        self.add_contact_action.setIcon(tinted_icon("plus", text))
        self.new_room_action.setIcon(tinted_icon("plus", text))
        self.members_action.setIcon(tinted_icon("user", text))
        self.invite_action.setIcon(tinted_icon("copy", text))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switched: re-tint
            self._tint()

    def _build_menus(self) -> None:
        self.file_menu = file_menu = self.menuBar().addMenu(self.tr("&File"))
        file_menu.addAction(self.add_contact_action)
        file_menu.addAction(self.new_room_action)
        file_menu.addAction(self.join_room_action)
        file_menu.addSeparator()
        file_menu.addAction(self.copy_invite_action)
        file_menu.addSeparator()
        file_menu.addAction(self.blocked_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.view_menu = view_menu = self.menuBar().addMenu(self.tr("&View"))
        view_menu.addAction(self.search_action)
        view_menu.addAction(self.switcher_action)
        view_menu.addAction(self.filter_action)
        view_menu.addAction(self.identity_action)
        view_menu.addAction(self.members_action)
        room_menu = self.menuBar().addMenu(self.tr("&Room"))
        room_menu.addAction(self.invite_action)
        room_menu.addAction(self.members_action)
        room_menu.addSeparator()
        room_menu.addAction(self.leave_action)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        help_menu.addAction(self.about_action)

    def _build_body(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setChildrenCollapsible(False)
        splitter.setHandleWidth(1)

        left = _SidebarPane(splitter)
        left.setMinimumWidth(240)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 12)
        left_layout.setSpacing(8)
        self.header = ProfileHeader(self.state, left)
        self.header.set_you_action(self.identity_action)
        left_layout.addWidget(self.header)
        self.sidebar = Sidebar(left)
        self.sidebar.activated.connect(self._on_sidebar_activated)
        self.sidebar.contact_action.connect(self.contact_action)
        self.sidebar.add_requested.connect(lambda: self.show_add_contact())
        self.sidebar.room_action.connect(self.room_action)
        self.sidebar.new_room_requested.connect(lambda: self.show_new_room())
        left_layout.addWidget(self.sidebar, 1)
        self.nearby = NearbyPanel(left)
        self.nearby.is_known = lambda peer: self.sidebar.model.contact(peer) is not None
        self.nearby.request_requested.connect(self.request_nearby)
        left_layout.addWidget(self.nearby)
        self.identity_panel = IdentityPanel(self.state, left)
        self.identity_panel.expanded_changed.connect(self.identity_action.setChecked)
        self.copy_invite_action.triggered.connect(self.identity_panel.copy_invite)
        panel_box = QVBoxLayout()
        panel_box.setContentsMargins(12, 0, 12, 0)
        panel_box.addWidget(self.identity_panel)
        left_layout.addLayout(panel_box)

        centre = QWidget(splitter)
        centre.setBackgroundRole(QPalette.ColorRole.Base)
        centre.setAutoFillBackground(True)
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        self.banner = ErrorBanner(centre)
        banner_box = QVBoxLayout()  # margins only while the banner shows
        banner_box.setContentsMargins(0, 0, 0, 0)
        banner_box.addWidget(self.banner)
        centre_layout.addLayout(banner_box)
        self.banner.dismissed.connect(lambda: banner_box.setContentsMargins(0, 0, 0, 0))
        self._banner_box = banner_box

        self.request_bar = RequestBar(centre)
        self.request_bar.accept_requested.connect(self.accept_request)
        self.request_bar.block_requested.connect(self.block)
        request_box = QVBoxLayout()
        request_box.setContentsMargins(16, 12, 16, 0)
        request_box.addWidget(self.request_bar)
        centre_layout.addLayout(request_box)
        self._request_box = request_box
        self._set_request_margins(False)

        self.conversation = ConversationView(self.runner, centre)
        self.conversation.read.connect(self.mark_read)
        self.conversation.details_requested.connect(self.show_details)
        self.conversation.members_requested.connect(
            lambda _: self.members_action.setChecked(not self.members_action.isChecked()))
        self.conversation.header.set_room_actions(self.members_action, self.invite_action)
        self.conversation.header.route_of = lambda peer: self.routes.get(peer, "")
        self.member_panel = MemberPanel(centre)
        self.member_panel.hide()
        self.member_panel.close_requested.connect(lambda: self.members_action.setChecked(False))
        self.member_panel.member_activated.connect(self.show_member_menu)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        body.addWidget(self.conversation, 1)
        body.addWidget(self.member_panel)
        centre_layout.addLayout(body, 1)

        splitter.addWidget(left)
        splitter.addWidget(centre)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, DEFAULT_SIZE.width() - SIDEBAR_WIDTH])
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self._set_tab_order()

    def _set_request_margins(self, shown: bool) -> None:
        if shown:
            self._request_box.setContentsMargins(16, 12, 16, 0)
        else:
            self._request_box.setContentsMargins(0, 0, 0, 0)

    def _set_tab_order(self) -> None:
        """Tab walks the way people read the window: find, pick, decide, write, the room's
        members and invite, your invite."""
        panel = self.identity_panel
        chain: list[QWidget] = [
            self.sidebar.search,
            self.sidebar.add_button,
            self.sidebar.view,
            self.request_bar.accept_button,
            self.request_bar.block_button,
            self.conversation.composer.edit,
            self.conversation.composer.send_button,
            self.conversation.header.members_button,
            self.conversation.header.invite_button,
            self.member_panel.list,
            panel.details_button,
            panel.invite_edit,
            panel.copy_button,
            panel.peer_id_field,
            panel.address_list,
            self.header.you_button,
        ]
        for first, second in itertools.pairwise(chain):
            self.setTabOrder(first, second)

    # -- the client -------------------------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        """The network is up (or gone): load contacts and the unread count, enable actions."""
        self.client = client
        self.files.set_client(client)
        self.preferences.set_client(client)
        self.search.set_client(client)
        self.conversation.set_client(client)
        if self.add_dialog is not None:
            self.add_dialog.set_adder(client.add_contact if client is not None else None)
        if self.new_room_dialog is not None:
            self.new_room_dialog.set_creator(client.create_room if client is not None else None)
        if self.join_dialog is not None:
            self.join_dialog.set_joiner(client.join_room if client is not None else None)
        if client is not None:
            self.sidebar.model.begin_load()
            self.sidebar.model.begin_rooms_load()
            self.runner.run(self._load(client), self.tr("Loading your contacts"))

    async def _load(self, client: KithClient) -> None:
        contacts = await client.contacts()
        self.sidebar.model.load(contacts)
        self.sidebar.model.load_rooms(await client.rooms())
        self._refresh_dialogs()
        self._set_unread(await client.unread_total())

    def _run(self, what: str, call_name: str, *args: object) -> None:
        """Call ``client.<call_name>(*args)`` in the background; failures go to the banner."""
        client = self.client
        if client is None:
            self.show_error(self.tr("{what} failed: Kith is not online.").format(what=what))
            return
        self.runner.run(getattr(client, call_name)(*args), what)

    # -- events -----------------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """Every client event comes here (the controller connects the bridge)."""
        model = self.sidebar.model
        if isinstance(event, ContactChanged):
            info = event.contact
            model.upsert_contact(info)
            self._contact_changed(info)
        elif isinstance(event, ContactRemoved):
            model.remove_contact(event.peer_id)
            if self.conversation.current_peer == event.peer_id:
                self.close_conversation()
            dialog = self.details_dialogs.pop(event.peer_id, None)
            if dialog is not None:
                dialog.close()
            self._refresh_dialogs()
        elif isinstance(event, ContactRoute):
            self._route_changed(event.peer_id, event.route)
        elif isinstance(event, UnreadChanged):
            self._set_unread(event.total)
        elif isinstance(event, MessageReceived):
            known = model.contact(event.from_)
            sender = known.name if known is not None else short_peer_id(event.from_)
            self.tray.message_received(event, sender)
        elif isinstance(event, RoomChanged):
            model.upsert_room(event.room)
            invite = self.invite_dialogs.get(event.room.room_id)
            if invite is not None:
                invite.set_room(event.room)
        elif isinstance(event, RoomCreated | RoomJoined):
            self._refresh_rooms()  # RoomChanged follows; this also covers a missed one
        elif isinstance(event, RoomLeft):
            self._room_left(event.room_id)
        elif isinstance(event, RoomMembersChanged):
            if self.member_panel.room_id == event.room_id:
                self.member_panel.set_members(event.room_id, event.members)
            for member in event.members:
                if member.name and not member.is_me:
                    self._author_names[member.peer_id] = member.name
        elif isinstance(event, RoomPostAdded):
            post = event.post
            if post.author_name and not post.outgoing:
                self._author_names.setdefault(post.author, post.author_name)
        elif isinstance(event, RoomMessage):
            room = model.room(event.room)
            contact = model.contact(event.from_)
            author = (contact.name if contact is not None
                      else self._author_names.get(event.from_, short_peer_id(event.from_)))
            self.tray.room_message(event, author, room.name if room is not None else "")
        self.files.handle_event(event)
        self.nearby.handle_event(event)
        if isinstance(event, ContactChanged | ContactRemoved):
            self.nearby.refresh()  # a new contact leaves Nearby, a removed one may come back
        self.conversation.handle_event(event)

    def _route_changed(self, peer_id: str, route: str) -> None:
        if route:
            self.routes[peer_id] = route
        else:
            self.routes.pop(peer_id, None)
        self.conversation.header.refresh_route(peer_id)
        dialog = self.details_dialogs.get(peer_id)
        if dialog is not None:
            dialog.set_route(route)

    # -- nearby -----------------------------------------------------------------------------

    def request_nearby(self, peer_id: str) -> None:
        """Nearby ▸ Send request: add them from their LAN announcement and say hello, which
        they see as a message request (the same path as any stranger writing first)."""
        found = self.nearby.peer(peer_id)
        client = self.client
        if found is None or client is None:
            self.nearby.request_failed(peer_id)
            if client is None:
                self.show_error(self.tr("Sending a request failed: Kith is not online."))
            return
        name, addrs = found
        self.runner.run(self._request_nearby(client, peer_id, name, addrs),
                        self.tr("Sending a contact request"))

    async def _request_nearby(self, client: KithClient, peer_id: str, name: str,
                              addrs: tuple[str, ...]) -> None:
        link = ContactInvite(peer_id=peer_id, name=name, addrs=addrs).to_link()
        greeting = self.tr("Hi, this is {name}. I found you on the local network and added "
                           "you as a contact.").format(name=self.state.display_name)
        try:
            info = await client.add_contact(link)
            await client.send(peer_id, greeting)
        except ValueError as exc:
            self.nearby.request_failed(peer_id)
            self.show_error(self.tr("The request to {name} was not sent: {reason}").format(
                name=name or short_peer_id(peer_id), reason=plain_words(str(exc))))
            return
        except BaseException:
            self.nearby.request_failed(peer_id)
            raise
        self._contact_added(info)

    def _refresh_rooms(self) -> None:
        client = self.client
        if client is None:
            return

        async def refresh() -> None:
            self.sidebar.model.begin_rooms_load()
            self.sidebar.model.load_rooms(await client.rooms())

        self.runner.run(refresh(), self.tr("Loading your rooms"))

    def _room_left(self, room_id: str) -> None:
        self.sidebar.model.remove_room(room_id)
        if self.conversation.current_room == room_id:
            self.close_conversation()
        invite = self.invite_dialogs.pop(room_id, None)
        if invite is not None:
            invite.close()

    def _contact_changed(self, info: ContactInfo) -> None:
        if self.conversation.current_peer == info.peer_id:
            if info.state is ContactState.BLOCKED:
                self.close_conversation()
            else:
                self.conversation.update_contact(info)
                self._show_request_bar(info)
        dialog = self.details_dialogs.get(info.peer_id)
        if dialog is not None:
            if info.state is ContactState.BLOCKED:
                self.details_dialogs.pop(info.peer_id)
                dialog.close()
            else:
                dialog.update_contact(info)
        self._refresh_dialogs()

    def _refresh_dialogs(self) -> None:
        if self.blocked_dialog is not None:
            self.blocked_dialog.set_blocked(self.sidebar.model.blocked())

    def _set_unread(self, total: int) -> None:
        self.unread_total = total
        self.tray.set_unread(total)
        self._refresh_title()

    # -- conversations ----------------------------------------------------------------------

    def _on_sidebar_activated(self, section: str, key: str) -> None:
        if section in (Section.CONTACTS.value, Section.REQUESTS.value):
            self.open_peer(key)
        elif section == Section.ROOMS.value:
            self.open_room(key)

    def open_room(self, room_id: str) -> bool:
        """Open a room's conversation (and its members, if the panel is on); False if unknown."""
        info = self.sidebar.model.room(room_id)
        if info is None:
            return False
        self.sidebar.select_peer(room_id)
        if self.conversation.current_room != room_id:
            self.conversation.open_room(info)
        self.request_bar.clear()
        self._set_request_margins(False)
        self.conversation.composer.setEnabled(True)
        self._set_room_actions(True)
        self._show_members_panel()
        return True

    def _set_room_actions(self, room_open: bool) -> None:
        for action in (self.members_action, self.invite_action, self.leave_action):
            action.setEnabled(room_open)
        if not room_open:
            self.member_panel.hide()
            self.member_panel.clear()

    def _show_members_panel(self) -> None:
        """Show the panel for the open room when the Members toggle is on."""
        room_id = self.conversation.current_room
        shown = room_id is not None and self.members_action.isChecked()
        self.member_panel.setVisible(shown)
        if not shown or room_id is None:
            return
        if self.member_panel.room_id != room_id:
            self.member_panel.set_members(room_id, [])
        client = self.client
        if client is not None:
            self.runner.run(self._load_members(client, room_id), self.tr("Loading the members"))

    async def _load_members(self, client: KithClient, room_id: str) -> None:
        members = await client.room_members(room_id)
        if self.conversation.current_room == room_id:
            self.member_panel.set_members(room_id, members)

    def _toggle_members(self, on: bool) -> None:
        self._show_members_panel()
        if on and self.member_panel.isVisible():
            self.member_panel.list.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def open_peer(self, peer_id: str) -> bool:
        """Open the conversation with a contact or a request; False if we do not know them."""
        info = self.sidebar.model.contact(peer_id)
        if info is None or info.state is ContactState.BLOCKED:
            return False
        self.sidebar.select_peer(peer_id)
        if self.conversation.current_peer != peer_id:
            self.conversation.open_contact(info)
        self._set_room_actions(False)
        self._show_request_bar(info)
        return True

    def _show_request_bar(self, info: ContactInfo) -> None:
        """Requests are read-only until accepted: the bar decides, the composer waits."""
        request = info.state is ContactState.REQUEST
        if request:
            self.request_bar.show_request(info)
        else:
            self.request_bar.clear()
        self._set_request_margins(request)
        self.conversation.composer.setEnabled(not request)

    def close_conversation(self) -> None:
        self.conversation.close_conversation()
        self._set_room_actions(False)
        self.request_bar.clear()
        self._set_request_margins(False)
        self.sidebar.select_peer(None)

    def mark_read(self, key: str) -> None:
        """The conversation was read: a contact's messages or a room's posts."""
        if self.client is None:
            return
        if self.sidebar.model.room(key) is not None:
            self.runner.run(self.client.mark_room_read(key), self.tr("Marking posts read"))
        else:
            self.runner.run(self.client.mark_read(key), self.tr("Marking messages read"))

    def bring_forward(self, key: str = "") -> None:
        """From the tray or a notification: show the window, and that conversation or room."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()
        if key and not self.open_room(key):
            self.open_peer(key)

    # -- rooms ------------------------------------------------------------------------------

    def room_action(self, action: str, room_id: str) -> None:
        """From a room's context menu in the sidebar."""
        match RoomAction(action):
            case RoomAction.OPEN:
                self.open_room(room_id)
            case RoomAction.INVITE:
                self.show_room_invite(room_id)
            case RoomAction.MEMBERS:
                if self.open_room(room_id):
                    self.members_action.setChecked(True)
            case RoomAction.LEAVE:
                self.confirm_leave(room_id)

    def show_new_room(self) -> NewRoomDialog:
        """File ▸ New Room…, Ctrl+Shift+N, or the "+" beside Rooms."""
        if self.new_room_dialog is None:
            dialog = NewRoomDialog(
                self.runner, self.client.create_room if self.client is not None else None, self)
            dialog.created.connect(self._room_ready)
            dialog.finished.connect(lambda _: self._forget_new_room(dialog))
            self.new_room_dialog = dialog
        self.new_room_dialog.open()
        self.new_room_dialog.name_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        return self.new_room_dialog

    def _forget_new_room(self, dialog: NewRoomDialog) -> None:
        if self.new_room_dialog is dialog:
            self.new_room_dialog = None
        dialog.deleteLater()

    def show_join_room(self, link: str | None = None) -> JoinRoomDialog:
        """File ▸ Join Room…, Ctrl+J, a room link in Add Contact, or one Kith was started with."""
        if self.join_dialog is None:
            dialog = JoinRoomDialog(
                self.runner, self.client.join_room if self.client is not None else None,
                self.sidebar.model.room, self,
            )
            dialog.joined.connect(self._room_ready)
            dialog.finished.connect(lambda _: self._forget_join(dialog))
            self.join_dialog = dialog
        if link is not None:
            self.join_dialog.set_link(link)
        self.join_dialog.open()
        self.join_dialog.link_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        return self.join_dialog

    def _forget_join(self, dialog: JoinRoomDialog) -> None:
        if self.join_dialog is dialog:
            self.join_dialog = None
        dialog.deleteLater()

    def _room_ready(self, info: RoomInfo) -> None:
        """A room was created or joined: list it (events may already be newer) and open it."""
        if self.sidebar.model.room(info.room_id) is None:
            self.sidebar.model.upsert_room(info)
        if self.sidebar.query() and self.sidebar.index_of(info.room_id) is None:
            self.sidebar.search.clear()
        self.open_room(info.room_id)

    def show_room_invite(self, room_id: str | None = None) -> RoomInviteDialog | None:
        room_id = room_id or self.conversation.current_room
        info = self.sidebar.model.room(room_id) if room_id else None
        if info is None:
            return None
        dialog = self.invite_dialogs.get(info.room_id)
        if dialog is None:
            dialog = RoomInviteDialog(info, self)
            dialog.finished.connect(lambda _: self._forget_invite(info.room_id, dialog))
            self.invite_dialogs[info.room_id] = dialog
        dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _forget_invite(self, room_id: str, dialog: RoomInviteDialog) -> None:
        if self.invite_dialogs.get(room_id) is dialog:
            del self.invite_dialogs[room_id]
        dialog.deleteLater()

    def _invite_to_open_room(self) -> None:
        self.show_room_invite()

    def _leave_open_room(self) -> None:
        room_id = self.conversation.current_room
        if room_id is not None:
            self.confirm_leave(room_id)

    def confirm_leave(self, room_id: str) -> None:
        info = self.sidebar.model.room(room_id)
        if info is None:
            return
        self.leave_box = self._confirm(
            self.leave_box, self.tr("Leave Room"),
            self.tr("Leave “{name}”? Its history is removed from this device. You can only "
                    "come back with its link.").format(name=info.name),
            self.tr("Leave"),
            lambda: self._run(self.tr("Leaving the room"), "leave_room", room_id))

    def leave_button(self) -> QPushButton | None:
        """The confirming button of the open "Leave room?" box (for keyboard and tests)."""
        return _destructive_button(self.leave_box)

    def _confirm(self, previous: QMessageBox | None, title: str, text: str, action: str,
                 confirmed: Callable[[], object]) -> QMessageBox:
        """A window-modal question with Cancel (the default) and a destructive ``action``."""
        if previous is not None:
            previous.deleteLater()
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Cancel, self)
        button = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _: confirmed() if box.clickedButton() is button else None)
        box.open()
        return box

    def show_member_menu(self, room_id: str, peer_id: str, where: QPoint) -> QMenu | None:
        """A member was activated: add them as a contact, or open your conversation."""
        member = self.member_panel.member(peer_id)
        if member is None or member.is_me:
            return None
        menu = QMenu(self)
        known = self.sidebar.model.contact(peer_id)
        if known is not None and known.state is not ContactState.BLOCKED:
            action = menu.addAction(self.tr("&Open Conversation"))
            action.setObjectName("open")
            action.triggered.connect(lambda: self.open_peer(peer_id))
        else:
            action = menu.addAction(self.tr("&Add {name} as a Contact").format(name=member.name))
            action.setObjectName("add")
            action.triggered.connect(lambda: self.add_member_contact(room_id, member))
        if self.member_menu is not None:
            self.member_menu.deleteLater()
        self.member_menu = menu
        menu.setActiveAction(action)
        menu.popup(where)
        return menu

    def add_member_contact(self, room_id: str, member: RoomMember) -> None:
        client = self.client
        if client is None:
            self.show_error(self.tr("Adding a contact failed: Kith is not online."))
            return
        self.runner.run(self._add_member(client, room_id, member), self.tr("Adding a contact"))

    async def _add_member(self, client: KithClient, room_id: str, member: RoomMember) -> None:
        try:
            link = await client.member_invite(room_id, member.peer_id)
            info = await client.add_contact(link)
        except ValueError as exc:
            self.show_error(self.tr("{name} could not be added: {reason}").format(
                name=member.name, reason=plain_words(str(exc))))
            return
        if self.sidebar.model.contact(info.peer_id) is None:
            self.sidebar.model.upsert_contact(info)

    # -- contact actions --------------------------------------------------------------------

    def contact_action(self, action: str, peer_id: str) -> None:
        """From the sidebar's context menu and the details page."""
        match ContactAction(action):
            case ContactAction.OPEN:
                self.open_peer(peer_id)
            case ContactAction.ACCEPT:
                self.accept_request(peer_id)
            case ContactAction.RENAME:
                self.ask_rename(peer_id)
            case ContactAction.DETAILS:
                self.show_details(peer_id)
            case ContactAction.BLOCK:
                self.block(peer_id)
            case ContactAction.REMOVE:
                self.confirm_remove(peer_id)

    def accept_request(self, peer_id: str) -> None:
        self._run(self.tr("Accepting the request"), "accept_request", peer_id)

    def block(self, peer_id: str) -> None:
        self._run(self.tr("Blocking"), "block", peer_id)

    def rename(self, peer_id: str, name: str) -> None:
        self._run(self.tr("Renaming"), "rename_contact", peer_id, name)

    def set_verified(self, peer_id: str, verified: bool) -> None:
        self._run(self.tr("Marking as verified"), "set_verified", peer_id, verified)

    def ask_rename(self, peer_id: str) -> None:
        info = self.sidebar.model.contact(peer_id)
        if info is None:
            return
        if self.rename_dialog is not None:
            self.rename_dialog.deleteLater()
        dialog = QInputDialog(self)
        dialog.setWindowTitle(self.tr("Rename Contact"))
        dialog.setLabelText(
            self.tr("A name only you see for {name}. Leave it empty to use the name they chose.")
            .format(name=info.name)
        )
        dialog.setTextValue(info.local_name or info.name)
        dialog.textValueSelected.connect(lambda name: self.rename(peer_id, name))
        self.rename_dialog = dialog
        dialog.open()

    def confirm_remove(self, peer_id: str) -> None:
        info = self.sidebar.model.contact(peer_id)
        if info is None:
            return
        self.remove_box = self._confirm(
            self.remove_box, self.tr("Remove Contact"),
            self.tr("Remove {name} and your whole conversation with them? This cannot be "
                    "undone.").format(name=info.name),
            self.tr("Remove"),
            lambda: self._run(self.tr("Removing the contact"), "remove_contact", peer_id))

    def remove_button(self) -> QPushButton | None:
        """The confirming button of the open "Remove contact?" box (for keyboard and tests)."""
        return _destructive_button(self.remove_box)

    def show_details(self, peer_id: str) -> ContactDetailsDialog | None:
        info = self.sidebar.model.contact(peer_id)
        if info is None or info.state is ContactState.BLOCKED:
            return None
        dialog = self.details_dialogs.get(peer_id)
        if dialog is None:
            dialog = ContactDetailsDialog(self.state.peer_id, info, self)
            dialog.set_route(self.routes.get(peer_id, ""))
            dialog.rename_requested.connect(self.rename)
            dialog.verified_toggled.connect(self.set_verified)
            dialog.action_requested.connect(self.contact_action)
            dialog.finished.connect(lambda _: self._forget_details(peer_id, dialog))
            self.details_dialogs[peer_id] = dialog
        dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _forget_details(self, peer_id: str, dialog: ContactDetailsDialog) -> None:
        if self.details_dialogs.get(peer_id) is dialog:
            del self.details_dialogs[peer_id]
        dialog.deleteLater()

    def show_blocked(self) -> BlockedDialog:
        if self.blocked_dialog is None:
            self.blocked_dialog = BlockedDialog(self)
            self.blocked_dialog.unblock_requested.connect(self.accept_request)
        self.blocked_dialog.set_blocked(self.sidebar.model.blocked())
        self.blocked_dialog.open()
        return self.blocked_dialog

    def show_add_contact(self, link: str | None = None) -> AddContactDialog:
        """File ▸ Add Contact…, Ctrl+N, "+", or a ``kith:`` link Kith was started with."""
        if self.add_dialog is None:
            dialog = AddContactDialog(
                self.runner, self.state.peer_id,
                self.client.add_contact if self.client is not None else None, self,
            )
            dialog.added.connect(self._contact_added)
            dialog.join_room_requested.connect(self.show_join_room)
            dialog.finished.connect(lambda _: self._forget_add_dialog(dialog))
            self.add_dialog = dialog
        if link is not None:
            self.add_dialog.set_link(link)
        self.add_dialog.open()
        self.add_dialog.link_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        return self.add_dialog

    def _forget_add_dialog(self, dialog: AddContactDialog) -> None:
        if self.add_dialog is dialog:
            self.add_dialog = None
        dialog.deleteLater()

    def _contact_added(self, info: ContactInfo) -> None:
        if self.sidebar.model.contact(info.peer_id) is None:  # events may already be newer
            self.sidebar.model.upsert_contact(info)
        if self.sidebar.query() and self.sidebar.index_of(info.peer_id) is None:
            self.sidebar.search.clear()  # the new contact must be visible to be selected
        self.open_peer(info.peer_id)

    # -- behaviour --------------------------------------------------------------------------

    def _refresh_title(self) -> None:
        title = self.tr("Kith — {name}").format(name=self.state.display_name)
        if self.unread_total:
            title = self.tr("({count}) {title}").format(count=self.unread_total, title=title)
        if self.title_note:
            title = f"{title} {self.title_note}"
        self.setWindowTitle(title)

    def set_title_note(self, note: str) -> None:
        self.title_note = note
        self._refresh_title()

    def show_error(self, message: str) -> None:
        """Show a problem in the banner (plain words; details are in the log)."""
        self._banner_box.setContentsMargins(16, 12, 16, 0)
        self.banner.show_message(message)

    def focus_search(self) -> None:
        self.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.sidebar.search.selectAll()

    def _toggle_identity(self, on: bool) -> None:
        self.identity_panel.set_expanded(on)
        if on:
            self.identity_panel.copy_button.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_about(self) -> None:
        if self._about is None:
            box = QMessageBox(self)
            box.setWindowTitle(self.tr("About Kith"))
            box.setIconPixmap(app_icon().pixmap(64, 64))
            box.setTextFormat(Qt.TextFormat.RichText)
            box.setStandardButtons(QMessageBox.StandardButton.Close)
            self._about = box
        self._about.setText(
            "<h3>Kith {version}</h3><p>{body}</p>".format(
                version=html.escape(__version__),
                body=html.escape(
                    self.tr(
                        "Peer-to-peer chat and file sharing. There is no server: every Kith is "
                        "both client and server, and messages are end-to-end encrypted."
                    )
                ),
            )
        )
        self._about.open()

    def about_box(self) -> QMessageBox | None:
        return self._about

    def closeEvent(self, event: QCloseEvent) -> None:
        event.accept()
        self.tray.hide()
        self.closed.emit()


def _destructive_button(box: QMessageBox | None) -> QPushButton | None:
    if box is None:
        return None
    for button in box.buttons():
        if box.buttonRole(button) == QMessageBox.ButtonRole.DestructiveRole:
            return button if isinstance(button, QPushButton) else None
    return None
