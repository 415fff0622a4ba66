"""Circuit relay v2: serving as a relay, reserving slots on relays, and dialing through them.

Three roles, all on py-libp2p's ``libp2p.relay.circuit_v2``:

* **Serve** (``NodeConfig.serve_relay``): ``app.node.relay_server`` answers
  ``/libp2p/circuit/relay/0.2.0/hop`` with its limits per peer; peers reserve a slot and others
  reach them through us (with ``relay_contacts_only``, only contacts get a slot).
* **Reserve** (``NodeConfig.relays``): for each configured relay a task connects, sends a HOP
  ``RESERVE`` and renews it at half its lifetime (at once when the connection to the relay
  drops), retrying with backoff (1 s doubling to 60 s, forever) while the relay is away. While
  a reservation holds, its ``<relay>/p2p-circuit`` addresses, one per address the relay
  listens on, join ``KithNode.addrs()`` (so ``status`` and the invite carry them) and
  ``host.get_addrs()`` (so identify and our signed record in the DHT carry them), and a
  ``RelayReserved`` event says so. Relay discovery in py-libp2p polls
  every 300 s, so Kith reserves explicitly and never runs it.
* **Accept and dial** (always): py-libp2p's STOP handler upgrades relayed inbound
  connections; ``dial_circuit`` dials through a relay (HOP CONNECT, then Noise and Yamux over
  the stream), and ``host.connect`` dials a ``PeerInfo``'s direct addresses first and its
  ``/p2p-circuit`` ones when those fail (``libp2p_patches.basic_host.route_circuit_dials``).

A relayed connection is a stream inside our connection to the relay; py-libp2p upgrades it like
any raw connection (``upgrade_outbound_connection`` / ``upgrade_inbound_connection``), so Noise
(and Yamux) run end to end between the two peers: the relay forwards ciphertext.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import ConnectionType, IHost, IMuxedConn
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeer
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
from libp2p.tools.anyio_service import background_trio_service

from app.core.config import ConfigError
from app.core.events import RelayReserved
from app.node.host import connect_at
from app.node.interfaces import Connections, ContactBook, Emit, Tasks
from app.node.libp2p_patches.basic_host import advertise_addrs, is_circuit, route_circuit_dials
from app.node.signal import Signal

if TYPE_CHECKING:
    from app.node.relay_server import RelayServer

log = logging.getLogger(__name__)

RESERVE_TIMEOUT = 10.0
RESET_TIMEOUT = 1.0  # for the reset of a stream whose circuit dial failed
MIN_RENEW = 5.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
WATCH_INTERVAL = 1.0  # how often a holder checks that its relay is still connected
MAX_ADDRS_PER_RELAY = 4



def parse_relay_addrs(
    texts: tuple[str, ...], what: str = "relay"
) -> list[tuple[ID, multiaddr.Multiaddr]]:
    """``/ip4/H/tcp/P/p2p/RELAY`` (or ip6) -> (relay id, address); a ConfigError otherwise.

    ``what`` names the address in error messages (``--bootstrap`` reuses this check).
    """
    out: list[tuple[ID, multiaddr.Multiaddr]] = []
    for text in texts:
        try:
            addr = multiaddr.Multiaddr(text)
            names = [p.name for p in addr.protocols()]
            peer = addr.get_peer_id()
        except Exception as exc:  # noqa: BLE001 - multiaddr raises a zoo of types
            raise ConfigError(f"{what} {text!r} is not a multiaddress: {exc}") from None
        if names[:1] not in (["ip4"], ["ip6"]) or names[1:] != ["tcp", "p2p"] or not peer:
            raise ConfigError(f"{what} {text!r}: expected /ip4/HOST/tcp/PORT/p2p/PEER_ID")
        try:
            relay_id = ID.from_base58(str(peer))
        except Exception:  # noqa: BLE001
            raise ConfigError(f"{what} {text!r}: bad peer id") from None
        out.append((relay_id, addr))
    return out


def _without_p2p(addr: multiaddr.Multiaddr) -> str:
    head, sep, tail = str(addr).rpartition("/p2p/")
    return head if sep and "/" not in tail else str(addr)


class RelayService:
    """Our slots on the configured ``relays``, and with ``serve`` our own ``RelayServer``."""

    def __init__(self, host: IHost, nursery: Tasks, emit: Emit, me: str, *,
                 connections: Connections, contacts: ContactBook,
                 publish_addrs: Callable[[], None], relays: tuple[str, ...],
                 serve: bool = False, contacts_only: bool = False) -> None:
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._me = me
        self._connections = connections
        self._contacts = contacts
        self._publish_addrs = publish_addrs
        self._serve = serve
        self._contacts_only = contacts_only
        self._relays = parse_relay_addrs(relays)
        self._reserved: dict[str, tuple[str, ...]] = {}  # relay id -> ".../p2p-circuit" addrs
        self._protocol: CircuitV2Protocol | None = None
        self._server: RelayServer | None = None
        self._wake = Signal()  # a network change, or a connection to one of our relays closed
        self._network_changes = 0  # reserve_now() calls: each renews every reservation

    @property
    def server(self) -> RelayServer:
        """What we serve as a relay (slots and circuits, for stats); only with ``serve_relay``."""
        if self._server is None:
            raise RuntimeError("this node does not serve as a relay")
        return self._server

    async def start(self) -> None:
        host = self._host
        # py-libp2p answers STOP (circuits that reach us). Its HOP side stays off
        # (``allow_hop=False``): RelayServer answers HOP when we serve. Its circuit transport
        # is not used: ``dial_circuit`` dials through relays, and only the relays in
        # ``relays`` hold a slot for us (reserved here).
        self._protocol = CircuitV2Protocol(host, allow_hop=False)
        await self._nursery.start(self._run_protocol, self._protocol)
        route_circuit_dials(host, lambda circuit, peer: dial_circuit(host, circuit, peer.peer_id))
        advertise_addrs(host, self.relayed_addrs)
        if self._serve:
            from app.node.relay_server import RelayServer  # serving only: not in the window

            self._server = RelayServer(host, self._me, self._contacts, self._connections,
                                       contacts_only=self._contacts_only)
            self._server.start()
        for relay_id, addr in self._relays:
            self._nursery.start_soon(self._keep_reserved, relay_id, addr)

    @staticmethod
    async def _run_protocol(
        protocol: CircuitV2Protocol, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with background_trio_service(protocol):
            await protocol.event_started.wait()
            task_status.started()
            await trio.sleep_forever()

    def reserve_now(self) -> None:
        """The network changed: renew every reservation now instead of after a backoff."""
        self._network_changes += 1
        self._wake.set()

    def peer_disconnected(self, peer_id: str) -> None:
        """A connection closed: if it was to one of our relays, its holder checks its slot now;
        if it held a slot on us, the slot is gone."""
        if any(relay_id.to_base58() == peer_id for relay_id, _ in self._relays):
            self._wake.set()
        if self._server is not None:
            self._server.peer_disconnected(peer_id)

    def relayed_addrs(self) -> list[str]:
        """Our ``<relay addr>/p2p-circuit`` addresses on every relay we hold a slot on."""
        return [a for addrs in self._reserved.values() for a in addrs]

    def reserved_relays(self) -> list[str]:
        return list(self._reserved)

    async def _keep_reserved(self, relay_id: ID, addr: multiaddr.Multiaddr) -> None:
        """Hold a reservation on one relay forever; never raises (it lives in the node nursery)."""
        relay = relay_id.to_base58()
        backoff = FIRST_BACKOFF
        held_over: IMuxedConn | None = None  # the connection our current slot lives on
        while True:
            changes = self._network_changes
            try:
                expire, circuit_addrs, via = await self._reserve(relay_id, addr)
            except Exception as exc:  # noqa: BLE001 - an absent relay is normal; retry later
                log.info("relay %s: reservation failed: %s", relay, exc)
                self._reserved.pop(relay, None)
                woken = await self._wake.wait(backoff * random.uniform(0.8, 1.2))
                backoff = FIRST_BACKOFF if woken else min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            # A renewal over the same connection is the same slot; over another one (the relay
            # restarted, say) it is a new slot even if the addresses are the same.
            fresh = self._reserved.get(relay) != circuit_addrs or via is not held_over
            held_over = via
            self._reserved[relay] = circuit_addrs
            if fresh:
                log.info("relay %s: reserved, reachable at %s", relay, ", ".join(circuit_addrs))
                self._emit(RelayReserved(relay=relay, addrs=tuple(self._full(circuit_addrs))))
                self._publish_addrs()  # peers may be looking us up in the DHT
            renew_in = max(MIN_RENEW, (expire - time.time()) / 2)
            deadline = trio.current_time() + renew_in
            while trio.current_time() < deadline:
                await self._wake.wait(
                    min(WATCH_INTERVAL, max(0.0, deadline - trio.current_time()))
                )
                if self._network_changes != changes:
                    break  # the network changed: our slot may be gone, renew it now
                if not self._holds(relay, held_over):
                    log.info("relay %s: connection lost; reserving again", relay)
                    self._reserved.pop(relay, None)
                    break

    def _holds(self, relay: str, via: IMuxedConn | None) -> bool:
        """Whether the connection our slot was reserved over is still open. A slot lives and
        dies with it: a relay that restarted has forgotten us, even if something else of ours
        has reconnected to it meanwhile."""
        return any(c.muxed_conn is via and not c.is_closed
                   for c in self._connections.connections_to(relay))

    def _full(self, addrs: tuple[str, ...]) -> list[str]:
        return [f"{a}/p2p/{self._me}" for a in addrs]

    async def _reserve(
        self, relay_id: ID, addr: multiaddr.Multiaddr
    ) -> tuple[float, tuple[str, ...], IMuxedConn]:
        """One HOP RESERVE round trip: (expiry as a Unix time, our circuit addresses, the
        muxed connection the slot is held over)."""
        host = self._host
        with trio.fail_after(RESERVE_TIMEOUT):
            # connect_at, not host.connect: it lifts py-libp2p's 60 s refusal of a peer whose
            # dials all failed (the relay was down a moment ago) and dials exactly ``addr``,
            # not another address of the relay that identify taught us (say, a leg we cannot
            # route to).
            if not await connect_at(host, relay_id.to_base58(), [str(addr)], RESERVE_TIMEOUT):
                raise ConnectionError(f"cannot connect to {addr}")
            stream = await host.new_stream(relay_id, [PROTOCOL_ID])
            via = stream.muxed_conn
            try:
                await write_delimited_msg(
                    stream,
                    HopMessage(
                        type=HopMessage.RESERVE, peer=CircuitPeer(id=host.get_id().to_bytes())
                    ),
                )
                response = await read_delimited_msg(stream, HopMessage)
            finally:
                await stream.close()
        status = response.status if response.HasField("status") else StatusCode.OK
        if status != StatusCode.OK:  # a code this version does not know refuses too
            known = {code.value: code.name for code in StatusCode}
            raise ConnectionError(f"the relay refused: {known.get(status, status)}")
        if not response.HasField("reservation"):
            raise ConnectionError("the relay answered without a reservation")
        expire = float(response.reservation.expire or time.time() + 60)
        # The address we reached the relay at first, then every other one it listens on (a
        # relay with a leg in two networks is reachable from both); loopback only if that is
        # how we reached it, since a loopback address means another machine to everyone else.
        bases = [_without_p2p(addr)]
        local_ok = _is_loopback(bases[0])
        for raw in response.reservation.addrs:
            try:
                base = _without_p2p(multiaddr.Multiaddr(raw))
            except Exception:  # noqa: BLE001 - an odd address from the relay is skipped
                continue
            if base in bases or is_circuit(base) or (_is_loopback(base) and not local_ok):
                continue
            bases.append(base)
        relay = relay_id.to_base58()
        circuits = tuple(f"{b}/p2p/{relay}/p2p-circuit" for b in bases[:MAX_ADDRS_PER_RELAY])
        return expire, circuits, via


def _is_loopback(addr: str) -> bool:
    return addr.startswith(("/ip4/127.", "/ip6/::1/"))


async def dial_circuit(host: IHost, circuit: multiaddr.Multiaddr, target: ID) -> None:
    """Connect to ``target`` through the relay ``circuit`` names
    (``<relay addr>/p2p/<relay>/p2p-circuit``, with or without ``/p2p/<target>``).

    A HOP CONNECT on a new stream to the relay; once the relay says OK the stream carries our
    connection to ``target``, upgraded (Noise, Yamux) like any outbound one. When the dial
    fails or is cancelled at any point, the stream is reset: py-libp2p 0.8.1's circuit
    transport only closed it in a clean-up that a cancelled dial never ran, so the relay kept
    the circuit (16 per peer on a Kith relay, for an hour): after 16 dials given up half-way,
    nobody could be reached through that relay.
    """
    relay_part = str(circuit).split("/p2p-circuit", 1)[0]
    relay_addr = multiaddr.Multiaddr(relay_part)
    relay_text = relay_addr.get_peer_id()
    if not relay_text:
        raise ConnectionError(f"{circuit} names no relay")
    relay = ID.from_base58(str(relay_text))
    full = multiaddr.Multiaddr(f"{relay_part}/p2p-circuit/p2p/{target.to_base58()}")
    if not host.get_network().connections.get(relay):
        await host.connect(PeerInfo(relay, [relay_addr]))
    stream = await host.new_stream(relay, [PROTOCOL_ID])
    try:
        await write_delimited_msg(
            stream, HopMessage(type=HopMessage.CONNECT, peer=CircuitPeer(id=target.to_bytes())))
        response = await read_delimited_msg(stream, HopMessage)
        status = StatusCode(response.status) if response.HasField("status") else StatusCode.OK
        if response.type != HopMessage.STATUS or status != StatusCode.OK:
            raise ConnectionError(f"the relay refused: {status.name}")
        raw = RawConnection(stream, True, connection_type=ConnectionType.RELAYED,
                            addresses=[full])
        await host.upgrade_outbound_connection(raw, target)
    except BaseException:
        with (trio.CancelScope(shield=True), trio.move_on_after(RESET_TIMEOUT),
              contextlib.suppress(Exception)):  # gone already: nothing to reset
            await stream.reset()
        raise
    log.info("connected to %s through %s", target, full)
