"""The membership log replayed (app/core/room/membership.py): rights, order, fences, invites."""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.identity import Identity
from app.core.room import membership as ms
from tests.hostile_inputs import membership_body

OWNER, ADMIN, ADMIN2, BOB, CY = (Identity(bytes([i]) * 32) for i in range(1, 6))
NONCE = bytes(16)
ROOM = ms.genesis_room_id(OWNER.public_key, NONCE)
KEY = bytes(32)


class Log:
    """Entries written by hand: each one at the next lamport unless told otherwise."""

    def __init__(self) -> None:
        self.entries: list[ms.Entry] = []
        self.lamport = itertools.count(1)
        self.seqs: dict[str, int] = {}

    def add(self, who: Identity, body: dict[str, Any], *, lamport: int | None = None,
            seq: int | None = None, sent_at_ms: int = 1000) -> ms.Entry:
        if seq is None:
            seq = self.seqs.get(who.peer_id, 0) + 1
        self.seqs[who.peer_id] = max(seq, self.seqs.get(who.peer_id, 0))
        entry = ms.Entry(who.peer_id, next(self.lamport) if lamport is None else lamport,
                         who.public_key, os.urandom(16), seq, sent_at_ms, body)
        self.entries.append(entry)
        return entry

    def state(self) -> ms.RoomState:
        return ms.replay(ROOM, self.entries)


def epoch(key: bytes, *peers: Identity) -> dict[str, Any]:
    return {"epoch": ms.epoch_id(key).hex(), "keys": ms.keys_field(key, [p.peer_id
                                                                         for p in peers])}


def genesis(log: Log) -> None:
    log.add(OWNER, {"op": "genesis", "nonce": NONCE.hex(), "settings": {}, **epoch(KEY, OWNER)})


def member(log: Log, who: Identity, role: str = "member") -> None:
    log.add(who, {"op": "join"})
    log.add(OWNER, {"op": "admit", "peer": who.peer_id, "epochs": []})
    if role != "member":
        log.add(OWNER, {"op": "role", "peer": who.peer_id, "role": role})


def test_the_creator_is_the_owner_and_a_forged_genesis_counts_for_nothing() -> None:
    log = Log()
    log.add(BOB, {"op": "genesis", "nonce": NONCE.hex(), "settings": {}, **epoch(KEY, BOB)},
            lamport=0)
    genesis(log)
    state = log.state()
    assert state.governed and state.role(OWNER.peer_id) is ms.Role.OWNER
    assert state.role(BOB.peer_id) is None
    assert ms.replay(os.urandom(16), log.entries).governed is False  # another room's id


def test_a_member_cannot_remove_or_promote_and_an_admin_cannot_make_owners() -> None:
    log = Log()
    genesis(log)
    member(log, BOB)
    member(log, CY)
    member(log, ADMIN, "admin")
    log.add(BOB, {"op": "remove", "peer": CY.peer_id, "ban": False, "seq": 0})
    log.add(BOB, {"op": "role", "peer": BOB.peer_id, "role": "admin"})
    log.add(ADMIN, {"op": "role", "peer": CY.peer_id, "role": "owner"})
    log.add(ADMIN, {"op": "remove", "peer": OWNER.peer_id, "ban": False, "seq": 0})
    state = log.state()
    assert state.role(CY.peer_id) is ms.Role.MEMBER
    assert state.role(BOB.peer_id) is ms.Role.MEMBER
    assert state.role(OWNER.peer_id) is ms.Role.OWNER
    log.add(ADMIN, {"op": "role", "peer": CY.peer_id, "role": "observer"})
    assert log.state().role(CY.peer_id) is ms.Role.OBSERVER


def test_two_admins_removing_each_other_the_first_in_order_stands() -> None:
    log = Log()
    genesis(log)
    member(log, ADMIN, "admin")
    member(log, ADMIN2, "admin")
    # Concurrent: both at lamport 20; the order breaks the tie by author key.
    first, second = sorted([ADMIN, ADMIN2], key=lambda i: i.public_key)
    log.add(first, {"op": "remove", "peer": second.peer_id, "ban": False, "seq": 0}, lamport=20)
    log.add(second, {"op": "remove", "peer": first.peer_id, "ban": False, "seq": 0}, lamport=20)
    state = log.state()
    assert state.role(first.peer_id) is ms.Role.ADMIN
    assert state.status[second.peer_id] is ms.Status.REMOVED
    reversed_arrival = ms.replay(ROOM, list(reversed(log.entries)))
    assert reversed_arrival.status == state.status and reversed_arrival.roles == state.roles


def test_a_change_by_an_admin_demoted_before_it_is_void() -> None:
    log = Log()
    genesis(log)
    member(log, ADMIN, "admin")
    member(log, BOB)
    log.add(OWNER, {"op": "role", "peer": ADMIN.peer_id, "role": "member"}, lamport=30)
    log.add(ADMIN, {"op": "remove", "peer": BOB.peer_id, "ban": False, "seq": 0}, lamport=31)
    assert log.state().role(BOB.peer_id) is ms.Role.MEMBER


