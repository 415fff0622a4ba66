"""Reaching a contact across networks that cannot reach each other, in private namespaces.

Three namespaces, built by the test and removed afterwards, on documentation ranges only::

    A 198.51.100.1 ---- 198.51.100.254 R 203.0.113.254 ---- 203.0.113.2 B

R has a leg in each network and does not forward IP packets, so A and B have no route to each
other: whatever they exchange goes through R, a ``kith node --serve-relay``. Every peer is a real
``kith node`` process driven over JSON lines. Needs root and ``ip netns``: without them each test
is skipped with that reason (and fails in CI, see ``tests/netns.py``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.core.invite import parse_invite, strip_p2p
from app.store.profile import DB_FILE, Profile
from tests.netns import Netns, namespaces
from tests.nodeproc import NodeProcess

A_IP = "198.51.100.1"
R_A_IP = "198.51.100.254"
R_B_IP = "203.0.113.254"
B_IP = "203.0.113.2"
B_NEW_IP = "203.0.113.3"
R_PORT = 4001  # a fresh namespace has every port free, so the relay can come back on the same one
FILE_SIZE = 5 * 1024 * 1024

pytestmark = pytest.mark.slow


@dataclass
class World:
    """The three namespaces, the veth ends, and every node started in them (quit at the end)."""

    net: Netns
    root: Path
    b_dev: str
    nodes: list[NodeProcess] = field(default_factory=list)
    relay_id: str = ""

    def node(self, ns: str, profile: str, *args: str, name: str,
             pythonpath: Path | None = None) -> NodeProcess:
        """A node in namespace ``ns``; ``pythonpath`` (a ``sitecustomize``, say) for it alone."""
        prefix = self.net.exec(ns)
        if pythonpath is not None:
            prefix += ["env", f"PYTHONPATH={pythonpath}"]
        proc = NodeProcess(self.root / profile, *args, name=name, prefix=prefix)
        self.nodes.append(proc)
        return proc

    def relay(self, *extra: str, wildcard: bool = False,
              pythonpath: Path | None = None) -> NodeProcess:
        """R, serving as a relay on both legs, on a fixed port (the same after a restart).

        ``wildcard`` listens on 0.0.0.0, as a relay on a public host would by default.
        """
        legs = [f"/ip4/0.0.0.0/tcp/{R_PORT}"] if wildcard else [
            f"/ip4/{R_A_IP}/tcp/{R_PORT}", f"/ip4/{R_B_IP}/tcp/{R_PORT}"
        ]
        listen = [arg for leg in legs for arg in ("--listen", leg)]
        return self.node("r", "relay", "--serve-relay", *listen, *extra, name="Relay",
                         pythonpath=pythonpath)

    def relay_addr(self, ip: str) -> str:
        return f"/ip4/{ip}/tcp/{R_PORT}/p2p/{self.relay_id}"


@contextmanager
def world(tmp_path: Path) -> Iterator[World]:
    """A | R | B as drawn above; every node quits and the namespaces go, however it ends."""
    with namespaces("a", "r", "b") as net:
        net.link("a", f"{A_IP}/24", "r", f"{R_A_IP}/24")
        _, b_dev = net.link("r", f"{R_B_IP}/24", "b", f"{B_IP}/24")
        net_world = World(net, tmp_path, b_dev)
        net_world.relay_id = _peer_id(tmp_path / "relay", "Relay")
        try:
            yield net_world
        finally:
            for node in net_world.nodes:
                with suppress(subprocess.TimeoutExpired):
                    node.quit()


def _peer_id(path: Path, name: str) -> str:
    """Create a profile ahead of its node, so its peer id can go on other nodes' command lines."""
    with Profile.open(path) as profile:
        profile.initialise(name)
        return profile.identity.peer_id


def _port(addrs: list[str], ip: str) -> int:
    (addr,) = [a for a in addrs if a.startswith(f"/ip4/{ip}/tcp/") and "p2p-circuit" not in a]
    return int(addr.split("/")[4])


