"""Add a contact from a pasted ``kith:`` invite, checked as it is typed.

There is no directory to search: an invite is the only way to find someone, so the dialog says
exactly what is wrong with a link before anything is sent, and keeps network errors inline
instead of in a separate box. It is opened with ``open()`` and awaits the client without a
nested event loop. A room link pasted here is not an error: the dialog offers to join the room
and hands the link to the Join Room dialog (``join_room_requested``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QWidget

from app.core.invite import ContactInvite, InvalidInvite, parse_invite
from app.core.records import ContactInfo, short_peer_id
from app.core.room import invite_kind, parse_room_invite
from ui.bridge import TaskRunner
from ui.widgets.link_dialog import LinkDialog, plain_words

AddContact = Callable[[str], Awaitable[ContactInfo]]


class AddContactDialog(LinkDialog):
    """``added(ContactInfo)`` once the contact is stored; the dialog then closes."""

    added = Signal(object)
    join_room_requested = Signal(str)  # a room link was pasted and the user chose to join it

    def __init__(
        self,
        runner: TaskRunner,
        own_peer_id: str,
        add: AddContact | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(
            runner,
            title=self.tr("Add Contact"),
            min_width=460,
            intro=self.tr("Paste the invite link someone sent you. It starts with “kith:”."),
            placeholder="kith:contact?id=…",
            field_name=self.tr("Invite link"),
            ok_text=self.tr("Add Contact"),
            parent=parent,
        )
        self._own_peer_id = own_peer_id
        self._add = add
        small = QFont(self.status_label.font())
        small.setPointSizeF(small.pointSizeF() * 0.95)
        self.status_label.setFont(small)
        self._invite: ContactInvite | None = None
        self._room_link: str | None = None
        self.validate()

    def set_adder(self, add: AddContact | None) -> None:
        """The coroutine that adds (``client.add_contact``); None while offline."""
        self._add = add
        self.validate()

    def validate(self, *_: object) -> bool:
        """Check the link as typed; OK is enabled only for a usable contact invite."""
        self._invite = None
        self._room_link = None
        link = self.link()
        ok = False
        self.ok_button.setText(self.tr("Add Contact"))
        if not link:
            self._say("", False)
        else:
            try:
                kind = invite_kind(link)
                if kind == "room":
                    room = parse_room_invite(link)
                    self._room_link = link
                    self._say(self.tr("This link invites you to the room “{name}”, not to a "
                                      "contact. Join the room instead?").format(name=room.name),
                              False)
                    self.ok_button.setText(self.tr("Join Room…"))
                    self.ok_button.setEnabled(not self._busy)
                    return True
                invite = parse_invite(link)
                if invite.peer_id == self._own_peer_id:
                    raise InvalidInvite(self.tr("this is your own invite: send it to others"))
            except (InvalidInvite, ValueError) as exc:
                self._say(plain_words(str(exc)), True)
            else:
                self._invite = invite
                who = invite.name or short_peer_id(invite.peer_id)
                found = (self.tr("Found an invite in the pasted text. ")
                         if self.found_in_text() else "")
                if self._add is None:
                    self._say(found + self.tr("Kith is not online yet; you can add {name} once "
                                              "it is.").format(name=who), True)
                else:
                    self._say(found + self.tr("Adds {name} ({peer}).").format(
                        name=who, peer=short_peer_id(invite.peer_id)), False)
                    ok = True
        self.ok_button.setEnabled(ok and not self._busy)
        return ok

    def submit(self) -> None:
        if self._busy or not self.validate():
            return
        if self._room_link is not None:
            self.join_room_requested.emit(self._room_link)
            self.accept()
            return
        if self._add is None:
            return
        self._send(self._add, self.added.emit, doing=self.tr("Adding…"),
                   failed=self.tr("The contact could not be added."),
                   task=self.tr("Adding a contact"))
