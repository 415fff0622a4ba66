"""The one seam between the interfaces and the peer, and the one place that knows about threads.

The peer (``app.node``) runs on trio in its own thread: py-libp2p is trio-only, and a thread of
its own gives the network a third more throughput than trio guest mode on the Qt loop while
keeping network CPU work off the UI thread (docs/architecture.md). Callers live on an asyncio
loop (qasync in the GUI, plain asyncio in the headless node) and see only:

* awaitable methods (``start``, ``status``, ...) that run the matching node method in trio, and
* events (``app.core.events``) delivered to subscribers on the caller's loop thread.

Crossing rules: asyncio -> trio only through ``TrioToken.run_sync_soon``; trio -> asyncio only
through ``loop.call_soon_threadsafe``. Nothing else crosses.

Length: the thread crossing is about 200 lines; the rest is one short typed method per thing
the interfaces may ask of the node, which is the point of having one seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import math
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from app.core.config import NodeConfig
from app.core.errors import NodeNotRunning
from app.core.events import (
    ContactMailbox,
    Event,
    MailboxStatus,
    NodeFailed,
    NodeReady,
    NodeStatus,
    NodeStopped,
)
from app.core.records import (
    ChatPrefs,
    ContactInfo,
    MessageInfo,
    RoomInfo,
    RoomMember,
    RoomPostInfo,
    SearchHit,
    TransferInfo,
)
from app.store.db import storage_error
from app.store.profile import Profile, Settings
from app.store.search import SearchStore

if TYPE_CHECKING:
    from app.node.node import KithNode
    from app.node.resources import Limits

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[Event], None]


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class KithClient:
    """Runs a ``KithNode`` in a network thread and exposes it to an asyncio loop."""

    def __init__(self, profile: Profile, config: NodeConfig | None = None,
                 limits: Limits | None = None) -> None:
        """``limits``: the resource manager's (``app.node.resources``); tests lower them."""
        self.profile = profile
        self._config = config
        self._limits = limits
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._node: KithNode | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._finished: asyncio.Future[None] | None = None
        self._stop_requested = threading.Event()
        self._ordered: trio.MemorySendChannel[Callable[[], Awaitable[None]]] | None = None
        self._queue_lock = threading.Lock()
        self._queued: list[Event] = []
        self._drain_scheduled = False
        self.ready: NodeReady | None = None

    # -- events -------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` on the loop thread for every event; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _dispatch(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.name)

    def _publish(self, event: Event) -> None:
        """Called in the network thread: hand the event to the loop thread.

        Events queue up and one wake-up of the loop delivers all that arrived meanwhile, in
        order: a burst costs one cross-thread call, not one per event.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._queue_lock:
            self._queued.append(event)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("dropped %s: loop closed", event.name)

    def _drain(self) -> None:
        with self._queue_lock:
            events, self._queued = self._queued, []
            self._drain_scheduled = False
        for event in events:
            self._dispatch(event)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def peer_id(self) -> str:
        return self.profile.identity.peer_id

    @property
    def display_name(self) -> str:
        """Our name as contacts see it now (Settings changes it at once: ``ProfileChanged``)."""
        return self.profile.settings.display_name

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._node is not None

    async def start(self) -> NodeReady:
        """Start the network thread and wait until the host listens; raises what stopped it."""
        if self._thread is not None:
            raise RuntimeError("a client starts once")
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[NodeReady] = self._loop.create_future()
        self._finished = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="kith-network", daemon=True
        )
        self._thread.start()
        self.ready = await ready
        # A full collection over libp2p's objects stalls the UI 40-55 ms: freeze them once.
        gc.collect()
        gc.freeze()
        return self.ready

    def _resolve(self, fut: asyncio.Future[Any], result: Any = None,
                 error: BaseException | None = None) -> None:
        """Settle an asyncio future from the network thread."""

        def settle() -> None:
            self._pending.discard(fut)
            if fut.done():
                return
            if isinstance(error, asyncio.CancelledError):
                fut.cancel()
            elif error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(settle)
        except RuntimeError:
            log.debug("loop closed before a result could be delivered")

    def _thread_main(self, ready: asyncio.Future[NodeReady]) -> None:
        failure: BaseException | None = None
        try:
            trio.run(self._trio_main, ready)
        except BaseException as exc:
            failure = _leaf(exc)
            log.error("network thread failed", exc_info=failure)
        finally:
            self._node = None
            self._token = None
            if not ready.done():
                self._resolve(ready, error=failure or NodeNotRunning("stopped before it started"))
            elif failure is not None:
                self._publish(NodeFailed(message=f"The network stopped: {failure}"))
            for fut in list(self._pending):
                self._resolve(fut, error=NodeNotRunning("the network stopped"))
            self._publish(NodeStopped())
            if self._finished is not None:
                self._resolve(self._finished)

    async def _trio_main(self, ready: asyncio.Future[NodeReady]) -> None:
        # Imported here, on the network thread: the node stack costs ~0.5 s and 45 MiB, and only
        # a running node needs it (the window is already shown; a first run never loads it).
        from app.node.node import KithNode
        from app.node.resources import DEFAULT_LIMITS

        self._token = trio.lowlevel.current_trio_token()
        node = KithNode(self.profile, self._config or NodeConfig(), self._publish,
                        self._limits or DEFAULT_LIMITS)
        ordered_in, ordered_out = trio.open_memory_channel[Callable[[], Awaitable[None]]](
            math.inf
        )
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ordered = ordered_in
            if self._stop_requested.is_set():  # stop() ran before the nursery existed
                nursery.cancel_scope.cancel()
            nursery.start_soon(self._run_in_order, ordered_out)
            result = await nursery.start(node.run)
            self._node = node
            self._resolve(ready, result)

    @staticmethod
    async def _run_in_order(
        calls: trio.MemoryReceiveChannel[Callable[[], Awaitable[None]]],
    ) -> None:
        async for runner in calls:
            await runner()  # each runner reports its own result or error

    async def stop(self) -> None:
        """Shut the network down and wait for the thread; safe to call more than once."""
        if self._thread is None or self._finished is None:
            return
        self._stop_requested.set()
        token, nursery = self._token, self._nursery
        if token is not None and nursery is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(nursery.cancel_scope.cancel)
        await asyncio.shield(self._finished)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # -- calls --------------------------------------------------------------------------------

    async def call(self, fn: Callable[[KithNode], Awaitable[T]], *, ordered: bool = False) -> T:
        """Run ``fn(node)`` in the network thread and await its result here.

        A database failure (a full disk) is raised as ``StorageError`` in plain words; the
        node goes on. Cancelling the awaiting task cancels the trio side too. Trio starts
        concurrent tasks in no particular order, so calls whose order matters (sending,
        posting) pass ``ordered=True``: they run one after another, in the order they were made.
        """
        node, token, nursery, loop = self._node, self._token, self._nursery, self._loop
        if node is None or token is None or nursery is None or loop is None:
            raise NodeNotRunning("the network is not running")
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.add(fut)
        scope = trio.CancelScope()

        async def runner() -> None:
            with scope:
                try:
                    result = await fn(node)
                except sqlite3.Error as exc:  # a full disk, say: plain words, node unharmed
                    log.warning("a call failed in the database: %s", exc)
                    self._resolve(fut, error=storage_error(exc))
                    return
                except Exception as exc:  # noqa: BLE001 - handed to the awaiting caller
                    self._resolve(fut, error=exc)
                    return
                self._resolve(fut, result)
            if scope.cancelled_caught:
                self._resolve(fut, error=asyncio.CancelledError())

        def schedule() -> None:
            # Runs in trio; the nursery may have closed since the call was made.
            try:
                if ordered and self._ordered is not None:
                    self._ordered.send_nowait(runner)
                else:
                    nursery.start_soon(runner)
            except (RuntimeError, trio.ClosedResourceError, trio.BrokenResourceError):
                self._resolve(fut, error=NodeNotRunning("the network is not running"))

        try:
            token.run_sync_soon(schedule)
        except trio.RunFinishedError:
            self._pending.discard(fut)
            raise NodeNotRunning("the network is not running") from None
        try:
            return await fut
        except asyncio.CancelledError:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
            raise

    async def status(self) -> NodeStatus:
        return await self.call(lambda node: node.status())

    async def mailbox_status(self) -> MailboxStatus:
        """What we hold for others as a mailbox, and whether our mailboxes are reachable."""
        return await self.call(lambda node: node.mailbox_status())

    async def contact_mailbox(self, peer_id: str) -> ContactMailbox:
        """Whether a contact has mailboxes, serves one, and is ours."""
        return await self.call(lambda node: _now(node.mailboxes.contact_mailbox(peer_id)))

    async def use_mailbox(self, peer_id: str) -> ContactMailbox:
        """Use a contact who serves a mailbox as ours (``ConfigError`` in plain words if not)."""
        return await self.call(lambda node: node.use_mailbox(peer_id), ordered=True)

    # -- settings -----------------------------------------------------------------------------

    async def settings(self) -> Settings:
        """A copy of the profile's settings as the node has them."""
        return await self.call(lambda node: _now(copy.deepcopy(node.profile.settings)))

    async def update_settings(self, **changes: Any) -> Settings:
        """Change settings by name (validated: ``ValueError`` in plain words) and save them.

        A new ``display_name`` applies at once (``ProfileChanged``); ``listen_port``, relays,
        serving as a relay, DHT bootstrap peers and LAN discovery apply at the next start.
        Returns the new copy.
        """
        return await self.call(lambda node: node.update_settings(changes), ordered=True)

    # -- contacts -----------------------------------------------------------------------------

    async def add_contact(self, invite: str) -> ContactInfo:
        """Add from a ``kith:`` link; raises ``InvalidInvite``/``ContactError`` with plain words."""
        return await self.call(lambda node: node.contacts.add_from_invite(invite))

    async def contacts(self) -> list[ContactInfo]:
        return await self.call(lambda node: _now(node.contacts.all()))

    async def contact(self, peer_id: str) -> ContactInfo | None:
        return await self.call(lambda node: _now(node.contacts.info(peer_id)))

    async def accept_request(self, peer_id: str) -> ContactInfo:
        return await self.call(lambda node: node.contacts.accept(peer_id))

    async def block(self, peer_id: str) -> ContactInfo:
        return await self.call(lambda node: node.contacts.block(peer_id))

    async def rename_contact(self, peer_id: str, name: str) -> ContactInfo:
        return await self.call(lambda node: node.contacts.rename(peer_id, name))

    async def set_verified(self, peer_id: str, verified: bool) -> ContactInfo:
        return await self.call(lambda node: node.contacts.set_verified(peer_id, verified))

    async def remove_contact(self, peer_id: str) -> None:
        await self.call(lambda node: node.contacts.remove(peer_id))

    # -- direct messages ----------------------------------------------------------------------

    async def send(self, peer_id: str, text: str, reply_to: str | None = None) -> MessageInfo:
        """Queue a message, perhaps a reply to the message ``reply_to`` (its id hex); raises
        ``MessageTooLarge``/``ContactError``/``ActionError`` with plain words."""
        if reply_to is None:
            return await self.call(lambda node: node.dms.send(peer_id, text), ordered=True)
        return await self.call(lambda node: node.actions.send(peer_id, text, reply_to),
                               ordered=True)

    async def retry(self, message_id: str) -> MessageInfo:
        return await self.call(lambda node: node.dms.retry(message_id))

    async def history(
        self, peer_id: str, before_seq: int | None = None, limit: int = 100
    ) -> list[MessageInfo]:
        """Oldest first, the page just before ``before_seq`` (the newest page by default)."""
        async def page(node: KithNode) -> list[MessageInfo]:
            messages = await node.dms.history(peer_id, before_seq, limit)
            if node.config.message_actions:
                messages = node.actions.decorate_messages(peer_id, messages)
            return messages

        return await self.call(page)

    # -- message actions (docs/protocol.md 11) ------------------------------------------------

    async def react(self, message_id: str, emoji: str, remove: bool = False) -> None:
        """Set (or with ``remove`` take back) one emoji on a message or room post."""
        await self.call(lambda node: node.actions.react(message_id, emoji, remove),
                        ordered=True)

    async def typing(self, to: str | None = None, room: str | None = None) -> bool:
        """Tell a contact (``to``) or a room that we are typing; False if nothing was sent
        (switched off, or sent there a moment ago)."""
        room_id = bytes.fromhex(room) if room is not None else None
        return await self.call(lambda node: _now(node.actions.signals()[1].send(to, room_id)))

    async def mark_message_read(self, message_id: str) -> bool:
        """A contact's message was shown in a focused window: their read receipt (True if
        one was queued: our setting and their Kith allow it)."""
        return await self.call(lambda node: _now(node.actions.signals()[0].mark_read(message_id)))

    async def set_privacy(self, *, read_receipts: bool | None = None,
                          typing: bool | None = None) -> Settings:
        """Switch read receipts and typing indicators, both ways."""
        changes: dict[str, bool] = {}
        if read_receipts is not None:
            changes["read_receipts"] = read_receipts
        if typing is not None:
            changes["typing_indicators"] = typing
        return await self.update_settings(**changes)

    async def edit(self, message_id: str, text: str) -> None:
        """Give a text message or post of ours a new text, everywhere."""
        await self.call(lambda node: node.actions.edit(message_id, text), ordered=True)

    async def delete(self, message_id: str, for_everyone: bool) -> None:
        """Delete a message or post: here only, or (our own) for everyone."""
        await self.call(lambda node: node.actions.delete(message_id, for_everyone),
                        ordered=True)

    async def mark_read(self, peer_id: str) -> None:
        await self.call(lambda node: node.dms.mark_read(peer_id))

    async def unread_total(self) -> int:
        return await self.call(lambda node: _now(node.unread_total()))

    async def draft(self, conversation: str) -> str:
        return await self.call(lambda node: _now(node.messages.draft(conversation)))

    async def set_draft(self, conversation: str, text: str) -> None:
        def save(node: KithNode) -> Awaitable[None]:
            node.messages.set_draft(conversation, text)
            return _now(None)

        await self.call(save)

    async def drafts(self) -> dict[str, str]:
        """Every unsent draft by conversation (peer id or room id)."""
        return await self.call(lambda node: _now(node.messages.drafts()))

    # -- the chat list ------------------------------------------------------------------------

    async def chat_prefs(self) -> list[ChatPrefs]:
        """Conversations pinned, muted or marked unread (the others are at the default)."""
        return await self.call(lambda node: _now(node.chat_prefs()))

    async def set_chat_prefs(self, conversation: str, *, pinned: bool | None = None,
                             muted: bool | None = None,
                             marked_unread: bool | None = None) -> ChatPrefs:
        """Pin, mute or mark unread a conversation (a peer id or a room id); the others are
        left as they are. Announced as ``ChatPrefsChanged``; raises ``ValueError`` for a
        conversation Kith does not have."""
        changes = {name: value for name, value in (
            ("pinned", pinned), ("muted", muted), ("marked_unread", marked_unread))
            if value is not None}
        return await self.call(lambda node: node.set_chat_prefs(conversation, changes),
                               ordered=True)

    # -- rooms --------------------------------------------------------------------------------

    async def create_room(self, name: str, description: str = "", governed: bool = False
                          ) -> RoomInfo:
        """A new room; ``governed``: we own it, with roles, removal and key epochs."""
        return await self.call(lambda node: node.rooms.create(name, description, governed))

    async def join_room(self, invite: str) -> RoomInfo:
        """Join from a ``kith:room`` link; raises ``InvalidInvite`` with plain words."""
        return await self.call(lambda node: node.rooms.join(invite))

    async def leave_room(self, room_id: str) -> None:
        await self.call(lambda node: node.rooms.leave(room_id))

    async def post(self, room_id: str, text: str, reply_to: str | None = None) -> RoomPostInfo:
        """Post to a room, perhaps a reply to the post ``reply_to`` (its id hex)."""
        if reply_to is None:
            return await self.call(lambda node: node.rooms.post(room_id, text), ordered=True)
        return await self.call(lambda node: node.actions.post(room_id, text, reply_to),
                               ordered=True)

    async def rooms(self) -> list[RoomInfo]:
        return await self.call(lambda node: _now(node.rooms.rooms()))

    async def room_members(self, room_id: str) -> list[RoomMember]:
        return await self.call(lambda node: _now(node.rooms.members(room_id)))

    async def room_history(
        self, room_id: str, before: tuple[int, str, str] | None = None, limit: int = 100
    ) -> list[RoomPostInfo]:
        """Oldest first in the room's shared order, the page just before ``before``."""
        return await self.call(lambda node: _now(node.rooms.history(room_id, before, limit)))

    async def invite_to_room(self, room_id: str, peer_ids: list[str]) -> list[MessageInfo]:
        """Send each contact the room's link as a direct message (a card they click to join);
        raises ``InvitationError`` (a ``ValueError``) with plain words, and then sends nothing."""
        return await self.call(lambda node: node.invitations.invite(room_id, peer_ids),
                               ordered=True)

    async def member_invite(self, room_id: str, peer_id: str) -> str:
        """A ``kith:`` contact link for a room member (to add them as a contact)."""
        return await self.call(lambda node: _now(node.rooms.member_invite(room_id, peer_id)))

    async def mark_room_read(self, room_id: str) -> None:
        await self.call(lambda node: node.rooms.mark_read(room_id))

    # -- governed rooms: roles, removal, invites, moderation (docs/protocol.md 8.12) ---------

    async def set_role(self, room_id: str, peer_id: str, role: str) -> None:
        """Make a member owner, admin, member or observer (``role_changed`` follows)."""
        await self.call(lambda node: node.governance.set_role(room_id, peer_id, role))

    async def remove_member(self, room_id: str, peer_id: str, ban: bool = False) -> None:
        """Remove (or ban) a member and start a new key epoch without them."""
        await self.call(lambda node: node.governance.remove_member(room_id, peer_id, ban))

    async def room_settings(self, room_id: str, changes: dict[str, Any] | None = None
                            ) -> dict[str, Any]:
        """The room's settings after ``changes`` (join, history, rotate_on_leave, name,
        description); no changes: read them."""
        return await self.call(lambda node: node.governance.settings(room_id, changes or {}))

    async def create_invite(self, room_id: str, expires_in: float = 0, uses: int = 0
                            ) -> tuple[str, str]:
        """(link, invite id) of a revocable invite; 0: never expires, unlimited uses."""
        return await self.call(
            lambda node: node.governance.create_invite(room_id, expires_in, uses))

    async def invite_contact(self, room_id: str, peer_id: str) -> str:
        """Send a contact a join card for the room over direct messages; its message id."""
        return await self.call(
            lambda node: node.governance.invite_contact(bytes.fromhex(room_id), peer_id),
            ordered=True)

    async def room_overview(self, room_id: str) -> dict[str, Any]:
        """``{"governed", "role", "settings", "requests", "invites"}`` of a room (our role in
        it; who asks to join; its invites), for the window's room settings."""
        return await self.call(lambda node: _now(node.governance.overview(room_id)))

    async def revoke_invite(self, room_id: str, invite_id: str) -> None:
        await self.call(lambda node: node.governance.revoke_invite(room_id, invite_id))

    async def room_invites(self, room_id: str) -> list[dict[str, Any]]:
        return await self.call(lambda node: _now(node.governance.invites(room_id)))

    async def approve_join(self, room_id: str, peer_id: str, accept: bool = True) -> None:
        await self.call(lambda node: node.governance.approve_join(room_id, peer_id, accept))

    async def delete_room_post(self, room_id: str, post_id: str) -> None:
        """An admin deletes a post for every member (a signed tombstone in the log)."""
        await self.call(lambda node: node.governance.delete_post(room_id, post_id))

    # -- search -------------------------------------------------------------------------------

    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Messages and room posts matching ``text`` (every word; the last one as a prefix),
        newest first, at most ``limit``. Empty or wordless text finds nothing."""

        def query(node: KithNode) -> Awaitable[list[SearchHit]]:
            store = SearchStore(node.db)
            return _now(store.search(text, limit, node.profile.settings.display_name,
                                     node.identity.peer_id))

        return await self.call(query)

    # -- files --------------------------------------------------------------------------------

    async def send_file(self, to: str, path: str, name: str | None = None) -> TransferInfo:
        """Offer a file to a contact (peer id) or a room (room id); returns once it is hashed.

        ``name`` is what the receiver sees (default: the file's name); a relative path with
        "/" separators ("Photos/2024/a.jpg", for a dropped folder) is recreated inside the
        receiver's folder, every component made safe. Raises ``TransferError`` with plain
        words (not a file, not a contact, ...).
        """
        return await self.call(lambda node: node.files.send(to, path, name))

    async def accept_file(self, transfer: str, folder: str = "") -> TransferInfo:
        """Start downloading an offered file into ``folder`` (empty: the download folder).

        A failed or paused transfer continues from its verified part, in its first folder.
        """
        return await self.call(lambda node: node.files.accept(transfer, folder))

    async def pause_file(self, transfer: str) -> TransferInfo:
        """Stop fetching a download; its verified part is kept (state "paused", also after a
        restart) until ``resume_file``. Announced as ``FilePaused``."""
        return await self.call(lambda node: node.files.pause(transfer))

    async def resume_file(self, transfer: str) -> TransferInfo:
        """Continue a paused download. Announced as ``FileResumed``."""
        return await self.call(lambda node: node.files.resume(transfer))

    async def transfer(self, transfer: str) -> TransferInfo | None:
        """One transfer by id (hex); None if unknown."""
        return await self.call(lambda node: _now(node.files.lookup(transfer)))

    async def file_settings(self) -> tuple[str, int]:
        """(download folder, auto-accept limit in bytes for verified contacts; 0 = off).

        The folder is the effective one: the platform's downloads folder / Kith by default.
        """
        return await self.call(lambda node: _now(node.files.file_settings()))

    async def set_file_settings(self, download_dir: str, auto_accept_verified_bytes: int
                                ) -> tuple[str, int]:
        """Save both (validated; raises ``TransferError``); "" restores the default folder.
        Returns ``file_settings()`` as saved."""
        return await self.call(
            lambda node: node.files.set_file_settings(download_dir, auto_accept_verified_bytes))

    async def decline_file(self, transfer: str) -> None:
        await self.call(lambda node: node.files.decline(transfer))

    async def cancel_file(self, transfer: str) -> None:
        await self.call(lambda node: node.files.cancel(transfer))

    async def transfers(self) -> list[TransferInfo]:
        return await self.call(lambda node: _now(node.files.transfers()))


async def _now(value: T) -> T:
    """Wrap a synchronous node query so ``call`` can run it in the network thread."""
    return value
