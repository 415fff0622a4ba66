"""Which messages and room posts are file offers, and the row a file card is painted from.

The client marks offers on the record itself (``kind`` 2 for a direct offer, 3 for a room file;
``text`` is the file name, ``transfer`` the transfer id). A file row is keyed by its *transfer
id*, not its message id: the offer message and every later progress event then land on the
same row, and a second arrival of the same file (history, then the live event) is a duplicate
the model ignores.
"""

from __future__ import annotations

import dataclasses

from app.core.records import MessageInfo, RoomPostInfo
from ui.conversation.chat_item import ChatItem

TEXT = 1
DM_FILE_OFFER = 2
ROOM_FILE_POST = 3


def offer_of(info: MessageInfo | RoomPostInfo) -> tuple[str, str] | None:
    """(transfer id, file name) when ``info`` offers a file; None for anything else."""
    wanted = DM_FILE_OFFER if isinstance(info, MessageInfo) else ROOM_FILE_POST
    if info.kind != wanted or not info.transfer:
        return None
    return info.transfer, info.text


def as_file_item(item: ChatItem, info: MessageInfo | RoomPostInfo) -> ChatItem:
    """``item`` as a file row when ``info`` offers a file, else unchanged."""
    offer = offer_of(info)
    if offer is None:
        return item
    transfer, name = offer
    return dataclasses.replace(item, key=transfer, transfer=transfer, text=name or item.text)


def is_file_post(info: RoomPostInfo) -> bool:
    return offer_of(info) is not None


def is_file_control(info: MessageInfo) -> bool:
    """A DM that only steers a transfer (accept, decline, ...): never a row of its own."""
    return info.kind not in (TEXT, DM_FILE_OFFER)
