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
* **Accept and dial** (always): the STOP handler upgrades relayed inbound connections, and
  ``host.connect`` is wrapped so that a ``PeerInfo`` carrying ``/p2p-circuit`` addresses is
  dialed directly first and through the relay when that fails. py-libp2p 0.8.1's swarm drops
  relay addresses before choosing a transport, so registering the transport alone is not enough.

A relayed connection is a stream inside our connection to the relay; py-libp2p upgrades it like
any raw connection (``upgrade_outbound_connection`` / ``upgrade_inbound_connection``), so Noise
(and Yamux) run end to end between the two peers: the relay forwards ciphertext.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import IHost, IMuxedConn
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as CircuitPeer
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.address_validation import expand_wildcard_address

from app.core.config import ConfigError
from app.core.events import RelayReserved
from app.node.host import connect_at
from app.node.reachability import connections_to
from app.node.relay_server import RelayServer
from app.node.signal import Signal

if TYPE_CHECKING:
    from app.node.node import KithNode

log = logging.getLogger(__name__)

RESERVE_TIMEOUT = 10.0
MIN_RENEW = 5.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
WATCH_INTERVAL = 1.0  # how often a holder checks that its relay is still connected
MAX_ADDRS_PER_RELAY = 4

Connect = Callable[[PeerInfo], Awaitable[None]]


def is_circuit(addr: multiaddr.Multiaddr | str) -> bool:
    return "/p2p-circuit" in str(addr)


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
    def __init__(self, node: KithNode) -> None:
        self._node = node
        self._relays = parse_relay_addrs(node.config.relays)
        self._reserved: dict[str, tuple[str, ...]] = {}  # relay id -> ".../p2p-circuit" addrs
        self._protocol: CircuitV2Protocol | None = None
        self._transport: CircuitV2Transport | None = None
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
        host = self._node.host
        config = self._node.config
        # py-libp2p answers STOP (circuits that reach us) and dials through relays. Its HOP
        # side stays off (``allow_hop=False``): RelayServer answers HOP when we serve.
        self._protocol = CircuitV2Protocol(host, allow_hop=False)
        # CLIENT is left out on purpose: with it the transport reserves on every relay it
        # dials *through*; only the peers in ``relays`` reserve, and they do it here.
        self._transport = CircuitV2Transport(
            host, self._protocol, RelayConfig(roles=RelayRole.STOP))
        await self._node.nursery.start(self._run_protocol, self._protocol)
        install_relay_dialing(host, self._transport)
        install_advertised_addrs(host, self.relayed_addrs)
        if config.serve_relay:
            self._server = RelayServer(self._node, contacts_only=config.relay_contacts_only)
            self._server.start()
        for relay_id, addr in self._relays:
            self._node.nursery.start_soon(self._keep_reserved, relay_id, addr)

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
                self._node.emit(RelayReserved(relay=relay, addrs=tuple(self._full(circuit_addrs))))
                self._publish_addrs()
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
                   for c in connections_to(self._node, relay))

    def _publish_addrs(self) -> None:
        """Our circuits changed: put them in the DHT now (peers may be looking us up)."""
        with contextlib.suppress(RuntimeError):  # no DHT (yet); its loop checks too
            self._node.dht.publish_now()

    def _full(self, addrs: tuple[str, ...]) -> list[str]:
        return [f"{a}/p2p/{self._node.identity.peer_id}" for a in addrs]

    async def _reserve(
        self, relay_id: ID, addr: multiaddr.Multiaddr
    ) -> tuple[float, tuple[str, ...], IMuxedConn]:
        """One HOP RESERVE round trip: (expiry as a Unix time, our circuit addresses, the
        muxed connection the slot is held over)."""
        host = self._node.host
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


def install_advertised_addrs(host: IHost, relayed: Callable[[], list[str]]) -> None:
    """Make ``host.get_addrs`` what others should dial: wildcards expanded, circuits added.

    ``get_addrs`` feeds identify, our signed peer record (sent with every DHT request, so
    the peers closest to us hand it to whoever looks us up) and, on a relay, the addresses
    a reservation answer lists. py-libp2p leaves ``/ip4/0.0.0.0`` in it (a relay listening on
    every interface would advertise none) and knows nothing of our reservations (a peer
    behind NAT would publish only addresses nobody can reach). go-libp2p does both.
    """
    listen_addrs = host.get_addrs

    def get_addrs() -> list[multiaddr.Multiaddr]:
        suffix = multiaddr.Multiaddr(f"/p2p/{host.get_id()}")
        out: list[multiaddr.Multiaddr] = []
        for addr in listen_addrs():
            if "/ip4/0.0.0.0/" in str(addr) or "/ip6/::/" in str(addr):
                concrete = [a.encapsulate(suffix) for a in expand_wildcard_address(addr)]
            else:
                concrete = [addr]
            out.extend(a for a in concrete if a not in out)
        for text in relayed():
            circuit = multiaddr.Multiaddr(text).encapsulate(suffix)
            if circuit not in out:
                out.append(circuit)
        return out

    setattr(host, "get_addrs", get_addrs)  # noqa: B010 - an instance attribute wraps the method


def install_relay_dialing(host: IHost, transport: CircuitV2Transport) -> None:
    """Make ``host.connect`` fall back to ``/p2p-circuit`` addresses when direct ones fail."""
    direct_connect: Connect = host.connect

    async def connect(peer_info: PeerInfo) -> None:
        circuit = [a for a in peer_info.addrs if is_circuit(a)]
        if not circuit:
            await direct_connect(peer_info)
            return
        if host.get_network().connections.get(peer_info.peer_id):
            return
        direct = [a for a in peer_info.addrs if not is_circuit(a)]
        error: Exception | None = None
        if direct:
            try:
                await direct_connect(PeerInfo(peer_info.peer_id, direct))
                return
            except Exception as exc:  # noqa: BLE001 - fall back to the relays
                log.debug("direct dial %s failed (%s); trying relays", peer_info.peer_id, exc)
                error = exc
        target = peer_info.peer_id.to_base58()
        for addr in circuit:
            full = addr if addr.get_peer_id() == target else addr.encapsulate(f"/p2p/{target}")
            try:
                await transport.dial(full)
                log.info("connected to %s through %s", target, full)
                return
            except Exception as exc:  # noqa: BLE001 - try the next relay
                log.debug("relayed dial %s failed: %s", full, exc)
                error = exc
        raise ConnectionError(f"could not reach {target} directly or through a relay: {error}")

    setattr(host, "connect", connect)  # noqa: B010 - an instance attribute wraps the method
