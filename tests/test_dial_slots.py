"""No dial and no handshake, however it ends, leaves anything behind.

py-libp2p 0.8.1's own resource manager lost a connection slot for every handshake cancelled
while the other side was silent: 1,000 and the node could neither dial nor accept until it
restarted. Kith switches that manager off (``ResourceManager.install``); what it counts is its
own resource manager's handshakes, inbound connections and streams, and
``ResourceManager.account`` sets them against the sockets, connections and streams that exist.

Each path Kith dials or accepts by is made to give up half-way many times: ``connect_at``, a
contact's redials, DCUtR's direct dial (step 0) and its hole-punch dials, dials as the Noise
responder, dials through a relay, and inbound handshakes that time out or are cut. The silent
side is a port that completes TCP handshakes and never says a word (``hostile.SilentPort``,
which also tells whether the dialer closed every socket it opened), or a relay circuit whose
far end never speaks. Afterwards nothing is left open, the account adds up, and new
connections both ways work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from multiaddr import Multiaddr

import app.node.relay_server as relay_server
from app.core.config import NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.host import connect_at
from app.node.node import KithNode
from app.node.resources import DEFAULT_LIMITS, Account
from tests.attackers import RawHost, SilentPort, multistream_hello, record_dials, tcp_port
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer, peers

SHORT = 0.3  # seconds a dial of a silent port is given
HOP = "/libp2p/circuit/relay/0.2.0/hop"


async def _account(peer: Peer) -> Account:
    async def ask(node: KithNode) -> Account:
        return node.resources.account()

    return await peer.client.call(ask)


async def _settled(peer: Peer, timeout: float = 20) -> Account:
    """``peer``'s account once no handshake is in progress and everything adds up, which must
    happen within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    account = await _account(peer)
    while account.handshakes or account.mismatches():
        assert loop.time() < deadline, f"{peer.name}: {account}"
        await asyncio.sleep(0.05)
        account = await _account(peer)
    return account


async def _all_closed(*ports: SilentPort, timeout: float = 20) -> None:
    """Every connection made to ``ports`` was closed by the dialer (and some were made)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(port.still_open() for port in ports):
        assert loop.time() < deadline, [port.still_open() for port in ports]
        await asyncio.sleep(0.05)
    assert sum(port.dialled for port in ports), "nothing was dialled: the test proves nothing"


async def _manager_is_off(node: KithNode) -> bool:
    swarm: Any = node.host.get_network()
    return swarm._resource_manager is None and swarm._stream_semaphore is None


async def _connections_still_work(peer: Peer, tmp: Path) -> None:
    """``peer`` dials a newcomer and another newcomer dials ``peer``: both connect, the
    inbound one is counted and the account adds up, and py-libp2p's own resource manager
    (which leaked) is still off."""
    dee, eli = Peer(tmp / "dee", "Dee"), Peer(tmp / "eli", "Eli")
    await asyncio.gather(dee.start(), eli.start())
    try:
        assert dee.ready is not None and peer.ready is not None
        dee_addrs, peer_addrs = list(dee.ready.addrs), list(peer.ready.addrs)
        assert await peer.client.call(lambda node: connect_at(node.host, dee.peer_id,
                                                               dee_addrs, 10))
        assert await eli.client.call(lambda node: connect_at(node.host, peer.peer_id,
                                                              peer_addrs, 10))
        account = await _settled(peer)
        assert account.connections.get("stranger", 0) >= 1, account  # Eli's, at least
        assert await peer.client.call(_manager_is_off)
    finally:
        await asyncio.gather(dee.stop(), eli.stop(), return_exceptions=True)


def test_py_libp2p_s_own_resource_manager_stays_off(tmp_path: Path) -> None:
    """If an upgrade of py-libp2p brings its manager back (with the leak), this fails."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            assert await ada.client.call(_manager_is_off)

    asyncio.run(scenario())


def test_connect_at_a_silent_address_leaves_nothing_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        with SilentPort() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                async def dial(node: KithNode) -> bool:
                    return any([await connect_at(node.host, bob.peer_id, [silent.addr], SHORT)
                                for _ in range(10)])

                assert not await ada.client.call(dial)
                await _all_closed(silent)
                await _settled(ada)
                await _connections_still_work(ada, tmp_path)

    asyncio.run(scenario())


