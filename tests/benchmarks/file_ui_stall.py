"""How smooth the window stays while it receives a file.

    .venv/bin/python -m tests.benchmarks.file_ui_stall [--size 512]

A ``kith node`` process sends a random file of ``--size`` MiB to a real Kith window in this
process (Qt offscreen), whose conversation with the sender is open and showing the transfer.
A 16 ms Qt timer records how late it fires on the Qt thread during the transfer. Prints the
transfer time and rate, the worst and p99 timer lateness, and this process's peak memory.
Target: no stall over 16 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.events import Event, FileComplete, FileFailed, FileOffer
from app.store.profile import Profile
from tests.benchmarks.files import peak_rss_mib
from tests.nodeproc import NodeProcess
from tests.payload import MiB, content_hash, file_hash, make_file
from ui.shell.app import KithApp, configure_application

TICK_MS = 16


class _QuietKithApp(KithApp):
    def show_message(self, title: str, text: str) -> QMessageBox | None:
        print(f"{title}: {text}")
        return None


class StallProbe:
    """A repeating Qt timer that records how late each tick fires."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self._timer = QTimer()
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now


async def scenario(size_mib: int, tmp: Path) -> None:
    source = tmp / "payload.bin"
    expected = make_file(source, size_mib * MiB)
    with Profile.open(tmp / "window") as profile:
        profile.initialise("Window")
    sender = NodeProcess(tmp / "sender", name="Sender")
    kith = _QuietKithApp(tmp / "window", ("/ip4/127.0.0.1/tcp/0",))
    try:
        ready = sender.expect("ready")
        assert await kith.start() and kith.client is not None and kith.state is not None
        client, window = kith.client, kith.window
        assert window is not None
        done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        offers: asyncio.Queue[FileOffer] = asyncio.Queue()

        def on_event(event: Event) -> None:
            if isinstance(event, FileOffer):
                offers.put_nowait(event)
            elif isinstance(event, FileComplete | FileFailed) and not done.done():
                done.set_result(event)

        client.subscribe(on_event)
        contact = await client.add_contact(ready["invite"])
        sender.request({"cmd": "add_contact", "invite": kith.state.invite}, "contact_added")
        window.conversation.open_contact(contact)
        sender.send({"cmd": "send_file", "to": kith.state.peer_id, "path": str(source)})
        offer = await asyncio.wait_for(offers.get(), 120)
        idle_mib = peak_rss_mib(os.getpid())
        probe = StallProbe()
        probe.start()
        started = time.perf_counter()
        await client.accept_file(offer.transfer, str(tmp / "downloads"))
        result = await asyncio.wait_for(done, 600)
        elapsed = time.perf_counter() - started
        probe.stop()
        assert isinstance(result, FileComplete), result
        assert result.hash == content_hash(source), "hash mismatch"
        assert file_hash(result.path) == expected, "the received file differs"
        late = sorted(probe.late_ms)
        rows = [
            ("file", f"{size_mib} MiB"),
            ("accept to verified file",
             f"{elapsed:.2f} s ({size_mib * MiB / elapsed / 1e6:.0f} MB/s)"),
            ("Qt timer ticks", str(len(late))),
            ("worst lateness", f"{late[-1]:.1f} ms"),
            ("p99 lateness", f"{late[int(0.99 * (len(late) - 1))]:.1f} ms"),
            ("ticks over 16 ms late", str(sum(1 for x in late if x > 16))),
            ("peak memory (window process)",
             f"{peak_rss_mib(os.getpid()):.0f} MiB (before the transfer: {idle_mib:.0f} MiB)"),
            ("peak memory (sender process)", f"{peak_rss_mib(sender.proc.pid):.0f} MiB"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
    finally:
        await kith.shutdown()
        sender.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="file size in MiB")
    args = parser.parse_args()
    app = QApplication([])
    configure_application(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp, loop:
        loop.run_until_complete(scenario(args.size, Path(tmp)))


if __name__ == "__main__":
    main()
