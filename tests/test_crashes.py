"""``kith node`` processes killed with SIGKILL, at exact moments (``tests.crash_at``) and at
whatever moment the test reads an event: a stored message is shown, a finished file stays
finished and the sender hears of it, and progress once shown is never taken back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.core.files import choose_chunk_size
from app.node.files import downloading
from app.store.profile import DB_FILE
from tests.nodeproc import NodeProcess
from tests.payload import MiB, file_hash, make_file

# Right after a received message is committed (not a duplicate).
STORED = ["app.store.messages:MessageStore.store_incoming", "--truthy"]


def _pair(tmp_path: Path, ada_crash: list[str] | None = None,
          bob_crash: list[str] | None = None) -> tuple[NodeProcess, NodeProcess, str, str]:
    """Ada and Bob, contacts and connected; returns them and their peer ids."""
    ada = NodeProcess(tmp_path / "ada", name="Ada", crash_at=ada_crash)
    bob = NodeProcess(tmp_path / "bob", name="Bob", crash_at=bob_crash)
    ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
    ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
    bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
    ada.expect("contact_online", peer_id=ready_b["peer_id"])
    return ada, bob, ready_a["peer_id"], ready_b["peer_id"]


def _restart(node: NodeProcess, profile: Path, crash_at: list[str] | None = None) -> NodeProcess:
    """Wait for ``node`` to kill itself at its ``crash_at`` moment, then start it again."""
    node.killed_itself()
    again = NodeProcess(profile, crash_at=crash_at)
    again.expect("ready")
    return again


def _transfer(node: NodeProcess, transfer: str) -> dict[str, Any]:
    info = node.request({"cmd": "transfer", "transfer": transfer}, "transfer")["info"]
    assert info is not None
    return dict(info)


def _offer(ada: NodeProcess, bob: NodeProcess, to: str, source: Path, inbox: Path) -> str:
    ada.send({"cmd": "send_file", "to": to, "path": str(source)})
    tid = str(ada.expect("file_offered")["transfer"])
    bob.expect("file_offer", transfer=tid)
    bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(inbox)}, "file_accepted")
    return tid


# -- messages -----------------------------------------------------------------------------------


def test_messages_stored_just_before_a_crash_are_shown_after_it(tmp_path: Path) -> None:
    ada, bob, ada_id, bob_id = _pair(tmp_path, bob_crash=STORED)
    try:
        # A text: killed right after it is stored, before anything announced it.
        sent = ada.request({"cmd": "send", "to": bob_id, "text": "first"}, "sent")
        bob = _restart(bob, tmp_path / "bob", crash_at=STORED)
        ada.expect("delivered", id=sent["id"])  # the resend is acknowledged as a duplicate
        (entry,) = bob.request({"cmd": "contacts"}, "contacts")["contacts"]
        assert (entry["peer_id"], entry["unread"], entry["last_message"]) == (ada_id, 1, "first")
        history = bob.request({"cmd": "history", "with": ada_id}, "history")["messages"]
        assert [m["text"] for m in history] == ["first"]

        # A file offer: killed right after it is stored, before its transfer was recorded.
        source = tmp_path / "note.bin"
        expected = make_file(source, 3 * MiB)
        ada.send({"cmd": "send_file", "to": bob_id, "path": str(source)})
        tid = ada.expect("file_offered")["transfer"]
        bob = _restart(bob, tmp_path / "bob")
        offer = bob.expect("file_offer", transfer=tid)  # finished at start
        assert offer["name"] == "note.bin"
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp_path / "in")},
                    "file_accepted")
        assert file_hash(bob.expect("file_complete", transfer=tid)["path"]) == expected
        ada.expect("file_complete", transfer=tid)
    finally:
        ada.quit()
        bob.quit()


# -- finishing a download -----------------------------------------------------------------------


@pytest.mark.parametrize("moment", [
    ["app.node.files.downloading:link_final"],                    # two names, .part not removed
    ["app.store.transfers:TransferStore.complete", "--before"],   # the file in place, no record
    ["app.store.transfers:TransferStore.complete"],               # recorded complete
], ids=["linked", "before-record", "recorded"])
def test_a_download_killed_while_finishing_is_complete_after_a_restart(
    tmp_path: Path, moment: list[str]
) -> None:
    source = tmp_path / "data.bin"
    expected = make_file(source, 3 * MiB)
    inbox = tmp_path / "inbox"
    ada, bob, _, bob_id = _pair(tmp_path, bob_crash=moment)
    try:
        tid = _offer(ada, bob, bob_id, source, inbox)
        bob = _restart(bob, tmp_path / "bob")
        ada.expect("file_complete", transfer=tid, timeout=30)  # the sender is told
        info = _transfer(bob, tid)
        assert (info["state"], info["path"]) == ("complete", str(inbox / "data.bin"))
        assert [p.name for p in inbox.iterdir()] == ["data.bin"]  # no "data (1).bin", no .part
        assert file_hash(inbox / "data.bin") == expected
    finally:
        ada.quit()
        bob.quit()


def test_a_sender_killed_as_it_hears_complete_learns_it_after_a_restart(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    make_file(source, 3 * MiB)
    ada, bob, _, bob_id = _pair(tmp_path, ada_crash=STORED)  # Bob's "complete" control
    try:
        tid = _offer(ada, bob, bob_id, source, tmp_path / "inbox")
        bob.expect("file_complete", transfer=tid)
        ada = _restart(ada, tmp_path / "ada")
        ada.expect("file_complete", transfer=tid)
        assert _transfer(ada, tid)["state"] == "complete"
    finally:
        ada.quit()
        bob.quit()


def test_accepting_again_a_download_failed_by_an_older_kith_finds_the_finished_file(
    tmp_path: Path
) -> None:
    """Before names were recorded, a kill between the rename and the record left the transfer
    failed ("cannot finish the file") with the verified file in place: accepting it again
    completes it from that file, fetching nothing and making no second copy."""
    source = tmp_path / "data.bin"
    expected = make_file(source, 3 * MiB)
    inbox = tmp_path / "inbox"
    moment = ["app.store.transfers:TransferStore.complete", "--before"]
    ada, bob, _, bob_id = _pair(tmp_path, bob_crash=moment)
    try:
        tid = _offer(ada, bob, bob_id, source, inbox)
        bob.killed_itself()
        served = _transfer(ada, tid)["served"]
        with sqlite3.connect(tmp_path / "bob" / DB_FILE) as db:  # what an older Kith left
            db.execute("UPDATE transfers SET state = 'failed', path = NULL, reason = "
                       "'cannot finish the file: No such file or directory'")
        bob = NodeProcess(tmp_path / "bob")
        bob.expect("ready")
        assert _transfer(bob, tid)["state"] == "failed"
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(inbox)}, "file_accepted")
        assert bob.expect("file_complete", transfer=tid)["path"] == str(inbox / "data.bin")
        ada.expect("file_complete", transfer=tid)
        assert [p.name for p in inbox.iterdir()] == ["data.bin"]
        assert file_hash(inbox / "data.bin") == expected
        assert _transfer(ada, tid)["served"] == served
    finally:
        ada.quit()
        bob.quit()


# -- resuming -----------------------------------------------------------------------------------


def test_progress_shown_before_a_kill_is_never_taken_back(tmp_path: Path) -> None:
    """Killed three times, each time as soon as progress moved: each restart shows at least the
    progress last shown, and each kill costs at most what was in flight."""
    size = 300 * MiB  # 4 MiB chunks
    source = tmp_path / "big.bin"
    expected = make_file(source, size)
    ada, bob, _, bob_id = _pair(tmp_path)
    kills, start = 3, 0
    try:
        tid = _offer(ada, bob, bob_id, source, tmp_path / "inbox")
        for k in range(1, kills + 1):
            while bob.expect("file_progress", transfer=tid, timeout=60)["bytes"] <= start:
                pass
            bob.kill()
            shown = max(e["bytes"] for e in bob.printed("file_progress", transfer=tid))
            assert shown < size, "finished before the kill: the test needs a larger file"
            bob = NodeProcess(tmp_path / "bob")
            bob.expect("ready")
            start = bob.expect("file_progress", transfer=tid, timeout=30)["bytes"]
            assert start >= shown, f"kill {k}: {shown} bytes shown, {start} after the restart"
        done = bob.expect("file_complete", transfer=tid, timeout=120)
        assert file_hash(done["path"]) == expected
        # Per kill, at most the chunks requested, queued for the disk, or being written.
        chunk = choose_chunk_size(size)
        lost = (downloading.IN_FLIGHT_BYTES + downloading.WRITE_QUEUE_BYTES) // chunk + 2
        assert _transfer(ada, tid)["served"] <= size // chunk + kills * lost
    finally:
        ada.quit()
        bob.quit()
