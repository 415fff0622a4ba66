"""What the network tells the interfaces: small immutable events.

The node persists first, then publishes one of these; the GUI and the headless node are two
consumers of the same stream. ``to_json`` gives the headless node's wire form.

Length: one small dataclass per event, and nothing else. Kept in one module because it is the
catalogue both interfaces read (docs/cli.md lists the same events in the same order).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar

from app.core.records import (
    ChatPrefs,
    ContactInfo,
    MessageInfo,
    RoomInfo,
    RoomMember,
    RoomPostInfo,
)
from app.core.transfer_state import TransferState


@dataclass(frozen=True)
class Event:
    """Base class; ``name`` is the ``event`` field of the JSON form."""

    name: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        # ``from_`` and friends: Python keywords get a trailing underscore in the dataclass.
        return {"event": self.name, **{f.name.rstrip("_"): _plain(getattr(self, f.name))
                                       for f in fields(self)}}


def _plain(value: Any) -> Any:
    """``value`` as JSON sees it: dataclasses as dicts, tuples as lists. Unlike ``asdict`` it
    copies nothing it does not convert (a deep copy of every field was most of the cost of a
    headless node printing a room post)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


@dataclass(frozen=True)
class NodeReady(Event):
    """The host listens and can be reached; carries what an invite needs."""

    name: ClassVar[str] = "ready"
    peer_id: str
    addrs: tuple[str, ...]
    invite: str
    reachability: str = "offline"  # see ReachabilityChanged


@dataclass(frozen=True)
class NodeStatus(Event):
    name: ClassVar[str] = "status"
    peer_id: str
    addrs: tuple[str, ...]
    invite: str
    connections: int
    reachability: str = "offline"  # see ReachabilityChanged



@dataclass(frozen=True)
class ProfileChanged(Event):
    """Our own display name changed (Settings): headers and the invite show it at once."""

    name: ClassVar[str] = "profile_changed"
    display_name: str
    invite: str


@dataclass(frozen=True)
class RelayReserved(Event):
    """A relay (``relay``: its peer id) holds a slot for us; ``addrs`` reach us through it."""

    name: ClassVar[str] = "relay_reserved"
    relay: str
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class ConnectionsChanged(Event):
    """The number of connected peers changed (so the window can show online/offline)."""

    name: ClassVar[str] = "connections"
    connections: int


@dataclass(frozen=True)
class PeerNearby(Event):
    """A Kith peer announced itself on the LAN (mDNS); ``name_`` is "name" in JSON."""

    name: ClassVar[str] = "peer_nearby"
    peer_id: str
    name_: str
    addrs: tuple[str, ...] = ()  # its LAN addresses (/ip4/H/tcp/P), for a contact request


@dataclass(frozen=True)
class PeerGone(Event):
    """A peer that was ``PeerNearby`` withdrew its LAN announcement (left, or quit Kith)."""

    name: ClassVar[str] = "peer_gone"
    peer_id: str


@dataclass(frozen=True)
class ReachabilityChanged(Event):
    """How others can reach us changed (``app.node.reachability``; ``NodeReady`` says where it
    started): ``state`` is ``direct``, ``relay``, ``lan`` or ``offline``; ``relays`` the relays
    holding a slot for us; ``addrs`` our non-loopback listen addresses (without ``/p2p``)."""

    name: ClassVar[str] = "reachability"
    state: str
    relays: tuple[str, ...] = ()
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContactRoute(Event):
    """How we are connected to a peer now: ``direct``, ``relay``, ``lan``, ``local`` (this
    computer), or ``""`` once no connection is left. Sent for every connected peer, so the
    window knows the route of someone added while already connected."""

    name: ClassVar[str] = "contact_route"
    peer_id: str
    route: str


@dataclass(frozen=True)
class LimitReached(Event):
    """A peer hit one of this node's limits (docs/networking.md, "Limits and threat model"),
    and what went over it was refused or dropped. ``peer_id`` is empty for a connection still
    in its handshake (``detail`` names its address). At most one a minute per peer and limit."""

    name: ClassVar[str] = "limit_reached"
    peer_id: str
    limit: str
    detail: str


@dataclass(frozen=True)
class NodeFailed(Event):
    """The network thread died; the message is for the user, details went to the log."""

    name: ClassVar[str] = "node_failed"
    message: str


@dataclass(frozen=True)
class NodeStopped(Event):
    name: ClassVar[str] = "stopped"


@dataclass(frozen=True)
class ContactAdded(Event):
    name: ClassVar[str] = "contact_added"
    peer_id: str
    display_name: str


@dataclass(frozen=True)
class ContactChanged(Event):
    """Anything about a contact changed (name, state, presence, unread, preview)."""

    name: ClassVar[str] = "contact"
    contact: ContactInfo


