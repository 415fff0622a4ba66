"""Room benchmark: ``kith node`` processes in one room on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.rooms [--runs 5] [--members 4] [--against REF]
                                               [--callgrind DIR]
                                               [--scale 10,20,30,40,50] [--scale-posts 100]
                                               [--scale-runs 1] [--skip-cpu] [--skip-scale]
                                               [--py-spy DIR]

Both parts first wait until the room has settled (its members' CPU quiet): forming a room
starts a history sync with every member one connects to, which is not the cost of posting.

Part 1, the CPU one room post costs each member: 4 members, one author posts 400 posts at
40 posts/s; for each receiving member, its CPU time (utime + stime from /proc) from the first
post until it has printed the last ``room_message``, divided by the posts it received. A run's
figure is the mean over the receivers; the table shows the median of ``--runs`` runs and their
spread (min - max). Beside it, the latency from each post command to each receiver's
``room_message`` (p50 and p99 over all receivers; wall-clock, so a quiet machine's figure
only): what reading a busy room in batches (``read_pacing``) costs in time. ``--members 2``
(a receiver reads each post once and forwards it to no one) and ``3`` (two copies read, one
forwarded) separate what a post costs a receiver from
what each further copy costs. The same receivers' CPU while the room sits idle is measured
just before (3 s) and shown as what the posting time alone would cost, so what the posts
themselves cost is the difference. "loop thread" is the part of it spent by the receivers'
main thread, which runs the event loop that takes the node's events (``kith node`` prints
them; the window's views take them there); the rest is the network thread. CPU time counts
what the process did, not how long it
waited for a core, so it moves much less than latency on a busy machine; it still moves
(caches, and more batching when a process falls behind).

``--against REF`` (a git revision, or a directory holding an ``app`` package) runs that
``app`` in alternate runs, which of the
two goes first alternating too, so a machine that gets busier hurts both alike; the table then
compares medians.

Part 2, the largest room that keeps up: for each N in ``--scale``, N members and
``--scale-posts`` posts at 10 posts/s from rotating authors. Prints delivery after a final
sync (must be 100 %), latency p50/p99 from the post command to each other member's
``room_message``, the CPU all members spent from the first post until delivery divided by
posts and members (so authoring and relaying are included), resident memory per process, and
the largest N whose p99 stays under 1 s. Latency is wall-clock time: on a busy machine it is
not the machine's figure. ``--scale-runs K`` runs each size K times (with ``--against``, K
times each, alternating as in Part 1) and adds the median and spread; the largest N is then
judged by the median p99.

``--callgrind DIR`` also counts the instructions a receiver executes per post under callgrind
(see ``run_callgrind``): a figure that a busy machine barely moves, for comparing versions.
``--py-spy DIR`` records one receiving member of each Part 1 run with py-spy (``pip install
py-spy``; ``--threads --native``, speedscope format). py-spy samples threads that are ready to
run, so on a busy machine its shares are not CPU shares.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.nodeproc import NodeProcess

CPU_MEMBERS = 4
CPU_POSTS = 400
CPU_RATE = 40.0
IDLE_SECONDS = 3.0
GIVE_UP_AFTER_SECONDS = 20.0  # Part 1 stops waiting once no receiver got a post for this long
QUIET_SHARE = 0.02  # a room has settled when its members use under 2 % of a core each
SCALE_RATE = 10.0
P99_GOAL_MS = 1000.0


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process, from /proc (all its threads), or of one of its threads
    (``thread=pid``: the main one, which runs the event loop)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


@contextlib.contextmanager
def room_of(
    members: int, tmp: Path, source: Path | None, prefixes: dict[int, list[str]] | None = None
) -> Iterator[tuple[list[NodeProcess], str]]:
    """``members`` nodes in one room, each knowing every other (announces went round);
    ``prefixes`` puts a command before some of them (a profiler)."""
    nodes: list[NodeProcess] = []
    try:
        for i in range(members):
            nodes.append(NodeProcess(tmp / f"m{i}", name=f"Member {i}", source=source,
                                     prefix=(prefixes or {}).get(i)))
        for node in nodes:
            node.expect("ready", timeout=120 + members)
        created = nodes[0].request({"cmd": "create_room", "name": "Bench"}, "room_created")
        room, invite = created["room_id"], created["invite"]
        for node in nodes[1:]:
            node.request({"cmd": "join_room", "invite": invite}, "room_joined", timeout=60)
        deadline = time.monotonic() + 60 + 4 * members
        while True:
            counts = [len(n.request({"cmd": "members", "room": room}, "members",
                                    timeout=60)["members"]) for n in nodes]
            if min(counts) == members:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"members never all met: {sorted(counts)}")
            time.sleep(0.5)
        yield nodes, room
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):  # a benchmark goes on; quit() killed it
                node.quit(timeout=30)


def settle(nodes: list[NodeProcess], timeout: float = 300) -> float:
    """Wait until the members are quiet: forming a room starts a history sync with every
    member one connects to, and those would otherwise be measured as the cost of posts.
    Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = [cpu_seconds(n.proc.pid) for n in nodes]
        time.sleep(1.0)
        used = [cpu_seconds(n.proc.pid) - b for n, b in zip(nodes, before, strict=True)]
        if statistics.mean(used) < QUIET_SHARE:
            break
    return time.monotonic() - started


