"""Fuzzing every inbound codec and store path of a real node, end to end (hypothesis).

Vic is a real node with a real SQLite profile that also serves as a relay and a DHT peer;
Mal is a bare py-libp2p host with gossipsub (tests/attackers), Vic's contact and a member of
her room, holding two of her file offers. Both are shared by the module, and every property
sends its examples over them, over real streams and gossip: direct messages (text, file
offers and controls), room posts (over gossip, and served to Vic's history sync), history
sync requests (1.0.0 and 2.0.0), file requests, profile frames, circuit relay HOP and STOP
messages, DHT requests, and protocol names. The inputs are hostile (tests/hostile_inputs.py):
extreme integers, lengths at their limit and one over, hostile Unicode.

After every example Vic must still be running, still acknowledge a genuine message, have
logged no unexpected exception (any but the protocol errors her codecs and py-libp2p raise
for bad input), and have published no event that a consumer would trip on (text that is not
Unicode, an integer beyond i64, a time the window cannot show, a name with control or format
characters). After each property her database passes ``PRAGMA integrity_check`` and every
stored value is within its documented bound.

KITH_FUZZ_EXAMPLES sets the examples per property (default 20, the same ones on every run);
with it set, hypothesis draws new ones each run (docs/networking.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import sqlite3
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nacl.secret
import nacl.utils
import pytest
import trio
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.kad_dht.common import PROTOCOL_ID as DHT_PROTOCOL
from libp2p.kad_dht.pb.kademlia_pb2 import Message as DhtMessage
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage, Status, StopMessage
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited
from multiaddr import Multiaddr
from multiaddr.protocols import P_P2P

from app.core import dm
from app.core import files as fc
from app.core import room as rc
from app.core.config import NodeConfig
from app.core.events import Event
from app.core.identity import Identity, public_key_from_peer_id
from app.core.invite import (
    MAX_ADDR_LENGTH,
    MAX_ADDRS,
    MAX_NAME_LENGTH,
    ContactInvite,
    well_formed_addr,
)
from app.node.dht_records import DhtBoundsError
from app.node.files.downloading import BadSource, TransferFailed
from app.node.files.service import TransferError
from app.node.framing import FrameError, encode_frame, read_frame
from app.node.node import KithNode
from app.node.profile_exchange import PROTOCOL_ID as PROFILE_PROTOCOL
from app.node.rooms import RoomServiceError
from app.store.contacts import MAX_ADDRS_PER_PEER
from tests.attackers import YAMUX_DATA, YAMUX_HEADER, YAMUX_SYN, RawHost, muxed_connection, peer
from tests.hostile_inputs import (
    PEER_SLOTS,
    HostilePost,
    control_body,
    dht_message,
    file_request,
    hop_message,
    hostile_post,
    membership_body,
    offer_body,
    profile_frame,
    stop_message,
    sync1_body,
    sync2_body,
    text_body,
    u64,
)
from tests.peers import LOOPBACK, Peer

T = TypeVar("T")
EXAMPLES = int(os.environ.get("KITH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 20,
    deadline=None,
    derandomize=not EXAMPLES,  # CI runs the same examples every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example, HealthCheck.filter_too_much],
)
WAIT = 10.0
MAX_I64 = 2**63 - 1

# What a node's codecs and py-libp2p raise for bad input: logged, the message or stream
# dropped. Anything else in the log is a bug the fuzzing found.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    FrameError, dm.DmError, rc.RoomError, fc.FileError, DhtBoundsError, BaseLibp2pError,
    DecodeError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
    ConnectionError, EOFError, TransferError, TransferFailed, BadSource, RoomServiceError,
)
NAME_FIELDS = frozenset({"name", "display_name", "author_name", "their_name", "local_name"})
TIME_FIELDS = frozenset({"sent_at", "sent_at_ms"})


async def on_node(who: Peer, fn: Callable[[KithNode], Awaitable[T]]) -> T:
    return await who.client.call(fn)


class UnexpectedErrors(logging.Handler):
    """Collects log records of Kith's loggers that carry an exception a peer should not be
    able to cause (``EXPECTED_ERRORS`` are fine)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("app."):
            return
        errors = [a for a in (record.args if isinstance(record.args, tuple) else ())
                  if isinstance(a, BaseException)]
        if record.exc_info and record.exc_info[1] is not None:
            errors.append(record.exc_info[1])
        for error in errors:
            leaves = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
            for leaf in leaves:
                if not isinstance(leaf, EXPECTED_ERRORS):
                    self.found.append(f"{record.name}: {record.getMessage()} "
                                      f"[{type(leaf).__name__}: {leaf}]")


