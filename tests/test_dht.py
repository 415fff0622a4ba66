"""The Kademlia DHT between real peers in one process on 127.0.0.1.

D is a Kith node serving the DHT (``serve_dht``: it answers ``/ipfs/kad/1.0.0`` but sends
nothing). Ada and Bob bootstrap from D and are DHT clients. Ada's invite for Bob carries a dead
address, so only the DHT can tell her where he is.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.core.config import ConfigError, NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.dht import parse_bootstrap_addrs
from app.node.node import KithNode
from tests.peers import LOOPBACK, Peer


def run(coro_fn):
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
    server = node.dht.server
    return node.dht.info() | {
        "lookups": node.dht.lookups,
        "inbound_from": server.requesters() if server is not None else [],
    }


async def _start_three(tmp_path: Path, started: list[Peer]) -> tuple[Peer, Peer, Peer]:
    """D, then Ada and Bob bootstrapping from D; returns once Bob's record is on D."""
    dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,), serve_dht=True))
    started.append(await dee.start())
    assert dee.ready is not None
    boot = (dee.ready.addrs[0],)
    bob = Peer(tmp_path / "bob", "Bob", NodeConfig(listen=(LOOPBACK,), bootstrap=boot))
    ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,), bootstrap=boot))
    started.append(await bob.start())
    started.append(await ada.start())
    await _poll(bob, lambda node: node.dht.published >= 1, "Bob never published")
    return dee, ada, bob


async def _poll(peer: Peer, check: Callable[[KithNode], bool], what: str) -> None:
    """Ask the node's own thread until ``check`` holds (20 s at most)."""

    async def ask(node: KithNode) -> bool:
        return check(node)

    deadline = asyncio.get_running_loop().time() + 20
    while not await peer.client.call(ask):
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


def _forget(bob: Peer) -> Callable[[KithNode], Awaitable[int]]:
    """Make a node forget every address of Bob's but his invite's and drop him, so that only
    a DHT lookup can find him again; returns the node's lookup count before."""

    async def forget(node: KithNode) -> int:
        from libp2p.peer.id import ID

        bob_id = ID.from_base58(bob.peer_id)
        with node.db:
            node.db.execute(
                "DELETE FROM peer_addrs WHERE peer_id = ? AND source != 'invite'", (bob.peer_id,)
            )
        node.host.get_peerstore().clear_addrs(bob_id)
        node.dht.kad.routing_table.remove_peer(bob_id)
        before = node.dht.lookups
        await node.disconnect(bob.peer_id)
        return before

    return forget


def _is_connected(peer: Peer) -> Callable[[KithNode], Awaitable[bool]]:
    async def ask(node: KithNode) -> bool:
        return node.is_connected(peer.peer_id)

    return ask


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


def test_kith_node_is_a_dht_client_unless_it_serves() -> None:
    from app.main import node_parser

    assert node_parser().parse_args([]).serve_dht is False
    assert node_parser().parse_args(["--serve-dht"]).serve_dht is True


def test_contact_found_through_the_dht_when_known_addresses_fail(tmp_path: Path) -> None:
    async def scenario() -> None:
        started: list[Peer] = []
        try:
            dee, ada, bob = await _start_three(tmp_path, started)
            await ada.client.add_contact(_wrong_invite(bob))
            await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=30)
            sent = await ada.client.send(bob.peer_id, "found you through the DHT")
            (got,) = await bob.wait_event("message", timeout=15)
            assert got.text == "found you through the DHT"  # type: ignore[attr-defined]
            await ada.wait_event("delivered", id=sent.id, timeout=15)

            # Ada may have reached Bob already while bootstrapping (a Kademlia lookup connects to
            # the peers it asks, and D knows Bob). Once she forgets him, the dial loop must find
            # him by id. She forgets him once idle: a lookup still running could reach him again
            # before his old connection's end is noticed, and he would never show offline.
            await _poll(
                ada,
                lambda node: node.dht.published >= 1
                and not node.contacts.redialer.dialing(bob.peer_id),
                "Ada never finished her first lookups",
            )
            before = await ada.client.call(_forget(bob))
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


def test_contact_that_connects_during_a_failing_dial_is_looked_up_at_its_next_outage(
    tmp_path: Path,
) -> None:
    """Bob reaches Ada while her dial of his dead address hangs. That dial must not leave a DHT
    lookup backoff behind: when Bob goes away later, Ada looks him up at once, not in 30 s."""

    async def scenario() -> None:
        started: list[Peer] = []
        loop = asyncio.get_running_loop()
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            silent.setblocking(False)
            try:
                _dee, ada, bob = await _start_three(tmp_path, started)
                # Not connected through bootstrapping: Ada's own lookups are over, then she
                # forgets him.
                await _poll(ada, lambda node: node.dht.published >= 1, "Ada never published")
                await ada.client.call(_forget(bob))
                assert not await ada.client.call(_is_connected(bob))
                dead = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}"
                await ada.client.add_contact(
                    ContactInvite(peer_id=bob.peer_id, name="Bob", addrs=(dead,)).to_link()
                )
                hanging, _ = await asyncio.wait_for(loop.sock_accept(silent), 15)

                async def dial_ada(node: KithNode) -> None:
                    from libp2p.peer.id import ID
                    from libp2p.peer.peerinfo import PeerInfo
                    from multiaddr import Multiaddr

                    assert ada.ready is not None
                    where = Multiaddr(strip_p2p(ada.ready.addrs[0]))
                    await node.host.connect(PeerInfo(ID.from_base58(ada.peer_id), [where]))

                await bob.client.call(dial_ada)  # Bob does not redial: Ada is no contact of his
                await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=15)
                hanging.close()  # Ada's dial of the dead address fails now, while connected
                silent.close()  # and later dials of it are refused
                await _poll(ada, lambda n: not n.contacts.redialer.dialing(bob.peer_id),
                            "Ada's dial never ended")

                before = await ada.client.call(_forget(bob))
                await ada.wait_event("contact_offline", peer_id=bob.peer_id, timeout=10)
                await ada.wait_event("contact_online", count=2, peer_id=bob.peer_id, timeout=20)
                ada_info = await ada.client.call(_dht_info)
                assert int(ada_info["lookups"]) > before  # type: ignore[call-overload]
            finally:
                await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    run(scenario)


def test_no_dht_traffic_without_bootstrap(tmp_path: Path) -> None:
    async def scenario() -> None:
        dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,), serve_dht=True))
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
            await _poll(ada, lambda node: node.contacts.redialer.dials >= 3, "Ada stopped dialling")

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
