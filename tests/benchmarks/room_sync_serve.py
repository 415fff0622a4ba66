"""What serving room history costs a member: one request's answer, and memory under slow readers.

    .venv/bin/python -m tests.benchmarks.room_sync_serve [--posts 500] [--readers 0,4,12,24]
                                                         [--protocol 2|1] [--app-root DIR]

A ``kith node`` process (the member) holds a room with POSTS posts of 60 KB. Then, for each
count in --readers, that many separate peers (bare libp2p hosts in this process, one identity
each) each send one sync request with an empty have-list and never read the answer, for 5 s,
while the member's resident memory is sampled. Prints the bytes one 61-byte request brings
back, and the member's RSS before and at its peak for each count of readers.

--app-root runs the member from another checkout (e.g. an older Kith, extracted with
``git archive``), to compare; an older Kith only speaks --protocol 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import multiaddr
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from app.core import room as rc
from app.core.identity import Identity
from app.node.framing import read_frame, write_frame
from app.node.host import build_host
from tests.nodeproc import NodeProcess

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
PROTOCOLS = {"2": rc.SYNC2_PROTOCOL_ID, "1": rc.SYNC_PROTOCOL_ID}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(secrets: rc.RoomSecrets, protocol: str) -> bytes:
    if protocol == rc.SYNC2_PROTOCOL_ID:
        return rc.encode_range_sync_request(secrets, {}, rc.MAX_SYNC_PAGE)
    return rc.encode_sync_request(secrets, {}, rc.MAX_SYNC_PAGE)


async def one_answer(target: str, secrets: rc.RoomSecrets, protocol: str) -> tuple[int, int]:
    """(request bytes, answer bytes) of one request read to its end."""
    listen = multiaddr.Multiaddr(LOOPBACK)
    host = build_host(Identity.generate(), [listen])
    async with host.run([listen]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(target))
        await host.connect(info)
        stream = await host.new_stream(info.peer_id, [protocol])  # type: ignore[list-item]
        payload = request(secrets, protocol)
        await write_frame(stream, payload)
        total = 0
        while True:
            frame = await read_frame(stream, rc.MAX_SYNC_RESPONSE)
            total += len(frame)
            if isinstance(rc.decode_sync_response(frame), rc.SyncEnd):
                break
        await stream.close()
        return len(payload), total


async def slow_readers(count: int, target: str, secrets: rc.RoomSecrets, protocol: str,
                       hold: float, pid: int) -> float:
    """Peak RSS (MiB) of ``pid`` while ``count`` peers each hold one unread request open."""
    peak = rss_mib(pid)

    async def reader(ready: trio.Event) -> None:
        listen = multiaddr.Multiaddr(LOOPBACK)
        host = build_host(Identity.generate(), [listen])
        async with host.run([listen]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(target))
            await host.connect(info)
            try:
                stream = await host.new_stream(ID(info.peer_id.to_bytes()),
                                               [protocol])  # type: ignore[list-item]
                await write_frame(stream, request(secrets, protocol))
            except Exception:  # noqa: BLE001 - refused (over the limit): still a reader
                pass
            ready.set()
            await trio.sleep(hold + 1)

    async with trio.open_nursery() as nursery:
        events = [trio.Event() for _ in range(count)]
        for event in events:
            nursery.start_soon(reader, event)
        for event in events:
            await event.wait()
        end = trio.current_time() + hold
        while trio.current_time() < end:
            peak = max(peak, rss_mib(pid))
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--readers", default="0,4,12,24")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="2")
    parser.add_argument("--app-root", default=None)
    parser.add_argument("--hold", type=float, default=5.0)
    args = parser.parse_args()
    protocol = PROTOCOLS[args.protocol]
    prefix = ["env", "-C", args.app_root] if args.app_root else None

    with tempfile.TemporaryDirectory() as tmp:
        member = NodeProcess(Path(tmp) / "member", name="Member", prefix=prefix)
        try:
            ready = member.expect("ready", timeout=60)
            created = member.request({"cmd": "create_room", "name": "Big"}, "room_created")
            secrets = rc.parse_room_invite(created["invite"]).secrets
            started = time.monotonic()
            for i in range(args.posts):
                member.send({"cmd": "post", "room": created["room_id"],
                             "text": f"{i} " + "x" * 60_000})
            for _ in range(args.posts):
                member.expect("posted", timeout=120)
            print(f"{args.posts} posts of 60 KB in {time.monotonic() - started:.1f} s; "
                  f"sync protocol {protocol}")
            target = ready["addrs"][0]
            sent, answer = trio.run(one_answer, target, secrets, protocol)
            print(f"\none request of {sent} bytes brings back {answer / 1e6:.1f} MB\n")
            print(f"{'readers':>7}  {'RSS before':>10}  {'RSS peak':>9}  {'growth':>8}")
            for count in (int(x) for x in args.readers.split(",")):
                before = rss_mib(member.proc.pid)
                peak = trio.run(slow_readers, count, target, secrets, protocol, args.hold,
                                member.proc.pid)
                growth = peak - before
                print(f"{count:>7}  {before:>7.0f} MiB  {peak:>6.0f} MiB  {growth:>4.0f} MiB",
                      flush=True)
                deadline = time.monotonic() + 30  # let the member drop the readers' streams
                while time.monotonic() < deadline and member.request(
                        {"cmd": "status"}, "status")["connections"] > 0:
                    time.sleep(0.2)
        finally:
            member.quit(timeout=30)


if __name__ == "__main__":
    main()
