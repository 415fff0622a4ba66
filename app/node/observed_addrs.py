"""Our address as others see it, believed only when confirmed.

Behind a NAT, the address a peer observes for us (identify's ``observed_addr``) is the one others
must dial, and hole punching (DCUtR) predicts our public address from it. It is also the
peer's word alone: py-libp2p 0.8.1 advertises an observed address in identify and in our signed
DHT record once four connections from four source IPs report it (one attacker with four source
addresses), and puts any single observation into the DCUtR CONNECT it sends to our contacts.

``ObservedAddrs`` replaces py-libp2p's manager
(``libp2p_patches.peerstore.install_observed_addrs``) and counts an observed address only when

* a trusted peer reported it: a contact, a relay or a DHT bootstrap peer we were configured
  with (and, for one DCUtR exchange, the relay carrying it: ``confirmed(also=...)``), or
* peers on ``CONFIRMING_NETWORKS`` distinct networks reported it (``/16`` for IPv4, ``/48`` for
  IPv6), as AutoNAT asks several independent peers.

An observation can never stand for what we know we listen on: one naming an address of this
computer, or an address no peer's claim may name (``addr_policy``: unspecified, multicast,
link-local, reserved), is not recorded. What py-libp2p's manager does with observations (NAT
type guesses) goes on unchanged.
"""

from __future__ import annotations

import ipaddress
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libp2p.host.observed_addr_manager import ACTIVATION_THRESHOLD, ObservedAddrManager
from multiaddr import Multiaddr

from app.node.addr_policy import own_ips, tcp_endpoint

log = logging.getLogger(__name__)

CONFIRMING_NETWORKS = 4  # distinct observer networks that confirm an address on their own
MAX_CONFIRMED = 3  # confirmed addresses advertised at once (py-libp2p: 3 per listen address)
MAX_OBSERVATIONS = 1024  # live observations kept (one per connection)


@dataclass(frozen=True)
class _Observation:
    conn: weakref.ReferenceType[Any]
    addr: str  # what the peer says we are: /ip4/H/tcp/P
    observer: str  # the peer id that said it
    network: str  # the network the observer connected from (/16 or /48)


def observer_network(ip: str) -> str:
    """The network an observer counts for: its IPv4 /16 or IPv6 /48."""
    parsed = ipaddress.ip_address(ip.split("%")[0])
    prefix = 16 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


class ObservedAddrs(ObservedAddrManager):
    """py-libp2p's ``ObservedAddrManager`` with Kith's confirmation rule (module docstring)."""

    def __init__(self, trusted: Callable[[str], bool]) -> None:
        super().__init__()
        self._trusted = trusted
        self._seen: dict[int, _Observation] = {}

    def record_observation(
        self, conn: Any, observed_addr: Multiaddr, local_addrs: list[Multiaddr]
    ) -> None:
        super().record_observation(conn, observed_addr, local_addrs)
        endpoint = tcp_endpoint(observed_addr)
        if endpoint is None or getattr(conn, "is_closed", False):
            return
        ip, port = endpoint
        if (port == 0 or ip.is_unspecified or ip.is_multicast or ip.is_link_local
                or ip.is_reserved or ip.is_loopback or ip in own_ips()):
            log.debug("ignoring an observed address that cannot be ours: %s", observed_addr)
            return
        try:
            remote = conn.muxed_conn.get_remote_address()
            network = observer_network(str(remote[0]))
            observer = str(conn.muxed_conn.peer_id)
        except Exception:  # noqa: BLE001 - a closing connection may not say; skip it
            return
        if id(conn) not in self._seen and len(self._seen) >= MAX_OBSERVATIONS:
            self._seen.pop(next(iter(self._seen)))
        self._seen[id(conn)] = _Observation(
            weakref.ref(conn), f"/ip{ip.version}/{ip}/tcp/{port}", observer, network
        )

    def remove_conn(self, conn: Any) -> None:
        super().remove_conn(conn)
        seen = self._seen.get(id(conn))
        if seen is not None and seen.conn() is conn:
            del self._seen[id(conn)]

    def confirmed(self, also: str | None = None) -> list[str]:
        """Our confirmed observed addresses (``/ipX/H/tcp/P``), best first; ``also`` is one
        more peer id to trust (the relay of a DCUtR exchange)."""
        trusted: dict[str, bool] = {}
        networks: dict[str, set[str]] = {}
        for seen in list(self._seen.values()):
            conn = seen.conn()
            if conn is None or getattr(conn, "is_closed", False):
                continue
            by_trusted = seen.observer == also or self._trusted(seen.observer)
            trusted[seen.addr] = trusted.get(seen.addr, False) or by_trusted
            networks.setdefault(seen.addr, set()).add(seen.network)
        good = [a for a in networks if trusted[a] or len(networks[a]) >= CONFIRMING_NETWORKS]
        good.sort(key=lambda a: (not trusted[a], -len(networks[a]), a))
        return good[:MAX_CONFIRMED]

    def addrs(self, min_observers: int = ACTIVATION_THRESHOLD) -> list[Multiaddr]:
        """What py-libp2p advertises (identify, our signed record): the confirmed addresses.

        ``min_observers`` is ignored: py-libp2p's DCUtR asks for 1 to use any observation."""
        return [Multiaddr(a) for a in self.confirmed()]
