"""The DHT against strangers: Kith stores only what it needs, bounds every answer before using
it, and lets no answer into a contact's address book but the contact's own signed record.

Eve is a real Kith node whose host answers ``/ipfs/kad/1.0.0`` as an attacker would
(``hostile.answer_dht``), or asks as one (``hostile.ask_dht``). Addresses named in answers are
never dialled here (``203.0.113.0/24`` with no route, or closed ``127.0.0.1`` ports), but the
tests that make Kith look things up run in a namespace with loopback only all the same.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record
from libp2p.peer.id import ID
from libp2p.peer.peerstore import create_signed_peer_record
from multiaddr import Multiaddr

from app.core.config import NodeConfig
from app.core.invite import ContactInvite
from app.node.dht_records import (
    MAX_ANSWER_PEERS,
    MAX_RECORD_ADDRS,
    DhtBoundsError,
    RecordBudget,
    check_answer,
)
from app.node.libp2p_patches.peerstore import MAX_PEERSTORE_ADDRS, bound_peer_addrs
from app.node.node import KithNode
from app.store.contacts import MAX_ADDRS_PER_PEER, ContactStore
from app.store.db import open_database
from tests.attackers import answer_dht, ask_dht
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer, peers

# -- item: only what Kith needs is stored, and only by a Kith that serves ------------------


def test_a_kith_that_does_not_serve_answers_no_dht_request(tmp_path: Path) -> None:
    """The desktop app's default: a DHT client. Before, every Kith answered (and stored)."""

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Eve") as (ada, eve):
            assert eve.ready is not None and ada.ready is not None
            await eve.client.call(_dial(ada))
            ping = Message(type=Message.MessageType.PING)
            answer = await eve.client.call(lambda node: ask_dht(node, ada.peer_id, ping))
            assert answer is None

    asyncio.run(scenario())


def _fresh_key() -> Any:
    return create_new_key_pair()


def test_a_serving_kith_keeps_no_values_or_providers(tmp_path: Path) -> None:
    """PUT_VALUE and ADD_PROVIDER are refused; before, 1,000 values of 1 MB were kept 24 h."""

    async def scenario() -> None:
        dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,), serve_dht=True))
        eve = Peer(tmp_path / "eve", "Eve")
        try:
            await dee.start()
            await eve.start()
            await eve.client.call(_dial(dee))
            put = Message(type=Message.MessageType.PUT_VALUE, key=b"/v/junk")
            put.record.CopyFrom(Record(key=b"/v/junk", value=b"x" * 100_000))
            provide = Message(type=Message.MessageType.ADD_PROVIDER, key=b"k" * 32)
            provider = provide.providerPeers.add()
            provider.id = ID.from_base58(eve.peer_id).to_bytes()
            provider.addrs.extend([Multiaddr(f"/ip4/203.0.113.9/tcp/{p}").to_bytes()
                                   for p in range(1, 2000)])
            for request in (put, provide):
                assert await eve.client.call(
                    functools.partial(ask_dht, peer_id=dee.peer_id, request=request)) is None

            async def stored(node: KithNode) -> tuple[int, int]:
                kad: Any = node.dht.kad
                return kad.value_store.size(), kad.provider_store.size()

            assert await dee.client.call(stored) == (0, 0)
            # FIND_NODE and PING are what Kith serves.
            ping = Message(type=Message.MessageType.PING)
            assert await eve.client.call(lambda n: ask_dht(n, dee.peer_id, ping)) is not None
        finally:
            await asyncio.gather(eve.stop(), dee.stop(), return_exceptions=True)

    asyncio.run(scenario())


