"""Driving ``kith node`` as a real subprocess over JSON lines, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


class NodeProcess:
    """One ``kith node``; ``expect`` waits for an event matching the given fields."""

    def __init__(
        self, profile: Path, *args: str, name: str | None = None, prefix: list[str] | None = None,
        crash_at: list[str] | None = None, source: Path | None = None,
    ) -> None:
        """``prefix`` goes before the command, e.g. ``["ip", "netns", "exec", "NS"]``;
        ``crash_at`` makes the node SIGKILL itself at one moment (``tests.crash_at``), e.g.
        ``["app.node.files.downloading:link_final"]``; ``source`` runs the ``app`` package of
        another checkout (a benchmark comparing two versions), with this one's environment."""
        runner = ["tests.crash_at", *crash_at, "--"] if crash_at else ["app"]
        cmd = [*(prefix or []), sys.executable, "-m", *runner, "node", "--profile", str(profile)]
        if not any(a == "--listen" for a in args):
            cmd += ["--listen", LOOPBACK]
        if name is not None:
            cmd += ["--name", name]
        cmd += list(args)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1, cwd=source,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.arrivals: list[tuple[float, dict[str, Any]]] = []  # (monotonic time read, event)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.arrivals.append((time.monotonic(), event))
            self.events.put(event)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, obj: dict[str, Any] | str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        """The next not-yet-consumed event named ``event`` whose fields match."""
        for i, seen in enumerate(self.seen):
            if seen.get("event") == event and all(seen.get(k) == v for k, v in fields.items()):
                return self.seen.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {event} {fields} within {timeout}s; seen {self.seen}; "
                    f"stderr tail: {''.join(self.stderr[-20:])}"
                )
            try:
                got = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if got.get("event") == event and all(got.get(k) == v for k, v in fields.items()):
                return got
            self.seen.append(got)

    def forget_unconsumed(self) -> None:
        """Drop the events read but never waited for: a benchmark that waits for some events
        only keeps each ``expect`` from scanning all the others it left."""
        self.seen.clear()

    def request(self, cmd: dict[str, Any], reply: str, timeout: float = 20) -> dict[str, Any]:
        self.send(cmd)
        return self.expect(reply, timeout=timeout)

    def message(self, peer: NodeProcess, peer_id: str, text: str) -> None:
        """Send ``text`` to ``peer``: delivered (acknowledged) and received, within 20 s."""
        sent = self.request({"cmd": "send", "to": peer_id, "text": text}, "sent")
        self.expect("delivered", timeout=20, id=sent["id"])
        assert peer.expect("message", timeout=20, id=sent["id"])["text"] == text

    def quit(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send({"cmd": "quit"})
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL; returns once every event the process printed has been read."""
        self.proc.kill()
        self.proc.wait()
        self._pump_thread.join(timeout=10)

    def printed(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """Every event named ``event`` with these fields that the process printed so far."""
        return [e for _, e in list(self.arrivals)
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def killed_itself(self, timeout: float = 60) -> None:
        """Wait for a ``crash_at`` node to SIGKILL itself."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"no crash within {timeout}s; stderr tail: {''.join(self.stderr[-20:])}"
            ) from None
        assert code == -9, f"exit {code}, not SIGKILL; stderr tail: {''.join(self.stderr[-20:])}"
        self._pump_thread.join(timeout=10)


def befriend(a: NodeProcess, b: NodeProcess, timeout: float = 20) -> tuple[str, str]:
    """Two freshly started nodes made each other's contacts, both seen online; their peer
    ids."""
    a_id, b_id = a.expect("ready")["peer_id"], b.expect("ready")["peer_id"]
    a_invite = a.request({"cmd": "status"}, "status")["invite"]
    b_invite = b.request({"cmd": "status"}, "status")["invite"]
    a.request({"cmd": "add_contact", "invite": b_invite}, "contact_added")
    b.request({"cmd": "add_contact", "invite": a_invite}, "contact_added")
    a.expect("contact_online", timeout=timeout, peer_id=b_id)
    b.expect("contact_online", timeout=timeout, peer_id=a_id)
    return a_id, b_id
