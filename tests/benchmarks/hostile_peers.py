"""What a hostile peer costs a Kith node, with py-libp2p 0.8.1 as shipped and with Kith's bounds.

    .venv/bin/python -m tests.benchmarks.hostile_peers            # root (a loopback namespace)
    .venv/bin/python -m tests.benchmarks.hostile_peers --cases answer-addrs,strangers

Each case runs twice, each time in a fresh process inside a network namespace with loopback
only (nothing the victim is told to dial can leave the machine): once with Kith's patches,
resource manager and handlers in place, once with them taken out, as py-libp2p 0.8.1 behaves.
The victim is a real Kith node; the attacker a real Kith node whose host answers as an
attacker would (``tests.attackers``). For each run the table shows the longest time the
victim's network thread went without running another task (measured by a task that sleeps
5 ms at a time), the CPU seconds that thread spent (not the attackers', which run in the same
process), and what the victim kept:

* ``answer-addrs``: the victim's bootstrap peer answers its lookup with one peer and 20,000
  addresses; kept: the addresses in the victim's peerstore.
* ``answer-peers``: ... with 20,000 peers (1 MB); kept: those peers in the peerstore.
* ``strangers``: 30 strangers connect, answer identify with about 1 MiB of protocol ids each,
  and leave; kept: bytes of protocol ids the victim still holds for them.
* ``silent``: 200 dials of an address that accepts TCP and stays silent, each cancelled after
  50 ms; kept: connection slots counted that nothing holds (py-libp2p's resource manager as
  shipped; Kith's own, which replaces it), and sockets the dials left open.
* ``put-value``: a stranger stores 100 values of 1 MB (PUT_VALUE) on a victim serving the DHT;
  kept: bytes of values in the victim's store (py-libp2p keeps them 24 h).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from app.core.config import NodeConfig
from tests.attackers import SilentPort, answer_dht, ask_dht, lie_in_identify
from tests.netns import in_loopback_netns
from tests.peers import LOOPBACK, Peer

CASES = ("answer-addrs", "answer-peers", "strangers", "silent", "put-value")


def _as_shipped() -> None:
    """Take Kith's bounds out (this process only): py-libp2p 0.8.1 as it ships, its own
    resource manager included."""
    import app.node.host as host_module
    import app.node.node as node_module
    from app.node.resources import ResourceManager

    def nothing(*args: object) -> None:
        return None

    def keep_py_libp2p_s_own(self: ResourceManager, host: Any) -> None:
        self._host = host

    host_module.apply_process_patches = nothing
    ResourceManager.install = keep_py_libp2p_s_own  # type: ignore[method-assign]
    node_module.KithNode._forget_stranger = nothing  # type: ignore[method-assign, assignment]


async def _watch(node: Any, worst: list[float]) -> None:
    """Record the longest gap between two runs of a task that sleeps 5 ms at a time."""

    async def watch() -> None:
        while True:
            before = trio.current_time()
            await trio.sleep(0.005)
            worst[0] = max(worst[0], trio.current_time() - before - 0.005)

    node.nursery.start_soon(watch)


def _stored_bytes(node: Any) -> int:
    """Bytes of values the node's DHT value store holds."""
    return sum(len(record.value) for record, _ in node.dht.kad.value_store.store.values())


async def _answer_case(tmp: Path, many_peers: bool) -> dict[str, Any]:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

    def fake() -> ID:
        return ID.from_pubkey(create_new_key_pair().public_key)

    if many_peers:
        named = [fake() for _ in range(20_000)]
        shaped = [(p, [Multiaddr("/ip4/203.0.113.9/tcp/1").to_bytes()]) for p in named]
    else:
        named = [fake()]
        shaped = [(named[0], [Multiaddr(f"/ip4/203.0.113.{i % 200 + 1}/tcp/{1000 + i}").to_bytes()
                              for i in range(20_000)])]
    response = Message(type=Message.MessageType.FIND_NODE)
    for peer, addrs in shaped:
        entry = response.closerPeers.add()
        entry.id = peer.to_bytes()
        entry.addrs.extend(addrs)
    body = response.SerializeToString()
    eve = await Peer(tmp / "eve", "Eve").start()
    await eve.client.call(lambda node: _async(answer_dht, node, lambda request: body))
    assert eve.ready is not None
    ada = Peer(tmp / "ada", "Ada", NodeConfig(listen=(LOOPBACK,), bootstrap=(eve.ready.addrs[0],)))
    worst = [0.0]
    await ada.start()
    await ada.client.call(lambda node: _watch(node, worst))
    await _until(ada, lambda node: node.dht.published >= 1, 120)
    cpu = await _cpu(ada)  # since it started

    async def kept(node: Any) -> int:
        store = node.host.get_peerstore()
        wanted = set(named)
        entries = [store.peer_data_map[p] for p in store.peer_ids() if p in wanted]
        return len(entries) if many_peers else sum(len(e.addrs) for e in entries)

    result = {"stall": worst[0], "cpu": cpu, "kept": await ada.client.call(kept)}
    await asyncio.gather(ada.stop(), eve.stop())
    return result


