"""What the node's services need from each other, and nothing more.

A service is given the few collaborators it uses, each typed by one of these protocols, and
never the whole node: ``KithNode.run`` builds the services and wires them together in one place
(``app.node.node``; docs/architecture.md draws the result). So no service imports another to
reach it, ``app.node`` has no import cycle, and a test builds any service alone from small fakes
of these protocols.

Payload kinds are the one open end. Direct messages and room posts carry a ``kind``; the
protocol services (``DirectMessages``, ``RoomService``) own encryption, signatures, ordering,
storage and acknowledgement, and hand each payload to the handler registered for its kind
(``app.node.payloads``). A new kind (a reaction, an edit, a read receipt, a room's membership
change) is a handler registered at wiring time, not an edit of the protocol service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from libp2p.abc import INetConn

from app.core import room as rc
from app.core.dm import Ack, DirectMessage, Reject
from app.core.events import Event
from app.core.identity import Identity
from app.core.mailbox import BlobHeld
from app.core.records import ContactInfo, ContactState, MessageInfo, RoomInfo, RoomPostInfo
from app.core.room import RoomPost

Emit = Callable[[Event], None]
"""Hands an event to the interfaces (``KithNode.emit``); never blocks, never raises."""


class Tasks(Protocol):
    """Where a service starts its background tasks: the node's nursery, on which a task that
    fails is logged and ends alone (``app.node.isolation.IsolatingNursery``)."""

    @property
    def cancel_scope(self) -> trio.CancelScope: ...

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any,
                   name: object = None) -> None: ...

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any,
                    name: object = None) -> Any: ...


class LocalPeer(Protocol):
    """Us, as a service sees us: our key, the name we go by, where we can be reached."""

    @property
    def identity(self) -> Identity: ...

    def display_name(self) -> str: ...

    def addrs(self) -> list[str]:
        """Our full multiaddrs (``.../p2p/<our id>``), the best to give out first."""
        ...


class Connections(Protocol):
    """Our live connections (``app.node.connections.HostConnections``)."""

    def is_connected(self, peer_id: str) -> bool: ...

    def connections_to(self, peer_id: str) -> list[INetConn]: ...

    async def disconnect(self, peer_id: str) -> None: ...


class Quotas(Protocol):
    """What strangers may leave with us (``app.node.resources.ResourceManager``)."""

    def message_refusal(self, peer_id: str, *, contact: bool, known: bool,
                        stored: Callable[[], tuple[int, int]],
                        pending_requests: Callable[[], int], size: int
                        ) -> tuple[str, str] | None: ...

    def offer_refusal(self, peer_id: str, pending: int) -> str | None: ...

    def refused(self, who: str, limit: str, detail: str, *, peer_id: str = "") -> None: ...


class ContactBook(Protocol):
    """Who a peer is to us, read-only (``ContactService``)."""

    def state(self, peer_id: str) -> ContactState | None: ...

    def info(self, peer_id: str) -> ContactInfo | None: ...

    def requests(self) -> int:
        """How many message requests wait for an answer."""
        ...


class MessageRequests(ContactBook, Protocol):
    """What direct messages change about a contact: a stranger who writes becomes a request,
    and answering a request accepts it."""

    def note_request(self, peer_id: str) -> bool: ...

    async def accept(self, peer_id: str) -> ContactInfo: ...


class AddressBook(ContactBook, Protocol):
    """Where a contact can be reached, learned from somewhere other than the contact."""

    def remember_addrs(self, peer_id: str, addrs: Sequence[str], source: str) -> None: ...


class Dialer(Protocol):
    """One attempt to connect to a contact over everything we know about them."""

    async def dial(self, peer_id: str) -> bool: ...


class PeerLookup(Protocol):
    """Finding a peer's addresses by its id (the DHT)."""

    @property
    def enabled(self) -> bool: ...

    async def find_addrs(self, peer_id: str) -> list[str]: ...


class Outbox(Protocol):
    """The persistent direct-message outbox: a payload queued here reaches the contact
    whenever they are reachable, in order, exactly once (``DirectMessages``)."""

    def queue(self, peer_id: str, kind: int, body: str) -> MessageInfo: ...


class MailDrop(Protocol):
    """Where the outbox leaves what it cannot deliver now: the recipient's mailboxes
    (``app.node.mailbox.MailboxClient``)."""

    async def deposit(self, peer_id: str) -> None:
        """Leave ``peer_id``'s undelivered messages at their mailbox, if they have one."""
        ...


class BlobSession(Protocol):
    """Blob requests on one stream to a mailbox (``app.node.mailbox.blobs.BlobSession``);
    a refusal is ``BlobRefused``."""

    async def open(self, recipient: str, blob: bytes, size: int, pieces: int) -> BlobHeld: ...

    async def put(self, recipient: str, blob: bytes, index: int, data: bytes) -> None: ...

    async def get(self, blob: bytes, index: int) -> bytes | None: ...

    async def delete(self, blob: bytes) -> None: ...


class MailboxBlobs(Protocol):
    """File bytes at mailboxes (``app.node.mailbox.MailboxClient``): a sender puts a blob at
    the recipient's mailbox, the recipient reads it from its own."""

    def blob_mailbox(self, peer_id: str) -> str | None:
        """The mailbox to leave ``peer_id``'s files at, or None if they name none."""
        ...

    def is_mine(self, mailbox: str) -> bool: ...

    def blob_session(self, mailbox: str, recipient: str
                     ) -> AbstractAsyncContextManager[BlobSession]: ...


