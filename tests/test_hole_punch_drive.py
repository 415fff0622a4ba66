"""DCUtR's look for relayed peers skips direct connections (app.node.hole_punch).

That relayed connections are still upgraded is shown between processes in namespaces
(tests/test_netns_dcutr.py); here, between two hosts on 127.0.0.1, that a direct connection
costs the loop nothing.
"""

from __future__ import annotations

import inspect
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from app.core.identity import Identity
from app.node import hole_punch
from app.node.host import build_host

LOOPBACK = Multiaddr("/ip4/127.0.0.1/tcp/0")


def test_a_direct_connection_is_not_looked_at_by_the_relay_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """py-libp2p 0.8.1 turned every address of every connection into text every 2 s."""
    monkeypatch.setattr(hole_punch, "DRIVE_INTERVAL", 0.01)

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            a, b = (build_host(Identity.generate(), [LOOPBACK]) for _ in range(2))
            for host in (a, b):
                await stack.enter_async_context(host.run([LOOPBACK]))
            await a.connect(PeerInfo(b.get_id(), b.get_addrs()))
            (conn,) = a.get_network().get_connections(b.get_id())
            looked: list[int] = []
            addresses = conn.get_transport_addresses

            def counting() -> Any:
                looked.append(1)
                return addresses()

            monkeypatch.setattr(conn, "get_transport_addresses", counting)
            protocol = hole_punch._KithDCUtR(a, lambda peer: True)
            await stack.enter_async_context(background_trio_service(protocol))
            with trio.fail_after(10):
                while protocol.drive_rounds < 5:
                    await trio.sleep(0.01)
            assert looked == []

    trio.run(scenario)


def test_the_upstream_loop_kith_mirrors_is_unchanged() -> None:
    """Guards ``_ReportingDCUtR._auto_drive_loop``: an upgrade that changes upstream's must
    fail here, so the copy is compared again."""
    loop = inspect.getsource(DCUtRProtocol._auto_drive_loop)
    for step in ("await trio.sleep(2.0)", "self._in_progress", "self._direct_connections",
                 "self._hole_punch_attempts.get(peer_id, 0)", "MAX_HOLE_PUNCH_ATTEMPTS",
                 "conn.get_transport_addresses()", '"/p2p-circuit" in str(addr)',
                 "await self.initiate_hole_punch(peer_id)"):
        assert step in loop, step
    assert loop.count("self.") == 6, "upstream's loop changed: compare it with Kith's"
    assert "self._auto_drive_loop" in inspect.getsource(DCUtRProtocol.run)
