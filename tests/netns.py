"""Private network namespaces for tests: built with ``ip netns`` and veth pairs, removed after.

Only documentation ranges are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), so nothing a
test sends can leave the namespaces it built. Needs root and iproute2, and nftables for NAT
routers (CI runs as root, and the setup script installs both); without them the tests using
this are skipped with that reason, and in CI they fail.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import pytest

_PROBE = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except socket.timeout:
    print("timed out")
except OSError as exc:
    print("unreachable" if exc.errno in (101, 113) else f"refused {exc}")
"""


def ip(*args: str) -> None:
    """Run ``ip ARGS``; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def require_netns(nat: bool = False) -> None:
    """Skip with the reason when namespaces (and, with ``nat``, NAT routers) cannot be built
    here; in CI (``CI=true``) fail."""
    reason = None
    if shutil.which("ip") is None:
        reason = "needs the `ip` command (iproute2) to build network namespaces"
    elif nat and shutil.which("nft") is None:
        reason = "needs the `nft` command (nftables) to build NAT routers"
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

    def home_router(self, short: str, outside: str, *, random_ports: bool = False) -> None:
        """Make namespace ``short`` a home router: it forwards, masquerades what leaves through
        device ``outside``, and drops every connection that starts from outside (no RST, as a
        home router's firewall does). It keeps a connection's source port when it can, as
        Linux and most home routers do; ``random_ports`` picks a new one for every connection
        (a "symmetric" NAT, as some carrier-grade NATs are). Needs ``nft`` (nftables)."""
        masquerade = "masquerade random" if random_ports else "masquerade"
        subprocess.run([*self.exec(short), "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        rules = f"""
table ip kith_nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; oifname "{outside}" {masquerade};
    }}
    chain input {{
        type filter hook input priority filter; iifname "{outside}" ct state new drop;
    }}
    chain forward {{
        type filter hook forward priority filter; iifname "{outside}" ct state new drop;
    }}
}}
"""
        done = subprocess.run([*self.exec(short), "nft", "-f", "-"], input=rules,
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise AssertionError(f"nft failed in {short}: {done.stderr.strip()}")

    def tcp_probe(self, short: str, ip: str, port: int, timeout: float = 2.0) -> str:
        """A plain TCP connection from namespace ``short`` to ip:port: ``"connected"``,
        ``"timed out"`` (dropped), ``"unreachable"`` (no route) or ``"refused ..."``."""
        done = subprocess.run([*self.exec(short), sys.executable, "-c", _PROBE, ip, str(port),
                               str(timeout)], capture_output=True, text=True, timeout=timeout + 8)
        return done.stdout.strip() or done.stderr.strip()

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
def namespaces(*shorts: str, nat: bool = False) -> Iterator[Netns]:
    """Namespaces named by ``shorts``, torn down when the block ends, however it ends; ``nat``
    when some of them will be home routers."""
    require_netns(nat)
    net = Netns()
    try:
        for short in shorts:
            net.add(short)
        yield net
    finally:
        net.remove()


CLONE_NEWNET = 0x40000000


def in_loopback_netns(
    fn: Callable[..., Any], *args: Any, addrs: Sequence[str] = (), timeout: float = 90
) -> Any:
    """``fn(*args)`` in a new process inside a network namespace of its own whose only
    interface is loopback (with ``addrs``, e.g. ``"10.1.0.1/32"``, added to it): whatever it
    dials, on whatever a peer claims, cannot leave this computer. ``fn`` must be a module-level
    function (it is pickled); its return value comes back, its exception is re-raised here with
    the child's traceback."""
    require_netns()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_netns_child, args=(send, fn, args, tuple(addrs)))
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise AssertionError(f"{fn.__name__} did not finish within {timeout} s")
        kind, value = receive.recv()
    except EOFError:
        raise AssertionError(f"{fn.__name__} died (exit status {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
    if kind == "error":
        raise AssertionError(f"{fn.__name__} failed in its namespace:\n{value}")
    return value


def _netns_child(
    send: Connection, fn: Callable[..., Any], args: tuple[Any, ...], addrs: tuple[str, ...]
) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        ip("link", "set", "lo", "up")
        for addr in addrs:
            ip("addr", "add", addr, "dev", "lo")
        send.send(("ok", fn(*args)))
    except BaseException:  # noqa: BLE001 - everything goes back to the test
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()
