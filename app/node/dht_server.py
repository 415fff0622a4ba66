"""Serving the DHT for others (``/ipfs/kad/1.0.0``), only what Kith needs, within budgets.

Only a Kith run with ``serve_dht`` (``kith node --serve-dht``, or Settings → Network) answers
the DHT; every other Kith is a DHT client, which asks but is never asked. py-libp2p's
``KadDHT`` handler stores any value (PUT_VALUE: 1 MB each, 50,000 of them, for 24 h) and
provider addresses without bound; Kith answers with its own handler instead:

* **FIND_NODE**: the requester's signed peer record (``senderRecord``), if any, is checked
  (``dht_records.check_record``, its signature, and that it is the requester's own) and held
  within ``dht_records.RecordBudget``; the answer names the peers closest to the key from our
  routing table, with the peer looked up first when we hold its record or address: each with
  at most ``MAX_RECORD_ADDRS`` addresses and its signed record. That is how a Kith that moved is
  found: its own lookups leave its record on the serving peers closest to it.
* **PING**: answered.
* Anything else (PUT_VALUE, GET_VALUE, ADD_PROVIDER, GET_PROVIDERS): the stream is reset.

Per stream at most ``MAX_REQUESTS_PER_STREAM`` requests of ``MAX_REQUEST_BYTES``, each within
``REQUEST_TIMEOUT``; per peer ``MAX_STREAMS_PER_PEER`` streams at once and
``MAX_REQUESTS_PER_MINUTE`` requests a minute; ``MAX_STREAMS`` streams at once in all.
A requester joins our routing table only when identify says it serves the DHT itself.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.kad_dht.common import BUCKET_SIZE, PROTOCOL_ID
from libp2p.kad_dht.kad_dht import KadDHT, get_connection_type
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.envelope import consume_envelope
from libp2p.peer.id import ID
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited

from app.node.dht_records import (
    MAX_ADDR_BYTES,
    MAX_RECORD_ADDRS,
    MAX_RECORD_BYTES,
    MAX_REQUEST_BYTES,
    DhtBoundsError,
    RecordBudget,
    check_record,
)
from app.node.interfaces import Connections

log = logging.getLogger(__name__)

MAX_STREAMS = 16  # DHT streams served at once, all peers together
MAX_STREAMS_PER_PEER = 2
MAX_REQUESTS_PER_STREAM = 16
MAX_REQUESTS_PER_MINUTE = 60  # per peer
MAX_KEY_BYTES = 64  # a FIND_NODE key is a peer id (a multihash, 38 bytes for Ed25519)
REQUEST_TIMEOUT = 10.0  # seconds for each request to arrive whole
RECORD_TTL = 7200  # seconds a held record's addresses stay (as py-libp2p)
MAX_TRACKED_PEERS = 4096  # peers whose request rate is remembered


class DhtServer:
    """Answers ``/ipfs/kad/1.0.0`` (module docstring)."""

    def __init__(self, host: IHost, connections: Connections, kad: KadDHT) -> None:
        self._host = host
        self._connections = connections
        self._kad = kad
        self.records = RecordBudget()
        self._streams: dict[str, int] = {}
        self._requests: OrderedDict[str, deque[float]] = OrderedDict()
        self.answered = 0
        self.refused = 0  # streams reset: over a limit, or a request Kith does not serve

    def register(self) -> None:
        self._host.set_stream_handler(PROTOCOL_ID, self.handle)

    def holds(self, peer: ID) -> bool:
        """Whether we hold ``peer``'s record for others (its peerstore entry must stay)."""
        return str(peer) in self.records

    async def handle(self, stream: INetStream) -> None:
        """One inbound DHT stream; never lets an exception escape (it wedges the connection)."""
        peer = str(stream.muxed_conn.peer_id)
        if sum(self._streams.values()) >= MAX_STREAMS or self._streams.get(peer, 0) >= \
                MAX_STREAMS_PER_PEER:
            await self._refuse(stream, "too many DHT streams")
            return
        self._streams[peer] = self._streams.get(peer, 0) + 1
        try:
            for _ in range(MAX_REQUESTS_PER_STREAM):
                with trio.fail_after(REQUEST_TIMEOUT):
                    try:
                        data = await read_varint_prefixed_bytes_limited(stream, MAX_REQUEST_BYTES)
                    except Exception:  # noqa: BLE001 - EOF, reset or oversized: done
                        break
                if not self._take_request(peer):
                    await self._refuse(stream, "too many DHT requests")
                    return
                answer = await self._answer(stream.muxed_conn.peer_id, data)
                if answer is None:
                    await self._refuse(stream, "a DHT request Kith does not serve")
                    return
                await stream.write(encode_uvarint(len(answer)) + answer)
                self.answered += 1
            await stream.close()
        except Exception as exc:  # noqa: BLE001 - isolate this stream; reset it
            log.debug("DHT: a request from %s failed: %s", peer, exc)
            await self._refuse(stream, str(exc))
        finally:
            self._streams[peer] -= 1
            if not self._streams[peer]:
                del self._streams[peer]

    async def _refuse(self, stream: INetStream, why: str) -> None:
        self.refused += 1
        log.debug("DHT: refusing %s: %s", stream.muxed_conn.peer_id, why)
        try:
            await stream.reset()
        except Exception:
            log.debug("DHT: resetting a stream failed", exc_info=True)

    def _take_request(self, peer: str) -> bool:
        now = time.monotonic()
        times = self._requests.pop(peer, None) or deque()
        while times and now - times[0] >= 60.0:
            times.popleft()
        self._requests[peer] = times
        while len(self._requests) > MAX_TRACKED_PEERS:
            self._requests.popitem(last=False)
        if len(times) >= MAX_REQUESTS_PER_MINUTE:
            return False
        times.append(now)
        return True

    async def _answer(self, requester: ID, data: bytes) -> bytes | None:
        """The answer to one request; None for a request Kith does not serve."""
        request = Message()
        request.ParseFromString(data)
        if request.type == Message.MessageType.PING:
            return Message(type=Message.MessageType.PING).SerializeToString()
        if request.type != Message.MessageType.FIND_NODE:
            return None
        if not 0 < len(request.key) <= MAX_KEY_BYTES:
            raise DhtBoundsError(f"a FIND_NODE key of {len(request.key)} bytes")
        if request.HasField("senderRecord"):
            self._hold(requester, request.senderRecord)
        await self._maybe_route(requester)
        response = Message(type=Message.MessageType.FIND_NODE, key=request.key)
        for peer in self._closest(request.key, requester):
            self._describe(response.closerPeers.add(), peer)
        response.senderRecord = env_to_send_in_RPC(self._host)[0]
        return response.SerializeToString()

    def _hold(self, requester: ID, raw: bytes) -> None:
        """Keep the requester's own signed record for others, within the byte budget."""
        check_record(raw)
        envelope, record = consume_envelope(raw, "libp2p-peer-record")  # checks the signature
        if record.peer_id != requester:
            raise DhtBoundsError("a sender record of another peer")
        peerstore = self._host.get_peerstore()
        if not peerstore.consume_peer_record(envelope, RECORD_TTL):
            return  # older than the one we hold
        for evicted in self.records.hold(str(requester), len(raw)):
            self._give_up(ID.from_base58(evicted))

    def _give_up(self, peer: ID) -> None:
        """Forget a record we held for others (the budget is full); a peer we are connected
        to, or that is in our routing table, keeps its addresses."""
        if not self._connections.is_connected(str(peer)) and (
                not self._kad.routing_table.peer_in_table(peer)):
            self._host.get_peerstore().clear_addrs(peer)  # the record goes with them

    async def _maybe_route(self, requester: ID) -> None:
        """Per the Kademlia spec, only peers that serve the DHT join the routing table."""
        try:
            protocols = self._host.get_peerstore().get_protocols(requester)
        except Exception:  # noqa: BLE001 - not identified yet: not now
            return
        if str(PROTOCOL_ID) in protocols:
            await self._kad.routing_table.add_peer(requester)

    def _closest(self, key: bytes, requester: ID) -> list[ID]:
        closest = [p for p in self._kad.routing_table.find_local_closest_peers(key, BUCKET_SIZE)
                   if p != requester]
        try:
            target = ID(key)
            known = bool(self._host.get_peerstore().addrs(target))
        except Exception:  # noqa: BLE001 - not a peer id, or not known
            return closest
        if known and target != requester:
            closest = [target, *(p for p in closest if p != target)][: BUCKET_SIZE]
        return closest

    def _describe(self, entry: Any, peer: ID) -> None:
        host = self._host
        entry.id = peer.to_bytes()
        entry.connection = get_connection_type(host, peer)
        envelope = host.get_peerstore().get_peer_record(peer)
        if envelope is not None:
            raw = envelope.marshal_envelope()
            if len(raw) <= MAX_RECORD_BYTES:
                entry.signedRecord = raw
        try:
            addrs = host.get_peerstore().addrs(peer)
        except Exception:  # noqa: BLE001 - no addresses left
            addrs = []
        packed = [a.to_bytes() for a in addrs]
        entry.addrs.extend([a for a in packed if len(a) <= MAX_ADDR_BYTES][:MAX_RECORD_ADDRS])

    def requesters(self) -> list[str]:
        """Peers that sent us DHT requests lately (at most ``MAX_TRACKED_PEERS``)."""
        return list(self._requests)

    def info(self) -> dict[str, int]:
        return {"answered": self.answered, "refused": self.refused,
                "records_held": len(self.records), "record_bytes": self.records.total}
