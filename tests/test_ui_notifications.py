"""Notifications on a desktop without a tray: they go to the desktop's notification service over
D-Bus (a private bus and service here, tests/notification_service.py), a click opens the
conversation, the sound is a setting, and a muted conversation stays quiet."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from app.core.events import MessageReceived
from app.core.records import ContactInfo, ContactState, Delivery, MessageInfo
from app.store.profile import Settings
from tests.notification_service import NotificationService
from tests.peers import Peer
from tests.ui_helpers import AppFactory, run, start_online, wait, window_of
from ui.identity.node_state import NodeState
from ui.sidebar.actions import ChatAction
from ui.window import desktop_notifications
from ui.window.desktop_notifications import DesktopNotifications
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def message(text: str, number: int) -> MessageReceived:
    info = MessageInfo(number, f"{number:02x}", BOB, False, text, 0, Delivery.RECEIVED)
    return MessageReceived(id=info.id, from_=BOB, text=text, sent_at=0, request=False,
                           message=info)


def test_without_a_tray_a_message_goes_to_the_desktop_and_a_click_opens_it(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with NotificationService(tmp_path / "bus") as service:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", service.address)
        window = MainWindow(NodeState("Ada", ME))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        assert not window.tray.available  # the offscreen platform has no tray
        window.sidebar.model.upsert_contact(ContactInfo(
            BOB, "Bob", "Bob", None, ContactState.CONTACT, True, True, None, 1, "", time.time()))
        window.tray.window_active = lambda: False  # Kith is in the background

        window.events.publish(message("Are you coming tonight?", 1))
        first = service.wait_for(1)[0]
        assert first["summary"] == "Bob"
        assert first["body"] == "Are you coming tonight?"
        assert first["app"] == "Kith" and first["replaces"] == 0
        assert first["actions"][0] == "default"
        assert first["hints"]["desktop-entry"] == "kith"
        assert first["hints"]["suppress-sound"] is True  # the sound is off unless chosen

        assert window.conversation.current_peer is None
        service.click(first["id"])  # the user clicks the notification
        qtbot.waitUntil(lambda: window.conversation.current_peer == BOB)

        window.preferences.apply(Settings(notification_sound=True))  # as Settings saves it
        window.events.publish(message("See you there", 2))
        second = service.wait_for(2)[1]
        assert second["hints"]["sound-name"] == "message-new-instant"
        assert "suppress-sound" not in second["hints"]

        window.preferences.apply(Settings(notifications=False))
        window.events.publish(message("Are you there?", 3))
        window.preferences.apply(Settings())
        window.events.publish(message("Hello?", 4))
        assert [n["body"] for n in service.wait_for(3)] == [
            "Are you coming tonight?", "See you there", "Hello?"]


def test_without_a_notification_service_nothing_breaks(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(window)
    window.tray.window_active = lambda: False
    notified: list[tuple[str, str, str]] = []
    window.tray.notified.connect(lambda *args: notified.append(args))
    window.events.publish(message("psst", 1))  # no session bus at all (tests/conftest.py)
    window.events.publish(message("psst again", 2))
    assert [body for _, body, _ in notified] == ["psst", "psst again"]
    assert not window.tray.desktop.available()


def test_a_muted_conversation_does_not_notify(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with NotificationService(tmp_path / "bus") as service:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", service.address)
        app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
        window = window_of(app)
        assert app.state is not None and app.client is not None
        run(qloop, pat.client.add_contact(app.state.invite))
        run(qloop, app.client.add_contact(pat.invite))
        wait(qloop, lambda: (c := window.sidebar.model.contact(pat.peer_id)) is not None
             and c.online, "Pat online")
        window.tray.window_active = lambda: False
        sent = 0

        def pat_writes(text: str) -> None:
            nonlocal sent
            run(qloop, pat.client.send(app.state.peer_id, text))  # type: ignore[union-attr]
            sent += 1
            wait(qloop, lambda: len(pat.named("delivered")) >= sent, f"{text!r} delivered")

        def menu_action(action: ChatAction) -> None:
            menu = window.sidebar.contact_menu(pat.peer_id)
            assert menu is not None
            found = [a for a in menu.actions() if a.objectName() == action.value]
            assert found, [a.objectName() for a in menu.actions()]
            found[0].trigger()

        pat_writes("one")
        assert [n["body"] for n in service.wait_for(1)] == ["one"]
        for _ in range(2):  # muting, unmuting and muting again all take
            menu_action(ChatAction.MUTE)
            wait(qloop, lambda: window.sidebar.model.prefs(pat.peer_id).muted, "muted")
            pat_writes("while muted")
            menu_action(ChatAction.UNMUTE)
            wait(qloop, lambda: not window.sidebar.model.prefs(pat.peer_id).muted, "unmuted")
            pat_writes("loud again")
        bodies = [n["body"] for n in service.wait_for(3)]
        assert bodies == ["one", "loud again", "loud again"]


def test_a_notifier_reaches_its_own_bus_after_another_bus_went_away(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Qt returns the connection already open under a name whatever address is asked for: a
    notifier made after an earlier one and its bus went away must not get that dead one, even
    when it has the earlier one's ``id()`` (freed memory is reused; named by ``id()``, a
    notifier in a whole-suite run once got the connection of a test before it)."""
    monkeypatch.setattr(desktop_notifications, "id", lambda _: 1, raising=False)
    for attempt in range(2):
        with NotificationService(tmp_path / f"bus{attempt}") as service:
            notifier = DesktopNotifications(service.address)
            assert notifier.show("Bob", f"hello {attempt}", BOB, sound=False)
            assert [n["body"] for n in service.wait_for(1)] == [f"hello {attempt}"]
