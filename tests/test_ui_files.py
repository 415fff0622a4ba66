"""Drag-and-drop file transfer in the window, with real peers on 127.0.0.1.

Files are dropped the way a desktop delivers them: ``QMimeData`` with file URLs sent as
enter/move/drop events to the viewport of the sidebar's list (at a contact's or a room's row)
or of the open conversation. Cards are driven through the same paths a user takes: a mouse
click on the painted Accept button, the Delete key on a selected card, View ▸ Transfers.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import pytest
import qasync
import shiboken6
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSize, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
)
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.core.events import Event, FileOffered
from app.core.records import TransferInfo
from app.core.transfer_state import TransferState
from tests.peers import Peer
from tests.ui_helpers import AppFactory, hidden, run, start_online, wait
from ui.files.drop_target import expand
from ui.files.file_actions import FileAction
from ui.identity.node_state import NodeState
from ui.settings.settings_dialog import FILES_TAB
from ui.shell.app import KithApp
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"


class Person:
    """A running KithApp with its window and a log of its client's events."""

    def __init__(self, app: KithApp) -> None:
        assert app.client is not None and app.window is not None and app.state is not None
        self.app = app
        self.client = app.client
        self.window: MainWindow = app.window
        self.peer_id = app.state.peer_id
        self.invite = app.state.invite
        self.events: list[Event] = []
        self.client.subscribe(self.events.append)

    def offered(self) -> list[FileOffered]:
        return [e for e in self.events if isinstance(e, FileOffered)]


def start(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path, name: str) -> Person:
    return Person(start_online(qloop, make_app, path, name))


def use_downloads(qloop: qasync.QEventLoop, person: Person, folder: Path) -> None:
    """Accepted files go to ``folder``, never to the real Downloads folder."""
    folder.mkdir(parents=True, exist_ok=True)
    run(qloop, person.client.set_file_settings(str(folder), 0))


def befriend(qloop: qasync.QEventLoop, a: Person, b: Person) -> None:
    run(qloop, a.client.add_contact(b.invite))
    run(qloop, b.client.add_contact(a.invite))
    wait(qloop, lambda: (i := a.window.sidebar.row_info(b.peer_id)) is not None and i.online,
         "each other online")
    wait(qloop, lambda: (i := b.window.sidebar.row_info(a.peer_id)) is not None and i.online,
         "each other online")


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_to(viewport: QWidget, pos: QPoint, mime: QMimeData) -> tuple[bool, bool]:
    """Enter and move over ``pos``; (enter accepted, move accepted)."""
    action = Qt.DropAction.CopyAction
    button, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, action, mime, button, none)
    QApplication.sendEvent(viewport, enter)
    move = QDragMoveEvent(pos, action, mime, button, none)
    QApplication.sendEvent(viewport, move)
    return enter.isAccepted(), move.isAccepted()


def drop_at(viewport: QWidget, pos: QPoint, mime: QMimeData) -> bool:
    event = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)
    return event.isAccepted()


def drag_and_drop(viewport: QWidget, pos: QPoint, mime: QMimeData) -> bool:
    """The whole gesture: enter, move, drop; True if the drop was taken."""
    drag_to(viewport, pos, mime)
    return drop_at(viewport, pos, mime)


def row_point(window: MainWindow, key: str) -> QPoint:
    index = window.sidebar.index_of(key)
    assert index is not None, key
    return window.sidebar.view.visualRect(index).center()


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card_row(window: MainWindow, transfer: str) -> int | None:
    return window.conversation.model.row_of(transfer)


# -- pure helpers ---------------------------------------------------------------------------------


def test_a_folder_expands_to_its_files_with_relative_names_and_no_links(tmp_path: Path) -> None:
    folder = tmp_path / "Folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "link.txt").symlink_to(folder / "a.txt")
    (folder / "linkdir").symlink_to(folder / "sub")
    single = tmp_path / "single.bin"
    single.write_bytes(b"x")
    assert expand([str(single), str(folder)]) == [
        (str(single), None),
        (str(folder / "a.txt"), "Folder/a.txt"),
        (str(folder / "sub" / "b.txt"), "Folder/sub/b.txt"),
    ]


