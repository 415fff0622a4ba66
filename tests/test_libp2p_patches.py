"""Guards for Kith's changes to py-libp2p internals (``app.node.libp2p_patches``, and the
subclasses it lists): each fails when an upgrade moves what a change relies on, so the change
is looked at again rather than silently doing nothing. The last test shows what
``write_frames_whole`` is for."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import socket
import textwrap
from collections.abc import Callable
from typing import Any

import libp2p.host.basic_host as basic_host
import libp2p.identity.identify.identify as identify
import libp2p.identity.identify_push.identify_push as identify_push
import libp2p.kad_dht.peer_routing as peer_routing
import libp2p.transport.tcp.tcp as tcp_transport
import multiaddr
import pytest
import trio
import trio.lowlevel
from libp2p.abc import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.host.basic_host import BasicHost
from libp2p.io.msgio import BaseMsgReadWriter
from libp2p.io.trio import TrioTCPStream
from libp2p.kad_dht.kad_dht import KadDHT, get_connection_type
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.connection.swarm_connection import SwarmConn
from libp2p.network.stream.net_stream import NetStream
from libp2p.network.swarm import Swarm
from libp2p.peer.peerdata import PeerData
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStore, env_to_send_in_RPC
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.security.noise.io import (
    BaseNoiseMsgReadWriter,
    NoisePacketReadWriter,
    NoiseTransportReadWriter,
)
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.rw_lock import ReadWriteLock
from libp2p.stream_muxer.yamux import yamux
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream
from noise import constants as noise_constants
from noise.connection import NoiseConnection

from app.core.identity import Identity
from app.node.gossip import GossipConfig, KithPubsub, build_router
from app.node.hole_punch import _KithDCUtR
from app.node.host import build_host
from app.node.libp2p_patches import tcp as tcp_patches
from app.node.libp2p_patches import yamux as yamux_patches
from app.node.libp2p_patches.peerstore import IDENTIFY_MODULES
from app.node.libp2p_patches.yamux import WindowedYamux

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _names(function: object) -> set[str]:
    """The global and attribute names a function's code (nested functions too) uses."""
    code = function.__code__  # type: ignore[attr-defined]
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= set(const.co_names)
            for inner in const.co_consts:
                if inspect.iscode(inner):
                    names |= set(inner.co_names)
    return names


def _upstream(function: Callable[..., Any]) -> Callable[..., Any]:
    """py-libp2p's function behind a patch that keeps it as ``__wrapped__``."""
    return getattr(function, "__wrapped__", function)


def _params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_patches_were_written_for_py_libp2p_0_8_1() -> None:
    assert importlib.metadata.version("libp2p") == "0.8.1"


# -- the byte path --------------------------------------------------------------------------


def test_read_tcp_ahead_internals() -> None:
    # Every TCP read of every layer goes through TrioTCPStream.read, which does the recv.
    read = getattr(TrioTCPStream.read, "unpatched", TrioTCPStream.read)
    assert _params(read) == ["self", "n"]
    assert "receive_some" in _names(read)
    assert "read" in _names(RawConnection.read)


def test_every_tcp_connection_notices_a_dead_link() -> None:
    """``detect_dead_links``: a dialled and an accepted connection both carry keepalive
    probes and the unacknowledged-data timeout, as the kernel reports them."""
    build_host(Identity.generate(), [LOOPBACK])  # applies the process patches
    # Both of the TCP transport's paths (dial and accept) wrap their socket in TrioTCPStream.
    assert inspect.getsource(tcp_transport).count("TrioTCPStream(stream)") == 2
    assert _params(_upstream(TrioTCPStream.__init__)) == ["self", "stream"]

    async def both_ends() -> list[tuple[int, int, int, int]]:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        dialled = await trio.open_tcp_stream("127.0.0.1", port)
        accepted = await listener.accept()
        found = []
        for end in (TrioTCPStream(dialled), TrioTCPStream(accepted)):
            sock = end.stream.socket
            found.append((sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                          sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                          sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                          sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)))
            await end.close()
        await listener.aclose()
        return found

    wanted = (1, tcp_patches.KEEPALIVE_IDLE, tcp_patches.KEEPALIVE_INTERVAL,
              1000 * tcp_patches.DEAD_LINK_AFTER)
    assert trio.run(both_ends) == [wanted, wanted]


