"""A file reaches only its audience: real peers on 127.0.0.1 pulling what they should not.

The puller speaks ``/kith/file/1.0.0`` itself from its own node, as a modified Kith would: its
own Kith may still believe the offer stands (it is never told it was revoked).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import trio
from libp2p.peer.id import ID

from app.core import files as fc
from app.node.files import PROTOCOL_ID
from app.node.framing import read_frame, write_frame
from app.node.node import KithNode
from tests.payload import MiB, file_hash, make_file
from tests.peers import Peer, befriend, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


async def _pull(puller: Peer, holder: Peer, transfer: str, op: int,
                indexes: tuple[int, ...] = ()) -> bytes | str:
    """One request from ``puller`` to ``holder``: the first answer frame, or why none came."""

    async def request(node: KithNode) -> bytes | str:
        try:
            with trio.fail_after(10):
                stream = await node.host.new_stream(ID.from_base58(holder.peer_id),
                                                    [PROTOCOL_ID])
                try:
                    await write_frame(stream, fc.encode_request(bytes.fromhex(transfer), op,
                                                                indexes))
                    return await read_frame(stream, fc.MAX_RESPONSE)
                finally:
                    await stream.reset()
        except Exception as exc:  # noqa: BLE001 - a refusal is a reset stream
            return f"refused: {type(exc).__name__}"

    return await puller.client.call(request)


def test_removing_a_contact_revokes_every_offer_to_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "private.bin"
        make_file(source, 3 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            offer = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=offer.transfer)
            first = await _pull(bob, ada, offer.transfer, fc.OP_GET_CHUNKS, (0,))
            assert isinstance(first, bytes) and first[4:] == source.read_bytes()[:MiB]

            await ada.client.remove_contact(bob.peer_id)
            for op, indexes in ((fc.OP_GET_HASHES, ()), (fc.OP_GET_CHUNKS, (1,)),
                                (fc.OP_HAVE, ())):
                got = await _pull(bob, ada, offer.transfer, op, indexes)
                assert isinstance(got, str) and got.startswith("refused"), (op, got[:20])
            await ada.wait_event("file_cancelled", transfer=offer.transfer, by="me")

            # Becoming a contact again does not bring the offer back.
            await ada.client.add_contact(bob.invite)
            got = await _pull(bob, ada, offer.transfer, fc.OP_GET_CHUNKS, (1,))
            assert isinstance(got, str) and got.startswith("refused")
            (mine,) = [t for t in await ada.client.transfers() if t.transfer == offer.transfer]
            assert mine.state == "cancelled"

    run(scenario)


def test_a_direct_transfer_is_not_served_after_complete(tmp_path: Path) -> None:
    """docs/protocol.md 9.3: once the receiver sent ``complete``, the sender serves nothing
    more of it (a receiver that lost the file is sent it again)."""

    async def scenario() -> None:
        source = tmp_path / "once.bin"
        make_file(source, MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            offer = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=offer.transfer)
            await bob.client.accept_file(offer.transfer, str(tmp_path / "inbox"))
            await ada.wait_event("file_complete", transfer=offer.transfer)
            for op, indexes in ((fc.OP_GET_CHUNKS, (0,)), (fc.OP_GET_HASHES, ())):
                got = await _pull(bob, ada, offer.transfer, op, indexes)
                assert isinstance(got, str) and got.startswith("refused"), (op, got[:20])

    run(scenario)


def test_a_room_member_serves_only_the_offered_bytes(tmp_path: Path) -> None:
    """Bob downloaded a room file, deleted it, and saved a private file of the same size under
    the same name. Cy, a member, asks Bob for the room file: she gets nothing of the private
    file, and Bob stops saying he holds it."""

    async def scenario() -> None:
        source = tmp_path / "shared.bin"
        make_file(source, 2 * MiB)
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            room = await ada.client.create_room("Files")
            for member in (bob, cy):
                await member.client.join_room(room.invite)
            for member in (ada, bob, cy):
                await _wait_members(member, room.room_id, 3)
            info = await ada.client.send_file(room.room_id, str(source))
            await bob.wait_event("file_offer", transfer=info.transfer)
            await bob.client.accept_file(info.transfer, str(tmp_path / "bob-inbox"))
            (done,) = await bob.wait_event("file_complete", transfer=info.transfer, timeout=60)
            held = Path(done.path)  # type: ignore[attr-defined]
            await cy.wait_event("file_offer", transfer=info.transfer)
            assert await _pull(cy, bob, info.transfer, fc.OP_HAVE) == b"\x01"

            held.unlink()
            private = os.urandom(2 * MiB)
            held.write_bytes(private)
            got = await _pull(cy, bob, info.transfer, fc.OP_GET_CHUNKS, (0, 1))
            assert isinstance(got, str) and got.startswith("refused"), got[:20]
            assert await _pull(cy, bob, info.transfer, fc.OP_HAVE) == b"\x00"

            # Cy still gets the file, from its author.
            await cy.client.accept_file(info.transfer, str(tmp_path / "cy-inbox"))
            (mine,) = await cy.wait_event("file_complete", transfer=info.transfer, timeout=60)
            assert file_hash(mine.path) == file_hash(source)  # type: ignore[attr-defined]

    run(scenario)


def test_an_offered_file_edited_in_place_is_never_served(tmp_path: Path) -> None:
    """The sender's file is changed with its size and modification time kept (as a tool that
    restores times does): the chunk hashes catch it, and the offer fails on both sides."""

    async def scenario() -> None:
        source = tmp_path / "data.bin"
        make_file(source, 3 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            info = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=info.transfer)
            before = source.stat()
            with open(source, "r+b") as f:
                f.seek(MiB + 5)
                f.write(b"edited")
            os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
            await bob.client.accept_file(info.transfer, str(tmp_path / "inbox"))
            (mine,) = await ada.wait_event("file_failed", transfer=info.transfer)
            (theirs,) = await bob.wait_event("file_failed", transfer=info.transfer)
            assert mine.reason == theirs.reason == "the file changed on disk"  # type: ignore[attr-defined]
            assert not bob.named("file_complete")

    run(scenario)


async def _wait_members(peer: Peer, room_id: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while len(await peer.client.room_members(room_id)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{peer.name}: members"
        await asyncio.sleep(0.05)
