"""The delivery hint: an author tells the peers it sends its message to who else it sent it to.

Gossipsub forwards every new message to every mesh neighbour but the one it came from and its
author. In a room whose members all hold a link to the author, that makes every copy but the
author's a duplicate: in a 4-member room each member read each post three times and wrote it
twice, and each copy woke it, for nothing. So an author sends its own message to every peer
in the topic it is connected to (gossipsub v1.1's flood publishing), and the RPC that carries
it names them (``ALSO_SENT_TO``, a Kith field of the RPC, docs/protocol.md 8.8). A peer that
gets a message *from its author* skips those peers when it forwards it; a peer the author is
not connected to still gets it from the mesh, as before.

Only the author's own word counts: a hint in an RPC whose sender is not the message's author
is ignored (its sender is authenticated by the connection, so no one speaks for an author).
An author that names a peer it did not send to only keeps its own message from that peer,
which it could do anyway by not sending it; the room's history sync fills such a gap.

A peer of the version before ignores the field (protobuf keeps unknown fields and reads
nothing from them) and forwards as it always did.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from libp2p.peer.id import ID

ALSO_SENT_TO = 1001  # the RPC field: bytes, one TAG_BYTES tag per peer
TAG_BYTES = 8
MAX_TAGS = 64  # an author with more peers names the first 64; the rest get forwarded copies
# The field's key on the wire (field 1001, length-delimited): 0xCA 0x3E. An RPC without these
# bytes has no hint, which a substring search tells without parsing it again.
_KEY = bytes((((ALSO_SENT_TO << 3) | 2) & 0x7F | 0x80, ((ALSO_SENT_TO << 3) | 2) >> 7))

# The hint of the message being handled, while it is validated and forwarded: the tags of
# the peers its author sent it to, when the RPC came from the author. One value per task.
AUTHOR_SENT_TO: ContextVar[frozenset[bytes]] = ContextVar("author_sent_to",
                                                         default=frozenset())


def _hint_class() -> type:
    """A message with only the hint's field, to write it and to read it out of an RPC."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="kith/delivery_hint.proto", package="kith", syntax="proto2")
    message = proto.message_type.add(name="DeliveryHint")
    message.field.add(name="also_sent_to", number=ALSO_SENT_TO,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kith.DeliveryHint"))


_DeliveryHint = _hint_class()


def tag(peer: ID) -> bytes:
    """A peer's tag: the last 8 bytes of its binary peer id (of an Ed25519 key's id, the last
    8 bytes of the key)."""
    return peer.to_bytes()[-TAG_BYTES:]


def encode(peers: Iterable[ID]) -> bytes:
    """The hint's field for ``peers`` (the first ``MAX_TAGS``), to append to a serialized RPC
    or merge into one (``RPC.MergeFromString``)."""
    tags = [tag(peer) for _, peer in zip(range(MAX_TAGS), peers, strict=False)]
    return bytes(_DeliveryHint(also_sent_to=b"".join(tags)).SerializeToString())


def decode(rpc: bytes) -> frozenset[bytes]:
    """The tags an RPC's hint names; empty without a hint or with a malformed one (not a
    whole number of tags, or more than ``MAX_TAGS``), which a peer then ignores."""
    if _KEY not in rpc:
        return frozenset()
    hint = _DeliveryHint()
    try:
        hint.ParseFromString(rpc)
    except DecodeError:  # the RPC itself parsed, so only our field can be at fault
        return frozenset()
    tags = bytes(hint.also_sent_to)
    if len(tags) % TAG_BYTES or len(tags) > MAX_TAGS * TAG_BYTES:
        return frozenset()
    return frozenset(tags[i:i + TAG_BYTES] for i in range(0, len(tags), TAG_BYTES))
