"""A Kith's signed mailbox record in its DHT record: carried byte for byte by py-libp2p,
published by those who use a mailbox, learnt by a contact's lookup (real peers on 127.0.0.1),
and ignored when forged, someone else's or older."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.envelope import consume_envelope
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord, unmarshal_record
from libp2p.peer.peerstore import PeerStore, env_to_send_in_RPC
from multiaddr import Multiaddr

from app.core import mailbox as mb
from app.core.config import NodeConfig
from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.node.dht_records import MAX_RECORD_BYTES, mailbox_field, mailbox_record_in
from app.node.host import build_host, key_pair
from app.node.libp2p_patches.peer_record import seal_payload, set_extra_fields
from app.node.node import KithNode
from app.store.profile import Profile
from tests.attackers import answer_dht
from tests.peers import Peer, befriend

NOBODY = "/ip4/127.0.0.1/tcp/9"  # where nobody listens


def _record(owner: Identity, seq: int, *mailboxes: Identity) -> bytes:
    return mb.sign_record(owner, seq, [f"{NOBODY}/p2p/{m.peer_id}" for m in mailboxes])


def _envelope(signer: Identity, peer: Identity, mailbox_record: bytes | None) -> bytes:
    """A signed peer record of ``peer``'s, signed by ``signer``, carrying ``mailbox_record``."""
    payload = PeerRecord(ID.from_base58(peer.peer_id), [Multiaddr(NOBODY)]).marshal_record()
    if mailbox_record is not None:
        payload += mailbox_field(mailbox_record)
    return seal_payload(key_pair(signer).private_key, payload).marshal_envelope()


# -- what py-libp2p does with the field --------------------------------------------------------


def test_the_field_rides_through_py_libp2p_byte_for_byte() -> None:
    """Checked, stored and forwarded as a DHT server does (peerstore, then marshal), the
    envelope keeps the field; py-libp2p's own reading of the record skips it."""
    bob = Identity.generate()
    record = _record(bob, 1767225600000, Identity.generate())
    raw = _envelope(bob, bob, record)
    envelope, peer_record = consume_envelope(raw, "libp2p-peer-record")  # signature checked
    assert peer_record.peer_id == ID.from_base58(bob.peer_id)
    assert [str(a) for a in peer_record.addrs] == [NOBODY]
    store = PeerStore()
    assert store.consume_peer_record(envelope, 7200)
    held = store.get_peer_record(ID.from_base58(bob.peer_id))
    assert held is not None and held.marshal_envelope() == raw
    assert mailbox_record_in(held.raw_payload) == record
    plain = unmarshal_record(held.raw_payload)  # what a peer that knows no such field reads
    assert (plain.peer_id, plain.addrs, plain.seq) == (
        peer_record.peer_id, peer_record.addrs, peer_record.seq)
    assert mailbox_record_in(_envelope_payload(_envelope(bob, bob, None))) is None
    # Given twice, the last counts (as any protobuf parser reads a field given twice).
    assert mailbox_record_in(mailbox_field(b"first") + mailbox_field(record)) == record


def _envelope_payload(raw: bytes) -> bytes:
    return consume_envelope(raw, "libp2p-peer-record")[0].raw_payload


def test_our_record_carries_the_field_when_py_libp2p_signs_it_anew(tmp_path: Path) -> None:
    """py-libp2p re-signs our record whenever our addresses change; the field stays. One that
    would exceed what a Kith accepts goes without it."""
    me = Identity.generate()
    host = build_host(me, [Multiaddr("/ip4/127.0.0.1/tcp/0")])
    record = _record(me, 1, Identity.generate())
    set_extra_fields(host, mailbox_field(record))
    first, _ = env_to_send_in_RPC(host)
    assert mailbox_record_in(_envelope_payload(first)) == record
    host.get_peerstore().set_local_record(  # as if our addresses had changed since
        consume_envelope(_envelope(me, me, None), "libp2p-peer-record")[0])
    again, renewed = env_to_send_in_RPC(host)
    assert renewed and again != first
    assert mailbox_record_in(_envelope_payload(again)) == record
    set_extra_fields(host, mailbox_field(b"x" * MAX_RECORD_BYTES))
    oversized, _ = env_to_send_in_RPC(host)
    assert len(oversized) <= MAX_RECORD_BYTES
    assert mailbox_record_in(_envelope_payload(oversized)) is None
    set_extra_fields(host, b"")


# -- between real peers ------------------------------------------------------------------------


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


