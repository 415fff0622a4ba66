"""No dial, however it ends, keeps a connection slot of py-libp2p's resource manager.

py-libp2p 0.8.1 loses one slot per handshake cancelled while the other side is silent; 1,000 lost
slots and the node can neither dial nor accept until it restarts. Each path Kith dials by has a
guard here: ``connect_at``, a contact's redials, DCUtR (the direct dial of step 0 and the
hole-punch dials), its responder-side dials, and circuit relay dials. The silent side is a port
that completes TCP handshakes and never says a word (``hostile.silent_listener``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from app.core.config import NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.host import connect_at
from app.node.libp2p_patches import SlotAccount, slot_account
from app.node.node import KithNode
from tests.attackers import record_dials, silent_listener
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer, peers

SHORT = 0.3  # seconds a dial of a silent port is given


async def _account(peer: Peer) -> SlotAccount:
    async def ask(node: KithNode) -> SlotAccount:
        return slot_account(node.host)

    return await peer.client.call(ask)


async def _settled(peer: Peer, timeout: float = 20) -> SlotAccount:
    """The account once no dial is in progress."""
    account = await _account(peer)
    deadline = asyncio.get_running_loop().time() + timeout
    while account.dialing:
        assert asyncio.get_running_loop().time() < deadline, f"dials never ended: {account}"
        await asyncio.sleep(0.05)
        account = await _account(peer)
    return account


def test_connect_at_a_silent_address_keeps_no_slot(tmp_path: Path) -> None:
    async def scenario() -> None:
        with silent_listener() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                stale = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}"

                async def dial(node: KithNode) -> bool:
                    return any([await connect_at(node.host, bob.peer_id, [stale], SHORT)
                                for _ in range(5)])

                assert not await ada.client.call(dial)
                account = await _settled(ada)
                assert account.leaked == 0 and account.counted == account.connections, account

                assert bob.ready is not None  # and a real connection is counted once
                async def dial_real(node: KithNode) -> bool:
                    return await connect_at(node.host, bob.peer_id, list(bob.ready.addrs), 5)

                assert await ada.client.call(dial_real)
                account = await _settled(ada)
                assert account.counted == account.connections == 1, account

    asyncio.run(scenario())


def test_redials_of_a_contact_at_a_silent_address_keep_no_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow leak without an attacker: a contact's stored address accepts TCP and stays
    silent (another program took the port, a half-dead NAT mapping); every redial used to
    lose a slot."""
    import app.node.contacts

    monkeypatch.setattr(app.node.contacts, "DIAL_TIMEOUT", SHORT)

    async def scenario() -> None:
        with silent_listener() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                stale = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}"
                await ada.client.add_contact(ContactInvite(bob.peer_id, "Bob", (stale,)).to_link())

                async def dials(node: KithNode) -> int:
                    return node.contacts.redialer.dials

                while await ada.client.call(dials) < 3:
                    await asyncio.sleep(0.05)
                account = await _settled(ada)
                assert account.leaked == 0 and account.counted == 0, account

    asyncio.run(scenario())


def test_cancelled_responder_dials_keep_no_slot(tmp_path: Path) -> None:
    """DCUtR's hole-punch initiator dials ``as responder`` (``dial_addr_as_responder``): the
    round that ends cancels every dial still in its handshake."""

    async def scenario() -> None:
        with silent_listener() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                from libp2p.peer.id import ID
                from multiaddr import Multiaddr

                stale = Multiaddr(f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}")

                async def dial(node: KithNode) -> None:
                    network = node.host.get_network()
                    for _ in range(3):
                        with trio.move_on_after(SHORT):
                            await network.dial_addr_as_responder(stale, ID.from_base58(bob.peer_id))

                await ada.client.call(dial)
                account = await _settled(ada)
                assert account.leaked == 0 and account.counted == 0, account

    asyncio.run(scenario())


# -- DCUtR and relay dials, in a namespace with loopback only ------------------------------


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
        from multiaddr import Multiaddr

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


