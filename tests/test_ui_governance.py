"""A governed room in the window: made from New Room, members with roles, promote and remove
from the member panel, notices in the conversation, the room settings with invite links.

A real ``KithApp`` for Ada and a headless ``tests.peers.Peer`` for Pat; waits are on
conditions. ``KITH_SCREENSHOTS=DIR`` saves what the window shows (light and dark).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.core.records import short_peer_id
from app.core.room import parse_room_invite
from tests import ui_helpers
from tests.peers import Peer
from tests.ui_helpers import AppFactory, activate, run, start_online, window_of
from ui.style.theme import apply_theme
from ui.window.main_window import MainWindow

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
WAIT_S = 30


def wait(qloop: qasync.QEventLoop, condition: object, what: str) -> None:
    ui_helpers.wait(qloop, condition, what, WAIT_S)


def notices(window: MainWindow) -> list[str]:
    return [i.text for i in window.conversation.model.items() if i.notice]


def screenshot(widget: QWidget, name: str) -> None:
    folder = os.environ.get("KITH_SCREENSHOTS")
    if not folder:
        return
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    for theme in ("light", "dark"):
        apply_theme(theme, app)
        for _ in range(3):  # restyling is posted: let every widget take the new palette
            app.processEvents()
        widget.grab().save(str(Path(folder) / f"{name}-{theme}.png"))
    apply_theme("system", app)


def test_an_owner_runs_a_room_from_the_window(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    ada_app = start_online(qloop, make_app, tmp_path / "ada", "Ada", timeout=WAIT_S)
    ada = window_of(ada_app)
    ada.resize(1100, 700)

    # New Room, with "I manage this room" ticked.
    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_N, CTRL_SHIFT)
    dialog = ada.rooms.new_room_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert not dialog.governed_box.isChecked()
    qtbot.keyClicks(dialog.name_edit, "Garden club")
    qtbot.mouseClick(dialog.governed_box, Qt.MouseButton.LeftButton)
    assert dialog.governed_box.isChecked()
    qtbot.keyClick(dialog.name_edit, Qt.Key.Key_Return)
    wait(qloop, lambda: ada.rooms.new_room_dialog is None, "the New Room dialog to close")
    room_id = ada.conversation.current_room
    assert room_id is not None
    info = ada.sidebar.model.room(room_id)
    assert info is not None

    # Pat joins with the room's link and is admitted.
    run(qloop, pat.client.join_room(parse_room_invite(info.invite).to_link()))
    run(qloop, pat.wait_event("key_rotated", room=room_id, timeout=WAIT_S))
    run(qloop, pat.client.post(room_id, "Tomatoes are in!"))
    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_M, CTRL_SHIFT)
    panel = ada.member_panel
    wait(qloop, lambda: panel.names() == ["Ada (you) · owner", "Pat"], "Pat among the members")
    # Named as the room knew Pat then: "Pat", or the end of Pat's id before Pat's announce.
    joined = f"{short_peer_id(pat.peer_id)} joined"
    wait(qloop, lambda: {"Pat joined", joined} & set(notices(ada)), "the notice that Pat joined")
    joined = "Pat joined" if "Pat joined" in notices(ada) else joined

    # Ada makes Pat an admin from the member panel.
    panel.list.setFocus()
    panel.list.setCurrentRow(1)
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)
    menu = ada.rooms.member_menu
    assert menu is not None
    names = [a.objectName() for a in menu.actions() if a.objectName()]
    assert names == ["add", "role_owner", "role_admin", "role_observer", "remove", "ban"]
    promote = next(a for a in menu.actions() if a.objectName() == "role_admin")
    menu.close()
    promote.trigger()
    run(qloop, pat.wait_event("role_changed", role="admin", timeout=WAIT_S))
    wait(qloop, lambda: panel.names() == ["Ada (you) · owner", "Pat · admin"], "Pat an admin")
    wait(qloop, lambda: "You made Pat an admin" in notices(ada), "the role notice")

    # The room's settings: who may join, and an invite link made and revoked.
    settings = ada.rooms.show_room_settings()
    assert settings is not None
    wait(qloop, lambda: settings.overview.get("role") == "owner", "the settings loaded")
    assert settings.save_button.isEnabled() and settings.name_edit.text() == "Garden club"
    settings.join_combo.setCurrentIndex(settings.join_combo.findData("invite"))
    qtbot.mouseClick(settings.save_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: settings.overview["settings"]["join"] == "invite", "invite only")
    settings.uses_spin.setValue(3)
    qtbot.mouseClick(settings.create_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: settings.invite_list.count() == 1, "the new invite listed")
    link = QApplication.clipboard().text()
    assert "&inv=" in link and parse_room_invite(link).secrets.id_hex == room_id
    assert settings.invite_list.item(0).text().startswith("live · 0 of 3 uses")
    screenshot(settings, "governed-room-settings")
    settings.invite_list.setCurrentRow(0)
    qtbot.mouseClick(settings.revoke_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: settings.invite_list.item(0).text().startswith("revoked"),
         "the invite revoked")
    settings.close()

    # Ada removes Pat (confirmed): Pat is locked out, the panel and the notices say so.
    panel.list.setCurrentRow(1)
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)
    menu = ada.rooms.member_menu
    assert menu is not None
    remove = next(a for a in menu.actions() if a.objectName() == "remove")
    menu.close()
    remove.trigger()
    button = ada.rooms.member_button()
    assert button is not None
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    run(qloop, pat.wait_event("removed_from_room", room=room_id, timeout=WAIT_S))
    wait(qloop, lambda: panel.names() == ["Ada (you) · owner"], "Pat gone from the panel")
    wait(qloop, lambda: (r := ada.sidebar.room_row_info(room_id)) is not None and r.members == 1,
         "one member left in the room list")
    wait(qloop, lambda: "You removed Pat" in notices(ada), "the removal notice")
    texts = [i.text for i in ada.conversation.model.items()]
    assert texts.index(joined) < texts.index("Tomatoes are in!") < texts.index(
        "You removed Pat")
    screenshot(ada, "governed-room")


def test_a_contact_invited_from_the_room_joins_a_room_that_admits_with_invites_only(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    """Invite People in a room Ada manages: Pat's invitation carries a one-use invite (the
    room's plain link would only be refused), and the link in it admits Pat."""
    from app.core.invite import find_link

    ada_app = start_online(qloop, make_app, tmp_path / "ada", "Ada", timeout=WAIT_S)
    ada = window_of(ada_app)
    client = ada_app.client
    assert client is not None and ada_app.state is not None
    run(qloop, client.add_contact(pat.invite))
    run(qloop, pat.client.add_contact(ada_app.state.invite))
    wait(qloop, lambda: ada.sidebar.row_info(pat.peer_id) is not None, "Pat under Contacts")
    room = run(qloop, client.create_room("Quilting", governed=True))
    run(qloop, client.room_settings(room.room_id, {"join": "invite"}))
    wait(qloop, lambda: ada.sidebar.model.room(room.room_id) is not None, "the room listed")
    assert ada.open_room(room.room_id)

    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_I, CTRL_SHIFT)
    dialog = ada.rooms.invite_dialogs.get(room.room_id)
    assert dialog is not None
    wait(qloop, lambda: dialog.invitees() == ["Pat"], "Pat listed in Invite People")
    dialog.check(pat.peer_id)
    qtbot.mouseClick(dialog.send_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: dialog.status() == "Invitation sent to Pat.", "the invitation sent")
    got = run(qloop, pat.wait_event("message", timeout=WAIT_S))[0]
    link = find_link(got.text)  # type: ignore[attr-defined]
    assert link is not None and "&inv=" in link
    run(qloop, pat.client.join_room(link))
    run(qloop, pat.wait_event("key_rotated", room=room.room_id, timeout=WAIT_S))
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_M, CTRL_SHIFT)
    wait(qloop, lambda: ada.member_panel.names() == ["Ada (you) · owner", "Pat"],
         "Pat admitted with the invitation's invite")


