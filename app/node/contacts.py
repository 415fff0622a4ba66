"""Contacts, message requests and blocks; presence; and keeping contacts connected.

Presence is simply "we have a connection to them". Every contact we are not connected to is
redialled, from the addresses their invite and their profile taught us, with jittered exponential
backoff capped at ``MAX_BACKOFF`` and never giving up. Whichever side connects first, the
``on_connected`` hook flushes the outbox towards that peer.

Cheap with many contacts offline: one ``Redialer`` task holds every contact's next dial in a heap
(one timer for the whole node, not one per contact), at most ``MAX_PARALLEL_DIALS`` dials run at
once, and a contact's DHT lookups back off on their own (``DHT_FIRST_BACKOFF`` to
``DHT_MAX_BACKOFF`` s). A connection (inbound too) resets the contact's backoff;
``network_changed`` (from ``app.node.netwatch``) resets everyone's and redials within
``REDIAL_SPREAD`` seconds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio
from libp2p.abc import IHost

from app.core.events import (
    ContactAdded,
    ContactChanged,
    ContactOffline,
    ContactOnline,
    ContactRemoved,
    UnreadChanged,
)
from app.core.identity import is_valid_peer_id
from app.core.invite import ContactInvite, clean_display_name, parse_invite, strip_p2p
from app.core.records import ContactInfo, ContactState
from app.node.host import connect_at
from app.node.interfaces import Connections, Emit, LocalPeer, PeerLookup, Tasks
from app.node.profile_exchange import PeerProfile, ProfileExchange, encode_profile
from app.node.signal import Signal
from app.store.contacts import ContactStore

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 10.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
JITTER = 0.25  # each wait is the nominal backoff times a factor in [1 - JITTER, 1]
MAX_PARALLEL_DIALS = 32  # redials in flight at once, whatever the number of contacts
REDIAL_SPREAD = 1.0  # after a network change every contact is redialled within this many s
SPREAD_PER_CONTACT = 0.01  # ... or sooner with few contacts: 10 ms each, up to REDIAL_SPREAD
RECONNECT_SPREAD = 0.5  # after a lost connection the first redial comes within this many s
STABLE_AFTER = 5.0  # a connection shorter than this does not reset the backoff when it ends
CONNECTED_CHECK = 120.0  # how often a connected contact's entry re-checks (a missed notice)
DHT_FIRST_BACKOFF = 30.0
DHT_MAX_BACKOFF = 600.0


@dataclass
class Backoff:
    """Exponential backoff with jitter that never gives up: waits grow to ``cap`` and stay.

    The jitter (a factor in ``[1 - jitter, 1]``) keeps peers that failed together from
    retrying together.
    """

    first: float = FIRST_BACKOFF
    cap: float = MAX_BACKOFF
    jitter: float = JITTER
    rng: random.Random = field(default_factory=random.Random)
    nominal: float = 0.0  # the next wait before jitter (``first`` after __post_init__)

    def __post_init__(self) -> None:
        self.nominal = self.first

    def next(self) -> float:
        """The wait before the next attempt; each call doubles the nominal wait up to ``cap``."""
        wait = self.nominal * (1.0 - self.jitter * self.rng.random())
        self.nominal = min(self.nominal * 2, self.cap)
        return wait

    def reset(self) -> None:
        self.nominal = self.first


@dataclass
class _Peer:
    backoff: Backoff  # failed dials
    flaps: Backoff  # connections that ended at once (reset only by one that held)
    due: float = 0.0  # trio clock time of this peer's live heap entry
    connected_at: float | None = None
    in_flight: bool = False
    again: bool = False  # came due again while a dial was in flight: redial when it ends


class Redialer:
    """Every contact's next dial in one heap, driven by one task, with bounded parallel dials.

    ``want(peer)`` says whether a peer should still be kept connected (a contact); ``dial``
    makes one attempt; ``connected(peer)`` is the node's view, and what decides the next plan.
    """

    def __init__(
        self,
        want: Callable[[str], bool],
        connected: Callable[[str], bool],
        dial: Callable[[str], Awaitable[bool]],
        *,
        parallel: int = MAX_PARALLEL_DIALS,
        rng: random.Random | None = None,
    ) -> None:
        self._want = want
        self._connected = connected
        self._dial = dial
        self._rng = rng or random.Random()
        self._peers: dict[str, _Peer] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._changed = Signal()
        self._slots = trio.Semaphore(parallel)
        self.dials = 0  # attempts started (for tests and the benchmark)

    def _peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = _Peer(Backoff(rng=self._rng), Backoff(rng=self._rng))
        return peer

    def schedule(self, peer_id: str, delay: float) -> None:
        """Dial ``peer_id`` in ``delay`` seconds (replacing any earlier plan for it)."""
        peer = self._peer(peer_id)
        peer.due = trio.current_time() + max(0.0, delay)
        heapq.heappush(self._heap, (peer.due, next(self._order), peer_id))
        if self._heap[0][2] == peer_id:
            self._changed.set()

    def soon(self, peer_id: str, spread: float = RECONNECT_SPREAD) -> None:
        self.schedule(peer_id, self._rng.uniform(0.0, spread))

    def forget(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)  # its heap entries are dropped when they come due

    def dialing(self, peer_id: str) -> bool:
        """Whether a dial of ``peer_id`` is in flight now."""
        peer = self._peers.get(peer_id)
        return peer is not None and peer.in_flight

    def next_wait(self, peer_id: str) -> float | None:
        """Seconds until ``peer_id``'s next planned dial (None when not planned)."""
        peer = self._peers.get(peer_id)
        return None if peer is None else max(0.0, peer.due - trio.current_time())

    def peer_connected(self, peer_id: str) -> None:
        """Any connection, inbound or outbound, resets the backoff: the peer is alive."""
        peer = self._peer(peer_id)
        peer.connected_at = trio.current_time()
        peer.backoff.reset()
        self.schedule(peer_id, CONNECTED_CHECK)

    def peer_disconnected(self, peer_id: str) -> None:
        """Redial soon after a connection that held; back off after one that dropped at once
        (a peer that hangs up on us must not be redialled in a tight loop)."""
        peer = self._peer(peer_id)
        lasted = trio.current_time() - peer.connected_at if peer.connected_at else 0.0
        peer.connected_at = None
        if lasted >= STABLE_AFTER:
            peer.flaps.reset()
            self.soon(peer_id)
        else:
            self.schedule(peer_id, peer.flaps.next())

    def redial_all(self, spread: float = REDIAL_SPREAD, first: list[str] | None = None) -> int:
        """Reset every backoff and dial every unconnected peer within ``spread`` seconds.

        Peers listed in ``first`` go first, in that order (the rest after them): with dials in
        flight bounded, the contacts likeliest to answer must not queue behind dead ones.
        """
        rank = {peer_id: i for i, peer_id in enumerate(first or [])}
        waiting = []
        for peer_id, peer in self._peers.items():
            peer.backoff.reset()
            peer.flaps.reset()
            if not self._connected(peer_id):
                waiting.append(peer_id)
        waiting.sort(key=lambda p: rank.get(p, len(rank)))
        slot = spread / max(1, len(waiting))
        for i, peer_id in enumerate(waiting):  # in order, each at a random point of its slot
            self.schedule(peer_id, slot * (i + self._rng.random()))
        return len(waiting)

    async def run(self) -> None:
        """Dial each peer when it comes due; never raises (it lives in the node nursery)."""
        async with trio.open_nursery() as nursery:
            while True:
                while self._heap and self._heap[0][0] <= trio.current_time():
                    due, _, peer_id = heapq.heappop(self._heap)
                    peer = self._peers.get(peer_id)
                    if peer is None or peer.due != due:
                        continue  # forgotten or re-planned
                    if peer.in_flight:
                        peer.again = True  # e.g. the network changed during a doomed dial
                        continue
                    if not self._want(peer_id):
                        self.forget(peer_id)
                        continue
                    if self._connected(peer_id):
                        self.schedule(peer_id, CONNECTED_CHECK)
                        continue
                    await self._slots.acquire()
                    if self._peers.get(peer_id) is not peer or peer.due != due:
                        self._slots.release()  # re-planned while we waited for a slot
                        continue
                    peer.in_flight = True
                    peer.again = False
                    self.dials += 1
                    nursery.start_soon(self._attempt, peer_id, peer)
                wait = self._heap[0][0] - trio.current_time() if self._heap else CONNECTED_CHECK
                await self._changed.wait(max(0.0, wait))

    async def _attempt(self, peer_id: str, peer: _Peer) -> None:
        """One dial, then the next plan. What counts is whether the peer is connected when the
        dial ends, not what the dial said: a connection it saw may have dropped since."""
        planned = peer.due
        try:
            await self._dial(peer_id)
        except Exception:
            log.warning("redialling %s failed", peer_id, exc_info=True)
        finally:
            peer.in_flight = False
            self._slots.release()
        if self._peers.get(peer_id) is not peer:
            return  # forgotten meanwhile
        if self._connected(peer_id):
            peer.backoff.reset()
            self.schedule(peer_id, CONNECTED_CHECK)
            return
        if peer.again:
            self.schedule(peer_id, 0.0)
            return
        if peer.due != planned:
            return  # a connection came and went during the dial: its drop planned the redial
        nominal = peer.backoff.nominal
        wait = peer.backoff.next()
        if peer.backoff.nominal == peer.backoff.cap != nominal:  # once per outage, not per dial
            log.info("contact %s unreachable; next dial in %.1f s, then every minute or so",
                     peer_id, wait)
        else:
            log.debug("contact %s unreachable; next dial in %.1f s", peer_id, wait)
        self.schedule(peer_id, wait)