def _dcutr_dials_keep_no_slot(tmp: str, step_zero: bool) -> None:
    if not step_zero:  # as tests/test_netns_dcutr.py: only the CONNECT/SYNC path is left
        from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

        async def skip(self: object, peer_id: object) -> bool:
            return False

        DCUtRProtocol._try_unilateral_upgrade = skip  # type: ignore[method-assign]

    async def scenario() -> None:
        started: list[Peer] = []
        with contextlib.ExitStack() as stack:
            silent = [stack.enter_context(silent_listener()) for _ in range(3)]
            extra = [f"/ip4/127.0.0.1/tcp/{s.getsockname()[1]}" for s in silent]
            try:
                # Bob, no contact of hers, never starts DCUtR: Ada's step 0 does the dialling.
                _relay, bob, ada = await _relayed_contacts(
                    Path(tmp), started, extra, mutual=not step_zero)

                async def shorten(node: KithNode) -> list[str]:
                    node._hole_punch.protocol.dial_timeout = 1  # type: ignore[union-attr]
                    return record_dials(node)

                dialled = await ada.client.call(shorten)
                await ada.wait_event("connection_upgraded", peer_id=bob.peer_id, timeout=30)
                for peer in (ada, bob):
                    account = await _settled(peer)
                    if peer is ada:
                        assert {strip_p2p(d) for d in dialled} & set(extra), dialled
                    assert account.leaked == 0, (peer.name, account)
                    assert account.counted == account.connections, (peer.name, account)
            finally:
                await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["step_zero", "hole_punch"])
def test_dcutr_dials_to_silent_addresses_keep_no_slot(tmp_path: Path, path: str) -> None:
    in_loopback_netns(_dcutr_dials_keep_no_slot, str(tmp_path), path == "step_zero")


def _relay_dials_keep_no_slot(tmp: str) -> None:
    """A relay that says yes to CONNECT and then forwards nothing: Ada's Noise handshake over
    the circuit hangs until her dial gives up."""

    async def scenario() -> None:
        started: list[Peer] = []
        try:
            relay = Peer(Path(tmp) / "relay", "Relay")
            started.append(await relay.start())
            ada = Peer(Path(tmp) / "ada", "Ada")
            started.append(await ada.start())
            bob_id = _fresh_peer_id()  # nobody: only the id is dialled

            async def hostile_hop(node: KithNode) -> None:
                from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage, Status
                from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID
                from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

                async def answer(stream: object) -> None:
                    await read_delimited_msg(stream, HopMessage)  # type: ignore[arg-type]
                    ok = HopMessage(type=HopMessage.STATUS, status=Status.OK)
                    await write_delimited_msg(stream, ok)  # type: ignore[arg-type]
                    await trio.sleep_forever()

                node.host.set_stream_handler(PROTOCOL_ID, answer)

            await relay.client.call(hostile_hop)
            assert relay.ready is not None
            circuit = f"{relay.ready.addrs[0]}/p2p-circuit"

            async def dial(node: KithNode) -> bool:
                return any([await connect_at(node.host, bob_id, [circuit], 1.0)
                            for _ in range(3)])

            assert not await ada.client.call(dial)
            account = await _settled(ada)
            assert account.leaked == 0, account
            assert account.counted == account.connections == 1, account  # the relay's
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def test_relay_circuit_dials_that_hang_keep_no_slot(tmp_path: Path) -> None:
    in_loopback_netns(_relay_dials_keep_no_slot, str(tmp_path))


def test_the_account_adds_up_while_dials_are_in_progress(tmp_path: Path) -> None:
    """Slots held by dials still in their handshake are counted as such, not as leaked."""

    async def scenario() -> None:
        with silent_listener() as silent:
            async with peers(tmp_path, "Ada") as (ada,):
                stale = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}"
                seen: list[SlotAccount] = []

                async def dial_and_look(node: KithNode) -> None:
                    async with trio.open_nursery() as nursery:
                        for _ in range(3):  # three peers: py-libp2p joins dials of one peer
                            nursery.start_soon(connect_at, node.host, _fresh_peer_id(), [stale], 5)
                        await _until(lambda: slot_account(node.host).dialing == 3)
                        seen.append(slot_account(node.host))
                        nursery.cancel_scope.cancel()

                await ada.client.call(dial_and_look)
                assert seen[0].counted == 3 and seen[0].leaked == 0, seen[0]
                assert (await _settled(ada)).counted == 0

    asyncio.run(scenario())


async def _until(check: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not check():
            await trio.sleep(0.01)


def _fresh_peer_id() -> str:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()
