"""Unsigned-varint length-prefixed frames on libp2p streams, with limits, and safe handlers.

Every protocol handler goes through ``guarded``: an exception that escapes a py-libp2p stream
handler wedges the whole connection (and in 0.8.1 can stop the whole swarm), so each one is
caught, logged with the peer, and the stream reset. Only a damaged database goes on up
(``app.node.isolation.is_local_fault``): the node stops.
"""

from __future__ import annotations

import ctypes
import logging
import math
import mmap
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from app.node.isolation import is_local_fault
from app.node.libp2p_patches.yamux_reader import read_into

log = logging.getLogger(__name__)

MAX_VARINT_BYTES = 5  # enough for any frame limit below 2**35


class FrameError(Exception):
    """A peer sent a frame that breaks the protocol (malformed or over a limit)."""


class Stream(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def reset(self) -> None: ...
    async def close(self) -> None: ...


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    return encode_varint(len(payload)) + payload


async def _read_exactly(stream: Stream, n: int, idle: float = math.inf) -> bytes:
    """Read ``n`` bytes; py-libp2p raises ``StreamEOF`` at the end instead of returning b''.

    ``idle`` bounds each wait for more data, not the whole read: a large frame on a slow link
    keeps going as long as bytes keep arriving.
    """
    buf = bytearray()
    while len(buf) < n:
        if idle == math.inf:
            chunk = await stream.read(n - len(buf))
        else:
            with trio.fail_after(idle):
                chunk = await stream.read(n - len(buf))
        if not chunk:
            raise FrameError("stream ended inside a frame")
        buf += chunk
    return bytes(buf)


async def read_varint(stream: Stream, idle: float = math.inf) -> int:
    value = 0
    for i in range(MAX_VARINT_BYTES):
        byte = (await _read_exactly(stream, 1, idle))[0]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and byte == 0:
                raise FrameError("non-minimal varint")
            return value
    raise FrameError("varint too long")


async def read_frame(stream: Stream, max_size: int, idle: float = math.inf) -> bytes:
    """Read one frame; a declared length over ``max_size`` is refused before reading it.

    ``idle``: at most this long without any data (``trio.TooSlowError``), however long the
    whole frame takes.
    """
    length = await read_varint(stream, idle)
    if length > max_size:
        raise FrameError(f"frame of {length} bytes exceeds the limit of {max_size}")
    return await _read_exactly(stream, length, idle)


def page_aligned(length: int, at: int = 0) -> memoryview:
    """A writable ``length``-byte buffer whose byte ``at`` starts a memory page.

    Direct I/O (``O_DIRECT``) needs page-aligned memory; a ``bytearray`` has only malloc's
    16-byte alignment, so this one is a page longer and viewed from the right offset.
    """
    buf = bytearray(length + mmap.PAGESIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    start = -(address + at) % mmap.PAGESIZE
    return memoryview(buf)[start:start + length]


async def read_frame_into(stream: Stream, max_size: int, idle: float = math.inf,
                          align_at: int | None = None) -> memoryview:
    """``read_frame`` for bulk data: one buffer of the declared size, filled in place.

    Assembling a 4 MiB file chunk the usual way allocated and copied it three times with the
    GIL held, which showed as stalls in the window's thread. With ``align_at``, the frame's
    byte at that offset starts a memory page (``page_aligned``): a file chunk there can be
    written to disk with direct I/O.
    """
    length = await read_varint(stream, idle)
    if length > max_size:
        raise FrameError(f"frame of {length} bytes exceeds the limit of {max_size}")
    view = memoryview(bytearray(length)) if align_at is None else page_aligned(length, align_at)
    got = 0
    while got < length:
        with trio.fail_after(idle):
            n = await read_into(stream, view[got:])
        if not n:
            raise FrameError("stream ended inside a frame")
        got += n
    return view


async def write_frame(stream: Stream, payload: bytes) -> None:
    await stream.write(encode_frame(payload))


Handler = Callable[[Stream], Awaitable[None]]


def guarded(protocol: str, handler: Handler, timeout: float | None = 60.0) -> Handler:
    """Wrap a stream handler so nothing escapes and nothing runs forever."""

    async def run(stream: Stream) -> None:
        try:
            with trio.fail_after(timeout if timeout is not None else math.inf):
                await handler(stream)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            peer = getattr(getattr(stream, "muxed_conn", None), "peer_id", "?")
            log.warning("%s: dropped stream from %s: %s", protocol, peer, exc, exc_info=True)
            try:
                await stream.reset()
            except Exception:
                log.debug("%s: reset failed", protocol, exc_info=True)

    return run