def received_ids(node: NodeProcess, wanted: set[str]) -> dict[str, float]:
    """Post id -> monotonic time its ``room_message`` was read, for the ids in ``wanted``."""
    return {e["id"]: t for t, e in list(node.arrivals)
            if e.get("event") == "room_message" and e.get("id") in wanted}


def post_at_rate(room: str, authors: list[NodeProcess], posts: int, rate: float
                 ) -> tuple[dict[str, float], dict[str, int], float]:
    """Post ``posts`` posts at ``rate``/s, author ``i % len(authors)``; returns post id -> the
    time its command was sent, post id -> author index, and the rate achieved."""
    sent_at: dict[str, float] = {}
    author_of: dict[str, int] = {}
    started = time.monotonic()
    for i in range(posts):
        due = started + i / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        author = authors[i % len(authors)]
        stamp = time.monotonic()
        author.send({"cmd": "post", "room": room, "text": f"post {i} " + "x" * 40})
        reply = author.expect("posted", timeout=60)
        sent_at[reply["id"]] = stamp
        author_of[reply["id"]] = i % len(authors)
    return sent_at, author_of, posts / max(1e-9, time.monotonic() - started)


@dataclass
class CpuRun:
    ms_per_post: float        # mean over receivers: CPU ms / posts received
    loop_ms_per_post: float   # of which their main thread's (the event loop: views, events)
    idle_ms_per_post: float   # the same receivers idle for as long, per post
    author_ms_per_post: float
    delivered: float          # % of posts each receiver printed, live
    rate: float               # posts/s achieved
    p50_ms: float             # post command -> a receiver's room_message, over all receivers
    p99_ms: float


