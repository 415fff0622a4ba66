"""The window's memory: idle after start, and the peak while it receives a file.

    .venv/bin/python -m tests.benchmarks.window_memory [--runs 5] [--size 512] [--idle 20]
                                                       [--against DIR]

Each run starts the real window (``python -m app``, Qt offscreen) in its own process, three
times over:

* **first run**: on an empty profile, so the window shows its first-run dialog and no node
  runs (the figure measured before the node was part of it); VmRSS after ``--idle`` seconds.
* **idle**: on a profile with one contact, a ``kith node`` peer on 127.0.0.1 (LAN discovery
  off); VmRSS ``--idle`` seconds after launch, once the contact is online.
* **peak receiving**: the contact (verified, and the window set to accept its files
  automatically) then sends ``--size`` MiB; the window's VmHWM once the sender has heard the
  file is whole, which is checked byte for byte on disk.

Prints each run and a table: median and spread (min - max) of the runs, in MiB, with RssAnon
and RssFile of the idle window. ``--against DIR`` runs the ``app`` and ``ui`` of another
checkout (e.g. ``git archive REV | tar -x -C DIR``) in alternate runs, which one goes first
alternating too, so a machine that gets busier hurts both alike. Both trees' modules are first
compiled to bytecode, as ``packaging/setup.sh`` leaves a checkout: where the environment says
``PYTHONDONTWRITEBYTECODE`` a window would otherwise compile every module at every start and
hold 1.4 MiB more, and a tree exported for ``--against`` would differ from the checkout in that.
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.store.profile import Profile
from tests.nodeproc import LOOPBACK, NodeProcess
from tests.payload import MiB, file_hash, make_file

ROOT = Path(__file__).resolve().parents[2]


def proc_status(pid: int) -> dict[str, float]:
    """The memory lines of /proc/<pid>/status, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0]) / 1024
    return found


class Window:
    """``python -m app`` offscreen on ``profile``, from ``source`` (a checkout)."""

    def __init__(self, profile: Path, source: Path) -> None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        self.log = open(profile.parent / f"{profile.name}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--profile", str(profile), "--listen", LOOPBACK],
            cwd=source, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def status_after(self, seconds: float) -> dict[str, float]:
        left = self.started + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)  # the figure is the memory this long after launch
        if self.proc.poll() is not None:
            raise RuntimeError(f"the window exited with {self.proc.returncode}")
        return proc_status(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # an orderly shutdown, as on logout
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Run:
    first_run: float
    idle: dict[str, float]
    peak: float
    seconds: float


def prepare_window_profile(tmp: Path, sender: NodeProcess, invite: str, size: int) -> Path:
    """A profile whose only contact is ``sender``, verified, whose files up to ``size`` bytes
    are accepted automatically; the sender has it as a contact too."""
    profile = tmp / "window"
    with Profile.open(profile) as opened:
        opened.initialise("Window")
        opened.settings.lan_discovery = False  # the network rule: 127.0.0.1 only
        opened.settings.auto_accept_verified_bytes = size
        opened.settings.download_dir = str(tmp / "downloads")
        opened.save_settings()
        db_path = opened.db_path
    headless = NodeProcess(profile)
    try:
        ready = headless.expect("ready")
        headless.request({"cmd": "add_contact", "invite": invite}, "contact_added")
        sender.request({"cmd": "add_contact", "invite": ready["invite"]}, "contact_added")
    finally:
        headless.quit(timeout=30)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE contacts SET verified = 1")
    conn.close()
    return profile


def one_run(source: Path, size_mib: int, idle_s: float, payload: Path, expected: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="kith-winmem-") as name:
        tmp = Path(name)
        empty = Window(tmp / "empty", source)
        try:
            first_run = empty.status_after(idle_s)["VmRSS"]
        finally:
            empty.close()

        sender = NodeProcess(tmp / "sender", name="Sender")
        window: Window | None = None
        try:
            ready = sender.expect("ready")
            profile = prepare_window_profile(tmp, sender, ready["invite"], size_mib * MiB)
            with Profile.open(profile) as opened:
                window_id = opened.identity.peer_id
            window = Window(profile, source)
            sender.expect("contact_online", timeout=60, peer_id=window_id)
            idle = window.status_after(idle_s)
            started = time.monotonic()
            sender.send({"cmd": "send_file", "to": window_id, "path": str(payload)})
            tid = sender.expect("file_offered", timeout=600)["transfer"]
            sender.expect("file_complete", timeout=1800, transfer=tid)
            seconds = time.monotonic() - started
            peak = proc_status(window.proc.pid)["VmHWM"]
            received = tmp / "downloads" / payload.name
            assert file_hash(received) == expected, "the received file differs"
        finally:
            if window is not None:
                window.close()
            sender.quit(timeout=30)
        return Run(first_run, idle, peak, seconds)


def compile_modules(source: Path) -> None:
    """Compile ``source``'s app and ui to bytecode where it is missing or stale."""
    for part in ("app", "ui"):
        compileall.compile_dir(source / part, quiet=1,
                               invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f} - {max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="file size in MiB")
    parser.add_argument("--idle", type=float, default=20, help="seconds after launch")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    sources = {"this": ROOT}
    if args.against is not None:
        sources["against"] = args.against.resolve()
    results: dict[str, list[Run]] = {label: [] for label in sources}
    for source in sources.values():
        compile_modules(source)
    with tempfile.TemporaryDirectory(prefix="kith-winmem-payload-") as name:
        payload = Path(name) / "payload.bin"
        expected = make_file(payload, args.size * MiB)
        for i in range(args.runs):
            order = list(sources.items())
            if i % 2:
                order.reverse()
            for label, source in order:
                run = one_run(source, args.size, args.idle, payload, expected)
                results[label].append(run)
                print(f"run {i + 1} {label}: first run {run.first_run:.1f}, idle "
                      f"{run.idle['VmRSS']:.1f} (anon {run.idle['RssAnon']:.1f}, file "
                      f"{run.idle['RssFile']:.1f}), peak {run.peak:.1f} MiB; "
                      f"{args.size} MiB in {run.seconds:.1f} s", flush=True)
    load = os.getloadavg()
    print(f"\nwindow process, MiB: median (min - max) of {args.runs} runs; {args.size} MiB "
          f"received; idle {args.idle:.0f} s after launch; load {load[0]:.2f} {load[1]:.2f}")
    rows = [
        ("first run (empty profile), VmRSS", lambda r: r.first_run),
        ("idle, node running, VmRSS", lambda r: r.idle["VmRSS"]),
        ("  of which RssAnon", lambda r: r.idle["RssAnon"]),
        ("  of which RssFile", lambda r: r.idle["RssFile"]),
        (f"peak receiving {args.size} MiB, VmHWM", lambda r: r.peak),
        ("transfer, s", lambda r: r.seconds),
    ]
    header = "| measure | " + " | ".join(results) + " |"
    print(header)
    print("|---|" + "---|" * len(results))
    for title, pick in rows:
        cells = [spread([pick(run) for run in runs]) for runs in results.values()]
        print(f"| {title} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
