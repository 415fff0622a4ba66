"""The Kith peer on trio: owns the libp2p host, the database and the protocol services.

Everything here runs in the network thread. The outside world reaches it only through
``app.client.KithClient``, which calls the async methods below and receives ``emit``-ed events.

Length: this is the composition root. ``_wire`` and the feature wirings beside it
(``_wire_actions``, ``_wire_mailboxes``) are the one place that says which service talks to
which (docs/architecture.md, "The node's services"); spreading them over modules would hide
exactly that. The services themselves live elsewhere.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID

from app.core import actions as ac
from app.core import dm
from app.core import room as rc
from app.core.config import ConfigError, NodeConfig
from app.core.events import (
    ChatPrefsChanged,
    ConnectionsChanged,
    ContactMailbox,
    Event,
    MailboxStatus,
    NodeReady,
    NodeStatus,
    ProfileChanged,
    RelayReserved,
)
from app.core.records import ChatPrefs, ContactState
from app.node.connections import HostConnections
from app.node.contacts import ContactService
from app.node.dht import DhtService, parse_bootstrap_addrs
from app.node.dm import DirectMessages
from app.node.files import FileTransfers
from app.node.gossip import KithPubsub, open_pubsub
from app.node.hole_punch import HolePunching
from app.node.host import build_host, parse_listen_addrs, with_port
from app.node.interfaces import Emit, Tasks
from app.node.isolation import IsolatingNursery
from app.node.lan import LanDiscovery
from app.node.libp2p_patches.peerstore import install_observed_addrs
from app.node.libp2p_patches.service import isolate_service_tasks
from app.node.libp2p_patches.swarm import stop_auto_dialing
from app.node.mailbox import (
    DEFAULT_MAILBOX_LIMITS,
    MailboxClient,
    MailboxLimits,
    MailboxReceipts,
    MailboxService,
    parse_mailbox_addrs,
)
from app.node.message_actions import (
    DeleteMessages,
    EditMessages,
    Forget,
    MessageActions,
    ReactionMessages,
    ReplyMessages,
    RoomActionPosts,
)
from app.node.netwatch import NetWatch
from app.node.observed_addrs import ObservedAddrs
from app.node.own_peer import OwnPeer
from app.node.reachability import Reachability
from app.node.receipts import ReadReceipts
from app.node.relay import RelayService, parse_relay_addrs
from app.node.resources import DEFAULT_LIMITS, Limits, PeerClass, ResourceManager
from app.node.room_invitations import RoomInvitations
from app.node.rooms import RoomService
from app.node.rooms.governance import RoomGovernance
from app.node.rooms.invite_cards import RoomInviteCards
from app.node.search_indexing import index_room_posts
from app.node.typing_signals import FEATURE_TYPING, TypingSignals
from app.store.actions import ActionStore
from app.store.chat_prefs import ChatPrefsStore
from app.store.contacts import ContactStore
from app.store.db import open_database
from app.store.mailbox import HeldMessages, MailboxRecords, MailboxStore, TransferBlobs
from app.store.messages import MessageStore
from app.store.profile import Profile, Settings
from app.store.room_governance import GovernanceStore
from app.store.rooms import RoomStore
from app.store.search import SearchStore
from app.store.transfers import TransferStore

log = logging.getLogger(__name__)


class _ConnectionWatcher(INotifee):
    """Turns libp2p's connection notifications into ``ConnectionsChanged`` events."""

    def __init__(self, node: KithNode) -> None:
        self._node = node

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._node.peer_connected(str(conn.muxed_conn.peer_id))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._node.peer_disconnected(str(conn.muxed_conn.peer_id))

    async def listen(self, network: INetwork, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Any) -> None:
        pass


