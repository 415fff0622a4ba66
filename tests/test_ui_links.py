"""Links in messages as a person clicks them: kith: contact and room links open Add Contact and
Join Room filled in (never the desktop), bare www. addresses open in the browser, and both
dialogs find the link inside a pasted message."""

from __future__ import annotations

import functools
import time

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite, find_link
from app.core.records import ContactInfo, ContactState, Delivery
from app.core.room import RoomInvite, RoomSecrets
from tests.ui_helpers import hidden
from ui.conversation.chat_item import ChatItem
from ui.conversation.links import find_links
from ui.identity.node_state import NodeState
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
CLEO_INVITE = ContactInvite(Identity.generate().peer_id, "Cleo").to_link()
ROOM_LINK = RoomInvite(RoomSecrets.generate(), "Walks", "Sundays").to_link()


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
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


def click_link(qtbot: QtBot, window: MainWindow, row: int, link: int = 0) -> None:
    view = window.conversation.messages
    index = window.conversation.model.index(row)
    view.scrollTo(index)
    where = view.delegate.link_rect(index, link)
    assert not where.isEmpty()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=where.center() + QPoint(2, 0))


def test_kith_links_open_their_dialog_filled_in_and_web_links_the_browser(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(str(url)))

    row = show_message(window, f"Join us on Sundays: {ROOM_LINK}. Bring boots!")
    for _ in range(2):  # clicked, cancelled, clicked again
        click_link(qtbot, window, row)
        dialog = window.rooms.join_dialog
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        assert dialog.link() == ROOM_LINK
        assert "Walks" in dialog.status()
        dialog.reject()
        qtbot.waitUntil(functools.partial(hidden, dialog))

    row = show_message(window, f"Add Cleo, she's lovely ({CLEO_INVITE})")
    click_link(qtbot, window, row)
    add = window.contacts.add_dialog
    assert add is not None
    qtbot.waitUntil(add.isVisible)
    assert add.link() == CLEO_INVITE
    assert "Cleo" in add.status()
    add.reject()

    row = show_message(window, "Photos are on www.example.org/walks, and more later.")
    click_link(qtbot, window, row)
    assert opened == ["https://www.example.org/walks"]  # only the web link left Kith


def test_add_contact_and_join_room_find_the_link_in_a_pasted_message(
    qtbot: QtBot, window: MainWindow,
) -> None:
    add = window.contacts.show_add_contact()
    qtbot.waitUntil(add.isVisible)
    add.link_edit.setText(f"Hi Ada! Here is my invite: {CLEO_INVITE} — see you soon.")
    assert add.link() == CLEO_INVITE
    assert add.status().startswith("Found an invite in the pasted text.")
    assert "Cleo" in add.status()
    add.link_edit.setText("no link here at all")
    assert add.error()  # still says what is wrong
    add.link_edit.setText(f"come along! {ROOM_LINK}")  # a room link pasted into Add Contact
    assert "invites you to the room “Walks”" in add.status()
    add.reject()

    join = window.rooms.show_join_room()
    qtbot.waitUntil(join.isVisible)
    join.link_edit.setText(f"Walks this Sunday:\n{ROOM_LINK}\n(bring boots)")
    assert join.link() == ROOM_LINK
    assert join.status().startswith("Found a room link in the pasted text.")
    join.reject()


def test_what_counts_as_a_link() -> None:
    text = ("see www.example.org/a, or https://kith.example/b). mail me@www.x.org; "
            f"{ROOM_LINK}! and www. alone")
    urls = [url for _, _, url in find_links(text)]
    assert urls == ["https://www.example.org/a", "https://kith.example/b", ROOM_LINK]
    assert find_link(f"«{CLEO_INVITE}»") == CLEO_INVITE
    assert find_link(f"({CLEO_INVITE}).") == CLEO_INVITE
    assert find_link("kith:nothing?x=1") is None


def test_kith_links_are_shown_by_what_they_do_and_styles_after_them_stay_in_place() -> None:
    from ui.conversation.bubble_text import styled_text

    text = f"**Walk** with us: {ROOM_LINK} and *Cleo*: {CLEO_INVITE} or kith:room?id=nope"
    shown, links = styled_text(text)
    assert shown.text == ("Walk with us: Join the room “Walks” and Cleo: Add “Cleo” as a contact "
                          "or kith:room?id=nope")
    assert [(shown.text[s:e], url) for s, e, url in links] == [
        ("Join the room “Walks”", ROOM_LINK), ("Add “Cleo” as a contact", CLEO_INVITE),
        ("kith:room?id=nope", "kith:room?id=nope")]  # not an invite: shown as it is
    assert [(shown.text[s:e], style.value) for s, e, style in shown.spans] == [
        ("Walk", "bold"), ("Cleo", "italic")]