def _config(*, boot: tuple[str, ...] = (), serve_dht: bool = False, serve_mailbox: bool = False,
            mailboxes: tuple[str, ...] = ()) -> NodeConfig:
    return NodeConfig(listen=("/ip4/127.0.0.1/tcp/0",), bootstrap=boot, serve_dht=serve_dht,
                      serve_mailbox=serve_mailbox, mailboxes=mailboxes)


async def _poll(peer: Peer, check: Callable[[KithNode], object], what: str) -> Any:
    """Ask the node's own thread until ``check`` gives something true (20 s at most)."""

    async def ask(node: KithNode) -> object:
        return check(node)

    deadline = asyncio.get_running_loop().time() + 20
    while not (found := await peer.client.call(ask)):
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)
    return found


def _profile_id(path: Path, name: str) -> str:
    profile = Profile.open(path)
    if not profile.is_initialised:
        profile.initialise(name)
    peer_id = profile.identity.peer_id
    profile.close()
    return peer_id


def test_a_mailbox_changed_while_the_sender_was_away_is_learnt_from_the_dht(
    tmp_path: Path,
) -> None:
    """Bob moves from Mia's mailbox to Max's while Ada is offline, and goes offline himself.
    Ada, who holds only his record naming Mia, finds the new one in his DHT record (held by
    Dee, a serving DHT node) and leaves her message with Max; Bob collects it there."""

    async def scenario() -> None:
        running: list[Peer] = []

        async def start(name: str, config: NodeConfig) -> Peer:
            peer = await Peer(tmp_path / name.lower(), name, config).start()
            running.append(peer)
            return peer

        async def stop(peer: Peer) -> None:
            running.remove(peer)
            await peer.stop()

        try:
            dee = await start("Dee", _config(serve_dht=True))
            assert dee.ready is not None
            boot = (dee.ready.addrs[0],)
            mia = await start("Mia", _config(serve_mailbox=True))
            max_ = await start("Max", _config(serve_mailbox=True))
            bob_id = _profile_id(tmp_path / "bob", "Bob")
            for mailbox in (mia, max_):
                await mailbox.client.add_contact(ContactInvite(bob_id, "Bob").to_link())
            addr_of = {m.peer_id: m.ready.addrs[0] for m in (mia, max_) if m.ready}

            bob = await start("Bob", _config(boot=boot, mailboxes=(addr_of[mia.peer_id],)))
            await bob.wait_event("mailbox_registered", mailbox=mia.peer_id)
            ada = await start("Ada", _config(boot=boot))
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id,
                                 mailboxes=(mia.peer_id,))
            await stop(ada)
            await stop(bob)

            bob = await start("Bob", _config(boot=boot, mailboxes=(addr_of[max_.peer_id],)))
            await bob.wait_event("mailbox_registered", mailbox=max_.peer_id)
            await _poll(bob, lambda node: node.dht.published, "Bob never published")

            def held_by_dee(node: KithNode) -> bytes | None:
                envelope = node.host.get_peerstore().get_peer_record(ID.from_base58(bob_id))
                return None if envelope is None else mailbox_record_in(envelope.raw_payload)

            held = await _poll(dee, held_by_dee, "Dee holds no mailbox record of Bob's")
            assert mb.verify_record(bob_id, held).mailbox_ids() == [max_.peer_id]
            await stop(bob)

            ada = await start("Ada", _config(boot=boot))  # Bob is offline: only the DHT knows
            await ada.wait_event("contact_mailboxes", peer_id=bob_id, mailboxes=(max_.peer_id,))
            note = await ada.client.send(bob_id, "left with your new mailbox")
            await ada.wait_event("deposited", id=note.id, mailbox=max_.peer_id)
            assert (await mia.client.mailbox_status()).held == 0
            await stop(ada)

            bob = await start("Bob", _config(boot=boot, mailboxes=(addr_of[max_.peer_id],)))
            (got,) = await bob.wait_event("message", id=note.id)
            assert got.via == "mailbox"  # type: ignore[attr-defined]
        finally:
            await asyncio.gather(*(p.stop() for p in running), return_exceptions=True)

    run(scenario)


