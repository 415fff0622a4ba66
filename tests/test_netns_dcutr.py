"""DCUtR between real ``kith node`` processes: a relayed connection becomes a direct one.

Without NAT: A on 198.51.100.0/24 and B on 203.0.113.0/24, each with R as its router (R
forwards between them, ``net.ipv4.ip_forward=1`` inside R only) and R also serving as a circuit
relay. A and B are contacts (hole punching is for contacts and room members only). B reserves a
slot on R; A knows B only by B's ``/p2p-circuit`` address, so A first
reaches B through the relay. DCUtR then gives them a direct connection; the relay is stopped
and a message still arrives, so it went over the direct connection. DCUtR first tries a plain
direct dial to the addresses identify taught (its "step 0"); here that alone succeeds. The
``hole_punch`` case turns step 0 off in both peers (a ``sitecustomize`` on their
``PYTHONPATH``), so the CONNECT/SYNC exchange over the relay and the simultaneous dials from the
listening ports must make the connection.

Through NAT: A and B each behind a home router (nftables: masquerade, and inbound connections
dropped), R on the "internet" between the routers. Step 0 cannot work there; only the hole
punch can, and it does when the routers keep source ports. Needs root, ``ip`` and ``nft``.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from app.core.invite import ContactInvite, strip_p2p
from tests.netns import Netns, namespaces
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


def _relay_bob_ada(
    tmp_path: Path, net: Netns, nodes: list[NodeProcess], relay_ips: tuple[str, str],
    bob_ip: str, ada_ip: str,
) -> tuple[NodeProcess, str, NodeProcess, dict[str, Any], NodeProcess]:
    """R relaying on both its legs, Bob holding a slot through the second, and Ada: (relay,
    its peer id, Bob, Bob's ``ready``, Ada), each also appended to ``nodes`` to be stopped.
    Bob has Ada as a contact (DCUtR is for contacts), from an invite without addresses: the
    connection between them is the one Ada opens through R."""
    relay = NodeProcess(
        tmp_path / "relay", "--serve-relay",
        *(arg for ip in relay_ips for arg in ("--listen", f"/ip4/{ip}/tcp/{R_PORT}")),
        name="Relay", prefix=net.exec("r"),
    )
    nodes.append(relay)
    relay_id = relay.expect("ready")["peer_id"]
    bob = NodeProcess(
        tmp_path / "bob", "--listen", f"/ip4/{bob_ip}/tcp/0",
        "--relay", f"/ip4/{relay_ips[1]}/tcp/{R_PORT}/p2p/{relay_id}",
        name="Bob", prefix=net.exec("b"),
    )
    nodes.append(bob)
    bob_ready = bob.expect("ready")
    ada = NodeProcess(tmp_path / "ada", "--listen", f"/ip4/{ada_ip}/tcp/0", name="Ada",
                      prefix=net.exec("a"))
    nodes.append(ada)
    ada_id = ada.expect("ready")["peer_id"]
    bob.request({"cmd": "add_contact", "invite": ContactInvite(ada_id, "Ada", ()).to_link()},
                "contact_added")
    return relay, relay_id, bob, bob_ready, ada


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
            relay, relay_id, bob, bob_ready, ada = _relay_bob_ada(
                tmp_path, net, nodes, (A_GW, B_GW), B_IP, A_IP)
            bob_id = bob_ready["peer_id"]

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
            ada.message(bob, bob_id, "direct now")
            assert not any(
                e.get("event") == "contact_offline" and e.get("peer_id") == bob_id
                for e in ada.seen
            )
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()


# Two homes behind NAT routers, and R on the internet between them. Private ranges are halves
# of 192.0.2.0/24, which R has no route to; the routers' public addresses are on R's two legs.
HOME_A, ROUTER_A_IN, ROUTER_A_OUT = "192.0.2.2", "192.0.2.1", "198.51.100.2"
HOME_B, ROUTER_B_IN, ROUTER_B_OUT = "192.0.2.130", "192.0.2.129", "203.0.113.2"
R_TO_A, R_TO_B = "198.51.100.1", "203.0.113.1"


@pytest.mark.slow
@pytest.mark.parametrize("ports", ["kept", "random"])
def test_a_hole_is_punched_through_two_nat_routers(tmp_path: Path, ports: str) -> None:
    """A and B each sit behind a home router that masquerades and drops every connection that
    starts outside. Neither can dial the other; they meet through R's relay. Where the routers
    keep source ports, DCUtR's simultaneous dials open a direct connection through both NATs
    (to B's public address). Where they pick random ports, the predicted addresses are wrong,
    the hole punch fails, and the conversation carries on through the relay."""
    nodes: list[NodeProcess] = []
    with namespaces("a", "na", "r", "nb", "b", nat=True) as net:
        net.link("a", f"{HOME_A}/25", "na", f"{ROUTER_A_IN}/25")
        _, na_out = net.link("r", f"{R_TO_A}/24", "na", f"{ROUTER_A_OUT}/24")
        _, nb_out = net.link("r", f"{R_TO_B}/24", "nb", f"{ROUTER_B_OUT}/24")
        net.link("b", f"{HOME_B}/25", "nb", f"{ROUTER_B_IN}/25")
        net.run("a", "route", "add", "default", "via", ROUTER_A_IN)
        net.run("b", "route", "add", "default", "via", ROUTER_B_IN)
        net.run("na", "route", "add", "default", "via", R_TO_A)
        net.run("nb", "route", "add", "default", "via", R_TO_B)
        subprocess.run([*net.exec("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        net.home_router("na", na_out, random_ports=ports == "random")
        net.home_router("nb", nb_out, random_ports=ports == "random")
        try:
            relay, relay_id, bob, bob_ready, ada = _relay_bob_ada(
                tmp_path, net, nodes, (R_TO_A, R_TO_B), HOME_B, HOME_A)
            bob_id = bob_ready["peer_id"]

            # No way in: not B's own address, not B's router (which drops what it did not ask
            # for, so the dial times out rather than being refused).
            bob_port = int(strip_p2p(bob_ready["addrs"][0]).rsplit("/", 1)[1])
            for host in (HOME_B, ROUTER_B_OUT):
                probe = net.tcp_probe("a", host, bob_port)
                assert probe in ("unreachable", "timed out"), (host, probe)

            reserved = bob.expect("relay_reserved", timeout=20, relay=relay_id)
            circuits = tuple(strip_p2p(a) for a in reserved["addrs"])
            invite = ContactInvite(bob_id, "Bob", tuple(strip_p2p(a) for a in bob_ready["addrs"])
                                   + circuits).to_link()
            ada.request({"cmd": "add_contact", "invite": invite}, "contact_added")
            ada.expect("contact_online", timeout=30, peer_id=bob_id)

            if ports == "random":
                _wait_logged([ada, bob], ["hole punch failed"], timeout=30)
                ada.message(bob, bob_id, "via R")
                assert not any(e.get("event") == "connection_upgraded" for e in ada.seen)
                return

            upgraded = ada.expect("connection_upgraded", timeout=60, peer_id=bob_id)
            assert upgraded["addr"].startswith(f"/ip4/{ROUTER_B_OUT}/tcp/"), upgraded
            _wait_logged([ada, bob], ["hole punch worked"])

            assert relay.quit() == 0
            ada.message(bob, bob_id, "through two NATs")
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()


def test_addresses_from_a_peers_connect_are_capped_to_plain_tcp() -> None:
    from multiaddr import Multiaddr

    from app.node.hole_punch import MAX_PEER_ADDRS, _KithDCUtR

    texts = [
        "/ip4/192.0.2.7/tcp/5",
        "/ip4/192.0.2.7/udp/5/quic-v1",
        "/ip4/192.0.2.7/tcp/5/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp/p2p-circuit",
        "/dns4/example.org/tcp/1",
        *(f"/ip4/198.51.100.{i}/tcp/1" for i in range(40)),
    ]
    protocol = _KithDCUtR.__new__(_KithDCUtR)  # decoding needs no host
    raw = [Multiaddr(t).to_bytes() for t in texts]
    got = [str(a) for a in protocol._decode_observed_addrs(raw)]
    assert len(got) == MAX_PEER_ADDRS
    assert got[0] == "/ip4/192.0.2.7/tcp/5"
    assert all("/tcp/" in a and "p2p-circuit" not in a and "/dns" not in a for a in got)
