"""File transfer between real peers in one process on 127.0.0.1, including hostile senders."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from app.core import files as fc
from app.core.events import Event
from app.node import files as node_files
from app.node.node import KithNode
from tests.peers import Peer, befriend, peers

MiB = 1 << 20


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def make_file(path: Path, size: int) -> str:
    """Random content written in pieces (never whole in memory); returns its BLAKE2b-256."""
    whole = hashlib.blake2b(digest_size=32)
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(left, 4 * MiB))
            whole.update(data)
            f.write(data)
            left -= len(data)
    return whole.hexdigest()


def file_hash(path: str | Path) -> str:
    whole = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while data := f.read(4 * MiB):
            whole.update(data)
    return whole.hexdigest()


def field(event: Event, name: str) -> Any:
    return getattr(event, name)


async def node_of(peer: Peer) -> KithNode:
    async def get(node: KithNode) -> KithNode:
        return node

    return await peer.client.call(get)


async def offer_and_accept(sender: Peer, receiver: Peer, path: Path, folder: Path) -> str:
    info = await sender.client.send_file(receiver.peer_id, str(path))
    await receiver.wait_event("file_offer", transfer=info.transfer)
    await receiver.client.accept_file(info.transfer, str(folder))
    return info.transfer


@pytest.mark.parametrize("size", [0, 1, MiB, MiB + 1, 100 * MiB])
def test_delivery_is_hash_identical(tmp_path: Path, size: int) -> None:
    async def scenario() -> None:
        source = tmp_path / "source.bin"
        expected = make_file(source, size)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            info = await ada.client.send_file(bob.peer_id, str(source))
            assert info.hash == expected and info.size == size
            (offered,) = await ada.wait_event("file_offered", transfer=info.transfer)
            (offer,) = await bob.wait_event("file_offer", transfer=info.transfer)
            assert (field(offer, "from_"), field(offer, "name_"), field(offer, "size"),
                    field(offer, "hash"), field(offer, "room")) == (
                ada.peer_id, "source.bin", size, expected, None)
            await bob.client.accept_file(info.transfer, str(tmp_path / "inbox"))
            (done,) = await bob.wait_event("file_complete", transfer=info.transfer, timeout=120)
            assert field(done, "hash") == expected
            final = Path(field(done, "path"))
            assert final == tmp_path / "inbox" / "source.bin"
            assert final.stat().st_size == size and file_hash(final) == expected
            assert not list((tmp_path / "inbox").glob("*.part"))
            await ada.wait_event("file_complete", transfer=info.transfer)
            progress = [field(e, "bytes") for e in bob.named("file_progress")]
            assert progress == sorted(progress) and progress[-1] == size
            (mine,) = [t for t in await ada.client.transfers() if t.transfer == info.transfer]
            assert mine.state == "complete" and mine.served == fc.chunk_count(size, MiB)
            assert field(offered, "size") == size

    run(scenario)


def test_hostile_names_land_inside_the_folder(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            node = await node_of(ada)
            names = ["../../x", "/etc/passwd", "CON", "a\nb", ".hidden", "é" * 300]
            for i, name in enumerate(names):
                source = tmp_path / f"plain{i}.txt"
                source.write_bytes(name.encode())
                info = await ada.client.send_file(bob.peer_id, str(source))
                # Play a hostile sender: the offer carries the name, not the path.
                await ada.client.call(lambda n, t=info.transfer, nm=name: _rename_offer(n, t, nm))
            offers = await bob.wait_event("file_offer", count=len(names) * 2)
            hostile = [e for e in offers if field(e, "name_") in names]
            assert len(hostile) == len(names)
            for offer in hostile:
                await bob.client.accept_file(field(offer, "transfer"), str(inbox))
            done = await bob.wait_event("file_complete", count=len(names), timeout=60)
            saved = sorted(Path(field(e, "path")) for e in done)
            for path in saved:
                assert path.parent == inbox and not path.name.startswith(".")
                assert len(path.name.encode()) <= 200
            assert sorted(p.name for p in saved) == sorted(
                fc.clean_file_name(n) for n in names)
            assert node is not None

    run(scenario)


async def _rename_offer(node: KithNode, transfer: str, name: str) -> None:
    """Re-offer an already offered file under another name (only tests do this)."""
    t = node.files.store.get(bytes.fromhex(transfer))
    assert t is not None
    offer = fc.FileOffer(fc.new_transfer_id(), name, t.offer.size, t.offer.chunk_size,
                         t.offer.root, t.offer.hash, t.offer.mime)
    node.files.store.add(offer, outgoing=True, peer_id=t.peer_id, room_id=None,
                         state="offered", path=t.path, src_size=t.src_size,
                         src_mtime=t.src_mtime, hashes=t.hashes)
    from app.core import dm

    node.dms.send_file_message(t.peer_id, dm.KIND_FILE_OFFER, offer.to_json())


def test_a_taken_name_gets_a_number(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        (inbox / "report.pdf").write_bytes(b"mine")
        source = tmp_path / "report.pdf"
        make_file(source, 1000)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            for _ in range(2):
                tid = await offer_and_accept(ada, bob, source, inbox)
                await bob.wait_event("file_complete", transfer=tid)
            names = sorted(p.name for p in inbox.iterdir())
            assert names == ["report (1).pdf", "report (2).pdf", "report.pdf"]
            assert (inbox / "report.pdf").read_bytes() == b"mine"

    run(scenario)


def test_three_concurrent_transfers(tmp_path: Path) -> None:
    async def scenario() -> None:
        sources = []
        for i in range(3):
            source = tmp_path / f"f{i}.bin"
            sources.append((source, make_file(source, 5 * MiB + i)))
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            ids = [(await ada.client.send_file(bob.peer_id, str(s))).transfer for s, _ in sources]
            await bob.wait_event("file_offer", count=3)
            for tid in ids:
                await bob.client.accept_file(tid, str(tmp_path / "inbox"))
            done = await bob.wait_event("file_complete", count=3, timeout=60)
            by_id = {field(e, "transfer"): e for e in done}
            for tid, (_, expected) in zip(ids, sources, strict=True):
                assert file_hash(field(by_id[tid], "path")) == expected

    run(scenario)


@pytest.mark.parametrize("who", ["receiver", "sender"])
def test_decline_is_known_on_both_sides(tmp_path: Path, who: str) -> None:
    async def scenario() -> None:
        source = tmp_path / "a.bin"
        make_file(source, 10)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            info = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=info.transfer)
            if who == "receiver":
                await bob.client.decline_file(info.transfer)
                await bob.wait_event("file_declined", transfer=info.transfer, by="me")
                await ada.wait_event("file_declined", transfer=info.transfer, by="peer")
            else:
                await ada.client.cancel_file(info.transfer)
                await ada.wait_event("file_cancelled", transfer=info.transfer, by="me")
                await bob.wait_event("file_cancelled", transfer=info.transfer, by="peer")
                with pytest.raises(ValueError, match="cancelled"):
                    await bob.client.accept_file(info.transfer, str(tmp_path / "inbox"))

    run(scenario)


@pytest.mark.parametrize("who", ["receiver", "sender"])
def test_cancel_mid_transfer_is_known_on_both_sides(tmp_path: Path, who: str) -> None:
    async def scenario() -> None:
        source = tmp_path / "big.bin"
        make_file(source, 200 * MiB)
        inbox = tmp_path / "inbox"
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            tid = await offer_and_accept(ada, bob, source, inbox)
            await bob.wait_for(lambda: any(field(e, "bytes") > 0 for e in bob.named(
                "file_progress")), what="some progress")
            canceller, other = (bob, ada) if who == "receiver" else (ada, bob)
            await canceller.client.cancel_file(tid)
            await canceller.wait_event("file_cancelled", transfer=tid, by="me")
            await other.wait_event("file_cancelled", transfer=tid, by="peer")
            await bob.wait_for(lambda: not list(inbox.glob("*")), what="the .part removed")
            assert not bob.named("file_complete")

    run(scenario)


def test_a_corrupted_chunk_is_fetched_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "data.bin"
        expected = make_file(source, 5 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            node = await node_of(ada)
            flipped: list[int] = []

            def corrupt_once(path: str, offset: int, length: int) -> bytes:
                data = node_files.read_chunk(path, offset, length)
                if offset == 2 * MiB and not flipped:
                    flipped.append(offset)
                    return bytes([data[0] ^ 1]) + data[1:]
                return data

            node.files.read_chunk = corrupt_once
            tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
            (done,) = await bob.wait_event("file_complete", transfer=tid)
            assert file_hash(field(done, "path")) == expected and flipped
            (mine,) = await ada.client.transfers()
            assert mine.served == 6  # five chunks, one of them twice

    run(scenario)


def test_a_sender_that_keeps_corrupting_fails_the_transfer(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "data.bin"
        make_file(source, 5 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            node = await node_of(ada)

            def corrupt(path: str, offset: int, length: int) -> bytes:
                data = node_files.read_chunk(path, offset, length)
                return bytes([data[0] ^ 1]) + data[1:]

            node.files.read_chunk = corrupt
            tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
            (failed,) = await bob.wait_event("file_failed", transfer=tid)
            assert "corrupted" in field(failed, "reason")
            assert not bob.named("file_complete")
            (info,) = await bob.client.transfers()
            assert info.state == "failed" and info.bytes == 0

    run(scenario)


def test_a_file_changed_on_disk_fails_on_both_sides(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "data.bin"
        make_file(source, 3 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            info = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=info.transfer)
            with open(source, "ab") as f:
                f.write(b"more")
            await bob.client.accept_file(info.transfer, str(tmp_path / "inbox"))
            (mine,) = await ada.wait_event("file_failed", transfer=info.transfer)
            (theirs,) = await bob.wait_event("file_failed", transfer=info.transfer)
            assert field(mine, "reason") == field(theirs, "reason") == "the file changed on disk"

    run(scenario)


def test_a_full_disk_fails_cleanly_and_resumes(tmp_path: Path, monkeypatch: Any) -> None:
    async def scenario() -> None:
        source = tmp_path / "data.bin"
        expected = make_file(source, 8 * MiB)
        real = node_files._write_at
        writes: list[int] = []

        def fill_up(f: Any, offset: int, data: bytes, hash_: bytes) -> bool:
            writes.append(offset)
            if len(writes) == 4:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(f, offset, data, hash_)

        monkeypatch.setattr(node_files, "_write_at", fill_up)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
            (failed,) = await bob.wait_event("file_failed", transfer=tid)
            assert "disk is full" in field(failed, "reason")
            parts = list((tmp_path / "inbox").glob("*.part"))
            assert len(parts) == 1 and str(parts[0]) in field(failed, "reason")
            (info,) = await bob.client.transfers()
            assert info.state == "failed" and info.bytes == 3 * MiB
            await bob.client.accept_file(tid, str(tmp_path / "elsewhere"))  # resumes in place
            (done,) = await bob.wait_event("file_complete", transfer=tid)
            assert file_hash(field(done, "path")) == expected
            assert Path(field(done, "path")).parent == tmp_path / "inbox"
            (mine,) = await ada.client.transfers()
            assert mine.served <= 8 + 2 * node_files.IN_FLIGHT - 3

    run(scenario)


def test_a_room_file_is_served_by_every_holder(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "shared.bin"
        expected = make_file(source, 24 * MiB)
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            room = await ada.client.create_room("Files")
            await bob.client.join_room(room.invite)
            await cy.client.join_room(room.invite)
            await _wait_members(ada, room.room_id, 3)
            await _wait_members(bob, room.room_id, 3)
            await _wait_members(cy, room.room_id, 3)
            info = await ada.client.send_file(room.room_id, str(source))
            (offer_b,) = await bob.wait_event("file_offer", transfer=info.transfer)
            assert field(offer_b, "room") == room.room_id
            assert field(offer_b, "from_") == ada.peer_id
            await bob.client.accept_file(info.transfer, str(tmp_path / "bob-inbox"))
            (done_b,) = await bob.wait_event("file_complete", transfer=info.transfer, timeout=60)
            assert file_hash(field(done_b, "path")) == expected
            ada_after_bob = await _served(ada, info.transfer)

            await cy.wait_event("file_offer", transfer=info.transfer)
            await cy.client.accept_file(info.transfer, str(tmp_path / "cy-inbox"))
            (done_c,) = await cy.wait_event("file_complete", transfer=info.transfer, timeout=60)
            assert file_hash(field(done_c, "path")) == expected
            from_ada = await _served(ada, info.transfer) - ada_after_bob
            from_bob = await _served(bob, info.transfer)
            assert from_ada > 0 and from_bob > 0, (from_ada, from_bob)
            assert from_ada + from_bob >= 24

    run(scenario)


async def _wait_members(peer: Peer, room_id: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while len(await peer.client.room_members(room_id)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{peer.name}: members"
        await asyncio.sleep(0.05)


async def _served(peer: Peer, transfer: str) -> int:
    return sum(t.served for t in await peer.client.transfers() if t.transfer == transfer)
