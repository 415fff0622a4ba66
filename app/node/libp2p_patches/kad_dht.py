"""Patch to py-libp2p 0.8.1's Kademlia DHT: answers are bounded before they are used."""

from __future__ import annotations

import logging
from typing import Any

import libp2p.kad_dht.peer_routing

from app.node.dht_records import MAX_ANSWER_BYTES, DhtBoundsError, check_answer

log = logging.getLogger(__name__)


def bound_dht_answers() -> None:
    """py-libp2p 0.8.1: every FIND_NODE answer is checked against ``app.node.dht_records``'
    bounds before py-libp2p processes any of it.

    py-libp2p's ``PeerRouting._query_peer_for_closest`` reads an answer of up to 4 MiB
    and then, for every peer it names, checks a signature, parses and stores every address and
    updates the routing table, with list look-ups that grow with the square of the count: one
    answer with 20,000 peers cost 15 s of CPU. It reads the answer with the module's
    ``read_varint_prefixed_bytes_limited``; Kith's replacement reads at most
    ``MAX_ANSWER_BYTES`` and raises ``DhtBoundsError`` for an answer beyond the bounds, which
    py-libp2p then treats as a failed query (that peer contributes nothing).
    """
    module: Any = libp2p.kad_dht.peer_routing
    read = module.read_varint_prefixed_bytes_limited
    if getattr(read, "_kith", False):
        return

    async def read_bounded_answer(stream: Any, max_length: int) -> bytes:
        data = await read(stream, min(max_length, MAX_ANSWER_BYTES))
        try:
            check_answer(data)
        except DhtBoundsError as exc:
            log.info("DHT: dropped an answer from %s: %s", stream.muxed_conn.peer_id, exc)
            raise
        return data

    read_bounded_answer._kith = True  # type: ignore[attr-defined]
    module.read_varint_prefixed_bytes_limited = read_bounded_answer
