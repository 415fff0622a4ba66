"""What a row's context menu (and a contact's details page) can ask the window to do."""

from __future__ import annotations

from enum import Enum


class ContactAction(Enum):
    """What the context menu (and the details page) can ask the window to do with a peer."""

    OPEN = "open"
    ACCEPT = "accept"
    RENAME = "rename"
    DETAILS = "details"
    BLOCK = "block"
    REMOVE = "remove"


class RoomAction(Enum):
    """What a room's context menu can ask the window to do."""

    OPEN = "open"
    INVITE = "invite"
    MEMBERS = "members"
    LEAVE = "leave"


class ChatAction(Enum):
    """This device's choices for a conversation, from a room's or a contact's context menu."""

    PIN = "pin"
    UNPIN = "unpin"
    MUTE = "mute"
    UNMUTE = "unmute"
    MARK_UNREAD = "mark_unread"
    MARK_READ = "mark_read"
