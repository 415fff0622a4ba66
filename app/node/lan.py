"""LAN discovery over mDNS (DNS-SD), with ``zeroconf`` directly.

Kith announces the service type ``_kith._tcp.local.``: one instance per peer, named after its
peer id, whose address records are the non-loopback IPv4 addresses Kith listens on and whose TXT
record carries ``id`` (the peer id) and ``name`` (the display name). py-libp2p's own mDNS
(``_p2p._udp.local.``) is not used: it always multicasts on every interface of the machine.

Multicast goes only out of the interfaces Kith listens on: zeroconf is bound to exactly those
addresses. A node listening on loopback alone (or on nothing but IPv6) does not start zeroconf
at all, so it sends no multicast anywhere.

zeroconf calls back on its own thread; the callbacks only hand the service name to trio
(``TrioToken.run_sync_soon``). Everything else (resolving, validating, proving, storing
addresses, emitting ``PeerNearby``) happens in the network thread.

A record is a claim anyone on the LAN can make, in anyone's name. It counts only once a
connection to one of its addresses proves the claimed key (Noise authenticates the peer id):
only then is the peer reported nearby and, for a contact, that one proven address stored (and
the connection kept). A record that proves nothing is logged and forgotten: it can neither
show a peer as nearby that is not there nor fill a contact's address book.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from app.core.events import PeerGone, PeerNearby
from app.core.identity import is_valid_peer_id
from app.core.invite import clean_display_name
from app.core.records import ContactState
from app.node.interfaces import AddressBook, Connections, Emit, LocalPeer, Tasks

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_kith._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
MAX_PEER_ID = 64  # bytes; base58 Ed25519 peer ids are 52
MAX_NAME = 200  # bytes of TXT value before clean_display_name trims it further
MAX_ADDRS = 8  # addresses taken from one record
PROVE_TIMEOUT = 5.0  # per address of a claim: a LAN peer answers fast or not at all
MAX_PROVING = 4  # claims being proven at once
MAX_NEARBY = 256  # peers remembered at once, and claims waiting (a hostile LAN is bounded)


def lan_ipv4(addrs: list[str]) -> dict[str, int]:
    """The non-loopback IPv4 addresses (with their TCP port) among full multiaddrs."""
    out: dict[str, int] = {}
    for text in addrs:
        parts = text.split("/")
        if len(parts) < 5 or parts[1] != "ip4" or parts[3] != "tcp" or "p2p-circuit" in parts:
            continue
        try:
            ip = ipaddress.IPv4Address(parts[2])
            port = int(parts[4])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
            continue
        out.setdefault(str(ip), port)
    return out


class LanDiscovery:
    """Announce this peer and find others on the LAN; ``active`` while zeroconf runs."""

    def __init__(self, host: IHost, nursery: Tasks, emit: Emit, us: LocalPeer,
                 contacts: AddressBook, connections: Connections) -> None:
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._us = us
        self._contacts = contacts
        self._connections = connections
        self._zc: Zeroconf | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self.nearby: dict[str, str] = {}  # peer id -> name, as announced, once proven
        self._refresh = trio.Event()
        self._claims: dict[str, tuple[str, list[str]]] = {}  # peer id -> latest (name, addrs)
        self._proving: set[str] = set()
        self._slots = trio.Semaphore(MAX_PROVING)

    @property
    def active(self) -> bool:
        return self._zc is not None

    def refresh(self) -> None:
        """The machine's network changed: announce on the addresses Kith listens on now."""
        self._refresh.set()

    async def run(self) -> None:
        """Serve until cancelled (a task in the node's nursery), following address changes."""
        while True:
            self._refresh = trio.Event()
            ips = lan_ipv4(self._us.addrs())
            if not ips:
                log.info("LAN discovery off: Kith listens on no LAN IPv4 address")
                await self._refresh.wait()
                continue
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, ips)
                while lan_ipv4(self._us.addrs()) == ips:
                    await self._refresh.wait()
                    self._refresh = trio.Event()
                nursery.cancel_scope.cancel()
            for peer_id in list(self.nearby):  # they were nearby on the network we left
                del self.nearby[peer_id]
                self._emit(PeerGone(peer_id=peer_id))

    async def _serve(self, ips: dict[str, int]) -> None:
        """Announce and browse on ``ips`` until cancelled."""
        from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

        self._token = trio.lowlevel.current_trio_token()
        peer_id = self._us.identity.peer_id
        port = next(iter(ips.values()))
        addresses = [ipaddress.IPv4Address(ip).packed for ip, p in ips.items() if p == port]
        name = self._us.display_name().encode("utf-8")[:MAX_NAME]
        info = ServiceInfo(
            SERVICE_TYPE, f"{peer_id}.{SERVICE_TYPE}", port=port, addresses=addresses,
            properties={b"id": peer_id.encode(), b"name": name}, server=f"{peer_id}.local.",
        )
        zc = await trio.to_thread.run_sync(
            lambda: Zeroconf(interfaces=list(ips), ip_version=IPVersion.V4Only)
        )
        self._zc = zc
        browser = None
        try:
            log.info("LAN discovery on %s", ", ".join(ips))
            browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[self._on_change])
            await trio.to_thread.run_sync(zc.register_service, info)
            await trio.sleep_forever()
        finally:
            self._zc = None
            with trio.CancelScope(shield=True):
                if browser is not None:
                    browser.cancel()
                await trio.to_thread.run_sync(self._close, zc)

    @staticmethod
    def _close(zc: Zeroconf) -> None:
        try:
            zc.unregister_all_services()
        finally:
            zc.close()

    # -- zeroconf's thread ----------------------------------------------------------------------

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        """Runs on a zeroconf thread: only hands over to trio."""
        token = self._token
        if token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._changed, service_type, name, state_change.name)

    # -- the network thread ---------------------------------------------------------------------

    def _changed(self, service_type: str, name: str, change: str) -> None:
        """A trio callback (``run_sync_soon``): an exception here would end ``trio.run``
        itself, so a change that fails is logged and dropped."""
        try:
            self._take_change(service_type, name, change)
        except Exception:
            log.warning("LAN: dropped a record change for %r", name, exc_info=True)

    def _take_change(self, service_type: str, name: str, change: str) -> None:
        if self._zc is None or service_type != SERVICE_TYPE:
            return
        if change == "Removed":
            peer_id = name.removesuffix("." + SERVICE_TYPE)
            if self.nearby.pop(peer_id, None) is not None:
                self._emit(PeerGone(peer_id=peer_id))
            return
        with contextlib.suppress(RuntimeError):  # the node is stopping
            self._nursery.start_soon(self._resolve, name)

    async def _resolve(self, name: str) -> None:
        zc = self._zc
        if zc is None:
            return
        info = await trio.to_thread.run_sync(
            lambda: zc.get_service_info(SERVICE_TYPE, name, RESOLVE_TIMEOUT_MS)
        )
        if info is not None and self._zc is not None:
            self.found(info)

    def found(self, info: ServiceInfo) -> None:
        """A resolved record: validate it, then prove it (``_prove_claims``) before it counts."""
        props = info.properties or {}
        raw_id, raw_name = props.get(b"id"), props.get(b"name")
        if not isinstance(raw_id, bytes) or len(raw_id) > MAX_PEER_ID:
            return
        try:
            peer_id = raw_id.decode("ascii")
        except UnicodeDecodeError:
            return
        try:
            name = clean_display_name((raw_name or b"").decode("utf-8")[:MAX_NAME])
        except ValueError:
            name = ""
        if not is_valid_peer_id(peer_id) or peer_id == self._us.identity.peer_id:
            return
        if info.name != f"{peer_id}.{SERVICE_TYPE}":
            return  # the instance name must be the peer id it claims
        addrs = self._addrs(info)
        if not addrs or (peer_id not in self.nearby and len(self.nearby) >= MAX_NEARBY):
            return
        if self._contacts.state(peer_id) is ContactState.BLOCKED:
            return  # never dialed, never shown
        if peer_id not in self._claims and len(self._claims) >= MAX_NEARBY:
            return
        self._claims[peer_id] = (name, addrs)  # a newer record replaces one not yet proven
        if peer_id not in self._proving:
            self._proving.add(peer_id)
            self._nursery.start_soon(self._prove_claims, peer_id)

    async def _prove_claims(self, peer_id: str) -> None:
        """Prove the claims about ``peer_id`` one at a time (the latest one waiting wins).

        A task in the node's nursery: whatever a claim does, it never escapes."""
        try:
            while (claim := self._claims.pop(peer_id, None)) is not None:
                name, addrs = claim
                try:
                    async with self._slots:
                        proven = await self._prove(peer_id, addrs)
                except Exception:  # one bad claim must not stop the node
                    log.warning("LAN: checking a record for %s failed", peer_id, exc_info=True)
                    continue
                if proven is None:
                    log.info("LAN: a record says %s is at %s; nothing there proves its key",
                             peer_id, ", ".join(addrs))
                else:
                    self._nearby(peer_id, name, proven)
        finally:
            self._proving.discard(peer_id)

    async def _prove(self, peer_id: str, addrs: list[str]) -> str | None:
        """The first of ``addrs`` where a connection authenticates ``peer_id``; None if none.

        A connection we already have to one of them proves it; otherwise each is dialed in
        turn (a contact's connection is kept, a stranger's closed once it proved the claim).
        """
        for conn in self._connections.connections_to(peer_id):
            if _remote_tcp(conn) in addrs:
                return _remote_tcp(conn)
        peer = ID.from_base58(peer_id)
        network = self._host.get_network()
        for addr in addrs:
            with trio.move_on_after(PROVE_TIMEOUT):
                try:
                    conn = await network.dial_addr(multiaddr.Multiaddr(addr), peer)
                except Exception as exc:  # noqa: BLE001 - refused, timed out, another key
                    log.debug("LAN: %s at %s: %s", peer_id, addr, exc)
                    continue
                if self._contacts.state(peer_id) is not ContactState.CONTACT:
                    await conn.close()
                return addr
        return None

    def _nearby(self, peer_id: str, name: str, addr: str) -> None:
        """A proven claim: report the peer, and store the address of a contact."""
        if self.nearby.get(peer_id) != name:
            self.nearby[peer_id] = name
            self._emit(PeerNearby(peer_id=peer_id, name_=name, addrs=(addr,)))
        log.info("nearby on the LAN: %s (%s) at %s", peer_id, name, addr)
        if self._contacts.state(peer_id) is ContactState.CONTACT:
            self._contacts.remember_addrs(peer_id, [addr], "lan")

    @staticmethod
    def _addrs(info: ServiceInfo) -> list[str]:
        from zeroconf import IPVersion

        port = info.port
        if port is None or not 0 < port < 65536:
            return []
        out = []
        for ip in info.parsed_addresses(IPVersion.V4Only)[:MAX_ADDRS]:
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                continue
            if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
                continue
            text = f"/ip4/{addr}/tcp/{port}"
            try:
                multiaddr.Multiaddr(text)
            except Exception:  # noqa: BLE001
                continue
            out.append(text)
        return out


def _remote_tcp(conn: object) -> str:
    """``/ip4/IP/tcp/PORT`` of a connection's remote end ("" when unknown)."""
    try:
        remote = conn.muxed_conn.get_remote_address()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a closing connection may not know any more
        return ""
    return f"/ip4/{remote[0]}/tcp/{remote[1]}" if remote else ""