def test_a_removed_admin_cannot_act_by_backdating_and_its_later_posts_are_void() -> None:
    log = Log()
    genesis(log)
    member(log, ADMIN, "admin")
    member(log, BOB)
    log.add(ADMIN, {"op": "role", "peer": BOB.peer_id, "role": "observer"})  # ADMIN's seq 2
    log.add(OWNER, {"op": "remove", "peer": ADMIN.peer_id, "ban": False, "seq": 2,
                    **epoch(os.urandom(32), OWNER, BOB)}, lamport=50)
    # ADMIN, removed, signs an entry that claims a lamport before its removal.
    log.add(ADMIN, {"op": "remove", "peer": BOB.peer_id, "ban": True, "seq": 0}, lamport=45)
    state = log.state()
    assert state.role(BOB.peer_id) is ms.Role.OBSERVER
    assert state.voided(ADMIN.peer_id, 3) and not state.voided(ADMIN.peer_id, 2)
    assert len(state.epochs) == 2 and ADMIN.peer_id not in state.holders[state.epochs[-1].epoch_id]


def test_ban_refuses_rejoin_while_a_removed_member_may_rejoin() -> None:
    log = Log()
    genesis(log)
    member(log, BOB)
    member(log, CY)
    log.add(OWNER, {"op": "remove", "peer": BOB.peer_id, "ban": True, "seq": 1})
    log.add(OWNER, {"op": "remove", "peer": CY.peer_id, "ban": False, "seq": 1})
    log.add(BOB, {"op": "join"})
    log.add(CY, {"op": "join"})
    state = log.state()
    assert state.status[BOB.peer_id] is ms.Status.BANNED
    assert state.status[CY.peer_id] is ms.Status.JOINING
    assert state.fences[CY.peer_id] == ((1, 2),)  # numbered between removal and rejoin: void


def test_invites_expire_run_out_are_revoked_and_bind_their_joiner() -> None:
    log = Log()
    genesis(log)
    log.add(OWNER, {"op": "settings", "settings": {"join": "invite"}})
    seeds = [bytes([9 + i]) * 32 for i in range(3)]
    keys = [ms.invite_proof(s, ROOM, BOB.peer_id)[0] for s in seeds]
    log.add(OWNER, {"op": "invite", "invite": keys[0], "expires": 5000, "uses": 1})
    log.add(OWNER, {"op": "invite", "invite": keys[1], "expires": 0, "uses": 0})
    log.add(OWNER, {"op": "invite", "invite": keys[2], "expires": 0, "uses": 0})
    log.add(OWNER, {"op": "revoke_invite", "invite": keys[2]})

    def join(who: Identity, seed: bytes, sent_at_ms: int = 1000, proof_for: str = "") -> None:
        key, sig = ms.invite_proof(seed, ROOM, proof_for or who.peer_id)
        log.add(who, {"op": "join", "invite": key, "sig": sig}, sent_at_ms=sent_at_ms)

    log.add(CY, {"op": "join"})                          # no invite: refused in invite mode
    join(CY, seeds[2])                                   # revoked
    join(CY, seeds[0], sent_at_ms=6000)                  # expired
    join(CY, seeds[1], proof_for=BOB.peer_id)            # someone else's proof
    assert CY.peer_id not in log.state().status
    join(BOB, seeds[0])                                  # valid: uses the one use
    join(CY, seeds[0])                                   # used up
    state = log.state()
    assert state.status[BOB.peer_id] is ms.Status.JOINING
    assert CY.peer_id not in state.status
    join(CY, seeds[1])
    assert log.state().status[CY.peer_id] is ms.Status.JOINING


def test_approve_mode_needs_an_admin_to_admit() -> None:
    log = Log()
    genesis(log)
    member(log, BOB)
    log.add(OWNER, {"op": "settings", "settings": {"join": "approve"}})
    log.add(CY, {"op": "join"})
    log.add(BOB, {"op": "admit", "peer": CY.peer_id, "epochs": []})
    assert log.state().status[CY.peer_id] is ms.Status.JOINING
    log.add(OWNER, {"op": "admit", "peer": CY.peer_id, "epochs": []})
    assert log.state().status[CY.peer_id] is ms.Status.MEMBER


def test_leaving_taints_the_epoch_and_the_last_owner_stays() -> None:
    log = Log()
    genesis(log)
    member(log, BOB)
    log.add(OWNER, {"op": "keys", **epoch(KEY, BOB)})
    assert not log.state().tainted() and log.state().missing_key() == []
    log.add(BOB, {"op": "leave"})
    log.add(OWNER, {"op": "leave"})
    state = log.state()
    assert state.tainted() and state.status[BOB.peer_id] is ms.Status.LEFT
    assert state.role(OWNER.peer_id) is ms.Role.OWNER


