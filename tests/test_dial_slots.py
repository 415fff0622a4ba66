"""No dial, however it ends, keeps a connection slot of py-libp2p's resource manager.

py-libp2p 0.8.1 loses one slot per handshake cancelled while the other side is silent; 1,000 lost
slots and the node can neither dial nor accept until it restarts. Each path Kith dials by has a
guard here: ``connect_at``, a contact's redials, DCUtR's responder-side dials, and circuit relay
dials. The silent side is a port
that completes TCP handshakes and never says a word (``hostile.silent_listener``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from app.core.invite import ContactInvite
from app.node.host import connect_at
from app.node.libp2p_patches import SlotAccount, slot_account
from app.node.node import KithNode
from tests.hostile import silent_listener
from tests.netns import in_loopback_netns
from tests.peers import Peer, peers

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
