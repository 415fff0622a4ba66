"""A mailbox and its users as real peers in one process on 127.0.0.1 (tests of mailboxes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from app.core.config import NodeConfig
from app.core.invite import ContactInvite
from app.store.profile import Profile
from tests.peers import Peer


def config(port: int = 0, *, serve: bool = False, mailboxes: tuple[str, ...] = ()) -> NodeConfig:
    return NodeConfig(listen=(f"/ip4/127.0.0.1/tcp/{port}",), serve_mailbox=serve,
                      mailboxes=mailboxes)


def port_of(peer: Peer) -> int:
    assert peer.ready is not None
    return int(peer.ready.addrs[0].split("/")[4])


class Cast:
    """Mia serves a mailbox; Bob (and, if asked, Ada) use it; Ada and Bob are contacts."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[Peer] = []
        self.mia_addr = ""

    async def start(self, name: str, config: NodeConfig) -> Peer:
        peer = await Peer(self.tmp_path / name.lower(), name, config).start()
        self.running.append(peer)
        return peer

    async def stop(self, peer: Peer) -> None:
        self.running.remove(peer)
        await peer.stop()

    async def mia(self, port: int = 0) -> Peer:
        mia = await self.start("Mia", config(port, serve=True))
        assert mia.ready is not None
        self.mia_addr = mia.ready.addrs[0]
        return mia

    async def user(self, name: str, mia: Peer, port: int = 0) -> Peer:
        """``name`` uses Mia's mailbox: Mia has them as a contact first, so they register."""
        profile = Profile.open(self.tmp_path / name.lower())
        if not profile.is_initialised:
            profile.initialise(name)
        peer_id = profile.identity.peer_id
        profile.close()
        if await mia.client.contact(peer_id) is None:
            await mia.client.add_contact(ContactInvite(peer_id, name).to_link())
        peer = await self.start(name, config(port, mailboxes=(self.mia_addr,)))
        await peer.wait_event("mailbox_registered", mailbox=mia.peer_id)
        return peer


@asynccontextmanager
async def cast(tmp_path: Path) -> AsyncIterator[Cast]:
    c = Cast(tmp_path)
    try:
        yield c
    finally:
        await asyncio.gather(*(p.stop() for p in c.running), return_exceptions=True)