def event_problems(event: Event) -> list[str]:
    """What in ``event`` a consumer (the window, ``kith node``'s JSON lines) would trip on."""
    problems: list[str] = []
    data = event.to_json()
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError) as exc:
        problems.append(f"{event.name} cannot be written as a JSON line: {exc}")

    def walk(key: str, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int):
            if not -MAX_I64 - 1 <= value <= MAX_I64:
                problems.append(f"{event.name}.{key} = {value} is beyond i64")
            if key in TIME_FIELDS and not 0 <= value <= rc.MAX_SENT_AT_MS:
                problems.append(f"{event.name}.{key} = {value} is a time the window cannot show")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{event.name}.{key} = {value}")
        elif isinstance(value, str) and key in NAME_FIELDS and any(
                unicodedata.category(c)[0] == "C" for c in value):
            problems.append(f"{event.name}.{key} = {value!r} shows control or format characters")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, v)
        elif isinstance(value, list):
            for v in value:
                walk(key, v)

    walk("", data)
    return problems


# Every stored value within the bound docs/protocol.md and docs/networking.md give it: a
# query counting the rows that are not.
STORE_BOUNDS = {
    "direct message times": "SELECT count(*) FROM messages WHERE typeof(sent_at) != 'integer' "
                            f"OR sent_at NOT BETWEEN 0 AND {rc.MAX_SENT_AT_MS}",
    "direct message kinds and bodies": (
        "SELECT count(*) FROM messages WHERE kind NOT IN (1, 2, 3, 32) "
        "OR length(CAST(text AS BLOB))"
        f" NOT BETWEEN 1 AND CASE kind WHEN 1 THEN {dm.MAX_TEXT_BYTES} "
        f"ELSE {dm.MAX_FILE_BODY_BYTES} END"),
    "room post numbers": (
        "SELECT count(*) FROM room_posts WHERE typeof(lamport) != 'integer' "
        f"OR lamport NOT BETWEEN 0 AND {rc.MAX_LAMPORT} OR typeof(author_seq) != 'integer' "
        f"OR author_seq NOT BETWEEN 1 AND {rc.MAX_AUTHOR_SEQ} OR typeof(sent_at) != 'integer' "
        f"OR sent_at NOT BETWEEN 0 AND {rc.MAX_SENT_AT_MS} OR kind NOT IN (1, 3, 32)"),
    "room clocks": (
        "SELECT count(*) FROM rooms WHERE typeof(lamport) != 'integer' "
        f"OR lamport NOT BETWEEN 0 AND {rc.MAX_LAMPORT} OR typeof(my_seq) != 'integer' "
        f"OR my_seq NOT BETWEEN 0 AND {rc.MAX_AUTHOR_SEQ}"),
    "file offers": (
        "SELECT count(*) FROM transfers WHERE length(transfer_id) != 16 OR length(hash) != 32 "
        f"OR size NOT BETWEEN 0 AND {fc.MAX_SIZE} "
        f"OR chunk_size NOT BETWEEN {fc.MIN_CHUNK_SIZE} AND {fc.MAX_CHUNK_SIZE} "
        f"OR (size + chunk_size - 1) / chunk_size > {fc.MAX_CHUNKS} "
        f"OR length(mime) > {fc.MAX_MIME_CHARS} OR length(name) = 0"),
    "addresses": ("SELECT count(*) FROM peer_addrs WHERE length(addr) NOT BETWEEN 1 AND "
                  f"{MAX_ADDR_LENGTH} OR substr(addr, 1, 1) != '/'"),
    "address books": ("SELECT count(*) FROM (SELECT peer_id FROM peer_addrs GROUP BY peer_id "
                      f"HAVING count(*) > {MAX_ADDRS_PER_PEER})"),
    "names": (f"SELECT (SELECT count(*) FROM contacts WHERE length(their_name) > "
              f"{MAX_NAME_LENGTH}) + (SELECT count(*) FROM room_members WHERE length(name) > "
              f"{rc.MAX_NAME})"),
}


def store_problems(db: sqlite3.Connection) -> list[str]:
    """What is wrong with a node's database (runs in its network thread)."""
    problems = []
    integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        problems.append(f"integrity_check: {integrity}")
    if db.execute("PRAGMA foreign_key_check").fetchall():
        problems.append("foreign_key_check failed")
    for what, query in STORE_BOUNDS.items():
        count = db.execute(query).fetchone()[0]
        if count:
            problems.append(f"{what}: {count} row(s) out of bounds")
    shown = [("contacts", "their_name"), ("room_members", "name"), ("transfers", "name")]
    for table, column in shown:
        for (text,) in db.execute(f"SELECT {column} FROM {table}"):  # reads back every row
            if any(unicodedata.category(c)[0] == "C" for c in text):
                problems.append(f"{table}.{column} {text!r} has control or format characters")
    for (addrs,) in db.execute("SELECT addrs FROM room_members"):
        listed = json.loads(addrs)
        if not isinstance(listed, list) or len(listed) > rc.MAX_ANNOUNCE_ADDRS or not all(
                well_formed_addr(a) for a in listed):
            problems.append(f"room_members.addrs {addrs[:80]!r} is out of bounds")
    for (addr,) in db.execute("SELECT addr FROM peer_addrs"):
        if not well_formed_addr(addr):
            problems.append(f"peer_addrs.addr {addr[:80]!r} is not an address")
    return problems