@dataclass(frozen=True)
class ContactRemoved(Event):
    name: ClassVar[str] = "contact_removed"
    peer_id: str


@dataclass(frozen=True)
class ContactOnline(Event):
    name: ClassVar[str] = "contact_online"
    peer_id: str


@dataclass(frozen=True)
class ContactOffline(Event):
    name: ClassVar[str] = "contact_offline"
    peer_id: str
    last_seen: float


@dataclass(frozen=True)
class MessageQueued(Event):
    """An outgoing message was stored in the outbox (state sending)."""

    name: ClassVar[str] = "queued"
    message: MessageInfo


@dataclass(frozen=True)
class MessageSent(Event):
    """The message left this device (written to the recipient's stream)."""

    name: ClassVar[str] = "transmitted"
    id: str
    peer_id: str
    kind: int = 1   # 2: a file offer (the CLI does not print those)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        del body["kind"]  # the CLI prints these for text messages only
        return body


@dataclass(frozen=True)
class MessageDelivered(Event):
    name: ClassVar[str] = "delivered"
    id: str
    peer_id: str
    kind: int = 1   # 2: a file offer (the CLI does not print those)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        del body["kind"]  # the CLI prints these for text messages only
        return body


@dataclass(frozen=True)
class MessageFailed(Event):
    name: ClassVar[str] = "failed"
    id: str
    peer_id: str
    reason: str


@dataclass(frozen=True)
class MessageReceived(Event):
    """A new message from someone else; ``request`` when they are not a contact yet."""

    name: ClassVar[str] = "message"
    id: str
    from_: str
    text: str
    sent_at: int
    request: bool
    message: MessageInfo
    kind: int = 1   # 2: a file offer (``text`` is its name; ``file_offer`` carries the details)
    via: str = "direct"  # "direct", "relay" (a circuit relay) or "mailbox"
    reply_to: str | None = None  # the id hex of the message this one answers

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        del body["message"], body["kind"]  # the CLI prints text messages only
        return body


@dataclass(frozen=True)
class UnreadChanged(Event):
    """The total of unread messages (for the tray and the window title)."""

    name: ClassVar[str] = "unread"
    total: int


@dataclass(frozen=True)
class ChatPrefsChanged(Event):
    """A conversation was pinned, muted or marked unread (or that was undone)."""

    name: ClassVar[str] = "chat_prefs"
    prefs: ChatPrefs


@dataclass(frozen=True)
class RoomCreated(Event):
    name: ClassVar[str] = "room_created"
    room_id: str
    invite: str


@dataclass(frozen=True)
class RoomJoined(Event):
    name: ClassVar[str] = "room_joined"
    room_id: str


@dataclass(frozen=True)
class RoomLeft(Event):
    name: ClassVar[str] = "room_left"
    room_id: str


@dataclass(frozen=True)
class RoomChanged(Event):
    """Anything in the room list entry changed (members, unread, preview)."""

    name: ClassVar[str] = "room"
    room: RoomInfo


@dataclass(frozen=True)
class RoomMembersChanged(Event):
    name: ClassVar[str] = "room_members"
    room_id: str
    members: tuple[RoomMember, ...]


@dataclass(frozen=True)
class RoomPostAdded(Event):
    """A post entered the room's history (ours as pending, or anyone's, live or synced)."""

    name: ClassVar[str] = "room_post"
    post: RoomPostInfo


@dataclass(frozen=True)
class RoomPostConfirmed(Event):
    """Our pending post was handed to room peers."""

    name: ClassVar[str] = "post_confirmed"
    room: str
    id: str


@dataclass(frozen=True)
class RoomPostRemoved(Event):
    """A post left the room's history: it lost an equivocation (two posts by one author with
    the same number, docs/protocol.md 8.7) and every member keeps the other one."""

    name: ClassVar[str] = "post_removed"
    room: str
    id: str


@dataclass(frozen=True)
class RoomMessage(Event):
    """Someone else's post, live or synced, announced exactly once."""

    name: ClassVar[str] = "room_message"
    room: str
    id: str
    from_: str
    text: str
    sent_at: int
    reply_to: str | None = None  # the post id hex this one answers


@dataclass(frozen=True)
class TypingChanged(Event):
    """Someone is typing to us (``to`` is our peer id) or in a room (``room``); nothing says
    they stopped: views show it for a few seconds after the last one."""

    name: ClassVar[str] = "typing"
    by: str
    to: str | None
    room: str | None

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        del body["to" if self.to is None else "room"]
        return body


@dataclass(frozen=True)
class MessageRead(Event):
    """The recipient was shown our message ``message_id`` (and so the ones before it)."""

    name: ClassVar[str] = "read"
    conversation: str
    message_id: str
    by: str


