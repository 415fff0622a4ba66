"""Node services built alone, from small fakes of their interfaces (app.node.interfaces).

No libp2p host and no other service: ``DirectMessages`` delivers between two instances over an
in-memory pipe, with a fake dialer, and hands payload kinds to handlers registered by kind;
``FileTransfers``' offer intake records offers and controls and keeps to its limits. The
network tests run the same services wired into real nodes.
"""

from __future__ import annotations

import bisect
import itertools
import random
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from app.core import dm
from app.core import files as fc
from app.core import room as rc
from app.core.events import (
    Event,
    FileCancelled,
    FileOffer,
    LimitReached,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
)
from app.core.identity import Identity
from app.core.records import ContactInfo, ContactState, Delivery, MessageInfo
from app.core.transfer_state import Step, TransferState
from app.node.dm import DirectMessages
from app.node.files.intake import FileControls, FileOffers, Intake
from app.node.interfaces import Refusal
from app.node.payloads import PayloadKinds
from app.node.rooms import members as rooms_members
from app.node.rooms.live import LiveRoom
from app.node.rooms.members import ANNOUNCE_INTERVAL, ONLINE_WINDOW, Members
from app.store.db import open_database
from app.store.messages import MessageStore
from app.store.transfers import TransferStore

Handler = Callable[[Any], Awaitable[None]]


class Pipe:
    """One end of an in-memory byte stream, with what a stream handler reads off a libp2p one."""

    def __init__(self, stream: trio.StapledStream, remote: str) -> None:
        self._stream = stream
        self.muxed_conn = SimpleNamespace(peer_id=remote)

    async def read(self, n: int | None = None) -> bytes:
        try:
            data = await self._stream.receive_some(n)
        except trio.ClosedResourceError:
            raise StreamEOF from None
        if not data:
            raise StreamEOF
        return data

    async def write(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def close(self) -> None:
        await self._stream.send_eof()

    async def reset(self) -> None:
        await self._stream.aclose()


class Network:
    """Peers by id; a ``new_stream`` runs the remote's handler on the other end of a pipe."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.handlers: dict[str, dict[str, Handler]] = {}
        self.connected: set[frozenset[str]] = set()


class FakeHost:
    def __init__(self, network: Network, peer_id: str) -> None:
        self._network = network
        self._peer_id = peer_id
        network.handlers[peer_id] = {}

    def set_stream_handler(self, protocol: str, handler: Handler) -> None:
        self._network.handlers[self._peer_id][protocol] = handler

    async def new_stream(self, peer: ID, protocols: Sequence[str]) -> Pipe:
        remote = str(peer)
        if frozenset({self._peer_id, remote}) not in self._network.connected:
            raise ConnectionError("not connected")
        handler = self._network.handlers[remote][protocols[0]]
        mine, theirs = trio.testing.memory_stream_pair()
        self._network.nursery.start_soon(handler, Pipe(theirs, self._peer_id))
        return Pipe(mine, remote)


class FakeUs:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def display_name(self) -> str:
        return "me"

    def addrs(self) -> list[str]:
        return []


class FakeContacts:
    """A contact book with everyone in ``contacts``; strangers become requests."""

    def __init__(self, contacts: set[str]) -> None:
        self.states = {peer_id: ContactState.CONTACT for peer_id in contacts}
        self.verified: set[str] = set()

    def state(self, peer_id: str) -> ContactState | None:
        return self.states.get(peer_id)

    def info(self, peer_id: str) -> ContactInfo | None:
        state = self.states.get(peer_id)
        if state is None:
            return None
        return ContactInfo(peer_id, "them", "them", None, state, peer_id in self.verified,
                           True, None, 0, "", 0.0)

    def requests(self) -> int:
        return sum(s is ContactState.REQUEST for s in self.states.values())

    def note_request(self, peer_id: str) -> bool:
        if peer_id in self.states:
            return False
        self.states[peer_id] = ContactState.REQUEST
        return True

    async def accept(self, peer_id: str) -> ContactInfo:
        self.states[peer_id] = ContactState.CONTACT
        info = self.info(peer_id)
        assert info is not None
        return info


class FakeConnections:
    def __init__(self, network: Network, me: str) -> None:
        self._network = network
        self._me = me

    def is_connected(self, peer_id: str) -> bool:
        return frozenset({self._me, peer_id}) in self._network.connected

    def connections_to(self, peer_id: str) -> list[Any]:
        return []

    async def disconnect(self, peer_id: str) -> None:
        self._network.connected.discard(frozenset({self._me, peer_id}))


class FakeDialer:
    """Every dial connects, and is counted."""

    def __init__(self, network: Network, me: str) -> None:
        self._network = network
        self._me = me
        self.dialled: list[str] = []

    async def dial(self, peer_id: str) -> bool:
        self.dialled.append(peer_id)
        self._network.connected.add(frozenset({self._me, peer_id}))
        return True


class FakeQuotas:
    def __init__(self) -> None:
        self.refusals: list[tuple[str, str]] = []
        self.offers_allowed = 10

    def message_refusal(self, peer_id: str, *, contact: bool, known: bool,
                        stored: Callable[[], tuple[int, int]],
                        pending_requests: Callable[[], int], size: int
                        ) -> tuple[str, str] | None:
        return None

    def offer_refusal(self, peer_id: str, pending: int) -> str | None:
        return None if pending < self.offers_allowed else "too many offers waiting"

    def refused(self, who: str, limit: str, detail: str, *, peer_id: str = "") -> None:
        self.refusals.append((limit, detail))


class Events:
    """What a service emitted, and a wait for the one a test expects (no sleeps)."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._changed = trio.Event()

    def emit(self, event: Event) -> None:
        self.seen.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]

    async def wait_for(self, kind: type[Event]) -> Any:
        with trio.fail_after(10):
            while not self.of(kind):
                await self._changed.wait()
        return self.of(kind)[0]


