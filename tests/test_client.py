"""The client seam: calls cross into the network thread, events come back on the loop thread."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from app.client import KithClient, NodeNotRunning
from app.core.config import ConfigError, NodeConfig
from app.core.events import ConnectionsChanged, Event, NodeFailed, NodeReady, NodeStopped
from app.node.node import KithNode
from app.store.profile import Profile
from tests.conftest import LOOPBACK


def _client(path: Path, name: str = "Ada") -> KithClient:
    profile = Profile.open(path)
    profile.initialise(name)
    return KithClient(profile, NodeConfig(listen=(LOOPBACK,)))


async def _wait_for(events: list[Event], kind: type[Event], timeout: float = 10) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events:
            if isinstance(event, kind):
                return event
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind.__name__} in {events}")


def test_start_call_events_and_stop(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = _client(tmp_path / "a")
        loop_thread = threading.get_ident()
        seen: list[tuple[Event, int]] = []
        client.subscribe(lambda e: seen.append((e, threading.get_ident())))
        ready = await client.start()
        assert ready.peer_id == client.profile.identity.peer_id
        assert all(a.endswith(f"/p2p/{ready.peer_id}") for a in ready.addrs)
        assert ready.invite.startswith(f"kith:contact?id={ready.peer_id}&name=Ada")
        status = await client.status()
        assert status.connections == 0 and status.addrs == ready.addrs
        thread_of_call = await client.call(lambda node: _trio_thread_ident())
        assert thread_of_call != loop_thread
        started = time.monotonic()
        await client.stop()
        assert time.monotonic() - started < 2
        assert not client.running
        await asyncio.sleep(0)
        assert [type(e) for e, _ in seen] == [NodeReady, NodeStopped]
        assert {t for _, t in seen} == {loop_thread}
        with pytest.raises(NodeNotRunning):
            await client.status()
        client.profile.close()

    asyncio.run(scenario())


async def _trio_thread_ident() -> int:
    await trio.lowlevel.checkpoint()
    return threading.get_ident()


def test_errors_in_calls_reach_the_caller_and_the_node_keeps_running(tmp_path: Path) -> None:
    async def boom(node: KithNode) -> None:
        raise ValueError("bad input")

    async def scenario() -> None:
        client = _client(tmp_path / "a")
        await client.start()
        with pytest.raises(ValueError, match="bad input"):
            await client.call(boom)
        assert (await client.status()).peer_id
        await client.stop()
        client.profile.close()

    asyncio.run(scenario())


def test_cancelling_a_call_cancels_the_trio_side(tmp_path: Path) -> None:
    finished = threading.Event()

    async def forever(node: KithNode) -> None:
        try:
            await trio.sleep_forever()
        finally:
            finished.set()

    async def scenario() -> None:
        client = _client(tmp_path / "a")
        await client.start()
        task = asyncio.ensure_future(client.call(forever))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.get_running_loop().run_in_executor(None, finished.wait, 5)
        await client.stop()
        client.profile.close()

    asyncio.run(scenario())


def test_a_damaged_database_surfaces_as_an_event(tmp_path: Path) -> None:
    """A failure of this computer (the profile's database damaged) stops the node with
    ``node_failed``; a task that fails for any other reason ends alone (tests/test_isolation.py)."""

    async def crash(node: KithNode) -> None:
        async def explode() -> None:
            raise RuntimeError("a bug, not the disk")

        async def damaged() -> None:
            error = sqlite3.DatabaseError("database disk image is malformed")
            error.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
            raise error

        node.nursery.start_soon(explode)
        await trio.lowlevel.checkpoint()
        node.nursery.start_soon(damaged)

    async def scenario() -> None:
        client = _client(tmp_path / "a")
        events: list[Event] = []
        client.subscribe(events.append)
        await client.start()
        pending = asyncio.ensure_future(
            client.call(lambda node: trio.sleep_forever()))  # noqa: ASYNC105 - call awaits it
        await client.call(crash)
        failed = await _wait_for(events, NodeFailed)
        assert "malformed" in failed.message  # type: ignore[attr-defined]
        assert "a bug" not in failed.message  # type: ignore[attr-defined]
        await _wait_for(events, NodeStopped)
        with pytest.raises(NodeNotRunning):
            await pending
        await client.stop()
        client.profile.close()

    asyncio.run(scenario())


def test_start_failure_is_raised_to_the_caller(tmp_path: Path) -> None:
    async def scenario() -> None:
        profile = Profile.open(tmp_path / "a")
        client = KithClient(profile, NodeConfig(listen=("/dns4/example.org/tcp/1",)))
        with pytest.raises(ConfigError, match="Kith listens on"):
            await client.start()
        await client.stop()
        profile.close()

    asyncio.run(scenario())


def test_two_nodes_connect_and_report_connections(tmp_path: Path) -> None:
    async def scenario() -> None:
        a, b = _client(tmp_path / "a", "Ada"), _client(tmp_path / "b", "Bob")
        events_a: list[Event] = []
        a.subscribe(events_a.append)
        await a.start()
        ready_b = await b.start()

        async def dial(node: KithNode) -> None:
            from libp2p.peer.peerinfo import info_from_p2p_addr
            from multiaddr import Multiaddr

            await node.host.connect(info_from_p2p_addr(Multiaddr(ready_b.addrs[0])))

        await a.call(dial)
        changed = await _wait_for(events_a, ConnectionsChanged)
        assert changed.connections == 1  # type: ignore[attr-defined]
        assert (await b.status()).connections == 1
        await asyncio.gather(a.stop(), b.stop())
        a.profile.close()
        b.profile.close()

    asyncio.run(scenario())


def test_remembered_port_is_reused_and_falls_back_when_taken(tmp_path: Path) -> None:
    import socket

    async def start_on_profile() -> int:
        profile = Profile.open(tmp_path / "p")
        client = KithClient(profile, NodeConfig(interface="127.0.0.1"))
        ready = await client.start()
        port = profile.settings.listen_port
        assert any(f"/tcp/{port}/" in a for a in ready.addrs)
        await client.stop()
        profile.close()
        return port

    first = asyncio.run(start_on_profile())
    assert first > 0
    assert asyncio.run(start_on_profile()) == first
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", first))
    blocker.listen()
    try:
        assert asyncio.run(start_on_profile()) != first
    finally:
        blocker.close()


def test_ordered_calls_run_in_the_order_they_were_made(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = _client(tmp_path / "a")
        await client.start()
        seen: list[int] = []

        async def record(node: KithNode, i: int) -> int:
            await trio.lowlevel.checkpoint()
            seen.append(i)
            return i

        results = await asyncio.gather(*(
            client.call(functools.partial(record, i=i), ordered=True) for i in range(200)
        ))
        assert results == list(range(200)) and seen == list(range(200))
        await client.stop()
        client.profile.close()

    asyncio.run(scenario())
