"""A Kith relay under attack from peers on 127.0.0.1: slots, circuits and bytes that hold.

The attacker is a real Kith node speaking raw circuit relay v2 (HOP) to the relay, as any
libp2p peer can: reservations in other peers' names, bursts of concurrent CONNECTs, a peer
pushing more than its data budget. Genuine peers must keep their slots and circuits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage, StopMessage
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeer
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, STOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

import app.node.relay_server as relay_server
from app.core.config import NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.hole_punch import HolePunching
from app.node.host import connect_at
from app.node.node import KithNode
from app.node.resources import DEFAULT_LIMITS, PeerClass
from tests.nodeproc import NodeProcess
from tests.peers import LOOPBACK, Peer


def run(coro_fn):
    return asyncio.run(coro_fn())


async def _hop(node: KithNode, relay: str, message: HopMessage) -> StatusCode:
    """One HOP exchange from ``node`` to ``relay`` on a fresh stream; the answer's status."""
    with trio.fail_after(15):
        stream = await node.host.new_stream(ID.from_base58(relay), [PROTOCOL_ID])
        try:
            await write_delimited_msg(stream, message)
            answer = await read_delimited_msg(stream, HopMessage)
        finally:
            await stream.reset()
    return StatusCode(answer.status)


def _reserve_as(peer_id: bytes) -> HopMessage:
    return HopMessage(type=HopMessage.RESERVE, peer=CircuitPeer(id=peer_id))


def _connect_to(peer_id: str) -> HopMessage:
    return HopMessage(type=HopMessage.CONNECT,
                      peer=CircuitPeer(id=ID.from_base58(peer_id).to_bytes()))


async def _slots(node: KithNode) -> set[str]:
    return set(node.relay.server.reserved_peers())


def _random_peer_id() -> bytes:
    from app.core.identity import Identity

    return ID.from_base58(Identity.generate().peer_id).to_bytes()


async def _start_relay(tmp_path: Path, **config: object) -> Peer:
    relay = Peer(tmp_path / "relay", "Relay",
                 NodeConfig(listen=(LOOPBACK,), serve_relay=True, **config))  # type: ignore[arg-type]
    return await relay.start()


def _reserving(tmp_path: Path, name: str, relay: Peer) -> Peer:
    assert relay.ready is not None
    return Peer(tmp_path / name.lower(), name,
                NodeConfig(listen=(LOOPBACK,), relays=(relay.ready.addrs[0],)))


def test_reservations_in_other_names_are_refused_and_keep_nothing(tmp_path: Path) -> None:
    """64 RESERVEs naming made-up peers used to fill every slot for an hour. Each is refused,
    nothing is kept, and a genuine peer still gets its slot."""

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            mallory = await Peer(tmp_path / "mallory", "Mallory").start()
            started.append(mallory)

            async def attack(node: KithNode) -> list[StatusCode]:
                assert relay.ready is not None
                assert await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)
                return [await _hop(node, relay.peer_id, _reserve_as(_random_peer_id()))
                        for _ in range(relay_server.LIMITS.reservations)]

            answers = await mallory.client.call(attack)
            assert set(answers) == {StatusCode.PERMISSION_DENIED}
            assert await relay.client.call(_slots) == set()

            bob = await _reserving(tmp_path, "Bob", relay).start()
            started.append(bob)
            await bob.wait_event("relay_reserved", timeout=15, relay=relay.peer_id)
            assert await relay.client.call(_slots) == {bob.peer_id}
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_strangers_leave_slots_for_contacts_and_one_address_gets_few(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_server, "LIMITS", dataclasses.replace(
        relay_server.LIMITS, stranger_reservations=1, reservations_per_ip=2))

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            peers = {}
            for name in ("Ada", "Bob", "Cy", "Dan"):
                peers[name] = await Peer(tmp_path / name.lower(), name).start()
                started.append(peers[name])
            for name in ("Cy", "Dan"):
                await relay.client.add_contact(peers[name].invite)

            async def reserve(node: KithNode) -> StatusCode:
                assert relay.ready is not None
                assert await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)
                return await _hop(node, relay.peer_id, HopMessage(type=HopMessage.RESERVE))

            answers = {name: await peer.client.call(reserve) for name, peer in peers.items()}
            assert answers == {
                "Ada": StatusCode.OK,                       # the one stranger slot
                "Bob": StatusCode.RESOURCE_LIMIT_EXCEEDED,  # no slot left for strangers
                "Cy": StatusCode.OK,                        # a contact finds one
                "Dan": StatusCode.RESOURCE_LIMIT_EXCEEDED,  # 127.0.0.1 already holds two
            }
            assert await relay.client.call(_slots) == {peers["Ada"].peer_id, peers["Cy"].peer_id}
            assert await peers["Ada"].client.call(reserve) == StatusCode.OK  # a renewal
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_a_slot_lives_with_its_connection(tmp_path: Path) -> None:
    """A reservation is the authenticated peer's (the request may omit ``peer``) and ends when
    that peer's connection does: a peer that left holds nothing."""

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            ada = await Peer(tmp_path / "ada", "Ada").start()
            started.append(ada)

            async def reserve(node: KithNode) -> StatusCode:
                assert relay.ready is not None
                assert await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)
                return await _hop(node, relay.peer_id, HopMessage(type=HopMessage.RESERVE))

            assert await ada.client.call(reserve) == StatusCode.OK
            assert await relay.client.call(_slots) == {ada.peer_id}
            await ada.stop()
            started.remove(ada)

            async def slots_once_disconnected(node: KithNode) -> set[str]:
                with trio.fail_after(10):
                    while node.is_connected(ada.peer_id):
                        await trio.sleep(0.01)
                return await _slots(node)

            assert await relay.client.call(slots_once_disconnected) == set()
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


