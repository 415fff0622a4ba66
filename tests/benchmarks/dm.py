"""Direct-message benchmark: two ``kith node`` processes on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.dm [--messages 1000] [--burst 2000]

Prints a table: round-trip latency (send command to delivery acknowledgement, one message at
a time) p50/p99, and how long a burst takes to be fully acknowledged, with lost and duplicated
counts. Targets (2 cores, loopback): p50 <= 5 ms, p99 <= 25 ms, nothing lost or duplicated.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.nodeproc import NodeProcess


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ada = NodeProcess(Path(tmp) / "ada", name="Ada")
        bob = NodeProcess(Path(tmp) / "bob", name="Bob")
        try:
            ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
            ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
            bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
            to = ready_b["peer_id"]
            # Warm up: connection, streams, profiles.
            warm = ada.request({"cmd": "send", "to": to, "text": "warm-up"}, "sent")
            ada.expect("delivered", id=warm["id"])

            rtts = []
            for i in range(args.messages):
                started = time.perf_counter()
                sent = ada.request({"cmd": "send", "to": to, "text": f"ping {i}"}, "sent")
                ada.expect("delivered", id=sent["id"])
                rtts.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            for i in range(args.burst):
                ada.send({"cmd": "send", "to": to, "text": f"burst {i}"})
            for _ in range(args.burst):
                ada.expect("delivered", timeout=120)
            burst_s = time.perf_counter() - started

            texts = []
            for _ in range(args.messages + args.burst + 1):
                texts.append(bob.expect("message", timeout=60)["text"])
            burst_texts = [t for t in texts if t.startswith("burst ")]
            expected = {f"burst {i}" for i in range(args.burst)}
            lost = len(expected - set(burst_texts))
            duplicated = len(burst_texts) - len(set(burst_texts))
            in_order = burst_texts == [f"burst {i}" for i in range(args.burst)]
        finally:
            ada.quit()
            bob.quit()

    rows = [
        ("round trips", f"{args.messages}"),
        ("latency p50", f"{statistics.median(rtts):.2f} ms"),
        ("latency p99", f"{percentile(rtts, 0.99):.2f} ms"),
        ("latency max", f"{max(rtts):.2f} ms"),
        (f"burst of {args.burst}, all acknowledged", f"{burst_s:.2f} s"),
        ("burst rate", f"{args.burst / burst_s:.0f} msg/s"),
        ("lost", str(lost)),
        ("duplicated", str(duplicated)),
        ("in order", "yes" if in_order else "NO"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
