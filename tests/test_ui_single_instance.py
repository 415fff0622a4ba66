"""One Kith per profile: a second start hands its link to the running one, through the real
local socket (a second ``KithApp`` on the same profile would only fight over the lock)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import qasync
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite
from tests.ui_helpers import AppFactory, initialised_profile, run, wait
from ui.identity.node_state import Presence
from ui.shell import single_instance
from ui.shell.app import KithApp
from ui.shell.single_instance import (
    MAX_LINE,
    Handover,
    decode_request,
    encode_request,
    hand_over,
    server_name,
)

ROOT = Path(__file__).resolve().parent.parent


def start(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path) -> KithApp:
    app = make_app(initialised_profile(path, "Ada"))
    assert run(qloop, app.start()) is True
    wait(qloop, lambda: app.state is not None and app.state.presence is Presence.ONLINE
         and app.window is not None and app.window.client is not None, "Ada online")
    return app


def contact_link() -> str:
    return ContactInvite(Identity.generate().peer_id, "Bob", ("/ip4/127.0.0.1/tcp/4001",)).to_link()


def socket_path(profile: Path) -> str:
    return single_instance.socket_path(server_name(profile))


def send_background(qtbot: QtBot, app: KithApp) -> QWidget:
    """Minimise Kith's window and make another window the active one."""
    assert app.window is not None
    app.window.showMinimized()
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    return other


def in_front(app: KithApp) -> bool:
    window = app.window
    active = QApplication.activeWindow()
    return window is not None and not window.isMinimized() and active is not None and (
        active is window or active.parentWidget() is window)


# -- the protocol -----------------------------------------------------------------------------


def test_requests_are_one_bounded_line() -> None:
    link = contact_link()
    assert decode_request(encode_request(link).rstrip(b"\n")) == link
    assert decode_request(encode_request(None).rstrip(b"\n")) == ""
    for bad in (b"", b"open ", b"close kith:x", b"open \xff\xfe", b"open a\tb"):
        assert decode_request(bad) is None
    with pytest.raises(ValueError):
        encode_request("kith:contact?id=" + "x" * MAX_LINE)
    with pytest.raises(ValueError):
        encode_request("kith:a\nactivate")


