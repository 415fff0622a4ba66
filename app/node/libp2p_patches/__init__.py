# ruff: noqa: E402 - the import hook goes in before the patches import py-libp2p
"""Every change Kith makes to py-libp2p's internals, in one place.

Kith pins py-libp2p 0.8.1. Where that version misbehaves against a hostile peer, or costs too
much per byte, Kith changes the smallest internal it can: one function per change, whose
docstring says what is wrong, why it matters and what it relies on. Each has a guard in
``tests/test_libp2p_patches.py`` that fails when an upgrade moves that internal: then read the
patch again, see whether upstream fixed it (``docs/libp2p-patches.md`` says what was reported
or could be), and drop or adapt it.

Before py-libp2p is first imported (this package's first lines, which ``app.node`` imports
first):

* ``imports.leave_out_unused_modules``: the transports, security protocols, discovery services
  and metrics py-libp2p imports but Kith never runs are not loaded (about 400 modules and 22 MiB).
  RSA and secp256k1 keys and private networks (pycryptodome, coincurve) load on first use, and
  a few packages (``LAZY_MODULES``: the relay's, the DHT's, bitswap, ``cryptography.x509``,
  protobuf's pure-Python messages) run their body only when a name is taken from them.

For every connection of the process (``apply_process_patches``, from ``host.build_host``):

* ``tcp.read_tcp_ahead``: TCP reads fetch up to 256 KiB at a time (two ``recv`` calls per
  Noise message before).
* ``tcp.detect_dead_links``: a TCP connection whose peer acknowledges nothing for about 30 s
  (keepalive probes while idle, ``TCP_USER_TIMEOUT`` while sending) is closed by the kernel; a
  link that died without a FIN or RST stayed up for 15 minutes or for good.
* ``liveness.notice_hung_peers``: a connection whose peer's kernel took our Yamux ping and
  whose process then sent nothing for 20 s is closed; a peer that hung with its TCP up (a
  stopped or deadlocked process) stayed online for good. A write waiting on the socket gets
  more time while the peer's kernel acknowledges (``yamux.write_on_time``); its 10 s cut off
  live peers behind slow uplinks mid-transfer.
* ``yamux.fit_frames_to_noise``: a Yamux frame fits one Noise message (it took two).
* ``yamux.batch_window_updates``: Yamux credit goes back per half window, not per read.
* ``yamux.take_buffered_bodies``: a Yamux body already decrypted is taken without a read.
* ``yamux.write_in_batches``: a large Yamux write goes out four Noise messages per socket write
  (one each, through four layers, before); a small one as its one frame, straight to the
  socket when its locks are free and the socket has room.
* ``yamux.write_frames_whole``: a cancelled write can no longer leave half a frame and a spent
  Noise nonce behind, which broke the whole connection.
* ``yamux_reader.read_in_one_pass``: one reader per Yamux-over-Noise connection reads the
  socket in large pieces, decrypts every whole Noise message and hands each frame to its
  stream in the same pass; stream reads take no lock (a header read, a body read, locks and
  debug strings per frame before); it reads its TCP socket itself, with no trip through the
  scheduler after a read that followed a wait. When a room is busy (reads holding only gossip,
  close together, for a quarter of a second) it reads again only 100 ms after the last read
  (``read_pacing``, streams marked by ``yamux.let_wait``): a post read alone woke every layer
  above the socket for itself.
* ``net_stream.take_free_state_locks``: a stream's state lock, nearly always free, is taken
  without a trip through the scheduler (``quick_lock.QuickLock``, also each connection's
  write lock, from ``yamux.WindowedYamux``).
* ``yamux.enforce_yamux_windows``: a peer that sends past a stream's window is cut off (it
  was buffered without end).
* ``peerstore.bound_peer_addrs``: the peerstore keeps 32 addresses a peer, de-duplicated in
  linear time.
* ``peerstore.bound_identify``: what is kept of a peer's identify message is bounded.
* ``kad_dht.bound_dht_answers``: a DHT answer is checked against Kith's bounds before use.
* ``peer_record.carry_extra_fields``: our signed peer record carries Kith's mailbox record
  when py-libp2p signs it anew (``peer_record.set_extra_fields``, from ``dht.DhtService``).

For one host (``node.KithNode.run``, ``resources.ResourceManager.install``,
``relay.RelayService.start``):

* ``swarm.serve_inbound_connections``: Kith's resource manager handles every accepted socket
  (py-libp2p kept a slot per inbound connection until the node stopped).
* ``swarm.stop_auto_dialing``: no dials of py-libp2p's own, no retries of failed dials.
* ``peerstore.install_observed_addrs``: Kith decides which observed address is confirmed.
* ``basic_host.advertise_addrs``: the host advertises concrete and relayed addresses.
* ``basic_host.route_circuit_dials``: ``host.connect`` dials through relays
  (``relay.dial_circuit``, which resets the relay's stream of a dial that does not finish).
* ``service.isolate_service_tasks``: a task of a py-libp2p service (pubsub, its router, the
  swarm) that fails is logged and ends alone instead of stopping the service and the node
  (``app.node.isolation``); also from ``gossip.open_pubsub``.

For every pubsub of the process (``pubsub_records.install`` and ``pubsub_signatures.install``,
from ``gossip.open_pubsub``):

* ``pubsub_records``: the signed peer record in each pubsub RPC is checked once per distinct
  record and peer (then again every 60 s), and ours is built at most once a second; an RPC
  whose genuine record is older than the one held is handled, not dropped.
* ``pubsub_signatures``: push_msg leaves the gossip signature to topic validators that check
  it themselves (a room post signed by its own publisher needs one Ed25519 check, not two).

For one stream:

* ``yamux.cap_receive_window``: a stranger's stream window stays at 256 KiB.
* ``yamux.widen_receive_window``: a download opens its window up front.

Read, not changed: ``swarm.socket_is_open`` and ``swarm.is_inbound`` (for
``ResourceManager.account``).

Subclasses that live with their service, guarded here all the same:

* ``app.node.hole_punch._KithDCUtR`` overrides ``DCUtRProtocol``'s ``initiate_hole_punch``,
  ``_handle_dcutr_stream``, ``_try_unilateral_upgrade``, ``_perform_hole_punch``,
  ``_dial_peer``, ``_decode_observed_addrs``, ``_get_observed_addrs`` (contacts only,
  budgets, address filter, two timing defects) and ``_auto_drive_loop`` (direct connections
  are not searched for relay addresses every 2 s).
* ``app.node.gossip``: ``ChatGossipSub`` (IDONTWANT only where gossipsub 1.2 means it),
  ``KithPubsub`` (buffer sizes, payload limits, hostile frames, batched writes; overrides
  ``subscribe``, ``notify_subscriptions``, ``publish``, ``push_msg``, ``stream_handler``,
  ``set_topic_validator``, ``remove_topic_validator`` and ``handle_sending_messages``),
  ``_SizedQueues`` (``Pubsub.peer_queues``, which sizes each peer's ``RpcQueue``) and
  ``pubsub_signatures.Verdicts`` (its ``validation_cache``); ``open_pubsub`` stops the
  seen-message cache's thread py-libp2p leaves.

Not patches, and so not here: py-libp2p's own resource manager is switched off with the
public ``Swarm.set_resource_manager(None)`` (``ResourceManager.install``, guarded in
``tests/test_resources.py``); ``app.node.dht_server`` registers Kith's own DHT handler, with
``KadDHT`` in client mode; ``node._close_connections`` closes a peer's connections one by one
because ``Swarm.close_peer`` skips the second of two.
"""

