"""Settings, Your Identity, export/import from the window, and the window's remembered place.

Real controllers on a qasync loop with real network threads on 127.0.0.1: what the dialog
saves goes through the client to the node, and what applies at once is checked on the widgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nacl.pwhash
import pytest
import qasync
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from app.core.events import MessageReceived, ReachabilityChanged
from app.core.fingerprint import fingerprint_for_peer, format_digits
from app.core.identity import Identity
from app.core.invite import parse_invite
from app.core.records import Delivery, MessageInfo
from app.store.backup import export_profile
from app.store.profile import Profile
from tests.ui_helpers import AppFactory, initialised_profile, run, wait
from ui.identity.node_state import Presence
from ui.settings.settings_dialog import (
    APPEARANCE_TAB,
    NETWORK_TAB,
    NOTIFICATIONS_TAB,
    SettingsDialog,
)
from ui.shell.app import KithApp
from ui.style import palette as pal
from ui.style.theme import apply_theme
from ui.waits import wait_until
from ui.window.main_window import MainWindow

PASS = "correct horse battery"


@pytest.fixture
def make_app(qloop: qasync.QEventLoop) -> Iterator[AppFactory]:
    factory = AppFactory(qloop)
    try:
        yield factory
    finally:
        factory.close_all()
        apply_theme("system")  # the palette is the application's: leave it as found


RELAY_ID = Identity(bytes(32)).peer_id


def online(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path, name: str = "Ada"
           ) -> tuple[KithApp, MainWindow]:
    app = make_app(path if (path / "identity.key").exists() else initialised_profile(path, name))
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
    return dialog


def test_a_new_display_name_shows_at_once_in_the_header_and_the_invite(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    assert window.preferences.settings_action.shortcut().toString() == "Ctrl+,"
    dialog = open_settings(qloop, window)
    assert dialog.name_edit.text() == "Ada"
    dialog.name_edit.selectAll()
    qtbot.keyClicks(dialog.name_edit, "Ada Lovelace")
    qtbot.keyClick(dialog.name_edit, Qt.Key.Key_Return)  # Enter saves
    wait(qloop, lambda: window.header.name_label.text() == "Ada Lovelace", "the header")
    assert app.state is not None
    assert parse_invite(app.state.invite).name == "Ada Lovelace"
    assert window.identity_panel.invite() == app.state.invite
    assert window.windowTitle().startswith("Kith — Ada Lovelace")
    assert window.preferences.dialog is None  # closed on save
    assert app.profile is not None and app.profile.settings.display_name == "Ada Lovelace"


def test_an_empty_name_or_a_bad_relay_is_refused_inline(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    dialog = open_settings(qloop, window)
    dialog.name_edit.setText("   ")
    dialog.save_button.click()
    assert dialog.error.isVisible() and "cannot be empty" in dialog.error.text()
    dialog.name_edit.setText("Ada")
    dialog.relays_edit.setPlainText("relay.example.com:4001")
    dialog.save_button.click()
    assert dialog.tabs.currentIndex() == NETWORK_TAB
    assert "not a relay address" in dialog.error.text()
    assert "after Kith restarts" in dialog.restart_note.text()
    dialog.relays_edit.setPlainText("/ip4/203.0.113.5/tcp/4001")  # no /p2p/ relay id
    dialog.save_button.click()
    assert "not a relay address" in dialog.error.text()
    relay = f"/ip4/203.0.113.5/tcp/4001/p2p/{RELAY_ID}"
    dialog.relays_edit.setPlainText(relay)
    dialog.port_spin.setValue(40123)
    dialog.lan_check.setChecked(False)
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    assert app.profile is not None
    settings = app.profile.settings
    assert settings.relays == [relay]
    assert settings.listen_port == 40123 and settings.lan_discovery is False


def test_relay_for_contacts_only_is_offered_with_serving_and_saved(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    dialog = open_settings(qloop, window)
    dialog.tabs.setCurrentIndex(NETWORK_TAB)
    assert not dialog.relay_contacts_check.isEnabled()  # only meaningful when serving
    qtbot.keyClick(dialog.serve_relay_check, Qt.Key.Key_Space)
    assert dialog.serve_relay_check.isChecked() and dialog.relay_contacts_check.isEnabled()
    qtbot.keyClick(dialog.relay_contacts_check, Qt.Key.Key_Space)
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    assert app.profile is not None
    assert app.profile.settings.serve_relay and app.profile.settings.relay_contacts_only
    dialog = open_settings(qloop, window)
    assert dialog.relay_contacts_check.isChecked() and dialog.relay_contacts_check.isEnabled()


def test_dark_theme_applies_at_once_and_is_kept(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    assert not pal.is_dark(window.palette())
    dialog = open_settings(qloop, window)
    dialog.tabs.setCurrentIndex(APPEARANCE_TAB)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.save_button.click()
    wait(qloop, lambda: pal.is_dark(window.palette()), "a dark palette")
    assert pal.is_dark(QApplication.palette())
    assert app.profile is not None and app.profile.settings.theme == "dark"
    apply_theme("system")
    assert not pal.is_dark(QApplication.palette())


def test_notifications_off_means_the_tray_stays_quiet(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    notified: list[tuple[str, str, str]] = []
    window.tray.notified.connect(lambda *args: notified.append(args))
    window.tray.window_active = lambda: False  # as if Kith were in the background
    peer = "12D3KooWAbCdEfGh"
    info = MessageInfo(1, "00", peer, False, "psst", 0, Delivery.DELIVERED)
    event = MessageReceived(id="00", from_=peer, text="psst", sent_at=0, request=True,
                            message=info)
    window.events.publish(event)
    assert len(notified) == 1
    dialog = open_settings(qloop, window)
    dialog.notify_check.setChecked(False)
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    window.events.publish(event)
    assert len(notified) == 1
    assert app.profile is not None and app.profile.settings.notifications is False


def test_the_sound_is_a_setting_applied_at_once(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    assert window.tray.sound is False
    for on in (True, False):
        dialog = open_settings(qloop, window)
        dialog.tabs.setCurrentIndex(NOTIFICATIONS_TAB)
        assert dialog.sound_check.isChecked() is not on
        dialog.sound_check.setChecked(on)
        dialog.save_button.click()
        wait(qloop, lambda: window.preferences.dialog is None, "saved")
        assert window.tray.sound is on
        assert app.profile is not None and app.profile.settings.notification_sound is on
    dialog = open_settings(qloop, window)
    dialog.notify_check.setChecked(False)  # no notifications: no sound to choose
    assert not dialog.sound_check.isEnabled()
    dialog.reject()


def test_the_network_tab_speaks_plainly_and_keeps_addresses_under_advanced(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    dialog = open_settings(qloop, window)
    dialog.tabs.setCurrentIndex(NETWORK_TAB)
    qtbot.waitUntil(dialog.reach_status.isVisible)
    # Listening on 127.0.0.1 only: nobody else can reach this Kith, in those words.
    assert dialog.reach_status.text() == "Not reachable by others"
    assert "nobody else can reach you" in dialog.reach_hint.text()
    advanced = (dialog.port_spin, dialog.relays_edit, dialog.bootstrap_edit)
    assert not any(w.isVisible() for w in advanced)  # multiaddresses stay out of the way
    for shown in (True, False, True):
        qtbot.mouseClick(dialog.advanced_button, Qt.MouseButton.LeftButton)
        assert all(w.isVisible() is shown for w in advanced)
    words = " ".join(label.text() for label in dialog.findChildren(QLabel)
                     if not dialog.advanced.isAncestorOf(label))
    assert "multiaddress" not in words.lower() and "DHT" not in words
    assert app.state is not None
    app.state.apply(ReachabilityChanged(state="relay", relays=(RELAY_ID,), addrs=()))
    assert dialog.reach_status.text() == "Reachable through a relay"
    dialog.reject()


def test_identity_page_shows_your_half_of_the_safety_number_and_the_invite(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    assert window.preferences.identity_page_action.shortcut().toString() == "Ctrl+I"
    window.preferences.identity_page_action.trigger()
    page = window.preferences.identity_page
    assert page is not None and page.isVisible()
    assert app.state is not None
    assert page.fingerprint() == format_digits(fingerprint_for_peer(app.state.peer_id))
    assert page.invite_edit.text() == app.state.invite
    assert page.qr.payload() == app.state.invite and page.qr.module_count() > 21
    page.copy_invite()
    assert QApplication.clipboard().text() == app.state.invite


def test_export_from_the_window_checks_the_passphrase_then_writes_the_file(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path, tmp_path: Path
) -> None:
    _app, window = online(qloop, make_app, profile_dir)
    dialog = window.preferences.show_export()
    assert dialog is not None
    dest = tmp_path / "me.kithbackup"
    dialog.passphrase.setText("short")
    dialog.confirm.setText("short")  # type: ignore[union-attr]
    assert dialog.export_to(dest) is None
    assert "at least 8" in dialog.error.text()
    dialog.passphrase.setText(PASS)
    dialog.confirm.setText(PASS + "!")  # type: ignore[union-attr]
    assert dialog.export_to(dest) is None
    assert "not the same" in dialog.error.text()
    dialog.confirm.setText(PASS)  # type: ignore[union-attr]
    task = dialog.export_to(dest)
    assert task is not None
    run(qloop, task)
    assert dest.read_bytes().startswith(b"KITHBAK1")


def test_first_run_imports_a_profile_and_starts_as_that_person(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    old = initialised_profile(tmp_path / "old", "Ada")
    with Profile.open(old) as profile:
        peer_id = profile.identity.peer_id
    backup = tmp_path / "ada.kithbackup"
    export_profile(old, backup, PASS, opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
                   memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN)
    app = make_app(tmp_path / "new")

    async def scenario() -> bool:
        start = asyncio.ensure_future(app.start())
        await wait_until(lambda: app.first_run_dialog is not None, what="the first-run dialog")
        assert app.first_run_dialog is not None
        app.first_run_dialog.import_button.click()
        dialog = app.import_dialog
        assert dialog is not None
        dialog.file_edit.setText(str(backup))
        dialog.passphrase.setText("wrong passphrase")
        dialog.ok_button.click()
        await wait_until(lambda: dialog.error.isVisible(), what="the refusal")
        assert "The passphrase is wrong" in dialog.error.text()
        dialog.passphrase.setText(PASS)
        dialog.ok_button.click()
        return await start

    assert run(qloop, scenario()) is True
    assert app.state is not None and app.state.peer_id == peer_id
    assert app.state.display_name == "Ada"


def test_the_window_opens_where_it_was_closed(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    window.resize(QSize(760, 520))
    run(qloop, app.shutdown())
    assert app.profile is not None and app.profile.settings.window_geometry
    _again, window2 = online(qloop, make_app, profile_dir)
    assert window2.size() == QSize(760, 520)


def test_settings_are_validated_in_plain_words() -> None:
    from app.store.profile import Settings

    settings = Settings(display_name="Ada")
    with pytest.raises(ValueError, match="at most 16"):
        settings.with_changes(relays=[f"/ip4/192.0.2.{i}/tcp/4001/p2p/{RELAY_ID}"
                                      for i in range(17)])
    with pytest.raises(ValueError, match="theme"):
        settings.with_changes(theme="purple")
    with pytest.raises(ValueError, match="unknown settings"):
        settings.with_changes(colour="red")
    with pytest.raises(ValueError, match="true or false"):
        settings.with_changes(notifications="yes")
    changed = settings.with_changes(display_name="  Ada   L ", serve_relay=True)
    assert changed.display_name == "Ada L" and changed.serve_relay
    assert Settings.from_json(changed.to_json()) == changed
    assert settings.serve_relay is False  # a copy: the original is untouched


def test_read_receipts_and_typing_are_switched_in_settings(
    qloop: qasync.QEventLoop, make_app: AppFactory, profile_dir: Path
) -> None:
    app, window = online(qloop, make_app, profile_dir)
    for on in (False, True):
        dialog = open_settings(qloop, window)
        dialog.tabs.setCurrentIndex(NOTIFICATIONS_TAB)
        assert dialog.receipts_check.isChecked() is not on
        assert dialog.typing_check.isChecked() is not on
        dialog.receipts_check.setChecked(on)
        dialog.typing_check.setChecked(on)
        dialog.save_button.click()
        wait(qloop, lambda: window.preferences.dialog is None, "saved")
        assert app.profile is not None
        assert app.profile.settings.read_receipts is on
        assert app.profile.settings.typing_indicators is on
