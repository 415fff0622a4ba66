"""Patch to py-libp2p 0.8.1's own signed peer record: it may carry fields of Kith's."""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

import libp2p.peer.peerstore
from libp2p.abc import IHost
from libp2p.crypto.keys import PrivateKey
from libp2p.peer.envelope import Envelope, make_unsigned
from libp2p.peer.peer_record import (
    PEER_RECORD_ENVELOPE_DOMAIN,
    PEER_RECORD_ENVELOPE_PAYLOAD_TYPE,
    PeerRecord,
)

from app.node.dht_records import MAX_RECORD_BYTES

log = logging.getLogger(__name__)

# What each host's record carries after py-libp2p's fields (serialized protobuf fields).
_extra_fields: WeakKeyDictionary[IHost, bytes] = WeakKeyDictionary()


def carry_extra_fields() -> None:
    """py-libp2p 0.8.1: the host's signed peer record carries ``set_extra_fields``' bytes.

    py-libp2p signs a new record for the host (``issue_and_cache_local_record`` in
    ``libp2p.peer.peerstore``, called by ``env_to_send_in_RPC`` for identify, the DHT and pubsub
    whenever the host's addresses differ from the cached record's) from a ``PeerRecord`` of peer
    id, addresses and seq only. Kith's mailbox record rides in that payload as one more field
    (docs/protocol.md, section 10.1), so the replacement signs the same fields followed by the
    host's extra ones. Whatever receives the envelope keeps and forwards its payload bytes as
    signed (``Envelope.raw_payload``), so the extra field reaches whoever looks us up.
    """
    module: Any = libp2p.peer.peerstore
    if getattr(module.issue_and_cache_local_record, "_kith", False):
        return

    def issue_and_cache_local_record(host: IHost) -> bytes:
        envelope = seal_own_record(host)
        host.get_peerstore().set_local_record(envelope)
        return envelope.marshal_envelope()

    issue_and_cache_local_record._kith = True  # type: ignore[attr-defined]
    module.issue_and_cache_local_record = issue_and_cache_local_record


def set_extra_fields(host: IHost, fields: bytes) -> None:
    """From now on ``host``'s signed peer record carries ``fields`` (b"": none); a new record
    is signed now, so the next identify or DHT request carries it."""
    _extra_fields[host] = fields
    host.get_peerstore().set_local_record(seal_own_record(host))


def seal_own_record(host: IHost) -> Envelope:
    """``host``'s signed peer record: its id, addresses and a fresh seq, then its extra fields
    unless they would make the envelope larger than a Kith accepts (``MAX_RECORD_BYTES``):
    the addresses matter more."""
    payload = PeerRecord(host.get_id(), host.get_addrs()).marshal_record()
    extra = _extra_fields.get(host, b"")
    if extra:
        envelope = seal_payload(host.get_private_key(), payload + extra)
        if len(envelope.marshal_envelope()) <= MAX_RECORD_BYTES:
            return envelope
        log.warning("our signed peer record would be too large with its mailbox record; "
                    "it goes without")
    return seal_payload(host.get_private_key(), payload)


def seal_payload(key: PrivateKey, payload: bytes) -> Envelope:
    """A ``libp2p-peer-record`` envelope of ``payload`` signed with ``key``, as py-libp2p's
    ``seal_record`` makes one from a ``PeerRecord``."""
    unsigned = make_unsigned(PEER_RECORD_ENVELOPE_DOMAIN, PEER_RECORD_ENVELOPE_PAYLOAD_TYPE,
                             payload)
    return Envelope(key.get_public_key(), PEER_RECORD_ENVELOPE_PAYLOAD_TYPE, payload,
                    key.sign(unsigned))
