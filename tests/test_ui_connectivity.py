"""Connectivity in the window: Nearby, how you are reachable, each contact's route, bootstrap peers.

Real controllers on a qasync loop with real network threads on 127.0.0.1. LAN discovery itself
(mDNS) runs only inside network namespaces (tests/test_lan.py), so here its ``PeerNearby`` is
fed through the window's real EventBridge, carrying the other peer's real loopback address: the
one-click request then travels over the network and must arrive as a message request.
"""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.config import NodeConfig
from app.core.events import ContactRoute, Event, MessageReceived, PeerGone, PeerNearby
from app.core.fingerprint import fingerprint_for_peer, format_digits
from app.core.identity import Identity
from app.core.invite import ContactInvite, strip_p2p
from app.core.records import ContactState
from app.store.profile import Profile
from tests.peers import Peer
from tests.ports import port_to_listen_on
from tests.ui_helpers import AppFactory, initialised_profile, run, start_online, wait, window_of
from ui.identity.reachability import own_text, route_text
from ui.settings.settings_dialog import NETWORK_TAB

OTHER_ID = Identity(bytes(range(32))).peer_id


def _loopback(peer: Peer) -> tuple[str, ...]:
    assert peer.ready is not None
    return tuple(strip_p2p(a) for a in peer.ready.addrs if a.startswith("/ip4/127.0.0.1/"))


