"""Relay bandwidth benchmark: what one pair of peers can push through a Kith relay.

    .venv/bin/python -m tests.benchmarks.relay [--mib 48]

Three peers in one process on 127.0.0.1: R serves as a relay, Bob holds a slot on it, Ada
knows Bob only by his circuit address (hole punching off, so every byte crosses R). Ada sends
Bob a file, once with R's limits (``app.node.relay_server.LIMITS``) and once with its rates
and budgets lifted. Prints a table: MiB/s end to end and the rate caps in force. Target: with
the limits, a pair of peers gets at most the per-circuit rate (throwaway keys on both ends
are one pair), however fast the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import app.node.relay_server as relay_server
from app.core.config import NodeConfig
from app.core.invite import ContactInvite, strip_p2p
from app.node.hole_punch import HolePunching
from tests.peers import LOOPBACK, Peer

MiB = 1024 * 1024
LIFTED = dataclasses.replace(
    relay_server.LIMITS, circuit_rate=1 << 40, peer_rate=1 << 40, total_rate=1 << 40,
    circuit_data=1 << 40, peer_budget=1 << 40)


async def _no_hole_punching(self: HolePunching) -> None:
    """All three share 127.0.0.1: DCUtR would take Ada and Bob off the relay."""


async def one_run(root: Path, size: int) -> float:
    """Seconds for Ada's file of ``size`` bytes to reach Bob through the relay."""
    relay = await Peer(root / "relay", "Relay",
                       NodeConfig(listen=(LOOPBACK,), serve_relay=True)).start()
    assert relay.ready is not None
    bob = await Peer(root / "bob", "Bob",
                     NodeConfig(listen=(LOOPBACK,), relays=(relay.ready.addrs[0],))).start()
    ada = await Peer(root / "ada", "Ada").start()
    try:
        (reserved,) = await bob.wait_event("relay_reserved", timeout=20)
        circuit = next(a for a in reserved.addrs if "127.0.0.1" in a)  # type: ignore[attr-defined]
        await ada.client.add_contact(
            ContactInvite(bob.peer_id, "Bob", (strip_p2p(circuit),)).to_link())
        await bob.client.add_contact(ContactInvite(ada.peer_id, "Ada").to_link())
        await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=20)
        source = root / "payload.bin"
        source.write_bytes(os.urandom(size))
        offer = await ada.client.send_file(bob.peer_id, str(source))
        await bob.wait_event("file_offer", transfer=offer.transfer)
        started = time.perf_counter()
        await bob.client.accept_file(offer.transfer, str(root / "inbox"))
        await bob.wait_event("file_complete", transfer=offer.transfer, timeout=600)
        return time.perf_counter() - started
    finally:
        await asyncio.gather(*(p.stop() for p in (ada, bob, relay)), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=48, help="file size in MiB")
    args = parser.parse_args()
    HolePunching.start = _no_hole_punching  # type: ignore[method-assign]
    kith = relay_server.LIMITS
    rows = []
    for label, limits in (("Kith limits", kith), ("limits lifted", LIFTED)):
        relay_server.LIMITS = limits
        with tempfile.TemporaryDirectory() as tmp:
            seconds = asyncio.run(one_run(Path(tmp), args.mib * MiB))
        rows.append((label, f"{args.mib / seconds:.1f} MiB/s", f"{seconds:.1f} s"))
    relay_server.LIMITS = kith
    caps = (f"caps: circuit {kith.circuit_rate / MiB:g} MiB/s, peer {kith.peer_rate / MiB:g} "
            f"MiB/s, relay {kith.total_rate / MiB:g} MiB/s, "
            f"{kith.peer_budget / MiB:g} MiB per peer per {kith.budget_window} s")
    width = max(len(r[0]) for r in rows)
    print(f"{'relay, one pair of peers':<{width}}  {'speed':>12}  {args.mib} MiB took")
    for label, speed, took in rows:
        print(f"{label:<{width}}  {speed:>12}  {took:>9}")
    print(caps)


if __name__ == "__main__":
    main()
