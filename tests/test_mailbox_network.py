"""Mailboxes between real peers in one process on 127.0.0.1: quotas, restarts, receipts, and
strangers who try the mailbox protocol by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from app.core import dm
from app.core import mailbox as mb
from app.core.identity import Identity
from app.core.records import Delivery
from app.node.framing import encode_frame, encode_varint, read_frame
from app.node.host import connect_at
from app.node.mailbox import MailboxLimits
from app.node.mailbox import client as mailbox_client
from app.node.node import KithNode
from tests.mailbox_cast import cast, config, port_of
from tests.peers import Peer, befriend

T = TypeVar("T")


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


async def _now(value: T) -> T:
    return value


async def _status(peer: Peer) -> Any:
    return await peer.client.mailbox_status()


async def _wait_held(peer: Peer, count: int) -> None:
    held: list[int] = []

    async def check() -> bool:
        held.append((await _status(peer)).held)
        return held[-1] == count

    deadline = asyncio.get_running_loop().time() + 20
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"held {held[-1]}, not {count}"
        await asyncio.sleep(0.05)


def test_a_full_mailbox_refuses_clearly_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            mia_port = port_of(mia)
            bob = await c.user("Bob", mia)
            bob_port = port_of(bob)
            ada = await c.start("Ada", config())
            ada_port = port_of(ada)
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)

            def small(node: KithNode) -> Awaitable[None]:
                assert node._mailbox_service is not None
                node._mailbox_service.limits = MailboxLimits(user_items=2)
                return _now(None)

            await mia.client.call(small)
            await c.stop(bob)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)

            sent = [await ada.client.send(bob.peer_id, f"note {i}") for i in range(3)]
            for message in sent[:2]:
                await ada.wait_event("deposited", id=message.id, mailbox=mia.peer_id)
            (refused,) = await ada.wait_event("deposit_refused", id=sent[2].id)
            assert refused.mailbox == mia.peer_id  # type: ignore[attr-defined]
            assert "full" in refused.reason  # type: ignore[attr-defined]
            states = [m.state for m in await ada.client.history(bob.peer_id)]
            assert states == [Delivery.SENT, Delivery.SENT, Delivery.SENDING]  # all kept

            await c.stop(ada)
            await c.stop(mia)  # what it holds is on disk
            mia = await c.mia(mia_port)
            assert (await _status(mia)).held == 2

            bob = await c.user("Bob", mia, bob_port)
            got = await bob.wait_event("message", count=2)
            assert [m.id for m in got] == [m.id for m in sent[:2]]  # type: ignore[attr-defined]
            assert [m.via for m in got] == ["mailbox", "mailbox"]  # type: ignore[attr-defined]
            ada = await c.start("Ada", config(ada_port))  # the refused one comes directly
            got = await bob.wait_event("message", count=3, timeout=60)
            assert [m.id for m in got] == [m.id for m in sent]  # type: ignore[attr-defined]
            for message in sent:
                await ada.wait_event("delivered", id=message.id, timeout=60)
            await _wait_held(mia, 0)
            assert len(bob.named("message")) == 3

    run(scenario)


def test_the_acknowledgement_comes_back_through_the_senders_own_mailbox(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            ada = await c.user("Ada", mia)
            ada_port = port_of(ada)
            bob = await c.user("Bob", mia)
            bob_port = port_of(bob)
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            await bob.wait_event("contact_mailboxes", peer_id=ada.peer_id)

            await c.stop(bob)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)
            note = await ada.client.send(bob.peer_id, "for the morning")
            await ada.wait_event("deposited", id=note.id)
            await c.stop(ada)

            bob = await c.user("Bob", mia, bob_port)
            (got,) = await bob.wait_event("message", id=note.id)
            assert got.via == "mailbox"  # type: ignore[attr-defined]
            await bob.wait_event("deposited", kind=dm.KIND_MAILBOX_RECEIPT, mailbox=mia.peer_id)
            await _wait_held(mia, 1)  # Bob's receipt, held for Ada
            await c.stop(bob)

            ada = await c.user("Ada", mia, ada_port)  # Bob is offline: only Mia can say it
            await ada.wait_event("delivered", id=note.id)
            history = await ada.client.history(bob.peer_id)
            assert [m.state for m in history] == [Delivery.DELIVERED]
            await _wait_held(mia, 0)

    run(scenario)


# -- strangers and block lists ----------------------------------------------------------------


async def _exchange(node: KithNode, addr: str, data: bytes, answers: int = 1
                    ) -> tuple[str, list[mb.Answer]]:
    """Write raw bytes on a fresh mailbox stream: ("answered", answers) or ("ended", ...)."""
    peer_id = mb.mailbox_peer_id(addr)
    assert await connect_at(node.host, peer_id, [addr], 10)
    got: list[mb.Answer] = []
    try:
        with trio.fail_after(10):
            stream = await node.host.new_stream(ID.from_base58(peer_id),
                                                [TProtocol(mb.PROTOCOL_ID)])
            await stream.write(data)
            while len(got) < answers:
                got.append(mb.decode_answer(await read_frame(stream, mb.MAX_ANSWER)))
            await stream.close()
            return "answered", got
    except trio.TooSlowError:
        raise AssertionError("the mailbox neither answered nor ended the stream") from None
    except Exception:  # noqa: BLE001 - the point: the mailbox ended the stream
        return "ended", got


def _request(request: mb.Request) -> bytes:
    return encode_frame(mb.encode_request(request))


def test_strangers_cannot_register_or_fetch_and_blocked_senders_cannot_deposit(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            bob = await c.user("Bob", mia)
            eve = await c.start("Eve", config())

            async def ask(data: bytes, answers: int = 1) -> tuple[str, list[mb.Answer]]:
                return await eve.client.call(
                    lambda node: _exchange(node, c.mia_addr, data, answers))

            def refused(code: int) -> tuple[str, list[mb.Answer]]:
                return "answered", [mb.Refused(code, mb.REFUSED_REASONS[code])]

            note = dm.encode_message(eve.profile.identity, bob.peer_id, "hello Bob",
                                     message_id=dm.new_message_id(), sent_at_ms=1)
            stranger = Identity.generate().peer_id
            assert await ask(_request(mb.Register())) == refused(mb.REFUSED_NOT_CONTACT)
            assert await ask(_request(mb.Fetch())) == refused(mb.REFUSED_NOT_REGISTERED)
            assert await ask(_request(mb.Delete((1,)))) == refused(mb.REFUSED_NOT_REGISTERED)
            # Not a user, and a user who does not take your mail, look the same.
            assert await ask(_request(mb.Deposit(stranger, note))) == refused(
                mb.REFUSED_NOT_ACCEPTED)
            # A malformed request is answered alone; the next one on the stream still counts.
            assert await ask(encode_frame(b"\x7f") + _request(mb.Deposit(bob.peer_id, note)),
                             2) == ("answered", [
                mb.Refused(mb.REFUSED_MALFORMED, mb.REFUSED_REASONS[mb.REFUSED_MALFORMED]),
                mb.Ok()])
            assert (await ask(encode_varint(mb.MAX_REQUEST + 1) + b"\x02" * 100))[0] == "ended"
            await _wait_held(mia, 1)

            await bob.client.block(eve.peer_id)  # Bob's block list reaches his mailbox
            await bob.wait_event("mailbox_registered", count=2, mailbox=mia.peer_id)
            assert await ask(_request(mb.Deposit(bob.peer_id, note))) == refused(
                mb.REFUSED_NOT_ACCEPTED)
            # What Eve left before is collected and dropped: Bob blocks her.
            await _wait_held(mia, 0)
            assert not bob.named("message")
            assert (await _status(mia)).users == 1 and mia.client.running

    run(scenario)


def test_a_forged_or_stale_mailbox_record_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            ada = await c.start("Ada", config())
            bob = await c.start("Bob", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)  # Bob uses none
            mallory = Identity.generate()
            mailbox = f"/ip4/127.0.0.1/tcp/9/p2p/{mallory.peer_id}"

            def learn(raw: bytes) -> Callable[[KithNode], Awaitable[bool]]:
                return lambda node: _now(node.mailboxes.learn_record(bob.peer_id,
                                                                      mb.record_text(raw)))

            forged = mb.sign_record(mallory, 2**62, [mailbox])
            assert not await ada.client.call(learn(forged))
            tampered = bytearray(mb.sign_record(bob.profile.identity, 2**62, [mailbox]))
            tampered[20] ^= 1
            assert not await ada.client.call(learn(bytes(tampered)))
            genuine = mb.sign_record(bob.profile.identity, 2**62, [mailbox])
            assert await ada.client.call(learn(genuine))
            older = mb.sign_record(bob.profile.identity, 2**62 - 1, [])
            assert not await ada.client.call(learn(older))  # a replayed old record
            changes = ada.named("contact_mailboxes")
            assert [e.mailboxes for e in changes] == [  # type: ignore[attr-defined]
                (), (mallory.peer_id,)]

    run(scenario)


def test_an_invite_carries_the_signed_record_so_mail_waits_from_the_first_message(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            bob = await c.user("Bob", mia)
            invite = bob.invite
            assert "mailboxes=" in invite
            await c.stop(bob)
            ada = await c.start("Ada", config())  # has never met Bob online
            await ada.client.add_contact(invite)
            (learned,) = await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            assert learned.mailboxes == (mia.peer_id,)  # type: ignore[attr-defined]
            note = await ada.client.send(bob.peer_id, "welcome")
            await ada.wait_event("deposited", id=note.id, mailbox=mia.peer_id)
            bob = await c.user("Bob", mia)
            (got,) = await bob.wait_event("message", id=note.id)
            assert got.via == "mailbox" and got.request  # type: ignore[attr-defined]

    run(scenario)


def test_a_mailbox_out_of_reach_gets_the_messages_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_client, "DEPOSIT_RETRY", 0.2)  # two minutes, in production

    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            mia_port = port_of(mia)
            bob = await c.user("Bob", mia)
            ada = await c.start("Ada", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            await c.stop(bob)
            await c.stop(mia)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)
            note = await ada.client.send(bob.peer_id, "are you there?")
            assert not ada.named("deposited")
            mia = await c.mia(mia_port)
            await ada.wait_event("deposited", id=note.id, mailbox=mia.peer_id)
            await _wait_held(mia, 1)

    run(scenario)


def test_one_sender_is_held_to_its_rate_and_its_share(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            await c.user("Bob", mia)
            bob_id = (await mia.client.contacts())[0].peer_id
            eve = await c.start("Eve", config())

            def limits(new: MailboxLimits) -> Callable[[KithNode], Awaitable[None]]:
                def apply(node: KithNode) -> Awaitable[None]:
                    assert node._mailbox_service is not None
                    node._mailbox_service.limits = new
                    return _now(None)
                return apply

            def deposits(count: int) -> bytes:
                return b"".join(_request(mb.Deposit(bob_id, dm.encode_message(
                    eve.profile.identity, bob_id, f"note {i}", message_id=dm.new_message_id(),
                    sent_at_ms=1))) for i in range(count))

            async def codes(count: int) -> list[int]:
                outcome, answers = await eve.client.call(
                    lambda node: _exchange(node, c.mia_addr, deposits(count), count))
                assert outcome == "answered"
                return [a.code if isinstance(a, mb.Refused) else 0 for a in answers]

            await mia.client.call(limits(MailboxLimits(sender_items=2)))
            assert await codes(3) == [0, 0, mb.REFUSED_FULL]  # Eve's share for Bob is full
            await mia.client.call(limits(MailboxLimits(deposit_burst=1, deposit_rate=0.001)))
            assert await codes(2) == [0, mb.REFUSED_RATE]  # a bigger share, but too fast
            await _wait_held(mia, 3)
            notices = [e.limit for e in mia.named("limit_reached")]  # type: ignore[attr-defined]
            assert "mailbox_quota" in notices and "mailbox_rate" in notices

    run(scenario)
