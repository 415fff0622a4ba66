"""Patch to py-libp2p 0.8.1's TCP stream: reading ahead.

py-libp2p reads the socket in exactly the pieces each layer asks for: two ``recv`` calls and
two trio checkpoints per 64 KiB Noise message (its 2-byte length, then its body), plus the
Yamux header reads. On a 1 GiB transfer between two processes sharing two cores, where every
CPU cycle per byte is on the critical path, reading ahead removes most of them.
"""

from __future__ import annotations

from typing import Any

from libp2p.io.trio import TrioTCPStream

READ_AHEAD = 256 * 1024


def read_tcp_ahead() -> None:
    """py-libp2p 0.8.1: ``TrioTCPStream.read`` (every TCP connection of this process) reads up
    to ``READ_AHEAD`` bytes from the socket at a time and serves small reads from them.

    What a caller gets is unchanged: up to ``n`` bytes (any amount when ``n`` is None), and
    ``b""`` at the end of the stream. The original read (with its lock and error mapping) does
    the socket reads.
    """
    unbuffered = TrioTCPStream.read
    if getattr(unbuffered, "_kith", False):
        return

    async def read(self: TrioTCPStream, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        state: Any = self.__dict__
        ahead: bytes = state.get("_kith_ahead", b"")
        at: int = state.get("_kith_at", 0)
        if at >= len(ahead):
            ahead = await unbuffered(self, max(n or 0, READ_AHEAD))
            if not ahead:
                return ahead  # end of stream
            at = 0
        end = len(ahead) if n is None else min(at + n, len(ahead))
        state["_kith_ahead"], state["_kith_at"] = ahead, end
        if at == 0 and end == len(ahead):
            return ahead
        return ahead[at:end]

    read._kith = True  # type: ignore[attr-defined]
    read.unpatched = unbuffered  # type: ignore[attr-defined]
    TrioTCPStream.read = read  # type: ignore[method-assign]


def has_read_ahead(stream: TrioTCPStream) -> bool:
    """Whether ``read_tcp_ahead`` holds bytes of ``stream`` not yet read."""
    state: Any = stream.__dict__
    return bool(state.get("_kith_at", 0) < len(state.get("_kith_ahead", b"")))
