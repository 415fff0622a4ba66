"""The Kademlia DHT between real peers in one process on 127.0.0.1.

D is a plain Kith node (it answers ``/ipfs/kad/1.0.0`` but sends nothing). Ada and Bob bootstrap
from D. Ada's invite for Bob carries a dead address, so only the DHT can tell her where he is.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from app.core.config import ConfigError, NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.dht import parse_bootstrap_addrs
from app.node.node import KithNode
from tests.peers import LOOPBACK, Peer


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def _closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrong_invite(bob: Peer) -> str:
    return ContactInvite(
        peer_id=bob.peer_id, name="Bob", addrs=(f"/ip4/127.0.0.1/tcp/{_closed_port()}",)
    ).to_link()


async def _dht_info(node: KithNode) -> dict[str, object]:
    return node.dht.info() | {
        "lookups": node.dht.lookups,
        "inbound_from": sorted(node.dht.inbound_from),
    }


def test_bootstrap_addr_parsing() -> None:
    good = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    ((peer, addr),) = parse_bootstrap_addrs((good,))
    assert peer.to_base58() in good and str(addr) == good
    for bad in ("/ip4/127.0.0.1/tcp/4001", "not an address", "/dns4/x/tcp/1/p2p/12D3Koo"):
        with pytest.raises(ConfigError, match="bootstrap peer"):
            parse_bootstrap_addrs((bad,))


def test_node_parser_takes_repeatable_bootstrap() -> None:
    from app.main import node_parser

    args = node_parser().parse_args(["--bootstrap", "/a", "--bootstrap", "/b"])
    assert args.bootstrap == ["/a", "/b"]
    assert node_parser().parse_args([]).bootstrap == []


def test_contact_found_through_the_dht_when_known_addresses_fail(tmp_path: Path) -> None:
    async def scenario() -> None:
        dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,)))
        started: list[Peer] = []
        try:
            started.append(await dee.start())
            assert dee.ready is not None
            boot = (dee.ready.addrs[0],)
            bob = Peer(tmp_path / "bob", "Bob", NodeConfig(listen=(LOOPBACK,), bootstrap=boot))
            ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,), bootstrap=boot))
            started.append(await bob.start())
            started.append(await ada.start())

            # Bob's record is on D (his self-lookup reached D).
            async def published(peer: Peer) -> bool:
                info = await peer.client.call(_dht_info)
                return int(info["published"]) >= 1  # type: ignore[call-overload]

            deadline = asyncio.get_running_loop().time() + 20
            while not await published(bob):
                assert asyncio.get_running_loop().time() < deadline, "Bob never published"
                await asyncio.sleep(0.1)

            await ada.client.add_contact(_wrong_invite(bob))
            await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=30)
            sent = await ada.client.send(bob.peer_id, "found you through the DHT")
            (got,) = await bob.wait_event("message", timeout=15)
            assert got.text == "found you through the DHT"  # type: ignore[attr-defined]
            await ada.wait_event("delivered", id=sent.id, timeout=15)

            # Ada may have reached Bob already while bootstrapping (a Kademlia lookup connects to
            # the peers it asks, and D knows Bob). Make her forget every address of his but the
            # dead one and drop the connection: the dial loop must now find him by id.
            async def forget_bob(node: KithNode) -> int:
                from libp2p.peer.id import ID

                bob_id = ID.from_base58(bob.peer_id)
                with node.db:
                    node.db.execute(
                        "DELETE FROM peer_addrs WHERE peer_id = ? AND source != 'invite'",
                        (bob.peer_id,),
                    )
                node.host.get_peerstore().clear_addrs(bob_id)
                node.dht.kad.routing_table.remove_peer(bob_id)
                before = node.dht.lookups
                await node.host.disconnect(bob_id)
                return before

            before = await ada.client.call(forget_bob)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id, timeout=10)
            await ada.wait_event("contact_online", count=2, peer_id=bob.peer_id, timeout=30)
            ada_info = await ada.client.call(_dht_info)
            assert int(ada_info["lookups"]) > before  # type: ignore[call-overload]
            sent = await ada.client.send(bob.peer_id, "and again")
            await bob.wait_event("message", count=2, timeout=15)
            await ada.wait_event("delivered", id=sent.id, timeout=15)

            async def stored(node: KithNode) -> list[tuple[str, str]]:
                rows = node.db.execute(
                    "SELECT addr, source FROM peer_addrs WHERE peer_id = ?", (bob.peer_id,)
                )
                return [(r[0], r[1]) for r in rows]

            assert bob.ready is not None
            bob_addr = strip_p2p(bob.ready.addrs[0])
            assert (bob_addr, "dht") in await ada.client.call(stored)
            dee_info = await dee.client.call(_dht_info)
            assert {ada.peer_id, bob.peer_id} <= set(dee_info["inbound_from"])  # type: ignore[call-overload]
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_no_dht_traffic_without_bootstrap(tmp_path: Path) -> None:
    async def scenario() -> None:
        dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,)))
        started: list[Peer] = []
        try:
            started.append(await dee.start())
            assert dee.ready is not None
            boot = (dee.ready.addrs[0],)
            bob = Peer(tmp_path / "bob", "Bob", NodeConfig(listen=(LOOPBACK,), bootstrap=boot))
            ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,)))
            started.append(await bob.start())
            started.append(await ada.start())

            await ada.client.add_contact(_wrong_invite(bob))
            await asyncio.sleep(4)  # several failed dials (backoff 1 s, 2 s)

            ada_info = await ada.client.call(_dht_info)
            assert ada_info["enabled"] is False and ada_info["lookups"] == 0
            assert ada_info["routing_table"] == 0
            dee_info = await dee.client.call(_dht_info)
            assert ada.peer_id not in dee_info["inbound_from"]  # type: ignore[operator]
            assert not ada.named("contact_online")

            async def connected_to(node: KithNode) -> list[str]:
                return [str(p) for p in node.host.get_connected_peers()]

            assert await ada.client.call(connected_to) == []
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)
