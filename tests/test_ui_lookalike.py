"""Look-alike names in the contact list: "Bob" and "Bоb" (Cyrillic о) must not look the same.

A real window on a qasync loop; the two contacts are added from invites (they need not be
online). Until a contact is verified, its row shows the end of its peer id after the name and
says "not verified" to screen readers; once verified, a mark replaces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.identity import Identity
from app.core.invite import ContactInvite
from app.core.records import ContactInfo, ContactState, contact_tag, id_tag
from tests.ui_helpers import AppFactory, initialised_profile, run, wait
from ui.identity.node_state import Presence
from ui.waits import wait_until


@pytest.fixture
def make_app(qloop: qasync.QEventLoop) -> Iterator[AppFactory]:
    factory = AppFactory(qloop)
    try:
        yield factory
    finally:
        factory.close_all()


def test_id_tag_is_the_end_of_the_peer_id_until_verified() -> None:
    peer_id = Identity(bytes(32)).peer_id
    assert id_tag(peer_id) == "…" + peer_id[-8:] and peer_id.startswith("12D3KooW")
    contact = ContactInfo(peer_id=peer_id, name="Bob", their_name="Bob", local_name=None,
                          state=ContactState.CONTACT, verified=False, online=False,
                          last_seen=None, unread=0, last_message="", last_activity=0.0)
    assert contact_tag(contact) == id_tag(peer_id)
    assert contact_tag(dataclasses.replace(contact, verified=True)) == ""


def test_look_alike_names_are_told_apart_until_verified(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(initialised_profile(tmp_path / "ada", "Ada"))
    assert run(qloop, app.start()) is True
    assert app.window is not None and app.state is not None
    state, window = app.state, app.window
    run(qloop, wait_until(lambda: state.presence is Presence.ONLINE and app.client is not None,
                          what="online"))
    client = app.client
    assert client is not None
    bob, impostor = Identity.generate().peer_id, Identity.generate().peer_id
    run(qloop, client.add_contact(ContactInvite(bob, "Bob").to_link()))
    run(qloop, client.add_contact(ContactInvite(impostor, "B\u043eb").to_link()))
    sidebar = window.sidebar
    wait(qloop, lambda: len(sidebar.visible_entries()) == 2, "both contacts listed")

    def spoken(peer_id: str) -> str:
        index = sidebar.index_of(peer_id)
        assert index is not None
        return str(index.data(Qt.ItemDataRole.AccessibleTextRole))

    for peer_id in (bob, impostor):
        info = sidebar.row_info(peer_id)
        assert info is not None and contact_tag(info) == id_tag(peer_id)
        assert f"not verified, id ending {peer_id[-8:]}" in spoken(peer_id)
    assert contact_tag(sidebar.row_info(bob)) != contact_tag(sidebar.row_info(impostor))
    window.sidebar.view.viewport().repaint()  # the delegate paints both rows with their tags

    run(qloop, client.set_verified(bob, True))
    wait(qloop, lambda: (i := sidebar.row_info(bob)) is not None and i.verified, "verified")
    assert "not verified" not in spoken(bob) and "verified" in spoken(bob)
    assert contact_tag(sidebar.row_info(bob)) == ""
    assert "not verified" in spoken(impostor)