def test_nearby_lists_strangers_and_one_click_sends_a_request_they_receive(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    app = start_online(qloop, make_app, tmp_path / "ada", "Ada")
    window = window_of(app)
    nearby = window.nearby
    assert not nearby.isVisible()  # nobody nearby: no section at all

    app.bridge.received.emit(PeerNearby(peer_id=pat.peer_id, name_="Pat", addrs=_loopback(pat)))
    app.bridge.received.emit(PeerNearby(peer_id=OTHER_ID, name_="Quinn", addrs=()))
    qtbot.waitUntil(nearby.isVisible)
    assert nearby.shown_peers() == [pat.peer_id, OTHER_ID]
    row = nearby.row(pat.peer_id)
    assert row is not None
    assert row.name_label.text() == "Pat"
    digits = format_digits(fingerprint_for_peer(pat.peer_id))
    assert row.fingerprint_label.text().replace("\n", " ") == digits

    # Quinn leaves the network: the row goes; nobody else known is listed.
    app.bridge.received.emit(PeerGone(peer_id=OTHER_ID))
    assert nearby.shown_peers() == [pat.peer_id]

    qtbot.mouseClick(row.request_button, Qt.MouseButton.LeftButton)
    assert not row.request_button.isEnabled()  # no second request while this one goes out

    # Pat sees a message request from Ada, over the real network.
    assert app.state is not None
    ada_id = app.state.peer_id
    (got,) = run(qloop, pat.wait_event("message", timeout=20))
    assert isinstance(got, MessageReceived) and got.from_ == ada_id and got.request
    assert "found you on the local network" in got.text
    contacts = run(qloop, pat.client.contacts())
    assert [(c.peer_id, c.state) for c in contacts] == [(ada_id, ContactState.REQUEST)]

    # For Ada, Pat is a contact now: listed in the sidebar, the conversation open, not nearby.
    wait(qloop, lambda: nearby.shown_peers() == [], "Pat leaves Nearby")
    assert not nearby.isVisible()
    info = window.sidebar.model.contact(pat.peer_id)
    assert info is not None and info.state is ContactState.CONTACT
    assert window.conversation.current_peer == pat.peer_id

    # Announced again later (a name change), a contact stays out of Nearby.
    app.bridge.received.emit(PeerNearby(peer_id=pat.peer_id, name_="Pat B", addrs=_loopback(pat)))
    assert nearby.shown_peers() == [] and not nearby.isVisible()


def test_reachability_and_routes_through_a_relay_and_on_this_computer(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, pat: Peer, tmp_path: Path
) -> None:
    # A relay on a port chosen now, started only after Ada's window is up.
    port = port_to_listen_on()
    relay = Peer(tmp_path / "relay", "Relay", NodeConfig(
        listen=(f"/ip4/127.0.0.1/tcp/{port}",), serve_relay=True))
    relay_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{relay.peer_id}"
    path = initialised_profile(tmp_path / "ada", "Ada")
    with Profile.open(path) as profile:
        profile.settings.relays = [relay_addr]
        profile.save_settings()
    app = start_online(qloop, make_app, path, "Ada")
    window = window_of(app)
    reach = window.header.reach_label
    assert app.state is not None
    ada_id = app.state.peer_id

    # Loopback only and no relay yet: nobody else can reach Ada, and the window says so.
    wait(qloop, lambda: reach.text() == own_text("offline"), "not reachable")
    assert reach.text() == "Not reachable by others"
    assert "no relay" in reach.toolTip()

    routes: list[tuple[str, str]] = []

    def record(event: Event) -> None:
        if isinstance(event, ContactRoute):
            routes.append((event.peer_id, event.route))

    app.bridge.received.connect(record)
    run(qloop, relay.client.start())
    try:
        wait(qloop, lambda: reach.text() == own_text("relay"), "reachable through the relay",
             timeout=30)
        assert reach.text() == "Reachable through a relay"
        assert "keeps a place for you" in reach.toolTip()

        # Bob knows Ada only by her circuit address and writes: a relayed connection.
        bob = Peer(tmp_path / "bob", "Bob")
        try:
            run(qloop, bob.start())
            circuit = f"{strip_p2p(relay_addr)}/p2p/{relay.peer_id}/p2p-circuit"
            run(qloop, bob.client.add_contact(ContactInvite(ada_id, "Ada", (circuit,)).to_link()))
            run(qloop, bob.client.send(ada_id, "hello through the relay"))
            wait(qloop, lambda: window.sidebar.model.contact(bob.peer_id) is not None,
                 "Bob's request")
            first = next(r for p, r in routes if p == bob.peer_id)
            assert first == "relay"
            assert window.open_peer(bob.peer_id)
            header = window.conversation.header
            wait(qloop, lambda: window.contacts.routes.get(bob.peer_id, "") != "", "Bob's route")
            route = window.contacts.routes[bob.peer_id]
            assert header.presence_label.text() == f"online · {route_text(route)}"
            dialog = window.contacts.show_details(bob.peer_id)
            assert dialog is not None
            shown = route_text(route)
            assert dialog.route_label.text() == shown[:1].upper() + shown[1:]
            if route == "relay":  # unless a hole punch already made it direct
                assert header.presence_label.text() == "online · through a relay"
                assert dialog.route_label.text() == "Through a relay"
                assert "encrypted" in header.presence_label.toolTip()
            dialog.close()
        finally:
            run(qloop, bob.stop())

        # Pat writes to Ada directly over loopback: "on this computer". (Pat is a request, so
        # Ada does not redial Pat while Pat shuts down below.)
        run(qloop, pat.client.add_contact(app.state.invite))
        run(qloop, pat.client.send(ada_id, "hello from next door"))
        wait(qloop, lambda: window.sidebar.model.contact(pat.peer_id) is not None
             and window.contacts.routes.get(pat.peer_id) == "local", "Pat's request and route")
        assert window.open_peer(pat.peer_id)
        wait(qloop, lambda: window.conversation.header.presence_label.text()
             == "online · on this computer", "Pat's header")
        dialog = window.contacts.show_details(pat.peer_id)
        assert dialog is not None and dialog.route_label.text() == "On this computer"

        # Pat quits: no connection is left, and no route is named.
        run(qloop, pat.stop())
        wait(qloop, lambda: pat.peer_id not in window.contacts.routes, "Pat's route cleared")
        assert "·" not in window.conversation.header.presence_label.text()
        assert dialog.route_label.text() == "None"
        dialog.close()
    finally:
        app.bridge.received.disconnect(record)
        run(qloop, relay.stop())


def test_bootstrap_peers_round_trip_and_bad_ones_are_named(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    path = tmp_path / "ada"
    app = start_online(qloop, make_app, path, "Ada")
    window = window_of(app)
    window.preferences.settings_action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None
    wait(qloop, dialog.is_loaded, "the settings loaded")
    assert dialog.bootstrap_edit.toPlainText() == ""

    dialog.tabs.setCurrentIndex(0)
    dialog.bootstrap_edit.setPlainText("/ip4/127.0.0.1/tcp/4001")  # no /p2p/ peer id
    dialog.save_button.click()
    assert dialog.tabs.currentIndex() == NETWORK_TAB
    assert dialog.error.isVisible()
    assert "not a bootstrap peer address" in dialog.error.text()
    assert "/p2p/12D3Koo" in dialog.error.text()
    assert "after Kith restarts" in dialog.restart_note.text()
    assert window.preferences.dialog is dialog  # still open

    # Loopback only: the next start dials it (a closed port) and nothing leaves the machine.
    good = f"/ip4/127.0.0.1/tcp/1/p2p/{Identity(bytes(32)).peer_id}"
    dialog.bootstrap_edit.setPlainText(f"  {good}  \n\n")
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    assert app.profile is not None and app.profile.settings.bootstrap == [good]

    # Shown again when the dialog reopens, and handed to the node at the next start.
    window.preferences.settings_action.trigger()
    again = window.preferences.dialog
    assert again is not None
    wait(qloop, again.is_loaded, "the settings loaded again")
    assert again.bootstrap_edit.toPlainText() == good
    again.close()
    run(qloop, app.shutdown())
    restarted = start_online(qloop, make_app, path, "Ada")
    assert restarted.client is not None
    assert restarted.client._config is not None
    assert restarted.client._config.bootstrap == (good,)


def test_the_desktop_app_is_a_dht_client_unless_told_to_serve(
    qtbot: QtBot, qloop: qasync.QEventLoop, make_app: AppFactory, tmp_path: Path
) -> None:
    from app.node.node import KithNode

    async def serving(node: KithNode) -> bool:
        return node.dht.server is not None

    path = tmp_path / "ada"
    app = start_online(qloop, make_app, path, "Ada")
    assert app.client is not None and not run(qloop, app.client.call(serving))
    window = window_of(app)
    window.preferences.settings_action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None
    wait(qloop, dialog.is_loaded, "the settings loaded")
    assert not dialog.serve_dht_check.isChecked()
    dialog.serve_dht_check.setChecked(True)
    dialog.save_button.click()
    wait(qloop, lambda: window.preferences.dialog is None, "saved")
    assert app.profile is not None and app.profile.settings.serve_dht
    run(qloop, app.shutdown())
    restarted = start_online(qloop, make_app, path, "Ada")
    assert restarted.client is not None and run(qloop, restarted.client.call(serving))
