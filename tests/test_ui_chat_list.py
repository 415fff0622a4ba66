"""The chat list as a person uses it, with a real node behind the window: pin, mark unread,
the "Draft" marker, one list by recent activity, Ctrl+Tab and Alt+Up/Down between chats,
the last conversation opened again at start, and closing to the tray."""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.core.records import ChatPrefs
from tests.ui_helpers import AppFactory, run, start_online, wait, window_of
from ui.shell.app import KithApp
from ui.sidebar.actions import ChatAction
from ui.sidebar.model import DRAFT_ROLE, PREFS_ROLE, Section
from ui.style.resources import app_icon
from ui.window.main_window import MainWindow


def add_people(qloop: qasync.QEventLoop, app: KithApp, *names: str) -> dict[str, str]:
    """Contacts from invites (nobody needs to be online to be added); name -> peer id."""
    assert app.client is not None
    window = window_of(app)
    ids = {}
    for name in names:
        peer = Identity.generate().peer_id
        run(qloop, app.client.add_contact(ContactInvite(peer, name).to_link()))
        ids[name] = peer
    wait(qloop, lambda: all(window.sidebar.model.contact(p) for p in ids.values()),
         "the contacts listed")
    return ids


def menu_action(window: MainWindow, key: str, action: ChatAction) -> None:
    """Right-click the row and choose ``action`` from its menu."""
    index = window.sidebar.index_of(key)
    assert index is not None
    window.sidebar.view.menu_requested.emit(index, QPoint(0, 0))
    menu = window.sidebar.menu
    assert menu is not None
    found = [a for a in menu.actions() if a.objectName() == action.value]
    assert found, [a.objectName() for a in menu.actions()]
    found[0].trigger()
    menu.close()


def click_row(qtbot: QtBot, window: MainWindow, key: str) -> None:
    index = window.sidebar.index_of(key)
    assert index is not None
    view = window.sidebar.view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(index).center())


def names(window: MainWindow) -> list[str]:
    return window.sidebar.visible_entries()


def test_pin_mark_unread_and_the_draft_marker(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    ids = add_people(qloop, app, "Bob", "Cleo", "Dan")
    model = window.sidebar.model
    assert names(window) == ["Dan", "Cleo", "Bob"]  # the newest first

    for _ in range(2):  # pinned, unpinned, and the same again
        menu_action(window, ids["Bob"], ChatAction.PIN)
        wait(qloop, lambda: names(window)[0] == "Bob", "Bob pinned to the top")
        index = window.sidebar.index_of(ids["Bob"])
        assert index is not None and index.data(PREFS_ROLE) == ChatPrefs(ids["Bob"], pinned=True)
        assert "pinned" in index.data(Qt.ItemDataRole.AccessibleTextRole)
        menu_action(window, ids["Bob"], ChatAction.UNPIN)
        wait(qloop, lambda: names(window) == ["Dan", "Cleo", "Bob"], "Bob back in his place")

    menu_action(window, ids["Cleo"], ChatAction.MARK_UNREAD)
    wait(qloop, lambda: model.prefs(ids["Cleo"]).marked_unread, "Cleo marked unread")
    index = window.sidebar.index_of(ids["Cleo"])
    assert index is not None
    assert "marked unread" in index.data(Qt.ItemDataRole.AccessibleTextRole)
    click_row(qtbot, window, ids["Cleo"])  # opening it reads it
    wait(qloop, lambda: window.conversation.current_peer == ids["Cleo"], "Cleo open")
    wait(qloop, lambda: not model.prefs(ids["Cleo"]).marked_unread, "the mark gone")
    menu_action(window, ids["Cleo"], ChatAction.MARK_UNREAD)  # marked while open:
    wait(qloop, lambda: model.prefs(ids["Cleo"]).marked_unread, "marked again")
    menu_action(window, ids["Cleo"], ChatAction.MARK_READ)  # and read from the menu
    wait(qloop, lambda: not model.prefs(ids["Cleo"]).marked_unread, "read from the menu")

    composer = window.conversation.composer
    qtbot.keyClicks(composer.edit, "half a thought")
    wait(qloop, lambda: model.draft(ids["Cleo"]) == "half a thought", "the draft saved")
    click_row(qtbot, window, ids["Dan"])
    wait(qloop, lambda: window.conversation.current_peer == ids["Dan"], "Dan open")
    index = window.sidebar.index_of(ids["Cleo"])
    assert index is not None and index.data(DRAFT_ROLE) == "half a thought"
    assert "draft" in index.data(Qt.ItemDataRole.AccessibleTextRole)
    click_row(qtbot, window, ids["Cleo"])
    wait(qloop, lambda: composer.text() == "half a thought", "the draft back in the composer")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)  # sent: no draft any more
    wait(qloop, lambda: model.draft(ids["Cleo"]) == "", "the draft marker gone")