async def _connect_burst(node: KithNode, relay: Peer, target: str, count: int
                         ) -> list[StatusCode]:
    """``count`` CONNECTs to ``target`` through ``relay`` at once; their answers."""
    assert relay.ready is not None
    assert await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)
    streams = []
    answers: list[StatusCode] = []
    try:
        with trio.fail_after(30):
            for _ in range(count):
                streams.append(await node.host.new_stream(ID.from_base58(relay.peer_id),
                                                          [PROTOCOL_ID]))

            async def one(stream: object) -> None:
                await write_delimited_msg(stream, _connect_to(target))
                answers.append(StatusCode((await read_delimited_msg(stream, HopMessage)).status))

            async with trio.open_nursery() as nursery:
                for stream in streams:
                    nursery.start_soon(one, stream)
    finally:
        for stream in streams:
            await stream.reset()
    return answers


def test_concurrent_circuits_stop_at_the_per_peer_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONNECTs sent at once to one peer used to pass the per-peer cap (each was counted only
    once the destination had answered). A stranger may hold 8 HOP streams at all (the
    resource manager's limit, docs/networking.md), so here the relay's own cap is below it:
    the relay's count is what is tested."""
    hop_streams = DEFAULT_LIMITS.protocol_limit(PROTOCOL_ID, PeerClass.STRANGER)[1]
    cap = hop_streams - 2
    monkeypatch.setattr(relay_server, "LIMITS",
                        dataclasses.replace(relay_server.LIMITS, circuits_per_peer=cap))

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            bob = await _reserving(tmp_path, "Bob", relay).start()
            started.append(bob)
            await bob.wait_event("relay_reserved", timeout=15)
            mallory = await Peer(tmp_path / "mallory", "Mallory").start()
            started.append(mallory)

            answers = await mallory.client.call(
                lambda node: _connect_burst(node, relay, bob.peer_id, hop_streams))
            assert answers.count(StatusCode.OK) == cap, answers
            assert answers.count(StatusCode.RESOURCE_LIMIT_EXCEEDED) == 2, answers
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_concurrent_circuits_stop_at_the_total_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_server, "LIMITS",
                        dataclasses.replace(relay_server.LIMITS, circuits=5))

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            bob = await _reserving(tmp_path, "Bob", relay).start()
            started.append(bob)
            await bob.wait_event("relay_reserved", timeout=15)
            mallory = await Peer(tmp_path / "mallory", "Mallory").start()
            started.append(mallory)

            answers = await mallory.client.call(
                lambda node: _connect_burst(node, relay, bob.peer_id, 8))
            assert answers.count(StatusCode.OK) == 5, answers

            async def circuits(node: KithNode) -> int:
                return node.relay.server.circuit_count()

            assert await relay.client.call(circuits) <= 5
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_circuits_to_a_peer_without_a_slot_and_over_a_circuit_are_refused(
    tmp_path: Path
) -> None:
    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            ada = await Peer(tmp_path / "ada", "Ada").start()
            bob = await Peer(tmp_path / "bob", "Bob").start()
            started += [ada, bob]

            async def connect(node: KithNode) -> StatusCode:
                assert relay.ready is not None
                assert await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)
                return await _hop(node, relay.peer_id, _connect_to(bob.peer_id))

            # Bob is connected to the relay but holds no slot there.
            async def bob_connects(node: KithNode) -> bool:
                assert relay.ready is not None
                return await connect_at(node.host, relay.peer_id, [relay.ready.addrs[0]], 10)

            assert await bob.client.call(bob_connects)
            assert await ada.client.call(connect) == StatusCode.NO_RESERVATION

            async def malformed(node: KithNode) -> StatusCode:
                return await _hop(node, relay.peer_id, HopMessage(
                    type=HopMessage.CONNECT, peer=CircuitPeer(id=b"\x00not a peer id")))

            assert await ada.client.call(malformed) == StatusCode.MALFORMED_MESSAGE
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_contacts_only_relay_refuses_strangers_slots(tmp_path: Path) -> None:
    async def scenario() -> None:
        relay = await _start_relay(tmp_path, relay_contacts_only=True)
        started = [relay]
        try:
            ada = _reserving(tmp_path, "Ada", relay)
            bob = _reserving(tmp_path, "Bob", relay)
            started += [await ada.start(), await bob.start()]
            await relay.client.add_contact(ada.invite)
            await ada.wait_event("relay_reserved", timeout=20, relay=relay.peer_id)

            async def bob_reserves(node: KithNode) -> StatusCode:
                return await _hop(node, relay.peer_id, HopMessage(type=HopMessage.RESERVE))

            assert await bob.client.call(bob_reserves) == StatusCode.PERMISSION_DENIED
            assert await relay.client.call(_slots) == {ada.peer_id}

            # A stranger may still reach the relay's contact through it (she chose it).
            circuit = (f"{strip_p2p(relay.ready.addrs[0])}/p2p/{relay.peer_id}"  # type: ignore[union-attr]
                       f"/p2p-circuit")
            await bob.client.add_contact(ContactInvite(ada.peer_id, "Ada", (circuit,)).to_link())
            await bob.wait_event("contact_online", peer_id=ada.peer_id, timeout=20)
            sent = await bob.client.send(ada.peer_id, "through your friend's relay")
            await bob.wait_event("delivered", id=sent.id, timeout=20)

            # Removing Ada from the relay's contacts ends her slot.
            await relay.client.remove_contact(ada.peer_id)
            assert await relay.client.call(_slots) == set()
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_a_peer_over_its_data_budget_is_cut_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each peer may move ``peer_budget`` bytes through the relay per window (both ends of a
    circuit pay): past it, its circuits are cut and new ones refused until the window ends.
    The relay's contacts have no budget (strangers cannot use it up to cut them off)."""
    budget = 3 * 1024 * 1024
    monkeypatch.setattr(relay_server, "LIMITS",
                        dataclasses.replace(relay_server.LIMITS, peer_budget=budget))

    async def no_hole_punching(self: HolePunching) -> None:
        """Ada and Bob share 127.0.0.1: DCUtR would move them to a direct connection."""

    monkeypatch.setattr(HolePunching, "start", no_hole_punching)

    async def scenario() -> None:
        relay = await _start_relay(tmp_path)
        started = [relay]
        try:
            bob = _reserving(tmp_path, "Bob", relay)
            ada = Peer(tmp_path / "ada", "Ada")
            started += [await bob.start(), await ada.start()]
            (reserved,) = await bob.wait_event("relay_reserved", timeout=15)
            circuit = next(a for a in reserved.addrs if "127.0.0.1" in a)  # type: ignore[attr-defined]
            await ada.client.add_contact(
                ContactInvite(bob.peer_id, "Bob", (strip_p2p(circuit),)).to_link())
            # Bob is told no address of Ada's: their only path is the circuit.
            await bob.client.add_contact(ContactInvite(ada.peer_id, "Ada").to_link())
            await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=20)

            source = tmp_path / "big.bin"
            source.write_bytes(os.urandom(2 * budget))
            offer = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=offer.transfer)
            await bob.client.accept_file(offer.transfer, str(tmp_path / "inbox"))
            await ada.wait_event("contact_offline", peer_id=bob.peer_id, timeout=30)

            async def connect(node: KithNode) -> StatusCode:
                return await _hop(node, relay.peer_id, _connect_to(bob.peer_id))

            assert await ada.client.call(connect) == StatusCode.RESOURCE_LIMIT_EXCEEDED
            (got,) = [t for t in await bob.client.transfers() if t.transfer == offer.transfer]
            assert got.state != "complete" and got.bytes <= budget

            # The relay's contacts have no data budget: once both are, the circuit opens.
            await relay.client.add_contact(ContactInvite(bob.peer_id, "Bob").to_link())
            assert await ada.client.call(connect) == StatusCode.RESOURCE_LIMIT_EXCEEDED
            await relay.client.add_contact(ContactInvite(ada.peer_id, "Ada").to_link())
            assert await ada.client.call(connect) == StatusCode.OK
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_token_buckets_share_a_rate_and_allow_a_burst() -> None:
    bucket = relay_server.TokenBucket(rate=1000, burst=500, now=0.0)
    assert bucket.charge(500, now=0.0) == 0.0       # the burst is there at once
    assert bucket.charge(1000, now=0.0) == 1.0      # then a debt, waited off at the rate
    assert bucket.charge(500, now=1.0) == 0.5       # a second user queues behind the first
    assert bucket.level(now=10.0) == 500            # idle time refills up to the burst only
    assert bucket.charge(100, now=10.0) == 0.0


