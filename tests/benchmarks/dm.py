"""Direct-message benchmark: two ``kith node`` processes on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.dm [--messages 1000] [--burst 2000] [--runs 1]
        [--against <revision>]

Prints a table: round-trip latency (send command to delivery acknowledgement, one message at
a time) p50/p99, the CPU each node spends per round trip, and how long a burst takes to be
fully acknowledged, with lost and duplicated counts. The round trips run in one conversation
that grows by a message each (the receiver reads none of them), so a cost that grows with a
conversation's length shows as a p50 that climbs from the first quarter to the last.
Targets (2 cores, loopback): p50 <= 5 ms, p99 <= 25 ms, nothing lost or duplicated.
``--against`` runs another revision's ``app`` in alternate runs, as ``tests.benchmarks.rooms``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.rooms import (
    cpu_seconds,
    in_turn,
    load_average,
    percentile,
    print_table,
    spread,
    versions_to_run,
)
from tests.nodeproc import NodeProcess


@dataclass
class DmRun:
    p50: float                     # ms
    p99: float
    worst: float
    quarters: list[float]          # p50 of each quarter of the round trips, in order
    sender_cpu: float              # ms per round trip
    receiver_cpu: float
    burst_s: float
    lost: int
    duplicated: int
    in_order: bool


def run_dm(source: Path | None, messages: int, burst: int) -> DmRun:
    with tempfile.TemporaryDirectory() as tmp:
        ada = NodeProcess(Path(tmp) / "ada", name="Ada", source=source)
        bob = NodeProcess(Path(tmp) / "bob", name="Bob", source=source)
        try:
            ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
            ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
            bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
            to = ready_b["peer_id"]
            # Warm up: connection, streams, profiles.
            warm = ada.request({"cmd": "send", "to": to, "text": "warm-up"}, "sent")
            ada.expect("delivered", id=warm["id"])

            rtts = []
            cpu_before = cpu_seconds(ada.proc.pid), cpu_seconds(bob.proc.pid)
            for i in range(messages):
                ada.forget_unconsumed()  # the contact updates nobody waits for here
                started = time.perf_counter()
                sent = ada.request({"cmd": "send", "to": to, "text": f"ping {i}"}, "sent")
                ada.expect("delivered", id=sent["id"])
                rtts.append((time.perf_counter() - started) * 1000)
            sender_cpu = 1000 * (cpu_seconds(ada.proc.pid) - cpu_before[0]) / messages
            receiver_cpu = 1000 * (cpu_seconds(bob.proc.pid) - cpu_before[1]) / messages

            started = time.perf_counter()
            for i in range(burst):
                ada.send({"cmd": "send", "to": to, "text": f"burst {i}"})
            for _ in range(burst):
                ada.expect("delivered", timeout=120)
            burst_s = time.perf_counter() - started

            texts = []
            for _ in range(messages + burst + 1):
                texts.append(bob.expect("message", timeout=60)["text"])
            burst_texts = [t for t in texts if t.startswith("burst ")]
            expected = {f"burst {i}" for i in range(burst)}
        finally:
            ada.quit()
            bob.quit()
    quarter = max(1, len(rtts) // 4)
    return DmRun(
        p50=statistics.median(rtts), p99=percentile(rtts, 0.99), worst=max(rtts),
        quarters=[statistics.median(rtts[k * quarter:(k + 1) * quarter] or rtts)
                  for k in range(4)],
        sender_cpu=sender_cpu, receiver_cpu=receiver_cpu, burst_s=burst_s,
        lost=len(expected - set(burst_texts)),
        duplicated=len(burst_texts) - len(set(burst_texts)),
        in_order=burst_texts == [f"burst {i}" for i in range(burst)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="runs per version (1)")
    parser.add_argument("--against", help="a git revision (or a directory holding an app "
                        "package) to compare with, runs alternating")
    args = parser.parse_args()
    print(f"{args.messages} round trips and a burst of {args.burst}, {args.runs} run(s); "
          f"load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = versions_to_run(args.against, Path(tmp))
        results: dict[str, list[DmRun]] = {name: [] for name, _ in versions}
        for run in range(args.runs):
            for name, source in in_turn(versions, run):
                r = run_dm(source, args.messages, args.burst)
                results[name].append(r)
                quarters = ", ".join(f"{q:.2f}" for q in r.quarters)
                print(f"  run {run + 1} {name:<12} p50 {r.p50:5.2f} ms (by quarter {quarters}),"
                      f" p99 {r.p99:5.2f} ms, CPU per round trip {r.sender_cpu:.2f} + "
                      f"{r.receiver_cpu:.2f} ms, burst {r.burst_s:.2f} s", flush=True)

    rows: list[tuple[str, ...]] = [("measure", *(name for name, _ in versions))]

    def row(label: str, values: dict[str, list[float]], unit: str) -> None:
        rows.append((label, *(spread(values[name]).strip() + unit for name, _ in versions)))
    row("latency p50, median (min - max)", {n: [r.p50 for r in rs] for n, rs in results.items()},
        " ms")
    row("latency p50 of the last quarter", {n: [r.quarters[-1] for r in rs]
                                            for n, rs in results.items()}, " ms")
    row("latency p99", {n: [r.p99 for r in rs] for n, rs in results.items()}, " ms")
    row("latency max", {n: [r.worst for r in rs] for n, rs in results.items()}, " ms")
    row("sender CPU per round trip", {n: [r.sender_cpu for r in rs] for n, rs in results.items()},
        " ms")
    row("receiver CPU per round trip", {n: [r.receiver_cpu for r in rs]
                                        for n, rs in results.items()}, " ms")
    row(f"burst of {args.burst}, all acknowledged", {n: [r.burst_s for r in rs]
                                                      for n, rs in results.items()}, " s")
    rows.append(("lost, duplicated, out of order", *(
        f"{sum(r.lost for r in results[n])}, {sum(r.duplicated for r in results[n])}, "
        f"{sum(not r.in_order for r in results[n])}" for n, _ in versions)))
    print_table(rows)
    print(f"goals: p50 <= 5 ms, p99 <= 25 ms, nothing lost or duplicated; "
          f"load average now {load_average()}")


if __name__ == "__main__":
    main()
