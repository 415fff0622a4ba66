"""The Kademlia DHT (``/ipfs/kad/1.0.0``, as on the public libp2p network): finding peers by id.

Built on py-libp2p's ``libp2p.kad_dht.KadDHT`` in client mode, and not run as its ``Service``:
its maintenance loop would query every connected peer (contacts included) and republish
records. Kith drives the DHT itself:

* **Serve** (``NodeConfig.serve_dht`` only): ``app.node.dht_server`` answers
  ``/ipfs/kad/1.0.0`` for others (FIND_NODE and PING, holding their signed records within a
  byte budget), so such a Kith can be the bootstrap peer of others. Every other Kith is a DHT
  client: it never answers, and stores nothing for anyone.
* **Bootstrap and publish** (``NodeConfig.bootstrap`` non-empty): a task connects to the
  bootstrap peers and looks up our own id. That FIND_NODE puts us (and our signed peer record,
  with our current addresses) into the routing tables of the peers closest to us, which is how
  others find us. The record lists ``host.get_addrs()``: our listen addresses and, while a
  relay holds a slot for us, our circuits through it
  (``libp2p_patches.basic_host.advertise_addrs``), which is what makes a peer behind NAT
  findable. It repeats every ``REFRESH_INTERVAL``, soon
  after a bootstrap peer drops, and within ``WATCH_INTERVAL`` of our addresses changing.
* **Find** (``find_addrs``, only with bootstrap peers): an iterative FIND_NODE for a peer id;
  the closest peers answer with what they hold for it, and only the addresses of its own
  signed peer record count (an answer's other addresses are anyone's word).
* **Mailboxes**: a Kith that uses mailboxes carries its signed mailbox record in its peer
  record (``carry_mailbox_record``); a lookup hands the one in the record it finds to
  ``on_mailbox_record`` (the mailbox client checks it, as from any other source).

Answers are checked against ``app.node.dht_records``' bounds before py-libp2p processes them
(``libp2p_patches.kad_dht.bound_dht_answers``). Without bootstrap peers no DHT message ever
leaves this node.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from app.core import mailbox as mb
from app.core.invite import MAX_ADDR_LENGTH, MAX_ADDRS, strip_p2p
from app.node.addr_policy import tcp_endpoint
from app.node.dht_records import DhtBoundsError, mailbox_field, mailbox_record_in
from app.node.host import connect_at, forget_failed_dials
from app.node.interfaces import Connections, Tasks
from app.node.libp2p_patches.peer_record import set_extra_fields
from app.node.relay import parse_relay_addrs
from app.node.signal import Signal

if TYPE_CHECKING:
    from app.node.dht_server import DhtServer

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
    """Our DHT client (``interfaces.PeerLookup``), and its server with ``serve``."""

    def __init__(self, host: IHost, nursery: Tasks, connections: Connections, *,
                 bootstrap: tuple[str, ...], serve: bool) -> None:
        self._host = host
        self._nursery = nursery
        self._connections = connections
        self._serve = serve
        self._bootstrap = parse_bootstrap_addrs(bootstrap)
        self._kad: KadDHT | None = None
        self.server: DhtServer | None = None  # with serve_dht only
        self.lookups = 0  # find_addrs calls that went to the network
        self.published = 0  # successful self-lookups (our record refreshed)
        self._wake = Signal()  # publish_now(): republish at once
        self._published_addrs: set[str] = set()  # what our last published record said
        # Told (peer id, record text) of the mailbox record in a contact's peer record found.
        self.on_mailbox_record: list[Callable[[str, str], object]] = []

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
        # Client mode: KadDHT registers no handler of its own and stores nothing for others.
        self._kad = KadDHT(self._host, DHTMode.CLIENT, enable_providers=False,
                           enable_values=False)
        if self._serve:
            from app.node.dht_server import DhtServer  # serving only: not in the window

            self.server = DhtServer(self._host, self._connections, self._kad)
            self.server.register()
            log.info("DHT: serving /ipfs/kad/1.0.0 for others")
        if self._bootstrap:
            log.info("DHT: bootstrapping from %d peer(s)", len(self._bootstrap))
            self._nursery.start_soon(self._keep_published)

    def publish_now(self) -> None:
        """The network changed: reconnect to bootstrap peers and republish our record now."""
        self._wake.set()

    def carry_mailbox_record(self, record: bytes | None) -> None:
        """Our signed peer record carries ``record`` (our signed mailbox record; None: no
        field, for those who use no mailbox), only with bootstrap peers: without them nobody
        looks us up, and identify would show it to any stranger who connects. Once running,
        it is published at once."""
        carried = record if self.enabled else None
        set_extra_fields(self._host, mailbox_field(carried) if carried is not None else b"")
        if self._kad is not None:
            self.publish_now()

    def keeps(self, peer: ID) -> bool:
        """Whether the DHT needs ``peer``'s peerstore entry after it disconnects: we hold its
        record for others, or it is in our routing table."""
        if self._kad is None:
            return False
        return (self.server is not None and self.server.holds(peer)) or \
            self._kad.routing_table.peer_in_table(peer)

    async def _connect_bootstrap(self) -> int:
        """Connect to every bootstrap peer not yet connected; how many are connected now."""
        host = self._host
        count = 0
        for peer_id, addr in self._bootstrap:
            peer = peer_id.to_base58()
            # connect_at lifts py-libp2p's 60 s refusal after a failed dial (a bootstrap peer
            # that restarts is back long before that) and dials exactly this address.
            if not self._connections.is_connected(peer) and not await connect_at(
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
                if not any(self._connections.is_connected(p.to_base58())
                           for p, _ in self._bootstrap):
                    log.info("DHT: lost every bootstrap peer; reconnecting")
                    break

    async def _publish(self) -> bool:
        """A lookup of our own id: the peers it asks store our signed record and addresses."""
        kad = self.kad
        # Our signed record (host.get_addrs(): listen addresses and circuits through the
        # relays holding a slot for us) rides on every request of this lookup.
        advertised = self._advertised()
        with trio.move_on_after(LOOKUP_TIMEOUT):
            await kad.peer_routing.find_closest_peers_network(self._host.get_id().to_bytes())
            self.published += 1
            if advertised != self._published_addrs:
                log.info("DHT: published our addresses: %s", ", ".join(sorted(advertised)))
            self._published_addrs = advertised
            log.debug("DHT: own record refreshed (%d in routing table)", kad.routing_table.size())
            return True
        return False

    def _advertised(self) -> set[str]:
        return {str(a) for a in self._host.get_addrs()}

    async def find_addrs(self, peer_id: str) -> list[str]:
        """The addresses of ``peer_id``'s own signed record found in the DHT (without
        ``/p2p``); [] when none or off. Never raises.

        The record we held before is forgotten first, so the answer is the network's. An
        answer's unsigned addresses for the peer are not taken: anyone could have put them
        there, and they would fill the contact's address book.
        """
        if not self._bootstrap or self._kad is None:
            return []
        self.lookups += 1
        host = self._host
        peerstore: Any = host.get_peerstore()
        try:
            target = ID.from_base58(peer_id)
            with trio.move_on_after(LOOKUP_TIMEOUT):
                await self._connect_bootstrap()
                self.kad.routing_table.remove_peer(target)
                peerstore.clear_addrs(target)  # and the record we held, with them
                forget_failed_dials(host, target)  # new addresses deserve a dial
                await self.kad.peer_routing.find_closest_peers_network(target.to_bytes())
            envelope = peerstore.get_peer_record(target)
            forget_failed_dials(host, target)
        except Exception as exc:  # noqa: BLE001 - not found is an answer too
            log.debug("DHT: lookup of %s failed: %s", peer_id, exc)
            return []
        if envelope is not None:
            self._take_mailbox_record(target, envelope)
        out: list[str] = []
        # The peerstore took the record only with a valid signature by ``target`` itself.
        for addr in envelope.record().addrs if envelope is not None else []:
            text = strip_p2p(str(addr))
            if len(text) <= MAX_ADDR_LENGTH and text not in out and _kept(text):
                out.append(text)
            if len(out) == MAX_ADDRS:
                break
        log.info("DHT: %s is at %s", peer_id, ", ".join(out) or "(no signed record found)")
        return out

    def _take_mailbox_record(self, target: ID, envelope: Any) -> None:
        """Hand on the mailbox record in ``target``'s own signed peer record, if any."""
        try:
            envelope.validate("libp2p-peer-record")  # as the peerstore did; cheap, and sure
            if ID.from_pubkey(envelope.public_key) != target:
                return
            record = mailbox_record_in(envelope.raw_payload)
        except (DhtBoundsError, ValueError) as exc:
            log.debug("DHT: %s's record: %s", target, exc)
            return
        if record is None or len(record) > mb.MAX_RECORD_BYTES:
            return
        for listener in self.on_mailbox_record:
            listener(target.to_base58(), mb.record_text(record))

    def info(self) -> dict[str, Any]:
        """Counters for tests and diagnostics."""
        size = self._kad.routing_table.size() if self._kad else 0
        served = self.server.info() if self.server is not None else {}
        return {"enabled": self.enabled, "routing_table": size, "published": self.published,
                "serving": self.server is not None, **served}


def _kept(addr: str) -> bool:
    """A record address worth keeping for a contact: TCP, direct or through a relay at a TCP
    address, and never one no dial should go to (unspecified, multicast, link-local,
    reserved, port 0)."""
    base = addr.split("/p2p/", 1)[0] if "/p2p-circuit" in addr else addr
    endpoint = tcp_endpoint(base)
    if endpoint is None:
        return False
    ip, port = endpoint
    return not (port == 0 or ip.is_unspecified or ip.is_multicast or ip.is_link_local
                or ip.is_reserved)
