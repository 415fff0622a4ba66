"""A live peer behind a slow link is never taken for a hung one (tests/test_hung_peer.py): a
file sent up a 256 kbit/s link arrives whole over one connection, although every ping of the
sender waits seconds behind the file's bytes in its socket, longer than the silence allowed
after a ping.

Namespaces built by the test, on documentation ranges::

    A 198.51.100.1 ---- R ==== 203.0.113.2 B      (R sends towards B at 256 kbit/s, deep buffer)

R's queue towards B is a token bucket (``tc qdisc ... tbf``) with a deep buffer, as a home
router's uplink: what A sends piles up in A's socket. Both are real ``kith node`` processes; a
``sitecustomize`` shortens the ping interval to 1 s and the silence allowed after a ping to 3 s,
as tests/test_hung_peer.py does. Needs root, ``ip netns``, ``tc`` with the ``tbf`` queue and
``nft`` (see ``tests/netns.py``).
"""

from __future__ import annotations

import os
import subprocess
import threading
from contextlib import suppress
from pathlib import Path

import pytest

from tests.netns import Netns, namespaces
from tests.nodeproc import NodeProcess, befriend

A_IP, B_IP = "198.51.100.1", "203.0.113.2"
R_TOWARDS_A, R_TOWARDS_B = "198.51.100.254", "203.0.113.254"
RATE = 256_000  # bits a second, R towards B
ANSWER_WITHIN = 3  # seconds, in place of the 20 the nodes use
SIZE = 1024 * 1024

SHORT_TIMES = f"""\
import app.node.libp2p_patches.liveness as liveness
import app.node.libp2p_patches.yamux as yamux

liveness.PING_INTERVAL, liveness.ANSWER_WITHIN = 1.0, {ANSWER_WITHIN}.0
yamux.FRAME_WRITE_TIMEOUT = {ANSWER_WITHIN}.0
"""

pytestmark = pytest.mark.slow


def _queued_towards(net: Netns, short: str, ip: str) -> int:
    """The largest send queue of namespace ``short``'s TCP connections to ``ip``, in bytes."""
    done = subprocess.run([*net.exec(short), "ss", "-Htn", "dst", ip], capture_output=True,
                          text=True, timeout=10, check=True)
    return max((int(line.split()[2]) for line in done.stdout.splitlines() if line.strip()),
               default=0)


def test_a_file_up_a_slow_link_is_not_cut_off_by_the_hung_peer_rule(tmp_path: Path) -> None:
    with namespaces("a", "r", "b") as net:
        for short, ip, router_ip in (("a", A_IP, R_TOWARDS_A), ("b", B_IP, R_TOWARDS_B)):
            dev, router_dev = net.link(short, f"{ip}/24", "r", f"{router_ip}/24")
            net.run(short, "route", "add", "default", "via", router_ip, "dev", dev, "onlink")
        subprocess.run([*net.exec("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        shaped = subprocess.run([*net.exec("r"), "tc", "qdisc", "add", "dev", router_dev, "root",
                                 "tbf", "rate", f"{RATE // 1000}kbit", "burst", "32kbit",
                                 "limit", "4mb"], capture_output=True, text=True, timeout=10)
        if shaped.returncode != 0:
            message = f"needs tc's tbf queue: {shaped.stderr.strip()}"
            if os.environ.get("CI") == "true":
                raise AssertionError(message)
            pytest.skip(message)
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SHORT_TIMES)
        nodes: list[NodeProcess] = []
        try:
            for short, ip, name in (("a", A_IP, "Ada"), ("b", B_IP, "Bob")):
                nodes.append(NodeProcess(
                    tmp_path / name.lower(), "--listen", f"/ip4/{ip}/tcp/0", name=name,
                    prefix=[*net.exec(short), "env", f"PYTHONPATH={site}"]))
            ada, bob = nodes
            ada_id, bob_id = befriend(ada, bob, timeout=30)

            source = tmp_path / "song.flac"
            source.write_bytes(os.urandom(SIZE))
            deepest = [0]
            sending = threading.Event()

            def watch_queue() -> None:
                while not sending.wait(0.25):
                    deepest[0] = max(deepest[0], _queued_towards(net, "a", B_IP))

            watcher = threading.Thread(target=watch_queue, daemon=True)
            ada.send({"cmd": "send_file", "to": bob_id, "path": str(source)})
            tid = ada.expect("file_offered", timeout=60)["transfer"]
            bob.expect("file_offer", transfer=tid)
            bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp_path / "in")},
                        "file_accepted")
            watcher.start()
            try:
                done = bob.expect("file_complete", transfer=tid, timeout=8 * SIZE * 3 / RATE)
            finally:
                sending.set()
                watcher.join()
            assert Path(done["path"]).read_bytes() == source.read_bytes()
            # The test means something only if a ping waited longer than the silence allowed.
            assert deepest[0] * 8 / RATE > ANSWER_WITHIN, f"queue never deeper than {deepest[0]}"
            for node, other_id in ((ada, bob_id), (bob, ada_id)):
                assert not node.printed("contact_offline", peer_id=other_id), "".join(
                    line for line in node.stderr if "WARNING" in line or "ERROR" in line)
            assert not [e for e in ada.printed("connections") if e["connections"] != 1]
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()

