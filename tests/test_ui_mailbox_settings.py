"""Settings ▸ Network: keeping messages for contacts, and the mailboxes that keep ours, with
whether each is reachable now. A real window on a qasync loop, and a real mailbox on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.config import NodeConfig
from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.store.profile import Profile
from tests.peers import Peer
from tests.ui_helpers import AppFactory, initialised_profile, run, wait
from ui.identity.node_state import Presence
from ui.settings.settings_dialog import NETWORK_TAB, SettingsDialog
from ui.shell.app import KithApp
from ui.window.main_window import MainWindow

MAILBOX = f"/ip4/203.0.113.5/tcp/4001/p2p/{Identity(bytes(32)).peer_id}"


@pytest.fixture
def make_app(qloop: qasync.QEventLoop) -> Iterator[AppFactory]:
    factory = AppFactory(qloop)
    try:
        yield factory
    finally:
        factory.close_all()


def online(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path) -> tuple[KithApp,
                                                                                 MainWindow]:
    app = make_app(path)
    assert run(qloop, app.start()) is True
    assert app.window is not None and app.state is not None
    state = app.state
    wait(qloop, lambda: state.presence is Presence.ONLINE and app.client is not None, "online")
    return app, app.window


def open_settings(qloop: qasync.QEventLoop, window: MainWindow) -> SettingsDialog:
    window.preferences.settings_action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None
    wait(qloop, dialog.is_loaded, "the settings loaded")
    dialog.tabs.setCurrentIndex(NETWORK_TAB)
    return dialog


def test_serving_and_my_mailboxes_are_saved_and_a_bad_address_is_named(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, initialised_profile(profile_dir))
    dialog = open_settings(qloop, window)
    assert not dialog.serve_mailbox_check.isChecked() and dialog.mailbox_status.text() == ""
    qtbot.keyClick(dialog.serve_mailbox_check, Qt.Key.Key_Space)
    dialog.mailboxes_edit.setPlainText("mailbox.example.com:4001")
    dialog.save_button.click()
    assert dialog.tabs.currentIndex() == NETWORK_TAB
    assert "not a mailbox address" in dialog.error.text()
    dialog.mailboxes_edit.setPlainText(MAILBOX + "\n")
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    assert app.profile is not None
    assert app.profile.settings.serve_mailbox and app.profile.settings.mailboxes == [MAILBOX]


def test_my_mailbox_shows_whether_it_keeps_my_messages(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    mia = run(qloop, Peer(tmp_path / "mia", "Mia", NodeConfig(
        listen=("/ip4/127.0.0.1/tcp/0",), serve_mailbox=True)).start())
    try:
        assert mia.ready is not None
        path = initialised_profile(tmp_path / "ada")
        with Profile.open(path) as profile:
            ada_id = profile.identity.peer_id
            profile.settings = profile.settings.with_changes(mailboxes=[mia.ready.addrs[0]])
            profile.save_settings()
        run(qloop, mia.client.add_contact(ContactInvite(ada_id, "Ada").to_link()))
        app, window = online(qloop, make_app, path)
        run(qloop, mia.wait_event("contact_online", peer_id=ada_id))
        client = app.client
        assert client is not None

        async def registered() -> None:
            while not any(m.registered for m in (await client.mailbox_status()).mine):
                await asyncio.sleep(0.05)

        run(qloop, registered())
        dialog = open_settings(qloop, window)
        assert "keeps your messages" in dialog.mailbox_status.text()
        assert dialog.mailboxes_edit.toPlainText() == mia.ready.addrs[0]
    finally:
        run(qloop, mia.stop())


def test_use_a_contact_who_keeps_messages_as_my_mailbox(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    mia = run(qloop, Peer(tmp_path / "mia", "Mia", NodeConfig(
        listen=("/ip4/127.0.0.1/tcp/0",), serve_mailbox=True)).start())
    bob = run(qloop, Peer(tmp_path / "bob", "Bob").start())
    try:
        app, window = online(qloop, make_app, initialised_profile(tmp_path / "ada"))
        client, state = app.client, app.state
        assert client is not None and state is not None
        for peer in (mia, bob):
            run(qloop, client.add_contact(peer.invite))
            run(qloop, peer.client.add_contact(state.invite))
            wait(qloop, lambda p=peer: (i := window.sidebar.row_info(p.peer_id)) is not None
                 and i.online, f"{peer.name} online")

        details = window.contacts.show_details(bob.peer_id)
        assert details is not None
        wait(qloop, lambda: "no mailbox" in details.mailbox_label.text(), "Bob's mailbox row")
        assert not details.mailbox_button.isVisible()
        details.close()

        details = window.contacts.show_details(mia.peer_id)
        assert details is not None
        wait(qloop, details.mailbox_button.isVisible, "Use as My Mailbox")
        assert "keeps messages for their contacts" in details.mailbox_label.text()
        qtbot.mouseClick(details.mailbox_button, Qt.MouseButton.LeftButton)
        wait(qloop, lambda: "keeps your messages" in details.mailbox_label.text(), "mine now")
        assert not details.mailbox_button.isVisible()
        run(qloop, mia.wait_event("contact_online", peer_id=state.peer_id))

        async def registered() -> None:
            while not any(m.registered for m in (await client.mailbox_status()).mine):
                await asyncio.sleep(0.05)

        run(qloop, registered())
        assert app.profile is not None
        assert [a.rpartition("/p2p/")[2] for a in app.profile.settings.mailboxes] == [
            mia.peer_id]
        # Bob learns it from Ada's next profile answer, or from her invite from now on.
        assert "mailboxes=" in run(qloop, client.status()).invite
    finally:
        run(qloop, mia.stop())
        run(qloop, bob.stop())
