"""Noticing that the machine's network changed, so the node can reconnect at once.

After a laptop wakes, joins another Wi-Fi or gets its cable back, every contact's redial backoff
may have grown to a minute; waiting it out is what makes a chat app feel broken. ``NetWatch``
calls ``on_change`` when an interface address appears or disappears, or a link goes up or down.

* **Linux**: an rtnetlink socket subscribed to ``RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
  RTMGRP_IPV6_IFADDR``, read from trio. The kernel tells us; nothing is polled. Link messages
  count only when a link's UP / RUNNING / LOWER_UP flags change (a dump at start gives the
  baseline), so statistics updates and other chatter do not trigger anything.
* **Elsewhere** (or if the socket cannot be opened): the set of interface addresses
  (``psutil.net_if_addrs``, a few microseconds) is compared every ``POLL_INTERVAL`` seconds.

Changes come in bursts (link up, then an IPv4 route, then an IPv6 link-local address a second
later), so ``on_change`` runs ``SETTLE`` seconds after the first change of a burst and at most
once per ``MIN_INTERVAL``: a flapping link cannot turn into a dial storm.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)

SETTLE = 0.3
MIN_INTERVAL = 3.0
POLL_INTERVAL = 10.0

# linux/rtnetlink.h, linux/netlink.h, linux/if.h
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR = 20, 21
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFF_UP, IFF_RUNNING, IFF_LOWER_UP = 0x1, 0x40, 0x10000
LINK_FLAGS = IFF_UP | IFF_RUNNING | IFF_LOWER_UP
NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change


def parse_netlink(data: bytes) -> list[tuple[int, bytes]]:
    """Split a netlink datagram into (message type, payload) pairs; malformed tails dropped."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            break
        out.append((kind, data[offset + NLMSG_HDR.size : offset + length]))
        offset += (length + 3) & ~3  # messages are 4-byte aligned
    return out


class LinkTable:
    """The UP/RUNNING/LOWER_UP flags of each link, to tell real changes from chatter."""

    def __init__(self) -> None:
        self._flags: dict[int, int] = {}

    def update(self, kind: int, payload: bytes) -> bool:
        """Apply one RTM_NEWLINK/RTM_DELLINK payload; True when a link's state changed."""
        if len(payload) < IFINFOMSG.size:
            return False
        _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
        before = self._flags.get(index)
        if kind == RTM_DELLINK:
            self._flags.pop(index, None)
            return before is not None and bool(before & IFF_RUNNING)
        now = flags & LINK_FLAGS
        self._flags[index] = now
        if before is None:  # a new link counts once it is running, not while it is down
            return bool(now & IFF_RUNNING)
        return before != now


def address_snapshot() -> frozenset[tuple[str, str]]:
    """(interface, address) for every address on the machine: the polling fallback's view."""
    import psutil  # a dependency of multiaddr, so always present with libp2p

    return frozenset(
        (name, a.address) for name, addrs in psutil.net_if_addrs().items() for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    )


class NetWatch:
    """Runs ``on_change`` (a plain function, called in trio) after the network changed."""

    def __init__(
        self,
        on_change: Callable[[], None],
        *,
        settle: float = SETTLE,
        min_interval: float = MIN_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._on_change = on_change
        self._settle = settle
        self._min_interval = min_interval
        self._poll_interval = poll_interval
        self._dirty = trio.Event()
        self.method = "none"  # "netlink" or "poll" once running
        self.changes = 0  # times on_change ran

    def _changed(self, why: str) -> None:
        log.debug("network change: %s", why)
        self._dirty.set()

    async def run(self) -> None:
        """Watch forever; never raises (it lives in the node nursery)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fire_loop)
            try:
                self.method = "netlink"
                await self._read_netlink(self._open_netlink())
            except Exception as exc:  # noqa: BLE001 - no rtnetlink here (not Linux, a sandbox)
                log.info("network changes: polling every %.0f s (%s)", self._poll_interval, exc)
            self.method = "poll"
            await self._poll()

    async def _fire_loop(self) -> None:
        last = -self._min_interval
        while True:
            await self._dirty.wait()
            await trio.sleep(max(self._settle, last + self._min_interval - trio.current_time()))
            self._dirty = trio.Event()  # changes from now on make another round
            last = trio.current_time()
            self.changes += 1
            try:
                self._on_change()
            except Exception:
                log.exception("reacting to a network change failed")

    @staticmethod
    def _open_netlink() -> trio.socket.SocketType:
        raw = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            raw.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            raw.setblocking(False)
        except OSError:
            raw.close()
            raise
        return trio.socket.from_stdlib_socket(raw)

    async def _read_netlink(self, sock: trio.socket.SocketType) -> None:
        links = LinkTable()
        with sock:
            # The dump's answers arrive first and only set the baseline; they change nothing.
            request = NLMSG_HDR.pack(
                NLMSG_HDR.size + IFINFOMSG.size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
            ) + IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            await sock.send(request)
            primed = False
            while True:
                try:
                    data = await sock.recv(65536)
                except OSError as exc:  # ENOBUFS: we missed some; treat it as a change
                    log.debug("netlink: %s", exc)
                    self._changed("netlink overrun")
                    continue
                for kind, payload in parse_netlink(data):
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        primed = True
                    elif kind in (RTM_NEWLINK, RTM_DELLINK):
                        if links.update(kind, payload) and primed:
                            self._changed("link state")
                    elif kind in (RTM_NEWADDR, RTM_DELADDR):
                        self._changed("address added" if kind == RTM_NEWADDR else "address gone")

    async def _poll(self) -> None:
        before: frozenset[tuple[str, str]] | None = None
        while True:
            now: frozenset[tuple[str, str]] | None
            try:
                now = address_snapshot()
            except Exception:  # never let a watcher stop the node; try again next time
                log.debug("reading interface addresses failed", exc_info=True)
                now = before
            if before is not None and now is not None and now != before:
                self._changed("addresses differ")
            before = now
            await trio.sleep(self._poll_interval)
