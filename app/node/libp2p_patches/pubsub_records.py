"""Signed peer records in pubsub RPCs, built and checked once instead of once per RPC.

py-libp2p 0.8.1 puts the sender's signed peer record (an Envelope: public key, addresses,
Ed25519 signature) into every pubsub RPC it sends, and checks the one in every RPC it receives,
twice for RPCs that carry control messages (``Pubsub.continuously_read_stream``, then
``GossipSub.handle_rpc``). A peer sends the same record over and over, so in a room each post
cost every member three or more signature checks, multiaddr parsing and peerstore writes for
records it already held, and every forwarded post rebuilt our own address list to compare it
with the record's. Measured with callgrind on a member of a 4-member room: the record checks
were half of the Ed25519 verifications a post cost.

Both functions below are swapped in for the names those two modules imported; what goes on
the wire is unchanged (go-libp2p and js-libp2p neither send nor read this field). Upstream,
the same could be done inside ``maybe_consume_signed_record`` (remember the last accepted
record's bytes per peer) and ``env_to_send_in_RPC`` (reuse the cached envelope while the
addresses are unchanged, without rebuilding them for every RPC).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import libp2p.pubsub.gossipsub as gossipsub_module
import libp2p.pubsub.pubsub as pubsub_module
from libp2p.abc import IHost
from libp2p.peer.envelope import consume_envelope
from libp2p.peer.id import ID
from libp2p.pubsub.pb.rpc_pb2 import RPC

RECHECK_AFTER = 60.0   # a held record is checked and stored again this often (its TTL is 2 h)
OWN_RECORD_FOR = 1.0   # our own record is rebuilt at most this often (addresses may change)
MAX_PEERS = 1024       # records remembered per peerstore
PEER_RECORD_DOMAIN = "libp2p-peer-record"  # what py-libp2p's check opens a record with

_installed = False


def install() -> None:
    """Swap both functions into py-libp2p's pubsub modules, once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    _check_once(pubsub_module.maybe_consume_signed_record)
    _build_once(pubsub_module.env_to_send_in_RPC)


def _check_once(check: Callable[[RPC, IHost, ID], bool]) -> None:
    """Accept a peer's signed record without re-checking it while it is the same bytes.

    py-libp2p 0.8.1 verifies the senderRecord of every RPC (``maybe_consume_signed_record`` in
    ``libp2p.pubsub.utils``, imported by ``pubsub`` and ``gossipsub``). Here the full check runs
    when the bytes differ from the last record accepted from that peer, every
    ``RECHECK_AFTER`` seconds, and whenever the peerstore no longer holds the envelope that
    check stored (a newer record from identify, or addresses cleared). Otherwise the RPC is
    accepted as the full check would accept it. A guard in tests/test_gossip.py checks the names.
    """
    accepted: WeakKeyDictionary[Any, OrderedDict[ID, tuple[bytes, object, float]]] = (
        WeakKeyDictionary()
    )

    def consume_signed_record_once(msg: RPC, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        store = host.get_peerstore()
        held = accepted.setdefault(store, OrderedDict())
        record = msg.senderRecord
        now = time.monotonic()
        known = held.get(peer_id)
        if known is not None and known[0] == record and now < known[2]:
            state = getattr(store, "peer_record_map", {}).get(peer_id)
            if state is not None and state.envelope is known[1]:
                return True
        if _older_than_held(record, store, peer_id):
            return True
        if not check(msg, host, peer_id):
            held.pop(peer_id, None)
            return False
        state = getattr(store, "peer_record_map", {}).get(peer_id)
        if state is not None:
            held[peer_id] = (record, state.envelope, now + RECHECK_AFTER)
            held.move_to_end(peer_id)
            if len(held) > MAX_PEERS:
                held.popitem(last=False)
        return True

    pubsub_module.maybe_consume_signed_record = consume_signed_record_once
    gossipsub_module.maybe_consume_signed_record = consume_signed_record_once


def _older_than_held(record: bytes, store: Any, peer_id: ID) -> bool:
    """Whether ``record`` is ``peer_id``'s own genuine record, older than the one we hold.

    A peer's RPCs carry the record it had when it built them; when its addresses change,
    identify may bring us the new record before RPCs built with the old one arrive (and Kith
    reuses its own record for up to ``OWN_RECORD_FOR``). py-libp2p 0.8.1 then fails the check
    (``consume_peer_record`` refuses an older seq) and drops the whole RPC: subscriptions and
    GRAFTs, which are never sent again, so the room never formed between the two. The RPC
    comes over the peer's authenticated connection whatever its record says; only the
    record is stale, so it is not stored, and the RPC is handled.
    """
    held = getattr(store, "peer_record_map", {}).get(peer_id)
    if held is None:
        return False
    try:
        envelope, peer_record = consume_envelope(record, PEER_RECORD_DOMAIN)
    except Exception:  # noqa: BLE001 - malformed or forged: the full check refuses it
        return False
    return (peer_record.peer_id == peer_id and ID.from_pubkey(envelope.public_key) == peer_id
            and peer_record.seq < held.seq)


def _build_once(build: Callable[[IHost], tuple[bytes, bool]]) -> None:
    """Reuse our own signed record for ``OWN_RECORD_FOR`` seconds.

    py-libp2p 0.8.1 calls ``env_to_send_in_RPC`` (``libp2p.peer.peerstore``) for every RPC it
    sends, and it asks the host for its addresses each time to see whether the cached record
    still matches them; Kith's ``get_addrs`` expands wildcards and adds relay circuits, so that
    was most of what forwarding a post cost. The record is still rebuilt when the addresses
    change, at most ``OWN_RECORD_FOR`` seconds later.
    """
    recent: WeakKeyDictionary[Any, tuple[tuple[bytes, bool], float]] = WeakKeyDictionary()

    def sender_record_once(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        cached = recent.get(host)
        if cached is not None and now < cached[1]:
            return cached[0][0], False
        made = build(host)
        recent[host] = (made, now + OWN_RECORD_FOR)
        return made

    pubsub_module.env_to_send_in_RPC = sender_record_once
    gossipsub_module.env_to_send_in_RPC = sender_record_once