def test_a_serving_kith_holds_records_within_its_budgets(tmp_path: Path) -> None:
    """A record above the per-peer size is refused; records beyond the total go, oldest first."""

    async def scenario() -> None:
        dee = Peer(tmp_path / "dee", "Dee", NodeConfig(listen=(LOOPBACK,), serve_dht=True))
        started = [dee]
        try:
            await dee.start()

            # Eve signs a record of her own that is too big: the stream is reset, nothing held.
            eve = Peer(tmp_path / "eve", "Eve")
            started.append(await eve.start())
            await eve.client.call(_dial(dee))
            big = Message(type=Message.MessageType.FIND_NODE, key=b"k" * 32)
            big.senderRecord = await eve.client.call(_own_record(80))
            assert await eve.client.call(lambda n: ask_dht(n, dee.peer_id, big)) is None

            async def held(node: KithNode) -> tuple[int, int, list[str]]:
                server: Any = node.dht.server
                return len(server.records), server.records.total, list(server.records._held)

            assert (await dee.client.call(held))[0] == 0

            # Within a small total budget, three peers' records: the first gives way.
            async def small_budget(node: KithNode) -> None:
                node.dht.server.records = RecordBudget(limit=600)  # type: ignore[union-attr]

            await dee.client.call(small_budget)
            publishers = []
            for name in ("P1", "P2", "P3"):
                peer = Peer(tmp_path / name.lower(), name)
                started.append(await peer.start())
                await peer.client.call(_dial(dee))
                find = Message(type=Message.MessageType.FIND_NODE, key=b"k" * 32)
                find.senderRecord = await peer.client.call(_own_record(8))
                assert await peer.client.call(
                    functools.partial(ask_dht, peer_id=dee.peer_id, request=find))
                publishers.append(peer)
            count, total, holders = await dee.client.call(held)
            assert total <= 600 and publishers[0].peer_id not in holders, (count, total)
            assert publishers[-1].peer_id in holders
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def _own_record(count: int) -> Callable[[KithNode], Any]:
    """The node's own signed record, listing ``count`` addresses."""

    async def record(node: KithNode) -> bytes:
        addrs = [Multiaddr(f"/ip4/203.0.113.7/tcp/{1000 + i}") for i in range(count)]
        envelope = create_signed_peer_record(
            node.host.get_id(), addrs, node.host.get_private_key())
        return envelope.marshal_envelope()

    return record


def _dial(target: Peer) -> Callable[[KithNode], Any]:
    async def dial(node: KithNode) -> None:
        from app.node.host import connect_at

        assert target.ready is not None
        assert await connect_at(node.host, target.peer_id, list(target.ready.addrs), 10)

    return dial


# -- item: answers bounded before any processing --------------------------------------------


def _fake_peer() -> tuple[ID, Any]:
    key = _fresh_key()
    return ID.from_pubkey(key.public_key), key


def _answer_with(peers_and_addrs: list[tuple[ID, list[bytes]]]) -> Callable[[Any], bytes]:
    def answer(request: Any) -> bytes:
        response = Message(type=Message.MessageType.FIND_NODE, key=request.key)
        for peer, addrs in peers_and_addrs:
            entry = response.closerPeers.add()
            entry.id = peer.to_bytes()
            entry.addrs.extend(addrs)
        return response.SerializeToString()

    return answer