@dataclass
class Bench:
    """Vic, Mal, the room they share and what Mal answers Vic, for the whole module."""

    runner: asyncio.Runner
    vic: Peer
    mal: RawHost
    room: str
    secrets: rc.RoomSecrets
    served: bytes  # a transfer Vic offered Mal: requests for it are answered
    controlled: bytes  # another: Mal's controls may decline, cancel, complete or fail it
    errors: UnexpectedErrors
    answers: MalAnswers
    events_checked: int = 0
    message_ids: set[bytes] = field(default_factory=set)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _stream_ids: Iterator[int] = field(default_factory=lambda: itertools.count(9_000_001, 2))

    def run(self, coro: Awaitable[T]) -> T:
        return self.runner.run(coro)  # type: ignore[arg-type]

    @property
    def ids(self) -> dict[bytes, bytes]:
        """The placeholders of tests/hostile_inputs.py and the peer ids they stand for."""
        other = Identity(b"\x07" * 32).peer_id
        return dict(zip(PEER_SLOTS, (ID.from_base58(p).to_bytes() for p in (
            self.mal.peer_id, self.vic.peer_id, other)), strict=True))

    # -- genuine traffic ----------------------------------------------------------------------

    async def genuine_message(self) -> None:
        """Mal's ordinary message to Vic is stored and acknowledged."""
        payload = dm.encode_message(self.mal.identity, self.vic.peer_id,
                                    f"genuine {next(self._seq)}", message_id=dm.new_message_id(),
                                    sent_at_ms=1_767_225_600_000)
        reply = await self.send_dm_payload(payload)
        assert isinstance(reply, dm.Ack), f"Vic answered a genuine message with {reply}"

    async def marker(self) -> None:
        """Mal's ordinary room post, once Vic shows it (gossip is ordered on one link)."""
        seq = next(self._seq)
        text = f"marker {seq}"
        envelope = rc.encode_text_post(self.mal.identity, self.secrets, text, lamport=1,
                                       author_seq=seq, sent_at_ms=1_767_225_600_000)
        await self.mal.publish(self.secrets.topic, [envelope])
        await self.vic.wait_event("room_message", text=text, timeout=WAIT)

    # -- what Mal sends -----------------------------------------------------------------------

    async def send_dm(self, kind: int, body: bytes) -> dm.Ack | dm.Reject | None:
        """A direct message from Mal of ``kind`` with any ``body`` (no limits applied)."""
        inner = dm.encode_inner(self.mal.identity, public_key_from_peer_id(self.vic.peer_id),
                                body, message_id=dm.new_message_id(),
                                sent_at_ms=1_767_225_600_000, kind=kind)
        return await self.send_dm_payload(dm.seal_inner(self.mal.identity, self.vic.peer_id,
                                                        inner))

    async def send_dm_payload(self, payload: bytes) -> dm.Ack | dm.Reject | None:
        """One MESSAGE frame on a fresh stream; Vic's reply (None: she reset the stream)."""

        async def send(host: IHost) -> dm.Ack | dm.Reject | None:
            stream = await host.new_stream(peer(self.vic.peer_id), [TProtocol(dm.PROTOCOL_ID)])
            try:
                await stream.write(encode_frame(payload))
                with trio.fail_after(WAIT):
                    return dm.decode_reply(await read_frame(stream, dm.MAX_FRAME))
            except BaseLibp2pError:
                return None
            finally:
                await stream.reset()

        return await self.mal.call(send)

    async def exchange(self, protocol: str, frames: list[bytes], *, replies: int = 1,
                       limit: int = 8 << 20) -> list[bytes]:
        """Write each of ``frames`` (already framed) on one ``protocol`` stream, reading up to
        ``replies`` varint frames after each; what came back before Vic closed or reset."""

        async def talk(host: IHost) -> list[bytes]:
            got: list[bytes] = []
            stream = await host.new_stream(peer(self.vic.peer_id), [TProtocol(protocol)])
            try:
                for frame in frames:
                    await stream.write(frame)
                    for _ in range(replies):
                        with trio.fail_after(WAIT):
                            got.append(await read_varint_prefixed_bytes_limited(stream, limit))
            except BaseLibp2pError:
                pass  # reset or closed: Vic is done with the stream
            finally:
                await stream.reset()
            return got

        return await self.mal.call(talk)

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> None:
        """After an example: Vic runs, answers, logged nothing unexpected, emitted no garbage."""

        async def checks() -> None:
            assert self.vic.client.running and not self.vic.named("node_failed")
            await self.genuine_message()

        self.run(checks())
        self.check_store()
        found, self.errors.found = self.errors.found, []
        assert not found, "\n".join(found)
        new = self.vic.events[self.events_checked:]
        self.events_checked += len(new)
        problems = [p for event in new for p in event_problems(event)]
        assert not problems, "\n".join(problems)

    def check_store(self) -> None:
        async def read(node: KithNode) -> list[str]:
            return store_problems(node.db)

        problems = self.run(on_node(self.vic, read))
        assert not problems, "\n".join(problems)