def test_redials_of_a_contact_at_a_silent_address_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow leak without an attacker: a contact's stored address accepts TCP and stays
    silent (another program took the port, a half-dead NAT mapping); every redial used to
    lose a slot."""
    import app.node.contacts

    monkeypatch.setattr(app.node.contacts, "DIAL_TIMEOUT", SHORT)

    async def scenario() -> None:
        with SilentPort() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                await ada.client.add_contact(
                    ContactInvite(bob.peer_id, "Bob", (silent.addr,)).to_link())

                async def dials(node: KithNode) -> int:
                    return node.contacts.redialer.dials

                while await ada.client.call(dials) < 3:
                    await asyncio.sleep(0.05)
                await ada.client.remove_contact(bob.peer_id)  # no more redials
                await _all_closed(silent)
                await _settled(ada)
                await _connections_still_work(ada, tmp_path)

    asyncio.run(scenario())


def test_responder_dials_given_up_half_way_leave_nothing_behind(tmp_path: Path) -> None:
    """DCUtR's hole-punch initiator dials as the Noise responder
    (``dial_addr_as_responder``); the round that ends cancels every dial still in its
    handshake."""

    async def scenario() -> None:
        with SilentPort() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                async def dial(node: KithNode) -> None:
                    network = node.host.get_network()
                    for _ in range(10):
                        with trio.move_on_after(SHORT):
                            await network.dial_addr_as_responder(
                                Multiaddr(silent.addr), ID.from_base58(bob.peer_id))

                await ada.client.call(dial)
                await _all_closed(silent)
                await _settled(ada)
                await _connections_still_work(ada, tmp_path)

    asyncio.run(scenario())


# -- DCUtR, in a namespace with loopback only -----------------------------------------------


async def _relayed_contacts(
    tmp: Path, started: list[Peer], bob_extra: list[str], mutual: bool
) -> tuple[Peer, Peer, Peer]:
    """R serving as a relay, Bob holding a slot on it and listing ``bob_extra`` among his own
    addresses (identify and CONNECT), Ada reaching him through R. Bob is Ada's contact, and
    with ``mutual`` Ada is his (so either may start DCUtR); neither has a direct address of
    the other."""
    relay = Peer(tmp / "relay", "Relay", NodeConfig(listen=(LOOPBACK,), serve_relay=True))
    started.append(await relay.start())
    assert relay.ready is not None
    relay_addr = relay.ready.addrs[0]
    bob = Peer(tmp / "bob", "Bob", NodeConfig(listen=(LOOPBACK,), relays=(relay_addr,)))
    started.append(await bob.start())
    ada = Peer(tmp / "ada", "Ada")
    started.append(await ada.start())

    async def advertise_extra(node: KithNode) -> None:
        own = node.host.get_addrs
        extra = [Multiaddr(f"{a}/p2p/{node.identity.peer_id}") for a in bob_extra]
        setattr(node.host, "get_addrs", lambda: [*own(), *extra])  # noqa: B010

    await bob.client.call(advertise_extra)
    (reserved,) = await bob.wait_event("relay_reserved", timeout=20)
    circuits = tuple(strip_p2p(a) for a in reserved.addrs)  # type: ignore[attr-defined]
    if mutual:
        await bob.client.add_contact(ContactInvite(ada.peer_id, "Ada", ()).to_link())
    await ada.client.add_contact(ContactInvite(bob.peer_id, "Bob", circuits).to_link())
    await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=20)
    return relay, bob, ada


def _dcutr_dials_leave_nothing_behind(tmp: str, step_zero: bool) -> None:
    if not step_zero:  # as tests/test_netns_dcutr.py: only the CONNECT/SYNC path is left
        from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

        async def skip(self: object, peer_id: object) -> bool:
            return False

        DCUtRProtocol._try_unilateral_upgrade = skip  # type: ignore[method-assign]

    async def scenario() -> None:
        started: list[Peer] = []
        with contextlib.ExitStack() as stack:
            silent = [stack.enter_context(SilentPort()) for _ in range(3)]
            extra = [port.addr for port in silent]
            try:
                # Bob, no contact of hers, never starts DCUtR: Ada's step 0 does the dialling.
                _relay, bob, ada = await _relayed_contacts(
                    Path(tmp), started, extra, mutual=not step_zero)

                async def shorten(node: KithNode) -> list[str]:
                    node._hole_punch.protocol.dial_timeout = 1  # type: ignore[union-attr]
                    return record_dials(node)

                dialled = await ada.client.call(shorten)
                await ada.wait_event("connection_upgraded", peer_id=bob.peer_id, timeout=30)
                assert {strip_p2p(d) for d in dialled} & set(extra), dialled
                await _all_closed(*silent)
                for peer in (ada, bob):
                    await _settled(peer)
                await _connections_still_work(ada, Path(tmp))
            finally:
                await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["step_zero", "hole_punch"])
def test_dcutr_dials_to_silent_addresses_leave_nothing_behind(tmp_path: Path, path: str) -> None:
    in_loopback_netns(_dcutr_dials_leave_nothing_behind, str(tmp_path), path == "step_zero")


# -- circuits -------------------------------------------------------------------------------


async def _silent_stop(node: KithNode) -> None:
    """From now on ``node`` accepts every circuit that reaches it and never says a word on
    it: a dial through the relay hangs in its Noise handshake until the dialer gives up."""
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import StopMessage
    from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID
    from libp2p.relay.circuit_v2.protocol_buffer import StatusCode, to_proto_status
    from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

    async def answer(stream: Any) -> None:
        await read_delimited_msg(stream, StopMessage)
        ok = StopMessage(type=StopMessage.STATUS, status=to_proto_status(StatusCode.OK))
        await write_delimited_msg(stream, ok)
        await trio.sleep_forever()

    node.host.set_stream_handler(STOP_PROTOCOL_ID, answer)


async def _hop_streams(node: KithNode) -> int:
    """Streams of ours open on the relay protocol (each a circuit, or a dial through one)."""
    network = node.host.get_network()
    return sum(1 for conns in list(network.connections.values())
               for conn in (conns if isinstance(conns, list) else [conns])
               for stream in conn.get_streams() if str(stream.get_protocol()) == HOP)


def test_circuit_dials_given_up_half_way_leave_no_circuit_at_the_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dial through a relay given up during its handshake (the far end is silent) left its
    stream to the relay open, and the relay kept the circuit: after as many as its per-peer
    cap (16), nobody could be reached through that relay. Here the cap is 3 and Ada gives up
    on 5 dials, then reaches Bob through the same relay."""
    monkeypatch.setattr(relay_server, "LIMITS",
                        dataclasses.replace(relay_server.LIMITS, circuits_per_peer=3))

    async def scenario() -> None:
        started: list[Peer] = []
        try:
            relay = Peer(tmp_path / "relay", "Relay",
                         NodeConfig(listen=(LOOPBACK,), serve_relay=True))
            started.append(await relay.start())
            assert relay.ready is not None
            holders = [Peer(tmp_path / name.lower(), name,
                            NodeConfig(listen=(LOOPBACK,), relays=(relay.ready.addrs[0],)))
                       for name in ("Eve", "Bob")]
            for holder in holders:
                started.append(await holder.start())
            eve, bob = holders
            (eve_slot,) = await eve.wait_event("relay_reserved", timeout=20)
            (bob_slot,) = await bob.wait_event("relay_reserved", timeout=20)
            await eve.client.call(_silent_stop)
            ada = Peer(tmp_path / "ada", "Ada")
            started.append(await ada.start())

            eve_circuit = eve_slot.addrs[0]  # type: ignore[attr-defined]
            bob_circuit = bob_slot.addrs[0]  # type: ignore[attr-defined]

            async def give_up(node: KithNode) -> bool:
                return any([await connect_at(node.host, eve.peer_id, [eve_circuit], SHORT * 2)
                            for _ in range(5)])

            assert not await ada.client.call(give_up)

            async def circuits(node: KithNode) -> int:
                return node.relay.server.circuit_count()

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while await relay.client.call(circuits) or await ada.client.call(_hop_streams):
                assert loop.time() < deadline, "circuits left at the relay"
                await asyncio.sleep(0.05)
            assert await ada.client.call(
                lambda node: connect_at(node.host, bob.peer_id, [bob_circuit], 10))
            for peer in (ada, relay):
                await _settled(peer)
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


