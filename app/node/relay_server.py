"""Serving as a circuit relay v2 (the HOP side), with limits per peer that hold.

A relay carries other people's traffic, so anyone on the network can make it spend slots,
circuits and bandwidth. py-libp2p 0.8.1's HOP handler (``CircuitV2Protocol(allow_hop=True)``)
cannot face them: it reserves in the name that the RESERVE's ``peer`` field gives (anyone fills
every slot with made-up ids), stores that slot before it checks the peer is connected and keeps
it for an hour after refusing, counts a circuit only once the destination has answered (so
concurrent CONNECTs pass the per-peer cap), has neither a total cap nor a rate limit, and files
live circuits by peer (the end of one circuit closes the streams of another to the same peer).
So Kith answers ``/libp2p/circuit/relay/0.2.0/hop`` itself, on the spec's wire format and
py-libp2p's protobuf classes; py-libp2p still runs the STOP side and dialing through relays.

The rules (numbers in ``LIMITS``, listed in docs/networking.md):

* A slot belongs to the authenticated peer of the connection the RESERVE came over and lives
  as long as that connection (and at most ``reservation_ttl`` unless renewed). A RESERVE whose
  optional ``peer`` names anyone else is refused. A refusal keeps nothing.
* Slots in all, slots strangers may take (contacts always find one free), slots per IP address.
  With ``contacts_only`` only contacts get a slot, so every circuit leads to a contact. Blocked
  peers get nothing; HOP over a relayed connection is refused (as the spec asks).
* A circuit needs a live slot at its destination and counts against both its ends from the
  moment it is asked for: per peer (as either end) and in total.
* Bytes: a circuit carries at most ``circuit_data`` (both directions together) for at most
  ``circuit_duration``, then it is reset, as the ``Limit`` sent with it says. Rates are token
  buckets per circuit, per peer (both ends pay) and in total: reading waits, so the sender is
  slowed by flow control, never cut. Each peer may move ``peer_budget`` bytes per
  ``budget_window``: past that its circuits are reset and new ones refused until the window
  ends. The relay's contacts have no data budget: strangers sending to a contact cannot use
  it up and cut the contact off.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import (
    HopMessage,
    Limit,
    Reservation,
    StopMessage,
)
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeer
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, STOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode, to_proto_status
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

from app.core.records import ContactState
from app.node.framing import guarded
from app.node.interfaces import Connections, ContactBook
from app.node.reachability import RELAY, connection_route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HopLimits:
    """What a Kith relay grants. A DM or a room post is tiny; big files should go direct."""

    reservations: int = 64
    stranger_reservations: int = 48      # the rest is kept for contacts
    reservations_per_ip: int = 8
    reservation_ttl: int = 3600          # seconds; holders renew at half of it
    circuits: int = 64                   # open or being opened, in total
    circuits_per_peer: int = 16          # as source or destination
    circuit_duration: int = 3600         # seconds
    circuit_data: int = 256 << 20        # bytes per circuit, both directions together
    circuit_rate: int = 4 << 20          # bytes per second
    peer_rate: int = 8 << 20             # bytes per second per peer, all its circuits
    total_rate: int = 16 << 20           # bytes per second through this relay
    peer_budget: int = 1 << 30           # bytes per peer per window
    budget_window: int = 3600            # seconds


LIMITS = HopLimits()

READ_TIMEOUT = 10.0       # for the one message a HOP stream starts with
STOP_TIMEOUT = 10.0       # for the destination to accept a circuit
PENDING_PER_PEER = 32     # HOP streams of one peer waiting for their first message
MAX_TRACKED_PEERS = 4096  # peers whose budgets are remembered
MAX_RESERVATION_ADDRS = 8
READ_SIZE = 64 * 1024     # bytes moved per step of a circuit
BURST_SECONDS = 0.25      # token buckets hold this many seconds of their rate


class TokenBucket:
    """``rate`` bytes per second, bursts up to ``burst``. A charge larger than what is left is
    a debt, and ``charge`` says how long to wait it off: concurrent users share the rate."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._at = now

    def level(self, now: float) -> float:
        return min(self.burst, self._level + (now - self._at) * self.rate)

    def charge(self, amount: int, now: float) -> float:
        """Take ``amount``; the seconds until the bucket is out of debt (0.0 if it is not)."""
        self._level = self.level(now) - amount
        self._at = now
        return max(0.0, -self._level / self.rate)