class HeldOutbox(Outbox, Protocol):
    """The outbox and the receiving end as mailboxes need them (``DirectMessages``)."""

    def undelivered(self, peer_id: str, limit: int) -> list[MessageInfo]: ...

    def waiting_for(self) -> list[str]:
        """The peers with messages in the outbox."""
        ...

    def kick(self, peer_id: str) -> None:
        """Try to deliver ``peer_id``'s outbox now (or leave it at their mailbox)."""
        ...

    def sealed(self, message: MessageInfo) -> bytes:
        """The MESSAGE payload of an outgoing message, as a stream would carry it."""
        ...

    def mark_sent(self, message: MessageInfo) -> None: ...

    def take_deposited(self, sender: str, payload: bytes
                       ) -> tuple[Ack | Reject, int | None] | None:
        """A payload a mailbox held for us: checked and handled as one on a stream; the
        answer the sender is owed and the message's kind, or None if it is dropped."""
        ...

    def answered(self, peer_id: str, reply: Ack | Reject) -> None:
        """The recipient's answer to one of our messages, come through a receipt."""
        ...


class BlockList(Protocol):
    """Whom we block (``ContactService``), for our mailboxes to refuse their mail."""

    def blocked(self) -> list[str]: ...


class RoomDirectory(Protocol):
    """Which rooms we are in and who else is in them, read-only (``RoomService``)."""

    def has_room(self, room_id: bytes) -> bool: ...

    def member_ids(self, room_id: bytes) -> set[str]: ...

    def rooms_of(self, peer_id: str) -> list[bytes]: ...


class RoomInfos(RoomDirectory, Protocol):
    """A room as the window lists it (``RoomService``)."""

    def info(self, room_id: bytes) -> RoomInfo:
        """Raises ``ValueError`` for a room we are not in."""
        ...


class RoomChannel(RoomDirectory, Protocol):
    """A room as a channel for payloads: post one to every member, or connect to some members
    so that they can be reached (``RoomService``)."""

    async def post_payload(self, room_id: bytes, kind: int, body: bytes) -> RoomPostInfo: ...

    async def reach_members(self, room_id: bytes) -> None: ...

    def changed(self, room_id: bytes, unread: bool = False, members: bool = False) -> None:
        """Announce the room's list entry again (its preview or unread count changed)."""
        ...


# -- payload kinds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a direct message is refused before it is stored: the REJECT ``code`` the sender
    gets, and the ``limit`` and ``detail`` of the ``LimitReached`` notice."""

    code: int
    limit: str
    detail: str


class DmKindHandler(Protocol):
    """What one kind of direct message means. ``DirectMessages`` decrypts, verifies,
    deduplicates and stores it; the handler does the rest."""

    @property
    def shown(self) -> bool:
        """The conversation shows messages of this kind: their sending is announced."""
        ...

    def refusal(self, peer_id: str, message: DirectMessage) -> Refusal | None:
        """A limit of this kind refuses ``message`` (before it is stored); None to keep it."""
        ...

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        """``message`` is stored (it stays pending until this returns, and is taken again at
        the next start if a crash cut it short): do what it means. True if the conversation
        shows it as a new message."""
        ...

    def present(self, message: MessageInfo) -> MessageInfo | None:
        """A stored message of this kind as the conversation shows it; None: not shown."""
        ...

    def refused(self, message: MessageInfo, reason: str) -> None:
        """The recipient refused a message of this kind that we sent."""
        ...


class RoomKindHandler(Protocol):
    """What one kind of room post means. ``RoomService`` opens, verifies, orders and stores
    it; the handler does the rest."""

    def take(self, room_id: bytes, post: RoomPost) -> None:
        """Another member's post of this kind is stored: do what it means (before the post is
        announced, so that whatever it refers to exists when a view looks)."""
        ...

    def present(self, body: bytes) -> tuple[str, str | None] | None:
        """(text, transfer id hex or None) as views show a post of this kind; None: not
        shown (an unreadable body, or a kind that is only bookkeeping)."""
        ...


class RoomGovernor(Protocol):
    """What ``RoomService`` asks a governed room's log about (``rooms.governance``): the
    secrets a room's posts are sealed with, and whether a member's post stands."""

    def new_room(self) -> rc.RoomSecrets:
        """The secrets of a room we create (its id binds our key: the genesis)."""
        ...

    async def created(self, room_id: bytes) -> None:
        """A room we created is stored and open: write its genesis."""
        ...

    def joining(self, room_id: bytes, invite_seed: bytes | None) -> None:
        """We joined from a link (carrying an invite token or not): ask to be admitted."""
        ...

    async def leaving(self, room_id: bytes) -> None:
        """We are about to leave: say so in the log while we can."""
        ...

    def secrets(self, stored: rc.RoomSecrets) -> rc.RoomSecrets:
        """``stored`` with the epoch keys we hold and the one to seal our posts with."""
        ...

    def refusal(self, post: RoomPost) -> str:
        """Why a verified post does not stand in its room ("" if it does)."""
        ...

    def post_refusal(self, room_id: bytes) -> str:
        """Why we cannot post to the room now ("" if we can)."""
        ...

    def roles(self, room_id: bytes) -> dict[str, str]:
        """Members' roles in a governed room (empty for an ungoverned one)."""
        ...


class Ungoverned:
    """The governor of a node without room governance: every room is an open room."""

    def new_room(self) -> rc.RoomSecrets:
        return rc.RoomSecrets.generate()

    async def created(self, room_id: bytes) -> None:
        pass

    def joining(self, room_id: bytes, invite_seed: bytes | None) -> None:
        pass

    async def leaving(self, room_id: bytes) -> None:
        pass

    def secrets(self, stored: rc.RoomSecrets) -> rc.RoomSecrets:
        return stored

    def refusal(self, post: RoomPost) -> str:
        return ""

    def post_refusal(self, room_id: bytes) -> str:
        return ""

    def roles(self, room_id: bytes) -> dict[str, str]:
        return {}
