"""Room members and announces: who is in a room, where they are, and reaching them.

Members announce themselves on joining (at once, and again when a gossip mesh peer appears),
every ``ANNOUNCE_INTERVAL`` seconds, and when they see a newcomer, so member lists and addresses
spread through the room itself. An announce is a post of the protocol's own kind
(``room.KIND_ANNOUNCE``): signed and sealed like any post, never stored as one. Only an announce
newer than the one held changes a member (a replayed one does nothing).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import IHost

from app.core import room as rc
from app.core.invite import strip_p2p
from app.node.gossip import KithPubsub
from app.node.host import connect_at
from app.node.interfaces import Connections, LocalPeer, Tasks
from app.node.rooms.live import LiveRoom
from app.store.room_rows import Announced
from app.store.rooms import RoomStore

log = logging.getLogger(__name__)

FIRST_ANNOUNCE_WAIT = 5.0     # wait this long at most for a room peer before announcing
ANNOUNCE_INTERVAL = 60.0
REANNOUNCE_MIN_GAP = 5.0      # answer a newcomer's announce with ours, at most this often
DIAL_TIMEOUT = 10.0
MAX_ROOM_DIALS = 8            # members dialled per room when we have no room peer connected
ONLINE_WINDOW = 2.5 * ANNOUNCE_INTERVAL  # a member announced within this is shown online
RESYNC_PEERS = 2              # members asked again when new keys open what we could not


def shown_differently(taken: Announced, name: str, now: float) -> bool:
    """Whether an announce changes the member list as views show it: a new member, a new
    name, or one who counted as offline for want of a recent announce. (Online also needs a
    connection; connecting and disconnecting report the list themselves.) In a room of 50
    members, 50 announces a minute would otherwise each rebuild the list for nothing."""
    return (taken.new or taken.name != name or taken.last_seen is None
            or now - taken.last_seen >= ONLINE_WINDOW)


class Members:
    """Announcing ourselves, taking others' announces, and dialling members."""

    def __init__(self, store: RoomStore, pubsub: KithPubsub, *, us: LocalPeer, host: IHost,
                 nursery: Tasks, connections: Connections,
                 live: Callable[[bytes], LiveRoom | None],
                 publish: Callable[[rc.RoomSecrets, bytes], Awaitable[None]],
                 request_sync: Callable[[LiveRoom, str], None],
                 members_changed: Callable[[bytes], None]) -> None:
        self.store = store
        self._pubsub = pubsub
        self._us = us
        self._host = host
        self._nursery = nursery
        self._connections = connections
        self._live = live
        self._publish = publish
        self._request_sync = request_sync
        self._members_changed = members_changed
        self.features: list[str] = []  # what our announces say we read (docs/protocol.md 11.3)
        self.on_features: list[Callable[[str, frozenset[str]], None]] = []  # a member's

    @property
    def _me(self) -> str:
        return self._us.identity.peer_id

    async def announce(self, live: LiveRoom) -> None:
        """Tell the room who we are and where we are (an announce post, never stored)."""
        stored = self.store.room(live.secrets.room_id)
        if stored is None:
            return
        live.last_announce = time.monotonic()
        addrs = [strip_p2p(a) for a in self._us.addrs()][: rc.MAX_ANNOUNCE_ADDRS]
        envelope = rc.encode_announce(
            self._us.identity, live.secrets, self._us.display_name(), addrs,
            lamport=stored.lamport, sent_at_ms=int(time.time() * 1000), features=self.features,
        )
        await self._publish(live.secrets, envelope)

    async def announce_loop(self, live: LiveRoom) -> None:
        """Announce now, once more when a mesh peer appears, then every
        ``ANNOUNCE_INTERVAL`` or so (a task of the live room)."""
        await self.announce(live)
        # Gossipsub hands a message only to mesh peers, and a peer joins our mesh about a
        # heartbeat after its subscription arrives. py-libp2p replays its last few seconds of
        # messages to a peer that subscribes, so the announce above usually arrives anyway;
        # peers that do not (go, js) get it once a mesh peer shows up, at most 5 s from now.
        if not self._pubsub.gossip.mesh.get(live.secrets.topic):
            with trio.move_on_after(FIRST_ANNOUNCE_WAIT):
                # py-libp2p says nothing when its mesh changes: look again shortly.
                while not self._pubsub.gossip.mesh.get(live.secrets.topic):  # noqa: ASYNC110
                    await trio.sleep(0.05)
                await self.announce(live)
        # The first wait is drawn from most of an interval: members who came online together
        # (a room formed at once, a network back) would otherwise keep announcing in waves,
        # each member taking every other's announce within a few seconds, once a minute.
        await trio.sleep(ANNOUNCE_INTERVAL * random.uniform(0.1, 1.0))
        while True:
            await self.announce(live)
            await trio.sleep(ANNOUNCE_INTERVAL * random.uniform(0.9, 1.1))

    async def on_announce(self, live: LiveRoom, post: rc.RoomPost) -> None:
        """Another member's announce: remember them, answer a newcomer, dial, catch up."""
        if post.author == self._me:
            return
        room_id = live.secrets.room_id
        announce = post.announce
        now = time.time()
        taken = self.store.apply_announce(room_id, post.author, announce.name, announce.addrs,
                                          now, post.lamport, post.sent_at_ms)
        if taken is None:
            log.debug("room %s: ignored an announce by %s older than one already taken",
                      live.secrets.id_hex, post.author)
            return
        if shown_differently(taken, announce.name, now):
            self._members_changed(room_id)
        for listener in self.on_features:
            listener(post.author, announce.features)
        if taken.new and time.monotonic() - live.last_announce > REANNOUNCE_MIN_GAP:
            await self.announce(live)  # so the newcomer learns who is here now
        if not self._connections.is_connected(post.author):
            self._nursery.start_soon(self._dial_member, post.author, announce.addrs)
        stored = self.store.room(room_id)
        if stored is not None and post.lamport > stored.lamport:
            self._request_sync(live, post.author)  # they have seen posts we have not

    async def _dial_member(self, peer_id: str, addrs: tuple[str, ...]) -> bool:
        return await connect_at(self._host, peer_id, addrs, DIAL_TIMEOUT)

    async def reach_members(self, room_id: bytes) -> None:
        """Connect to some members (after start or join, or for a file fetch that found none
        connected) so gossip, sync and fetches have peers."""
        members = [m for m in self.store.members(room_id) if m.peer_id != self._me]
        random.shuffle(members)
        async with trio.open_nursery() as nursery:
            for member in members[:MAX_ROOM_DIALS]:
                if not self._connections.is_connected(member.peer_id):
                    nursery.start_soon(self._dial_member, member.peer_id, member.addrs)
        live = self._live(room_id)
        if live is not None:
            for member in members:
                if self._connections.is_connected(member.peer_id):
                    self._request_sync(live, member.peer_id)

    def resync(self, live: LiveRoom) -> None:
        """Sync again from a few connected members: new epoch keys open posts we dropped."""
        live.synced_with.clear()
        connected = [m for m in self.store.member_ids(live.secrets.room_id)
                     if self._connections.is_connected(m)]
        for peer_id in random.sample(connected, min(len(connected), RESYNC_PEERS)):
            self._request_sync(live, peer_id)