def test_notice_hung_peers_internals() -> None:
    """``notice_hung_peers``: every connection runs ``_measure_rtt_loop`` for its life, and an
    answer to a ping is timed and signalled through the attributes the loop sets."""
    build_host(Identity.generate(), [LOOPBACK])  # applies the process patches
    assert "nursery.start_soon(self._measure_rtt_loop)" in inspect.getsource(Yamux.start)
    assert _params(_upstream(Yamux._measure_rtt_loop)) == ["self"]
    upstream_loop = inspect.getsource(_upstream(Yamux._measure_rtt_loop))
    for name in ("self._ping_id += 1", "self._ping_event = trio.Event()",
                 "self._ping_sent_time = trio.current_time()"):
        assert name in upstream_loop, name
    for name in ("_ping_id", "_ping_event", "_ping_sent_time", "_rtt"):
        assert name in _names(_upstream(Yamux.__init__)), name
    # The answer is handled by Kith's reader (yamux_reader._control), which stamps
    # last_received at each socket read; a relayed connection's raw stream is not TCP.
    assert "self.stream = stream" in inspect.getsource(RawConnection.__init__)
    assert "self.stream = stream" in inspect.getsource(_upstream(TrioTCPStream.__init__))


def test_fit_frames_to_noise_and_batch_window_updates_internals() -> None:
    # YamuxStream.write reads the module's frame size at each call.
    assert "MAX_MESSAGE_SIZE" in _names(_upstream(YamuxStream.write))
    # Credit release on every read is an environment switch, read at call time.
    assert "RELEASE_ON_READ" in inspect.getsource(yamux._yamux_release_on_read)


# -- Yamux ----------------------------------------------------------------------------------


def test_write_in_batches_internals() -> None:
    build_host(Identity.generate(), [LOOPBACK])  # applies the process patches
    assert YamuxStream.write.__qualname__.startswith("write_in_batches.")
    # What the batched write takes from py-libp2p: the stream's locks and window, the
    # connection's write lock, and Noise's state, 2-byte length prefix and raw connection.
    upstream_write = inspect.getsource(YamuxStream.write.__wrapped__)  # type: ignore[attr-defined]
    for used in ("self.rw_lock.write_lock()", "self.send_window -= to_send",
                 "self.send_closed", "self.closed", "await self.conn._write_frame(frame)",
                 "with trio.move_on_after(5.0)"):
        assert used in upstream_write, used
    assert "_write_lock" in inspect.getsource(_upstream(Yamux.__init__))
    assert NoisePacketReadWriter.size_len_bytes == 2
    assert "self.noise_state.encrypt(data)" in inspect.getsource(NoiseTransportReadWriter.encrypt)
    assert "self.read_writer = NoisePacketReadWriter(" in inspect.getsource(
        BaseNoiseMsgReadWriter.__init__)
    assert "self.read_write_closer = read_write_closer" in inspect.getsource(
        BaseMsgReadWriter.__init__)
    # And for a small write straight to the socket: the locks it finds free, and the
    # non-blocking socket under TCP's stream (trio keeps the stdlib socket as ``_sock``).
    assert "self._writer_lock = trio.Semaphore(1)" in inspect.getsource(ReadWriteLock.__init__)
    assert "self.write_lock = trio.Lock()" in inspect.getsource(_upstream(TrioTCPStream.__init__))
    assert "self.stream.send_all(data)" in inspect.getsource(TrioTCPStream.write)
    assert "self.stream = stream" in inspect.getsource(RawConnection.__init__)
    with socket.socket() as plain:
        assert trio.socket.from_stdlib_socket(plain)._sock is plain  # type: ignore[attr-defined]



def test_take_free_state_locks_internals() -> None:
    """A ``NetStream``'s state lock is made once in ``__init__`` and only ever entered with
    ``async with`` (all a ``QuickLock`` offers besides ``locked``)."""
    build_host(Identity.generate(), [LOOPBACK])  # applies the process patches
    assert NetStream.__init__.__qualname__.startswith("take_free_state_locks.")
    assert "self._state_lock = trio.Lock()" in inspect.getsource(
        NetStream.__init__.__wrapped__)  # type: ignore[attr-defined]
    tree = ast.parse(textwrap.dedent(inspect.getsource(NetStream)))
    entered = sum(1 for node in ast.walk(tree) if isinstance(node, ast.AsyncWith)
                  and ast.unparse(node.items[0]) == "self._state_lock")
    assert entered >= 4
    assert inspect.getsource(NetStream).count("_state_lock") == entered + 1  # and the assignment