@dataclass(frozen=True)
class PeerFeatures(Event):
    """A contact's profile announced other features than we knew (docs/protocol.md 11.3):
    what its Kith can read beyond text and files, e.g. ``actions/1``."""

    name: ClassVar[str] = "features"
    peer_id: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class ReactionChanged(Event):
    """Someone (us included) set or took back an emoji on a message or post.
    ``conversation`` is the peer id of a direct conversation or the room id hex."""

    name: ClassVar[str] = "reaction"
    conversation: str
    message_id: str
    by: str
    emoji: str
    removed: bool


@dataclass(frozen=True)
class MessageEdited(Event):
    """A message or post has a new text (its author edited it); ``edited_at`` is the author's
    clock."""

    name: ClassVar[str] = "message_edited"
    conversation: str
    message_id: str
    text: str
    edited_at: int
    by: str


@dataclass(frozen=True)
class MessageDeleted(Event):
    """A message or post was deleted: by its author for everyone, or by us for us alone."""

    name: ClassVar[str] = "message_deleted"
    conversation: str
    message_id: str
    by: str


@dataclass(frozen=True)
class FileEvent(Event):
    """About one file ``transfer`` (its id, hex); ``transfer_state`` is where the event leaves
    it (``app.core.transfer_state``; None: where it was)."""

    transfer_state: ClassVar[TransferState | None] = None
    transfer: str


@dataclass(frozen=True)
class FileOffered(FileEvent):
    """We offered a file (to a contact, or in a room); it is hashed and ready to be served."""

    name: ClassVar[str] = "file_offered"
    transfer_state = TransferState.OFFERED
    to: str
    name_: str
    size: int
    hash: str


@dataclass(frozen=True)
class FileOffer(FileEvent):
    """Someone offers us a file; ``room`` is set when it was shared in a room."""

    name: ClassVar[str] = "file_offer"
    transfer_state = TransferState.OFFERED
    from_: str
    name_: str
    size: int
    hash: str
    mime: str
    room: str | None = None
    via: str = "direct"  # a direct offer: "direct", "relay" or "mailbox" (like ``message``)


@dataclass(frozen=True)
class FileProgress(FileEvent):
    """Verified (receiver) or served (sender) bytes; throttled to a few per second.

    ``speed`` is bytes/s over the last few seconds, so a view can show time left.
    """

    name: ClassVar[str] = "file_progress"
    bytes: int
    size: int
    speed: float = 0.0


@dataclass(frozen=True)
class FileAccepted(FileEvent):
    """An offer was accepted (by the user, or automatically: ``auto``); downloading starts."""

    name: ClassVar[str] = "file_accepted"
    transfer_state = TransferState.RECEIVING
    dir: str
    auto: bool = False


@dataclass(frozen=True)
class FilePaused(FileEvent):
    """The download stopped fetching; its verified part is kept (also across restarts)."""

    name: ClassVar[str] = "file_paused"
    transfer_state = TransferState.PAUSED
    bytes: int
    size: int


@dataclass(frozen=True)
class FileResumed(FileEvent):
    name: ClassVar[str] = "file_resumed"
    transfer_state = TransferState.RECEIVING


@dataclass(frozen=True)
class FileComplete(FileEvent):
    """Receiver: the file is whole, verified and renamed to ``path``. Sender: they have it."""

    name: ClassVar[str] = "file_complete"
    transfer_state = TransferState.COMPLETE
    path: str
    hash: str


@dataclass(frozen=True)
class FileDeposited(FileEvent):
    """Sender: the recipient's mailbox holds the whole file, sealed, so they can fetch it
    while we are offline (the transfer stays ``offered`` until they have it)."""

    name: ClassVar[str] = "file_deposited"
    transfer_state = TransferState.OFFERED
    peer_id: str
    mailbox: str


@dataclass(frozen=True)
class FileDepositRefused(FileEvent):
    """Sender: the recipient's mailbox would not hold the file (full, say); the offer stands
    and they fetch the file from us once both are online."""

    name: ClassVar[str] = "file_deposit_refused"
    transfer_state = TransferState.OFFERED
    peer_id: str
    mailbox: str
    reason: str


@dataclass(frozen=True)
class FileFailed(FileEvent):
    name: ClassVar[str] = "file_failed"
    transfer_state = TransferState.FAILED
    reason: str


@dataclass(frozen=True)
class FileDeclined(FileEvent):
    """The offer was declined; ``by`` is "me" or "peer"."""

    name: ClassVar[str] = "file_declined"
    transfer_state = TransferState.DECLINED
    by: str


@dataclass(frozen=True)
class FileCancelled(FileEvent):
    """The transfer was cancelled; ``by`` is "me" or "peer"."""

    name: ClassVar[str] = "file_cancelled"
    transfer_state = TransferState.CANCELLED
    by: str


