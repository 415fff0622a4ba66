"""No peer input stops the node: a failure in any task that handles a peer's data stays with
that message or stream (docs/networking.md, "Limits and threat model"; app/node/isolation.py).

Each case plants one ``RuntimeError`` in a handler of Vic, a real node (in the victim's
network thread only, once), makes a peer send what reaches that handler, waits until the
failure happened, and then checks that Vic is still running and still serves a genuine peer:
a direct message both ways with Bob, and what the broken handler does, done again. Vic and
Bob are shared by the whole module; every case leaves them as it found them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
import trio.lowlevel
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from zeroconf import ServiceInfo, ServiceStateChange

import app.core.dm
import app.core.files
import app.core.room
from app.core.config import NodeConfig
from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.node.lan import SERVICE_TYPE
from app.node.node import KithNode
from tests.attackers import YAMUX_DATA, YAMUX_HEADER, YAMUX_SYN, RawHost, muxed_connection, peer
from tests.peers import LOOPBACK, Peer, befriend

T = TypeVar("T")
WAIT = 20.0
_counter = itertools.count()


async def on_node(who: Peer, fn: Callable[[KithNode], T]) -> T:
    """``fn(node)`` in ``who``'s network thread."""

    async def call(node: KithNode) -> T:
        return fn(node)

    return await who.client.call(call)


def plant(owner: Any, name: str) -> threading.Event:
    """Make the next call of ``owner.name`` (``owner[name]`` for a dict) made in this node's
    network thread raise ``RuntimeError``, then put the original back; set the returned event
    when it happened. Runs in the victim's network thread."""
    token = trio.lowlevel.current_trio_token()
    fired = threading.Event()
    mapping = isinstance(owner, dict)
    original = owner[name] if mapping else getattr(owner, name)
    own = mapping or name in vars(owner)

    def in_victim() -> bool:
        try:
            return trio.lowlevel.current_trio_token() is token
        except RuntimeError:  # a worker thread
            return False

    def restore() -> None:
        if mapping:
            owner[name] = original
        elif own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)

    def fire() -> None:
        fired.set()
        restore()
        raise RuntimeError(f"a failure planted in {name}")

    planted: Callable[..., Any]
    if inspect.iscoroutinefunction(original):
        async def planted_async(*args: Any, **kwargs: Any) -> Any:
            if in_victim() and not fired.is_set():
                fire()
            return await original(*args, **kwargs)
        planted = planted_async
    else:
        def planted_sync(*args: Any, **kwargs: Any) -> Any:
            if in_victim() and not fired.is_set():
                fire()
            return original(*args, **kwargs)
        planted = planted_sync
    if mapping:
        owner[name] = planted
    else:
        setattr(owner, name, planted)
    return fired