GENUINE_PROFILE = b'{"name":"Mal","addrs":[]}'


def genuine_reservation(addr: bytes) -> bytes:
    """A relay's answer to a RESERVE: a slot for an hour, reachable at ``addr``."""
    answer = HopMessage(type=HopMessage.STATUS, status=Status.OK)
    answer.reservation.expire = int(time.time()) + 3600
    answer.reservation.addrs.append(addr)
    return bytes(answer.SerializeToString())


@dataclass
class MalAnswers:
    """What Mal answers when Vic asks: her profile frame, the frames of a sync page, a
    relay reservation (she is Vic's relay) and a DHT answer (and her bootstrap peer)."""

    profile: bytes = GENUINE_PROFILE
    sync: list[bytes] = field(default_factory=lambda: [rc.encode_sync_end(False)])
    syncs_answered: int = 0
    reservation: bytes = b""
    dht: bytes = bytes(DhtMessage(type=DhtMessage.FIND_NODE).SerializeToString())


async def _mal_answers(answers: MalAnswers, identity: Identity, host: IHost) -> None:
    """Mal's side of what Vic starts: her profile, acknowledgements, history sync."""

    async def profile(stream: Any) -> None:
        try:
            await stream.write(encode_frame(answers.profile))
            await stream.close()
        except Exception:  # noqa: BLE001 - Vic gave up on it
            await stream.reset()

    async def messages(stream: Any) -> None:  # Mal acknowledges what Vic sends her
        sender = str(stream.muxed_conn.peer_id)
        try:
            while True:
                payload = await read_frame(stream, dm.MAX_FRAME)
                message = dm.decode_message(identity, sender, payload)
                await stream.write(encode_frame(dm.encode_ack(message.message_id)))
        except Exception:  # noqa: BLE001 - Vic closed it
            await stream.reset()

    async def sync(stream: Any) -> None:
        try:
            await read_frame(stream, rc.MAX_SYNC2_REQUEST)
            for frame in answers.sync:
                await stream.write(encode_frame(frame))
            await stream.close()
        except Exception:  # noqa: BLE001 - Vic gave up on it
            await stream.reset()
        finally:
            answers.syncs_answered += 1

    async def hop(stream: Any) -> None:  # Mal as Vic's relay
        try:
            await read_varint_prefixed_bytes_limited(stream, 4096)
            await stream.write(encode_uvarint(len(answers.reservation)) + answers.reservation)
            await stream.close()
        except Exception:  # noqa: BLE001 - Vic gave up on it
            await stream.reset()

    async def dht(stream: Any) -> None:  # Mal as Vic's DHT bootstrap peer
        try:
            while True:
                await read_varint_prefixed_bytes_limited(stream, 65536)
                await stream.write(encode_uvarint(len(answers.dht)) + answers.dht)
        except Exception:  # noqa: BLE001 - Vic is done with it
            await stream.reset()

    host.set_stream_handler(HOP_PROTOCOL, hop)
    host.set_stream_handler(DHT_PROTOCOL, dht)
    host.set_stream_handler(PROFILE_PROTOCOL, profile)
    host.set_stream_handler(dm.PROTOCOL_ID, messages)  # type: ignore[arg-type]
    host.set_stream_handler(rc.SYNC2_PROTOCOL_ID, sync)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    folder = tmp_path_factory.mktemp("fuzz")
    errors = UnexpectedErrors()
    app_log = logging.getLogger("app")
    level = app_log.level
    app_log.setLevel(logging.INFO)
    logging.getLogger().addHandler(errors)
    answers = MalAnswers()
    with asyncio.Runner() as runner:
        async def start() -> Bench:
            mal = await RawHost(gossip=True).start()
            await mal.call(lambda host: _mal_answers(answers, mal.identity, host))
            assert mal.host is not None
            mal_addrs = tuple(str(a).split("/p2p/")[0] for a in mal.host.get_addrs())
            answers.reservation = genuine_reservation(Multiaddr(mal_addrs[0]).to_bytes())
            mal_full = f"{mal_addrs[0]}/p2p/{mal.peer_id}"
            vic = await Peer(folder / "vic", "Vic", NodeConfig(
                listen=(LOOPBACK,), serve_relay=True, serve_dht=True, relays=(mal_full,),
                bootstrap=(mal_full,))).start()
            assert vic.ready is not None
            await vic.wait_event("relay_reserved", timeout=WAIT)
            await vic.client.add_contact(ContactInvite(mal.peer_id, "Mal", mal_addrs).to_link())
            await vic.wait_event("contact_online", peer_id=mal.peer_id, timeout=WAIT)
            room = await vic.client.create_room("Fuzz")
            secrets = rc.parse_room_invite(room.invite).secrets
            await mal.join(vic.ready.addrs[0], secrets.topic)
            sample = folder / "sample.bin"
            sample.write_bytes(os.urandom(200_000))
            served = await vic.client.send_file(mal.peer_id, str(sample))
            controlled = await vic.client.send_file(mal.peer_id, str(sample))
            made = Bench(runner, vic, mal, room.room_id, secrets, bytes.fromhex(served.transfer),
                         bytes.fromhex(controlled.transfer), errors, answers)
            await made.marker()
            return made

        made = runner.run(start())
        try:
            yield made
        finally:
            async def stop() -> None:
                await made.mal.stop()
                await made.vic.stop()

            runner.run(stop())
            logging.getLogger().removeHandler(errors)
            app_log.setLevel(level)


