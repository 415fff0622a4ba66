"""Governed rooms between real peers in one process: roles, removal that locks out, epochs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from app.core import room as rc
from app.core.events import RoomInviteReceived, RoomMessage
from app.node.node import KithNode
from tests.peers import Peer, befriend, peers


def run(coro_fn):
    return asyncio.run(coro_fn())


async def texts(peer: Peer, room_id: str) -> list[str]:
    return [p.text for p in await peer.client.room_history(room_id, limit=1000) if p.kind == 1]


async def wait_texts(peer: Peer, room_id: str, wanted: list[str], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = await texts(peer, room_id)
        if all(t in held for t in wanted):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{peer.name} holds {held}, wants {wanted}")
        await asyncio.sleep(0.05)


async def roles(peer: Peer, room_id: str) -> dict[str, str]:
    return {m.peer_id: m.role for m in await peer.client.room_members(room_id)}


async def wait_roles(peer: Peer, room_id: str, wanted: dict[str, str], timeout: float = 30
                     ) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (held := await roles(peer, room_id)) != wanted:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{peer.name} sees roles {held}, wants {wanted}")
        await asyncio.sleep(0.05)


async def admitted(peer: Peer, owner: Peer, room_id: str) -> None:
    """``peer`` joined and holds the current key (it can post)."""
    await peer.wait_event("member_joined", peer_id=peer.peer_id, room=room_id)
    await peer.wait_event("key_rotated", room=room_id)


def test_a_removed_member_reads_nothing_new_and_its_posts_are_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            room = await ada.client.create_room("Club", governed=True)
            rid = room.room_id
            await bob.client.join_room(room.invite)
            await admitted(bob, ada, rid)
            await cy.client.join_room(room.invite)
            await admitted(cy, ada, rid)
            await wait_roles(bob, rid, {ada.peer_id: "owner", bob.peer_id: "member",
                                        cy.peer_id: "member"})
            await cy.client.post(rid, "hello from cy")
            await wait_texts(bob, rid, ["hello from cy"])

            await ada.client.remove_member(rid, cy.peer_id)
            removed = await cy.wait_event("removed_from_room", room=rid)
            assert removed[0].to_json()["by"] == ada.peer_id
            await bob.wait_event("member_removed", peer_id=cy.peer_id, by=ada.peer_id)
            await bob.wait_event("key_rotated", room=rid, epoch=2)
            await ada.client.post(rid, "after the removal")
            await wait_texts(bob, rid, ["after the removal"])
            # Cy keeps what it held, and can neither read nor post anything new.
            assert "hello from cy" in await texts(cy, rid)
            try:
                await cy.client.post(rid, "still here?")
            except ValueError as exc:
                assert "removed" in str(exc)
            else:
                raise AssertionError("a removed member could post")
            await bob.client.post(rid, "bob after")
            await wait_texts(ada, rid, ["bob after"])
            assert not [e for e in cy.named("room_message")
                        if isinstance(e, RoomMessage) and e.text in
                        ("after the removal", "bob after")]
            assert "after the removal" not in await texts(cy, rid)

    run(scenario)


def test_a_removed_members_later_posts_are_dropped_and_leaving_rotates(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            room = await ada.client.create_room("Club", governed=True)
            rid, raw = room.room_id, bytes.fromhex(room.room_id)
            for peer in (bob, cy):
                await peer.client.join_room(room.invite)
                await admitted(peer, ada, rid)
            await ada.client.remove_member(rid, cy.peer_id)
            await cy.wait_event("removed_from_room", room=rid)

            async def forge(node: KithNode) -> bytes:
                """What Cy's own node refuses to do: post with the epoch key it still holds."""
                stored = node.rooms.store.room(raw)
                assert stored is not None
                secrets = node.rooms.governor.secrets(stored.secrets)
                assert secrets.current_epoch is not None
                return rc.encode_text_post(node.identity, secrets, "forged after removal",
                                           lamport=stored.lamport + 1,
                                           author_seq=stored.my_seq + 1, sent_at_ms=1)

            envelope = await cy.client.call(forge)

            async def deliver(node: KithNode) -> bool:
                live = node.rooms._live[raw]
                return (await node.rooms._receive(live, envelope, cy.peer_id)).stored

            await bob.wait_event("key_rotated", room=rid, epoch=2)
            assert await bob.client.call(deliver) is False
            assert "forged after removal" not in await texts(bob, rid)

            # Leaving starts a new epoch too (rotate_on_leave is on by default).
            await bob.client.leave_room(rid)
            await ada.wait_event("member_removed", peer_id=bob.peer_id, by=bob.peer_id)
            await ada.wait_event("key_rotated", room=rid, epoch=3)
            assert await roles(ada, rid) == {ada.peer_id: "owner"}

    run(scenario)


