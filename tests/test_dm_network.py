"""Direct messages between real peers in one process on 127.0.0.1, including hostile ones."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from app.core import dm
from app.core.identity import Identity, public_key_from_peer_id
from app.core.records import ContactState, Delivery
from app.node import dm as dm_node
from app.node.contacts import ContactError
from app.node.framing import encode_frame, encode_varint, read_frame
from app.node.node import KithNode
from tests.peers import Peer, befriend, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


def test_conversation_both_ways_with_states_and_history(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            sent = await ada.client.send(bob.peer_id, "hello Bob ✓")
            assert sent.state is Delivery.SENDING
            (got,) = await bob.wait_event("message")
            assert (got.from_, got.text, got.id, got.request, got.via) == (  # type: ignore[attr-defined]
                ada.peer_id, "hello Bob ✓", sent.id, False, "direct"
            )
            await ada.wait_event("delivered", id=sent.id)
            assert ada.named("transmitted")[0].id == sent.id  # type: ignore[attr-defined]
            reply = await bob.client.send(ada.peer_id, "hi Ada")
            await ada.wait_event("message", id=reply.id)
            await bob.wait_event("delivered", id=reply.id)
            history = await ada.client.history(bob.peer_id)
            assert [(m.text, m.outgoing, m.state) for m in history] == [
                ("hello Bob ✓", True, Delivery.DELIVERED),
                ("hi Ada", False, Delivery.RECEIVED),
            ]
            info = await ada.client.contact(bob.peer_id)
            assert info is not None and info.unread == 1 and info.online
            assert info.last_message == "hi Ada" and info.name == "Bob"
            await ada.client.mark_read(bob.peer_id)
            assert await ada.client.unread_total() == 0

    run(scenario)


def test_burst_of_200_arrives_once_and_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            for i in range(200):
                await ada.client.send(bob.peer_id, f"burst {i}")
            await ada.wait_event("delivered", count=200, timeout=60)
            await bob.wait_event("message", count=200)
            texts = [e.text for e in bob.named("message")]  # type: ignore[attr-defined]
            assert texts == [f"burst {i}" for i in range(200)]
            history = await bob.client.history(ada.peer_id, limit=1000)
            assert [m.text for m in history] == texts

    run(scenario)


def test_outbox_waits_for_an_offline_contact(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            bob = await Peer(tmp_path / "bob", "Bob").start()
            bob_invite = bob.invite
            await bob.stop()
            await ada.client.add_contact(bob_invite)
            ids = [(await ada.client.send(bob.peer_id, f"m{i}")).id for i in range(3)]
            assert {m.state for m in await ada.client.history(bob.peer_id)} == {Delivery.SENDING}
            # Bob comes back on another port; he knows Ada from her invite and dials her.
            bob = await Peer(tmp_path / "bob", "Bob").start()
            try:
                await bob.client.add_contact(ada.invite)
                await bob.wait_event("message", count=3)
                assert [e.id for e in bob.named("message")] == ids  # type: ignore[attr-defined]
                await ada.wait_event("delivered", count=3)
            finally:
                await bob.stop()

    run(scenario)


def test_a_stranger_lands_in_requests_and_can_be_blocked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Eve") as (ada, eve):
            await eve.client.add_contact(ada.invite)
            await eve.client.send(ada.peer_id, "let me in")
            (got,) = await ada.wait_event("message")
            assert got.request  # type: ignore[attr-defined]
            info = await ada.client.contact(eve.peer_id)
            assert info is not None and info.state is ContactState.REQUEST
            await ada.wait_for(lambda: any(
                e.contact.their_name == "Eve"  # type: ignore[attr-defined]
                for e in ada.named("contact")
            ), what="Eve's name from her profile")
            await ada.client.block(eve.peer_id)
            # Refused at the protocol level: the stream ends without an acknowledgement.
            attempt = dm.encode_message(
                eve.profile.identity, ada.peer_id, "still there?",
                message_id=dm.new_message_id(), sent_at_ms=6,
            )
            outcome = await eve.client.call(
                lambda node: _raw_exchange(node, ada.peer_id, encode_frame(attempt))
            )
            assert outcome == ("ended", [])
            assert len(ada.named("message")) == 1
            assert len(await ada.client.history(eve.peer_id)) == 1
            with pytest.raises(ContactError, match="blocked"):
                await ada.client.send(eve.peer_id, "hi")

    run(scenario)


def test_text_limits(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await ada.client.add_contact(bob.invite)
            with pytest.raises(dm.MessageTooLarge, match="too long"):
                await ada.client.send(bob.peer_id, "x" * (dm.MAX_TEXT_BYTES + 1))
            with pytest.raises(dm.EmptyMessage):
                await ada.client.send(bob.peer_id, "")
            await ada.client.send(bob.peer_id, "é" * (dm.MAX_TEXT_BYTES // 2))
            await ada.wait_event("delivered")

    run(scenario)


# -- hostile peers ----------------------------------------------------------------------------


async def _raw_exchange(
    node: KithNode, peer_id: str, data: bytes, replies_wanted: int = 1
) -> tuple[str, list[bytes]]:
    """Write raw bytes on a fresh DM stream: ("replied", replies) or ("ended", replies so far).

    A peer that neither replies nor ends the stream within 10 s fails the test.
    """
    replies: list[bytes] = []
    try:
        with trio.fail_after(10):
            stream = await node.host.new_stream(ID.from_base58(peer_id),
                                                [TProtocol(dm.PROTOCOL_ID)])
            await stream.write(data)
            while len(replies) < replies_wanted:
                replies.append(await read_frame(stream, dm.MAX_FRAME))
            return "replied", replies
    except trio.TooSlowError:
        raise AssertionError("the peer neither replied nor ended the stream") from None
    except Exception:  # noqa: BLE001 - the point: the peer ended the stream
        return "ended", replies


def _forged_signature(sender: Identity, recipient: str) -> bytes:
    inner = dm.encode_inner(
        sender, public_key_from_peer_id(recipient), b"forged",
        message_id=dm.new_message_id(), sent_at_ms=1,
    )
    return dm.seal_inner(sender, recipient, inner[:-64] + bytes(64))


@pytest.mark.parametrize(
    "attack",
    ["forged signature", "encrypted to someone else", "oversized frame", "garbage", "replay"],
)
def test_hostile_frames_are_dropped_and_the_connection_stays_usable(
    tmp_path: Path, attack: str
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Mallory") as (ada, mallory):
            await befriend(ada, mallory)
            me = mallory.profile.identity
            valid = dm.encode_message(
                me, ada.peer_id, "genuine", message_id=dm.new_message_id(), sent_at_ms=5
            )
            payloads = {
                "forged signature": encode_frame(_forged_signature(me, ada.peer_id)),
                "encrypted to someone else": encode_frame(dm.encode_message(
                    me, Identity.generate().peer_id, "not for Ada",
                    message_id=dm.new_message_id(), sent_at_ms=5,
                )),
                "oversized frame": encode_varint(dm.MAX_FRAME + 1) + b"\x01" * 1000,
                "garbage": b"\x05" + b"\xff\x00garbage",
                "replay": encode_frame(valid) + encode_frame(valid),
            }
            wanted = 2 if attack == "replay" else 1
            outcome = await mallory.client.call(
                lambda node: _raw_exchange(node, ada.peer_id, payloads[attack], wanted)
            )
            if attack == "replay":
                ack = dm.encode_ack(dm.decode_message(
                    ada.profile.identity, mallory.peer_id, valid).message_id)
                assert outcome == ("replied", [ack, ack])  # acked twice, stored and shown once
                await ada.wait_event("message")
                assert len(await ada.client.history(mallory.peer_id)) == 1
            else:
                assert outcome == ("ended", [])  # the stream was reset without a reply
                assert not ada.named("message")
            # The same connection still carries a genuine message.
            follow_up = await mallory.client.send(ada.peer_id, "after the attack")
            await mallory.wait_event("delivered", id=follow_up.id)
            assert ada.named("message")[-1].text == "after the attack"  # type: ignore[attr-defined]
            assert ada.client.running

    run(scenario)


def test_a_message_whose_ack_cannot_be_written_is_shown_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipient stores a message, then cannot write its ACK (the sender just died): the
    message is shown and counted all the same, once, and the resend is only acknowledged."""
    real_write = dm_node.write_frame
    broken: list[bytes] = []

    async def write_fails_once(stream: Any, payload: bytes) -> None:
        if not broken:
            broken.append(payload)
            raise trio.BrokenResourceError("the sender went away")
        await real_write(stream, payload)

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            monkeypatch.setattr(dm_node, "write_frame", write_fails_once)  # Bob's replies
            sent = await ada.client.send(bob.peer_id, "are you there?")
            await ada.wait_event("delivered", id=sent.id)  # acknowledged on the resend
            assert broken == [dm.encode_ack(bytes.fromhex(sent.id))]
            (shown,) = await bob.wait_event("message", id=sent.id)
            assert shown.text == "are you there?"  # type: ignore[attr-defined]
            await bob.wait_event("unread", total=1)
            await bob.wait_for(lambda: any(
                e.contact.peer_id == ada.peer_id and e.contact.unread == 1  # type: ignore[attr-defined]
                and e.contact.last_message == "are you there?"  # type: ignore[attr-defined]
                for e in bob.named("contact")), what="Ada's entry updated")
            assert len(bob.named("message")) == 1
            assert await bob.client.unread_total() == 1

    run(scenario)
