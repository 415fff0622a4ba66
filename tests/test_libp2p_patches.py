"""Guards for Kith's patches to py-libp2p internals (``app.node.libp2p_patches`` and the DCUtR
overrides in ``app.node.hole_punch``): each fails when an upgrade moves what a patch relies on,
so the patch is looked at again rather than silently doing nothing."""

from __future__ import annotations

import importlib.metadata
import inspect

import libp2p.host.basic_host as basic_host
import libp2p.identity.identify_push.identify_push as identify_push
import libp2p.kad_dht.peer_routing as peer_routing
from libp2p.host.basic_host import BasicHost
from libp2p.kad_dht.kad_dht import KadDHT, get_connection_type
from libp2p.network.swarm import Swarm
from libp2p.peer.peerdata import PeerData
from libp2p.peer.peerstore import PeerStore
from libp2p.rcmgr.manager import ConnectionScope, ResourceManager
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

from app.node.hole_punch import _KithDCUtR
from app.node.libp2p_patches import GUARDED_SWARM_METHODS, IDENTIFY_MODULES


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


def test_the_patches_were_written_for_py_libp2p_0_8_1() -> None:
    assert importlib.metadata.version("libp2p") == "0.8.1"


def test_guard_dial_slots_internals() -> None:
    for name in GUARDED_SWARM_METHODS:
        assert inspect.iscoroutinefunction(getattr(Swarm, name)), name
    for name in ("_dial_addr_single_attempt", "upgrade_outbound_raw_conn",
                 "upgrade_inbound_raw_conn"):
        assert "open_connection" in _names(getattr(Swarm, name)), name
    assert "_dial_addr_single_attempt" in _names(Swarm._dial_with_retry)
    assert "upgrade_inbound_raw_conn" in _names(Swarm.dial_addr_as_responder)
    # A scope says whether it was closed (a second close is a no-op).
    assert "closed" in _names(ConnectionScope.__init__)
    assert "closed" in _names(ResourceManager.open_connection)
    assert "_current_connections" in _names(ResourceManager.acquire_connection)
    assert "set_resource_manager" in dir(Swarm)


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


def test_dcutr_overrides_internals() -> None:
    for name in ("initiate_hole_punch", "_handle_dcutr_stream", "_try_unilateral_upgrade",
                 "_perform_hole_punch", "_dial_peer", "_decode_observed_addrs",
                 "_get_observed_addrs"):
        ours = inspect.signature(getattr(_KithDCUtR, name)).parameters
        theirs = inspect.signature(getattr(DCUtRProtocol, name)).parameters
        assert list(ours) == list(theirs), name
    # Every dial goes through _dial_peer, every exchange through the two entries we guard.
    assert "_dial_peer" in _names(DCUtRProtocol._try_unilateral_upgrade)
    assert "_dial_peer" in _names(DCUtRProtocol._perform_hole_punch)
    assert "initiate_hole_punch" in _names(DCUtRProtocol._auto_drive_loop)
    assert "_handle_dcutr_stream" in _names(DCUtRProtocol.run)
    assert "_get_observed_addrs" in _names(DCUtRProtocol._handle_dcutr_stream)
    assert "_get_observed_addrs" in _names(DCUtRProtocol._initiate_hole_punch_locked)


def test_dht_record_internals() -> None:
    """find_addrs and the record budget forget a record by clearing the peer's addresses."""
    assert "maybe_delete_peer_record" in _names(PeerStore.clear_addrs)
    assert "peer_record_map" in _names(PeerStore.maybe_delete_peer_record)


def test_dht_client_mode_internals() -> None:
    params = inspect.signature(KadDHT.__init__).parameters
    assert {"mode", "enable_providers", "enable_values"} <= set(params)
    assert callable(get_connection_type)
    assert "set_stream_handler" in _names(KadDHT.__init__)  # only in server mode (not ours)


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
