"""Governed rooms between ``kith node`` processes: removal locks out, rights are checked,
an offline member and a late joiner catch up."""

from __future__ import annotations

import time
from pathlib import Path

from tests.nodeproc import NodeProcess


def members(node: NodeProcess, room: str) -> dict[str, str]:
    listed = node.request({"cmd": "members", "room": room}, "members")["members"]
    return {m["peer_id"]: m["role"] for m in listed}


def wait_members(node: NodeProcess, room: str, wanted: dict[str, str], timeout: float = 30
                 ) -> None:
    deadline = time.monotonic() + timeout
    while (held := members(node, room)) != wanted:
        assert time.monotonic() < deadline, f"members {held}, wanted {wanted}"
        time.sleep(0.05)


def history(node: NodeProcess, room: str) -> list[tuple[str, str]]:
    posts = node.request({"cmd": "room_history", "room": room, "limit": 500},
                         "room_history")["posts"]
    return [(p["id"], p["text"]) for p in posts if p["kind"] == 1]


def join(node: NodeProcess, invite: str, room: str, me: str) -> None:
    """Join and wait until admitted with the current key."""
    node.request({"cmd": "join_room", "invite": invite}, "room_joined")
    node.expect("member_joined", timeout=30, room=room, peer_id=me)
    node.expect("key_rotated", timeout=30, room=room)


def test_removal_locks_out_rights_are_checked_and_everyone_converges(tmp_path: Path) -> None:
    names = ("Ada", "Bob", "Cy", "Dee")
    nodes = {n: NodeProcess(tmp_path / n.lower(), name=n) for n in names}
    ada, bob, cy, dee = (nodes[n] for n in names)
    eve: NodeProcess | None = None
    try:
        ids = {n: p.expect("ready")["peer_id"] for n, p in nodes.items()}
        created = ada.request({"cmd": "create_room", "name": "Ops", "governed": True},
                              "room_created")
        room, invite = created["room_id"], created["invite"]
        for name in ("Bob", "Cy", "Dee"):
            join(nodes[name], invite, room, ids[name])
        everyone = {ids["Ada"]: "owner", ids["Bob"]: "member", ids["Cy"]: "member",
                    ids["Dee"]: "member"}
        for node in nodes.values():
            wait_members(node, room, everyone)

        # A member without the right gets an error, and nothing changes anywhere.
        refused = bob.request({"cmd": "remove_member", "room": room, "peer_id": ids["Cy"]},
                              "error")
        assert "cannot remove" in refused["message"]
        refused = bob.request({"cmd": "set_role", "room": room, "peer_id": ids["Bob"],
                               "role": "admin"}, "error")
        assert "cannot make" in refused["message"]
        ada.request({"cmd": "set_role", "room": room, "peer_id": ids["Bob"], "role": "admin"},
                    "role_changed")
        for node in (bob, cy, dee):
            got = node.expect("role_changed", timeout=30, room=room, peer_id=ids["Bob"])
            assert (got["role"], got["by"]) == ("admin", ids["Ada"])
        everyone[ids["Bob"]] = "admin"

        cy_post = cy.request({"cmd": "post", "room": room, "text": "cy was here"}, "posted")
        for node in (ada, bob, dee):
            node.expect("room_message", timeout=30, id=cy_post["id"])

        assert dee.quit() == 0  # offline during the rotation
        bob.request({"cmd": "remove_member", "room": room, "peer_id": ids["Cy"]}, "key_rotated")
        got = cy.expect("removed_from_room", timeout=30, room=room)
        assert (got["by"], got["ban"]) == (ids["Bob"], False)
        for node in (ada, bob):
            removed = node.expect("member_removed", timeout=30, room=room, peer_id=ids["Cy"])
            assert (removed["by"], removed["ban"]) == (ids["Bob"], False)
        ada.expect("key_rotated", timeout=30, room=room, epoch=2)
        del everyone[ids["Cy"]]

        after = ada.request({"cmd": "post", "room": room, "text": "after the removal"},
                            "posted")
        bob.expect("room_message", timeout=30, id=after["id"])
        refused = cy.request({"cmd": "post", "room": room, "text": "let me in"}, "error")
        assert "removed" in refused["message"]
        # Cy keeps what it held and reads nothing new.
        cy_texts = [t for _, t in history(cy, room)]
        assert "cy was here" in cy_texts and "after the removal" not in cy_texts
        assert not cy.printed("room_message", id=after["id"])

        # Dee was offline: it gets the new key from whoever is online, and the new posts.
        dee = NodeProcess(tmp_path / "dee")
        dee.expect("ready")
        dee.expect("key_rotated", timeout=60, room=room, epoch=2)
        dee.expect("room_message", timeout=60, id=after["id"])
        dee_post = dee.request({"cmd": "post", "room": room, "text": "dee is back"}, "posted")
        ada.expect("room_message", timeout=30, id=dee_post["id"])
        assert not cy.printed("room_message", id=dee_post["id"])

        # A late joiner ends with the same members, roles and posts as everyone.
        eve = NodeProcess(tmp_path / "eve", name="Eve")
        ids["Eve"] = eve.expect("ready")["peer_id"]
        join(eve, invite, room, ids["Eve"])
        everyone[ids["Eve"]] = "member"
        expected = history(ada, room)
        assert [t for _, t in expected] == ["cy was here", "after the removal", "dee is back"]
        deadline = time.monotonic() + 60
        while history(eve, room) != expected:
            assert time.monotonic() < deadline, f"Eve holds {history(eve, room)}"
            time.sleep(0.1)
        for node in (ada, bob, dee, eve):
            wait_members(node, room, everyone)
            assert history(node, room) == expected
    finally:
        for node in (*nodes.values(), dee, *([eve] if eve else [])):
            node.quit()