# -- direct messages: text, file offers, file controls -----------------------------------------

OFFER_WITH_SURROGATE_MIME = (
    b'{"transfer":"' + b"1" * 32 + b'","name":"a","size":0,"chunk_size":65536,"hash":"'
    + fc.EMPTY_HASH.hex().encode() + b'","mime":"\\ud800"}')


@st.composite
def dm_input(draw: st.DrawFn, transfers: tuple[str, ...] = ()) -> tuple[int, bytes]:
    kind = draw(st.one_of(st.sampled_from([dm.KIND_TEXT, dm.KIND_FILE_OFFER,
                                           dm.KIND_FILE_CONTROL]), st.integers(0, 255)))
    if kind == dm.KIND_FILE_OFFER:
        body = draw(offer_body())
    elif kind == dm.KIND_FILE_CONTROL:
        body = draw(control_body(transfers or ("00" * 16,)))
    else:
        body = draw(text_body(dm.MAX_TEXT_BYTES))
    return kind, body


@FUZZ
@given(message=dm_input(), sent_at=u64(), version=st.one_of(st.just(1), st.integers(0, 255)),
       message_id=st.binary(min_size=16, max_size=16))
@example(message=(dm.KIND_TEXT, b"far future"), sent_at=2**63, version=1,
         message_id=b"\x01" * 16)
@example(message=(dm.KIND_TEXT, b"the year 285,000"), sent_at=2**53, version=1,
         message_id=b"\x02" * 16)
@example(message=(dm.KIND_FILE_OFFER, OFFER_WITH_SURROGATE_MIME), sent_at=0, version=1,
         message_id=b"\x03" * 16)
@example(message=(dm.KIND_FILE_CONTROL, b'{"transfer":"' + b"0" * 32 + b'","action":[]}'),
         sent_at=0, version=1, message_id=b"\x04" * 16)
def test_direct_messages(bench: Bench, message: tuple[int, bytes], sent_at: int, version: int,
                         message_id: bytes) -> None:
    kind, body = message
    vic_key = public_key_from_peer_id(bench.vic.peer_id)
    inner = dm.encode_inner(bench.mal.identity, vic_key, body, message_id=message_id,
                            sent_at_ms=sent_at, kind=kind, version=version)
    payload = dm.seal_inner(bench.mal.identity, bench.vic.peer_id, inner)
    new = message_id not in bench.message_ids  # a repeated id is a resend: stored once
    bench.message_ids.add(message_id)
    reply = bench.run(bench.send_dm_payload(payload))
    if isinstance(reply, dm.Ack) and kind == dm.KIND_TEXT and new:
        async def stored(node: KithNode) -> Any:
            return node.messages.get(bench.mal.peer_id, message_id, outgoing=False)

        found = bench.run(on_node(bench.vic, stored))
        assert found is not None and found.text == body.decode("utf-8")
        assert 0 <= found.sent_at_ms <= rc.MAX_SENT_AT_MS
    bench.check()


CONTROL_TARGETS = ("<offered>", "<OFFERED>", "<controlled>")


