"""Governed rooms at scale: admitting N members, a removal's new epoch, a late joiner's replay.

    .venv/bin/python -m tests.benchmarks.room_rotation [--members 10 50 100 200]

One process, no network: each member is its real SQLite store, codec and ``RoomGovernance``
joined by the in-memory hub of tests/governance_hub.py (every envelope handed to every other
member at once), so the figures are the CPU and database work of the membership log itself,
all members sharing one core. Prints, per room size: the time until every member is admitted
with the key, the time from an admin's removal until every remaining member holds the new
epoch, the size of that removal's entry, and the time a late joiner takes to replay the
whole log.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from app.core.room import membership as ms
from tests.governance_hub import Hub, envelopes, wait_until


async def measure(members: int, folder: Path) -> tuple[float, float, int, float, int]:
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, folder)
        try:
            owner = hub.add("owner")
            await hub.create(owner)
            others = [hub.add(f"m{i}") for i in range(1, members)]
            started = time.monotonic()
            for member in others:
                hub.join(member, owner)
            await wait_until(lambda: all(m.epoch() == 1 for m in others), 600, "admissions")
            admitted = time.monotonic() - started
            removed = others[-1]
            started = time.monotonic()
            await owner.governance.remove_member(hub.room_id.hex(), removed.peer_id)
            await wait_until(lambda: all(m.epoch() == 2 for m in [owner, *others[:-1]]), 600,
                             "the new epoch")
            rotated = time.monotonic() - started
            entry = max(len(e) for e in envelopes(owner, hub.room_id))
            entries = owner.governance.store.entries(hub.room_id)
            started = time.monotonic()
            state = ms.replay(hub.room_id, entries)
            replayed = time.monotonic() - started
            assert len(state.members()) == members - 1
            result = (admitted, rotated, entry, replayed, len(entries))
        finally:
            nursery.cancel_scope.cancel()
    hub.close()  # once every member's task has ended
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    print(f"{'members':>8} {'all admitted':>13} {'removal→epoch':>14} {'entry bytes':>12} "
          f"{'log entries':>12} {'replay':>9}")
    for count in args.members:
        with tempfile.TemporaryDirectory() as folder:
            admitted, rotated, entry, replayed, n = trio.run(measure, count, Path(folder))
        print(f"{count:>8} {admitted:>12.2f}s {rotated:>13.3f}s {entry:>12} {n:>12} "
              f"{replayed * 1000:>7.1f}ms")


if __name__ == "__main__":
    main()