def _hostile_answers_are_dropped_whole(tmp: str, shape: str) -> None:
    """Ada bootstraps from Eve, whose FIND_NODE answers are oversized."""
    fake, _ = _fake_peer()
    if shape == "one peer, many addresses":
        shaped = [(fake, [Multiaddr(f"/ip4/203.0.113.{i % 200 + 1}/tcp/{1000 + i}").to_bytes()
                          for i in range(8000)])]
    else:  # many peers
        shaped = [(_fake_peer()[0], [Multiaddr("/ip4/203.0.113.9/tcp/1").to_bytes()])
                  for _ in range(3000)]

    async def scenario() -> None:
        started: list[Peer] = []
        try:
            eve = Peer(Path(tmp) / "eve", "Eve")
            started.append(await eve.start())
            requests = await eve.client.call(lambda n: _serve(n, _answer_with(shaped)))
            assert eve.ready is not None
            ada = Peer(Path(tmp) / "ada", "Ada",
                       NodeConfig(listen=(LOOPBACK,), bootstrap=(eve.ready.addrs[0],)))
            started.append(await ada.start())
            await ada.wait_for(lambda: len(requests) >= 1, 20, "Ada's lookup")

            async def published(node: KithNode) -> int:
                return node.dht.published

            deadline = asyncio.get_running_loop().time() + 60
            while not await ada.client.call(published):
                assert asyncio.get_running_loop().time() < deadline, "no lookup finished"
                await asyncio.sleep(0.05)

            async def kept(node: KithNode) -> tuple[int, int]:
                store: Any = node.host.get_peerstore()
                named = {p for p, _ in shaped}
                return (sum(1 for p in store.peer_ids() if p in named),
                        max((len(store.peer_data_map[p].addrs) for p in store.peer_ids()
                             if p in named), default=0))

            assert await ada.client.call(kept) == (0, 0)
            # And Ada carries on: she still talks to Eve.
            ping = Message(type=Message.MessageType.PING)
            await ada.client.call(lambda n: ask_dht(n, eve.peer_id, ping))
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


async def _serve(node: KithNode, answer: Callable[[Any], bytes | None]) -> list[Any]:
    return answer_dht(node, answer)


@pytest.mark.parametrize("shape", ["one peer, many addresses", "many peers"])
def test_an_oversized_answer_is_dropped_before_it_is_used(tmp_path: Path, shape: str) -> None:
    """Before: 8,000 addresses of one peer, or 1,000 of 3,000 peers, went into the peerstore
    (de-duplicated in quadratic time: 20,000 addresses stalled the network thread 11 s)."""
    in_loopback_netns(_hostile_answers_are_dropped_whole, str(tmp_path), shape)


def test_answer_bounds() -> None:
    peer, key = _fake_peer()
    ok = Message(type=Message.MessageType.FIND_NODE)
    for _ in range(MAX_ANSWER_PEERS):
        entry = ok.closerPeers.add()
        entry.id = peer.to_bytes()
        entry.addrs.extend([Multiaddr(f"/ip4/203.0.113.1/tcp/{p}").to_bytes()
                            for p in range(1, MAX_RECORD_ADDRS + 1)])
        entry.signedRecord = create_signed_peer_record(
            peer, [Multiaddr(f"/ip4/203.0.113.1/tcp/{p}") for p in range(1, MAX_RECORD_ADDRS + 1)],
            key.private_key).marshal_envelope()
    check_answer(ok.SerializeToString())
    too_many = Message()
    too_many.CopyFrom(ok)
    too_many.closerPeers.add().id = peer.to_bytes()
    big_record = Message()
    big_record.CopyFrom(ok)
    big_record.closerPeers[0].signedRecord = create_signed_peer_record(
        peer, [Multiaddr(f"/ip4/203.0.113.1/tcp/{p}") for p in range(1, MAX_RECORD_ADDRS + 2)],
        key.private_key).marshal_envelope()
    many_addrs = Message()
    many_addrs.CopyFrom(ok)
    many_addrs.closerPeers[0].addrs.append(Multiaddr("/ip4/203.0.113.2/tcp/1").to_bytes())
    for bad in (too_many, big_record, many_addrs):
        with pytest.raises(DhtBoundsError):
            check_answer(bad.SerializeToString())
    with pytest.raises(DhtBoundsError):
        check_answer(b"\xff" * 10)