def _circuits(relay_id: str, peer_id: str) -> set[str]:
    """A peer's circuit addresses through R, one per leg of R."""
    return {
        f"/ip4/{ip}/tcp/{R_PORT}/p2p/{relay_id}/p2p-circuit/p2p/{peer_id}"
        for ip in (R_A_IP, R_B_IP)
    }


def _reserved_invite(node: NodeProcess, relay_id: str) -> str:
    """Wait for the node's slot on R; its ``status`` then lists the circuits in addrs and invite."""
    reserved = node.expect("relay_reserved", timeout=20, relay=relay_id)
    status = node.request({"cmd": "status"}, "status")
    circuits = _circuits(relay_id, status["peer_id"])
    assert circuits <= set(reserved["addrs"]), reserved
    assert circuits <= set(status["addrs"]), status
    assert {strip_p2p(c) for c in circuits} <= set(parse_invite(status["invite"]).addrs)
    return str(status["invite"])


def _relayed(node: NodeProcess, peer_id: str) -> bool:
    """The node's log says it reached ``peer_id`` through a ``/p2p-circuit`` address."""
    return any(f"connected to {peer_id} through" in line for line in node.stderr)


def _wait_for_log(node: NodeProcess, *words: str, timeout: float = 20) -> str:
    """The first log line of ``node`` containing every one of ``words``, polled until then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(node.stderr):
            if all(w in line for w in words):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {words} in {timeout}s: {''.join(node.stderr[-20:])}")


def test_messages_both_ways_a_5mb_file_and_the_outbox_through_the_relay(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        relay = w.relay(wildcard=True)  # the circuits must still name both legs, not 0.0.0.0
        relay_ready = relay.expect("ready")
        assert relay_ready["peer_id"] == w.relay_id
        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0",
                     "--relay", w.relay_addr(R_A_IP), name="Ada")
        bob_args = ("--listen", f"/ip4/{B_IP}/tcp/0", "--relay", w.relay_addr(R_B_IP))
        bob = w.node("b", "bob", *bob_args, name="Bob")
        ada_id, bob_id = ada.expect("ready")["peer_id"], bob.expect("ready")["peer_id"]
        bob_port = _port(bob.request({"cmd": "status"}, "status")["addrs"], B_IP)

        # The topology: A reaches R, but has no way to B's address (no route, no forwarding).
        assert w.net.tcp_probe("a", R_A_IP, R_PORT) == "connected"
        assert w.net.tcp_probe("a", B_IP, bob_port) != "connected"
        assert w.net.tcp_probe("b", A_IP, R_PORT) != "connected"

        ada_invite = _reserved_invite(ada, w.relay_id)
        bob_invite = _reserved_invite(bob, w.relay_id)
        # Bob's invite also lists his direct address, which Ada cannot reach: R must carry it.
        assert f"/ip4/{B_IP}/tcp/{bob_port}" in parse_invite(bob_invite).addrs
        ada.request({"cmd": "add_contact", "invite": bob_invite}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ada_invite}, "contact_added")
        ada.expect("contact_online", timeout=20, peer_id=bob_id)
        bob.expect("contact_online", timeout=20, peer_id=ada_id)

        ada.message(bob, bob_id, "hello through the relay")
        bob.message(ada, ada_id, "and back through it")
        # Whoever dialed first logged the circuit it used (the log line follows the connection).
        assert _relayed(ada, bob_id) or _relayed(bob, ada_id), "".join(ada.stderr + bob.stderr)

        data = os.urandom(FILE_SIZE)
        source = tmp_path / "five-megabytes.bin"
        source.write_bytes(data)
        offer = ada.request({"cmd": "send_file", "to": bob_id, "path": str(source)}, "file_offered")
        got_offer = bob.expect("file_offer", timeout=20, transfer=offer["transfer"])
        assert got_offer["size"] == FILE_SIZE
        bob.request({"cmd": "accept_file", "transfer": offer["transfer"],
                     "dir": str(tmp_path / "downloads")}, "file_accepted")
        done = bob.expect("file_complete", timeout=60, transfer=offer["transfer"])
        ada.expect("file_complete", timeout=20, transfer=offer["transfer"])
        saved = Path(done["path"]).read_bytes()
        assert hashlib.sha256(saved).digest() == hashlib.sha256(data).digest()

        # The outbox across the relay: Bob leaves, Ada writes, Bob comes back (through R only).
        assert bob.quit() == 0
        w.nodes.remove(bob)
        ada.expect("contact_offline", timeout=20, peer_id=bob_id)
        queued = ada.request({"cmd": "send", "to": bob_id, "text": "while you were away"}, "sent")
        bob = w.node("b", "bob", *bob_args, name="Bob")
        bob.expect("ready")
        bob.expect("relay_reserved", timeout=20, relay=w.relay_id)
        ada.expect("delivered", timeout=40, id=queued["id"])
        assert bob.expect("message", timeout=20, id=queued["id"])["text"] == "while you were away"


CIRCUIT_CAP = 4 * 1024 * 1024
SMALL_CIRCUITS = f"""\
import dataclasses