def test_write_frames_whole_internals() -> None:
    # Every frame goes through _write_frame, under the connection's write lock...
    assert _params(Yamux._write_frame) == ["self", "data"]
    for method in (_upstream(YamuxStream.write), YamuxStream.close, YamuxStream.reset,
                   Yamux.close):
        assert "_write_frame" in _names(method), method
    assert "_write_lock" in _names(_upstream(Yamux.__init__))
    # ... Noise encrypts (spends a nonce) before it awaits the socket, which is why a cancelled
    # write broke the connection ...
    source = inspect.getsource(BaseNoiseMsgReadWriter.write_msg)
    assert source.index("self.encrypt(") < source.index("await self.read_writer.write_msg(")
    # ... and a frame's type is its second byte.
    assert yamux.YAMUX_HEADER_FORMAT == "!BBHII"


def test_enforce_yamux_windows_internals() -> None:
    # Yamux connections are built by this module-level name, whatever the muxer options say.
    assert "yamux_conn = Yamux(" in inspect.getsource(muxer_multistream.MuxerMultistream.new_conn)
    incoming = inspect.getsource(Yamux.handle_incoming)
    # Data lands in the per-stream buffers through ``extend``, before the window is charged...
    assert "self.stream_buffers[stream_id].extend(data)" in incoming
    assert "self.stream_buffers[stream_id].extend(syn_payload)" in incoming
    assert "self.streams[stream_id].recv_window -= len(data)" in incoming
    # ... and a TooSlowError raised there closes the connection.
    assert "except trio.TooSlowError:\n                        raise" in incoming
    assert "self.stream_buffers: dict[int, bytearray] = {}" in inspect.getsource(
        _upstream(Yamux.__init__))
    build_host(Identity.generate(), [LOOPBACK])
    assert muxer_multistream.Yamux is WindowedYamux


def test_read_in_one_pass_internals() -> None:
    """``yamux_reader`` reproduces what py-libp2p 0.8.1's frame loop and stream read do: any
    change to them must be read again and carried over, so their text is pinned."""
    build_host(Identity.generate(), [LOOPBACK])
    assert WindowedYamux.handle_incoming.__qualname__ == "handle_incoming"
    assert WindowedYamux.handle_incoming.__module__.endswith("yamux_reader")
    assert WindowedYamux.read_stream.__module__.endswith("yamux_reader")
    pinned: dict[Callable[..., Any], str] = {
        Yamux.handle_incoming: "ad15ff6943feac20", Yamux.read_stream: "d07c99299384666d",
        Yamux._cleanup_on_error: "4fed61a999a34989",
        Yamux._finalize_stream_locked: "95b60e92421133b4",
        # ``read_into``: NetStream.read's state checks and errors, YamuxStream.read's credit.
        NetStream.read: "cc3b280850abe4b3", YamuxStream.read: "ca585f2199fd4e83"}
    for method, digest in pinned.items():
        source = inspect.getsource(method).encode()
        assert hashlib.sha256(source).hexdigest()[:16] == digest, method.__name__
    # It is started by this name, and reads the body timeout py-libp2p reads.
    assert "await self.handle_incoming()" in inspect.getsource(
        Yamux._handle_incoming_with_ready_signal)
    assert "self.conn.read_stream(self.stream_id, n)" in inspect.getsource(YamuxStream.read)
    assert "_yamux_data_read_timeout()" in inspect.getsource(Yamux._read_data_body)
    # The state it reads and writes.
    init = _names(_upstream(Yamux.__init__))
    for name in ("streams", "stream_buffers", "stream_events", "streams_lock",
                 "new_stream_send_channel", "event_shutting_down", "_rtt", "_ping_sent_time",
                 "_ping_event"):
        assert name in init, name
    # Noise: a 2-byte length, then one message for ``noise_state.decrypt``; the session's
    # buffer of what it decrypted before the muxer started.
    assert NoisePacketReadWriter.size_len_bytes == 2
    assert "self.noise_state.decrypt(data)" in inspect.getsource(
        NoiseTransportReadWriter.decrypt)
    # ...whose decryption it calls directly, to decrypt from a view: the wrapper's checks
    # (handshake done, at most 65535 bytes) hold for every message it decrypts.
    decrypt = inspect.getsource(NoiseConnection.decrypt)
    assert "return self.noise_protocol.cipher_state_decrypt.decrypt_with_ad(None, data)" in decrypt
    assert "self.handshake_finished" in decrypt and "MAX_MESSAGE_LEN" in decrypt
    assert noise_constants.MAX_MESSAGE_LEN == 65535
    assert _params(SecureSession._drain) == ["self", "n"]