def _bucket(rate: int, now: float) -> TokenBucket:
    return TokenBucket(rate, max(READ_SIZE, rate * BURST_SECONDS), now)


@dataclass
class _Budget:
    """Bytes a peer moved in its current window (which starts with its first byte)."""

    window_start: float | None = None
    used: int = 0

    def spent(self, limits: HopLimits, now: float) -> bool:
        if self.window_start is None or now - self.window_start >= limits.budget_window:
            self.window_start, self.used = now, 0
        return self.used >= limits.peer_budget


@dataclass
class _Peer:
    rate: TokenBucket
    budget: _Budget = field(default_factory=_Budget)
    circuits: int = 0


@dataclass
class _Slot:
    conn: Any          # the muxed connection the slot was reserved over
    ip: str
    contact: bool
    expires: float     # Unix time


class _OverBudget(Exception):
    """A circuit spent its data limit, or one of its peers its budget."""


@dataclass
class _Circuit:
    src: str
    dst: str
    rate: TokenBucket
    data_left: int
    budgeted: tuple[str, ...] = ()  # its ends that pay from a data budget (not contacts)
    cut: str = ""  # why a limit ended it


class RelayServer:
    """The HOP handler and its accounting; ``contacts_only`` as ``NodeConfig`` says."""

    def __init__(self, host: IHost, me: str, contacts: ContactBook, connections: Connections,
                 contacts_only: bool = False) -> None:
        self._host = host
        self._me = me
        self._contacts = contacts
        self._connections = connections
        self._contacts_only = contacts_only
        self.limits = LIMITS  # read at start: tests and benchmarks replace the module's
        self._slots: dict[str, _Slot] = {}
        self._peers: dict[str, _Peer] = {}
        self._circuits: set[int] = set()  # ids of _Circuit objects, open or being opened
        self._pending: Counter[str] = Counter()
        self._total = _bucket(self.limits.total_rate, trio.current_time())

    def start(self) -> None:
        self._host.set_stream_handler(
            PROTOCOL_ID, guarded(PROTOCOL_ID, self._handle, timeout=None))
        log.info("serving as a circuit relay v2%s",
                 " for contacts only" if self._contacts_only else "")

    # -- what others may ask ------------------------------------------------------------------

    def reserved_peers(self) -> list[str]:
        """Peers holding a live slot now."""
        self._prune()
        return list(self._slots)

    def circuit_count(self) -> int:
        return len(self._circuits)

    def peer_disconnected(self, peer_id: str) -> None:
        """A connection closed: a slot that lived on it is gone."""
        slot = self._slots.get(peer_id)
        if slot is not None and not self._live(peer_id, slot):
            del self._slots[peer_id]
            self._forget_if_idle(peer_id)

    # -- the handler --------------------------------------------------------------------------

    async def _handle(self, stream: Any) -> None:
        peer = stream.muxed_conn.peer_id
        peer_id = peer.to_base58()
        if self._pending[peer_id] >= PENDING_PER_PEER:
            log.info("relay: refused a HOP stream from %s: too many waiting", peer_id)
            await stream.reset()
            return
        self._pending[peer_id] += 1
        try:
            with trio.fail_after(READ_TIMEOUT):
                msg = await read_delimited_msg(stream, HopMessage)
        finally:
            self._pending[peer_id] -= 1
            if not self._pending[peer_id]:
                del self._pending[peer_id]
        refusal = self._refuse_peer(peer_id, stream.muxed_conn)
        if refusal is not None:
            log.info("relay: refused %s from %s: %s", _type_name(msg), peer_id, refusal[1])
            await self._finish(stream, refusal[0])
        elif msg.type == HopMessage.RESERVE:
            await self._reserve(stream, peer, msg)
        elif msg.type == HopMessage.CONNECT:
            await self._connect(stream, peer_id, msg)
        else:
            await self._finish(stream, StatusCode.UNEXPECTED_MESSAGE)

    def _refuse_peer(self, peer_id: str, conn: Any) -> tuple[StatusCode, str] | None:
        """Who may not use this relay at all, for any request."""
        if self._contacts.state(peer_id) is ContactState.BLOCKED:
            return StatusCode.PERMISSION_DENIED, "blocked"
        if self._route(peer_id, conn) == RELAY:
            return StatusCode.PERMISSION_DENIED, "asked over a relayed connection"
        return None

    async def _answer(self, stream: Any, status: StatusCode, **fields: Any) -> None:
        with trio.fail_after(READ_TIMEOUT):
            await write_delimited_msg(
                stream, HopMessage(type=HopMessage.STATUS, status=to_proto_status(status),
                                   **fields))

    async def _finish(self, stream: Any, status: StatusCode, **fields: Any) -> None:
        """Answer and close: one request per HOP stream (a circuit keeps its stream)."""
        await self._answer(stream, status, **fields)
        await stream.close()

    def _limit(self) -> Limit:
        return Limit(duration=self.limits.circuit_duration, data=self.limits.circuit_data)

    # -- reservations -------------------------------------------------------------------------

    async def _reserve(self, stream: Any, peer: ID, msg: HopMessage) -> None:
        peer_id = peer.to_base58()
        if msg.HasField("peer") and msg.peer.id and msg.peer.id != peer.to_bytes():
            log.info("relay: refused a reservation from %s in another peer's name", peer_id)
            await self._finish(stream, StatusCode.PERMISSION_DENIED)
            return
        conn = stream.muxed_conn
        refusal = self._admit_slot(peer_id, conn)
        if refusal is not None:
            log.info("relay: refused a reservation from %s: %s", peer_id, refusal[1])
            await self._finish(stream, refusal[0])
            return
        # Stored before the answer (two requests must not both pass the count above), taken
        # back if the answer cannot be written.
        old = self._slots.get(peer_id)
        expires = time.time() + self.limits.reservation_ttl
        self._slots[peer_id] = _Slot(conn, _ip_of(conn), self._is_contact(peer_id), expires)
        self._tracked(peer_id)
        try:
            await self._finish(
                stream, StatusCode.OK, limit=self._limit(),
                reservation=Reservation(expire=int(expires), addrs=self._own_addrs()))
        except BaseException:
            if old is not None and self._live(peer_id, old):
                self._slots[peer_id] = old
            else:
                self._slots.pop(peer_id, None)
            raise
        log.debug("relay: slot for %s until %d", peer_id, expires)

    def _admit_slot(self, peer_id: str, conn: Any) -> tuple[StatusCode, str] | None:
        if self._contacts_only and not self._is_contact(peer_id):
            return StatusCode.PERMISSION_DENIED, "this relay serves its contacts only"
        self._prune()
        if peer_id in self._slots:
            return None  # a renewal (over this or a newer connection) replaces the slot
        limits = self.limits
        if len(self._slots) >= limits.reservations:
            return StatusCode.RESOURCE_LIMIT_EXCEEDED, "no slot left"
        if not self._is_contact(peer_id) and sum(
                not s.contact for s in self._slots.values()) >= limits.stranger_reservations:
            return StatusCode.RESOURCE_LIMIT_EXCEEDED, "no slot left for strangers"
        ip = _ip_of(conn)
        if sum(s.ip == ip for s in self._slots.values()) >= limits.reservations_per_ip:
            return StatusCode.RESOURCE_LIMIT_EXCEEDED, f"too many slots for {ip}"
        return None

    def _own_addrs(self) -> list[bytes]:
        """The relay's own addresses (with ``/p2p/<relay id>``), as the spec asks."""
        out = []
        for addr in self._host.get_addrs():
            if "/p2p-circuit" not in str(addr):
                out.append(addr.to_bytes())
        return out[:MAX_RESERVATION_ADDRS]

    def _prune(self) -> None:
        for peer_id, slot in list(self._slots.items()):
            if not self._live(peer_id, slot):
                del self._slots[peer_id]
                self._forget_if_idle(peer_id)

    def _live(self, peer_id: str, slot: _Slot) -> bool:
        """Unexpired, on an open connection, and its peer still allowed one."""
        if time.time() > slot.expires:
            return False
        state = self._contacts.state(peer_id)
        if state is ContactState.BLOCKED or (
                self._contacts_only and state is not ContactState.CONTACT):
            return False
        return any(c.muxed_conn is slot.conn and not c.is_closed
                   for c in self._connections.connections_to(peer_id))

    # -- circuits -----------------------------------------------------------------------------

    async def _connect(self, stream: Any, src: str, msg: HopMessage) -> None:
        raw = bytes(msg.peer.id) if msg.HasField("peer") else b""
        target = ID(raw)
        dst = target.to_base58()
        if not _is_peer_id(raw) or dst in (src, self._me):
            await self._finish(stream, StatusCode.MALFORMED_MESSAGE)
            return
        self._prune()
        if dst not in self._slots:
            await self._finish(stream, StatusCode.NO_RESERVATION)
            return
        refusal = self._admit_circuit(src, dst)
        if refusal is not None:
            log.info("relay: refused a circuit %s -> %s: %s", src, dst, refusal)
            await self._finish(stream, StatusCode.RESOURCE_LIMIT_EXCEEDED)
            return
        circuit = _Circuit(src, dst, _bucket(self.limits.circuit_rate, trio.current_time()),
                           self.limits.circuit_data,
                           tuple(p for p in (src, dst) if not self._is_contact(p)))
        self._open(circuit)
        try:
            await self._run_circuit(stream, target, circuit)
        finally:
            self._close(circuit)

    def _admit_circuit(self, src: str, dst: str) -> str | None:
        limits = self.limits
        if len(self._circuits) >= limits.circuits:
            return "no circuit left"
        now = time.monotonic()
        for peer_id in (src, dst):
            peer = self._peers.get(peer_id)
            if peer is None:
                continue
            if peer.circuits >= limits.circuits_per_peer:
                return f"{peer_id} has {peer.circuits} circuits"
            if peer.budget.spent(limits, now) and not self._is_contact(peer_id):
                return f"{peer_id} spent its data budget"
        return None

    def _open(self, circuit: _Circuit) -> None:
        self._circuits.add(id(circuit))
        for peer_id in (circuit.src, circuit.dst):
            self._tracked(peer_id).circuits += 1

    def _close(self, circuit: _Circuit) -> None:
        self._circuits.discard(id(circuit))
        for peer_id in (circuit.src, circuit.dst):
            peer = self._peers.get(peer_id)
            if peer is not None:
                peer.circuits -= 1
                self._forget_if_idle(peer_id)

    async def _run_circuit(self, stream: Any, target: ID, circuit: _Circuit) -> None:
        """Open the destination's STOP stream, answer OK, then move bytes until either end
        stops or a limit is reached; both streams are closed (or reset) at the end."""
        dst_stream = None
        try:
            with trio.fail_after(STOP_TIMEOUT):
                dst_stream = await self._host.new_stream(target, [STOP_PROTOCOL_ID])
                await write_delimited_msg(dst_stream, StopMessage(
                    type=StopMessage.CONNECT, limit=self._limit(),
                    peer=CircuitPeer(id=ID.from_base58(circuit.src).to_bytes())))
                answer = await read_delimited_msg(dst_stream, StopMessage)
        except Exception as exc:  # noqa: BLE001 - the destination is gone or refused
            log.info("relay: circuit %s -> %s failed: %s", circuit.src, circuit.dst, exc)
            if dst_stream is not None:
                await dst_stream.reset()
            await self._finish(stream, StatusCode.CONNECTION_FAILED)
            return
        if answer.type != StopMessage.STATUS or answer.status != StatusCode.OK:
            log.info("relay: %s refused a circuit from %s", circuit.dst, circuit.src)
            await dst_stream.reset()
            await self._finish(stream, StatusCode.CONNECTION_FAILED)
            return
        await self._answer(stream, StatusCode.OK, limit=self._limit())
        log.debug("relay: circuit %s -> %s open", circuit.src, circuit.dst)
        try:
            with trio.move_on_after(self.limits.circuit_duration) as lifetime:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pipe, stream, dst_stream, circuit, nursery)
                    nursery.start_soon(self._pipe, dst_stream, stream, circuit, nursery)
            if lifetime.cancelled_caught:
                circuit.cut = f"its {self.limits.circuit_duration} s are over"
        finally:
            if circuit.cut:
                log.info("relay: circuit %s -> %s cut: %s", circuit.src, circuit.dst,
                         circuit.cut)
            with trio.CancelScope(shield=True):
                for s in (stream, dst_stream):
                    try:
                        await (s.reset() if circuit.cut else s.close())
                    except Exception:
                        log.debug("relay: closing a circuit stream failed", exc_info=True)

    async def _pipe(self, source: Any, sink: Any, circuit: _Circuit,
                    nursery: trio.Nursery) -> None:
        """Copy ``source`` to ``sink``, paying for every read; the end of either ends both."""
        try:
            while True:
                try:
                    data = await source.read(READ_SIZE)
                except StreamEOF:
                    return
                if not data:
                    return
                wait = self._charge(circuit, len(data))
                if wait > 0:
                    await trio.sleep(wait)
                await sink.write(data)
        except _OverBudget as exc:
            circuit.cut = str(exc)
        except Exception as exc:  # noqa: BLE001 - a reset or closed end
            log.debug("relay: circuit %s -> %s ended: %s", circuit.src, circuit.dst, exc)
        finally:
            nursery.cancel_scope.cancel()

    def _charge(self, circuit: _Circuit, amount: int) -> float:
        """Count ``amount`` bytes of ``circuit``: raises ``_OverBudget`` past a data limit,
        else the seconds to wait before moving them (the slowest of its token buckets)."""
        circuit.data_left -= amount
        if circuit.data_left < 0:
            raise _OverBudget(f"its {self.limits.circuit_data} bytes are spent")
        now, clock = time.monotonic(), trio.current_time()
        wait = circuit.rate.charge(amount, clock)
        wait = max(wait, self._total.charge(amount, clock))
        for peer_id in (circuit.src, circuit.dst):
            peer = self._tracked(peer_id)
            if peer_id in circuit.budgeted:
                if peer.budget.spent(self.limits, now):
                    raise _OverBudget(f"{peer_id} spent its data budget")
                peer.budget.used += amount
            wait = max(wait, peer.rate.charge(amount, clock))
        return wait

    # -- bookkeeping --------------------------------------------------------------------------

    def _tracked(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            if len(self._peers) >= MAX_TRACKED_PEERS:
                self._evict_idle()
            peer = self._peers[peer_id] = _Peer(_bucket(self.limits.peer_rate,
                                                        trio.current_time()))
        return peer

    def _forget_if_idle(self, peer_id: str) -> None:
        """Drop a peer's entry once it holds nothing and owes nothing (no budget used)."""
        peer = self._peers.get(peer_id)
        if (peer is not None and not peer.circuits and peer_id not in self._slots
                and not peer.budget.used):
            del self._peers[peer_id]

    def _evict_idle(self) -> None:
        """Make room: forget the oldest peers with no slot and no circuit (and their budget
        use: that much memory is what a swarm of throwaway ids may cost)."""
        for peer_id in list(self._peers):
            peer = self._peers[peer_id]
            if not peer.circuits and peer_id not in self._slots:
                del self._peers[peer_id]
                if len(self._peers) < MAX_TRACKED_PEERS * 3 // 4:
                    return

    def _is_contact(self, peer_id: str) -> bool:
        return self._contacts.state(peer_id) is ContactState.CONTACT

    def _route(self, peer_id: str, conn: Any) -> str:
        for c in self._connections.connections_to(peer_id):
            if c.muxed_conn is conn:
                return connection_route(c)
        return ""


def _ip_of(conn: Any) -> str:
    try:
        remote = conn.get_remote_address()
    except Exception:  # noqa: BLE001 - a closing connection may not know any more
        remote = None
    return str(remote[0]) if remote else ""


def _is_peer_id(raw: bytes) -> bool:
    """A libp2p peer id: an identity multihash of at most 42 bytes (small keys such as
    Ed25519) or a SHA-256 one (larger keys)."""
    if len(raw) < 2:
        return False
    code, length = raw[0], raw[1]
    known = (code == 0x00 and 0 < length <= 42) or (code == 0x12 and length == 32)
    return known and len(raw) == 2 + length


def _type_name(msg: HopMessage) -> str:
    return {HopMessage.RESERVE: "RESERVE", HopMessage.CONNECT: "CONNECT"}.get(
        msg.type, f"type {msg.type}")
