"""Patches to py-libp2p 0.8.1's swarm (who serves inbound connections, no dials of its own),
and what Kith reads of its private state to check its own counts against it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from libp2p.abc import IHost
from libp2p.network.config import RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.rcmgr.metrics import Direction

InboundHandler = Callable[[Swarm, Any, Any], Awaitable[None]]


def serve_inbound_connections(swarm: Swarm, handler: InboundHandler) -> None:
    """py-libp2p 0.8.1: every TCP connection ``swarm``'s listeners accept goes to ``handler``.

    The swarm's ``_handle_inbound_connection`` (called for every accepted socket by the
    listener that ``Swarm.listen`` creates) takes one of 250 inbound slots and, after the
    handshake, waits for the whole swarm to stop before giving it back: every inbound
    connection ever accepted keeps its slot, and after 250 the node refuses everyone. Its
    handshake timeout is 10 s with no per-address limit, so 250 idle sockets lock it as well.
    ``handler`` (``ResourceManager._inbound_connection``) counts handshakes per address and
    holds a connection's slot only while the connection is open.
    """
    async def handle(read_write_closer: Any, maddr: Any) -> None:
        await handler(swarm, read_write_closer, maddr)

    swarm._handle_inbound_connection = handle  # type: ignore[method-assign]


async def stop_auto_dialing(host: IHost) -> None:
    """py-libp2p 0.8.1: the swarm dials nobody on its own, and retries no failed dial.

    Call once the host runs. Its connection manager (``Swarm.auto_connector``) otherwise dials
    up to 150 peers from the peerstore whenever fewer than 100 are connected, including
    addresses that identify taught it; and ``_dial_with_retry`` tries every failed dial 3 more
    times (0.1, 0.2, 0.4 s apart), which only multiplies what an offline peer costs: each Kith
    dialler backs off on its own. Kith alone decides whom to dial.
    """
    swarm = host.get_network()
    auto_connector = getattr(swarm, "auto_connector", None)
    if auto_connector is not None:
        await auto_connector.stop()
    if hasattr(swarm, "retry_config"):
        swarm.retry_config = RetryConfig(max_retries=0)


def socket_is_open(read_write_closer: Any) -> bool:
    """Whether the socket under an accepted connection (py-libp2p 0.8.1's ``TrioTCPStream``,
    whose ``stream`` is a ``trio.SocketStream``) is still open; True when it cannot tell."""
    socket = getattr(getattr(read_write_closer, "stream", None), "socket", None)
    return socket is None or socket.fileno() != -1


def is_inbound(stream: Any) -> bool:
    """Whether the peer opened ``stream``: py-libp2p 0.8.1 marks a ``NetStream`` in its
    private ``_direction`` (``SwarmConn._handle_muxed_stream`` and ``Swarm.new_stream``)."""
    return getattr(stream, "_direction", None) is Direction.INBOUND
