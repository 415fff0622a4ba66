"""A link that dies without a word (no FIN, no RST: Wi-Fi gone, a NAT that forgot the mapping)
is noticed: the contact is shown offline and what was sent meanwhile is delivered once it is
back; in a room, the member cut off from an author gets the author's posts through the others.

Namespaces built by the test, on documentation ranges::

    A 198.51.100.1 ---- 198.51.100.2 B                       (contacts)

    A 198.51.100.1 --+
    B 203.0.113.2 ---+-- R (forwards)                         (a room)
    C 192.0.2.3 -----+

A link is cut by an nftables table that drops packets silently, so no kernel sees a reset:
a dead path, as opposed to a peer that quits. Every peer is a real ``kith node`` process; a
``sitecustomize`` shortens the dead-link time (30 s) to 3 s and the redial backoff's cap to
2 s, so the test waits seconds, not minutes. Needs root, ``ip netns`` and ``nft`` (see
``tests/netns.py``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.netns import Netns, namespaces
from tests.nodeproc import NodeProcess, befriend

A_IP = "198.51.100.1"
B_IP = "198.51.100.2"
B_ROOM_IP = "203.0.113.2"  # B behind R, in the room's topology
C_IP = "192.0.2.3"
R_IPS = {"a": "198.51.100.254", "b": "203.0.113.254", "c": "192.0.2.254"}
DEAD_LINK_AFTER = 3  # seconds, in place of the 30 the nodes use

SHORT_TIMES = f"""\
import app.node.contacts as contacts
import app.node.libp2p_patches.tcp as tcp

tcp.KEEPALIVE_IDLE, tcp.KEEPALIVE_INTERVAL, tcp.DEAD_LINK_AFTER = 1, 1, {DEAD_LINK_AFTER}
contacts.MAX_BACKOFF = 2.0
"""

pytestmark = pytest.mark.slow


def _cut(net: Netns, short: str, peer_ip: str | None = None) -> None:
    """Drop every packet into and out of namespace ``short`` (only those to and from
    ``peer_ip``, if given), silently."""
    match = f"ip saddr {peer_ip} drop" if peer_ip else "drop"
    out = f"ip daddr {peer_ip} drop" if peer_ip else "drop"
    rules = f"""
table inet kith_dead_link {{
    chain input {{ type filter hook input priority filter; {match}; }}
    chain output {{ type filter hook output priority filter; {out}; }}
}}
"""
    subprocess.run([*net.exec(short), "nft", "-f", "-"], input=rules, text=True, check=True,
                   capture_output=True, timeout=10)


def _mend(net: Netns, short: str) -> None:
    subprocess.run([*net.exec(short), "nft", "delete", "table", "inet", "kith_dead_link"],
                   check=True, capture_output=True, timeout=10)


def _node(tmp_path: Path, net: Netns, short: str, ip: str, name: str) -> NodeProcess:
    """A node listening on ``ip`` in namespace ``short``, with the short dead-link times."""
    site = tmp_path / "site"
    if not site.exists():
        site.mkdir()
        (site / "sitecustomize.py").write_text(SHORT_TIMES)
    return NodeProcess(tmp_path / name.lower(), "--listen", f"/ip4/{ip}/tcp/0", name=name,
                       prefix=[*net.exec(short), "env", f"PYTHONPATH={site}"])


@contextmanager
def _two_contacts(tmp_path: Path) -> Iterator[tuple[Netns, NodeProcess, NodeProcess, str, str]]:
    """Ada in A and Bob in B, each the other's contact and online, with short dead-link times."""
    with namespaces("a", "b", nat=True) as net:
        net.link("a", f"{A_IP}/24", "b", f"{B_IP}/24")
        nodes: list[NodeProcess] = []
        try:
            for short, ip, name in (("a", A_IP, "Ada"), ("b", B_IP, "Bob")):
                nodes.append(_node(tmp_path, net, short, ip, name))
            ada, bob = nodes
            ada_id, bob_id = befriend(ada, bob)
            yield net, ada, bob, ada_id, bob_id
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()