# -- inbound handshakes ---------------------------------------------------------------------


def _cut_off(port: int, source: str, send: bytes, reset: bool) -> None:
    """A TCP connection from ``source`` that sends ``send`` and goes away (with a reset)."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    if send:
        sock.sendall(send)
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_inbound_handshakes_given_up_half_way_leave_nothing_behind(tmp_path: Path) -> None:
    """Handshakes that time out, that the peer closes or resets half-way, and real dials
    cancelled at every stage (TCP, Noise, Yamux) give back their handshake slot and socket."""
    limits = dataclasses.replace(DEFAULT_LIMITS, handshake_timeout=0.5)

    async def scenario() -> None:
        ada = await Peer(tmp_path / "ada", "Ada", limits=limits).start()
        try:
            port = tcp_port(ada.invite)
            idle = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
                    for _ in range(6)]  # time out at Ada
            hello = multistream_hello("/noise")
            for i in range(6):
                _cut_off(port, "127.0.0.3", hello[: 5 + i], reset=False)
                _cut_off(port, "127.0.0.4", hello[: 5 + i], reset=True)
            target = Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")

            async def cancelled_dials(host: Any) -> None:
                for i in range(30):
                    with trio.move_on_after(0.002 * i):
                        await host.get_network().dial_addr(target, ID.from_base58(ada.peer_id))
                    await host.disconnect(ID.from_base58(ada.peer_id))

            async with RawHost() as eve:
                await eve.call(cancelled_dials)
            account = await _settled(ada)
            assert account.connections == {}, account
            for sock in idle:
                sock.close()
            await _connections_still_work(ada, tmp_path)
        finally:
            await ada.stop()

    asyncio.run(scenario())


def test_handshakes_in_progress_are_counted_as_such(tmp_path: Path) -> None:
    """While a handshake lasts, its count and its socket are both there; then both go."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            port = tcp_port(ada.invite)
            idle = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.5", 0))
                    for _ in range(3)]
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                account = await _account(ada)
                while account.handshakes.get("127.0.0.5") != 3:
                    assert loop.time() < deadline, account
                    await asyncio.sleep(0.02)
                    account = await _account(ada)
                assert account.handshake_sockets == account.handshakes, account
                assert not account.mismatches(), account
            finally:
                for sock in idle:
                    sock.close()
            assert (await _settled(ada)).handshake_sockets == {}

    asyncio.run(scenario())
