"""Several real peers in one process on 127.0.0.1, each a KithClient with its event log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.client import KithClient
from app.core.config import NodeConfig
from app.core.events import Event, NodeReady
from app.store.profile import Profile

if TYPE_CHECKING:
    from app.node.resources import Limits

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


class Peer:
    def __init__(self, path: Path, name: str, config: NodeConfig | None = None,
                 limits: Limits | None = None) -> None:
        """``config`` defaults to listening on 127.0.0.1 only; ``limits`` to the usual ones."""
        self.path = path
        self.name = name
        self.profile = Profile.open(path)
        if not self.profile.is_initialised:
            self.profile.initialise(name)
        self.client = KithClient(self.profile, config or NodeConfig(listen=(LOOPBACK,)), limits)
        self.events: list[Event] = []
        self.client.subscribe(self.events.append)
        self.ready: NodeReady | None = None

    @property
    def peer_id(self) -> str:
        return self.profile.identity.peer_id

    @property
    def invite(self) -> str:
        assert self.ready is not None
        return self.ready.invite

    async def start(self) -> Peer:
        self.ready = await self.client.start()
        return self

    async def stop(self) -> None:
        await self.client.stop()
        self.profile.close()

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    async def wait_for(
        self, predicate: Callable[[], object], timeout: float = 20, what: str = ""
    ) -> None:
        """Poll a condition while the loop delivers events (no fixed sleeps)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                names = [e.name for e in self.events][-30:]
                raise AssertionError(f"{self.name}: timed out waiting for {what}; events {names}")
            await asyncio.sleep(0.01)

    async def wait_event(self, name: str, count: int = 1, timeout: float = 20, **fields: object
                         ) -> list[Event]:
        def matching() -> list[Event]:
            return [
                e for e in self.named(name)
                if all(getattr(e, k, None) == v for k, v in fields.items())
            ]

        await self.wait_for(lambda: len(matching()) >= count, timeout, f"{count}x {name} {fields}")
        return matching()


@asynccontextmanager
async def peers(tmp_path: Path, *names: str) -> AsyncIterator[list[Peer]]:
    started: list[Peer] = []
    try:
        for name in names:
            started.append(await Peer(tmp_path / name.lower(), name).start())
        yield started
    finally:
        await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)


async def befriend(a: Peer, b: Peer) -> None:
    """Both add each other from invites and are connected."""
    await a.client.add_contact(b.invite)
    await b.client.add_contact(a.invite)
    await a.wait_event("contact_online", peer_id=b.peer_id)
    await b.wait_event("contact_online", peer_id=a.peer_id)