def test_read_pacing_internals() -> None:
    """``read_pacing``: a patient stream is forgotten where py-libp2p ends every stream,
    ``_finalize_stream_locked`` (its ``fully_closed`` by keyword); gossip streams are marked
    from ``Pubsub.peers`` (ours, set as the peer's hello goes out) and from
    ``continuously_read_stream`` (the peer's, which its stream handler calls)."""
    assert _params(Yamux._finalize_stream_locked) == ["self", "stream", "fully_closed"]
    assert (inspect.signature(Yamux._finalize_stream_locked).parameters["fully_closed"].kind
            is inspect.Parameter.KEYWORD_ONLY)
    assert "self.peers[peer_id] = stream" in inspect.getsource(Pubsub._handle_new_peer)
    assert "await self.continuously_read_stream(stream)" in inspect.getsource(
        Pubsub.stream_handler)


def test_cap_and_widen_receive_window_internals() -> None:
    # A stream's window grows in one place only, which ``cap_receive_window`` replaces...
    stream_source = inspect.getsource(YamuxStream)
    assert stream_source.count("self.target_recv_window = new_target") == 1
    assert "self.target_recv_window = new_target" in inspect.getsource(
        YamuxStream._apply_autotune_epoch)
    assert "total_delta += self._apply_autotune_epoch(buffered)" in inspect.getsource(
        YamuxStream._auto_tune_and_send_window_update)
    # ... and ``widen_receive_window`` sets the window under its lock and sends the credit.
    init = _names(_upstream(YamuxStream.__init__))
    assert {"window_lock", "recv_window", "target_recv_window"} <= init
    assert _params(YamuxStream.send_window_update)[:2] == ["self", "increment"]


# -- the swarm ------------------------------------------------------------------------------


def test_serve_inbound_connections_internals() -> None:
    # The listener's callback calls the swarm's handler by this name, at each connection.
    assert "self._handle_inbound_connection(read_write_closer" in inspect.getsource(Swarm.listen)
    # Why it is replaced: the original holds an inbound slot until the whole swarm stops.
    original = inspect.getsource(Swarm._do_handle_inbound_connection)
    assert "self.upgrade_inbound_raw_conn(raw_conn, maddr)" in original
    assert "await self.manager.wait_finished()" in original
    assert "self._inbound_limiter.acquire_nowait()" in inspect.getsource(
        Swarm._handle_inbound_connection)
    # What the replacement calls.
    assert _params(Swarm.upgrade_inbound_raw_conn) == ["self", "raw_conn", "maddr"]
    assert _params(RawConnection)[:2] == ["stream", "initiator"]
    assert "self.event_closed = trio.Event()" in inspect.getsource(_upstream(Yamux.__init__))


def test_stop_auto_dialing_internals() -> None:
    assert "auto_connector" in _names(Swarm._init_connection_management)
    assert "auto_connector" in _names(Swarm.run)
    assert "retry_config" in _names(Swarm._dial_with_retry)


def test_what_the_account_reads_of_py_libp2p() -> None:
    """``socket_is_open`` and ``is_inbound`` (``ResourceManager.account``)."""
    assert "stream" in _names(_upstream(TrioTCPStream.__init__))
    assert "socket" in _names(trio.SocketStream.__init__)
    assert "INBOUND" in _names(SwarmConn._handle_muxed_stream)
    assert "_direction" in _names(SwarmConn._handle_muxed_stream)
    assert "OUTBOUND" in _names(Swarm.new_stream)


# -- peerstore, identify, DHT ---------------------------------------------------------------


def test_bound_peer_addrs_internals() -> None:
    assert "add_addrs" in _names(PeerStore.add_addrs)
    assert "addrs" in _names(PeerData.get_addrs)