import app.node.relay_server as relay_server

relay_server.LIMITS = dataclasses.replace(relay_server.LIMITS, circuit_data={CIRCUIT_CAP})
"""


def _cut_by_the_cap(relay: NodeProcess) -> list[str]:
    return [line for line in list(relay.stderr)
            if "relay: circuit" in line and f"cut: its {CIRCUIT_CAP} bytes are spent" in line]


def test_a_file_larger_than_a_circuit_allows_resumes_over_new_circuits(tmp_path: Path) -> None:
    """A relay caps what one circuit carries (a Kith relay: 256 MiB). With a 4 MiB cap, a 10 MiB
    file needs several circuits: each is cut when its budget is spent, the contacts reconnect
    through R, and the download goes on from its last verified chunk, never from the start."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SMALL_CIRCUITS)
    with world(tmp_path) as w:
        relay = w.relay(pythonpath=site)
        relay.expect("ready")
        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0",
                     "--relay", w.relay_addr(R_A_IP), name="Ada")
        bob = w.node("b", "bob", "--listen", f"/ip4/{B_IP}/tcp/0",
                     "--relay", w.relay_addr(R_B_IP), name="Bob")
        bob_id = bob.expect("ready")["peer_id"]
        ada.expect("ready")
        ada.request({"cmd": "add_contact", "invite": _reserved_invite(bob, w.relay_id)},
                    "contact_added")
        bob.request({"cmd": "add_contact", "invite": _reserved_invite(ada, w.relay_id)},
                    "contact_added")
        ada.expect("contact_online", timeout=20, peer_id=bob_id)

        data = os.urandom(10 * 1024 * 1024)
        source = tmp_path / "ten-megabytes.bin"
        source.write_bytes(data)
        offer = ada.request({"cmd": "send_file", "to": bob_id, "path": str(source)}, "file_offered")
        bob.expect("file_offer", timeout=20, transfer=offer["transfer"])
        bob.request({"cmd": "accept_file", "transfer": offer["transfer"],
                     "dir": str(tmp_path / "downloads")}, "file_accepted")
        done = bob.expect("file_complete", timeout=120, transfer=offer["transfer"])
        assert hashlib.sha256(Path(done["path"]).read_bytes()).digest() == \
            hashlib.sha256(data).digest()

        # The relay logs every circuit its cap cuts. Counted there, not by Bob's contact_offline
        # events: after a cut both ends redial, and while two circuits overlap, the end of one
        # leaves the contact online.
        deadline = time.monotonic() + 20
        while len(_cut_by_the_cap(relay)) < 2:
            assert time.monotonic() < deadline, \
                f"the cap should have cut at least two circuits: {_cut_by_the_cap(relay)}"
            time.sleep(0.05)
        progress = [e["bytes"] for e in bob.seen if e.get("event") == "file_progress"
                    and e.get("transfer") == offer["transfer"]]
        assert progress == sorted(progress), progress  # resumed each time, never restarted
        ada.message(bob, bob_id, "the last circuit still works")


