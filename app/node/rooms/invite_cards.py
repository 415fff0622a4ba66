"""Join cards: a room's link sent to a contact over their direct-message channel.

A direct message of kind ``dm.KIND_ROOM_INVITE`` carries a ``kith:room`` link (with an invite
token when the room is governed). The conversation shows it as an invitation whose link the
window can open; the headless node prints ``room_invite``. A card that is not a valid room
link is stored (the sender must not retry it forever) and shown as nothing.
"""

from __future__ import annotations

from dataclasses import replace

from app.core.dm import DirectMessage
from app.core.events import RoomInviteReceived
from app.core.invite import InvalidInvite
from app.core.records import MessageInfo
from app.core.room import RoomInvite, parse_room_invite
from app.node.interfaces import Emit, Refusal

CARD_MAX_BYTES = 4096  # a direct message of a kind other than text


def fit_card(link: str) -> str:
    """``link`` short enough for a card: fewer members to dial; the key and token stay."""
    while len(link.encode()) > CARD_MAX_BYTES and "&via=" in link:
        cut = link.rindex("&via=")
        rest = link[cut + 1:]
        link = link[:cut] + (rest[rest.index("&"):] if "&" in rest else "")
    return link


def _card(body: str) -> RoomInvite | None:
    try:
        return parse_room_invite(body)
    except InvalidInvite:
        return None


class RoomInviteCards:
    """``interfaces.DmKindHandler`` of join cards."""

    shown = True

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    def refusal(self, peer_id: str, message: DirectMessage) -> Refusal | None:
        return None

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        card = _card(message.text)
        if card is None:
            return False
        self._emit(RoomInviteReceived(
            id=message.message_id.hex(), from_=peer_id, room_id=card.secrets.id_hex,
            room_name=card.name, invite=card.to_link()))
        return True

    def present(self, message: MessageInfo) -> MessageInfo | None:
        card = _card(message.text)
        if card is None:
            return None
        text = f"Invitation to the room “{card.name}”: {card.to_link()}"
        return replace(message, text=text)

    def refused(self, message: MessageInfo, reason: str) -> None:
        pass