async def _strangers_case(tmp: Path) -> dict[str, Any]:
    protocols = [f"/junk/{i:06d}/" + "x" * 40 for i in range(18_000)]
    val = await Peer(tmp / "val", "Val").start()
    worst = [0.0]
    await val.client.call(lambda node: _watch(node, worst))
    cpu = await _cpu(val)
    ids = []
    for i in range(30):
        stranger = await Peer(tmp / f"s{i}", f"S{i}").start()
        await stranger.client.call(
            lambda node: _async(lie_in_identify, node, protocols=protocols))
        ids.append(stranger.peer_id)
        await stranger.client.call(lambda node: _dial(node, val))
        def learned(node: Any, p: str = stranger.peer_id) -> bool:
            return _protocols_of(node, [p]) > 0

        await _until(val, learned, 20)
        await stranger.stop()
    cpu = await _cpu(val) - cpu
    await _until(val, lambda node: node.connection_count() == 0, 20)
    kept = await val.client.call(lambda node: _async(_protocols_of, node, ids))
    await val.stop()
    return {"stall": worst[0], "cpu": cpu, "kept": kept}


def _protocols_of(node: Any, peer_ids: list[str]) -> int:
    from libp2p.peer.id import ID

    store = node.host.get_peerstore()
    total = 0
    for text in peer_ids:
        data = store.peer_data_map.get(ID.from_base58(text))
        total += sum(len(p) for p in data.protocols) if data is not None else 0
    return total


async def _silent_case(tmp: Path, shipped: bool) -> dict[str, Any]:
    from app.node.host import connect_at

    with SilentPort() as silent:
        ada = await Peer(tmp / "ada", "Ada").start()
        bob = await Peer(tmp / "bob", "Bob").start()
        worst = [0.0]
        await ada.client.call(lambda node: _watch(node, worst))
        cpu = await _cpu(ada)

        async def dials(node: Any) -> None:
            for _ in range(200):
                await connect_at(node.host, bob.peer_id, [silent.addr], 0.05)

        await ada.client.call(dials)
        cpu = await _cpu(ada) - cpu

        async def lost(node: Any) -> int:
            """Slots counted that no connection or handshake holds."""
            if shipped:
                manager = node.host.get_network()._resource_manager
                return int(manager._current_connections) - len(node.host.get_connected_peers())
            account = node.resources.account()
            return (sum(account.handshakes.values()) - sum(account.handshake_sockets.values())
                    + sum(account.connections.values())
                    - sum(account.open_connections.values()))

        slots = await ada.client.call(lost)
        sockets = silent.still_open()
        await asyncio.gather(ada.stop(), bob.stop())
    return {"stall": worst[0], "cpu": cpu,
            "kept": f"{slots} slot(s) nothing holds, {sockets} socket(s) open"}


async def _put_value_case(tmp: Path, shipped: bool) -> dict[str, Any]:
    from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record

    dee = await Peer(tmp / "dee", "Dee", NodeConfig(listen=(LOOPBACK,), serve_dht=True)).start()
    if shipped:  # py-libp2p's own handler, as every Kith answered with before

        async def serve_as_shipped(node: Any) -> None:
            from libp2p.kad_dht.common import PROTOCOL_ID
            from libp2p.kad_dht.kad_dht import DHTMode

            node.dht.kad.mode = DHTMode.SERVER
            node.host.set_stream_handler(PROTOCOL_ID, node.dht.kad.handle_stream)

        await dee.client.call(serve_as_shipped)
    eve = await Peer(tmp / "eve", "Eve").start()
    await eve.client.call(lambda node: _dial(node, dee))
    worst = [0.0]
    await dee.client.call(lambda node: _watch(node, worst))
    cpu = await _cpu(dee)
    for i in range(100):
        key = f"junk-{i}".encode()
        put = Message(type=Message.MessageType.PUT_VALUE, key=key)
        put.record.CopyFrom(Record(key=key, value=bytes(1_000_000)))
        await eve.client.call(functools.partial(ask_dht, peer_id=dee.peer_id, request=put))
    cpu = await _cpu(dee) - cpu
    kept = await dee.client.call(lambda node: _async(_stored_bytes, node))
    result = {"stall": worst[0], "cpu": cpu, "kept": f"{kept / 1e6:.0f} MB"}
    await asyncio.gather(eve.stop(), dee.stop())
    return result


async def _async(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def _cpu(peer: Peer) -> float:
    """CPU seconds ``peer``'s network thread has used so far (the attackers share this
    process, so the process's own total would count their work too)."""
    return float(await peer.client.call(lambda node: _async(time.thread_time)))


async def _dial(node: Any, target: Peer) -> None:
    from app.node.host import connect_at

    assert target.ready is not None
    await connect_at(node.host, target.peer_id, list(target.ready.addrs), 10)


async def _until(peer: Peer, check: Callable[[Any], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await peer.client.call(lambda node: _async(check, node)):
        if time.monotonic() > deadline:
            raise AssertionError("the case did not finish in time")
        await asyncio.sleep(0.05)


def run_case(case: str, shipped: bool) -> dict[str, Any]:
    """One case in this process (inside its namespace)."""
    import logging

    logging.disable(logging.WARNING)
    if shipped:
        _as_shipped()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        if case == "answer-addrs":
            return asyncio.run(_answer_case(path, many_peers=False))
        if case == "answer-peers":
            return asyncio.run(_answer_case(path, many_peers=True))
        if case == "strangers":
            return asyncio.run(_strangers_case(path))
        if case == "silent":
            return asyncio.run(_silent_case(path, shipped))
        return asyncio.run(_put_value_case(path, shipped))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    print("| case | py-libp2p as shipped: stall, CPU, kept | Kith: stall, CPU, kept |")
    print("|---|---|---|")
    for case in args.cases.split(","):
        cells = []
        for shipped in (True, False):
            got = in_loopback_netns(run_case, case, shipped, timeout=600)
            cells.append(f"{got['stall']:.2f} s, {got['cpu']:.2f} CPU s, {got['kept']}")
        print(f"| {case} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
