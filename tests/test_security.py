"""Noise and Yamux only: plaintext, secio and mplex are refused as listener and as dialer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex

from app.core.identity import Identity
from app.node.host import build_host, key_pair

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
MULTISTREAM = "/multistream/1.0.0"


def _msg(text: str) -> bytes:
    body = text.encode() + b"\n"
    return bytes([len(body)]) + body


async def _read_msg(stream: trio.SocketStream, buf: bytearray) -> str:
    while not buf or len(buf) < 1 + buf[0]:
        data = await stream.receive_some(256)
        if not data:
            raise EOFError
        buf += data
    size = buf[0]
    text = bytes(buf[1 : 1 + size]).decode().rstrip("\n")
    del buf[: 1 + size]
    return text


def test_listener_answers_na_to_plaintext_and_secio_and_accepts_noise(tmp_path: Path) -> None:
    async def main() -> list[str]:
        host = build_host(Identity.generate(), [LOOPBACK])
        async with host.run([LOOPBACK]):
            port = int(host.get_transport_addrs()[0].value_for_protocol("tcp"))
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            buf = bytearray()
            await stream.send_all(_msg(MULTISTREAM) + _msg("/plaintext/2.0.0"))
            replies = [await _read_msg(stream, buf), await _read_msg(stream, buf)]
            await stream.send_all(_msg("/secio/1.0.0"))
            replies.append(await _read_msg(stream, buf))
            await stream.send_all(_msg("/noise"))
            replies.append(await _read_msg(stream, buf))
            await stream.aclose()
            return replies

    assert trio.run(main) == [MULTISTREAM, "na", "na", "/noise"]


def test_dialer_offers_noise_only_and_gives_up_when_refused() -> None:
    async def main() -> list[str]:
        proposals: list[str] = []

        async def refuse_everything(stream: trio.SocketStream) -> None:
            buf = bytearray()
            try:
                assert await _read_msg(stream, buf) == MULTISTREAM
                await stream.send_all(_msg(MULTISTREAM))
                while True:
                    proposals.append(await _read_msg(stream, buf))
                    await stream.send_all(_msg("na"))
            except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, refuse_everything, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            host = build_host(Identity.generate(), [LOOPBACK])
            fake = Identity.generate().peer_id
            async with host.run([LOOPBACK]):
                from libp2p.peer.peerinfo import info_from_p2p_addr

                info = info_from_p2p_addr(
                    multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/p2p/{fake}")
                )
                connected = True
                with trio.fail_after(20):
                    try:
                        await host.connect(info)
                    except Exception:  # noqa: BLE001 - any refusal is the expected outcome
                        connected = False
                assert not connected
            nursery.cancel_scope.cancel()
        return proposals

    proposals = trio.run(main)
    assert proposals and set(proposals) == {"/noise"}


def _mplex_only_host() -> IHost:
    """A py-libp2p host that speaks Noise but multiplexes only with mplex."""
    keys = key_pair(Identity.generate())
    noise = NoiseTransport(keys, noise_privkey=new_x25519_key_pair().private_key)
    return new_host(key_pair=keys, sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
                    muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
                    listen_addrs=[LOOPBACK])


def test_mplex_is_refused_both_ways() -> None:
    """py-libp2p's Yamux option also accepts mplex; Kith speaks Yamux only (docs/protocol.md 1)."""
    async def main() -> list[bool]:
        kith, other = build_host(Identity.generate(), [LOOPBACK]), _mplex_only_host()
        outcomes = []
        async with kith.run([LOOPBACK]), other.run([LOOPBACK]):
            for dialer, listener in ((other, kith), (kith, other)):
                connected = True
                with trio.fail_after(20):
                    try:
                        await dialer.connect(PeerInfo(listener.get_id(), listener.get_addrs()))
                    except Exception:  # noqa: BLE001 - any refusal is the expected outcome
                        connected = False
                outcomes.append(connected or bool(dialer.get_network().get_connections()))
        return outcomes

    assert trio.run(main) == [False, False]