class PySpy:
    """py-spy recording one process until stopped."""

    def __init__(self, pid: int, out: Path) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
             "--threads", "--native", "--rate", "200", "--format", "speedscope",
             "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # attach before the posts start (it has no ready signal)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def run_cpu(source: Path | None, spy: Path | None = None, members: int = CPU_MEMBERS) -> CpuRun:
    with tempfile.TemporaryDirectory() as tmp, room_of(members, Path(tmp), source) as (
        nodes, room
    ):
        author, receivers = nodes[0], nodes[1:]
        settle(nodes)
        idle_before = [cpu_seconds(n.proc.pid) for n in receivers]
        time.sleep(IDLE_SECONDS)
        idle = [(cpu_seconds(n.proc.pid) - b) / IDLE_SECONDS
                for n, b in zip(receivers, idle_before, strict=True)]
        recorder = PySpy(receivers[0].proc.pid, spy) if spy is not None else None
        before = [cpu_seconds(n.proc.pid) for n in nodes]
        loop_before = [cpu_seconds(n.proc.pid, n.proc.pid) for n in nodes]
        started = time.monotonic()
        sent_at, _, rate = post_at_rate(room, [author], CPU_POSTS, CPU_RATE)
        wanted = set(sent_at)
        after, loop_after = list(before), list(loop_before)
        got = [0] * len(nodes)
        latencies: list[float] = []
        # A receiver's CPU is read when its count last grew, so a post it never gets (the
        # author's quota refuses one of 400 at 40/s in a 2-member room) adds no idle wait.
        last_arrival = time.monotonic()
        arrived = [0.0] * len(nodes)  # seconds from the first post to a receiver's last
        pending = set(range(1, len(nodes)))
        while pending and time.monotonic() - last_arrival < GIVE_UP_AFTER_SECONDS:
            for i in sorted(pending):
                arrivals = received_ids(nodes[i], wanted)
                count = len(arrivals)
                if count > got[i]:
                    last_arrival = time.monotonic()
                    pid = nodes[i].proc.pid
                    got[i], after[i], loop_after[i], arrived[i] = (
                        count, cpu_seconds(pid), cpu_seconds(pid, pid), last_arrival - started)
                if got[i] >= len(wanted):
                    pending.discard(i)
            time.sleep(0.02)
        for node in receivers:
            latencies += [1000 * (t - sent_at[post]) for post, t in
                          received_ids(node, wanted).items()]
        after[0] = cpu_seconds(author.proc.pid)
        if recorder is not None:
            recorder.stop()
        per_post = [1000 * (after[i] - before[i]) / max(1, got[i]) for i in range(1, len(nodes))]
        loop_per_post = [1000 * (loop_after[i] - loop_before[i]) / max(1, got[i])
                         for i in range(1, len(nodes))]
        idle_per_post = [1000 * rate_s * arrived[i] / max(1, got[i])
                         for i, rate_s in zip(range(1, len(nodes)), idle, strict=True)]
        return CpuRun(
            ms_per_post=statistics.mean(per_post),
            loop_ms_per_post=statistics.mean(loop_per_post),
            idle_ms_per_post=statistics.mean(idle_per_post),
            author_ms_per_post=1000 * (after[0] - before[0]) / len(wanted),
            delivered=100 * sum(got[1:]) / (len(wanted) * len(receivers)),
            rate=rate,
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
        )


CALLGRIND_POSTS = 100
CALLGRIND_RATE = 5.0  # slow enough for a receiver running under callgrind to keep up


def run_callgrind(source: Path | None, out: Path) -> float:
    """Instructions per received post of receiver 1, counted by callgrind.

    Part 1's room, but receiver 1 runs under ``valgrind --tool=callgrind`` (about 50 times
    slower, hence fewer and slower posts); its counters are zeroed at the first post and
    dumped once it has them all. Instruction counts barely move with the machine's load,
    so they compare versions on a busy machine; they are not Part 1's figure.
    """
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.%p"]
    with tempfile.TemporaryDirectory() as tmp, room_of(
        CPU_MEMBERS, Path(tmp), source, {1: valgrind}
    ) as (nodes, room):
        receiver = nodes[1]
        settle([n for n in nodes if n is not receiver])  # under callgrind it is never quiet
        subprocess.run(["callgrind_control", "-z", str(receiver.proc.pid)], check=True,
                       capture_output=True)
        sent_at, _, _ = post_at_rate(room, [nodes[0]], CALLGRIND_POSTS, CALLGRIND_RATE)
        wanted = set(sent_at)
        deadline = time.monotonic() + 600
        while len(received_ids(receiver, wanted)) < len(wanted) and time.monotonic() < deadline:
            time.sleep(0.1)
        got = len(received_ids(receiver, wanted))
        subprocess.run(["callgrind_control", "-d", str(receiver.proc.pid)], check=True,
                       capture_output=True)
        dumps = sorted(out.glob(f"callgrind.{receiver.proc.pid}.*"),
                       key=lambda dump: dump.stat().st_mtime)
        for line in dumps[-1].read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1]) / max(1, got)
    return float("nan")


@dataclass
class ScaleRun:
    delivery: float
    p50: float
    p99: float
    cpu_per_post: float  # CPU ms per post per member (all members, posting until delivered)
    rss_median: float
    rss_max: float


