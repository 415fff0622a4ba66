"""DCUtR: upgrading a relayed connection to a direct one (``/libp2p/dcutr``).

A connection through a circuit relay works, but every byte crosses the relay, which limits each
circuit (``app.node.relay_server.LIMITS``) and adds a round trip. py-libp2p 0.8.1's
``DCUtRProtocol`` runs here: every couple of seconds it looks for peers we reach only through
``/p2p-circuit``, first dials the direct addresses identify taught us ("unilateral upgrade"),
and otherwise exchanges CONNECT/SYNC over the relayed connection and dials the addresses the
peer observed for itself, from our listening port, at the same moment as the peer (TCP
simultaneous open). Once a direct connection verifies, the relayed one is closed after 60 s.

Every address DCUtR dials is a peer's word, so hole punching is a way to make us dial where a
peer likes. Kith bounds it (``HolePunchBudget``, ``addr_policy``):

* only with contacts and room members (``allowed``); anyone else's CONNECT is refused and they
  are never driven;
* at most ``MAX_SESSIONS_PER_PEER`` exchanges, ``MAX_ADDRS_PER_PEER`` distinct addresses and
  ``MAX_DIALS_PER_PEER`` dials per peer every ``BUDGET_WINDOW`` seconds, however often the peer
  reconnects, and at most ``MAX_DIALS_PER_MINUTE`` DCUtR dials a minute in all;
* only addresses ``addr_policy.refusal`` lets through (no DNS, link-local, multicast, broadcast
  or unspecified; private ranges only on a network of ours), and for each step only its own
  addresses: the peer's identify addresses for the direct dial, its CONNECT addresses for the
  hole punch (py-libp2p adds every peerstore address to both);
* our CONNECT names only confirmed observed addresses (``app.node.observed_addrs``) next to
  the addresses we listen on.

Kith also logs and announces (``ConnectionUpgraded``) a peer that became directly connected,
and works around two timing defects in py-libp2p 0.8.1 (``_KithDCUtR``): duplicate dials of one
socket address, and a Noise role mismatch when the initiator's SYN reaches a listener. What was
tried and measured is in ``docs/networking.md`` ("DCUtR").

``_KithDCUtR`` overrides these py-libp2p internals (listed with every other patch in
``app.node.libp2p_patches``, guarded by ``tests/test_libp2p_patches.py``):
``initiate_hole_punch``, ``_handle_dcutr_stream``,
``_try_unilateral_upgrade``, ``_perform_hole_punch``, ``_dial_peer``,
``_decode_observed_addrs`` and ``_get_observed_addrs``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
from libp2p.abc import IHost
from libp2p.connection_types import ConnectionType
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.dcutr import MAX_HOLE_PUNCH_ATTEMPTS, DCUtRProtocol
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from app.core.events import ConnectionUpgraded
from app.node.addr_policy import refusal, socket_key, tcp_endpoint
from app.node.interfaces import Connections, Emit, Tasks
from app.node.reachability import RELAY, connection_route

if TYPE_CHECKING:
    from app.node.observed_addrs import ObservedAddrs

log = logging.getLogger(__name__)

MAX_TRACKED = 4096  # relayed-only peers (and peers with a budget) remembered at once
MAX_PEER_ADDRS = 8  # addresses taken from a peer's CONNECT, or sent in ours
# How much later than the spec's RTT/2 the DCUtR initiator dials (see _perform_hole_punch).
INITIATOR_LAG = 0.05
BUDGET_WINDOW = 600.0  # seconds over which a peer's budget below is counted
MAX_SESSIONS_PER_PEER = 3  # DCUtR exchanges (either side starting) per peer and window
MAX_ADDRS_PER_PEER = 8  # distinct socket addresses dialled per peer and window
MAX_DIALS_PER_PEER = 48  # dials per peer and window (a session: up to 8 + 3 rounds of 8)
MAX_DIALS_PER_MINUTE = 120  # DCUtR dials a minute, all peers together

# The addresses the current step may dial (socket keys), set by the step that dials.
_STEP_ADDRS: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "kith_dcutr_step_addrs", default=None
)
# The peer the current DCUtR exchange is with (for the addresses our CONNECT names).
_SESSION_PEER: contextvars.ContextVar[ID | None] = contextvars.ContextVar(
    "kith_dcutr_peer", default=None
)
_CIRCUIT_RELAY = re.compile(r"/p2p/([1-9A-HJ-NP-Za-km-z]+)/p2p-circuit")
DRIVE_INTERVAL = 2.0  # py-libp2p's: how often relayed connections are looked for


@dataclass
class _PeerBudget:
    since: float
    sessions: int = 0
    dials: int = 0
    addrs: set[str] = field(default_factory=set)


class HolePunchBudget:
    """What DCUtR may spend on each peer and in all (module docstring); survives reconnects."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._peers: dict[str, _PeerBudget] = {}
        self._recent_dials: deque[float] = deque()
        self.refused_dials = 0

    def _peer(self, peer: str) -> _PeerBudget:
        now = self._clock()
        budget = self._peers.get(peer)
        if budget is None or now - budget.since >= BUDGET_WINDOW:
            if budget is None and len(self._peers) >= MAX_TRACKED:
                self._forget_expired(now)
            budget = self._peers[peer] = _PeerBudget(since=now)
        return budget

    def _forget_expired(self, now: float) -> None:
        for peer in [p for p, b in self._peers.items() if now - b.since >= BUDGET_WINDOW]:
            del self._peers[peer]
        while len(self._peers) >= MAX_TRACKED:
            self._peers.pop(next(iter(self._peers)))

    def start_session(self, peer: str) -> bool:
        budget = self._peer(peer)
        if budget.sessions >= MAX_SESSIONS_PER_PEER:
            return False
        budget.sessions += 1
        return True

    def take_dial(self, peer: str, key: str) -> bool:
        """One dial of socket address ``key`` for ``peer``; False when over a budget."""
        now = self._clock()
        while self._recent_dials and now - self._recent_dials[0] >= 60.0:
            self._recent_dials.popleft()
        budget = self._peer(peer)
        new_addr = key not in budget.addrs
        if (len(self._recent_dials) >= MAX_DIALS_PER_MINUTE
                or budget.dials >= MAX_DIALS_PER_PEER
                or (new_addr and len(budget.addrs) >= MAX_ADDRS_PER_PEER)):
            self.refused_dials += 1
            return False
        budget.dials += 1
        budget.addrs.add(key)
        self._recent_dials.append(now)
        return True


