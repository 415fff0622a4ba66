"""File transfer benchmark: two ``kith node`` processes on 127.0.0.1, and magic-wormhole.

    .venv/bin/python -m tests.benchmarks.files [--size 1024] [--dir /tmp] [--no-wormhole]

Moves a random file of ``--size`` MiB from one node to the other and prints a table: the time
to hash and offer it, the time from accept to the verified, renamed file, the whole send ->
file-on-disk time, MB/s, and the peak resident memory (VmHWM from /proc/<pid>/status) of each
process. Memory should stay flat: it does not grow with the file size.

Then it moves the same file with magic-wormhole (``pip install -e '.[bench]'``, not part of
``dev``) through a mailbox server and a transit relay it runs on 127.0.0.1, and prints both
send -> file-on-disk times and their ratio. Both wormhole sides run ``--no-listen``: their
direct-connection hints would name this machine's other interfaces, and the benchmark stays on
127.0.0.1, so the bytes go through the local relay (one extra local hop).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def file_hash(path: Path) -> str:
    whole = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while data := f.read(4 * MiB):
            whole.update(data)
    return whole.hexdigest()


@dataclass
class KithResult:
    hashed_s: float
    moved_s: float
    total_s: float
    peak_a: float
    peak_b: float
    base_a: float
    base_b: float


def run_kith(tmp: Path, source: Path, expected: str) -> KithResult:
    ada = NodeProcess(tmp / "ada", name="Ada")
    bob = NodeProcess(tmp / "bob", name="Bob")
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

        accepted = time.perf_counter()
        bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(tmp / "in")},
                    "file_accepted")
        done = bob.expect("file_complete", transfer=tid, timeout=3600)
        finished = time.perf_counter()
        assert done["hash"] == expected, "hash mismatch"
        peak_a, peak_b = peak_rss_mib(ada.proc.pid), peak_rss_mib(bob.proc.pid)
    finally:
        ada.quit(timeout=30)
        bob.quit(timeout=30)
    return KithResult(hashed_s, finished - accepted, finished - started, peak_a, peak_b,
                      base_a, base_b)


@dataclass
class WormholeResult:
    total_s: float
    peak_send: float
    peak_receive: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _wait_rusage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """(exit status, peak RSS in MiB) of a child, from wait4's rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("wormhole did not finish in time")
        time.sleep(0.005)


def run_wormhole(tmp: Path, source: Path, expected: str) -> WormholeResult | str:
    """send -> file on disk with magic-wormhole on 127.0.0.1, or why it could not run."""
    bindir = Path(sys.executable).parent
    twistd, wormhole = bindir / "twistd", bindir / "wormhole"
    if not wormhole.exists() or not twistd.exists():
        return "not installed (pip install -e '.[bench]')"
    mailbox_port, relay_port = _free_port(), _free_port()
    work = tmp / "wormhole"
    work.mkdir()
    servers = [
        subprocess.Popen([str(twistd), "-n", "--pidfile=", "-l", str(work / "mailbox.log"),
                          "wormhole-mailbox", f"--port=tcp:{mailbox_port}:interface=127.0.0.1",
                          f"--channel-db={work / 'relay.sqlite'}"], cwd=work),
        subprocess.Popen([str(twistd), "-n", "--pidfile=", "-l", str(work / "transit.log"),
                          "transitrelay", f"--port=tcp:{relay_port}:interface=127.0.0.1"],
                         cwd=work),
    ]
    try:
        _wait_listening(mailbox_port, servers[0])
        _wait_listening(relay_port, servers[1])
        common = [str(wormhole), "--relay-url", f"ws://127.0.0.1:{mailbox_port}/v1",
                  "--transit-helper", f"tcp:127.0.0.1:{relay_port}"]
        code = "7-kith-bench"
        out = work / "in"
        out.mkdir()
        log_s, log_r = open(work / "send.out", "wb"), open(work / "receive.out", "wb")  # noqa: SIM115
        with log_s, log_r:
            started = time.perf_counter()
            sender = subprocess.Popen(
                [*common, "send", "--no-listen", "--hide-progress", "--no-qr", "--code", code,
                          str(source)], stdout=log_s, stderr=subprocess.STDOUT, cwd=work)
            receiver = subprocess.Popen(
                [*common, "receive", "--no-listen", "--hide-progress", "--accept-file",
                          "-o", str(out), code], stdout=log_r, stderr=subprocess.STDOUT, cwd=work)
            status_r, peak_r = _wait_rusage(receiver, 3600)
            total = time.perf_counter() - started
            status_s, peak_s = _wait_rusage(sender, 60)
        if status_r or status_s:
            tail = (work / "receive.out").read_text(errors="replace")[-300:]
            return f"wormhole failed (exit {status_r}/{status_s}): {tail!r}"
        received = out / source.name
        if file_hash(received) != expected:
            return "wormhole delivered a different file"
        return WormholeResult(total, peak_s, peak_r)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--no-wormhole", action="store_true", help="skip magic-wormhole")
    args = parser.parse_args()
    size = args.size * MiB
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "payload.bin"
        expected = make_file(source, size)
        kith = run_kith(tmp, source, expected)
        shutil.rmtree(tmp / "in", ignore_errors=True)  # the disk holds one copy at a time
        worm: WormholeResult | str = "skipped (--no-wormhole)"
        if not args.no_wormhole:
            try:
                worm = run_wormhole(tmp, source, expected)
            except (OSError, RuntimeError) as exc:
                worm = f"unavailable: {exc}"

    mb = size / 1e6

    def row(label: str, value: str) -> None:
        print(f"{label:<34}{value}")

    def timed(seconds: float) -> str:
        return f"{seconds:8.2f} s {mb / seconds:8.1f} MB/s"

    row("file", f"{args.size} MiB ({mb:.0f} MB), Kith chunks of 1 MiB, {os.cpu_count()} CPUs")
    row("Kith hash + offer (sender)", timed(kith.hashed_s))
    row("Kith accept -> verified file", timed(kith.moved_s))
    row("Kith send -> file on disk", timed(kith.total_s))
    row("Kith peak RSS sender", f"{kith.peak_a:8.1f} MiB (idle before: {kith.base_a:.1f} MiB)")
    row("Kith peak RSS receiver", f"{kith.peak_b:8.1f} MiB (idle before: {kith.base_b:.1f} MiB)")
    if isinstance(worm, str):
        row("wormhole send -> file on disk", f"unavailable: {worm}")
        return
    row("wormhole send -> file on disk", timed(worm.total_s) + " (via a local transit relay)")
    row("wormhole peak RSS send / receive", f"{worm.peak_send:8.1f} / {worm.peak_receive:.1f} MiB")
    row("ratio Kith / wormhole (time)", f"{kith.total_s / worm.total_s:8.2f}x")

if __name__ == "__main__":
    main()