def test_reservations_recover_after_the_relay_restarts(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        relay = w.relay()
        relay.expect("ready")
        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0",
                     "--relay", w.relay_addr(R_A_IP), name="Ada")
        bob = w.node("b", "bob", "--listen", f"/ip4/{B_IP}/tcp/0",
                     "--relay", w.relay_addr(R_B_IP), name="Bob")
        bob_id = bob.expect("ready")["peer_id"]
        ada.expect("ready")
        _reserved_invite(ada, w.relay_id)
        ada.request({"cmd": "add_contact", "invite": _reserved_invite(bob, w.relay_id)},
                    "contact_added")
        ada.expect("contact_online", timeout=20, peer_id=bob_id)
        ada.message(bob, bob_id, "before the relay restarts")

        relay.kill()  # no goodbye: the holders see their connections to R break
        w.nodes.remove(relay)
        ada.expect("contact_offline", timeout=20, peer_id=bob_id)  # A and B met only through R
        relay = w.relay()
        relay.expect("ready")
        # Both holders reserve again on their own, and say so; the invite lists the circuits.
        _reserved_invite(ada, w.relay_id)
        _reserved_invite(bob, w.relay_id)
        ada.expect("contact_online", timeout=30, peer_id=bob_id)
        ada.message(bob, bob_id, "after the relay came back")


ANSWER_WITHIN = 3  # seconds, in place of the 20 the nodes use (tests/test_hung_peer.py)
SHORT_LIVENESS = f"""\
import app.node.contacts as contacts
import app.node.libp2p_patches.liveness as liveness
import app.node.relay as relay

liveness.PING_INTERVAL, liveness.ANSWER_WITHIN = 1.0, {ANSWER_WITHIN}.0
contacts.MAX_BACKOFF = relay.MAX_BACKOFF = 2.0
"""