def test_the_socket_name_is_short_and_follows_the_resolved_profile(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    name = server_name(tmp_path / "p")
    assert name == server_name(tmp_path / "x" / ".." / "p")
    assert name != server_name(tmp_path / "q")
    assert len(name) < 32


# -- handing over, in one process -----------------------------------------------------------


def test_nobody_running_means_start_as_usual(qloop: qasync.QEventLoop, tmp_path: Path) -> None:
    assert run(qloop, hand_over(tmp_path / "nobody", contact_link())) is Handover.NOT_RUNNING


def test_a_second_start_brings_the_window_forward_with_the_link_in_add_contact(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    window = app.window
    assert window is not None and app.instance_server is not None
    assert app.instance_server.listening
    send_background(qtbot, app)
    assert not in_front(app)

    link = contact_link()
    assert run(qloop, hand_over(profile, link)) is Handover.HANDED_OVER
    wait(qloop, lambda: (shown := window.contacts.add_dialog) is not None and shown.isVisible(),
         "Add Contact to open")
    shown = window.contacts.add_dialog
    assert shown is not None and shown.link_edit.text() == link
    wait(qloop, lambda: in_front(app), "the window in front")

    # No link: only forward. A room link: Join Room, prefilled.
    shown.reject()
    send_background(qtbot, app)
    assert run(qloop, hand_over(profile, None)) is Handover.HANDED_OVER
    wait(qloop, lambda: in_front(app), "the window in front again")
    assert window.contacts.add_dialog is None and window.rooms.join_dialog is None
    assert app.client is not None
    room = run(qloop, app.client.create_room("Plans"))
    assert run(qloop, hand_over(profile, room.invite)) is Handover.HANDED_OVER
    wait(qloop, lambda: (shown := window.rooms.join_dialog) is not None and shown.isVisible(),
         "Join Room to open")
    shown = window.rooms.join_dialog
    assert shown is not None and shown.link_edit.text() == room.invite


def test_a_broken_link_handed_over_is_reported_not_opened(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    assert run(qloop, hand_over(profile, "kith:contact?id=nonsense")) is Handover.HANDED_OVER
    wait(qloop, lambda: any("cannot be used" in e for e in app.errors), "the error shown")
    assert app.window is not None and app.window.contacts.add_dialog is None


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave no stale files")
def test_garbage_and_oversized_requests_are_dropped(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    opened: list[str] = []
    assert app.instance_server is not None
    app.instance_server.requested.connect(opened.append)

    for payload in (b"hello there\n", b"open " + b"x" * (MAX_LINE + 10)):
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        peer.connect(socket_path(profile))
        peer.setblocking(False)
        peer.sendall(payload)
        answer: list[bytes] = []

        def hung_up(peer: socket.socket = peer, answer: list[bytes] = answer) -> bool:
            with contextlib.suppress(BlockingIOError):
                data = peer.recv(100)
                answer.append(data)
                return data == b""
            return False

        wait(qloop, hung_up, "the server to hang up")
        peer.close()
        assert b"ok" not in b"".join(answer)
    assert opened == []


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave no stale files")
def test_a_stale_socket_is_replaced(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    path = socket_path(profile)
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(path)  # a Kith that died without removing its socket
    crashed.close()
    try:
        assert run(qloop, hand_over(profile, None)) is Handover.NOT_RUNNING
        app = start(qloop, make_app, profile)
        assert app.instance_server is not None and app.instance_server.listening
        assert run(qloop, hand_over(profile, None)) is Handover.HANDED_OVER
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@pytest.mark.skipif(sys.platform == "win32", reason="a named pipe, not a socket file")
def test_only_this_user_can_reach_the_socket_and_a_live_one_is_never_replaced(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    assert app.instance_server is not None and app.instance_server.listening
    found = os.stat(socket_path(profile))
    assert found.st_uid == os.getuid() and found.st_mode & 0o077 == 0
    # A second server on the same profile (another program in the way) leaves it alone.
    other = single_instance.InstanceServer(profile)
    assert not other.listen()
    assert os.stat(socket_path(profile)).st_ino == found.st_ino
    assert run(qloop, hand_over(profile, None)) is Handover.HANDED_OVER
    app.instance_server.close()
    assert not os.path.exists(socket_path(profile))  # removed on close, as Qt did


def test_the_window_does_not_load_qtnetwork_where_sockets_serve(tmp_path: Path) -> None:
    """QtNetwork costs the window 2 MiB; on Linux and macOS Python's sockets do its job."""
    probe = (
        "import sys; from pathlib import Path\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from ui.shell.single_instance import InstanceServer\n"
        "app = QApplication([])\n"
        "server = InstanceServer(Path(sys.argv[1]))\n"
        "assert server.listen()\n"
        "server.close()\n"
        "print('PySide6.QtNetwork' in sys.modules)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "profile")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True" if sys.platform == "win32" else "False"]


def test_qt_local_sockets_hand_over_too(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows' way (Qt's QLocalServer and QLocalSocket), run here on Qt's Unix sockets."""
    monkeypatch.setattr(single_instance, "QT_PIPES", True)
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    window = app.window
    assert window is not None and app.instance_server is not None
    assert app.instance_server.listening
    link = contact_link()
    assert run(qloop, hand_over(profile, link)) is Handover.HANDED_OVER
    wait(qloop, lambda: (shown := window.contacts.add_dialog) is not None and shown.isVisible(),
         "Add Contact to open")
    assert run(qloop, hand_over(tmp_path / "nobody", None)) is Handover.NOT_RUNNING


# -- the real second process -------------------------------------------------------------------


def test_kith_started_again_hands_its_link_over_and_exits(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    app = start(qloop, make_app, profile)
    window = app.window
    assert window is not None
    link = contact_link()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--profile", str(profile), link],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait(qloop, lambda: proc.poll() is not None, "the second Kith to exit", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "Kith is already running; brought it to the front." in err.decode()
    wait(qloop, lambda: (shown := window.contacts.add_dialog) is not None and shown.isVisible(),
         "Add Contact to open")
    shown = window.contacts.add_dialog
    assert shown is not None and shown.link_edit.text() == link


@pytest.mark.skipif(sys.platform == "win32" or os.getuid() != 0,
                    reason="a socket file of another user (made as root)")
def test_a_socket_of_another_user_in_its_place_is_told_nothing(
    qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    path = socket_path(profile)
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(path)
    squatter.listen()
    squatter.setblocking(False)
    os.chown(path, 65534, 65534)  # nobody's
    try:
        link = ContactInvite(Identity.generate().peer_id, "Bob", ()).to_link()
        assert run(qloop, hand_over(profile, link)) is Handover.NOT_RUNNING
        with pytest.raises(BlockingIOError):
            squatter.accept()  # never connected to, so the link never went there
    finally:
        squatter.close()
        os.unlink(path)
