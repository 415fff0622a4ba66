"""``kith --demo``: two windows, already introduced, that chat and pass a file, then vanish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.events import Event, FileComplete, FileOffer
from tests.test_ui_files import digest, drag_and_drop, file_mime
from tests.ui_helpers import network_threads, run, wait
from ui.shell.demo import Demo
from ui.waits import wait_until
from ui.window.main_window import MainWindow

ROOT = Path(__file__).resolve().parent.parent


def texts(window: MainWindow) -> list[str]:
    model = window.conversation.model
    return [str(model.index(row, 0).data()) for row in range(model.rowCount())]


def test_the_demo_opens_two_introduced_windows_that_talk_and_then_vanish(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    demo = Demo()
    root = demo.root
    try:
        assert run(qloop, demo.start(), 60) is True
        ada_app, bob_app = demo.apps
        assert ada_app.window is not None and bob_app.window is not None
        assert ada_app.state is not None and bob_app.state is not None
        assert ada_app.client is not None and bob_app.client is not None
        ada, bob = ada_app.window, bob_app.window
        ada_id, bob_id = ada_app.state.peer_id, bob_app.state.peer_id
        assert ada_app.profile is not None and ada_app.profile.path.is_relative_to(root)
        assert bob_app.profile is not None and bob_app.profile.path.is_relative_to(root)

        # Two windows, side by side, saying what they are; already contacts, in one room.
        assert ada.windowTitle() == "Kith — Ada (demo)"
        assert bob.windowTitle() == "Kith — Bob (demo)"
        assert ada.isVisible() and bob.isVisible() and ada.x() < bob.x()
        assert (i := ada.sidebar.row_info(bob_id)) is not None and i.online
        assert (i := bob.sidebar.row_info(ada_id)) is not None and i.online
        assert demo.room is not None and demo.room.name == "Demo room"
        for window in (ada, bob):
            room = window.sidebar.model.room(demo.room.room_id)
            assert room is not None and room.members == 2
        assert ada.conversation.current_peer == bob_id
        assert bob.conversation.current_peer == ada_id

        # Ada types, Enter: it shows up in Bob's window.
        ada.raise_()
        ada.activateWindow()
        qtbot.waitUntil(ada.isActiveWindow)
        composer = ada.conversation.composer
        wait(qloop, composer.edit.isEnabled, "Ada's composer")
        composer.edit.setFocus()
        qtbot.keyClicks(composer.edit, "Hi Bob, it's the demo")
        qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
        wait(qloop, lambda: "Hi Bob, it's the demo" in texts(bob), "the message at Bob's")

        # Ada drops a file on her conversation with Bob; Bob accepts; same bytes arrive.
        bob_events: list[Event] = []
        bob_app.client.subscribe(bob_events.append)
        sent = tmp_path / "hello.txt"
        sent.write_bytes(b"a small file for the demo\n" * 100)
        viewport = ada.conversation.messages.viewport()
        assert drag_and_drop(viewport, viewport.rect().center(), file_mime(sent))
        wait(qloop, lambda: any(isinstance(e, FileOffer) for e in bob_events), "the offer")
        offer = next(e for e in bob_events if isinstance(e, FileOffer))
        assert offer.name_ == "hello.txt" and offer.from_ == ada_id
        run(qloop, bob_app.client.accept_file(offer.transfer))
        wait(qloop, lambda: any(isinstance(e, FileComplete) and e.transfer == offer.transfer
                                for e in bob_events), "the file at Bob's")
        done = next(e for e in bob_events if isinstance(e, FileComplete))
        assert Path(done.path).is_relative_to(root)  # received files stay inside the demo
        assert digest(done.path) == digest(sent)

        # Closing one window ends the demo.
        ada.close()
        run(qloop, demo.wait_closed())
    finally:
        run(qloop, demo.shutdown())
    assert not root.exists()
    assert not network_threads()
    assert not ada.isVisible() and not bob.isVisible()


def test_ctrl_c_during_the_demo_cleans_up(qloop: qasync.QEventLoop) -> None:
    demo = Demo()
    root = demo.root

    async def life() -> int:
        running = asyncio.ensure_future(demo.run())
        await wait_until(lambda: len(demo.windows()) == 2 and demo.room is not None, 30,
                         "the demo up")
        demo.request_quit()  # what SIGINT and SIGTERM call
        return await running

    assert run(qloop, life(), 60) == 0
    assert not root.exists()
    assert not network_threads()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a Unix signal")
def test_kith_demo_ends_on_sigterm_and_leaves_nothing_behind(
    qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "--demo"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Both networks have opened their databases: the demo is up.
        wait(qloop, lambda: len(list(tmp_path.glob("kith-demo-*/*/kith.db"))) == 2
             or proc.poll() is not None, "the demo to start", timeout=30)
        assert proc.poll() is None, proc.communicate()[1].decode()
        proc.send_signal(signal.SIGTERM)
        wait(qloop, lambda: proc.poll() is not None, "the demo to end", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert not list(tmp_path.glob("kith-demo-*"))