def test_a_data_budget_is_per_window() -> None:
    limits = dataclasses.replace(relay_server.LIMITS, peer_budget=100, budget_window=60)
    budget = relay_server._Budget()
    assert not budget.spent(limits, now=1000.0)     # the first use starts the window
    budget.used = 100
    assert budget.spent(limits, now=1059.0)
    assert not budget.spent(limits, now=1060.0) and budget.used == 0  # a new window


def test_stop_and_hop_wire_format_kith_relies_on() -> None:
    """Kith's relay answers HOP itself with py-libp2p 0.8.1's protobuf classes, and leaves STOP
    and dialing to py-libp2p. If an upgrade moves any of these, this fails first."""
    fields = {f.name: f.number for f in HopMessage.DESCRIPTOR.fields}
    assert {"type": 1, "peer": 2, "reservation": 3, "limit": 4, "status": 5}.items() <= \
        fields.items()
    assert {f.name: f.number for f in StopMessage.DESCRIPTOR.fields} == {
        "type": 1, "peer": 2, "limit": 3, "status": 4}
    assert (HopMessage.RESERVE, HopMessage.CONNECT, HopMessage.STATUS) == (0, 1, 2)
    assert (StopMessage.CONNECT, StopMessage.STATUS) == (0, 1)
    assert (StatusCode.OK, StatusCode.RESOURCE_LIMIT_EXCEEDED, StatusCode.PERMISSION_DENIED,
            StatusCode.CONNECTION_FAILED, StatusCode.NO_RESERVATION,
            StatusCode.MALFORMED_MESSAGE) == (100, 201, 202, 203, 204, 400)
    assert PROTOCOL_ID == "/libp2p/circuit/relay/0.2.0/hop"
    assert STOP_PROTOCOL_ID == "/libp2p/circuit/relay/0.2.0/stop"


def test_kith_node_relay_contacts_only_flag(tmp_path: Path) -> None:
    """``kith node --serve-relay --relay-contacts-only`` refuses a stranger's reservation (the
    stranger logs why), and the flag alone is a usage error."""
    relay = NodeProcess(tmp_path / "relay", "--serve-relay", "--relay-contacts-only",
                        name="Relay")
    nodes = [relay]
    try:
        relay_addr = relay.expect("ready")["addrs"][0]
        stranger = NodeProcess(tmp_path / "stranger", "--relay", relay_addr, name="Stranger")
        nodes.append(stranger)
        stranger.expect("ready")
        deadline = time.monotonic() + 20
        while not any("relay refused: PERMISSION_DENIED" in line for line in stranger.stderr):
            assert time.monotonic() < deadline, "".join(stranger.stderr[-20:])
            time.sleep(0.05)
        assert not any(e.get("event") == "relay_reserved" for e in stranger.seen)
    finally:
        for node in nodes:
            node.quit()
    alone = subprocess.run(
        [sys.executable, "-m", "app", "node", "--profile", str(tmp_path / "alone"),
         "--relay-contacts-only"], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 2 and "needs --serve-relay" in alone.stderr
