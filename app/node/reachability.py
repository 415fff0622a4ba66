"""How others can reach us, and how we reach each connected peer: two small, honest answers.

**Our reachability** (``ReachabilityChanged``, and ``reachability`` in ``status``), from what
this node knows for certain: the addresses it listens on and the relay slots it holds. The
first rule that matches wins:

1. ``direct``: we listen on a global (public) IP address (``ipaddress.is_global``). Without
   AutoNAT nobody has proved that a router or firewall lets others in, so the interface says
   "should" and why.
2. ``relay``: a relay holds a reservation for us (``RelayReserved``): anyone with our invite
   reaches us through it, even behind a NAT.
3. ``lan``: we listen only on other non-loopback addresses (private, link-local, CGNAT) and
   hold no slot: people on the same network can reach us, nobody else.
4. ``offline``: the node is not running, or listens on loopback only (no network) with no slot.

Checked at start, on every connection change (a relay lost shows up there), after each
``RelayReserved``, and every few seconds for network interfaces coming and going.

**A peer's route** (``ContactRoute``), from the live connections' remote addresses: a
``/p2p-circuit`` connection is ``relay``; a loopback address is ``local`` (this computer); a
global one ``direct``; any other (private, link-local, CGNAT) ``lan``. Several connections (a
relayed one and the direct one DCUtR made) give the best: local, lan, direct, then relay.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

import trio

from app.core.events import ContactRoute, ReachabilityChanged
from app.node.interfaces import Connections, Emit, LocalPeer

log = logging.getLogger(__name__)

DIRECT = "direct"
RELAY = "relay"
LAN = "lan"
LOCAL = "local"
OFFLINE = "offline"
POLL_INTERVAL = 5.0  # seconds between checks for interfaces coming and going
_ROUTE_RANK = {LOCAL: 0, LAN: 1, DIRECT: 2, RELAY: 3}


def _ip_of(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of ``/ip4/H/...`` or ``/ip6/H/...``; None for anything else (dns, circuits)."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6") or "p2p-circuit" in parts:
        return None
    try:
        return ipaddress.ip_address(parts[2].split("%")[0])
    except ValueError:
        return None


def ip_route(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``local``, ``lan`` or ``direct`` for one address."""
    if ip.is_loopback or ip.is_unspecified:
        return LOCAL
    if ip.is_global:
        return DIRECT
    return LAN  # private, link-local, shared (CGNAT 100.64/10), documentation ranges


def own_state(addrs: Iterable[str], relays: Iterable[str], running: bool = True) -> str:
    """The rule in the module docstring; ``addrs`` are our listen addresses (not circuits)."""
    if not running:
        return OFFLINE
    routes = {ip_route(ip) for a in addrs if (ip := _ip_of(a)) is not None}
    if DIRECT in routes:
        return DIRECT
    if any(True for _ in relays):
        return RELAY
    if LAN in routes:
        return LAN
    return OFFLINE


def address_route(addr: str) -> str:
    """The route of one remote multiaddr; ``""`` when it says nothing we can use."""
    if "/p2p-circuit" in addr:
        return RELAY
    ip = _ip_of(addr)
    return ip_route(ip) if ip is not None else ""


def connection_route(conn: Any) -> str:
    """The route of one libp2p connection (``INetConn``), from what the transport recorded.

    ``get_transport_addresses`` falls back to the peerstore's (dialable, not actual) addresses
    when the transport recorded none, so the recorded list and the socket's remote end are used.
    """
    kind = getattr(conn, "get_connection_type", None)
    if kind is not None and getattr(kind(), "name", "") == "RELAYED":
        return RELAY
    for addr in getattr(conn, "_actual_transport_addresses", None) or []:
        route = address_route(str(addr))
        if route:
            return route
    try:
        remote = conn.muxed_conn.get_remote_address()
    except Exception:  # noqa: BLE001 - a closing connection may not know any more
        remote = None
    if remote:
        try:
            return ip_route(ipaddress.ip_address(str(remote[0]).split("%")[0]))
        except ValueError:
            pass
    return ""


def best_route(routes: Iterable[str]) -> str:
    known = [r for r in routes if r in _ROUTE_RANK]
    return min(known, key=_ROUTE_RANK.__getitem__) if known else ""


class Reachability:
    """Keeps ``state`` and the per-peer routes current and announces changes."""

    def __init__(self, us: LocalPeer, connections: Connections, emit: Emit, *,
                 relays: Callable[[], list[str]], running: Callable[[], bool]) -> None:
        self._us = us
        self._connections = connections
        self._emit = emit
        self._relays_held = relays  # relays holding a slot for us now
        self._running = running
        self.state = OFFLINE
        self._relays: tuple[str, ...] = ()
        self._addrs: tuple[str, ...] = ()
        self.routes: dict[str, str] = {}

    def current(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(state, relays holding a slot, non-loopback listen addresses) as of now."""
        if not self._running():
            return OFFLINE, (), ()
        relays = tuple(sorted(self._relays_held()))
        suffix = f"/p2p/{self._us.identity.peer_id}"
        addrs = tuple(
            a.removesuffix(suffix) for a in self._us.addrs()
            if "/p2p-circuit" not in a and (ip := _ip_of(a)) is not None and ip_route(ip) != LOCAL
        )
        return own_state(addrs, relays), relays, addrs

    def initial(self) -> str:
        """The state ``NodeReady`` announces; later checks emit only what differs from it."""
        self.state, self._relays, self._addrs = self.current()
        return self.state

    def check(self) -> str:
        """Recompute our own reachability; emit ``ReachabilityChanged`` when it changed."""
        state, relays, addrs = self.current()
        if (state, relays, addrs) != (self.state, self._relays, self._addrs):
            self.state, self._relays, self._addrs = state, relays, addrs
            log.info("reachability: %s (relays %s; addresses %s)", state,
                     ", ".join(relays) or "-", ", ".join(addrs) or "-")
            self._emit(ReachabilityChanged(state=state, relays=relays, addrs=addrs))
        return state

    async def run(self) -> None:
        """Poll for interfaces coming and going (a task in the node's nursery)."""
        while True:
            self.check()
            await trio.sleep(POLL_INTERVAL)

    def route(self, peer_id: str) -> str:
        return self.routes.get(peer_id, "")

    def update_route(self, peer_id: str) -> None:
        """A connection to ``peer_id`` opened or closed: emit its route if it changed."""
        route = best_route(connection_route(c)
                           for c in self._connections.connections_to(peer_id))
        if route == self.routes.get(peer_id, ""):
            return
        if route:
            self.routes[peer_id] = route
        else:
            self.routes.pop(peer_id, None)
        self._emit(ContactRoute(peer_id=peer_id, route=route))
