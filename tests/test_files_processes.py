"""File transfer between ``kith node`` processes on 127.0.0.1: killed and resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.nodeproc import NodeProcess
from tests.payload import MiB, content_hash, file_hash, make_file

SIZE = 300 * MiB


def _pair(tmp_path: Path) -> tuple[NodeProcess, NodeProcess, dict, dict]:
    ada, bob = NodeProcess(tmp_path / "ada", name="Ada"), NodeProcess(tmp_path / "bob", name="Bob")
    ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
    ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
    bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
    ada.expect("contact_online", peer_id=ready_b["peer_id"])
    return ada, bob, ready_a, ready_b


def _transfer(node: NodeProcess, transfer: str) -> dict[str, Any]:
    listing = node.request({"cmd": "transfers"}, "transfers")["transfers"]
    (found,) = [t for t in listing if t["transfer"] == transfer]
    return found


def _progress_until(node: NodeProcess, transfer: str, at_least: int) -> int:
    while True:
        got = node.expect("file_progress", transfer=transfer, timeout=60)["bytes"]
        if got >= at_least:
            return int(got)


def test_a_killed_receiver_resumes_without_fetching_verified_chunks(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, SIZE)
    inbox = tmp_path / "inbox"
    ada, bob, _, ready_b = _pair(tmp_path)
    try:
        ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
        tid = ada.expect("file_offered", timeout=60)["transfer"]
        offer = bob.expect("file_offer", transfer=tid)
        assert (offer["name"], offer["size"]) == ("big.bin", SIZE)
        assert offer["hash"] == content_hash(source)
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(inbox)}, "file_accepted")
        _progress_until(bob, tid, 30 * MiB)
        bob.kill()  # SIGKILL, part-way
        served_before = _transfer(ada, tid)["served"]
        assert served_before < SIZE // MiB

        bob = NodeProcess(tmp_path / "bob")
        bob.expect("ready")
        first = bob.expect("file_progress", transfer=tid, timeout=30)["bytes"]
        assert 0 < first < SIZE  # what was verified before the kill
        done = bob.expect("file_complete", transfer=tid, timeout=120)
        assert done["hash"] == content_hash(source) and file_hash(done["path"]) == expected
        assert Path(done["path"]) == inbox / "big.bin"
        ada.expect("file_complete", transfer=tid, timeout=30)
        served_after = _transfer(ada, tid)["served"] - served_before
        # Only what was not verified before the kill was served again.
        assert served_after <= SIZE // MiB - first // MiB
        assert _transfer(bob, tid)["state"] == "complete"
    finally:
        ada.quit()
        bob.quit()


def test_a_sender_that_quits_and_returns_lets_the_transfer_finish(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, SIZE)
    ada, bob, _, ready_b = _pair(tmp_path)
    try:
        ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
        tid = ada.expect("file_offered", timeout=60)["transfer"]
        bob.expect("file_offer", transfer=tid)
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp_path / "in")},
                    "file_accepted")
        _progress_until(bob, tid, 30 * MiB)
        ada.kill()
        ada = NodeProcess(tmp_path / "ada")  # another port; Bob learns it when Ada dials him
        ada.expect("ready")
        done = bob.expect("file_complete", transfer=tid, timeout=120)
        assert file_hash(done["path"]) == expected
        ada.expect("file_complete", transfer=tid, timeout=30)
        assert _transfer(ada, tid)["served"] < SIZE // MiB  # this run served only the rest
    finally:
        ada.quit()
        bob.quit()


def test_decline_between_processes(tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_text("hello")
    ada, bob, _, ready_b = _pair(tmp_path)
    try:
        ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
        tid = ada.expect("file_offered")["transfer"]
        bob.expect("file_offer", transfer=tid)
        bob.request({"cmd": "decline_file", "transfer": tid}, "file_declined")
        assert ada.expect("file_declined", transfer=tid)["by"] == "peer"
        bad = bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp_path)}, "error")
        assert "declined" in bad["message"]
    finally:
        ada.quit()
        bob.quit()
