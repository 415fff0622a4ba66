"""Patches to py-libp2p 0.8.1's host: the addresses it advertises, and dials through relays."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import multiaddr
from libp2p.abc import IHost
from libp2p.peer.peerinfo import PeerInfo
from libp2p.utils.address_validation import expand_wildcard_address

log = logging.getLogger(__name__)

DialCircuit = Callable[[multiaddr.Multiaddr, PeerInfo], Awaitable[None]]


def is_circuit(addr: multiaddr.Multiaddr | str) -> bool:
    return "/p2p-circuit" in str(addr)


def advertise_addrs(host: IHost, relayed: Callable[[], list[str]]) -> None:
    """py-libp2p 0.8.1: ``host.get_addrs`` is what others should dial: wildcards expanded,
    ``relayed()`` (our ``.../p2p-circuit`` addresses) added.

    ``get_addrs`` feeds identify, our signed peer record (sent with every DHT request, so the
    peers closest to us hand it to whoever looks us up) and, on a relay, the addresses a
    reservation answer lists. py-libp2p leaves ``/ip4/0.0.0.0`` in it (a relay listening on
    every interface would advertise none) and knows nothing of our reservations (a peer behind
    NAT would publish only addresses nobody can reach). go-libp2p does both. The method is
    replaced on this host only.
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


def route_circuit_dials(host: IHost, dial_circuit: DialCircuit) -> None:
    """py-libp2p 0.8.1: ``host.connect`` to a ``PeerInfo`` with ``/p2p-circuit`` addresses
    dials its direct addresses first, then each circuit with ``dial_circuit`` until one works.

    py-libp2p's swarm drops relay addresses before it chooses a transport (and its circuit
    transport leaves a stream open at the relay when a dial through it is cancelled, see
    ``app.node.relay.dial_circuit``), so ``connect`` is replaced on this host only; a
    ``PeerInfo`` without circuits goes to the original.
    """
    direct_connect = host.connect

    async def connect(peer_info: PeerInfo) -> None:
        circuits = [a for a in peer_info.addrs if is_circuit(a)]
        if not circuits:
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
        for circuit in circuits:
            try:
                await dial_circuit(circuit, peer_info)
                return
            except Exception as exc:  # noqa: BLE001 - try the next relay
                log.debug("relayed dial %s via %s failed: %s", peer_info.peer_id, circuit, exc)
                error = exc
        raise ConnectionError(
            f"could not reach {peer_info.peer_id} directly or through a relay: {error}")

    setattr(host, "connect", connect)  # noqa: B010 - an instance attribute wraps the method
