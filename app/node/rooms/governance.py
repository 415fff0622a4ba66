"""``RoomGovernance``: roles, removal, key epochs and invites of governed rooms.

A governed room's membership log is room posts of kind ``KIND_MEMBERSHIP``
(``app.core.room.membership``, docs/protocol.md 8.12). This service writes our entries, replays
the log whenever an entry arrives (the kind's handler), says what changed (events), opens the
epoch keys sealed to us, drops the posts the log voids, and does a member's duties: admitting
joiners the room's mode lets it admit, rotating the key when someone who held it is out, and
delivering the current key to members who lack it. ``RoomService`` asks it, as its
``RoomGovernor``, which keys seal a room's posts and whether a post stands.

Admins do their duties at once; other members wait ``DUTY_DELAY`` first and look again, so a
room with an admin online does not get one admission per member.

Length: the user's commands, the replay and the duties all read and write the replayed state
of each room and the keys it opened; the rules themselves are pure, in
``app.core.room.membership``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import nacl.signing
import trio

from app.core import dm
from app.core import room as rc
from app.core.events import (
    JoinRefused,
    JoinRequested,
    KeyRotated,
    MemberJoined,
    MemberRemoved,
    RemovedFromRoom,
    RoleChanged,
    RoomPostRemoved,
    RoomSettingsChanged,
)
from app.core.identity import is_valid_peer_id, public_key_from_peer_id
from app.core.room import membership as ms
from app.node.interfaces import Emit, LocalPeer, Outbox, RoomChannel, Tasks
from app.node.rooms.invite_cards import fit_card
from app.store.room_governance import GovernanceStore

log = logging.getLogger(__name__)

DUTY_DELAY = (0.5, 2.0)        # seconds a member (not an admin) waits before a duty
REFRESH_DELAY = 0.05           # entries arriving together are replayed once
JOIN_SETTLE = 1.0              # the log must be this quiet before we write our join,
JOIN_SETTLE_ROUNDS = 3         # or have been waited for this many times (others join too)
MAX_INVITE_SECONDS = 10 * 365 * 86400
CARD_INVITE_SECONDS = 7 * 86400  # a join card's invite, from an admin: one use, a week
NOTICE_OPS = frozenset({"admit", "role", "remove", "leave", "delete"})
MAX_OUTSIDER_ENTRY = 1024      # bytes of the one entry a non-member may write: a join


class GovernanceError(ValueError):
    """A change the user asked for that the room's log would not accept; says why."""


