"""Kith's patches to py-libp2p 0.8.1 internals, one function per patch.

Each patch says what it fixes and why; ``tests/test_libp2p_patches.py`` holds a guard test per
patch that fails when an upgrade moves the internal it relies on. ``docs/libp2p-patches.md``
says what to send upstream.

* ``guard_dial_slots(host)``: a dial or handshake that is cancelled or fails half-way gives its
  resource-manager connection slot back (py-libp2p leaks one per cancelled handshake).
* ``slot_account(host)``: the resource manager's connection count set against the connections
  that exist and the dials in flight; tests and a debug log line use it.
* ``bound_peer_addrs()``: the peerstore keeps at most ``MAX_PEERSTORE_ADDRS`` addresses a peer
  and de-duplicates them in linear time (py-libp2p's check is quadratic and unbounded).
* ``bound_dht_answers()``: a FIND_NODE answer is checked against Kith's bounds (peers,
  addresses a peer, record sizes) before py-libp2p processes any of it.
* ``bound_identify()``: an identify message is cut to Kith's bounds (addresses, protocols,
  record size) before it reaches the peerstore.
* ``install_observed_addrs(host, manager)``: our observed addresses are counted by Kith's
  confirmation rule (``app.node.observed_addrs``), not py-libp2p's.
* ``isolate_service_tasks(manager, service)``: a task of a py-libp2p service (pubsub, its
  router, the swarm) that fails is logged and ends alone instead of stopping the service and
  the node (``app.node.isolation``).

The DCUtR overrides are methods of ``app.node.hole_punch._KithDCUtR``; they are listed there.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import libp2p.host.basic_host
import libp2p.identity.identify_push.identify_push
import libp2p.kad_dht.peer_routing
import trio
from libp2p.abc import IHost
from libp2p.host.observed_addr_manager import ObservedAddrManager
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.peer.peerdata import PeerData

from app.node.dht_records import (
    MAX_ADDR_BYTES,
    MAX_ANSWER_BYTES,
    MAX_RECORD_ADDRS,
    DhtBoundsError,
    check_answer,
    check_record,
)
from app.node.isolation import describe, isolated

log = logging.getLogger(__name__)

MAX_PEERSTORE_ADDRS = 32  # addresses the peerstore keeps a peer (the newest)
MAX_IDENTIFY_PROTOCOLS = 64  # protocols kept from a peer's identify
MAX_PROTOCOL_LENGTH = 128  # characters of one protocol id


def apply_process_patches() -> None:
    """The patches that change py-libp2p classes or modules (for every host in the process);
    each applies once."""
    bound_peer_addrs()
    bound_dht_answers()
    bound_identify()


# -- dial slots -----------------------------------------------------------------------------

# The swarm methods through which a connection slot is taken and, when all goes well, handed
# to the connection that comes out.
GUARDED_SWARM_METHODS = (
    "_dial_addr_single_attempt",  # every outbound dial (dial_addr, dial_peer, host.connect)
    "dial_addr_as_responder",  # DCUtR hole-punch dials
    "upgrade_outbound_raw_conn",  # circuit relay dials (host.upgrade_outbound_connection)
    "upgrade_inbound_raw_conn",  # inbound connections, relayed ones too
)
# The guarded call running in this task and the scopes it opened. Tasks spawned during a dial
# (a new connection's stream handlers) inherit the variable, so the owning task is checked.
_HELD: contextvars.ContextVar[tuple[Any, list[Any]] | None] = contextvars.ContextVar(
    "kith_dial_slots", default=None
)


def _held_here() -> list[Any] | None:
    """The scope list of the guarded call this task is inside, if any."""
    current = _HELD.get()
    if current is None or current[0] is not trio.lowlevel.current_task():
        return None
    return current[1]


@dataclass(frozen=True)
class SlotAccount:
    """The resource manager's connection count and what it should be made of."""

    counted: int  # connection slots the resource manager holds
    connections: int  # connections that exist (each holds one slot)
    dialing: int  # slots held by dials and handshakes in progress

    @property
    def leaked(self) -> int:
        """Slots nothing holds; 0 unless a slot was lost."""
        return self.counted - self.connections - self.dialing

    def __str__(self) -> str:
        return (f"{self.counted} connection slot(s) counted: {self.connections} connection(s), "
                f"{self.dialing} dial(s) in progress, {self.leaked} unaccounted")


