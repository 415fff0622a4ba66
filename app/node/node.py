"""The Kith peer on trio: owns the libp2p host, the database and the protocol services.

Everything here runs in the network thread. The outside world reaches it only through
``app.client.KithClient``, which calls the async methods below and receives ``emit``-ed events.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.utils.address_validation import expand_wildcard_address

from app.core.config import ConfigError, NodeConfig
from app.core.events import (
    ConnectionsChanged,
    Event,
    NodeReady,
    NodeStatus,
    ProfileChanged,
    RelayReserved,
)
from app.core.identity import InvalidPeerId, peer_id_bytes
from app.core.invite import ContactInvite, strip_p2p
from app.node.contacts import ContactService
from app.node.dht import DhtService
from app.node.dm import DirectMessages
from app.node.files import FileTransfers
from app.node.gossip import open_pubsub
from app.node.hole_punch import HolePunching
from app.node.host import build_host, stop_auto_dialing
from app.node.lan import LanDiscovery
from app.node.netwatch import NetWatch
from app.node.reachability import Reachability
from app.node.relay import RelayService
from app.node.rooms import RoomService
from app.store.db import open_database
from app.store.messages import MessageStore
from app.store.profile import Profile, Settings

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]


def parse_listen_addrs(addrs: tuple[str, ...]) -> list[multiaddr.Multiaddr]:
    parsed = []
    for text in addrs:
        try:
            addr = multiaddr.Multiaddr(text)
        except Exception as exc:  # noqa: BLE001 - multiaddr raises a zoo of types
            raise ConfigError(f"{text!r} is not a multiaddress: {exc}") from None
        protocols = [p.name for p in addr.protocols()]
        if protocols[:1] not in (["ip4"], ["ip6"]) or protocols[1:] != ["tcp"]:
            raise ConfigError(f"{text!r}: Kith listens on /ip4/.../tcp/PORT or /ip6/.../tcp/PORT")
        parsed.append(addr)
    return parsed


def _with_port(addr: multiaddr.Multiaddr, port: int) -> multiaddr.Multiaddr:
    parts = str(addr).split("/")
    parts[4] = str(port)
    return multiaddr.Multiaddr("/".join(parts))



def _peer(peer_id: str) -> ID | None:
    """The libp2p id of a Kith peer id (None if it is not one), without base58 each time."""
    try:
        return ID(peer_id_bytes(peer_id))
    except InvalidPeerId:
        return None

class _ConnectionWatcher(INotifee):
    """Turns libp2p's connection notifications into ``ConnectionsChanged`` events."""

    def __init__(self, node: KithNode) -> None:
        self._node = node

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._node.peer_connected(str(conn.muxed_conn.peer_id))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._node.peer_disconnected(str(conn.muxed_conn.peer_id))

    async def listen(self, network: INetwork, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Any) -> None:
        pass


