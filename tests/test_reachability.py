"""Own reachability and per-peer routes: the rule on its own, then real peers on 127.0.0.1.

A relay, Bob (who reserves a slot on it) and Ada (who knows Bob only by his circuit address)
run in one process. Bob starts before his relay, so his reachability is seen to change from
``offline`` (loopback only, no slot) to ``relay``; both ends call their connection ``relay``
and everyone's connection to the relay ``local`` (this computer).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core.config import NodeConfig
from app.core.events import ContactRoute, NodeStatus, ReachabilityChanged
from app.core.invite import ContactInvite, strip_p2p
from app.node.reachability import address_route, best_route, own_state
from tests.peers import LOOPBACK, Peer
from tests.ports import port_to_listen_on

DOC = "/ip4/198.51.100.7/tcp/4001"  # a documentation range: not global
PRIVATE = "/ip4/192.168.1.20/tcp/4001"
LINK_LOCAL = "/ip6/fe80::1/tcp/4001"
LOOP = "/ip4/127.0.0.1/tcp/4001"
RELAY_ID = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"


def test_own_state_rule() -> None:
    assert own_state(["/ip4/8.8.8.8/tcp/4001", PRIVATE], []) == "direct"
    assert own_state(["/ip4/8.8.8.8/tcp/4001"], [RELAY_ID]) == "direct"
    assert own_state([PRIVATE, LOOP], [RELAY_ID]) == "relay"
    assert own_state([LOOP], [RELAY_ID]) == "relay"
    assert own_state([PRIVATE, LOOP], []) == "lan"
    assert own_state([LINK_LOCAL], []) == "lan"
    assert own_state(["/ip4/10.0.0.2/tcp/1", "/ip4/100.64.0.1/tcp/1"], []) == "lan"  # CGNAT
    assert own_state([LOOP, "/ip6/::1/tcp/4001"], []) == "offline"
    assert own_state([], []) == "offline"
    assert own_state(["/ip4/8.8.8.8/tcp/4001"], [RELAY_ID], running=False) == "offline"
    # Documentation ranges are reserved, not global: never called "direct".
    assert own_state([DOC], []) == "lan"


def test_route_of_an_address_and_the_best_of_several() -> None:
    circuit = f"{LOOP}/p2p/{RELAY_ID}/p2p-circuit"
    assert address_route(circuit) == "relay"
    assert address_route(LOOP) == "local"
    assert address_route("/ip6/::1/tcp/5") == "local"
    assert address_route(PRIVATE) == "lan"
    assert address_route("/ip4/8.8.8.8/tcp/4001") == "direct"
    assert address_route("/dns4/example.org/tcp/1") == ""
    assert best_route(["relay", "direct"]) == "direct"
    assert best_route(["relay", "lan", ""]) == "lan"
    assert best_route(["", ""]) == ""


def test_reachability_follows_a_reservation_and_routes_name_the_relay(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = port_to_listen_on()
        relay = Peer(tmp_path / "relay", "Relay", NodeConfig(
            listen=(f"/ip4/127.0.0.1/tcp/{port}",), serve_relay=True))
        relay_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{relay.peer_id}"
        bob = Peer(tmp_path / "bob", "Bob", NodeConfig(listen=(LOOPBACK,), relays=(relay_addr,)))
        ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,)))
        started: list[Peer] = []
        try:
            started.append(await bob.start())
            assert bob.ready is not None and bob.ready.reachability == "offline"
            status = await bob.client.status()
            assert isinstance(status, NodeStatus) and status.reachability == "offline"
            assert status.to_json()["reachability"] == "offline"

            started.append(await relay.start())
            (changed,) = await bob.wait_event("reachability", state="relay", timeout=20)
            assert isinstance(changed, ReachabilityChanged)
            assert changed.relays == (relay.peer_id,) and changed.addrs == ()
            assert changed.to_json() == {"event": "reachability", "state": "relay",
                                         "relays": [relay.peer_id], "addrs": []}
            assert (await bob.client.status()).reachability == "relay"
            await bob.wait_event("contact_route", peer_id=relay.peer_id, route="local")

            started.append(await ada.start())
            circuit = f"{strip_p2p(relay_addr)}/p2p/{relay.peer_id}/p2p-circuit"
            await ada.client.add_contact(ContactInvite(bob.peer_id, "Bob", (circuit,)).to_link())
            await ada.wait_event("contact_online", peer_id=bob.peer_id, timeout=15)
            await ada.wait_event("contact_route", peer_id=bob.peer_id, timeout=15)
            await bob.wait_event("contact_route", peer_id=ada.peer_id, timeout=15)

            def first_route(peer: Peer, other: str) -> str:
                routes = [e.route for e in peer.events
                          if isinstance(e, ContactRoute) and e.peer_id == other]
                return routes[0]

            # The first connection each way runs through the relay, and both ends say so.
            assert first_route(ada, bob.peer_id) == "relay"
            assert first_route(bob, ada.peer_id) == "relay"
            assert first_route(ada, relay.peer_id) == "local"
        finally:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)

    asyncio.run(scenario())


def test_a_direct_loopback_connection_is_this_computer_and_closing_it_clears_it(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ada = Peer(tmp_path / "ada", "Ada", NodeConfig(listen=(LOOPBACK,)))
        bob = Peer(tmp_path / "bob", "Bob", NodeConfig(listen=(LOOPBACK,)))
        await ada.start()
        await bob.start()
        try:
            await ada.client.add_contact(bob.invite)
            await ada.wait_event("contact_route", peer_id=bob.peer_id, route="local")
            await bob.wait_event("contact_route", peer_id=ada.peer_id, route="local")
            # Blocking closes Bob's connection to Ada: no connection, no route.
            await bob.client.block(ada.peer_id)
            await bob.wait_event("contact_route", peer_id=ada.peer_id, route="")
        finally:
            await asyncio.gather(ada.stop(), bob.stop(), return_exceptions=True)

    asyncio.run(scenario())
