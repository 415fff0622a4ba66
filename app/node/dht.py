"""The Kademlia DHT (``/ipfs/kad/1.0.0``, as on the public libp2p network): finding peers by id.

Built on py-libp2p's ``libp2p.kad_dht.KadDHT``, in server mode, but not run as its ``Service``:
its maintenance loop would query every connected peer (contacts included) and republish
records. Kith drives the DHT itself:

* **Answer** (always): every node serves ``/ipfs/kad/1.0.0``, so a plain Kith can be the
  bootstrap peer of others. It only answers; it sends nothing.
* **Bootstrap and publish** (``NodeConfig.bootstrap`` non-empty): a task connects to the
  bootstrap peers and looks up our own id. That FIND_NODE puts us (and our signed peer record,
  with our current addresses) into the routing tables of the peers closest to us, which is how
  others find us. The record lists ``host.get_addrs()``: our listen addresses and, while a
  relay holds a slot for us, our circuits through it (``relay.install_advertised_addrs``),
  which is what makes a peer behind NAT findable. It repeats every ``REFRESH_INTERVAL``, soon
  after a bootstrap peer drops, and within ``WATCH_INTERVAL`` of our addresses changing.
* **Find** (``find_addrs``, only with bootstrap peers): an iterative FIND_NODE for a peer id;
  the closest peers answer with the addresses they know for it.

Without bootstrap peers no DHT message ever leaves this node.
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.kad_dht.common import PROTOCOL_ID
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from app.core.invite import MAX_ADDR_LENGTH, MAX_ADDRS, strip_p2p
from app.node.host import connect_at, forget_failed_dials
from app.node.relay import parse_relay_addrs
from app.node.signal import Signal

if TYPE_CHECKING:
    from app.node.node import KithNode

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
LOOKUP_TIMEOUT = 20.0
REFRESH_INTERVAL = 300.0
WATCH_INTERVAL = 2.0  # how often the publisher checks that a bootstrap peer is still connected
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0


def parse_bootstrap_addrs(texts: tuple[str, ...]) -> list[tuple[ID, multiaddr.Multiaddr]]:
    """``/ip4/H/tcp/P/p2p/ID`` (or ip6) -> (peer id, address); a ConfigError otherwise."""
    return parse_relay_addrs(texts, what="bootstrap peer")


class DhtService:
    def __init__(self, node: KithNode) -> None:
        self._node = node
        self._bootstrap = parse_bootstrap_addrs(node.config.bootstrap)
        self._kad: KadDHT | None = None
        self.lookups = 0  # find_addrs calls that went to the network
        self.published = 0  # successful self-lookups (our record refreshed)
        self.inbound_from: set[str] = set()  # peers that sent us DHT requests
        self._wake = Signal()  # publish_now(): republish at once
        self._published_addrs: set[str] = set()  # what our last published record said

    @property
    def enabled(self) -> bool:
        """True when bootstrap peers are configured: only then do we send DHT traffic."""
        return bool(self._bootstrap)

    @property
    def kad(self) -> KadDHT:
        if self._kad is None:
            raise RuntimeError("the DHT is not running")
        return self._kad

    def start(self) -> None:
        host = self._node.host
        self._kad = KadDHT(host, DHTMode.SERVER)
        host.set_stream_handler(PROTOCOL_ID, self._handle)  # replaces KadDHT's, wraps it
        if self._bootstrap:
            log.info("DHT: bootstrapping from %d peer(s)", len(self._bootstrap))
            self._node.nursery.start_soon(self._keep_published)

    def publish_now(self) -> None:
        """The network changed: reconnect to bootstrap peers and republish our record now."""
        self._wake.set()

    async def _handle(self, stream: INetStream) -> None:
        """Answer one inbound DHT stream; never lets an exception escape (it wedges the conn)."""
        try:
            self.inbound_from.add(str(stream.muxed_conn.peer_id))
            await self.kad.handle_stream(stream)
        except Exception:
            log.debug("DHT: handling a stream failed", exc_info=True)
            with contextlib.suppress(Exception):
                await stream.reset()

    async def _connect_bootstrap(self) -> int:
        """Connect to every bootstrap peer not yet connected; how many are connected now."""
        host = self._node.host
        count = 0
        for peer_id, addr in self._bootstrap:
            peer = peer_id.to_base58()
            # connect_at lifts py-libp2p's 60 s refusal after a failed dial (a bootstrap peer
            # that restarts is back long before that) and dials exactly this address.
            if not self._node.is_connected(peer) and not await connect_at(
                host, peer, [str(addr)], CONNECT_TIMEOUT
            ):
                log.info("DHT: bootstrap peer %s unreachable at %s", peer, addr)
                continue
            await self.kad.routing_table.add_peer(PeerInfo(peer_id, [addr]))
            count += 1
        return count

    async def _keep_published(self) -> None:
        """Keep our record on the peers closest to us; never raises (node nursery)."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                ok = await self._connect_bootstrap() > 0 and await self._publish()
            except Exception:
                log.warning("DHT: publishing failed", exc_info=True)
                ok = False
            if not ok:
                woken = await self._wake.wait(backoff * random.uniform(0.8, 1.2))
                backoff = FIRST_BACKOFF if woken else min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            deadline = trio.current_time() + REFRESH_INTERVAL
            while trio.current_time() < deadline:
                if await self._wake.wait(WATCH_INTERVAL):
                    break  # the network changed: our addresses may have too
                if self._advertised() != self._published_addrs:
                    log.info("DHT: our addresses changed; publishing them")
                    break
                if not any(self._node.is_connected(p.to_base58()) for p, _ in self._bootstrap):
                    log.info("DHT: lost every bootstrap peer; reconnecting")
                    break

    async def _publish(self) -> bool:
        """A lookup of our own id: the peers it asks store our signed record and addresses."""
        kad = self.kad
        # Our signed record (host.get_addrs(): listen addresses and circuits through the
        # relays holding a slot for us) rides on every request of this lookup.
        advertised = self._advertised()
        with trio.move_on_after(LOOKUP_TIMEOUT):
            await kad.peer_routing.find_closest_peers_network(self._node.host.get_id().to_bytes())
            kad.value_store.cleanup_expired()
            kad.provider_store.cleanup_expired()
            self.published += 1
            if advertised != self._published_addrs:
                log.info("DHT: published our addresses: %s", ", ".join(sorted(advertised)))
            self._published_addrs = advertised
            log.debug("DHT: own record refreshed (%d in routing table)", kad.routing_table.size())
            return True
        return False

    def _advertised(self) -> set[str]:
        return {str(a) for a in self._node.host.get_addrs()}

    async def find_addrs(self, peer_id: str) -> list[str]:
        """The addresses the DHT knows for ``peer_id`` (without ``/p2p``); [] when none or off.

        Never raises. What we knew before is forgotten first, so the answer is the network's.
        """
        if not self._bootstrap or self._kad is None:
            return []
        self.lookups += 1
        host = self._node.host
        try:
            target = ID.from_base58(peer_id)
            with trio.move_on_after(LOOKUP_TIMEOUT):
                await self._connect_bootstrap()
                self.kad.routing_table.remove_peer(target)
                host.get_peerstore().clear_addrs(target)
                forget_failed_dials(host, target)  # new addresses deserve a dial
                await self.kad.peer_routing.find_closest_peers_network(target.to_bytes())
            found = host.get_peerstore().addrs(target)
            forget_failed_dials(host, target)
        except Exception as exc:  # noqa: BLE001 - not found is an answer too
            log.debug("DHT: lookup of %s failed: %s", peer_id, exc)
            return []
        out: list[str] = []
        for addr in found:  # what other peers told us: as bounded as an invite's addresses
            text = strip_p2p(str(addr))
            if len(text) <= MAX_ADDR_LENGTH and text not in out:
                out.append(text)
            if len(out) == MAX_ADDRS:
                break
        log.info("DHT: %s is at %s", peer_id, ", ".join(out) or "(not found)")
        return out

    def info(self) -> dict[str, Any]:
        """Counters for tests and diagnostics."""
        size = self._kad.routing_table.size() if self._kad else 0
        return {"enabled": self.enabled, "routing_table": size, "published": self.published}
