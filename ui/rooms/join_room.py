"""Join a room from a pasted ``kith:room`` link, checked as it is typed.

The link is the room: its id, its key and members to connect to. The dialog says what is wrong
with a link in plain words before anything is sent, names the room it would join, and notices
a room you are already in (then it just opens it). A contact invite pasted here is pointed to
Add Contact instead of failing with a parser's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from app.core.invite import InvalidInvite
from app.core.records import RoomInfo
from app.core.room import RoomInvite, invite_kind, parse_room_invite
from ui.bridge import TaskRunner
from ui.widgets.link_dialog import LinkDialog, plain_words

JoinRoom = Callable[[str], Awaitable[RoomInfo]]
KnownRoom = Callable[[str], RoomInfo | None]


class JoinRoomDialog(LinkDialog):
    """``joined(RoomInfo)`` once the room is joined (or was already); the dialog then closes."""

    joined = Signal(object)

    def __init__(self, runner: TaskRunner, join: JoinRoom | None = None,
                 known: KnownRoom | None = None, parent: QWidget | None = None) -> None:
        super().__init__(
            runner,
            title=self.tr("Join Room"),
            min_width=480,
            intro=self.tr(
                "Paste the room link someone shared with you. It starts with “kith:room”."),
            placeholder="kith:room?id=…",
            field_name=self.tr("Room link"),
            ok_text=self.tr("Join Room"),
            parent=parent,
        )
        self._join = join
        self._known = known
        self._invite: RoomInvite | None = None
        self.validate()

    def set_joiner(self, join: JoinRoom | None) -> None:
        """``client.join_room``, or None while offline."""
        self._join = join
        self.validate()

    def _already(self) -> RoomInfo | None:
        if self._invite is None or self._known is None:
            return None
        return self._known(self._invite.secrets.id_hex)

    def validate(self, *_: object) -> bool:
        """OK only for a usable room link (or one for a room you are in: it opens)."""
        self._invite = None
        link = self.link()
        ok = False
        self.ok_button.setText(self.tr("Join Room"))
        if not link:
            self._say("", False)
        else:
            try:
                if invite_kind(link) == "contact":
                    raise InvalidInvite(self.tr(
                        "this is a contact invite, not a room link: add it with File ▸ Add "
                        "Contact"))
                invite = parse_room_invite(link)
            except (InvalidInvite, ValueError) as exc:
                self._say(plain_words(str(exc)), True)
            else:
                self._invite = invite
                found = (self.tr("Found a room link in the pasted text. ")
                         if self.found_in_text() else "")
                already = self._already()
                if already is not None:
                    self._say(self.tr("You are already in “{name}”.").format(name=already.name),
                              False)
                    self.ok_button.setText(self.tr("Open Room"))
                    ok = True
                elif self._join is None:
                    self._say(found + self.tr("Kith is not online yet; you can join “{name}” "
                                              "once it is.").format(name=invite.name), True)
                else:
                    about = f" — {invite.description}" if invite.description else ""
                    self._say(found + self.tr("Joins “{name}”{about}. The members will see your "
                                              "name.").format(name=invite.name, about=about),
                              False)
                    ok = True
        self.ok_button.setEnabled(ok and not self._busy)
        return ok

    def submit(self) -> None:
        if self._busy or not self.validate():
            return
        already = self._already()
        if already is not None:
            self.joined.emit(already)
            self.accept()
            return
        if self._join is None:
            return
        self._send(self._join, self.joined.emit, doing=self.tr("Joining…"),
                   failed=self.tr("The room could not be joined."),
                   task=self.tr("Joining a room"))