class _KithDCUtR(DCUtRProtocol):
    """py-libp2p's DCUtR with Kith's bounds (module docstring), saying which of its two paths
    made a connection direct.

    Its own log lines never reach Kith's log: importing libp2p detaches the ``libp2p`` logger
    (``propagate = False``, no handler) unless ``LIBP2P_DEBUG`` is set.
    """

    def __init__(
        self, host: Any, allowed: Callable[[str], bool], observed: ObservedAddrs | None = None
    ) -> None:
        super().__init__(host)
        self._allowed = allowed
        self._observed = observed
        self.budget = HolePunchBudget()
        self.direct_dials = 0  # step 0: dialling addresses identify taught us worked
        self.hole_punches = 0  # CONNECT/SYNC over the relay, then simultaneous dials, worked
        self.failures = 0
        self.refused_peers = 0  # exchanges refused: not a contact or member, or over budget
        self.drive_rounds = 0
        self._dialing: set[tuple[ID, str]] = set()

    async def initiate_hole_punch(self, peer_id: ID) -> bool:
        """Drive an exchange with a contact or member within its budget; nobody else."""
        peer = str(peer_id)
        if not self._allowed(peer):
            return False
        if peer_id in self._in_progress or await self._have_direct_connection(peer_id):
            return await super().initiate_hole_punch(peer_id)
        if not self.budget.start_session(peer):
            self.refused_peers += 1
            return False
        token = _SESSION_PEER.set(peer_id)
        try:
            return await super().initiate_hole_punch(peer_id)
        finally:
            _SESSION_PEER.reset(token)

    async def _handle_dcutr_stream(self, stream: Any) -> None:
        """Answer a CONNECT only from a contact or member within its budget."""
        peer_id = stream.muxed_conn.peer_id
        peer = str(peer_id)
        if not self._allowed(peer) or not self.budget.start_session(peer):
            self.refused_peers += 1
            log.debug("DCUtR %s: exchange refused (not a contact or member, or over budget)",
                      peer)
            with contextlib.suppress(Exception):  # gone already
                await stream.reset()
            return
        token = _SESSION_PEER.set(peer_id)
        try:
            await super()._handle_dcutr_stream(stream)
        finally:
            _SESSION_PEER.reset(token)

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
        """At most ``MAX_PEER_ADDRS`` plain TCP addresses that may be dialled: each is dialled
        three times, so an unbounded list from a hostile peer would make us dial wherever it
        likes."""
        out: list[Multiaddr] = []
        for addr in super()._decode_observed_addrs(addr_bytes[: 4 * MAX_PEER_ADDRS]):
            if socket_key(addr) is not None and refusal(addr) is None:
                out.append(addr)
            if len(out) == MAX_PEER_ADDRS:
                break
        return out

    def _dialable(self, addrs: list[Any]) -> frozenset[str]:
        """The first ``MAX_PEER_ADDRS`` distinct socket addresses of ``addrs`` we may dial."""
        keys: list[str] = []
        for addr in addrs:
            key = socket_key(addr)
            if key is not None and key not in keys and refusal(addr) is None:
                keys.append(key)
            if len(keys) == MAX_PEER_ADDRS:
                break
        return frozenset(keys)

    async def _try_unilateral_upgrade(self, peer_id: ID) -> bool:
        """Step 0 dials the peer's own (identify) addresses that may be dialled, at most
        ``MAX_PEER_ADDRS`` (py-libp2p dials every peerstore address)."""
        try:
            known = list(self.host.get_peerstore().addrs(peer_id))
        except Exception:  # noqa: BLE001 - an unknown peer has no addresses
            known = []
        token = _STEP_ADDRS.set(self._dialable(known))
        try:
            ok = await super()._try_unilateral_upgrade(peer_id)
        finally:
            _STEP_ADDRS.reset(token)
        if ok:
            self.direct_dials += 1
            log.info("DCUtR %s: a direct dial to its known addresses worked", peer_id)
        return ok

    async def _perform_hole_punch(
        self, peer_id: ID, addrs: list[Any], as_responder: bool = False
    ) -> bool:
        """Dial only the addresses of the peer's CONNECT (py-libp2p adds every peerstore
        address, in every round).

        The initiator (``as_responder``) upgrades its dial as the Noise responder, which is
        right only when the two SYNs merge into one simultaneous-open connection. When its SYN
        reaches the other peer's *listener* first, that peer accepts it as inbound and is the
        responder too: both wait for the other's handshake until the 5 s round times out (seen
        here in a quarter of first rounds, and ``EADDRNOTAVAIL`` on the other side's dial).
        Dialling ``INITIATOR_LAG`` later lets the other peer's SYN arrive first: a listener
        accepts it (roles agree), or, behind a NAT that dropped it, our later SYN meets its
        socket still in SYN-SENT, which is the simultaneous open the roles were chosen for."""
        dialable = self._dialable(addrs)
        if not dialable:
            ok = False  # nothing we may dial: no rounds (py-libp2p would wait out three)
        else:
            if as_responder:
                await trio.sleep(INITIATOR_LAG)
            token = _STEP_ADDRS.set(dialable)
            try:
                ok = await super()._perform_hole_punch(peer_id, addrs, as_responder)
            finally:
                _STEP_ADDRS.reset(token)
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

    async def _dial_peer(
        self,
        peer_id: ID,
        addr: Multiaddr,
        source: tuple[str, int] | None = None,
        as_responder: bool = False,
    ) -> None:
        """Every DCUtR dial passes here: only an address of the current step, within the
        budgets, and one dial per socket address at a time. py-libp2p dials ``A`` and
        ``A/p2p/ID`` (the same socket address) in parallel from the same source port; the
        second connect collides with the first, and with the simultaneous open that the hole
        punch is made of, the round then fails on both sides (seen here before this guard)."""
        key = socket_key(addr)
        allowed = _STEP_ADDRS.get()
        if key is None or allowed is None or key not in allowed:
            return
        if (peer_id, key) in self._dialing:
            return
        if not self.budget.take_dial(str(peer_id), key):
            log.debug("DCUtR %s: not dialling %s (over budget)", peer_id, key)
            return
        self._dialing.add((peer_id, key))
        try:
            await super()._dial_peer(peer_id, addr, source, as_responder)
        finally:
            self._dialing.discard((peer_id, key))

    async def _get_observed_addrs(self) -> list[bytes]:
        """What our CONNECT names: our confirmed public address(es) with our listening port
        (the NAT keeps that port for hole-punch dials from it), then the addresses we listen
        on; at most ``MAX_PEER_ADDRS``. An observation counts when confirmed
        (``ObservedAddrs``), or when the relay carrying this exchange made it."""
        peer = _SESSION_PEER.get()
        return [Multiaddr(a).to_bytes() for a in self.connect_addrs(peer)]

    def connect_addrs(self, peer: ID | None) -> list[str]:
        """The addresses our CONNECT to ``peer`` names (see ``_get_observed_addrs``)."""
        listen: list[str] = []
        for addr in self.host.get_addrs():
            key = socket_key(addr)
            if key is not None and key not in listen:
                listen.append(key)
        out: list[str] = []
        if self._observed is not None:
            relay = _relay_of(self.host, peer) if peer is not None else None
            for observed in self._observed.confirmed(also=relay):
                endpoint = tcp_endpoint(observed)
                if endpoint is None:
                    continue
                for own in listen:
                    mine = tcp_endpoint(own)
                    if mine is not None and mine[0].version == endpoint[0].version:
                        predicted = f"/ip{endpoint[0].version}/{endpoint[0]}/tcp/{mine[1]}"
                        if predicted not in out:
                            out.append(predicted)
        out.extend(a for a in listen if a not in out)
        return out[:MAX_PEER_ADDRS]


