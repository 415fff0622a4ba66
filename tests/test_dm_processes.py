"""Direct messages between two ``kith node`` processes on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.nodeproc import NodeProcess
from tests.ports import ports_held


def _pair(tmp_path: Path) -> tuple[NodeProcess, NodeProcess, dict, dict]:
    ada, bob = NodeProcess(tmp_path / "ada", name="Ada"), NodeProcess(tmp_path / "bob", name="Bob")
    ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
    ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
    bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
    return ada, bob, ready_a, ready_b


def test_conversation_and_burst_between_processes(tmp_path: Path) -> None:
    ada, bob, ready_a, ready_b = _pair(tmp_path)
    try:
        a_id, b_id = ready_a["peer_id"], ready_b["peer_id"]
        sent = ada.request({"cmd": "send", "to": b_id, "text": "hello from Ada"}, "sent")
        got = bob.expect("message")
        assert (got["from"], got["text"], got["id"]) == (a_id, "hello from Ada", sent["id"])
        assert isinstance(got["sent_at"], int) and got["request"] is False
        ada.expect("delivered", id=sent["id"])
        reply = bob.request({"cmd": "send", "to": a_id, "text": "hi Ada"}, "sent")
        assert ada.expect("message")["id"] == reply["id"]
        bob.expect("delivered", id=reply["id"])

        ids = []
        for i in range(200):
            ada.send({"cmd": "send", "to": b_id, "text": f"burst {i}"})
        for _ in range(200):
            ids.append(ada.expect("sent")["id"])
        received = [bob.expect("message", timeout=60) for _ in range(200)]
        assert [m["text"] for m in received] == [f"burst {i}" for i in range(200)]
        assert [m["id"] for m in received] == ids
        for message_id in ids:
            ada.expect("delivered", id=message_id, timeout=60)

        history = bob.request({"cmd": "history", "with": a_id, "limit": 1000}, "history")
        texts = [m["text"] for m in history["messages"]]
        assert texts[:2] == ["hello from Ada", "hi Ada"] and len(texts) == 202
        assert history["messages"][1]["from"] == b_id and history["messages"][1]["outgoing"]
        bad = bob.request({"cmd": "history", "with": a_id, "limit": 0}, "error")
        assert "limit" in bad["message"]
    finally:
        ada.quit()
        bob.quit()


def test_messages_wait_for_a_stopped_recipient_who_returns_on_another_port(
    tmp_path: Path,
) -> None:
    ada, bob, _, ready_b = _pair(tmp_path)
    try:
        ada.expect("contact_online", peer_id=ready_b["peer_id"])
        assert bob.quit() == 0
        ada.expect("contact_offline", peer_id=ready_b["peer_id"])
        sent = [
            ada.request({"cmd": "send", "to": ready_b["peer_id"], "text": f"while away {i}"},
                        "sent")["id"]
            for i in range(3)
        ]
        with ports_held(ready_b["addrs"]):  # the old port stays taken: Bob gets a new one
            bob = NodeProcess(tmp_path / "bob")
            ready_again = bob.expect("ready")
        assert ready_again["peer_id"] == ready_b["peer_id"]
        assert ready_again["addrs"] != ready_b["addrs"]
        received = [bob.expect("message", timeout=60) for _ in range(3)]
        assert [m["id"] for m in received] == sent
        assert [m["text"] for m in received] == [f"while away {i}" for i in range(3)]
        for message_id in sent:
            ada.expect("delivered", id=message_id, timeout=30)
        ada.expect("contact_online", peer_id=ready_b["peer_id"])
    finally:
        ada.quit()
        bob.quit()