class KithNode:
    def __init__(self, profile: Profile, config: NodeConfig, emit: Emit) -> None:
        self.profile = profile
        self.identity = profile.identity
        self.config = config
        self._emit = emit
        self._host: IHost | None = None
        self._db: sqlite3.Connection | None = None
        self._last_connection_count = 0
        self._nursery: trio.Nursery | None = None
        self._contacts: ContactService | None = None
        self._dms: DirectMessages | None = None
        self._rooms: RoomService | None = None
        self._files: FileTransfers | None = None
        self._relay: RelayService | None = None
        self._dht: DhtService | None = None
        self._lan: LanDiscovery | None = None
        self.netwatch = NetWatch(self.network_changed)
        self._hole_punch: HolePunching | None = None
        self._reach: Reachability | None = None

    @property
    def host(self) -> IHost:
        if self._host is None:
            raise RuntimeError("the node is not running")
        return self._host

    @property
    def nursery(self) -> trio.Nursery:
        """Where the node's background tasks live; one that raises stops the node."""
        if self._nursery is None:
            raise RuntimeError("the node is not running")
        return self._nursery

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the node is not running")
        return self._db

    @property
    def contacts(self) -> ContactService:
        if self._contacts is None:
            raise RuntimeError("the node is not running")
        return self._contacts

    @property
    def dms(self) -> DirectMessages:
        if self._dms is None:
            raise RuntimeError("the node is not running")
        return self._dms

    @property
    def rooms(self) -> RoomService:
        if self._rooms is None:
            raise RuntimeError("the node is not running")
        return self._rooms

    @property
    def files(self) -> FileTransfers:
        if self._files is None:
            raise RuntimeError("the node is not running")
        return self._files

    def unread_total(self) -> int:
        """Unread direct messages and room posts together (the tray's number)."""
        return self.messages.unread_total() + self.rooms.store.unread_total()

    @property
    def messages(self) -> MessageStore:
        return self.dms.store

    def emit(self, event: Event) -> None:
        self._emit(event)
        if isinstance(event, RelayReserved) and self._reach is not None:
            self._reach.check()  # a new slot can change how we are reachable

    @property
    def running(self) -> bool:
        """Listening, with every service up (between ``NodeReady`` and shutdown)."""
        return self._host is not None and self._relay is not None

    def _requested_listen_addrs(self) -> list[multiaddr.Multiaddr]:
        if self.config.listen:
            return parse_listen_addrs(self.config.listen)
        port = self.profile.settings.listen_port
        return [multiaddr.Multiaddr(f"/ip4/{self.config.interface}/tcp/{port}")]

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database, listen, announce readiness, then serve until cancelled."""
        self._db = open_database(self.profile.db_path)
        try:
            requested = self._requested_listen_addrs()
            host = build_host(self.identity, requested)
            self._host = host
            async with (
                host.run(requested),
                open_pubsub(host) as pubsub,
                trio.open_nursery() as nursery,
            ):
                self._nursery = nursery
                await stop_auto_dialing(host)
                await self._listen_fallback(requested)
                self._remember_port()
                self._contacts = ContactService(self)
                self._dms = DirectMessages(self)
                self._rooms = RoomService(self, pubsub)
                self._files = FileTransfers(self)
                host.get_network().register_notifee(_ConnectionWatcher(self))
                self._dht = DhtService(self)
                self._dht.start()
                self._contacts.start()
                self._dms.start()
                self._rooms.start()
                self._files.start()
                self._relay = RelayService(self)
                await self._relay.start()
                self._hole_punch = HolePunching(self)
                await self._hole_punch.start()
                if self.config.lan_discovery:
                    self._lan = LanDiscovery(self)
                    nursery.start_soon(self._lan.run)
                nursery.start_soon(self.netwatch.run)
                self._reach = Reachability(self)
                ready = NodeReady(
                    peer_id=self.identity.peer_id, addrs=tuple(self.addrs()), invite=self.invite(),
                    reachability=self._reach.initial(),
                )
                log.info("listening as %s on %s", ready.peer_id, ", ".join(ready.addrs))
                task_status.started(ready)
                self._emit(ready)
                nursery.start_soon(self._reach.run)
                try:
                    await trio.sleep_forever()
                finally:
                    await self._disconnect_all()
        finally:
            self._host = None
            self._nursery = None
            self._contacts = None
            self._dms = None
            self._rooms = None
            self._files = None
            self._relay = None
            self._hole_punch = None
            self._dht = None
            self._lan = None
            self._reach = None
            self._db.close()
            self._db = None

    async def _disconnect_all(self) -> None:
        """Close every connection so peers see us leave now, not at their next timeout."""
        network = self.host.get_network()
        conns = [conn for per_peer in list(network.connections.values())
                 for conn in (per_peer if isinstance(per_peer, list) else [per_peer])]
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            await _close_connections(conns)

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id`` (py-libp2p's ``host.disconnect`` may leave
        one open: see ``_close_connections``)."""
        per_peer = self.host.get_network().connections.get(ID.from_base58(peer_id), [])
        await _close_connections(list(per_peer if isinstance(per_peer, list) else [per_peer]))

    async def _listen_fallback(self, requested: list[multiaddr.Multiaddr]) -> None:
        """A remembered port that is now taken falls back to a free one, not to silence."""
        if self.host.get_addrs():
            return
        if self.config.listen:
            raise ConfigError(
                "Cannot listen on " + ", ".join(str(a) for a in requested) + ": address in use"
            )
        log.warning("port %s is taken; listening on a free one", self.profile.settings.listen_port)
        await self.host.get_network().listen(*(_with_port(a, 0) for a in requested))
        if not self.host.get_addrs():
            raise ConfigError("Cannot listen on any TCP port")

    def _remember_port(self) -> None:
        if self.config.listen:
            return
        ports = {int(a.value_for_protocol("tcp")) for a in self.host.get_transport_addrs()}
        port = min(ports)
        if port != self.profile.settings.listen_port:
            self.profile.settings.listen_port = port
            self.profile.save_settings()

    def addrs(self) -> list[str]:
        """Full multiaddrs ending in ``/p2p/<id>``, wildcards expanded to real interfaces."""
        out: list[str] = []
        suffix = f"/p2p/{self.identity.peer_id}"
        for addr in self.host.get_transport_addrs():
            for concrete in expand_wildcard_address(addr):
                text = strip_p2p(str(concrete)) + suffix
                if text not in out:
                    out.append(text)
        # Addresses others can use first; loopback last; then relayed ones (circuit relay v2).
        out.sort(key=lambda a: a.startswith(("/ip4/127.", "/ip6/::1/")))
        if self._relay is not None:
            out.extend(a + suffix for a in self._relay.relayed_addrs() if a + suffix not in out)
        return out

    @property
    def relay(self) -> RelayService:
        if self._relay is None:
            raise RuntimeError("the node is not running")
        return self._relay

    @property
    def lan(self) -> LanDiscovery | None:
        """LAN discovery when ``lan_discovery`` is set (``active`` while mDNS runs)."""
        return self._lan

    @property
    def dht(self) -> DhtService:
        if self._dht is None:
            raise RuntimeError("the node is not running")
        return self._dht

    @property
    def reachability(self) -> Reachability:
        if self._reach is None:
            raise RuntimeError("the node is not running")
        return self._reach

    def invite(self) -> str:
        return ContactInvite(
            peer_id=self.identity.peer_id,
            name=self.profile.settings.display_name,
            addrs=tuple(strip_p2p(a) for a in self.addrs()),
        ).to_link()

    def connection_count(self) -> int:
        return len(self.host.get_connected_peers()) if self._host else 0

    def is_connected(self, peer_id: str) -> bool:
        """One lookup, not a scan (room summaries ask this for every member)."""
        peer = _peer(peer_id)
        return peer is not None and bool(self.host.get_network().connections.get(peer))

    def peer_connected(self, peer_id: str) -> None:
        if self._contacts is None:  # a late notification while shutting down
            return
        self.contacts.connected(peer_id)
        self.rooms.peer_connected(peer_id)
        self.files.peer_connected(peer_id)
        if self._hole_punch is not None:
            self._hole_punch.peer_connected(peer_id)
        self.connections_changed()
        self._routes_changed(peer_id)

    def peer_disconnected(self, peer_id: str) -> None:
        if self._contacts is None:  # connections closing after the services stopped
            return
        self.contacts.disconnected(peer_id)
        if not self.is_connected(peer_id):
            self.rooms.peer_disconnected(peer_id)
        if self._hole_punch is not None:
            self._hole_punch.peer_disconnected(peer_id)
        if self._relay is not None:
            self._relay.peer_disconnected(peer_id)
        self.connections_changed()
        self._routes_changed(peer_id)

    def network_changed(self) -> None:
        """An interface address or link changed (``NetWatch``): reconnect now, not after the
        backoffs run out; renew relay slots and our DHT record, which may be stale too."""
        if self._contacts is None or self._relay is None:
            return
        self.contacts.network_changed()
        self.relay.reserve_now()
        if self.dht.enabled:
            self.dht.publish_now()
        if self._lan is not None:
            self._lan.refresh()
        if self._reach is not None:
            self._reach.check()

    def _routes_changed(self, peer_id: str) -> None:
        if self._reach is not None:
            self._reach.update_route(peer_id)
            self._reach.check()  # losing a relay's connection loses its slot

    def connections_changed(self) -> None:
        count = self.connection_count()
        if count != self._last_connection_count:
            self._last_connection_count = count
            self._emit(ConnectionsChanged(connections=count))

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Validate and save (this thread is the settings file's one writer); a new display
        name applies at once: invites, profile answers and room posts read it from here."""
        old = self.profile.settings
        new = old.with_changes(**changes)
        self.profile.settings = new
        await trio.to_thread.run_sync(self.profile.save_settings)
        if new.display_name != old.display_name:
            self._emit(ProfileChanged(display_name=new.display_name, invite=self.invite()))
        return copy.deepcopy(new)

    async def status(self) -> NodeStatus:
        return NodeStatus(
            peer_id=self.identity.peer_id,
            addrs=tuple(self.addrs()),
            invite=self.invite(),
            connections=self.connection_count(),
            reachability=self._reach.check() if self._reach is not None else "offline",
        )


async def _close_connections(conns: list[INetConn]) -> None:
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
