"""The redial schedule on its own: jittered backoff that never gives up, one scheduler for all
contacts with bounded parallel dials, resets on a connection and on a network change.

Runs on trio's ``MockClock`` (autojump), so minutes of backoff take milliseconds; no network.
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest
import trio
import trio.testing

from app.node import netwatch
from app.node.contacts import (
    FIRST_BACKOFF,
    JITTER,
    MAX_BACKOFF,
    REDIAL_SPREAD,
    Backoff,
    Redialer,
)
from app.node.netwatch import (
    IFF_LOWER_UP,
    IFF_RUNNING,
    IFF_UP,
    IFINFOMSG,
    RTM_DELLINK,
    RTM_NEWLINK,
    LinkTable,
    parse_netlink,
)


def test_backoff_doubles_to_the_cap_with_bounded_jitter_and_never_gives_up() -> None:
    backoff = Backoff(rng=random.Random(7))
    nominal = FIRST_BACKOFF
    waits = []
    for _ in range(10_000):
        wait = backoff.next()
        assert nominal * (1 - JITTER) <= wait <= nominal, (wait, nominal)
        waits.append(wait)
        nominal = min(nominal * 2, MAX_BACKOFF)
    # Never gives up: attempt 10 000 still gets a finite wait near the cap.
    assert MAX_BACKOFF * (1 - JITTER) <= waits[-1] <= MAX_BACKOFF
    # The jitter is real: the capped waits are spread, not one value.
    capped = waits[10:]
    assert max(capped) - min(capped) > MAX_BACKOFF * JITTER * 0.9
    assert len({round(w, 6) for w in capped}) > 1000
    backoff.reset()
    assert FIRST_BACKOFF * (1 - JITTER) <= backoff.next() <= FIRST_BACKOFF


def test_two_peers_that_failed_together_do_not_retry_together() -> None:
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    gaps = [abs(a.next() - b.next()) for _ in range(20)]
    assert sum(gaps[8:]) / len(gaps[8:]) > 1.0  # seconds apart on average once capped


class _Net:
    """A fake network for the redialer: who is up, and a log of dial times."""

    def __init__(self, dial_seconds: float = 0.0) -> None:
        self.up: set[str] = set()
        self.connected: set[str] = set()
        self.dials: dict[str, list[float]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.dialling: set[str] = set()
        self.dial_seconds = dial_seconds

    async def dial(self, peer_id: str) -> bool:
        self.dials.setdefault(peer_id, []).append(trio.current_time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.dialling.add(peer_id)
        try:
            await trio.sleep(self.dial_seconds)
        finally:
            self.in_flight -= 1
            self.dialling.discard(peer_id)
        if peer_id in self.up:
            self.connected.add(peer_id)
            return True
        return False


def _run(scenario):
    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def test_offline_contacts_are_redialled_on_the_backoff_schedule_forever() -> None:
    async def scenario() -> None:
        net = _Net()
        redialer = Redialer(lambda p: True, net.connected.__contains__, net.dial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            redialer.schedule("p", 0.0)
            await trio.sleep(3600)  # an hour offline
            times = net.dials["p"]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            nominal = FIRST_BACKOFF
            for gap in gaps:
                assert nominal * (1 - JITTER) - 1e-6 <= gap <= nominal + 1e-6, (gap, nominal)
                nominal = min(nominal * 2, MAX_BACKOFF)
            # Still dialling in the last minutes: nothing is given up.
            assert times[-1] > 3600 - MAX_BACKOFF - 1
            assert 55 < len(times) < 90  # about one dial a minute once capped
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_network_change_and_a_connection_reset_the_backoff() -> None:
    async def scenario() -> None:
        net = _Net()
        redialer = Redialer(lambda p: True, net.connected.__contains__, net.dial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            for peer in ("a", "b", "c"):
                redialer.schedule(peer, 0.0)
            await trio.sleep(300)  # every backoff is at the cap now
            assert all((redialer.next_wait(p) or 0) > 0 for p in "abc")
            changed_at = trio.current_time()
            assert redialer.redial_all() == 3
            await trio.sleep(REDIAL_SPREAD + 0.01)
            firsts = [next(t for t in net.dials[p] if t >= changed_at) for p in "abc"]
            assert all(t - changed_at <= REDIAL_SPREAD for t in firsts)
            assert len(set(firsts)) == 3  # spread, not all in the same instant
            # ... and the backoff starts over: the next failures come after ~1 s, ~2 s.
            await trio.sleep(4)
            after = [t for t in net.dials["a"] if t >= changed_at]
            assert len(after) >= 3, after

            # A connection (as an inbound one would) resets too; when it ends after holding,
            # the peer is redialled within a second.
            await trio.sleep(600)
            net.up.add("b")
            net.connected.add("b")
            redialer.peer_connected("b")
            await trio.sleep(60)
            net.up.discard("b")
            net.connected.discard("b")
            dropped_at = trio.current_time()
            redialer.peer_disconnected("b")
            await trio.sleep(1)
            assert any(t >= dropped_at for t in net.dials["b"])
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_a_peer_that_hangs_up_at_once_is_not_redialled_in_a_tight_loop() -> None:
    async def scenario() -> None:
        net = _Net()
        redialer = Redialer(lambda p: True, net.connected.__contains__, net.dial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            redialer.schedule("rude", 0.0)
            net.up.add("rude")
            for _ in range(8):  # each dial connects, and the peer drops us right away
                await trio.sleep(0.01)
                while "rude" not in net.connected:
                    await trio.sleep(0.01)
                redialer.peer_connected("rude")
                net.connected.discard("rude")
                redialer.peer_disconnected("rude")
            times = net.dials["rude"]
            assert times[-1] - times[0] > 2 ** 5 * (1 - JITTER)  # the waits grew
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_a_connection_that_comes_and_goes_during_a_dial_is_redialled_soon() -> None:
    """The peer connects while a slow dial is in flight (it dialled us, or a lookup reached it),
    the dial sees it connected, and the connection drops before the dial returns. The redial
    planned by the drop must stand: the dial's success must not replace it with the
    connected-check two minutes later."""

    async def scenario() -> None:
        connected: set[str] = set()
        dials: list[float] = []

        async def dial(peer_id: str) -> bool:
            dials.append(trio.current_time())
            if len(dials) > 1:
                return False
            await trio.sleep(1)
            connected.add(peer_id)  # reached: the dial will say so
            redialer.peer_connected(peer_id)
            await trio.sleep(1)
            connected.discard(peer_id)  # ... but the connection drops first
            redialer.peer_disconnected(peer_id)
            await trio.sleep(0.5)
            return True

        redialer = Redialer(lambda p: True, connected.__contains__, dial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            redialer.schedule("p", 0.0)
            await trio.sleep(10)
            assert len(dials) >= 2 and dials[1] < 2 + 2 * FIRST_BACKOFF, dials
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_dials_in_flight_are_bounded_whatever_the_number_of_contacts() -> None:
    async def scenario() -> None:
        net = _Net(dial_seconds=10.0)  # every dial hangs until its timeout
        redialer = Redialer(lambda p: True, net.connected.__contains__, net.dial, parallel=16)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            for i in range(500):
                redialer.schedule(f"p{i}", 0.0)
            await trio.sleep(400)
            assert net.max_in_flight == 16
            assert len(net.dials) == 500  # everyone got a turn
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_a_contact_no_longer_wanted_is_dropped() -> None:
    async def scenario() -> None:
        net = _Net()
        wanted = {"a", "b"}
        redialer = Redialer(wanted.__contains__, net.connected.__contains__, net.dial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            redialer.schedule("a", 0.0)
            redialer.schedule("b", 0.0)
            await trio.sleep(10)
            wanted.discard("b")  # blocked or removed
            count = len(net.dials["b"])
            await trio.sleep(300)
            assert len(net.dials["b"]) == count
            assert redialer.next_wait("b") is None
            assert len(net.dials["a"]) > count
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_netlink_link_table_counts_only_real_state_changes() -> None:
    def link(index: int, flags: int) -> bytes:
        return IFINFOMSG.pack(0, 1, index, flags, 0)

    table = LinkTable()
    running = IFF_UP | IFF_RUNNING | IFF_LOWER_UP
    assert table.update(RTM_NEWLINK, link(2, IFF_UP)) is False  # new, not running yet
    assert table.update(RTM_NEWLINK, link(2, running)) is True  # carrier came
    assert table.update(RTM_NEWLINK, link(2, running | 0x1000)) is False  # other flags: chatter
    assert table.update(RTM_NEWLINK, link(2, IFF_UP)) is True  # carrier lost
    assert table.update(RTM_NEWLINK, link(3, running)) is True  # a new running link
    assert table.update(RTM_DELLINK, link(3, running)) is True
    assert table.update(RTM_NEWLINK, b"short") is False
    # Two messages in one datagram, 4-byte aligned; a truncated tail is dropped.


    msg = struct.pack("=IHHII", 16 + IFINFOMSG.size, RTM_NEWLINK, 0, 0, 0) + link(4, running)
    assert [k for k, _ in parse_netlink(msg + msg + msg[:10])] == [RTM_NEWLINK, RTM_NEWLINK]


def test_netwatch_coalesces_bursts_and_throttles(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of changes is one reaction; a flapping network at most one per MIN_INTERVAL.
    Uses the polling fallback (what non-Linux systems get) with a scripted address list."""
    snapshots = [frozenset({("eth0", "192.0.2.1")})]
    monkeypatch.setattr(netwatch, "address_snapshot", lambda: snapshots[-1])

    async def scenario() -> None:
        fired: list[float] = []
        watch = netwatch.NetWatch(lambda: fired.append(trio.current_time()), poll_interval=1.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch._fire_loop)
            nursery.start_soon(watch._poll)
            await trio.sleep(5)
            assert fired == []  # nothing changed, nothing fired
            snapshots.append(frozenset({("eth0", "192.0.2.9")}))
            await trio.sleep(1.5)
            assert len(fired) == 1
            for i in range(10):  # flapping every second for 10 s
                snapshots.append(frozenset({("eth0", f"192.0.2.{20 + i}")}))
                await trio.sleep(1)
            await trio.sleep(netwatch.MIN_INTERVAL + 1.5)
            gaps = [b - a for a, b in itertools.pairwise(fired)]
            assert all(g >= netwatch.MIN_INTERVAL - 1e-6 for g in gaps), gaps
            assert 3 <= len(fired) <= 1 + 11 / netwatch.MIN_INTERVAL + 1
            nursery.cancel_scope.cancel()

    _run(scenario)


def test_after_a_network_change_the_likeliest_contacts_are_dialled_first() -> None:
    async def scenario() -> None:
        net = _Net(dial_seconds=10.0)  # dead contacts hold a dial slot until the timeout
        redialer = Redialer(lambda p: True, net.connected.__contains__, net.dial, parallel=4)
        peers = [f"p{i}" for i in range(40)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(redialer.run)
            for peer in peers:
                redialer.schedule(peer, 0.0)
            await trio.sleep(900)  # all at the cap
            net.dials.clear()
            # Seen most recently; not being dialled right now (those redial when that ends).
            recent = [p for p in ("p39", "p7", "p21", "p30", "p12") if p not in net.dialling][:3]
            assert redialer.redial_all(1.0, recent) == 40
            await trio.sleep(0.5)
            assert sorted(net.dials, key=lambda p: net.dials[p][0])[:3] == recent
            nursery.cancel_scope.cancel()

    _run(scenario)