def run_scale(members: int, posts: int, source: Path | None = None) -> ScaleRun:
    with tempfile.TemporaryDirectory() as tmp, room_of(members, Path(tmp), source) as (
        nodes, room
    ):
        settle(nodes)
        before = [cpu_seconds(n.proc.pid) for n in nodes]
        sent_at, author_of, _ = post_at_rate(room, nodes, posts, SCALE_RATE)
        latencies: list[float] = []
        delivered = 0
        deadline = time.monotonic() + 120
        for m, node in enumerate(nodes):
            wanted = {p for p, a in author_of.items() if a != m}
            while True:
                got = received_ids(node, wanted)
                if len(got) >= len(wanted) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            delivered += len(got)
            latencies.extend((t - sent_at[p]) * 1000 for p, t in got.items())
        cpu = [cpu_seconds(n.proc.pid) - b for n, b in zip(nodes, before, strict=True)]
        rss = [rss_mib(n.proc.pid) for n in nodes]
    expected = posts * (members - 1)
    return ScaleRun(
        delivery=100.0 * delivered / expected,
        p50=statistics.median(latencies) if latencies else float("nan"),
        p99=percentile(latencies, 0.99),
        cpu_per_post=1000 * sum(cpu) / (posts * members),
        rss_median=statistics.median(rss),
        rss_max=max(rss),
    )


def export_revision(ref: str, into: Path) -> Path:
    """The ``app`` package of git revision ``ref``, unpacked under ``into``; a directory
    holding an ``app`` package (an experiment) is used as it is."""
    if (Path(ref) / "app").is_dir():
        return Path(ref)
    repo = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "app"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def versions_to_run(against: str | None, tmp: Path) -> list[tuple[str, Path | None]]:
    """This tree, and with ``--against`` that revision's ``app`` exported under ``tmp``."""
    versions: list[tuple[str, Path | None]] = [("this tree", None)]
    if against is not None:
        versions.append((against, export_revision(against, tmp)))
    return versions


def in_turn(versions: list[tuple[str, Path | None]], run: int) -> list[tuple[str, Path | None]]:
    """Run ``run``'s order: which version goes first alternates, so a machine that gets busier
    hurts both alike."""
    return versions if run % 2 == 0 else versions[::-1]


def spread(values: list[float], digits: int = 2) -> str:
    """The median and (min - max) of ``values``, ``digits`` after the point."""
    return (f"{statistics.median(values):6.{digits}f}  ({min(values):.{digits}f} - "
            f"{max(values):.{digits}f})")


