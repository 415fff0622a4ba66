"""Read-only views of contacts and messages, as the interfaces see them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.transfer_state import TransferState


class ContactState(StrEnum):
    CONTACT = "contact"
    REQUEST = "request"  # wrote to us, not accepted yet
    BLOCKED = "blocked"


class Delivery(StrEnum):
    SENDING = "sending"      # queued in the outbox, has not left this device
    SENT = "sent"            # written to the recipient's stream
    DELIVERED = "delivered"  # the recipient acknowledged after storing it
    FAILED = "failed"        # refused by the recipient or unsendable; can be retried
    RECEIVED = "received"    # an incoming message
    READ = "read"            # the recipient showed it to them (a read receipt)


@dataclass(frozen=True)
class ContactInfo:
    peer_id: str
    name: str                 # what to show: the local rename, else their own name, else short id
    their_name: str
    local_name: str | None
    state: ContactState
    verified: bool
    online: bool
    last_seen: float | None   # Unix time of the last connection, None if never
    unread: int
    last_message: str         # preview of the newest message, "" if none
    last_activity: float      # Unix time, for ordering the list


Reactions = tuple[tuple[str, tuple[str, ...]], ...]
"""Reactions on one message: each emoji with who set it."""


@dataclass(frozen=True)
class MessageInfo:
    seq: int                  # local order in the conversation (for paging)
    id: str                   # the message id in hex, the same on both sides
    peer_id: str              # the other side of the conversation
    outgoing: bool
    text: str
    sent_at_ms: int           # sender's clock
    state: Delivery
    error: str | None = None
    kind: int = 1             # 1 text; 2 file offer (``text`` is the file name), 3 control
    transfer: str | None = None  # kind 2: the offered transfer's id hex (see TransferInfo)
    held_by: str | None = None   # outgoing, not yet delivered: the mailbox (peer id) holding it
    reply_to: str | None = None  # the id hex of the message this one answers
    edited_at: int | None = None  # the sender's clock of its newest edit (None: never edited)
    reactions: Reactions = ()     # (emoji, (peer id, ...)) in the order they were first set


def short_peer_id(peer_id: str) -> str:
    return f"{peer_id[:8]}…{peer_id[-4:]}" if len(peer_id) > 14 else peer_id


ID_TAG_CHARS = 8


def id_tag(peer_id: str) -> str:
    """"…" and the end of a peer id. Every Ed25519 peer id starts with "12D3KooW": the end is
    what tells two people apart whose names look the same ("Bob", and "Bоb" with a Cyrillic
    о). Making a key whose id ends the same takes about 58^8 tries."""
    return "…" + peer_id[-ID_TAG_CHARS:]


def contact_tag(contact: ContactInfo) -> str:
    """What a list shows after a contact's name: nothing once the safety number was verified
    (a verified mark is shown instead), the id tag until then, so a look-alike name never
    passes for someone you know ("not verified", as Signal says)."""
    return "" if contact.verified else id_tag(contact.peer_id)


class PostState(StrEnum):
    PENDING = "pending"        # our own post, not yet seen to leave this device
    CONFIRMED = "confirmed"    # our own post, handed to room peers
    RECEIVED = "received"      # someone else's post


@dataclass(frozen=True)
class RoomInfo:
    room_id: str               # hex
    name: str
    description: str
    invite: str                # the kith:room link: anyone holding it can join
    members: int               # members known (including us)
    online: int                # members connected now (including us)
    unread: int
    last_message: str
    last_activity: float


@dataclass(frozen=True)
class RoomMember:
    peer_id: str
    name: str
    online: bool
    last_seen: float | None
    is_me: bool = False
    role: str = ""             # a governed room's role (owner admin member observer); "" if none


@dataclass(frozen=True)
class RoomPostInfo:
    room_id: str               # hex
    id: str                    # post id hex
    author: str                # peer id
    author_name: str
    outgoing: bool
    text: str
    sent_at_ms: int
    lamport: int
    state: PostState
    order: tuple[int, str, str]  # (lamport, author key hex, post id hex): the room's shared order
    kind: int = 1              # 1 text; 3 a shared file (``text`` is its name)
    transfer: str | None = None  # kind 3: the transfer id hex (see TransferInfo)
    reply_to: str | None = None  # the post id hex this one answers (a reply, kind 16)
    edited_at: int | None = None  # the author's clock of its newest edit (None: never edited)
    reactions: Reactions = ()     # (emoji, (peer id, ...)), as for direct messages


@dataclass(frozen=True)
class TransferInfo:
    """One file transfer as the interfaces see it (either direction, direct or in a room)."""

    transfer: str              # transfer id hex, the same on every side
    outgoing: bool
    peer_id: str               # the other side; for a room file, its author
    room_id: str | None        # hex, for files shared in a room
    name: str                  # as offered (display only; the saved name is in ``path``)
    size: int
    hash: str                  # SHA-256 of the content, hex
    state: TransferState
    bytes: int                 # verified (incoming) or served (outgoing) bytes so far
    path: str | None           # outgoing: the source; incoming: the saved file once complete
    reason: str | None         # why it failed
    served: int = 0            # chunks this node served for it since start (all requesters)
    speed: float = 0.0         # bytes/s over the last few seconds; 0 when nothing moves
    held_by: str | None = None  # outgoing: the recipient's mailbox that holds all of it


# The snippet of a ``SearchHit`` marks each matched word with these (control characters that
# never occur in typed text), so an interface can escape the rest and style the matches.
MATCH_START = "\x02"
MATCH_END = "\x03"


@dataclass(frozen=True)
class SearchHit:
    """One message or room post that matched a search, with what a results list shows."""

    kind: str                  # "dm" or "room"
    conversation: str          # the peer id, or the room id hex
    conversation_name: str     # the contact's or the room's name
    message_id: str            # message or post id hex (the conversation's row key)
    seq: int                   # local arrival order in its table
    order: tuple[int, str, str] | None  # rooms: the post's place in the room's shared order
    author: str                # peer id of who wrote it
    author_name: str
    outgoing: bool
    snippet: str               # the text around the match, matches between MATCH_START/END
    sent_at_ms: int


@dataclass(frozen=True)
class ChatPrefs:
    """How the chat list treats one conversation: this device's choice, never sent to anyone."""

    conversation: str          # a peer id, or a room id in hex
    pinned: bool = False       # listed first
    muted: bool = False        # no notifications
    marked_unread: bool = False  # shown as unread until opened again

    @property
    def is_default(self) -> bool:
        return not (self.pinned or self.muted or self.marked_unread)
