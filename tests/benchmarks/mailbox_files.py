"""A file through a mailbox, end to end: three ``kith node`` processes on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.mailbox_files [--mb 50] [--runs 1] [--dir /tmp]

Mia serves a mailbox, Bob uses it; Bob is offline when Ada offers him a file, so Ada leaves it
at Mia (from ``send_file`` to ``file_deposited``) and quits; Bob starts, accepts it and reads it
from Mia (from ``accept_file`` to ``file_complete``), verified. Prints both times and rates per
run, the medians, and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.nodeproc import NodeProcess


def one_run(tmp: Path, size: int) -> tuple[float, float]:
    mia = NodeProcess(tmp / "mia", "--serve-mailbox", name="Mia")
    ada = bob = None
    try:
        ready_m = mia.expect("ready")
        bob = NodeProcess(tmp / "bob", "--mailbox", ready_m["addrs"][0], name="Bob")
        ready_b = bob.expect("ready")
        mia.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.expect("mailbox_registered", timeout=30)
        ada = NodeProcess(tmp / "ada", name="Ada")
        ready_a = ada.expect("ready")
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        ada.expect("contact_mailboxes", peer_id=ready_b["peer_id"])  # from the invite
        ada.expect("contact_online", peer_id=ready_b["peer_id"])  # or no offline to see
        assert bob.quit() == 0
        ada.expect("contact_offline", peer_id=ready_b["peer_id"])
        source = tmp / "night.bin"
        source.write_bytes(os.urandom(size))
        start = time.perf_counter()
        ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
        transfer = ada.expect("file_offered", timeout=60)["transfer"]
        ada.expect("file_deposited", transfer=transfer, timeout=600)
        upload = time.perf_counter() - start
        assert ada.quit() == 0
        ada = None
        bob = NodeProcess(tmp / "bob", "--mailbox", ready_m["addrs"][0], name="Bob")
        bob.expect("file_offer", transfer=transfer, timeout=60)
        start = time.perf_counter()
        bob.request({"cmd": "accept_file", "transfer": transfer, "dir": str(tmp / "in")},
                    "file_accepted")
        done = bob.expect("file_complete", transfer=transfer, timeout=600)
        download = time.perf_counter() - start
        assert Path(done["path"]).stat().st_size == size
        return upload, download
    finally:
        for node in (ada, bob, mia):
            if node is not None:
                node.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    size = args.mb * 1_000_000
    print(f"a {args.mb} MB file through a mailbox, load {os.getloadavg()[0]:.2f}")
    print("| run | Ada leaves it at Mia | Bob reads it from Mia |")
    print("|-----|----------------------|-----------------------|")
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            up, down = one_run(Path(tmp), size)
        runs.append((up, down))
        print(f"| {i + 1:3} | {up:6.1f} s, {size / up / 1e6:5.1f} MB/s "
              f"| {down:6.1f} s, {size / down / 1e6:5.1f} MB/s |")
    if len(runs) > 1:
        up, down = (statistics.median(r[i] for r in runs) for i in range(2))
        print(f"| med | {up:6.1f} s, {size / up / 1e6:5.1f} MB/s "
              f"| {down:6.1f} s, {size / down / 1e6:5.1f} MB/s |")


if __name__ == "__main__":
    main()