def test_one_list_by_recent_activity_from_settings(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    assert app.client is not None
    ids = add_people(qloop, app, "Bob")
    room = run(qloop, app.client.create_room("Walks"))
    wait(qloop, lambda: window.sidebar.model.room(room.room_id) is not None, "the room")
    ids |= add_people(qloop, app, "Cleo")
    assert window.sidebar.visible_sections() == ["rooms", "contacts"]
    assert names(window) == ["Walks", "Cleo", "Bob"]

    for one, sections, order in ((True, ["chats"], ["Cleo", "Walks", "Bob"]),
                                 (False, ["rooms", "contacts"], ["Walks", "Cleo", "Bob"])):
        window.preferences.settings_action.trigger()
        dialog = window.preferences.dialog
        assert dialog is not None
        wait(qloop, dialog.is_loaded, "the settings loaded")
        dialog.one_list_check.setChecked(one)
        dialog.save_button.click()
        wait(qloop, lambda s=sections: window.sidebar.visible_sections() == s, "the layout")
        assert names(window) == order
        assert window.sidebar.model.one_list is one
    assert app.profile is not None and app.profile.settings.one_chat_list is False

    # A room opens from the one list as from its own section.
    window.sidebar.set_one_list(True)
    click_row(qtbot, window, room.room_id)
    wait(qloop, lambda: window.conversation.current_room == room.room_id, "the room open")
    assert window.sidebar.model.entries(Section.CHATS)[0][0] == ids["Cleo"]


def test_ctrl_tab_and_alt_arrows_move_between_chats(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    ids = add_people(qloop, app, "Bob", "Cleo", "Dan")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    assert names(window) == ["Dan", "Cleo", "Bob"]
    current = lambda: window.conversation.current_peer  # noqa: E731

    composer = window.conversation.composer.edit
    composer.setFocus()  # from wherever the focus is, even the composer
    qtbot.keyClick(window, Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier)
    wait(qloop, lambda: current() == ids["Dan"], "the first chat")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab,
                   Qt.KeyboardModifier.ControlModifier)
    wait(qloop, lambda: current() == ids["Cleo"], "the next chat")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    wait(qloop, lambda: current() == ids["Bob"], "Alt+Down: the next")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    wait(qloop, lambda: current() == ids["Dan"], "round the end")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    wait(qloop, lambda: current() == ids["Bob"], "Alt+Up: the previous, round the top")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Backtab,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    wait(qloop, lambda: current() == ids["Cleo"], "Ctrl+Shift+Tab: the previous")
    assert window.sidebar.view.currentIndex().data() == "Cleo"  # the list follows


def test_the_last_conversation_opens_again_at_start(
    qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    path = tmp_path / "ada"
    app = start_online(qloop, make_app, path, "Ada")
    window = window_of(app)
    assert app.client is not None
    ids = add_people(qloop, app, "Bob", "Cleo")
    room = run(qloop, app.client.create_room("Walks"))
    wait(qloop, lambda: window.sidebar.model.room(room.room_id) is not None, "the room")
    for key in (ids["Bob"], room.room_id):
        assert window.chats.open(key)
        run(qloop, app.shutdown())
        again = make_app(path)
        assert run(qloop, again.start()) is True
        reopened = window_of(again)
        wait(qloop, lambda k=key, w=reopened: w.conversation.conversation_key == k,
             "the last conversation open again")
        app, window = again, reopened


def test_closing_keeps_kith_in_the_tray_only_when_asked_and_possible(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    assert not window.tray.available  # no tray on this platform: the option is off
    window.preferences.settings_action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None
    wait(qloop, dialog.is_loaded, "the settings loaded")
    assert not dialog.tray_check.isEnabled()
    dialog.reject()

    # A desktop with a tray: the offscreen platform has none, so one is put in by hand.
    window.tray.icon = QSystemTrayIcon(app_icon(), window.tray)
    window.preferences.settings_action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None
    wait(qloop, dialog.is_loaded, "the settings loaded")
    assert dialog.tray_check.isEnabled()
    dialog.tray_check.setChecked(True)
    dialog.save_button.click()
    wait(qloop, lambda: window.keep_in_tray, "the setting applied")
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    for _ in range(2):  # closed twice, brought back from the tray twice
        window.close()
        qtbot.waitUntil(lambda: not window.isVisible())
        assert not closed and app.client is not None and app.client.running
        window.tray.open_requested.emit("")  # the tray icon clicked
        qtbot.waitUntil(window.isVisible)
    window.quit_action.trigger()  # Ctrl+Q quits for good
    assert closed == [True]
