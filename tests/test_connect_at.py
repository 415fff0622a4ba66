"""``connect_at``: a stale address that accepts and then says nothing must not hide a good one.

py-libp2p 0.8.1 dials only the first stored TCP address of a peer. A dead port is refused at
once either way, so the case that matters is a listener that completes the TCP handshake and
never answers (another program now owns the port, a half-dead NAT mapping): here a socket that
listens and never accepts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from app.node.host import connect_at
from app.node.node import KithNode
from tests.peers import peers

PER_ADDRESS = 2.0


def _silent_listener() -> socket.socket:
    """Completes TCP handshakes (the kernel's backlog) and never reads or writes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_silent_stale_address_then_the_real_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        with _silent_listener() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                port = silent.getsockname()[1]
                stale = f"/ip4/127.0.0.1/tcp/{port}/p2p/{bob.peer_id}"
                assert bob.ready is not None
                real = [a for a in bob.ready.addrs if "/ip4/127.0.0.1/" in a]

                async def dial(node: KithNode) -> bool:
                    return await connect_at(node.host, bob.peer_id, [stale, *real], PER_ADDRESS)

                started = time.monotonic()
                assert await ada.client.call(dial), "the real address after the stale one failed"
                took = time.monotonic() - started
                # The stale address was really tried first, and given up after its own timeout.
                assert took >= PER_ADDRESS * 0.9, took

                async def connected(node: KithNode) -> bool:
                    return node.is_connected(bob.peer_id)

                assert await ada.client.call(connected)

    asyncio.run(scenario())


def test_only_stale_addresses_give_up_within_their_timeouts(tmp_path: Path) -> None:
    async def scenario() -> None:
        with _silent_listener() as silent:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                stale = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}/p2p/{bob.peer_id}"

                async def dial(node: KithNode) -> bool:
                    return await connect_at(node.host, bob.peer_id, [stale, stale], PER_ADDRESS)

                started = time.monotonic()
                assert not await asyncio.wait_for(ada.client.call(dial), 4 * PER_ADDRESS)
                assert time.monotonic() - started < 3 * PER_ADDRESS

    asyncio.run(scenario())
