"""What a bare host (``RawHost``) can put on the wire that a Kith would never send: streams
opened and never read, raw Yamux frames, direct messages signed by anyone.

Each function runs in the attacker's trio thread (``attacker.call(lambda host: ...)``).
"""

from __future__ import annotations

import struct
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from app.core import dm
from app.core.identity import Identity
from app.core.invite import parse_invite
from app.node.framing import encode_frame, read_frame


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
