"""Mailboxes between three ``kith node`` processes on 127.0.0.1: Ada writes to Bob and sends
him a file while Bob is off; Mia, Bob's mailbox, holds the mail and the file's sealed bytes;
Bob collects both while Ada is off in turn."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.nodeproc import NodeProcess

MIB = 1 << 20


def _port(ready: dict[str, Any]) -> str:
    """The listen address a node had (without its /p2p part)."""
    return str(ready["addrs"][0]).rpartition("/p2p/")[0]


def _wait_status(node: NodeProcess, done: Callable[[dict[str, Any]], bool],
                 timeout: float = 30) -> dict[str, Any]:
    """Ask for ``mailbox_status`` until ``done`` holds for the answer."""
    deadline = time.monotonic() + timeout
    while True:
        status = node.request({"cmd": "mailbox_status"}, "mailbox_status")
        if done(status):
            return status
        assert time.monotonic() < deadline, f"mailbox status still {status}"


def test_messages_reach_bob_through_his_mailbox_while_ada_is_offline(tmp_path: Path) -> None:
    mia = NodeProcess(tmp_path / "mia", "--serve-mailbox", name="Mia")
    ada = bob = None
    try:
        ready_m = mia.expect("ready")
        mia_id, mia_addr = ready_m["peer_id"], ready_m["addrs"][0]
        assert mia_addr.endswith("/p2p/" + mia_id)

        # Bob names Mia as his mailbox before Mia knows him: refused, then registered as soon
        # as Mia adds him (her dial wakes his registration).
        bob = NodeProcess(tmp_path / "bob", "--mailbox", mia_addr, name="Bob")
        ready_b = bob.expect("ready")
        b_id = ready_b["peer_id"]
        refused = bob.expect("mailbox_refused", mailbox=mia_id)
        assert "contacts" in refused["reason"]
        mia.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.expect("mailbox_registered", mailbox=mia_id, timeout=30)

        ada = NodeProcess(tmp_path / "ada", name="Ada")
        ready_a = ada.expect("ready")
        a_id = ready_a["peer_id"]
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        # Bob's invite carries his signed mailbox record (his profile answer does too).
        learned = ada.expect("contact_mailboxes", peer_id=b_id)
        assert learned["mailboxes"] == [mia_id]
        # The record comes with the invite, before any connection: Ada has to have seen Bob
        # online before he goes, or she never sees him go offline.
        ada.expect("contact_online", peer_id=b_id)

        assert bob.quit() == 0
        ada.expect("contact_offline", peer_id=b_id)

        texts = ["one", "two", "three"]
        ids = [ada.request({"cmd": "send", "to": b_id, "text": t}, "sent")["id"] for t in texts]
        for message_id in ids:
            assert ada.expect("deposited", id=message_id, timeout=30)["mailbox"] == mia_id
        source = tmp_path / "photos.bin"
        content = os.urandom(5_000_000)  # 5 MB: five chunks
        source.write_bytes(content)
        ada.send({"cmd": "send_file", "to": b_id, "path": str(source)})
        transfer = ada.expect("file_offered")["transfer"]
        # The offer goes the same way (the CLI prints events of text messages only), and the
        # file's bytes, sealed, wait at Mia too.
        deposited = ada.expect("file_deposited", transfer=transfer, timeout=60)
        assert (deposited["mailbox"], deposited["peer_id"]) == (mia_id, b_id)
        status = _wait_status(mia, lambda s: s["held"] == 4)
        assert status["serving"] and status["users"] == 1
        assert status["bytes"] > len(content)  # the blob counts toward Bob's quota
        assert ada.quit() == 0
        ada = None

        # Each comes back on the port it had, as a profile's remembered port does.
        bob = NodeProcess(tmp_path / "bob", "--mailbox", mia_addr, "--listen", _port(ready_b),
                          name="Bob")
        got = [bob.expect("message", timeout=30) for _ in texts]
        assert [m["id"] for m in got] == ids and [m["text"] for m in got] == texts
        assert {m["via"] for m in got} == {"mailbox"} and {m["from"] for m in got} == {a_id}
        offer = bob.expect("file_offer", transfer=transfer)
        assert (offer["from"], offer["via"]) == (a_id, "mailbox")
        mine = bob.request({"cmd": "mailbox_status"}, "mailbox_status")["mine"]
        assert mine == [{"mailbox": mia_id, "reachable": True, "registered": True}]
        # Accepted as the CLI does; the bytes come from Mia (Ada is offline), verified.
        inbox = tmp_path / "inbox"
        bob.request({"cmd": "accept_file", "transfer": transfer, "dir": str(inbox)},
                    "file_accepted")
        done = bob.expect("file_complete", transfer=transfer, timeout=60)
        assert Path(done["path"]).read_bytes() == content
        assert Path(done["path"]).parent == inbox and done["hash"] == offer["hash"]
        assert hashlib.sha256(content).hexdigest() != done["hash"]  # the hash of chunk hashes
        # Collected, then deleted at the mailbox: the messages, and the blob once complete.
        _wait_status(mia, lambda s: s["held"] == 0 and s["bytes"] == 0)

        ada = NodeProcess(tmp_path / "ada", "--listen", _port(ready_a), name="Ada")
        for message_id in ids:
            ada.expect("delivered", id=message_id, timeout=60)
        ada.expect("file_complete", transfer=transfer, timeout=60)  # Bob's "complete" control
        bob.request({"cmd": "status"}, "status")
        assert len(bob.printed("message")) == 3  # exactly once, whatever came again
        assert len(bob.printed("file_offer")) == 1 and len(bob.printed("file_complete")) == 1
        assert [p.name for p in inbox.iterdir()] == ["photos.bin"]
    finally:
        for node in (ada, bob, mia):
            if node is not None:
                node.quit()


def test_bob_killed_while_reading_a_file_from_his_mailbox_resumes_from_it(tmp_path: Path
                                                                           ) -> None:
    mia = NodeProcess(tmp_path / "mia", "--serve-mailbox", name="Mia")
    ada = bob = None
    try:
        ready_m = mia.expect("ready")
        mia_id, mia_addr = ready_m["peer_id"], ready_m["addrs"][0]
        bob = NodeProcess(tmp_path / "bob", "--mailbox", mia_addr, name="Bob")
        ready_b = bob.expect("ready")
        b_id = ready_b["peer_id"]
        mia.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.expect("mailbox_registered", mailbox=mia_id, timeout=30)
        ada = NodeProcess(tmp_path / "ada", name="Ada")
        ready_a = ada.expect("ready")
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        ada.expect("contact_mailboxes", peer_id=b_id)  # from the invite, before connecting
        ada.expect("contact_online", peer_id=b_id)
        assert bob.quit() == 0
        ada.expect("contact_offline", peer_id=b_id)

        source = tmp_path / "film.bin"
        content = os.urandom(4 * MIB + 5)  # five chunks
        source.write_bytes(content)
        ada.send({"cmd": "send_file", "to": b_id, "path": str(source)})
        transfer = ada.expect("file_offered")["transfer"]
        ada.expect("file_deposited", transfer=transfer, timeout=60)
        assert ada.quit() == 0
        ada = None
        # For now Mia holds the hash list and chunks 0 and 1 only (the rest comes later).
        with _mia_db(tmp_path) as db:
            later = db.execute("SELECT * FROM mailbox_blob_pieces WHERE idx > 2").fetchall()
            db.execute("DELETE FROM mailbox_blob_pieces WHERE idx > 2")
        assert len(later) == 3

        bob = NodeProcess(tmp_path / "bob", "--mailbox", mia_addr, name="Bob")
        bob.expect("file_offer", transfer=transfer, timeout=30)
        bob.request({"cmd": "accept_file", "transfer": transfer, "dir": str(tmp_path / "in")},
                    "file_accepted")
        _wait_transfer(bob, transfer, lambda t: t["bytes"] == 2 * MIB)
        bob.kill()  # mid-download
        with _mia_db(tmp_path) as db:
            db.executemany("INSERT INTO mailbox_blob_pieces VALUES (?, ?, ?)", later)

        bob = NodeProcess(tmp_path / "bob", "--mailbox", mia_addr, name="Bob")
        assert bob.expect("file_progress", transfer=transfer)["bytes"] == 2 * MIB  # not 0
        done = bob.expect("file_complete", transfer=transfer, timeout=60)
        assert Path(done["path"]).read_bytes() == content
        _wait_status(mia, lambda s: s["bytes"] == 0)
    finally:
        for node in (ada, bob, mia):
            if node is not None:
                node.quit()


@contextlib.contextmanager
def _mia_db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Mia's profile database, beside her running node (one transaction)."""
    db = sqlite3.connect(tmp_path / "mia" / "kith.db", timeout=10)
    try:
        with db:
            yield db
    finally:
        db.close()


def _wait_transfer(node: NodeProcess, transfer: str, done: Callable[[dict[str, Any]], bool],
                   timeout: float = 30) -> dict[str, Any]:
    """Ask for ``transfers`` until ``done`` holds for ``transfer``."""
    deadline = time.monotonic() + timeout
    while True:
        listed = node.request({"cmd": "transfers"}, "transfers")["transfers"]
        (info,) = [t for t in listed if t["transfer"] == transfer]
        if done(info):
            return info
        assert time.monotonic() < deadline, f"transfer still {info}"
