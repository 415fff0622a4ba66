"""What killing the receiver costs: two ``kith node`` processes, the receiver SIGKILLed
``--kills`` times part-way through one file and started again each time.

    .venv/bin/python -m tests.benchmarks.resume [--size 1000] [--kills 11] [--runs 1] [--dir /tmp]

Both nodes run in a network namespace the benchmark builds (root needed, as for the namespace
tests), on its loopback, so that interface's counters are exactly their traffic. The kills are
spread over the transfer: the k-th comes at the first progress event at or past k/(kills+1) of
the file (and past the progress the restart started from). Prints, per run and as medians: the
bytes on the wire (every packet between the two, both directions, headers included), the chunk
bytes the sender served, both against the file's size, what each kill cost (served beyond the
file, per kill), and how often and by how much the progress shown after a restart was below
the last progress shown before the kill.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.files import choose_chunk_size, chunk_count
from tests.netns import Netns
from tests.nodeproc import NodeProcess
from tests.payload import MiB, file_hash, make_file


def loopback_bytes(net: Netns) -> int:
    """Bytes sent over the namespace's loopback so far (each packet counted once)."""
    out = subprocess.run(["ip", "-n", net.names["bench"], "-j", "-s", "link", "show", "lo"],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["bytes"])


@dataclass
class Run:
    size: int
    wire: int              # bytes on the wire from accept to complete, both directions
    served: int            # chunk bytes served (repeats included)
    setbacks: list[int]    # per kill: last shown before it - first shown after it, if positive
    seconds: float


def one_run(net: Netns, tmp: Path, source: Path, expected: str, kills: int) -> Run:
    size = source.stat().st_size
    chunk = choose_chunk_size(size)
    inside = net.exec("bench")
    ada = NodeProcess(tmp / "ada", name="Ada", prefix=inside)
    bob = NodeProcess(tmp / "bob", name="Bob", prefix=inside)
    setbacks: list[int] = []
    try:
        ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        ada.expect("contact_online", peer_id=ready_b["peer_id"])
        ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
        tid = ada.expect("file_offered", timeout=600)["transfer"]
        bob.expect("file_offer", transfer=tid)
        wire_before = loopback_bytes(net)
        started = time.perf_counter()
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp / "in")},
                    "file_accepted")
        start = 0
        for k in range(1, kills + 1):
            mark = size * k // (kills + 1)
            while True:
                got = bob.expect("file_progress", transfer=tid, timeout=600)["bytes"]
                if got >= mark and got > start:
                    break
            bob.kill()
            shown = max(e["bytes"] for e in bob.printed("file_progress", transfer=tid))
            if shown >= size:
                raise RuntimeError("the file was complete before a kill: use a larger --size")
            bob = NodeProcess(tmp / "bob", prefix=inside)
            bob.expect("ready")
            start = bob.expect("file_progress", transfer=tid, timeout=60)["bytes"]
            setbacks.append(max(0, shown - start))
        done = bob.expect("file_complete", transfer=tid, timeout=3600)
        seconds = time.perf_counter() - started
        ada.expect("file_complete", transfer=tid, timeout=60)
        wire = loopback_bytes(net) - wire_before
        listing = ada.request({"cmd": "transfers"}, "transfers")["transfers"]
        (mine,) = [t for t in listing if t["transfer"] == tid]
        assert file_hash(done["path"]) == expected, "the received file differs"
    finally:
        ada.quit(timeout=30)
        bob.quit(timeout=30)
    # Every chunk is full-size but the last, counted here as served once.
    served = mine["served"] * chunk - (chunk_count(size, chunk) * chunk - size)
    return Run(size, wire, served, setbacks, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="file size in MB (default 1000)")
    parser.add_argument("--kills", type=int, default=11, help="receiver kills per run (11)")
    parser.add_argument("--runs", type=int, default=1, help="runs; medians are shown (1)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    args = parser.parse_args()
    size = args.size * 1_000_000
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "payload.bin"
        expected = make_file(source, size)
        net = Netns()
        try:
            net.add("bench")
            for i in range(args.runs):
                run_dir = tmp / f"run{i}"
                run_dir.mkdir()
                runs.append(one_run(net, run_dir, source, expected, args.kills))
        finally:
            net.remove()

    def mb(n: float) -> str:
        return f"{n / 1e6:8.1f} MB"

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def row(label: str, value: str) -> None:
        print(f"{label:<40}{value}")

    kills = args.kills
    chunk_mib = choose_chunk_size(size) // MiB
    row("file", f"{size / 1e6:.0f} MB, chunks of {chunk_mib} MiB, {kills} receiver kills")
    row("runs (medians below)", str(len(runs)))
    row("bytes on the wire (both ways)", mb(median([r.wire for r in runs]))
        + f"   ({median([r.wire / r.size for r in runs]):.2f}x the file)")
    row("chunks served", mb(median([r.served for r in runs]))
        + f"   ({median([r.served / r.size for r in runs]):.2f}x the file)")
    row("cost per kill (served beyond the file)",
        mb(median([(r.served - r.size) / kills for r in runs])))
    everything = [s for r in runs for s in r.setbacks]
    row("restarts showing less than shown before",
        f"{sum(1 for s in everything if s)} of {len(everything)}")
    row("largest step back in progress shown", mb(max(everything, default=0)))
    row("accept -> verified file, with the kills", f"{median([r.seconds for r in runs]):8.1f} s")
    for i, r in enumerate(runs):
        row(f"  run {i + 1}", f"wire {r.wire / 1e6:.0f} MB, served {r.served / 1e6:.0f} MB, "
                             f"{r.seconds:.1f} s")


if __name__ == "__main__":
    main()
