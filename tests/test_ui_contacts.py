"""Contacts in the window: adding from invites, message requests, renaming, verifying, blocking,
the tray's notifications and unread counts.

Real widgets driven with qtbot, a real KithApp on a qasync loop, and real second peers
(``tests.peers``) on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from app.core.fingerprint import safety_number
from app.core.identity import public_key_from_peer_id
from app.core.records import ContactState
from app.core.room import RoomInvite, RoomSecrets
from tests.peers import Peer
from tests.ui_helpers import AppFactory, activate, initialised_profile, run, wait
from ui.identity.node_state import Presence
from ui.shell.app import KithApp
from ui.sidebar.actions import ContactAction
from ui.waits import wait_until
from ui.widgets.qr import qr_image
from ui.window.main_window import MainWindow


class PeerFactory:
    """Second peers for a test, stopped afterwards."""

    def __init__(self, loop: qasync.QEventLoop, root: Path) -> None:
        self.loop = loop
        self.root = root
        self.peers: list[Peer] = []

    def __call__(self, name: str) -> Peer:
        peer = Peer(self.root / name.lower(), name)
        self.peers.append(peer)
        run(self.loop, peer.start())
        return peer

    def stop_all(self) -> None:
        for peer in self.peers:
            run(self.loop, peer.stop())


@pytest.fixture
def make_peer(qloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[PeerFactory]:
    factory = PeerFactory(qloop, tmp_path / "peers")
    try:
        yield factory
    finally:
        factory.stop_all()


def online_window(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path,
                  name: str = "Ada", link: str | None = None) -> tuple[KithApp, MainWindow]:
    app = make_app(initialised_profile(path, name), link=link)
    assert run(qloop, app.start()) is True
    assert app.window is not None and app.state is not None
    state = app.state
    run(qloop, wait_until(lambda: state.presence is Presence.ONLINE and app.client is not None,
                          what="online"))
    return app, app.window


# -- the add contact dialog -------------------------------------------------------------------


def test_add_contact_checks_the_link_as_it_is_typed(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    app, window = online_window(qloop, make_app, tmp_path / "ada")
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # File > Add
    dialog = window.contacts.add_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert not dialog.ok_button.isEnabled()
    assert dialog.error() == ""

    qtbot.keyClicks(dialog.link_edit, "hello")
    assert dialog.error() == "A Kith invite starts with 'kith:'."
    assert not dialog.ok_button.isEnabled()

    dialog.link_edit.clear()
    qtbot.keyClicks(dialog.link_edit, "kith:contact?id=nope")
    assert dialog.error() == "The invite does not carry a valid peer id."
    assert not dialog.ok_button.isEnabled()

    assert app.state is not None
    dialog.set_link(app.state.invite)
    assert "your own invite" in dialog.error()
    assert not dialog.ok_button.isEnabled()

    dialog.set_link("kith:room?id=00&key=x&name=Book%20club")
    assert dialog.error() == "The invite does not carry a valid room id."
    assert not dialog.ok_button.isEnabled()

    # A good room link is not an error: the dialog offers to join and hands over the link.
    room_link = RoomInvite(RoomSecrets.generate(), "Book club").to_link()
    dialog.set_link(room_link)
    assert dialog.error() == ""
    assert "Book club" in dialog.status()
    assert dialog.ok_button.isEnabled() and dialog.ok_button.text() == "Join Room…"
    qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.contacts.add_dialog is None)
    join = window.rooms.join_dialog
    assert join is not None and join.isVisible()
    assert join.link_edit.text() == room_link
    assert join.ok_button.isEnabled(), join.status()
    qtbot.keyClick(join.link_edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.rooms.join_dialog is None)

    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    dialog = window.contacts.add_dialog
    assert dialog is not None
    qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.contacts.add_dialog is None)


def test_adding_a_real_peer_lists_it_online_and_selects_it(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    bob = make_peer("Bob")
    _, window = online_window(qloop, make_app, tmp_path / "ada")
    assert window.sidebar.placeholder_texts()[-1].startswith("No contacts yet")
    qtbot.mouseClick(window.sidebar.add_button, Qt.MouseButton.LeftButton)  # the "+" button
    dialog = window.contacts.add_dialog
    assert dialog is not None
    qtbot.keyClicks(dialog.link_edit, bob.invite)
    assert dialog.error() == ""
    assert "Bob" in dialog.status()
    assert dialog.ok_button.isEnabled()
    qtbot.keyClick(dialog.link_edit, Qt.Key.Key_Return)

    wait(qloop, lambda: window.contacts.add_dialog is None, "the dialog to close")
    assert window.conversation.current_peer == bob.peer_id
    assert window.sidebar.view.currentIndex().data() == "Bob"
    wait(qloop, lambda: (info := window.sidebar.row_info(bob.peer_id)) is not None and info.online,
         "Bob online in the list")
    assert window.sidebar.visible_entries() == ["Bob"]
    assert window.sidebar.visible_sections() == ["rooms", "contacts"]  # no requests section
    index = window.sidebar.index_of(bob.peer_id)
    assert index is not None and index.data(Qt.ItemDataRole.ToolTipRole) == "Online"


def test_a_link_kith_was_started_with_opens_the_dialog_once_online(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    bob = make_peer("Bob")
    app, window = online_window(qloop, make_app, tmp_path / "ada", link=bob.invite)
    wait(qloop, lambda: (shown := window.contacts.add_dialog) is not None and shown.isVisible(),
         "the add contact dialog")
    dialog = window.contacts.add_dialog
    assert dialog is not None
    assert dialog.link_edit.text() == bob.invite
    assert dialog.ok_button.isEnabled()
    assert app.pending_link is None
    dialog.ok_button.click()
    wait(qloop, lambda: window.sidebar.row_info(bob.peer_id) is not None, "Bob listed")


# -- message requests -------------------------------------------------------------------------


def test_a_stranger_writes_first_then_accept_and_block(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    app, window = online_window(qloop, make_app, tmp_path / "ada")
    assert app.state is not None
    carol = make_peer("Carol")
    run(qloop, carol.client.add_contact(app.state.invite))
    run(qloop, carol.client.send(app.state.peer_id, "hi, it's Carol from the club"))

    sidebar = window.sidebar
    wait(qloop, lambda: sidebar.row_info(carol.peer_id) is not None, "Carol's request")
    wait(qloop, lambda: "requests" in sidebar.visible_sections(), "the Requests section")
    info = sidebar.row_info(carol.peer_id)
    assert info is not None and info.state is ContactState.REQUEST
    assert info.last_message == "hi, it's Carol from the club"
    assert sidebar.visible_sections()[0] == "requests"

    # Selecting it opens the conversation read-only, with the decision above it.
    index = sidebar.index_of(carol.peer_id)
    assert index is not None
    sidebar.view.setFocus()
    sidebar.view.setCurrentIndex(index)
    qtbot.keyClick(sidebar.view, Qt.Key.Key_Return)
    assert window.conversation.current_peer == carol.peer_id
    assert window.request_bar.isVisible()
    assert not window.conversation.composer.isEnabled()
    qtbot.mouseClick(window.request_bar.accept_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: (i := sidebar.row_info(carol.peer_id)) is not None
         and i.state is ContactState.CONTACT, "Carol accepted")
    assert "requests" not in sidebar.visible_sections()
    assert not window.request_bar.isVisible()
    assert window.conversation.composer.isEnabled()

    # Another stranger: Block hides them, and "Blocked people" brings them back.
    dave = make_peer("Dave")
    run(qloop, dave.client.add_contact(app.state.invite))
    run(qloop, dave.client.send(app.state.peer_id, "buy cheap watches"))
    wait(qloop, lambda: sidebar.row_info(dave.peer_id) is not None, "Dave's request")
    window.open_peer(dave.peer_id)
    assert window.request_bar.isVisible()
    qtbot.mouseClick(window.request_bar.block_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: sidebar.index_of(dave.peer_id) is None, "Dave hidden")
    assert window.conversation.current_peer is None
    assert "requests" not in sidebar.visible_sections()
    assert "Dave" not in sidebar.visible_entries()

    blocked = window.contacts.show_blocked()
    assert blocked.peers() == [dave.peer_id]
    qtbot.mouseClick(blocked.unblock_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: blocked.peers() == [], "Dave unblocked")
    assert sidebar.row_info(dave.peer_id) is not None
    blocked.close()


# -- rename, details, verification, remove ------------------------------------------------------


def befriended(qloop: qasync.QEventLoop, app: KithApp, window: MainWindow, peer: Peer) -> None:
    assert app.client is not None and app.state is not None
    run(qloop, app.client.add_contact(peer.invite))
    run(qloop, peer.client.add_contact(app.state.invite))
    wait(qloop, lambda: (i := window.sidebar.row_info(peer.peer_id)) is not None and i.online,
         f"{peer.name} online")


def test_context_menu_rename_details_verify_and_remove(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    app, window = online_window(qloop, make_app, tmp_path / "ada")
    bob = make_peer("Bob")
    befriended(qloop, app, window, bob)
    sidebar = window.sidebar

    # The Menu key on the selected row opens its context menu.
    index = sidebar.index_of(bob.peer_id)
    assert index is not None
    activate(qtbot, window)
    sidebar.view.setFocus()
    sidebar.view.setCurrentIndex(index)
    qtbot.keyClick(sidebar.view, Qt.Key.Key_Menu)
    menu = sidebar.menu
    assert menu is not None
    names = [a.objectName() for a in menu.actions() if a.objectName()]
    assert names == ["open", "rename", "details", "pin", "mute", "mark_unread", "block",
                     "remove"]
    menu.close()

    # Rename…
    rename = next(a for a in menu.actions() if a.objectName() == ContactAction.RENAME.value)
    rename.trigger()
    dialog = window.contacts.rename_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    dialog.setTextValue("Bobby Tables")
    dialog.accept()
    wait(qloop, lambda: sidebar.visible_entries() == ["Bobby Tables"], "the new name")
    qtbot.keyClicks(sidebar.search, "tables")  # the search finds the new name
    assert sidebar.visible_entries() == ["Bobby Tables"]
    sidebar.search.clear()

    # Details and verification…
    sidebar.contact_action.emit(ContactAction.DETAILS.value, bob.peer_id)
    details = window.contacts.details_dialogs.get(bob.peer_id)
    assert details is not None
    qtbot.waitUntil(details.isVisible)
    assert details.peer_id_label.text() == bob.peer_id
    assert details.presence_label.text() == "Online"
    digits = details.safety_digits()
    assert len(digits) == 60 and digits.isdigit()
    theirs = safety_number(public_key_from_peer_id(bob.peer_id),
                           public_key_from_peer_id(app.state.peer_id if app.state else ""))
    assert digits == theirs  # what Bob computes on his side
    lines = details.safety_label.text().split("\n")
    assert len(lines) == 3 and all(len(line.split()) == 4 for line in lines)
    assert "Bobby Tables in person or on a call" in details.explanation.text()

    shown = details.qr.render_image()
    assert not shown.isNull() and shown.width() > 100
    dark = sum(
        1 for x in range(0, shown.width(), 3) for y in range(0, shown.height(), 3)
        if shown.pixelColor(x, y).lightnessF() < 0.2
    )
    assert dark > 50, "no dark modules drawn"
    assert shown.pixelColor(8, shown.height() // 2) == QColor("white")  # quiet zone

    assert not details.verified_box.isChecked()
    details.verified_box.setFocus()
    qtbot.keyClick(details.verified_box, Qt.Key.Key_Space)  # keyboard: Space toggles
    wait(qloop, lambda: (i := sidebar.row_info(bob.peer_id)) is not None and i.verified,
         "the verified mark")
    assert details.verified_box.isChecked()
    index = sidebar.index_of(bob.peer_id)
    assert index is not None
    assert "verified" in index.data(Qt.ItemDataRole.AccessibleTextRole)

    # Remove… asks first.
    qtbot.mouseClick(details.remove_button, Qt.MouseButton.LeftButton)
    button = window.contacts.remove_button()
    assert button is not None
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: sidebar.row_info(bob.peer_id) is None, "Bob removed")
    assert bob.peer_id not in window.contacts.details_dialogs
    assert sidebar.placeholder_texts()[-1].startswith("No contacts yet")


def test_qr_image_has_a_quiet_zone_and_dark_modules() -> None:
    image = qr_image("kith-verify:1:" + "0" * 60, module_px=2)
    assert not image.isNull()
    assert image.pixelColor(0, 0) == QColor("white")
    assert image.pixelColor(8 * 2 + 1, 8 * 2 + 1) == QColor("black")  # finder pattern corner
    assert image.width() == image.height()


# -- notifications, unread counts -------------------------------------------------------------


def test_notifications_only_while_away_and_unread_counts(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    app, window = online_window(qloop, make_app, tmp_path / "ada")
    assert app.state is not None
    bob = make_peer("Bob")
    befriended(qloop, app, window, bob)
    notes: list[tuple[str, str, str]] = []
    window.tray.notified.connect(lambda title, body, peer: notes.append((title, body, peer)))

    # Away (another window in front): a notification, a badge, the count in the title.
    elsewhere = QWidget()
    qtbot.addWidget(elsewhere)
    activate(qtbot, elsewhere)
    assert not window.isActiveWindow()
    run(qloop, bob.client.send(app.state.peer_id, "are you there?"))
    wait(qloop, lambda: notes, "a notification")
    assert notes == [("Bob", "are you there?", bob.peer_id)]
    wait(qloop, lambda: window.windowTitle() == "(1) Kith — Ada", "the unread title")
    wait(qloop, lambda: (i := window.sidebar.row_info(bob.peer_id)) is not None and i.unread == 1,
         "the unread badge")
    assert window.tray.unread == 1
    assert window.tray.tooltip() == "Kith — 1 unread message"

    # Clicking the notification brings the window forward with that conversation.
    window.tray.open_requested.emit(bob.peer_id)
    assert window.conversation.current_peer == bob.peer_id
    qtbot.waitUntil(window.isActiveWindow)

    # In front: no notification.
    run(qloop, bob.client.send(app.state.peer_id, "hello again"))
    wait(qloop, lambda: (i := window.sidebar.row_info(bob.peer_id)) is not None
         and i.last_message == "hello again", "the second message")
    assert len(notes) == 1

    # A stranger's message while away says it is a request.
    activate(qtbot, elsewhere)
    carol = make_peer("Carol")
    run(qloop, carol.client.add_contact(app.state.invite))
    run(qloop, carol.client.send(app.state.peer_id, "hi"))
    wait(qloop, lambda: len(notes) == 2, "the request notification")
    title, body, peer = notes[1]
    assert title.startswith("Message request from ")
    assert (body, peer) == ("hi", carol.peer_id)


def test_reading_the_conversation_clears_the_unread_count(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, make_peer: PeerFactory,
    tmp_path: Path,
) -> None:
    app, window = online_window(qloop, make_app, tmp_path / "ada")
    assert app.state is not None
    bob = make_peer("Bob")
    befriended(qloop, app, window, bob)
    run(qloop, bob.client.send(app.state.peer_id, "one"))
    run(qloop, bob.client.send(app.state.peer_id, "two"))
    wait(qloop, lambda: window.unread_total == 2, "2 unread")
    assert window.windowTitle() == "(2) Kith — Ada"
    activate(qtbot, window)
    window.open_peer(bob.peer_id)  # the conversation reports what was read
    wait(qloop, lambda: window.unread_total == 0, "all read")
    assert window.windowTitle() == "Kith — Ada"
    info = window.sidebar.row_info(bob.peer_id)
    assert info is not None and info.unread == 0
