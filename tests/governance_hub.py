"""Many members of one governed room in one process, without libp2p: the real codec, the real
SQLite stores and the real ``RoomGovernance`` of each member, joined by an in-memory hub that
hands every envelope to every other member at once (what gossip and sync do, without the
network). For rooms of 50 and more members, in seconds (tests and tests/benchmarks).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from app.core import room as rc
from app.core.events import Event
from app.core.identity import Identity
from app.core.records import RoomPostInfo
from app.node.rooms.governance import RoomGovernance
from app.store.db import open_database
from app.store.room_governance import GovernanceStore
from app.store.rooms import RoomStore


class _Us:
    def __init__(self, identity: Identity, name: str) -> None:
        self._identity = identity
        self._name = name

    @property
    def identity(self) -> Identity:
        return self._identity

    def display_name(self) -> str:
        return self._name

    def addrs(self) -> list[str]:
        return []


class HubMember:
    """One member: its database, its governance, and the ``RoomChannel`` the hub gives it."""

    def __init__(self, hub: Hub, path: Path, name: str) -> None:
        self.hub = hub
        self.name = name
        self.identity = Identity.generate()
        self.conn = open_database(path)
        self.rooms = RoomStore(self.conn)
        self.events: list[Event] = []
        self.waiting: list[bytes] = []  # envelopes of epochs we do not hold yet
        self.governance = RoomGovernance(
            GovernanceStore(self.conn), us=_Us(self.identity, name), nursery=hub.nursery,
            emit=self.events.append, channel=self, refresh_keys=self._keys_changed,
            members_changed=lambda room_id: None, room_link=hub.link)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    # -- RoomChannel ------------------------------------------------------------------------

    def has_room(self, room_id: bytes) -> bool:
        return self.rooms.room(room_id) is not None

    def member_ids(self, room_id: bytes) -> set[str]:
        return {m.peer_id for m in self.rooms.members(room_id)}

    def rooms_of(self, peer_id: str) -> list[bytes]:
        return self.rooms.rooms_of(peer_id)

    async def reach_members(self, room_id: bytes) -> None:
        pass

    def changed(self, room_id: bytes, unread: bool = False, members: bool = False) -> None:
        pass  # no room list here

    async def post_payload(self, room_id: bytes, kind: int, body: bytes) -> RoomPostInfo:
        stored = self.rooms.room(room_id)
        assert stored is not None
        secrets = self.governance.secrets(stored.secrets)

        def build(lamport: int, author_seq: int) -> tuple[rc.RoomPost, bytes]:
            envelope = rc.encode_post(self.identity, secrets, kind=kind, body=body,
                                      lamport=lamport, author_seq=author_seq,
                                      sent_at_ms=int(time.time() * 1000))
            return rc.decode_post(secrets, envelope), envelope

        post, envelope = self.rooms.store_own_post(room_id, self.identity.public_key, build,
                                                   "confirmed")
        self.hub.publish(self, envelope)
        return RoomPostInfo(room_id.hex(), post.post_id.hex(), self.peer_id, self.name, True,
                            "", post.sent_at_ms, post.lamport, 0, (0, "", ""))  # type: ignore[arg-type]

    # -- receiving --------------------------------------------------------------------------

    def receive(self, envelope: bytes) -> None:
        stored = self.rooms.room(self.hub.room_id)
        if stored is None:
            return
        try:
            post = rc.decode_post(self.governance.secrets(stored.secrets), envelope)
        except rc.UnknownEpoch:
            self.waiting.append(envelope)  # sync would fetch it again once the key is here
            return
        if self.governance.refusal(post):
            return
        result = self.rooms.store_post(post, envelope, "received", read=False)
        if result.stored and post.kind == rc.KIND_MEMBERSHIP:
            self.governance.take(post.room_id, post)

    def _keys_changed(self, room_id: bytes) -> None:
        waiting, self.waiting = self.waiting, []
        for envelope in waiting:
            self.receive(envelope)

    def role(self) -> str:
        return self.governance.roles(self.hub.room_id).get(self.peer_id, "")

    def epoch(self) -> int:
        """The order of the newest epoch whose key we hold (0: none)."""
        state = self.governance.state(self.hub.room_id)
        current = self.governance.secrets_current(self.hub.room_id)
        if state is None or current is None:
            return 0
        return next(e.order for e in state.epochs if e.epoch_id == current)


class Hub:
    """The room every member is in: ``publish`` hands an envelope to every other member."""

    def __init__(self, nursery: trio.Nursery, folder: Path) -> None:
        self.nursery = nursery
        self.folder = folder
        self.members: list[HubMember] = []
        self.room_id = b""
        self.invite: rc.RoomInvite | None = None

    def link(self, room_id: bytes) -> str:
        assert self.invite is not None
        return self.invite.to_link()

    def add(self, name: str) -> HubMember:
        member = HubMember(self, self.folder / f"{name}.db", name)
        self.members.append(member)
        return member

    async def create(self, owner: HubMember) -> None:
        secrets = owner.governance.new_room()
        self.room_id = secrets.room_id
        self.invite = rc.RoomInvite(secrets, "Hub")
        owner.rooms.add_room(secrets, "Hub", "")
        await owner.governance.created(secrets.room_id)

    def join(self, member: HubMember, catch_up_from: HubMember) -> None:
        """``member`` joins from the link and syncs everything ``catch_up_from`` holds."""
        assert self.invite is not None
        member.rooms.add_room(self.invite.secrets, "Hub", "")
        for envelope in envelopes(catch_up_from, self.room_id):
            member.receive(envelope)
        member.governance.joining(self.room_id, None)

    def publish(self, author: HubMember, envelope: bytes) -> None:
        for member in self.members:
            if member is not author and member.rooms.room(self.room_id) is not None:
                member.receive(envelope)

    def close(self) -> None:
        for member in self.members:
            member.conn.close()


def envelopes(member: HubMember, room_id: bytes) -> list[bytes]:
    """Every envelope ``member`` holds for the room, in the room's order (a sync)."""
    rows = member.conn.execute(
        "SELECT envelope FROM room_posts WHERE room_id = ? ORDER BY lamport, author_key, post_id",
        (room_id,)).fetchall()
    return [bytes(r[0]) for r in rows]


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll a condition while the members' tasks run (no fixed sleeps)."""
    with trio.move_on_after(timeout) as scope:
        while not predicate():
            await trio.sleep(0.01)
    if scope.cancelled_caught:
        raise AssertionError(f"timed out waiting for {what}")