def test_a_link_that_dies_silently_is_noticed_and_what_was_sent_arrives_after(
    tmp_path: Path,
) -> None:
    with _two_contacts(tmp_path) as (net, ada, bob, ada_id, bob_id):
        ada.message(bob, bob_id, "before the link dies")
        for round_ in (1, 2):  # twice: a connection made after the first cut dies the same way
            _cut(net, "b")
            cut_at = time.monotonic()
            # Written into the dead link: TCP takes it, nothing acknowledges it.
            sent = ada.request({"cmd": "send", "to": bob_id, "text": f"into the gap {round_}"},
                               "sent")
            ada.expect("contact_offline", timeout=10 * DEAD_LINK_AFTER, peer_id=bob_id)
            bob.expect("contact_offline", timeout=10 * DEAD_LINK_AFTER, peer_id=ada_id)
            noticed = time.monotonic() - cut_at
            # Before: still online 10 minutes after the cut, the message retried down the
            # dead connection every 12 s. The kernel's timers run in whole seconds.
            assert noticed < 4 * DEAD_LINK_AFTER, f"round {round_}: noticed after {noticed:.1f} s"
            assert not ada.printed("delivered", id=sent["id"])

            _mend(net, "b")
            ada.expect("contact_online", timeout=60, peer_id=bob_id)
            ada.expect("delivered", timeout=60, id=sent["id"])
            got = bob.expect("message", timeout=20, id=sent["id"])
            assert got["text"] == f"into the gap {round_}"
            ada.message(bob, bob_id, f"after round {round_}")


def _printed_since(node: NodeProcess, since: float, event: str, timeout: float,
                   **fields: object) -> None:
    """Wait until ``node`` prints ``event`` with ``fields`` at or after ``since``
    (``time.monotonic``): an earlier one, from before what the test did, does not count."""
    deadline = time.monotonic() + timeout
    while not any(at >= since and e.get("event") == event
                  and all(e.get(k) == v for k, v in fields.items())
                  for at, e in list(node.arrivals)):
        assert time.monotonic() < deadline, f"no {event} {fields} within {timeout} s"
        time.sleep(0.05)


def _members_online(node: NodeProcess, room: str) -> int:
    members = node.request({"cmd": "members", "room": room}, "members")["members"]
    return sum(1 for m in members if m.get("online"))


def test_a_member_cut_off_from_an_author_gets_its_posts_through_the_others(
    tmp_path: Path,
) -> None:
    """An author sends its post straight to every member it is connected to, and the others do
    not forward it to them (the delivery hint, docs/protocol.md 8.8). A member whose link to the
    author died silently got none of the author's posts while the dead connection stood; now it
    falls within seconds, the author stops naming that member, another member forwards the
    next post, and the gap it shows is synced from a member."""
    with namespaces("a", "b", "c", "r", nat=True) as net:
        for short, ip in (("a", A_IP), ("b", B_ROOM_IP), ("c", C_IP)):
            dev, _ = net.link(short, f"{ip}/24", "r", f"{R_IPS[short]}/24")
            # onlink: the veth may not have its carrier yet, which the kernel checks here.
            net.run(short, "route", "add", "default", "via", R_IPS[short], "dev", dev, "onlink")
        subprocess.run([*net.exec("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        nodes: list[NodeProcess] = []
        try:
            for short, ip, name in (("a", A_IP, "Ada"), ("b", B_ROOM_IP, "Bob"),
                                    ("c", C_IP, "Cat")):
                nodes.append(_node(tmp_path, net, short, ip, name))
            ada, bob, cat = nodes
            ada_id = ada.expect("ready")["peer_id"]
            for node in (bob, cat):
                node.expect("ready")
            room = ada.request({"cmd": "create_room", "name": "Gap"}, "room_created")
            room_id = room["room_id"]
            for node in (bob, cat):
                node.request({"cmd": "join_room", "invite": room["invite"]}, "room_joined",
                             timeout=60)
            deadline = time.monotonic() + 60
            while min(_members_online(node, room_id) for node in nodes) < 3:
                assert time.monotonic() < deadline, "the three members never all met"
                time.sleep(0.2)
            first = ada.request({"cmd": "post", "room": room_id, "text": "all here"}, "posted")
            for node in (bob, cat):
                node.expect("room_message", timeout=20, id=first["id"])

            cut_at = time.monotonic()
            _cut(net, "a", B_ROOM_IP)  # Ada and Bob lose each other; both still reach Cat
            texts = [f"gap {i}" for i in range(3)]
            in_gap = [ada.request({"cmd": "post", "room": room_id, "text": text},
                                  "posted")["id"] for text in texts]
            for post in in_gap:
                cat.expect("room_message", timeout=20, id=post)
            # Ada's connection to Bob falls: she is then connected to Cat alone.
            _printed_since(ada, cut_at, "connections", 10 * DEAD_LINK_AFTER, connections=1)
            after = ada.request({"cmd": "post", "room": room_id, "text": "after the fall"},
                                "posted")["id"]
            # Through Cat, while the direct link stays dead: the next post by forwarding, the
            # ones before it by the sync its gap starts.
            for post, text in zip([*in_gap, after], [*texts, "after the fall"], strict=True):
                got = bob.expect("room_message", timeout=10 * DEAD_LINK_AFTER, id=post)
                assert (got["from"], got["text"]) == (ada_id, text)
        finally:
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()
