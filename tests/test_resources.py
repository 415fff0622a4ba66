"""The resource manager's pieces (the py-libp2p internals it relies on are guarded in
``tests/test_libp2p_patches.py``)."""

from __future__ import annotations

import multiaddr
import trio
from libp2p.network.swarm import Swarm

from app.core.identity import Identity
from app.node.host import build_host
from app.node.resources import (
    DEFAULT_LIMITS,
    PeerClass,
    ResourceManager,
    address_key,
)

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def test_install_replaces_py_libp2p_s_own_limits() -> None:
    async def main() -> None:
        host = build_host(Identity.generate(), [LOOPBACK])
        swarm = host.get_network()
        assert isinstance(swarm, Swarm)
        assert swarm._resource_manager is not None  # py-libp2p makes one by default
        manager = ResourceManager(DEFAULT_LIMITS, lambda _: PeerClass.STRANGER,
                                  lambda _: None, lambda _: None)
        manager.install(host)
        assert swarm._resource_manager is None and swarm._stream_semaphore is None
        assert swarm.common_stream_handler == manager._inbound_stream
        assert swarm.connection_config.inbound_upgrade_timeout == DEFAULT_LIMITS.handshake_timeout
        async with host.run([LOOPBACK]):
            pass

    trio.run(main)


def test_protocol_families() -> None:
    limits = DEFAULT_LIMITS
    assert limits.protocol_limit("/kith/dm/1.0.0", PeerClass.STRANGER) == ("/kith/dm/", 2)
    assert limits.protocol_limit("/kith/dm/1.0.0", PeerClass.CONTACT) == ("/kith/dm/", 4)
    assert limits.protocol_limit("/meshsub/1.1.0", PeerClass.MEMBER) == ("/meshsub/", 2)
    assert limits.protocol_limit("/libp2p/circuit/relay/0.2.0/stop", PeerClass.CONTACT) == (
        "/libp2p/circuit/relay/0.2.0/stop", 256)
    assert limits.protocol_limit("/unknown/1", PeerClass.STRANGER) == ("", 2)


def test_class_caps_leave_room_for_contacts() -> None:
    limits = DEFAULT_LIMITS
    non_contacts = limits.class_connections.stranger + limits.class_connections.member
    assert non_contacts < limits.connections
    for peer_class in PeerClass:
        assert limits.streams_per_peer.of(peer_class) <= limits.class_streams.of(peer_class)


def test_address_keys() -> None:
    assert address_key("127.0.0.2") == "127.0.0.2"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("not an address") == "not an address"


def test_a_contacts_messages_are_never_counted_and_a_strangers_are() -> None:
    """Counting what a peer stored walks their conversation: only a stranger's is counted."""
    manager = ResourceManager(DEFAULT_LIMITS, lambda _: PeerClass.STRANGER,
                              lambda _: None, lambda _: None)
    asked: list[str] = []

    def stored() -> tuple[int, int]:
        asked.append("stored")
        return DEFAULT_LIMITS.request_messages, 0

    def pending() -> int:
        asked.append("pending")
        return 0

    assert manager.message_refusal("p", contact=True, known=True, stored=stored,
                                   pending_requests=pending, size=10) is None
    assert asked == []
    refused = manager.message_refusal("p", contact=False, known=False, stored=stored,
                                      pending_requests=pending, size=10)
    assert refused is not None and refused[0] == "request_quota"
    assert asked == ["pending", "stored"]
