"""Widgets on their own: composer keys, sidebar search and empty states, the identity card,
the error banner, the event bridge and keyboard paths in the main window."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest
import qasync
import shiboken6
from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.events import ConnectionsChanged, Event, NodeReady, NodeStopped
from app.core.records import ContactInfo, ContactState
from tests.ui_helpers import run
from ui.bridge import EventBridge, TaskRunner
from ui.conversation.composer import Composer
from ui.conversation.view import ConversationView
from ui.identity.node_state import NodeState, Presence
from ui.sidebar.model import Section
from ui.sidebar.view import Sidebar
from ui.widgets.elided_field import ElidedField
from ui.widgets.error_banner import ErrorBanner
from ui.window.main_window import MainWindow

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
READY = NodeReady(
    peer_id=PEER,
    addrs=(f"/ip4/192.0.2.7/tcp/4001/p2p/{PEER}", f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"),
    invite=f"kith:contact?id={PEER}&name=Ada&addr=/ip4/192.0.2.7/tcp/4001",
)


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = MainWindow(NodeState("Ada", PEER))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


# -- composer ---------------------------------------------------------------------------------


@pytest.fixture
def composer(qtbot: QtBot) -> Composer:
    widget = Composer()
    qtbot.addWidget(widget)
    widget.set_target("Bob")
    return widget


def test_enter_submits_the_text_and_clears_the_box(qtbot: QtBot, composer: Composer) -> None:
    qtbot.keyClicks(composer.edit, "hello there")
    with qtbot.waitSignal(composer.submitted, timeout=1000) as blocker:
        qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert blocker.args == ["hello there"]
    assert composer.text() == ""


def test_shift_enter_is_a_new_line_not_a_send(qtbot: QtBot, composer: Composer) -> None:
    with qtbot.assertNotEmitted(composer.submitted):
        qtbot.keyClicks(composer.edit, "first")
        qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        qtbot.keyClicks(composer.edit, "second")
    assert composer.text() == "first\nsecond"
    with qtbot.waitSignal(composer.submitted, timeout=1000) as blocker:
        qtbot.keyClick(composer.edit, Qt.Key.Key_Enter)  # the keypad Enter sends too
    assert blocker.args == ["first\nsecond"]


def test_blank_text_is_not_sent(qtbot: QtBot, composer: Composer) -> None:
    with qtbot.assertNotEmitted(composer.submitted):
        qtbot.keyClicks(composer.edit, "   ")
        qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert not composer.send_button.isEnabled()


def test_send_button_submits(qtbot: QtBot, composer: Composer) -> None:
    qtbot.keyClicks(composer.edit, "by mouse")
    assert composer.send_button.isEnabled()
    with qtbot.waitSignal(composer.submitted, timeout=1000) as blocker:
        qtbot.mouseClick(composer.send_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["by mouse"]


def test_composer_is_disabled_without_a_conversation(qtbot: QtBot) -> None:
    widget = Composer()
    qtbot.addWidget(widget)
    assert not widget.edit.isEnabled()
    assert not widget.send_button.isEnabled()
    assert widget.edit.full_placeholder() == "Select a conversation to write"
    widget.set_target("Bob")
    assert widget.edit.isEnabled()
    assert widget.edit.full_placeholder() == "Message Bob"


def test_composer_grows_with_its_text(qtbot: QtBot, composer: Composer) -> None:
    composer.show()
    one_line = composer.edit.height()
    composer.edit.setPlainText("a\nb\nc")
    assert composer.edit.height() > one_line
    composer.edit.setPlainText("\n".join("x" * 30))
    capped = composer.edit.height()
    composer.edit.setPlainText("\n".join("x" * 60))
    assert composer.edit.height() == capped


# -- sidebar ----------------------------------------------------------------------------------


@pytest.fixture
def sidebar(qtbot: QtBot) -> Sidebar:
    widget = Sidebar()
    qtbot.addWidget(widget)
    widget.resize(280, 500)
    widget.show()
    return widget


def test_empty_sidebar_tells_a_newcomer_what_to_do(sidebar: Sidebar) -> None:
    assert sidebar.search.placeholderText() == "Search"
    assert sidebar.search.isEnabled()
    assert sidebar.visible_entries() == []
    assert sidebar.placeholder_texts() == [
        "No rooms yet. Create one with “+”, or join one from an invite link.",
        "No contacts yet. Share your invite below so people can add you.",
    ]


def test_search_filters_rooms_and_contacts_by_name(qtbot: QtBot, sidebar: Sidebar) -> None:
    sidebar.model.set_entries(Section.CONTACTS, [("a", "Ada Lovelace"), ("b", "Alan Turing")])
    sidebar.model.add_entry(Section.ROOMS, "r", "Book club")
    assert sidebar.visible_entries() == ["Book club", "Ada Lovelace", "Alan Turing"]
    assert sidebar.placeholder_texts() == []

    qtbot.keyClicks(sidebar.search, "LA")
    assert sidebar.visible_entries() == ["Ada Lovelace", "Alan Turing"]
    assert sidebar.placeholder_texts() == ["No rooms match “LA”."]

    sidebar.search.clear()
    qtbot.keyClicks(sidebar.search, "TURING")
    assert sidebar.visible_entries() == ["Alan Turing"]

    sidebar.search.clear()
    qtbot.keyClicks(sidebar.search, "zz")
    assert sidebar.visible_entries() == []
    assert sidebar.placeholder_texts() == ["No rooms match “zz”.", "No contacts match “zz”."]

    sidebar.search.clear()
    assert sidebar.visible_entries() == ["Book club", "Ada Lovelace", "Alan Turing"]


def test_keyboard_from_search_into_the_list(qtbot: QtBot, sidebar: Sidebar) -> None:
    sidebar.model.set_entries(Section.CONTACTS, [("a", "Ada"), ("b", "Bob")])
    qtbot.keyClicks(sidebar.search, "bo")
    with qtbot.waitSignal(sidebar.activated, timeout=1000) as blocker:
        qtbot.keyClick(sidebar.search, Qt.Key.Key_Return)
    assert blocker.args == ["contacts", "b"]

    sidebar.search.clear()
    sidebar.search.setFocus()
    qtbot.keyClick(sidebar.search, Qt.Key.Key_Down)
    assert sidebar.view.currentIndex().data() == "Ada"
    qtbot.keyClick(sidebar.view, Qt.Key.Key_Down)
    assert sidebar.view.currentIndex().data() == "Bob"


# -- identity card, state, banner --------------------------------------------------------------


def test_node_state_follows_events() -> None:
    state = NodeState("Ada", PEER)
    assert state.presence is Presence.CONNECTING
    state.apply(READY)
    assert state.presence is Presence.ONLINE
    assert state.invite == READY.invite
    state.apply(ConnectionsChanged(connections=3))
    assert state.connections_text() == "3 peers connected"
    state.apply(NodeStopped())
    assert state.presence is Presence.OFFLINE
    assert state.connections_text() == "0 peers connected"


def test_identity_panel_updates_from_events(window: MainWindow) -> None:
    panel = window.identity_panel
    assert panel.presence.text() == "Connecting…"
    assert window.header.presence.text() == "Connecting…"
    assert panel.peer_id() == PEER  # known from the profile before the network is up
    assert panel.invite() == ""
    assert not panel.copy_button.isEnabled()

    window.state.apply(READY)
    # One line says both that Kith runs and how others reach it: never "Online" beside
    # "Not reachable by others".
    assert panel.presence.text() == "Not reachable by others"
    assert window.header.presence.text() == "Not reachable by others"
    window.state.apply(dataclasses.replace(READY, reachability="relay"))
    assert window.header.presence.text() == "Reachable through a relay"
    assert panel.presence.text() == "Reachable through a relay"
    assert panel.invite() == READY.invite
    assert panel.addresses() == list(READY.addrs)
    assert panel.address_list.item(0).text() == "/ip4/192.0.2.7/tcp/4001"
    assert panel.copy_button.isEnabled()

    window.state.apply(ConnectionsChanged(connections=1))
    assert window.header.peers_label.text() == "1 peer connected"


def test_peer_id_is_elided_at_rest_and_whole_when_focused(qtbot: QtBot) -> None:
    field = ElidedField()
    qtbot.addWidget(field)
    field.resize(120, 24)
    field.show()
    qtbot.waitExposed(field)
    field.set_full_text(PEER)
    assert "…" in field.text()
    assert field.toolTip() == PEER
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    assert field.text() == PEER
    assert field.selectedText() == PEER


def test_error_banner_collects_messages_until_dismissed(qtbot: QtBot) -> None:
    banner = ErrorBanner()
    qtbot.addWidget(banner)
    assert banner.message() == ""
    banner.show_message("first problem")
    banner.show_message("second problem")
    banner.show_message("first problem")
    assert banner.message() == "second problem\nfirst problem"
    banner.dismiss()
    assert banner.message() == ""
    banner.show_message("third")
    assert banner.message() == "third"


def test_conversation_empty_state(qtbot: QtBot) -> None:
    view = ConversationView()
    qtbot.addWidget(view)
    assert view.is_empty()
    assert view.empty_text() == (
        "Pick a contact or room on the left, or share your invite to start."
    )


# -- the window's keyboard paths --------------------------------------------------------------


CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def _shortcut(
    qtbot: QtBot, window: MainWindow, key: Qt.Key, modifiers: Qt.KeyboardModifier
) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, key, modifiers)


def test_ctrl_i_shows_your_identity(qtbot: QtBot, window: MainWindow) -> None:
    _shortcut(qtbot, window, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    page = window.preferences.identity_page
    assert page is not None
    qtbot.waitUntil(page.isVisible)
    page.close()
    qtbot.mouseClick(window.header.you_button, Qt.MouseButton.LeftButton)  # the same, by mouse
    page = window.preferences.identity_page
    assert page is not None
    qtbot.waitUntil(page.isVisible)
    page.close()
    panel = window.identity_panel  # the invite card folds out its details on its own
    assert not panel.is_expanded()
    qtbot.mouseClick(panel.details_button, Qt.MouseButton.LeftButton)
    assert panel.is_expanded()


def test_ctrl_shift_f_focuses_the_filter_and_ctrl_q_closes(qtbot: QtBot, window: MainWindow
                                                             ) -> None:
    _shortcut(qtbot, window, Qt.Key.Key_F, CTRL_SHIFT)
    qtbot.waitUntil(window.sidebar.search.hasFocus)
    _shortcut(qtbot, window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.search.panel.edit.hasFocus)  # Ctrl+F: search every message
    qtbot.keyClick(window.search.panel.edit, Qt.Key.Key_Escape)
    assert not window.search.panel.isVisible()
    with qtbot.waitSignal(window.closed, timeout=1000):
        _shortcut(qtbot, window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)


def test_copy_invite_shortcut(qtbot: QtBot, window: MainWindow) -> None:
    window.state.apply(READY)
    QApplication.clipboard().clear()
    _shortcut(
        qtbot, window, Qt.Key.Key_C,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert QApplication.clipboard().text() == READY.invite


def _contact(peer_id: str, name: str) -> ContactInfo:
    return ContactInfo(
        peer_id=peer_id, name=name, their_name=name, local_name=None,
        state=ContactState.CONTACT, verified=False, online=False, last_seen=None, unread=0,
        last_message="", last_activity=0.0,
    )


def test_search_and_enter_open_a_contact(qtbot: QtBot, window: MainWindow) -> None:
    window.sidebar.model.upsert_contact(_contact(PEER, "Bob"))
    assert window.conversation.current_peer is None
    window.sidebar.search.setFocus()
    qtbot.keyClicks(window.sidebar.search, "bob")
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Return)
    assert window.conversation.current_peer == PEER
    assert window.sidebar.view.currentIndex().data() == "Bob"


def test_about_box_shows_the_version(qtbot: QtBot, window: MainWindow) -> None:
    from app import __version__

    window.about_action.trigger()
    box = window.about_box()
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert __version__ in box.text()
    box.close()


# -- bridge -----------------------------------------------------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.listeners: list[Callable[[Event], None]] = []

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)


def test_bridge_reemits_events_until_detached(qtbot: QtBot) -> None:
    client = FakeClient()
    bridge = EventBridge()
    bridge.attach(client)
    with qtbot.waitSignal(bridge.received, timeout=1000) as blocker:
        client.listeners[0](READY)
    assert blocker.args == [READY]
    bridge.detach()
    assert client.listeners == []


def test_bridge_delivers_events_by_type_in_the_order_handlers_subscribed(qtbot: QtBot) -> None:
    bridge = EventBridge()
    seen: list[tuple[str, str]] = []
    bridge.subscribe(Event, lambda e: seen.append(("every", e.name)))
    unsubscribe = bridge.subscribe(NodeStopped, lambda e: seen.append(("stopped", e.name)))
    bridge.subscribe(ConnectionsChanged, lambda e: seen.append(("count", str(e.connections))))
    bridge.subscribe(NodeStopped, lambda e: seen.append(("stopped again", e.name)))
    bridge.publish(NodeStopped())
    bridge.publish(ConnectionsChanged(connections=3))
    assert seen == [("every", "stopped"), ("stopped", "stopped"), ("stopped again", "stopped"),
                    ("every", "connections"), ("count", "3")]
    seen.clear()
    unsubscribe()
    bridge.received.emit(NodeStopped())  # the signal is the way in, for tests and the client
    assert seen == [("every", "stopped"), ("stopped again", "stopped")]


class _Subscriber(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Event] = []

    def stopped(self, event: NodeStopped) -> None:
        self.seen.append(event)


def test_a_destroyed_subscriber_stops_receiving(qtbot: QtBot) -> None:
    bridge = EventBridge()
    subscriber = _Subscriber()
    bridge.subscribe(NodeStopped, subscriber.stopped)
    bridge.publish(NodeStopped())
    seen = subscriber.seen
    assert len(seen) == 1
    subscriber.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(subscriber))
    bridge.publish(NodeStopped())
    assert len(seen) == 1


def test_a_failing_handler_does_not_keep_the_event_from_the_others(qtbot: QtBot) -> None:
    bridge = EventBridge()
    seen: list[Event] = []

    def broken(_event: NodeStopped) -> None:
        raise RuntimeError("a broken widget")

    bridge.subscribe(NodeStopped, broken)
    bridge.subscribe(NodeStopped, seen.append)
    with qtbot.captureExceptions() as exceptions:
        bridge.publish(NodeStopped())
    assert seen == [NodeStopped()]
    assert [str(exc) for _, exc, _ in exceptions] == ["a broken widget"]


def test_task_runner_reports_failures(qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    runner = TaskRunner()
    messages: list[str] = []
    runner.failed.connect(messages.append)

    async def boom() -> None:
        raise RuntimeError("no route to Bob")

    async def fine() -> int:
        return 7

    async def scenario() -> int:
        failing = runner.run(boom(), "Sending")
        ok = runner.run(fine(), "Counting")
        await asyncio.gather(failing, return_exceptions=True)
        return await ok

    assert run(qloop, scenario()) == 7
    assert messages == ["Sending failed: no route to Bob"]
    assert runner.pending == 0


# -- light and dark ---------------------------------------------------------------------------


def _dark_palette() -> QPalette:
    palette = QPalette()
    role = QPalette.ColorRole
    for r, colour in (
        (role.Window, "#2d2d30"), (role.WindowText, "#e8e8e8"), (role.Base, "#1f1f22"),
        (role.Text, "#e8e8e8"), (role.Button, "#3a3a3d"), (role.ButtonText, "#e8e8e8"),
        (role.Highlight, "#3d8fd6"), (role.HighlightedText, "#ffffff"),
    ):
        palette.setColor(r, QColor(colour))
    palette.setColor(role.PlaceholderText, QColor(232, 232, 232, 128))
    return palette


def test_the_window_follows_a_dark_palette(qtbot: QtBot, window: MainWindow) -> None:
    window.state.apply(READY)
    window.show_error("a problem")
    light = window.grab().toImage()
    window.setPalette(_dark_palette())
    dark = window.grab().toImage()
    sidebar = window.sidebar.mapTo(window, window.sidebar.rect().center())
    conversation = window.conversation.mapTo(window, window.conversation.rect().topLeft())
    conversation += QPoint(40, 40)
    for point in (sidebar, conversation):
        assert light.pixelColor(point).lightnessF() > 0.8
        assert dark.pixelColor(point).lightnessF() < 0.25
    banner = window.banner.mapTo(window, QPoint(window.banner.width() // 2, 4))
    assert dark.pixelColor(banner).lightnessF() < 0.4  # the error tint is blended, not fixed


def test_a_snapshot_never_undoes_what_events_did_meanwhile(qtbot: QtBot) -> None:
    sidebar = Sidebar()
    qtbot.addWidget(sidebar)
    model = sidebar.model
    stale = "12D3KooWStaleStaleStaleStaleStaleStaleStaleStale1"
    added = "12D3KooWAddedAddedAddedAddedAddedAddedAddedAdded1"
    removed = "12D3KooWGoneGoneGoneGoneGoneGoneGoneGoneGoneGone1"
    model.upsert_contact(_contact(stale, "Stale"))
    model.upsert_contact(_contact(removed, "Gone"))
    model.begin_load()  # a contacts() snapshot is on its way; events keep coming
    model.upsert_contact(_contact(added, "Added"))
    model.remove_contact(removed)
    model.upsert_contact(_contact(PEER, "Bob, renamed"))
    # The snapshot was taken before those events: it lacks Added, still has Gone and old Bob.
    model.load([_contact(PEER, "Bob"), _contact(removed, "Gone")])
    assert model.contact(added) is not None
    assert model.contact(removed) is None
    contact = model.contact(PEER)
    assert contact is not None and contact.name == "Bob, renamed"
    assert model.contact(stale) is None  # untouched and not in the snapshot: gone
    # Once applied, a later snapshot is the truth again.
    model.load([_contact(PEER, "Bob")])
    assert model.contact(added) is None
    renamed = model.contact(PEER)
    assert renamed is not None and renamed.name == "Bob"
