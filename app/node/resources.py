"""What a peer may make this Kith spend: connections, streams, buffers and stored data.

One place decides every network limit of the node; docs/networking.md ("Limits and threat
model") lists them with their numbers. Limits depend on who the peer is to us:

* **contact**: a peer we accepted (and the relays and bootstrap peers this node was told to
  use: they carry our circuits and lookups);
* **member**: a member of a room we are in (holds a room key, is not a contact);
* **stranger**: anyone else, message requests included.

The model is go-libp2p's resource manager: a transient scope for what is not established yet
(connections in their handshake, counted per IP; streams before protocol negotiation), peer
and protocol scopes for inbound streams, and a system scope. Kith adds what go-libp2p lacks,
the peer's class, so that strangers cannot use up what contacts need. Outbound streams and
dials are never counted here: what we open is bounded by our own code, and a stranger at its
limit must not make our ``new_stream`` wait.

py-libp2p 0.8.1's own resource manager is switched off (``install``). Its stream limit is one
node-wide semaphore of 10,000 shared by both directions, so one stranger's silent inbound
streams made every outbound ``new_stream`` wait forever; it knows no peer classes; its
per-peer connection rate limit (10 a second, burst 50) refuses our own dials as well; and it
lost a connection slot for every dial or handshake cancelled while the other side was silent.

``account`` sets every count against what it stands for (accepted sockets, the swarm's open
connections and streams), so a count that nothing holds any more shows, and so does anything
open that escaped the count.
"""

from __future__ import annotations

import ipaddress
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import trio
from libp2p.abc import IHost, IMuxedConn, INetStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.stream_muxer.yamux.yamux import MAX_WINDOW_SIZE

from app.core.events import LimitReached
from app.node.isolation import is_local_fault
from app.node.libp2p_patches.swarm import is_inbound, serve_inbound_connections, socket_is_open
from app.node.libp2p_patches.yamux import cap_receive_window

log = logging.getLogger(__name__)


class PeerClass(Enum):
    STRANGER = "stranger"
    MEMBER = "member"
    CONTACT = "contact"


@dataclass(frozen=True)
class PerClass:
    """One number per peer class."""

    stranger: int
    member: int
    contact: int

    def of(self, peer_class: PeerClass) -> int:
        value: int = getattr(self, peer_class.value)
        return value


def _protocol_streams() -> tuple[tuple[str, PerClass], ...]:
    return (
        ("/kith/dm/", PerClass(2, 2, 4)),
        ("/kith/file/", PerClass(2, 8, 8)),
        ("/kith/profile/", PerClass(2, 2, 2)),
        ("/kith/sync/", PerClass(2, 4, 4)),
        ("/kith/mailbox/", PerClass(2, 2, 4)),
        ("/meshsub/", PerClass(2, 2, 2)),
        ("/floodsub/", PerClass(2, 2, 2)),
        ("/ipfs/id/", PerClass(4, 4, 4)),
        ("/ipfs/ping/", PerClass(2, 2, 2)),
        ("/ipfs/kad/", PerClass(8, 8, 8)),
        ("/libp2p/circuit/relay/0.2.0/hop", PerClass(8, 8, 16)),
        # A relay we use opens one stop stream per circuit that reaches us through it.
        ("/libp2p/circuit/relay/0.2.0/stop", PerClass(4, 4, 256)),
        ("/libp2p/dcutr", PerClass(2, 2, 2)),
    )


