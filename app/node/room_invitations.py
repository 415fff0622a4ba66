"""Inviting contacts into a room without a link to copy around.

Each chosen contact gets a direct message with one sentence and a ``kith:room`` link
(``app.core.room.invitation_text``): Kith shows any such link as "Join the room “…”" to click,
and any other client shows the text. It is an ordinary text message, so a peer of any version
reads it, and it goes through the outbox like any other (waiting for a contact who is offline).
Which link: the one governance gives a contact invited directly (``RoomGovernance.card_link``:
in a governed room an owner's or admin's one-use invite, so that the click joins; else the
room's link).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from app.core import dm
from app.core import room as rc
from app.core.records import ContactState, MessageInfo
from app.node.interfaces import ContactBook, Outbox, RoomInfos

MAX_ROOM_INVITEES = 64  # contacts invited to a room in one go (each gets a direct message)


class InvitationError(ValueError):
    """An invitation that cannot be sent; the message says why, in plain words."""


class RoomInvitations:
    """Sends a room's link to contacts (``KithClient.invite_to_room``)."""

    def __init__(self, *, rooms: RoomInfos, contacts: ContactBook, outbox: Outbox,
                 link_for: Callable[[bytes], Awaitable[str]]) -> None:
        self._rooms = rooms
        self._contacts = contacts
        self._outbox = outbox
        self._link_for = link_for

    async def invite(self, room_id: str, peer_ids: Sequence[str]) -> list[MessageInfo]:
        """Queue the invitation for each contact in ``peer_ids`` (each once). Every one is
        checked before any is queued: contacts only (never a request, which writing to would
        accept), at most ``MAX_ROOM_INVITEES``."""
        try:
            room = self._rooms.info(bytes.fromhex(room_id))
        except ValueError:
            raise InvitationError("you are not in this room") from None
        chosen = list(dict.fromkeys(peer_ids))
        if not chosen:
            raise InvitationError("choose at least one contact to invite")
        if len(chosen) > MAX_ROOM_INVITEES:
            raise InvitationError(f"invite at most {MAX_ROOM_INVITEES} contacts at once")
        if any(self._contacts.state(p) is not ContactState.CONTACT for p in chosen):
            raise InvitationError("only your contacts can be invited from here; share the "
                                  "room's link with anyone else")
        sent = []
        for peer_id in chosen:
            link = await self._link_for(bytes.fromhex(room.room_id))
            sent.append(self._outbox.queue(peer_id, dm.KIND_TEXT,
                                           rc.invitation_text(room.name, link)))
        return sent