class RecordingKind:
    """A handler for one payload kind that records what it is given and may refuse it."""

    shown = False

    def __init__(self) -> None:
        self.taken: list[tuple[str, str]] = []
        self.refused_ours: list[str] = []
        self.refuse: Refusal | None = None

    def refusal(self, peer_id: str, message: dm.DirectMessage) -> Refusal | None:
        return self.refuse

    def take(self, peer_id: str, message: dm.DirectMessage) -> bool:
        self.taken.append((peer_id, message.text))
        return False

    def present(self, message: MessageInfo) -> MessageInfo | None:
        return None

    def refused(self, message: MessageInfo, reason: str) -> None:
        self.refused_ours.append(reason)


@pytest.fixture
def db_at(tmp_path: Path) -> Iterator[Callable[[str], sqlite3.Connection]]:
    opened: list[sqlite3.Connection] = []

    def open_one(name: str) -> sqlite3.Connection:
        conn = open_database(tmp_path / f"{name}.db")
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


def _dms(network: Network, identity: Identity, other: Identity, conn: sqlite3.Connection,
         events: Events, quotas: FakeQuotas) -> tuple[DirectMessages, FakeDialer]:
    me = identity.peer_id
    dialer = FakeDialer(network, me)
    service = DirectMessages(
        MessageStore(conn), us=FakeUs(identity), host=FakeHost(network, me),  # type: ignore[arg-type]
        nursery=network.nursery, emit=events.emit, contacts=FakeContacts({other.peer_id}),
        dialer=dialer, connections=FakeConnections(network, me), quotas=quotas,
        first_frame_timeout=5.0, unread_total=lambda: 0)
    service.start()
    return service, dialer


