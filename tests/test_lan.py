"""LAN discovery (mDNS) between real ``kith node`` processes in private network namespaces.

All multicast stays inside two namespaces this test creates, joined by a veth pair on the
documentation network 192.0.2.0/24; nothing is sent on the machine's real interfaces. Needs root
and ``ip netns``: without them it is skipped with that reason, and in CI it fails.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from app.core.config import NodeConfig
from app.core.events import PeerNearby
from app.core.invite import ContactInvite
from app.node.lan import lan_ipv4
from app.store.profile import Profile
from tests.netns import namespaces
from tests.nodeproc import NodeProcess
from tests.peers import LOOPBACK, Peer

ADA_IP = "192.0.2.1"
BOB_IP = "192.0.2.2"


@contextmanager
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Namespaces A (192.0.2.1) and B (192.0.2.2) joined by a veth pair; removed afterwards."""
    with namespaces("a", "b") as net:
        net.link("a", f"{ADA_IP}/24", "b", f"{BOB_IP}/24")
        yield net.names["a"], net.names["b"]


def _bob_id(path: Path) -> str:
    profile = Profile.open(path)
    try:
        profile.initialise("Bob")
        return profile.identity.peer_id
    finally:
        profile.close()


@pytest.mark.slow
def test_nearby_peers_and_a_known_contact_reconnected_over_mdns(tmp_path: Path) -> None:
    bob_id = _bob_id(tmp_path / "bob")
    nodes: list[NodeProcess] = []
    with two_namespaces() as (ns_a, ns_b):
        try:
            ada = NodeProcess(tmp_path / "ada", "--lan", "--listen", f"/ip4/{ADA_IP}/tcp/0",
                              name="Ada", prefix=["ip", "netns", "exec", ns_a])
            nodes.append(ada)
            ada_id = ada.expect("ready")["peer_id"]
            # Ada knows Bob, at an address where he is not (a closed port).
            wrong = ContactInvite(bob_id, "Bob", (f"/ip4/{BOB_IP}/tcp/1",)).to_link()
            ada.request({"cmd": "add_contact", "invite": wrong}, "contact_added")

            bob = NodeProcess(tmp_path / "bob", "--lan", "--listen", f"/ip4/{BOB_IP}/tcp/0",
                              name="Bob", prefix=["ip", "netns", "exec", ns_b])
            nodes.append(bob)
            bob.expect("ready")

            ada.expect("peer_nearby", timeout=15, peer_id=bob_id, name="Bob")
            bob.expect("peer_nearby", timeout=15, peer_id=ada_id, name="Ada")
            # Bob's record gave Ada his real address: her dialer reaches him, a DM arrives.
            ada.expect("contact_online", timeout=15, peer_id=bob_id)
            sent = ada.request({"cmd": "send", "to": bob_id, "text": "found you"}, "sent")
            ada.expect("delivered", timeout=15, id=sent["id"])
            got = bob.expect("message", timeout=10, request=True)
            assert got["text"] == "found you"
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    assert node.quit() == 0, "".join(node.stderr[-20:])


def test_lan_addresses_exclude_loopback_and_relayed() -> None:
    pid = "/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    assert lan_ipv4([
        "/ip4/127.0.0.1/tcp/5" + pid, "/ip6/::1/tcp/5" + pid, "/ip4/192.0.2.7/tcp/6" + pid,
        "/ip4/192.0.2.9/tcp/7" + pid + "/p2p-circuit" + pid,
    ]) == {"192.0.2.7": 6}
    assert lan_ipv4(["/ip4/127.0.0.1/tcp/5" + pid]) == {}


def test_loopback_only_node_starts_no_zeroconf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zeroconf

    made: list[Any] = []

    def forbidden(*args: Any, **kwargs: Any) -> None:
        made.append(args)
        raise AssertionError("zeroconf must not start on a loopback-only node")

    monkeypatch.setattr(zeroconf, "Zeroconf", forbidden)

    async def scenario() -> None:
        peer = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,), lan_discovery=True))
        await peer.start()
        try:
            await asyncio.sleep(0.5)  # the LAN task has had its chance to start
            node = peer.client._node
            assert node is not None and node.lan is not None
            assert not node.lan.active
            assert not [e for e in peer.events if isinstance(e, PeerNearby)]
        finally:
            await peer.stop()

    asyncio.run(scenario())
    assert made == []


@pytest.mark.slow
def test_lan_discovery_follows_an_address_that_appears_after_start(tmp_path: Path) -> None:
    """A Kith started before its network was up announces itself once an address arrives."""
    nodes: list[NodeProcess] = []
    with namespaces("a", "b") as net:
        dev_a, _ = net.link("a", "192.0.2.99/24", "b", f"{BOB_IP}/24")
        net.run("a", "addr", "flush", "dev", dev_a)  # Ada's link is up, without an address
        try:
            ada = NodeProcess(tmp_path / "ada", "--lan", "--listen", "/ip4/0.0.0.0/tcp/0",
                              name="Ada", prefix=net.exec("a"))
            nodes.append(ada)
            ada_id = ada.expect("ready")["peer_id"]
            bob = NodeProcess(tmp_path / "bob", "--lan", "--listen", f"/ip4/{BOB_IP}/tcp/0",
                              name="Bob", prefix=net.exec("b"))
            nodes.append(bob)
            bob_id = bob.expect("ready")["peer_id"]

            net.run("a", "addr", "add", f"{ADA_IP}/24", "dev", dev_a)  # DHCP answered
            ada.expect("peer_nearby", timeout=15, peer_id=bob_id, name="Bob")
            bob.expect("peer_nearby", timeout=15, peer_id=ada_id, name="Ada")
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    assert node.quit() == 0, "".join(node.stderr[-20:])
