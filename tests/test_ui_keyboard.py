"""The window from the keyboard: Tab goes round the whole window in reading order (it used to
loop inside the invite card), Shift+Tab goes back, and Ctrl+/ lists every shortcut."""

from __future__ import annotations

import functools
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMenu, QWidget
from pytestqt.qtbot import QtBot

from app.core.events import NodeReady
from app.core.records import ContactInfo, ContactState
from tests.ui_helpers import hidden
from ui.identity.node_state import NodeState
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.state.apply(NodeReady(peer_id=ME, addrs=(f"/ip4/192.0.2.7/tcp/4001/p2p/{ME}",),
                              invite=f"kith:contact?id={ME}&name=Ada"))
    win.sidebar.model.upsert_contact(ContactInfo(
        BOB, "Bob", "Bob", None, ContactState.CONTACT, True, True, None, 0, "", time.time()))
    assert win.open_peer(BOB)
    win.conversation.composer.set_target("Bob")  # no client here: enable it by hand
    return win


def walk(qtbot: QtBot, steps: int, back: bool = False) -> list[QWidget]:
    seen = []
    for _ in range(steps):
        focus = QApplication.focusWidget()
        assert focus is not None
        seen.append(focus)
        if back:
            qtbot.keyClick(focus, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
        else:
            qtbot.keyClick(focus, Qt.Key.Key_Tab)
    return seen


def test_tab_goes_round_the_window_in_reading_order(qtbot: QtBot, window: MainWindow) -> None:
    composer = window.conversation.composer
    qtbot.keyClicks(composer.edit, "hello")  # the Send button is there to be reached
    window.sidebar.search.setFocus()
    qtbot.waitUntil(window.sidebar.search.hasFocus)
    panel = window.identity_panel
    expected: list[QWidget] = [
        window.sidebar.search, window.sidebar.view, window.conversation.messages,
        composer.attach_button, composer.edit, composer.send_button,
        window.conversation.header, panel.details_button, panel.invite_edit,
        panel.copy_button, window.header.you_button,
    ]
    assert walk(qtbot, len(expected) * 2) == expected * 2  # and round again, not stuck
    assert walk(qtbot, len(expected) * 2, back=True)[:3] == [
        window.sidebar.search, window.header.you_button, panel.copy_button]

    # A message request: its Accept and Block come before the messages; the composer waits.
    window.sidebar.model.upsert_contact(ContactInfo(
        BOB, "Bob", "Bob", None, ContactState.REQUEST, False, True, None, 1, "hi",
        time.time()))
    window.show_request_bar(window.sidebar.model.contact(BOB))  # type: ignore[arg-type]
    window.sidebar.view.setFocus()
    qtbot.waitUntil(window.sidebar.view.hasFocus)
    assert walk(qtbot, 4) == [window.sidebar.view, window.request_bar.accept_button,
                              window.request_bar.block_button, window.conversation.messages]


def test_ctrl_slash_lists_every_shortcut_of_the_menus(qtbot: QtBot, window: MainWindow) -> None:
    for _ in range(2):  # opened, closed, opened again
        qtbot.keyClick(window, Qt.Key.Key_Slash, Qt.KeyboardModifier.ControlModifier)
        dialog = window.shortcuts
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        rows = dict(dialog.rows())
        for menu in (window.file_menu, window.view_menu):
            for action in menu.actions():
                for key in action.shortcuts():
                    assert any(key.toString() in keys for keys in rows.values()), key.toString()
        assert rows["Next Chat"] == "Ctrl+Tab, Alt+Down"
        assert rows["Send the message"] == "Enter"
        assert rows["Keyboard Shortcuts"] == "Ctrl+/"
        qtbot.keyClick(dialog, Qt.Key.Key_Escape)
        qtbot.waitUntil(functools.partial(hidden, dialog))
    help_menu = next(a for a in window.menuBar().actions() if a.text() == "&Help").menu()
    assert isinstance(help_menu, QMenu) and window.shortcuts_action in help_menu.actions()
