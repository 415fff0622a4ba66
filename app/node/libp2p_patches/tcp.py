"""Patches to py-libp2p 0.8.1's TCP stream: reading ahead, and links that died unnoticed.

py-libp2p reads the socket in exactly the pieces each layer asks for: two ``recv`` calls and
two trio checkpoints per 64 KiB Noise message (its 2-byte length, then its body), plus the
Yamux header reads. On a 1 GiB transfer between two processes sharing two cores, where every
CPU cycle per byte is on the critical path, reading ahead removes most of them.

A connection whose path goes dead without a FIN or RST (a laptop's Wi-Fi gone, a NAT that
forgot the mapping, a cable pulled between two routers) was never noticed: TCP sends nothing
on an idle connection, and data it cannot deliver is retried for about 15 minutes (Linux's
``tcp_retries2``). The contact stayed online, and every direct message went down the dead
connection, failed after its timeout and was tried again down the same one, instead of the
outbox or a mailbox (``detect_dead_links``).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio
from libp2p.io.trio import TrioTCPStream

log = logging.getLogger(__name__)

READ_AHEAD = 256 * 1024

# A dead link is noticed about DEAD_LINK_AFTER seconds after the peer last acknowledged
# anything: by TCP keepalive probes on a connection with nothing to send (the first after
# KEEPALIVE_IDLE seconds of silence, then one every KEEPALIVE_INTERVAL), and by
# TCP_USER_TIMEOUT when what we sent stays unacknowledged that long.
KEEPALIVE_IDLE = 15
KEEPALIVE_INTERVAL = 5
DEAD_LINK_AFTER = 30


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


def detect_dead_links() -> None:
    """py-libp2p 0.8.1: every TCP connection of this process (dialled or accepted) is closed by
    the kernel once its peer has acknowledged nothing for about ``DEAD_LINK_AFTER`` seconds.

    Keepalive probes are answered by the peer's kernel, so a live peer that sends nothing,
    however busy, is never cut off, nor is one on a slow link (its acknowledgements keep
    coming). Nothing changes on the wire for the peer but a probe every ``KEEPALIVE_IDLE``
    seconds of silence, which every TCP stack answers. Where the system lacks an option
    (``TCP_USER_TIMEOUT`` is Linux's), the others still apply.
    """
    plain_init = TrioTCPStream.__init__
    if getattr(plain_init, "_kith", False):
        return

    def init(self: TrioTCPStream, stream: trio.SocketStream) -> None:
        plain_init(self, stream)
        keep_alive(stream.socket)

    init._kith = True  # type: ignore[attr-defined]
    init.__wrapped__ = plain_init  # type: ignore[attr-defined]  # upstream's
    TrioTCPStream.__init__ = init  # type: ignore[method-assign]


def keep_alive(sock: trio.socket.SocketType) -> None:
    """Turn on keepalive probes and the unacknowledged-data timeout on a TCP socket (see
    ``detect_dead_links``); an option the system refuses is left as it was."""
    options = [
        (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        (socket.IPPROTO_TCP, "TCP_KEEPIDLE", KEEPALIVE_IDLE),  # Linux, Windows
        (socket.IPPROTO_TCP, "TCP_KEEPALIVE", KEEPALIVE_IDLE),  # macOS's name for it
        (socket.IPPROTO_TCP, "TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        (socket.IPPROTO_TCP, "TCP_KEEPCNT",
         max(1, (DEAD_LINK_AFTER - KEEPALIVE_IDLE) // KEEPALIVE_INTERVAL)),
        (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", DEAD_LINK_AFTER * 1000),  # Linux, in ms
    ]
    for level, name, value in options:
        option = getattr(socket, name, None)
        if option is None:
            continue
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:
            log.debug("TCP option %s not set: %s", name, exc)
