"""Group rooms: gossipsub for speed, ``/kith/sync/2.0.0`` (and 1.0.0) for completeness.

Every post is sealed with the room key and signed by its author (``app.core.room``), published
on the room's topic, and stored with its original envelope. Gossip is the fast path only: a
member who was offline, just joined, or noticed a gap in an author's sequence asks any member
for what it lacks by listing the ``author_seq`` ranges it holds, so a number nobody holds never
stops it, and verifies every synced post exactly like a live one. Members announce themselves on
joining, every ``ANNOUNCE_INTERVAL`` seconds, and when they see a newcomer, so member lists and
addresses spread through the room itself.

Everything a member sends is bounded before it is stored: the codec refuses numbers beyond what
members can store, a post may not lead the room's clock by more than ``MAX_LAMPORT_STEP``, live
posts pass per-author and per-peer quotas, and two posts by one author with the same number
(an equivocation) resolve to the same one on every member (``app.node.room_limits``,
docs/protocol.md 8.7-8.10). A failure while handling one post drops that post, never the node.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from app.core import room as rc
from app.core.events import (
    RoomChanged,
    RoomCreated,
    RoomJoined,
    RoomLeft,
    RoomMembersChanged,
    RoomMessage,
    RoomPostAdded,
    RoomPostConfirmed,
    RoomPostRemoved,
    UnreadChanged,
)
from app.core.invite import MAX_ADDRS as MAX_INVITE_ADDRS
from app.core.invite import ContactInvite, clean_display_name, strip_p2p
from app.core.records import PostState, RoomInfo, RoomMember, RoomPostInfo
from app.core.seq_ranges import HeldRanges
from app.node.framing import FrameError, Stream, guarded, read_frame, write_frame
from app.node.gossip import KithPubsub
from app.node.host import connect_at
from app.node.interfaces import Connections, Emit, LocalPeer, RoomKindHandler
from app.node.payloads import PayloadKinds
from app.node.room_limits import MIB, QUERY_COST, PostQuotas, ServeLimits
from app.store.rooms import Intake, RoomStore, StoredPost, StoredRoom, StoreResult

if TYPE_CHECKING:
    from libp2p.pubsub.subscription import ISubscriptionAPI

log = logging.getLogger(__name__)

SYNC_PROTOCOL_ID = TProtocol(rc.SYNC_PROTOCOL_ID)
SYNC2_PROTOCOL_ID = TProtocol(rc.SYNC2_PROTOCOL_ID)
MAX_SYNC_PAGE_BYTES = 4 * MIB  # a page ends once this much was sent (at least one post)
FIRST_ANNOUNCE_WAIT = 5.0     # wait this long at most for a room peer before announcing
ANNOUNCE_INTERVAL = 60.0
REANNOUNCE_MIN_GAP = 5.0      # answer a newcomer's announce with ours, at most this often
SYNC_INTERVAL = 60.0
SYNC_TIMEOUT = 30.0
MAX_SYNC_PAGES = 1000
DIAL_TIMEOUT = 10.0
MAX_ROOM_DIALS = 8            # members dialled per room when we have no room peer connected
ONLINE_WINDOW = 2.5 * ANNOUNCE_INTERVAL
SUMMARY_DELAY = 0.1           # coalesce room-list and unread updates during bursts


class RoomServiceError(ValueError):
    """A room operation the user asked for that cannot be done; the message says why."""


@dataclass
class _LiveRoom:
    """What a joined room needs while the node runs."""

    secrets: rc.RoomSecrets
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    syncing: bool = False
    sync_again: set[str] = field(default_factory=set)
    synced_with: set[str] = field(default_factory=set)
    last_announce: float = 0.0


class _Taken(NamedTuple):
    """What became of one envelope: the post if it opened and verified, and how it was stored
    (None: refused, or an announce)."""

    post: rc.RoomPost | None
    result: StoreResult | None

    @property
    def stored(self) -> bool:
        return self.result is not None and self.result.stored


def _decoded_or_none(secrets: rc.RoomSecrets, envelope: bytes) -> rc.RoomPost | None:
    try:
        return rc.decode_post(secrets, envelope)
    except rc.RoomError:
        return None


def _parse_room_id(room_id: str) -> bytes:
    try:
        raw = bytes.fromhex(room_id)
    except ValueError:
        raw = b""
    if len(raw) != rc.ROOM_ID_SIZE:
        raise RoomServiceError(f"not a room id: {room_id!r}")
    return raw


class TextPosts:
    """Kind 1, text: shown as it is (``RoomService`` announces it as a ``RoomMessage`` too)."""

    def take(self, room_id: bytes, post: rc.RoomPost) -> None:
        pass

    def present(self, body: bytes) -> tuple[str, str | None] | None:
        return body.decode("utf-8", "replace"), None


class RoomService:
    """Our rooms (``interfaces.RoomChannel``): posts, members, history sync.

    ``kinds`` hands each kind of post to its handler (``interfaces.RoomKindHandler``); text is
    this service's own, other services register theirs when the node is wired. Announces are
    the protocol's own and never reach a handler.
    """

    def __init__(self, store: RoomStore, pubsub: KithPubsub, *, us: LocalPeer, host: IHost,
                 nursery: trio.Nursery, emit: Emit, connections: Connections,
                 unread_total: Callable[[], int]) -> None:
        self.store = store
        self._pubsub = pubsub
        self._us = us
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._unread_total = unread_total
        self.kinds: PayloadKinds[RoomKindHandler] = PayloadKinds("room post")
        self.kinds.register(rc.KIND_TEXT, TextPosts())
        self._live: dict[bytes, _LiveRoom] = {}
        self._dirty: dict[bytes, set[str]] = {}
        self._flush_pending = False
        self._names: dict[bytes, dict[str, str]] = {}
        self.quotas = PostQuotas()
        self._serves = ServeLimits()
        self._answered: OrderedDict[tuple[bytes, bytes, int], None] = OrderedDict()
        # Offered and asked for, newest first (a test may leave out 2.0.0 to play an older peer).
        self.sync_protocols: tuple[TProtocol, ...] = (SYNC2_PROTOCOL_ID, SYNC_PROTOCOL_ID)

    @property
    def _me(self) -> str:
        return self._us.identity.peer_id

    def start(self) -> None:
        for protocol in self.sync_protocols:
            self._host.set_stream_handler(
                protocol, guarded(protocol, self._serve_sync, timeout=SYNC_TIMEOUT)
            )
        for stored in self.store.rooms():
            self._open(stored.secrets)
            self._nursery.start_soon(self._reach_members, stored.secrets.room_id)

    # -- what the user does -------------------------------------------------------------------

    async def create(self, name: str, description: str = "") -> RoomInfo:
        try:
            clean = clean_display_name(name)
        except ValueError:
            raise RoomServiceError("a room needs a name") from None
        secrets = rc.RoomSecrets.generate()
        self.store.add_room(secrets, clean, rc.clean_description(description))
        self._open(secrets)
        info = self.info(secrets.room_id)
        self._emit(RoomCreated(room_id=info.room_id, invite=info.invite))
        self._emit(RoomChanged(room=info))
        return info

    async def join(self, link: str) -> RoomInfo:
        invite = rc.parse_room_invite(link)
        secrets = invite.secrets
        known = self.store.room(secrets.room_id)
        if known is not None and known.secrets.key != secrets.key:
            # 128 random bits do not collide: this link was altered, and its `via` members
            # would be whoever altered it. Nothing is changed.
            raise RoomServiceError(
                f"You are already in the room “{known.name}”, and this link carries another key "
                "for it: it is not a genuine invite (it may have been altered). Nothing was "
                "changed."
            )
        self.store.add_room(secrets, invite.name, invite.description)
        if secrets.room_id not in self._live:
            self._open(secrets)
        for addr in invite.via:
            peer_id = addr.rsplit("/p2p/", 1)[-1]
            if peer_id != self._me:
                self.store.upsert_member(secrets.room_id, peer_id, "", (addr,), None)
        info = self.info(secrets.room_id)
        self._emit(RoomJoined(room_id=info.room_id))
        self._emit(RoomChanged(room=info))
        self._nursery.start_soon(self._reach_members, secrets.room_id)
        return info

    async def leave(self, room_id_hex: str) -> None:
        room_id = self._require(room_id_hex).secrets.room_id
        live = self._live.pop(room_id, None)
        if live is not None:
            live.scope.cancel()
            self._pubsub.remove_topic_validator(live.secrets.topic)
            await self._pubsub.unsubscribe(live.secrets.topic)
        self.store.remove_room(room_id)
        self._emit(RoomLeft(room_id=room_id_hex))
        self._emit(UnreadChanged(total=self._unread_total()))

    async def post(self, room_id_hex: str, text: str) -> RoomPostInfo:
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            raise rc.MalformedPost("the text is not valid Unicode") from None
        return await self._post(room_id_hex, rc.KIND_TEXT, body)

    async def post_payload(self, room_id: bytes, kind: int, body: bytes) -> RoomPostInfo:
        """Post a payload of ``kind`` to every member (``interfaces.RoomChannel``)."""
        return await self._post(room_id.hex(), kind, body)

    async def _post(self, room_id_hex: str, kind: int, body: bytes) -> RoomPostInfo:
        stored = self._require(room_id_hex)
        secrets = stored.secrets
        identity = self._us.identity
        sent_at_ms = int(time.time() * 1000)

        def build(lamport: int, author_seq: int) -> tuple[rc.RoomPost, bytes]:
            envelope = rc.encode_post(identity, secrets, kind=kind, body=body, lamport=lamport,
                                      author_seq=author_seq, sent_at_ms=sent_at_ms)
            return rc.decode_post(secrets, envelope), envelope

        # Numbered, signed and stored in one transaction (RoomStore.store_own_post).
        post, envelope = self.store.store_own_post(secrets.room_id, identity.public_key, build,
                                                   PostState.PENDING.value)
        info = self._post_info(self._stored(post, PostState.PENDING.value))
        self._emit(RoomPostAdded(post=info))
        self._changed(secrets.room_id)
        await self._publish(secrets, envelope)
        if self._topic_peers(secrets):
            self._confirm(secrets.room_id, post.post_id)
        return info

    def has_room(self, room_id: bytes) -> bool:
        return self.store.room(room_id) is not None

    def member_ids(self, room_id: bytes) -> set[str]:
        """Every member of the room we know of, as stored."""
        return {m.peer_id for m in self.store.members(room_id)}

    def rooms_of(self, peer_id: str) -> list[bytes]:
        """The rooms we share with ``peer_id``."""
        return self.store.rooms_of(peer_id)

    def rooms(self) -> list[RoomInfo]:
        return [self.info(r.secrets.room_id) for r in self.store.rooms()]

    def members(self, room_id_hex: str) -> list[RoomMember]:
        room_id = self._require(room_id_hex).secrets.room_id
        now = time.time()
        me = RoomMember(self._me, self._us.display_name(), True, now, True)
        out = [me]
        for member in self.store.members(room_id):
            if member.peer_id == self._me:
                continue
            online = self._connections.is_connected(member.peer_id) and (
                member.last_seen is not None and now - member.last_seen < ONLINE_WINDOW
            )
            out.append(RoomMember(member.peer_id, member.name or member.peer_id[:12], online,
                                  member.last_seen))
        return out

    def member_invite(self, room_id_hex: str, peer_id: str) -> str:
        """A contact link for a room member, from what their announces taught us."""
        room_id = self._require(room_id_hex).secrets.room_id
        for member in self.store.members(room_id):
            if member.peer_id == peer_id:
                addrs = tuple(strip_p2p(a) for a in member.addrs)[: MAX_INVITE_ADDRS]
                return ContactInvite(peer_id, member.name, addrs).to_link()
        raise RoomServiceError("this person is not a member of the room")

    def history(self, room_id_hex: str, before: tuple[int, str, str] | None, limit: int
                ) -> list[RoomPostInfo]:
        room_id = self._require(room_id_hex).secrets.room_id
        cursor = None
        if before is not None:
            cursor = (int(before[0]), bytes.fromhex(before[1]), bytes.fromhex(before[2]))
        names = {m.peer_id: m.name for m in self.store.members(room_id)}
        out = []
        for post in self.store.history(room_id, cursor, max(1, min(limit, 1000))):
            view = self._view(post.kind, post.body)
            if view is not None:  # not bookkeeping, nor a file offer that cannot be read
                out.append(self._post_info(post, names, view))
        return out

    async def mark_read(self, room_id_hex: str) -> None:
        room_id = self._require(room_id_hex).secrets.room_id
        if self.store.mark_read(room_id):
            self._changed(room_id)
            self._emit(UnreadChanged(total=self._unread_total()))

    def info(self, room_id: bytes) -> RoomInfo:
        stored = self.store.room(room_id)
        if stored is None:
            raise RoomServiceError("unknown room")
        members = [m for m in self.store.members(room_id) if m.peer_id != self._me]
        online = sum(1 for m in members if self._connections.is_connected(m.peer_id))
        unread, preview = self.store.stats(room_id)
        return RoomInfo(
            room_id=room_id.hex(), name=stored.name, description=stored.description,
            invite=self._invite(stored), members=len(members) + 1, online=online + 1,
            unread=unread, last_message=preview, last_activity=stored.last_activity,
        )

    def _invite(self, stored: StoredRoom) -> str:
        via = tuple(self._us.addrs()[: rc.MAX_VIA])
        return rc.RoomInvite(stored.secrets, stored.name, stored.description, via).to_link()

    def _require(self, room_id_hex: str) -> StoredRoom:
        stored = self.store.room(_parse_room_id(room_id_hex))
        if stored is None:
            raise RoomServiceError(f"you are not in room {room_id_hex}")
        return stored

    def _changed(self, room_id: bytes, unread: bool = False, members: bool = False) -> None:
        """Announce the room's list entry (and unread total, member list) soon, coalesced:
        a burst of posts costs one summary per ``SUMMARY_DELAY``, not one per post."""
        self._dirty.setdefault(room_id, set()).update(
            {"room"} | ({"unread"} if unread else set()) | ({"members"} if members else set())
        )
        if not self._flush_pending:
            self._flush_pending = True
            self._nursery.start_soon(self._flush_summaries)

    async def _flush_summaries(self) -> None:
        await trio.sleep(SUMMARY_DELAY)
        self._flush_pending = False
        dirty, self._dirty = self._dirty, {}
        unread = False
        for room_id, what in dirty.items():
            if self.store.room(room_id) is None:
                continue
            if "members" in what:
                self._emit(RoomMembersChanged(room_id=room_id.hex(),
                                                   members=tuple(self.members(room_id.hex()))))
            self._emit(RoomChanged(room=self.info(room_id)))
            unread = unread or "unread" in what
        if unread:
            self._emit(UnreadChanged(total=self._unread_total()))

    # -- the live room ------------------------------------------------------------------------

    def _open(self, secrets: rc.RoomSecrets) -> None:
        live = _LiveRoom(secrets)
        self._live[secrets.room_id] = live
        self._pubsub.set_topic_validator(secrets.topic, self._validator(secrets), False)
        self._nursery.start_soon(self._run_room, live)

    def _validator(self, secrets: rc.RoomSecrets):  # type: ignore[no-untyped-def]
        """Only posts that open, verify, keep to the room's clock and to the quotas, and do
        not lose an equivocation, are delivered and relayed to other members."""

        def validate(peer: ID, message: rpc_pb2.Message) -> bool:
            try:
                return self._admit_live(secrets, str(peer), message)
            except Exception:  # one message, never the node
                log.warning("room %s: dropped a post relayed by %s that failed to check",
                            secrets.id_hex, peer, exc_info=True)
                return False

        return validate

    def _admit_live(self, secrets: rc.RoomSecrets, forwarder: str,
                    message: rpc_pb2.Message) -> bool:
        try:
            post = rc.decode_post(secrets, message.data)
        except rc.RoomError as exc:
            log.info("dropped a room post relayed by %s: %s", forwarder, exc)
            return False
        problem = self._out_of_step(post)
        if problem:
            log.info("room %s: dropped a post by %s relayed by %s: %s", secrets.id_hex,
                     post.author, forwarder, problem)
            return False
        if forwarder == self._me:
            return True  # our own publish
        room_id = secrets.room_id
        held = post.kind == rc.KIND_ANNOUNCE or self.store.has_post(room_id, post.author_key,
                                                                      post.post_id)
        try:
            publisher = str(ID(message.from_id))
        except Exception:  # noqa: BLE001 - py-libp2p verified the signature, so this is odd
            publisher = forwarder
        over = self.quotas.admit(room_id, None if held else post.author_key, publisher,
                                 forwarder, len(message.data), time.monotonic())
        if over is not None:
            return False
        if post.kind != rc.KIND_ANNOUNCE and self.store.winner_over(post) is not None:
            # The other post of this equivocation is held: keep it, relay nothing, and tell
            # the room which one stands (whoever sent this one may hold only this one).
            self._nursery.start_soon(self._conflict_lost, secrets, post)
            return False
        return True

    def _out_of_step(self, post: rc.RoomPost) -> str:
        """Why a verified post cannot be taken now, from the room's state ("" if it can)."""
        stored = self.store.room(post.room_id)
        if stored is not None and post.lamport > stored.lamport + rc.MAX_LAMPORT_STEP:
            return (f"its lamport {post.lamport} leads the room's {stored.lamport} by more "
                    f"than {rc.MAX_LAMPORT_STEP}")
        return ""

    async def _run_room(self, live: _LiveRoom) -> None:
        with live.scope:
            subscription: ISubscriptionAPI = await self._pubsub.subscribe(live.secrets.topic)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._announce_loop, live)
                nursery.start_soon(self._sync_loop, live)
                async for message in subscription:
                    try:
                        source = str(ID(message.from_id))
                    except Exception:  # noqa: BLE001 - a bad id only loses the gap hint
                        source = ""
                    try:
                        await self._receive(live, bytes(message.data), source)
                    except Exception:  # one post, never the node
                        log.warning("room %s: dropped a post published by %s",
                                    live.secrets.id_hex, source or "?", exc_info=True)

    async def _publish(self, secrets: rc.RoomSecrets, envelope: bytes) -> None:
        try:
            await self._pubsub.publish(secrets.topic, envelope)
        except Exception as exc:  # noqa: BLE001 - sync delivers what gossip could not
            log.warning("publishing to room %s failed: %s", secrets.id_hex, exc)

    def _topic_peers(self, secrets: rc.RoomSecrets) -> set[ID]:
        return set(self._pubsub.peer_topics.get(secrets.topic, set()))

    def _confirm(self, room_id: bytes, post_id: bytes) -> None:
        if self.store.set_post_state(room_id, post_id, PostState.CONFIRMED.value):
            self._emit(RoomPostConfirmed(room=room_id.hex(), id=post_id.hex()))

    async def _receive(self, live: _LiveRoom, envelope: bytes, source: str) -> _Taken:
        """Verify and take in one envelope (live or synced)."""
        secrets = live.secrets
        try:
            post = rc.decode_post(secrets, envelope)
        except rc.RoomError as exc:
            log.info("dropped a post for room %s from %s: %s", secrets.id_hex, source, exc)
            return _Taken(None, None)
        problem = self._out_of_step(post)
        if problem:
            log.info("room %s: dropped a post by %s from %s: %s", secrets.id_hex, post.author,
                     source, problem)
            return _Taken(post, None)
        if post.kind == rc.KIND_ANNOUNCE:
            await self._on_announce(live, post)
            return _Taken(post, None)
        own = post.author == self._me
        # Our own post coming back (gossip echo, or sync after restoring a profile) is stored
        # as confirmed; anyone else's as received and unread.
        state = PostState.CONFIRMED.value if own else PostState.RECEIVED.value
        result = self.store.store_post(post, envelope, state, read=own, own=own)
        self._removed(secrets.room_id, result)
        if result.intake is Intake.LOST:
            await self._conflict_lost(secrets, post)
        if not result.stored:
            return _Taken(post, result)  # a duplicate or a lost equivocation: shown once
        if result.intake is Intake.REPLACED:
            log.info("room %s: %s signed two posts numbered %d; %s stands", secrets.id_hex,
                     post.author, post.author_seq, post.post_id.hex())
            await self._publish_winner(secrets, post, envelope)  # for members holding the loser
        if own:
            self._emit(RoomPostAdded(post=self._post_info(
                self._stored(post, PostState.CONFIRMED.value))))
            return _Taken(post, result)
        if self.store.upsert_member(secrets.room_id, post.author, "", (), None):
            self._members_changed(secrets.room_id)
        handler = self.kinds.get(post.kind)
        if handler is not None:
            # First, so that what the post refers to (a file's transfer, say) exists when a
            # view looks it up.
            handler.take(secrets.room_id, post)
        view = self._view(post.kind, post.body)
        info = self._post_info(self._stored(post, PostState.RECEIVED.value), view=view)
        if view is not None:
            self._emit(RoomPostAdded(post=info))
        if post.kind == rc.KIND_TEXT:
            self._emit(RoomMessage(room=secrets.id_hex, id=info.id, from_=post.author,
                                        text=info.text, sent_at=post.sent_at_ms))
        self._changed(secrets.room_id, unread=True)
        if post.author_seq > 1 and not self.store.has_seq(
            secrets.room_id, post.author_key, post.author_seq - 1
        ):
            self._request_sync(live, source or post.author)  # a gap: gossip lost something
        return _Taken(post, result)

    def _removed(self, room_id: bytes, result: StoreResult) -> None:
        """Posts that lost an equivocation leave every view that shows them."""
        for loser in result.removed:
            self._emit(RoomPostRemoved(room=room_id.hex(), id=loser.post_id.hex()))
        if result.removed:
            self._changed(room_id, unread=True)

    async def _conflict_lost(self, secrets: rc.RoomSecrets, post: rc.RoomPost) -> None:
        """Someone handed us the losing post of an equivocation whose winner we hold: the
        conflict is recorded (sync hands winners out) and the winner published once, so members
        that took the loser first learn which post stands."""
        self.store.record_conflict(post)
        winner = self.store.winner_over(post)
        if winner is None:
            return
        envelope = self.store.envelope(secrets.room_id, winner.author_key, winner.post_id)
        if envelope is not None and await self._publish_winner(secrets, post, envelope):
            log.info("room %s: %s signed two posts numbered %d; %s stands", secrets.id_hex,
                     post.author, post.author_seq, winner.post_id.hex())

    async def _publish_winner(self, secrets: rc.RoomSecrets, post: rc.RoomPost,
                              envelope: bytes) -> bool:
        """Publish the standing post of a conflict, at most once per number per run."""
        key = (secrets.room_id, post.author_key, post.author_seq)
        if key in self._answered:
            return False
        self._answered[key] = None
        if len(self._answered) > 4096:
            self._answered.popitem(last=False)
        await self._publish(secrets, envelope)
        return True

    # -- members and announces ----------------------------------------------------------------

    async def _announce(self, live: _LiveRoom) -> None:
        stored = self.store.room(live.secrets.room_id)
        if stored is None:
            return
        live.last_announce = time.monotonic()
        addrs = [strip_p2p(a) for a in self._us.addrs()][: rc.MAX_ANNOUNCE_ADDRS]
        envelope = rc.encode_announce(
            self._us.identity, live.secrets, self._us.display_name(), addrs,
            lamport=stored.lamport, sent_at_ms=int(time.time() * 1000),
        )
        await self._publish(live.secrets, envelope)

    async def _announce_loop(self, live: _LiveRoom) -> None:
        await self._announce(live)
        # Gossipsub hands a message only to mesh peers, and a peer joins our mesh about a
        # heartbeat after its subscription arrives. py-libp2p replays its last few seconds of
        # messages to a peer that subscribes, so the announce above usually arrives anyway;
        # peers that do not (go, js) get it once a mesh peer shows up, at most 5 s from now.
        if not self._pubsub.gossip.mesh.get(live.secrets.topic):
            with trio.move_on_after(FIRST_ANNOUNCE_WAIT):
                while not self._pubsub.gossip.mesh.get(live.secrets.topic):
                    await trio.sleep(0.05)
                await self._announce(live)
        while True:
            await trio.sleep(ANNOUNCE_INTERVAL * random.uniform(0.9, 1.1))
            await self._announce(live)

    async def _on_announce(self, live: _LiveRoom, post: rc.RoomPost) -> None:
        if post.author == self._me:
            return
        room_id = live.secrets.room_id
        announce = post.announce
        new = self.store.apply_announce(room_id, post.author, announce.name, announce.addrs,
                                        time.time(), post.lamport, post.sent_at_ms)
        if new is None:
            log.debug("room %s: ignored an announce by %s older than one already taken",
                      live.secrets.id_hex, post.author)
            return
        self._members_changed(room_id)
        if new and time.monotonic() - live.last_announce > REANNOUNCE_MIN_GAP:
            await self._announce(live)  # so the newcomer learns who is here now
        if not self._connections.is_connected(post.author):
            self._nursery.start_soon(self._dial_member, post.author, announce.addrs)
        stored = self.store.room(room_id)
        if stored is not None and post.lamport > stored.lamport:
            self._request_sync(live, post.author)  # they have seen posts we have not

    def _members_changed(self, room_id: bytes) -> None:
        self._names.pop(room_id, None)
        self._changed(room_id, members=True)

    async def _dial_member(self, peer_id: str, addrs: tuple[str, ...]) -> bool:
        return await connect_at(self._host, peer_id, addrs, DIAL_TIMEOUT)

    async def reach_members(self, room_id: bytes) -> None:
        """Connect to some members of a room (a file fetch found none connected)."""
        await self._reach_members(room_id)

    async def _reach_members(self, room_id: bytes) -> None:
        """Connect to some members (after start or join) so gossip and sync have peers."""
        members = [m for m in self.store.members(room_id) if m.peer_id != self._me]
        random.shuffle(members)
        async with trio.open_nursery() as nursery:
            for member in members[:MAX_ROOM_DIALS]:
                if not self._connections.is_connected(member.peer_id):
                    nursery.start_soon(self._dial_member, member.peer_id, member.addrs)
        live = self._live.get(room_id)
        if live is not None:
            for member in members:
                if self._connections.is_connected(member.peer_id):
                    self._request_sync(live, member.peer_id)

    def peer_connected(self, peer_id: str) -> None:
        """A connection opened: sync every room we share with that peer, every time (it may
        have restarted holding posts that never reached us: gossip is not replayed, and its
        mesh may take a while to form again)."""
        for room_id in self.store.rooms_of(peer_id):
            live = self._live.get(room_id)
            if live is not None:
                self._request_sync(live, peer_id)
                self._changed(room_id)

    def peer_disconnected(self, peer_id: str) -> None:
        for room_id in self.store.rooms_of(peer_id):
            if room_id in self._live:
                self._changed(room_id)

    # -- history sync -------------------------------------------------------------------------

    def _request_sync(self, live: _LiveRoom, peer_id: str) -> None:
        if not peer_id or peer_id == self._me:
            return
        if self.quotas.penalised(peer_id, time.monotonic()):
            log.debug("not syncing room %s from %s: it went over a post quota",
                      live.secrets.id_hex, peer_id)
            return
        if live.syncing:
            live.sync_again.add(peer_id)
            return
        live.syncing = True
        self._nursery.start_soon(self._sync_worker, live, peer_id)

    async def _sync_worker(self, live: _LiveRoom, peer_id: str) -> None:
        try:
            while True:
                try:
                    await self._sync_from(live, peer_id)
                    live.synced_with.add(peer_id)
                except Exception as exc:  # noqa: BLE001 - another member, or later, will do
                    log.info("sync of room %s with %s failed: %s", live.secrets.id_hex, peer_id,
                             exc)
                if not live.sync_again:
                    return
                peer_id = live.sync_again.pop()
        finally:
            live.syncing = False

    async def _sync_from(self, live: _LiveRoom, peer_id: str) -> None:
        """Pull what we lack from ``peer_id``, page by page, until it has nothing more for us.

        With /kith/sync/2.0.0 every request lists what we hold, including what this session
        already got or refused, so no page repeats and a hole nobody can fill never stops it.
        With a peer that only speaks 1.0.0, as before: stop when a page brings nothing new.
        """
        if live.secrets.room_id not in self._live:
            return
        held = HeldRanges(self.store.held_ranges(live.secrets.room_id))
        first = True
        for _ in range(MAX_SYNC_PAGES):
            with trio.fail_after(SYNC_TIMEOUT):
                stream = await self._host.new_stream(ID.from_base58(peer_id),
                                                          list(self.sync_protocols))
                try:
                    ranges = stream.get_protocol() == SYNC2_PROTOCOL_ID
                    more, unseen, new = await self._sync_page(live, stream, held, ranges, first,
                                                              peer_id)
                    await stream.close()
                except BaseException:
                    await stream.reset()
                    raise
            first = False
            if not more or not (unseen if ranges else new):
                return

    async def _sync_page(self, live: _LiveRoom, stream: Stream, held: HeldRanges,
                         ranges: bool, conflicts: bool, peer_id: str) -> tuple[bool, int, int]:
        """One request and its response: (more, posts whose number we lacked, posts stored)."""
        secrets = live.secrets
        if ranges:
            request = rc.encode_range_sync_request(
                secrets, held.fitted(rc.MAX_SYNC_AUTHORS, rc.MAX_SYNC_RANGES), rc.MAX_SYNC_PAGE,
                conflicts=conflicts,
            )
        else:
            authors = held.fitted(rc.MAX_SYNC_AUTHORS, rc.MAX_SYNC_RANGES)
            have = {a: held.prefix(a) for a in authors if held.prefix(a)}
            request = rc.encode_sync_request(secrets, have, rc.MAX_SYNC_PAGE)
        await write_frame(stream, request)
        unseen = new = frames = 0
        while True:
            frame = rc.decode_sync_response(await read_frame(stream, rc.MAX_SYNC_RESPONSE))
            if isinstance(frame, rc.SyncEnd):
                return frame.more, unseen, new
            frames += 1
            if frames > rc.MAX_SYNC_PAGE:
                raise FrameError("more posts than the page limit")
            try:
                taken = await self._receive(live, frame.envelope, peer_id)
            except Exception:  # one post, never the sync: refused for this session
                log.warning("room %s: dropped a post synced from %s", secrets.id_hex, peer_id,
                            exc_info=True)
                taken = _Taken(_decoded_or_none(secrets, frame.envelope), None)
            if taken.post is not None and taken.post.author_seq:
                # Held now, or refused: either way not asked for again in this session.
                unseen += held.add(taken.post.author_key, taken.post.author_seq)
            new += taken.stored

    async def _serve_sync(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        if not self._serves.try_start(peer_id):
            log.info("refused a sync request from %s: too many at once", peer_id)
            await stream.reset()  # they may ask again once one of theirs is done
            return
        try:
            await self._serve_sync_request(stream, peer_id)
        finally:
            self._serves.finish(peer_id)

    async def _serve_sync_request(self, stream: Stream, peer_id: str) -> None:
        ranges = stream.get_protocol() == SYNC2_PROTOCOL_ID  # type: ignore[attr-defined]
        version = rc.SYNC2_VERSION if ranges else rc.SYNC_VERSION
        limit = rc.MAX_SYNC2_REQUEST if ranges else rc.MAX_SYNC_REQUEST
        payload = await read_frame(stream, limit)
        stored = self.store.room(rc.sync_request_room_id(payload, version))
        if stored is None:
            raise FrameError("sync request for a room we are not in")
        # Opening the request proves they hold the key.
        held: dict[bytes, tuple[tuple[int, int], ...]]
        if ranges:
            request = rc.decode_range_sync_request(stored.secrets, payload)
            held, page_limit, conflicts = request.held, request.page_limit, request.conflicts
        else:
            old = rc.decode_sync_request(stored.secrets, payload)
            held = {author: ((1, min(seq, rc.MAX_AUTHOR_SEQ)),)
                    for author, seq in old.have.items() if seq}
            page_limit, conflicts = old.page_limit, False
        room_id = stored.secrets.room_id
        if self.store.upsert_member(room_id, peer_id, "", (), None):
            self._members_changed(room_id)
        budget = self._serves.budget(peer_id, time.monotonic())
        page = self.store.sync_page(room_id, held, page_limit, MAX_SYNC_PAGE_BYTES, conflicts)
        budget.take(page.queries * QUERY_COST, time.monotonic())
        more, sent, served_pending = page.more, 0, []
        for entry in page.entries:
            wait = budget.wait_for(entry.size, time.monotonic())
            if wait and sent:
                more = True  # over budget: the rest comes when they ask again
                break
            await trio.sleep(wait)  # paced, never refused
            envelope = self.store.envelope_at(entry.row)
            if envelope is None:
                continue  # removed since it was chosen (an equivocation resolved)
            budget.take(len(envelope), time.monotonic())
            await write_frame(stream, rc.encode_sync_post(envelope))
            sent += 1
            if entry.author == self._me and entry.state == PostState.PENDING.value:
                served_pending.append(entry.order[2])
        await write_frame(stream, rc.encode_sync_end(more))
        await stream.close()
        for post_id in served_pending:
            self._confirm(room_id, post_id)  # a member now holds it
        live = self._live.get(room_id)
        if live is not None and peer_id not in live.synced_with:
            self._request_sync(live, peer_id)  # a newcomer may hold posts nobody has yet

    async def _sync_loop(self, live: _LiveRoom) -> None:
        """A slow safety net: now and then, compare notes with one connected member."""
        while True:
            await trio.sleep(SYNC_INTERVAL * random.uniform(0.8, 1.2))
            room_id = live.secrets.room_id
            members = [m.peer_id for m in self.store.members(room_id)
                       if m.peer_id != self._me and self._connections.is_connected(m.peer_id)]
            if members:
                self._request_sync(live, random.choice(members))
            else:
                await self._reach_members(room_id)

    # -- records ------------------------------------------------------------------------------

    @staticmethod
    def _stored(post: rc.RoomPost, state: str) -> StoredPost:
        return StoredPost(post.room_id, post.post_id, post.author, post.author_key, post.lamport,
                          post.author_seq, post.sent_at_ms, post.kind, post.body, state)

    def _view(self, kind: int, body: bytes) -> tuple[str, str | None] | None:
        """(text, transfer) as views show a post of ``kind``; None: not shown."""
        handler = self.kinds.get(kind)
        return handler.present(body) if handler is not None else None

    def _post_info(self, post: StoredPost, names: dict[str, str] | None = None,
                   view: tuple[str, str | None] | None = None) -> RoomPostInfo:
        """A stored post as views see it (``view``: its ``_view``, if known already)."""
        if names is None:
            names = self._names.get(post.room_id) or {}
            if not names:
                names = {m.peer_id: m.name for m in self.store.members(post.room_id)}
                self._names[post.room_id] = names
        me = post.author == self._me
        name = self._us.display_name() if me else names.get(post.author, "")
        text, transfer = view or self._view(post.kind, post.body) or ("", None)
        return RoomPostInfo(
            room_id=post.room_id.hex(), id=post.post_id.hex(), author=post.author,
            author_name=name or post.author[:12], outgoing=me, text=text,
            sent_at_ms=post.sent_at_ms, lamport=post.lamport, state=PostState(post.state),
            order=(post.lamport, post.author_key.hex(), post.post_id.hex()),
            kind=post.kind, transfer=transfer,
        )