@dataclass
class World:
    """Vic (the victim), Bob (a genuine contact who is also Vic's relay and DHT bootstrap
    peer, sharing a room with her) and Eve (a bare host, a stranger connected to Vic)."""

    vic: Peer
    bob: Peer
    eve: RawHost
    room: str
    folder: Path

    async def round_trip(self) -> None:
        """A direct message each way between Vic and Bob."""
        for sender, receiver in ((self.bob, self.vic), (self.vic, self.bob)):
            text = f"still here {next(_counter)}"
            await sender.client.send(receiver.peer_id, text)
            await receiver.wait_event("message", text=text, timeout=WAIT)

    async def room_post(self) -> None:
        """Bob's next room post reaches Vic."""
        text = f"room post {next(_counter)}"
        await self.bob.client.post(self.room, text)
        await self.vic.wait_event("room_message", text=text, timeout=WAIT)

    async def new_room_with_bob(self) -> str:
        """A room Vic creates and Bob joins: Bob's subscription and GRAFT reach Vic. Bob joins
        once he knows Vic is in the room, so that he grafts her himself (had her GRAFT come
        first, Bob would have had no control message to send)."""
        room = await self.vic.client.create_room(f"room {next(_counter)}")
        topic = await on_node(self.vic, lambda node: node.rooms._live[
            bytes.fromhex(room.room_id)].secrets.topic)
        vic_id = await on_node(self.vic, lambda node: node.host.get_id())
        bob = self.bob.client._node
        assert bob is not None
        await self.bob.wait_for(lambda: vic_id in _pubsub(bob).peer_topics.get(topic, set()),
                                WAIT, "Bob to learn that Vic is in the new room")
        await self.bob.client.join_room(room.invite)
        return room.room_id

    async def sync(self, puller: Peer, source: Peer) -> None:
        """``puller`` syncs the shared room from ``source`` (once it has finished)."""

        def start(node: KithNode) -> None:
            live = node.rooms._live[bytes.fromhex(self.room)]
            live.synced_with.discard(source.peer_id)
            node.rooms.sync.request(live, source.peer_id)

        await on_node(puller, start)

    async def synced(self, puller: Peer, source: Peer) -> None:
        await self.sync(puller, source)
        await puller.wait_for(lambda: source.peer_id in puller.client._node.rooms._live[  # type: ignore[union-attr]
            bytes.fromhex(self.room)].synced_with, WAIT, "a sync that completes")

    async def offer(self, sender: Peer, receiver: Peer) -> str:
        """``sender`` offers a small file to ``receiver``, who accepts it; its transfer id."""
        path = self.folder / f"file-{next(_counter)}.bin"
        path.write_bytes(bytes(range(256)) * 1000)
        offer = await sender.client.send_file(receiver.peer_id, str(path))
        await receiver.wait_event("file_offer", transfer=offer.transfer, timeout=WAIT)
        await receiver.client.accept_file(offer.transfer, str(self.folder / receiver.name))
        return offer.transfer

    async def eve_stream(self, protocol: str) -> bool:
        """Eve opens a ``protocol`` stream to Vic; whether Vic agreed to the protocol (a
        handler that fails at once may reset the stream before Eve reads the agreement)."""

        async def open_one(host: Any) -> bool:
            try:
                stream = await host.new_stream(peer(self.vic.peer_id), [protocol])
            except Exception:  # noqa: BLE001 - reset during negotiation
                return False
            await stream.reset()
            return True

        return await self.eve.call(open_one)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, World]]:
    folder = tmp_path_factory.mktemp("isolation")
    with asyncio.Runner() as runner:
        async def start() -> World:
            bob = await Peer(folder / "bob", "Bob", NodeConfig(
                listen=(LOOPBACK,), serve_relay=True, serve_dht=True)).start()
            assert bob.ready is not None
            bob_addr = bob.ready.addrs[0]
            vic = await Peer(folder / "vic", "Vic", NodeConfig(
                listen=(LOOPBACK,), relays=(bob_addr,), bootstrap=(bob_addr,), serve_relay=True,
                serve_dht=True, lan_discovery=True)).start()
            await befriend(vic, bob)
            await vic.wait_event("relay_reserved", timeout=WAIT)
            room = await vic.client.create_room("Shared")
            await bob.client.join_room(room.invite)
            eve = await RawHost().start()
            await eve.connect(vic.invite)
            shared = World(vic, bob, eve, room.room_id, folder)
            await shared.room_post()  # the room works before anything is planted
            return shared

        shared = runner.run(start())
        try:
            yield runner, shared
        finally:
            async def stop() -> None:
                await shared.eve.stop()
                await asyncio.gather(shared.vic.stop(), shared.bob.stop(),
                                     return_exceptions=True)

            runner.run(stop())


# -- the cases: where the failure is planted, what makes it happen, what must work after -----

