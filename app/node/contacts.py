"""Contacts, message requests and blocks; presence; and keeping contacts connected.

Presence is simply "we have a connection to them". For every contact a small task keeps trying
to connect, with exponential backoff capped at ``MAX_BACKOFF`` (never giving up), from the
addresses their invite and their profile taught us. Whichever side connects first, the
``on_connected`` hook flushes the outbox towards that peer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from libp2p.peer.id import ID

from app.core.events import (
    ContactAdded,
    ContactChanged,
    ContactOffline,
    ContactOnline,
    ContactRemoved,
    UnreadChanged,
)
from app.core.identity import is_valid_peer_id
from app.core.invite import ContactInvite, clean_display_name, parse_invite, strip_p2p
from app.core.records import ContactInfo, ContactState
from app.node.host import connect_at
from app.node.profile_exchange import ProfileExchange, encode_profile
from app.node.signal import Signal
from app.store.contacts import ContactStore

if TYPE_CHECKING:
    from app.node.node import KithNode

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 10.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0


class ContactError(ValueError):
    """A contact operation the user asked for that cannot be done; the message says why."""


class ContactService:
    def __init__(self, node: KithNode) -> None:
        self._node = node
        self.store = ContactStore(node.db)
        self._online: set[str] = set()
        self._wake: dict[str, Signal] = {}
        self._dialing: set[str] = set()
        self.profiles = ProfileExchange(node.host, self._own_profile)
        self.on_connected: list[Callable[[str], None]] = []

    def _own_profile(self) -> bytes:
        return encode_profile(self._node.profile.settings.display_name, self._node.addrs())

    def start(self) -> None:
        self.profiles.register()
        for peer_id in self.store.peer_ids(ContactState.CONTACT):
            self._keep_connected(peer_id)

    # -- queries ------------------------------------------------------------------------------

    def is_online(self, peer_id: str) -> bool:
        return peer_id in self._online

    def info(self, peer_id: str) -> ContactInfo | None:
        return self.store.get(peer_id, online=self.is_online(peer_id))

    def all(self) -> list[ContactInfo]:
        return self.store.all(online=self._online)

    def _changed(self, peer_id: str) -> None:
        info = self.info(peer_id)
        if info is not None:
            self._node.emit(ContactChanged(contact=info))

    # -- what the user does -------------------------------------------------------------------

    async def add_from_invite(self, link: str) -> ContactInfo:
        invite: ContactInvite = parse_invite(link)
        if invite.peer_id == self._node.identity.peer_id:
            raise ContactError("this is your own invite")
        self.store.upsert(invite.peer_id, ContactState.CONTACT, invite.name)
        if invite.addrs:
            self.store.add_addrs(invite.peer_id, invite.addrs, "invite")
        info = self.info(invite.peer_id)
        assert info is not None
        self._node.emit(ContactAdded(peer_id=info.peer_id, display_name=info.name))
        self._node.emit(ContactChanged(contact=info))
        self._announce_if_connected(invite.peer_id)
        self._keep_connected(invite.peer_id)
        self._wake_dialer(invite.peer_id)
        return info

    def _announce_if_connected(self, peer_id: str) -> None:
        """A peer already connected (say, through a room) is online the moment they are added."""
        if self.is_online(peer_id):
            self.store.seen(peer_id)
            self._node.emit(ContactOnline(peer_id=peer_id))
            self._node.nursery.start_soon(self._learn_profile, peer_id)
            for hook in self.on_connected:
                hook(peer_id)

    def _require(self, peer_id: str) -> ContactInfo:
        info = self.info(peer_id) if is_valid_peer_id(peer_id) else None
        if info is None:
            raise ContactError(f"unknown contact {peer_id}")
        return info

    async def accept(self, peer_id: str) -> ContactInfo:
        """A message request becomes a contact (also unblocks)."""
        self._require(peer_id)
        self.store.upsert(peer_id, ContactState.CONTACT)
        self._changed(peer_id)
        self._keep_connected(peer_id)
        return self._require(peer_id)

    async def block(self, peer_id: str) -> ContactInfo:
        if not is_valid_peer_id(peer_id):
            raise ContactError(f"not a peer id: {peer_id}")
        self.store.upsert(peer_id, ContactState.BLOCKED)
        self._wake_dialer(peer_id)  # its dial loop sees the block and ends
        if self.is_online(peer_id):
            await self._node.host.disconnect(ID.from_base58(peer_id))
        self._changed(peer_id)
        self._node.emit(UnreadChanged(total=self._node.unread_total()))
        return self._require(peer_id)

    async def rename(self, peer_id: str, name: str) -> ContactInfo:
        self._require(peer_id)
        self.store.rename(peer_id, clean_display_name(name) if name.strip() else None)
        self._changed(peer_id)
        return self._require(peer_id)

    async def set_verified(self, peer_id: str, verified: bool) -> ContactInfo:
        self._require(peer_id)
        self.store.set_verified(peer_id, verified)
        self._changed(peer_id)
        return self._require(peer_id)

    async def remove(self, peer_id: str) -> None:
        self._require(peer_id)
        self.store.remove(peer_id)
        self._wake_dialer(peer_id)
        self._node.emit(ContactRemoved(peer_id=peer_id))
        self._node.emit(UnreadChanged(total=self._node.unread_total()))

    def note_request(self, peer_id: str) -> bool:
        """A stranger wrote to us: file them under requests. True if they were new."""
        if self.store.state(peer_id) is not None:
            return False
        self.store.upsert(peer_id, ContactState.REQUEST)
        self._node.nursery.start_soon(self._learn_profile, peer_id)
        return True

    # -- presence -----------------------------------------------------------------------------

    def connected(self, peer_id: str) -> None:
        """Called for every new connection (either direction)."""
        state = self.store.state(peer_id)
        if state is ContactState.BLOCKED:
            self._node.nursery.start_soon(self._node.host.disconnect, ID.from_base58(peer_id))
            return
        if peer_id in self._online:
            return
        self._online.add(peer_id)
        if state is None:
            return
        self.store.seen(peer_id)
        self._node.emit(ContactOnline(peer_id=peer_id))
        self._changed(peer_id)
        self._node.nursery.start_soon(self._learn_profile, peer_id)
        for hook in self.on_connected:
            hook(peer_id)

    def disconnected(self, peer_id: str) -> None:
        if peer_id not in self._online or self._node.is_connected(peer_id):
            return
        self._online.discard(peer_id)
        if self.store.state(peer_id) in (ContactState.CONTACT, ContactState.REQUEST):
            now = time.time()
            self.store.seen(peer_id, now)
            self._node.emit(ContactOffline(peer_id=peer_id, last_seen=now))
            self._changed(peer_id)
        self._wake_dialer(peer_id)

    async def _learn_profile(self, peer_id: str) -> None:
        profile = await self.profiles.fetch(peer_id)
        if profile is None or self.store.state(peer_id) is None:
            return
        if profile.addrs:
            self.store.add_addrs(peer_id, profile.addrs, "profile")
        if profile.name and self.store.set_their_name(peer_id, profile.name):
            self._changed(peer_id)

    # -- keeping contacts connected -------------------------------------------------------------

    def _wake_dialer(self, peer_id: str) -> None:
        signal = self._wake.get(peer_id)
        if signal is not None:
            signal.set()

    def _keep_connected(self, peer_id: str) -> None:
        if peer_id not in self._dialing:
            self._dialing.add(peer_id)
            self._wake.setdefault(peer_id, Signal())
            self._node.nursery.start_soon(self._dial_loop, peer_id)

    async def _dial_loop(self, peer_id: str) -> None:
        """Reconnect forever while the peer is a contact; back off while they are away."""
        backoff = FIRST_BACKOFF
        signal = self._wake[peer_id]
        try:
            while self.store.state(peer_id) is ContactState.CONTACT:
                if self._node.is_connected(peer_id):
                    backoff = FIRST_BACKOFF
                    await signal.wait(MAX_BACKOFF)
                    continue
                if await self.dial(peer_id):
                    backoff = FIRST_BACKOFF
                    continue
                await signal.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self._dialing.discard(peer_id)

    async def dial(self, peer_id: str) -> bool:
        """One attempt over every address we know; True when connected.

        When those fail and DHT bootstrap peers are configured, the peer is looked up by id in
        the DHT; addresses it finds that we did not know are stored (source ``dht``) and dialed.
        """
        known = self.store.addrs(peer_id)
        if await self._dial_addrs(peer_id, known):
            return True
        dht = self._node.dht
        if not dht.enabled or self.store.state(peer_id) is not ContactState.CONTACT:
            return False
        tried = {strip_p2p(a) for a in known}
        found = [a for a in await dht.find_addrs(peer_id) if a not in tried]
        if self._node.is_connected(peer_id):  # the lookup itself may have reached them
            if found:
                self.store.add_addrs(peer_id, found, "dht")
            return True
        if not found:
            return False
        self.store.add_addrs(peer_id, found, "dht")
        return await self._dial_addrs(peer_id, found)

    async def _dial_addrs(self, peer_id: str, texts: list[str]) -> bool:
        return await connect_at(self._node.host, peer_id, texts, DIAL_TIMEOUT)
