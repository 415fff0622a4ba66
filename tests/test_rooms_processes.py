"""Rooms between ``kith node`` processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

from tests.nodeproc import NodeProcess
from tests.ports import ports_held


def test_room_across_processes_with_a_member_who_restarts(tmp_path: Path) -> None:
    nodes = {n: NodeProcess(tmp_path / n.lower(), name=n) for n in ("Ada", "Bob", "Cy")}
    ada, bob, cy = nodes["Ada"], nodes["Bob"], nodes["Cy"]
    try:
        ready = {n: p.expect("ready") for n, p in nodes.items()}
        created = ada.request({"cmd": "create_room", "name": "Ops"}, "room_created")
        room, invite = created["room_id"], created["invite"]
        assert invite.startswith(f"kith:room?id={room}&key=")
        for member in (bob, cy):
            assert member.request({"cmd": "join_room", "invite": invite},
                                  "room_joined")["room_id"] == room

        posted = ada.request({"cmd": "post", "room": room, "text": "hello room"}, "posted")
        for member in (bob, cy):
            got = member.expect("room_message", timeout=30)
            assert (got["room"], got["id"], got["from"], got["text"]) == (
                room, posted["id"], ready["Ada"]["peer_id"], "hello room"
            )

        deadline = time.monotonic() + 20  # announces spread within a few seconds
        while {m["name"] for m in bob.request({"cmd": "members", "room": room},
                                              "members")["members"]} != {"Ada", "Bob", "Cy"}:
            assert time.monotonic() < deadline, "the members' announces never reached Bob"
            time.sleep(0.05)

        assert cy.quit() == 0
        for i in range(20):
            author = ada if i % 2 else bob
            author.request({"cmd": "post", "room": room, "text": f"away {i}"}, "posted")
        with ports_held(ready["Cy"]["addrs"]):  # the old port stays taken: a new one
            cy = NodeProcess(tmp_path / "cy")
            assert cy.expect("ready")["addrs"] != ready["Cy"]["addrs"]
        caught_up = sorted(cy.expect("room_message", timeout=60)["text"] for _ in range(20))
        assert caught_up == sorted(f"away {i}" for i in range(20))

        histories = [
            [p["id"] for p in node.request({"cmd": "room_history", "room": room, "limit": 100},
                                           "room_history")["posts"]]
            for node in (ada, bob, cy)
        ]
        assert len(histories[0]) == 21 and histories[0] == histories[1] == histories[2]
        bad = ada.request({"cmd": "post", "room": "nope", "text": "x"}, "error")
        assert "not a room id" in bad["message"]
    finally:
        for node in (ada, bob, cy):
            node.quit()


def _room_ids(node: NodeProcess, room: str) -> list[str]:
    reply = node.request({"cmd": "room_history", "room": room, "limit": 1000}, "room_history")
    return [p["id"] for p in reply["posts"]]


def test_an_author_killed_while_posting_leaves_a_room_that_converges(tmp_path: Path) -> None:
    """SIGKILL of an author in the middle of bursts of posts, three times: every member, and
    one who joins afterwards, ends with the author's exact history within seconds."""
    ada = NodeProcess(tmp_path / "ada", name="Ada")
    bob = NodeProcess(tmp_path / "bob", name="Bob")
    cy: NodeProcess | None = None
    try:
        ada.expect("ready")
        bob.expect("ready")
        created = ada.request({"cmd": "create_room", "name": "Crashy"}, "room_created")
        room = created["room_id"]
        bob.request({"cmd": "join_room", "invite": created["invite"]}, "room_joined")
        deadline = time.monotonic() + 20
        while {m["name"] for m in ada.request({"cmd": "members", "room": room},
                                              "members")["members"]} != {"Ada", "Bob"}:
            assert time.monotonic() < deadline, "Bob's announce never reached Ada"
            time.sleep(0.1)  # Ada knows where Bob is: she reaches him after each restart
        for burst in range(3):
            for i in range(120):
                ada.send({"cmd": "post", "room": room, "text": f"burst {burst} post {i}"})
            for _ in range(20 + 25 * burst):  # kill at a different point of each burst
                ada.expect("posted", timeout=30)
            ada.kill()
            ada = NodeProcess(tmp_path / "ada")
            ada.expect("ready")
        last = ada.request({"cmd": "post", "room": room, "text": "back for good"}, "posted")
        bob.expect("room_message", timeout=30, id=last["id"])
        invite = bob.request({"cmd": "rooms"}, "rooms")["rooms"][0]["invite"]
        cy = NodeProcess(tmp_path / "cy", name="Cy")
        cy.expect("ready")
        cy.request({"cmd": "join_room", "invite": invite}, "room_joined")
        deadline = time.monotonic() + 30
        while True:
            expected = _room_ids(ada, room)
            views = {"Bob": _room_ids(bob, room), "Cy": _room_ids(cy, room)}
            if all(v == expected for v in views.values()):
                break
            assert time.monotonic() < deadline, {
                name: f"{len(set(expected) - set(v))} missing" for name, v in views.items()}
            time.sleep(0.2)
        assert len(expected) >= 1 + 20 + 45 + 70
    finally:
        for node in (ada, bob, cy):
            if node is not None:
                node.quit()