def test_a_relay_that_hangs_is_noticed_and_its_circuits_end_with_it(tmp_path: Path) -> None:
    """R is stopped (SIGSTOP: its kernel keeps the connections and acknowledges what comes).
    A and B, who met only through R, each notice their connection to R gone silent after a
    ping, and with it the circuit between them: each sees the other offline, and a message
    written meanwhile waits. When R runs again both reserve again, and it is delivered.
    Before, both stayed online through a relay that forwarded nothing, for good."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SHORT_LIVENESS)
    with world(tmp_path) as w:
        relay = w.relay()
        relay.expect("ready")
        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0",
                     "--relay", w.relay_addr(R_A_IP), name="Ada", pythonpath=site)
        bob = w.node("b", "bob", "--listen", f"/ip4/{B_IP}/tcp/0",
                     "--relay", w.relay_addr(R_B_IP), name="Bob", pythonpath=site)
        ada_id, bob_id = ada.expect("ready")["peer_id"], bob.expect("ready")["peer_id"]
        ada.request({"cmd": "add_contact", "invite": _reserved_invite(bob, w.relay_id)},
                    "contact_added")
        bob.request({"cmd": "add_contact", "invite": _reserved_invite(ada, w.relay_id)},
                    "contact_added")
        ada.expect("contact_online", timeout=20, peer_id=bob_id)
        ada.message(bob, bob_id, "before the relay hangs")

        os.kill(relay.proc.pid, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            sent = ada.request({"cmd": "send", "to": bob_id, "text": "while R hangs"}, "sent")
            ada.expect("contact_offline", timeout=20 * ANSWER_WITHIN, peer_id=bob_id)
            bob.expect("contact_offline", timeout=20 * ANSWER_WITHIN, peer_id=ada_id)
            noticed = time.monotonic() - stopped_at
            assert noticed < 4 * ANSWER_WITHIN, f"noticed after {noticed:.1f} s"
            assert not ada.printed("delivered", id=sent["id"])
        finally:
            os.kill(relay.proc.pid, signal.SIGCONT)
        ada.expect("contact_online", timeout=60, peer_id=bob_id)
        ada.expect("delivered", timeout=60, id=sent["id"])
        assert bob.expect("message", timeout=20, id=sent["id"])["text"] == "while R hangs"
        ada.message(bob, bob_id, "after the relay came back")


def test_the_relay_is_found_by_mdns_on_the_shared_link(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        relay = w.relay("--lan")
        relay.expect("ready")
        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0", "--lan", name="Ada")
        ada_id = ada.expect("ready")["peer_id"]
        ada.expect("peer_nearby", timeout=20, peer_id=w.relay_id, name="Relay")
        relay.expect("peer_nearby", timeout=20, peer_id=ada_id, name="Ada")


def test_a_contact_that_moved_is_found_again_through_the_dht(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        relay = w.relay("--serve-dht")  # R is also the DHT bootstrap peer
        relay.expect("ready")
        # Bob's first run: Ada gets his invite from `ready`, before he holds a slot on R.
        bob = w.node("b", "bob", "--listen", f"/ip4/{B_IP}/tcp/0", name="Bob")
        first = bob.expect("ready")
        bob_id, old_invite = first["peer_id"], first["invite"]
        assert not any("p2p-circuit" in a for a in parse_invite(old_invite).addrs)
        assert bob.quit() == 0
        w.nodes.remove(bob)

        # Bob moves: another address on his network, another port; now he uses R as relay and
        # as DHT bootstrap peer. Everything Ada knows about him is stale.
        w.net.run("b", "addr", "del", f"{B_IP}/24", "dev", w.b_dev)
        w.net.run("b", "addr", "add", f"{B_NEW_IP}/24", "dev", w.b_dev)
        bob = w.node("b", "bob", "--listen", f"/ip4/{B_NEW_IP}/tcp/0",
                     "--relay", w.relay_addr(R_B_IP), "--bootstrap", w.relay_addr(R_B_IP),
                     name="Bob")
        bob.expect("ready")
        bob.expect("relay_reserved", timeout=20, relay=w.relay_id)
        # Bob republishes his record once it lists his circuits (without waiting, Ada's first
        # lookup may see only his direct address, and her next comes 30 s later).
        _wait_for_log(bob, "DHT: published our addresses", "p2p-circuit")

        ada = w.node("a", "ada", "--listen", f"/ip4/{A_IP}/tcp/0",
                     "--bootstrap", w.relay_addr(R_A_IP), name="Ada")
        ada.expect("ready")
        ada.request({"cmd": "add_contact", "invite": old_invite}, "contact_added")
        ada.expect("contact_online", timeout=40, peer_id=bob_id)
        ada.message(bob, bob_id, "found you through the DHT")

        # The DHT lookup is what found him: it answered with his circuit through R.
        found = [line for line in ada.stderr if f"DHT: {bob_id} is at" in line]
        assert any("p2p-circuit" in line for line in found), "".join(ada.stderr[-30:])
        assert ada.quit() == 0
        w.nodes.remove(ada)
        db = sqlite3.connect(tmp_path / "ada" / DB_FILE)
        try:
            rows = db.execute(
                "SELECT addr, source FROM peer_addrs WHERE peer_id = ?", (bob_id,)
            ).fetchall()
        finally:
            db.close()
        circuit = {strip_p2p(c) for c in _circuits(w.relay_id, bob_id)}
        assert any(addr in circuit and source == "dht" for addr, source in rows), rows
