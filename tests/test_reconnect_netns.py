"""Reconnecting at once when the network comes back, between real ``kith node`` processes.

Two namespaces joined by a veth pair on 192.0.2.0/24. Ada's link goes down while Bob is away;
her redial backoff grows to tens of seconds; her link comes back and she reaches Bob within a
few seconds, because ``app.node.netwatch`` saw the link come up and reset every backoff. Without
that trigger she would wait out the backoff, and this test fails. Needs root and ``ip netns``.
"""

from __future__ import annotations

import re
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import pytest

from app.core.invite import ContactInvite
from app.store.profile import Profile
from tests.netns import namespaces
from tests.nodeproc import NodeProcess

ADA_IP = "192.0.2.1"
BOB_IP = "192.0.2.2"
BOB_PORT = 4001
MIN_PENDING = 20.0  # Ada's next planned dial must be at least this far off when the link returns
RECONNECT_WITHIN = 6.0


def _peer_id(path: Path, name: str) -> str:
    profile = Profile.open(path)
    try:
        profile.initialise(name)
        return profile.identity.peer_id
    finally:
        profile.close()


def _wait_backoff(node: NodeProcess, peer_id: str, at_least: float, timeout: float) -> float:
    """Wait for the node to log a planned redial of ``peer_id`` at least ``at_least`` s away."""
    pattern = re.compile(rf"contact {peer_id} unreachable; next dial in ([0-9.]+) s")
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        lines = node.stderr[seen:]
        seen += len(lines)
        for line in lines:
            match = pattern.search(line)
            if match and float(match.group(1)) >= at_least:
                return float(match.group(1))
        time.sleep(0.05)  # polling the log for a condition, not sleeping in its place
    raise AssertionError(f"no backoff of {at_least}s within {timeout}s: {node.stderr[-20:]}")


@pytest.mark.slow
def test_contact_reconnects_as_soon_as_the_link_comes_back(tmp_path: Path) -> None:
    bob_id = _peer_id(tmp_path / "bob", "Bob")
    nodes: list[NodeProcess] = []
    with namespaces("a", "b") as net:
        dev_a, _dev_b = net.link("a", f"{ADA_IP}/24", "b", f"{BOB_IP}/24")

        def bob_node() -> NodeProcess:
            node = NodeProcess(tmp_path / "bob", "--listen", f"/ip4/{BOB_IP}/tcp/{BOB_PORT}",
                               name="Bob", prefix=net.exec("b"))
            nodes.append(node)
            node.expect("ready")
            return node

        try:
            ada = NodeProcess(tmp_path / "ada", "--listen", f"/ip4/{ADA_IP}/tcp/0", name="Ada",
                              prefix=net.exec("a"))
            nodes.append(ada)
            ada.expect("ready")
            bob = bob_node()
            invite = ContactInvite(bob_id, "Bob", (f"/ip4/{BOB_IP}/tcp/{BOB_PORT}",)).to_link()
            ada.request({"cmd": "add_contact", "invite": invite}, "contact_added")
            ada.expect("contact_online", peer_id=bob_id)

            # Bob leaves; Ada's link goes down; Bob comes back, out of Ada's reach.
            assert bob.quit() == 0
            ada.expect("contact_offline", peer_id=bob_id)
            net.run("a", "link", "set", dev_a, "down")
            bob = bob_node()

            pending = _wait_backoff(ada, bob_id, MIN_PENDING, timeout=90)
            net.run("a", "link", "set", dev_a, "up")
            back_at = time.monotonic()
            ada.expect("contact_online", timeout=RECONNECT_WITHIN + 10, peer_id=bob_id)
            took = time.monotonic() - back_at
            assert took < RECONNECT_WITHIN < pending - 5, (took, pending)
            assert any("network changed: redialling" in line for line in ada.stderr)

            ada.message(bob, bob_id, "back online")
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()
