"""Reply, react, edit, delete, typing and read marks in the conversation view: real widgets
driven by qtbot, two real peers in this process on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu
from pytestqt.qtbot import QtBot

from app.core.records import Delivery
from tests.peers import befriend, peers
from tests.test_ui_conversation import bubble_point, contact, make_view, opened, settled
from tests.ui_helpers import AppFactory, run, wait, window_of
from tests.ui_helpers import start_online as start
from ui.conversation.message_delegate import Glyph
from ui.conversation.view import ConversationView
from ui.style.theme import apply_theme
from ui.waits import wait_until


def action(menu: QMenu, text: str) -> QAction:
    for entry in menu.actions():
        if entry.text() == text:
            return entry
        sub = entry.menu()
        if isinstance(sub, QMenu):
            for inner in sub.actions():
                if inner.text() == text:
                    return inner
    raise AssertionError(f"no {text!r} in {[a.text() for a in menu.actions()]}")


def menu_of(view: ConversationView, row: int) -> QMenu:
    return view.messages.context_menu(bubble_point(view, row))


def row_of(view: ConversationView, text: str) -> int:
    return next(r for r, i in enumerate(view.model.items()) if i.text == text)


def test_reply_react_edit_delete_in_the_window(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            ours, theirs = make_view(qtbot, ada), make_view(qtbot, bob)
            await opened(ours, await contact(ada, bob.peer_id))
            await opened(theirs, await contact(bob, ada.peer_id))
            await bob.client.send(ada.peer_id, "lunch at noon?")
            await wait_until(lambda: ours.model.rowCount() == 1, what="Bob's message")

            async def calm() -> None:
                """Keys and clicks process events in this task: no client call may be waking
                up meanwhile (qasync cannot enter a task from inside another)."""
                await settled(ours)
                await settled(theirs)

            await calm()
            # Reply, cancelled with Esc first, then for real: the quote travels.
            for _ in range(2):
                action(menu_of(ours, 0), "Reply").trigger()
                assert ours.message_actions.bar.isVisible()
                assert "Bob" in ours.message_actions.bar.label.text()
                qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Escape)
                assert not ours.message_actions.bar.isVisible()
            action(menu_of(ours, 0), "Reply").trigger()
            qtbot.keyClicks(ours.composer.edit, "yes, see you")
            qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Return)
            await wait_until(lambda: theirs.model.rowCount() == 2, what="the reply at Bob's")
            reply = theirs.model.item(1)
            assert reply.reply_to == theirs.model.item(0).message_id
            assert not ours.message_actions.bar.isVisible()
            index = theirs.model.index(1)
            quote = theirs.messages.delegate.quote_rect(index)
            assert not quote.isEmpty()
            box, text = theirs.messages.delegate.painted_rects(index) or (None, None)
            assert box is not None and text is not None and quote.bottom() < text.top()
            theirs.messages.clearSelection()
            await calm()
            qtbot.mouseClick(theirs.messages.viewport(), Qt.MouseButton.LeftButton,
                             pos=quote.center())
            await wait_until(lambda: theirs.messages.currentIndex().row() == 0,
                             what="the original selected")

            # React from the menu, twice the same emoji is one; click the chip to take it back.
            action(menu_of(theirs, 1), "👍").trigger()
            await wait_until(lambda: ours.model.item(1).reactions == (("👍", (bob.peer_id,)),),
                             what="Bob's 👍 at Ada's")
            action(menu_of(ours, 1), "👍").trigger()
            await wait_until(lambda: dict(theirs.model.item(1).reactions).get("👍", ()) == (
                bob.peer_id, ada.peer_id), what="both 👍 at Bob's")
            chip = theirs.messages.delegate.chip_rect(theirs.model.index(1), "👍")
            assert not chip.isEmpty()
            assert theirs.messages.delegate.extras_at(theirs.model.index(1), chip.center())[0] \
                == "chip"
            await calm()
            qtbot.mouseClick(theirs.messages.viewport(), Qt.MouseButton.LeftButton,
                             pos=chip.center())
            await wait_until(lambda: dict(ours.model.item(1).reactions).get("👍") == (
                ada.peer_id,), what="Bob's 👍 taken back")

            # Up in the empty composer edits the last message of ours; Esc cancels an edit.
            await calm()
            ours.composer.edit.setFocus()
            qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Up)
            assert ours.composer.text() == "yes, see you"
            qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Escape)
            assert ours.composer.text() == "" and not ours.message_actions.bar.isVisible()
            qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Up)
            ours.composer.edit.selectAll()
            qtbot.keyClicks(ours.composer.edit, "yes, at one")
            qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Return)
            await wait_until(lambda: theirs.model.item(1).text == "yes, at one",
                             what="the edit at Bob's")
            assert theirs.model.item(1).edited and ours.model.item(1).edited
            assert ours.model.rowCount() == 2  # an edit is no new message
            assert "Edit" not in [a.text() for a in menu_of(ours, 0).actions()]  # not ours

            # Who reacted, in the chip's tooltip.
            assert ours.messages.delegate.extras.who((bob.peer_id,)) == "Bob"
            assert ours.messages.delegate.extras.who((ada.peer_id,)) == "You"

            # Delete for everyone, from the menu: Bob's original goes, Ada's reply stays with
            # a placeholder for its quote; then Ada's reply goes too.
            assert "Delete for everyone" not in [a.text() for a in menu_of(ours, 0).actions()]
            action(menu_of(theirs, 0), "Delete for everyone").trigger()
            await wait_until(lambda: theirs.model.rowCount() == 1 and ours.model.rowCount() == 1,
                             what="the original gone on both sides")
            reply_row = ours.model.item(0)
            assert reply_row.reply_to and ours.messages.delegate.extras.quoted(
                ours.model, reply_row) is None
            assert not ours.messages.delegate.quote_rect(ours.model.index(0)).isEmpty()
            action(menu_of(ours, 0), "Delete for everyone").trigger()
            await wait_until(lambda: theirs.model.rowCount() == 0 and ours.model.rowCount() == 0,
                             what="the reply gone on both sides")
            await settled(ours)
            await settled(theirs)

    run(qloop, scenario())


def test_typing_and_read_marks_in_a_narrow_dark_window(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    apply_theme("dark")
    try:
        async def scenario() -> None:
            async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
                await befriend(ada, bob)
                ours, theirs = make_view(qtbot, ada), make_view(qtbot, bob)
                for view in (ours, theirs):
                    view.resize(360, 520)
                await opened(ours, await contact(ada, bob.peer_id))
                await opened(theirs, await contact(bob, ada.peer_id))

                # Ada types: Bob's header says so.
                await settled(ours)
                await settled(theirs)
                qtbot.keyClicks(ours.composer.edit, "hel")
                await wait_until(lambda: "typing" in theirs.header.presence_label.full_text(),
                                 what="Ada typing at Bob's")
                await settled(ours)
                qtbot.keyClicks(ours.composer.edit, "lo")
                qtbot.keyClick(ours.composer.edit, Qt.Key.Key_Return)
                await wait_until(lambda: theirs.model.rowCount() == 1, what="the message")

                # Bob's window is the focused one: it shows the message, Ada sees "read".
                theirs.activateWindow()
                await wait_until(theirs.isActiveWindow, what="Bob's window focused")
                await wait_until(lambda: ours.model.item(0).state is Delivery.READ,
                                 what="read at Ada's")
                assert ours.messages.delegate.glyph(ours.model.index(0)) is Glyph.READ
                assert QApplication.palette().color(
                    QApplication.palette().ColorRole.Base).lightnessF() < 0.5
                await settled(ours)
                await settled(theirs)

        run(qloop, scenario())
    finally:
        apply_theme("system")


def test_typing_shows_in_the_other_window_list_and_header(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada_app = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob_app = start(qloop, make_app, tmp_path / "bob", "Bob")
    ada, bob = window_of(ada_app), window_of(bob_app)
    assert ada_app.state is not None and bob_app.state is not None
    assert ada_app.client is not None and bob_app.client is not None
    ada_id, bob_id = ada_app.state.peer_id, bob_app.state.peer_id
    run(qloop, ada_app.client.add_contact(bob_app.state.invite))
    run(qloop, bob_app.client.add_contact(ada_app.state.invite))
    wait(qloop, lambda: (i := ada.sidebar.row_info(bob_id)) is not None and i.online,
         "Bob online in Ada's list")
    wait(qloop, lambda: bob.sidebar.row_info(ada_id) is not None, "Ada in Bob's list")
    ada.open_peer(bob_id)
    bob.open_peer(ada_id)
    wait(qloop, lambda: ada.conversation.composer.edit.isEnabled(), "Ada's composer")
    qtbot.keyClicks(ada.conversation.composer.edit, "are you th")
    wait(qloop, lambda: bob.sidebar.model.typing(ada_id) != "", "typing in Bob's list")
    wait(qloop, lambda: "Ada is typing" in bob.conversation.header.presence_label.full_text(),
         "typing in Bob's header")


def test_hover_actions_beside_a_bubble(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, bob.peer_id))
            await bob.client.send(ada.peer_id, "hover over me")
            await wait_until(lambda: view.model.rowCount() == 1, what="Bob's message")
            # Clicks process events in this task: no client call may be waking up meanwhile.
            await settled(view)
            hover = view.message_actions.hover
            assert not hover.isVisible()
            qtbot.mouseMove(view.messages.viewport(), bubble_point(view, 0))
            await wait_until(hover.isVisible, what="the hover bar")
            box = view.messages.delegate.painted_rects(view.model.index(0))
            assert box is not None and hover.geometry().left() > box[0].right()
            qtbot.mouseClick(hover.buttons["reply"], Qt.MouseButton.LeftButton)
            assert view.message_actions.reply_to is not None
            assert view.message_actions.bar.isVisible()
            qtbot.mouseClick(hover.buttons["react"], Qt.MouseButton.LeftButton)
            assert hover.menu is not None
            action(hover.menu, "❤️").trigger()
            await wait_until(lambda: view.model.item(0).reactions == (("❤️", (ada.peer_id,)),),
                             what="the heart")
            await settled(view)
            qtbot.mouseClick(hover.buttons["more"], Qt.MouseButton.LeftButton)
            assert hover.menu is not None
            assert {"Reply", "React", "Copy text", "Delete for me"} <= {
                a.text() for a in hover.menu.actions()}
            hover.menu.close()
            view.messages.viewport().resize(360, view.messages.viewport().height())
            await settled(view)

    run(qloop, scenario())


def test_the_picker_reacts_with_any_emoji_and_recent_ones_lead_the_quick_row(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, bob.peer_id))
            await bob.client.send(ada.peer_id, "pick one")
            await wait_until(lambda: view.model.rowCount() == 1, what="Bob's message")
            await settled(view)
            action(menu_of(view, 0), "Other emoji…").trigger()
            picker = view.message_actions.picker
            assert picker is not None and picker.isVisible()
            qtbot.mouseClick(picker.buttons["🚀"], Qt.MouseButton.LeftButton)
            await wait_until(lambda: view.model.item(0).reactions == (("🚀", (ada.peer_id,)),),
                             what="the rocket")
            assert view.message_actions.recent.row()[0] == "🚀"
            react = next(a.menu() for a in menu_of(view, 0).actions() if a.text() == "React")
            assert isinstance(react, QMenu) and react.actions()[0].text() == "🚀"
            await settled(view)

    run(qloop, scenario())
