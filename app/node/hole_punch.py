"""DCUtR: upgrading a relayed connection to a direct one (``/libp2p/dcutr``).

A connection through a circuit relay works, but every byte crosses the relay, which limits each
circuit (``app.node.relay_server.LIMITS``) and adds a round trip. py-libp2p 0.8.1's
``DCUtRProtocol`` runs here as it ships: every couple of seconds it looks for peers we reach
only through ``/p2p-circuit``, first dials the direct addresses identify taught us ("unilateral
upgrade"), and otherwise exchanges CONNECT/SYNC over the relayed connection and dials the
addresses the peer observed for itself, from our listening port, at the same moment as the peer
(TCP simultaneous open). Once a direct connection verifies, the relayed one is closed after
60 s. Both peers answer ``/libp2p/dcutr``, so either may start.

Kith adds a log line and a ``ConnectionUpgraded`` event when a peer we reached only through a
relay becomes directly connected, and works around three things in py-libp2p 0.8.1 (see
``_ReportingDCUtR``): duplicate dials of one socket address, a Noise role mismatch when the
initiator's SYN reaches a listener, and an unbounded address list from the peer. What was
tried and measured is in ``docs/networking.md`` ("DCUtR").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from libp2p.connection_types import ConnectionType
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.dcutr import MAX_HOLE_PUNCH_ATTEMPTS, DCUtRProtocol
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from app.core.events import ConnectionUpgraded
from app.node.reachability import RELAY, connection_route, connections_to

if TYPE_CHECKING:
    from app.node.node import KithNode

log = logging.getLogger(__name__)

MAX_TRACKED = 4096  # relayed-only peers remembered at once
MAX_PEER_ADDRS = 8  # addresses taken from a peer's CONNECT (py-libp2p takes all of them)
# How much later than the spec's RTT/2 the DCUtR initiator dials (see _perform_hole_punch).
INITIATOR_LAG = 0.05
DRIVE_INTERVAL = 2.0  # py-libp2p's: how often relayed connections are looked for


class _ReportingDCUtR(DCUtRProtocol):
    """py-libp2p's DCUtR, saying which of its two paths made a connection direct.

    Its own log lines never reach Kith's log: importing libp2p detaches the ``libp2p`` logger
    (``propagate = False``, no handler) unless ``LIBP2P_DEBUG`` is set.
    """

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.direct_dials = 0  # step 0: dialling addresses identify taught us worked
        self.hole_punches = 0  # CONNECT/SYNC over the relay, then simultaneous dials, worked
        self.failures = 0
        self.drive_rounds = 0
        self._dialing: set[tuple[ID, str]] = set()

    async def _auto_drive_loop(self) -> None:
        """py-libp2p 0.8.1's loop that starts hole punches toward relayed peers, skipping
        connections that say they are direct.

        Every ``DRIVE_INTERVAL`` upstream turns every address of every connection into text to
        find relayed ones, direct TCP connections included: a member of a 50-member room,
        connected to the 49 others, spent a twentieth of its CPU here. A connection's type is
        set when it is made, and a direct one stays direct. Upstream could make the same test.
        tests/test_hole_punch_drive.py guards what it mirrors.
        """
        while True:
            await trio.sleep(DRIVE_INTERVAL)
            self.drive_rounds += 1
            try:
                me = self.host.get_id()
                connections = getattr(self.host.get_network(), "connections", {}) or {}
                for peer_id, found in list(connections.items()):
                    if (peer_id == me or peer_id in self._in_progress
                            or peer_id in self._direct_connections
                            or self._hole_punch_attempts.get(peer_id, 0)
                            >= MAX_HOLE_PUNCH_ATTEMPTS or not found):
                        continue
                    if any(_relayed(conn) for conn in (found if isinstance(found, list)
                                                       else [found])):
                        await self.initiate_hole_punch(peer_id)
            except Exception as exc:  # noqa: BLE001 - as upstream: the loop goes on
                log.debug("DCUtR auto-drive round failed: %s", exc)

    def _decode_observed_addrs(self, addr_bytes: list[bytes]) -> list[Multiaddr]:
        """At most ``MAX_PEER_ADDRS`` plain TCP addresses: each is dialled three times, so an
        unbounded list from a hostile peer would make us dial wherever it likes."""
        out: list[Multiaddr] = []
        for addr in super()._decode_observed_addrs(addr_bytes):
            names = [p.name for p in addr.protocols()]
            if names[:2] in (["ip4", "tcp"], ["ip6", "tcp"]) and "p2p-circuit" not in names:
                out.append(addr)
            if len(out) == MAX_PEER_ADDRS:
                break
        return out

    async def _dial_peer(
        self,
        peer_id: ID,
        addr: Multiaddr,
        source: tuple[str, int] | None = None,
        as_responder: bool = False,
    ) -> None:
        """One dial per address at a time. py-libp2p dials ``A`` and ``A/p2p/ID`` (the same
        socket address) in parallel from the same source port; the second connect collides with
        the first, and with the simultaneous open that the hole punch is made of, the round
        then fails on both sides (seen here in several runs before this guard)."""
        key = (peer_id, str(addr).split("/p2p/")[0])
        if key in self._dialing:
            return
        self._dialing.add(key)
        try:
            await super()._dial_peer(peer_id, addr, source, as_responder)
        finally:
            self._dialing.discard(key)

    async def _try_unilateral_upgrade(self, peer_id: ID) -> bool:
        ok = await super()._try_unilateral_upgrade(peer_id)
        if ok:
            self.direct_dials += 1
            log.info("DCUtR %s: a direct dial to its known addresses worked", peer_id)
        return ok

    async def _perform_hole_punch(
        self, peer_id: ID, addrs: list[Any], as_responder: bool = False
    ) -> bool:
        """The initiator (``as_responder``) upgrades its dial as the Noise responder, which is
        right only when the two SYNs merge into one simultaneous-open connection. When its SYN
        reaches the other peer's *listener* first, that peer accepts it as inbound and is the
        responder too: both wait for the other's handshake until the 5 s round times out (seen
        here in a quarter of first rounds, and ``EADDRNOTAVAIL`` on the other side's dial).
        Dialling ``INITIATOR_LAG`` later lets the other peer's SYN arrive first: a listener
        accepts it (roles agree), or, behind a NAT that dropped it, our later SYN meets its
        socket still in SYN-SENT, which is the simultaneous open the roles were chosen for."""
        if as_responder:
            await trio.sleep(INITIATOR_LAG)
        ok = await super()._perform_hole_punch(peer_id, addrs, as_responder)
        if ok:
            self.hole_punches += 1
        else:
            self.failures += 1
        log.info(
            "DCUtR %s: hole punch %s (%s, %d address(es) from CONNECT)",
            peer_id, "worked" if ok else "failed", "initiator" if as_responder else "responder",
            len(addrs),
        )
        return ok


class HolePunching:
    def __init__(self, node: KithNode) -> None:
        self._node = node
        self._relayed_only: set[str] = set()
        self.upgraded = 0
        self._protocol: _ReportingDCUtR | None = None

    async def start(self) -> None:
        self._protocol = _ReportingDCUtR(self._node.host)
        await self._node.nursery.start(self._run, self._protocol)

    @staticmethod
    async def _run(protocol: DCUtRProtocol, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with background_trio_service(protocol):
            await protocol.event_started.wait()
            task_status.started()
            await trio.sleep_forever()

    def info(self) -> dict[str, int]:
        """Counters for tests and diagnostics."""
        p = self._protocol
        return {
            "upgraded": self.upgraded,
            "direct_dials": p.direct_dials if p else 0,
            "hole_punches": p.hole_punches if p else 0,
            "failures": p.failures if p else 0,
        }

    def peer_connected(self, peer_id: str) -> None:
        """Called for every new connection: notices relayed-only peers and their upgrade."""
        conns = connections_to(self._node, peer_id)
        direct = [c for c in conns if connection_route(c) != RELAY]
        if not direct:
            if conns and len(self._relayed_only) < MAX_TRACKED:
                self._relayed_only.add(peer_id)
            return
        if peer_id in self._relayed_only:
            self._relayed_only.discard(peer_id)
            self.upgraded += 1
            addr = _remote_addr(direct[0])
            log.info("connection to %s upgraded from relayed to direct (%s)", peer_id, addr)
            self._node.emit(ConnectionUpgraded(peer_id=peer_id, addr=addr))

    def peer_disconnected(self, peer_id: str) -> None:
        if not self._node.is_connected(peer_id):
            self._relayed_only.discard(peer_id)


def _relayed(conn: Any) -> bool:
    """Upstream's test for a relayed connection, made only when the connection does not say
    it is direct."""
    kind = getattr(conn, "get_connection_type", None)
    if kind is not None and kind() is ConnectionType.DIRECT:
        return False
    try:
        addrs = conn.get_transport_addresses()
    except Exception:  # noqa: BLE001 - as upstream
        return False
    return any("/p2p-circuit" in str(addr) for addr in addrs)


def _remote_addr(conn: Any) -> str:
    """The multiaddr a direct connection reached (``""`` if the transport does not say)."""
    try:
        return next((str(a) for a in conn.get_transport_addresses()
                     if "/p2p-circuit" not in str(a)), "")
    except Exception:  # noqa: BLE001 - a closing connection may not say
        return ""