def test_bound_dht_answers_internals() -> None:
    assert callable(peer_routing.read_varint_prefixed_bytes_limited)
    assert "read_varint_prefixed_bytes_limited" in _names(
        peer_routing.PeerRouting._query_peer_for_closest)


def test_bound_identify_internals() -> None:
    assert set(IDENTIFY_MODULES) == {basic_host, identify_push}
    for module in IDENTIFY_MODULES:
        assert callable(module.update_peerstore_from_identify)
    assert "update_peerstore_from_identify" in _names(BasicHost._identify_peer)
    assert "update_peerstore_from_identify" in _names(identify_push.identify_push_handler_for)


def test_install_observed_addrs_internals() -> None:
    assert "_observed_addr_manager" in _names(BasicHost.get_addrs)
    assert {"_observed_addr_manager", "record_observation"} <= _names(BasicHost._identify_peer)
    assert "remove_conn" in _names(BasicHost._on_notifee_disconnected)


def test_dht_record_internals() -> None:
    """find_addrs and the record budget forget a record by clearing the peer's addresses."""
    assert "maybe_delete_peer_record" in _names(PeerStore.clear_addrs)
    assert "peer_record_map" in _names(PeerStore.maybe_delete_peer_record)


def test_carry_extra_fields_internals() -> None:
    """Our record is signed anew by the module's ``issue_and_cache_local_record`` (looked up
    at call time); others' records keep their payload bytes when parsed, stored and sent on."""
    import libp2p.peer.peerstore as peerstore_module
    from libp2p.peer import envelope

    assert "issue_and_cache_local_record" in _names(env_to_send_in_RPC)
    assert _params(peerstore_module.issue_and_cache_local_record) == ["host"]
    assert "set_local_record" in _names(BasicHost.__init__)
    assert "raw_payload" in _names(envelope.Envelope.marshal_envelope)
    assert "payload" in _names(envelope.unmarshal_envelope)
    assert "raw_payload" in _names(envelope.Envelope.validate)
    assert "PeerRecordState" in _names(PeerStore.consume_peer_record)


def test_dht_client_mode_internals() -> None:
    params = inspect.signature(KadDHT.__init__).parameters
    assert {"mode", "enable_providers", "enable_values"} <= set(params)
    assert callable(get_connection_type)
    assert "set_stream_handler" in _names(KadDHT.__init__)  # only in server mode (not ours)


# -- the host -------------------------------------------------------------------------------


def test_advertise_addrs_internals() -> None:
    # Identify and our signed record (sent with DHT requests) ask the host for its addresses.
    assert "get_addrs" in _names(identify._mk_identify_protobuf)
    assert "get_addrs" in _names(env_to_send_in_RPC)


def test_route_circuit_dials_internals() -> None:
    # Why: the swarm drops relay addresses before it chooses a transport.
    assert "is_relay_address" in _names(Swarm.dial_peer)
    # What relay.dial_circuit builds on.
    assert _params(BasicHost.upgrade_outbound_connection) == ["self", "raw_conn", "peer_id"]
    assert {"connection_type", "addresses"} <= set(_params(RawConnection))
    assert ConnectionType.RELAYED


# -- subclasses that live with their service ------------------------------------------------


def _same_signature(ours: type, theirs: type, names: tuple[str, ...]) -> None:
    for name in names:
        assert _params(getattr(ours, name)) == _params(getattr(theirs, name)), name


def test_dcutr_overrides_internals() -> None:
    _same_signature(_KithDCUtR, DCUtRProtocol, (
        "initiate_hole_punch", "_handle_dcutr_stream", "_try_unilateral_upgrade",
        "_perform_hole_punch", "_dial_peer", "_decode_observed_addrs", "_get_observed_addrs",
        "_auto_drive_loop"))
    # Every dial goes through _dial_peer, every exchange through the two entries we guard.
    assert "_dial_peer" in _names(DCUtRProtocol._try_unilateral_upgrade)
    assert "_dial_peer" in _names(DCUtRProtocol._perform_hole_punch)
    assert "initiate_hole_punch" in _names(DCUtRProtocol._auto_drive_loop)
    assert "_handle_dcutr_stream" in _names(DCUtRProtocol.run)
    assert "_get_observed_addrs" in _names(DCUtRProtocol._handle_dcutr_stream)
    assert "_get_observed_addrs" in _names(DCUtRProtocol._initiate_hole_punch_locked)


