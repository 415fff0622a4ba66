"""Gossipsub for group rooms, tuned for chat (py-libp2p 0.8.1).

Each room is a topic. Payloads arrive here already encrypted and signed by Kith, so this layer
only has to move opaque bytes quickly and must not drop ordinary chat bursts. py-libp2p's
defaults do drop them (docs in ``GossipConfig``), so this module builds the router with chat
values and runs a small ``Pubsub`` subclass that fixes the limits the constructor does not
expose. Gossip stays a fast path, not a guarantee: rooms recover gaps with history sync.

Receiving::

    async with open_pubsub(host) as pubsub:
        subscription = await pubsub.subscribe(topic)
        async for message in subscription:      # or: message = await subscription.get()
            message.data        # the published bytes, unchanged
            message.from_id     # author's peer id bytes: libp2p.peer.id.ID(message.from_id)
            message.seqno       # 8 bytes, big-endian counter per author
            message.topicIDs    # [topic]

Consume each subscription in its own task and keep the loop short (hand work to a channel or
the store). Messages that arrive while ``subscription_buffer`` messages wait unread are dropped,
counted in ``pubsub.dropped[topic]`` and logged. A publisher receives its own messages too.
Publishing: ``await pubsub.publish(topic, data)``; it may wait briefly while peers catch up.

Every message is signed with the host key and every received one is verified (py-libp2p's
default, which go and js interoperate with). A room layer that can check its own envelope
should also register ``pubsub.set_topic_validator(topic, fn, is_async_validator)``: a message
it rejects is neither delivered nor relayed. Validators may be async (5 s timeout).

Length: py-libp2p's pubsub has no settings for most of what chat needs, so ``KithPubsub``
overrides a dozen of its methods; they belong together, next to the configuration they serve.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import libp2p.pubsub.pubsub as pubsub_module
import trio
from libp2p.abc import IHost, INetStream, ISubscriptionAPI
from libp2p.custom_types import TProtocol
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IncompleteReadError, IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.network.stream.net_stream import NetStream, StreamState
from libp2p.peer.id import ID
from libp2p.pubsub.exceptions import NoPubsubAttached
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import GossipsubEvent, Pubsub, ValidatorFn
from libp2p.pubsub.pubsub_notifee import PubsubNotifee
from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize, RpcQueue
from libp2p.pubsub.subscription import TrioSubscriptionAPI
from libp2p.stream_muxer.yamux.yamux import YamuxStream
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils import encode_varint_prefixed

from app.node import delivery_hint
from app.node.isolation import is_local_fault
from app.node.libp2p_patches import pubsub_records, pubsub_signatures
from app.node.libp2p_patches import yamux as yamux_patches
from app.node.libp2p_patches.service import isolate_service_tasks

log = logging.getLogger(__name__)

# go-libp2p-pubsub's GossipSubDefaultProtocols order, newest first (its FloodSubID fallback is
# left out: Kith peers all speak gossipsub). py-libp2p's /meshsub/1.3.0, 1.4.0 and 2.0.0 are its
# own extensions; go's 1.3 means something else, so they are not offered.
GOSSIP_PROTOCOLS: tuple[TProtocol, ...] = (PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID)

KIB = 1024
MAX_VARINT_BYTES = 10  # a 64-bit unsigned varint
# States in which py-libp2p's NetStream.write writes (it refuses the others).
_WRITABLE = (StreamState.INIT, StreamState.OPEN, StreamState.CLOSE_READ)

# The topics the hello being sent to a new peer announced (``KithPubsub._handle_new_peer``);
# one value per trio task, so peers set up at once do not mix them.
_HELLO_TOPICS: ContextVar[frozenset[str] | None] = ContextVar("hello_topics", default=None)
# Whether a message being handled may be forwarded at once (``send_without_waiting``): not
# while the RPC reader handling it holds more of its peer's bytes (a burst).
_FORWARD_AT_ONCE: ContextVar[bool] = ContextVar("forward_at_once", default=True)


class PayloadTooLarge(ValueError):
    """A payload above ``GossipConfig.max_payload``; peers would drop it, so it is refused."""


@dataclass(frozen=True)
class GossipConfig:
    """Gossipsub parameters for chat rooms, and why each differs from py-libp2p 0.8.1.

    Mesh (the gossipsub spec's values, go-libp2p's too, except its D_low of 5):
    ``degree`` D=6, ``degree_low`` 4, ``degree_high`` 12. Rooms are small, so usually every
    member is a mesh neighbour and a post takes one hop per link.

    ``heartbeat_interval`` 1 s (py-libp2p: 120 s). The heartbeat repairs the mesh after churn
    and sends IHAVE gossip; at 120 s a peer that missed a message waits minutes for it.
    ``gossip_window`` 3 and ``gossip_history`` 5 heartbeats (spec values) then mean IHAVE
    covers the last 3 s and IWANT can fetch from the last 5 s.

    ``seen_ttl`` 120 s: duplicates are recognised for two minutes (go's TimeCacheDuration).
    ``fanout_ttl`` 60 s, ``prune_backoff`` 60 s, ``unsubscribe_backoff`` 10 s: spec values.

    ``max_payload`` 128 KiB: Kith's sealed posts are at most ~70 KiB. Bigger ones are refused
    on publish (``PayloadTooLarge``) and dropped, not relayed, when they arrive.
    ``max_rpc_size`` 1 MiB stays go's frame limit: one frame may carry several messages (IWANT
    answers), and a frame above it makes py-libp2p reset the peer's stream.

    ``subscription_buffer`` 4096 messages (py-libp2p: 32, dropping silently): room for a burst
    of 1000 posts while the reader is busy. Chat posts are ~1 KiB, so that is ~4 MiB.
    ``outbound_queue_size`` 1024 RPCs per peer (py-libp2p and go: 32, then drop). Python drains
    queues far more slowly than Go, and a relay forwards a burst as fast as it arrives; our own
    publishes wait (below) instead of overfilling them. ``write_batch`` 64 KiB: queued RPCs are
    written to a peer together, up to this many bytes per write.
    ``publish_stall`` 1 s: ``publish`` waits while a room peer's queue is over half full, but
    stops waiting for a peer whose queue made no progress for this long (a dead link must not
    slow a room down).

    ``spam_protection`` off (py-libp2p: on, 10 msg/s per peer per topic, the relaying peer's
    and the publisher's own included): a 300-post burst from one author must pass. Kith
    authenticates and bounds payloads above this layer.
    ``adaptive_gossip`` off: py-libp2p's "network health" rates any room smaller than D as
    unhealthy and then stretches the heartbeat to 30-60 s, undoing the 1 s above.
    ``eclipse_protection`` off: it grafts extra peers from other IPs without back-off checks;
    go has no such mechanism and a small room gains nothing.
    ``max_iwant_per_second`` 100 per peer (py-libp2p: 10): one IWANT per IHAVE, and with a 1 s
    heartbeat a neighbour in many rooms legitimately sends more than 10 a second.
    ``max_idontwant_ids`` 1000 per peer per heartbeat (go's value; py-libp2p: 10), and
    ``idontwant_threshold`` 1 KiB (go's; py-libp2p sends them for every message, see
    ``ChatGossipSub``).
    ``max_subscriptions_per_peer`` 1000 topics tracked per remote peer (py-libp2p: 100): a
    member of many rooms must not be silently ignored in some of them.
    """

    protocols: tuple[TProtocol, ...] = GOSSIP_PROTOCOLS
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_interval: int = 1
    heartbeat_initial_delay: float = 0.1
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl: int = 120
    fanout_ttl: int = 60
    prune_backoff: int = 60
    unsubscribe_backoff: int = 10
    max_payload: int = 128 * KIB
    max_rpc_size: int = DefaultMaxMessageSize
    subscription_buffer: int = 4096
    outbound_queue_size: int = 1024
    publish_stall: float = 1.0
    write_batch: int = 64 * KIB
    spam_protection: bool = False
    adaptive_gossip: bool = False
    eclipse_protection: bool = False
    max_iwant_per_second: float = 100.0
    max_idontwant_ids: int = 1000
    idontwant_threshold: int = 1 * KIB
    max_subscriptions_per_peer: int = 1000


class ChatGossipSub(GossipSub):
    """py-libp2p's router with six 0.8.1 behaviours changed.

    IDONTWANT only where gossipsub 1.2 means it to be sent: 0.8.1 sends one IDONTWANT RPC to
    every 1.2 mesh peer for every message, even tiny ones and even for its own publishes. In
    a three-peer line that is six RPCs per post instead of two and cut throughput by more than
    half. go-libp2p sends them only for messages of at least 1 KiB (``idontwant_threshold``)
    that it received from someone else; so do we, and only to peers that might still send it
    to us. IDONTWANTs that peers send us are honoured.

    No peer scorer: 0.8.1 builds one even without score parameters, with every weight 0 and
    every threshold minus infinity, so no gate can ever close; it still computed two scores
    per mesh peer for every message forwarded and decayed counters for every peer at each
    heartbeat. ``scorer = None`` is upstream's own "no scoring" path.

    Deliveries not recorded: 0.8.1 appends a timestamp to ``recent_message_deliveries`` for
    every message published or forwarded, which only adaptive gossip reads and trims. With it
    off (``GossipConfig.adaptive_gossip``) the lists grew for as long as the node ran; our
    ``publish`` appends only with it on. tests/test_gossip.py checks both.

    A peer pruned from a mesh is backed off by the pruning side too (``mesh_heartbeat``).

    Forwarding (``publish``) in fewer steps per copy, with the same outcome for every peer;
    our own messages go to every peer in the topic, with the delivery hint that spares the
    peers who got it from us a copy from each other (``app.node.delivery_hint``).
    """

    def __init__(self, config: GossipConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idontwant_threshold = config.idontwant_threshold
        self.scorer = None

    def mesh_heartbeat(self) -> tuple[defaultdict[ID, list[str]], defaultdict[ID, list[str]]]:
        """Upstream's mesh upkeep, and a backoff for every peer it prunes.

        The spec has both sides of a PRUNE back off from each other; 0.8.1 backs off only on
        the pruned side. The pruning peer could then graft the same peer again at its next
        heartbeat, which that peer, still backing off, takes for a GRAFT flood and prunes
        right back: a mesh that shrank stayed below D_lo while the two kept at it.
        """
        peers_to_graft, peers_to_prune = super().mesh_heartbeat()
        for peer, topics in peers_to_prune.items():
            for topic in topics:
                self._add_back_off(peer, topic, False)
        return peers_to_graft, peers_to_prune

    def forget(self, data: bytes) -> None:
        """Drop the messages carrying ``data`` from the message cache, so that neither IWANT
        answers nor the recent messages pushed to a new subscriber hand them out (a room post
        deleted for everyone). 0.8.1's ``mcache.get`` then finds nothing for the id its
        ``window`` may still list, and ``shift`` pops ids that are gone."""
        cache = self.mcache.msgs
        for mid in [mid for mid, message in cache.items() if message.data == data]:
            del cache[mid]

    async def _send_idontwant(self, msg_id: bytes, topic_ids: Iterable[str],
                              came_from: ID) -> None:
        """IDONTWANT for a message of at least 1 KiB received from someone else, to the 1.2
        mesh peers that might still send it to us: not its author and not the peer it came
        from (no one sends a message back to either; 0.8.1 told them too), and not the
        peers its author says it sent it to (``app.node.delivery_hint``), who leave us out
        when they forward it, as we are named too. Upstream's ``publish`` calls
        ``_emit_idontwant_for_message`` at this point, which sends to every 1.2 mesh peer."""
        # Called by ``publish`` right after ``mcache.put(message)``, so the message is there.
        message = self.mcache.get(msg_id)
        if (message is None or len(message.data) < self.idontwant_threshold
                or self.pubsub is None or message.from_id == self.pubsub.my_id.to_bytes()):
            return
        sent_to = delivery_hint.AUTHOR_SENT_TO.get()
        skipped = {ID(message.from_id), came_from}
        peers = {peer for topic in topic_ids for peer in self.mesh.get(topic, ())
                 if peer not in skipped and delivery_hint.tag(peer) not in sent_to}
        for peer in peers:
            if self.peer_protocol.get(peer) == PROTOCOL_ID_V12:
                await self.emit_idontwant([msg_id], peer)

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        """Upstream's forwarding of a validated message (0.8.1), with the same outcome for
        every peer, in fewer steps: it runs for every copy a member forwards.

        Upstream builds the RPC and our signed record even when no peer is to get it, builds
        a peer ``ID`` for the origin once per connected peer, twice (the loops that queue the
        message for peers not yet known to be in the topic), and copies and splits the RPC
        for every peer it sends to. Here the origin is one ``ID``, the RPC is built once and
        only if it goes somewhere, and it is queued as it is for a peer with no control
        message waiting to ride along and room in a frame (else through ``send_rpc``, which
        copies it to attach that control), or written to the peer at once when its queue is
        empty (``KithPubsub.send_without_waiting``). tests/test_gossip.py guards what this
        mirrors.
        """
        pubsub = self.pubsub
        if pubsub is None:
            raise NoPubsubAttached
        if not self._check_spam_protection(msg_forwarder, pubsub_msg):
            return
        if not self._check_equivocation(pubsub_msg):
            return
        self.mcache.put(pubsub_msg)
        msg_id = pubsub.get_message_id(pubsub_msg)
        origin = ID(pubsub_msg.from_id)
        skipped = (msg_forwarder, origin)
        topics = pubsub_msg.topicIDs
        targets = [peer for peer in self._get_peers_to_send(topics, msg_forwarder, origin,
                                                             msg_id) if peer in pubsub.peers]
        hint = b""
        if origin == pubsub.my_id:
            targets = self._flood_targets(topics, targets)
            # Not named: a peer whose link stopped draining, which may not get it from us;
            # the mesh forwards it to that peer too.
            hint = delivery_hint.encode(peer for peer in targets if not (
                isinstance(pubsub, KithPubsub) and pubsub.is_stalled(peer)))
        elif msg_forwarder == origin and (sent_to := delivery_hint.AUTHOR_SENT_TO.get()):
            targets = [peer for peer in targets if delivery_hint.tag(peer) not in sent_to]
        await self._send_idontwant(msg_id, topics, msg_forwarder)
        await self._notify_observers(topics, msg_id)
        rpc: rpc_pb2.RPC | None = None
        if targets:
            rpc = self._publish_rpc(pubsub_msg, hint)
            size, frame = rpc.ByteSize(), b""
            for peer in targets:
                queue = pubsub.peer_queues.get(peer)
                if (queue is None or peer in self._pending_control
                        or size > queue.max_message_size):
                    self.send_rpc(peer, rpc)
                    continue
                if isinstance(pubsub, KithPubsub):
                    frame = frame or encode_varint_prefixed(rpc.SerializeToString())
                    if pubsub.send_without_waiting(peer, frame):
                        continue
                if not queue.push(rpc):
                    self._handle_dropped_rpc(peer, rpc, "queue_full")
        # For peers whose protocol or subscription has not arrived yet (upstream's queue,
        # flushed when it does).
        queued: set[ID] = set()
        for topic in topics:
            in_topic = pubsub.peer_topics.get(topic, set())
            for peer in in_topic:
                if (peer not in skipped and peer not in self.peer_protocol
                        and peer not in self.direct_peers and peer not in queued):
                    queued.add(peer)
            for peer in pubsub.peers:
                if (peer not in in_topic and peer not in skipped
                        and peer not in self.direct_peers):
                    queued.add(peer)
        if queued:
            rpc = rpc or self._publish_rpc(pubsub_msg, hint)
            stamp = time.time()
            for peer in queued:
                self._prune_pending_messages(peer)
                self._pending_messages[peer].append((stamp, rpc))
        now = time.time()
        for topic in topics:
            self.time_since_last_publish[topic] = int(now)
            if self.adaptive_gossip_enabled:
                self.recent_message_deliveries[topic].append(now)

    def _publish_rpc(self, pubsub_msg: rpc_pb2.Message, hint: bytes = b"") -> rpc_pb2.RPC:
        rpc = rpc_pb2.RPC(publish=[pubsub_msg])
        if isinstance(self.pubsub, Pubsub):
            rpc.senderRecord = pubsub_module.env_to_send_in_RPC(self.pubsub.host)[0]
        if hint:
            rpc.MergeFromString(hint)  # an unknown field to protobuf: kept, and written out
        return rpc

    def _flood_targets(self, topics: Iterable[str], mesh_targets: list[ID]) -> list[ID]:
        """Where our own message goes: every peer in its topics, not only the mesh
        (gossipsub v1.1's flood publishing, go-libp2p's default), mesh peers first, so the
        delivery hint (``app.node.delivery_hint``) names them all and no one forwards it
        to a peer that already has it."""
        pubsub = self.pubsub
        if pubsub is None:
            raise NoPubsubAttached
        chosen = dict.fromkeys(mesh_targets)
        for topic in topics:
            for peer in pubsub.peer_topics.get(topic, ()):
                if peer in self.peer_protocol and peer in pubsub.peers:
                    chosen[peer] = None
        return list(chosen)

    async def handle_rpc(self, rpc: rpc_pb2.RPC, sender_peer_id: ID) -> None:
        """Upstream's handling of a peer's control messages (IHAVE, IWANT, GRAFT, PRUNE,
        IDONTWANT); one that fails is logged and dropped. In 0.8.1 the error left the pubsub
        stream's reader, which reset the stream: the peer's later messages were lost until it
        reconnected."""
        try:
            await super().handle_rpc(rpc, sender_peer_id)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            log.warning("gossipsub: dropped control messages from %s: %s", sender_peer_id, exc,
                        exc_info=True)


def build_router(config: GossipConfig) -> ChatGossipSub:
    """The gossipsub router with ``config``'s values (no peer scoring, see ``ChatGossipSub``)."""
    router = ChatGossipSub(
        config,
        protocols=list(config.protocols),
        degree=config.degree,
        degree_low=config.degree_low,
        degree_high=config.degree_high,
        time_to_live=config.fanout_ttl,
        gossip_window=config.gossip_window,
        gossip_history=config.gossip_history,
        heartbeat_initial_delay=config.heartbeat_initial_delay,
        heartbeat_interval=config.heartbeat_interval,
        do_px=False,  # peer exchange would dial strangers a peer names; Kith dials contacts
        prune_back_off=config.prune_backoff,
        unsubscribe_back_off=config.unsubscribe_backoff,
        max_idontwant_messages=config.max_idontwant_ids,
        adaptive_gossip_enabled=config.adaptive_gossip,
        spam_protection_enabled=config.spam_protection,
        eclipse_protection_enabled=config.eclipse_protection,
    )
    # Not constructor arguments in 0.8.1, only attributes set in __init__.
    router.max_iwant_requests_per_second = config.max_iwant_per_second
    return router


class _QuietPendingQueue(logging.Filter):
    """Drop 0.8.1's per-publish warning about peers that are connected but not in the room.

    Its router queues every post for every connected peer not (yet) subscribed to the topic,
    in case a subscription is about to arrive, keeps the last 100 for 30 s, and logs a warning
    on each post beyond that: with one DM contact online, every room post logs a line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("pending message queue for peer")


def _quiet_pending_queue_warnings() -> None:
    logger = logging.getLogger("libp2p.pubsub.gossipsub")
    if not any(isinstance(f, _QuietPendingQueue) for f in logger.filters):
        logger.addFilter(_QuietPendingQueue())


class _SizedQueues(dict[ID, RpcQueue]):
    """``Pubsub.peer_queues`` that gives each new per-peer queue our capacity.

    ``Pubsub._handle_new_peer`` builds ``RpcQueue()`` with the default 32 and has no parameter
    for it; the queue is empty when it is stored here, so resizing it then is safe.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, peer: ID, queue: RpcQueue) -> None:
        inner = getattr(queue, "_queue", None)
        if inner is not None and hasattr(inner, "max_size"):
            inner.max_size = self.capacity
        else:  # a py-libp2p upgrade moved it; tests/test_gossip.py notices
            log.warning("cannot resize the outbound pubsub queue; it keeps its default size")
        super().__setitem__(peer, queue)


class KithPubsub(Pubsub):
    """py-libp2p's ``Pubsub`` with chat-sized buffers, payload limits and hostile-input guards.

    Overrides, each because 0.8.1 has no setting for it (listed with every other patch in
    ``app.node.libp2p_patches``, guarded by ``tests/test_libp2p_patches.py``):
    - ``subscribe``: the subscription channel holds ``subscription_buffer`` messages, not 32.
    - ``notify_subscriptions``: a full (or closed) subscription drops with a count instead of
      silently (or by raising, which would stop the whole service).
    - ``publish``: refuses payloads over ``max_payload`` and waits while room peers' outbound
      queues are over half full, so a burst is paced instead of dropped.
    - ``push_msg``: drops oversized payloads from peers, and an exception raised while handling
      a peer's message (e.g. an undecodable signing key) is logged instead of cancelling the
      service: in 0.8.1 one failing task stops all of pubsub.
    - ``handle_subscription``: a subscription that fails is dropped alone (so are control
      messages: ``ChatGossipSub.handle_rpc``); every other task of the service fails alone too
      (``isolate_service_tasks`` in ``open_pubsub``).
    - ``stream_handler``: an unparsable RPC frame raises out of it, and in 0.8.1 that takes
      the host's whole Swarm down; now the stream is reset and the peer may open another.
    - ``continuously_read_stream``: reads RPCs a buffer at a time and handles each message in
      turn, without a task per message (see its docstring).
    - ``handle_sending_messages``: coalesces queued RPCs into one write (see its docstring).
    """

    def __init__(self, host: IHost, router: ChatGossipSub, config: GossipConfig) -> None:
        super().__init__(
            host,
            router,
            seen_ttl=config.seen_ttl,
            strict_signing=True,  # sign ours, verify theirs: what go and js expect
            max_subscriptions_per_peer=config.max_subscriptions_per_peer,
            max_inbound_rpc_size=config.max_rpc_size,
        )
        self.config = config
        self.gossip = router  # typed access to the router (``self.router`` is the interface)
        self.peer_queues = _SizedQueues(config.outbound_queue_size)
        cache = self.validation_cache
        self._verdicts = pubsub_signatures.Verdicts(cache.ttl, cache.max_size)
        self.validation_cache = self._verdicts
        self._checking_signatures: set[str] = set()  # topics whose validator checks them
        self._unchecked = pubsub_signatures.Unchecked()
        self.dropped: defaultdict[str, int] = defaultdict(int)
        self.oversized = 0
        self.seen_copies = 0  # copies of messages already seen, dropped as they arrived
        self._stalled: set[ID] = set()

    async def subscribe(self, topic_id: str) -> ISubscriptionAPI:
        """Upstream ``Pubsub.subscribe`` with our channel size (the 32 is a module constant)."""
        if topic_id in self.topic_ids:
            return self.subscribed_topics_receive[topic_id]
        send, receive = trio.open_memory_channel[rpc_pb2.Message](self.config.subscription_buffer)
        subscription = TrioSubscriptionAPI(
            receive, unsubscribe_fn=functools.partial(self.unsubscribe, topic_id)
        )
        self.subscribed_topics_send[topic_id] = send
        self.subscribed_topics_receive[topic_id] = subscription
        packet, subopt = self._build_announce_rpc(topic_id, subscribe=True)
        await self.message_all_peers(packet.SerializeToString(), announce=subopt)
        await self.router.join(topic_id)
        return subscription

    def handle_subscription(self, origin_id: ID, sub_message: rpc_pb2.RPC.SubOpts) -> None:
        """Upstream's, one subscription at a time: one that fails is logged and dropped; the
        peer's stream and its other messages go on (in 0.8.1 the error reset the stream)."""
        try:
            super().handle_subscription(origin_id, sub_message)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            log.warning("pubsub: dropped a subscription from %s: %s", origin_id, exc,
                        exc_info=True)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        for topic in publish_message.topicIDs:
            channel = self.subscribed_topics_send.get(topic)
            if channel is None:
                continue
            try:
                channel.send_nowait(publish_message)
            except trio.WouldBlock:
                self.dropped[topic] += 1
                if self.dropped[topic] % 100 == 1:
                    log.warning(
                        "room %s: reader is %d messages behind; dropped %d so far",
                        topic, self.config.subscription_buffer, self.dropped[topic],
                    )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the reader went away; unsubscribe will follow

    async def publish(self, topic_id: str | list[str], data: bytes) -> None:
        """Publish ``data`` (signed by the host key), pacing bursts to what peers can take."""
        if len(data) > self.config.max_payload:
            raise PayloadTooLarge(f"{len(data)} bytes > {self.config.max_payload}")
        topics = [topic_id] if isinstance(topic_id, str) else list(topic_id)
        await self._wait_for_outbound_room(topics)
        await super().publish(topic_id, data)

    async def _handle_new_peer(self, peer_id: ID) -> None:
        """Upstream's, after forgetting a stream whose connection already closed, and then
        telling the peer what we joined or left while it was being set up.

        When a peer restarts and reconnects before its old connection's end is processed,
        0.8.1 still holds the old pubsub stream, sees the peer as known and skips the new
        connection: our subscriptions never reach the restarted peer, so it sends us nothing
        until our next write to the dead stream fails (tens of seconds).

        0.8.1 builds the hello (our topics) before it awaits the hello's write and only then
        registers the peer's queue; a ``subscribe`` or ``unsubscribe`` in between is in
        neither the hello nor the queue, and gossipsub never announces it again: the peer
        never learnt that we joined the room, and its posts never reached us.
        """
        stream = self.peers.get(peer_id)
        muxed = getattr(stream, "muxed_conn", None)
        if stream is not None and getattr(muxed, "is_closed", False):
            log.debug("pubsub: replacing the stale stream of %s", peer_id)
            self._handle_dead_peer(peer_id)
        token = _HELLO_TOPICS.set(None)
        try:
            await super()._handle_new_peer(peer_id)
            announced = _HELLO_TOPICS.get()
        finally:
            _HELLO_TOPICS.reset(token)
        if announced is not None:
            self._announce_changes_since_hello(peer_id, announced)
        if (ours := self.peers.get(peer_id)) is not None:
            yamux_patches.let_wait(ours)  # its window updates, as the peer's posts below

    def get_hello_packet(self) -> rpc_pb2.RPC:
        """Upstream's, noting the topics it announces for ``_handle_new_peer``."""
        hello = super().get_hello_packet()
        _HELLO_TOPICS.set(frozenset(subopt.topicid for subopt in hello.subscriptions))
        return hello

    def _announce_changes_since_hello(self, peer_id: ID, announced: frozenset[str]) -> None:
        """Queue for ``peer_id`` the topics joined and left since its hello was built."""
        queue = self.peer_queues.get(peer_id)
        current = set(self.topic_ids)
        changes = [rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic)
                   for topic in sorted(current - announced)]
        changes += [rpc_pb2.RPC.SubOpts(subscribe=False, topicid=topic)
                    for topic in sorted(announced - current)]
        if queue is None or not changes:
            return
        log.debug("pubsub: %d subscription changes during the set-up of %s", len(changes),
                  peer_id)
        packet = rpc_pb2.RPC(subscriptions=changes)
        packet.senderRecord = pubsub_module.env_to_send_in_RPC(self.host)[0]
        if not queue.push(packet):
            for subopt in changes:
                self._schedule_announce_retry(peer_id, subopt)

    def set_topic_validator(self, topic: str, validator: ValidatorFn, is_async_validator: bool,
                            checks_signatures: bool = False) -> None:
        """Upstream's, and ``checks_signatures``: the validator checks each message's gossip
        signature itself (``pubsub_signatures.verify``) wherever its payload is not already
        signed by the key the message names, so push_msg does not check it first."""
        super().set_topic_validator(topic, validator, is_async_validator)
        if checks_signatures:
            self._checking_signatures.add(topic)
        else:
            self._checking_signatures.discard(topic)

    def remove_topic_validator(self, topic: str) -> None:
        super().remove_topic_validator(topic)
        self._checking_signatures.discard(topic)

    def _was_squatted(self, msg: rpc_pb2.Message) -> bool:
        """A seen id whose message was taken unchecked, and ``msg`` is the genuine one
        (``pubsub_signatures.Unchecked``): forget the id, so ``msg`` is handled."""
        msg_id = self._msg_id_constructor(msg)
        if not self._unchecked.contested(msg_id, msg):
            return False
        log.info("pubsub: a message taken unchecked under id %s was not its publisher's",
                 msg_id.hex())
        with self.seen_messages.lock:
            self.seen_messages.cache.pop(msg_id, None)
        self._verdicts.forget(msg_id)
        return True

    def _validator_checks_signature(self, msg: rpc_pb2.Message) -> bool:
        topics = msg.topicIDs
        return bool(topics) and all(
            t in self._checking_signatures and t in self.topic_validators for t in topics
        )

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if self._validator_checks_signature(msg):
            with pubsub_signatures.deferred(msg):
                await self._push_msg(msg_forwarder, msg)
            msg_id = self._msg_id_constructor(msg)
            if self._is_msg_seen(msg):
                self._unchecked.taken(msg_id, bytes(msg.signature))
            else:
                # Rejected, perhaps for a signature that was never checked: the verdict
                # belongs to these bytes, not to the message id, which a forger can reuse.
                self._verdicts.forget(msg_id)
            return
        await self._push_msg(msg_forwarder, msg)

    async def _push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if msg_forwarder == self.my_id:
            await super().push_msg(msg_forwarder, msg)
            return
        if len(msg.data) > self.config.max_payload:
            self.oversized += 1
            log.debug("dropping a %d-byte message from %s", len(msg.data), msg_forwarder)
            return
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception:  # see the class docstring
            log.warning("dropping a message from %s that py-libp2p failed on", msg_forwarder,
                        exc_info=True)

    async def stream_handler(self, stream: INetStream) -> None:
        try:
            await super().stream_handler(stream)
        except Exception:  # e.g. a protobuf DecodeError from a hostile peer
            stopping = self.manager.is_cancelled or not self.manager.is_running
            log.log(logging.DEBUG if stopping else logging.WARNING,
                    "pubsub stream from %s failed", stream.muxed_conn.peer_id, exc_info=True)
            with contextlib.suppress(Exception):  # already broken
                await stream.reset()

    async def continuously_read_stream(self, stream: INetStream) -> None:
        """Upstream's RPC reader (0.8.1), reading through ``_RpcReader`` and handling each
        received message in turn instead of starting a task for it.

        Upstream starts a ``push_msg`` task for every message in an RPC through the service
        manager, which first walks every task of the service to find the new task's parent
        (``TrioManager._find_parent_task``; the reader is no manager task, so the walk always
        ends empty). The walk grows with the service's tasks: in a 20-member room still
        forming (a history sync with each new member) it was an eighth of a member's CPU,
        though nothing measurable once the room had settled. Tasks also let a peer's messages
        overtake each other, which made a room see gaps that were not there. Messages already
        seen are dropped before anything else: in a room every post arrives once from each mesh
        neighbour.
        Handling messages in order is what go-libp2p's reader does; a slow validator would
        hold up that peer's stream, which suits only synchronous validators (Kith's are).
        Subscriptions in an RPC are handled before its messages, control after them, the
        order upstream's tasks ran in. tests/test_gossip.py guards what this mirrors.
        """
        peer_id = stream.muxed_conn.peer_id
        sender = peer_id.to_bytes()
        yamux_patches.let_wait(stream)  # a busy room's RPCs are read in batches
        reader = _RpcReader(stream, self.max_inbound_rpc_size)
        try:
            while self.manager.is_running:
                incoming = await reader.next()
                rpc = rpc_pb2.RPC()
                rpc.ParseFromString(incoming)
                if not pubsub_module.maybe_consume_signed_record(rpc, self.host, peer_id):
                    log.debug("ignoring an RPC from %s: invalid signed record", peer_id)
                    continue
                if len(rpc.subscriptions) > self.max_subscriptions_per_rpc:
                    log.warning("peer %s sent %d subscriptions in one RPC; ignored",
                                peer_id, len(rpc.subscriptions))
                else:
                    for subscription in rpc.subscriptions:
                        self.handle_subscription(peer_id, subscription)
                last = len(rpc.publish) - 1
                sent_to: frozenset[bytes] | None = None
                for index, message in enumerate(rpc.publish):
                    if not self._is_subscribed_to_msg(message):
                        continue
                    if self._is_msg_seen(message) and not self._was_squatted(message):
                        self.seen_copies += 1
                        continue
                    if message.from_id == sender:  # its author: the hint is theirs
                        sent_to = delivery_hint.decode(incoming) if sent_to is None else sent_to
                        hint = delivery_hint.AUTHOR_SENT_TO.set(sent_to)
                    else:
                        hint = delivery_hint.AUTHOR_SENT_TO.set(frozenset())
                    at_once = _FORWARD_AT_ONCE.set(index == last and not reader.holding)
                    try:
                        await self.push_msg(peer_id, message)
                    finally:
                        _FORWARD_AT_ONCE.reset(at_once)
                        delivery_hint.AUTHOR_SENT_TO.reset(hint)
                if rpc.HasField("control"):
                    await self.router.handle_rpc(rpc, peer_id)
                if stream.metric_send_channel is not None:
                    await stream.metric_send_channel.send(self._rpc_event(peer_id, rpc, incoming))
        except MessageTooLarge as error:
            log.warning("pubsub RPC from %s over the size limit: %s", peer_id, error)
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer_id)
        except (StreamEOF, StreamError, IOException, RawConnError):
            log.debug("pubsub stream from %s ended", peer_id, exc_info=True)

    @staticmethod
    def _rpc_event(peer_id: ID, rpc: rpc_pb2.RPC, raw: bytes) -> GossipsubEvent:
        """What upstream reports on a stream's metrics channel for one RPC."""
        event = GossipsubEvent()
        event.peer_id = peer_id.pretty()
        event.message_size = len(raw)
        event.publish = bool(rpc.publish)
        event.subopts = bool(rpc.subscriptions)
        event.control = rpc.HasField("control")
        return event

    async def handle_sending_messages(
        self, peer_id: ID, stream: INetStream, queue: RpcQueue
    ) -> None:
        """Upstream's per-peer sender, but writing every queued RPC in one stream write.

        Upstream writes one RPC per write; each costs a Yamux frame, a Noise frame and a
        syscall here and a read plus a window update at the peer. In a burst the queue holds
        many RPCs, and coalescing them (up to ``write_batch`` bytes) is what lets Python keep up.
        """
        try:
            while True:
                rpc = await queue.pop()
                if rpc is None:
                    return  # closed: the peer is gone
                frames = [encode_varint_prefixed(rpc.SerializeToString())]
                size = len(frames[0])
                while size < self.config.write_batch and len(queue) > 0:
                    more = await queue.pop()  # returns at once: the queue is not empty
                    if more is None:
                        break
                    frames.append(encode_varint_prefixed(more.SerializeToString()))
                    size += len(frames[-1])
                await stream.write(b"".join(frames))
        except Exception:  # StreamClosed, StreamReset, or anything else: as upstream
            log.debug("pubsub sender for %s stopped", peer_id, exc_info=True)
            self._handle_dead_peer(peer_id)

    def send_without_waiting(self, peer_id: ID, frame: bytes) -> bool:
        """Write one length-prefixed RPC to ``peer_id`` at once, past its queue; False when
        nothing was written (queue it).

        A forwarded post queued for a peer wakes that peer's sender task (``Event``, a trip
        through trio's scheduler, a checkpoint after the write) to do what can be done here
        when the queue is empty and the write need not wait (``write_without_waiting``):
        with the queue empty and no write under way, nothing queued can be overtaken. What
        the socket does not take at once is finished by a task, holding the connection's
        write lock, so it still goes out before anything else. A message handled while its
        RPC reader holds more of the peer's bytes (a burst, or a busy node catching up) is
        queued instead, and so is each after it (the queue is no longer empty): the sender
        task writes the lot at once, one frame and one system call per peer where writing
        each at once would cost one each (at 50 members that cost more CPU than it saved).
        """
        queue, stream = self.peer_queues.get(peer_id), self.peers.get(peer_id)
        if (queue is None or len(queue) > 0 or not isinstance(stream, NetStream)
                or not self.manager.is_running  # a rest needs a task to finish it
                or not _FORWARD_AT_ONCE.get()):
            return False
        muxed = stream.muxed_stream
        if not isinstance(muxed, YamuxStream) or stream._state not in _WRITABLE:
            return False
        rest = yamux_patches.write_without_waiting(muxed, frame)
        if rest is None:
            return False
        if rest:
            self.manager.run_task(self._finish_write, peer_id, muxed, rest)
        return True

    async def _finish_write(self, peer_id: ID, stream: YamuxStream, rest: bytearray) -> None:
        try:
            await yamux_patches.finish_write(stream, rest)
        except Exception:  # as a failed write of the sender task
            log.debug("pubsub write to %s failed", peer_id, exc_info=True)
            self._handle_dead_peer(peer_id)

    def is_stalled(self, peer_id: ID) -> bool:
        """Whether ``peer_id``'s outbound queue stopped draining (``_wait_for_outbound_room``)."""
        return peer_id in self._stalled

    def _room_peers(self, topics: Iterable[str]) -> set[ID]:
        peers: set[ID] = set()
        for topic in topics:
            peers |= self.peer_topics.get(topic, set())
        return peers

    async def _wait_for_outbound_room(self, topics: Sequence[str]) -> None:
        """Wait until no live room peer has an outbound queue over half full.

        A peer whose queue does not shrink for ``publish_stall`` seconds is marked stalled and
        not waited for again until its queue drains below half.
        """
        limit = self.config.outbound_queue_size // 2
        progress: dict[ID, tuple[int, float]] = {}
        while True:
            now = trio.current_time()
            waiting = False
            for peer in self._room_peers(topics):
                queue = self.peer_queues.get(peer)
                length = len(queue) if queue is not None else 0
                if length < limit:
                    self._stalled.discard(peer)
                    continue
                if peer in self._stalled:
                    continue
                seen = progress.get(peer)
                if seen is None or length < seen[0]:
                    progress[peer] = (length, now)
                    waiting = True
                elif now - seen[1] >= self.config.publish_stall:
                    log.warning("pubsub peer %s is not draining its queue; not waiting", peer)
                    self._stalled.add(peer)
                else:
                    waiting = True
            if not waiting:
                return
            await trio.sleep(0.002)