def test_admins_delete_posts_ban_and_rename_for_everyone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy", "Dee") as (ada, bob, cy, dee):
            room = await ada.client.create_room("Club", governed=True)
            rid = room.room_id
            for peer in (bob, cy):
                await peer.client.join_room(room.invite)
                await admitted(peer, ada, rid)
            spoiler = await bob.client.post(rid, "the butler did it")
            kept = await bob.client.post(rid, "see you friday")
            await wait_texts(cy, rid, ["the butler did it", "see you friday"])
            assert [h.message_id for h in await cy.client.search("butler")] == [spoiler.id]

            try:
                await cy.client.delete_room_post(rid, spoiler.id)
            except ValueError as exc:
                assert "Only owners and admins" in str(exc)
            else:
                raise AssertionError("a member deleted someone else's post")
            await ada.client.delete_room_post(rid, spoiler.id)
            for peer in (bob, cy):
                await peer.wait_event("post_removed", room=rid, id=spoiler.id)
                assert await texts(peer, rid) == ["see you friday"]
                assert await peer.client.search("butler") == []

            await ada.client.remove_member(rid, cy.peer_id, ban=True)
            await cy.wait_event("removed_from_room", room=rid, ban=True)
            await cy.client.join_room(room.invite)
            assert "banned" in (await cy.wait_event("join_refused", room=rid))[0] \
                .to_json()["reason"]

            settings = await ada.client.room_settings(rid, {"name": "Book club",
                                                            "description": "Fridays"})
            assert settings["name"] == "Book club"
            await bob.wait_for(lambda: any(
                e.name == "room" and e.room.name == "Book club"  # type: ignore[attr-defined]
                for e in bob.events), what="the new name")

            # A late joiner gets the log with the deletion and never shows the deleted post.
            await dee.client.join_room(room.invite)
            await admitted(dee, ada, rid)
            await wait_texts(dee, rid, ["see you friday"])
            assert await texts(dee, rid) == ["see you friday"]
            assert await roles(dee, rid) == await roles(ada, rid)
            assert kept.id in [p.id for p in await dee.client.room_history(rid)]

    run(scenario)


def test_a_contact_invited_directly_joins_and_approve_mode_waits_for_an_admin(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Cy") as (ada, bob, cy):
            await befriend(ada, bob)
            room = await ada.client.create_room("Invite only", governed=True)
            rid = room.room_id
            await ada.client.room_settings(rid, {"join": "invite"})
            await ada.client.invite_contact(rid, bob.peer_id)
            card = (await bob.wait_event("room_invite", room_id=rid))[0]
            assert isinstance(card, RoomInviteReceived)
            assert card.room_name == "Invite only" and "&inv=" in card.invite
            # The invitation also shows in the conversation; that event may come after the card's.
            await bob.wait_for(lambda: any(
                "Invitation to the room “Invite only”" in e.message.text  # type: ignore[attr-defined]
                for e in bob.named("message")), what="the invitation in the conversation")
            await bob.client.join_room(card.invite)
            await admitted(bob, ada, rid)
            # The room's plain link no longer joins it.
            await cy.client.join_room(room.invite)
            await cy.wait_event("join_refused", room=rid)

            await ada.client.room_settings(rid, {"join": "approve"})
            await cy.client.join_room(room.invite)
            await ada.wait_event("join_request", room=rid, peer_id=cy.peer_id)

            async def bob_approving() -> str:
                try:
                    await bob.client.approve_join(rid, cy.peer_id)
                except ValueError as exc:
                    return str(exc)
                raise AssertionError("a member accepted a join")

            # Bob may get Cy's request after Ada: until then he is told there is none.
            deadline = asyncio.get_running_loop().time() + 30
            while "not asking to join" in (refusal := await bob_approving()):
                assert asyncio.get_running_loop().time() < deadline, "Bob never saw the request"
                await asyncio.sleep(0.05)
            assert "Only owners and admins" in refusal
            await ada.client.approve_join(rid, cy.peer_id)
            await admitted(cy, ada, rid)
            # Cy's admission reaches Bob through the room, after Cy has it.
            await wait_roles(bob, rid, {ada.peer_id: "owner", bob.peer_id: "member",
                                        cy.peer_id: "member"})

    run(scenario)


def test_the_history_shows_who_joined_was_promoted_and_removed_as_notices(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room = await ada.client.create_room("Club", governed=True)
            rid = room.room_id
            await bob.client.join_room(room.invite)
            await admitted(bob, ada, rid)
            await ada.client.set_role(rid, bob.peer_id, "admin")
            await bob.wait_event("role_changed", room=rid, peer_id=bob.peer_id)
            await ada.client.remove_member(rid, bob.peer_id)
            await bob.wait_event("removed_from_room", room=rid)

            def notices(posts: list[Any]) -> list[tuple[str, str, str]]:
                return [(json.loads(p.text)["op"], json.loads(p.text)["peer"], p.author)
                        for p in posts if p.kind == rc.KIND_MEMBERSHIP]

            want = [("admit", bob.peer_id, ada.peer_id), ("role", bob.peer_id, ada.peer_id),
                    ("remove", bob.peer_id, ada.peer_id)]
            # Shown live too, once Bob's node has found that Ada's entry counts.
            await bob.wait_for(lambda: any(
                e.name == "room_post" and e.post.kind == rc.KIND_MEMBERSHIP  # type: ignore[attr-defined]
                and '"op":"remove"' in e.post.text for e in bob.events),  # type: ignore[attr-defined]
                what="the removal notice shown live")
            assert notices(await ada.client.room_history(rid)) == want
            assert notices(await bob.client.room_history(rid)) == want

    run(scenario)


def test_new_members_read_earlier_epochs_only_when_the_room_says_so(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob", "Dee", "Eve") as (ada, bob, dee, eve):
            room = await ada.client.create_room("Club", governed=True)
            rid = room.room_id
            await ada.client.post(rid, "from the first epoch")
            await bob.client.join_room(room.invite)
            await admitted(bob, ada, rid)
            await ada.client.remove_member(rid, bob.peer_id)  # a second epoch
            await ada.wait_event("key_rotated", room=rid, epoch=2)
            await ada.client.post(rid, "from the second epoch")

            await eve.client.join_room(room.invite)  # history on (the default)
            await admitted(eve, ada, rid)
            await wait_texts(eve, rid, ["from the first epoch", "from the second epoch"])

            await ada.client.room_settings(rid, {"history": False})
            await dee.client.join_room(room.invite)
            await admitted(dee, ada, rid)
            await wait_texts(dee, rid, ["from the second epoch"])
            assert "from the first epoch" not in await texts(dee, rid)

    run(scenario)