class RoomGovernance:
    """The membership log of our governed rooms (``interfaces.RoomGovernor``)."""

    def __init__(self, store: GovernanceStore, *, us: LocalPeer, nursery: Tasks, emit: Emit,
                 channel: RoomChannel, refresh_keys: Callable[[bytes], None],
                 members_changed: Callable[[bytes], None],
                 room_link: Callable[[bytes], str], outbox: Outbox | None = None,
                 show_again: Callable[[bytes, bytes, bytes], None] | None = None) -> None:
        self.store = store
        self._us = us
        self._nursery = nursery
        self._emit = emit
        self._channel = channel
        self._refresh_keys = refresh_keys
        self._members_changed = members_changed
        self._room_link = room_link
        self._outbox = outbox
        self._show_again = show_again
        self._states: dict[bytes, ms.RoomState] = {}
        self._keys: dict[bytes, dict[bytes, bytes]] = {}
        self._genesis: dict[bytes, bytes] = {}           # room id -> nonce, until written
        self._join_intent: dict[bytes, bytes | None] = {}  # room id -> invite seed
        self._duties_pending: set[bytes] = set()
        self._joining: set[bytes] = set()
        self._announced_epoch: dict[bytes, bytes] = {}
        self._visible: set[bytes] = set()  # digests of entries shown as notices
        self._dirty: set[bytes] = set()
        self._outsiders: dict[bytes, int] = {}  # entries by non-members held, per room
        self._refresh_pending = False

    @property
    def _me(self) -> str:
        return self._us.identity.peer_id

    def start(self, room_ids: list[bytes]) -> None:
        """Replay every room's log once, quietly (what it says was announced before)."""
        for room_id in room_ids:
            self.refresh(room_id, quiet=True)

    # -- RoomGovernor ------------------------------------------------------------------------

    def new_room(self) -> rc.RoomSecrets:
        room_id, nonce = ms.new_genesis(self._us.identity)
        self._genesis[room_id] = nonce
        return rc.RoomSecrets(room_id, rc.RoomSecrets.generate().key)

    async def created(self, room_id: bytes) -> None:
        nonce = self._genesis.pop(room_id)
        key = ms.new_epoch_key()
        epoch = ms.epoch_id(key)
        self._keep_key(room_id, epoch, key)
        link = rc.parse_room_invite(self._room_link(room_id))
        settings = {"name": link.name, "description": link.description}
        await self._write(room_id, {"op": "genesis", "nonce": nonce.hex(), "epoch": epoch.hex(),
                                    "keys": ms.keys_field(key, [self._me]),
                                    "settings": settings})

    def joining(self, room_id: bytes, invite_seed: bytes | None) -> None:
        self._join_intent[room_id] = invite_seed
        self.refresh(room_id)

    async def leaving(self, room_id: bytes) -> None:
        state = self._states.pop(room_id, None)
        self._keys.pop(room_id, None)
        if state is None or not state.governed:
            return
        body = {"op": "leave"}
        if state.status.get(self._me) in (ms.Status.MEMBER, ms.Status.JOINING) and \
                self._would_apply(room_id, state, body):
            await self._channel.post_payload(room_id, rc.KIND_MEMBERSHIP, ms.encode_body(body))

    def secrets(self, stored: rc.RoomSecrets) -> rc.RoomSecrets:
        state = self._states.get(stored.room_id)
        if state is None or not state.governed:
            return stored
        return stored.with_epochs(self._held_keys(stored.room_id),
                                  self.secrets_current(stored.room_id))

    def refusal(self, post: rc.RoomPost) -> str:
        state = self._states.get(post.room_id)
        if post.kind == rc.KIND_ANNOUNCE:
            return ""
        if post.kind == rc.KIND_MEMBERSHIP:
            if post.epoch is not None:
                return "a membership entry sealed with an epoch key"
            if state is not None and state.governed and state.status.get(
                    post.author) is not ms.Status.MEMBER:
                if len(post.body) > MAX_OUTSIDER_ENTRY or b'"join"' not in post.body:
                    return "someone who is not a member may only ask to join"
                if self._outsiders.get(post.room_id, 0) >= ms.MAX_OUTSIDER_ENTRIES:
                    return "the room holds as many requests from outsiders as it keeps"
            return ""
        if state is None or not state.governed:
            return ""
        if post.epoch is None:
            return "a governed room's posts are sealed with an epoch key, not the link key"
        if state.voided(post.author, post.author_seq):
            return "posted after its author was removed or left"
        if (post.author, post.post_id) in state.deleted:
            return "deleted by an admin"
        if state.status.get(post.author) in (ms.Status.REMOVED, ms.Status.BANNED, ms.Status.LEFT):
            return ""  # numbered before it was removed (the fence): it stands
        role = state.role(post.author)
        return ("its author is not a member" if role is None
                else "observers do not post" if role is ms.Role.OBSERVER else "")

    def post_refusal(self, room_id: bytes) -> str:
        state = self._states.get(room_id)
        if state is None or not state.governed:
            return ""
        status = state.status.get(self._me)
        return ("You were removed from this room."
                if status in (ms.Status.REMOVED, ms.Status.BANNED)
                else "You are not admitted to this room yet." if status is not ms.Status.MEMBER
                else "You are an observer in this room: you can read but not post."
                if state.roles.get(self._me) is ms.Role.OBSERVER
                else "Waiting for the room's current key from a member."
                if self.secrets_current(room_id) is None else "")

    def roles(self, room_id: bytes) -> dict[str, str]:
        state = self._states.get(room_id)
        return {p: state.roles.get(p, ms.Role.MEMBER).value for p in state.members()
                } if state is not None and state.governed else {}

    # -- the handler of kind KIND_MEMBERSHIP -------------------------------------------------

    def take(self, room_id: bytes, post: rc.RoomPost) -> None:
        """An entry arrived: replay soon, once for all that arrive meanwhile (a sync)."""
        self._dirty.add(room_id)
        if not self._refresh_pending:
            self._refresh_pending = True
            self._nursery.start_soon(self._refresh_dirty)

    async def _refresh_dirty(self) -> None:
        await trio.sleep(REFRESH_DELAY)
        self._refresh_pending = False
        dirty, self._dirty = self._dirty, set()
        for room_id in dirty:
            self.refresh(room_id)

    def present(self, body: bytes) -> tuple[str, str | None] | None:
        """A notice for the entries that change who is in, in what role (and deletions):
        JSON ``{"op", "peer", "name", "role", "ban"}`` the window words; None for the rest
        (bookkeeping, and entries that did not count)."""
        if hashlib.sha256(body).digest() not in self._visible:
            return None
        try:
            entry = ms.parse_body(body)
        except ms.BadEntry:
            return None
        peer = entry.get("peer")
        notice = {"op": entry["op"], "peer": peer if isinstance(peer, str) else "",
                  "name": self.store.member_name(peer) if isinstance(peer, str) else "",
                  "role": str(entry.get("role", "")), "ban": entry.get("ban") is True}
        return json.dumps(notice, ensure_ascii=False, separators=(",", ":")), None

    # -- reading -----------------------------------------------------------------------------

    def state(self, room_id: bytes) -> ms.RoomState | None:
        return self._states.get(room_id)

    def secrets_current(self, room_id: bytes) -> bytes | None:
        state = self._states.get(room_id)
        keys = self._held_keys(room_id)
        if state is None:
            return None
        return next((e.epoch_id for e in reversed(state.epochs) if e.epoch_id in keys), None)

    def _held_keys(self, room_id: bytes) -> dict[bytes, bytes]:
        keys = self._keys.get(room_id)
        if keys is None:
            keys = self._keys[room_id] = self.store.epoch_keys(room_id)
        return keys

    def _keep_key(self, room_id: bytes, epoch: bytes, key: bytes) -> None:
        self.store.add_epoch_key(room_id, epoch, key)
        self._held_keys(room_id)[epoch] = key

    def _governed(self, room_id_hex: str) -> tuple[bytes, ms.RoomState]:
        try:
            room_id = bytes.fromhex(room_id_hex)
        except ValueError:
            room_id = b""
        state = self._states.get(room_id)
        if state is None:
            raise GovernanceError(f"you are not in room {room_id_hex}")
        if not state.governed:
            raise GovernanceError("this room has no roles: it was made before rooms had owners, "
                                  "or its log has not reached us yet")
        return room_id, state

    # -- what the user does ------------------------------------------------------------------

    async def set_role(self, room_id_hex: str, peer_id: str, role: str) -> None:
        room_id, state = self._governed(room_id_hex)
        try:
            new = ms.Role(role)
        except ValueError:
            raise GovernanceError("a role is owner, admin, member or observer") from None
        if state.role(peer_id) is None:
            raise GovernanceError("this person is not a member of the room")
        body = {"op": "role", "peer": peer_id, "role": new.value}
        self._require(room_id, state, body, f"You cannot make this member {new.value}.")
        await self._write(room_id, body)

    async def remove_member(self, room_id_hex: str, peer_id: str, ban: bool = False) -> None:
        room_id, state = self._governed(room_id_hex)
        if not is_valid_peer_id(peer_id):
            raise GovernanceError("not a peer id")
        body: dict[str, Any] = {
            "op": "remove", "peer": peer_id, "ban": bool(ban),
            "seq": self.store.last_seq(room_id, public_key_from_peer_id(peer_id))}
        self._require(room_id, state, body, "You cannot remove this member.")
        remaining = set(state.members()) - {peer_id}
        await self._write(room_id, {**body, **self._new_epoch(room_id, remaining)})

    async def rotate(self, room_id_hex: str) -> None:
        room_id, state = self._governed(room_id_hex)
        self._require(room_id, state, {"op": "rotate", "epoch": "00" * 16},
                      "Only owners and admins start a new key.")
        await self._write(room_id, {"op": "rotate", **self._new_epoch(room_id,
                                                                      set(state.members()))})

    async def approve_join(self, room_id_hex: str, peer_id: str, accept: bool = True) -> None:
        room_id, state = self._governed(room_id_hex)
        if state.status.get(peer_id) is not ms.Status.JOINING:
            raise GovernanceError("this person is not asking to join")
        if accept:
            body = self._admit_body(room_id, state, peer_id)
            self._require(room_id, state, body, "Only owners and admins accept joins.")
        else:
            body = {"op": "remove", "peer": peer_id, "ban": False, "seq": 0}
            self._require(room_id, state, body, "Only owners and admins refuse joins.")
        await self._write(room_id, body)

    async def settings(self, room_id_hex: str, changes: dict[str, Any]) -> dict[str, Any]:
        """The room's settings after ``changes`` (none: just read them)."""
        room_id, state = self._governed(room_id_hex)
        if changes:
            body = {"op": "settings", "settings": changes}
            try:
                ms._settings(changes, state.settings)
            except ms.BadEntry as exc:
                raise GovernanceError(str(exc)) from None
            self._require(room_id, state, body, "Only owners and admins change the settings.")
            await self._write(room_id, body)
            state = self._states[room_id]
        return state.settings.to_json()

    async def create_invite(self, room_id_hex: str, expires_in: float = 0,
                            uses: int = 0) -> tuple[str, str]:
        """(link, invite id) of a new invite token."""
        room_id, state = self._governed(room_id_hex)
        if not 0 <= expires_in <= MAX_INVITE_SECONDS:
            raise GovernanceError("an invite expires within ten years, or never (0)")
        if not 0 <= uses <= ms.MAX_INVITE_USES:
            raise GovernanceError(f"an invite has 0 (unlimited) to {ms.MAX_INVITE_USES} uses")
        seed = os.urandom(32)
        invite_key = bytes(nacl.signing.SigningKey(seed).verify_key).hex()
        expires = int((time.time() + expires_in) * 1000) if expires_in else 0
        body = {"op": "invite", "invite": invite_key, "expires": expires, "uses": int(uses)}
        self._require(room_id, state, body, "Only owners and admins make invites.")
        link = replace(rc.parse_room_invite(self._room_link(room_id)),
                       invite_seed=seed).to_link()
        self.store.add_invite(room_id, invite_key, seed, link)
        await self._write(room_id, body)
        return link, invite_key

    async def invite_contact(self, room_id: bytes, peer_id: str) -> str:
        """Send a contact a join card (DM kind 32) with ``card_link``; the message id."""
        if self._outbox is None:
            raise GovernanceError("direct messages are not running")
        link = await self.card_link(room_id)
        info = self._outbox.queue(peer_id, dm.KIND_ROOM_INVITE, fit_card(link))
        return info.id

    async def card_link(self, room_id: bytes) -> str:
        """The link a contact invited directly gets: in a governed room, from an owner or
        admin, a one-use invite valid for a week; else the room's link (it joins an open room,
        or asks to in the others)."""
        if self.moderates(room_id):
            return (await self.create_invite(room_id.hex(), CARD_INVITE_SECONDS, 1))[0]
        return self._room_link(room_id)

    async def revoke_invite(self, room_id_hex: str, invite_id: str) -> None:
        room_id, state = self._governed(room_id_hex)
        body = {"op": "revoke_invite", "invite": invite_id}
        self._require(room_id, state, body, "There is no such live invite you can revoke.")
        await self._write(room_id, body)

    def invites(self, room_id_hex: str) -> list[dict[str, Any]]:
        room_id, state = self._governed(room_id_hex)
        links = {key: link for key, link, _ in self.store.invites(room_id)}
        return [{"invite_id": i.invite_key, "expires_ms": i.expires_ms, "uses": i.uses,
                 "used": i.used, "revoked": i.revoked, "by": i.by,
                 "link": links.get(i.invite_key, "")} for i in state.invites.values()]

    def overview(self, room_id_hex: str) -> dict[str, Any]:
        """What the window's room settings show: whether the room is governed, our role, its
        settings, who asks to join, and its invites."""
        try:
            room_id, state = self._governed(room_id_hex)
        except GovernanceError:
            return {"governed": False, "role": "", "settings": {}, "requests": [],
                    "invites": []}
        role = state.role(self._me)
        return {"governed": True, "role": role.value if role is not None else "",
                "settings": state.settings.to_json(),
                "requests": sorted(p for p, s in state.status.items()
                                   if s is ms.Status.JOINING),
                "invites": self.invites(room_id.hex())}

    def moderates(self, room_id: bytes) -> bool:
        """Whether we are an owner or admin of this governed room (we may delete any post)."""
        state = self._states.get(room_id)
        role = state.role(self._me) if state is not None and state.governed else None
        return role is not None and role.rank >= ms.Role.ADMIN.rank

    async def delete_post(self, room_id_hex: str, post_id_hex: str) -> None:
        room_id, state = self._governed(room_id_hex)
        try:
            post_id = bytes.fromhex(post_id_hex)
        except ValueError:
            post_id = b""
        author = self.store.post_author(room_id, post_id) if len(post_id) == 16 else None
        if author is None:
            raise GovernanceError("there is no such post in this room")
        body = {"op": "delete", "author": author, "post": post_id.hex()}
        self._require(room_id, state, body, "Only owners and admins delete others' posts.")
        await self._write(room_id, body)

    # -- the log -----------------------------------------------------------------------------

    def _would_apply(self, room_id: bytes, state: ms.RoomState, body: dict[str, Any]) -> bool:
        """Whether an entry we would write now counts, by the very rules every member uses."""
        entries = list(state.applied)
        lamport = max((e.lamport for e in entries), default=0) + 1
        seq = self.store.last_seq(room_id, self._us.identity.public_key) + 1
        probe = ms.Entry(self._me, lamport, self._us.identity.public_key, b"\xff" * 16, seq,
                         int(time.time() * 1000), body)
        return probe in ms.replay(room_id, [*entries, probe]).applied

    def _require(self, room_id: bytes, state: ms.RoomState, body: dict[str, Any],
                 refusal: str) -> None:
        if not self._would_apply(room_id, state, body):
            raise GovernanceError(refusal)

    def _new_epoch(self, room_id: bytes, recipients: set[str]) -> dict[str, Any]:
        """A new epoch key, kept, and the fields that hand it to ``recipients``."""
        key = ms.new_epoch_key()
        epoch = ms.epoch_id(key)
        self._keep_key(room_id, epoch, key)
        return {"epoch": epoch.hex(), "keys": ms.keys_field(key, recipients)}

    def _admit_body(self, room_id: bytes, state: ms.RoomState, peer_id: str) -> dict[str, Any]:
        keys = self._held_keys(room_id)
        epochs = [e.epoch_id for e in state.epochs if e.epoch_id in keys]
        if not state.settings.history:
            epochs = epochs[-1:]
        return {"op": "admit", "peer": peer_id, "epochs": [
            [e.hex(), ms.keys_field(keys[e], [peer_id])[0][1]] for e in epochs]}

    async def _write(self, room_id: bytes, body: dict[str, Any]) -> None:
        data = ms.encode_body(body)
        if body.get("op") in NOTICE_OPS:  # checked by _would_apply: shown at once
            self._visible.add(hashlib.sha256(data).digest())
        await self._channel.post_payload(room_id, rc.KIND_MEMBERSHIP, data)
        self.refresh(room_id)

    def refresh(self, room_id: bytes, quiet: bool = False) -> None:
        """Replay the room's log, and act on what changed."""
        if not self._channel.has_room(room_id):
            return
        before = self._states.get(room_id) or ms.RoomState()
        before_current = self.secrets_current(room_id)
        entries = self.store.entries(room_id)
        state = ms.replay(room_id, entries)
        self._states[room_id] = state
        self._outsiders[room_id] = sum(1 for e in entries if state.status.get(e.author) in (
            None, ms.Status.JOINING, ms.Status.BANNED))  # not departed members' own past
        if not state.governed:
            return
        gone: list[bytes] = []
        if not before.governed:
            gone += self.store.drop_link_key_posts(room_id)
        for peer, fences in state.fences.items():
            if fences != before.fences.get(peer):
                gone += self.store.drop_posts(room_id, public_key_from_peer_id(peer), fences)
        for author, post_id in state.deleted - before.deleted:
            if self.store.drop_post(room_id, public_key_from_peer_id(author), post_id):
                gone.append(post_id)
        for post_id in gone:
            self._emit(RoomPostRemoved(room=room_id.hex(), id=post_id.hex()))
        self.store.save_state(room_id, state)
        for entry in state.applied:
            if entry.op in NOTICE_OPS and entry.digest not in self._visible:
                self._visible.add(entry.digest)
                if not quiet and self._show_again is not None and entry.author != self._me:
                    self._show_again(room_id, entry.author_key, entry.post_id)
        named = state.settings
        if (named.name, named.description) != (before.settings.name,
                                               before.settings.description) and named.name:
            self.store.rename_room(room_id, rc.clean_name(named.name),
                                   rc.clean_description(named.description))
        new_keys = self._open_keys(room_id, state)
        if not quiet and before.governed:  # the first log we see is history, not news
            self._announce(room_id, before, state)
        current = self.secrets_current(room_id)
        if new_keys or current != before_current or state.members() != before.members():
            self._refresh_keys(room_id)
        if current is not None and self._announced_epoch.get(room_id) != current:
            self._announced_epoch[room_id] = current
            if not quiet:
                order = next(e.order for e in state.epochs if e.epoch_id == current)
                self._emit(KeyRotated(room=room_id.hex(), epoch=order))
        self._members_changed(room_id)
        self._schedule_duties(room_id)

    def _open_keys(self, room_id: bytes, state: ms.RoomState) -> bool:
        held = self._held_keys(room_id)
        opened = False
        for epoch, boxes in state.sealed.items():
            if epoch in held or self._me not in boxes:
                continue
            key = ms.open_key(boxes[self._me], self._us.identity, epoch)
            if key is None:
                log.info("room %s: a key delivered to us did not open", room_id.hex())
                continue
            self._keep_key(room_id, epoch, key)
            opened = True
        return opened

    def _announce(self, room_id: bytes, before: ms.RoomState, state: ms.RoomState) -> None:
        room = room_id.hex()
        for peer, status in state.status.items():
            old = before.status.get(peer)
            by = state.changed_by.get(peer, "")
            if status is old:
                if status is ms.Status.MEMBER and before.roles.get(peer) != state.roles[peer]:
                    self._emit(RoleChanged(room=room, peer_id=peer,
                                           role=state.roles[peer].value, by=by))
            elif status is ms.Status.MEMBER:
                if peer != self._me or old is not None:
                    self._emit(MemberJoined(room=room, peer_id=peer, by=by))
            elif status in (ms.Status.REMOVED, ms.Status.BANNED, ms.Status.LEFT):
                ban = status is ms.Status.BANNED
                if peer == self._me and status is not ms.Status.LEFT:
                    self._emit(RemovedFromRoom(room=room, by=by, ban=ban))
                elif old is not None:
                    self._emit(MemberRemoved(room=room, peer_id=peer, by=by, ban=ban))
            elif status is ms.Status.JOINING and state.settings.join is ms.JoinMode.APPROVE:
                role = state.role(self._me)
                if role is not None and role.rank >= ms.Role.ADMIN.rank:
                    self._emit(JoinRequested(room=room, peer_id=peer))
        if state.settings != before.settings and before.governed:
            self._emit(RoomSettingsChanged(room=room, settings=state.settings.to_json(),
                                           by=state.settings_by))

    # -- duties ------------------------------------------------------------------------------

    def _schedule_duties(self, room_id: bytes) -> None:
        if room_id not in self._duties_pending:
            self._duties_pending.add(room_id)
            self._nursery.start_soon(self._duties, room_id)

    async def _duties(self, room_id: bytes) -> None:
        try:
            state = self._states.get(room_id)
            role = state.role(self._me) if state is not None else None
            if role is not None and role.rank < ms.Role.ADMIN.rank:
                await trio.sleep(random.uniform(*DUTY_DELAY))
        finally:
            self._duties_pending.discard(room_id)
        state = self._states.get(room_id)
        if state is None or not state.governed or not self._channel.has_room(room_id):
            return
        # We joined from a link, or hold a governed room we never joined (a restart); removed
        # or left, only a new link brings us back.
        status = state.status.get(self._me)
        if status not in (ms.Status.MEMBER, ms.Status.JOINING) and (
                room_id in self._join_intent or status is None):
            self._nursery.start_soon(self._join_when_settled, room_id)
        role = state.role(self._me)
        if role is None or self.secrets_current(room_id) is None:
            return
        for peer, status in sorted(state.status.items()):
            if status is ms.Status.JOINING and state.settings.join is not ms.JoinMode.APPROVE:
                body = self._admit_body(room_id, state, peer)
                if self._would_apply(room_id, state, body):
                    await self._write(room_id, body)
                    state = self._states[room_id]
        if state.tainted() and role.rank >= ms.Role.ADMIN.rank:
            await self._write(room_id, {"op": "rotate",
                                        **self._new_epoch(room_id, set(state.members()))})
            return
        missing = state.missing_key()
        current = self.secrets_current(room_id)
        epoch = state.current_epoch
        if missing and epoch is not None and current == epoch.epoch_id:
            key = self._held_keys(room_id)[current]
            await self._write(room_id, {"op": "keys", "epoch": current.hex(),
                                        "keys": ms.keys_field(key, missing)})


    async def _join_when_settled(self, room_id: bytes) -> None:
        """Write our join once the log has been quiet for ``JOIN_SETTLE``, waiting at most
        ``JOIN_SETTLE_ROUNDS`` times (history sync hands it over in pieces: a join written
        halfway would sort before entries it never saw, such as the revocation of its
        invite; in a busy room, others' entries never stop)."""
        if room_id in self._joining:
            return
        self._joining.add(room_id)
        try:
            seen = -1
            for _ in range(JOIN_SETTLE_ROUNDS):
                if (count := self.store.count_entries(room_id)) == seen:
                    break
                seen = count
                await trio.sleep(JOIN_SETTLE)
            state = self._states.get(room_id)
            if state is None or not self._channel.has_room(room_id):
                return
            status = state.status.get(self._me)
            if status in (ms.Status.MEMBER, ms.Status.JOINING):
                self._join_intent.pop(room_id, None)
                return
            if status is not None and room_id not in self._join_intent:
                return
            asked = room_id in self._join_intent
            seed = self._join_intent.pop(room_id, None)
            body: dict[str, Any] = {"op": "join"}
            if seed is not None:
                body["invite"], body["sig"] = ms.invite_proof(seed, room_id, self._me)
            if self._would_apply(room_id, state, body):
                await self._write(room_id, body)
                return
            reason = ("you were banned from this room" if status is ms.Status.BANNED
                      else "the invite was revoked, has expired or is used up"
                      if seed is not None else "the room admits with an invite link only")
            if asked:
                self._emit(JoinRefused(room=room_id.hex(), reason=reason))
        finally:
            self._joining.discard(room_id)
