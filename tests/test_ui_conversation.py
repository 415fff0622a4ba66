"""The conversation pane with real clients on 127.0.0.1: history paging, sending and delivery
states, the composer's limits and drafts, copying, links, day separators and retrying.

Stored history is seeded straight into the profile's SQLite database before the node starts
(the node's own schema), so a 350-message conversation costs milliseconds, not a network burst.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QTextBrowser
from pytestqt.qtbot import QtBot

from app.core.events import MessageQueued
from app.core.records import ContactInfo, Delivery
from tests.benchmarks.history_view import seed_conversation
from tests.peers import Peer, befriend, peers
from tests.ui_helpers import run
from ui.bridge import EventBridge
from ui.conversation.message_delegate import Glyph
from ui.conversation.message_model import Role
from ui.conversation.view import PAGE_SIZE, ConversationView
from ui.waits import wait_until


def make_view(qtbot: QtBot, peer: Peer) -> ConversationView:
    view = ConversationView()
    qtbot.addWidget(view)
    view.resize(720, 600)
    view.show()
    qtbot.waitExposed(view)
    view.activateWindow()
    qtbot.waitUntil(view.isActiveWindow)
    events = EventBridge(view)
    events.attach(peer.client)
    view.listen(events)
    view.set_client(peer.client)
    return view


@asynccontextmanager
async def one_peer(path: Path) -> AsyncIterator[Peer]:
    peer = await Peer(path, "Ada").start()
    try:
        yield peer
    finally:
        await peer.stop()


async def contact(peer: Peer, peer_id: str) -> ContactInfo:
    info = await peer.client.contact(peer_id)
    assert info is not None
    return info


async def opened(view: ConversationView, info: ContactInfo) -> None:
    view.open_contact(info)
    await wait_until(lambda: not view.loading, what="the first page")


async def settled(view: ConversationView) -> None:
    await wait_until(lambda: view.runner.pending == 0, what="client calls to finish")


def texts(view: ConversationView) -> list[str]:
    return [item.text for item in view.model.items()]


def bubble_point(view: ConversationView, row: int) -> QPoint:
    """A point inside the bubble of ``row`` (left edge for incoming, right for outgoing)."""
    index = view.model.index(row)
    rect = view.messages.visualRect(index)
    item = view.model.item(row)
    x = rect.right() - 30 if item.outgoing else rect.left() + 30
    return QPoint(x, rect.bottom() - 14)


def test_without_a_client_or_conversation_the_composer_waits(qtbot: QtBot) -> None:
    view = ConversationView()
    qtbot.addWidget(view)
    assert not view.composer.edit.isEnabled()
    assert view.composer.edit.full_placeholder() == "Select a conversation to write"
    assert view.current_peer is None
    assert view.is_empty() and view.empty_title() == "No conversation open"


# -- history ------------------------------------------------------------------------------------


def test_opens_at_the_newest_and_pages_older_messages_without_a_jump(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    grace = seed_conversation(tmp_path / "ada", 350, step_ms=60 * 60 * 1000)  # one an hour

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            read: list[str] = []
            view.read.connect(read.append)
            await opened(view, await contact(ada, grace))
            assert view.model.rowCount() == PAGE_SIZE
            assert texts(view)[-1].startswith("349: ")  # newest at the bottom
            seqs = [item.seq for item in view.model.items()]
            assert seqs == sorted(seqs)
            view.messages.executeDelayedItemsLayout()
            assert view.messages.is_at_bottom()
            last = view.messages.visualRect(view.model.index(PAGE_SIZE - 1))
            assert view.messages.viewport().rect().contains(last.center())
            assert read == [grace]  # open + active window + at the bottom

            bar = view.messages.verticalScrollBar()
            for expected in (200, 300, 350):
                bar.setValue(0)  # near the top: the next older page is requested
                anchor = view.messages.indexAt(QPoint(40, 1))
                key = view.model.item(anchor.row()).key
                top = view.messages.visualRect(anchor).top()
                await wait_until(lambda: view.model.rowCount() == expected,  # noqa: B023
                                 what=f"{expected}")  # (awaited here, in its own iteration)
                await wait_until(lambda: not view.loading)
                moved = view.model.index_of(key)
                assert abs(view.messages.visualRect(moved).top() - top) <= 1  # no jump
            assert view.history_complete
            assert texts(view)[0].startswith("0: ")

    run(qloop, scenario())


def test_day_separators_between_days(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    now = datetime.now().replace(hour=12, minute=0, second=0, microsecond=0)
    end = int(now.timestamp() * 1000)
    # 12 messages, 6 hours apart, ending today at noon: they span four calendar days.
    grace = seed_conversation(tmp_path / "ada", 12, end_ms=end, step_ms=6 * 3600 * 1000)

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, grace))
            model = view.model
            rows = range(model.rowCount())
            starts = [row for row in rows if model.index(row).data(Role.DAY_START)]
            days = [model.item(row).local_time.date() for row in range(model.rowCount())]
            expected = [0] + [row for row in range(1, len(days)) if days[row] != days[row - 1]]
            assert starts == expected and len(starts) >= 3
            labels = [model.index(row).data(Role.DAY_LABEL) for row in starts]
            assert labels[-1] == "Today"
            assert labels[-2] == "Yesterday"
            assert str((now - timedelta(days=2)).day) in labels[-3]
            # The date header is painted inside its row, above the bubble: the row is taller.
            delegate = view.messages.delegate
            width = delegate.content_width()
            for row in (starts[-1], starts[-1] + 1):
                rect = view.messages.visualRect(model.index(row))
                spare = rect.height() - delegate.bubble(model.item(row), width).height
                assert (spare > delegate.day_h) == (row in starts)

    run(qloop, scenario())


# -- sending and receiving ----------------------------------------------------------------------


def test_send_with_enter_states_to_delivered_and_incoming_appears(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, bob.peer_id))
            assert view.composer.edit.isEnabled()
            seen: list[Delivery] = []

            def record(*_: object) -> None:
                for item in view.model.items():
                    if item.outgoing and (not seen or seen[-1] is not item.state):
                        seen.append(item.state)

            view.model.rowsInserted.connect(record)
            view.model.dataChanged.connect(record)

            qtbot.keyClicks(view.composer.edit, "first line")
            qtbot.keyClick(view.composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
            qtbot.keyClicks(view.composer.edit, "second line")
            assert view.composer.text() == "first line\nsecond line"
            assert view.model.rowCount() == 0  # Shift+Enter sent nothing
            qtbot.keyClick(view.composer.edit, Qt.Key.Key_Return)
            assert view.composer.text() == ""
            await wait_until(lambda: view.model.rowCount() == 1, what="the queued row")
            await wait_until(
                lambda: view.model.item(0).state is Delivery.DELIVERED, what="delivered"
            )
            index = view.model.index(0)
            assert index.data(Role.OUTGOING) is True
            assert index.data(Qt.ItemDataRole.DisplayRole) == "first line\nsecond line"
            assert index.data(Role.STATE) == Delivery.DELIVERED
            assert view.messages.delegate.glyph(index) is Glyph.DOUBLE_TICK
            assert seen[0] is Delivery.SENDING and seen[-1] is Delivery.DELIVERED
            assert len(ada.named(MessageQueued.name)) == 1

            read: list[str] = []
            view.read.connect(read.append)
            await bob.client.send(ada.peer_id, "hi Ada, see https://example.org/x")
            await wait_until(lambda: view.model.rowCount() == 2, what="the incoming message")
            incoming = view.model.index(1)
            assert incoming.data(Role.OUTGOING) is False
            assert incoming.data(Role.STATE) == Delivery.RECEIVED
            assert view.messages.delegate.glyph(incoming) is Glyph.NONE
            await wait_until(lambda: read == [bob.peer_id], what="read")
            await settled(view)

    run(qloop, scenario())


def test_too_long_and_refused_messages_are_explained_inline(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, bob.peer_id))
            view.composer.edit.setPlainText("x" * (70 * 1024))
            qtbot.keyClick(view.composer.edit, Qt.Key.Key_Return)
            assert view.composer.error_text() == (
                "This message is too long: 70 KB; the limit is 64 KB."
            )
            assert view.composer.error_label.isVisible()
            assert not view.composer.send_button.isEnabled()
            assert len(view.composer.text()) == 70 * 1024  # kept, to be shortened
            await settled(view)
            assert not ada.named(MessageQueued.name)
            assert view.model.rowCount() == 0

            view.composer.edit.setPlainText("short now")
            assert view.composer.error_text() == ""
            await ada.client.block(bob.peer_id)
            qtbot.keyClick(view.composer.edit, Qt.Key.Key_Return)
            await wait_until(lambda: view.composer.error_text() != "", what="the refusal")
            assert "blocked" in view.composer.error_text()
            assert view.composer.text() == "short now"  # given back, not lost
            assert view.model.rowCount() == 0

    run(qloop, scenario())


# -- drafts -------------------------------------------------------------------------------------


def test_drafts_survive_switching_and_restarting(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    grace = seed_conversation(tmp_path / "ada", 3, peer_name="Grace")
    alan = seed_conversation(tmp_path / "ada", 2, peer_name="Alan")

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, grace))
            qtbot.keyClicks(view.composer.edit, "half a thought for Grace")
            await opened(view, await contact(ada, alan))
            assert view.composer.text() == ""
            qtbot.keyClicks(view.composer.edit, "and one for Alan")
            await opened(view, await contact(ada, grace))
            await wait_until(lambda: view.composer.text() == "half a thought for Grace",
                             what="Grace's draft")
            await opened(view, await contact(ada, alan))
            await wait_until(lambda: view.composer.text() == "and one for Alan",
                             what="Alan's draft")
            view.close_conversation()
            assert view.composer.text() == ""
            assert not view.composer.edit.isEnabled()
            await settled(view)
            view.set_client(None)
        async with one_peer(tmp_path / "ada") as again:
            fresh = make_view(qtbot, again)
            await opened(fresh, await contact(again, alan))
            await wait_until(lambda: fresh.composer.text() == "and one for Alan",
                             what="the draft after a restart")
            assert await again.client.draft(grace) == "half a thought for Grace"
            await settled(fresh)

    run(qloop, scenario())


# -- copying, links, retrying -------------------------------------------------------------------


def test_ctrl_c_copies_the_selected_messages(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    grace = seed_conversation(tmp_path / "ada", 6, text=lambda i: f"message {i}")

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, grace))
            viewport = view.messages.viewport()
            qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=bubble_point(view, 2))
            qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton,
                             Qt.KeyboardModifier.ShiftModifier, bubble_point(view, 4))
            qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton,
                             Qt.KeyboardModifier.ControlModifier, bubble_point(view, 0))
            QApplication.clipboard().clear()
            qtbot.keyClick(view.messages, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
            assert QApplication.clipboard().text() == (
                "message 0\n\nmessage 2\n\nmessage 3\n\nmessage 4"
            )
            menu = view.messages.context_menu(bubble_point(view, 3))
            entries = [a.text() for a in menu.actions() if not a.isSeparator()]
            assert entries[0] == "Reply"  # the message actions come first
            assert entries[-2:] == ["&Copy", "&Select Text"]

            # Enter opens the read-only text browser, for copying part of a message.
            view.messages.setCurrentIndex(view.model.index(5))
            qtbot.keyClick(view.messages, Qt.Key.Key_Return)
            browser = view.messages.findChild(QTextBrowser, "messageText")
            assert browser is not None and browser.isVisible()
            assert browser.toPlainText() == "message 5"
            assert browser.isReadOnly()

    run(qloop, scenario())


def test_clicking_a_link_opens_it(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = seed_conversation(
        tmp_path / "ada", 2, text=lambda i: "read https://example.org/a?b=1, please" if i else "hi"
    )
    opened_urls: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened_urls.append(str(url)))

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, grace))
            index = view.model.index(1)
            target = view.messages.delegate.link_rect(index).center()
            assert view.messages.delegate.link_at(index, target) == "https://example.org/a?b=1"
            menu = view.messages.context_menu(target)
            assert "Copy &Link" in [a.text() for a in menu.actions()]
            qtbot.mouseClick(view.messages.viewport(), Qt.MouseButton.LeftButton, pos=target)
            assert opened_urls == ["https://example.org/a?b=1"]
            # Not a link: plain text beside it opens nothing.
            plain = view.messages.visualRect(view.model.index(0)).center()
            qtbot.mouseClick(view.messages.viewport(), Qt.MouseButton.LeftButton, pos=plain)
            assert opened_urls == ["https://example.org/a?b=1"]

    run(qloop, scenario())


def test_retry_a_failed_message(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    grace = seed_conversation(
        tmp_path / "ada", 2, text=lambda i: f"attempt {i}",
        state=lambda i: (True, Delivery.FAILED),
    )

    async def scenario() -> None:
        async with one_peer(tmp_path / "ada") as ada:
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, grace))
            model = view.model
            delegate = view.messages.delegate
            for row in (0, 1):
                assert delegate.glyph(model.index(row)) is Glyph.FAILED
                assert "refused by the recipient" in model.index(row).data(
                    Qt.ItemDataRole.ToolTipRole
                )
            # Clicking the red "!" retries.
            point = delegate.failed_point(model.index(1))
            qtbot.mouseClick(view.messages.viewport(), Qt.MouseButton.LeftButton, pos=point)
            await wait_until(lambda: model.item(1).state is Delivery.SENDING, what="retry")
            assert model.item(0).state is Delivery.FAILED
            # The context menu's Retry does the same.
            menu = view.messages.context_menu(bubble_point(view, 0))
            retry = [a for a in menu.actions() if a.text() == "&Retry Sending"]
            assert retry
            retry[0].trigger()
            await wait_until(lambda: model.item(0).state is Delivery.SENDING, what="retry 2")
            history = await ada.client.history(grace)
            assert [m.state for m in history] == [Delivery.SENDING, Delivery.SENDING]
            await settled(view)

    run(qloop, scenario())


def test_new_messages_pill_when_scrolled_up(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            for i in range(40):
                await bob.client.send(ada.peer_id, f"filler {i} " + "word " * 12)
            await ada.wait_event("message", count=40)
            view = make_view(qtbot, ada)
            await opened(view, await contact(ada, bob.peer_id))
            bar = view.messages.verticalScrollBar()
            bar.setValue(bar.maximum() // 2)
            read: list[str] = []
            view.read.connect(read.append)
            await bob.client.send(ada.peer_id, "are you there?")
            await wait_until(lambda: view.model.rowCount() == 41, what="the new message")
            assert view.messages.pill_text() == "1 new message ↓"
            assert read == []  # not seen yet: scrolled up
            view.messages.pill.click()
            assert view.messages.is_at_bottom()
            assert view.messages.pill_text() == ""
            assert read == [bob.peer_id]

    run(qloop, scenario())
