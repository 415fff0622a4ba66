"""Patches to py-libp2p 0.8.1's peerstore and identify: what a peer can make us keep, and
whose word sets the address we advertise."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import libp2p.host.basic_host
import libp2p.identity.identify_push.identify_push
from libp2p.abc import IHost
from libp2p.host.observed_addr_manager import ObservedAddrManager
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.peer.peerdata import PeerData

from app.node.dht_records import MAX_ADDR_BYTES, MAX_RECORD_ADDRS, DhtBoundsError, check_record

log = logging.getLogger(__name__)

MAX_PEERSTORE_ADDRS = 32  # addresses the peerstore keeps a peer (the newest)
MAX_IDENTIFY_PROTOCOLS = 64  # protocols kept from a peer's identify
MAX_PROTOCOL_LENGTH = 128  # characters of one protocol id


def install_observed_addrs(host: IHost, manager: ObservedAddrManager) -> None:
    """py-libp2p 0.8.1: ``manager`` is ``host``'s observed-address manager.

    py-libp2p's ``BasicHost`` keeps one in ``_observed_addr_manager``: identify feeds it
    (``record_observation``), a closed connection leaves it (``remove_conn``), and
    ``get_addrs`` (identify, our signed peer record) and DCUtR read it (``addrs``). Its own
    counts an address once four source IPs report it, which one attacker can do; Kith's
    (``app.node.observed_addrs.ObservedAddrs``) wants trusted or independent confirmation.
    """
    if not hasattr(host, "_observed_addr_manager"):
        raise RuntimeError("py-libp2p's host has no _observed_addr_manager any more")
    host._observed_addr_manager = manager


def bound_peer_addrs() -> None:
    """py-libp2p 0.8.1: ``PeerData.add_addrs`` is linear and bounded.

    py-libp2p checks ``addr not in self.addrs`` (a list) for each address added: one DHT
    answer naming a peer with 20,000 addresses stalled the network thread 11.4 s, and nothing
    bounds how many a peer keeps. Here a set of the addresses' bytes does the check, and a peer
    keeps its ``MAX_PEERSTORE_ADDRS`` newest addresses.
    """
    if getattr(PeerData.add_addrs, "_kith", False):
        return

    def add_addrs(self: PeerData, addrs: Any) -> None:
        known = {a.to_bytes() for a in self.addrs}
        for addr in addrs:
            key = addr.to_bytes()
            if key not in known:
                known.add(key)
                self.addrs.append(addr)
        if len(self.addrs) > MAX_PEERSTORE_ADDRS:
            del self.addrs[: len(self.addrs) - MAX_PEERSTORE_ADDRS]

    add_addrs._kith = True  # type: ignore[attr-defined]
    PeerData.add_addrs = add_addrs  # type: ignore[method-assign]


# The modules that call ``update_peerstore_from_identify`` on what a peer sent (identify and
# identify/push); each imported it by name.
IDENTIFY_MODULES = (libp2p.host.basic_host, libp2p.identity.identify_push.identify_push)


def bound_identify() -> None:
    """py-libp2p 0.8.1: a peer's identify message is cut to Kith's bounds before it reaches the
    peerstore.

    py-libp2p keeps up to 1,000 listen addresses and every protocol a peer lists (a
    1 MiB message of them is allowed), for as long as the peer stays in the peerstore: 30
    strangers grew the process by 170 MB. Kept here: ``MAX_RECORD_ADDRS`` addresses of at most
    ``MAX_ADDR_BYTES``, ``MAX_IDENTIFY_PROTOCOLS`` protocols of at most
    ``MAX_PROTOCOL_LENGTH`` characters, and the signed record only within the DHT's bounds.
    """
    for module in IDENTIFY_MODULES:
        update: Any = module.update_peerstore_from_identify
        if getattr(update, "_kith", False):
            continue
        module.update_peerstore_from_identify = _bounded_update(update)  # type: ignore[attr-defined]


def _bounded_update(update: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    async def bounded(peerstore: Any, peer_id: Any, message: Identify) -> None:
        await update(peerstore, peer_id, within_identify_bounds(message))

    bounded._kith = True  # type: ignore[attr-defined]
    return bounded


def within_identify_bounds(message: Identify) -> Identify:
    """A copy of ``message`` with only what Kith keeps of a peer's identify."""
    kept = Identify()
    name: Any
    for name, limit in (("public_key", 4096), ("observed_addr", MAX_ADDR_BYTES),
                        ("protocol_version", MAX_PROTOCOL_LENGTH),
                        ("agent_version", MAX_PROTOCOL_LENGTH)):
        if message.HasField(name) and len(getattr(message, name)) <= limit:
            setattr(kept, name, getattr(message, name))
    kept.listen_addrs.extend(
        [a for a in message.listen_addrs if len(a) <= MAX_ADDR_BYTES][:MAX_RECORD_ADDRS])
    kept.protocols.extend(
        [p for p in message.protocols if len(p) <= MAX_PROTOCOL_LENGTH][:MAX_IDENTIFY_PROTOCOLS])
    if message.HasField("signedPeerRecord"):
        try:
            check_record(message.signedPeerRecord)
            kept.signedPeerRecord = message.signedPeerRecord
        except DhtBoundsError:
            pass
    return kept
