"""Pictures as a person sends and sees them, with a real node behind the window: a preview in
the card up to 320 pixels in the picture's own shape (smaller in a narrow window), a viewer on
click, and a pasted picture seen first, with an optional caption, before it is sent."""

from __future__ import annotations

import functools
from pathlib import Path

import qasync
from PySide6.QtCore import QMimeData, QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite
from tests.ui_helpers import AppFactory, hidden, run, start_online, wait, window_of
from ui.files.file_actions import FileAction
from ui.window.main_window import MainWindow


def picture(path: Path, width: int, height: int) -> Path:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("teal"))
    assert image.save(str(path))
    return path


def with_contact(qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
                 ) -> tuple[MainWindow, str]:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    peer = Identity.generate().peer_id  # Bob need not be online to be sent a picture
    assert app.client is not None
    run(qloop, app.client.add_contact(ContactInvite(peer, "Bob").to_link()))
    wait(qloop, lambda: window.sidebar.model.contact(peer) is not None, "Bob listed")
    assert window.open_peer(peer)
    return window, peer


def test_a_picture_shows_in_its_card_in_its_own_shape_and_opens_big(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    window, _ = with_contact(qloop, make_app, tmp_path)
    window.resize(1200, 800)
    source = picture(tmp_path / "hills.png", 1280, 640)
    window.files.paste_files([str(source)])  # Ctrl+V of a copied file
    model = window.conversation.model
    wait(qloop, lambda: model.rowCount() == 1 and model.item(0).transfer is not None,
         "the picture's card")
    view = window.conversation.messages
    cards = view.delegate.cards
    index = model.index(0)
    wait(qloop, lambda: cards.picture_rect(index).size() == QSize(320, 160),
         "the preview, 320 wide and half as high")
    view.executeDelayedItemsLayout()
    assert view.visualRect(index).contains(cards.picture_rect(index))
    assert FileAction.VIEW in cards.actions(model.item(0))

    window.resize(800, 600)  # narrow, and the Transfers panel beside: smaller, same shape
    window.files.transfers_action.trigger()
    qtbot.waitUntil(window.files.panel.isVisible)
    QApplication.processEvents()
    view.executeDelayedItemsLayout()
    small = cards.picture_rect(index)
    assert small.width() < 320 and abs(small.width() - 2 * small.height()) <= 2
    assert view.visualRect(index).contains(small)
    window.files.transfers_action.trigger()
    qtbot.waitUntil(lambda: not window.files.panel.isVisible())
    QApplication.processEvents()
    view.executeDelayedItemsLayout()

    for _ in range(2):  # clicked, closed with Escape, clicked again
        view.scrollTo(index)
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=cards.picture_rect(index).center())
        viewer = window.files.actions.viewer
        assert viewer is not None
        qtbot.waitUntil(viewer.isVisible)
        assert viewer.fits()
        fitted = viewer.shown_size()
        assert fitted.width() <= 1280 and abs(fitted.width() - 2 * fitted.height()) <= 2
        viewer.toggle_fit()  # Actual Size
        assert viewer.shown_size() == QSize(1280, 640)
        qtbot.keyClick(viewer, Qt.Key.Key_Escape)
        qtbot.waitUntil(functools.partial(hidden, viewer))


def test_a_pasted_picture_is_seen_first_and_sent_with_its_caption(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    window, _ = with_contact(qloop, make_app, tmp_path)
    edit = window.conversation.composer.edit
    screenshot = QImage(840, 420, QImage.Format.Format_RGB32)
    screenshot.fill(QColor("orange"))
    clipboard = QMimeData()
    clipboard.setImageData(screenshot)

    edit.insertFromMimeData(clipboard)  # Ctrl+V with a picture on the clipboard
    dialog = window.files.paste_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.shown_size() == QSize(420, 210)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # changed her mind: nothing is sent
    qtbot.waitUntil(functools.partial(hidden, dialog))
    assert window.files.cache.all() == []

    model = window.conversation.model
    for caption in ("From the top of the hill", ""):
        before = model.rowCount()
        edit.insertFromMimeData(clipboard)
        dialog = window.files.paste_dialog
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        qtbot.keyClicks(dialog.caption, caption)
        qtbot.keyClick(dialog.caption, Qt.Key.Key_Return)  # Enter sends
        qtbot.waitUntil(functools.partial(hidden, dialog))
        expected = 2 if caption else 1
        wait(qloop, lambda b=before, e=expected: model.rowCount() == b + e,
             "the picture and its caption")
        assert model.item(before).transfer is not None  # the picture first
        assert model.item(before).text.startswith("Pasted image")
        if caption:
            assert model.item(before + 1).text == caption  # then what was said with it
    assert len(window.files.cache.all()) == 2