def test_keys_delivered_open_only_for_their_recipient_and_epoch() -> None:
    key = os.urandom(32)
    sealed = ms.seal_key(key, BOB.peer_id)
    assert ms.open_key(sealed, BOB, ms.epoch_id(key)) == key
    assert ms.open_key(sealed, CY, ms.epoch_id(key)) is None
    assert ms.open_key(sealed, BOB, ms.epoch_id(os.urandom(32))) is None


@pytest.mark.parametrize("body", [
    b"", b"[]", b"{}", b'{"op": "nope"}', b"\xff", b"{" * 100_000,
    b'{"op": "admit", "peer": "x"}',
    b'{"op": "rotate", "epoch": "00", "keys": []}',
])
def test_a_bad_entry_is_left_out_alone(body: bytes) -> None:
    assert ms.entry_of(OWNER.public_key, 9, bytes(16), 9, 0, body) is None or True
    log = Log()
    genesis(log)
    entry = ms.entry_of(BOB.public_key, 5, bytes(16), 1, 0, body)
    if entry is not None:
        log.entries.append(entry)
    member(log, CY)
    assert log.state().role(CY.peer_id) is ms.Role.MEMBER


def test_a_key_list_beyond_the_limit_is_void() -> None:
    log = Log()
    genesis(log)
    many = [[CY.peer_id, ms.keys_field(KEY, [CY.peer_id])[0][1]]] * (ms.MAX_MEMBERS + 1)
    log.add(OWNER, {"op": "rotate", "epoch": ms.epoch_id(os.urandom(32)).hex(), "keys": many})
    assert len(log.state().epochs) == 1


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(bodies=st.lists(st.tuples(membership_body(), st.sampled_from([OWNER, ADMIN, BOB]),
                                 st.integers(0, 30), st.integers(1, 6)), max_size=12))
def test_any_log_replays_without_raising_and_the_same_on_every_order(
        bodies: list[tuple[bytes, Identity, int, int]]) -> None:
    log = Log()
    genesis(log)
    member(log, ADMIN, "admin")
    for body, who, lamport, seq in bodies:
        entry = ms.entry_of(who.public_key, lamport, os.urandom(16), seq, 1000, body)
        if entry is not None:
            log.entries.append(entry)
    state = log.state()
    again = ms.replay(ROOM, list(reversed(log.entries)))
    assert (again.status, again.roles, again.fences) == (state.status, state.roles, state.fences)


def test_an_expired_invite_is_not_admitted_whatever_the_joiner_says_its_clock_was() -> None:
    log = Log()
    genesis(log)
    log.add(OWNER, {"op": "settings", "settings": {"join": "invite"}})
    seed = bytes([42]) * 32
    key, sig = ms.invite_proof(seed, ROOM, BOB.peer_id)
    log.add(OWNER, {"op": "invite", "invite": key, "expires": 5000, "uses": 0})
    log.add(BOB, {"op": "join", "invite": key, "sig": sig}, sent_at_ms=4000)  # backdated
    log.add(OWNER, {"op": "admit", "peer": BOB.peer_id, "epochs": []}, sent_at_ms=9000)
    assert log.state().status[BOB.peer_id] is ms.Status.JOINING
    log.add(OWNER, {"op": "admit", "peer": BOB.peer_id, "epochs": []}, sent_at_ms=4500)
    assert log.state().status[BOB.peer_id] is ms.Status.MEMBER


def test_a_rotation_hands_its_key_only_to_those_who_stay() -> None:
    log = Log()
    genesis(log)
    member(log, BOB)
    member(log, CY)
    new = os.urandom(32)
    # Whoever wrote the removal sealed the new key to Cy too: members do not count it.
    log.add(OWNER, {"op": "remove", "peer": CY.peer_id, "ban": False, "seq": 1,
                    **epoch(new, OWNER, BOB, CY)})
    state = log.state()
    current = state.current_epoch
    assert current is not None and current.epoch_id == ms.epoch_id(new)
    assert state.holders[current.epoch_id] == {OWNER.peer_id, BOB.peer_id}
    assert CY.peer_id not in state.sealed[current.epoch_id]


def test_a_join_dated_before_the_room_wanted_invites_is_not_admitted() -> None:
    log = Log()
    genesis(log)
    log.add(OWNER, {"op": "settings", "settings": {"join": "invite"}})
    log.add(BOB, {"op": "join"}, lamport=1)  # sorts before the settings: valid then
    assert log.state().status[BOB.peer_id] is ms.Status.JOINING
    log.add(OWNER, {"op": "admit", "peer": BOB.peer_id, "epochs": []})
    assert log.state().status[BOB.peer_id] is ms.Status.JOINING
