"""The issue's GUI test: two people, two windows, one test process, 127.0.0.1.

Two real ``KithApp``s (each its own profile, client and network thread) add each other through
the Add Contact dialog with each other's invites; a message typed into one window's composer and
sent with Enter appears in the other's conversation, counts as unread there, and shows as
delivered where it was written.
"""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.records import Delivery
from tests.ui_helpers import AppFactory, wait, window_of
from tests.ui_helpers import start_online as start
from ui.conversation.message_model import Role
from ui.window.main_window import MainWindow


def activate(qtbot: QtBot, window: MainWindow) -> None:
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)


def add_through_the_dialog(qtbot: QtBot, qloop: qasync.QEventLoop, window: MainWindow,
                           invite: str) -> None:
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    dialog = window.contacts.add_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    qtbot.keyClicks(dialog.link_edit, invite)
    assert dialog.ok_button.isEnabled(), dialog.status()
    qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Return)
    wait(qloop, lambda: window.contacts.add_dialog is None, "the Add Contact dialog to close")


def texts(window: MainWindow) -> list[str]:
    model = window.conversation.model
    return [str(model.index(row, 0).data()) for row in range(model.rowCount())]


def state_of(window: MainWindow, text: str) -> Delivery | None:
    model = window.conversation.model
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if index.data() == text:
            state = index.data(Role.STATE)
            return Delivery(state) if state is not None else None
    return None


def test_two_windows_add_each_other_and_talk(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada_app = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob_app = start(qloop, make_app, tmp_path / "bob", "Bob")
    ada, bob = window_of(ada_app), window_of(bob_app)
    assert ada_app.state is not None and bob_app.state is not None
    ada_id, bob_id = ada_app.state.peer_id, bob_app.state.peer_id

    add_through_the_dialog(qtbot, qloop, ada, bob_app.state.invite)
    add_through_the_dialog(qtbot, qloop, bob, ada_app.state.invite)
    wait(qloop, lambda: (i := ada.sidebar.row_info(bob_id)) is not None and i.online,
         "Bob online in Ada's list")
    wait(qloop, lambda: (i := bob.sidebar.row_info(ada_id)) is not None and i.online,
         "Ada online in Bob's list")
    assert ada.sidebar.visible_entries() == ["Bob"]
    assert bob.sidebar.visible_entries() == ["Ada"]
    assert ada.conversation.current_peer == bob_id  # adding selected the new contact

    # Ada types and presses Enter; Bob's window is in the background.
    activate(qtbot, ada)
    composer = ada.conversation.composer
    wait(qloop, lambda: composer.edit.isEnabled(), "Ada's composer")
    composer.edit.setFocus()
    qtbot.keyClicks(composer.edit, "Hello Bob, this is Ada")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert composer.text() == ""

    wait(qloop, lambda: (i := bob.sidebar.row_info(ada_id)) is not None and i.unread == 1,
         "an unread count of 1 for Ada in Bob's list")
    info = bob.sidebar.row_info(ada_id)
    assert info is not None and info.last_message == "Hello Bob, this is Ada"
    assert bob.windowTitle() == "(1) Kith — Bob"
    wait(qloop, lambda: state_of(ada, "Hello Bob, this is Ada") is Delivery.DELIVERED,
         "the delivered state in Ada's conversation")

    # Bob opens Ada's conversation from his list: the message is there.
    activate(qtbot, bob)
    index = bob.sidebar.index_of(ada_id)
    assert index is not None
    bob.sidebar.view.setFocus()
    bob.sidebar.view.setCurrentIndex(index)
    qtbot.keyClick(bob.sidebar.view, Qt.Key.Key_Return)
    assert bob.conversation.current_peer == ada_id
    wait(qloop, lambda: "Hello Bob, this is Ada" in texts(bob), "the message in Bob's window")
    wait(qloop, lambda: (i := bob.sidebar.row_info(ada_id)) is not None and i.unread == 0,
         "the message counted as read once Bob has it in front of him")
    wait(qloop, lambda: bob.windowTitle() == "Kith — Bob", "the unread count gone from the title")