def _relay_of(host: Any, peer_id: ID) -> str | None:
    """The relay carrying a relayed connection to ``peer_id``, if there is one."""
    conns: Any = host.get_network().connections.get(peer_id) or []
    for conn in conns if isinstance(conns, list) else [conns]:
        try:
            addrs = conn.get_transport_addresses()
        except Exception:  # noqa: BLE001 - a closing connection may not say
            continue
        for addr in addrs or []:
            found = _CIRCUIT_RELAY.search(str(addr))
            if found:
                return found.group(1)
    return None


class HolePunching:
    """DCUtR for the peers ``allowed`` says may have it, and noticing upgraded connections."""

    def __init__(self, host: IHost, nursery: Tasks, emit: Emit, connections: Connections,
                 observed_addrs: ObservedAddrs, allowed: Callable[[str], bool]) -> None:
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._observed_addrs = observed_addrs
        self._allowed = allowed  # hole punching is for contacts and room members only
        self._relayed_only: set[str] = set()
        self.upgraded = 0
        self._protocol: _KithDCUtR | None = None

    @property
    def protocol(self) -> _KithDCUtR:
        if self._protocol is None:
            raise RuntimeError("hole punching is not running")
        return self._protocol

    async def start(self) -> None:
        self._protocol = _KithDCUtR(self._host, self._allowed, self._observed_addrs)
        await self._nursery.start(self._run, self._protocol)

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
            "refused_peers": p.refused_peers if p else 0,
            "refused_dials": p.budget.refused_dials if p else 0,
        }

    def peer_connected(self, peer_id: str) -> None:
        """Called for every new connection: notices relayed-only peers and their upgrade."""
        conns = self._connections.connections_to(peer_id)
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
            self._emit(ConnectionUpgraded(peer_id=peer_id, addr=addr))

    def peer_disconnected(self, peer_id: str) -> None:
        if not self._connections.is_connected(peer_id):
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
