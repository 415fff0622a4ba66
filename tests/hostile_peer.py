"""A hostile peer for tests: a bare libp2p host with gossipsub on 127.0.0.1 and no Kith rules.

It connects to one Kith peer, subscribes to a room's topic and publishes whatever bytes a test
hands it (forged, oversized, out of range, replayed), as anyone who learnt the topic could.
It runs trio in its own thread, like ``KithClient``; a test drives it from asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import multiaddr
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr

from app.core.identity import Identity
from app.node.gossip import KithPubsub, open_pubsub
from app.node.host import build_host

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


class HostilePeer:
    def __init__(self, identity: Identity | None = None) -> None:
        self.identity = identity or Identity.generate()
        self._token: trio.lowlevel.TrioToken | None = None
        self._pubsub: KithPubsub | None = None
        self._stop: trio.Event | None = None
        self._thread: asyncio.Future[None] | None = None
        self.host: Any = None

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    async def start(self, target: str, topic: str) -> HostilePeer:
        """Connect to ``target`` (a full multiaddr) and be in its mesh for ``topic``."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._thread = loop.run_in_executor(None, trio.run, self._main, target, topic, loop,
                                            ready)
        waiter = asyncio.ensure_future(ready.wait())
        either: set[asyncio.Future[Any]] = {waiter, self._thread}
        done, _ = await asyncio.wait(either, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._thread in done:
            waiter.cancel()
            await self._thread  # raises what went wrong
        if waiter not in done:
            raise AssertionError("the hostile peer did not join the room's mesh in 30 s")
        return self

    async def _main(self, target: str, topic: str, loop: asyncio.AbstractEventLoop,
                    ready: asyncio.Event) -> None:
        listen = multiaddr.Multiaddr(LOOPBACK)
        host = build_host(self.identity, [listen])
        self.host = host
        async with host.run([listen]), open_pubsub(host) as pubsub:
            await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target)))
            await pubsub.subscribe(topic)
            with trio.fail_after(20):
                while not pubsub.gossip.mesh.get(topic):
                    await trio.sleep(0.02)
            self._pubsub = pubsub
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            loop.call_soon_threadsafe(ready.set)
            await self._stop.wait()

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        """Publish each payload as a gossip message signed by this host, in order."""

        async def publish_all() -> None:
            assert self._pubsub is not None
            for data in payloads:
                await self._pubsub.publish(topic, data)

        await self.run(publish_all)

    async def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn`` in the peer's trio thread and wait for it."""
        assert self._token is not None
        token = self._token
        return await asyncio.to_thread(trio.from_thread.run, fn, trio_token=token)

    async def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            stop = self._stop
            await asyncio.to_thread(trio.from_thread.run_sync, stop.set, trio_token=self._token)
        if self._thread is not None:
            await self._thread
