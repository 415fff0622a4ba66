"""Group rooms in the window: the issue's GUI test with two real windows on 127.0.0.1, a post
synced late slotting into its place, the model's sorted insert, and a room link Kith was
started with.

Real ``KithApp``s (each its own profile, client and network thread) and, where a second peer
only has to be there, a headless ``tests.peers.Peer``. Waits are on conditions, never sleeps.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from app.core.dm import MAX_TEXT_BYTES
from app.core.identity import Identity
from app.core.records import Delivery
from app.core.room import MAX_POST_TEXT_BYTES, RoomInvite, encode_text_post, parse_room_invite
from tests import ui_helpers
from tests.attackers import room_attacker
from tests.peers import Peer
from tests.ui_helpers import AppFactory, activate, run, start_online, window_of
from ui.conversation.chat_item import ChatItem
from ui.conversation.message_model import MessageListModel
from ui.shell.app import KithApp
from ui.sidebar.actions import RoomAction
from ui.window.main_window import MainWindow

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
WAIT_S = 30  # room posts travel by gossip: allow more than the shared 20 s


def wait(qloop: qasync.QEventLoop, condition: object, what: str, timeout: float = WAIT_S) -> None:
    ui_helpers.wait(qloop, condition, what, timeout)


def start(qloop: qasync.QEventLoop, make_app: AppFactory, path: Path, name: str,
          link: str | None = None) -> KithApp:
    return start_online(qloop, make_app, path, name, link, timeout=WAIT_S)


def texts(window: MainWindow) -> list[str]:
    return [item.text for item in window.conversation.model.items()]


def item_of(window: MainWindow, text: str) -> ChatItem | None:
    return next((i for i in window.conversation.model.items() if i.text == text), None)


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    """Type into the composer and press Enter, as a person would."""
    composer = window.conversation.composer
    composer.edit.setFocus()
    qtbot.keyClicks(composer.edit, text)
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert composer.text() == ""


# -- the GUI test -------------------------------------------------------------------------


def test_two_windows_share_a_room(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    ada_app = start(qloop, make_app, tmp_path / "ada", "Ada")
    bob_app = start(qloop, make_app, tmp_path / "bob", "Bob")
    ada, bob = window_of(ada_app), window_of(bob_app)
    assert ada_app.state is not None and bob_app.state is not None
    ada_id, bob_id = ada_app.state.peer_id, bob_app.state.peer_id

    # Ada: File > New Room (Ctrl+Shift+N), typed.
    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_N, CTRL_SHIFT)
    dialog = ada.rooms.new_room_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert not dialog.ok_button.isEnabled()  # a name is required
    qtbot.keyClicks(dialog.name_edit, "Book club")
    qtbot.keyClicks(dialog.description_edit, "One book a month")
    assert dialog.ok_button.isEnabled()
    qtbot.keyClick(dialog.name_edit, Qt.Key.Key_Return)
    wait(qloop, lambda: ada.rooms.new_room_dialog is None, "the New Room dialog to close")
    room_id = ada.conversation.current_room
    assert room_id is not None
    row = ada.sidebar.room_row_info(room_id)
    assert row is not None and row.name == "Book club" and row.members == 1
    assert ada.sidebar.visible_entries() == ["Book club"]
    assert ada.conversation.header.name_label.text() == "Book club"
    assert ada.conversation.header.presence_label.text() == "1 member, 1 online"
    assert ada.conversation.composer.edit.full_placeholder() == "Message Book club"

    # Its invite, copied from the invite dialog (Ctrl+Shift+I).
    activate(qtbot, ada)
    qtbot.keyClick(ada, Qt.Key.Key_I, CTRL_SHIFT)
    invite = ada.rooms.invite_dialogs.get(room_id)
    assert invite is not None
    qtbot.waitUntil(invite.isVisible)
    assert invite.warning_label.text() == (
        "Anyone who has this link can join the room and read its history. Share it only with "
        "people you want in the room.")
    assert invite.qr.payload() == invite.link() and invite.qr.module_count() > 20
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(invite.copy_button, Qt.MouseButton.LeftButton)
    assert invite.copy_button.text() == "Copied"
    link = QGuiApplication.clipboard().text()
    assert link == invite.link() and parse_room_invite(link).name == "Book club"
    qtbot.keyClick(invite, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: room_id not in ada.rooms.invite_dialogs)

    # Bob: File > Join Room (Ctrl+J), pastes it.
    activate(qtbot, bob)
    qtbot.keyClick(bob, Qt.Key.Key_J, CTRL)
    join = bob.rooms.join_dialog
    assert join is not None
    qtbot.waitUntil(join.isVisible)
    qtbot.keyClicks(join.link_edit, "kith:room?id=nope")
    assert join.error() == "The invite does not carry a valid room id."
    assert not join.ok_button.isEnabled()
    join.link_edit.clear()
    join.link_edit.setFocus()
    qtbot.keyClick(join.link_edit, Qt.Key.Key_V, CTRL)  # paste
    assert join.link_edit.text() == link
    assert join.error() == "" and "Book club" in join.status()
    qtbot.keyClick(join.link_edit, Qt.Key.Key_Return)
    wait(qloop, lambda: bob.rooms.join_dialog is None, "the Join Room dialog to close")
    assert bob.conversation.current_room == room_id
    assert bob.sidebar.view.currentIndex().data() == "Book club"
    for window in (ada, bob):
        wait(qloop, lambda w=window: (r := w.sidebar.room_row_info(room_id)) is not None
             and r.members == 2 and r.online == 2, "two members online")

    # Ada writes; her post shows at once as pending, then confirmed.
    states: list[Delivery] = []
    model = ada.conversation.model

    def record(*_: object) -> None:
        item = item_of(ada, "Welcome to the club")
        if item is not None and (not states or states[-1] is not item.state):
            states.append(item.state)

    model.rowsInserted.connect(record)
    model.dataChanged.connect(record)
    activate(qtbot, ada)
    send(qtbot, ada, "Welcome to the club")
    wait(qloop, lambda: states and states[-1] is Delivery.SENT, "Ada's post confirmed")
    assert states == [Delivery.SENDING, Delivery.SENT]  # the clock, then one tick
    glyph = ada.conversation.messages.delegate.glyph(model.index(0))
    assert glyph.value == "tick"

    # It reaches Bob's conversation with Ada's name on it.
    wait(qloop, lambda: item_of(bob, "Welcome to the club") is not None, "the post at Bob's")
    post = item_of(bob, "Welcome to the club")
    assert post is not None and not post.outgoing and post.author_id == ada_id
    wait(qloop, lambda: (p := item_of(bob, "Welcome to the club")) is not None
         and p.author_name == "Ada", "Ada's name on her post")
    assert bob.conversation.model.shows_author(0)

    # Bob answers with Enter; it appears in Ada's conversation as Bob's.
    activate(qtbot, bob)
    send(qtbot, bob, "Thanks, Ada!")
    wait(qloop, lambda: item_of(ada, "Thanks, Ada!") is not None, "Bob's post at Ada's")
    answer = item_of(ada, "Thanks, Ada!")
    assert answer is not None and answer.author_id == bob_id
    wait(qloop, lambda: (p := item_of(ada, "Thanks, Ada!")) is not None
         and p.author_name == "Bob", "Bob's name on his post")
    assert texts(ada) == texts(bob) == ["Welcome to the club", "Thanks, Ada!"]

    # Bob's member panel (Ctrl+Shift+M) lists both.
    activate(qtbot, bob)
    qtbot.keyClick(bob, Qt.Key.Key_M, CTRL_SHIFT)
    assert bob.member_panel.isVisible()
    wait(qloop, lambda: bob.member_panel.names() == ["Bob (you)", "Ada"], "both members")

    # Ada adds Bob as a contact from her member panel (the header's Members button).
    activate(qtbot, ada)  # in front, at the bottom of the room: what Bob wrote is read
    wait(qloop, lambda: (r := ada.sidebar.room_row_info(room_id)) is not None and r.unread == 0,
         "the room read by Ada")
    qtbot.mouseClick(ada.conversation.header.members_button, Qt.MouseButton.LeftButton)
    panel = ada.member_panel
    assert panel.isVisible()
    wait(qloop, lambda: panel.names() == ["Ada (you)", "Bob"], "Bob in Ada's member panel")
    panel.list.setFocus()
    panel.list.setCurrentRow(1)
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)
    menu = ada.rooms.member_menu
    assert menu is not None
    add = next(a for a in menu.actions() if a.objectName() == "add")
    assert add.text() == "&Add Bob as a Contact"
    menu.close()
    add.trigger()
    wait(qloop, lambda: ada.sidebar.row_info(bob_id) is not None, "Bob under Contacts")
    assert [c.peer_id for c in ada.sidebar.model.contacts()] == [bob_id]
    qtbot.keyClick(panel.list, Qt.Key.Key_Return)  # now a contact: open the conversation
    menu = ada.rooms.member_menu
    assert menu is not None
    opener = next(a for a in menu.actions() if a.objectName() == "open")
    menu.close()
    opener.trigger()
    assert ada.conversation.current_peer == bob_id
    assert not ada.member_panel.isVisible() and not ada.rooms.members_action.isEnabled()

    # With another conversation open and the window away, Bob's post: badge and notification.
    notes: list[tuple[str, str, str]] = []
    ada.tray.notified.connect(lambda title, body, key: notes.append((title, body, key)))
    activate(qtbot, bob)
    assert not ada.isActiveWindow()
    send(qtbot, bob, "Chapter one by Friday?")
    wait(qloop, lambda: (r := ada.sidebar.room_row_info(room_id)) is not None and r.unread == 1
         and r.last_message == "Chapter one by Friday?", "the unread badge on Ada's room row")
    index = ada.sidebar.index_of(room_id)
    assert index is not None and "1 unread" in index.data(Qt.ItemDataRole.AccessibleTextRole)
    wait(qloop, lambda: notes, "a notification")
    assert notes == [("Bob in Book club", "Chapter one by Friday?", room_id)]
    wait(qloop, lambda: ada.unread_total == 1, "1 unread in Ada's title")

    # Clicking the notification opens the room; reading it clears the badge.
    ada.tray.open_requested.emit(room_id)
    qtbot.waitUntil(ada.isActiveWindow)
    assert ada.conversation.current_room == room_id
    wait(qloop, lambda: (r := ada.sidebar.room_row_info(room_id)) is not None and r.unread == 0,
         "the room read")
    wait(qloop, lambda: ada.windowTitle() == "Kith — Ada", "the unread count gone")

    # Leaving (context menu, confirmed) removes the row and closes the room.
    menu = ada.sidebar.room_menu(room_id)
    assert menu is not None
    names = [a.objectName() for a in menu.actions() if a.objectName()]
    assert names == ["open", "invite", "members", "pin", "mute", "mark_unread", "leave"]
    leave = next(a for a in menu.actions() if a.objectName() == RoomAction.LEAVE.value)
    leave.trigger()
    button = ada.rooms.leave_button()
    assert button is not None
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    wait(qloop, lambda: ada.sidebar.room_row_info(room_id) is None, "the room row gone")
    assert ada.conversation.current_room is None
    assert "Book club" not in ada.sidebar.visible_entries()


# -- a post synced late ---------------------------------------------------------------------------


def test_a_synced_older_post_is_inserted_in_order(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    room = run(qloop, pat.client.create_room("History"))
    for text in ("a1", "a2", "a3"):
        run(qloop, pat.client.post(room.room_id, text))

    # A link without members to reach: Wen joins alone, and writes while nobody hears.
    invite = parse_room_invite(room.invite)
    lonely = RoomInvite(invite.secrets, invite.name, invite.description).to_link()
    wen_app = start(qloop, make_app, tmp_path / "wen", "Wen")
    wen = window_of(wen_app)
    activate(qtbot, wen)
    join = wen.rooms.show_join_room(lonely)
    assert join.ok_button.isEnabled(), join.status()
    join.ok_button.click()
    wait(qloop, lambda: wen.conversation.current_room == room.room_id, "the room open")
    for text in ("w1", "w2", "w3"):
        send(qtbot, wen, text)
    wait(qloop, lambda: texts(wen) == ["w1", "w2", "w3"], "Wen's posts, in typing order")

    # Now Wen learns a member (the full link): sync brings Pat's posts, which are older.
    assert wen_app.client is not None
    client = wen_app.client
    run(qloop, client.join_room(room.invite))
    wait(qloop, lambda: len(texts(wen)) == 6, "Pat's posts synced into the open room")
    items = wen.conversation.model.items()
    orders = [i.order for i in items]
    assert orders == sorted(orders)  # type: ignore[type-var]
    shown = texts(wen)
    assert shown.index("a1") < shown.index("w3") and shown.index("a2") < shown.index("w3")
    history = run(qloop, client.room_history(room.room_id, None, 100))
    assert [p.text for p in history] == shown  # the room's shared order, exactly
    for row, item in enumerate(items):  # and every key still finds its row
        assert wen.conversation.model.row_of(item.key) == row


# -- the model's sorted insert --------------------------------------------------------------------


def _post(key: str, lamport: int, author: str = "aa", minute: int = 0) -> ChatItem:
    sent = int(datetime(2024, 5, 1, 12, minute).timestamp() * 1000)
    return ChatItem(key=key, seq=lamport, conversation="room", author_id=author,
                    author_name=author.upper(), outgoing=False, text=key, sent_at_ms=sent,
                    state=Delivery.RECEIVED, order=(lamport, author, key))


def test_sorted_insert_places_rows_and_keeps_the_key_map(qtbot: QtBot) -> None:
    model = MessageListModel(show_author=True)
    model.reset([_post("p2", 2), _post("p4", 4), _post("p6", 6)])
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))

    assert model.insert_sorted(_post("p7", 7))       # newest: the bottom
    assert model.insert_sorted(_post("p5", 5))       # between: the middle
    assert model.insert_sorted(_post("p1", 1))       # oldest: the top
    assert model.insert_sorted(_post("p3", 3, "bb"))
    assert not model.insert_sorted(_post("p5", 5))   # shown once
    assert inserted == [(3, 3), (2, 2), (0, 0), (2, 2)]
    assert [i.key for i in model.items()] == ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]
    assert all(model.row_of(f"p{n}") == n - 1 for n in range(1, 8))
    assert model.oldest_order == (1, "aa", "p1")

    # Ties on the lamport clock fall back to the author key, then the post id.
    model.insert_sorted(_post("x", 3, "aa"))
    assert [i.key for i in model.items()][2:4] == ["x", "p3"]
    assert all(model.row_of(i.key) == row for row, i in enumerate(model.items()))

    # The map is right for later writes: a state change reaches the right row.
    assert model.update_state("p5", Delivery.SENT)
    assert model.item(model.row_of("p5") or 0).state is Delivery.SENT

    # An older page above still works after middle inserts.
    assert model.prepend_page([_post("p0", 0)]) == 1
    assert all(model.row_of(i.key) == row for row, i in enumerate(model.items()))
    # An author's run is broken by a post from someone else slotted into it.
    assert model.starts_group(model.row_of("p3") or 0)
    assert model.starts_group(model.row_of("p4") or 0)


def test_room_posts_have_the_direct_message_size_limit() -> None:
    assert MAX_POST_TEXT_BYTES == MAX_TEXT_BYTES  # the composer's inline limit fits both


# -- links Kith was started with ------------------------------------------------------------------


def test_a_room_link_kith_was_started_with_opens_the_join_dialog(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    room = run(qloop, pat.client.create_room("Garden", "Tomatoes and such"))
    app = start(qloop, make_app, tmp_path / "ada", "Ada", link=room.invite)
    window = window_of(app)
    wait(qloop, lambda: (shown := window.rooms.join_dialog) is not None and shown.isVisible(),
         "the Join Room dialog")
    join = window.rooms.join_dialog
    assert join is not None and join.link_edit.text() == room.invite
    assert "Garden" in join.status() and "Tomatoes and such" in join.status()
    assert app.pending_link is None
    join.ok_button.click()
    wait(qloop, lambda: window.conversation.current_room == room.room_id, "the room open")
    wait(qloop, lambda: (r := window.sidebar.room_row_info(room.room_id)) is not None
         and r.members == 2, "Pat counted as a member")


# -- a post that loses an equivocation leaves the window ----------------------------------------


def test_a_post_that_loses_an_equivocation_leaves_the_open_room(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    room = run(qloop, pat.client.create_room("Disputed"))
    run(qloop, pat.client.post(room.room_id, "hello"))
    wen_app = start(qloop, make_app, tmp_path / "wen", "Wen")
    wen = window_of(wen_app)
    activate(qtbot, wen)
    join = wen.rooms.show_join_room(room.invite)
    join.ok_button.click()
    wait(qloop, lambda: wen.conversation.current_room == room.room_id, "the room open")
    wait(qloop, lambda: texts(wen) == ["hello"], "the history synced")

    secrets = parse_room_invite(room.invite).secrets
    mallory = Identity.generate()

    def signed(text: str, post_id: bytes) -> bytes:
        return encode_text_post(mallory, secrets, text, lamport=5, author_seq=1,
                                sent_at_ms=1_767_225_600_000, post_id=post_id)

    assert pat.ready is not None
    attacker = run(qloop, room_attacker(pat.ready.addrs[0], secrets.topic, mallory))
    try:
        run(qloop, attacker.publish(secrets.topic, [signed("what I claim I said", b"\xf0" * 16)]))
        wait(qloop, lambda: "what I claim I said" in texts(wen), "the first of the two posts")
        run(qloop, attacker.publish(secrets.topic, [signed("what I said", b"\x01" * 16)]))
        wait(qloop, lambda: texts(wen) == ["hello", "what I said"], "the loser replaced")
    finally:
        run(qloop, attacker.stop())
    model = wen.conversation.model
    assert all(model.row_of(item.key) == row for row, item in enumerate(model.items()))


def test_removing_a_row_keeps_the_key_map(qtbot: QtBot) -> None:
    model = MessageListModel(show_author=True)
    model.reset([_post("p1", 1), _post("p2", 2), _post("p3", 3, "bb")])
    assert model.prepend_page([_post("p0", 0)]) == 1  # positions no longer start at 0
    removed: list[tuple[int, int]] = []
    model.rowsRemoved.connect(lambda _parent, first, last: removed.append((first, last)))
    assert model.remove("p2")
    assert not model.remove("p2") and not model.remove("never shown")
    assert removed == [(2, 2)]
    assert [i.key for i in model.items()] == ["p0", "p1", "p3"]
    assert all(model.row_of(i.key) == row for row, i in enumerate(model.items()))
    assert model.starts_group(model.row_of("p3") or 0)  # another author follows p1 now