def guard_dial_slots(host: IHost) -> None:
    """Give back the connection slot of every dial or handshake that does not end in a
    connection, however it ends.

    py-libp2p 0.8.1 takes a "pre-upgrade" slot from its resource manager before the Noise
    handshake and releases it in ``except BaseException`` blocks only after ``await
    raw_conn.close()``. When the dial is cancelled (a timeout around it, a DCUtR round that
    ends), that ``await`` raises ``Cancelled`` again and the release is skipped: one slot lost
    per cancelled handshake. A peer whose address accepts TCP and stays silent then fills the
    manager (1,000 slots by default; it also lowers its own limit when "degraded") and the node
    can neither dial nor accept. Here each guarded swarm method notes the scopes it opens
    (``ResourceManager.open_connection``) and, when the outermost guarded call returns or
    raises, closes those that no live connection holds. Closing a scope twice is a no-op.
    """
    swarm: Any = host.get_network()
    manager = getattr(swarm, "_resource_manager", None)
    if manager is None or getattr(swarm, "_kith_dials", None) is not None:
        return
    in_flight: dict[int, list[Any]] = {}
    swarm._kith_dials = in_flight
    open_connection = manager.open_connection

    def open_noted(*args: Any, **kwargs: Any) -> Any:
        scope = open_connection(*args, **kwargs)
        held = _held_here()
        if scope is not None and held is not None:
            held.append(scope)
        return scope

    manager.open_connection = open_noted
    for name in GUARDED_SWARM_METHODS:
        setattr(swarm, name, _guarded(swarm, in_flight, getattr(swarm, name)))


