"""A full disk refuses, it does not stop Kith: each command that cannot be saved is an error
for that command, in plain words, and everything works again once there is space.

The profile lives on a small tmpfs the test mounts and fills to the last byte
(``tests.small_disk``), with real ``kith node`` processes and a real window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.store.profile import DB_FILE
from tests.nodeproc import NodeProcess
from tests.payload import MiB, file_hash, make_file
from tests.peers import Peer
from tests.small_disk import small_disk
from tests.ui_helpers import AppFactory, activate, run, start_online, wait, window_of

FULL = "the disk that holds your Kith profile is full; free some space and try again"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stranger_invite() -> str:
    return ContactInvite(peer_id=Identity.generate().peer_id, name="Cy", addrs=()).to_link()


def test_commands_on_a_full_profile_disk_are_errors_and_the_node_goes_on(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        ada = NodeProcess(disk.path / "ada", name="Ada")
        bob = NodeProcess(tmp_path / "bob", name="Bob")
        try:
            ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
            ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
            bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
            ada.expect("contact_online", peer_id=ready_b["peer_id"])
            room = ada.request({"cmd": "create_room", "name": "Attic"}, "room_created")

            disk.fill(disk.path / "ada" / DB_FILE)
            commands = [
                {"cmd": "send", "to": ready_b["peer_id"], "text": "hello"},
                {"cmd": "post", "room": room["room_id"], "text": "hello room"},
                {"cmd": "add_contact", "invite": stranger_invite()},
            ]
            for command in commands:
                error = ada.request(command, "error")
                assert (error["cmd"], error["message"]) == (command["cmd"], FULL)
            assert ada.request({"cmd": "status"}, "status")["peer_id"] == ready_a["peer_id"]
            # Incoming traffic is refused (not acknowledged) while nothing can be stored...
            waiting = bob.request({"cmd": "send", "to": ready_a["peer_id"], "text": "for later"},
                                  "sent")
            refused = "/kith/dm/1.0.0: dropped stream from"
            wait_for(lambda: any(refused in line and "disk is full" in line
                                 for line in ada.stderr), "the message refused")
            assert not any(e.get("event") == "delivered" for e in bob.seen)

            disk.free()
            ada.message(bob, ready_b["peer_id"], "there is room again")
            # ...and arrives once there is space.
            assert ada.expect("message", id=waiting["id"])["text"] == "for later"
            bob.expect("delivered", id=waiting["id"])
            history = ada.request({"cmd": "history", "with": ready_b["peer_id"]}, "history")
            assert sorted(m["text"] for m in history["messages"]) == [
                "for later", "there is room again"]
            assert ada.proc.poll() is None
        finally:
            ada.quit()
            bob.quit()


def test_a_download_that_fills_the_profile_disk_fails_and_resumes(tmp_path: Path) -> None:
    """The .part and the profile on one disk: the download fills it; the transfer fails with a
    reason, the node goes on, and accepting again after freeing space finishes it from the
    verified part."""
    source = tmp_path / "big.bin"
    expected = make_file(source, 24 * MiB)
    with small_disk(tmp_path / "disk", size_mib=48) as disk:
        ada = NodeProcess(tmp_path / "ada", name="Ada")
        bob = NodeProcess(disk.path / "bob", name="Bob")
        try:
            ready_a, ready_b = ada.expect("ready"), bob.expect("ready")
            ada.request({"cmd": "add_contact", "invite": ready_b["invite"]}, "contact_added")
            bob.request({"cmd": "add_contact", "invite": ready_a["invite"]}, "contact_added")
            ada.expect("contact_online", peer_id=ready_b["peer_id"])
            ada.send({"cmd": "send_file", "to": ready_b["peer_id"], "path": str(source)})
            tid = ada.expect("file_offered")["transfer"]
            bob.expect("file_offer", transfer=tid)
            ballast = disk.path / "ballast"
            ballast.write_bytes(bytes(36 * MiB))  # leaves about 12 MiB
            bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(disk.path / "in")},
                        "file_accepted")
            failed = bob.expect("file_failed", transfer=tid, timeout=60)
            assert "full" in failed["reason"]
            assert bob.request({"cmd": "status"}, "status")["peer_id"] == ready_b["peer_id"]
            kept = bob.request({"cmd": "transfer", "transfer": tid}, "transfer")["info"]["bytes"]
            assert kept > 0

            ballast.unlink()
            bob.request({"cmd": "accept_file", "transfer": tid, "dir": str(disk.path / "in")},
                        "file_accepted")
            done = bob.expect("file_complete", transfer=tid, timeout=60)
            assert file_hash(done["path"]) == expected
            assert Path(done["path"]) == disk.path / "in" / "big.bin"
        finally:
            ada.quit()
            bob.quit()


def test_the_window_says_the_disk_is_full_and_keeps_working(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        pat = Peer(tmp_path / "pat", "Pat")
        run(qloop, pat.start())
        app = None
        try:
            app = start_online(qloop, make_app, disk.path / "ada", "Ada")
            window = window_of(app)
            activate(qtbot, window)
            client = app.client
            assert client is not None and app.state is not None
            run(qloop, client.add_contact(pat.invite))
            run(qloop, pat.client.add_contact(app.state.invite))
            window.open_peer(pat.peer_id)
            composer = window.conversation.composer
            wait(qloop, composer.edit.isEnabled, "the composer")

            disk.fill(disk.path / "ada" / DB_FILE)
            composer.edit.setFocus()
            qtbot.keyClicks(composer.edit, "hello Pat")
            qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
            wait(qloop, lambda: composer.error_text() != "", "the refusal")
            assert composer.error_text() == f"Not sent: {FULL[0].upper()}{FULL[1:]}"
            assert composer.text() == "hello Pat"  # given back, not lost

            qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            dialog = window.contacts.add_dialog
            assert dialog is not None
            dialog.set_link(stranger_invite())
            qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Return)
            wait(qloop, lambda: dialog.error() != "", "the inline refusal")
            assert "disk that holds your Kith profile is full" in dialog.error()
            assert not dialog.link_edit.isReadOnly()  # not stuck "Adding…"
            qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Escape)
            wait(qloop, lambda: window.contacts.add_dialog is None, "the dialog to close")

            disk.free()
            composer.edit.setFocus()
            qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
            wait(qloop, lambda: [i.text for i in window.conversation.model.items()] == [
                "hello Pat"], "the message sent once there is space")
            run(qloop, pat.wait_event("message", text="hello Pat"))
        finally:
            if app is not None:
                run(qloop, app.shutdown())  # while its profile is still mounted
            run(qloop, pat.stop())
