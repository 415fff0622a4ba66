"""``RoomService``: our rooms, what the user does with them, and the live path of a post.

Every post is sealed with the room key and signed by its author (``app.core.room``), published
on the room's topic, and stored with its original envelope. Gossip is the fast path only: the
service's ``sync`` (``rooms.sync``) pulls what gossip missed, and its ``roster``
(``rooms.members``) keeps the member list and reaches members. Every post, live or synced, goes
through one receive path (``_receive``).

Everything a member sends is bounded before it is stored: the codec refuses numbers beyond what
members can store, a post may not lead the room's clock by more than ``MAX_LAMPORT_STEP``, live
posts pass per-author and per-peer quotas, and two posts by one author with the same number
(an equivocation) resolve to the same one on every member (``app.node.room_limits``,
docs/protocol.md 8.7-8.10). A failure while handling one post drops that post, never the node.

Length: the one receive path every post takes (live or synced), what the user does with a
room, and the questions it puts to a governed room's log (``governor``) stay together, so that
no post can reach the store by a path that skipped a check.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import signature_validator

from app.core import room as rc
from app.core.actions import KIND_REPLY
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
from app.node.gossip import KithPubsub
from app.node.interfaces import (
    Connections,
    Emit,
    LocalPeer,
    RoomGovernor,
    RoomKindHandler,
    Tasks,
    Ungoverned,
)
from app.node.payloads import PayloadKinds
from app.node.room_limits import PostQuotas
from app.node.rooms.live import LiveRoom, Taken, decoded_or_none
from app.node.rooms.members import ONLINE_WINDOW, Members
from app.node.rooms.sync import HistorySync
from app.node.rooms.verified_posts import VerifiedPosts
from app.store.room_rows import Intake, StoredMember, StoredPost, StoredRoom, StoreResult
from app.store.rooms import RoomStore

if TYPE_CHECKING:
    from libp2p.pubsub.subscription import ISubscriptionAPI

log = logging.getLogger(__name__)

SUMMARY_DELAY = 0.25          # coalesce room-list and unread updates during bursts
SUMMARY_ADDRS_FOR = 2.0       # seconds a summary's link may reuse our addresses
GAP_GRACE = 2.0               # a missing predecessor may still come by another relay
MAX_GAPS = 1024               # gaps remembered per room while they wait for GAP_GRACE
PRESENCE_CHECK = 30.0         # how often a room looks for members whose announces stopped


class RoomServiceError(ValueError):
    """A room operation the user asked for that cannot be done; the message says why."""


@functools.lru_cache(maxsize=1024)
def _publisher(from_id: bytes) -> str:
    """A gossip message's publisher as a peer id ("" if unreadable): base58 is slow Python,
    and a room hears the same few publishers over and over."""
    try:
        return str(ID(from_id))
    except Exception:  # noqa: BLE001 - a bad id only loses the gap hint
        return ""


@functools.lru_cache(maxsize=64)
def _room_link(secrets: rc.RoomSecrets, name: str, description: str, via: tuple[str, ...]
               ) -> str:
    """A room's link, built once for the same room, text and addresses (summaries ask for
    it several times a second while posts arrive)."""
    return rc.RoomInvite(secrets, name, description, via).to_link()


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
                 nursery: Tasks, emit: Emit, connections: Connections,
                 unread_total: Callable[[], int]) -> None:
        self.store = store
        self._pubsub = pubsub
        self._us = us
        self._nursery = nursery
        self._emit = emit
        self._connections = connections
        self._unread_total = unread_total
        self.kinds: PayloadKinds[RoomKindHandler] = PayloadKinds("room post")
        self.kinds.register(rc.KIND_TEXT, TextPosts())
        # Views see a post through ``decorate`` (edits, reactions: ``MessageActions``).
        self.decorate: Callable[[RoomPostInfo], RoomPostInfo] = lambda post: post
        # Roles, removal and key epochs of governed rooms: set when the node is wired.
        self.governor: RoomGovernor = Ungoverned()
        self._live: dict[bytes, LiveRoom] = {}
        self._dirty: dict[bytes, set[str]] = {}
        self._flush_pending = False
        self._via: tuple[str, ...] = ()
        self._via_until = 0.0
        self._names: dict[bytes, dict[str, str]] = {}
        self._shown_online: dict[bytes, frozenset[str]] = {}  # in the last member list sent
        self._verified = VerifiedPosts()  # the validator's work, reused by _receive
        self.quotas = PostQuotas()
        self._answered: OrderedDict[tuple[bytes, bytes, int], None] = OrderedDict()
        self.sync = HistorySync(
            store, host=host, nursery=nursery, me=self._me, connections=connections,
            quotas=self.quotas, live=self._live.get, receive=self._receive,
            confirm=self._confirm, members_changed=self._members_changed,
            reach_members=self.reach_members)
        self.roster = Members(
            store, pubsub, us=us, host=host, nursery=nursery, connections=connections,
            live=self._live.get, publish=self._publish, request_sync=self.sync.request,
            members_changed=self._members_changed)

    @property
    def _me(self) -> str:
        return self._us.identity.peer_id

    def start(self) -> None:
        self.sync.start()
        for stored in self.store.rooms():
            self._open(stored.secrets)
            self._nursery.start_soon(self.reach_members, stored.secrets.room_id)

    # -- what the user does -------------------------------------------------------------------

    async def create(self, name: str, description: str = "", governed: bool = False
                     ) -> RoomInfo:
        """A new room; ``governed``: with an owner (us), roles and key epochs (8.12)."""
        try:
            clean = clean_display_name(name)
        except ValueError:
            raise RoomServiceError("a room needs a name") from None
        secrets = self.governor.new_room() if governed else rc.RoomSecrets.generate()
        self.store.add_room(secrets, clean, rc.clean_description(description))
        self._open(secrets)
        if governed:
            await self.governor.created(secrets.room_id)
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
        self.governor.joining(secrets.room_id, invite.invite_seed)
        info = self.info(secrets.room_id)
        self._emit(RoomJoined(room_id=info.room_id))
        self._emit(RoomChanged(room=info))
        self._nursery.start_soon(self.reach_members, secrets.room_id)
        return info

    async def leave(self, room_id_hex: str) -> None:
        room_id = self._require(room_id_hex).secrets.room_id
        await self.governor.leaving(room_id)
        live = self._live.pop(room_id, None)
        self._shown_online.pop(room_id, None)
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
        if kind not in rc.LINK_KEY_KINDS:
            refusal = self.governor.post_refusal(stored.secrets.room_id)
            if refusal:
                raise RoomServiceError(refusal)
        secrets = self.governor.secrets(stored.secrets)
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
        return set(self.store.member_ids(room_id))

    def rooms_of(self, peer_id: str) -> list[bytes]:
        """The rooms we share with ``peer_id``."""
        return self.store.rooms_of(peer_id)

    def rooms(self) -> list[RoomInfo]:
        return [self.info(r.secrets.room_id) for r in self.store.rooms()]

    def members(self, room_id_hex: str) -> list[RoomMember]:
        room_id = self._require(room_id_hex).secrets.room_id
        now = time.time()
        roles = self.governor.roles(room_id)
        me = RoomMember(self._me, self._us.display_name(), True, now, True,
                        roles.get(self._me, ""))
        out = [me] if not roles or self._me in roles else []
        for member in self.store.members(room_id):
            if member.peer_id == self._me or (roles and member.peer_id not in roles):
                continue
            out.append(RoomMember(member.peer_id, member.name or member.peer_id[:12],
                                  self._online(member, now), member.last_seen, False,
                                  roles.get(member.peer_id, "")))
        self._shown_online[room_id] = frozenset(m.peer_id for m in out if m.online and not m.is_me)
        return out

    def _online(self, member: StoredMember, now: float) -> bool:
        """Connected, and announced within ``ONLINE_WINDOW``."""
        return self._connections.is_connected(member.peer_id) and (
            member.last_seen is not None and now - member.last_seen < ONLINE_WINDOW)

    async def _expire_presence(self, live: LiveRoom) -> None:
        """Send the member list again when someone shown online stops counting as online
        with nothing else to say so: still connected, but no announce for ``ONLINE_WINDOW``
        (a task of the live room)."""
        room_id = live.secrets.room_id
        while True:
            await trio.sleep(PRESENCE_CHECK)
            shown = self._shown_online.get(room_id)
            if shown is None:
                continue
            now = time.time()
            if any(m.peer_id in shown and not self._online(m, now)
                   for m in self.store.members(room_id)):
                self._members_changed(room_id)

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

    def info(self, room_id: bytes, via: tuple[str, ...] | None = None) -> RoomInfo:
        """The room's list entry; ``via``: our addresses for its link, if known already."""
        stored = self.store.room(room_id)
        if stored is None:
            raise RoomServiceError("unknown room")
        roles = self.governor.roles(room_id)  # a governed room: its admitted members only
        members = [m for m in self.store.member_ids(room_id)
                   if m != self._me and (not roles or m in roles)]
        online = sum(1 for m in members if self._connections.is_connected(m))
        unread, preview = self.store.stats(room_id)
        return RoomInfo(
            room_id=room_id.hex(), name=stored.name, description=stored.description,
            invite=self._invite(stored, via), members=len(members) + 1, online=online + 1,
            unread=unread, last_message=preview, last_activity=stored.last_activity,
        )

    def _invite(self, stored: StoredRoom, via: tuple[str, ...] | None = None) -> str:
        if via is None:
            via = tuple(self._us.addrs()[: rc.MAX_VIA])
        return _room_link(stored.secrets, stored.name, stored.description, via)

    def _summary_via(self) -> tuple[str, ...]:
        """Our addresses for the links in room summaries, looked up at most every
        ``SUMMARY_ADDRS_FOR`` seconds: expanding them is half of what a summary costs, and
        summaries go out every ``SUMMARY_DELAY`` while posts arrive."""
        now = time.monotonic()
        if now >= self._via_until:
            self._via = tuple(self._us.addrs()[: rc.MAX_VIA])
            self._via_until = now + SUMMARY_ADDRS_FOR
        return self._via

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

    changed = _changed  # public: an edit or deletion of a post changes the entry too

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
            self._emit(RoomChanged(room=self.info(room_id, self._summary_via())))
            unread = unread or "unread" in what
        if unread:
            self._emit(UnreadChanged(total=self._unread_total()))

    # -- the live room ------------------------------------------------------------------------

    def _open(self, secrets: rc.RoomSecrets) -> None:
        self._names.pop(secrets.room_id, None)  # a room joined again starts with no members
        live = LiveRoom(self.governor.secrets(secrets))
        self._live[secrets.room_id] = live
        self._pubsub.set_topic_validator(secrets.topic, self._validator(live), False,
                                         checks_signatures=True)
        self._nursery.start_soon(self._run_room, live)

    def refresh_keys(self, room_id: bytes) -> None:
        """The epoch keys we hold for a room changed: open posts with them from now on, and
        catch up on what we could not open before."""
        live, stored = self._live.get(room_id), self.store.room(room_id)
        if live is not None and stored is not None:
            live.secrets = self.governor.secrets(stored.secrets)
            self.roster.resync(live)

    def _validator(self, live: LiveRoom):  # type: ignore[no-untyped-def]
        """Only posts that open, verify, keep to the room's clock and to the quotas, and do
        not lose an equivocation, are delivered and relayed to other members."""

        def validate(peer: ID, message: rpc_pb2.Message) -> bool:
            secrets = live.secrets
            try:
                return self._admit_live(secrets, str(peer), message)
            except Exception:  # one message, never the node
                log.warning("room %s: dropped a post relayed by %s that failed to check",
                            secrets.id_hex, peer, exc_info=True)
                return False

        return validate

    def _admit_live(self, secrets: rc.RoomSecrets, forwarder: str,
                    message: rpc_pb2.Message) -> bool:
        """The room's rules for a live post, gossip signature included (docs/protocol.md,
        "Gossip signatures"): a post we do not hold, in a message naming its author as
        publisher, is authenticated by the author's own signature just verified, and only
        the gossip seqno is left unchecked, which at worst lets one authentic post through
        once under an id a forger chose. Every other message, and any that would break a
        quota (which blames its publisher), must carry a valid gossip signature."""
        try:
            post = self._verified.verify(secrets, message.data, forwarder)  # for _receive
        except rc.RoomError as exc:
            log.info("dropped a room post relayed by %s: %s", forwarder, exc)
            return False
        problem = self._out_of_step(post) or self.governor.refusal(post)
        if problem:
            log.info("room %s: dropped a post by %s relayed by %s: %s", secrets.id_hex,
                     post.author, forwarder, problem)
            return False
        if forwarder == self._me:
            return True  # our own publish, signed a moment ago
        room_id = secrets.room_id
        # The post itself if held, and the posts it conflicts with: one query for both.
        versions = [] if post.kind == rc.KIND_ANNOUNCE else self.store.held_versions(post)
        held = post.kind == rc.KIND_ANNOUNCE or any(v.post_id == post.post_id for v in versions)
        named = _publisher(bytes(message.from_id))
        publisher = named or forwarder
        author_key = None if held else post.author_key
        admission = self.quotas.check(room_id, author_key, publisher, forwarder,
                                      len(message.data), time.monotonic())
        if not (named == post.author and not held and admission.fits
                ) and not signature_validator(message):
            log.info("room %s: dropped a post relayed by %s: its gossip signature does not "
                     "match", secrets.id_hex, forwarder)
            return False
        if admission.admit() is not None:
            return False
        if any(v.precedence < post.precedence for v in versions):
            # The other post of this equivocation is held: keep it, relay nothing, and tell
            # the room which one stands (whoever sent this one may hold only this one).
            self._nursery.start_soon(self._conflict_lost, secrets, post)
            return False
        return True

    def _out_of_step(self, post: rc.RoomPost) -> str:
        """Why a verified post cannot be taken now, from the room's state ("" if it can)."""
        lamport = self.store.lamport(post.room_id)
        if lamport is not None and post.lamport > lamport + rc.MAX_LAMPORT_STEP:
            return (f"its lamport {post.lamport} leads the room's {lamport} by more than "
                    f"{rc.MAX_LAMPORT_STEP}")
        return ""

    async def _run_room(self, live: LiveRoom) -> None:
        with live.scope:
            subscription: ISubscriptionAPI = await self._pubsub.subscribe(live.secrets.topic)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.roster.announce_loop, live)
                nursery.start_soon(self.sync.sync_loop, live)
                nursery.start_soon(self._expire_presence, live)
                async for message in subscription:
                    source = _publisher(bytes(message.from_id))
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
        """One of our own posts reached a member."""
        if self.store.set_post_state(room_id, self._us.identity.public_key, post_id,
                                     PostState.CONFIRMED.value):
            self._emit(RoomPostConfirmed(room=room_id.hex(), id=post_id.hex()))

    async def _receive(self, live: LiveRoom, envelope: bytes, source: str) -> Taken:
        """Verify and take in one envelope (live or synced). ``source``: the peer a synced
        post came from, or a live post's publisher (whose relay ``_admit_live`` kept)."""
        secrets = live.secrets
        try:
            post, relayed_by = self._verified.take(secrets, envelope)
        except rc.RoomError as exc:
            log.info("dropped a post for room %s from %s: %s", secrets.id_hex, source, exc)
            return Taken(None, None)
        problem = self._out_of_step(post) or self.governor.refusal(post)
        if problem:
            log.info("room %s: dropped a post by %s from %s: %s", secrets.id_hex, post.author,
                     source, problem)
            return Taken(post, None)
        if post.kind == rc.KIND_ANNOUNCE:
            await self.roster.on_announce(live, post)
            return Taken(post, None)
        own = post.author == self._me
        # Our own post coming back (gossip echo, or sync after restoring a profile) is stored
        # as confirmed; anyone else's as received and unread.
        state = PostState.CONFIRMED.value if own else PostState.RECEIVED.value
        # A post no view shows (an action: a reaction, an edit) is never unread.
        shown = self._view(post.kind, post.body) is not None
        result = self.store.store_post(post, envelope, state, read=own or not shown, own=own)
        self._removed(secrets.room_id, result)
        if result.intake is Intake.LOST:
            await self._conflict_lost(secrets, post)
        if not result.stored:
            return Taken(post, result)  # a duplicate or a lost equivocation: shown once
        if result.intake is Intake.REPLACED:
            log.info("room %s: %s signed two posts numbered %d; %s stands", secrets.id_hex,
                     post.author, post.author_seq, post.post_id.hex())
            await self._publish_winner(secrets, post, envelope)  # for members holding the loser
        if own:
            self._emit(RoomPostAdded(post=self._post_info(
                self._stored(post, PostState.CONFIRMED.value))))
            return Taken(post, result)
        self._note_author(secrets.room_id, post.author)
        handler = self.kinds.get(post.kind)
        if handler is not None:
            # First, so that what the post refers to (a file's transfer, say) exists when a
            # view looks it up.
            handler.take(secrets.room_id, post)
        view = self._view(post.kind, post.body)
        info = self._post_info(self._stored(post, PostState.RECEIVED.value), view=view)
        if view is not None:
            self._emit(RoomPostAdded(post=info))
        if post.kind in (rc.KIND_TEXT, KIND_REPLY):
            self._emit(RoomMessage(room=secrets.id_hex, id=info.id, from_=post.author,
                                   text=info.text, sent_at=post.sent_at_ms,
                                   reply_to=info.reply_to))
        self._changed(secrets.room_id, unread=shown)
        if result.gap_before:
            self._gap_seen(live, post, relayed_by or source or post.author)
        return Taken(post, result)

    def _note_author(self, room_id: bytes, author: str) -> None:
        """Make a post's author a member: a write the first time, none for a known member."""
        if author in (self._names.get(room_id) or {}):
            return  # the cached names are the stored members (dropped on any member change)
        if self.store.upsert_member(room_id, author, "", (), None):
            self._members_changed(room_id)

    def _gap_seen(self, live: LiveRoom, post: rc.RoomPost, peer_id: str) -> None:
        """A post came before its author's previous one: sync from ``peer_id`` unless that
        one arrives within ``GAP_GRACE`` (relays deliver a burst slightly out of order).
        ``peer_id`` is the member that relayed the post, if known: it is connected and holds
        what came before, where the author may be out of reach."""
        first = not live.gaps
        if len(live.gaps) < MAX_GAPS:  # a flood of gaps is one sync anyway
            live.gaps[(post.author_key, post.author_seq - 1)] = peer_id
        if first:
            self._nursery.start_soon(self._sync_lasting_gaps, live)

    async def _sync_lasting_gaps(self, live: LiveRoom) -> None:
        await trio.sleep(GAP_GRACE)
        gaps, live.gaps = live.gaps, {}
        for (author_key, seq), peer_id in gaps.items():
            if not self.store.has_seq(live.secrets.room_id, author_key, seq):
                self.sync.request(live, peer_id)  # gossip lost something

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

    # -- members ----------------------------------------------------------------------------

    def _members_changed(self, room_id: bytes) -> None:
        self._names.pop(room_id, None)
        self._changed(room_id, members=True)

    def members_changed(self, room_id: bytes) -> None:  # a governed room's log changed
        self._members_changed(room_id)

    def show_again(self, room_id: bytes, author_key: bytes, post_id: bytes) -> None:
        """A stored post's view changed (a governed room's notice now counts): show it."""
        live, envelope = self._live.get(room_id), self.store.envelope(room_id, author_key,
                                                                      post_id)
        post = live and envelope and decoded_or_none(live.secrets, envelope)
        view = self._view(post.kind, post.body) if post else None
        if post and view is not None:
            stored = self._stored(post, PostState.RECEIVED.value)
            self._emit(RoomPostAdded(post=self._post_info(stored, view=view)))

    async def reach_members(self, room_id: bytes) -> None:
        """Connect to some members of a room (``interfaces.RoomChannel``)."""
        await self.roster.reach_members(room_id)

    def peer_connected(self, peer_id: str) -> None:
        """A connection opened: sync every room we share with that peer, every time (it may
        have restarted holding posts that never reached us: gossip is not replayed, and its
        mesh may take a while to form again)."""
        for room_id in self.store.rooms_of(peer_id):
            live = self._live.get(room_id)
            if live is not None:
                self.sync.request(live, peer_id)
                self._changed(room_id, members=True)  # they show online again

    def peer_disconnected(self, peer_id: str) -> None:
        for room_id in self.store.rooms_of(peer_id):
            if room_id in self._live:
                self._changed(room_id, members=True)

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
        return self.decorate(RoomPostInfo(
            room_id=post.room_id.hex(), id=post.post_id.hex(), author=post.author,
            author_name=name or post.author[:12], outgoing=me, text=text,
            sent_at_ms=post.sent_at_ms, lamport=post.lamport, state=PostState(post.state),
            order=(post.lamport, post.author_key.hex(), post.post_id.hex()),
            kind=post.kind, transfer=transfer,
        ))