def _guarded(
    swarm: Any, in_flight: dict[int, list[Any]], inner: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        if _held_here() is not None:  # inside another guarded call: that one cleans up
            return await inner(*args, **kwargs)
        held: list[Any] = []
        token = _HELD.set((trio.lowlevel.current_task(), held))
        in_flight[id(held)] = held
        try:
            return await inner(*args, **kwargs)
        finally:
            _HELD.reset(token)
            del in_flight[id(held)]
            _release_unheld(swarm, held)

    return guarded


def _release_unheld(swarm: Any, scopes: list[Any]) -> None:
    live = {id(s) for s in _live_scopes(swarm)}
    for scope in scopes:
        if not getattr(scope, "closed", True) and id(scope) not in live:
            log.debug("released a connection slot a dial left behind")
            scope.close()


def _connections(swarm: Any) -> Iterator[Any]:
    for conns in list(swarm.connections.values()):
        yield from (conns if isinstance(conns, list) else [conns])


def _live_scopes(swarm: Any) -> Iterator[Any]:
    for conn in _connections(swarm):
        yield getattr(conn, "_resource_scope", None)
        yield getattr(getattr(conn, "muxed_conn", None), "_resource_scope", None)


def slot_account(host: IHost) -> SlotAccount:
    """How the resource manager's connection count is made up now (``leaked`` is what no
    connection or dial holds). All zeros without a resource manager."""
    swarm: Any = host.get_network()
    manager = getattr(swarm, "_resource_manager", None)
    if manager is None:
        return SlotAccount(0, 0, 0)
    live = {id(s) for s in _live_scopes(swarm) if s is not None}
    dialing = sum(
        1 for held in list(getattr(swarm, "_kith_dials", {}).values()) for s in held
        if not getattr(s, "closed", True) and id(s) not in live
    )
    return SlotAccount(
        counted=int(manager._current_connections),
        connections=sum(1 for _ in _connections(swarm)),
        dialing=dialing,
    )


# -- observed addresses ---------------------------------------------------------------------


def install_observed_addrs(host: IHost, manager: ObservedAddrManager) -> None:
    """Make ``manager`` the host's observed-address manager.

    py-libp2p 0.8.1's ``BasicHost`` keeps one in ``_observed_addr_manager``: identify feeds it
    (``record_observation``), a closed connection leaves it (``remove_conn``), and
    ``get_addrs`` (identify, our signed peer record) and DCUtR read it (``addrs``). Its own
    counts an address once four source IPs report it, which one attacker can do; Kith's
    (``app.node.observed_addrs.ObservedAddrs``) wants trusted or independent confirmation.
    """
    if not hasattr(host, "_observed_addr_manager"):
        raise RuntimeError("py-libp2p's host has no _observed_addr_manager any more")
    host._observed_addr_manager = manager


# -- the peerstore ------------------------------------------------------------------------


def bound_peer_addrs() -> None:
    """Make ``PeerData.add_addrs`` linear and bounded.

    py-libp2p 0.8.1 checks ``addr not in self.addrs`` (a list) for each address added: one DHT
    answer naming a peer with 20,000 addresses stalled the network thread 11.4 s, and nothing
    bounds how many a peer keeps. Here a set of the addresses' bytes does the check, and a peer
    keeps its ``MAX_PEERSTORE_ADDRS`` newest addresses.
    """
    if getattr(PeerData.add_addrs, "_kith", False):
        return

    def add_addrs(self: PeerData, addrs: Any) -> None:
        known = {a.to_bytes() for a in self.addrs}
        for addr in addrs:
            key = addr.to_bytes()
            if key not in known:
                known.add(key)
                self.addrs.append(addr)
        if len(self.addrs) > MAX_PEERSTORE_ADDRS:
            del self.addrs[: len(self.addrs) - MAX_PEERSTORE_ADDRS]

    add_addrs._kith = True  # type: ignore[attr-defined]
    PeerData.add_addrs = add_addrs  # type: ignore[method-assign]


# -- DHT answers ----------------------------------------------------------------------------


def bound_dht_answers() -> None:
    """Check every FIND_NODE answer against ``app.node.dht_records``' bounds before py-libp2p
    processes any of it.

    py-libp2p 0.8.1's ``PeerRouting._query_peer_for_closest`` reads an answer of up to 4 MiB
    and then, for every peer it names, checks a signature, parses and stores every address and
    updates the routing table, with list look-ups that grow with the square of the count: one
    answer with 20,000 peers cost 15 s of CPU. It reads the answer with the module's
    ``read_varint_prefixed_bytes_limited``; Kith's replacement reads at most
    ``MAX_ANSWER_BYTES`` and raises ``DhtBoundsError`` for an answer beyond the bounds, which
    py-libp2p then treats as a failed query (that peer contributes nothing).
    """
    module: Any = libp2p.kad_dht.peer_routing
    read = module.read_varint_prefixed_bytes_limited
    if getattr(read, "_kith", False):
        return

    async def read_bounded_answer(stream: Any, max_length: int) -> bytes:
        data = await read(stream, min(max_length, MAX_ANSWER_BYTES))
        try:
            check_answer(data)
        except DhtBoundsError as exc:
            log.info("DHT: dropped an answer from %s: %s", stream.muxed_conn.peer_id, exc)
            raise
        return data

    read_bounded_answer._kith = True  # type: ignore[attr-defined]
    module.read_varint_prefixed_bytes_limited = read_bounded_answer


# -- identify -------------------------------------------------------------------------------

# The modules that call ``update_peerstore_from_identify`` on what a peer sent (identify and
# identify/push); each imported it by name.
IDENTIFY_MODULES = (libp2p.host.basic_host, libp2p.identity.identify_push.identify_push)


def bound_identify() -> None:
    """Cut a peer's identify message to Kith's bounds before it reaches the peerstore.

    py-libp2p 0.8.1 keeps up to 1,000 listen addresses and every protocol a peer lists (a
    1 MiB message of them is allowed), for as long as the peer stays in the peerstore: 30
    strangers grew the process by 170 MB. Kept here: ``MAX_RECORD_ADDRS`` addresses of at most
    ``MAX_ADDR_BYTES``, ``MAX_IDENTIFY_PROTOCOLS`` protocols of at most
    ``MAX_PROTOCOL_LENGTH`` characters, and the signed record only within the DHT's bounds.
    """
    for module in IDENTIFY_MODULES:
        update: Any = module.update_peerstore_from_identify
        if getattr(update, "_kith", False):
            continue
        module.update_peerstore_from_identify = _bounded_update(update)  # type: ignore[attr-defined]


def _bounded_update(update: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    async def bounded(peerstore: Any, peer_id: Any, message: Identify) -> None:
        await update(peerstore, peer_id, within_identify_bounds(message))

    bounded._kith = True  # type: ignore[attr-defined]
    return bounded


def within_identify_bounds(message: Identify) -> Identify:
    """A copy of ``message`` with only what Kith keeps of a peer's identify."""
    kept = Identify()
    name: Any
    for name, limit in (("public_key", 4096), ("observed_addr", MAX_ADDR_BYTES),
                        ("protocol_version", MAX_PROTOCOL_LENGTH),
                        ("agent_version", MAX_PROTOCOL_LENGTH)):
        if message.HasField(name) and len(getattr(message, name)) <= limit:
            setattr(kept, name, getattr(message, name))
    kept.listen_addrs.extend(
        [a for a in message.listen_addrs if len(a) <= MAX_ADDR_BYTES][:MAX_RECORD_ADDRS])
    kept.protocols.extend(
        [p for p in message.protocols if len(p) <= MAX_PROTOCOL_LENGTH][:MAX_IDENTIFY_PROTOCOLS])
    if message.HasField("signedPeerRecord"):
        try:
            check_record(message.signedPeerRecord)
            kept.signedPeerRecord = message.signedPeerRecord
        except DhtBoundsError:
            pass
    return kept


# -- service tasks --------------------------------------------------------------------------


def isolate_service_tasks(manager: Any, service: str) -> None:
    """Make every task ``manager`` runs from now on fail alone (``app.node.isolation``).

    py-libp2p 0.8.1 runs a service's work as tasks of its ``TrioManager``: pubsub starts one
    for every message received, for every peer that subscribes to a topic (flushing, replaying
    and grafting for it) and for every new peer; the swarm one per connection. When a task
    raises, the manager cancels the whole service and ``background_trio_service`` raises it:
    one failure while handling one peer's input stopped gossipsub, or the swarm, and the node
    with it. Daemon tasks (heartbeats, the peer queues) are left as they are: they must not
    end, and one that ended would stop the service anyway (``DaemonTaskExit``).

    Guarded by ``tests/test_libp2p_patches.py::test_isolate_service_tasks_internals``.
    """
    run_task = manager.run_task
    if getattr(run_task, "_kith", False):
        return

    def run_isolated(async_fn: Callable[..., Awaitable[Any]], *args: Any, daemon: bool = False,
                     name: str | None = None, **kwargs: Any) -> None:
        if not daemon:
            name = name or getattr(async_fn, "__qualname__", None)
            async_fn = isolated(f"{service}: {describe(async_fn, args)}", async_fn)
        run_task(async_fn, *args, daemon=daemon, name=name, **kwargs)

    run_isolated._kith = True  # type: ignore[attr-defined]
    manager.run_task = run_isolated
