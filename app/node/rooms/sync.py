"""Room history sync: ``/kith/sync/2.0.0`` (and 1.0.0), gossip's safety net.

A member who was offline, just joined, or noticed a gap in an author's sequence asks any member
for what it lacks by listing the ``author_seq`` ranges it holds, so a number nobody holds never
stops it, and verifies every synced post exactly like a live one (it goes through the same
receive path). Serving is bounded per requester (``room_limits.ServeLimits``): a few requests at
once, and a byte and query budget that paces pages rather than refusing them. Every
``SYNC_INTERVAL`` or so a room compares notes with one connected member, in case gossip lost
something nobody noticed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from app.core import room as rc
from app.core.records import PostState
from app.core.seq_ranges import HeldRanges
from app.node.framing import FrameError, Stream, guarded, read_frame, write_frame
from app.node.interfaces import Connections, Tasks
from app.node.room_limits import MIB, QUERY_COST, PostQuotas, ServeLimits
from app.node.rooms.live import LiveRoom, Taken, decoded_or_none
from app.store.rooms import RoomStore

log = logging.getLogger(__name__)

SYNC_PROTOCOL_ID = TProtocol(rc.SYNC_PROTOCOL_ID)
SYNC2_PROTOCOL_ID = TProtocol(rc.SYNC2_PROTOCOL_ID)
MAX_SYNC_PAGE_BYTES = 4 * MIB  # a page ends once this much was sent (at least one post)
SYNC_INTERVAL = 60.0
SYNC_TIMEOUT = 30.0
MAX_SYNC_PAGES = 1000


class HistorySync:
    """Asking members for what we lack, and answering them; ``protocols`` are offered and
    asked for, newest first (a test may leave out 2.0.0 to play an older peer)."""

    def __init__(self, store: RoomStore, *, host: IHost, nursery: Tasks, me: str,
                 connections: Connections, quotas: PostQuotas,
                 live: Callable[[bytes], LiveRoom | None],
                 receive: Callable[[LiveRoom, bytes, str], Awaitable[Taken]],
                 confirm: Callable[[bytes, bytes], None],
                 members_changed: Callable[[bytes], None],
                 reach_members: Callable[[bytes], Awaitable[None]]) -> None:
        self.store = store
        self._host = host
        self._nursery = nursery
        self._me = me
        self._connections = connections
        self._quotas = quotas
        self._live = live
        self._receive = receive
        self._confirm = confirm
        self._members_changed = members_changed
        self._reach_members = reach_members
        self.serves = ServeLimits()
        self.protocols: tuple[TProtocol, ...] = (SYNC2_PROTOCOL_ID, SYNC_PROTOCOL_ID)

    def start(self) -> None:
        for protocol in self.protocols:
            self._host.set_stream_handler(
                protocol, guarded(protocol, self._serve, timeout=SYNC_TIMEOUT)
            )

    def request(self, live: LiveRoom, peer_id: str) -> None:
        """Catch up from ``peer_id`` soon (one sync per room at a time; the others wait)."""
        if not peer_id or peer_id == self._me:
            return
        if self._quotas.penalised(peer_id, time.monotonic()):
            log.debug("not syncing room %s from %s: it went over a post quota",
                      live.secrets.id_hex, peer_id)
            return
        if live.syncing:
            live.sync_again.add(peer_id)
            return
        live.syncing = True
        self._nursery.start_soon(self._sync_worker, live, peer_id)

    async def _sync_worker(self, live: LiveRoom, peer_id: str) -> None:
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

    async def _sync_from(self, live: LiveRoom, peer_id: str) -> None:
        """Pull what we lack from ``peer_id``, page by page, until it has nothing more for us.

        With /kith/sync/2.0.0 every request lists what we hold, including what this session
        already got or refused, so no page repeats and a hole nobody can fill never stops it.
        With a peer that only speaks 1.0.0, as before: stop when a page brings nothing new.
        """
        if self._live(live.secrets.room_id) is None:
            return  # left meanwhile
        held = HeldRanges(self.store.held_ranges(live.secrets.room_id))
        first = True
        for _ in range(MAX_SYNC_PAGES):
            with trio.fail_after(SYNC_TIMEOUT):
                stream = await self._host.new_stream(ID.from_base58(peer_id),
                                                     list(self.protocols))
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

    async def _sync_page(self, live: LiveRoom, stream: Stream, held: HeldRanges,
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
                taken = Taken(decoded_or_none(secrets, frame.envelope), None)
            if taken.post is not None and taken.post.author_seq:
                # Held now, or refused: either way not asked for again in this session.
                unseen += held.add(taken.post.author_key, taken.post.author_seq)
            new += taken.stored

    async def _serve(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        if not self.serves.try_start(peer_id):
            log.info("refused a sync request from %s: too many at once", peer_id)
            await stream.reset()  # they may ask again once one of theirs is done
            return
        try:
            await self._serve_request(stream, peer_id)
        finally:
            self.serves.finish(peer_id)

    async def _serve_request(self, stream: Stream, peer_id: str) -> None:
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
        budget = self.serves.budget(peer_id, time.monotonic())
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
        live = self._live(room_id)
        if live is not None and peer_id not in live.synced_with:
            self.request(live, peer_id)  # a newcomer may hold posts nobody has yet

    async def sync_loop(self, live: LiveRoom) -> None:
        """A slow safety net: now and then, compare notes with one connected member."""
        while True:
            await trio.sleep(SYNC_INTERVAL * random.uniform(0.8, 1.2))
            room_id = live.secrets.room_id
            members = [m for m in self.store.member_ids(room_id)
                       if m != self._me and self._connections.is_connected(m)]
            if members:
                self.request(live, random.choice(members))
            else:
                await self._reach_members(room_id)