@dataclass(frozen=True)
class ConnectionUpgraded(Event):
    """A peer reached only through a relay is now directly connected (DCUtR, or a direct dial
    that succeeded later); ``addr`` is the direct connection's remote address."""

    name: ClassVar[str] = "connection_upgraded"
    peer_id: str
    addr: str


@dataclass(frozen=True)
class MailboxRegistered(Event):
    """A mailbox we use accepted (or renewed) our registration: it holds our mail."""

    name: ClassVar[str] = "mailbox_registered"
    mailbox: str


@dataclass(frozen=True)
class MailboxRefused(Event):
    """A mailbox we use refused our registration; ``reason`` says why in plain words."""

    name: ClassVar[str] = "mailbox_refused"
    mailbox: str
    reason: str


# -- governed rooms (docs/protocol.md 8.12) ----------------------------------------------------


@dataclass(frozen=True)
class RoleChanged(Event):
    """A member's role in a governed room changed (``by``: who changed it)."""

    name: ClassVar[str] = "role_changed"
    room: str
    peer_id: str
    role: str
    by: str


@dataclass(frozen=True)
class MemberJoined(Event):
    """Someone was admitted to a governed room (``by``: who admitted them)."""

    name: ClassVar[str] = "member_joined"
    room: str
    peer_id: str
    by: str


@dataclass(frozen=True)
class MemberRemoved(Event):
    """A member was removed from a governed room (or banned: ``ban``), or left (``by`` is
    the member itself)."""

    name: ClassVar[str] = "member_removed"
    room: str
    peer_id: str
    by: str
    ban: bool


@dataclass(frozen=True)
class RemovedFromRoom(Event):
    """We were removed from a room: it keeps what we held, and we read nothing new."""

    name: ClassVar[str] = "removed_from_room"
    room: str
    by: str
    ban: bool = False


@dataclass(frozen=True)
class KeyRotated(Event):
    """A governed room's posts are now sealed with a new epoch key, and we hold it."""

    name: ClassVar[str] = "key_rotated"
    room: str
    epoch: int


@dataclass(frozen=True)
class JoinRequested(Event):
    """Someone asks to join a room whose admins approve joins (shown to admins)."""

    name: ClassVar[str] = "join_request"
    room: str
    peer_id: str


@dataclass(frozen=True)
class RoomInviteReceived(Event):
    """A contact sent us a join card for a room: ``invite`` is the link that joins it."""

    name: ClassVar[str] = "room_invite"
    id: str
    from_: str
    room_id: str
    room_name: str
    invite: str


@dataclass(frozen=True)
class JoinRefused(Event):
    """Our join would not count: the link's invite was revoked, has expired or is used up, or
    the room admits with an invite only (``reason`` in words)."""

    name: ClassVar[str] = "join_refused"
    room: str
    reason: str


@dataclass(frozen=True)
class MessageDeposited(Event):
    """The recipient was out of reach: their mailbox holds the message until they collect it
    (it stays in the outbox until they acknowledge it)."""

    name: ClassVar[str] = "deposited"
    id: str
    peer_id: str
    mailbox: str
    kind: int = 1

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        del body["kind"]
        return body


@dataclass(frozen=True)
class MessageDepositRefused(Event):
    """The recipient's mailbox would not hold the message (full, rate, refused): it stays in
    the outbox, for the recipient's next time online or a later deposit."""

    name: ClassVar[str] = "deposit_refused"
    id: str
    peer_id: str
    mailbox: str
    reason: str


@dataclass(frozen=True)
class ContactMailboxes(Event):
    """A contact's signed mailbox record, newer than the one we had: where their mail goes
    while they are offline (peer ids; empty: they use none)."""

    name: ClassVar[str] = "contact_mailboxes"
    peer_id: str
    mailboxes: tuple[str, ...]


@dataclass(frozen=True)
class MailboxReach:
    """One of our mailboxes and whether we are connected to it now."""

    mailbox: str
    reachable: bool
    registered: bool


@dataclass(frozen=True)
class ContactMailbox:
    """A contact's mailboxes as we know them: the peer ids of those that hold their mail (from
    their signed record), and whether the contact serves one (said by its Kith when connected:
    None while we do not know)."""

    peer_id: str
    uses: tuple[str, ...]
    serves: bool | None
    mine: bool  # we use this contact as our mailbox


@dataclass(frozen=True)
class MailboxStatus(Event):
    """What this Kith holds for others, and the mailboxes it uses."""

    name: ClassVar[str] = "mailbox_status"
    serving: bool
    users: int
    held: int
    bytes: int
    mine: tuple[MailboxReach, ...]


@dataclass(frozen=True)
class RoomSettingsChanged(Event):
    """A governed room's settings (join mode, history, rotation on leave, name, description)."""

    name: ClassVar[str] = "room_settings"
    room: str
    settings: dict[str, Any]
    by: str
