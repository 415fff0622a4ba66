"""What others say our address is counts only when confirmed, and never stands in for what we
listen on.

Strangers connect to Val from several source addresses and each says, in identify, that Val is
at an address of their choosing. Before, four of them made Val advertise it in identify and in
her signed peer record (the DHT serves that), and one was enough to put it into the DCUtR
CONNECT she sends her contacts, who then dial it. Runs in a namespace with loopback only (and
a few extra addresses on it to connect from).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core.config import NodeConfig
from app.core.invite import ContactInvite
from app.node.node import KithNode
from app.node.observed_addrs import CONFIRMING_NETWORKS, observer_network
from tests.attackers import advertise, lie_in_identify
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer

CHOSEN_IP = "198.51.100.66"
CHOSEN = f"/ip4/{CHOSEN_IP}/tcp/4001"  # where the attackers say Val is


async def _connect_from(peer: Peer, target: Peer, source_ip: str) -> None:
    """``peer`` opens a direct connection to ``target`` from ``source_ip``."""
    assert target.ready is not None
    where = target.ready.addrs[0]

    async def dial(node: KithNode) -> None:
        from libp2p.peer.id import ID
        from multiaddr import Multiaddr

        await node.host.get_network().dial_addr(
            Multiaddr(where), ID.from_base58(target.peer_id), (source_ip, 0))

    await peer.client.call(dial)


async def _observations(peer: Peer, count: int) -> None:
    """Wait until ``peer`` has recorded ``count`` observations of itself (identify has run)."""

    async def recorded(node: KithNode) -> int:
        return len(node.host._observed_addr_manager._conn_observations)  # type: ignore[attr-defined]

    deadline = asyncio.get_running_loop().time() + 20
    while await peer.client.call(recorded) < count:
        assert asyncio.get_running_loop().time() < deadline, "identify never reported"
        await asyncio.sleep(0.05)


async def _what_others_see(observer: Peer, target: Peer) -> set[str]:
    """The addresses ``target`` advertises: identify's listen addresses and those of its signed
    peer record, as ``observer`` asks for them."""

    async def ask(node: KithNode) -> set[str]:
        from libp2p.identity.identify.identify import ID as IDENTIFY
        from libp2p.identity.identify.pb.identify_pb2 import Identify
        from libp2p.peer.envelope import consume_envelope
        from libp2p.peer.id import ID
        from libp2p.utils.varint import read_length_prefixed_protobuf
        from multiaddr import Multiaddr

        stream = await node.host.new_stream(ID.from_base58(target.peer_id), [IDENTIFY])
        message = Identify()
        message.ParseFromString(await read_length_prefixed_protobuf(stream, True))
        await stream.close()
        seen = {str(Multiaddr(a)) for a in message.listen_addrs}
        _, record = consume_envelope(message.signedPeerRecord, "libp2p-peer-record")
        return seen | {str(a).split("/p2p/")[0] for a in record.addrs}

    assert target.ready is not None
    await _connect_from(observer, target, "127.0.0.1")
    return await observer.client.call(ask)


async def _connect_names(contact: Peer, target: Peer) -> set[str]:
    """The addresses ``target``'s DCUtR CONNECT names to ``contact``: ``contact`` starts an
    exchange and reads the answer."""

    async def exchange(node: KithNode) -> set[str]:
        from libp2p.peer.id import ID
        from libp2p.relay.circuit_v2.dcutr import PROTOCOL_ID, read_dcutr_msg
        from libp2p.relay.circuit_v2.pb.dcutr_pb2 import HolePunch
        from libp2p.relay.circuit_v2.utils import write_delimited_msg
        from multiaddr import Multiaddr

        stream = await node.host.new_stream(ID.from_base58(target.peer_id), [PROTOCOL_ID])
        await write_delimited_msg(stream, HolePunch(type=HolePunch.CONNECT, ObsAddrs=[]))
        answer = await read_dcutr_msg(stream, HolePunch)
        await stream.reset()
        return {str(Multiaddr(a)) for a in answer.ObsAddrs}

    return await contact.client.call(exchange)


def _strangers_cannot_choose_our_address(tmp: str) -> None:
    async def scenario() -> None:
        started: list[Peer] = []
        try:
            relay = Peer(Path(tmp) / "relay", "Relay",
                         NodeConfig(listen=(LOOPBACK,), serve_relay=True))
            started.append(await relay.start())
            assert relay.ready is not None
            val = Peer(Path(tmp) / "val", "Val",
                       NodeConfig(listen=(LOOPBACK,), relays=(relay.ready.addrs[0],)))
            started.append(await val.start())
            (reserved,) = await val.wait_event("relay_reserved", timeout=20)
            # Cory is Val's contact and reaches her through the relay only (she names no
            # address of her own), as DCUtR finds a contact behind a NAT.
            cory = Peer(Path(tmp) / "cory", "Cory")
            started.append(await cory.start())
            await cory.client.call(lambda node: _advertise_nothing(node))
            await val.client.add_contact(ContactInvite(cory.peer_id, "Cory", ()).to_link())
            liars = []
            for i in range(4):
                liar = Peer(Path(tmp) / f"liar{i}", f"Liar {i}")
                started.append(await liar.start())
                await liar.client.call(_lie_about(CHOSEN))
                liars.append(liar)

            # One stranger's word: not in the CONNECT Val sends her contact.
            await _connect_from(liars[0], val, "127.0.0.2")
            await _observations(val, 1)
            await cory.client.call(_dial(val.peer_id, reserved.addrs[0]))  # type: ignore[attr-defined]
            named = await _connect_names(cory, val)
            assert named and not any(CHOSEN_IP in a for a in named), named

            # Four strangers from four source addresses: not in identify or her signed record.
            for i, liar in enumerate(liars[1:], start=3):
                await _connect_from(liar, val, f"127.0.0.{i}")
            await _observations(val, 4)
            observer = Peer(Path(tmp) / "observer", "Observer")
            started.append(await observer.start())
            seen = await _what_others_see(observer, val)
            assert not any(CHOSEN_IP in a for a in seen), seen
            assert val.ready is not None  # what Val listens on is still there
            assert val.ready.addrs[0].split("/p2p/")[0] in seen
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


async def _advertise_nothing(node: KithNode) -> None:
    advertise(node, [])


def _dial(peer_id: str, addr: str):
    async def dial(node: KithNode) -> None:
        from app.node.host import connect_at

        assert await connect_at(node.host, peer_id, [addr], 10)

    return dial


def _lie_about(observed: str):
    async def lie(node: KithNode) -> None:
        lie_in_identify(node, observed=observed)

    return lie


def test_strangers_cannot_choose_the_address_we_advertise(tmp_path: Path) -> None:
    in_loopback_netns(_strangers_cannot_choose_our_address, str(tmp_path))


NETWORKS = [f"10.{n}.0.1" for n in range(1, CONFIRMING_NETWORKS + 1)]


def _confirmed_by_a_contact_or_independent_networks(tmp: str) -> None:
    async def scenario() -> None:
        started: list[Peer] = []
        try:
            val = Peer(Path(tmp) / "val", "Val")
            started.append(await val.start())
            observer = Peer(Path(tmp) / "observer", "Observer")
            started.append(await observer.start())

            # A contact's word is enough.
            cory = Peer(Path(tmp) / "cory", "Cory")
            started.append(await cory.start())
            await val.client.add_contact(ContactInvite(cory.peer_id, "Cory", ()).to_link())
            by_contact = "/ip4/198.51.100.70/tcp/4001"
            await cory.client.call(_lie_about(by_contact))
            await _connect_from(cory, val, "127.0.0.1")
            await _observations(val, 1)
            assert by_contact in await _what_others_see(observer, val)

            # Strangers on as many distinct networks as it takes: so is theirs.
            independent = "/ip4/198.51.100.71/tcp/4001"
            for i, source in enumerate(NETWORKS):
                liar = Peer(Path(tmp) / f"peer{i}", f"Peer {i}")
                started.append(await liar.start())
                await liar.client.call(_lie_about(independent))
                await _connect_from(liar, val, source)
            await _observations(val, 1 + len(NETWORKS))
            assert independent in await _what_others_see(observer, val)
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def test_a_contact_or_peers_on_distinct_networks_confirm_an_observed_address(
    tmp_path: Path,
) -> None:
    in_loopback_netns(_confirmed_by_a_contact_or_independent_networks, str(tmp_path),
                      addrs=[f"{ip}/32" for ip in NETWORKS])


def test_observers_count_by_network() -> None:
    assert observer_network("203.0.113.7") == observer_network("203.0.200.9") == "203.0.0.0/16"
    assert observer_network("127.0.0.2") == observer_network("127.0.0.5")
    assert observer_network("2001:db8:1:2::1") == "2001:db8:1::/48"
