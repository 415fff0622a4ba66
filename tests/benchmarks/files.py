"""File transfer benchmark: two ``kith node`` processes on 127.0.0.1.

    .venv/bin/python -m tests.benchmarks.files [--size 1024] [--dir /tmp]

Moves a random file of ``--size`` MiB from one node to the other and prints a table: the time
to hash and offer it, the time from accept to the verified, renamed file, MB/s, and the peak
resident memory (VmHWM from /proc/<pid>/status) of each process. Memory should stay flat: it
does not grow with the file size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from tests.nodeproc import NodeProcess

MiB = 1 << 20


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_file(path: Path, size: int) -> str:
    whole = hashlib.blake2b(digest_size=32)
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(left, 4 * MiB))
            whole.update(data)
            f.write(data)
            left -= len(data)
    return whole.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    args = parser.parse_args()
    size = args.size * MiB
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        source = Path(tmp) / "payload.bin"
        expected = make_file(source, size)
        ada = NodeProcess(Path(tmp) / "ada", name="Ada")
        bob = NodeProcess(Path(tmp) / "bob", name="Bob")
        try:
            ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
            ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
            bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
            ada.expect("contact_online", peer_id=ready_b["peer_id"])
            base_a, base_b = peak_rss_mib(ada.proc.pid), peak_rss_mib(bob.proc.pid)

            started = time.perf_counter()
            ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
            tid = ada.expect("file_offered", timeout=3600)["transfer"]
            hashed_s = time.perf_counter() - started
            bob.expect("file_offer", transfer=tid, timeout=60)

            started = time.perf_counter()
            bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(Path(tmp) / "in")},
                        "file_accepted")
            done = bob.expect("file_complete", transfer=tid, timeout=3600)
            moved_s = time.perf_counter() - started
            assert done["hash"] == expected, "hash mismatch"
            peak_a, peak_b = peak_rss_mib(ada.proc.pid), peak_rss_mib(bob.proc.pid)
        finally:
            ada.quit(timeout=30)
            bob.quit(timeout=30)

    mb = size / 1e6
    print(f"{'file':<28}{args.size} MiB ({mb:.0f} MB), chunks of 1 MiB")
    print(f"{'hash + offer (sender)':<28}{hashed_s:8.2f} s {mb / hashed_s:8.1f} MB/s")
    print(f"{'accept -> verified file':<28}{moved_s:8.2f} s {mb / moved_s:8.1f} MB/s")
    print(f"{'peak RSS sender':<28}{peak_a:8.1f} MiB (idle before: {base_a:.1f} MiB)")
    print(f"{'peak RSS receiver':<28}{peak_b:8.1f} MiB (idle before: {base_b:.1f} MiB)")


if __name__ == "__main__":
    main()
