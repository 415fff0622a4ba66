"""Private network namespaces for tests: built with ``ip netns`` and veth pairs, removed after.

Only documentation ranges are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), so nothing a
test sends can leave the namespaces it built. Needs root and iproute2 (CI runs as root); without
them the tests using this fail with that reason rather than skip silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def ip(*args: str) -> None:
    """Run ``ip ARGS``; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def require_netns() -> None:
    """Skip with the reason when namespaces cannot be built here; in CI (``CI=true``) fail."""
    reason = None
    if shutil.which("ip") is None:
        reason = "needs the `ip` command (iproute2) to build network namespaces"
    elif os.geteuid() != 0:
        reason = "needs root to build network namespaces (CI runs as root)"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        raise AssertionError(reason)
    pytest.skip(reason)


class Netns:
    """A set of namespaces and the links between them; ``exec(ns)`` prefixes a command."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.names: dict[str, str] = {}
        self._links = 0

    def add(self, short: str) -> str:
        """Create namespace ``short`` (loopback up) and return its real name."""
        name = f"kith-{short}-{self.tag}"
        ip("netns", "add", name)
        self.names[short] = name
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def link(self, a: str, addr_a: str, b: str, addr_b: str) -> tuple[str, str]:
        """A veth pair between namespaces ``a`` and ``b`` with ``addr/prefix`` on each end."""
        self._links += 1
        dev_a, dev_b = f"kv{self.tag}{self._links}a", f"kv{self.tag}{self._links}b"
        ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        for short, dev, addr in ((a, dev_a, addr_a), (b, dev_b, addr_b)):
            ns = self.names[short]
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "multicast", "on", "up")
        return dev_a, dev_b

    def run(self, short: str, *cmd: str) -> None:
        """Run ``ip`` inside namespace ``short``, e.g. ``run("b", "addr", "del", ...)``."""
        ip("-n", self.names[short], *cmd)

    def exec(self, short: str) -> list[str]:
        """The prefix that runs a command inside namespace ``short``."""
        return ["ip", "netns", "exec", self.names[short]]

    def remove(self) -> None:
        for name in self.names.values():  # deleting a namespace deletes its veth ends too
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self.names.clear()


@contextmanager
def namespaces(*shorts: str) -> Iterator[Netns]:
    """Namespaces named by ``shorts``, torn down when the block ends, however it ends."""
    require_netns()
    net = Netns()
    try:
        for short in shorts:
            net.add(short)
        yield net
    finally:
        net.remove()