# -- dropping -------------------------------------------------------------------------------------


def test_drops_on_a_contact_a_room_and_the_conversation_send_there(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    run(qloop, ada.client.add_contact(bob.invite))
    window = ada.window
    wait(qloop, lambda: window.sidebar.index_of(bob.peer_id) is not None, "Bob in the list")
    room = run(qloop, ada.client.create_room("Plans"))
    wait(qloop, lambda: window.sidebar.index_of(room.room_id) is not None, "the room listed")
    window.close_conversation()
    first = tmp_path / "first.txt"
    first.write_text("to Bob")
    second = tmp_path / "second.txt"
    second.write_text("to the room")
    viewport = window.sidebar.view.viewport()

    # Over Bob's row: accepted, and his row is outlined while the drag hovers.
    assert drag_to(viewport, row_point(window, bob.peer_id), file_mime(first)) == (True, True)
    overlay = window.files.sidebar_drop.overlay
    assert overlay.isVisible() and overlay.target is not None
    assert overlay.target.key == bob.peer_id and overlay.target.rect is not None
    assert drop_at(viewport, row_point(window, bob.peer_id), file_mime(first))
    assert not overlay.isVisible()
    wait(qloop, lambda: any(e.to == bob.peer_id and e.name_ == "first.txt"
                            for e in ada.offered()), "the offer to Bob")

    # Over the room's row.
    assert drag_to(viewport, row_point(window, room.room_id), file_mime(second))[1]
    assert overlay.target is not None and overlay.target.key == room.room_id
    assert drop_at(viewport, row_point(window, room.room_id), file_mime(second))
    wait(qloop, lambda: any(e.to == room.room_id and e.name_ == "second.txt"
                            for e in ada.offered()), "the offer to the room")
    in_room = next(e.transfer for e in ada.offered() if e.name_ == "second.txt")
    assert window.open_room(room.room_id)
    wait(qloop, lambda: card_row(window, in_room) is not None, "the card in the room")
    room_item = window.conversation.model.item(card_row(window, in_room) or 0)
    room_cards = window.conversation.messages.delegate.cards
    wait(qloop, lambda: room_cards.status_of(room_item) == "Shared with the room",
         "the room card's status")

    # On the open conversation: the veil names who it goes to.
    assert window.open_peer(bob.peer_id)
    third = tmp_path / "third.txt"
    third.write_text("into the conversation")
    messages = window.conversation.messages.viewport()
    centre = messages.rect().center()
    assert drag_to(messages, centre, file_mime(third)) == (True, True)
    assert window.files.conversation_drop.overlay.text() == "Drop to send to Bob"
    assert drop_at(messages, centre, file_mime(third))
    wait(qloop, lambda: any(e.to == bob.peer_id and e.name_ == "third.txt"
                            for e in ada.offered()), "the offer from the conversation drop")
    # ... and its card shows up there, waiting for Bob.
    transfer = next(e.transfer for e in ada.offered() if e.name_ == "third.txt")
    wait(qloop, lambda: card_row(window, transfer) is not None, "the card in the conversation")
    cards = window.conversation.messages.delegate.cards
    row = card_row(window, transfer)
    assert row is not None
    item = window.conversation.model.item(row)
    wait(qloop, lambda: cards.status_of(item) == "Waiting for Bob to accept", "the waiting card")
    assert cards.actions(item) == [FileAction.CANCEL]


def test_text_drops_are_ignored_and_unreadable_files_are_reported(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    run(qloop, ada.client.add_contact(bob.invite))
    window = ada.window
    wait(qloop, lambda: window.sidebar.index_of(bob.peer_id) is not None, "Bob in the list")
    viewport = window.sidebar.view.viewport()
    text = QMimeData()
    text.setText("just some words")
    assert drag_to(viewport, row_point(window, bob.peer_id), text) == (False, False)
    assert not window.files.sidebar_drop.overlay.isVisible()
    assert not drop_at(viewport, row_point(window, bob.peer_id), text)
    messages = window.conversation.messages.viewport()
    window.open_peer(bob.peer_id)
    assert drag_to(messages, messages.rect().center(), text) == (False, False)
    assert not window.files.conversation_drop.overlay.isVisible()

    missing = tmp_path / "gone.txt"
    assert drag_and_drop(viewport, row_point(window, bob.peer_id), file_mime(missing))
    assert "“gone.txt” could not be sent" in window.banner.message()
    run(qloop, window.runner.idle())
    assert ada.offered() == []
    assert run(qloop, ada.client.transfers()) == []


def test_a_dropped_folder_sends_its_files_with_relative_names(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    run(qloop, ada.client.add_contact(bob.invite))
    window = ada.window
    wait(qloop, lambda: window.sidebar.index_of(bob.peer_id) is not None, "Bob in the list")
    folder = tmp_path / "Holiday"
    (folder / "day 1").mkdir(parents=True)
    (folder / "notes.txt").write_text("notes")
    (folder / "day 1" / "beach.txt").write_text("sand")
    (folder / "shortcut.txt").symlink_to(folder / "notes.txt")
    window.open_peer(bob.peer_id)
    messages = window.conversation.messages.viewport()
    assert drag_and_drop(messages, messages.rect().center(), file_mime(folder))
    expected = ["Holiday/day 1/beach.txt", "Holiday/notes.txt"]
    wait(qloop, lambda: sorted(e.name_ for e in ada.offered()) == expected,
         f"offers named {expected}")
    assert all(e.to == bob.peer_id for e in ada.offered())


def test_a_pasted_image_and_attached_files_are_sent(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    run(qloop, ada.client.add_contact(bob.invite))
    window = ada.window
    wait(qloop, lambda: window.sidebar.index_of(bob.peer_id) is not None, "Bob in the list")
    window.open_peer(bob.peer_id)
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("teal"))
    mime = QMimeData()
    mime.setImageData(image)
    window.conversation.composer.edit.insertFromMimeData(mime)
    pasted = window.files.paste_dialog  # seen first: sent with Send
    assert pasted is not None
    qtbot.waitUntil(pasted.isVisible)
    qtbot.mouseClick(pasted.send_button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: any(e.name_.endswith(".png") for e in ada.offered()), "a PNG offered")
    assert window.conversation.composer.text() == ""

    # Ctrl+Shift+A (the 📎 button's shortcut) opens the file chooser; the files chosen are sent.
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_A,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    chooser = window.files.file_sender.dialog
    assert chooser is not None and chooser.isVisible()
    chosen = tmp_path / "chosen.txt"
    chosen.write_text("picked")
    chooser.filesSelected.emit([str(chosen)])
    wait(qloop, lambda: any(e.name_ == "chosen.txt" for e in ada.offered()), "the chosen file")


def test_the_paperclip_opens_the_chooser_again_after_it_was_cancelled(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    run(qloop, ada.client.add_contact(pat.invite))
    window = ada.window
    wait(qloop, lambda: window.sidebar.index_of(pat.peer_id) is not None, "Pat in the list")
    window.open_peer(pat.peer_id)
    sender = window.files.file_sender
    paperclip = window.conversation.composer.attach_button

    qtbot.mouseClick(paperclip, Qt.MouseButton.LeftButton)
    first = sender.dialog
    assert first is not None and first.isVisible()
    first.reject()  # Cancel: the chooser is deleted
    qtbot.waitUntil(lambda: not shiboken6.isValid(first))

    qtbot.mouseClick(paperclip, Qt.MouseButton.LeftButton)
    second = sender.dialog
    assert second is not None and second.isVisible()
    chosen = tmp_path / "second try.txt"
    chosen.write_text("picked")
    second.filesSelected.emit([str(chosen)])
    wait(qloop, lambda: any(e.name_ == "second try.txt" for e in ada.offered()),
         "the file chosen the second time")


# -- two windows ---------------------------------------------------------------------------------


def test_bob_accepts_a_dropped_file_in_his_window_and_declines_another(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    use_downloads(qloop, bob, tmp_path / "bob-downloads")
    befriend(qloop, ada, bob)
    assert ada.window.open_peer(bob.peer_id)
    assert bob.window.open_peer(ada.peer_id)
    source = tmp_path / "photo.png"
    picture = QImage(64, 48, QImage.Format.Format_RGB32)
    picture.fill(QColor("orange"))
    assert picture.save(str(source))

    # Ada drops the picture on Bob's conversation.
    messages = ada.window.conversation.messages.viewport()
    assert drag_and_drop(messages, messages.rect().center(), file_mime(source))
    wait(qloop, lambda: len(ada.offered()) == 1, "Ada's offer")
    transfer = ada.offered()[0].transfer

    # Bob's window shows the card with Accept; he clicks it.
    bob_view = bob.window.conversation.messages
    cards = bob_view.delegate.cards
    wait(qloop, lambda: card_row(bob.window, transfer) is not None, "the card in Bob's window")
    row = card_row(bob.window, transfer)
    assert row is not None
    index = bob.window.conversation.model.index(row)
    item = bob.window.conversation.model.item(row)
    wait(qloop, lambda: cards.actions(item)[:1] == [FileAction.ACCEPT], "Accept on the card")
    assert cards.actions(item) == [FileAction.ACCEPT, FileAction.SAVE_AS, FileAction.DECLINE]
    assert cards.status_of(item) == "Ada offers this file"
    bob_view.scrollTo(index)
    accept = cards.action_rect(index, FileAction.ACCEPT)
    assert not accept.isEmpty()
    qtbot.mouseClick(bob_view.viewport(), Qt.MouseButton.LeftButton, pos=accept.center())

    def complete(person: Person) -> TransferInfo | None:
        info = person.window.files.cache.get(transfer)
        return info if info is not None and info.state == "complete" else None

    wait(qloop, lambda: complete(bob) is not None, "the file complete for Bob")
    received = complete(bob)
    assert received is not None and received.path is not None
    assert digest(received.path) == digest(source)
    assert str(tmp_path / "bob-downloads") == os.path.dirname(received.path)
    assert cards.status_of(item) == "Complete"
    assert cards.actions(item) == [FileAction.VIEW, FileAction.OPEN, FileAction.SHOW]
    # The picture shows in the card, at its own size (it is smaller than a preview's 320).
    wait(qloop, lambda: cards.picture_rect(index).size() == QSize(64, 48),
         "the picture in Bob's card")
    bob_view.executeDelayedItemsLayout()
    assert bob_view.visualRect(index).contains(cards.picture_rect(index))  # the row grew
    wait(qloop, lambda: complete(ada) is not None, "the file complete for Ada")
    menu = bob_view.context_menu(bob_view.visualRect(index).center())
    assert [a.objectName() for a in menu.actions() if a.objectName()] == [
        "view", "open", "show"]
    opened: list[QUrl] = []
    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    bob_view.setCurrentIndex(index)
    bob_view.setFocus()
    qtbot.keyClick(bob_view, Qt.Key.Key_Return)  # Enter: the primary action, View
    viewer = bob.window.files.actions.viewer
    assert viewer is not None
    qtbot.waitUntil(viewer.isVisible)
    assert viewer.shown_size() == QSize(64, 48)
    open_button = next(b for b in viewer.buttons.buttons() if b.text() == "&Open")
    qtbot.mouseClick(open_button, Qt.MouseButton.LeftButton)  # Open, from the viewer
    assert opened == [QUrl.fromLocalFile(received.path)]
    viewer.close()
    qtbot.mouseClick(bob_view.viewport(), Qt.MouseButton.LeftButton,
                     pos=cards.picture_rect(index).center())  # a click on the picture
    viewer = bob.window.files.actions.viewer
    assert viewer is not None
    qtbot.waitUntil(viewer.isVisible)
    viewer.close()
    wait(qloop, lambda: cards.thumbnails.get(received.path or "") is not None,
         "a thumbnail of the received picture")

    # A second file: Bob selects its card and presses Delete to decline it.
    other = tmp_path / "notes.txt"
    other.write_text("maybe not")
    assert drag_and_drop(messages, messages.rect().center(), file_mime(other))
    wait(qloop, lambda: len(ada.offered()) == 2, "the second offer")
    second = ada.offered()[1].transfer
    wait(qloop, lambda: card_row(bob.window, second) is not None, "the second card")
    second_row = card_row(bob.window, second)
    assert second_row is not None
    second_item = bob.window.conversation.model.item(second_row)
    wait(qloop, lambda: FileAction.DECLINE in cards.actions(second_item), "Decline offered")
    bob.window.activateWindow()
    bob_view.setFocus()
    bob_view.setCurrentIndex(bob.window.conversation.model.index(second_row))
    qtbot.keyClick(bob_view, Qt.Key.Key_Delete)
    wait(qloop, lambda: cards.status_of(second_item) == "Declined", "Declined for Bob")
    ada_cards = ada.window.conversation.messages.delegate.cards
    wait(qloop, lambda: (r := card_row(ada.window, second)) is not None
         and ada_cards.status_of(ada.window.conversation.model.item(r)) == "Declined",
         "Declined for Ada")

    # Reopened, the conversation shows both cards again, from history.
    bob.window.close_conversation()
    assert bob.window.open_peer(ada.peer_id)
    wait(qloop, lambda: card_row(bob.window, transfer) is not None
         and card_row(bob.window, second) is not None, "both cards from history")

    # View ▸ Transfers (Ctrl+Shift+T) lists both, newest first.
    bob.window.files.transfers_action.trigger()
    panel = bob.window.files.panel
    assert panel.isVisible()
    panel.refresh()
    rows = panel.rows()
    assert [name for name, _, _ in rows] == ["notes.txt", "photo.png"]
    assert rows[0][1:] == ("Ada", "Declined") and rows[1][1:] == ("Ada", "Complete")
    panel.select(transfer)
    assert panel.current_actions() == [FileAction.VIEW, FileAction.OPEN, FileAction.SHOW]


def test_save_as_pause_resume_and_cancel_while_the_sender_is_away(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    bob = start(qloop, make_app, tmp_path / "bob", "Bob")
    ada = run(qloop, Peer(tmp_path / "ada", "Ada").start())
    try:
        run(qloop, bob.client.add_contact(ada.invite))
        run(qloop, ada.client.add_contact(bob.invite))
        wait(qloop, lambda: (i := bob.window.sidebar.row_info(ada.peer_id)) is not None
             and i.online, "Ada online for Bob")
        assert bob.window.open_peer(ada.peer_id)
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(300_000))
        offer = run(qloop, ada.client.send_file(bob.peer_id, str(source)))
        view = bob.window.conversation.messages
        cards = view.delegate.cards
        wait(qloop, lambda: card_row(bob.window, offer.transfer) is not None, "Bob's card")
    finally:
        run(qloop, ada.stop())  # the sender goes away: the download cannot finish
    row = card_row(bob.window, offer.transfer)
    assert row is not None
    item = bob.window.conversation.model.item(row)
    index = bob.window.conversation.model.index(row)
    wait(qloop, lambda: FileAction.SAVE_AS in cards.actions(item), "Save As… offered")

    # Save As…: the folder dialog, answered.
    view.scrollTo(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=cards.action_rect(index, FileAction.SAVE_AS).center())
    dialog = bob.window.files.actions.save_dialog
    assert dialog is not None and dialog.isVisible()
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    dialog.fileSelected.emit(str(chosen))
    wait(qloop, lambda: cards.actions(item) == [FileAction.PAUSE, FileAction.CANCEL],
         "Pause and Cancel while receiving")

    # Pause with the mouse, resume with Enter, cancel with Delete.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=cards.action_rect(index, FileAction.PAUSE).center())
    wait(qloop, lambda: "Paused" in cards.status_of(item), "the paused card")
    assert cards.actions(item) == [FileAction.RESUME, FileAction.CANCEL]
    bob.window.activateWindow()
    view.setFocus()
    view.setCurrentIndex(index)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    wait(qloop, lambda: cards.actions(item) == [FileAction.PAUSE, FileAction.CANCEL], "resumed")
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    wait(qloop, lambda: cards.status_of(item) == "Cancelled", "the cancelled card")
    assert list(chosen.iterdir()) == []  # the .part is gone


def test_settings_files_tab_reads_and_saves_through_the_client(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada = start(qloop, make_app, tmp_path / "ada", "Ada")
    folder = tmp_path / "incoming"
    use_downloads(qloop, ada, folder)
    dialog = ada.window.preferences.show_settings(FILES_TAB)
    assert dialog.tabs.currentIndex() == FILES_TAB
    wait(qloop, lambda: dialog.folder_edit.text() == str(folder), "the folder loaded")
    assert dialog.auto_spin.value() == 0 and dialog.auto_spin.text() == "Off"
    other = tmp_path / "elsewhere"
    other.mkdir()
    dialog.folder_edit.setText(str(other))
    dialog.auto_spin.setValue(5)
    qtbot.keyClick(dialog.auto_spin, Qt.Key.Key_Return)
    wait(qloop, lambda: ada.window.preferences.dialog is None, "the dialog closed")
    assert run(qloop, ada.client.file_settings()) == (str(other), 5_000_000)


def test_open_without_a_program_for_the_file_offers_its_folder(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The desktop has nothing that opens the file: Kith says so instead of doing nothing, and
    Show in Folder is one key away; closing the question does nothing more."""
    received = tmp_path / "downloads" / "figures.xyz"
    received.parent.mkdir()
    received.write_bytes(b"\x00" * 100)
    window = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    files = window.files
    files.cache.put(TransferInfo(
        transfer="ab" * 16, outgoing=False, peer_id=ME, room_id=None, name="figures.xyz",
        size=100, hash="00" * 32, state=TransferState.COMPLETE, bytes=100, path=str(received),
        reason=None))
    asked: list[QUrl] = []
    handled = {str(received.parent)}  # a file manager for folders, no program for .xyz

    def open_url(url: QUrl) -> bool:
        asked.append(url)
        return url.toLocalFile() in handled

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    for choose_folder in (False, True, True):  # closed once, then shown in its folder twice
        files.actions.perform("ab" * 16, FileAction.OPEN.value)
        assert asked[-1] == QUrl.fromLocalFile(str(received))
        box = files.actions.no_program_box
        assert box is not None
        qtbot.waitUntil(box.isVisible)
        assert "Nothing on this computer opens “figures.xyz”" in box.text()
        show = files.actions.show_in_folder_button()
        assert show is not None and show.text() == "Show in Folder"
        before = len(asked)
        if choose_folder:
            qtbot.keyClick(box, Qt.Key.Key_Return)  # the default button: Show in Folder
            qtbot.waitUntil(lambda: len(asked) == before + 1)  # noqa: B023 - waited on here
            assert asked[-1] == QUrl.fromLocalFile(str(received.parent))
        else:
            box.reject()
            qtbot.waitUntil(functools.partial(hidden, box))
            assert len(asked) == before
    handled.clear()  # no file manager either: the banner names the folder
    files.actions.perform("ab" * 16, FileAction.SHOW.value)
    assert str(received.parent) in window.banner.message()
