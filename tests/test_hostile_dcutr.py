"""DCUtR is no dial reflector: what a relayed peer claims makes us dial little, and only where
dialling can do no harm.

Eve reaches Ada through a relay and lists addresses she chose, in identify and her signed peer
record (DCUtR's first step dials those) and in her CONNECT (the hole punch dials those): cloud
metadata, link-local, multicast, broadcast, ``0.0.0.0``, DNS names, private networks Ada is not
on, third parties.
Everything runs in a network namespace with loopback only, so no dial can leave the machine;
``hostile.record_dials`` writes down every address Ada's transports are asked to dial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import trio

from app.core.config import NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.addr_policy import refusal, socket_key
from app.node.hole_punch import (
    _STEP_ADDRS,
    BUDGET_WINDOW,
    MAX_ADDRS_PER_PEER,
    MAX_DIALS_PER_MINUTE,
    MAX_SESSIONS_PER_PEER,
    HolePunchBudget,
)
from app.node.node import KithNode
from app.node.profile_exchange import encode_profile
from tests.attackers import addr_bytes, advertise, record_dials, silent_listener
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer

BANNED = [
    "/ip4/169.254.169.254/tcp/80",  # cloud metadata (link-local)
    "/ip4/0.0.0.0/tcp/22",
    "/ip4/0.1.2.3/tcp/22",
    "/ip4/224.0.0.1/tcp/80",
    "/ip4/255.255.255.255/tcp/80",
    "/ip4/240.0.0.9/tcp/80",
    "/dns4/metadata.google.internal/tcp/80",
    "/dns/kith.example/tcp/4001",
    "/ip4/10.200.0.1/tcp/22",  # a private network this computer is not on
    "/ip4/192.168.77.1/tcp/80",
    "/ip4/172.20.0.1/tcp/80",
    "/ip6/fe80::1/tcp/80",
    "/ip6/ff02::1/tcp/80",
    "/ip6/::/tcp/80",
    "/ip6/::ffff:127.0.0.1/tcp/80",
    "/ip4/127.0.0.1/tcp/0",
]
T = TypeVar("T")
THIRD_PARTIES = [f"/ip4/203.0.113.{i % 250 + 1}/tcp/{1000 + i}" for i in range(900)]


async def _relay_and_ada(tmp: Path, started: list[Peer]) -> tuple[Peer, str]:
    """R serving as a relay and Ada holding a slot on it: (Ada, her circuit address)."""
    relay = Peer(tmp / "relay", "Relay", NodeConfig(listen=(LOOPBACK,), serve_relay=True))
    started.append(await relay.start())
    assert relay.ready is not None
    ada = Peer(tmp / "ada", "Ada", NodeConfig(listen=(LOOPBACK,), relays=(relay.ready.addrs[0],)))
    started.append(await ada.start())
    (reserved,) = await ada.wait_event("relay_reserved", timeout=20)
    return ada, reserved.addrs[0]  # type: ignore[attr-defined]


async def _connect_through(peer: Peer, target: str, circuit: str) -> None:
    async def dial(node: KithNode) -> bool:
        from app.node.host import connect_at

        return await connect_at(node.host, target, [circuit], 10)

    assert await peer.client.call(dial)


async def _hostile_connect(eve: Peer, ada: Peer, claims: Sequence[str]) -> bool:
    """Eve opens ``/libp2p/dcutr`` to Ada and sends a CONNECT naming ``claims``, then SYNC;
    True when Ada answered with a CONNECT of her own (False: she reset the stream). Returns
    once Ada has finished with the exchange (her end closes)."""

    async def exchange(node: KithNode) -> bool:
        from libp2p.peer.id import ID
        from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID, read_dcutr_msg
        from libp2p.relay.circuit_v2.pb.dcutr_pb2 import HolePunch
        from libp2p.relay.circuit_v2.utils import write_delimited_msg

        connect = HolePunch(type=HolePunch.CONNECT, ObsAddrs=addr_bytes(claims))
        try:
            stream = await node.host.new_stream(ID.from_base58(ada.peer_id), [PROTOCOL_ID])
            await write_delimited_msg(stream, connect)
            await read_dcutr_msg(stream, HolePunch)
            await write_delimited_msg(stream, HolePunch(type=HolePunch.SYNC))
        except Exception:  # noqa: BLE001 - a reset is Ada's refusal
            return False
        with trio.fail_after(60):  # Ada closes her end when her hole punch is over
            try:
                while await stream.read(1024):
                    pass
            except Exception:  # noqa: BLE001 - EOF or reset: over either way
                pass
        return True

    return await eve.client.call(exchange)


def _initiate(peer_id: str):
    async def initiate(node: KithNode) -> bool:
        from libp2p.peer.id import ID

        protocol = node._hole_punch.protocol  # type: ignore[union-attr]
        return await protocol.initiate_hole_punch(ID.from_base58(peer_id))

    return initiate


def _stranger_makes_us_dial_nothing(tmp: str) -> None:
    async def scenario() -> None:
        started: list[Peer] = []
        try:
            ada, circuit = await _relay_and_ada(Path(tmp), started)
            silent = silent_listener()
            claims = [*BANNED, f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}", *THIRD_PARTIES]
            eve = Peer(Path(tmp) / "eve", "Eve")
            started.append(await eve.start())
            await eve.client.call(lambda node: _lie(node, claims))
            dialled = await ada.client.call(_record)
            await _connect_through(eve, ada.peer_id, circuit)
            await _identified(ada, eve.peer_id)

            # DCUtR's first step and its CONNECT, as Ada's auto-drive loop starts them.
            await ada.client.call(_initiate(eve.peer_id))
            # Eve starts an exchange herself with 300 addresses (a CONNECT holds 4 KiB).
            assert not await _hostile_connect(eve, ada, claims[:300]), "Ada answered Eve"

            claimed = {socket_key(c) or c for c in claims}
            reflected = [d for d in dialled if (socket_key(d) or strip_p2p(d)) in claimed]
            assert reflected == [], f"{len(reflected)} dials on a stranger's word: {reflected[:5]}"
            silent.close()
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


async def _connections(peer: Peer, other: str) -> list[object]:
    return await peer.client.call(
        lambda node: _async(list(node.connections.connections_to(other))))


async def _gone(peer: Peer, other: str, old: list[object]) -> None:
    """Wait until none of ``old``, ``peer``'s connections to ``other``, is open any more (a
    new one may already be: a contact is dialled again as soon as it is lost)."""
    deadline = asyncio.get_running_loop().time() + 20
    while any(any(c is o for o in old) for c in await _connections(peer, other)):
        assert asyncio.get_running_loop().time() < deadline, "the connection never closed"
        await asyncio.sleep(0.05)


async def _async(value: T) -> T:
    return value


async def _identified(peer: Peer, other: str, claims: Sequence[str] = ()) -> None:
    """Wait until ``peer`` has run identify with ``other``: its peerstore has the addresses,
    among them one of ``claims`` if given (the relay's circuit address may come first)."""
    claimed = {socket_key(c) or c for c in claims}

    async def addrs(node: KithNode) -> int:
        from libp2p.peer.id import ID

        try:
            known = [str(a) for a in node.host.get_peerstore().addrs(ID.from_base58(other))]
        except Exception:  # noqa: BLE001 - not known yet
            return 0
        if claimed and not any((socket_key(a) or strip_p2p(a)) in claimed for a in known):
            return 0
        return len(known)

    deadline = asyncio.get_running_loop().time() + 20
    while await peer.client.call(addrs) < 2:
        assert asyncio.get_running_loop().time() < deadline, "identify never ran"
        await asyncio.sleep(0.05)


async def _lie(node: KithNode, claims: Sequence[str]) -> None:
    advertise(node, claims)


async def _record(node: KithNode) -> list[str]:
    node._hole_punch.protocol.dial_timeout = 1  # type: ignore[union-attr]
    return record_dials(node)


async def _record_dcutr(node: KithNode) -> list[str]:
    node._hole_punch.protocol.dial_timeout = 1  # type: ignore[union-attr]
    return record_dials(node, when=lambda: _STEP_ADDRS.get() is not None)


def test_a_relayed_stranger_makes_us_dial_nothing(tmp_path: Path) -> None:
    """Before: 1,000 dials from identify and up to 300 more per CONNECT round."""
    in_loopback_netns(_stranger_makes_us_dial_nothing, str(tmp_path))


def _contact_claims_are_bounded(tmp: str) -> None:
    async def scenario() -> None:
        started: list[Peer] = []
        try:
            ada, circuit = await _relay_and_ada(Path(tmp), started)
            silents = [silent_listener() for _ in range(20)]
            loopback = [f"/ip4/127.0.0.1/tcp/{s.getsockname()[1]}" for s in silents]
            # Identify keeps a peer's first 16 addresses and replaces what its signed record
            # (carried by pubsub's first message) brought, the newest 32 of 236: whichever comes
            # last, Ada knows some that may be dialled and some that may not.
            claims = [*BANNED[:8], *loopback[:8], *BANNED[8:], *loopback[8:], *THIRD_PARTIES[:200]]
            dialable = [*loopback, *THIRD_PARTIES[:200]]
            eve = Peer(Path(tmp) / "eve", "Eve")
            started.append(await eve.start())

            async def hostile(node: KithNode) -> None:
                advertise(node, claims)
                from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID

                node.host.remove_stream_handler(PROTOCOL_ID)  # she never answers a CONNECT
                assert node._hole_punch is not None
                node._hole_punch.protocol._allowed = lambda peer: False  # nor starts one
                # and her profile names no address: Ada reaches her only through the relay
                node.contacts.profiles._own_profile = lambda: encode_profile("Eve", [])

            await eve.client.call(hostile)
            # Only DCUtR's dials: as a contact, Eve may also be dialled at the first address
            # identify gave (py-libp2p opening a stream to a peer it just lost).
            dialled = await ada.client.call(_record_dcutr)
            # Contacts both ways; Ada knows Eve only by an invite without addresses.
            await eve.client.add_contact(ContactInvite(ada.peer_id, "Ada", ()).to_link())
            await ada.client.add_contact(ContactInvite(eve.peer_id, "Eve", ()).to_link())
            for _ in range(MAX_SESSIONS_PER_PEER + 2):  # reconnecting does not reset the budget
                await _connect_through(eve, ada.peer_id, circuit)
                await _identified(ada, eve.peer_id, dialable)
                await ada.client.call(_initiate(eve.peer_id))
                old = await _connections(eve, ada.peer_id)
                await ada.client.call(lambda node: node.disconnect(eve.peer_id))
                await _gone(eve, ada.peer_id, old)  # the next round is a new connection
            # Eve's own CONNECT: only her addresses that may be dialled, within what is left.
            await _connect_through(eve, ada.peer_id, circuit)
            await _hostile_connect(eve, ada, claims[:300])

            targets = [socket_key(d) or strip_p2p(d) for d in dialled]
            claimed = {socket_key(c) or c for c in claims}
            at_eve = [t for t in targets if t in claimed]
            assert at_eve, "Ada never dialled Eve's claims: the test proves nothing"
            assert all(refusal(t) is None for t in at_eve), [t for t in at_eve if refusal(t)]
            assert len(set(at_eve)) <= MAX_ADDRS_PER_PEER, len(set(at_eve))

            async def sessions(node: KithNode) -> int:
                return node._hole_punch.protocol.budget._peer(eve.peer_id).sessions  # type: ignore[union-attr]

            assert await ada.client.call(sessions) == MAX_SESSIONS_PER_PEER
            for s in silents:
                s.close()
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def test_a_contacts_claims_are_filtered_and_capped_across_reconnections(tmp_path: Path) -> None:
    """Before: every claim dialled, and again after each reconnection."""
    in_loopback_netns(_contact_claims_are_bounded, str(tmp_path))


def test_the_budget_counts_per_peer_and_in_all() -> None:
    now = [0.0]
    budget = HolePunchBudget(clock=lambda: now[0])
    assert all(budget.start_session("a") for _ in range(MAX_SESSIONS_PER_PEER))
    assert not budget.start_session("a")
    keys = [f"/ip4/203.0.113.1/tcp/{p}" for p in range(1, 20)]
    assert [budget.take_dial("a", k) for k in keys].count(True) == MAX_ADDRS_PER_PEER
    assert budget.take_dial("a", keys[0])  # an address already dialled may be dialled again
    now[0] += BUDGET_WINDOW  # a new window for "a"
    assert budget.start_session("a")
    # In all: however many peers take part.
    now[0] += 60
    granted = sum(budget.take_dial(f"p{i}", f"/ip4/203.0.113.{i % 250}/tcp/1")
                  for i in range(2 * MAX_DIALS_PER_MINUTE))
    assert granted == MAX_DIALS_PER_MINUTE
    now[0] += 60
    assert budget.take_dial("late", "/ip4/203.0.113.7/tcp/1")
