"""Hostile room members against real peers on 127.0.0.1: numbers beyond the store, floods under
throwaway keys, replayed announces, altered links and equivocating authors.

The attacker is a bare libp2p host (``tests.attackers.RawHost``) that holds the room's key and
publishes whatever it likes; Kith's own rules do not stop it at the source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from app.core import room as rc
from app.core.events import RoomPostRemoved
from app.core.identity import Identity
from app.core.records import RoomMember
from app.node import room_limits
from app.node.node import KithNode
from app.node.room_limits import AUTHOR_QUOTA, PUBLISHER_QUOTA, Rate
from app.node.rooms import RoomServiceError
from app.node.rooms import members as rooms_members
from app.node.rooms import service as rooms_service
from app.store.db import MIGRATIONS, open_database
from app.store.rooms import RoomStore
from tests.attackers import RawHost, room_attacker
from tests.migrations import back_to
from tests.peers import Peer, peers

T = int(time.time() * 1000)


def run(coro_fn):
    return asyncio.run(coro_fn())


async def texts(peer: Peer, room_id: str) -> list[str]:
    return [p.text for p in await peer.client.room_history(room_id, limit=1000)]


async def joined(*members: Peer, owner: Peer) -> tuple[str, rc.RoomSecrets]:
    """A room created by ``owner`` that every member has joined and announced in."""
    room = await owner.client.create_room("Open house")
    for member in members:
        await member.client.join_room(room.invite)
    everyone = len(members) + 1
    for peer in (owner, *members):
        def announced(p: Peer = peer) -> bool:
            return any(len(e.members) == everyone  # type: ignore[attr-defined]
                       for e in p.named("room_members"))

        await peer.wait_for(announced, what="every member announced")
    return room.room_id, rc.parse_room_invite(room.invite).secrets


async def attacker_at(peer: Peer, secrets: rc.RoomSecrets, identity: Identity | None = None
                      ) -> RawHost:
    assert peer.ready is not None
    return await room_attacker(peer.ready.addrs[0], secrets.topic, identity)


def post(author: Identity, secrets: rc.RoomSecrets, text: str, *, seq: int, lamport: int = 1,
         sent_at_ms: int = T, post_id: bytes | None = None) -> bytes:
    """A post with any u64 numbers, correctly signed and sealed (no bounds applied)."""
    inner = rc.encode_inner(author, secrets.room_id, text.encode(), kind=rc.KIND_TEXT,
                            post_id=post_id or rc.new_post_id(), lamport=lamport,
                            author_seq=seq, sent_at_ms=sent_at_ms)
    return rc.seal_inner(secrets, inner)


async def node_value(peer: Peer, fn):
    async def call(node: KithNode):
        return fn(node)

    return await peer.client.call(call)


def test_posts_with_numbers_beyond_the_store_are_refused_and_every_member_lives_on(
    tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            await ada.client.post(room_id, "before")
            await bob.wait_event("room_message")
            mallory = Identity.generate()
            attacker = await attacker_at(ada, secrets, mallory)
            try:
                await attacker.publish(secrets.topic, [
                    post(mallory, secrets, "i64 overflow", seq=1, lamport=2**63),
                    post(mallory, secrets, "fits, then overflows", seq=2, lamport=2**63 - 1),
                    post(mallory, secrets, "far ahead", seq=3, lamport=3 + rc.MAX_LAMPORT_STEP),
                    post(mallory, secrets, "seq overflow", seq=2**63),
                    post(mallory, secrets, "year 584 million", seq=4, sent_at_ms=2**64 - 1),
                    post(mallory, secrets, "genuine", seq=5, lamport=2),
                ])
                for member in (ada, bob):
                    await member.wait_event("room_message", text="genuine")
            finally:
                await attacker.stop()
            after = await ada.client.post(room_id, "after")
            await bob.wait_event("room_message", id=after.id)
            reply = await bob.client.post(room_id, "still here")
            await ada.wait_event("room_message", id=reply.id)
            for member in (ada, bob):
                assert member.client.running and not member.named("node_failed")
                assert await texts(member, room_id) == ["before", "genuine", "after",
                                                        "still here"]
                lamports = [p.lamport for p in await member.client.room_history(room_id)]
                assert max(lamports) < 10  # the room's clock was not dragged along

    run(scenario)


def test_a_flood_under_throwaway_keys_is_held_to_the_quota_and_chat_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack that grew a member's database by 121 MB in 13 s: 640 posts of 60 KB under
    16 throwaway author keys, from one peer."""
    caplog.set_level(logging.WARNING, logger="app.node.room_limits")

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            keys = [Identity.generate() for _ in range(16)]
            flood = [post(keys[i % 16], secrets, f"{i} " + "x" * 60_000, seq=1 + i // 16)
                     for i in range(640)]
            attacker = await attacker_at(ada, secrets)
            started = time.monotonic()
            try:
                await attacker.publish(secrets.topic, flood)

                def handled(node: KithNode) -> int:
                    stored = node.db.execute("SELECT count(*) FROM room_posts WHERE length("
                                             "body) > 60000").fetchone()[0]
                    return int(stored) + node.rooms.quotas.dropped

                box = [0]

                async def refresh() -> bool:
                    box[0] = await node_value(ada, handled)
                    return box[0] >= 640

                deadline = time.monotonic() + 60
                while not await refresh():
                    assert time.monotonic() < deadline, f"Ada handled {box[0]} of 640"
                    await asyncio.sleep(0.05)
                elapsed = time.monotonic() - started
                stored_bytes = await node_value(ada, lambda node: node.db.execute(
                    "SELECT coalesce(sum(length(envelope)), 0) FROM room_posts").fetchone()[0])
                allowed = PUBLISHER_QUOTA.bytes.burst + PUBLISHER_QUOTA.bytes.per_second * elapsed
                assert stored_bytes <= allowed + 2 * rc.MAX_ENVELOPE, (stored_bytes, elapsed)
                assert stored_bytes < 0.3 * sum(len(f) for f in flood)
                assert await node_value(ada, lambda n: n.rooms.quotas.penalised(
                    attacker.peer_id, time.monotonic()))
                # Genuine chat still flows both ways at once.
                hello = await bob.client.post(room_id, "hello after the flood")
                await ada.wait_event("room_message", id=hello.id, timeout=10)
                back = await ada.client.post(room_id, "hi Bob")
                await bob.wait_event("room_message", id=back.id, timeout=10)
            finally:
                await attacker.stop()
        assert any("dropped live posts over the per-" in r.getMessage() for r in caplog.records)

    run(scenario)


def test_a_replayed_old_announce_does_not_roll_a_name_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            me = bob.profile.identity
            bob_addrs = bob.ready.addrs if bob.ready else ()
            renamed = rc.encode_announce(me, secrets, "Robert", list(bob_addrs), lamport=0,
                                         sent_at_ms=int(time.time() * 1000) + 1000)
            old = rc.encode_announce(me, secrets, "Bob", list(bob_addrs), lamport=0,
                                     sent_at_ms=int(time.time() * 1000) - 60_000)
            attacker = await attacker_at(ada, secrets)  # not a member: it only replays bytes
            mallory = Identity.generate()
            try:
                await attacker.publish(secrets.topic, [renamed, old, renamed, old,
                                                       post(mallory, secrets, "marker", seq=1)])
                await ada.wait_event("room_message", text="marker")
            finally:
                await attacker.stop()
            names = {m.peer_id: m.name for m in await ada.client.room_members(room_id)}
            assert names[bob.peer_id] == "Robert"

    run(scenario)


def last_member_list(peer: Peer) -> dict[str, RoomMember]:
    """The members of the last member list ``peer``'s views were sent, by peer id."""
    lists = peer.named("room_members")
    return {m.peer_id: m for m in lists[-1].members} if lists else {}  # type: ignore[attr-defined]


def test_the_member_list_goes_out_only_when_what_it_shows_changes(tmp_path: Path) -> None:
    """A known member announcing again (every minute, 50 a minute in a room of 50) rebuilds no
    list; a new name does, and so does the member going offline, at once."""
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            me, bob_addrs = bob.profile.identity, list(bob.ready.addrs if bob.ready else ())
            now = int(time.time() * 1000)

            def bob_as(name: str, later_ms: int) -> bytes:
                return rc.encode_announce(me, secrets, name, bob_addrs, lamport=0,
                                          sent_at_ms=now + later_ms)

            attacker = await attacker_at(ada, secrets)  # relays Bob's own signed announces
            mallory = Identity.generate()
            try:
                await attacker.publish(secrets.topic, [post(mallory, secrets, "hello", seq=1)])
                await ada.wait_for(lambda: mallory.peer_id in last_member_list(ada),
                                   what="the poster listed")
                lists = len(ada.named("room_members"))
                await attacker.publish(secrets.topic, [bob_as("Bob", 1000),
                                                       post(mallory, secrets, "marker", seq=2)])
                await ada.wait_event("room_message", text="marker")
                summaries = len(ada.named("room"))
                # The summary after the marker carries every change made before it.
                await ada.wait_for(lambda: len(ada.named("room")) > summaries,
                                   what="the summary after the marker")
                assert len(ada.named("room_members")) == lists
                names = {m.peer_id: m.name for m in await ada.client.room_members(room_id)}
                assert names[bob.peer_id] == "Bob"

                await attacker.publish(secrets.topic, [bob_as("Robert", 2000)])
                await ada.wait_for(lambda: last_member_list(ada)[bob.peer_id].name == "Robert",
                                   what="the new name listed")
            finally:
                await attacker.stop()
            assert last_member_list(ada)[bob.peer_id].online
            await bob.stop()
            await ada.wait_for(lambda: not last_member_list(ada)[bob.peer_id].online,
                               what="Bob listed offline")

    run(scenario)


def test_a_member_whose_announces_stop_is_listed_offline(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Still connected, but no announce for the online window: the list says offline without
    waiting for anything else to change; a fresh announce lists them online again."""
    for module in (rooms_service, rooms_members):
        monkeypatch.setattr(module, "ONLINE_WINDOW", 2.0)
    monkeypatch.setattr(rooms_service, "PRESENCE_CHECK", 0.1)

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            _, secrets = await joined(bob, owner=ada)
            me, bob_addrs = bob.profile.identity, list(bob.ready.addrs if bob.ready else ())
            attacker = await attacker_at(ada, secrets)  # relays Bob's own signed announces
            try:
                for later_ms in (60_000, 120_000):
                    fresh = rc.encode_announce(me, secrets, "Bob", bob_addrs, lamport=0,
                                               sent_at_ms=int(time.time() * 1000) + later_ms)
                    await attacker.publish(secrets.topic, [fresh])
                    await ada.wait_for(lambda: last_member_list(ada)[bob.peer_id].online,
                                       what="Bob listed online")
                    await ada.wait_for(lambda: not last_member_list(ada)[bob.peer_id].online,
                                       what="Bob listed offline once his announces stopped")
            finally:
                await attacker.stop()

    run(scenario)


def test_a_link_with_a_known_room_id_and_another_key_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            mallory = Identity.generate()
            forged = rc.RoomInvite(
                rc.RoomSecrets(secrets.room_id, rc.RoomSecrets.generate().key), "Open house",
                via=(f"/ip4/127.0.0.1/tcp/9/p2p/{mallory.peer_id}",),
            ).to_link()
            joins = len(bob.named("room_joined"))
            with pytest.raises(RoomServiceError, match="another key"):
                await bob.client.join_room(forged)
            assert len(bob.named("room_joined")) == joins
            [info] = await bob.client.rooms()
            assert info.invite.split("&key=")[1].split("&")[0] == secrets.key_b64
            members = {m.peer_id for m in await bob.client.room_members(room_id)}
            assert mallory.peer_id not in members
            # The genuine link still works (it is the same room: nothing changes).
            same = await bob.client.join_room(rc.parse_room_invite(info.invite).to_link())
            assert same.room_id == room_id

    run(scenario)


@pytest.mark.parametrize("first", ["winner first", "loser first"])
def test_two_posts_with_one_number_converge_on_every_member(tmp_path: Path, first: str) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            mallory = Identity.generate()
            winner = post(mallory, secrets, "what I said", seq=1, post_id=b"\x01" * 16)
            loser = post(mallory, secrets, "what I claim I said", seq=1, post_id=b"\xf0" * 16)
            order = [winner, loser] if first == "winner first" else [loser, winner]
            attacker = await attacker_at(ada, secrets, mallory)
            try:
                await attacker.publish(secrets.topic, order)
                # A member joining while the loser may still sit in gossip caches.
                cy = await Peer(tmp_path / "cy", "Cy").start()
                try:
                    await cy.client.join_room((await ada.client.rooms())[0].invite)
                    await attacker.publish(secrets.topic, [post(mallory, secrets, "marker",
                                                                seq=2)])
                    for member in (ada, bob, cy):
                        await member.wait_event("room_message", text="marker")
                        def loser_removed(m: Peer = member) -> bool:
                            return bool(m.named("room_message")) and all(
                                e.text != "what I claim I said" or any(  # type: ignore[attr-defined]
                                    r.id == e.id  # type: ignore[attr-defined]
                                    for r in m.named("post_removed"))
                                for e in m.named("room_message"))

                        await member.wait_for(loser_removed, what="the loser removed")
                        history = await texts(member, room_id)
                        assert "what I said" in history, member.name
                        assert "what I claim I said" not in history, member.name
                    removed = ada.named("post_removed")
                    assert [e.id for e in removed] == (  # type: ignore[attr-defined]
                        [b"\xf0".hex() * 16] if first == "loser first" else [])
                finally:
                    await cy.stop()
            finally:
                await attacker.stop()

    run(scenario)


def test_a_member_holding_only_the_losing_post_learns_the_winner_by_sync(
    tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada") as (ada,):
            room = await ada.client.create_room("Archive")
            secrets = rc.parse_room_invite(room.invite).secrets
            mallory = Identity.generate()
            winner = post(mallory, secrets, "kept", seq=1, post_id=b"\x01" * 16)
            loser = post(mallory, secrets, "dropped", seq=1, post_id=b"\xf0" * 16)

            async def hold(node: KithNode) -> None:
                for data in (winner, loser):  # Ada saw both: a conflict she knows of
                    node.rooms.store.store_post(rc.decode_post(secrets, data), data,
                                                "received", read=False)

            await ada.client.call(hold)
            # Dee was offline and got only the losing post (say, from Mallory directly).
            dee = Peer(tmp_path / "dee", "Dee")
            conn = open_database(dee.profile.db_path)
            store = RoomStore(conn)
            store.add_room(secrets, "Archive", "")
            store.store_post(rc.decode_post(secrets, loser), loser, "received", read=False)
            assert ada.ready is not None
            store.upsert_member(secrets.room_id, ada.peer_id, "Ada", ada.ready.addrs, None)
            conn.close()
            await dee.start()
            try:
                await dee.wait_event("post_removed", id=b"\xf0".hex() * 16)
                assert await texts(dee, room.room_id) == ["kept"]
                assert [e.text for e in dee.named("room_message")] == ["kept"]  # type: ignore[attr-defined]
            finally:
                await dee.stop()

    run(scenario)


def test_a_post_that_breaks_its_handler_drops_only_that_post(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, _ = await joined(bob, owner=ada)

            async def break_files(node: KithNode) -> None:
                """A bug that fails on every file post before it is stored."""
                store = node.rooms.store
                real = store.store_post

                def fail(post: rc.RoomPost, *args: Any, **kwargs: Any) -> Any:
                    if post.kind == rc.KIND_FILE:
                        raise RuntimeError("a bug in a handler")
                    return real(post, *args, **kwargs)

                store.store_post = fail  # type: ignore[method-assign]

            await ada.client.call(break_files)
            await bob.client.call(lambda node: node.rooms.post_payload(
                bytes.fromhex(room_id), rc.KIND_FILE, b"{}"))
            hello = await bob.client.post(room_id, "after the bug")
            await ada.wait_event("room_message", id=hello.id)
            assert ada.client.running and not ada.named("node_failed")
            # Such a post met in history sync (stored by Bob while nobody listened, so it comes
            # by sync only): dropped, and the sync goes on past it.
            async def unpublished(node: KithNode) -> str:
                secrets = node.rooms.store.room(bytes.fromhex(room_id)).secrets  # type: ignore[union-attr]
                for kind, body in ((rc.KIND_FILE, b"{}"), (rc.KIND_TEXT, b"written unheard")):
                    def build(lamport: int, seq: int, kind: int = kind, body: bytes = body
                              ) -> tuple[rc.RoomPost, bytes]:
                        data = rc.encode_post(node.identity, secrets, kind=kind, body=body,
                                              lamport=lamport, author_seq=seq, sent_at_ms=T)
                        return rc.decode_post(secrets, data), data

                    post_, _ = node.rooms.store.store_own_post(
                        secrets.room_id, node.identity.public_key, build, "pending")
                return post_.post_id.hex()

            unheard = await bob.client.call(unpublished)
            cy = await Peer(tmp_path / "cy", "Cy").start()
            try:
                await cy.client.call(break_files)
                await cy.client.join_room((await bob.client.rooms())[0].invite)
                await cy.wait_event("room_message", id=unheard)
                assert cy.client.running
            finally:
                await cy.stop()

    run(scenario)


def test_removal_event_names_the_post(tmp_path: Path) -> None:
    event = RoomPostRemoved(room="ab" * 16, id="cd" * 16)
    assert event.to_json() == {"event": "post_removed", "room": "ab" * 16, "id": "cd" * 16}


def test_a_profile_a_hostile_post_already_damaged_starts_and_works(tmp_path: Path) -> None:
    """What the attack left in a victim's profile before this release: a post at lamport
    2^63 - 1, the room clock stored as REAL 9.22e18 ("could not start: required argument is
    not an integer"), plus rows no migration knows how to mend."""

    async def scenario() -> None:
        async with peers(tmp_path, "Bob") as (bob,):
            ada = await Peer(tmp_path / "ada", "Ada").start()
            room = await ada.client.create_room("Scarred")
            await ada.client.post(room.room_id, "from before")
            await ada.stop()
            secrets = rc.parse_room_invite(room.invite).secrets
            mallory = Identity.generate()
            conn = sqlite3.connect(ada.profile.db_path)
            conn.execute(
                "INSERT INTO room_posts (room_id, post_id, author, author_key, lamport, "
                "author_seq, sent_at, kind, body, envelope, state) "
                "VALUES (?, ?, ?, ?, ?, 1, ?, 1, ?, ?, 'received')",
                (secrets.room_id, b"\x01" * 16, mallory.peer_id, mallory.public_key, 2**63 - 1,
                 2**63 - 1, b"boom", post(mallory, secrets, "boom", seq=1, lamport=2**63 - 1)))
            conn.execute("UPDATE rooms SET lamport = 9.223372036854776e18")
            conn.execute("INSERT INTO rooms (room_id, key, name, joined_at, last_activity) "
                         "VALUES (?, ?, 'Broken', 0, 0)", (b"\x05" * 16, b"short"))
            conn.execute("INSERT INTO room_members (room_id, peer_id, name, addrs) "
                         "VALUES (?, 'someone', 'Someone', '{not json')", (secrets.room_id,))
            repair = next(i for i, m in enumerate(MIGRATIONS) if "room_conflicts" in m)
            back_to(conn, repair)  # later migrations too: they run again after the repair
            conn.execute("DROP TABLE room_conflicts")
            conn.execute("ALTER TABLE room_members DROP COLUMN announce_lamport")
            conn.execute("ALTER TABLE room_members DROP COLUMN announce_sent_at")
            conn.execute("UPDATE schema_version SET version = ?", (repair,))
            conn.commit()
            conn.close()

            ada = await Peer(tmp_path / "ada", "Ada").start()
            try:
                assert [r.name for r in await ada.client.rooms()] == ["Scarred"]
                posted = await ada.client.post(room.room_id, "after the repair")
                assert posted.lamport == 2
                await bob.client.join_room((await ada.client.rooms())[0].invite)
                await bob.wait_event("room_message", count=2)
                assert await texts(bob, room.room_id) == ["from before", "after the repair"]
            finally:
                await ada.stop()

    run(scenario)


def gossip(publisher: Identity, secrets: rc.RoomSecrets, envelope: bytes, seqno: int,
           *, forged: bool = False) -> Any:
    """A gossip message carrying ``envelope``, signed by ``publisher`` (or with a forged
    signature)."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

    from app.node.host import key_pair

    keys = key_pair(publisher)
    message = rpc_pb2.Message(data=envelope, topicIDs=[secrets.topic],
                              from_id=ID.from_pubkey(keys.public_key).to_bytes(),
                              seqno=seqno.to_bytes(8, "big"))
    message.signature = bytes(64) if forged else keys.private_key.sign(
        PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString())
    return message


def test_a_gossip_signature_is_needed_unless_the_post_itself_is_signed_by_the_publisher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member verifies one Ed25519 signature per new post, not two: a post it does not hold,
    in a message whose publisher is the post's author, is authenticated by the post's own
    signature. Everything else (a post published by someone else, a post already held) needs
    a valid gossip signature, as before."""
    # An author's bucket that does not refill: the forged post below must meet it empty
    # however long the checks before it took (at 10 a second, a tenth of a second is a post).
    monkeypatch.setattr(room_limits, "AUTHOR_QUOTA", dataclasses.replace(
        AUTHOR_QUOTA, posts=Rate(AUTHOR_QUOTA.posts.burst, 0.0)))

    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            room_id, secrets = await joined(bob, owner=ada)
            held = await bob.client.post(room_id, "held")
            await ada.wait_event("room_message", id=held.id)
            held_envelope = await node_value(ada, lambda n: n.db.execute(
                "SELECT envelope FROM room_posts WHERE post_id = ?",
                (bytes.fromhex(held.id),)).fetchone()[0])
            carol, mallory = Identity.generate(), Identity.generate()
            new = post(carol, secrets, "new", seq=1)
            bob_id = bob.profile.identity

            async def admits(message: Any) -> bool:
                def check(node: KithNode) -> bool:
                    live = node.rooms._live[bytes.fromhex(room_id)]
                    return node.rooms._admit_live(live.secrets, mallory.peer_id, message)

                return bool(await node_value(ada, check))

            assert await admits(gossip(carol, secrets, new, 1, forged=True))
            assert not await admits(gossip(mallory, secrets, new, 2, forged=True))
            assert await admits(gossip(mallory, secrets, new, 3))
            assert not await admits(gossip(bob_id, secrets, held_envelope, 4, forged=True))
            assert await admits(gossip(bob_id, secrets, held_envelope, 5))

            # Quotas blame a message's publisher, so a post over one is never taken on its
            # own signature: Mallory uses up Carol's author quota under her own name...
            for seq in range(2, 2 + int(AUTHOR_QUOTA.posts.burst) + 100):
                await admits(gossip(mallory, secrets, post(carol, secrets, "x", seq=seq), seq))
            assert await node_value(ada, lambda n: n.rooms.quotas.penalised(
                mallory.peer_id, time.monotonic()))
            # ...then forges one under Carol's: refused, and Carol is not blamed.
            assert not await admits(gossip(carol, secrets, post(carol, secrets, "y", seq=999),
                                           999, forged=True))
            assert not await node_value(ada, lambda n: n.rooms.quotas.penalised(
                carol.peer_id, time.monotonic()))

    run(scenario)


def test_a_quota_check_charges_nothing_until_admitted_and_blames_only_what_breaks() -> None:
    """``PostQuotas.check`` finds and refills a post's buckets once; the validator decides on
    its gossip signature from ``fits``, then ``admit`` charges all three buckets, or, if one is
    empty, none of them, counting the drop against the publisher."""
    quotas = room_limits.PostQuotas()
    room, author, now = b"r" * 32, b"a" * 32, 1000.0
    burst = int(PUBLISHER_QUOTA.posts.burst)
    for _ in range(3):  # asked, never admitted: nothing is charged
        assert quotas.check(room, author, "pub", "fwd", 10, now).fits
    for _ in range(burst):  # under the publisher's burst; other authors, so theirs holds
        admission = quotas.check(room, None, "pub", "fwd", 10, now)
        assert admission.fits and admission.admit() is None
    over = quotas.check(room, author, "pub", "fwd", 10, now)
    assert not over.fits
    assert over.admit() == "publisher"
    assert quotas.dropped == 1 and quotas.penalised("pub", now)
    assert not quotas.penalised("fwd", now)
    # Nothing was charged for the refused post: the author's bucket is full, and another
    # publisher's post by the same author passes.
    assert quotas.check(room, author, "other", "fwd", 10, now).admit() is None
    assert quotas.check(room, author, "pub", "fwd", 10,
                        now + 2 / PUBLISHER_QUOTA.posts.per_second).admit() is None
