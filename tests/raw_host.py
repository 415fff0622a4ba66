"""A bare py-libp2p host (no Kith services, any identity) in its own trio thread: an attacker.

Tests written with asyncio (``tests.peers``) drive it with ``call``: the coroutine runs in the
attacker's trio thread, as ``KithClient.call`` does for a Kith node.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from app.core import dm
from app.core.identity import Identity
from app.core.invite import parse_invite
from app.node.framing import encode_frame, read_frame
from app.node.host import build_host
from app.node.libp2p_patches.swarm import stop_auto_dialing

T = TypeVar("T")
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


class RawHost:
    """``async with RawHost() as attacker``: a running host, stopped on exit."""

    def __init__(self, identity: Identity | None = None) -> None:
        self.identity = identity or Identity.generate()
        self.host: IHost | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    async def __aenter__(self) -> RawHost:
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 30)
        if self._error is not None:
            raise self._error
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def _main(self) -> None:
        try:
            host = build_host(self.identity, [LOOPBACK])
            host.get_network().set_resource_manager(None)  # type: ignore[attr-defined]
            self._stop = trio.Event()
            async with host.run([LOOPBACK]):
                await stop_auto_dialing(host)
                self.host = host
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def call(self, fn: Callable[[IHost], Awaitable[T]]) -> T:
        """Run ``fn(host)`` in the attacker's trio thread and return its result."""
        token = self._token
        assert token is not None and self.host is not None
        host = self.host

        def run() -> T:
            return trio.from_thread.run(fn, host, trio_token=token)

        return await asyncio.to_thread(run)

    async def connect(self, invite: str) -> str:
        """Connect to the peer of a ``kith:`` invite; its peer id."""
        parsed = parse_invite(invite)

        async def dial(host: IHost) -> None:
            addrs = [multiaddr.Multiaddr(a) for a in parsed.addrs]
            await host.connect(PeerInfo(ID.from_base58(parsed.peer_id), addrs))

        await self.call(dial)
        return parsed.peer_id


def peer(peer_id: str) -> ID:
    return ID.from_base58(peer_id)


async def open_streams(host: IHost, peer_id: str, protocol: str, count: int,
                       parallel: int = 64) -> tuple[list[Any], int]:
    """Try to open ``count`` streams (``parallel`` at a time) and keep them open:
    (the streams that opened, how many failed)."""
    opened: list[Any] = []
    failed = 0
    target = peer(peer_id)
    limiter = trio.CapacityLimiter(parallel)

    async def one() -> None:
        nonlocal failed
        async with limiter:
            try:
                with trio.fail_after(10):
                    opened.append(await host.new_stream(target, [protocol]))  # type: ignore[list-item]
            except Exception:  # noqa: BLE001 - refused, reset or cut off: counted
                failed += 1

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return opened, failed


YAMUX_HEADER = struct.Struct("!BBHII")  # version, type, flags, stream id, length
YAMUX_DATA, YAMUX_SYN = 0, 1


def multistream_hello(protocol: str) -> bytes:
    """What a dialer writes to open ``protocol`` on a new stream (multistream-select)."""
    return b"".join(encode_frame(f"{line}\n".encode())
                    for line in ("/multistream/1.0.0", protocol))


def muxed_connection(host: IHost, peer_id: str) -> Any:
    """The Yamux connection ``host`` holds to ``peer_id``."""
    conns = host.get_network().get_connections(peer(peer_id))
    assert conns, f"not connected to {peer_id}"
    return conns[0].muxed_conn


async def raw_streams(host: IHost, peer_id: str, count: int, payload: bytes = b"",
                      first_id: int = 1_000_001, batch: int = 1000, pause: float = 0.0
                      ) -> None:
    """Open ``count`` streams with raw Yamux SYN frames, each carrying ``payload``, and never
    read them: what a peer that ignores py-libp2p's own stream bookkeeping can do. They go
    out ``batch`` at a time, ``pause`` seconds apart."""
    muxed = muxed_connection(host, peer_id)
    step = 2  # the dialer's stream ids are odd
    for start in range(0, count, batch):
        frames = b"".join(
            YAMUX_HEADER.pack(0, YAMUX_DATA, YAMUX_SYN, first_id + i * step, len(payload))
            + payload for i in range(start, min(count, start + batch)))
        await muxed._write_frame(frames)
        await trio.sleep(pause)


async def send_messages(host: IHost, identity: Identity, peer_id: str,
                        bodies: list[tuple[int, str]]) -> list[dm.Ack | dm.Reject]:
    """Send each (kind, body) as a direct message on one stream; the replies, in order."""
    stream = await host.new_stream(peer(peer_id), [TProtocol(dm.PROTOCOL_ID)])
    replies: list[dm.Ack | dm.Reject] = []
    try:
        for kind, body in bodies:
            payload = dm.encode_message(identity, peer_id, body, message_id=dm.new_message_id(),
                                        sent_at_ms=1_700_000_000_000, kind=kind)
            await stream.write(encode_frame(payload))
            with trio.fail_after(10):
                replies.append(dm.decode_reply(await read_frame(stream, dm.MAX_FRAME)))
        await stream.close()
    except BaseException:
        await stream.reset()
        raise
    return replies


def tcp_port(invite: str) -> int:
    """The 127.0.0.1 TCP port of the peer of a ``kith:`` invite."""
    for addr in parse_invite(invite).addrs:
        parts = addr.split("/")
        if parts[1:3] == ["ip4", "127.0.0.1"] and parts[3] == "tcp":
            return int(parts[4])
    raise AssertionError(f"no 127.0.0.1 address in {invite}")
