"""Ctrl+F message search and the Ctrl+K quick switcher in a real window with a real client.

The window is a real ``KithApp`` on 127.0.0.1; the other side is a headless ``tests.peers.Peer``.
Everything is typed as a person would; waits are on conditions, never sleeps.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.records import MATCH_END, MATCH_START
from tests import ui_helpers
from tests.peers import Peer
from tests.ui_helpers import AppFactory, activate, run, start_online, window_of
from ui.search.quick_switcher import Candidate, rank, ranked
from ui.search.search_panel import hit_time, snippet_html
from ui.shell.app import KithApp
from ui.window.main_window import MainWindow

CTRL = Qt.KeyboardModifier.ControlModifier
WAIT_S = 30  # search waits on rooms synced by gossip: allow more than the shared 20 s


def wait(qloop: qasync.QEventLoop, condition: object, what: str, timeout: float = WAIT_S) -> None:
    ui_helpers.wait(qloop, condition, what, timeout)


def start(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path, name: str) -> tuple[
        KithApp, MainWindow]:
    app = start_online(qloop, make_app, path, name, timeout=WAIT_S)
    return app, window_of(app)


# -- pure parts --------------------------------------------------------------------------------


def test_snippet_html_escapes_and_bolds_matches() -> None:
    snippet = f"a <b>tag</b> & {MATCH_START}Match{MATCH_END} here\nnext"
    assert snippet_html(snippet) == "a &lt;b&gt;tag&lt;/b&gt; &amp; <b>Match</b> here next"
    assert snippet_html(f"{MATCH_START}open") == "<b>open</b>"


def test_hit_time() -> None:
    now = datetime(2024, 5, 3, 18, 0)
    assert hit_time(int(datetime(2024, 5, 3, 9, 7).timestamp() * 1000), now) == "09:07"
    assert hit_time(int(datetime(2024, 3, 1, 9, 7).timestamp() * 1000), now) == "1 Mar"
    assert hit_time(int(datetime(2022, 3, 1, 9, 7).timestamp() * 1000), now) == "1 Mar 2022"


def test_switcher_ranking() -> None:
    assert rank("boo", "Book club") is not None
    assert rank("xyz", "Book club") is None
    names = ["Hub club", "Climbing crew", "Clubhouse", "Book club", "C. L. U. B."]
    found = [c.name for c in ranked("club", [Candidate("room", n, n) for n in names])]
    # prefix, then a word start (earlier first), then nothing else contains "club" in a row
    assert found[:3] == ["Clubhouse", "Hub club", "Book club"]
    assert found[3] == "C. L. U. B."  # letters in order
    assert [c.name for c in ranked("zoe", [Candidate("contact", "1", "Zoë Ångström")])] == [
        "Zoë Ångström"]
    assert [c.name for c in ranked("ang", [Candidate("contact", "1", "Zoë Ångström")])] == [
        "Zoë Ångström"]
    everyone = [Candidate("room", str(i), f"n{i}") for i in range(3)]
    assert ranked("", everyone) == everyone  # empty: as given (most recent first)


# -- the GUI tests ---------------------------------------------------------------------


def test_ctrl_f_finds_a_message_in_another_conversation_and_enter_reveals_it(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path,
) -> None:
    app, window = start(qloop, make_app, tmp_path / "ada", "Ada")
    client = app.client
    assert client is not None and app.state is not None
    run(qloop, client.add_contact(pat.invite))
    run(qloop, pat.client.add_contact(app.state.invite))
    wait(qloop, lambda: (i := window.sidebar.model.contact(pat.peer_id)) is not None and i.online,
         "Pat online")
    # The needle, then more than a page of chatter: revealing it has to load older pages.
    needle = run(qloop, pat.client.send(app.state.peer_id, "The spare key is under the geranium"))
    for i in range(130):
        run(qloop, pat.client.send(app.state.peer_id, f"chatter number {i}"))
    run(qloop, pat.wait_event("delivered", count=131, timeout=60), 70)

    # Another conversation is open: a room.
    room = run(qloop, client.create_room("Gardening"))
    wait(qloop, lambda: window.sidebar.model.room(room.room_id) is not None, "the room listed")
    assert window.open_room(room.room_id)

    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_F, CTRL)
    panel = window.search.panel
    qtbot.waitUntil(panel.edit.hasFocus)
    qtbot.keyClicks(panel.edit, "geran")
    wait(qloop, lambda: [h.message_id for h in panel.hits()] == [needle.id], "the hit")
    hit = panel.hits()[0]
    assert hit.conversation == pat.peer_id and hit.conversation_name == "Pat"
    assert hit.author_name == "Pat" and f"{MATCH_START}geranium{MATCH_END}" in hit.snippet

    # Typing on narrows as you type; nothing matching says so.
    qtbot.keyClicks(panel.edit, "xx")
    wait(qloop, lambda: not panel.hits() and panel.status.isVisible(), "no hits")
    qtbot.keyClick(panel.edit, Qt.Key.Key_Backspace)
    qtbot.keyClick(panel.edit, Qt.Key.Key_Backspace)
    wait(qloop, lambda: len(panel.hits()) == 1, "the hit again")

    qtbot.keyClick(panel.edit, Qt.Key.Key_Return)
    assert not panel.isVisible()
    conversation = window.conversation
    wait(qloop, lambda: conversation.current_peer == pat.peer_id
         and conversation.messages.currentIndex().isValid()
         and not conversation.revealing, "the message revealed")
    view = conversation.messages
    current = view.currentIndex()
    assert conversation.model.item(current.row()).key == needle.id
    assert view.selectionModel().isSelected(current)
    assert view.visualRect(current).intersects(view.viewport().rect())
    assert conversation.model.rowCount() > 100  # older pages were loaded to get there


def test_ctrl_k_jumps_to_a_room_by_part_of_its_name(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path,
) -> None:
    app, window = start(qloop, make_app, tmp_path / "ada", "Ada")
    client = app.client
    assert client is not None
    book = run(qloop, client.create_room("Book club"))
    climbing = run(qloop, client.create_room("Climbing crew"))
    wait(qloop, lambda: window.sidebar.model.room(book.room_id) is not None
         and window.sidebar.model.room(climbing.room_id) is not None, "both rooms listed")
    window.open_room(book.room_id)

    activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)
    switcher = window.search.switcher
    qtbot.waitUntil(switcher.edit.hasFocus)
    assert {c.name for c in switcher.shown()} == {"Book club", "Climbing crew"}
    qtbot.keyClicks(switcher.edit, "crew")
    assert [c.name for c in switcher.shown()] == ["Climbing crew"]
    qtbot.keyClick(switcher.edit, Qt.Key.Key_Return)
    assert not switcher.isVisible()
    assert window.conversation.current_room == climbing.room_id

    # Letters in order, arrows, Enter; Esc closes without opening anything.
    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)
    qtbot.waitUntil(switcher.edit.hasFocus)
    qtbot.keyClicks(switcher.edit, "bkc")
    assert [c.name for c in switcher.shown()] == ["Book club"]
    qtbot.keyClick(switcher.edit, Qt.Key.Key_Down)
    qtbot.keyClick(switcher.edit, Qt.Key.Key_Enter)
    assert window.conversation.current_room == book.room_id
    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)
    qtbot.waitUntil(switcher.edit.hasFocus)
    qtbot.keyClicks(switcher.edit, "climb")
    qtbot.keyClick(switcher.edit, Qt.Key.Key_Escape)
    assert not switcher.isVisible()
    assert window.conversation.current_room == book.room_id
