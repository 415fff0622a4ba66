"""Inviting contacts into a room from the window, as people do it: Ada picks Bob in the
invite dialog (after changing her mind once), Bob sees "Join the room “…”" in their
conversation, clicks it and is in. Two real nodes on 127.0.0.1; the protocol side is in
tests/test_room_invitations.py."""

from __future__ import annotations

import functools
from pathlib import Path

import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.records import ContactState
from tests.ui_helpers import AppFactory, activate, hidden, run, start_online, wait, window_of
from ui.conversation.bubble_text import styled_text
from ui.rooms.room_invite import RoomInviteDialog
from ui.style.theme import apply_theme
from ui.window.main_window import MainWindow

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
WAIT_S = 30


def invite_dialog(qtbot: QtBot, window: MainWindow, room_id: str) -> RoomInviteDialog:
    """Ctrl+Shift+I in the open room."""
    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_I, CTRL_SHIFT)
    dialog = window.rooms.invite_dialogs.get(room_id)
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def _painted_as(widget: RoomInviteDialog, theme: str) -> bool:
    return (widget.palette().window().color().lightness() < 128) == (theme == "dark")


def test_a_contact_invited_from_the_room_joins_with_one_click(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    ada_app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    bob_app = start_online(qloop, make_app, tmp_path / "bob", "Bob")
    ada, bob = window_of(ada_app), window_of(bob_app)
    assert ada_app.state and bob_app.state and ada_app.client and bob_app.client
    ada_id, bob_id = ada_app.state.peer_id, bob_app.state.peer_id
    run(qloop, ada_app.client.add_contact(bob_app.state.invite))
    run(qloop, bob_app.client.add_contact(ada_app.state.invite))
    wait(qloop, lambda: (c := ada.sidebar.model.contact(bob_id)) is not None
         and c.state is ContactState.CONTACT, "Bob in Ada's contacts")
    room = run(qloop, ada_app.client.create_room("Book club"))
    wait(qloop, lambda: ada.sidebar.model.room(room.room_id) is not None, "the room listed")
    assert ada.open_room(room.room_id)
    ada.resize(800, 600)

    # She opens the dialog, picks Bob, changes her mind: nothing is sent.
    dialog = invite_dialog(qtbot, ada, room.room_id)
    wait(qloop, lambda: dialog.invitees() == ["Bob"], "Bob listed")
    assert not dialog.send_button.isEnabled()
    dialog.check(bob_id)
    assert dialog.send_button.isEnabled()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: room.room_id not in ada.rooms.invite_dialogs)

    # Again, and this time she sends it.
    dialog = invite_dialog(qtbot, ada, room.room_id)
    wait(qloop, lambda: dialog.invitees() == ["Bob"], "Bob listed again")
    assert dialog.checked() == []  # a new dialog starts with nobody chosen
    dialog.check(bob_id)
    qtbot.mouseClick(dialog.send_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: dialog.status() == "Invitation sent to Bob.", "the invitation sent")
    assert dialog.checked() == [] and not dialog.send_button.isEnabled()
    for theme in ("dark", "light"):  # readable in both (screenshots to look at, not compare)
        apply_theme(theme)
        qtbot.waitUntil(functools.partial(_painted_as, dialog, theme))
        QApplication.processEvents()
        dialog.grab().save(str(tmp_path / f"invite-dialog-{theme}.png"))
    apply_theme("system")
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(functools.partial(hidden, dialog))

    # Bob sees one message from Ada, shown as what it does.
    wait(qloop, lambda: (c := bob.sidebar.model.contact(ada_id)) is not None and c.unread == 1,
         "the invitation at Bob's", WAIT_S)
    assert bob.open_peer(ada_id)
    model = bob.conversation.model
    wait(qloop, lambda: model.rowCount() == 1, "the invitation shown")
    shown, links = styled_text(model.items()[0].text)
    assert shown.text == ("You are invited to the room “Book club” on Kith:\n"
                          "Join the room “Book club”")
    assert [shown.text[s:e] for s, e, _ in links] == ["Join the room “Book club”"]

    # One click on it, and Join Room is there, filled in: Enter joins.
    activate(qtbot, bob)
    view = bob.conversation.messages
    view.executeDelayedItemsLayout()
    index = model.index(0)
    where = view.delegate.link_rect(index)
    assert not where.isEmpty()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=where.center() + QPoint(2, 0))
    join = bob.rooms.join_dialog
    assert join is not None
    qtbot.waitUntil(join.isVisible)
    assert "Book club" in join.status()
    qtbot.keyClick(join.link_edit, Qt.Key.Key_Return)
    wait(qloop, lambda: bob.conversation.current_room == room.room_id, "Bob in the room", WAIT_S)

    # Bob is a member now: Ada has nobody left to invite, and the dialog says so.
    wait(qloop, lambda: (r := ada.sidebar.room_row_info(room.room_id)) is not None
         and r.members == 2, "two members", WAIT_S)
    dialog = invite_dialog(qtbot, ada, room.room_id)
    wait(qloop, lambda: dialog.invitees() == [], "nobody left to invite")
    assert dialog.no_contacts.isVisible() and not dialog.contact_list.isVisible()
