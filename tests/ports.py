"""Ports on 127.0.0.1 for tests: one chosen before its listener starts, and old ones held.

Kith listens (and dials) with SO_REUSEPORT, as py-libp2p's TCP transport does for hole
punching. A port chosen by binding port 0 comes from the kernel's ephemeral range, from which
it also hands ports to other sockets bound to port 0 and to outgoing connections: until its
listener starts, or beside it, another socket could be given it too, and a dial to that port
then reach the wrong peer or the dialler itself (seen once in CI as a relay that could not be
reached: "handshake failed").
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def port_to_listen_on() -> int:
    """A free TCP port on 127.0.0.1 below the kernel's ephemeral range, which the kernel
    never hands to another socket by itself."""
    low = int(EPHEMERAL_RANGE.read_text().split()[0]) if EPHEMERAL_RANGE.exists() else 32768
    start = random.randrange(10_000, low - 2_000)
    for port in range(start, low):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port between {start} and {low}")


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
