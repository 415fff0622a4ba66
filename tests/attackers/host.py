"""A bare py-libp2p host (no Kith rules, any identity, gossipsub if asked) in its own trio
thread: what anyone on the network can run against a Kith.

Tests written with asyncio (``tests.peers``) drive it with ``call``: the coroutine runs in the
attacker's trio thread, as ``KithClient.call`` does for a Kith node. With ``gossip=True`` it
also runs gossipsub, joins a room's topic (``join``) and publishes whatever bytes a test hands
it (forged, oversized, out of range, replayed), as anyone who learnt the topic could.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from app.core.identity import Identity
from app.core.invite import parse_invite
from app.node.gossip import KithPubsub, open_pubsub
from app.node.host import build_host
from app.node.libp2p_patches.swarm import stop_auto_dialing

T = TypeVar("T")
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
MESH_TIMEOUT = 20.0


class RawHost:
    """``async with RawHost() as attacker`` (or ``start``/``stop``): a running host."""

    def __init__(self, identity: Identity | None = None, *, gossip: bool = False) -> None:
        self.identity = identity or Identity.generate()
        self.gossip = gossip
        self.host: IHost | None = None
        self._pubsub: KithPubsub | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    @property
    def pubsub(self) -> KithPubsub:
        if self._pubsub is None:
            raise RuntimeError("this attacker runs no gossipsub (RawHost(gossip=True))")
        return self._pubsub

    async def start(self) -> RawHost:
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 30)
        if self._error is not None:
            raise self._error
        return self

    async def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    async def __aenter__(self) -> RawHost:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _main(self) -> None:
        try:
            host = build_host(self.identity, [LOOPBACK])
            host.get_network().set_resource_manager(None)  # type: ignore[attr-defined]
            self._stop = trio.Event()
            async with host.run([LOOPBACK]), contextlib.AsyncExitStack() as stack:
                await stop_auto_dialing(host)
                if self.gossip:
                    self._pubsub = await stack.enter_async_context(open_pubsub(host))
                self.host = host
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def call(self, fn: Callable[[IHost], Awaitable[T]]) -> T:
        """Run ``fn(host)`` in the attacker's trio thread and return its result."""
        token = self._token
        assert token is not None and self.host is not None
        host = self.host

        def run() -> T:
            return trio.from_thread.run(fn, host, trio_token=token)

        return await asyncio.to_thread(run)

    async def connect(self, invite: str) -> str:
        """Connect to the peer of a ``kith:`` invite; its peer id."""
        parsed = parse_invite(invite)

        async def dial(host: IHost) -> None:
            addrs = [multiaddr.Multiaddr(a) for a in parsed.addrs]
            await host.connect(PeerInfo(ID.from_base58(parsed.peer_id), addrs))

        await self.call(dial)
        return parsed.peer_id

    async def join(self, target: str, topic: str) -> None:
        """Connect to ``target`` (a full multiaddr) and be in its mesh for ``topic``."""
        pubsub = self.pubsub

        async def join(host: IHost) -> None:
            await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target)))
            await pubsub.subscribe(topic)
            with trio.fail_after(MESH_TIMEOUT):
                while not pubsub.gossip.mesh.get(topic):
                    await trio.sleep(0.02)

        await self.call(join)

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        """Publish each payload as a gossip message signed by this host, in order."""
        pubsub = self.pubsub

        async def publish_all(_: IHost) -> None:
            for data in payloads:
                await pubsub.publish(topic, data)

        await self.call(publish_all)


async def room_attacker(target: str, topic: str, identity: Identity | None = None) -> RawHost:
    """A started gossiping ``RawHost`` in ``target``'s mesh for ``topic``; ``stop`` it."""
    attacker = await RawHost(identity, gossip=True).start()
    try:
        await attacker.join(target, topic)
    except BaseException:
        await attacker.stop()
        raise
    return attacker
