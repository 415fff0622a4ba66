"""A message a mailbox holds shows its own state in the conversation: an envelope between
"sent" and "delivered", and a tooltip saying for whom and where. Real peers on 127.0.0.1 and a
real ``ConversationView`` driven on the qasync loop."""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.records import Delivery
from tests.mailbox_cast import cast, config, port_of
from tests.peers import befriend
from tests.ui_helpers import run
from ui.bridge import EventBridge
from ui.conversation.message_delegate import Glyph
from ui.conversation.view import ConversationView
from ui.waits import wait_until


def test_a_message_held_by_a_mailbox_shows_so_until_it_is_delivered(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with cast(tmp_path) as c:
            mia = await c.mia()
            bob = await c.user("Bob", mia)
            bob_port = port_of(bob)
            ada = await c.start("Ada", config())
            await befriend(ada, bob)
            await ada.wait_event("contact_mailboxes", peer_id=bob.peer_id)
            await c.stop(bob)
            await ada.wait_event("contact_offline", peer_id=bob.peer_id)

            view = ConversationView()
            qtbot.addWidget(view)
            view.resize(720, 600)
            view.show()
            events = EventBridge(view)
            events.attach(ada.client)
            view.listen(events)
            view.set_client(ada.client)
            info = await ada.client.contact(bob.peer_id)
            assert info is not None
            view.open_contact(info)
            await wait_until(lambda: not view.loading, what="the first page")
            view.composer.edit.setFocus()
            qtbot.keyClicks(view.composer.edit, "see you tomorrow")
            qtbot.keyClick(view.composer.edit, Qt.Key.Key_Return)
            await wait_until(lambda: view.model.rowCount() == 1, what="the message")
            index = view.model.index(0)
            await wait_until(lambda: view.messages.delegate.glyph(index) is Glyph.HELD, what="held")
            tooltip = view.model.data(index, Qt.ItemDataRole.ToolTipRole)
            assert tooltip.startswith("Held for Bob by the mailbox ")
            assert mia.peer_id[-4:] in tooltip

            view.close_conversation()  # the state comes back with the history too
            view.open_contact(info)
            await wait_until(lambda: not view.loading, what="the first page again")
            index = view.model.index(0)
            assert view.messages.delegate.glyph(index) is Glyph.HELD

            await c.user("Bob", mia, bob_port)  # Bob collects: delivered
            await wait_until(lambda: view.model.item(0).state is Delivery.DELIVERED,
                             timeout=30, what="delivered")
            assert view.messages.delegate.glyph(view.model.index(0)) is Glyph.DOUBLE_TICK

    run(qloop, scenario(), timeout=90)
