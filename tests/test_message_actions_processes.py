"""Reply, react, edit and delete between ``kith node`` processes on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.nodeproc import NodeProcess


def test_actions_between_processes(tmp_path: Path) -> None:
    ada, bob = NodeProcess(tmp_path / "ada", name="Ada"), NodeProcess(tmp_path / "bob", name="Bob")
    try:
        ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
        a_id, b_id = ready_a["peer_id"], ready_b["peer_id"]
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        assert "actions/1" in ada.expect("features", peer_id=b_id)["features"]
        assert "actions/1" in bob.expect("features", peer_id=a_id)["features"]

        first = ada.request({"cmd": "send", "to": b_id, "text": "first draft"}, "sent")
        bob.expect("message", id=first["id"])
        reply = bob.request({"cmd": "send", "to": a_id, "text": "got it",
                             "reply_to": first["id"]}, "sent")
        got = ada.expect("message", id=reply["id"])
        assert (got["text"], got["reply_to"]) == ("got it", first["id"])

        ada.send({"cmd": "react", "message_id": reply["id"], "emoji": "❤️"})
        for node in (ada, bob):
            event = node.expect("reaction", message_id=reply["id"])
            assert (event["by"], event["emoji"], event["removed"]) == (a_id, "❤️", False)

        refused = bob.request({"cmd": "edit", "message_id": first["id"], "text": "mine now"},
                              "error")
        assert "your own" in refused["message"]
        ada.send({"cmd": "edit", "message_id": first["id"], "text": "final text"})
        edited = bob.expect("message_edited", message_id=first["id"])
        assert (edited["text"], edited["by"]) == ("final text", a_id)
        assert isinstance(edited["edited_at"], int)

        history = bob.request({"cmd": "history", "with": a_id}, "history")["messages"]
        assert [(m["id"], m["text"], m["edited"], m["reply_to"], m["reactions"])
                for m in history] == [
            (first["id"], "final text", True, None, {}),
            (reply["id"], "got it", False, first["id"], {"❤️": [a_id]}),
        ]

        ada.send({"cmd": "typing", "to": b_id})
        assert bob.expect("typing", by=a_id)["to"] == b_id
        marked = bob.request({"cmd": "mark_read", "message_id": first["id"]}, "marked_read")
        assert marked["receipt"] is True
        assert ada.expect("read", message_id=first["id"])["by"] == b_id
        privacy = bob.request({"cmd": "set_privacy", "read_receipts": False}, "privacy")
        assert (privacy["read_receipts"], privacy["typing"]) == (False, True)

        ada.send({"cmd": "delete", "message_id": first["id"], "for_everyone": True})
        for node in (ada, bob):
            assert node.expect("message_deleted", message_id=first["id"])["by"] == a_id
        history = bob.request({"cmd": "history", "with": a_id}, "history")["messages"]
        assert [m["id"] for m in history] == [reply["id"]]
        hits = bob.request({"cmd": "search", "text": "final"}, "search")["hits"]
        assert hits == []
    finally:
        ada.quit()
        bob.quit()


def test_a_room_reply_edit_and_delete_between_processes(tmp_path: Path) -> None:
    ada, bob = NodeProcess(tmp_path / "ada", name="Ada"), NodeProcess(tmp_path / "bob", name="Bob")
    try:
        a_id = ada.expect("ready")["peer_id"]
        b_id = bob.expect("ready")["peer_id"]
        created = ada.request({"cmd": "create_room", "name": "Ops"}, "room_created")
        room = created["room_id"]
        bob.request({"cmd": "join_room", "invite": created["invite"]}, "room_joined")
        # Their announces say they read replies: a reply goes as one (not as quoted text).
        assert "actions/1" in bob.expect("features", peer_id=a_id, timeout=30)["features"]
        assert "actions/1" in ada.expect("features", peer_id=b_id, timeout=30)["features"]
        posted = ada.request({"cmd": "post", "room": room, "text": "deploy at 5"}, "posted")
        bob.expect("room_message", id=posted["id"], timeout=30)
        answer = bob.request({"cmd": "post", "room": room, "text": "ok",
                              "reply_to": posted["id"]}, "posted")
        assert ada.expect("room_message", id=answer["id"], timeout=30)["reply_to"] == posted["id"]
        ada.send({"cmd": "edit", "message_id": posted["id"], "text": "deploy at 6"})
        assert bob.expect("message_edited", message_id=posted["id"], timeout=30)["by"] == a_id
        ada.send({"cmd": "delete", "message_id": answer["id"], "for_everyone": True})
        refused = ada.expect("error")
        assert "your own" in refused["message"]
        bob.send({"cmd": "delete", "message_id": answer["id"], "for_everyone": True})
        ada.expect("message_deleted", message_id=answer["id"], timeout=30)
        posts = ada.request({"cmd": "room_history", "room": room}, "room_history")["posts"]
        assert [(p["id"], p["text"], p["edited"]) for p in posts] == [
            (posted["id"], "deploy at 6", True)]
    finally:
        ada.quit()
        bob.quit()
