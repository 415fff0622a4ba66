"""The resource manager's pieces, and guards on the py-libp2p 0.8.1 internals it patches.

A guard fails when an upgrade of py-libp2p moves what a patch relies on: then the patch in
``app/node/resources.py`` must be revisited (or dropped, if upstream fixed the problem).
"""

from __future__ import annotations

import inspect

import multiaddr
import trio
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

from app.core.identity import Identity
from app.node.host import build_host
from app.node.resources import (
    DEFAULT_LIMITS,
    PeerClass,
    ResourceManager,
    WindowedYamux,
    address_key,
)

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def test_py_libp2p_inbound_connection_internals() -> None:
    # The listener's callback calls the swarm's handler by this name, at each connection.
    assert "self._handle_inbound_connection(read_write_closer" in inspect.getsource(Swarm.listen)
    # Why it is replaced: the original holds an inbound slot until the whole swarm stops.
    original = inspect.getsource(Swarm._do_handle_inbound_connection)
    assert "self.upgrade_inbound_raw_conn(raw_conn, maddr)" in original
    assert "await self.manager.wait_finished()" in original
    assert "self._inbound_limiter.acquire_nowait()" in inspect.getsource(
        Swarm._handle_inbound_connection)
    # What the replacement calls.
    assert list(inspect.signature(Swarm.upgrade_inbound_raw_conn).parameters) == [
        "self", "raw_conn", "maddr"]
    assert list(inspect.signature(RawConnection).parameters)[:2] == ["stream", "initiator"]
    assert "self.event_closed = trio.Event()" in inspect.getsource(Yamux.__init__)


def test_py_libp2p_yamux_internals() -> None:
    # Yamux connections are built by this module-level name, whatever the muxer options say.
    assert "yamux_conn = Yamux(" in inspect.getsource(muxer_multistream.MuxerMultistream.new_conn)
    incoming = inspect.getsource(Yamux.handle_incoming)
    # Data lands in the per-stream buffers through ``extend``, before the window is charged...
    assert "self.stream_buffers[stream_id].extend(data)" in incoming
    assert "self.stream_buffers[stream_id].extend(syn_payload)" in incoming
    assert "self.streams[stream_id].recv_window -= len(data)" in incoming
    # ... and a TooSlowError raised there closes the connection.
    assert "except trio.TooSlowError:\n                        raise" in incoming
    assert "self.stream_buffers: dict[int, bytearray] = {}" in inspect.getsource(Yamux.__init__)
    # A stream's window grows in one place only, which ``cap_receive_window`` replaces.
    stream_source = inspect.getsource(YamuxStream)
    assert stream_source.count("self.target_recv_window = new_target") == 1
    assert "self.target_recv_window = new_target" in inspect.getsource(
        YamuxStream._apply_autotune_epoch)
    assert "total_delta += self._apply_autotune_epoch(buffered)" in inspect.getsource(
        YamuxStream._auto_tune_and_send_window_update)
    build_host(Identity.generate(), [LOOPBACK])
    assert muxer_multistream.Yamux is WindowedYamux


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
