"""What Kith accepts from the DHT: bounded answers, bounded signed peer records, and a byte
budget for the records a serving Kith holds for others.

Kith uses the Kademlia DHT (``/ipfs/kad/1.0.0``) for one thing: finding a peer's addresses by
its id, from the peer's own signed peer record (``libp2p-peer-record`` envelopes). So:

* a signed record is at most ``MAX_RECORD_BYTES`` and lists at most ``MAX_RECORD_ADDRS``
  addresses of at most ``MAX_ADDR_BYTES`` each (``check_record``);
* a FIND_NODE answer is at most ``MAX_ANSWER_BYTES``, names at most ``MAX_ANSWER_PEERS``
  peers (k = 20, plus the peer looked up), each with at most ``MAX_RECORD_ADDRS`` addresses
  and a record as above (``check_answer``); anything beyond is refused whole, before any of it
  is processed;
* a serving Kith holds one record per peer (its latest), ``MAX_RECORD_BYTES`` at most, and
  ``MAX_HELD_BYTES`` in all; past that the least recently refreshed records go
  (``RecordBudget``).

A Kith that uses mailboxes also carries its signed mailbox record (docs/protocol.md, section
10.1) in its peer record, as the extra protobuf field ``MAILBOX_FIELD``
(``mailbox_field``, ``mailbox_record_in``): the envelope's signature covers it, every libp2p
peer forwards the payload byte for byte, and other implementations skip it as an unknown field.
"""

from __future__ import annotations

from collections import OrderedDict

from google.protobuf.unknown_fields import UnknownFieldSet
from libp2p.kad_dht.common import BUCKET_SIZE
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.pb.envelope_pb2 import Envelope
from libp2p.peer.pb.peer_record_pb2 import PeerRecord
from libp2p.utils.varint import encode_uvarint

from app.core.invite import MAX_ADDRS

MAX_RECORD_BYTES = 2048  # a signed peer record (Kith's: ~100 bytes + ~10 per address)
MAX_RECORD_ADDRS = MAX_ADDRS  # 16: as many as an invite carries
MAX_ADDR_BYTES = 256  # one binary multiaddr
MAX_ANSWER_PEERS = BUCKET_SIZE + 1  # k closest, plus the peer looked up
MAX_ANSWER_BYTES = 256 * 1024  # above what 21 peers within the bounds can take
MAX_REQUEST_BYTES = 8 * 1024  # a FIND_NODE or PING with the sender's record
MAX_HELD_BYTES = 1024 * 1024  # records a serving Kith holds for others, in all
MAILBOX_FIELD = 27497  # the PeerRecord field of Kith's mailbox record (0x6b69, "ki")
LENGTH_DELIMITED = 2  # protobuf wire type of a bytes field


class DhtBoundsError(ValueError):
    """A DHT message or record beyond Kith's bounds; it is dropped whole."""


def check_record(raw: bytes) -> None:
    """Raise ``DhtBoundsError`` unless ``raw`` (a marshalled envelope) is within bounds. Only
    its size and shape: the signature is checked where the record is consumed."""
    if len(raw) > MAX_RECORD_BYTES:
        raise DhtBoundsError(f"a signed record of {len(raw)} bytes")
    try:
        envelope = Envelope()
        envelope.ParseFromString(raw)
        record = PeerRecord()
        record.ParseFromString(envelope.payload)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise DhtBoundsError(f"a malformed signed record: {exc}") from None
    if len(record.addresses) > MAX_RECORD_ADDRS:
        raise DhtBoundsError(f"a signed record with {len(record.addresses)} addresses")
    if any(len(a.multiaddr) > MAX_ADDR_BYTES for a in record.addresses):
        raise DhtBoundsError("a signed record with an oversized address")


def mailbox_field(record: bytes) -> bytes:
    """``record`` (a signed mailbox record) as the protobuf field that follows a PeerRecord's
    own fields in Kith's signed peer record."""
    return encode_uvarint(MAILBOX_FIELD << 3 | LENGTH_DELIMITED) + encode_uvarint(len(record)) \
        + record


def mailbox_record_in(payload: bytes) -> bytes | None:
    """The mailbox record a signed peer record's payload carries (the last one, as protobuf
    reads a field given twice), or None; ``DhtBoundsError`` if the payload is malformed.
    The record is not checked here: ``app.core.mailbox.verify_record`` does that."""
    record = PeerRecord()
    try:
        record.ParseFromString(payload)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise DhtBoundsError(f"a malformed peer record: {exc}") from None
    found = None
    unknown = UnknownFieldSet(record)
    for field in (unknown[i] for i in range(len(unknown))):
        if field.field_number == MAILBOX_FIELD and field.wire_type == LENGTH_DELIMITED:
            found = bytes(field.data)
    return found


def check_answer(data: bytes) -> Message:
    """The parsed message if an answer ``data`` is within bounds; ``DhtBoundsError`` if not."""
    if len(data) > MAX_ANSWER_BYTES:
        raise DhtBoundsError(f"an answer of {len(data)} bytes")
    message = Message()
    try:
        message.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise DhtBoundsError(f"a malformed answer: {exc}") from None
    peers = list(message.closerPeers) + list(message.providerPeers)
    if len(peers) > MAX_ANSWER_PEERS:
        raise DhtBoundsError(f"an answer naming {len(peers)} peers")
    for peer in peers:
        if len(peer.addrs) > MAX_RECORD_ADDRS:
            raise DhtBoundsError(f"an answer giving a peer {len(peer.addrs)} addresses")
        if any(len(a) > MAX_ADDR_BYTES for a in peer.addrs) or len(peer.id) > 128:
            raise DhtBoundsError("an answer with an oversized address or id")
        if peer.HasField("signedRecord"):
            check_record(peer.signedRecord)
    if message.HasField("senderRecord"):
        check_record(message.senderRecord)
    return message


class RecordBudget:
    """The bytes of signed records held for others: one record per peer, ``MAX_HELD_BYTES``
    in all, the least recently refreshed given up first."""

    def __init__(self, limit: int = MAX_HELD_BYTES) -> None:
        self._limit = limit
        self._held: OrderedDict[str, int] = OrderedDict()
        self.total = 0

    def __contains__(self, peer: str) -> bool:
        return peer in self._held

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, peer: str, size: int) -> list[str]:
        """Hold ``peer``'s record of ``size`` bytes (replacing its last); the peers whose
        records must be given up to stay within the budget."""
        self.total += size - self._held.pop(peer, 0)
        self._held[peer] = size
        evicted: list[str] = []
        while self.total > self._limit and len(self._held) > 1:
            old, old_size = self._held.popitem(last=False)
            self.total -= old_size
            evicted.append(old)
        return evicted

    def drop(self, peer: str) -> None:
        self.total -= self._held.pop(peer, 0)
