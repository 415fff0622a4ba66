"""A Kith that stops is seen offline by its contacts at once, every time.

Befriending makes both sides dial, so a pair often holds two connections. py-libp2p's per-peer
close skipped the second one, which stayed open with nobody behind it: the contact looked
online until the process exited. About one stop in three showed it, so the test repeats.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.peers import Peer, befriend

ROUNDS = 8


def test_a_stopped_contact_goes_offline_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        for round_ in range(ROUNDS):
            ada = await Peer(tmp_path / f"ada{round_}", "Ada").start()
            bob = await Peer(tmp_path / f"bob{round_}", "Bob").start()
            try:
                await befriend(ada, bob)
                started = time.monotonic()
                await bob.stop()
                await ada.wait_event("contact_offline", peer_id=bob.peer_id, timeout=5)
                assert time.monotonic() - started < 3, f"round {round_}: offline too late"
            finally:
                await asyncio.gather(ada.stop(), bob.stop(), return_exceptions=True)

    asyncio.run(scenario())
