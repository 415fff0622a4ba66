"""Keep a stopped peer's old port taken, so that its restart really lands on a new one."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def ports_held(addrs: Sequence[str]) -> Iterator[None]:
    """Bind and listen on the 127.0.0.1 TCP ports named in ``addrs`` (full multiaddrs)."""
    held = []
    try:
        for addr in addrs:
            parts = addr.split("/")
            if parts[1:3] != ["ip4", "127.0.0.1"] or parts[3] != "tcp":
                continue
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", int(parts[4])))
            sock.listen()
            held.append(sock)
        yield
    finally:
        for sock in held:
            sock.close()