def print_table(rows: list[tuple[str, ...]]) -> None:
    """``rows`` in aligned columns, the first one a header underlined."""
    widths = [max(len(line[i]) for line in rows) for i in range(len(rows[0]))]
    for i, line in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def cpu_part(runs: int, against: str | None, spy: Path | None, members: int) -> None:
    print(f"\nCPU per received post: {members} members, one author, {CPU_POSTS} posts at "
          f"{CPU_RATE:.0f}/s, {runs} runs; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = versions_to_run(against, Path(tmp))
        results: dict[str, list[CpuRun]] = {name: [] for name, _ in versions}
        for run in range(runs):
            for name, source in in_turn(versions, run):
                out = spy / f"receiver-{name.replace('/', '_')}-{run}.json" if spy else None
                r = run_cpu(source, out, members)
                results[name].append(r)
                print(f"  run {run + 1} {name:<12} {r.ms_per_post:6.2f} ms/post "
                      f"(idle share {r.idle_ms_per_post:.2f}, loop thread "
                      f"{r.loop_ms_per_post:.2f}), author {r.author_ms_per_post:.2f}"
                      f" ms/post, delivered live {r.delivered:.1f} %, {r.rate:.1f} posts/s, "
                      f"latency p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms", flush=True)
    print(f"\n{'version':<12}  {'ms CPU per received post, median (min - max)':<46}"
          f"  {'idle part':>9}  {'loop thread':>11}  {'author ms/post':>14}"
          f"  {'latency p50 / p99 ms':>20}")
    for name, _ in versions:
        rs = results[name]
        print(f"{name:<12}  {spread([r.ms_per_post for r in rs]):<46}  "
              f"{statistics.median(r.idle_ms_per_post for r in rs):>9.2f}  "
              f"{statistics.median(r.loop_ms_per_post for r in rs):>11.2f}  "
              f"{statistics.median(r.author_ms_per_post for r in rs):>14.2f}  "
              f"{statistics.median(r.p50_ms for r in rs):>11.0f} / "
              f"{statistics.median(r.p99_ms for r in rs):<6.0f}")
    if against is not None:
        now = statistics.median(r.ms_per_post for r in results["this tree"])
        then = statistics.median(r.ms_per_post for r in results[against])
        print(f"this tree / {against}: {now / then:.2f}")
    print(f"goal: <= 1.0 ms per received post; load average now {load_average()}")


def callgrind_part(against: str | None, out: Path) -> None:
    print(f"\ninstructions per received post (callgrind, receiver 1, {CALLGRIND_POSTS} posts at "
          f"{CALLGRIND_RATE:.0f}/s); load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = versions_to_run(against, Path(tmp))
        for name, source in versions:
            print(f"{name:<12}  {run_callgrind(source, out) / 1e6:6.2f} M", flush=True)


def scale_part(sizes: list[int], posts: int, runs: int, against: str | None) -> None:
    print(f"\nlargest room at {SCALE_RATE:.0f} posts/s, {posts} posts from rotating authors, "
          f"{runs} run(s) per size; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = versions_to_run(against, Path(tmp))
        print(f"{'members':>7}  {'version':<12}  {'delivery':>9}  {'p50 ms':>8}  {'p99 ms':>8}  "
              f"{'CPU ms/post/member':>18}  {'RSS MiB median/max':>18}  ok")
        largest = 0
        for n in sizes:
            results: dict[str, list[ScaleRun]] = {name: [] for name, _ in versions}
            for run in range(runs):
                for name, source in in_turn(versions, run):
                    r = run_scale(n, posts, source)
                    results[name].append(r)
                    print(f"{n:>7}  {name:<12}  {r.delivery:>8.1f}%  {r.p50:>8.1f}  "
                          f"{r.p99:>8.1f}  {r.cpu_per_post:>18.2f}  "
                          f"{r.rss_median:>8.0f} / {r.rss_max:<7.0f}  "
                          f"{'yes' if _scale_ok(r) else 'no'}   "
                          f"(load average {load_average()})", flush=True)
            if runs > 1 or against is not None:
                for name, _ in versions:
                    rs = results[name]
                    print(f"{n:>7}  {name:<12}  median of {runs}: p99 "
                          f"{spread([r.p99 for r in rs])} ms, CPU ms/post/member "
                          f"{spread([r.cpu_per_post for r in rs])}, "
                          f"all delivered: {all(r.delivery == 100.0 for r in rs)}")
            mine = results["this tree"]
            if not (statistics.median(r.p99 for r in mine) < P99_GOAL_MS
                    and all(r.delivery == 100.0 for r in mine)):
                break
            largest = n
    print(f"\nlargest N with a median p99 under 1 s at {SCALE_RATE:.0f} posts/s (this tree): "
          f"{largest} (goal >= 50)")


def _scale_ok(r: ScaleRun) -> bool:
    return r.p99 < P99_GOAL_MS and r.delivery == 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Part 1 runs per version (5)")
    parser.add_argument("--members", type=int, default=CPU_MEMBERS,
                        help="Part 1 room size (4; 2 and 3 separate what a post costs from "
                        "what each further copy costs)")
    parser.add_argument("--against", help="a git revision (or a directory holding an app "
                        "package) to compare with, runs alternating")
    parser.add_argument("--scale", default="10,20,30,40,50")
    parser.add_argument("--scale-posts", type=int, default=100)
    parser.add_argument("--scale-runs", type=int, default=1,
                        help="Part 2 runs per size and version (1)")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--py-spy", type=Path, help="record a receiver of each run into DIR")
    parser.add_argument("--callgrind", type=Path,
                        help="also count a receiver's instructions under callgrind (dumps in DIR)")
    args = parser.parse_args()
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    if not args.skip_cpu:
        cpu_part(args.runs, args.against, args.py_spy, args.members)
    if args.callgrind is not None:
        args.callgrind.mkdir(parents=True, exist_ok=True)
        callgrind_part(args.against, args.callgrind.resolve())
    if not args.skip_scale:
        scale_part([int(x) for x in args.scale.split(",")], args.scale_posts, args.scale_runs,
                   args.against)


if __name__ == "__main__":
    main()