@dataclass(frozen=True)
class Limits:
    """Every number the resource manager enforces (tests build smaller ones)."""

    # Connections before the Noise handshake completes: nobody is known yet, so they are
    # counted per source address (IPv4 /32, IPv6 /64) and in total.
    handshake_timeout: float = 5.0
    handshakes_per_ip: int = 8
    handshakes: int = 128
    # Established inbound connections, per class together; py-libp2p's own cap on all
    # connections (both directions) stays above their sum, so contacts always find room and
    # our own dials are never refused because strangers hold every slot.
    connections: int = 1024
    class_connections: PerClass = PerClass(stranger=128, member=256, contact=1024)
    # Inbound streams. Each may hold its Yamux receive window of unread data: 256 KiB, which
    # py-libp2p doubles up to 16 MiB for a stream read as fast as data comes; only a contact's
    # streams grow (a relay we use carries whole connections to us on them).
    stream_window: PerClass = PerClass(stranger=256 << 10, member=256 << 10,
                                       contact=MAX_WINDOW_SIZE)
    negotiation_timeout: float = 5.0
    streams_per_peer: PerClass = PerClass(stranger=16, member=32, contact=512)
    class_streams: PerClass = PerClass(stranger=256, member=512, contact=8192)
    protocol_streams: tuple[tuple[str, PerClass], ...] = field(
        default_factory=_protocol_streams)
    other_protocol_streams: PerClass = PerClass(2, 4, 8)
    # A peer refused this many streams in a burst (refilled at ``refusal_rate`` per second)
    # is disconnected: a refusal is cheap, a flood of them is not.
    refusal_burst: int = 64
    refusal_rate: float = 8.0
    # The first frame of a message or file stream must arrive this soon after it opens.
    first_frame_timeout: float = 10.0
    # Direct messages from someone who is not a contact (a message request): what is kept
    # until the request is accepted, and how many requests wait at once.
    request_messages: int = 20
    request_bytes: int = 256 << 10
    pending_requests: int = 50
    # File offers waiting for an answer, per peer.
    pending_offers: PerClass = PerClass(stranger=3, member=3, contact=64)
    # A ``limit_reached`` event and log line per peer (or address) and limit, at most this
    # often; and for all of them together, a burst of 30 refilled at one every 2 s (throwaway
    # identities each start a notice of their own).
    notice_interval: float = 60.0
    notice_burst: int = 30
    notice_rate: float = 0.5

    def protocol_limit(self, protocol: str, peer_class: PeerClass) -> tuple[str, int]:
        """(the family ``protocol`` is counted in, its per-peer stream limit)."""
        for prefix, limit in self.protocol_streams:
            if protocol.startswith(prefix):
                return prefix, limit.of(peer_class)
        return "", self.other_protocol_streams.of(peer_class)


DEFAULT_LIMITS = Limits()

Classify = Callable[[str], PeerClass]
Notify = Callable[[LimitReached], None]
Disconnect = Callable[[str], None]  # close every connection to a peer, soon


