"""File transfer between real peers in one process on 127.0.0.1, including hostile senders."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from app.core import files as fc
from app.core.events import Event
from app.node.files import PROTOCOL_ID, disk, downloading, serving
from app.node.framing import write_frame
from app.node.node import KithNode
from tests.payload import MiB, content_hash, file_hash, make_file
from tests.peers import Peer, befriend, peers
from tests.test_part_file import resident_pages


def run(coro_fn):
    return asyncio.run(coro_fn())




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
            kith_hash = content_hash(source)
            assert info.hash == kith_hash and info.size == size
            (offered,) = await ada.wait_event("file_offered", transfer=info.transfer)
            (offer,) = await bob.wait_event("file_offer", transfer=info.transfer)
            assert (field(offer, "from_"), field(offer, "name_"), field(offer, "size"),
                    field(offer, "hash"), field(offer, "room")) == (
                ada.peer_id, "source.bin", size, kith_hash, None)
            await bob.client.accept_file(info.transfer, str(tmp_path / "inbox"))
            (done,) = await bob.wait_event("file_complete", transfer=info.transfer, timeout=120)
            assert field(done, "hash") == kith_hash
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


def test_large_chunks_arrive_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files from 256 MiB use 4 MiB chunks (two in flight, one waiting for the disk): the same
    path, forced on a small file whose last chunk is short."""
    monkeypatch.setattr(fc, "choose_chunk_size", lambda size: fc.MAX_CHUNK_SIZE)

    async def scenario() -> None:
        source = tmp_path / "source.bin"
        expected = make_file(source, 2 * fc.MAX_CHUNK_SIZE + 5)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
            (done,) = await bob.wait_event("file_complete", transfer=tid, timeout=60)
            assert file_hash(field(done, "path")) == expected
            assert field(done, "hash") == content_hash(source, fc.MAX_CHUNK_SIZE)
            (mine,) = await ada.client.transfers()
            assert mine.served == 3

    run(scenario)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="direct I/O is Linux's")
def test_a_download_goes_to_the_disk_around_the_page_cache(tmp_path: Path) -> None:
    """Each whole chunk goes from the buffer it was received and verified in to the disk with
    direct I/O: none of its pages is in the page cache once the file is complete (the short
    last chunk is written behind, through it)."""

    async def scenario() -> None:
        source = tmp_path / "source.bin"
        expected = make_file(source, 8 * MiB + 5)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
            (done,) = await bob.wait_event("file_complete", transfer=tid, timeout=60)
            final = Path(field(done, "path"))
            assert resident_pages(final, 0, 8 * MiB) == 0
            assert file_hash(final) == expected

    run(scenario)