def test_direct_messages_alone_deliver_and_hand_kinds_to_their_handlers(
        db_at: Callable[[str], sqlite3.Connection]) -> None:
    ada_id, bob_id = Identity.generate(), Identity.generate()

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            network = Network(nursery)
            ada_events, bob_events = Events(), Events()
            bob_quotas = FakeQuotas()
            ada, dialer = _dms(network, ada_id, bob_id, db_at("ada"), ada_events, FakeQuotas())
            bob, _ = _dms(network, bob_id, ada_id, db_at("bob"), bob_events, bob_quotas)
            ada_controls, bob_controls = RecordingKind(), RecordingKind()
            ada.kinds.register(dm.KIND_FILE_CONTROL, ada_controls)
            bob.kinds.register(dm.KIND_FILE_CONTROL, bob_controls)

            # Not connected: the outbox dials, then delivers; Bob stores, shows, acknowledges.
            sent = await ada.send(bob_id.peer_id, "hello")
            received = await bob_events.wait_for(MessageReceived)
            assert (received.from_, received.text) == (ada_id.peer_id, "hello")
            delivered = await ada_events.wait_for(MessageDelivered)
            assert delivered.id == sent.id and dialer.dialled == [bob_id.peer_id]
            stored = ada.store.get(bob_id.peer_id, bytes.fromhex(sent.id), outgoing=True)
            assert stored is not None and stored.state is Delivery.DELIVERED

            # A kind goes to the handler registered for it, and is not shown.
            ada.queue(bob_id.peer_id, dm.KIND_FILE_CONTROL, "control one")
            with trio.fail_after(10):
                while not bob_controls.taken:
                    await trio.testing.wait_all_tasks_blocked()
            assert bob_controls.taken == [(ada_id.peer_id, "control one")]
            assert len(bob_events.of(MessageReceived)) == 1

            # Refused by the receiving handler's limit: the sender's handler hears why.
            bob_controls.refuse = Refusal(dm.REJECT_QUOTA, "file_offers", "no more")
            ada.queue(bob_id.peer_id, dm.KIND_FILE_CONTROL, "control two")
            with trio.fail_after(10):
                while not ada_controls.refused_ours:
                    await trio.testing.wait_all_tasks_blocked()
            assert ada_controls.refused_ours == [dm.REJECT_REASONS[dm.REJECT_QUOTA]]
            assert bob_quotas.refusals == [("file_offers", "no more")]
            assert not ada_events.of(MessageFailed)  # a control is not in the conversation

            # A kind nobody registered is refused as unsupported, never stored.
            bob_files = bob.kinds.get(dm.KIND_FILE_OFFER)
            assert bob_files is None
            failed = RecordingKind()
            ada.kinds.register(dm.KIND_FILE_OFFER, failed)
            ada.queue(bob_id.peer_id, dm.KIND_FILE_OFFER, "{}")
            with trio.fail_after(10):
                while not failed.refused_ours:
                    await trio.testing.wait_all_tasks_blocked()
            assert failed.refused_ours == [dm.REJECT_REASONS[dm.REJECT_UNSUPPORTED_KIND]]
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_a_kind_has_one_handler() -> None:
    kinds: PayloadKinds[object] = PayloadKinds("test payload")
    kinds.register(7, "first")
    with pytest.raises(ValueError, match="already has a handler"):
        kinds.register(7, "second")
    assert kinds.get(7) == "first" and kinds.get(8) is None and list(kinds) == [7]


class FakeDownloads:
    def __init__(self) -> None:
        self.stopped: list[bytes] = []

    async def stop(self, tid: bytes) -> None:
        self.stopped.append(tid)

    async def remove_part(self, t: object) -> None:
        pass


def _offer_body(size: int = 10, chunk_size: int = 1 << 20) -> tuple[fc.FileOffer, str]:
    offer = fc.FileOffer(fc.new_transfer_id(), "a.bin", size, chunk_size, b"\x00" * 32,
                         "application/octet-stream")
    return offer, offer.to_json().decode()