@FUZZ
@given(body=control_body(CONTROL_TARGETS), offered=st.binary(min_size=16, max_size=16))
@example(body=b'{"transfer":"<offered>","action":"fail","reason":"gone\\ud800"}',
         offered=b"\x11" * 16)  # a reason that JSON escapes into a lone surrogate
def test_file_controls_about_real_transfers(bench: Bench, body: bytes, offered: bytes) -> None:
    """Controls naming transfers Vic really has: one Mal has just offered her, and one Vic
    offered Mal (the served one is left alone)."""
    offer = fc.FileOffer(offered, "report.pdf", 1000, fc.DEFAULT_CHUNK_SIZE, b"\x42" * 32)
    bench.run(bench.send_dm(dm.KIND_FILE_OFFER, offer.to_json()))
    for target, transfer in zip(CONTROL_TARGETS, (offered.hex(), offered.hex().upper(),
                                                  bench.controlled.hex()), strict=True):
        body = body.replace(target.encode(), transfer.encode())
    bench.run(bench.send_dm(dm.KIND_FILE_CONTROL, body))
    bench.check()


# -- room posts: over gossip, and served to Vic's history sync ---------------------------------


@FUZZ
@given(posts=st.lists(st.one_of(hostile_post(), st.binary(max_size=300)), min_size=1,
                      max_size=3))
@example(posts=[HostilePost(b"\x05" * 32, rc.KIND_ANNOUNCE,
                            b'{"name":"x","addrs":["/ip4/\\u001f/p2p/{author}"]}', lamport=1,
                            author_seq=0, sent_at_ms=1, version=1, post_id=b"\x06" * 16)])
def test_room_posts_over_gossip(bench: Bench, posts: list[HostilePost | bytes]) -> None:
    envelopes = [p.envelope(bench.secrets) if isinstance(p, HostilePost) else p for p in posts]
    bench.run(bench.mal.publish(bench.secrets.topic, envelopes))
    bench.run(bench.marker())  # everything before it on the link was handled
    bench.check()


@FUZZ
@given(entries=st.lists(st.tuples(membership_body(), st.integers(1, 5), st.integers(0, 50)),
                        min_size=1, max_size=4),
       epoch=st.binary(min_size=rc.EPOCH_ID_SIZE, max_size=rc.EPOCH_ID_SIZE))
def test_membership_entries_and_epoch_envelopes_over_gossip(
        bench: Bench, entries: list[tuple[bytes, int, int]], epoch: bytes) -> None:
    """Log entries of any shape (kind 32), and envelopes of an epoch nobody holds."""
    author = Identity(b"\x0b" * 32)
    envelopes = [rc.seal_inner(bench.secrets, rc.encode_inner(
        author, bench.secrets.room_id, body, kind=rc.KIND_MEMBERSHIP, post_id=rc.new_post_id(),
        lamport=lamport, author_seq=seq, sent_at_ms=1)) for body, seq, lamport in entries]
    stranger = bench.secrets.with_epochs({epoch: bytes(32)}, epoch)
    envelopes.append(rc.encode_text_post(author, stranger, "no one holds this epoch",
                                         lamport=1, author_seq=99, sent_at_ms=1))
    bench.run(bench.mal.publish(bench.secrets.topic, envelopes))
    bench.run(bench.marker())
    bench.check()


def _sync_frame(draw: Callable[[st.SearchStrategy[Any]], Any], secrets: rc.RoomSecrets) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    envelope = draw(hostile_post()).envelope(secrets)
    return bytes([rc.SYNC_POST]) + envelope if choice < 3 else b"\x01" + envelope[:100]


@FUZZ
@given(data=st.data(), end=st.sampled_from([b"\x02\x00", b"\x02\x01", b"\x02\x02", b"", b"\x02"]))
def test_room_posts_served_to_sync(bench: Bench, data: st.DataObject, end: bytes) -> None:
    """Mal answers Vic's history sync with hostile frames and posts."""
    frames = [_sync_frame(data.draw, bench.secrets) for _ in range(data.draw(st.integers(0, 4)))]
    bench.answers.sync = frames + ([end] if end else [])
    before = bench.answers.syncs_answered

    async def sync(node: KithNode) -> None:
        live = node.rooms._live[bytes.fromhex(bench.room)]
        node.rooms.sync.request(live, bench.mal.peer_id)

    def done() -> bool:
        node = bench.vic.client._node
        assert node is not None
        live = node.rooms._live[bytes.fromhex(bench.room)]
        return bench.answers.syncs_answered > before and not live.syncing

    async def synced() -> None:
        await on_node(bench.vic, sync)
        await bench.vic.wait_for(done, WAIT, "Vic's sync with Mal")

    try:
        bench.run(synced())
    finally:
        bench.answers.sync = [rc.encode_sync_end(False)]
    bench.check()