def _spread(contacts: int) -> float:
    """How long a redial of everyone is spread over: not one burst, not a wait for a few."""
    return min(REDIAL_SPREAD, SPREAD_PER_CONTACT * contacts)


class ContactError(ValueError):
    """A contact operation the user asked for that cannot be done; the message says why."""


class ContactService:
    """The contact book (``interfaces.ContactBook``, ``MessageRequests``, ``AddressBook``) and
    the ``Dialer`` that keeps contacts connected.

    ``on_connected`` hooks run when a contact comes online (the outbox flushes), ``on_removed``
    ones when a contact is removed (offers made to them are revoked).
    """

    def __init__(self, store: ContactStore, *, us: LocalPeer, host: IHost, nursery: Tasks,
                 emit: Emit, connections: Connections, lookup: PeerLookup,
                 unread_total: Callable[[], int]) -> None:
        self.store = store
        self._us = us
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._lookup = lookup
        self._unread_total = unread_total
        self._online: set[str] = set()
        self.redialer = Redialer(self._wanted, connections.is_connected, self.dial)
        self._dht_backoff: dict[str, tuple[float, Backoff]] = {}  # peer -> (next lookup, backoff)
        self.profiles = ProfileExchange(host, self._own_profile)
        self.on_connected: list[Callable[[str], None]] = []
        self.on_removed: list[Callable[[str], None]] = []
        self.on_blocked: list[Callable[[str], None]] = []
        # A peer's signed mailbox record as text (unverified), from an invite or a profile.
        self.on_mailbox_record: list[Callable[[str, str], object]] = []
        self.mailbox_record: Callable[[], str] = str  # our signed mailbox record, as text
        self.on_profile: list[Callable[[str, PeerProfile], None]] = []  # a profile arrived
        self.features: list[str] = []  # what our profile announces (docs/protocol.md 7)

    def _own_profile(self) -> bytes:
        return encode_profile(self._us.display_name(), self._us.addrs(),
                              features=self.features, mailboxes=self.mailbox_record())

    def start(self) -> None:
        self.profiles.register()
        contacts = self.store.peer_ids(ContactState.CONTACT)
        for peer_id in contacts:
            self.redialer.soon(peer_id, _spread(len(contacts)))
        self._nursery.start_soon(self.redialer.run)

    def _wanted(self, peer_id: str) -> bool:
        return self.store.state(peer_id) is ContactState.CONTACT

    def network_changed(self) -> int:
        """The machine's network changed: forget every backoff and redial everyone now, the most
        recently seen first, spread over up to ``REDIAL_SPREAD`` s; DHT lookups are allowed
        again at once. How many are dialled."""
        self._dht_backoff.clear()
        recent_first = sorted(self.all(), key=lambda c: c.last_seen or 0.0, reverse=True)
        count = self.redialer.redial_all(
            _spread(len(recent_first)), [c.peer_id for c in recent_first]
        )
        log.info("network changed: redialling %d contact(s)", count)
        return count

    # -- queries ------------------------------------------------------------------------------

    def state(self, peer_id: str) -> ContactState | None:
        return self.store.state(peer_id)

    def blocked(self) -> list[str]:
        """Everyone we block (``interfaces.BlockList``)."""
        return self.store.peer_ids(ContactState.BLOCKED)

    def requests(self) -> int:
        """How many message requests wait for an answer."""
        return self.store.count(ContactState.REQUEST)

    def remember_addrs(self, peer_id: str, addrs: Sequence[str], source: str) -> None:
        """Addresses of ``peer_id`` learned elsewhere (``source``: "lan", say) to dial."""
        self.store.add_addrs(peer_id, addrs, source)

    def is_online(self, peer_id: str) -> bool:
        return peer_id in self._online

    def info(self, peer_id: str) -> ContactInfo | None:
        return self.store.get(peer_id, online=self.is_online(peer_id))

    def all(self) -> list[ContactInfo]:
        return self.store.all(online=self._online)

    def _changed(self, peer_id: str) -> None:
        info = self.info(peer_id)
        if info is not None:
            self._emit(ContactChanged(contact=info))

    # -- what the user does -------------------------------------------------------------------

    async def add_from_invite(self, link: str) -> ContactInfo:
        invite: ContactInvite = parse_invite(link)
        if invite.peer_id == self._us.identity.peer_id:
            raise ContactError("this is your own invite")
        self.store.upsert(invite.peer_id, ContactState.CONTACT, invite.name)
        if invite.addrs:
            self.store.add_addrs(invite.peer_id, invite.addrs, "invite")
        if invite.mailboxes:
            for hook in self.on_mailbox_record:
                hook(invite.peer_id, invite.mailboxes)
        info = self.info(invite.peer_id)
        assert info is not None
        self._emit(ContactAdded(peer_id=info.peer_id, display_name=info.name))
        self._emit(ContactChanged(contact=info))
        self._announce_if_connected(invite.peer_id)
        self.redialer.schedule(invite.peer_id, 0.0)
        return info

    def _announce_if_connected(self, peer_id: str) -> None:
        """A peer already connected (say, through a room) is online the moment they are added."""
        if self.is_online(peer_id):
            self.store.seen(peer_id)
            self._emit(ContactOnline(peer_id=peer_id))
            self._nursery.start_soon(self._learn_profile, peer_id)
            for hook in self.on_connected:
                hook(peer_id)

    def _require(self, peer_id: str) -> ContactInfo:
        info = self.info(peer_id) if is_valid_peer_id(peer_id) else None
        if info is None:
            raise ContactError(f"unknown contact {peer_id}")
        return info

    async def accept(self, peer_id: str) -> ContactInfo:
        """A message request becomes a contact (also unblocks)."""
        self._require(peer_id)
        self.store.upsert(peer_id, ContactState.CONTACT)
        self._changed(peer_id)
        self.redialer.schedule(peer_id, 0.0)
        return self._require(peer_id)

    async def block(self, peer_id: str) -> ContactInfo:
        if not is_valid_peer_id(peer_id):
            raise ContactError(f"not a peer id: {peer_id}")
        self.store.upsert(peer_id, ContactState.BLOCKED)
        self.redialer.forget(peer_id)
        if self.is_online(peer_id):
            await self._connections.disconnect(peer_id)
        for hook in self.on_blocked:
            hook(peer_id)
        self._changed(peer_id)
        self._emit(UnreadChanged(total=self._unread_total()))
        return self._require(peer_id)

    async def rename(self, peer_id: str, name: str) -> ContactInfo:
        self._require(peer_id)
        self.store.rename(peer_id, clean_display_name(name) if name.strip() else None)
        self._changed(peer_id)
        return self._require(peer_id)

    async def set_verified(self, peer_id: str, verified: bool) -> ContactInfo:
        self._require(peer_id)
        self.store.set_verified(peer_id, verified)
        self._changed(peer_id)
        return self._require(peer_id)

    async def remove(self, peer_id: str) -> None:
        self._require(peer_id)
        self.store.remove(peer_id)
        for hook in self.on_removed:
            hook(peer_id)
        self.redialer.forget(peer_id)
        self._emit(ContactRemoved(peer_id=peer_id))
        self._emit(UnreadChanged(total=self._unread_total()))

    def note_request(self, peer_id: str) -> bool:
        """A stranger wrote to us: file them under requests. True if they were new."""
        if self.store.state(peer_id) is not None:
            return False
        self.store.upsert(peer_id, ContactState.REQUEST)
        self._nursery.start_soon(self._learn_profile, peer_id)
        return True

    # -- presence -----------------------------------------------------------------------------

    def connected(self, peer_id: str) -> None:
        """Called for every new connection (either direction)."""
        state = self.store.state(peer_id)
        if state is ContactState.BLOCKED:
            self._nursery.start_soon(self._connections.disconnect, peer_id)
            return
        if peer_id in self._online:
            return
        self._online.add(peer_id)
        if state is None:
            return
        if state is ContactState.CONTACT:
            self.redialer.peer_connected(peer_id)  # inbound or outbound: the backoff starts over
        self._dht_backoff.pop(peer_id, None)
        self.store.seen(peer_id)
        self._emit(ContactOnline(peer_id=peer_id))
        self._changed(peer_id)
        self._nursery.start_soon(self._learn_profile, peer_id)
        for hook in self.on_connected:
            hook(peer_id)

    def disconnected(self, peer_id: str) -> None:
        if peer_id not in self._online or self._connections.is_connected(peer_id):
            return
        self._online.discard(peer_id)
        if self.store.state(peer_id) in (ContactState.CONTACT, ContactState.REQUEST):
            now = time.time()
            self.store.seen(peer_id, now)
            self._emit(ContactOffline(peer_id=peer_id, last_seen=now))
            self._changed(peer_id)
        if self._wanted(peer_id):
            self.redialer.peer_disconnected(peer_id)

    async def _learn_profile(self, peer_id: str) -> None:
        profile = await self.profiles.fetch(peer_id)
        if profile is None or self.store.state(peer_id) is None:
            return
        for listener in self.on_profile:
            listener(peer_id, profile)
        if profile.addrs:
            self.store.add_addrs(peer_id, profile.addrs, "profile")
        if profile.name and self.store.set_their_name(peer_id, profile.name):
            self._changed(peer_id)
        if profile.mailboxes:
            for hook in self.on_mailbox_record:
                hook(peer_id, profile.mailboxes)

    # -- keeping contacts connected -------------------------------------------------------------

    async def dial(self, peer_id: str) -> bool:
        """One attempt over every address we know; True when connected.

        When those fail and DHT bootstrap peers are configured, the peer is looked up by id in
        the DHT; addresses it finds that we did not know are stored (source ``dht``) and dialed.
        """
        known = self.store.addrs(peer_id)
        if await self._dial_addrs(peer_id, known) or self._connections.is_connected(peer_id):
            return True  # connected either way (they may have dialled us meanwhile)
        dht = self._lookup
        if not dht.enabled or self.store.state(peer_id) is not ContactState.CONTACT:
            return False
        if not self._dht_lookup_allowed(peer_id):
            return False
        tried = {strip_p2p(a) for a in known}
        found = [a for a in await dht.find_addrs(peer_id) if a not in tried]
        if self._connections.is_connected(peer_id):  # the lookup itself may have reached them
            self._dht_backoff.pop(peer_id, None)  # seen: the next outage may look up at once
            if found:
                self.store.add_addrs(peer_id, found, "dht")
            return True
        if not found:
            return False
        self.store.add_addrs(peer_id, found, "dht")
        return await self._dial_addrs(peer_id, found)

    def _dht_lookup_allowed(self, peer_id: str) -> bool:
        """A DHT lookup per contact at most every 30 s doubling to 10 min: a lookup is many
        dials, and a contact that is simply off should not cost one per redial. Seeing the
        contact, or a network change, allows the next lookup at once."""
        now = trio.current_time()
        due, backoff = self._dht_backoff.get(peer_id, (0.0, None))
        if now < due:
            return False
        if backoff is None:
            backoff = Backoff(DHT_FIRST_BACKOFF, DHT_MAX_BACKOFF)
        self._dht_backoff[peer_id] = (now + backoff.next(), backoff)
        return True

    async def _dial_addrs(self, peer_id: str, texts: list[str]) -> bool:
        return await connect_at(self._host, peer_id, texts, DIAL_TIMEOUT)
