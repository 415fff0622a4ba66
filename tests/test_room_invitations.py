"""Inviting contacts into a room without a link to copy: each gets a direct message carrying
the room's link, which their Kith shows as "Join the room “…”" to click. Two ``kith node``
processes on 127.0.0.1 for the protocol; the windows in tests/test_ui_room_invitations.py."""

from __future__ import annotations

from pathlib import Path

from app.core.identity import Identity
from app.core.invite import find_link
from app.core.room import parse_room_invite
from tests.nodeproc import NodeProcess


def test_a_contact_invited_from_the_room_joins_from_the_message(tmp_path: Path) -> None:
    ada = NodeProcess(tmp_path / "ada", name="Ada")
    bob = NodeProcess(tmp_path / "bob", name="Bob")
    eve = NodeProcess(tmp_path / "eve", name="Eve")
    try:
        ready_a, ready_b, ready_e = ada.expect("ready"), bob.expect("ready"), eve.expect("ready")
        a_id, b_id, e_id = ready_a["peer_id"], ready_b["peer_id"], ready_e["peer_id"]
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        room_id = ada.request({"cmd": "create_room", "name": "Book club"},
                              "room_created")["room_id"]

        # Eve wrote to Ada first: she is a request, and inviting her must not accept her.
        eve.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        eve.message(ada, a_id, "hello?")
        for wrong, why in (
            ({"peer_ids": [b_id, e_id]}, "only your contacts"),
            ({"peer_ids": [Identity.generate().peer_id]}, "only your contacts"),
            ({"peer_ids": []}, "at least one contact"),
            ({"peer_ids": b_id}, "'peer_ids' must be a list"),
        ):
            error = ada.request({"cmd": "invite_to_room", "room": room_id, **wrong}, "error")
            assert why in error["message"], error
        error = ada.request({"cmd": "invite_to_room", "room": "00" * 16, "peer_ids": [b_id]},
                            "error")
        assert "not in this room" in error["message"]
        contacts = ada.request({"cmd": "contacts"}, "contacts")["contacts"]
        assert next(c for c in contacts if c["peer_id"] == e_id)["state"] == "request"

        sent = ada.request({"cmd": "invite_to_room", "room": room_id, "peer_ids": [b_id, b_id]},
                           "room_invites_sent")
        assert [i["peer_id"] for i in sent["invites"]] == [b_id]  # once, however often listed
        got = bob.expect("message", id=sent["invites"][0]["id"])
        assert got["from"] == a_id and got["text"].startswith("You are invited to the room “Book")
        link = find_link(got["text"])
        assert link is not None and parse_room_invite(link).secrets.id_hex == room_id
        ada.expect("delivered", id=got["id"])
        assert not bob.printed("message", id=got["id"])[1:]  # nothing sent twice

        bob.request({"cmd": "join_room", "invite": link}, "room_joined")
        posted = bob.request({"cmd": "post", "room": room_id, "text": "thanks!"}, "posted")
        assert ada.expect("room_message", id=posted["id"], timeout=30)["text"] == "thanks!"
        # Eve heard nothing of it.
        assert not eve.printed("message", **{"from": a_id})
    finally:
        for node in (ada, bob, eve):
            node.quit()


def test_a_contact_invited_into_an_invite_only_room_gets_a_link_that_joins(
    tmp_path: Path,
) -> None:
    """In a governed room that admits with an invite only, the room's plain link would only
    be refused: an admin's invitation carries a one-use invite, and the click joins."""
    import asyncio

    from tests.peers import befriend, peers

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            room = await ada.client.create_room("Invite only", governed=True)
            await ada.client.room_settings(room.room_id, {"join": "invite"})
            (sent,) = await ada.client.invite_to_room(room.room_id, [bob.peer_id])
            (got,) = await bob.wait_event("message", timeout=30)
            assert got.message.id == sent.id  # type: ignore[attr-defined]
            link = find_link(got.message.text)  # type: ignore[attr-defined]
            assert link is not None and "&inv=" in link and link != room.invite
            await bob.client.join_room(link)
            await bob.wait_event("member_joined", peer_id=bob.peer_id, room=room.room_id,
                                 timeout=30)

    asyncio.run(scenario())