def test_gossip_overrides_internals() -> None:
    _same_signature(KithPubsub, Pubsub, (
        "subscribe", "notify_subscriptions", "publish", "push_msg", "stream_handler",
        "handle_sending_messages"))
    # ChatGossipSub.publish sends IDONTWANT itself (_send_idontwant) where upstream's calls
    # _emit_idontwant_for_message, through the method both use.
    assert "_emit_idontwant_for_message" in _names(GossipSub.publish)
    assert "emit_idontwant" in _names(GossipSub._emit_idontwant_for_message)
    assert _params(GossipSub.emit_idontwant) == ["self", "msg_ids", "to_peer"]
    # Each peer's outbound queue is built with the default size and stored in peer_queues,
    # where _SizedQueues resizes it; its bound is the inner queue's max_size.
    new_peer = inspect.getsource(Pubsub._handle_new_peer)
    assert "queue = RpcQueue()" in new_peer and "self.peer_queues[peer_id] = queue" in new_peer
    assert RpcQueue()._queue.max_size > 0
    # The hello is built by get_hello_packet before its write is awaited and the peer's queue
    # registered: KithPubsub._handle_new_peer announces what changed in between.
    hello_at = new_peer.index("self.get_hello_packet()")
    assert hello_at < new_peer.index("await stream.write(") < new_peer.index(
        "self.peer_queues[peer_id] = queue")
    assert "topic_ids" in _names(Pubsub.get_hello_packet)
    assert "_schedule_announce_retry" in vars(Pubsub)
    # subscribe is upstream's with our channel size; the router's IWANT rate is an attribute.
    assert {"subscribed_topics_send", "subscribed_topics_receive"} <= _names(Pubsub.subscribe)
    assert "max_iwant_requests_per_second" in _names(GossipSub.__init__)
    # The warning filtered out, and the thread left running.
    assert "pending message queue for peer" in inspect.getsource(GossipSub)
    assert "seen_messages" in _names(Pubsub.__init__)


def test_pubsub_signature_internals() -> None:
    """``pubsub_signatures``: push_msg checks signatures through the name ``signature_validator``
    of ``libp2p.pubsub.pubsub``, under ``strict_signing``, before validate_msg; validate_msg
    caches verdicts by message id in ``validation_cache``, whose get, put and _remove
    ``pubsub_signatures.Verdicts`` overrides."""
    import libp2p.pubsub.pubsub as pubsub_module
    from libp2p.pubsub.pubsub import ValidationCache
    from libp2p.pubsub.validators import signature_validator

    from app.node.libp2p_patches import pubsub_signatures

    pubsub_signatures.install()
    assert pubsub_signatures.verify is signature_validator
    assert pubsub_module.signature_validator.__qualname__.startswith("install.")
    push = inspect.getsource(Pubsub.push_msg)
    assert push.index("if self.strict_signing:") < push.index("signature_validator(msg)") \
        < push.index("await self.validate_msg(") < push.index("self._mark_msg_seen(msg)")
    validate = inspect.getsource(Pubsub.validate_msg)
    assert "self.validation_cache.get(msg_id)" in validate
    assert validate.count("self.validation_cache.put(") == 2
    assert "validation_cache" in _names(Pubsub.__init__)
    assert {"get", "put", "_remove", "clear_expired"} <= set(vars(ValidationCache))
    assert _params(ValidationCache.__init__) == ["self", "ttl", "max_size"]
    assert _params(Pubsub.set_topic_validator) == ["self", "topic", "validator",
                                                   "is_async_validator"]
    assert "self.validation_cache.clear_expired()" in inspect.getsource(Pubsub)
    # KithPubsub._was_squatted forgets an id in the seen cache: a dict under a lock.
    from libp2p.tools.timed_cache.base_timed_cache import BaseTimedCache
    from libp2p.tools.timed_cache.last_seen_cache import LastSeenCache

    assert {"lock", "cache"} <= _names(BaseTimedCache.__init__)
    assert {"lock", "cache"} <= _names(LastSeenCache.has)
    assert "seen_messages" in _names(Pubsub._is_msg_seen)


