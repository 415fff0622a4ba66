"""Which messages and room posts are file offers, and the row a file card is painted from.

An offer's body is JSON (protocol section 9.2); clients that already parsed it set ``kind`` and
``transfer`` on the record, older ones only carry the JSON as ``text``. Either way a file row is
keyed by its *transfer id*, not its message id: the offer message, the ``FileOffered`` /
``FileOffer`` event and every later progress event then all land on the same row, and a second
arrival of the same file (history, then the live event) is a duplicate the model ignores.
"""

from __future__ import annotations

import dataclasses
import json
import time

from app.core.events import FileOffer, FileOffered
from app.core.records import Delivery, MessageInfo, RoomPostInfo
from ui.chat_item import ChatItem

DM_FILE_OFFER = 2
ROOM_FILE_POST = 3


def offer_of(info: MessageInfo | RoomPostInfo) -> tuple[str, str] | None:
    """(transfer id, file name) when ``info`` offers a file; None for anything else."""
    kind = getattr(info, "kind", None)
    wanted = DM_FILE_OFFER if isinstance(info, MessageInfo) else ROOM_FILE_POST
    transfer = getattr(info, "transfer", None)
    body: dict[str, object] = {}
    if info.text.startswith("{"):
        try:
            parsed = json.loads(info.text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
    if not transfer and kind == wanted:
        transfer = body.get("transfer")
    if not isinstance(transfer, str) or not transfer:
        return None
    if kind is not None and kind != wanted:
        return None
    name = body.get("name")
    return transfer, name if isinstance(name, str) and name else ""


def as_file_item(item: ChatItem, info: MessageInfo | RoomPostInfo) -> ChatItem:
    """``item`` as a file row when ``info`` offers a file, else unchanged."""
    offer = offer_of(info)
    if offer is None:
        return item
    transfer, name = offer
    return dataclasses.replace(item, key=transfer, transfer=transfer, text=name or item.text)


def is_file_post(info: RoomPostInfo) -> bool:
    return offer_of(info) is not None


def messages_carry_files() -> bool:
    """True when the client announces offers as messages and posts (``MessageQueued``,
    ``MessageReceived``, ``RoomPostAdded`` with ``kind``/``transfer``): those rows carry the
    conversation's own order (``seq``, the room order), so the event-made row is not needed."""
    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    return "transfer" in names(MessageInfo) and "kind" in names(RoomPostInfo)


def item_from_event(
    event: FileOffered | FileOffer, *, me: str, my_name: str, their_name: str,
) -> ChatItem:
    """A file row made from the file event itself, for clients whose message events do not yet
    carry offers (the row is the same one the offer message would make: same key)."""
    now = int(time.time() * 1000)
    outgoing = isinstance(event, FileOffered)
    conversation = event.to if isinstance(event, FileOffered) else (event.room or event.from_)
    return ChatItem(
        key=event.transfer, seq=0, conversation=conversation,
        author_id=me if outgoing else event.from_ if isinstance(event, FileOffer) else me,
        author_name=my_name if outgoing else their_name, outgoing=outgoing, text=event.name_,
        sent_at_ms=now, state=Delivery.SENT if outgoing else Delivery.RECEIVED,
        transfer=event.transfer,
    )


def is_file_control(info: MessageInfo) -> bool:
    """A DM that only steers a transfer (accept, decline, ...): never a row of its own."""
    return getattr(info, "kind", 1) not in (1, DM_FILE_OFFER)
