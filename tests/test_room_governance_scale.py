"""A governed room of 50 members (one process, real stores and codec, an in-memory hub):
an admin removes one and every other member is on the new epoch; a late joiner validates the
whole log and ends with the same state."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from app.core import room as rc
from app.core.identity import Identity
from app.core.room import membership as ms
from tests.governance_hub import Hub, envelopes, wait_until

MEMBERS = 50


def test_fifty_members_rotate_on_a_removal_and_a_late_joiner_validates_the_log(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            hub = Hub(nursery, tmp_path)
            try:
                owner = hub.add("owner")
                await hub.create(owner)
                others = [hub.add(f"m{i}") for i in range(1, MEMBERS)]
                for member in others:
                    hub.join(member, owner)
                await wait_until(lambda: all(m.epoch() == 1 for m in others), 60,
                                 "every member admitted with the key")
                assert len(owner.governance.roles(hub.room_id)) == MEMBERS

                admin, removed = others[0], others[-1]
                await owner.governance.set_role(hub.room_id.hex(), admin.peer_id, "admin")
                await wait_until(lambda: admin.role() == "admin", 10, "the new admin")
                started = time.monotonic()
                await admin.governance.remove_member(hub.room_id.hex(), removed.peer_id)
                staying = [owner, *others[:-1]]
                await wait_until(lambda: all(m.epoch() == 2 for m in staying), 30,
                                 "every remaining member on the new epoch")
                took = time.monotonic() - started
                assert removed.epoch() == 1
                assert any(e.name == "removed_from_room" for e in removed.events)
                assert took < 30  # what "within seconds" means on the slowest machine we run

                late = hub.add("late")
                hub.join(late, others[3])
                await wait_until(lambda: late.epoch() == 2, 30, "the late joiner's key")
                want = owner.governance.state(hub.room_id)
                got = late.governance.state(hub.room_id)
                assert want is not None and got is not None
                assert got.status == {**want.status, late.peer_id: ms.Status.MEMBER}
                assert got.roles == {**want.roles, late.peer_id: ms.Role.MEMBER}
                assert len(envelopes(late, hub.room_id)) >= 2 * MEMBERS
            finally:
                nursery.cancel_scope.cancel()
        hub.close()  # once every member's task has ended

    trio.run(scenario)


def test_outsiders_fill_no_more_of_the_log_than_it_keeps_for_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            hub = Hub(nursery, tmp_path)
            try:
                owner = hub.add("owner")
                await hub.create(owner)
                await owner.governance.settings(hub.room_id.hex(), {"join": "invite"})
                assert hub.invite is not None
                secrets = hub.invite.secrets
                for i in range(ms.MAX_OUTSIDER_ENTRIES + 50):
                    stranger = Identity.generate()
                    owner.receive(rc.encode_post(
                        stranger, secrets, kind=rc.KIND_MEMBERSHIP, body=b'{"op":"join"}',
                        lamport=100, author_seq=1, sent_at_ms=1))
                    if i % 100 == 0:
                        await trio.sleep(0.06)  # let the replay of what arrived run
                await wait_until(lambda: not owner.governance._dirty, 10, "the last replay")
                held = owner.governance.store.count_entries(hub.room_id)
                assert ms.MAX_OUTSIDER_ENTRIES <= held - 3 < ms.MAX_OUTSIDER_ENTRIES + 101
                assert owner.role() == "owner"
            finally:
                nursery.cancel_scope.cancel()
        hub.close()

    trio.run(scenario)
