"""The window when it gets narrow: rows measured again for the new width (no overlapping or cut
bubbles), the conversation keeping a usable width beside the Transfers panel, a composer
placeholder on one line and a header whose avatar and name fit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QPoint, QSize
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem
from pytestqt.qtbot import QtBot

from app.core.records import ContactInfo, ContactState, Delivery
from tests.benchmarks.history_view import seed_conversation
from tests.ui_helpers import AppFactory, run, wait, window_of
from ui.conversation.chat_item import ChatItem
from ui.conversation.message_list import MessageListView
from ui.conversation.message_model import MessageListModel
from ui.identity.node_state import NodeState, Presence
from ui.window.main_window import MainWindow

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
LONG = ("The lighthouse at the end of the pier was closed on Saturday, so we walked along "
        "the dunes instead and took the long way back through the village. ")


def long_text(i: int) -> str:
    return f"{i}: " + LONG * (1 + i % 3) + ("x" * 120 if i % 4 == 0 else "")


def assert_rows_fit(view: MessageListView) -> None:
    """Every row is as tall as the delegate says at this width, rows follow each other without
    overlapping, and each bubble holds its whole text inside its own row."""
    view.executeDelayedItemsLayout()
    model = view.model()
    assert isinstance(model, MessageListModel)
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    previous_bottom = None
    for row in range(model.rowCount()):
        index = model.index(row)
        rect = view.visualRect(index)
        assert rect.height() == view.delegate.sizeHint(option, index).height(), f"row {row}"
        if previous_bottom is not None:
            assert rect.top() == previous_bottom + 1, f"row {row} overlaps or leaves a gap"
        previous_bottom = rect.bottom()
        painted = view.delegate.painted_rects(index)
        if painted is None:
            continue  # a file card: a fixed height
        bubble, text = painted
        assert rect.contains(bubble), f"row {row}: bubble {bubble} outside its row {rect}"
        assert bubble.contains(text), f"row {row}: text {text} cut by its bubble {bubble}"


def test_rows_are_measured_again_when_the_list_narrows(qtbot: QtBot) -> None:
    model = MessageListModel()
    view = MessageListView()
    qtbot.addWidget(view)
    view.setModel(model)
    now = int(time.time() * 1000)
    model.reset([
        ChatItem(key=f"m{i}", seq=i, conversation=PEER, author_id=PEER, author_name="Bob",
                 outgoing=i % 2 == 1, text=long_text(i), sent_at_ms=now - (20 - i) * 60_000,
                 state=Delivery.DELIVERED if i % 2 else Delivery.RECEIVED)
        for i in range(12)
    ])
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    assert_rows_fit(view)
    for width in (520, 300, 700, 260):  # narrower, then wider again: each time measured anew
        view.resize(width, 700)
        assert_rows_fit(view)


def test_the_transfers_panel_at_800_pixels_leaves_the_conversation_readable(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    profile = tmp_path / "ada"
    peer = seed_conversation(profile, 40, text=long_text, peer_name="Bob Marlowe")
    app = make_app(profile)
    assert run(qloop, app.start()) is True
    wait(qloop, lambda: app.state.presence is Presence.ONLINE and app.window.client is not None,
         "online")
    window = window_of(app)
    wait(qloop, lambda: window.sidebar.model.contact(peer) is not None, "the contact listed")
    window.resize(1100, 720)
    assert window.open_peer(peer)
    conversation = window.conversation
    wait(qloop, lambda: not conversation.loading and conversation.model.rowCount() == 40,
         "the conversation loaded")
    assert_rows_fit(conversation.messages)

    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800)
    assert_rows_fit(conversation.messages)
    window.files.transfers_action.trigger()  # View ▸ Transfers, as a person opens it
    qtbot.waitUntil(window.files.panel.isVisible)
    QApplication.processEvents()
    assert conversation.width() >= conversation.minimumWidth() > 0
    right = conversation.mapTo(window, QPoint(conversation.width(), 0)).x()
    panel = window.files.panel.geometry()
    assert right <= panel.left(), f"the panel {panel} covers the conversation (to {right})"
    assert window.width() == 800
    assert_rows_fit(conversation.messages)
    assert_composer_and_header_fit(window)
    window.files.transfers_action.trigger()  # closed again: wider, and measured again
    qtbot.waitUntil(lambda: not window.files.panel.isVisible())
    assert_rows_fit(conversation.messages)


def assert_composer_and_header_fit(window: MainWindow) -> None:
    edit = window.conversation.composer.edit
    room = edit.viewport().width() - 2 * int(edit.document().documentMargin())
    placeholder = edit.placeholderText()
    assert placeholder.startswith("Message")
    assert edit.fontMetrics().horizontalAdvance(placeholder) <= room, "the placeholder wraps"
    header = window.conversation.header
    avatar = header.avatar.geometry()
    assert header.rect().contains(avatar), "the header clips its avatar"
    assert avatar.size() == QSize(header.avatar.width(), header.avatar.height())
    name = header.name_label
    assert name.geometry().right() <= header.width()
    assert name.fontMetrics().horizontalAdvance(name.text()) <= name.width()


@pytest.mark.parametrize("name", ["Bob", "Maximiliane Konstantinopoulou-Fairweather of Lyme Regis"])
def test_at_800_pixels_the_placeholder_stays_on_one_line_and_the_avatar_whole(
    qtbot: QtBot, name: str,
) -> None:
    window = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(window)
    window.resize(800, 600)
    window.show()
    qtbot.waitExposed(window)
    window.sidebar.model.upsert_contact(ContactInfo(
        PEER, name, name, None, ContactState.CONTACT, True, True, None, 0, "", time.time()))
    assert window.open_peer(PEER)
    window.conversation.composer.set_target(name)  # no client here: enable it by hand
    QApplication.processEvents()
    assert window.width() == 800  # a long name does not push the window wider
    assert_composer_and_header_fit(window)
    assert window.conversation.header.name_label.toolTip() == name  # whole, on hover