def address_key(host: str) -> str:
    """What one source of connections is: an IPv4 address, or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, burst: int, rate: float) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(frozen=True)
class Account:
    """What the resource manager counts, next to what exists (``ResourceManager.account``).

    Each count should equal what it stands for whenever nothing is being opened or closed:
    a handshake is an accepted socket that is open and carries no connection yet, a counted
    connection one the swarm holds open, a counted stream an inbound stream open on one of
    them. ``mismatches`` says where they differ: a count that nothing holds any more is a
    slot lost for good, something open that is not counted escapes the limits.
    """

    handshakes: dict[str, int]          # counted: connections in their handshake, per source
    handshake_sockets: dict[str, int]   # accepted sockets open without a connection, per source
    stray_sockets: int                  # accepted sockets open whose connection is gone
    connections: dict[str, int]         # counted: established inbound connections, per class
    open_connections: dict[str, int]    # of those, how many the swarm holds open, per class
    uncounted_connections: int          # accepted, open in the swarm, and not counted
    streams: dict[str, int]             # counted: inbound streams, per peer
    class_streams: int                  # counted: inbound streams of all classes together
    open_streams: dict[str, int]        # inbound streams open on the swarm's connections
    outbound_streams: dict[str, int]    # streams we opened, per peer (ours: not limited)
    all_connections: int                # every connection of the swarm, both directions

    def mismatches(self) -> list[str]:
        """What does not add up (empty when everything does)."""
        out: list[str] = []
        if self.handshakes != self.handshake_sockets:
            out.append(f"handshakes {self.handshakes} but sockets in a handshake "
                       f"{self.handshake_sockets}")
        if self.stray_sockets:
            out.append(f"{self.stray_sockets} accepted socket(s) open after their connection")
        if self.connections != self.open_connections:
            out.append(f"inbound connections {self.connections} but open "
                       f"{self.open_connections}")
        if self.uncounted_connections:
            out.append(f"{self.uncounted_connections} inbound connection(s) not counted")
        if self.streams != self.open_streams:
            out.append(f"inbound streams {self.streams} but open {self.open_streams}")
        if self.class_streams != sum(self.streams.values()):
            out.append(f"{self.class_streams} streams counted by class, "
                       f"{sum(self.streams.values())} by peer")
        return out

    def __str__(self) -> str:
        return (f"{self.all_connections} connection(s); counted: "
                f"{sum(self.handshakes.values())} handshake(s), "
                f"{sum(self.connections.values())} inbound connection(s), "
                f"{sum(self.streams.values())} inbound stream(s); "
                + ("; ".join(self.mismatches()) or "all accounted for"))


@dataclass
class _Accepted:
    """One socket our listener accepted: where from, and the connection it came to carry
    (weakly: the socket is a weak key, and the connection holds the socket)."""

    source: str
    conn: weakref.ref[IMuxedConn] | None = None


class ResourceManager:
    """Counts what peers hold and refuses what goes over a limit, with a notice."""

    def __init__(self, limits: Limits, classify: Classify, notify: Notify,
                 disconnect: Disconnect) -> None:
        self.limits = limits
        self.classify = classify
        self._notify = notify
        self._disconnect = disconnect
        self._host: IHost | None = None
        self.handshakes: Counter[str] = Counter()           # per address key
        self._held: dict[IMuxedConn, PeerClass] = {}         # established inbound, counted
        # Every socket our listeners accepted, for ``account`` (gone with the socket object).
        self._accepted: weakref.WeakKeyDictionary[Any, _Accepted] = \
            weakref.WeakKeyDictionary()
        self.streams: Counter[str] = Counter()               # inbound, per peer
        self.class_streams: Counter[PeerClass] = Counter()
        self.protocol_streams: Counter[tuple[str, str]] = Counter()  # (peer, family)
        self._refusals: dict[str, _Bucket] = {}
        self._noticed: dict[tuple[str, str], float] = {}
        self._notices = _Bucket(limits.notice_burst, limits.notice_rate)
        self._unnoticed = 0  # notices dropped by ``_notices`` since the last one

    # -- installing ---------------------------------------------------------------------------

    def install(self, host: IHost) -> None:
        """Take over inbound connections and streams of ``host`` (before it runs)."""
        self._host = host
        swarm = host.get_network()
        if not isinstance(swarm, Swarm):
            raise TypeError("Kith's resource manager needs py-libp2p's Swarm")
        swarm.set_resource_manager(None)
        swarm.connection_config.inbound_upgrade_timeout = self.limits.handshake_timeout
        swarm.set_stream_handler(self._inbound_stream)
        serve_inbound_connections(swarm, self._inbound_connection)

    @property
    def connections(self) -> Counter[PeerClass]:
        """Established inbound connections counted, per class."""
        return Counter(self._held.values())

    def account(self) -> Account:
        """What is counted now, next to the sockets, connections and streams that exist."""
        if self._host is None:
            raise RuntimeError("the resource manager is not installed")
        swarm = self._host.get_network()
        open_conns = [c for per_peer in list(swarm.connections.values())
                      for c in (per_peer if isinstance(per_peer, list) else [per_peer])
                      if not c.is_closed]
        open_muxed = {id(c.muxed_conn) for c in open_conns if not c.muxed_conn.is_closed}
        handshake_sockets: Counter[str] = Counter()
        stray = uncounted = 0
        for socket, accepted in list(self._accepted.items()):
            muxed = accepted.conn() if accepted.conn is not None else None
            if muxed is not None and id(muxed) in open_muxed:
                uncounted += muxed not in self._held
            elif socket_is_open(socket):
                if accepted.conn is None:
                    handshake_sockets[accepted.source] += 1
                else:
                    stray += 1
        open_streams: Counter[str] = Counter()
        outbound: Counter[str] = Counter()
        for conn in open_conns:
            peer = str(conn.muxed_conn.peer_id)
            for stream in conn.get_streams():
                (open_streams if is_inbound(stream) else outbound)[peer] += 1
        return Account(
            handshakes=dict(self.handshakes),
            handshake_sockets=dict(handshake_sockets),
            stray_sockets=stray,
            connections={c.value: n for c, n in self.connections.items()},
            open_connections={c.value: n for c, n in Counter(
                k for m, k in self._held.items() if id(m) in open_muxed).items()},
            uncounted_connections=uncounted,
            streams=dict(self.streams),
            class_streams=sum(self.class_streams.values()),
            open_streams=dict(open_streams),
            outbound_streams=dict(outbound),
            all_connections=len(open_conns),
        )

    # -- notices ------------------------------------------------------------------------------

    def refused(self, who: str, limit: str, detail: str, *, peer_id: str = "") -> None:
        """Log and announce that ``who`` (a peer id or an address) hit ``limit``, at most once
        per ``notice_interval`` for each pair (a flood of refusals is one line, not many)."""
        now = time.monotonic()
        key = (who, limit)
        if now - self._noticed.get(key, -1e18) < self.limits.notice_interval:
            return
        if len(self._noticed) > 4096:
            cutoff = now - self.limits.notice_interval
            self._noticed = {k: t for k, t in self._noticed.items() if t >= cutoff}
        self._noticed[key] = now
        if not self._notices.take():
            self._unnoticed += 1
            return
        more = f"; {self._unnoticed} other notices were dropped" if self._unnoticed else ""
        self._unnoticed = 0
        log.warning("limit reached: %s %s: %s (more of the same is dropped silently for %.0f s%s)",
                    limit, who, detail, self.limits.notice_interval, more)
        self._notify(LimitReached(peer_id=peer_id, limit=limit, detail=detail))

    # -- inbound connections ------------------------------------------------------------------

    async def _inbound_connection(self, swarm: Swarm, read_write_closer: Any, maddr: Any
                                  ) -> None:
        """One inbound TCP connection, from accept to close (runs in the listener's task)."""
        remote = None
        try:
            remote = read_write_closer.get_remote_address()
        except Exception:
            log.debug("no remote address for an inbound connection", exc_info=True)
        source = address_key(remote[0]) if remote else "?"
        accepted = self._accepted[read_write_closer] = _Accepted(source)
        if not self._enter_handshake(source):
            with trio.CancelScope(shield=True):
                await _close_quietly(read_write_closer)
            return
        raw = RawConnection(read_write_closer, False)
        muxed: IMuxedConn | None = None
        try:
            with trio.move_on_after(self.limits.handshake_timeout):
                muxed = await swarm.upgrade_inbound_raw_conn(raw, maddr)
        except Exception as exc:  # noqa: BLE001 - a failed handshake is the peer's problem
            log.debug("inbound connection from %s failed: %s", source, exc)
        finally:
            _decrement(self.handshakes, source)
        if muxed is None:
            with trio.CancelScope(shield=True):
                await _close_quietly(raw)
            return
        accepted.conn = weakref.ref(muxed)
        await self._hold_connection(swarm, muxed)

    def _enter_handshake(self, source: str) -> bool:
        limits = self.limits
        if self.handshakes[source] >= limits.handshakes_per_ip:
            self.refused(source, "handshakes",
                         f"{limits.handshakes_per_ip} connections from {source} are already "
                         "in their handshake; another was closed")
            return False
        if sum(self.handshakes.values()) >= limits.handshakes:
            self.refused("*", "handshakes",
                         f"{limits.handshakes} connections are already in their handshake; "
                         f"one from {source} was closed")
            return False
        self.handshakes[source] += 1
        return True

    async def _hold_connection(self, swarm: Swarm, muxed: IMuxedConn) -> None:
        """Count an established inbound connection by its peer's class until it closes."""
        peer_id = str(muxed.peer_id)
        peer_class = self.classify(peer_id)
        cap = self.limits.class_connections.of(peer_class)
        if self.connections[peer_class] >= cap:
            self.refused(peer_id, "connections",
                         f"{cap} inbound connections from {peer_class.value}s are open; "
                         "this one was closed", peer_id=peer_id)
            await _close_connection(swarm, muxed)
            return
        self._held[muxed] = peer_class
        try:
            await muxed.event_closed.wait()  # type: ignore[attr-defined]  # Yamux, the only muxer
        finally:
            del self._held[muxed]

    # -- inbound streams ----------------------------------------------------------------------

    async def _inbound_stream(self, stream: INetStream) -> None:
        """Every inbound stream: count it, negotiate its protocol, run its handler.

        Nothing a peer does here gets out of this method but a damaged database: an exception
        that leaves a stream handler stops py-libp2p's swarm, and the node with it.
        """
        peer_id = str(stream.muxed_conn.peer_id)
        peer_class = self.classify(peer_id)
        if not self._enter_stream(peer_id, peer_class):
            await self._refuse_stream(stream, peer_id)
            return
        cap_receive_window(stream, self.limits.stream_window.of(peer_class))
        family: str | None = None
        try:
            assert self._host is not None
            try:
                protocol, handler = await self._host.get_mux().negotiate(
                    MultiselectCommunicator(stream),
                    self.limits.negotiation_timeout,  # type: ignore[arg-type]
                )
            except Exception as exc:  # noqa: BLE001 - py-libp2p 0.8.1 lets more than
                # MultiselectError out: a protocol name that is not UTF-8 raised
                # UnicodeDecodeError into the swarm, and that stopped the node.
                log.debug("no protocol agreed with %s: %r", peer_id, exc)
                await _reset_quietly(stream)
                return
            if protocol is None or handler is None:
                await _reset_quietly(stream)
                return
            family = self._enter_protocol(peer_id, peer_class, str(protocol))
            if family is None:
                await self._refuse_stream(stream, peer_id)
                return
            stream.set_protocol(protocol)
            try:
                await handler(stream)
            except Exception as exc:  # one stream's failure stays with it
                if is_local_fault(exc):
                    raise  # the database is damaged: the node stops (app.node.isolation)
                log.info("%s: stream from %s failed: %s", protocol, peer_id, exc)
                await _reset_quietly(stream)
        finally:
            self._leave_stream(peer_id, peer_class, family)

    def _enter_stream(self, peer_id: str, peer_class: PeerClass) -> bool:
        limits = self.limits
        per_peer = limits.streams_per_peer.of(peer_class)
        if self.streams[peer_id] >= per_peer:
            self.refused(peer_id, "streams",
                         f"a {peer_class.value} may hold {per_peer} inbound streams",
                         peer_id=peer_id)
            return False
        in_class = limits.class_streams.of(peer_class)
        if self.class_streams[peer_class] >= in_class:
            self.refused(peer_id, "class_streams",
                         f"all {peer_class.value}s together may hold {in_class} inbound "
                         "streams", peer_id=peer_id)
            return False
        self.streams[peer_id] += 1
        self.class_streams[peer_class] += 1
        return True

    def _enter_protocol(self, peer_id: str, peer_class: PeerClass, protocol: str
                        ) -> str | None:
        family, limit = self.limits.protocol_limit(protocol, peer_class)
        key = (peer_id, family)
        if self.protocol_streams[key] >= limit:
            self.refused(peer_id, "protocol_streams",
                         f"a {peer_class.value} may hold {limit} inbound {protocol} streams",
                         peer_id=peer_id)
            return None
        self.protocol_streams[key] += 1
        return family

    def _leave_stream(self, peer_id: str, peer_class: PeerClass, family: str | None) -> None:
        _decrement(self.streams, peer_id)
        _decrement(self.class_streams, peer_class)
        if family is not None:
            _decrement(self.protocol_streams, (peer_id, family))

    async def _refuse_stream(self, stream: INetStream, peer_id: str) -> None:
        await _reset_quietly(stream)
        bucket = self._refusals.get(peer_id)
        if bucket is None:
            if len(self._refusals) > 4096:
                self._refusals.clear()
            bucket = self._refusals[peer_id] = _Bucket(self.limits.refusal_burst,
                                                       self.limits.refusal_rate)
        if not bucket.take():
            self._refusals.pop(peer_id, None)
            self.refused(peer_id, "refusals",
                         f"more than {self.limits.refusal_burst} streams refused in a burst; "
                         "disconnected", peer_id=peer_id)
            self._disconnect(peer_id)

    # -- stored data --------------------------------------------------------------------------

    def message_refusal(self, peer_id: str, *, contact: bool, known: bool,
                        stored: Callable[[], tuple[int, int]],
                        pending_requests: Callable[[], int], size: int
                        ) -> tuple[str, str] | None:
        """(limit, why) a direct message from ``peer_id`` may not be stored; None: it may.

        ``contact``: the peer is an accepted contact (no quota); ``known``: it already has a
        message request (or is blocked) here; ``stored()``: (messages, bytes) already kept
        from it; ``size``: this message's body in bytes. ``stored`` and ``pending_requests``
        are only asked for a peer that is not a contact: counting a contact's conversation on
        every message would cost more the longer it grows.
        """
        if contact:
            return None
        limits = self.limits
        if not known and pending_requests() >= limits.pending_requests:
            return "message_requests", (f"{limits.pending_requests} message requests are "
                                        "already waiting for an answer")
        count, used = stored()
        if count >= limits.request_messages or used + size > limits.request_bytes:
            return "request_quota", (f"a message request keeps at most "
                                     f"{limits.request_messages} messages and "
                                     f"{limits.request_bytes >> 10} KiB until it is accepted")
        return None

    def offer_refusal(self, peer_id: str, pending: int) -> str | None:
        """Why one more file offer from ``peer_id`` may not be kept (None: it may)."""
        peer_class = self.classify(peer_id)
        cap = self.limits.pending_offers.of(peer_class)
        if pending >= cap:
            return f"a {peer_class.value} may have {cap} file offers waiting for an answer"
        return None


def _decrement(counter: Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


async def _reset_quietly(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:
        log.debug("resetting a refused stream failed", exc_info=True)


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        log.debug("closing a refused connection failed", exc_info=True)


async def _close_connection(swarm: Swarm, muxed: IMuxedConn) -> None:
    for conn in list(swarm.get_connections(muxed.peer_id)):
        if conn.muxed_conn is muxed:
            await _close_quietly(conn)
    if not muxed.is_closed:
        await _close_quietly(muxed)
