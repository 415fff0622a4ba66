"""The window's words and where things sit: one name for the safety number and one menu item
for your identity, the Nearby digits labelled, the room members' hint only for strangers,
the bar over a message request under the header it is about, file names whole where there
is room."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from app.core.events import ContactChanged, PeerNearby, RoomMembersChanged
from app.core.fingerprint import fingerprint_for_peer, format_digits
from app.core.records import (
    ContactInfo,
    ContactState,
    Delivery,
    RoomInfo,
    RoomMember,
    TransferInfo,
)
from app.core.transfer_state import TransferState
from ui.contacts.contact_details import ContactDetailsDialog
from ui.conversation.chat_item import ChatItem
from ui.identity.node_state import NodeState
from ui.window.main_window import MainWindow

ME = "12D3KooWLEGuTZS2gsjWf8FvKYxyGTYNTTBq3Mmb3a6BUZo2zUwQ"
BOB = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
CLEO = "12D3KooWHQ9T2zxEr5yEdCdu6N1fJqd7yDkNVsAZoZ7YHdRcdzvk"
ROOM = "ab" * 16


def contact(peer_id: str, name: str, state: ContactState = ContactState.CONTACT
            ) -> ContactInfo:
    return ContactInfo(peer_id, name, name, None, state, False, True, None, 0, "", time.time())


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = MainWindow(NodeState("Ada", ME))
    qtbot.addWidget(win)
    win.resize(1100, 720)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    return win


def texts(widget: QApplication | QWidget) -> list[str]:
    return [label.text() for label in widget.findChildren(QLabel)]


def test_one_identity_item_and_one_name_for_the_safety_number(
    qtbot: QtBot, window: MainWindow,
) -> None:
    view = [a.text().replace("&", "") for a in window.view_menu.actions() if a.text()]
    assert [t for t in view if "Identity" in t or "Invite" in t] == ["Your Identity…"]
    qtbot.keyClick(window, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    page = window.preferences.identity_page
    assert page is not None
    qtbot.waitUntil(page.isVisible)
    assert page.fingerprint() == format_digits(fingerprint_for_peer(ME))
    words = " ".join(texts(page))
    assert "Your half of the\nsafety number:" in words
    assert "ingerprint" not in words
    page.close()

    # A contact's safety number has that half first or second, and the page says which.
    details = ContactDetailsDialog(ME, contact(BOB, "Bob"), window)
    qtbot.addWidget(details)
    digits = details.safety_digits()
    mine = fingerprint_for_peer(ME)
    first = digits[:30] == mine
    assert mine in (digits[:30], digits[30:])
    said = details.explanation.text()
    assert ("The first half is yours" in said) is first
    assert ("The first half is Bob's, the second yours" in said) is not first

    # Nearby: the digits of someone on this network say what they are.
    window.events.publish(PeerNearby(peer_id=CLEO, name_="Cleo",
                                     addrs=("/ip4/192.0.2.8/tcp/4001",)))
    row = window.nearby.row(CLEO)
    assert row is not None
    assert row.fingerprint_caption.text() == "Their half of the safety number:"
    assert row.fingerprint_label.text().replace("\n", " ") == format_digits(
        fingerprint_for_peer(CLEO))
    assert "ingerprint" not in row.fingerprint_label.toolTip()


def test_the_member_hint_speaks_of_adding_only_strangers(window: MainWindow) -> None:
    window.sidebar.model.upsert_room(RoomInfo(ROOM, "Walks", "", "kith:room?x", 3, 3, 0, "",
                                              time.time()))
    assert window.open_room(ROOM)
    window.rooms.members_action.setChecked(True)
    members = (RoomMember(ME, "Ada", True, None, True), RoomMember(BOB, "Bob", True, None),
               RoomMember(CLEO, "Cleo", True, None))
    window.events.publish(RoomMembersChanged(room_id=ROOM, members=members))
    panel = window.member_panel
    assert panel.hint.text() == "Select someone to add them as a contact."
    window.events.publish(ContactChanged(contact=contact(BOB, "Bob")))
    assert panel.hint.text() == (
        "Select someone to write to them, or to add them as a contact.")
    window.events.publish(ContactChanged(contact=contact(CLEO, "Cleo")))
    assert panel.hint.text() == "Select someone to write to them."
    assert "add them" not in panel.list.item(1).toolTip()
    window.events.publish(ContactChanged(contact=contact(CLEO, "Cleo", ContactState.BLOCKED)))
    assert panel.hint.text() == (
        "Select someone to write to them, or to add them as a contact.")


def test_the_request_bar_sits_under_the_header(qtbot: QtBot, window: MainWindow) -> None:
    window.sidebar.model.upsert_contact(contact(BOB, "Bob", ContactState.REQUEST))
    assert window.open_peer(BOB)
    QApplication.processEvents()
    bar, header = window.request_bar, window.conversation.header
    assert bar.isVisible() and header.isVisible()
    header_bottom = header.mapTo(window, QPoint(0, header.height())).y()
    bar_top = bar.mapTo(window, QPoint(0, 0)).y()
    messages_top = window.conversation.messages.mapTo(window, QPoint(0, 0)).y()
    assert header_bottom <= bar_top < messages_top


def test_file_names_are_whole_where_there_is_room(qtbot: QtBot, window: MainWindow) -> None:
    name = "Minutes of the lighthouse committee, spring meeting, final.pdf"
    transfer = "cd" * 16
    window.sidebar.model.upsert_contact(contact(BOB, "Bob"))
    assert window.open_peer(BOB)
    window.files.cache.put(TransferInfo(
        transfer=transfer, outgoing=False, peer_id=BOB, room_id=None, name=name, size=2048,
        hash="00" * 32, state=TransferState.OFFERED, bytes=0, path=None, reason=None))
    model = window.conversation.model
    model.append(ChatItem(key=transfer, seq=1, conversation=BOB, author_id=BOB,
                          author_name="Bob", outgoing=False, text=name,
                          sent_at_ms=int(time.time() * 1000), state=Delivery.RECEIVED,
                          transfer=transfer))
    cards = window.conversation.messages.delegate.cards
    index = model.index(0)
    window.resize(1400, 800)
    qtbot.waitUntil(lambda: window.width() == 1400)
    assert cards.shown_name(index) == name  # room enough: not cut in the middle
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800)
    window.files.transfers_action.trigger()  # squeezed: now it has to be cut
    qtbot.waitUntil(window.files.panel.isVisible)
    QApplication.processEvents()
    shown = cards.shown_name(index)
    assert shown != name and "…" in shown and shown.endswith(".pdf")
