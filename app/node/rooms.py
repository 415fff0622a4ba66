"""Group rooms: gossipsub for speed, ``/kith/sync/1.0.0`` for completeness.

Every post is sealed with the room key and signed by its author (``app.core.room``), published
on the room's topic, and stored with its original envelope. Gossip is the fast path only: a
member who was offline, just joined, or noticed a gap in an author's sequence asks any member
for what it lacks with a have-vector (highest gap-free ``author_seq`` per author) and verifies
every synced post exactly like a live one. Members announce themselves on joining, every
``ANNOUNCE_INTERVAL`` seconds, and when they see a newcomer, so member lists and addresses
spread through the room itself.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
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
    UnreadChanged,
)
from app.core.invite import MAX_ADDRS as MAX_INVITE_ADDRS
from app.core.invite import ContactInvite, clean_display_name, strip_p2p
from app.core.records import PostState, RoomInfo, RoomMember, RoomPostInfo
from app.node.framing import FrameError, Stream, guarded, read_frame, write_frame
from app.node.gossip import KithPubsub
from app.node.host import connect_at
from app.node.verified_posts import VerifiedPosts
from app.store.messages import offer_summary
from app.store.rooms import RoomStore, StoredPost, StoredRoom

if TYPE_CHECKING:
    from libp2p.pubsub.subscription import ISubscriptionAPI

    from app.node.node import KithNode

log = logging.getLogger(__name__)

SYNC_PROTOCOL_ID = TProtocol(rc.SYNC_PROTOCOL_ID)
ANNOUNCE_INTERVAL = 60.0
REANNOUNCE_MIN_GAP = 5.0      # answer a newcomer's announce with ours, at most this often
SYNC_INTERVAL = 60.0
SYNC_TIMEOUT = 30.0
MAX_SYNC_PAGES = 1000
DIAL_TIMEOUT = 10.0
MAX_ROOM_DIALS = 8            # members dialled per room when we have no room peer connected
ONLINE_WINDOW = 2.5 * ANNOUNCE_INTERVAL
SUMMARY_DELAY = 0.25          # coalesce room-list and unread updates during bursts
GAP_GRACE = 2.0               # a missing predecessor may still come by another relay


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
    gaps: dict[tuple[bytes, int], str] = field(default_factory=dict)  # (author, seq) -> peer


@functools.lru_cache(maxsize=1024)
def _publisher(from_id: bytes) -> str:
    """A gossip message's publisher as a peer id ("" if unreadable): base58 is slow Python,
    and a room hears the same few publishers over and over."""
    try:
        return str(ID(from_id))
    except Exception:  # noqa: BLE001 - a bad id only loses the gap hint
        return ""


def _parse_room_id(room_id: str) -> bytes:
    try:
        raw = bytes.fromhex(room_id)
    except ValueError:
        raw = b""
    if len(raw) != rc.ROOM_ID_SIZE:
        raise RoomServiceError(f"not a room id: {room_id!r}")
    return raw


class RoomService:
    def __init__(self, node: KithNode, pubsub: KithPubsub) -> None:
        self._node = node
        self._pubsub = pubsub
        self.store = RoomStore(node.db)
        self._live: dict[bytes, _LiveRoom] = {}
        self._dirty: dict[bytes, set[str]] = {}
        self._flush_pending = False
        self._names: dict[bytes, dict[str, str]] = {}
        self._verified = VerifiedPosts()  # the validator's work, reused by _receive

    @property
    def _me(self) -> str:
        return self._node.identity.peer_id

    def start(self) -> None:
        self._node.host.set_stream_handler(
            SYNC_PROTOCOL_ID, guarded(SYNC_PROTOCOL_ID, self._serve_sync, timeout=SYNC_TIMEOUT)
        )
        for stored in self.store.rooms():
            self._open(stored.secrets)
            self._node.nursery.start_soon(self._reach_members, stored.secrets.room_id)

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
        self._node.emit(RoomCreated(room_id=info.room_id, invite=info.invite))
        self._node.emit(RoomChanged(room=info))
        return info

    async def join(self, link: str) -> RoomInfo:
        invite = rc.parse_room_invite(link)
        secrets = invite.secrets
        self.store.add_room(secrets, invite.name, invite.description)
        if secrets.room_id not in self._live:
            self._open(secrets)
        for addr in invite.via:
            peer_id = addr.rsplit("/p2p/", 1)[-1]
            if peer_id != self._me:
                self.store.upsert_member(secrets.room_id, peer_id, "", (addr,), None)
        info = self.info(secrets.room_id)
        self._node.emit(RoomJoined(room_id=info.room_id))
        self._node.emit(RoomChanged(room=info))
        self._node.nursery.start_soon(self._reach_members, secrets.room_id)
        return info

    async def leave(self, room_id_hex: str) -> None:
        room_id = self._require(room_id_hex).secrets.room_id
        live = self._live.pop(room_id, None)
        if live is not None:
            live.scope.cancel()
            self._pubsub.remove_topic_validator(live.secrets.topic)
            await self._pubsub.unsubscribe(live.secrets.topic)
        self.store.remove_room(room_id)
        self._node.emit(RoomLeft(room_id=room_id_hex))
        self._node.emit(UnreadChanged(total=self._node.unread_total()))

    async def post(self, room_id_hex: str, text: str) -> RoomPostInfo:
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            raise rc.MalformedPost("the text is not valid Unicode") from None
        return await self._post(room_id_hex, rc.KIND_TEXT, body)

    async def post_file(self, room_id_hex: str, body: bytes) -> RoomPostInfo:
        """Announce a shared file (kind 3; the body is its offer, see app.node.files)."""
        return await self._post(room_id_hex, rc.KIND_FILE, body)

    async def _post(self, room_id_hex: str, kind: int, body: bytes) -> RoomPostInfo:
        stored = self._require(room_id_hex)
        secrets = stored.secrets
        # Encode with placeholder numbers first: a bad body fails before numbers are reserved.
        rc.encode_post(self._node.identity, secrets, kind=kind, body=body, lamport=1,
                       author_seq=1, sent_at_ms=0)
        lamport, seq = self.store.next_post_numbers(secrets.room_id)
        envelope = rc.encode_post(
            self._node.identity, secrets, kind=kind, body=body, lamport=lamport,
            author_seq=seq, sent_at_ms=int(time.time() * 1000),
        )
        post = rc.decode_post(secrets, envelope)
        self.store.store_post(post, envelope, PostState.PENDING.value, read=True)
        info = self._post_info(self._stored(post, PostState.PENDING.value))
        self._node.emit(RoomPostAdded(post=info))
        self._changed(secrets.room_id)
        await self._publish(secrets, envelope)
        if self._topic_peers(secrets):
            self._confirm(secrets.room_id, post.post_id)
        return info

    def rooms(self) -> list[RoomInfo]:
        return [self.info(r.secrets.room_id) for r in self.store.rooms()]

    def members(self, room_id_hex: str) -> list[RoomMember]:
        room_id = self._require(room_id_hex).secrets.room_id
        now = time.time()
        me = RoomMember(self._me, self._node.profile.settings.display_name, True, now, True)
        out = [me]
        for member in self.store.members(room_id):
            if member.peer_id == self._me:
                continue
            online = self._node.is_connected(member.peer_id) and (
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
        posts = (self._post_info(p, names)
                 for p in self.store.history(room_id, cursor, max(1, min(limit, 1000)))
                 if p.kind in (rc.KIND_TEXT, rc.KIND_FILE))
        # A file post whose offer cannot be read has no transfer: it is left out.
        return [p for p in posts if p.kind == rc.KIND_TEXT or p.transfer is not None]

    async def mark_read(self, room_id_hex: str) -> None:
        room_id = self._require(room_id_hex).secrets.room_id
        if self.store.mark_read(room_id):
            self._changed(room_id)
            self._node.emit(UnreadChanged(total=self._node.unread_total()))

    def info(self, room_id: bytes) -> RoomInfo:
        stored = self.store.room(room_id)
        if stored is None:
            raise RoomServiceError("unknown room")
        members = [m for m in self.store.members(room_id) if m.peer_id != self._me]
        online = sum(1 for m in members if self._node.is_connected(m.peer_id))
        unread, preview = self.store.stats(room_id)
        return RoomInfo(
            room_id=room_id.hex(), name=stored.name, description=stored.description,
            invite=self._invite(stored), members=len(members) + 1, online=online + 1,
            unread=unread, last_message=preview, last_activity=stored.last_activity,
        )

    def _invite(self, stored: StoredRoom) -> str:
        via = tuple(self._node.addrs()[: rc.MAX_VIA])
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
            self._node.nursery.start_soon(self._flush_summaries)

    async def _flush_summaries(self) -> None:
        await trio.sleep(SUMMARY_DELAY)
        self._flush_pending = False
        dirty, self._dirty = self._dirty, {}
        unread = False
        for room_id, what in dirty.items():
            if self.store.room(room_id) is None:
                continue
            if "members" in what:
                self._node.emit(RoomMembersChanged(room_id=room_id.hex(),
                                                   members=tuple(self.members(room_id.hex()))))
            self._node.emit(RoomChanged(room=self.info(room_id)))
            unread = unread or "unread" in what
        if unread:
            self._node.emit(UnreadChanged(total=self._node.unread_total()))

    # -- the live room ------------------------------------------------------------------------

    def _open(self, secrets: rc.RoomSecrets) -> None:
        self._names.pop(secrets.room_id, None)  # a room joined again starts with no members
        live = _LiveRoom(secrets)
        self._live[secrets.room_id] = live
        self._pubsub.set_topic_validator(secrets.topic, self._validator(secrets), False)
        self._node.nursery.start_soon(self._run_room, live)

    def _validator(self, secrets: rc.RoomSecrets):  # type: ignore[no-untyped-def]
        """Only envelopes that open and verify are relayed to other members."""

        def validate(peer: ID, message: rpc_pb2.Message) -> bool:
            try:
                self._verified.verify(secrets, message.data)
            except rc.RoomError as exc:
                log.info("dropped a room post relayed by %s: %s", peer, exc)
                return False
            return True

        return validate

    async def _run_room(self, live: _LiveRoom) -> None:
        with live.scope:
            subscription: ISubscriptionAPI = await self._pubsub.subscribe(live.secrets.topic)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._announce_loop, live)
                nursery.start_soon(self._sync_loop, live)
                async for message in subscription:
                    source = _publisher(bytes(message.from_id))
                    await self._receive(live, bytes(message.data), source)

    async def _publish(self, secrets: rc.RoomSecrets, envelope: bytes) -> None:
        try:
            await self._pubsub.publish(secrets.topic, envelope)
        except Exception as exc:  # noqa: BLE001 - sync delivers what gossip could not
            log.warning("publishing to room %s failed: %s", secrets.id_hex, exc)

    def _topic_peers(self, secrets: rc.RoomSecrets) -> set[ID]:
        return set(self._pubsub.peer_topics.get(secrets.topic, set()))

    def _confirm(self, room_id: bytes, post_id: bytes) -> None:
        if self.store.set_post_state(room_id, post_id, PostState.CONFIRMED.value):
            self._node.emit(RoomPostConfirmed(room=room_id.hex(), id=post_id.hex()))

    async def _receive(self, live: _LiveRoom, envelope: bytes, source: str) -> bool:
        """Verify and take in one envelope (live or synced); True if it was new."""
        secrets = live.secrets
        try:
            post = self._verified.take(secrets, envelope)
        except rc.RoomError as exc:
            log.info("dropped a post for room %s from %s: %s", secrets.id_hex, source, exc)
            return False
        if post.kind == rc.KIND_ANNOUNCE:
            await self._on_announce(live, post)
            return False
        if post.author == self._me:
            # Our own post coming back (gossip echo, or sync after restoring a profile).
            if self.store.store_post(post, envelope, PostState.CONFIRMED.value, read=True):
                self._node.emit(RoomPostAdded(post=self._post_info(
                    self._stored(post, PostState.CONFIRMED.value))))
                return True
            return False
        if not self.store.store_post(post, envelope, PostState.RECEIVED.value, read=False):
            return False  # a duplicate or an equivocation: shown once, never twice
        self._note_author(secrets.room_id, post.author)
        if post.kind == rc.KIND_FILE:
            # First, so the transfer exists when a view looks it up for the post's card.
            self._node.files.room_file(secrets.room_id, post.author, post.body)
        info = self._post_info(self._stored(post, PostState.RECEIVED.value))
        if post.kind == rc.KIND_TEXT or info.transfer is not None:
            self._node.emit(RoomPostAdded(post=info))
        if post.kind == rc.KIND_TEXT:
            self._node.emit(RoomMessage(room=secrets.id_hex, id=info.id, from_=post.author,
                                        text=info.text, sent_at=post.sent_at_ms))
        self._changed(secrets.room_id, unread=True)
        if post.author_seq > 1 and not self.store.has_seq(
            secrets.room_id, post.author_key, post.author_seq - 1
        ):
            self._gap_seen(live, post, source or post.author)
        return True

    def _note_author(self, room_id: bytes, author: str) -> None:
        """Make a post's author a member: a write the first time, none for a known member."""
        if author in (self._names.get(room_id) or {}):
            return  # the cached names are the stored members (dropped on any member change)
        if self.store.upsert_member(room_id, author, "", (), None):
            self._members_changed(room_id)

    def _gap_seen(self, live: _LiveRoom, post: rc.RoomPost, peer_id: str) -> None:
        """A post came before its author's previous one: sync from ``peer_id`` unless that
        one arrives within ``GAP_GRACE`` (relays deliver a burst slightly out of order)."""
        first = not live.gaps
        live.gaps[(post.author_key, post.author_seq - 1)] = peer_id
        if first:
            self._node.nursery.start_soon(self._sync_lasting_gaps, live)

    async def _sync_lasting_gaps(self, live: _LiveRoom) -> None:
        await trio.sleep(GAP_GRACE)
        gaps, live.gaps = live.gaps, {}
        for (author_key, seq), peer_id in gaps.items():
            if not self.store.has_seq(live.secrets.room_id, author_key, seq):
                self._request_sync(live, peer_id)  # gossip lost something

    # -- members and announces ----------------------------------------------------------------

    async def _announce(self, live: _LiveRoom) -> None:
        stored = self.store.room(live.secrets.room_id)
        if stored is None:
            return
        live.last_announce = time.monotonic()
        addrs = [strip_p2p(a) for a in self._node.addrs()][: rc.MAX_ANNOUNCE_ADDRS]
        envelope = rc.encode_announce(
            self._node.identity, live.secrets, self._node.profile.settings.display_name, addrs,
            lamport=stored.lamport, sent_at_ms=int(time.time() * 1000),
        )
        await self._publish(live.secrets, envelope)

    async def _announce_loop(self, live: _LiveRoom) -> None:
        while True:
            await self._announce(live)
            await trio.sleep(ANNOUNCE_INTERVAL * random.uniform(0.9, 1.1))

    async def _on_announce(self, live: _LiveRoom, post: rc.RoomPost) -> None:
        if post.author == self._me:
            return
        room_id = live.secrets.room_id
        announce = post.announce
        new = self.store.upsert_member(room_id, post.author, announce.name, announce.addrs,
                                       time.time())
        self._members_changed(room_id)
        if new and time.monotonic() - live.last_announce > REANNOUNCE_MIN_GAP:
            await self._announce(live)  # so the newcomer learns who is here now
        if not self._node.is_connected(post.author):
            self._node.nursery.start_soon(self._dial_member, post.author, announce.addrs)
        stored = self.store.room(room_id)
        if stored is not None and post.lamport > stored.lamport:
            self._request_sync(live, post.author)  # they have seen posts we have not

    def _members_changed(self, room_id: bytes) -> None:
        self._names.pop(room_id, None)
        self._changed(room_id, members=True)

    async def _dial_member(self, peer_id: str, addrs: tuple[str, ...]) -> bool:
        return await connect_at(self._node.host, peer_id, addrs, DIAL_TIMEOUT)

    async def reach_members(self, room_id: bytes) -> None:
        """Connect to some members of a room (a file fetch found none connected)."""
        await self._reach_members(room_id)

    async def _reach_members(self, room_id: bytes) -> None:
        """Connect to some members (after start or join) so gossip and sync have peers."""
        members = [m for m in self.store.members(room_id) if m.peer_id != self._me]
        random.shuffle(members)
        async with trio.open_nursery() as nursery:
            for member in members[:MAX_ROOM_DIALS]:
                if not self._node.is_connected(member.peer_id):
                    nursery.start_soon(self._dial_member, member.peer_id, member.addrs)
        live = self._live.get(room_id)
        if live is not None:
            for member in members:
                if self._node.is_connected(member.peer_id):
                    self._request_sync(live, member.peer_id)

    def peer_connected(self, peer_id: str) -> None:
        """A connection opened: sync every room we share with that peer, once per run."""
        for room_id in self.store.rooms_of(peer_id):
            live = self._live.get(room_id)
            if live is not None and peer_id not in live.synced_with:
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
        if live.syncing:
            live.sync_again.add(peer_id)
            return
        live.syncing = True
        self._node.nursery.start_soon(self._sync_worker, live, peer_id)

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
        """Pull what we lack from ``peer_id``, page by page, until nothing new comes."""
        if live.secrets.room_id not in self._live:
            return
        for _ in range(MAX_SYNC_PAGES):
            have = self.store.have_vector(live.secrets.room_id)
            request = rc.encode_sync_request(live.secrets, have, rc.MAX_SYNC_PAGE)
            new = 0
            with trio.fail_after(SYNC_TIMEOUT):
                stream = await self._node.host.new_stream(ID.from_base58(peer_id),
                                                          [SYNC_PROTOCOL_ID])
                try:
                    await write_frame(stream, request)
                    while True:
                        frame = rc.decode_sync_response(
                            await read_frame(stream, rc.MAX_SYNC_RESPONSE)
                        )
                        if isinstance(frame, rc.SyncEnd):
                            more = frame.more
                            break
                        new += await self._receive(live, frame.envelope, peer_id)
                    await stream.close()
                except BaseException:
                    await stream.reset()
                    raise
            if not more or not new:
                return

    async def _serve_sync(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        payload = await read_frame(stream, rc.MAX_SYNC_REQUEST)
        stored = self.store.room(rc.sync_request_room_id(payload))
        if stored is None:
            raise FrameError("sync request for a room we are not in")
        request = rc.decode_sync_request(stored.secrets, payload)  # proves they hold the key
        room_id = stored.secrets.room_id
        if self.store.upsert_member(room_id, peer_id, "", (), None):
            self._members_changed(room_id)
        envelopes, more = self.store.missing_for(room_id, request.have, request.page_limit)
        for envelope in envelopes:
            await write_frame(stream, rc.encode_sync_post(envelope))
        await write_frame(stream, rc.encode_sync_end(more))
        await stream.close()
        served = set(envelopes)
        for pending in self.store.pending_posts(room_id):
            if self.store.envelope(room_id, pending.post_id) in served:
                self._confirm(room_id, pending.post_id)  # a member now holds it
        live = self._live.get(room_id)
        if live is not None and peer_id not in live.synced_with:
            self._request_sync(live, peer_id)  # a newcomer may hold posts nobody has yet

    async def _sync_loop(self, live: _LiveRoom) -> None:
        """A slow safety net: now and then, compare notes with one connected member."""
        while True:
            await trio.sleep(SYNC_INTERVAL * random.uniform(0.8, 1.2))
            room_id = live.secrets.room_id
            members = [m.peer_id for m in self.store.members(room_id)
                       if m.peer_id != self._me and self._node.is_connected(m.peer_id)]
            if members:
                self._request_sync(live, random.choice(members))
            else:
                await self._reach_members(room_id)

    # -- records ------------------------------------------------------------------------------

    @staticmethod
    def _stored(post: rc.RoomPost, state: str) -> StoredPost:
        return StoredPost(post.room_id, post.post_id, post.author, post.author_key, post.lamport,
                          post.sent_at_ms, post.kind, post.body, state)

    def _post_info(self, post: StoredPost, names: dict[str, str] | None = None) -> RoomPostInfo:
        if names is None:
            names = self._names.get(post.room_id) or {}
            if not names:
                names = {m.peer_id: m.name for m in self.store.members(post.room_id)}
                self._names[post.room_id] = names
        me = post.author == self._me
        name = self._node.profile.settings.display_name if me else names.get(post.author, "")
        text = post.body.decode("utf-8", "replace") if post.kind == rc.KIND_TEXT else ""
        transfer = None
        if post.kind == rc.KIND_FILE:
            summary = offer_summary(post.body.decode("utf-8", "replace"))
            if summary is not None:
                transfer, text = summary
        return RoomPostInfo(
            room_id=post.room_id.hex(), id=post.post_id.hex(), author=post.author,
            author_name=name or post.author[:12], outgoing=me, text=text,
            sent_at_ms=post.sent_at_ms, lamport=post.lamport, state=PostState(post.state),
            order=(post.lamport, post.author_key.hex(), post.post_id.hex()),
            kind=post.kind, transfer=transfer,
        )
