"""What many offline contacts cost: CPU seconds and dials per minute of wall time.

    .venv/bin/python -m tests.benchmarks.offline_contacts [--counts 0,100,500] [--seconds 60]
    .venv/bin/python -m tests.benchmarks.offline_contacts --mode unreachable   # root, ip netns
    .venv/bin/python -m tests.benchmarks.offline_contacts --mode blackhole     # root, ip netns

One real node (a ``KithClient`` in this process, its network thread included in the CPU figure)
gets N contacts that are all offline, then is left alone. Three kinds of "offline":

* ``refused`` (default): each contact's address is a closed port on 127.0.0.1;
* ``unreachable``: the benchmark re-runs itself inside a fresh network namespace (loopback
  only) and each contact's address is in 198.51.100.0/24, which has no route there;
* ``blackhole``: as ``unreachable``, but 198.51.100.0/24 is routed to a second namespace that
  silently drops it, so every dial waits for its 10 s timeout (a home computer that is off,
  behind its router, looks like this).

For each N it prints three rows, one per minute after the contacts were added: in minute 1 the
backoffs ramp up from 1 s (1+2+4+8+16+32 s), minute 2 finishes the ramp, and minute 3 is the
steady state (every backoff at its 60 s cap, each wait jittered down by up to 25 %).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.client import KithClient
from app.core.config import NodeConfig
from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.logs import setup_logging
from app.node.node import KithNode
from app.store.profile import Profile
from tests.netns import Netns

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


_HELD: list[socket.socket] = []


def _closed_port() -> int:
    """A port bound by us but never listened on: dials are refused, and nobody else (another
    test's node) can take it while the benchmark runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def _dead_addr(i: int, unreachable: bool) -> str:
    if unreachable:
        return f"/ip4/198.51.100.{1 + i % 250}/tcp/{4001 + i // 250}"
    return f"/ip4/127.0.0.1/tcp/{_closed_port()}"


async def _measure(
    count: int, seconds: float, unreachable: bool, tmp: Path
) -> list[tuple[int, str, float, float]]:
    profile = Profile.open(tmp / f"node{count}")
    profile.initialise("Bench")
    client = KithClient(profile, NodeConfig(listen=(LOOPBACK,)))
    await client.start()
    try:
        for i in range(count):
            peer_id = Identity.generate().peer_id
            link = ContactInvite(peer_id, f"c{i}", (_dead_addr(i, unreachable),)).to_link()
            await client.add_contact(link)

        async def dials(node: KithNode) -> int:
            return node.contacts.redialer.dials

        rows = []
        for phase in ("minute 1", "minute 2", "minute 3"):
            cpu0, wall0 = time.process_time(), time.monotonic()
            dials0 = await client.call(dials)
            await asyncio.sleep(seconds)  # the thing measured is what happens meanwhile
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - wall0
            done = await client.call(dials) - dials0
            rows.append((count, phase, cpu * 60 / wall, done * 60 / wall))
        return rows
    finally:
        await client.stop()
        profile.close()
        for sock in _HELD:
            sock.close()
        _HELD.clear()


KINDS = {
    "refused": "closed 127.0.0.1 ports (refused at once)",
    "unreachable": "198.51.100.x with no route (netns; fails at once)",
    "blackhole": "198.51.100.x routed to a peer that drops it (netns; each dial times out)",
}


def _run_inside_namespace(args: argparse.Namespace) -> int:
    """Build the namespaces for ``--mode``, re-run this benchmark inside, remove them."""
    net = Netns()
    try:
        net.add("bench")
        if args.mode == "blackhole":
            # "sink" has forwarding off (a new namespace's default): packets for 198.51.100.x
            # arrive there and are dropped without an answer, like SYNs to a NAT with no mapping.
            net.add("sink")
            net.link("bench", "192.0.2.1/24", "sink", "192.0.2.2/24")
            net.run("bench", "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
        cmd = [sys.executable, "-m", "tests.benchmarks.offline_contacts", "--inside",
               "--mode", args.mode, "--counts", args.counts, "--seconds", str(args.seconds)]
        return subprocess.run([*net.exec("bench"), *cmd]).returncode
    finally:
        net.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,100,500")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mode", choices=list(KINDS), default="refused")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode != "refused" and not args.inside:
        sys.exit(_run_inside_namespace(args))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    # As in the app (app/logs.py), minus the file: libp2p's per-dial ERROR lines stay quiet.
    setup_logging(None, stderr=True, level=logging.WARNING)
    print(f"offline contacts: {KINDS[args.mode]}; {args.seconds:.0f} s per row")
    print(f"{'contacts':>8}  {'phase':<14}  {'CPU s/min':>9}  {'dials/min':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            for n, phase, cpu, dials in asyncio.run(
                _measure(count, args.seconds, args.mode != "refused", Path(tmp))
            ):
                print(f"{n:>8}  {phase:<14}  {cpu:>9.2f}  {dials:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