def test_adding_addresses_is_linear_and_bounded() -> None:
    """Before: every address compared with every one already held (Multiaddr.__eq__ n²/2)."""
    from libp2p.peer.peerdata import PeerData

    bound_peer_addrs()
    compared = [0]
    original = Multiaddr.__eq__

    def counting(self: Multiaddr, other: object) -> bool:
        compared[0] += 1
        return original(self, other)

    addrs = [Multiaddr(f"/ip4/203.0.113.{i % 200 + 1}/tcp/{1000 + i}") for i in range(2000)]
    data = PeerData()
    Multiaddr.__eq__ = counting
    try:
        data.add_addrs(addrs)
        data.add_addrs(addrs[-5:])  # already held: nothing changes
    finally:
        Multiaddr.__eq__ = original
    assert compared[0] <= 2 * len(addrs), compared[0]
    assert data.get_addrs() == addrs[-MAX_PEERSTORE_ADDRS:]


# -- item: contacts' address books --------------------------------------------------------


def _poisoned_answers_stay_out_of_the_book(tmp: str) -> None:
    """Eve, Ada's bootstrap peer, answers every lookup of Bob (offline) with 16 addresses of
    her choosing each time and no signed record of Bob's."""
    port = [20000]

    def answer(request: Any) -> bytes:
        response = Message(type=Message.MessageType.FIND_NODE, key=request.key)
        entry = response.closerPeers.add()
        entry.id = request.key
        entry.addrs.extend(Multiaddr(f"/ip4/127.0.0.1/tcp/{port[0] + i}").to_bytes()
                           for i in range(MAX_RECORD_ADDRS))
        port[0] += MAX_RECORD_ADDRS
        return response.SerializeToString()

    async def scenario() -> None:
        started: list[Peer] = []
        try:
            eve = Peer(Path(tmp) / "eve", "Eve")
            started.append(await eve.start())
            await eve.client.call(lambda n: _serve(n, answer))
            assert eve.ready is not None
            ada = Peer(Path(tmp) / "ada", "Ada",
                       NodeConfig(listen=(LOOPBACK,), bootstrap=(eve.ready.addrs[0],)))
            started.append(await ada.start())
            bob = _fake_peer()[0].to_base58()  # never online
            invite_addr = "/ip4/127.0.0.1/tcp/9"  # where he was (nobody listens)
            await ada.client.add_contact(ContactInvite(bob, "Bob", (invite_addr,)).to_link())

            async def look_up(node: KithNode) -> None:
                node.contacts._dht_backoff.clear()  # as after a network change
                await node.contacts.dial(bob)

            for _ in range(3):
                await ada.client.call(look_up)

            async def book(node: KithNode) -> list[tuple[str, str]]:
                rows = node.db.execute(
                    "SELECT addr, source FROM peer_addrs WHERE peer_id = ?", (bob,))
                return [(r[0], r[1]) for r in rows]

            async def lookups(node: KithNode) -> int:
                return node.dht.lookups

            assert await ada.client.call(lookups) >= 3
            assert await ada.client.call(book) == [(invite_addr, "invite")]
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def test_lookup_answers_never_enter_a_contacts_address_book(tmp_path: Path) -> None:
    """Before: after two lookups all 32 entries were Eve's and the invite's address was gone."""
    in_loopback_netns(_poisoned_answers_stay_out_of_the_book, str(tmp_path))


def test_the_invites_addresses_are_never_evicted_for_others(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "kith.db")
    try:
        store = ContactStore(conn)
        peer = _fake_peer()[0].to_base58()
        invite = ["/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.2/tcp/4001"]
        store.add_addrs(peer, invite, "invite")
        for source in ("dht", "profile", "lan"):
            store.add_addrs(peer, [f"/ip4/198.51.100.{i}/tcp/1" for i in range(1, 41)], source)
        kept = store.addrs(peer)
        assert len(kept) == MAX_ADDRS_PER_PEER
        assert set(invite) <= set(kept)
        # A new invite's addresses may take the old ones' place.
        store.add_addrs(peer, [f"/ip4/203.0.113.{i}/tcp/1" for i in range(1, 33)], "invite")
        assert not set(invite) & set(store.addrs(peer))
    finally:
        conn.close()
