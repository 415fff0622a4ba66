"""A desktop's notification service, for tests: a private D-Bus bus and a process on it that
owns ``org.freedesktop.Notifications`` with the real method signatures.

    with NotificationService(tmp_path) as service:   # sets nothing globally
        ... service.address ...                      # a bus address for the app under test
        service.wait_for(1)                          # the notifications received, as dicts
        service.click(number)                        # the user clicks one ("default" action)

The service runs in its own process (``python -m tests.notification_service ADDRESS``) so the
app's calls really cross the bus and are checked against the signatures the service declares
(``susssasa{sv}i`` for ``Notify``), as a desktop's daemon checks them. It prints each
notification as a JSON line and reads "click N" lines to send ``ActionInvoked``.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={folder}</listen>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class NotificationService:
    """A private bus with a notification service on it; stop it by leaving the ``with``."""

    def __init__(self, folder: Path) -> None:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise RuntimeError("dbus-daemon is missing: run bash packaging/setup.sh --dev")
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "bus.conf"
        config.write_text(BUS_CONFIG.format(folder=folder), encoding="utf-8")
        self._bus = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self._bus.stdout is not None
        self.address = self._bus.stdout.readline().strip()
        if not self.address:
            self._bus.kill()
            raise RuntimeError("dbus-daemon did not start")
        self._service = subprocess.Popen(
            [sys.executable, "-m", "tests.notification_service", self.address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1])
        self._lines: queue.Queue[str] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        if self._next(10.0) != "ready":
            self.stop()
            raise RuntimeError("the notification service did not start")

    def _read(self) -> None:
        assert self._service.stdout is not None
        for line in self._service.stdout:
            self._lines.put(line.strip())

    def _next(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return ""

    def poll(self) -> list[dict[str, Any]]:
        """The notifications received so far (never waits)."""
        while not self._lines.empty():
            self.received.append(json.loads(self._lines.get_nowait()))
        return self.received

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Until ``count`` notifications arrived. The app's ``Notify`` call returns only once
        the service answered, so this is for other processes' calls; the caller's own are
        already here."""
        deadline = time.monotonic() + timeout
        while len(self.poll()) < count and time.monotonic() < deadline:
            line = self._next(max(0.0, deadline - time.monotonic()))
            if line:
                self.received.append(json.loads(line))
        return self.received

    def click(self, number: int) -> None:
        assert self._service.stdin is not None
        self._service.stdin.write(f"click {number}\n")
        self._service.stdin.flush()

    def stop(self) -> None:
        for process in (self._service, self._bus):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for stream in (self._service.stdin, self._service.stdout, self._bus.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> NotificationService:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def serve(address: str) -> int:
    """The service process: own the name, print each notification, click on request."""
    from PySide6.QtCore import ClassInfo, QCoreApplication, QObject, QSocketNotifier, Signal, Slot
    from PySide6.QtDBus import QDBusConnection

    # PySide6's stubs know neither a ClassInfo mapping nor Signal types named by D-Bus.
    @ClassInfo({"D-Bus Interface": "org.freedesktop.Notifications"})  # type: ignore[call-arg]
    class Notifications(QObject):  # type: ignore[operator]
        ActionInvoked = Signal("uint", str)  # type: ignore[arg-type]
        NotificationClosed = Signal("uint", "uint")  # type: ignore[arg-type]

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        @Slot(str, "uint", str, str, str, "QStringList", "QVariantMap", int, result="uint")
        def Notify(self, app: str, replaces: int, icon: str, summary: str,
                   body: str, actions: list[str], hints: dict[str, Any], timeout: int) -> int:
            self.count += 1
            print(json.dumps({
                "id": self.count, "app": app, "replaces": replaces, "icon": icon,
                "summary": summary, "body": body, "actions": actions,
                "hints": {k: v for k, v in hints.items() if isinstance(v, str | bool | int)},
                "timeout": timeout,
            }), flush=True)
            return self.count

        @Slot(result="QStringList")
        def GetCapabilities(self) -> list[str]:
            return ["actions", "body", "sound"]

    app = QCoreApplication(sys.argv[:1])
    bus = QDBusConnection.connectToBus(address, "service")
    service = Notifications()
    options = (QDBusConnection.RegisterOption.ExportAllSlots
               | QDBusConnection.RegisterOption.ExportAllSignals)
    if not (bus.registerObject("/org/freedesktop/Notifications", service, options)
            and bus.registerService("org.freedesktop.Notifications")):
        return 1
    commands = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)

    def command() -> None:
        line = sys.stdin.readline()
        if not line:
            app.quit()
            return
        verb, _, number = line.strip().partition(" ")
        if verb == "click":
            service.ActionInvoked.emit(int(number), "default")

    commands.activated.connect(command)
    print("ready", flush=True)
    return app.exec()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
