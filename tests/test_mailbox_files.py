"""File bytes through mailboxes, between real peers in one process on 127.0.0.1: Ada leaves a
file for Bob at Mia's mailbox while Bob is offline, Bob reads it from Mia while Ada is offline;
quotas, restarts, a tampered piece, and strangers who try the blob requests by hand."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from app.core import blob as bl
from app.core import mailbox as mb
from app.core.events import Event
from app.core.identity import Identity
from app.core.transfer_state import TransferState
from app.node.files import mailbox_upload
from app.node.mailbox import MailboxLimits
from app.node.node import KithNode
from tests.mailbox_cast import Cast, cast, config, port_of
from tests.peers import Peer, befriend
from tests.test_mailbox_network import _exchange, _now, _request, _status, _wait_held, run

MIB = 1 << 20


def _field(event: Event, name: str) -> Any:
    return getattr(event, name)


async def _sql(peer: Peer, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run ``sql`` on ``peer``'s profile database, on its node's thread."""
    async def go(node: KithNode) -> list[tuple[Any, ...]]:
        with node.db:
            return node.db.execute(sql, args).fetchall()
    return await peer.client.call(go)


async def _wait_bytes(peer: Peer, transfer: str, size: int) -> None:
    """Until ``peer`` has verified exactly ``size`` bytes of ``transfer``."""
    seen: list[int] = []
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        info = await peer.client.transfer(transfer)
        assert info is not None
        seen.append(info.bytes)
        if info.bytes == size:
            return
        assert asyncio.get_running_loop().time() < deadline, f"at {seen[-1]}, not {size}"
        await asyncio.sleep(0.05)


async def _wait_emptied(mia: Peer) -> None:
    """Until Mia holds nothing: no item, no blob (a recipient deletes a blob just after the
    transfer ends)."""
    await _wait_held(mia, 0)
    deadline = asyncio.get_running_loop().time() + 20
    while (await _status(mia)).bytes:
        assert asyncio.get_running_loop().time() < deadline, "the blob stayed at the mailbox"
        await asyncio.sleep(0.05)


async def _left_for_offline_bob(c: Cast, tmp_path: Path, size: int, *, ada_user: bool = False
                                ) -> tuple[Peer, Peer, Peer, int, int, str, bytes]:
    """Mia serves, Bob uses her, Ada and Bob are contacts; Bob goes offline and Ada sends him
    a file of ``size`` random bytes. (Mia, Ada, the transfer id, ...) once it is offered."""
    mia = await c.mia()
    bob = await c.user("Bob", mia)
    bob_port = port_of(bob)
    ada = await (c.user("Ada", mia) if ada_user else c.start("Ada", config()))
    ada_port = port_of(ada)
    await befriend(ada, bob)
    await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
    await c.stop(bob)
    await ada.wait_event("contact_offline", peer_id=bob.peer_id)
    content = os.urandom(size)
    source = tmp_path / "film.bin"
    source.write_bytes(content)
    offered = await ada.client.send_file(bob.peer_id, str(source))
    return mia, ada, bob, bob_port, ada_port, offered.transfer, content


async def _accept(bob: Peer, transfer: str, tmp_path: Path) -> None:
    await bob.wait_event("file_offer", transfer=transfer, timeout=30)
    await bob.client.accept_file(transfer, str(tmp_path / "inbox"))


async def _received(bob: Peer, transfer: str, content: bytes) -> None:
    (done,) = await bob.wait_event("file_complete", transfer=transfer, timeout=60)
    assert Path(_field(done, "path")).read_bytes() == content


