"""How steady the machine itself is: a fixed CPU loop, timed in slices, with nothing of Kith.

    .venv/bin/python -m tests.benchmarks.machine [--seconds 90] [--window 5]

One thread hashes 64 bytes with SHA-256 (a working set that stays in the first-level cache)
for ``--seconds``, counting hashes per second of its own CPU time. Prints, per ``--window``
seconds, the rate against the median window and the share of a core the thread got. The same
work at a different rate, with the whole core, is the machine's speed moving (a host's other
tenants, its clock); a share under 1.0 is time taken away (steal). A benchmark whose runs last
about one window cannot be steadier than these windows are: run this beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from tests.benchmarks.rooms import print_table

PAYLOAD = b"x" * 64


def slice_rate() -> tuple[float, float]:
    """One second of hashing: thousands of hashes per CPU second, and the CPU share."""
    wall, cpu = time.monotonic(), time.process_time()
    done = 0
    while time.monotonic() - wall < 1.0:
        for _ in range(1000):
            hashlib.sha256(PAYLOAD).digest()
        done += 1000
    used = time.process_time() - cpu
    return done / used / 1e3, used / (time.monotonic() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=90, help="how long to measure (90)")
    parser.add_argument("--window", type=int, default=5,
                        help="seconds per row: about one benchmark run (5)")
    args = parser.parse_args()
    slices = [slice_rate() for _ in range(args.seconds)]
    windows = [slices[i:i + args.window] for i in range(0, len(slices), args.window)]
    rates = [statistics.mean(r for r, _ in w) for w in windows]
    middle = statistics.median(rates)
    rows: list[tuple[str, ...]] = [("seconds", "k hashes / CPU s", "against the median",
                                   "CPU share")]
    for i, (window, rate) in enumerate(zip(windows, rates, strict=True)):
        rows.append((f"{i * args.window}-{i * args.window + len(window)}", f"{rate:.0f}",
                     f"{(rate / middle - 1) * 100:+.0f} %",
                     f"{min(share for _, share in window):.2f}"))
    print(f"\nA fixed CPU loop, {args.window} s windows\n")
    print_table(rows)
    seconds = [r for r, _ in slices]
    print(f"\n1 s slices: median {statistics.median(seconds):.0f}, {min(seconds):.0f} - "
          f"{max(seconds):.0f}; {args.window} s windows: {(min(rates) / middle - 1) * 100:+.0f} %"
          f" to {(max(rates) / middle - 1) * 100:+.0f} % of their median")


if __name__ == "__main__":
    main()
