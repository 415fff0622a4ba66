"""The floor under a room post's CPU: a receiver that does only what each post needs.

    .venv/bin/python -m tests.benchmarks.room_floor [--runs 5] [--posts 400] [--rate 40]

``tests.benchmarks.rooms`` measures what a ``kith node`` spends per received post. This
measures what a receive path with none of py-libp2p's layers would spend, on the same wire and
with Kith's own code for the post, so that a goal for the first can be weighed against it.

Part 1, a lean receiver on 127.0.0.1: a child process takes TCP connections, each carrying
Noise transport messages (ChaCha20-Poly1305, 2-byte length) that carry Yamux DATA frames that
carry length-prefixed gossipsub RPCs that carry Kith post envelopes, exactly as a member reads
them once the connection is set up. Per copy it reads the socket, decrypts, cuts frames and
RPCs and drops a copy already seen; per new post it forwards the RPC (one frame encrypted per
peer), opens and verifies the post (``decode_post``: secretbox and Ed25519), looks it up and
stores it (``RoomStore``, a real profile, one commit) and writes one JSON event line. This
process posts ``--posts`` posts at ``--rate``/s. "1 copy": each post read once, nothing
forwarded, as a member reads a post its author sent it (a 2-member room; since the delivery
hint, docs/protocol.md 8.8, a receiver of ``rooms``' 4-member room too). "3 copies": the
author's, then one from each other member 2 ms apart, two forwarded, as that receiver read
each post before the hint. "Handed to the main
thread" adds what ``kith node`` does with an event: the network (trio) thread queues it, an
asyncio loop in the main thread is woken once per batch and writes the JSON line
(``KithClient._publish``). "Sockets read every 50 ms" (or 100) has the receiver read only at
those instants, each read taking whatever arrived since: the posts wait for up to that long,
and one wake-up handles several. CPU is the receiver's utime + stime (all threads) from its
first post to its last, divided by the posts. What it leaves out and a node cannot: the connection's
setup, control messages (IHAVE, GRAFT), quotas, room summaries, the view's edits and reactions.

Part 2, the same work done alone or in a loop, in this process: ``decode_post`` plus the
store's look-up and insert with its commit, timed on this thread's CPU clock, once per post
after a 25 ms sleep (40 posts/s, one at a time, as a live room delivers them), in bursts of
four every 100 ms, and back to back. On the virtual machines these figures come from, the
work spread out at 40/s costs several times what it costs back to back; this prints how much
on the machine it runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from libp2p.pubsub.pb import rpc_pb2

from app.core import room as rc
from app.core.identity import Identity, peer_id_bytes
from app.node.framing import encode_frame
from app.store.db import open_database
from app.store.rooms import RoomStore
from tests.benchmarks.rooms import load_average, print_table, spread

SESSION_KEY = b"k" * 32  # both ends' Noise key: the handshake is not what is measured
SECRETS = rc.RoomSecrets(b"r" * 16, b"s" * 32)
TOPIC = "kith/room/" + SECRETS.id_hex
AUTHOR = Identity(b"\x0a" * 32)
YAMUX_HEADER = struct.Struct(">BBHII")  # version, type, flags, stream id, length
COPY_GAP = 0.002  # seconds between the copies of one post from different members
SHAPES = {"1 copy": 1, "3 copies": 3}  # copies read per post


class NoiseCipher:
    """One direction of a Noise transport: ChaCha20-Poly1305, the nonce a counter."""

    def __init__(self) -> None:
        self._aead = ChaCha20Poly1305(SESSION_KEY)
        self._nonce = 0

    def _next(self) -> bytes:
        nonce = b"\0\0\0\0" + self._nonce.to_bytes(8, "little")
        self._nonce += 1
        return nonce

    def seal(self, plain: bytes) -> bytes:
        sealed = self._aead.encrypt(self._next(), plain, None)
        return len(sealed).to_bytes(2, "big") + sealed

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(self._next(), sealed, None)


def read_uvarint(data: bytes) -> tuple[int, int] | None:
    """(value, bytes used), or None while ``data`` holds only part of it."""
    value = shift = 0
    for used, byte in enumerate(data, 1):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, used
    return None


def data_frame(rpc: bytes) -> bytes:
    """A Yamux DATA frame on stream 1 carrying one length-prefixed RPC."""
    body = encode_frame(rpc)
    return YAMUX_HEADER.pack(0, 0, 0, 1, len(body)) + body


def post_rpc(number: int) -> bytes:
    """Post ``number`` of the author, as gossipsub publishes it."""
    envelope = rc.encode_text_post(AUTHOR, SECRETS, f"post {number} " + "x" * 40,
                                   lamport=number, author_seq=number,
                                   sent_at_ms=int(time.time() * 1000))
    rpc = rpc_pb2.RPC()
    message = rpc.publish.add()
    message.from_id = peer_id_bytes(AUTHOR.peer_id)
    message.data = envelope
    message.seqno = number.to_bytes(8, "big")
    message.topicIDs.append(TOPIC)
    message.signature = b"\0" * 64  # not checked for a post by its own author (8.8)
    return rpc.SerializeToString()


# -- the receiver (a child process) -----------------------------------------------------------


class Events:
    """Where event lines go: written at once, or handed to an asyncio loop in the main thread
    as ``KithClient._publish`` does (one wake-up per batch)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queued: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        if self._loop is None:
            self._write([event])
            return
        with self._lock:
            self._queued.append(event)
            wake = len(self._queued) == 1
        if wake:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            events, self._queued = self._queued, []
        self._write(events)

    @staticmethod
    def _write(events: list[dict[str, Any]]) -> None:
        for event in events:
            sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()


