"""Contacts in the main window: adding, accepting, renaming, verifying, blocking and removing
people, and keeping the sidebar's list and the open dialogs current from contact events.

Every way to act on a contact ends here: File ▸ Add Contact… (Ctrl+N) and Blocked People…, the
sidebar's "+" and context menu, the request bar, a contact's details page, and Nearby's "Send
request". Kept apart from ``MainWindow`` (like ``WindowFiles``) so the window only arranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPalette
from PySide6.QtWidgets import QInputDialog, QMessageBox, QPushButton

from app.core.events import ContactChanged, ContactMailboxes, ContactRemoved, ContactRoute
from app.core.invite import ContactInvite
from app.core.records import ContactInfo, ContactState, short_peer_id
from ui.sidebar.actions import ContactAction
from ui.style.resources import tinted_icon
from ui.widgets.confirm import confirm, destructive_button
from ui.widgets.link_dialog import plain_words

if TYPE_CHECKING:  # dialogs are imported when first opened: a lighter window at start
    from app.client import KithClient
    from ui.bridge import EventBridge
    from ui.contacts.add_contact import AddContactDialog
    from ui.contacts.blocked_dialog import BlockedDialog
    from ui.contacts.contact_details import ContactDetailsDialog
    from ui.window.frame import WindowFrame


class WindowContacts(QObject):
    """The contact actions and dialogs of one window; ``join_room_requested(link)`` when a room
    link was pasted into Add Contact."""

    join_room_requested = Signal(str)

    def __init__(self, window: WindowFrame) -> None:
        super().__init__(window)
        self.window = window
        self.add_dialog: AddContactDialog | None = None
        self.details_dialogs: dict[str, ContactDetailsDialog] = {}
        self.blocked_dialog: BlockedDialog | None = None
        self.rename_dialog: QInputDialog | None = None
        self.remove_box: QMessageBox | None = None
        self.routes: dict[str, str] = {}  # peer id -> how we reach them now (ContactRoute)

        self.add_contact_action = QAction(self.tr("&Add Contact…"), window)
        self.add_contact_action.setShortcut(QKeySequence("Ctrl+N"))
        self.add_contact_action.triggered.connect(lambda: self.show_add_contact())
        self.blocked_action = QAction(self.tr("&Blocked People…"), window)
        self.blocked_action.triggered.connect(self.show_blocked)
        self._tint()
        window.palette_changed.connect(self._tint)

        window.sidebar.contact_action.connect(self.contact_action)
        window.sidebar.add_requested.connect(lambda: self.show_add_contact())
        window.request_bar.accept_requested.connect(self.accept_request)
        window.request_bar.block_requested.connect(self.block)
        window.conversation.details_requested.connect(self.show_details)
        window.conversation.header.route_of = lambda peer: self.routes.get(peer, "")
        window.nearby.is_known = lambda peer: window.sidebar.model.contact(peer) is not None
        window.nearby.request_requested.connect(self.request_nearby)

    def _tint(self) -> None:
        text = self.window.palette().color(QPalette.ColorRole.WindowText)
        self.add_contact_action.setIcon(tinted_icon("plus", text))

    # -- the client and its events ----------------------------------------------------------

    def set_client(self, client: KithClient | None) -> None:
        if self.add_dialog is not None:
            self.add_dialog.set_adder(client.add_contact if client is not None else None)
        if client is not None:
            self.window.sidebar.model.begin_load()

    async def load(self, client: KithClient) -> None:
        """The contacts snapshot (``set_client`` began it; events since then stay newer)."""
        self.window.sidebar.model.load(await client.contacts())
        self._refresh_blocked()

    def listen(self, events: EventBridge) -> None:
        events.subscribe(ContactChanged, self._contact_changed)
        events.subscribe(ContactRemoved, self._contact_removed)
        events.subscribe(ContactRoute, self._route_changed)
        events.subscribe(ContactMailboxes, self._mailboxes_changed)

    def _contact_changed(self, event: ContactChanged) -> None:
        info = event.contact
        window = self.window
        window.sidebar.model.upsert_contact(info)
        if window.member_panel.member(info.peer_id) is not None:
            window.member_panel.refresh()  # a member became a contact, or stopped being one
        if window.conversation.current_peer == info.peer_id:
            if info.state is ContactState.BLOCKED:
                window.close_conversation()
            else:
                window.conversation.update_contact(info)
                window.show_request_bar(info)
        dialog = self.details_dialogs.get(info.peer_id)
        if dialog is not None:
            if info.state is ContactState.BLOCKED:
                self.details_dialogs.pop(info.peer_id)
                dialog.close()
            else:
                dialog.update_contact(info)
        self._refresh_blocked()

    def _contact_removed(self, event: ContactRemoved) -> None:
        self.window.sidebar.model.remove_contact(event.peer_id)
        if self.window.conversation.current_peer == event.peer_id:
            self.window.close_conversation()
        dialog = self.details_dialogs.pop(event.peer_id, None)
        if dialog is not None:
            dialog.close()
        self._refresh_blocked()

    def _route_changed(self, event: ContactRoute) -> None:
        peer_id, route = event.peer_id, event.route
        if route:
            self.routes[peer_id] = route
        else:
            self.routes.pop(peer_id, None)
        self.window.conversation.header.refresh_route(peer_id)
        dialog = self.details_dialogs.get(peer_id)
        if dialog is not None:
            dialog.set_route(route)

    def _mailboxes_changed(self, event: ContactMailboxes) -> None:
        if event.peer_id in self.details_dialogs:
            self._load_mailbox(event.peer_id)

    def _refresh_blocked(self) -> None:
        if self.blocked_dialog is not None:
            self.blocked_dialog.set_blocked(self.window.sidebar.model.blocked())

    # -- actions ----------------------------------------------------------------------------

    def contact_action(self, action: str, peer_id: str) -> None:
        """From the sidebar's context menu and the details page."""
        match ContactAction(action):
            case ContactAction.OPEN:
                self.window.open_peer(peer_id)
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
        self.window.call_client(self.tr("Accepting the request"),
                                lambda client: client.accept_request(peer_id))

    def block(self, peer_id: str) -> None:
        self.window.call_client(self.tr("Blocking"), lambda client: client.block(peer_id))

    def rename(self, peer_id: str, name: str) -> None:
        self.window.call_client(self.tr("Renaming"),
                                lambda client: client.rename_contact(peer_id, name))

    def set_verified(self, peer_id: str, verified: bool) -> None:
        self.window.call_client(self.tr("Marking as verified"),
                                lambda client: client.set_verified(peer_id, verified))

    def ask_rename(self, peer_id: str) -> None:
        info = self.window.sidebar.model.contact(peer_id)
        if info is None:
            return
        if self.rename_dialog is not None:
            self.rename_dialog.deleteLater()
        dialog = QInputDialog(self.window)
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
        info = self.window.sidebar.model.contact(peer_id)
        if info is None:
            return
        self.remove_box = confirm(
            self.window, self.remove_box, self.tr("Remove Contact"),
            self.tr("Remove {name} and your whole conversation with them? This cannot be "
                    "undone.").format(name=info.name),
            self.tr("Remove"),
            lambda: self.window.call_client(self.tr("Removing the contact"),
                                            lambda client: client.remove_contact(peer_id)))

    def remove_button(self) -> QPushButton | None:
        """The confirming button of the open "Remove contact?" box (for keyboard and tests)."""
        return destructive_button(self.remove_box)

    # -- dialogs ----------------------------------------------------------------------------

    def show_details(self, peer_id: str) -> ContactDetailsDialog | None:
        window = self.window
        info = window.sidebar.model.contact(peer_id)
        if info is None or info.state is ContactState.BLOCKED:
            return None
        dialog = self.details_dialogs.get(peer_id)
        if dialog is None:
            from ui.contacts.contact_details import ContactDetailsDialog
            dialog = ContactDetailsDialog(window.state.peer_id, info, window)
            dialog.set_route(self.routes.get(peer_id, ""))
            dialog.rename_requested.connect(self.rename)
            dialog.verified_toggled.connect(self.set_verified)
            dialog.action_requested.connect(self.contact_action)
            dialog.use_mailbox_requested.connect(self.use_mailbox)
            self._load_mailbox(peer_id)
            dialog.finished.connect(lambda _: self._forget_details(peer_id, dialog))
            self.details_dialogs[peer_id] = dialog
        dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _load_mailbox(self, peer_id: str) -> None:
        client = self.window.client
        if client is not None:
            self.window.runner.run(self._show_mailbox(client, peer_id),
                                   self.tr("Reading a contact's mailbox"))

    async def _show_mailbox(self, client: KithClient, peer_id: str) -> None:
        info = await client.contact_mailbox(peer_id)
        dialog = self.details_dialogs.get(peer_id)
        if dialog is not None:
            dialog.set_mailbox(info)

    def use_mailbox(self, peer_id: str) -> None:
        """"Use as My Mailbox" on a contact who keeps messages for others."""
        client = self.window.client
        if client is not None:
            self.window.runner.run(self._use_mailbox(client, peer_id),
                                   self.tr("Using a contact as your mailbox"))

    async def _use_mailbox(self, client: KithClient, peer_id: str) -> None:
        info = await client.use_mailbox(peer_id)
        dialog = self.details_dialogs.get(peer_id)
        if dialog is not None:
            dialog.set_mailbox(info)

    def _forget_details(self, peer_id: str, dialog: ContactDetailsDialog) -> None:
        if self.details_dialogs.get(peer_id) is dialog:
            del self.details_dialogs[peer_id]
        dialog.deleteLater()

    def show_blocked(self) -> BlockedDialog:
        if self.blocked_dialog is None:
            from ui.contacts.blocked_dialog import BlockedDialog
            self.blocked_dialog = BlockedDialog(self.window)
            self.blocked_dialog.unblock_requested.connect(self.accept_request)
        self.blocked_dialog.set_blocked(self.window.sidebar.model.blocked())
        self.blocked_dialog.open()
        return self.blocked_dialog

    def show_add_contact(self, link: str | None = None) -> AddContactDialog:
        """File ▸ Add Contact…, Ctrl+N, "+", or a ``kith:`` link Kith was started with."""
        if self.add_dialog is None:
            window = self.window
            client = window.client
            from ui.contacts.add_contact import AddContactDialog
            dialog = AddContactDialog(
                window.runner, window.state.peer_id,
                client.add_contact if client is not None else None, window,
            )
            dialog.added.connect(self.contact_added)
            dialog.join_room_requested.connect(self.join_room_requested)
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

    def contact_added(self, info: ContactInfo) -> None:
        """A contact was added here: list it (events may already be newer) and open it."""
        sidebar = self.window.sidebar
        if sidebar.model.contact(info.peer_id) is None:
            sidebar.model.upsert_contact(info)
        if sidebar.query() and sidebar.index_of(info.peer_id) is None:
            sidebar.search.clear()  # the new contact must be visible to be selected
        self.window.open_peer(info.peer_id)

    # -- nearby -----------------------------------------------------------------------------

    def request_nearby(self, peer_id: str) -> None:
        """Nearby ▸ Send request: add them from their LAN announcement and say hello, which
        they see as a message request (the same path as any stranger writing first)."""
        window = self.window
        found = window.nearby.peer(peer_id)
        client = window.client
        if found is None or client is None:
            window.nearby.request_failed(peer_id)
            if client is None:
                window.show_error(self.tr("Sending a request failed: Kith is not online."))
            return
        name, addrs = found
        window.runner.run(self._request_nearby(client, peer_id, name, addrs),
                          self.tr("Sending a contact request"))

    async def _request_nearby(self, client: KithClient, peer_id: str, name: str,
                              addrs: tuple[str, ...]) -> None:
        window = self.window
        link = ContactInvite(peer_id=peer_id, name=name, addrs=addrs).to_link()
        greeting = self.tr("Hi, this is {name}. I found you on the local network and added "
                           "you as a contact.").format(name=window.state.display_name)
        try:
            info = await client.add_contact(link)
            await client.send(peer_id, greeting)
        except ValueError as exc:
            window.nearby.request_failed(peer_id)
            window.show_error(self.tr("The request to {name} was not sent: {reason}").format(
                name=name or short_peer_id(peer_id), reason=plain_words(str(exc))))
            return
        except BaseException:
            window.nearby.request_failed(peer_id)
            raise
        self.contact_added(info)
