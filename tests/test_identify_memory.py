"""What identify teaches us about a stranger is bounded while it is connected, and forgotten
when it leaves.

Each stranger answers identify with about 1 MiB of protocol ids and 1,000 addresses. Before,
py-libp2p kept all of it for every stranger that ever connected (1,000 peers; 30 such strangers
cost 170 MB).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from multiaddr import Multiaddr

from app.core.invite import ContactInvite
from app.node.libp2p_patches.peerstore import (
    MAX_IDENTIFY_PROTOCOLS,
    MAX_PROTOCOL_LENGTH,
    within_identify_bounds,
)
from app.node.node import KithNode
from tests.attackers import addr_bytes, lie_in_identify
from tests.peers import Peer, peers

JUNK_PROTOCOLS = [f"/junk/{i:06d}/" + "x" * 40 for i in range(18_000)]  # under 1 MiB
JUNK_ADDRS = [f"/ip4/203.0.113.{i % 250 + 1}/tcp/{1000 + i}" for i in range(1000)]


async def _lie(node: KithNode) -> None:
    lie_in_identify(node, protocols=JUNK_PROTOCOLS, listen_addrs=addr_bytes(JUNK_ADDRS))


def _peerstore_entry(peer_id: str):
    async def entry(node: KithNode) -> tuple[int, int] | None:
        from libp2p.peer.id import ID

        store: Any = node.host.get_peerstore()
        data = store.peer_data_map.get(ID.from_base58(peer_id))
        return None if data is None else (len(data.protocols), len(data.addrs))

    return entry


def test_strangers_identify_is_bounded_and_forgotten_when_they_leave(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Val", "Cory") as (val, cory):
            await val.client.add_contact(ContactInvite(cory.peer_id, "Cory", ()).to_link())
            await cory.client.call(_lie)  # a contact lies too: bounded, but remembered
            visitors = [cory]
            for i in range(3):
                stranger = Peer(tmp_path / f"stranger{i}", f"Stranger {i}")
                await stranger.start()
                await stranger.client.call(_lie)
                visitors.append(stranger)
            try:
                for visitor in visitors:
                    await visitor.client.call(_dial(val))
                for visitor in visitors:
                    entry = await _identified(val, visitor.peer_id)
                    assert entry[0] <= MAX_IDENTIFY_PROTOCOLS and entry[1] <= 32, entry
            finally:
                for stranger in visitors[1:]:
                    await stranger.stop()
            for stranger in visitors[1:]:
                await _forgotten(val, stranger.peer_id)
            await cory.client.call(lambda node: node.disconnect(val.peer_id))
            await val.wait_event("contact_offline", peer_id=cory.peer_id)
            assert await val.client.call(_peerstore_entry(cory.peer_id)) is not None

    asyncio.run(scenario())


async def _identified(peer: Peer, other: str) -> tuple[int, int]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        entry = await peer.client.call(_peerstore_entry(other))
        if entry is not None and entry[0] > 0:
            return entry
        assert asyncio.get_running_loop().time() < deadline, "identify never ran"
        await asyncio.sleep(0.05)


async def _forgotten(peer: Peer, other: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while await peer.client.call(_peerstore_entry(other)) is not None:
        assert asyncio.get_running_loop().time() < deadline, f"{other} is still remembered"
        await asyncio.sleep(0.05)


def _dial(target: Peer):
    async def dial(node: KithNode) -> None:
        from app.node.host import connect_at

        assert target.ready is not None
        assert await connect_at(node.host, target.peer_id, list(target.ready.addrs), 10)

    return dial


def test_identify_bounds() -> None:
    from libp2p.identity.identify.pb.identify_pb2 import Identify

    too_long = "/y/" + "y" * MAX_PROTOCOL_LENGTH
    message = Identify(
        public_key=b"k" * 36, agent_version="a" * 1000, protocols=[too_long, *JUNK_PROTOCOLS],
        listen_addrs=addr_bytes(JUNK_ADDRS), signedPeerRecord=b"r" * 5000,
    )
    kept = within_identify_bounds(message)
    assert list(kept.protocols) == JUNK_PROTOCOLS[:MAX_IDENTIFY_PROTOCOLS]
    assert [Multiaddr(a) for a in kept.listen_addrs] == [Multiaddr(a) for a in JUNK_ADDRS[:16]]
    assert kept.public_key == b"k" * 36
    assert not kept.HasField("agent_version") and not kept.HasField("signedPeerRecord")
