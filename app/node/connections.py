"""Our live connections to other peers, as every service asks about them.

py-libp2p keeps a list of connections per peer (``Swarm.connections``); this answers "are we
connected", hands out that list, and closes connections for good (its own per-peer close can
leave one open: ``close_connections``).
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from libp2p.abc import IHost, INetConn
from libp2p.peer.id import ID

from app.core.identity import InvalidPeerId, peer_id_bytes

log = logging.getLogger(__name__)


class HostConnections:
    """``interfaces.Connections`` over a libp2p host."""

    def __init__(self, host: IHost) -> None:
        self._host = host

    def connections_to(self, peer_id: str) -> list[INetConn]:
        """Every live connection (``INetConn``) to ``peer_id``."""
        try:
            peer = ID(peer_id_bytes(peer_id))  # kept per peer id: no base58 decoding each time
        except InvalidPeerId:
            try:
                peer = ID.from_base58(peer_id)  # a peer id of another key type (a relay's)
            except ValueError:
                return []
        conns: Any = self._host.get_network().connections.get(peer)
        return conns if isinstance(conns, list) else [conns] if conns else []

    def is_connected(self, peer_id: str) -> bool:
        """One lookup, not a scan (room summaries ask this for every member)."""
        try:
            peer = ID(peer_id_bytes(peer_id))
        except InvalidPeerId:
            return False
        return bool(self._host.get_network().connections.get(peer))

    def count(self) -> int:
        """How many peers we are connected to."""
        return len(self._host.get_connected_peers())

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id``."""
        await close_connections(self.connections_to(peer_id))

    async def disconnect_all(self) -> None:
        """Close every connection so peers see us leave now, not at their next timeout."""
        network = self._host.get_network()
        conns = [conn for per_peer in list(network.connections.values())
                 for conn in (per_peer if isinstance(per_peer, list) else [per_peer])]
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            await close_connections(conns)


async def close_connections(conns: list[INetConn]) -> None:
    """Close each connection itself, down to its muxer, half a second each at most.

    py-libp2p's per-peer close skips the second of two connections to one peer (it walks the
    list it removes from), and a connection already marked closed may still have its socket open.
    """
    for conn in conns:
        with trio.move_on_after(0.5):
            try:
                await conn.close()
                if not conn.muxed_conn.is_closed:
                    await conn.muxed_conn.close()
            except Exception:  # gone either way; the socket goes with the process at worst
                log.debug("closing a connection to %s failed", conn.muxed_conn.peer_id,
                          exc_info=True)