def test_a_revoked_or_used_up_invite_joins_nothing(tmp_path: Path) -> None:
    names = ("Ada", "Bob", "Cy")
    nodes = {n: NodeProcess(tmp_path / n.lower(), name=n) for n in names}
    ada, bob, cy = (nodes[n] for n in names)
    try:
        ids = {n: p.expect("ready")["peer_id"] for n, p in nodes.items()}
        room = ada.request({"cmd": "create_room", "name": "Guests", "governed": True},
                           "room_created")["room_id"]
        settings = ada.request({"cmd": "room_settings", "room": room, "join": "invite"},
                               "room_settings")["settings"]
        assert settings["join"] == "invite"
        revoked = ada.request({"cmd": "create_invite", "room": room, "uses": 0},
                              "invite_created")
        ada.request({"cmd": "revoke_invite", "room": room, "invite_id": revoked["invite_id"]},
                    "invite_revoked")
        once = ada.request({"cmd": "create_invite", "room": room, "expires_in": 3600,
                            "uses": 1}, "invite_created")
        assert "&inv=" in once["invite"] and "&inv=" in revoked["invite"]

        bob.request({"cmd": "join_room", "invite": revoked["invite"]}, "room_joined")
        refused = bob.expect("join_refused", timeout=30, room=room)
        assert "revoked" in refused["reason"]
        assert "not admitted" in bob.request({"cmd": "post", "room": room, "text": "hi"},
                                             "error")["message"]

        join(cy, once["invite"], room, ids["Cy"])
        cy.request({"cmd": "post", "room": room, "text": "cy is in"}, "posted")
        # The one use is spent: Bob, trying that link too, is refused as well.
        bob.request({"cmd": "join_room", "invite": once["invite"]}, "room_joined")
        assert "used up" in bob.expect("join_refused", timeout=30, room=room)["reason"]
        assert members(ada, room) == {ids["Ada"]: "owner", ids["Cy"]: "member"}
        assert not bob.printed("member_joined", peer_id=ids["Bob"])
        assert not bob.printed("room_message")
        listed = ada.request({"cmd": "invites", "room": room}, "invites")["invites"]
        by_id = {i["invite_id"]: i for i in listed}
        assert by_id[revoked["invite_id"]]["revoked"] is True
        assert (by_id[once["invite_id"]]["used"], by_id[once["invite_id"]]["uses"]) == (1, 1)
    finally:
        for node in nodes.values():
            node.quit()