# -- history sync requests, 1.0.0 and 2.0.0 ----------------------------------------------------


@FUZZ
@given(version=st.sampled_from([1, 2]), data=st.data(),
       seal=st.sampled_from(["room", "room", "other key", "other room", "raw", "at limit",
                             "over limit"]))
def test_sync_requests(bench: Bench, version: int, data: st.DataObject, seal: str) -> None:
    body = data.draw(sync2_body() if version == 2 else sync1_body())
    limit = rc.MAX_SYNC2_REQUEST if version == 2 else rc.MAX_SYNC_REQUEST
    secrets = bench.secrets
    room_id, key = secrets.room_id, secrets.key
    if seal == "other key":
        key = nacl.utils.random(32)
    elif seal == "other room":
        room_id = nacl.utils.random(16)
    if seal == "raw":
        payload = data.draw(st.binary(max_size=400))
    else:
        if seal in ("at limit", "over limit"):
            body += bytes(max(0, limit - 16 - 40 - len(body) + (seal == "over limit")))
        payload = room_id + bytes(nacl.secret.SecretBox(key).encrypt(body))
    protocol = rc.SYNC2_PROTOCOL_ID if version == 2 else rc.SYNC_PROTOCOL_ID
    answers = bench.run(bench.exchange(protocol, [encode_frame(payload)], replies=600,
                                       limit=rc.MAX_SYNC_RESPONSE))
    for answer in answers:  # whatever Vic sends is well formed
        frame = rc.decode_sync_response(answer)
        if isinstance(frame, rc.SyncPostFrame):
            rc.decode_post(secrets, frame.envelope)
    bench.check()


# -- file requests ------------------------------------------------------------------------------


@FUZZ
@given(requests=st.lists(st.one_of(file_request(2), st.binary(max_size=300).map(
    lambda raw: (-1, raw))), min_size=1, max_size=3))
def test_file_requests(bench: Bench, requests: list[tuple[int, bytes]]) -> None:
    known = (bench.served, bench.controlled)
    frames = []
    for which, rest in requests:
        if which < 0:
            frames.append(encode_frame(rest))
        else:
            transfer = known[which] if which < len(known) else bytes(16)
            frames.append(encode_frame(transfer + rest))
    bench.run(bench.exchange(fc.PROTOCOL_ID, frames, replies=1, limit=fc.MAX_RESPONSE))
    have = bench.run(bench.exchange(fc.PROTOCOL_ID, [encode_frame(fc.encode_request(
        bench.served, fc.OP_HAVE))]))
    assert have == [b"\x01"], "Vic stopped serving her offer"
    bench.check()


# -- profile frames -----------------------------------------------------------------------------


@FUZZ
@given(frame=profile_frame())
@example(frame=b'{"name":"","addrs":["/\\ud800"]}')
def test_profile_frames(bench: Bench, frame: bytes) -> None:
    """Vic learns Mal's profile as she does on every connection (a node task)."""
    bench.answers.profile = frame

    async def learn(node: KithNode) -> None:
        await node.contacts._learn_profile(bench.mal.peer_id)

    try:
        bench.run(on_node(bench.vic, learn))
    finally:
        bench.answers.profile = GENUINE_PROFILE
    bench.check()


# -- circuit relay v2: HOP (Vic serves relays) and STOP (circuits reaching Vic) ------------------


def _resolve_ids(bench: Bench, message: Any) -> bytes:
    ids = bench.ids
    peers = [message.peer] if message.HasField("peer") else []
    for p in peers:
        p.id = ids.get(p.id, p.id)
    return bytes(message.SerializeToString())


@FUZZ
@given(message=st.one_of(hop_message(), st.binary(max_size=200)),
       raw_length=st.sampled_from([None, 0, 4096, 4097, 2**32]))
def test_relay_hop_messages(bench: Bench, message: HopMessage | bytes,
                            raw_length: int | None) -> None:
    body = message if isinstance(message, bytes) else _resolve_ids(bench, message)
    declared = len(body) if raw_length is None else raw_length
    # A message shorter than its length prefix says gets no answer: Vic waits for the rest.
    bench.run(bench.exchange("/libp2p/circuit/relay/0.2.0/hop",
                             [encode_uvarint(declared) + body],
                             replies=1 if declared <= len(body) else 0))
    async def counts(node: KithNode) -> tuple[int, int]:
        return len(node.relay.server.reserved_peers()), node.relay.server.circuit_count()

    slots, circuits = bench.run(on_node(bench.vic, counts))
    assert slots <= 64 and circuits <= 64
    bench.check()