Where = Callable[[KithNode], tuple[Any, str]]
Step = Callable[[World], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    where: Where | None  # None: the input itself is hostile (``then`` checks what it did)
    trigger: Step
    then: Step


async def nothing(_: World) -> None:
    pass


def _pubsub(node: KithNode) -> Any:
    return node.rooms._pubsub


async def _dm_from_bob(w: World) -> None:
    await w.bob.client.send(w.vic.peer_id, "the frame that fails")


async def _bob_posts(w: World) -> None:
    await w.bob.client.post(w.room, "the post that fails")


async def _bob_joins(w: World) -> None:
    await w.new_room_with_bob()


async def _file_to_bob(w: World) -> None:
    transfer = await w.offer(w.vic, w.bob)
    await w.bob.wait_event("file_complete", transfer=transfer, timeout=WAIT)


async def _file_to_vic(w: World) -> None:
    transfer = await w.offer(w.bob, w.vic)
    await w.vic.wait_event("file_complete", transfer=transfer, timeout=WAIT)


async def _file_to_vic_fails_then_resumes(w: World) -> None:
    transfer = await w.offer(w.bob, w.vic)
    await w.vic.wait_event("file_failed", transfer=transfer, timeout=WAIT)
    await w.vic.client.accept_file(transfer)  # accepting again goes on from the part
    await w.vic.wait_event("file_complete", transfer=transfer, timeout=WAIT)


async def _learn_bobs_profile(w: World) -> None:
    await on_node(w.vic, lambda node: node.nursery.start_soon(
        node.contacts._learn_profile, w.bob.peer_id))


async def _bob_fetches_vics_profile(w: World) -> None:
    async def fetch(node: KithNode) -> object:
        return await node.contacts.profiles.fetch(w.vic.peer_id)

    await w.bob.client.call(fetch)


async def _bob_gets_vics_profile(w: World) -> None:
    async def fetch(node: KithNode) -> object:
        return await node.contacts.profiles.fetch(w.vic.peer_id)

    profile = await w.bob.client.call(fetch)
    assert profile is not None and profile.name == "Vic"  # type: ignore[attr-defined]


def _stream_case(protocol: str) -> Case:
    async def open_one(w: World) -> None:
        await w.eve_stream(protocol)

    async def served(w: World) -> None:
        assert await w.eve_stream(protocol)

    return Case(lambda node: (node.host.get_mux().handlers, protocol), open_one, served)


def _dcutr_refusals(w: World) -> int:
    node = w.vic.client._node
    assert node is not None and node._hole_punch is not None
    return node._hole_punch.info()["refused_peers"]


async def _dcutr_open(w: World) -> None:
    await w.eve_stream("/libp2p/dcutr")


async def _dcutr_served(w: World) -> None:
    """Vic's DCUtR handler runs again for Eve's next stream: a stranger's exchange is refused
    (counted, the stream reset at once), so whether Eve reads the protocol agreement before
    the reset is up to the scheduler; the count is not."""
    before = _dcutr_refusals(w)
    await w.eve_stream("/libp2p/dcutr")
    await w.vic.wait_for(lambda: _dcutr_refusals(w) > before, WAIT, "the DCUtR handler")


async def _bad_protocol_name(w: World) -> None:
    """A protocol name that is not UTF-8, on a raw Yamux stream (0.8.1's multistream lets a
    UnicodeDecodeError out of its negotiation)."""
    from app.node.framing import encode_frame

    async def send(host: Any) -> None:
        payload = encode_frame(b"/multistream/1.0.0\n") + encode_frame(b"\xff\xfe/kith\n")
        await muxed_connection(host, w.vic.peer_id)._write_frame(
            YAMUX_HEADER.pack(0, YAMUX_DATA, YAMUX_SYN, 7_000_001, len(payload)) + payload)

    await w.eve.call(send)


async def _eve_still_served(w: World) -> None:
    assert await w.eve_stream("/ipfs/id/1.0.0")


class _StubZeroconf:
    """Stands in for zeroconf's network side: hands back one record, as a resolver does."""

    def get_service_info(self, type_: str, name: str, timeout: int) -> ServiceInfo:
        peer_id = Identity.generate().peer_id
        return ServiceInfo(type_, f"{peer_id}.{type_}", port=9, addresses=[bytes([192, 0, 2, 9])],
                           properties={b"id": peer_id.encode(), b"name": b"Neighbour"})


async def _lan_record(w: World) -> None:
    """A record change as zeroconf's thread reports it (from a thread that is not trio's)."""

    def arm(node: KithNode) -> None:
        assert node.lan is not None
        node.lan._zc = _StubZeroconf()  # type: ignore[assignment]
        node.lan._token = trio.lowlevel.current_trio_token()

    await on_node(w.vic, arm)
    lan = w.vic.client._node.lan  # type: ignore[union-attr]
    assert lan is not None
    await asyncio.to_thread(lan._on_change, None, SERVICE_TYPE, f"x.{SERVICE_TYPE}",
                            ServiceStateChange.Added)


async def _lan_off(w: World) -> None:
    def disarm(node: KithNode) -> None:
        assert node.lan is not None
        node.lan._zc = None

    await on_node(w.vic, disarm)


async def _network_change(w: World) -> None:
    await on_node(w.vic, lambda node: node.netwatch._changed("a test"))


async def _unreachable_contact(w: World) -> None:
    invite = ContactInvite(Identity.generate().peer_id, "Gone", ("/ip4/127.0.0.1/tcp/1",))
    await w.vic.client.add_contact(invite.to_link())


async def _renew_relay_slot(w: World) -> None:
    before = len(w.vic.named("relay_reserved"))
    await on_node(w.vic, lambda node: node.relay.reserve_now())
    await w.vic.wait_event("relay_reserved", count=before + 1, timeout=WAIT)


async def _republish(w: World) -> None:
    await on_node(w.vic, lambda node: node.dht.publish_now())


async def _published_again(w: World) -> None:
    before = await on_node(w.vic, lambda node: node.dht.published)
    await on_node(w.vic, lambda node: node.dht.publish_now())
    await w.vic.wait_for(lambda: w.vic.client._node is not None and
                         w.vic.client._node.dht.published > before, WAIT, "a DHT publish")


async def _vic_syncs(w: World) -> None:
    await w.sync(w.vic, w.bob)


async def _vic_synced(w: World) -> None:
    await w.synced(w.vic, w.bob)


async def _bob_syncs(w: World) -> None:
    await w.sync(w.bob, w.vic)


async def _bob_synced(w: World) -> None:
    await w.synced(w.bob, w.vic)


async def _room_posts(w: World) -> None:
    await w.room_post()


CASES: dict[str, Case] = {
    # direct messages: the stream is reset, the sender's outbox sends again
    "dm receive": Case(lambda node: (app.core.dm, "decode_message"), _dm_from_bob, nothing),
    # rooms: gossip as Kith takes it in, and pubsub's own handling of a peer's RPCs
    "room post received": Case(lambda node: (node.rooms, "_receive"), _bob_posts, _room_posts),
    "room gossip validator": Case(lambda node: (node.rooms, "_admit_live"), _bob_posts,
                                  _room_posts),
    # (upstream's methods, where Kith's overrides call them)
    "pubsub subscription": Case(lambda node: (Pubsub, "handle_subscription"), _bob_joins,
                                _room_posts),
    "gossipsub control": Case(lambda node: (GossipSub, "handle_rpc"), _bob_joins, _room_posts),
    "pubsub task": Case(lambda node: (_pubsub(node).router, "on_peer_subscribed"), _bob_joins,
                        _room_posts),
    # history sync, both sides
    "sync served": Case(lambda node: (node.rooms.sync, "_serve_request"), _bob_syncs,
                        _bob_synced),
    "sync response": Case(lambda node: (app.core.room, "decode_sync_response"), _vic_syncs,
                          _vic_synced),
    # files: serving a request, one source of a download, the download itself
    "file request served": Case(lambda node: (app.core.files, "decode_request"), _file_to_bob,
                                _file_to_bob),
    "file download source": Case(lambda node: (app.core.files, "decode_chunk"), _file_to_vic,
                                 _file_to_vic),
    "file download task": Case(lambda node: (node.files.downloads, "_finish"),
                               _file_to_vic_fails_then_resumes, _file_to_vic),
    # profiles: storing what a peer says about itself (a node task), answering others
    "profile learnt": Case(lambda node: (node.contacts.store, "add_addrs"), _learn_bobs_profile,
                           nothing),
    "profile answered": Case(lambda node: (node.contacts.profiles, "_own_profile"),
                             _bob_fetches_vics_profile, _bob_gets_vics_profile),
    # every other inbound stream handler, py-libp2p's and Kith's, from a stranger
    "identify handler": _stream_case("/ipfs/id/1.0.0"),
    "ping handler": _stream_case("/ipfs/ping/1.0.0"),
    "dcutr handler": Case(lambda node: (node.host.get_mux().handlers, "/libp2p/dcutr"),
                          _dcutr_open, _dcutr_served),
    "relay hop handler": _stream_case("/libp2p/circuit/relay/0.2.0/hop"),
    "relay stop handler": _stream_case("/libp2p/circuit/relay/0.2.0/stop"),
    "dht handler": _stream_case("/ipfs/kad/1.0.0"),
    "protocol negotiation": Case(None, _bad_protocol_name, _eve_still_served),
    # LAN records, as zeroconf's thread hands them over and as the node resolves them
    "lan record handed over": Case(lambda node: (node.lan, "_take_change"), _lan_record,
                                   _lan_off),
    "lan record resolved": Case(lambda node: (node.lan, "found"), _lan_record, _lan_off),
    # what runs on its own: network changes, redials, relay slots, the DHT record
    "network change": Case(lambda node: (node.contacts, "network_changed"), _network_change,
                           nothing),
    "redial": Case(lambda node: (node.contacts, "_dial_addrs"), _unreachable_contact, nothing),
    "relay reservation": Case(lambda node: (node.relay, "_reserve"), _renew_relay_slot,
                              nothing),
    "dht publish": Case(lambda node: (node.dht.kad.peer_routing, "find_closest_peers_network"),
                        _republish, _published_again),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_failure_stays_with_its_input(world: tuple[asyncio.Runner, World], name: str) -> None:
    runner, w = world
    case = CASES[name]

    async def scenario() -> None:
        assert w.vic.client.running, "Vic stopped in an earlier case"
        fired: threading.Event | None = None
        if case.where is not None:
            where = case.where
            fired = await on_node(w.vic, lambda node: plant(*where(node)))
        await case.trigger(w)
        if fired is not None:
            assert await asyncio.to_thread(fired.wait, WAIT), "the planted failure never ran"
        await case.then(w)
        await w.round_trip()
        assert w.vic.client.running and not w.vic.named("node_failed")

    runner.run(scenario())


@pytest.mark.parametrize("failure", ["a control it cannot read", "a bug in its handling"])
def test_a_node_starts_whatever_a_stored_message_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """A file control stored before a crash is handled when the node starts (docs/
    durability.md); one whose handling fails stays pending and the node starts anyway. A
    control whose action was a JSON list once made every start fail: the profile was dead."""
    from app.node.files.intake import FileControls
    from app.store.db import open_database
    from app.store.messages import MessageStore
    from app.store.profile import DB_FILE, Profile

    folder = tmp_path / "vic"
    profile = Profile.open(folder)
    profile.initialise("Vic")
    profile.close()
    mal = Identity.generate().peer_id
    db = open_database(folder / DB_FILE)
    body = '{"transfer":"' + "0" * 32 + '","action":' + (
        "[]" if failure == "a control it cannot read" else '"cancel"') + "}"
    MessageStore(db).store_incoming(mal, b"\x01" * 16, body, 0, kind=app.core.dm.KIND_FILE_CONTROL)
    db.close()
    if failure == "a bug in its handling":
        def broken(*_: object) -> bool:
            raise RuntimeError("a failure planted in the file control handler")

        monkeypatch.setattr(FileControls, "take", broken)

    async def scenario() -> None:
        vic = await Peer(folder, "Vic").start()
        try:
            assert vic.client.running
            pending = await on_node(vic, lambda node: node.messages.pending())
            assert [m.id for m in pending] == (
                [] if failure == "a control it cannot read" else ["01" * 16])
        finally:
            await vic.stop()

    asyncio.run(scenario())


def test_a_service_that_fails_after_it_started_ends_alone() -> None:
    """The node's nursery as services see it (``IsolatingNursery``): py-libp2p's relay and
    DCUtR services run there; one that fails after reporting its start ends alone, and one
    that fails before still tells the code that started it."""
    from app.node.isolation import IsolatingNursery

    async def service(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started("up")
        await trio.lowlevel.checkpoint()
        raise RuntimeError("a failure after the start")

    async def broken(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise RuntimeError("a failure before the start")

    async def main() -> list[str]:
        outcomes = []
        async with trio.open_nursery() as inner:
            nursery = IsolatingNursery(inner)
            outcomes.append(await nursery.start(service))
            try:
                await nursery.start(broken)
            except RuntimeError as exc:
                outcomes.append(str(exc))
            await trio.sleep(0.01)
            outcomes.append("still running")
        return outcomes

    assert trio.run(main) == ["up", "a failure before the start", "still running"]
