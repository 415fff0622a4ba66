"""Circuit relay v2 between three real peers in one process on 127.0.0.1.

R serves as a relay; B reserves a slot on R; A knows B only by B's ``/p2p-circuit`` address and
still delivers a direct message, over a connection that runs through R.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import app.node.relay as relay_module
from app.core.config import ConfigError, NodeConfig
from app.core.events import RelayReserved
from app.core.invite import ContactInvite, parse_invite, strip_p2p
from app.node.host import connect_at
from app.node.node import KithNode
from app.node.relay import parse_relay_addrs
from tests.peers import LOOPBACK, Peer


def run(coro_fn):
    return asyncio.run(coro_fn())


def test_relay_addr_parsing() -> None:
    relay = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    ((peer, addr),) = parse_relay_addrs((relay,))
    assert peer.to_base58() in relay and str(addr) == relay
    for bad in ("/ip4/127.0.0.1/tcp/4001", "not an address", "/dns4/x/tcp/1/p2p/12D3Koo"):
        with pytest.raises(ConfigError):
            parse_relay_addrs((bad,))


def test_dm_through_a_relay_when_only_the_circuit_address_is_known(tmp_path: Path) -> None:
    async def scenario() -> None:
        relay = Peer(tmp_path / "relay", "Relay", NodeConfig(listen=(LOOPBACK,), serve_relay=True))
        started: list[Peer] = []
        try:
            started.append(await relay.start())
            assert relay.ready is not None
            relay_addr = relay.ready.addrs[0]
            bob = Peer(tmp_path / "bob", "Bob",
                       NodeConfig(listen=(LOOPBACK,), relays=(relay_addr,)))
            ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,)))
            started.append(await bob.start())
            started.append(await ada.start())

            (reserved,) = await bob.wait_event("relay_reserved", timeout=15)
            assert isinstance(reserved, RelayReserved) and reserved.relay == relay.peer_id
            circuit = f"{strip_p2p(relay_addr)}/p2p/{relay.peer_id}/p2p-circuit/p2p/{bob.peer_id}"
            assert circuit in reserved.addrs
            assert reserved.to_json()["event"] == "relay_reserved"
            status = await bob.client.status()
            assert circuit in status.addrs
            assert strip_p2p(circuit) in parse_invite(status.invite).addrs

            only_relayed = ContactInvite(
                peer_id=bob.peer_id, name="Bob", addrs=(strip_p2p(circuit),)
            ).to_link()
            await ada.client.add_contact(only_relayed)
            await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=15)
            for text in ("hello through the relay", "and again"):  # the route is kept per link
                sent = await ada.client.send(bob.peer_id, text)
                (got,) = await bob.wait_event("message", id=sent.id, timeout=15)
                assert (got.text, got.via) == (text, "relay")  # type: ignore[attr-defined]
                await ada.wait_event("delivered", id=sent.id, timeout=15)

            async def remote_addrs(node: KithNode) -> list[str]:
                from libp2p.peer.id import ID

                conns = node.host.get_network().connections.get(ID.from_base58(bob.peer_id))
                conns = conns if isinstance(conns, list) else [conns] if conns else []
                return [str(a) for c in conns for a in c.get_transport_addresses()]

            # Ada reached Bob only through the relay: every connection is a circuit.
            addrs = await ada.client.call(remote_addrs)
            assert addrs and all("/p2p-circuit" in a for a in addrs), addrs

            async def noise_peers(node: KithNode) -> list[tuple[str, str]]:
                from libp2p.peer.id import ID

                conns = node.host.get_network().connections.get(ID.from_base58(bob.peer_id))
                conns = conns if isinstance(conns, list) else [conns] if conns else []
                sessions = [c.muxed_conn.secured_conn for c in conns]  # type: ignore[attr-defined]
                return [(type(s.conn).__name__, str(s.remote_peer)) for s in sessions]

            # Noise runs end to end over the circuit: the session's remote is Bob, not the relay.
            assert set(await ada.client.call(noise_peers)) == {
                ("NoiseTransportReadWriter", bob.peer_id)
            }

            async def circuits(node: KithNode) -> int:
                return node.relay.server.circuit_count()

            assert await relay.client.call(circuits) >= 1
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_a_slot_lost_with_its_connection_is_reserved_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay restarts (forgetting every slot) and Ada is connected to it again at once, as
    a dial through it would do. She must notice that the connection her slot lived on closed
    and reserve again, not trust "connected to the relay" until the next periodic check (set
    to a minute here, so only the closed connection can be what tells her)."""
    monkeypatch.setattr(relay_module, "WATCH_INTERVAL", 60.0)

    async def scenario() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            listen = f"/ip4/127.0.0.1/tcp/{sock.getsockname()[1]}"
        relay_config = NodeConfig(listen=(listen,), serve_relay=True)
        relay = Peer(tmp_path / "relay", "Relay", relay_config)
        started = [await relay.start()]
        try:
            relay_addr = f"{listen}/p2p/{relay.peer_id}"
            ada_config = NodeConfig(listen=(LOOPBACK,), relays=(relay_addr,))
            ada = Peer(tmp_path / "ada", "Ada", ada_config)
            started.append(await ada.start())
            await ada.wait_event("relay_reserved", timeout=15)

            await relay.stop()
            started.remove(relay)
            relay = Peer(tmp_path / "relay", "Relay", relay_config)
            started.append(await relay.start())

            async def reconnect(node: KithNode) -> bool:
                return await connect_at(node.host, relay.peer_id, [relay_addr], 5.0)

            assert await ada.client.call(reconnect)
            await ada.wait_event("relay_reserved", count=2, timeout=15)

            async def holds_ada(node: KithNode) -> bool:
                return ada.peer_id in node.relay.server.reserved_peers()

            assert await relay.client.call(holds_ada)  # the new relay really holds Ada's slot
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)
