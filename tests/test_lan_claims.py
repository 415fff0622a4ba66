"""Hostile LAN records: an mDNS record is a claim anyone can make in anyone's name.

Ada (a real ``kith node --lan``) knows Bob by an invite. Mallory, on the same link (private
namespaces, documentation addresses), announces ``_kith._tcp`` records in Bob's name pointing
at her own addresses, over and over, while running a genuine Kith of her own. Ada must report
only Mallory as nearby (her key is proven by a connection), never Bob, and keep Bob's invite
address in his address book.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.store.contacts import MAX_ADDRS_PER_PEER, ContactStore
from app.store.db import open_database
from app.store.profile import DB_FILE
from tests.netns import namespaces
from tests.nodeproc import NodeProcess

ADA_IP = "192.0.2.1"
MALLORY_IPS = ["192.0.2.2", *(f"192.0.2.{i}" for i in range(10, 17))]  # 8: one record's worth
UPDATES = 5  # 5 records of 8 addresses: more than a contact's 32-entry book

# Mallory's announcer: a record in Bob's name for each port read from standard input.
ANNOUNCER = """
import socket, sys
from zeroconf import IPVersion, ServiceInfo, Zeroconf

bob, ips = sys.argv[1], sys.argv[2].split(",")
zc = Zeroconf(interfaces=[ips[0]], ip_version=IPVersion.V4Only)
name = f"{bob}._kith._tcp.local."
registered = False
for line in sys.stdin:
    info = ServiceInfo(
        "_kith._tcp.local.", name, port=int(line), server=f"{bob}.local.",
        addresses=[socket.inet_aton(ip) for ip in ips],
        properties={b"id": bob.encode(), b"name": b"Bob"})
    if registered:
        zc.update_service(info)
    else:
        zc.register_service(info, allow_name_change=False)
        registered = True
    print("announced", line.strip(), flush=True)
zc.close()
"""


def test_other_sources_never_push_out_invite_addresses(tmp_path: Path) -> None:
    conn = open_database(tmp_path / DB_FILE)
    store = ContactStore(conn)
    bob = Identity.generate().peer_id
    store.add_addrs(bob, ["/ip4/203.0.113.7/tcp/4001"], "invite")
    for i in range(3 * MAX_ADDRS_PER_PEER):
        store.add_addrs(bob, [f"/ip4/192.0.2.{i % 200 + 1}/tcp/{1000 + i}"], "lan")
    book = store.addrs(bob)
    assert len(book) == MAX_ADDRS_PER_PEER
    assert "/ip4/203.0.113.7/tcp/4001" in book
    # An address first learnt elsewhere becomes the invite's when an invite names it.
    store.add_addrs(bob, [book[0]], "invite")
    for i in range(MAX_ADDRS_PER_PEER):
        store.add_addrs(bob, [f"/ip4/198.51.100.{i + 1}/tcp/9"], "dht")
    assert {"/ip4/203.0.113.7/tcp/4001", book[0]} <= set(store.addrs(bob))
    conn.close()


def _wait_for_line(node: NodeProcess, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in node.stderr):
        assert time.monotonic() < deadline, f"no {text!r}; stderr: {''.join(node.stderr[-20:])}"
        time.sleep(0.05)


def test_a_record_in_someone_elses_name_proves_nothing(tmp_path: Path) -> None:
    bob = Identity.generate().peer_id
    invite_addr = "/ip4/203.0.113.7/tcp/4001"
    nodes: list[NodeProcess] = []
    announcer: subprocess.Popen[str] | None = None
    with namespaces("a", "m") as net:
        _, dev_m = net.link("a", f"{ADA_IP}/24", "m", f"{MALLORY_IPS[0]}/24")
        for ip in MALLORY_IPS[1:]:
            net.run("m", "addr", "add", f"{ip}/24", "dev", dev_m)
        try:
            ada = NodeProcess(tmp_path / "ada", "--lan", "--listen", f"/ip4/{ADA_IP}/tcp/0",
                              name="Ada", prefix=net.exec("a"))
            nodes.append(ada)
            ada.expect("ready")
            ada.request({"cmd": "add_contact",
                         "invite": ContactInvite(bob, "Bob", (invite_addr,)).to_link()},
                        "contact_added")
            mallory = NodeProcess(tmp_path / "mallory", "--lan", "--listen",
                                  f"/ip4/{MALLORY_IPS[0]}/tcp/0", name="Mallory",
                                  prefix=net.exec("m"))
            nodes.append(mallory)
            ready = mallory.expect("ready")
            mallory_port = int(ready["addrs"][0].split("/")[4])
            # A genuine neighbour is found: its own key is proven by a connection.
            ada.expect("peer_nearby", timeout=20, peer_id=ready["peer_id"], name="Mallory")

            announcer = subprocess.Popen(
                [*net.exec("m"), sys.executable, "-c", ANNOUNCER, bob, ",".join(MALLORY_IPS)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert announcer.stdin is not None and announcer.stdout is not None
            # The first record points at Mallory's Kith (a wrong key), the others at closed
            # ports; each is sent once Ada has dealt with the one before.
            for n, port in enumerate([mallory_port, *range(20001, 20001 + UPDATES - 1)]):
                announcer.stdin.write(f"{port}\n")
                assert announcer.stdout.readline().startswith("announced")
                _wait_for_line(ada, f"tcp/{port}; nothing there proves its key")
                assert n < UPDATES

            while not ada.events.empty():
                ada.seen.append(ada.events.get_nowait())
            assert not [e for e in ada.seen if e.get("peer_id") == bob
                        and e.get("event") in ("peer_nearby", "contact_online")]
            db = sqlite3.connect(f"file:{tmp_path / 'ada' / DB_FILE}?mode=ro", uri=True)
            try:
                book = [r[0] for r in db.execute(
                    "SELECT addr FROM peer_addrs WHERE peer_id = ?", (bob,))]
            finally:
                db.close()
            assert book == [invite_addr]
        finally:
            if announcer is not None:
                announcer.kill()
                announcer.wait()
            for node in nodes:
                with suppress(subprocess.TimeoutExpired):
                    assert node.quit() == 0, "".join(node.stderr[-20:])