def test_forget_gossip_internals() -> None:
    """``ChatGossipSub.forget`` removes a message from ``mcache.msgs`` alone: the ids its
    history still lists must be skipped by ``get``, ``window``'s readers and ``shift``."""
    router = build_router(GossipConfig())
    kept = rpc_pb2.Message(from_id=b"\x01", seqno=b"\x01", data=b"kept", topicIDs=["t"])
    gone = rpc_pb2.Message(from_id=b"\x01", seqno=b"\x02", data=b"gone", topicIDs=["t"])
    router.mcache.put(kept)
    router.mcache.put(gone)
    router.forget(b"gone")
    ids = router.mcache.window("t")
    assert len(ids) == 2
    assert [router.mcache.get(mid) for mid in ids] == [kept, None]
    for _ in range(router.mcache.history_size + 1):
        router.mcache.shift()
    assert router.mcache.msgs == {}
    # Upstream's readers of the cache skip an id it no longer holds.
    recent = inspect.getsource(GossipSub.send_recent_messages)
    assert "msg = self.mcache.get(mid)" in recent and "if msg is None:" in recent
    iwant = inspect.getsource(GossipSub.handle_iwant)
    assert "self.mcache.get(msg_id_iwant)" in iwant and "if msg:" in iwant


# -- what a patch is for --------------------------------------------------------------------


ECHO = TProtocol("/kith-test/echo/1.0.0")


async def _echo(stream: Any) -> None:
    try:
        while data := await stream.read(1024):
            await stream.write(data)
    except Exception:  # noqa: BLE001 - the test's other end went away
        pass


def test_a_write_cancelled_halfway_leaves_its_connection_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write cancelled after Noise encrypted its frame (here: while the socket would not
    take it, which a gate in front of one socket write stands for) used to leave the nonce
    spent and the frame unsent: the next frame failed authentication at the peer and the
    connection died with all its streams. The relay's connection to a peer died that way when
    a circuit through it ended while data was flowing."""
    writer: list[Any] = []
    parked, gate = trio.Event(), trio.Event()
    original, original_send_now = TrioTCPStream.write, yamux_patches.send_now

    async def write(self: TrioTCPStream, data: bytes) -> None:
        if writer and trio.lowlevel.current_task() is writer[0]:
            parked.set()
            await gate.wait()
        await original(self, data)

    def send_now(sock: Any, data: bytearray) -> int:
        """The socket takes none of the writer's frame at once (a small write tries that
        first), so the frame waits at the gate like any other."""
        if writer and trio.lowlevel.current_task() is writer[0]:
            return 0
        return original_send_now(sock, data)

    monkeypatch.setattr(TrioTCPStream, "write", write)
    monkeypatch.setattr(yamux_patches, "send_now", send_now)

    async def main() -> None:
        ada = build_host(Identity.generate(), [LOOPBACK])
        bob = build_host(Identity.generate(), [LOOPBACK])
        bob.set_stream_handler(ECHO, _echo)
        async with ada.run([LOOPBACK]), bob.run([LOOPBACK]):
            await ada.connect(PeerInfo(bob.get_id(), bob.get_addrs()))
            (conn,) = ada.get_network().get_connections(bob.get_id())
            stream = await ada.new_stream(bob.get_id(), [ECHO])

            async def write_once(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                writer.append(trio.lowlevel.current_task())
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    await stream.write(b"cut short")

            async with trio.open_nursery() as nursery:
                scope = await nursery.start(write_once)
                await parked.wait()
                scope.cancel()
                gate.set()

            with trio.fail_after(10):
                again = await ada.new_stream(bob.get_id(), [ECHO])
                await again.write(b"still there")
                assert await again.read(1024) == b"still there"
            assert ada.get_network().get_connections(bob.get_id()) == [conn]
            assert not conn.is_closed

    trio.run(main)


def test_isolate_service_tasks_internals() -> None:
    """The manager's ``run_task`` takes ``daemon`` and ``name`` by keyword and daemons come
    through it too; a task that raises cancels the service; pubsub, gossipsub's handling of
    subscriptions and the swarm start their work through it."""
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.tools.anyio_service.trio_manager import TrioManager

    parameters = inspect.signature(TrioManager.run_task).parameters
    assert {"daemon", "name"} <= set(parameters)
    assert "run_task" in _names(TrioManager.run_daemon_task)
    assert "cancel" in _names(TrioManager._run_and_manage_task)
    assert "run_task" in _names(Pubsub.handle_subscription)
    assert "run_task" in _names(Pubsub.continuously_read_stream)
    assert "run_task" in _names(Swarm.add_conn)
