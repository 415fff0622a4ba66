"""``kith node`` processes killed with SIGKILL, at exact moments (``tests.crash_at``) and at
whatever moment the test reads an event: a stored message is shown, a finished file stays
finished and the sender hears of it, and progress once shown is never taken back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
