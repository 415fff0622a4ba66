"""``kith node`` as a real subprocess: ready, status, bad input, quit, identity across restarts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from app import __version__
from tests.nodeproc import NodeProcess


def test_ready_status_errors_and_quit(tmp_path: Path) -> None:
    started = time.monotonic()
    node = NodeProcess(tmp_path / "p", name="Ada")
    try:
        ready = node.expect("ready")
        startup = time.monotonic() - started
        assert startup < 15, startup
        peer_id = ready["peer_id"]
        assert peer_id.startswith("12D3KooW")
        assert ready["addrs"] and all(
            a.startswith("/ip4/127.0.0.1/tcp/") and a.endswith(f"/p2p/{peer_id}")
            for a in ready["addrs"]
        )
        assert ready["invite"].startswith(f"kith:contact?id={peer_id}&name=Ada&addr=/ip4/127.0.0.1")
        status = node.request({"cmd": "status"}, "status")
        assert status == {**ready, "event": "status", "connections": 0}
        node.send("this is not json")
        assert "malformed JSON" in node.expect("error")["message"]
        node.send('["cmd", "status"]')
        assert '"cmd" string' in node.expect("error")["message"]
        node.send({"cmd": "teleport"})
        assert node.expect("error", cmd="teleport")["message"] == "unknown command 'teleport'"
        assert node.request({"cmd": "status"}, "status")["peer_id"] == peer_id  # carries on
        assert node.quit() == 0
    finally:
        if node.proc.poll() is None:
            node.kill()
    again = NodeProcess(tmp_path / "p")
    try:
        ready_again = again.expect("ready")
        assert ready_again["peer_id"] == peer_id
        assert "name=Ada" in ready_again["invite"]
    finally:
        assert again.proc.stdin is not None
        again.proc.stdin.close()  # end of input exits cleanly
        assert again.proc.wait(timeout=10) == 0


def test_profile_in_use_is_refused_clearly(tmp_path: Path) -> None:
    first = NodeProcess(tmp_path / "p", name="Ada")
    try:
        first.expect("ready")
        second = NodeProcess(tmp_path / "p")
        error = second.expect("error")
        assert "already in use" in error["message"]
        assert second.proc.wait(timeout=10) == 1
        assert first.request({"cmd": "status"}, "status")  # the first is unharmed
    finally:
        first.quit()


def test_bad_listen_address_is_refused(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "p", "--listen", "not-an-address")
    assert "not a multiaddress" in node.expect("error")["message"]
    assert node.proc.wait(timeout=10) == 1


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"kith {__version__}"


def test_no_display_explains_how_to_run(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "app", "--profile", str(tmp_path / "p")],
        capture_output=True, text=True, env=env, check=False,
    )
    assert out.returncode == 2
    assert "no display was found" in out.stderr and "kith node" in out.stderr
    assert "Traceback" not in out.stderr