from __future__ import annotations

from app.node.libp2p_patches.imports import leave_out_unused_modules

leave_out_unused_modules()  # before the modules below import py-libp2p

from app.node.libp2p_patches.kad_dht import bound_dht_answers
from app.node.libp2p_patches.liveness import notice_hung_peers
from app.node.libp2p_patches.net_stream import take_free_state_locks
from app.node.libp2p_patches.peer_record import carry_extra_fields
from app.node.libp2p_patches.peerstore import bound_identify, bound_peer_addrs
from app.node.libp2p_patches.tcp import detect_dead_links, read_tcp_ahead
from app.node.libp2p_patches.yamux import (
    batch_window_updates,
    enforce_yamux_windows,
    fit_frames_to_noise,
    take_buffered_bodies,
    write_frames_whole,
    write_in_batches,
)
from app.node.libp2p_patches.yamux_reader import read_in_one_pass


def apply_process_patches() -> None:
    """The patches to py-libp2p's classes and modules, for every host of this process; each
    applies once, however often this is called. Call before the first host is built."""
    read_tcp_ahead()
    detect_dead_links()
    notice_hung_peers()
    fit_frames_to_noise()
    batch_window_updates()
    take_buffered_bodies()
    write_frames_whole()
    write_in_batches()
    enforce_yamux_windows()
    read_in_one_pass()
    take_free_state_locks()
    bound_peer_addrs()
    bound_identify()
    bound_dht_answers()
    carry_extra_fields()
