"""Rooms in the main window: creating, joining, inviting to and leaving rooms, the member panel,
and keeping the sidebar's list and the open dialogs current from room events.

Every way to act on a room ends here: File ▸ New Room… (Ctrl+Shift+N) and Join Room… (Ctrl+J),
the Room menu (Invite People…, Members, Leave Room…), the "+" beside Rooms, a room's context
menu, the conversation header's buttons and a member's menu. The room actions are enabled only
while a room is open. Kept apart from ``MainWindow`` (like ``WindowFiles``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence, QPalette
from PySide6.QtWidgets import QMenu, QMessageBox, QPushButton

from app.core.events import (
    Event,
    JoinRequested,
    MemberJoined,
    MemberRemoved,
    RemovedFromRoom,
    RoleChanged,
    RoomChanged,
    RoomCreated,
    RoomJoined,
    RoomLeft,
    RoomMembersChanged,
    RoomPostAdded,
    RoomSettingsChanged,
)
from app.core.records import ContactInfo, ContactState, RoomInfo, RoomMember, short_peer_id
from ui.sidebar.actions import RoomAction
from ui.style.resources import tinted_icon
from ui.widgets.confirm import confirm, destructive_button
from ui.widgets.link_dialog import plain_words

if TYPE_CHECKING:  # dialogs are imported when first opened: a lighter window at start
    from app.client import KithClient
    from ui.bridge import EventBridge
    from ui.rooms.join_room import JoinRoomDialog
    from ui.rooms.new_room import NewRoomDialog
    from ui.rooms.room_invite import RoomInviteDialog
    from ui.rooms.room_settings import RoomSettingsDialog
    from ui.window.frame import WindowFrame


class WindowRooms(QObject):
    """The room actions, dialogs and member panel of one window."""

    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self.new_room_dialog: NewRoomDialog | None = None
        self.join_dialog: JoinRoomDialog | None = None
        self.invite_dialogs: dict[str, RoomInviteDialog] = {}
        self.leave_box: QMessageBox | None = None
        self.member_menu: QMenu | None = None
        self.settings_dialog: RoomSettingsDialog | None = None
        self.member_box: QMessageBox | None = None
        self._author_names: dict[str, str] = {}  # peer id -> name, from room posts
        self.my_roles: dict[str, str] = {}  # room id -> our role in a governed room
        window.conversation.message_actions.may_moderate = (
            lambda room_id: self.my_roles.get(room_id) in ("owner", "admin"))
        self._build_actions()
        self._tint()
        window.palette_changed.connect(self._tint)

        window.sidebar.room_action.connect(self.room_action)
        window.sidebar.new_room_requested.connect(lambda: self.show_new_room())
        window.conversation.members_requested.connect(
            lambda _: self.members_action.setChecked(not self.members_action.isChecked()))
        window.conversation.header.set_room_actions(self.members_action, self.invite_action)
        window.member_panel.close_requested.connect(lambda: self.members_action.setChecked(False))
        window.member_panel.member_activated.connect(self.show_member_menu)
        window.member_panel.is_contact = self._is_contact
        window.conversation_changed.connect(self._conversation_changed)

    def _build_actions(self) -> None:
        window = self.window
        self.new_room_action = QAction(self.tr("&New Room…"), window)
        self.new_room_action.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.new_room_action.triggered.connect(lambda: self.show_new_room())

        self.join_room_action = QAction(self.tr("&Join Room…"), window)
        self.join_room_action.setShortcut(QKeySequence("Ctrl+J"))
        self.join_room_action.triggered.connect(lambda: self.show_join_room())

        self.members_action = QAction(self.tr("Room &Members"), window)
        self.members_action.setShortcut(QKeySequence("Ctrl+Shift+M"))
        self.members_action.setCheckable(True)
        self.members_action.setToolTip(self.tr("Show the room's members (Ctrl+Shift+M)"))
        self.members_action.setIconText(self.tr("Members"))
        self.members_action.toggled.connect(self._toggle_members)

        self.invite_action = QAction(self.tr("&Invite People…"), window)
        self.invite_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.invite_action.setToolTip(self.tr("Invite people to this room (Ctrl+Shift+I)"))
        self.invite_action.setIconText(self.tr("Invite"))
        self.invite_action.triggered.connect(lambda: self.show_room_invite())

        self.settings_action = QAction(self.tr("Room &Settings…"), window)
        self.settings_action.setToolTip(self.tr("Who may join, invite links, join requests"))
        self.settings_action.triggered.connect(lambda: self.show_room_settings())

        self.leave_action = QAction(self.tr("&Leave Room…"), window)
        self.leave_action.triggered.connect(self._leave_open_room)
        for action in (self.members_action, self.invite_action, self.settings_action,
                       self.leave_action):
            action.setEnabled(False)  # only while a room is open

    def _tint(self) -> None:
        text = self.window.palette().color(QPalette.ColorRole.WindowText)
        self.new_room_action.setIcon(tinted_icon("plus", text))
        self.members_action.setIcon(tinted_icon("user", text))
        self.invite_action.setIcon(tinted_icon("copy", text))

    def _is_contact(self, peer_id: str) -> bool:
        known = self.window.sidebar.model.contact(peer_id)
        return known is not None and known.state is ContactState.CONTACT

    # -- the client and its events ----------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        if self.new_room_dialog is not None:
            self.new_room_dialog.set_creator(client.create_room if client is not None else None)
        if self.join_dialog is not None:
            self.join_dialog.set_joiner(client.join_room if client is not None else None)
        if client is not None:
            self.window.sidebar.model.begin_rooms_load()

    async def load(self, client: KithClient) -> None:
        """The rooms snapshot (``set_client`` began it; events since then stay newer)."""
        self.window.sidebar.model.load_rooms(await client.rooms())

    def listen(self, events: EventBridge) -> None:
        events.subscribe(RoomChanged, self._room_changed)
        events.subscribe(RoomCreated, self._refresh_rooms)
        events.subscribe(RoomJoined, self._refresh_rooms)
        events.subscribe(RoomLeft, self._room_left)
        events.subscribe(RoomMembersChanged, self._members_changed)
        events.subscribe(RoomPostAdded, self._post_added)
        for governed in (RoleChanged, MemberJoined, MemberRemoved, RoomSettingsChanged):
            events.subscribe(governed, self._log_changed)
        events.subscribe(JoinRequested, self._join_requested)
        events.subscribe(RemovedFromRoom, self._removed)

    def _room_changed(self, event: RoomChanged) -> None:
        self.window.sidebar.model.upsert_room(event.room)
        invite = self.invite_dialogs.get(event.room.room_id)
        if invite is not None:
            invite.set_room(event.room)

    def _refresh_rooms(self, _event: RoomCreated | RoomJoined) -> None:
        """RoomChanged follows; a fresh list also covers a missed one."""
        client = self.window.client
        if client is None:
            return

        async def refresh() -> None:
            self.window.sidebar.model.begin_rooms_load()
            self.window.sidebar.model.load_rooms(await client.rooms())

        self.window.runner.run(refresh(), self.tr("Loading your rooms"))

    def _room_left(self, event: RoomLeft) -> None:
        room_id = event.room_id
        self.window.sidebar.model.remove_room(room_id)
        if self.window.conversation.current_room == room_id:
            self.window.close_conversation()
        invite = self.invite_dialogs.pop(room_id, None)
        if invite is not None:
            invite.close()

    def _members_changed(self, event: RoomMembersChanged) -> None:
        panel = self.window.member_panel
        if panel.room_id == event.room_id:
            panel.set_members(event.room_id, event.members)
        for member in event.members:
            if member.name and not member.is_me:
                self._author_names[member.peer_id] = member.name

    def _post_added(self, event: RoomPostAdded) -> None:
        post = event.post
        if post.author_name and not post.outgoing:
            self._author_names.setdefault(post.author, post.author_name)

    def author_name(self, peer_id: str) -> str:
        """A room member's name as this window knows it: a contact's, else the room's."""
        contact = self.window.sidebar.model.contact(peer_id)
        if contact is not None:
            return contact.name
        return self._author_names.get(peer_id, short_peer_id(peer_id))

    # -- the open room and its members ------------------------------------------------------

    def _conversation_changed(self) -> None:
        """Room actions only while a room is open; its members if the Members toggle is on."""
        room_open = self.window.conversation.current_room is not None
        for action in (self.members_action, self.invite_action, self.settings_action,
                       self.leave_action):
            action.setEnabled(room_open)
        if room_open:
            self._show_members_panel()
            self._learn_my_role(self.window.conversation.current_room)
        else:
            self.window.member_panel.hide()
            self.window.member_panel.clear()

    def _show_members_panel(self) -> None:
        """Show the panel for the open room when the Members toggle is on."""
        window = self.window
        room_id = window.conversation.current_room
        panel = window.member_panel
        shown = room_id is not None and self.members_action.isChecked()
        panel.setVisible(shown)
        if not shown or room_id is None:
            return
        if panel.room_id != room_id:
            panel.set_members(room_id, [])
        client = window.client
        if client is not None:
            window.runner.run(self._load_members(client, room_id),
                              self.tr("Loading the members"))

    async def _load_members(self, client: KithClient, room_id: str) -> None:
        members = await client.room_members(room_id)
        if self.window.conversation.current_room == room_id:
            self.window.member_panel.set_members(room_id, members)

    def _toggle_members(self, on: bool) -> None:
        self._show_members_panel()
        panel = self.window.member_panel
        if on and panel.isVisible():
            panel.list.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_member_menu(self, room_id: str, peer_id: str, where: QPoint) -> QMenu | None:
        """A member was activated: add them as a contact, or open your conversation."""
        window = self.window
        member = window.member_panel.member(peer_id)
        if member is None or member.is_me:
            return None
        menu = QMenu(window)
        menu.setObjectName("memberMenu")
        known = window.sidebar.model.contact(peer_id)
        if known is not None and known.state is not ContactState.BLOCKED:
            action = menu.addAction(self.tr("&Open Conversation"))
            action.setObjectName("open")
            action.triggered.connect(lambda: window.open_peer(peer_id))
        else:
            action = menu.addAction(self.tr("&Add {name} as a Contact").format(name=member.name))
            action.setObjectName("add")
            action.triggered.connect(lambda: self.add_member_contact(room_id, member))
        self._add_role_actions(menu, room_id, member)
        if self.member_menu is not None:
            self.member_menu.deleteLater()
        self.member_menu = menu
        menu.setActiveAction(action)
        menu.popup(where)
        return menu

    def _my_role(self) -> str:
        me = next((m for m in self.window.member_panel.members() if m.is_me), None)
        return me.role if me is not None else ""

    def _add_role_actions(self, menu: QMenu, room_id: str, member: RoomMember) -> None:
        """What an owner or admin of a governed room may do to a member."""
        mine = self._my_role()
        if mine not in ("owner", "admin") or not member.role:
            return
        menu.addSeparator()
        offered = [("admin", self.tr("Make &Admin")), ("member", self.tr("Make &Member")),
                   ("observer", self.tr("Make &Observer (reads only)"))]
        if mine == "owner":
            offered.insert(0, ("owner", self.tr("Make O&wner")))
        for role, words in offered:
            if role == member.role or (member.role == "owner" and mine != "owner"):
                continue
            action = menu.addAction(words)
            action.setObjectName(f"role_{role}")
            action.triggered.connect(
                lambda _=False, r=role: self.window.call_client(
                    self.tr("Changing a role"),
                    lambda client: client.set_role(room_id, member.peer_id, r)))
        if member.role == "owner" and mine != "owner":
            return
        for ban, words in ((False, self.tr("&Remove from Room…")),
                           (True, self.tr("&Ban from Room…"))):
            action = menu.addAction(words)
            action.setObjectName("ban" if ban else "remove")
            action.triggered.connect(
                lambda _=False, b=ban: self.confirm_removal(room_id, member, b))

    def confirm_removal(self, room_id: str, member: RoomMember, ban: bool) -> None:
        text = (self.tr("Ban {name}? They are removed, read nothing posted from now on, and "
                        "cannot join again.") if ban else
                self.tr("Remove {name}? They read nothing posted from now on; they keep what "
                        "they already have, and can only come back with a new invite."))
        self.member_box = confirm(
            self.window, self.member_box,
            self.tr("Ban Member") if ban else self.tr("Remove Member"),
            text.format(name=member.name), self.tr("Ban") if ban else self.tr("Remove"),
            lambda: self.window.call_client(
                self.tr("Removing a member"),
                lambda client: client.remove_member(room_id, member.peer_id, ban)))

    def member_button(self) -> QPushButton | None:
        """The confirming button of the open "Remove member?" box (keyboard and tests)."""
        return destructive_button(self.member_box)

    def show_room_settings(self, room_id: str | None = None) -> RoomSettingsDialog | None:
        """Room ▸ Room Settings… for the open room."""
        room_id = room_id or self.window.conversation.current_room
        if room_id is None:
            return None
        dialog = self.settings_dialog
        if dialog is None or dialog.room_id != room_id:
            if dialog is not None:
                dialog.close()
            info = self.window.sidebar.model.room(room_id)
            from ui.rooms.room_settings import RoomSettingsDialog
            dialog = RoomSettingsDialog(room_id, self.window.runner, self.window.client,
                                        self.author_name, info.name if info else "",
                                        self.window)
            dialog.finished.connect(lambda _: self._forget_settings(dialog))
            self.settings_dialog = dialog
        dialog.refresh()
        dialog.open()
        return dialog

    def _forget_settings(self, dialog: RoomSettingsDialog) -> None:
        if self.settings_dialog is dialog:
            self.settings_dialog = None
        dialog.deleteLater()

    def _log_changed(self, event: Event) -> None:
        """A governed room's log changed: the open settings show it."""
        self._log_changed_room(str(getattr(event, "room", "")))

    def _join_requested(self, event: JoinRequested) -> None:
        self._log_changed_room(event.room)
        info = self.window.sidebar.model.room(event.room)
        self.window.show_error(self.tr(
            "{name} asks to join “{room}”: answer in Room ▸ Room Settings.").format(
                name=self.author_name(event.peer_id), room=info.name if info else event.room))

    def _removed(self, event: RemovedFromRoom) -> None:
        info = self.window.sidebar.model.room(event.room)
        words = (self.tr("You were banned from “{room}” by {name}.") if event.ban
                 else self.tr("You were removed from “{room}” by {name}."))
        self.window.show_error(words.format(room=info.name if info else event.room,
                                            name=self.author_name(event.by)))

    def _log_changed_room(self, room_id: str) -> None:
        if self.settings_dialog is not None and self.settings_dialog.room_id == room_id:
            self.settings_dialog.refresh()
        if room_id == self.window.conversation.current_room:
            self._learn_my_role(room_id)

    def _learn_my_role(self, room_id: str | None) -> None:
        """Our role in the open room, for what its posts' menus offer (an admin deletes any
        post for everyone)."""
        client = self.window.client
        if client is not None and room_id is not None:
            self.window.runner.run(self._fetch_role(client, room_id),
                                   self.tr("Reading your role in the room"))

    async def _fetch_role(self, client: KithClient, room_id: str) -> None:
        self.my_roles[room_id] = str((await client.room_overview(room_id)).get("role", ""))

    def add_member_contact(self, room_id: str, member: RoomMember) -> None:
        client = self.window.client
        if client is None:
            self.window.show_error(self.tr("Adding a contact failed: Kith is not online."))
            return
        self.window.runner.run(self._add_member(client, room_id, member),
                               self.tr("Adding a contact"))

    async def _add_member(self, client: KithClient, room_id: str, member: RoomMember) -> None:
        try:
            link = await client.member_invite(room_id, member.peer_id)
            info = await client.add_contact(link)
        except ValueError as exc:
            self.window.show_error(self.tr("{name} could not be added: {reason}").format(
                name=member.name, reason=plain_words(str(exc))))
            return
        if self.window.sidebar.model.contact(info.peer_id) is None:
            self.window.sidebar.model.upsert_contact(info)

    # -- actions ----------------------------------------------------------------------------

    def room_action(self, action: str, room_id: str) -> None:
        """From a room's context menu in the sidebar."""
        match RoomAction(action):
            case RoomAction.OPEN:
                self.window.open_room(room_id)
            case RoomAction.INVITE:
                self.show_room_invite(room_id)
            case RoomAction.MEMBERS:
                if self.window.open_room(room_id):
                    self.members_action.setChecked(True)
            case RoomAction.LEAVE:
                self.confirm_leave(room_id)

    def show_new_room(self) -> NewRoomDialog:
        """File ▸ New Room…, Ctrl+Shift+N, or the "+" beside Rooms."""
        if self.new_room_dialog is None:
            window = self.window
            client = window.client
            from ui.rooms.new_room import NewRoomDialog
            dialog = NewRoomDialog(
                window.runner, client.create_room if client is not None else None, window)
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
            window = self.window
            client = window.client
            from ui.rooms.join_room import JoinRoomDialog
            dialog = JoinRoomDialog(
                window.runner, client.join_room if client is not None else None,
                window.sidebar.model.room, window,
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
        sidebar = self.window.sidebar
        if sidebar.model.room(info.room_id) is None:
            sidebar.model.upsert_room(info)
        if sidebar.query() and sidebar.index_of(info.room_id) is None:
            sidebar.search.clear()
        self.window.open_room(info.room_id)

    def show_room_invite(self, room_id: str | None = None) -> RoomInviteDialog | None:
        room_id = room_id or self.window.conversation.current_room
        info = self.window.sidebar.model.room(room_id) if room_id else None
        if info is None:
            return None
        dialog = self.invite_dialogs.get(info.room_id)
        if dialog is None:
            from ui.rooms.room_invite import RoomInviteDialog
            dialog = RoomInviteDialog(info, self.window)
            dialog.finished.connect(lambda _: self._forget_invite(info.room_id, dialog))
            dialog.send_requested.connect(lambda ids: self._send_invites(dialog, ids))
            self.invite_dialogs[info.room_id] = dialog
        self._list_invitees(dialog)
        dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _list_invitees(self, dialog: RoomInviteDialog) -> None:
        """The dialog lists every contact at once, then only those not in the room."""
        contacts = self.window.sidebar.model.contacts()
        dialog.set_contacts([(c.peer_id, c.name) for c in contacts])
        client = self.window.client
        if client is not None:
            self.window.runner.run(self._drop_members(client, dialog, contacts),
                                   self.tr("Listing the contacts to invite"))

    async def _drop_members(self, client: KithClient, dialog: RoomInviteDialog,
                            contacts: list[ContactInfo]) -> None:
        members = {m.peer_id for m in await client.room_members(dialog.room_id)}
        if self.invite_dialogs.get(dialog.room_id) is dialog:
            dialog.set_contacts([(c.peer_id, c.name) for c in contacts
                                 if c.peer_id not in members])

    def _send_invites(self, dialog: RoomInviteDialog, peer_ids: list[str]) -> None:
        client = self.window.client
        if client is None:
            dialog.send_failed(self.tr("Kith is not online."))
            return
        self.window.runner.run(self._invite(client, dialog, peer_ids),
                               self.tr("Sending the invitation"))

    async def _invite(self, client: KithClient, dialog: RoomInviteDialog,
                      peer_ids: list[str]) -> None:
        try:
            sent = await client.invite_to_room(dialog.room_id, peer_ids)
        except ValueError as exc:
            if self.invite_dialogs.get(dialog.room_id) is dialog:  # not closed meanwhile
                dialog.send_failed(plain_words(str(exc)))
            return
        if self.invite_dialogs.get(dialog.room_id) is not dialog:
            return
        model = self.window.sidebar.model
        dialog.sent([(c.name if (c := model.contact(m.peer_id)) else short_peer_id(m.peer_id))
                     for m in sent])

    def _forget_invite(self, room_id: str, dialog: RoomInviteDialog) -> None:
        if self.invite_dialogs.get(room_id) is dialog:
            del self.invite_dialogs[room_id]
        dialog.deleteLater()

    def _leave_open_room(self) -> None:
        room_id = self.window.conversation.current_room
        if room_id is not None:
            self.confirm_leave(room_id)

    def confirm_leave(self, room_id: str) -> None:
        info = self.window.sidebar.model.room(room_id)
        if info is None:
            return
        self.leave_box = confirm(
            self.window, self.leave_box, self.tr("Leave Room"),
            self.tr("Leave “{name}”? Its history is removed from this device. You can only "
                    "come back with its link.").format(name=info.name),
            self.tr("Leave"),
            lambda: self.window.call_client(self.tr("Leaving the room"),
                                            lambda client: client.leave_room(room_id)))

    def leave_button(self) -> QPushButton | None:
        """The confirming button of the open "Leave room?" box (for keyboard and tests)."""
        return destructive_button(self.leave_box)
