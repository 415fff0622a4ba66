"""Room benchmark: N ``kith node`` processes in one room on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.rooms [--members 10] [--posts 1000] [--rate 100]
                                               [--scale 10,20,30] [--scale-posts 100]

Part 1: N members; POSTS posts at RATE posts/s from rotating authors. Prints delivery after a
final sync (must be 100%), latency p50/p99 from the post command to each other member's
``room_message``, and CPU seconds per member.
Part 2: for each N in --scale, 10 posts/s; reports p99 and whether it stays under 1 s, and the
largest N that does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.nodeproc import NodeProcess


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run_room(members: int, posts: int, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [NodeProcess(Path(tmp) / f"m{i}", name=f"Member {i}") for i in range(members)]
        try:
            for node in nodes:
                node.expect("ready", timeout=60)
            created = nodes[0].request({"cmd": "create_room", "name": "Bench"}, "room_created")
            room, invite = created["room_id"], created["invite"]
            for node in nodes[1:]:
                node.request({"cmd": "join_room", "invite": invite}, "room_joined", timeout=60)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until every member knows every other
                counts = [
                    len(n.request({"cmd": "members", "room": room}, "members")["members"])
                    for n in nodes
                ]
                if min(counts) == members:
                    break
                time.sleep(0.2)
            cpu_before = [cpu_seconds(n.proc.pid) for n in nodes]
            sent_at: dict[str, float] = {}
            started = time.monotonic()
            for i in range(posts):
                due = started + i / rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                author = nodes[i % members]
                stamp = time.monotonic()
                author.send({"cmd": "post", "room": room, "text": f"post {i}"})
                reply = author.expect("posted", timeout=60)
                sent_at[reply["id"]] = stamp
            # Everyone should end with every post (live or by sync).
            expected_each = {pid: 0 for pid in range(members)}
            for i in range(posts):
                for m in range(members):
                    if m != i % members:
                        expected_each[m] += 1
            latencies: list[float] = []
            delivered = 0
            deadline = time.monotonic() + 120
            for m, node in enumerate(nodes):
                while True:
                    got = {e["id"]: t for t, e in list(node.arrivals)
                           if e.get("event") == "room_message" and e["id"] in sent_at}
                    if len(got) >= expected_each[m] or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                delivered += len(got)
                latencies.extend((t - sent_at[i]) * 1000 for i, t in got.items())
            cpu_after = [cpu_seconds(n.proc.pid) for n in nodes]
        finally:
            for node in nodes:
                node.quit()
    total = sum(expected_each.values())
    return {
        "delivery": 100.0 * delivered / total,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99),
        "cpu": statistics.mean(b - a for a, b in zip(cpu_before, cpu_after, strict=True)),
        "seconds": posts / rate,
    }


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--scale", default="10,20,30")
    parser.add_argument("--scale-posts", type=int, default=100)
    args = parser.parse_args()

    result = run_room(args.members, args.posts, args.rate)
    print(f"\n{args.members} members, {args.posts} posts at {args.rate:.0f}/s, rotating authors")
    table([
        ("delivery after sync", f"{result['delivery']:.2f} %"),
        ("latency p50", f"{result['p50']:.1f} ms"),
        ("latency p99", f"{result['p99']:.1f} ms"),
        ("CPU per member", f"{result['cpu']:.2f} s over {result['seconds']:.0f} s "
                           f"({100 * result['cpu'] / result['seconds']:.0f} % of a core)"),
    ])

    print(f"\nscaling at 10 posts/s, {args.scale_posts} posts")
    print(f"{'members':>7}  {'delivery':>9}  {'p50 ms':>8}  {'p99 ms':>8}  {'CPU/member':>10}  ok")
    largest = 0
    for n in (int(x) for x in args.scale.split(",")):
        r = run_room(n, args.scale_posts, 10.0)
        ok = r["p99"] < 1000 and r["delivery"] == 100.0
        largest = n if ok else largest
        print(f"{n:>7}  {r['delivery']:>8.1f}%  {r['p50']:>8.1f}  {r['p99']:>8.1f}  "
              f"{100 * r['cpu'] / r['seconds']:>9.0f}%  {'yes' if ok else 'no'}")
        if not ok:
            break
    print(f"\nlargest N with p99 under 1 s at 10 posts/s: {largest}")


if __name__ == "__main__":
    main()
