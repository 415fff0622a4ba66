"""DCUtR between real ``kith node`` processes: a relayed connection becomes a direct one.

Three namespaces: A on 198.51.100.0/24 and B on 203.0.113.0/24, each with R as its router
(R forwards between them, ``net.ipv4.ip_forward=1`` inside R only) and R also serving as a
circuit relay. B reserves a slot on R; A knows B only by B's ``/p2p-circuit`` address, so A first
reaches B through the relay. DCUtR then gives them a direct connection; the relay is stopped
and a message still arrives, so it went over the direct connection. There is no NAT here (none
can be built without iptables/nft): this proves the protocol and the wiring, not NAT traversal.

DCUtR first tries a plain direct dial to the addresses identify taught (its "step 0"); here
that alone succeeds. The ``hole_punch`` case turns step 0 off in both peers (a
``sitecustomize`` on their ``PYTHONPATH``), so the CONNECT/SYNC exchange over the relay and the
simultaneous dials from the listening ports must make the connection. Needs root and ``ip netns``.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from pathlib import Path

import pytest

from app.core.invite import ContactInvite, strip_p2p
from tests.netns import namespaces
from tests.nodeproc import NodeProcess

A_IP, A_GW = "198.51.100.2", "198.51.100.1"
B_IP, B_GW = "203.0.113.2", "203.0.113.1"
R_PORT = 4001
NO_STEP_ZERO = """\
import libp2p.relay.circuit_v2.dcutr as dcutr


async def _skip(self, peer_id):
    return False


dcutr.DCUtRProtocol._try_unilateral_upgrade = _skip
"""


def _wait_logged(nodes: list[NodeProcess], wanted: list[str], timeout: float = 15) -> None:
    """Wait until one of the nodes logs a line containing one of ``wanted``."""
    deadline = time.monotonic() + timeout
    while not any(w in line for n in nodes for line in list(n.stderr) for w in wanted):
        if time.monotonic() > deadline:
            tails = [line for n in nodes for line in n.stderr[-10:]]
            raise AssertionError(f"none of {wanted} logged within {timeout}s: {tails}")
        time.sleep(0.05)  # polling the log for a condition, not sleeping in its place


@pytest.mark.slow
@pytest.mark.parametrize("path", ["any", "hole_punch"])
def test_relayed_connection_is_upgraded_to_direct_by_dcutr(
    tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "hole_punch":
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(NO_STEP_ZERO)
        monkeypatch.setenv("PYTHONPATH", str(site))
    nodes: list[NodeProcess] = []
    with namespaces("a", "r", "b") as net:
        net.link("a", f"{A_IP}/24", "r", f"{A_GW}/24")
        net.link("b", f"{B_IP}/24", "r", f"{B_GW}/24")
        net.run("a", "route", "add", "default", "via", A_GW)
        net.run("b", "route", "add", "default", "via", B_GW)
        subprocess.run([*net.exec("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        try:
            relay = NodeProcess(
                tmp_path / "relay", "--serve-relay", "--listen", f"/ip4/{A_GW}/tcp/{R_PORT}",
                "--listen", f"/ip4/{B_GW}/tcp/{R_PORT}", name="Relay", prefix=net.exec("r"),
            )
            nodes.append(relay)
            relay_id = relay.expect("ready")["peer_id"]
            bob = NodeProcess(
                tmp_path / "bob", "--listen", f"/ip4/{B_IP}/tcp/0",
                "--relay", f"/ip4/{B_GW}/tcp/{R_PORT}/p2p/{relay_id}",
                name="Bob", prefix=net.exec("b"),
            )
            nodes.append(bob)
            bob_id = bob.expect("ready")["peer_id"]
            ada = NodeProcess(tmp_path / "ada", "--listen", f"/ip4/{A_IP}/tcp/0", name="Ada",
                              prefix=net.exec("a"))
            nodes.append(ada)
            ada.expect("ready")

            reserved = bob.expect("relay_reserved", timeout=20, relay=relay_id)
            circuits = tuple(strip_p2p(a) for a in reserved["addrs"])
            assert circuits and all("/p2p-circuit" in a for a in circuits)
            only_relayed = ContactInvite(bob_id, "Bob", circuits).to_link()
            ada.request({"cmd": "add_contact", "invite": only_relayed}, "contact_added")
            ada.expect("contact_online", timeout=20, peer_id=bob_id)

            # DCUtR (either side may drive it) upgrades the relayed connection.
            upgraded = ada.expect("connection_upgraded", timeout=30, peer_id=bob_id)
            assert "/p2p-circuit" not in upgraded["addr"]
            assert upgraded["addr"].startswith(f"/ip4/{B_IP}/tcp/"), upgraded
            wanted = ["hole punch worked"]
            if path == "any":
                wanted.append("a direct dial to its known addresses worked")
            _wait_logged([ada, bob], wanted)

            # With the relay gone, only the direct connection is left, and it carries a DM.
            assert relay.quit() == 0
            sent = ada.request({"cmd": "send", "to": bob_id, "text": "direct now"}, "sent")
            ada.expect("delivered", timeout=15, id=sent["id"])
            assert bob.expect("message", timeout=10)["text"] == "direct now"
            assert not any(
                e.get("event") == "contact_offline" and e.get("peer_id") == bob_id
                for e in ada.seen
            )
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()


def test_addresses_from_a_peers_connect_are_capped_to_plain_tcp() -> None:
    from multiaddr import Multiaddr

    from app.node.hole_punch import MAX_PEER_ADDRS, _ReportingDCUtR

    texts = [
        "/ip4/192.0.2.7/tcp/5",
        "/ip4/192.0.2.7/udp/5/quic-v1",
        "/ip4/192.0.2.7/tcp/5/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp/p2p-circuit",
        "/dns4/example.org/tcp/1",
        *(f"/ip4/198.51.100.{i}/tcp/1" for i in range(40)),
    ]
    protocol = _ReportingDCUtR.__new__(_ReportingDCUtR)  # decoding needs no host
    raw = [Multiaddr(t).to_bytes() for t in texts]
    got = [str(a) for a in protocol._decode_observed_addrs(raw)]
    assert len(got) == MAX_PEER_ADDRS
    assert got[0] == "/ip4/192.0.2.7/tcp/5"
    assert all("/tcp/" in a and "p2p-circuit" not in a and "/dns" not in a for a in got)
