"""LAN discovery over mDNS (DNS-SD), with ``zeroconf`` directly.

Kith announces the service type ``_kith._tcp.local.``: one instance per peer, named after its
peer id, whose address records are the non-loopback IPv4 addresses Kith listens on and whose TXT
record carries ``id`` (the peer id) and ``name`` (the display name). py-libp2p's own mDNS
(``_p2p._udp.local.``) is not used: it always multicasts on every interface of the machine.

Multicast goes only out of the interfaces Kith listens on: zeroconf is bound to exactly those
addresses. A node listening on loopback alone (or on nothing but IPv6) does not start zeroconf
at all, so it sends no multicast anywhere.

zeroconf calls back on its own thread; the callbacks only hand the service name to trio
(``TrioToken.run_sync_soon``). Everything else (resolving, validating, storing addresses,
waking a contact's dialer, emitting ``PeerNearby``) happens in the network thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import TYPE_CHECKING, Any

import multiaddr
import trio

from app.core.events import PeerGone, PeerNearby
from app.core.identity import is_valid_peer_id
from app.core.invite import clean_display_name
from app.core.records import ContactState
from app.node.host import connect_at

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

    from app.node.node import KithNode

log = logging.getLogger(__name__)

SERVICE_TYPE = "_kith._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
MAX_PEER_ID = 64  # bytes; base58 Ed25519 peer ids are 52
MAX_NAME = 200  # bytes of TXT value before clean_display_name trims it further
MAX_ADDRS = 8  # addresses taken from one record
DIAL_TIMEOUT = 10.0
MAX_NEARBY = 256  # peers remembered at once (a hostile LAN cannot grow this without bound)


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

    def __init__(self, node: KithNode) -> None:
        self._node = node
        self._zc: Zeroconf | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self.nearby: dict[str, str] = {}  # peer id -> name, as announced
        self._refresh = trio.Event()

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
            ips = lan_ipv4(self._node.addrs())
            if not ips:
                log.info("LAN discovery off: Kith listens on no LAN IPv4 address")
                await self._refresh.wait()
                continue
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, ips)
                while lan_ipv4(self._node.addrs()) == ips:
                    await self._refresh.wait()
                    self._refresh = trio.Event()
                nursery.cancel_scope.cancel()
            for peer_id in list(self.nearby):  # they were nearby on the network we left
                del self.nearby[peer_id]
                self._node.emit(PeerGone(peer_id=peer_id))

    async def _serve(self, ips: dict[str, int]) -> None:
        """Announce and browse on ``ips`` until cancelled."""
        from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

        self._token = trio.lowlevel.current_trio_token()
        peer_id = self._node.identity.peer_id
        port = next(iter(ips.values()))
        addresses = [ipaddress.IPv4Address(ip).packed for ip, p in ips.items() if p == port]
        name = self._node.profile.settings.display_name.encode("utf-8")[:MAX_NAME]
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
        if self._zc is None or service_type != SERVICE_TYPE:
            return
        if change == "Removed":
            peer_id = name.removesuffix("." + SERVICE_TYPE)
            if self.nearby.pop(peer_id, None) is not None:
                self._node.emit(PeerGone(peer_id=peer_id))
            return
        with contextlib.suppress(RuntimeError):  # the node is stopping
            self._node.nursery.start_soon(self._resolve, name)

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
        """A resolved record: validate, remember, tell the interfaces, help the dialer."""
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
        if not is_valid_peer_id(peer_id) or peer_id == self._node.identity.peer_id:
            return
        if info.name != f"{peer_id}.{SERVICE_TYPE}":
            return  # the instance name must be the peer id it claims
        addrs = self._addrs(info)
        if peer_id not in self.nearby and len(self.nearby) >= MAX_NEARBY:
            return
        if self.nearby.get(peer_id) != name:
            self.nearby[peer_id] = name
            self._node.emit(PeerNearby(peer_id=peer_id, name_=name, addrs=tuple(addrs)))
        log.debug("nearby on the LAN: %s (%s) at %s", peer_id, name, ", ".join(addrs) or "-")
        contacts = self._node.contacts
        if addrs and contacts.store.state(peer_id) is ContactState.CONTACT:
            contacts.store.add_addrs(peer_id, addrs, "lan")
            if not self._node.is_connected(peer_id):
                self._node.nursery.start_soon(self._dial, peer_id, addrs)

    async def _dial(self, peer_id: str, addrs: list[str]) -> None:
        """Dial the LAN addresses now rather than at the contact's next back-off."""
        ok = await connect_at(self._node.host, peer_id, addrs, DIAL_TIMEOUT)
        log.info("dialing nearby contact %s: %s", peer_id, "connected" if ok else "failed")

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