def test_a_forged_stale_or_foreign_mailbox_record_in_the_dht_is_ignored(tmp_path: Path) -> None:
    """Eve, Ada's bootstrap peer, answers each lookup of Bob (offline) with a record of her
    making. Only Bob's own, newer record changes where Ada leaves his mail; the first one Ada
    learns sends her waiting message to the mailbox it names at once."""
    bob, mallory, carol = Identity.generate(), Identity.generate(), Identity.generate()
    second = Identity.generate()  # a mailbox Bob uses later
    elsewhere = Identity.generate()  # where a forger wants Bob's mail to go
    seq = 1767225600000
    answer = [b""]

    def answer_lookup(request: Any) -> bytes:
        response = Message(type=Message.MessageType.FIND_NODE, key=request.key)
        if request.key == ID.from_base58(bob.peer_id).to_bytes() and answer[0]:
            entry = response.closerPeers.add()
            entry.id = request.key
            entry.signedRecord = answer[0]
        return response.SerializeToString()

    async def scenario() -> None:
        running: list[Peer] = []
        try:
            eve = await Peer(tmp_path / "eve", "Eve").start()
            running.append(eve)
            requests = await eve.client.call(lambda node: _now(answer_dht(node, answer_lookup)))
            mia = await Peer(tmp_path / "mia", "Mia", _config(serve_mailbox=True)).start()
            running.append(mia)
            assert eve.ready is not None and mia.ready is not None
            ada = await Peer(tmp_path / "ada", "Ada", _config(boot=(eve.ready.addrs[0],))).start()
            running.append(ada)
            await ada.client.add_contact(ContactInvite(bob.peer_id, "Bob", (NOBODY,)).to_link())
            note = await ada.client.send(bob.peer_id, "where do I leave this?")
            await _poll(ada, lambda n: n.dht.lookups and not n.dms._active,
                        "Ada's first attempt never ended")  # no record: nothing deposited

            at_mia = mb.sign_record(bob, seq, [mia.ready.addrs[0]])
            cases: list[tuple[str, bytes, int]] = [  # what Eve answers; the seq Ada holds after
                ("Bob's own record", _envelope(bob, bob, at_mia), seq),
                ("signed by another key",
                 _envelope(bob, bob, _record(mallory, seq + 5, elsewhere)), seq),
                ("another peer's record",
                 _envelope(bob, bob, _record(carol, seq + 5, elsewhere)), seq),
                ("an older record of Bob's",
                 _envelope(bob, bob, _record(bob, seq - 1, elsewhere)), seq),
                ("Bob's peer record signed by another key",
                 _envelope(mallory, bob, _record(bob, seq + 5, elsewhere)), seq),
                ("Bob's newer record", _envelope(bob, bob, _record(bob, seq + 9, second)),
                 seq + 9),
            ]

            async def look_up(node: KithNode) -> mb.MailboxRecord | None:
                node.contacts._dht_backoff.clear()  # as after a network change
                await node.contacts.dial(bob.peer_id)
                return node.mailboxes.record_of(bob.peer_id)

            for number, (what, envelope, held) in enumerate(cases):
                answer[0] = envelope
                asked = len(requests)
                record = await ada.client.call(look_up)
                assert len(requests) > asked, what
                assert record is not None and record.seq == held, what
                if not number:  # Mia was asked at once (she refuses: Bob is no user of hers)
                    await ada.wait_event("deposit_refused", id=note.id, mailbox=mia.peer_id)
            assert record is not None and record.mailbox_ids() == [second.peer_id]
            learnt = [e.mailboxes for e in ada.named("contact_mailboxes")]  # type: ignore[attr-defined]
            assert learnt == [(mia.peer_id,), (second.peer_id,)]
        finally:
            await asyncio.gather(*(p.stop() for p in running), return_exceptions=True)

    run(scenario)


async def _now(value: Any) -> Any:
    return value


@pytest.mark.parametrize("bootstrap", [False, True])
def test_only_a_kith_that_uses_a_mailbox_and_the_dht_carries_it(
    tmp_path: Path, bootstrap: bool,
) -> None:
    """Without bootstrap peers nobody looks us up: the record stays out of what identify shows
    strangers. Without a mailbox there is nothing to carry."""

    async def scenario() -> None:
        boot = ("/ip4/127.0.0.1/tcp/9/p2p/" + Identity.generate().peer_id,) if bootstrap else ()
        mailbox = f"{NOBODY}/p2p/{Identity.generate().peer_id}"
        users = [Peer(tmp_path / "bob", "Bob", _config(boot=boot, mailboxes=(mailbox,))),
                 Peer(tmp_path / "ada", "Ada", _config(boot=boot))]
        try:
            for peer in users:
                await peer.start()

            def carried(node: KithNode) -> Awaitable[bytes | None]:
                raw, _ = env_to_send_in_RPC(node.host)
                return _now(mailbox_record_in(_envelope_payload(raw)))

            bob, ada = users
            found = await bob.client.call(carried)
            if bootstrap:
                assert found is not None
                assert mb.verify_record(bob.peer_id, found).mailboxes == (mailbox,)
            else:
                assert found is None
            assert await ada.client.call(carried) is None
        finally:
            await asyncio.gather(*(p.stop() for p in users), return_exceptions=True)

    run(scenario)