class KithNode:
    """The peer: builds the host and every service, wires them together (``_wire``), and is
    what ``KithClient`` calls into. The services never see it: each gets the few
    collaborators it needs (``app.node.interfaces``)."""

    def __init__(self, profile: Profile, config: NodeConfig, emit: Emit,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.profile = profile
        self.identity = profile.identity
        self.config = config
        self.limits = limits
        self._emit = emit
        self.resources = ResourceManager(limits, self.peer_class, self.emit,
                                         self._disconnect_soon)
        self._host: IHost | None = None
        self._us: OwnPeer | None = None
        self._connections: HostConnections | None = None
        self._db: sqlite3.Connection | None = None
        self._last_connection_count = 0
        self._nursery: IsolatingNursery | None = None
        self._contacts: ContactService | None = None
        self._dms: DirectMessages | None = None
        self._rooms: RoomService | None = None
        self._governance: RoomGovernance | None = None
        self._files: FileTransfers | None = None
        self._actions: MessageActions | None = None
        self._relay: RelayService | None = None
        self._dht: DhtService | None = None
        self._lan: LanDiscovery | None = None
        self.netwatch = NetWatch(self.network_changed)
        self._hole_punch: HolePunching | None = None
        self._reach: Reachability | None = None
        self.observed_addrs = ObservedAddrs(self._trusted_observer)
        self._configured_peers: set[str] = set()  # our relays, DHT bootstrap peers, mailboxes
        self._mailbox_service: MailboxService | None = None
        self._mailbox_client: MailboxClient | None = None
        self.mailbox_limits: MailboxLimits = DEFAULT_MAILBOX_LIMITS

    @property
    def host(self) -> IHost:
        if self._host is None:
            raise RuntimeError("the node is not running")
        return self._host

    @property
    def nursery(self) -> IsolatingNursery:
        """Where the node's background tasks live; one that raises is logged and ends alone
        (``app.node.isolation``), unless the database is damaged: that stops the node."""
        if self._nursery is None:
            raise RuntimeError("the node is not running")
        return self._nursery

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the node is not running")
        return self._db

    @property
    def contacts(self) -> ContactService:
        if self._contacts is None:
            raise RuntimeError("the node is not running")
        return self._contacts

    @property
    def dms(self) -> DirectMessages:
        if self._dms is None:
            raise RuntimeError("the node is not running")
        return self._dms

    @property
    def governance(self) -> RoomGovernance:
        if self._governance is None:
            raise RuntimeError("the node is not running")
        return self._governance

    @property
    def rooms(self) -> RoomService:
        if self._rooms is None:
            raise RuntimeError("the node is not running")
        return self._rooms

    @property
    def files(self) -> FileTransfers:
        if self._files is None:
            raise RuntimeError("the node is not running")
        return self._files

    @property
    def invitations(self) -> RoomInvitations:
        """Contacts invited into rooms; it keeps no state, so it is built on what it uses."""
        return RoomInvitations(rooms=self.rooms, contacts=self.contacts, outbox=self.dms,
                               link_for=self.governance.card_link)

    def unread_total(self) -> int:
        """Unread direct messages and room posts together (the tray's number)."""
        return self.messages.unread_total() + self.rooms.store.unread_total()

    @property
    def messages(self) -> MessageStore:
        return self.dms.store

    def emit(self, event: Event) -> None:
        self._emit(event)
        if isinstance(event, RelayReserved) and self._reach is not None:
            self._reach.check()  # a new slot can change how we are reachable

    def peer_class(self, peer_id: str) -> PeerClass:
        """Who ``peer_id`` is to us, for the resource manager's limits."""
        if self._contacts is None or self._rooms is None:
            return PeerClass.STRANGER  # starting or stopping: nobody is known yet
        if peer_id in self._configured_peers or (
                self.contacts.state(peer_id) is ContactState.CONTACT):
            return PeerClass.CONTACT
        if self.rooms.rooms_of(peer_id):
            return PeerClass.MEMBER
        return PeerClass.STRANGER

    def _may_hole_punch(self, peer_id: str) -> bool:
        """Hole punching is for contacts and room members only."""
        return (self.contacts.state(peer_id) is ContactState.CONTACT
                or bool(self.rooms.rooms_of(peer_id)))

    def _disconnect_soon(self, peer_id: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self.disconnect, peer_id)

    @property
    def running(self) -> bool:
        """Listening, with every service up (between ``NodeReady`` and shutdown)."""
        return self._host is not None and self._relay is not None

    def _requested_listen_addrs(self) -> list[multiaddr.Multiaddr]:
        if self.config.listen:
            return parse_listen_addrs(self.config.listen)
        port = self.profile.settings.listen_port
        return [multiaddr.Multiaddr(f"/ip4/{self.config.interface}/tcp/{port}")]

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database, listen, announce readiness, then serve until cancelled."""
        self._db = open_database(self.profile.db_path)
        try:
            requested = self._requested_listen_addrs()
            self._configured_peers = {
                str(peer) for peer, _ in (parse_relay_addrs(self.config.relays)
                                          + parse_bootstrap_addrs(self.config.bootstrap))
            } | parse_mailbox_addrs(self.config.mailboxes)
            host = build_host(self.identity, requested, self.limits)
            self.resources.install(host)
            install_observed_addrs(host, self.observed_addrs)
            self._host = host
            self._us = OwnPeer(self.profile, host)
            self._connections = HostConnections(host)
            async with (
                host.run(requested),
                open_pubsub(host) as pubsub,
                trio.open_nursery() as nursery,
            ):
                self._nursery = IsolatingNursery(nursery)
                isolate_service_tasks(host.get_network().manager, "swarm")  # type: ignore[attr-defined]
                await stop_auto_dialing(host)
                await self._listen_fallback(requested)
                self._remember_port()
                await self._wire(host, pubsub, self._nursery)
                assert self._reach is not None
                ready = NodeReady(
                    peer_id=self.identity.peer_id, addrs=tuple(self.addrs()), invite=self.invite(),
                    reachability=self._reach.initial(),
                )
                log.info("listening as %s on %s", ready.peer_id, ", ".join(ready.addrs))
                task_status.started(ready)
                self._emit(ready)
                self.nursery.start_soon(self._reach.run)
                try:
                    await trio.sleep_forever()
                finally:
                    await self._connections.disconnect_all()
        finally:
            self._host = None
            self._us = None
            self._connections = None
            self._nursery = None
            self._contacts = None
            self._dms = None
            self._rooms = None
            self._governance = None
            self._files = None
            self._actions = None
            self._relay = None
            self._hole_punch = None
            self._dht = None
            self._lan = None
            self._reach = None
            self._mailbox_service = None
            self._mailbox_client = None
            self._db.close()
            self._db = None

    async def _wire(self, host: IHost, pubsub: KithPubsub, nursery: Tasks) -> None:
        """Build every service with the collaborators it needs, and start them: the one place
        that knows who talks to whom (docs/architecture.md, "The node's services")."""
        db, emit, us, connections = self.db, self.emit, self._us, self._connections
        assert us is not None and connections is not None
        me = self.identity.peer_id
        timeout = self.limits.first_frame_timeout
        dht = DhtService(host, nursery, connections, bootstrap=self.config.bootstrap,
                         serve=self.config.serve_dht)
        contacts = ContactService(
            ContactStore(db), us=us, host=host, nursery=nursery, emit=emit,
            connections=connections, lookup=dht, unread_total=self.unread_total)
        dms = DirectMessages(
            MessageStore(db), us=us, host=host, nursery=nursery, emit=emit, contacts=contacts,
            dialer=contacts, connections=connections, quotas=self.resources,
            first_frame_timeout=timeout, unread_total=self.unread_total)
        rooms = RoomService(
            RoomStore(db), pubsub, us=us, host=host, nursery=nursery, emit=emit,
            connections=connections, unread_total=self.unread_total)
        files = FileTransfers(
            TransferStore(db), host=host, nursery=nursery, emit=emit, me=me,
            profile=self.profile, contacts=contacts, rooms=rooms, connections=connections,
            outbox=dms, quotas=self.resources, first_frame_timeout=timeout)
        # Payload kinds go to the service that knows what they mean.
        dms.kinds.register(dm.KIND_FILE_OFFER, files.offers)
        dms.kinds.register(dm.KIND_FILE_CONTROL, files.controls)
        rooms.kinds.register(rc.KIND_FILE, files.room_files)
        governance = RoomGovernance(
            GovernanceStore(db), us=us, nursery=nursery, emit=emit, channel=rooms,
            refresh_keys=rooms.refresh_keys, members_changed=rooms.members_changed,
            room_link=lambda room_id: rooms.info(room_id).invite, outbox=dms,
            show_again=rooms.show_again)
        rooms.governor = governance
        rooms.kinds.register(rc.KIND_MEMBERSHIP, governance)
        dms.kinds.register(dm.KIND_ROOM_INVITE, RoomInviteCards(emit))
        self._governance = governance
        if self.config.message_actions:
            self._wire_actions(host, db, us, contacts, dms, rooms, files, nursery,
                               pubsub.gossip.forget)
        contacts.on_connected.append(dms.kick)  # a contact came online: flush the outbox
        contacts.on_removed.append(files.revoke_offers_to)
        mail = self._wire_mailboxes(host, nursery, contacts, dms, dht)
        files.use_mailboxes(mail, TransferBlobs(db))
        self._dht, self._contacts, self._dms, self._rooms, self._files = (
            dht, contacts, dms, rooms, files)
        host.get_network().register_notifee(_ConnectionWatcher(self))
        dht.start()
        contacts.start()
        dms.start()
        mail.start()
        governance.start([r.secrets.room_id for r in rooms.store.rooms()])
        rooms.start()
        nursery.start_soon(index_room_posts, SearchStore(db))
        files.start()
        relay = RelayService(
            host, nursery, emit, me, connections=connections, contacts=contacts,
            publish_addrs=dht.publish_now, relays=self.config.relays,
            serve=self.config.serve_relay, contacts_only=self.config.relay_contacts_only)
        await relay.start()
        us.relayed = relay.relayed_addrs
        self._relay = relay
        self._hole_punch = HolePunching(host, nursery, emit, connections, self.observed_addrs,
                                        self._may_hole_punch)
        await self._hole_punch.start()
        if self.config.lan_discovery:
            self._lan = LanDiscovery(host, nursery, emit, us, contacts, connections)
            nursery.start_soon(self._lan.run)
        nursery.start_soon(self.netwatch.run)
        self._reach = Reachability(us, connections, emit, relays=relay.reserved_relays,
                                   running=lambda: self.running)

    def _wire_mailboxes(self, host: IHost, nursery: Tasks, contacts: ContactService,
                        dms: DirectMessages, dht: DhtService) -> MailboxClient:
        """Mailboxes: ours (registering, collecting; our record rides in our DHT record),
        contacts' (the outbox deposits there when it cannot reach them; their records come
        from them and from the DHT), and serving one for our contacts when asked to."""
        db = self.db
        mail = MailboxClient(
            identity=self.identity, host=host, nursery=nursery, emit=self.emit,
            connections=self.connections, outbox=dms, blocks=contacts, contacts=contacts,
            held=HeldMessages(db), records=MailboxRecords(db), mailboxes=self.config.mailboxes)
        dms.mail_drop = mail
        dms.held_by = HeldMessages(db).held_by
        dms.kinds.register(dm.KIND_MAILBOX_RECEIPT, MailboxReceipts(dms))
        contacts.on_mailbox_record.append(mail.learn_record)
        dht.on_mailbox_record.append(mail.learn_record)

        def carry_record() -> None:  # in our DHT record, for those who use a mailbox
            dht.carry_mailbox_record(mail.own_record if mail.mine else None)

        carry_record()
        mail.on_own_record.append(carry_record)
        contacts.on_blocked.append(mail.blocks_changed)
        contacts.mailbox_record = mail.record_text  # a change, or none
        # Invites stay short for those who use none.
        self.us.mailbox_record = lambda: mail.record_text() if mail.mine else ""
        if self.config.serve_mailbox:
            self._mailbox_service = MailboxService(
                MailboxStore(db, self.profile.path / "mailbox-blobs"), host=host,
                nursery=nursery, contacts=contacts,
                quotas=self.resources, first_frame_timeout=self.limits.first_frame_timeout,
                limits=self.mailbox_limits)
            self._mailbox_service.start()
        self._mailbox_client = mail
        return mail

    @property
    def mailboxes(self) -> MailboxClient:
        if self._mailbox_client is None:
            raise RuntimeError("the node is not running")
        return self._mailbox_client

    async def use_mailbox(self, peer_id: str) -> ContactMailbox:
        """Use a contact who serves a mailbox as ours: now, and at every start (settings)."""
        if self.contacts.state(peer_id) is not ContactState.CONTACT:
            raise ConfigError("only a contact can be your mailbox")
        addr = self.mailboxes.use_contact(peer_id, self.contacts.store.addrs(peer_id))
        if addr is not None:
            self._configured_peers.add(peer_id)
            await self.update_settings({"mailboxes": [*self.profile.settings.mailboxes, addr]})
        return self.mailboxes.contact_mailbox(peer_id)

    async def mailbox_status(self) -> MailboxStatus:
        users, held, size = (self._mailbox_service.stats() if self._mailbox_service is not None
                             else (0, 0, 0))
        return MailboxStatus(serving=self._mailbox_service is not None, users=users, held=held,
                             bytes=size, mine=self.mailboxes.status())

    def _wire_actions(self, host: IHost, db: sqlite3.Connection, us: OwnPeer,
                      contacts: ContactService, dms: DirectMessages, rooms: RoomService,
                      files: FileTransfers, nursery: Tasks, forget: Forget) -> None:
        """Replies, reactions, edits, deletions, read receipts, typing: kinds and hooks."""
        emit, me, settings = self.emit, self.identity.peer_id, lambda: self.profile.settings
        actions = MessageActions(ActionStore(db), us=us, emit=emit, contacts=contacts,
                                 outbox=dms, sender=dms, rooms=rooms, forget=forget,
                                 transfers=files, unread_total=self.unread_total)
        store, messages = actions.store, dms.store
        dms.kinds.register(ac.KIND_REPLY, ReplyMessages(store, messages, emit, me))
        reactions = ReactionMessages(store, messages, emit, me)
        dms.kinds.register(ac.KIND_REACTION, reactions)
        edits = EditMessages(store, messages, emit, me)
        deletes = DeleteMessages(store, messages, emit, me, files, nursery.start_soon)
        edits.on_change = deletes.on_change = actions.contact_changed
        for handler in (reactions, edits, deletes):
            handler.is_contact = lambda p: contacts.state(p) is ContactState.CONTACT
        dms.kinds.register(ac.KIND_EDIT, edits)
        dms.kinds.register(ac.KIND_DELETE, deletes)
        for kind in sorted(ac.ACTION_KINDS):
            rooms.kinds.register(kind, RoomActionPosts(kind, store, emit, forget))
        dms.wire_form = actions.wire_form
        rooms.decorate = actions.decorate_post
        contacts.on_profile.append(actions.profile_received)
        rooms.roster.on_features.append(actions.member_features)
        actions.receipts = ReadReceipts(store, emit=emit, contacts=contacts, outbox=dms,
                                        enabled=lambda: settings().read_receipts)
        dms.kinds.register(ac.KIND_READ, actions.receipts)
        actions.typing = TypingSignals(
            host, nursery=nursery, emit=emit, me=me, contacts=contacts, rooms=rooms,
            connections=self.connections, enabled=lambda: settings().typing_indicators)
        actions.typing.start()
        actions.moderates, actions.moderate = (self.governance.moderates,
                                               self.governance.delete_post)
        contacts.features.extend([ac.FEATURE_ACTIONS, ac.FEATURE_RECEIPTS, FEATURE_TYPING])
        rooms.roster.features.extend([ac.FEATURE_ACTIONS, FEATURE_TYPING])
        self._actions = actions

    @property
    def actions(self) -> MessageActions:
        if self._actions is None:
            raise RuntimeError("message actions are switched off on this node")
        return self._actions

    @property
    def connections(self) -> HostConnections:
        if self._connections is None:
            raise RuntimeError("the node is not running")
        return self._connections

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id`` (py-libp2p's ``host.disconnect`` may leave
        one open: see ``connections.close_connections``)."""
        await self.connections.disconnect(peer_id)

    async def _listen_fallback(self, requested: list[multiaddr.Multiaddr]) -> None:
        """A remembered port that is now taken falls back to a free one, not to silence."""
        if self.host.get_addrs():
            return
        if self.config.listen:
            raise ConfigError(
                "Cannot listen on " + ", ".join(str(a) for a in requested) + ": address in use"
            )
        log.warning("port %s is taken; listening on a free one", self.profile.settings.listen_port)
        await self.host.get_network().listen(*(with_port(a, 0) for a in requested))
        if not self.host.get_addrs():
            raise ConfigError("Cannot listen on any TCP port")

    def _remember_port(self) -> None:
        if self.config.listen:
            return
        ports = {int(a.value_for_protocol("tcp")) for a in self.host.get_transport_addrs()}
        port = min(ports)
        if port != self.profile.settings.listen_port:
            self.profile.settings.listen_port = port
            self.profile.save_settings()

    @property
    def us(self) -> OwnPeer:
        if self._us is None:
            raise RuntimeError("the node is not running")
        return self._us

    def addrs(self) -> list[str]:
        """Our full multiaddrs (``OwnPeer.addrs``)."""
        return self.us.addrs()

    @property
    def relay(self) -> RelayService:
        if self._relay is None:
            raise RuntimeError("the node is not running")
        return self._relay

    @property
    def lan(self) -> LanDiscovery | None:
        """LAN discovery when ``lan_discovery`` is set (``active`` while mDNS runs)."""
        return self._lan

    @property
    def dht(self) -> DhtService:
        if self._dht is None:
            raise RuntimeError("the node is not running")
        return self._dht

    @property
    def reachability(self) -> Reachability:
        if self._reach is None:
            raise RuntimeError("the node is not running")
        return self._reach

    def _trusted_observer(self, peer_id: str) -> bool:
        """Whose report of our address counts on its own: contacts, our relays and our DHT
        bootstrap peers (``ObservedAddrs``)."""
        if peer_id in self._configured_peers:
            return True
        return (self._contacts is not None
                and self._contacts.state(peer_id) is ContactState.CONTACT)

    def invite(self) -> str:
        return self.us.invite()

    def connection_count(self) -> int:
        return self._connections.count() if self._connections is not None else 0

    def is_connected(self, peer_id: str) -> bool:
        return self.connections.is_connected(peer_id)

    def peer_connected(self, peer_id: str) -> None:
        if self._contacts is None:  # a late notification while shutting down
            return
        self.contacts.connected(peer_id)
        self.rooms.peer_connected(peer_id)
        self.files.peer_connected(peer_id)
        if self._mailbox_client is not None:
            self._mailbox_client.peer_connected(peer_id)
        if self._hole_punch is not None:
            self._hole_punch.peer_connected(peer_id)
        self.connections_changed()
        self._routes_changed(peer_id)

    def peer_disconnected(self, peer_id: str) -> None:
        if self._contacts is None:  # connections closing after the services stopped
            return
        self.contacts.disconnected(peer_id)
        if not self.is_connected(peer_id):
            self.rooms.peer_disconnected(peer_id)
        if self._hole_punch is not None:
            self._hole_punch.peer_disconnected(peer_id)
        if self._relay is not None:
            self._relay.peer_disconnected(peer_id)
        self._forget_stranger(peer_id)
        self.connections_changed()
        self._routes_changed(peer_id)

    def _forget_stranger(self, peer_id: str) -> None:
        """A peer that is nothing to us left: drop what identify taught us about it (its
        protocols, addresses, keys), unless the DHT still needs its entry. py-libp2p keeps up to
        1,000 peers' entries, whoever they were."""
        if self.is_connected(peer_id) or peer_id in self._configured_peers:
            return
        if self.contacts.state(peer_id) is not None or self.rooms.rooms_of(peer_id):
            return
        peer = ID.from_base58(peer_id)
        peerstore = self.host.get_peerstore()
        if self._dht is not None and self._dht.keeps(peer):
            peerstore.clear_protocol_data(peer)
            peerstore.clear_metadata(peer)
        elif peerstore.has_peer(peer):
            peerstore.clear_peerdata(peer)

    def network_changed(self) -> None:
        """An interface address or link changed (``NetWatch``): reconnect now, not after the
        backoffs run out; renew relay slots and our DHT record, which may be stale too."""
        if self._contacts is None or self._relay is None:
            return
        self.contacts.network_changed()
        self.relay.reserve_now()
        if self.dht.enabled:
            self.dht.publish_now()
        if self._lan is not None:
            self._lan.refresh()
        if self._reach is not None:
            self._reach.check()

    def _routes_changed(self, peer_id: str) -> None:
        if self._reach is not None:
            self._reach.update_route(peer_id)
            self._reach.check()  # losing a relay's connection loses its slot

    def connections_changed(self) -> None:
        if log.isEnabledFor(logging.DEBUG):  # the account walks every connection and stream
            log.debug("%s", self.resources.account())
        count = self.connection_count()
        if count != self._last_connection_count:
            self._last_connection_count = count
            self._emit(ConnectionsChanged(connections=count))

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Validate and save (this thread is the settings file's one writer); a new display
        name applies at once: invites, profile answers and room posts read it from here."""
        old = self.profile.settings
        new = old.with_changes(**changes)
        self.profile.settings = new
        await trio.to_thread.run_sync(self.profile.save_settings)
        if new.display_name != old.display_name:
            self._emit(ProfileChanged(display_name=new.display_name, invite=self.invite()))
        return copy.deepcopy(new)

    def chat_prefs(self) -> list[ChatPrefs]:
        """The chat list's pinned, muted and marked-unread conversations."""
        return ChatPrefsStore(self.db).all()

    async def set_chat_prefs(self, conversation: str, changes: dict[str, bool]) -> ChatPrefs:
        """Pin, mute or mark unread a contact's conversation or a room (this device only)."""
        if self.contacts.info(conversation) is None and not self._is_room(conversation):
            raise ValueError("there is no such conversation")
        prefs = ChatPrefsStore(self.db).update(conversation, **changes)
        self._emit(ChatPrefsChanged(prefs=prefs))
        return prefs

    def _is_room(self, key: str) -> bool:
        try:
            room_id = bytes.fromhex(key)
        except ValueError:
            return False
        return self.rooms.has_room(room_id)

    async def status(self) -> NodeStatus:
        return NodeStatus(
            peer_id=self.identity.peer_id,
            addrs=tuple(self.addrs()),
            invite=self.invite(),
            connections=self.connection_count(),
            reachability=self._reach.check() if self._reach is not None else "offline",
        )