def test_file_offer_intake_alone(db_at: Callable[[str], sqlite3.Connection]) -> None:
    """Offers are recorded once, announced, limited by the quotas and the codec; a control
    from the other side moves a transfer by the table's steps only."""
    peer = Identity.generate().peer_id

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            events, quotas = Events(), FakeQuotas()
            store = TransferStore(db_at("intake"))
            accepted: list[str] = []

            async def auto_accept(transfer: str) -> None:
                accepted.append(transfer)

            contacts = FakeContacts({peer})
            intake = Intake(store, nursery=nursery, emit=events.emit, contacts=contacts,
                            quotas=quotas, downloads=FakeDownloads(),  # type: ignore[arg-type]
                            auto_accept_limit=lambda: 100, auto_accept=auto_accept)
            offers, controls = FileOffers(intake), FileControls(intake)
            offer, body = _offer_body()
            message = dm.DirectMessage(dm.new_message_id(), peer, "me", 0, dm.KIND_FILE_OFFER,
                                       body)
            assert offers.refusal(peer, message) is None
            assert offers.take(peer, message) is True
            assert not offers.take(peer, message)  # the same offer again: ignored
            (announced,) = events.of(FileOffer)
            assert (announced.transfer, announced.from_) == (offer.id_hex, peer)
            assert accepted == []  # not verified: no auto-accept

            contacts.verified.add(peer)
            second, body = _offer_body()
            assert offers.take(peer, dm.DirectMessage(dm.new_message_id(), peer, "me", 0,
                                                      dm.KIND_FILE_OFFER, body))
            await trio.testing.wait_all_tasks_blocked()
            assert accepted == [second.id_hex]

            quotas.offers_allowed = 2  # two are waiting now
            refused = offers.refusal(peer, message)
            assert refused is not None and refused.code == dm.REJECT_QUOTA
            _, huge = _offer_body(size=fc.MAX_SIZE, chunk_size=fc.MIN_CHUNK_SIZE)
            too_large = offers.refusal(peer, dm.DirectMessage(
                dm.new_message_id(), peer, "me", 0, dm.KIND_FILE_OFFER, huge))
            assert too_large is not None and too_large.code == dm.REJECT_TOO_LARGE

            # Controls: "complete" is not a step of an incoming transfer; "cancel" is.
            tid = offer.transfer
            for action in ("complete", "cancel", "cancel"):
                control = fc.FileControl(tid, action).to_json().decode()
                assert controls.take(peer, dm.DirectMessage(
                    dm.new_message_id(), peer, "me", 0, dm.KIND_FILE_CONTROL, control)) is False
            await trio.testing.wait_all_tasks_blocked()
            got = store.get(tid)
            assert got is not None and got.state is TransferState.CANCELLED
            assert [e.transfer for e in events.of(FileCancelled)] == [offer.id_hex]

            # An offer we made, revoked when its contact goes: cancelled, announced once.
            ours, _ = _offer_body()
            store.add(ours, outgoing=True, peer_id=peer, room_id=None)
            intake.revoke_offers_to(peer)
            intake.revoke_offers_to(peer)
            got = store.get(ours.transfer)
            assert got is not None and got.state is TransferState.CANCELLED
            assert not store.move(ours.transfer, Step.COMPLETE, outgoing=True)
            assert len(events.of(FileCancelled)) == 2
            assert not events.of(LimitReached)
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_members_who_came_online_together_do_not_announce_in_waves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """50 members start at one instant (a room formed at once, a network back). Each announces
    at once, then at most 60 s later and every 54 - 66 s after, so two gaps in a row stay under
    the 150 s a member is shown online for; and after the first minute no 12 s hold more than
    half the room's announces (with every wait drawn from 54 - 66 s, all 50 fell in one)."""
    monkeypatch.setattr(rooms_members, "random", random.Random(18))  # the same draws each run
    secrets = rc.RoomSecrets.generate()
    times: dict[int, list[float]] = {}

    def member(i: int) -> tuple[Members, LiveRoom]:
        async def publish(_secrets: rc.RoomSecrets, _envelope: bytes) -> None:
            times.setdefault(i, []).append(trio.current_time())

        us = SimpleNamespace(identity=Identity.generate(), display_name=lambda: f"M{i}",
                             addrs=lambda: [])
        members = Members(
            SimpleNamespace(room=lambda _room_id: SimpleNamespace(lamport=0)),  # type: ignore[arg-type]
            SimpleNamespace(gossip=SimpleNamespace(mesh={secrets.topic: {"a peer"}})),  # type: ignore[arg-type]
            us=us, host=None, nursery=None, connections=None,  # type: ignore[arg-type]
            live=lambda _room_id: None, publish=publish,
            request_sync=lambda _live, _peer: None, members_changed=lambda _room_id: None)
        return members, LiveRoom(secrets)

    async def scenario() -> None:
        with trio.move_on_after(360):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(Members.announce_loop, *member(i))

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    for announced in times.values():
        gaps = [b - a for a, b in itertools.pairwise(announced)]
        assert announced[0] == 0 and gaps[0] <= ANNOUNCE_INTERVAL
        assert all(0.9 * ANNOUNCE_INTERVAL <= gap <= 1.1 * ANNOUNCE_INTERVAL for gap in gaps[1:])
        assert all(a + b < ONLINE_WINDOW for a, b in itertools.pairwise(gaps))
    later = sorted(t for announced in times.values() for t in announced if t >= 60)
    assert max(bisect.bisect_left(later, t + 12) - n for n, t in enumerate(later)) <= 25
