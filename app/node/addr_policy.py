"""Which addresses a peer's word may make us dial, and which of our own networks we are on.

Peers tell us addresses in identify, in DCUtR's CONNECT, in DHT answers and in their signed
records. A peer that lists an address asks us to open a TCP connection there: to a third party,
to a service on our own LAN, to a cloud metadata endpoint, or to a name we would have to look up.
``refusal`` says whether such a claimed address may be dialled:

* only ``/ip4|ip6/<ip>/tcp/<port>`` (a trailing ``/p2p/<id>`` is allowed): no DNS names (dialling
  one makes a DNS lookup on a stranger's word) and no other transports;
* never unspecified (``0.0.0.0``, ``::``), ``0.0.0.0/8``, multicast, broadcast and reserved
  (``240.0.0.0/4``, which holds ``255.255.255.255``), link-local (``169.254.0.0/16``, where cloud
  metadata services live, and ``fe80::/10``), IPv4-mapped IPv6, or port 0;
* private ranges (RFC 1918, carrier-grade NAT ``100.64.0.0/10``, loopback, unique-local
  ``fc00::/7``) only when this computer has an address on that same network, and never its
  network or broadcast address;
* anything else passes: global addresses, and the documentation ranges (``192.0.2.0/24``,
  ``198.51.100.0/24``, ``203.0.113.0/24``) that Kith's network tests stand the internet in with.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence

from multiaddr import Multiaddr

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
              "fc00::/7", "::1/128", "fec0::/10")
)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
NETWORKS_TTL = 5.0  # how long the list of our own networks is reused

_cache: tuple[float, tuple[IPNetwork, ...]] = (-NETWORKS_TTL, ())


def local_networks() -> tuple[IPNetwork, ...]:
    """The networks this computer has an address on (each interface address with its mask),
    read again at most every ``NETWORKS_TTL`` seconds."""
    global _cache
    now = time.monotonic()
    if now - _cache[0] < NETWORKS_TTL:
        return _cache[1]
    import psutil  # a dependency of multiaddr, so always present with libp2p

    found: list[IPNetwork] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6) or not a.netmask:
                continue
            try:
                net = ipaddress.ip_interface(f"{a.address.split('%')[0]}/{a.netmask}").network
            except ValueError:
                continue
            if net not in found:
                found.append(net)
    _cache = (now, tuple(found))
    return _cache[1]


def tcp_endpoint(addr: Multiaddr | str) -> tuple[IPAddress, int] | None:
    """(ip, port) of ``/ip4|ip6/H/tcp/P`` with at most a ``/p2p/ID`` after it; else None."""
    parts = str(addr).split("/")
    if len(parts) == 7 and parts[5] == "p2p":
        parts = parts[:5]
    if len(parts) != 5 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        return None
    try:
        ip = ipaddress.ip_address(parts[2])
        port = int(parts[4])
    except ValueError:
        return None
    if (ip.version == 4) != (parts[1] == "ip4") or not 0 <= port < 65536:
        return None
    return ip, port


def socket_key(addr: Multiaddr | str) -> str | None:
    """``/ip4/H/tcp/P`` for a plain TCP address (the socket it names); None otherwise."""
    endpoint = tcp_endpoint(addr)
    if endpoint is None:
        return None
    ip, port = endpoint
    return f"/ip{ip.version}/{ip}/tcp/{port}"


def is_private(ip: IPAddress) -> bool:
    return any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)


def refusal(addr: Multiaddr | str, networks: Sequence[IPNetwork] | None = None) -> str | None:
    """Why a peer's claimed address must not be dialled, or None when it may be.

    ``networks`` are ours (``local_networks()`` when not given)."""
    endpoint = tcp_endpoint(addr)
    if endpoint is None:
        if str(addr).startswith(("/dns", "/dnsaddr")):
            return "a DNS name"
        return "not a plain TCP address"
    ip, port = endpoint
    if port == 0:
        return "port 0"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6"
    if ip.is_unspecified or ip in THIS_NETWORK:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link-local"
    if ip.is_reserved:
        return "reserved or broadcast"
    if is_private(ip):
        own = local_networks() if networks is None else networks
        if not any(_inside(ip, net) for net in own):
            return "private, and not on a network of ours"
    return None


def _inside(ip: IPAddress, net: IPNetwork) -> bool:
    """``ip`` is a host of ``net`` (not its network or broadcast address, when it has them)."""
    if ip.version != net.version or ip not in net:
        return False
    if ip.is_loopback or net.prefixlen >= net.max_prefixlen - 1:
        return True
    return ip not in (net.network_address, net.broadcast_address)


def own_ips() -> set[IPAddress]:
    """The addresses this computer itself has (from ``psutil``)."""
    import psutil

    out: set[IPAddress] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    out.add(ipaddress.ip_address(a.address.split("%")[0]))
                except ValueError:
                    continue
    return out