def test_a_held_file_survives_a_mailbox_restart_and_a_tampered_piece_is_rejected(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia, ada, bob, bob_port, ada_port, transfer, content = await _left_for_offline_bob(
                c, tmp_path, 4 * MIB)
            (held,) = await ada.wait_event("file_deposited", transfer=transfer, timeout=30)
            assert (_field(held, "mailbox"), _field(held, "peer_id")) == (mia.peer_id, bob.peer_id)
            info = await ada.client.transfer(transfer)
            assert info is not None and info.held_by == mia.peer_id
            await c.stop(ada)
            mia_port = port_of(mia)
            await c.stop(mia)  # the blob is on disk
            mia = await c.mia(mia_port)
            assert (await _status(mia)).bytes > bl.sealed_size(4 * MIB, 4)  # and the offer
            pieces = await _sql(mia, "SELECT idx, size FROM mailbox_blob_pieces ORDER BY idx")
            assert pieces == [(0, 4 * 32 + 16)] + [(i, MIB + 16) for i in range(1, 5)]
            # Mia alters chunk 2 (piece 3): it no longer opens under the offer's key.
            ((row,),) = await _sql(mia, "SELECT id FROM mailbox_blobs")
            blob_file = tmp_path / "mia" / "mailbox-blobs" / f"{row}.blob"
            with blob_file.open("r+b") as f:
                f.seek(3 * bl.MAX_PIECE + 100)
                byte = f.read(1)
                f.seek(3 * bl.MAX_PIECE + 100)
                f.write(bytes([byte[0] ^ 1]))

            bob = await c.user("Bob", mia, bob_port)
            await _accept(bob, transfer, tmp_path)
            await _wait_bytes(bob, transfer, 2 * MIB)  # chunks 0 and 1, from Mia
            ada = await c.start("Ada", config(ada_port))  # the rest comes directly
            await _received(bob, transfer, content)
            assert not bob.named("file_failed")
            await ada.wait_event("file_complete", transfer=transfer, timeout=30)
            await _wait_emptied(mia)  # Bob let the blob go
            assert not blob_file.exists()

    run(scenario)


def test_a_recipient_stopped_mid_download_resumes_from_the_mailbox(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia, ada, bob, bob_port, ada_port, transfer, content = await _left_for_offline_bob(
                c, tmp_path, 4 * MIB + 5)
            await ada.wait_event("file_deposited", transfer=transfer, timeout=30)
            # As if Ada had gone before the upload ended: Mia holds only the hash list and
            # chunks 0 and 1, and Ada has not recorded the upload as done.
            await _sql(mia, "DELETE FROM mailbox_blob_pieces WHERE idx > 2")
            await _sql(mia, "UPDATE mailbox_blobs SET stored = (SELECT sum(size) "
                            "FROM mailbox_blob_pieces WHERE blob_row = mailbox_blobs.id)")
            await _sql(ada, "UPDATE transfer_blobs SET state = 'uploading'")
            await c.stop(ada)

            bob = await c.user("Bob", mia, bob_port)
            await _accept(bob, transfer, tmp_path)
            await _wait_bytes(bob, transfer, 2 * MIB)
            await c.stop(bob)  # mid-download

            ada = await c.start("Ada", config(ada_port))  # her upload resumes where it was
            await ada.wait_event("file_deposited", transfer=transfer, timeout=30)
            held = await _sql(mia, "SELECT idx FROM mailbox_blob_pieces ORDER BY idx")
            assert held == [(i,) for i in range(6)]
            await c.stop(ada)

            bob = await c.user("Bob", mia, bob_port)
            first = (await bob.wait_event("file_progress", transfer=transfer))[0]
            assert _field(first, "bytes") == 2 * MIB  # from what was verified, not from 0
            await _received(bob, transfer, content)
            assert len(bob.named("file_complete")) == 1
            await _wait_emptied(mia)

    run(scenario)


def test_a_file_over_the_quota_is_refused_and_comes_directly_later(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            def small(node: KithNode) -> Awaitable[None]:
                assert node._mailbox_service is not None
                node._mailbox_service.limits = MailboxLimits(sender_blob_bytes=2 * MIB)
                return _now(None)

            mia = await c.mia()
            bob = await c.user("Bob", mia)
            bob_port = port_of(bob)
            ada = await c.start("Ada", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            await mia.client.call(small)
            await c.stop(bob)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)
            content = os.urandom(3 * MIB)
            source = tmp_path / "big.bin"
            source.write_bytes(content)
            transfer = (await ada.client.send_file(bob.peer_id, str(source))).transfer

            (refused,) = await ada.wait_event("file_deposit_refused", transfer=transfer)
            assert _field(refused, "mailbox") == mia.peer_id
            assert "full" in _field(refused, "reason")
            info = await ada.client.transfer(transfer)
            assert info is not None and info.state is TransferState.OFFERED  # kept
            assert (await _status(mia)).bytes < MIB  # nothing of it is held

            bob = await c.user("Bob", mia, bob_port)
            await _accept(bob, transfer, tmp_path)
            await _received(bob, transfer, content)  # directly from Ada
            await ada.wait_event("file_complete", transfer=transfer, timeout=30)

    run(scenario)


def test_strangers_cannot_read_blobs_and_blobs_are_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            bob = await c.user("Bob", mia)
            ada = await c.user("Ada", mia)  # another user of Mia's
            eve = await c.start("Eve", config())  # nobody's contact

            async def ask(peer: Peer, *requests: mb.Request) -> list[object]:
                outcome, answers = await peer.client.call(lambda node: _exchange(
                    node, c.mia_addr, b"".join(_request(r) for r in requests), len(requests)))
                assert outcome == "answered"
                return [a.code if isinstance(a, mb.Refused) else a for a in answers]

            blob = os.urandom(bl.BLOB_ID_SIZE)
            stranger = Identity.generate().peer_id
            # Not a user, and Bob himself as the sender, look the same: refused.
            assert await ask(eve, mb.BlobOpen(stranger, blob, 100, 2)) == [
                mb.REFUSED_NOT_ACCEPTED]
            # Like a deposit, anyone may leave a file for a user, within its bounds...
            assert await ask(eve, mb.BlobOpen(bob.peer_id, blob, 100, bl.MAX_PIECES + 1),
                             mb.BlobOpen(bob.peer_id, blob, 2 * (bl.MAX_PIECE + 1), 2),
                             mb.BlobOpen(bob.peer_id, blob, 201 * MIB, 202)) == [
                mb.REFUSED_TOO_LARGE, mb.REFUSED_TOO_LARGE, mb.REFUSED_FULL]
            assert await ask(eve, mb.BlobOpen(bob.peer_id, blob, 40, 2),
                             mb.BlobPut(bob.peer_id, blob, 0, b"x" * 30),
                             mb.BlobPut(bob.peer_id, blob, 1, b"y" * 11),
                             mb.BlobPut(bob.peer_id, blob, 2, b"z"),
                             mb.BlobOpen(bob.peer_id, blob, 40, 2)) == [
                mb.BlobHeld(b"\x00"), mb.Ok(), mb.REFUSED_TOO_LARGE, mb.REFUSED_MALFORMED,
                mb.BlobHeld(b"\x01")]
            # ... but only its recipient reads or deletes it.
            for peer in (eve, ada):
                assert await ask(peer, mb.BlobGet(blob, 0), mb.BlobDelete(blob)) == (
                    [mb.REFUSED_NOT_REGISTERED] * 2 if peer is eve
                    else [mb.REFUSED_NOT_HELD, mb.Ok()])
            # Nobody else may put pieces into Eve's blob.
            assert await ask(ada, mb.BlobPut(bob.peer_id, blob, 1, b"y")) == [
                mb.REFUSED_NOT_ACCEPTED]
            assert await ask(bob, mb.BlobGet(blob, 0), mb.BlobGet(blob, 1)) == [
                mb.Piece(0, b"x" * 30), mb.REFUSED_NOT_HELD]

            await bob.client.block(eve.peer_id)  # Bob's block list reaches Mia
            await bob.wait_event("mailbox_registered", count=2, mailbox=mia.peer_id)
            assert await ask(eve, mb.BlobOpen(bob.peer_id, os.urandom(16), 40, 2),
                             mb.BlobPut(bob.peer_id, blob, 1, b"y")) == [
                mb.REFUSED_NOT_ACCEPTED, mb.REFUSED_NOT_ACCEPTED]
            assert await ask(bob, mb.BlobDelete(blob), mb.BlobGet(blob, 0)) == [
                mb.Ok(), mb.REFUSED_NOT_HELD]
            assert (await _status(mia)).bytes == 0 and mia.client.running

    run(scenario)


def test_a_declined_file_leaves_the_mailbox(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia, ada, bob, bob_port, _, transfer, _ = await _left_for_offline_bob(
                c, tmp_path, MIB)
            await ada.wait_event("file_deposited", transfer=transfer, timeout=30)
            await c.stop(ada)
            bob = await c.user("Bob", mia, bob_port)
            await bob.wait_event("file_offer", transfer=transfer, timeout=30)
            await _wait_held(mia, 0)
            assert (await _status(mia)).bytes == bl.sealed_size(MIB, 1)  # only the file now
            await bob.client.decline_file(transfer)
            await _wait_emptied(mia)

    run(scenario)


def test_the_files_of_a_user_who_goes_away_go_too(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia, ada, bob, _, _, transfer, _ = await _left_for_offline_bob(c, tmp_path, MIB)
            await ada.wait_event("file_deposited", transfer=transfer, timeout=30)
            blob_dir = tmp_path / "mia" / "mailbox-blobs"
            assert len(list(blob_dir.iterdir())) == 1
            await mia.client.remove_contact(bob.peer_id)  # Bob is no longer her user

            def sweep(node: KithNode) -> Awaitable[None]:
                assert node._mailbox_service is not None
                node._mailbox_service.sweep()  # hourly, in production
                return _now(None)

            await mia.client.call(sweep)
            status = await _status(mia)
            assert (status.users, status.held, status.bytes) == (0, 0, 0)
            assert list(blob_dir.iterdir()) == []

    run(scenario)


def test_a_file_changed_before_it_is_left_at_the_mailbox_fails_the_offer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_upload, "FIRST_RETRY", 0.2)  # 5 s, doubling, in production
    monkeypatch.setattr(mailbox_upload, "MAX_RETRY", 0.5)

    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            mia_port = port_of(mia)
            bob = await c.user("Bob", mia)
            ada = await c.start("Ada", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            await c.stop(bob)
            await c.stop(mia)  # the upload waits for her
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)
            source = tmp_path / "draft.bin"
            source.write_bytes(os.urandom(2 * MIB))
            transfer = (await ada.client.send_file(bob.peer_id, str(source))).transfer
            source.write_bytes(os.urandom(2 * MIB))  # edited before it could leave
            mia = await c.mia(mia_port)
            (failed,) = await ada.wait_event("file_failed", transfer=transfer)
            assert _field(failed, "reason") == "the file changed on disk"
            info = await ada.client.transfer(transfer)
            assert info is not None and info.state is TransferState.FAILED
            assert not ada.named("file_deposited")

    run(scenario)


def test_a_file_offered_while_bob_was_online_waits_at_his_mailbox_once_he_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_upload, "AWAY", 0.4)  # two minutes, in production

    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            bob = await c.user("Bob", mia)
            bob_port = port_of(bob)
            ada = await c.start("Ada", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            content = os.urandom(2 * MIB)
            source = tmp_path / "evening.bin"
            source.write_bytes(content)
            transfer = (await ada.client.send_file(bob.peer_id, str(source))).transfer
            await bob.wait_event("file_offer", transfer=transfer)
            assert (await _status(mia)).bytes == 0  # Bob is online: nothing goes to Mia
            await c.stop(bob)  # he closes his laptop before accepting

            (held,) = await ada.wait_event("file_deposited", transfer=transfer)
            assert _field(held, "mailbox") == mia.peer_id
            await c.stop(ada)
            bob = await c.user("Bob", mia, bob_port)
            await bob.client.accept_file(transfer, str(tmp_path / "inbox"))
            await _received(bob, transfer, content)
            await _wait_emptied(mia)

    run(scenario)