class LeanReceiver:
    def __init__(self, profile: Path, posts: int, events: Events, tick: float = 0.0) -> None:
        self._tick = tick
        self._rooms = RoomStore(open_database(profile))
        self._rooms.add_room(SECRETS, "Room", "")
        self._posts = posts
        self._events = events
        self._seen: set[bytes] = set()
        self._sinks: list[tuple[socket.socket, NoiseCipher]] = []
        self._all_in = trio.Event()
        self.started_cpu: float | None = None
        self.received = 0

    def handle(self, message: rpc_pb2.Message) -> None:
        key = message.from_id + message.seqno
        if key in self._seen:
            return
        self._seen.add(key)
        if self.started_cpu is None:
            self.started_cpu = process_cpu()
        if self._sinks:
            forward = rpc_pb2.RPC()
            forward.publish.append(message)
            frame = data_frame(forward.SerializeToString())
            for sock, cipher in self._sinks:
                sock.send(cipher.seal(frame))
        post = rc.decode_post(SECRETS, message.data)
        if not self._rooms.held_versions(post):
            self._rooms.store_post(post, message.data, "received", read=False)
        self._events.emit({"event": "room_message", "room": SECRETS.id_hex,
                           "id": post.post_id.hex(), "author": post.author, "text": post.text,
                           "lamport": post.lamport, "sent_at_ms": post.sent_at_ms,
                           "state": "received"})
        self.received += 1
        if self.received == self._posts:
            self._all_in.set()

    async def read(self, sock: socket.socket) -> None:
        cipher, pending, stream = NoiseCipher(), b"", b""
        while self.received < self._posts:
            if self._tick:
                now = trio.current_time()
                await trio.sleep_until((now // self._tick + 1) * self._tick)
            await trio.lowlevel.wait_readable(sock.fileno())
            data = sock.recv(262144)
            if not data:
                return
            pending += data
            while len(pending) >= 2 and len(pending) >= 2 + (size := int.from_bytes(
                    pending[:2], "big")):
                plain, pending = cipher.open(pending[2:2 + size]), pending[2 + size:]
                while len(plain) >= YAMUX_HEADER.size:
                    length = YAMUX_HEADER.unpack_from(plain)[4]
                    stream += plain[YAMUX_HEADER.size:YAMUX_HEADER.size + length]
                    plain = plain[YAMUX_HEADER.size + length:]
                while (prefix := read_uvarint(stream)) is not None:
                    size_rpc, used = prefix
                    if len(stream) < used + size_rpc:
                        break
                    rpc = rpc_pb2.RPC.FromString(stream[used:used + size_rpc])
                    stream = stream[used + size_rpc:]
                    for message in rpc.publish:
                        self.handle(message)

    async def run(self, listener: socket.socket, copies: int) -> None:
        peers = [await self._accept(listener) for _ in range(copies)]
        self._sinks = [(await self._accept(listener), NoiseCipher()) for _ in range(copies - 1)]
        async with trio.open_nursery() as nursery:
            for sock in peers:
                nursery.start_soon(self.read, sock)
            await self._all_in.wait()
            nursery.cancel_scope.cancel()

    @staticmethod
    async def _accept(listener: socket.socket) -> socket.socket:
        await trio.lowlevel.wait_readable(listener.fileno())
        sock, _ = listener.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receive(profile: Path, posts: int, copies: int, hand_off: bool, tick: float) -> None:
    """The child: listen, print the port, take ``posts`` posts, report CPU per post on
    stderr as JSON."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    loop = asyncio.new_event_loop() if hand_off else None
    receivers: list[LeanReceiver] = []

    def network() -> None:
        # The profile's connection belongs to the thread that opened it.
        receivers.append(LeanReceiver(profile, posts, Events(loop), tick))
        trio.run(receivers[0].run, listener, copies)

    if loop is None:
        network()
    else:
        done = loop.create_future()
        failure: list[BaseException] = []

        def in_thread() -> None:
            try:
                network()
            except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
                failure.append(exc)
            finally:
                loop.call_soon_threadsafe(done.set_result, None)

        worker = threading.Thread(target=in_thread, name="network")
        worker.start()
        loop.run_until_complete(done)
        worker.join()
        if failure:
            raise failure[0]
    receiver = receivers[0]
    assert receiver.started_cpu is not None
    used = process_cpu() - receiver.started_cpu
    print(json.dumps({"ms_per_post": 1000 * used / receiver.received}), file=sys.stderr)


# -- this process: the author and the other members ------------------------------------------


def run_lean(posts: int, rate: float, copies: int, hand_off: bool, tick: float = 0.0) -> float:
    """One run of the lean receiver; its CPU ms per post."""
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.room_floor", "--receive",
             str(Path(tmp) / "kith.db"), "--posts", str(posts), "--copies", str(copies)]
            + (["--hand-off"] if hand_off else []) + ["--tick", str(tick)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2])
        try:
            assert child.stdout is not None
            port = int(child.stdout.readline())
            members = [socket.create_connection(("127.0.0.1", port)) for _ in range(copies)]
            sinks = [socket.create_connection(("127.0.0.1", port)) for _ in range(copies - 1)]
            ciphers = [NoiseCipher() for _ in members]
            frames = [data_frame(post_rpc(n)) for n in range(1, posts + 1)]
            drain = threading.Thread(target=_discard, args=(child.stdout,), daemon=True)
            drain.start()
            started = time.monotonic()
            for i, frame in enumerate(frames):
                _wait_until(started + i / rate)
                for k, (sock, cipher) in enumerate(zip(members, ciphers, strict=True)):
                    if k:
                        _wait_until(started + i / rate + k * COPY_GAP)
                    sock.sendall(cipher.seal(frame))
                for sink in sinks:
                    _read_all(sink)
            _, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
    if child.returncode != 0:
        raise RuntimeError(f"the lean receiver failed: {err}")
    return float(json.loads(err.strip().splitlines()[-1])["ms_per_post"])


def _wait_until(due: float) -> None:
    if (wait := due - time.monotonic()) > 0:
        time.sleep(wait)


def _read_all(sock: socket.socket) -> None:
    try:
        while sock.recv(1 << 20, socket.MSG_DONTWAIT):
            pass
    except BlockingIOError:
        pass


def _discard(stream: Any) -> None:
    for _ in stream:
        pass


# -- part 2: alone or in a loop -------------------------------------------------------------


def run_alone(posts: int, burst: int, gap: float) -> float:
    """µs of this thread's CPU per post for opening and storing ``posts`` posts, ``burst`` at
    a time with ``gap`` seconds of sleep between bursts."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_database(Path(tmp) / "kith.db")
        rooms = RoomStore(conn)
        rooms.add_room(SECRETS, "Room", "")
        warm_up = 40
        envelopes = [rc.encode_text_post(AUTHOR, SECRETS, f"post {n} " + "x" * 40, lamport=n,
                                         author_seq=n, sent_at_ms=1_767_225_600_000 + n)
                     for n in range(1, warm_up + posts + 1)]
        used = 0.0
        for first in range(0, len(envelopes), burst):
            if gap:
                time.sleep(gap)
            started = time.thread_time()
            for envelope in envelopes[first:first + burst]:
                post = rc.decode_post(SECRETS, envelope)
                if not rooms.held_versions(post):
                    rooms.store_post(post, envelope, "received", read=False)
            if first >= warm_up:
                used += time.thread_time() - started
        conn.close()
    return 1e6 * used / posts


@dataclass(frozen=True)
class Variant:
    room: str          # a key of SHAPES
    hand_off: bool     # events written by the main thread, as kith node does
    tick: float = 0.0  # sockets read only at multiples of this many seconds (0: when ready)

    def label(self) -> tuple[str, str, str]:
        return (self.room, "the main thread" if self.hand_off else "the network thread",
                f"every {self.tick * 1000:.0f} ms" if self.tick else "as they come")


VARIANTS = [
    Variant("1 copy", False), Variant("1 copy", True),
    Variant("3 copies", False), Variant("3 copies", True),
    Variant("1 copy", True, 0.05), Variant("1 copy", True, 0.1),
]


def lean_part(runs: int, posts: int, rate: float) -> None:
    print(f"\nPart 1, a lean receiver: {posts} posts at {rate:.0f}/s, {runs} runs each, "
          f"alternating; load average {load_average()}")
    figures: dict[Variant, list[float]] = {v: [] for v in VARIANTS}
    for run in range(runs):
        for v in (VARIANTS if run % 2 == 0 else VARIANTS[::-1]):
            figures[v].append(run_lean(posts, rate, SHAPES[v.room], v.hand_off, v.tick))
    rows: list[tuple[str, ...]] = [("copies of a post", "events written by", "sockets read",
                                    "CPU ms per received post, median (min - max)")]
    rows += [(*v.label(), spread(figures[v], 3)) for v in VARIANTS]
    print_table(rows)
    print(f"load average {load_average()}")


def alone_part(runs: int, posts: int) -> None:
    print(f"\nPart 2, opening and storing a post, alone or in a loop: {posts} posts, {runs} "
          f"runs each, alternating; load average {load_average()}")
    ways: list[tuple[str, Callable[[], float]]] = [
        ("back to back", lambda: run_alone(posts, 1, 0.0)),
        ("in fours, every 100 ms", lambda: run_alone(posts, 4, 0.1)),
        ("one every 25 ms", lambda: run_alone(posts, 1, 0.025)),
    ]
    figures: dict[str, list[float]] = {name: [] for name, _ in ways}
    for run in range(runs):
        for name, measure in (ways if run % 2 == 0 else ways[::-1]):
            figures[name].append(measure())
    rows: list[tuple[str, ...]] = [("posts arrive", "µs of CPU per post, median (min - max)")]
    rows += [(name, spread(figures[name], 0)) for name, _ in ways]
    print_table(rows)
    print(f"load average {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--posts", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--skip-lean", action="store_true")
    parser.add_argument("--skip-alone", action="store_true")
    parser.add_argument("--receive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--hand-off", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive is not None:
        receive(args.receive, args.posts, args.copies, args.hand_off, args.tick)
        return
    if not args.skip_lean:
        lean_part(args.runs, args.posts, args.rate)
    if not args.skip_alone:
        alone_part(args.runs, args.posts)


if __name__ == "__main__":
    main()
