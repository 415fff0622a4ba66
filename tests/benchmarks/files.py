"""File transfer benchmark: two ``kith node`` processes on 127.0.0.1, and magic-wormhole.

    .venv/bin/python -m tests.benchmarks.files [--size 1024] [--runs 3] [--gui-size 512]
                                               [--dir /tmp] [--no-wormhole] [--against REV]

Moves a random file of ``--size`` MiB from one node to the other and prints a table: the time
to hash and offer it, the time from accept to the verified, renamed file, the whole send ->
file-on-disk time, MB/s, each run's time and their spread around the median, the CPU seconds
per GB of each process (utime + stime from /proc, which a busy machine moves far less than
wall time; the medians, then each run's, in the order of the times), and the peak resident
memory (VmHWM from /proc/<pid>/status) of each process. Memory should stay flat: it does not
grow with the file size.

Then it moves the same file with magic-wormhole (``pip install -e '.[bench]'``, not part of
``dev``) through a mailbox server and a transit relay it runs on 127.0.0.1, and prints both
send -> file-on-disk times and their ratio. Kith and wormhole runs alternate, which one goes
first alternates too, and medians are compared, so a busy machine hurts both alike. Both
wormhole sides run ``--no-listen``: their direct-connection hints would name this machine's
other interfaces, and the benchmark stays on 127.0.0.1, so the bytes go through the local relay
(one extra local hop).

``--against REV`` (a git revision, or a directory holding an ``app`` package) also moves the
file with that revision's Kith in every round, in rotating order with this tree's and
wormhole's, and prints its time and CPU seconds next to this tree's.

Last, a Kith window in its own process (``file_ui_stall``) receives ``--gui-size`` MiB with the
conversation open, and its worst Qt-thread stall and peak memory are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.files import choose_chunk_size
from tests.benchmarks.rooms import export_revision
from tests.nodeproc import NodeProcess
from tests.payload import MiB, content_hash, file_hash, make_file

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, all its threads (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")




@dataclass
class KithResult:
    hashed_s: float
    moved_s: float
    total_s: float
    peak_a: float
    peak_b: float
    base_a: float
    base_b: float
    cpu_a: float  # CPU seconds from send to the verified file, sender
    cpu_b: float  # and receiver


def run_kith(tmp: Path, source: Path, expected: str, kith_hash: str,
             app: Path | None = None) -> KithResult:
    """One transfer between two ``kith node`` processes (of the ``app`` package under
    ``app``, this tree's by default)."""
    ada = NodeProcess(tmp / "ada", name="Ada", source=app)
    bob = NodeProcess(tmp / "bob", name="Bob", source=app)
    try:
        ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
        ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
        bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
        ada.expect("contact_online", peer_id=ready_b["peer_id"])
        base_a, base_b = peak_rss_mib(ada.proc.pid), peak_rss_mib(bob.proc.pid)
        cpu_a, cpu_b = cpu_seconds(ada.proc.pid), cpu_seconds(bob.proc.pid)

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
        cpu_a, cpu_b = cpu_seconds(ada.proc.pid) - cpu_a, cpu_seconds(bob.proc.pid) - cpu_b
        assert done["hash"] == kith_hash, "hash mismatch"
        peak_a, peak_b = peak_rss_mib(ada.proc.pid), peak_rss_mib(bob.proc.pid)
        assert file_hash(done["path"]) == expected, "the received file differs"
    finally:
        ada.quit(timeout=30)
        bob.quit(timeout=30)
    return KithResult(hashed_s, finished - accepted, finished - started, peak_a, peak_b,
                      base_a, base_b, cpu_a, cpu_b)


@dataclass
class WormholeResult:
    total_s: float
    peak_send: float
    peak_receive: float
    cpu_send: float     # CPU seconds of the whole run, sender
    cpu_receive: float  # receiver
    cpu_relay: float    # the transit relay (the mailbox server does almost nothing)


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


def _wait_rusage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float, float]:
    """(exit status, peak RSS in MiB, CPU seconds) of a child, from wait4's rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
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
            relay_cpu = cpu_seconds(servers[1].pid)
            started = time.perf_counter()
            sender = subprocess.Popen(
                [*common, "send", "--no-listen", "--hide-progress", "--no-qr", "--code", code,
                          str(source)], stdout=log_s, stderr=subprocess.STDOUT, cwd=work)
            receiver = subprocess.Popen(
                [*common, "receive", "--no-listen", "--hide-progress", "--accept-file",
                          "-o", str(out), code], stdout=log_r, stderr=subprocess.STDOUT, cwd=work)
            status_r, peak_r, cpu_r = _wait_rusage(receiver, 3600)
            total = time.perf_counter() - started
            status_s, peak_s, cpu_s = _wait_rusage(sender, 60)
            relay_cpu = cpu_seconds(servers[1].pid) - relay_cpu
        if status_r or status_s:
            tail = (work / "receive.out").read_text(errors="replace")[-300:]
            return f"wormhole failed (exit {status_r}/{status_s}): {tail!r}"
        received = out / source.name
        if file_hash(received) != expected:
            return "wormhole delivered a different file"
        return WormholeResult(total, peak_s, peak_r, cpu_s, cpu_r, relay_cpu)
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


def run_gui(size_mib: int) -> list[str]:
    """The window's side: ``file_ui_stall`` in its own process (Qt wants a fresh process)."""
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.file_ui_stall",
                           "--size", str(size_mib)], capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode:
        return [f"failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"]
    return done.stdout.strip().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=3,
                        help="Kith and wormhole runs, alternating; medians are compared (3)")
    parser.add_argument("--gui-size", type=int, default=512,
                        help="MiB the window receives for the stall figures (512; 0 skips)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--no-wormhole", action="store_true", help="skip magic-wormhole")
    parser.add_argument("--against", help="a git revision (or a directory holding an app "
                        "package) whose Kith also runs in every round, in rotating order")
    args = parser.parse_args()
    size = args.size * MiB
    kiths: list[KithResult] = []
    others: list[KithResult] = []
    worms: list[WormholeResult] = []
    worm_error = "skipped (--no-wormhole)" if args.no_wormhole else ""
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "payload.bin"
        expected = make_file(source, size)
        kith_hash = content_hash(source)
        other_app = None
        contenders = ["kith", "wormhole"]
        if args.against is not None:
            (tmp / "against").mkdir()
            other_app = export_revision(args.against, tmp / "against")
            contenders.insert(1, "against")
        for run in range(args.runs):
            # Rotate who goes first: on a VM, the first writer of fresh memory pays for the
            # host backing it, and the next one reuses what the first freed.
            turn = run % len(contenders)
            order = contenders[turn:] + contenders[:turn]
            for who in order:
                run_dir = tmp / f"{who}{run}"
                run_dir.mkdir()
                try:
                    if who == "kith":
                        kiths.append(run_kith(run_dir, source, expected, kith_hash))
                    elif who == "against":
                        others.append(run_kith(run_dir, source, expected, kith_hash, other_app))
                    elif not worm_error:
                        worm = run_wormhole(run_dir, source, expected)
                        if isinstance(worm, str):
                            worm_error = worm
                        else:
                            worms.append(worm)
                except (OSError, RuntimeError) as exc:
                    if who != "wormhole":
                        raise
                    worm_error = f"unavailable: {exc}"
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)  # one copy on disk at a time
    gui = run_gui(args.gui_size) if args.gui_size > 0 else []

    mb = size / 1e6

    def row(label: str, value: str) -> None:
        print(f"{label:<34}{value}")

    def timed(seconds: float) -> str:
        return f"{seconds:8.2f} s {mb / seconds:8.1f} MB/s"

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def spread(values: list[float]) -> str:
        mid = median(values)
        return f"{(min(values) / mid - 1) * 100:+.0f} % to {(max(values) / mid - 1) * 100:+.0f} %"

    def per_run_cpu(pairs: list[tuple[float, float]]) -> str:
        # Beside each run's time: a fast run with the same CPU was the machine's, not ours.
        return ", ".join(f"{a / mb * 1e3:.2f} / {b / mb * 1e3:.2f}" for a, b in pairs)

    chunk_mib = choose_chunk_size(size) // MiB
    row("file", f"{args.size} MiB ({mb:.0f} MB), Kith chunks of {chunk_mib} MiB, "
                f"{os.cpu_count()} CPUs")
    row("runs (medians below)", str(args.runs))
    row("Kith hash + offer (sender)", timed(median([k.hashed_s for k in kiths])))
    row("Kith accept -> verified file", timed(median([k.moved_s for k in kiths])))
    kith_total = median([k.total_s for k in kiths])
    row("Kith send -> file on disk", timed(kith_total))
    row("  each run", ", ".join(f"{k.total_s:.2f} s" for k in kiths))
    row("  spread", f"{spread([k.total_s for k in kiths])} from the median")
    row("Kith CPU s/GB sender / receiver",
        f"{median([k.cpu_a for k in kiths]) / mb * 1e3:8.2f} / "
        f"{median([k.cpu_b for k in kiths]) / mb * 1e3:.2f} (utime + stime, medians)")
    row("  each run", per_run_cpu([(k.cpu_a, k.cpu_b) for k in kiths]))
    row("Kith peak RSS sender", f"{max(k.peak_a for k in kiths):8.1f} MiB "
                                f"(idle before: {kiths[0].base_a:.1f} MiB)")
    row("Kith peak RSS receiver", f"{max(k.peak_b for k in kiths):8.1f} MiB "
                                  f"(idle before: {kiths[0].base_b:.1f} MiB)")
    if others:
        other_total = median([k.total_s for k in others])
        row(f"against {args.against}: send -> disk", timed(other_total))
        row("  each run", ", ".join(f"{k.total_s:.2f} s" for k in others))
        row("  CPU s/GB sender / receiver",
            f"{median([k.cpu_a for k in others]) / mb * 1e3:8.2f} / "
            f"{median([k.cpu_b for k in others]) / mb * 1e3:.2f} (utime + stime, medians)")
        row("ratio this tree / against (time)", f"{kith_total / other_total:8.2f}x")
    if worms:
        worm_total = median([w.total_s for w in worms])
        row("wormhole send -> file on disk", timed(worm_total) + " (via a local transit relay)")
        row("  each run", ", ".join(f"{w.total_s:.2f} s" for w in worms))
        row("  spread", f"{spread([w.total_s for w in worms])} from the median")
        row("wormhole CPU s/GB send / receive",
            f"{median([w.cpu_send for w in worms]) / mb * 1e3:8.2f} / "
            f"{median([w.cpu_receive for w in worms]) / mb * 1e3:.2f} "
            f"(+ relay {median([w.cpu_relay for w in worms]) / mb * 1e3:.2f})")
        row("  each run", per_run_cpu([(w.cpu_send, w.cpu_receive) for w in worms]))
        row("wormhole peak RSS send / receive",
            f"{max(w.peak_send for w in worms):8.1f} / "
            f"{max(w.peak_receive for w in worms):.1f} MiB")
        row("ratio Kith / wormhole (time)", f"{kith_total / worm_total:8.2f}x")
    if worm_error:
        row("wormhole", worm_error)
    for line in gui:
        row("GUI receiving", line)


if __name__ == "__main__":
    main()
