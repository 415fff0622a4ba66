"""``/kith/typing/1.0.0``: "Ada is typing..." (docs/protocol.md 11.4). Ephemeral: never stored.

A typing signal is one stream that carries one frame: empty for a direct conversation, the
16-byte room id for a room; the receiver closes the stream once it has taken it. It goes to
a contact (direct) or to the room's members we are connected to, at most once per
``SEND_INTERVAL`` per conversation; a receiver announces at most one per ``SHOW_INTERVAL`` per
sender and conversation and drops the rest, so a flood costs a stream each (the resource
manager's per-protocol limit) and shows as one. With the setting off, none are sent and none
are shown.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from app.core.events import TypingChanged
from app.core.records import ContactState
from app.node.framing import Stream, guarded, read_frame, write_frame
from app.node.interfaces import Connections, ContactBook, Emit, RoomDirectory, Tasks

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol("/kith/typing/1.0.0")
FEATURE_TYPING = "typing/1"
SEND_INTERVAL = 3.0      # seconds between two signals we send to one conversation
SHOW_INTERVAL = 2.0      # seconds between two signals we announce from one sender and place
MAX_FRAME = 16           # a room id, or nothing
MAX_ROOM_TARGETS = 32    # members one room signal goes to
MAX_REMEMBERED = 4096    # (sender, place) pairs kept for SHOW_INTERVAL
TIMEOUT = 5.0


class TypingSignals:
    """Sends our typing signals and announces others' (``TypingChanged``)."""

    def __init__(self, host: IHost, *, nursery: Tasks, emit: Emit, me: str,
                 contacts: ContactBook, rooms: RoomDirectory, connections: Connections,
                 enabled: Callable[[], bool], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._host = host
        self._nursery = nursery
        self._emit = emit
        self._me = me
        self._contacts = contacts
        self._rooms = rooms
        self._connections = connections
        self._enabled = enabled
        self._clock = clock
        self._sent: dict[str, float] = {}
        self._shown: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        self._host.set_stream_handler(PROTOCOL_ID, guarded(PROTOCOL_ID, self._receive,
                                                           timeout=TIMEOUT))

    # -- sending ------------------------------------------------------------------------------

    def send(self, to: str | None = None, room: bytes | None = None) -> bool:
        """Tell a contact (``to``) or a room that we are typing; False when nothing was sent
        (switched off, or one went to that conversation less than ``SEND_INTERVAL`` ago)."""
        place = to if to is not None else (room or b"").hex()
        now = self._clock()
        if not self._enabled() or now - self._sent.get(place, -SEND_INTERVAL) < SEND_INTERVAL:
            return False
        if to is not None:
            if self._contacts.state(to) is not ContactState.CONTACT:
                raise ValueError("typing signals go to contacts only")
            targets, frame = [to], b""
        else:
            if room is None or not self._rooms.has_room(room):
                raise ValueError("you are not in this room")
            members = sorted(self._rooms.member_ids(room) - {self._me})
            targets = [m for m in members if self._connections.is_connected(m)]
            targets, frame = targets[:MAX_ROOM_TARGETS], room
        self._sent[place] = now
        if len(self._sent) > MAX_REMEMBERED:
            self._sent = {k: v for k, v in self._sent.items() if now - v < SEND_INTERVAL}
        for peer_id in targets:
            self._nursery.start_soon(self._signal, peer_id, frame)
        return True

    async def _signal(self, peer_id: str, frame: bytes) -> None:
        try:
            with trio.fail_after(TIMEOUT):
                stream = await self._host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
                try:
                    await write_frame(stream, frame)
                    with contextlib.suppress(StreamEOF):
                        await stream.read(1)  # the receiver closes once it took the signal
                finally:
                    await stream.close()
        except Exception as exc:  # noqa: BLE001 - a typing signal is worth no retry
            log.debug("no typing signal to %s: %s", peer_id, exc)

    # -- receiving ----------------------------------------------------------------------------

    async def _receive(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        frame = await read_frame(stream, MAX_FRAME)
        if len(frame) not in (0, MAX_FRAME):
            raise ValueError(f"a typing frame of {len(frame)} bytes")
        try:
            self._take(peer_id, frame)
        finally:
            await stream.close()

    def _take(self, peer_id: str, frame: bytes) -> None:
        if not self._enabled():
            return
        if not frame:
            if self._contacts.state(peer_id) is not ContactState.CONTACT:
                return
            place, event = peer_id, TypingChanged(by=peer_id, to=self._me, room=None)
        else:
            if peer_id not in self._rooms.member_ids(frame):
                return
            place, event = frame.hex(), TypingChanged(by=peer_id, to=None, room=frame.hex())
        now = self._clock()
        key = (peer_id, place)
        if now - self._shown.get(key, -SHOW_INTERVAL) < SHOW_INTERVAL:
            return
        if len(self._shown) >= MAX_REMEMBERED:
            self._shown = {k: v for k, v in self._shown.items() if now - v < SHOW_INTERVAL}
            if len(self._shown) >= MAX_REMEMBERED:
                return  # a flood from thousands of places at once: drop, do not grow
        self._shown[key] = now
        self._emit(event)
