"""Replies, reactions, edits and deletions, in direct messages and rooms (docs/protocol.md 11).

Each action is a payload kind (16-19, ``app.core.actions``) handled here and registered at
wiring time: ``DirectMessages`` and ``RoomService`` decrypt, verify, deduplicate and store
them like any message; these handlers do what they mean. Only an author's own signed edit or
delete applies: in a direct conversation an action acts on a message of its sender only, in a
room on a post of the same author key (a forged one names a message that will never come from
its author, and waits unapplied). An action that arrives before its message is kept and
applied when the message comes (``MessageStore.store_incoming``, ``ActionStore``).

Compatibility: peers announce ``FEATURE_ACTIONS`` in their profile. To a contact known to
lack it, a reply goes as plain text with a quote line and the other actions stay local; a
contact never heard from yet gets the actions (a previous version REJECTs them with code 2,
which changes nothing there or here) and replies as quoted text. Rooms have no such check:
a previous version drops the new kinds of post unread (docs/protocol.md 11.3).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from app.core import actions as ac
from app.core.dm import REJECT_QUOTA, DirectMessage
from app.core.events import (
    ContactChanged,
    MessageDeleted,
    MessageEdited,
    PeerFeatures,
    ReactionChanged,
    UnreadChanged,
)
from app.core.records import ContactState, MessageInfo, RoomPostInfo
from app.core.room import RoomPost
from app.node.contacts import ContactError
from app.node.interfaces import ContactBook, Emit, LocalPeer, Outbox, Refusal, RoomChannel
from app.node.profile_exchange import PeerProfile
from app.node.receipts import ReadReceipts
from app.node.typing_signals import TypingSignals
from app.store.actions import ActionStore, Located
from app.store.messages import MessageStore, offer_summary

log = logging.getLogger(__name__)


class ActionError(ValueError):
    """An action the user asked for that cannot be done; the message says why."""


class MessageSender(Protocol):
    """Sends a text message, perhaps a reply (``DirectMessages.send``)."""

    async def send(self, peer_id: str, text: str, reply_to: str | None = None
                   ) -> MessageInfo: ...


class TransferCanceller(Protocol):
    """Stops a file transfer, and serving it (``FileTransfers.cancel``)."""

    async def cancel(self, transfer_hex: str) -> None: ...


def may_delete(room_id: bytes, actor: str, author: str) -> bool:
    """Who may delete a room post for everyone: its author. Rooms with roles will let their
    moderators too (the hook ``RoomActionPosts.may_delete``)."""
    return actor == author


def _transfer_of(located: Located) -> str | None:
    if located.kind in (2, 3):
        summary = offer_summary(located.text)
        return summary[0] if summary else None
    return None


# -- direct messages: one handler per kind ------------------------------------------------------


class _DmAction:
    """What every action kind shares: never shown as a message of its own, stored read and
    refused quietly (a refused action changes nothing on either side)."""

    shown = False
    kind = 0

    def __init__(self, store: ActionStore, messages: MessageStore, emit: Emit, me: str) -> None:
        self._store = store
        self._messages = messages
        self._emit = emit
        self._me = me
        # The contact's list entry may show another preview now (``MessageActions``).
        self.on_change: Callable[[str], None] = lambda peer_id: None
        self.is_contact: Callable[[str], bool] = lambda peer_id: True

    def refusal(self, peer_id: str, message: DirectMessage) -> Refusal | None:
        """Reactions, edits and deletions come from contacts only (a reply is a message: the
        quotas of docs/protocol.md 4.4 apply to it as to text)."""
        if self.kind == ac.KIND_REPLY or self.is_contact(peer_id):
            return None
        return Refusal(REJECT_QUOTA, "request_quota",
                       "reactions, edits and deletions are taken from contacts only")

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return None

    def refused(self, message: MessageInfo, reason: str) -> None:
        log.info("%s to %s refused: %s", message.id, message.peer_id, reason)

    def _parse(self, peer_id: str, message: DirectMessage) -> ac.Action | None:
        try:
            action = ac.decode_action(message.kind, message.text)
        except ac.ActionError as exc:
            log.info("ignored a malformed action from %s: %s", peer_id, exc)
            return None
        stored = self._messages.get(peer_id, message.message_id, outgoing=False)
        if stored is not None:
            self._store.note_target(stored.seq, action.target)
        return action


class ReplyMessages(_DmAction):
    """Kind 16: a text message that answers another; stored and shown as text with
    ``reply_to``."""

    shown = True
    kind = ac.KIND_REPLY

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        stored = self._messages.get(peer_id, message.message_id, outgoing=False)
        if stored is None or stored.kind != ac.KIND_REPLY:
            return stored is not None  # converted already (a crash after it, then a resend)
        try:
            action = ac.decode_action(message.kind, message.text)
        except ac.ActionError as exc:
            log.info("a reply from %s is malformed (%s): kept as its text", peer_id, exc)
            action = ac.Action(ac.KIND_REPLY, "", message.text)
        self._store.take_reply(stored.seq, peer_id, stored.id, action.text,
                               action.target or None)
        return True

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return self._messages.get(message.peer_id, bytes.fromhex(message.id),
                                  outgoing=message.outgoing)


class ReactionMessages(_DmAction):
    """Kind 17: one emoji set or taken back on a message of the conversation (either side's)."""

    kind = ac.KIND_REACTION

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        action = self._parse(peer_id, message)
        stored = self._messages.get(peer_id, message.message_id, outgoing=False)
        if action is None or stored is None:
            return False
        if self._store.react(peer_id, action.target, peer_id, action.text, action.remove,
                             stored.seq):
            self._emit(ReactionChanged(conversation=peer_id, message_id=action.target,
                                       by=peer_id, emoji=action.text, removed=action.remove))
        return False


class EditMessages(_DmAction):
    """Kind 18: the sender's new text for a text message of theirs."""

    kind = ac.KIND_EDIT

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        action = self._parse(peer_id, message)
        if action is None:
            return False
        if self._store.edit_dm(peer_id, action.target, False, action.text, message.sent_at_ms):
            self._emit(MessageEdited(conversation=peer_id, message_id=action.target,
                                     text=action.text, edited_at=message.sent_at_ms, by=peer_id))
            self.on_change(peer_id)
        elif self._store.find_dm(action.target, peer_id) is None:
            log.debug("an edit from %s waits for message %s", peer_id, action.target)
        return False


class DeleteMessages(_DmAction):
    """Kind 19: the sender deletes a message of theirs for everyone."""

    kind = ac.KIND_DELETE

    def __init__(self, store: ActionStore, messages: MessageStore, emit: Emit, me: str,
                 transfers: TransferCanceller | None, spawn: Callable[..., None]) -> None:
        super().__init__(store, messages, emit, me)
        self._transfers = transfers
        self._spawn = spawn

    def take(self, peer_id: str, message: DirectMessage) -> bool:
        action = self._parse(peer_id, message)
        if action is None:
            return False
        gone = self._store.delete_dm(peer_id, action.target, outgoing=False)
        if gone is not None:
            self._emit(MessageDeleted(conversation=peer_id, message_id=action.target,
                                      by=peer_id))
            self.on_change(peer_id)
            transfer = _transfer_of(gone)
            if transfer is not None and self._transfers is not None:
                self._spawn(_cancel_quietly, self._transfers, transfer)
        return False


async def _cancel_quietly(transfers: TransferCanceller, transfer: str) -> None:
    try:
        await transfers.cancel(transfer)
    except Exception as exc:  # noqa: BLE001 - finished or cancelled already: nothing to stop
        log.info("transfer %s of a deleted offer: %s", transfer, exc)


# -- rooms ----------------------------------------------------------------------------------------


Forget = Callable[[bytes], None]
"""Drops an envelope from what gossip still hands out (``ChatGossipSub.forget``)."""


class RoomActionPosts:
    """Room post kinds 16-19 (``interfaces.RoomKindHandler``), one instance per kind."""

    def __init__(self, kind: int, store: ActionStore, emit: Emit, forget: Forget,
                 may_delete: Callable[[bytes, str, str], bool] = may_delete) -> None:
        self.kind = kind
        self._store = store
        self._emit = emit
        self._forget = forget
        self.may_delete = may_delete

    def present(self, body: bytes) -> tuple[str, str | None] | None:
        if self.kind != ac.KIND_REPLY:
            return None  # bookkeeping: applied to the post it names
        return body[ac.TARGET_HEX:].decode("utf-8", "replace"), None

    def take(self, room_id: bytes, post: RoomPost) -> None:
        if self.kind == ac.KIND_REPLY:
            return  # shown as it is; its reply_to is read from the body
        try:
            action = ac.decode_action(post.kind, post.body.decode("utf-8"))
        except (ac.ActionError, UnicodeDecodeError) as exc:
            log.info("ignored a malformed action post by %s: %s", post.author, exc)
            return
        # RoomService announces the room's entry after every post it takes: this one too.
        apply_room_action(self._store, self._emit, self._forget, room_id, post.author,
                          post.author_key, action, post.lamport, post.post_id, post.sent_at_ms,
                          self.may_delete)


def apply_room_action(store: ActionStore, emit: Emit, forget: Forget, room_id: bytes,
                      author: str, author_key: bytes, action: ac.Action, lamport: int,
                      post_id: bytes, sent_at_ms: int,
                      allowed: Callable[[bytes, str, str], bool] = may_delete) -> None:
    """Apply a room action post (anyone's, ours too) to what the store holds. A post deleted
    for everyone also leaves gossip's cache: no member hands it to a late joiner."""
    room = room_id.hex()
    target = bytes.fromhex(action.target)
    if action.kind == ac.KIND_REACTION:
        if store.react(room, action.target, author, action.text, action.remove, lamport):
            emit(ReactionChanged(conversation=room, message_id=action.target, by=author,
                                 emoji=action.text, removed=action.remove))
    elif action.kind == ac.KIND_EDIT:
        held = store.find_post(action.target, room_id)
        if store.edit_post(room_id, author_key, target, action.text, lamport, post_id,
                           sent_at_ms) and held is not None and held.author == author:
            emit(MessageEdited(conversation=room, message_id=action.target, text=action.text,
                               edited_at=sent_at_ms, by=author))
    elif action.kind == ac.KIND_DELETE and allowed(room_id, author, author):
        envelope = store.delete_post(room_id, author_key, target)
        if envelope is not None:
            forget(envelope)
            emit(MessageDeleted(conversation=room, message_id=action.target, by=author))


# -- what the user does ---------------------------------------------------------------------------


class MessageActions:
    """Reply, react, edit and delete, in direct conversations and rooms; and how a reply
    goes to a contact that cannot read kind 16 (``wire_form``)."""

    def __init__(self, store: ActionStore, *, us: LocalPeer, emit: Emit, contacts: ContactBook,
                 outbox: Outbox, sender: MessageSender, rooms: RoomChannel, forget: Forget,
                 transfers: TransferCanceller | None = None,
                 unread_total: Callable[[], int] = lambda: 0) -> None:
        self.store = store
        self._us = us
        self._emit = emit
        self._contacts = contacts
        self._outbox = outbox
        self._sender = sender
        self._rooms = rooms
        self._transfers = transfers
        self._forget = forget
        self._unread_total = unread_total
        # Read receipts and typing signals, wired beside the actions (``KithNode``).
        self.receipts: ReadReceipts | None = None
        self.typing: TypingSignals | None = None
        # In a governed room where we are an owner or admin (``moderates``), someone else's
        # post is deleted for everyone by the room's log (``moderate``: a signed entry).
        self.moderates: Callable[[bytes], bool] = lambda room_id: False
        self.moderate: Callable[[str, str], Awaitable[None]] | None = None

    def signals(self) -> tuple[ReadReceipts, TypingSignals]:
        """The read receipts and typing signals wired beside the actions."""
        if self.receipts is None or self.typing is None:
            raise RuntimeError("read receipts and typing signals are not wired")
        return self.receipts, self.typing

    @property
    def _me(self) -> str:
        return self._us.identity.peer_id

    # -- what peers understand ----------------------------------------------------------------

    def profile_received(self, peer_id: str, profile: PeerProfile) -> None:
        """Remember what a peer's profile announced (``ContactService.on_profile``)."""
        if self.store.features(peer_id) != profile.features:
            self.store.set_features(peer_id, profile.features)
            self._emit(PeerFeatures(peer_id=peer_id, features=tuple(sorted(profile.features))))

    def member_features(self, peer_id: str, features: frozenset[str]) -> None:
        """Remember what a room member's announce said (``Members.on_features``)."""
        if self.store.features(peer_id) != features:
            self.store.set_features(peer_id, features)
            self._emit(PeerFeatures(peer_id=peer_id, features=tuple(sorted(features))))

    def _lacks_actions(self, peer_id: str) -> bool:
        """Known to run a Kith without message actions (a previous version)."""
        features = self.store.features(peer_id)
        return features is not None and ac.FEATURE_ACTIONS not in features

    def _has_actions(self, peer_id: str) -> bool:
        features = self.store.features(peer_id)
        return features is not None and ac.FEATURE_ACTIONS in features

    def wire_form(self, peer_id: str, message: MessageInfo) -> tuple[int, str]:
        """How an outgoing message goes on the wire (``DirectMessages.wire_form``): a reply as
        kind 16 to a peer that announced it, as quoted text to any other."""
        if message.kind != 1 or not message.reply_to:
            return message.kind, message.text
        if self._has_actions(peer_id):
            return ac.KIND_REPLY, message.reply_to + message.text
        original = self.store.find_dm(message.reply_to, peer_id)
        return 1, ac.fallback_text(message.text, original.text if original is not None and
                                   original.kind == 1 else None)

    # -- direct messages and rooms alike ------------------------------------------------------

    def _locate(self, message_id: str) -> Located:
        try:
            ac.check_target(message_id)
        except ac.ActionError as exc:
            raise ActionError(str(exc)) from None
        found = self.store.find_dm(message_id) or self.store.find_post(message_id)
        if found is None:
            raise ActionError(f"there is no message {message_id}")
        return found

    async def send(self, peer_id: str, text: str, reply_to: str | None = None) -> MessageInfo:
        """A text message, perhaps answering ``reply_to`` (a message of this conversation)."""
        if reply_to is not None:
            reply_to = reply_to.lower()
            if self.store.find_dm(reply_to, peer_id) is None:
                raise ActionError(f"there is no message {reply_to} in this conversation")
        return await self._sender.send(peer_id, text, reply_to)

    async def post(self, room_id: str, text: str, reply_to: str | None) -> RoomPostInfo:
        """A reply in a room: a post of kind 16 when every member announced that they read
        it, else a text post with a quote line (docs/protocol.md 11.3)."""
        room = self._room(room_id)
        target = (reply_to or "").lower()
        original = self.store.find_post(target, room)
        if original is None:
            raise ActionError(f"there is no post {reply_to} in this room")
        body = self._encode(ac.Action(ac.KIND_REPLY, target, text))
        members = self._rooms.member_ids(room) - {self._me}
        if all(self._has_actions(member) for member in members):
            return await self._rooms.post_payload(room, ac.KIND_REPLY, body.encode("utf-8"))
        quoted = original.text if original.kind in (1, ac.KIND_REPLY) else "📎 " + (
            (offer_summary(original.text) or ("", ""))[1])
        return await self._rooms.post_payload(
            room, 1, ac.fallback_text(text, quoted).encode("utf-8"))

    async def react(self, message_id: str, emoji: str, remove: bool = False) -> None:
        found = self._locate(message_id.lower())
        action = ac.Action(ac.KIND_REACTION, found.id, emoji, remove=remove)
        body = self._encode(action)
        if found.room_id is not None:
            info = await self._rooms.post_payload(found.room_id, ac.KIND_REACTION,
                                                  body.encode("utf-8"))
            self._apply_own_post(found.room_id, action, info)
            return
        assert found.peer_id is not None
        if self._lacks_actions(found.peer_id):
            sent_seq = 0
        else:
            sent_seq = self._queue(found.peer_id, ac.KIND_REACTION, body).seq
        if self.store.react(found.peer_id, found.id, self._me, emoji, remove, sent_seq):
            self._emit(ReactionChanged(conversation=found.peer_id, message_id=found.id,
                                       by=self._me, emoji=emoji, removed=remove))

    async def edit(self, message_id: str, text: str) -> None:
        found = self._locate(message_id.lower())
        self._own(found, "edit")
        if found.kind not in (1, ac.KIND_REPLY):
            raise ActionError("only text messages can be edited")
        action = ac.Action(ac.KIND_EDIT, found.id, text)
        body = self._encode(action)
        if found.room_id is not None:
            info = await self._rooms.post_payload(found.room_id, ac.KIND_EDIT,
                                                  body.encode("utf-8"))
            self._apply_own_post(found.room_id, action, info)
            return
        assert found.peer_id is not None
        queued = None if self._lacks_actions(found.peer_id) else self._queue(
            found.peer_id, ac.KIND_EDIT, body)
        edited_at = queued.sent_at_ms if queued is not None else _now_ms()
        if self.store.edit_dm(found.peer_id, found.id, True, text, edited_at):
            self._emit(MessageEdited(conversation=found.peer_id, message_id=found.id, text=text,
                                     edited_at=edited_at, by=self._me))
            self.contact_changed(found.peer_id)

    async def delete(self, message_id: str, for_everyone: bool) -> None:
        found = self._locate(message_id.lower())
        if (for_everyone and found.room_id is not None and found.author != self._me
                and self.moderate is not None and self.moderates(found.room_id)):
            await self.moderate(found.room_id.hex(), found.id)  # the room's log deletes it
            return
        if for_everyone:
            self._own(found, "delete for everyone")
        if found.room_id is not None:
            await self._delete_post(found, for_everyone)
            return
        assert found.peer_id is not None
        if for_everyone and not self._lacks_actions(found.peer_id):
            self._queue(found.peer_id, ac.KIND_DELETE, self._encode(
                ac.Action(ac.KIND_DELETE, found.id)))
        gone = self.store.delete_dm(found.peer_id, found.id, found.outgoing)
        if gone is not None:
            self._emit(MessageDeleted(conversation=found.peer_id, message_id=found.id,
                                      by=self._me))
            self.contact_changed(found.peer_id)
        transfer = _transfer_of(found)
        if for_everyone and transfer is not None and self._transfers is not None:
            await _cancel_quietly(self._transfers, transfer)

    async def _delete_post(self, found: Located, for_everyone: bool) -> None:
        assert found.room_id is not None
        post_id = bytes.fromhex(found.id)
        if for_everyone:
            action = ac.Action(ac.KIND_DELETE, found.id)
            info = await self._rooms.post_payload(found.room_id, ac.KIND_DELETE,
                                                  self._encode(action).encode("utf-8"))
            self._apply_own_post(found.room_id, action, info)
            transfer = _transfer_of(found)
            if transfer is not None and self._transfers is not None:
                await _cancel_quietly(self._transfers, transfer)
        elif (envelope := self.store.hide_post(found.room_id, post_id)) is not None:
            self._forget(envelope)
            self._emit(MessageDeleted(conversation=found.room_id.hex(), message_id=found.id,
                                      by=self._me))
            self._rooms.changed(found.room_id, unread=True)

    # -- helpers ------------------------------------------------------------------------------

    def _apply_own_post(self, room_id: bytes, action: ac.Action, info: RoomPostInfo) -> None:
        # Posting it announced the room's entry already (coalesced, after this).
        apply_room_action(self.store, self._emit, self._forget, room_id, self._me,
                          self._us.identity.public_key, action, info.lamport,
                          bytes.fromhex(info.id), info.sent_at_ms)

    def contact_changed(self, peer_id: str) -> None:
        """The contact's list entry shows the newest text (its preview may have changed), and
        a deleted message no longer counts as unread."""
        info = self._contacts.info(peer_id)
        if info is not None:
            self._emit(ContactChanged(contact=info))
        self._emit(UnreadChanged(total=self._unread_total()))

    def _queue(self, peer_id: str, kind: int, body: str) -> MessageInfo:
        if self._contacts.state(peer_id) is not ContactState.CONTACT:
            raise ContactError("only a contact's messages can be answered this way")
        queued = self._outbox.queue(peer_id, kind, body)
        self.store.note_target(queued.seq, body[: ac.TARGET_HEX])
        return queued

    def _own(self, found: Located, what: str) -> None:
        mine = found.outgoing if found.peer_id is not None else found.author == self._me
        if not mine:
            raise ActionError(f"you can only {what} your own messages")

    def _room(self, room_id: str) -> bytes:
        try:
            room = bytes.fromhex(room_id)
        except ValueError:
            raise ActionError(f"not a room id: {room_id!r}") from None
        if not self._rooms.has_room(room):
            raise ActionError(f"you are not in room {room_id}")
        return room

    @staticmethod
    def _encode(action: ac.Action) -> str:
        try:
            return ac.encode_action(action)
        except ac.ActionError as exc:
            raise ActionError(str(exc)) from None

    # -- decorating what views read -----------------------------------------------------------

    def decorate_messages(self, peer_id: str, messages: list[MessageInfo]) -> list[MessageInfo]:
        """Direct messages with their reactions."""
        found = self.store.reactions(peer_id, [m.id for m in messages])
        if not found:
            return messages
        return [_with(m, reactions=found[m.id]) if m.id in found else m for m in messages]

    def decorate_post(self, post: RoomPostInfo) -> RoomPostInfo:
        """A room post with its newest edit, what it answers and its reactions."""
        return self.decorate_posts(post.room_id, [post])[0]

    def decorate_posts(self, room_id: str, posts: list[RoomPostInfo]) -> list[RoomPostInfo]:
        room = bytes.fromhex(room_id)
        keys = [(bytes.fromhex(p.order[1]), bytes.fromhex(p.id)) for p in posts]
        edits, reactions = self.store.room_decorations(room, keys)
        out = []
        for post, key in zip(posts, keys, strict=True):
            changes: dict[str, Any] = {}
            if post.kind == ac.KIND_REPLY:
                changes["reply_to"] = self._reply_target(room, post)
            if post.kind in (1, ac.KIND_REPLY) and (edit := edits.get(key)) is not None:
                changes["text"], changes["edited_at"] = edit
            if post.id in reactions:
                changes["reactions"] = reactions[post.id]
            out.append(_with(post, **changes) if changes else post)
        return out

    def _reply_target(self, room: bytes, post: RoomPostInfo) -> str | None:
        body = self.store.post_body(room, bytes.fromhex(post.order[1]), bytes.fromhex(post.id))
        return body[: ac.TARGET_HEX].decode("ascii", "replace") if body else None


def _now_ms() -> int:
    return int(time.time() * 1000)


R = TypeVar("R", MessageInfo, RoomPostInfo)


def _with(record: R, **changes: Any) -> R:
    return dataclasses.replace(record, **changes)
