"""Gossip signatures checked by a topic's validator, when it can make one unnecessary.

py-libp2p 0.8.1 (``strict_signing``) verifies the Ed25519 signature of every gossip message
in ``Pubsub.push_msg`` before the topic's validators run. A room post carries its author's own
signature, which the room's validator verifies anyway, so a post published by its author cost
every member two verifications with the same key. For topics whose validator says it checks
signatures itself (``KithPubsub.set_topic_validator(..., checks_signatures=True)``), push_msg
skips its check and the validator decides: it calls ``verify`` unless the message's payload is
already authenticated by the key the message claims (see ``RoomService._signature_holds``).

``signature_validator``, which ``libp2p.pubsub.pubsub`` imported by name, is swapped for one
that passes the messages a caller marked with ``deferred`` and checks every other message as
before. Nothing on the wire changes: we still sign what we publish, and forward what we
received byte for byte. What a forger can still choose is the message id (publisher and
seqno), and py-libp2p keys both its verdicts and its seen cache by id: a forged message a
validator refused must leave no verdict behind (``Verdicts.forget``), and one it took on the
payload's own signature must not keep the genuine message with that id out (``Unchecked``).
tests/test_libp2p_patches.py guards the names.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import libp2p.pubsub.pubsub as pubsub_module
from libp2p.pubsub.pb.rpc_pb2 import Message
from libp2p.pubsub.pubsub import ValidationCache, ValidationResult
from libp2p.pubsub.validators import signature_validator

verify: Callable[[Message], bool] = signature_validator
"""py-libp2p's own check of a gossip message's signature (by the key ``from`` names)."""

MAX_UNCHECKED = 8192  # ids remembered (seen_ttl 120 s at 40 messages/s is 4800)

_deferred: set[int] = set()  # ids of the messages in a push_msg whose validator checks them
_installed = False


def install() -> None:
    """Swap the check push_msg calls, once per process."""
    global _installed
    if _installed:
        return
    _installed = True

    def signature_unless_deferred(msg: Message) -> bool:
        return id(msg) in _deferred or verify(msg)

    pubsub_module.signature_validator = signature_unless_deferred


@contextmanager
def deferred(msg: Message) -> Iterator[None]:
    """While this block runs, push_msg leaves ``msg``'s signature to the topic validator.

    Marked by object identity: ``msg`` is alive for the whole block, so no other message can
    carry its id meanwhile.
    """
    _deferred.add(id(msg))
    try:
        yield
    finally:
        _deferred.discard(id(msg))


class Verdicts(ValidationCache):
    """``Pubsub.validation_cache`` in constant time per message.

    0.8.1's keeps its LRU order in a list and, for every message validated, searches it
    (``msg_id in access_order``) and pops its head: up to 1000 comparisons a message, about a
    tenth of what validating a room post costs. Same verdicts, TTL and size, in an ordered
    dict; ``forget`` drops one verdict (``app.node.gossip.KithPubsub.push_msg``).
    """

    def __init__(self, ttl: int, max_size: int) -> None:
        super().__init__(ttl, max_size)
        self.cache: OrderedDict[bytes, ValidationResult] = OrderedDict()

    def get(self, msg_id: bytes) -> ValidationResult | None:
        result = self.cache.get(msg_id)
        if result is None:
            return None
        if time.time() - result.timestamp > self.ttl:
            del self.cache[msg_id]
            return None
        self.cache.move_to_end(msg_id)
        return result

    def put(self, msg_id: bytes, result: ValidationResult) -> None:
        self.cache[msg_id] = result
        self.cache.move_to_end(msg_id)
        while len(self.cache) > self.max_size:
            self.cache.popitem(last=False)

    def _remove(self, msg_id: bytes) -> None:
        self.cache.pop(msg_id, None)

    forget = _remove


class Unchecked:
    """Message ids taken while their gossip signature was the validator's to check, with the
    signature each came with.

    Copies of a message relayed by other peers carry the very same signature bytes and are
    dropped as seen, as before. A message under an id taken this way but with another
    signature means one of the two was not signed by its publisher: if the newcomer's
    signature holds, the one taken was a forgery that squatted on the id (a forger who saw a
    post can wrap it under its author's next seqno), and the genuine message must be handled
    after all (``contested``).
    """

    def __init__(self, limit: int = MAX_UNCHECKED) -> None:
        self._taken: OrderedDict[bytes, bytes] = OrderedDict()
        self._limit = limit

    def taken(self, msg_id: bytes, signature: bytes) -> None:
        self._taken[msg_id] = signature
        self._taken.move_to_end(msg_id)
        while len(self._taken) > self._limit:
            self._taken.popitem(last=False)

    def contested(self, msg_id: bytes, msg: Message) -> bool:
        """Whether ``msg``, under an id already seen, is the genuine message for an id a
        forgery took (its own signature holds); the id is then forgotten here."""
        held = self._taken.get(msg_id)
        if held is None or held == msg.signature or not verify(msg):
            return False
        del self._taken[msg_id]
        return True
