"""Message text as a person reads and copies it: a safe Markdown subset (bold, italic, inline
code, code blocks; never HTML, never a remote image), and part of a message selected and
copied through Select Text."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication, QTextCursor
from PySide6.QtWidgets import QTextBrowser
from pytestqt.qtbot import QtBot

from app.core.markdown import Style, plain, render
from app.core.records import ContactInfo, ContactState, Delivery
from ui.conversation.chat_item import ChatItem
from ui.identity.node_state import NodeState
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
MARKED = "**Bold** move: run `kith node` *now*\n```\nline = 1  # **not bold**\n```\ndone"


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.sidebar.model.upsert_contact(ContactInfo(
        BOB, "Bob", "Bob", None, ContactState.CONTACT, True, True, None, 0, "", time.time()))
    assert win.open_peer(BOB)
    return win


def show_message(window: MainWindow, text: str) -> int:
    model = window.conversation.model
    model.append(ChatItem(key=f"m{model.rowCount()}", seq=model.rowCount(), conversation=BOB,
                          author_id=BOB, author_name="Bob", outgoing=False, text=text,
                          sent_at_ms=int(time.time() * 1000), state=Delivery.RECEIVED))
    window.conversation.messages.executeDelayedItemsLayout()
    return model.rowCount() - 1


def test_the_markdown_subset() -> None:
    styled = render(MARKED)
    assert styled.text == "Bold move: run kith node now\nline = 1  # **not bold**\ndone"
    assert [(styled.text[s:e], style) for s, e, style in styled.spans] == [
        ("Bold", Style.BOLD), ("kith node", Style.CODE), ("now", Style.ITALIC),
        ("line = 1  # **not bold**", Style.BLOCK)]
    for literal in ("2*3*4", "snake_case_name", "a * b", "```\nnever closed",
                    "<b>tag</b>", "__init__.py"):
        assert render(literal).text == literal, literal
    assert render(r"\*kept\*").text == "*kept*"
    assert plain("**Meet** at _noon_") == "Meet at noon"


def test_bubbles_show_the_styles_and_never_html(qtbot: QtBot, window: MainWindow) -> None:
    delegate = window.conversation.messages.delegate
    row = show_message(window, MARKED)
    item = window.conversation.model.item(row)
    layout = delegate.bubble(item, delegate.content_width()).layout
    assert layout.text().replace("\u2028", "\n") == render(MARKED).text
    ranges = layout.formats()  # kept: the formats live as long as their ranges
    styles = {layout.text()[f.start:f.start + f.length]: f.format for f in ranges}
    assert styles["Bold"].fontWeight() == QFont.Weight.Bold
    assert styles["now"].fontItalic()
    assert styles["kith node"].fontFamilies() == [delegate.mono.family()]

    hostile = '<b>bold?</b> <img src="https://example.org/tracker.png"> &amp; <script>x</script>'
    row = show_message(window, hostile)
    item = window.conversation.model.item(row)
    assert delegate.bubble(item, delegate.content_width()).layout.text() == hostile
    view = window.conversation.messages
    view.setCurrentIndex(window.conversation.model.index(row))
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)  # the text browser over the bubble
    editor = view.findChild(QTextBrowser, "messageText")
    assert editor is not None
    qtbot.waitUntil(editor.isVisible)
    assert editor.toPlainText() == hostile  # shown as typed, not as markup
    assert "<img" not in editor.document().toHtml()


def test_select_part_of_a_message_and_copy_it(qtbot: QtBot, window: MainWindow) -> None:
    row = show_message(window, MARKED)
    view = window.conversation.messages
    index = window.conversation.model.index(row)
    view.scrollTo(index)
    for _ in range(2):  # opened, closed with Escape, opened again
        menu = view.context_menu(view.visualRect(index).center())
        select = [a for a in menu.actions() if a.objectName() == "select_text"]
        assert select, [a.text() for a in menu.actions()]
        select[0].trigger()
        editor = view.indexWidget(index)
        assert isinstance(editor, QTextBrowser)
        qtbot.waitUntil(editor.isVisible)
        editor.setFocus()
        qtbot.waitUntil(editor.hasFocus)
        assert editor.toPlainText().startswith("Bold move: run kith node now")
        editor.moveCursor(QTextCursor.MoveOperation.Start)
        for _ in range(4):  # Shift+Right four times: "Bold"
            qtbot.keyClick(editor, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
        QGuiApplication.clipboard().clear()
        qtbot.keyClick(editor, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: QGuiApplication.clipboard().text() == "Bold")
        qtbot.keyClick(editor, Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda: view.indexWidget(index) is None)