def test_an_admin_answers_a_join_request_in_the_room_settings(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    ada_app = start_online(qloop, make_app, tmp_path / "ada", "Ada", timeout=WAIT_S)
    ada = window_of(ada_app)
    client = ada_app.client
    assert client is not None
    room = run(qloop, client.create_room("Choir", governed=True))
    wait(qloop, lambda: ada.sidebar.model.room(room.room_id) is not None, "the room listed")
    assert ada.open_room(room.room_id)
    settings = ada.rooms.show_room_settings()
    assert settings is not None
    wait(qloop, lambda: settings.overview.get("role") == "owner", "the settings loaded")
    settings.join_combo.setCurrentIndex(settings.join_combo.findData("approve"))
    qtbot.mouseClick(settings.save_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: settings.overview["settings"]["join"] == "approve", "approve mode")
    assert settings.requests_box.isVisibleTo(settings) and settings.request_list.count() == 0

    run(qloop, pat.client.join_room(room.invite))
    wait(qloop, lambda: settings.request_list.count() == 1, "Pat's request in the settings")
    assert "asks to join “Choir”" in ada.banner.message()
    assert not pat.named("member_joined")
    settings.request_list.setCurrentRow(0)
    qtbot.mouseClick(settings.accept_button, Qt.MouseButton.LeftButton)
    run(qloop, pat.wait_event("key_rotated", room=room.room_id, timeout=WAIT_S))
    wait(qloop, lambda: settings.request_list.count() == 0, "the request answered")


def test_an_owner_deletes_a_members_post_for_everyone_from_its_menu(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    """In a room she manages, Ada's menu on Pat's post offers Delete for everyone (not in an
    open room): the room's log deletes it, and it leaves Pat's history too."""
    from tests.test_ui_message_actions import action, menu_of, row_of

    ada_app = start_online(qloop, make_app, tmp_path / "ada", "Ada", timeout=WAIT_S)
    ada = window_of(ada_app)
    assert ada_app.client is not None
    ada.resize(1000, 700)
    room = run(qloop, ada_app.client.create_room("Garden club", governed=True))
    wait(qloop, lambda: ada.sidebar.model.room(room.room_id) is not None, "the room listed")
    run(qloop, pat.client.join_room(room.invite))
    run(qloop, pat.wait_event("key_rotated", room=room.room_id, timeout=WAIT_S))
    posted = run(qloop, pat.client.post(room.room_id, "Buy my snake oil"))
    assert ada.open_room(room.room_id)
    view = ada.conversation
    wait(qloop, lambda: "Buy my snake oil" in [i.text for i in view.model.items()],
         "Pat's post shown")
    wait(qloop, lambda: ada.rooms.my_roles.get(room.room_id) == "owner", "Ada's role known")
    menu = menu_of(view, row_of(view, "Buy my snake oil"))
    delete = action(menu, "Delete for everyone")
    menu.close()
    delete.trigger()
    wait(qloop, lambda: "Buy my snake oil" not in [i.text for i in view.model.items()],
         "the post gone from Ada's room")

    async def gone_at_pats() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while posted.id in [p.id for p in await pat.client.room_history(room.room_id)]:
            assert loop.time() < deadline, "the post is still in Pat's history"
            await asyncio.sleep(0.05)

    run(qloop, gone_at_pats(), WAIT_S + 5)

    # In an open room, a post of someone else offers no Delete for everyone.
    open_room = run(qloop, ada_app.client.create_room("Open"))
    wait(qloop, lambda: ada.sidebar.model.room(open_room.room_id) is not None, "listed")
    run(qloop, pat.client.join_room(open_room.invite))
    run(qloop, pat.client.post(open_room.room_id, "hello"))
    assert ada.open_room(open_room.room_id)
    wait(qloop, lambda: "hello" in [i.text for i in view.model.items()], "Pat's hello shown")
    wait(qloop, lambda: open_room.room_id in ada.rooms.my_roles, "the open room's role read")
    menu = menu_of(view, row_of(view, "hello"))
    assert "Delete for everyone" not in [a.text() for a in menu.actions()]
    menu.close()