def test_hostile_names_land_inside_the_folder(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            node = await node_of(ada)
            names = ["../../x", "/etc/passwd", "CON", "a\nb", ".hidden", "é" * 300,
                     "Invoice_2024_\u202efdp.exe"]
            for i, name in enumerate(names):
                source = tmp_path / f"plain{i}.txt"
                source.write_bytes(name.encode())
                info = await ada.client.send_file(bob.peer_id, str(source))
                # Play a hostile sender: the offer carries the name, not the path.
                await ada.client.call(
                    functools.partial(_rename_offer, transfer=info.transfer, name=name))
            offers = await bob.wait_event("file_offer", count=len(names) * 2)
            # Shown as what they are: no control or format character (U+202E would show
            # the .exe as "Invoice_2024_exe.pdf").
            shown = [fc.visible_name(n) for n in names]
            hostile = [e for e in offers if field(e, "name_") in shown]
            assert len(hostile) == len(names)
            assert "Invoice_2024_fdp.exe" in shown
            history = await bob.client.history(ada.peer_id)
            assert {m.text for m in history if m.kind == 2} >= set(shown)
            for offer in hostile:
                await bob.client.accept_file(field(offer, "transfer"), str(inbox))
            done = await bob.wait_event("file_complete", count=len(names), timeout=60)
            saved = sorted(Path(field(e, "path")) for e in done)
            for path in saved:
                assert path.is_relative_to(inbox) and not path.name.startswith(".")
                assert len(path.name.encode()) <= 200
            # "/" separates folders (recreated inside the inbox); nothing else is a path.
            assert sorted(saved) == sorted(
                inbox.joinpath(*fc.split_relative_name(n)[0], fc.split_relative_name(n)[1])
                for n in names)
            assert inbox / "x" in saved and inbox / "etc" / "passwd" in saved
            assert inbox / "Invoice_2024_fdp.exe" in saved
            assert node is not None

    run(scenario)


async def _rename_offer(node: KithNode, transfer: str, name: str) -> None:
    """Re-offer an already offered file under another name (only tests do this)."""
    t = node.files.store.get(bytes.fromhex(transfer))
    assert t is not None
    offer = fc.FileOffer(fc.new_transfer_id(), name, t.offer.size, t.offer.chunk_size,
                         t.offer.hash, t.offer.mime)
    node.files.store.add(offer, outgoing=True, peer_id=t.peer_id, room_id=None,
                         path=t.path, src_size=t.src_size, src_mtime=t.src_mtime,
                         hashes=t.hashes)
    from app.core import dm

    node.dms.queue(t.peer_id, dm.KIND_FILE_OFFER, offer.to_json().decode())


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

            def corrupt_once(index: int, data: bytes) -> bytes:
                if index == 2 and not flipped:
                    flipped.append(index)
                    return bytes([data[0] ^ 1]) + data[1:]
                return data

            node.files.send_hook = corrupt_once
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

            def corrupt(index: int, data: bytes) -> bytes:
                return bytes([data[0] ^ 1]) + data[1:]

            node.files.send_hook = corrupt
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
        real = disk.write_at
        writes: list[int] = []

        def fill_up(f: Any, offset: int, data: bytes, hash_: bytes) -> bool:
            writes.append(offset)
            if len(writes) == 4:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(f, offset, data, hash_)

        monkeypatch.setattr(downloading, "write_at", fill_up)
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
            assert mine.served <= 8 + 2 * (downloading.IN_FLIGHT_BYTES // MiB) - 3

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


# ---- what the window relies on: history, pause/resume, folders, settings ----------------------


def test_file_offers_are_in_history_and_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "notes.txt"
        source.write_text("hello")
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            await ada.client.send(bob.peer_id, "first")
            info = await ada.client.send_file(bob.peer_id, str(source))
            (queued,) = [e for e in ada.named("queued") if field(e, "message").kind == 2]
            mine = field(queued, "message")
            assert (mine.transfer, mine.text, mine.outgoing) == (info.transfer, "notes.txt", True)
            (got,) = await bob.wait_event("message", kind=2)
            theirs = field(got, "message")
            assert (theirs.transfer, theirs.text, field(got, "text")) == (
                info.transfer, "notes.txt", "notes.txt")
            assert bob.named("file_offer")  # announced before the message: the transfer exists
            assert (await bob.client.transfer(info.transfer)).state == "offered"  # type: ignore[union-attr]
            assert await bob.client.transfer("00" * 16) is None
            for peer, other in ((ada, bob), (bob, ada)):
                history = await peer.client.history(other.peer_id)
                assert [(m.kind, m.text, m.transfer) for m in history][-1] == (
                    2, "notes.txt", info.transfer)
                assert [m.text for m in history if m.kind == 1] == ["first"]
                contact = await peer.client.contact(other.peer_id)
                assert contact is not None and contact.last_message == "📎 notes.txt"
            await ada.wait_event("delivered", kind=2)
            # Controls are never shown.
            await bob.client.decline_file(info.transfer)
            await ada.wait_event("file_declined", transfer=info.transfer)
            assert [m.kind for m in await ada.client.history(bob.peer_id)] == [1, 2]

    run(scenario)


def test_room_files_are_in_room_history(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "slides.pdf"
        source.write_bytes(b"%PDF")
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Files")
            await bob.client.join_room(room.invite)
            await _wait_members(ada, room.room_id, 2)
            await _wait_members(bob, room.room_id, 2)
            await ada.client.post(room.room_id, "look")
            info = await ada.client.send_file(room.room_id, str(source))
            (mine,) = [e for e in ada.named("room_post") if field(e, "post").kind == 3]
            assert (field(mine, "post").transfer, field(mine, "post").text) == (
                info.transfer, "slides.pdf")
            await bob.wait_for(lambda: any(field(e, "post").kind == 3
                                           for e in bob.named("room_post")), what="file post")
            (theirs,) = [e for e in bob.named("room_post") if field(e, "post").kind == 3]
            assert field(theirs, "post").transfer == info.transfer
            assert await bob.client.transfer(info.transfer) is not None
            for peer in (ada, bob):
                posts = await peer.client.room_history(room.room_id)
                assert [(p.kind, p.text, p.transfer) for p in posts] == [
                    (1, "look", None), (3, "slides.pdf", info.transfer)]
            (listed,) = await bob.client.rooms()
            assert listed.last_message == "📎 slides.pdf"

    run(scenario)


def test_pause_keeps_the_part_survives_a_restart_and_resumes(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = tmp_path / "big.bin"
        expected = make_file(source, 150 * MiB)
        inbox = tmp_path / "inbox"
        async with peers(tmp_path, "Ada") as (ada,):
            bob = await Peer(tmp_path / "bob", "Bob").start()
            try:
                await befriend(ada, bob)
                tid = await offer_and_accept(ada, bob, source, inbox)
                await bob.wait_for(lambda: any(field(e, "bytes") >= 10 * MiB for e in bob.named(
                    "file_progress")), what="some progress")
                assert any(field(e, "speed") > 0 for e in bob.named("file_progress"))
                moving = await bob.client.transfer(tid)
                assert moving is not None and moving.state == "receiving" and moving.speed > 0
                paused = await bob.client.pause_file(tid)
                (event,) = await bob.wait_event("file_paused", transfer=tid)
                assert paused.state == "paused" and field(event, "bytes") == paused.bytes > 0
                with pytest.raises(ValueError, match="paused"):
                    await bob.client.pause_file(tid)
                with pytest.raises(ValueError, match="receiver"):
                    await ada.client.pause_file(tid)
                await asyncio.sleep(0.5)
                still = await bob.client.transfer(tid)
                assert still is not None and still.bytes == paused.bytes and still.speed == 0
                assert len(list(inbox.glob("*.part"))) == 1
            finally:
                await bob.stop()
            bob = await Peer(tmp_path / "bob", "Bob").start()  # paused stays paused
            try:
                await asyncio.sleep(1.0)
                after = await bob.client.transfer(tid)
                assert after is not None and after.state == "paused"
                assert after.bytes == paused.bytes
                served = await _served(ada, tid)
                await bob.client.resume_file(tid)
                await bob.wait_event("file_resumed", transfer=tid)
                (done,) = await bob.wait_event("file_complete", transfer=tid, timeout=120)
                assert file_hash(field(done, "path")) == expected
                # Only what was missing was fetched again (plus what was in flight).
                again = await _served(ada, tid) - served
                assert again <= 150 - paused.bytes // MiB + 2 * (downloading.IN_FLIGHT_BYTES // MiB)
            finally:
                await bob.stop()

    run(scenario)


def test_a_folder_is_recreated_inside_the_chosen_folder(tmp_path: Path) -> None:
    async def scenario() -> None:
        inbox = tmp_path / "inbox"
        (inbox / "Photos").mkdir(parents=True)
        (inbox / "Photos" / "a.jpg").write_bytes(b"mine")   # the file name gets a number
        (inbox / "Taken").write_bytes(b"a file, not a folder")
        deep = "/".join(f"d{i}" for i in range(20)) + "/deep.txt"
        cases = {
            "Photos/2024/a.jpg": inbox / "Photos" / "2024" / "a.jpg",
            "Photos/a.jpg": inbox / "Photos" / "a (1).jpg",
            "../../escape.txt": inbox / "escape.txt",
            "/etc/cron.d/job": inbox / "etc" / "cron.d" / "job",
            "a//./b/../c.txt": inbox / "a" / "b" / "c.txt",
            "..\\..\\win.txt": inbox / "win.txt",  # the sender reads "\\" as "/"
            "CON/x.txt": inbox / "_CON" / "x.txt",
            "Taken/y.txt": inbox / "Taken (1)" / "y.txt",
            deep: inbox.joinpath(*[f"d{i}" for i in range(fc.MAX_FOLDER_DEPTH)], "deep.txt"),
        }
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            ids = {}
            for i, name in enumerate(cases):
                source = tmp_path / f"src{i}"
                source.write_bytes(name.encode())
                info = await ada.client.send_file(bob.peer_id, str(source), name=name)
                ids[info.transfer] = name
            await bob.wait_event("file_offer", count=len(cases))
            for tid in ids:
                await bob.client.accept_file(tid, str(inbox))
            done = await bob.wait_event("file_complete", count=len(cases), timeout=60)
            for event in done:
                name = ids[field(event, "transfer")]
                path = Path(field(event, "path"))
                assert path == cases[name], name
                assert path.read_bytes() == name.encode()
            assert (inbox / "Photos" / "a.jpg").read_bytes() == b"mine"
            with pytest.raises(ValueError, match="name"):
                await ada.client.send_file(bob.peer_id, str(tmp_path / "src0"), name="/")

    run(scenario)


def test_auto_accept_from_verified_contacts_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        downloads = tmp_path / "downloads"
        small, large = tmp_path / "small.txt", tmp_path / "large.bin"
        small.write_bytes(b"x" * 1000)
        make_file(large, 3 * MiB)
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            await befriend(ada, bob)
            await befriend(cy, bob)
            assert (await bob.client.file_settings())[1] == 0
            with pytest.raises(ValueError, match="absolute"):
                await bob.client.set_file_settings("relative/dir", 10)
            with pytest.raises(ValueError, match="auto-accept"):
                await bob.client.set_file_settings(str(downloads), -1)
            saved = await bob.client.set_file_settings(str(downloads), MiB)
            assert saved == (str(downloads), MiB) == await bob.client.file_settings()
            assert bob.profile.settings.auto_accept_verified_bytes == MiB
            assert '"auto_accept_verified_bytes": 1048576' in (
                bob.path / "settings.json").read_text()
            await bob.client.set_verified(ada.peer_id, True)

            verified = await ada.client.send_file(bob.peer_id, str(small))
            too_big = await ada.client.send_file(bob.peer_id, str(large))
            unverified = await cy.client.send_file(bob.peer_id, str(small))
            (accepted,) = await bob.wait_event("file_accepted", transfer=verified.transfer)
            assert field(accepted, "auto") and field(accepted, "dir") == str(downloads)
            (done,) = await bob.wait_event("file_complete", transfer=verified.transfer)
            assert Path(field(done, "path")) == downloads / "small.txt"
            await bob.wait_event("file_offer", transfer=unverified.transfer)
            await bob.wait_event("file_offer", transfer=too_big.transfer)
            await asyncio.sleep(0.5)
            for tid in (too_big.transfer, unverified.transfer):
                info = await bob.client.transfer(tid)
                assert info is not None and info.state == "offered"
            assert len(bob.named("file_accepted")) == 1
            # Accepting with no folder uses the download folder.
            await bob.client.accept_file(unverified.transfer)
            (done,) = await bob.wait_event("file_complete", transfer=unverified.transfer)
            assert Path(field(done, "path")) == downloads / "small (1).txt"

    run(scenario)


@pytest.mark.parametrize("chunks", [0, 1, 3, 4, 5, 9])
def test_chunk_hashes_from_two_threads_are_the_file_s_in_order(tmp_path: Path,
                                                                chunks: int) -> None:
    chunk = 65536
    data = os.urandom(max(0, chunks * chunk - 10))
    path = tmp_path / "x"
    path.write_bytes(data)
    expected = b"".join(fc.chunk_hash(data[i:i + chunk]) for i in range(0, len(data), chunk))
    assert disk.hash_file(str(path), chunk, len(data)) == (expected, len(data))


def test_only_chunks_verified_before_a_restart_are_read_back(tmp_path: Path) -> None:
    chunk = 65536
    data = os.urandom(5 * chunk + 10)
    hashes = b"".join(fc.chunk_hash(data[i:i + chunk]) for i in range(0, len(data), chunk))
    offer = fc.FileOffer(fc.new_transfer_id(), "x", len(data), chunk, fc.content_hash(hashes))
    part = tmp_path / "x.part"
    part.write_bytes(b"")
    written = bytearray(1)
    with disk.PartFile(str(part)) as f:
        for i in (1, 0, 3, 2, 5):   # written (and verified) by this process, out of order
            piece = data[i * chunk:(i + 1) * chunk]
            assert disk.write_at(f, i * chunk, piece, hashes[i * 32:(i + 1) * 32])
            disk.set_bit(written, i)
        assert not disk.write_at(f, 4 * chunk, b"bad" * 10, hashes[4 * 32:5 * 32])
        f.write(4 * chunk, b"lost in a crash".ljust(chunk, b"\0"))  # verified before a restart
        f.write(len(data), b"beyond the end")
    # Chunk 4 is read back and caught; the file is cut to the offered size.
    assert disk.bad_chunks(str(part), offer, hashes, written) == [4]
    assert part.stat().st_size == len(data)
    # What this process wrote itself is trusted, not read again.
    with open(part, "r+b") as f:
        f.write(b"x")
    assert disk.bad_chunks(str(part), offer, hashes, written) == [4]
    # After a restart nothing is trusted: every chunk is read back.
    assert disk.bad_chunks(str(part), offer, hashes, bytearray(1)) == [0, 4]


def test_progress_shown_is_already_recorded(tmp_path: Path) -> None:
    """Every progress event of a download is at most what the profile's database already
    holds as verified: a crash right after any event takes none of it back."""
    async def scenario() -> None:
        source = tmp_path / "big.bin"
        make_file(source, 100 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            db = sqlite3.connect(bob.profile.db_path)  # a reader beside the node's writer
            checked: list[tuple[int, int]] = []

            def check(event: Event) -> None:
                if event.name == "file_progress":
                    (recorded,) = db.execute("SELECT done_bytes FROM transfers").fetchone()
                    checked.append((field(event, "bytes"), recorded))

            bob.client.subscribe(check)
            try:
                tid = await offer_and_accept(ada, bob, source, tmp_path / "inbox")
                await bob.wait_event("file_complete", transfer=tid, timeout=60)
            finally:
                db.close()
            moving = [(shown, recorded) for shown, recorded in checked if 0 < shown < 100 * MiB]
            assert moving, "no progress shown part-way"
            assert all(shown <= recorded for shown, recorded in checked), checked

    run(scenario)


def test_the_next_chunk_is_read_while_one_is_being_sent(tmp_path: Path,
                                                        monkeypatch: Any) -> None:
    """The sender reads and checks the next chunk while the current one goes out, the chunk
    after a request's last too (the next request usually asks for it): here the receiver asks
    for chunk 0 and reads nothing, so chunk 0 cannot be sent whole (a stream's window is
    256 KiB), and chunk 1 is read all the same."""
    read: list[int] = []
    real = serving.read_served

    def recorded(path: str, offset: int, length: int, *rest: Any) -> bytearray | None:
        read.append(offset // MiB)
        return real(path, offset, length, *rest)

    monkeypatch.setattr(serving, "read_served", recorded)

    async def scenario() -> None:
        source = tmp_path / "data.bin"
        make_file(source, 3 * MiB)
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            offer = await ada.client.send_file(bob.peer_id, str(source))
            await bob.wait_event("file_offer", transfer=offer.transfer)

            async def request_and_wait(node: KithNode) -> list[int]:
                stream = await node.host.new_stream(ID.from_base58(ada.peer_id), [PROTOCOL_ID])
                try:
                    await write_frame(stream, fc.encode_request(
                        bytes.fromhex(offer.transfer), fc.OP_GET_CHUNKS, (0,)))
                    with trio.fail_after(10):
                        while 1 not in read:
                            await trio.sleep(0.01)
                    return list(read)
                finally:
                    await stream.reset()

            assert await bob.client.call(request_and_wait) == [0, 1]

    run(scenario)