@FUZZ
@given(message=st.one_of(stop_message(), st.binary(max_size=200)))
def test_relay_stop_messages(bench: Bench, message: StopMessage | bytes) -> None:
    body = message if isinstance(message, bytes) else _resolve_ids(bench, message)
    bench.run(bench.exchange("/libp2p/circuit/relay/0.2.0/stop",
                             [encode_uvarint(len(body)) + body]))
    bench.check()


# -- the DHT (Vic serves it) --------------------------------------------------------------------


@FUZZ
@given(messages=st.lists(st.one_of(dht_message(), st.binary(max_size=200)), min_size=1,
                         max_size=3))
def test_dht_requests(bench: Bench, messages: list[DhtMessage | bytes]) -> None:
    ids = bench.ids
    frames = []
    for message in messages:
        if not isinstance(message, bytes):
            message.key = ids.get(message.key, message.key)
            for p in message.closerPeers:
                p.id = ids.get(p.id, p.id)
            message = message.SerializeToString()
        frames.append(encode_uvarint(len(message)) + message)
    bench.run(bench.exchange("/ipfs/kad/1.0.0", frames))
    bench.check()


# -- protocol names -----------------------------------------------------------------------------


@FUZZ
@given(name=st.one_of(st.binary(max_size=300), st.sampled_from([
    b"\xff\xfe/kith/dm/1.0.0\n", b"ls\n", b"\n", b"/kith/dm/1.0.0", b"/" * 1000 + b"\n"])))
@example(name=b"\xff\xfe\n")
def test_protocol_names(bench: Bench, name: bytes) -> None:
    """A stream whose protocol name is anything at all (0.8.1 let a name that is not UTF-8
    stop the node)."""
    stream_id = next(bench._stream_ids)

    async def send(host: IHost) -> None:
        payload = encode_frame(b"/multistream/1.0.0\n") + encode_frame(name)
        await muxed_connection(host, bench.vic.peer_id)._write_frame(
            YAMUX_HEADER.pack(0, YAMUX_DATA, YAMUX_SYN, stream_id, len(payload)) + payload)

    bench.run(bench.mal.call(send))
    bench.check()



# -- what Vic asks of others: a relay's reservation, a DHT peer's answer ------------------------


@FUZZ
@given(answer=st.one_of(hop_message(), st.binary(max_size=200)))
@example(answer=HopMessage(type=HopMessage.STATUS, status=1))  # type: ignore[arg-type]  # a status code 0.8.1 lacks
def test_relay_reservation_answers(bench: Bench, answer: HopMessage | bytes) -> None:
    """Mal, Vic's relay, answers her RESERVE; what a slot gives (circuit addresses) must not
    break what Vic advertises: her addresses, her invite, identify, her DHT record."""
    bench.answers.reservation = answer if isinstance(answer, bytes) else _resolve_ids(bench,
                                                                                       answer)

    async def reserve(node: KithNode) -> None:
        relay = node.relay
        relay_id, addr = relay._relays[0]
        try:
            _, circuits, _ = await relay._reserve(relay_id, addr)
        except (ConnectionError, trio.TooSlowError, BaseLibp2pError, DecodeError):
            return  # refused or malformed: no slot
        held = relay._reserved.get(str(relay_id))
        relay._reserved[str(relay_id)] = circuits
        try:
            node.addrs()
            node.invite()
            node.host.get_addrs()
            await node.status()
        finally:
            if held is None:
                relay._reserved.pop(str(relay_id), None)
            else:
                relay._reserved[str(relay_id)] = held

    try:
        bench.run(on_node(bench.vic, reserve))
    finally:
        assert bench.mal.host is not None
        bench.answers.reservation = genuine_reservation(
            bench.mal.host.get_addrs()[0].decapsulate_code(P_P2P).to_bytes())
    bench.check()


@FUZZ
@given(answer=st.one_of(dht_message(loopback_only=True), st.binary(max_size=200)))
def test_dht_answers(bench: Bench, answer: DhtMessage | bytes) -> None:
    """Mal, Vic's bootstrap peer, answers her lookup of a contact; Vic keeps only the
    contact's own signed addresses, within bounds."""
    ids = bench.ids
    if not isinstance(answer, bytes):
        answer.key = ids.get(answer.key, answer.key)
        for p in answer.closerPeers:
            p.id = ids.get(p.id, p.id)
        answer = bytes(answer.SerializeToString())
    bench.answers.dht = answer

    async def look_up(node: KithNode) -> list[str]:
        return await node.dht.find_addrs(Identity(b"\x07" * 32).peer_id)

    try:
        found = bench.run(on_node(bench.vic, look_up))
    finally:
        bench.answers.dht = bytes(DhtMessage(type=DhtMessage.FIND_NODE).SerializeToString())
    assert len(found) <= MAX_ADDRS and all(well_formed_addr(a) for a in found)
    bench.check()