class _RpcReader:
    """The RPCs of an inbound pubsub stream, each cut from whole stream reads.

    py-libp2p 0.8.1 reads each RPC with ``read_varint_prefixed_bytes_limited``: one stream
    read per byte of the length prefix, then one for the body. Every stream read goes through
    ``NetStream.read`` and ``YamuxStream.read`` (locks, state checks, window accounting), so a
    small RPC cost three of them. Here one read takes everything that has arrived, and every
    whole RPC in it is cut out without another await. What is held is the rest of one read
    and at most one unfinished RPC, whose announced length is checked against ``limit``
    before its body is waited for.
    """

    def __init__(self, stream: INetStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._held = bytearray()

    async def next(self) -> bytes:
        """The next RPC's bytes; ``MessageTooLarge`` or ``ParseError`` for a bad length
        prefix, and the stream's own error (or ``IncompleteReadError``) at its end."""
        while (rpc := self._cut()) is None:
            data = await self._stream.read()
            if not data:
                raise IncompleteReadError("pubsub stream ended within an RPC",
                                          expected_bytes=1, received_bytes=0)
            self._held += data
        return rpc

    @property
    def holding(self) -> bool:
        """Whether bytes of the next RPC have already arrived."""
        return bool(self._held)

    def _cut(self) -> bytes | None:
        held = self._held
        length = shift = 0
        for byte in held[:MAX_VARINT_BYTES]:
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        else:
            if len(held) >= MAX_VARINT_BYTES:
                raise ParseError("an RPC's length prefix is over 10 bytes")
            return None  # the prefix is not all here yet
        if length > self._limit:
            raise MessageTooLarge(f"an RPC of {length} bytes, over the limit of {self._limit}")
        start = shift // 7 + 1  # the prefix's length
        if len(held) < start + length:
            return None
        rpc = bytes(held[start:start + length])
        del held[:start + length]
        return rpc


@asynccontextmanager
async def open_pubsub(
    host: IHost, config: GossipConfig = GossipConfig()
) -> AsyncIterator[KithPubsub]:
    """Run gossipsub on a running ``host`` until the block exits, then stop it cleanly.

    Call inside ``async with host.run(...)``. Peers connected before this starts are registered
    too (py-libp2p only notices connections opened later).
    """
    _quiet_pending_queue_warnings()
    pubsub_records.install()
    pubsub_signatures.install()
    network = host.get_network()
    notifees_before = list(getattr(network, "notifees", []))
    router = build_router(config)
    pubsub = KithPubsub(host, router, config)
    try:
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            isolate_service_tasks(pubsub.manager, "pubsub")  # a peer's input fails alone
            isolate_service_tasks(router.manager, "gossipsub")
            for peer in host.get_connected_peers():
                pubsub.manager.run_task(pubsub.ensure_peer_stream, peer)
            try:
                yield pubsub
            finally:
                for protocol in router.get_protocols():
                    host.remove_stream_handler(protocol)
    finally:
        for notifee in list(getattr(network, "notifees", [])):
            if isinstance(notifee, PubsubNotifee) and notifee not in notifees_before:
                network.remove_notifee(notifee)
        # Its sweeper thread is never stopped by py-libp2p: one leaked thread per Pubsub.
        pubsub.seen_messages.stop()
