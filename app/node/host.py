"""Building the libp2p host: TCP + Noise only + Yamux only, with the profile's Ed25519 key.

py-libp2p's default host also offers and accepts ``/plaintext/2.0.0`` and ``/secio/1.0.0``, and
falls back to them when Noise is refused. Kith passes an explicit security table with Noise alone,
so a peer offering anything else is answered ``na`` and cannot connect. The same goes for
muxers: py-libp2p's "Yamux" option also accepts ``/mplex/6.7.0`` (a fifth of Yamux's speed
here, no flow control), so Kith passes a table with Yamux alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from app.core.config import ConfigError
from app.core.identity import Identity
from app.core.invite import strip_p2p
from app.node.libp2p_patches import apply_process_patches
from app.node.resources import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)


def key_pair(identity: Identity) -> KeyPair:
    private = Ed25519PrivateKey.new(identity.seed)
    return KeyPair(private, private.get_public_key())


def build_host(identity: Identity, listen_addrs: Sequence[multiaddr.Multiaddr],
               limits: Limits = DEFAULT_LIMITS) -> IHost:
    """A host that listens on ``listen_addrs`` (bound when built) and speaks only Noise and
    Yamux, with Kith's patches to py-libp2p (``libp2p_patches``) in place;
    ``ResourceManager.install`` then takes over its inbound connections and streams."""
    apply_process_patches()
    keys = key_pair(identity)
    noise = NoiseTransport(keys, noise_privkey=new_x25519_key_pair().private_key)
    return new_host(
        key_pair=keys,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=list(listen_addrs),
        enable_mDNS=False,
        enable_upnp=False,
        bootstrap=None,
        connection_config=ConnectionConfig(
            # Above the per-class caps of ``limits`` together: strangers never fill it.
            max_connections=limits.connections,
            high_watermark=limits.connections,  # py-libp2p prunes connections above this
            low_watermark=min(100, limits.connections),  # (unused: auto-dialing is off)
            min_connections=min(50, limits.connections),
            inbound_upgrade_timeout=limits.handshake_timeout,
            inbound_stream_protocol_negotiation_timeout=limits.negotiation_timeout,
        ),
    )


def forget_failed_dials(host: IHost, peer: ID) -> None:
    """Lift py-libp2p's "every address failed" mark, which refuses a peer for 60 s."""
    unblock = getattr(host.get_network(), "unblock_peer", None)
    if callable(unblock):
        unblock(peer)


async def connect_at(host: IHost, peer_id: str, addrs: Sequence[str], timeout: float) -> bool:
    """Connect to ``peer_id`` trying ``addrs`` one by one, in order; True once connected.

    py-libp2p 0.8.1 dials only the first TCP address its peerstore holds for a peer and then
    refuses the peer for 60 s, so a stale address would hide every fresh one. Here each
    address gets its own attempt (and ``timeout``) with only itself in the peerstore.
    """
    peer = ID.from_base58(peer_id)
    for text in addrs:
        try:
            addr = multiaddr.Multiaddr(strip_p2p(text))
        except Exception:  # noqa: BLE001 - multiaddr raises a zoo of types; skip odd ones
            log.debug("skipping unusable address %s", text)
            continue
        if peer in host.get_network().connections:
            return True
        host.get_peerstore().clear_addrs(peer)
        forget_failed_dials(host, peer)
        with trio.move_on_after(timeout):
            try:
                await host.connect(PeerInfo(peer, [addr]))
                return True
            except Exception as exc:  # noqa: BLE001 - unreachable is normal; callers retry
                log.debug("dialling %s at %s failed: %s", peer_id, text, exc)
    return False


def parse_listen_addrs(addrs: tuple[str, ...]) -> list[multiaddr.Multiaddr]:
    """The addresses Kith is told to listen on; ``ConfigError`` for any but IP and TCP."""
    parsed = []
    for text in addrs:
        try:
            addr = multiaddr.Multiaddr(text)
        except Exception as exc:  # noqa: BLE001 - multiaddr raises a zoo of types
            raise ConfigError(f"{text!r} is not a multiaddress: {exc}") from None
        protocols = [p.name for p in addr.protocols()]
        if protocols[:1] not in (["ip4"], ["ip6"]) or protocols[1:] != ["tcp"]:
            raise ConfigError(f"{text!r}: Kith listens on /ip4/.../tcp/PORT or /ip6/.../tcp/PORT")
        parsed.append(addr)
    return parsed


def with_port(addr: multiaddr.Multiaddr, port: int) -> multiaddr.Multiaddr:
    """``/ip4/H/tcp/P`` with another port (0: any free one)."""
    parts = str(addr).split("/")
    parts[4] = str(port)
    return multiaddr.Multiaddr("/".join(parts))
