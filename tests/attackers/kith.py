"""Real Kith nodes turned hostile for tests: a host that lies in identify, answers the DHT as
the test says, and a record of every address a node dials; plus sockets that accept and stay
silent.

Everything here runs on a node's own thread (inside ``client.call``)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from libp2p.abc import INetStream
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.network.swarm import Swarm
from libp2p.utils.varint import encode_uvarint
from multiaddr import Multiaddr
from multiaddr.protocols import P_P2P

from app.node.node import KithNode


def silent_listener(host: str = "127.0.0.1", backlog: int = 1024) -> socket.socket:
    """A socket whose port completes TCP handshakes (the kernel's backlog) and then says
    nothing: a dial to it hangs in the Noise handshake until the dialer gives up."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


class SilentPort:
    """A ``silent_listener`` that also tells how many of the connections made to it the
    dialer has left open: a dial given up half-way must close its socket.

    Connections wait in the kernel's backlog until ``still_open`` takes them; whatever the
    dialer sent is read and dropped, and a connection counts as closed once it reads the end
    of the stream (or a reset). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = silent_listener(host)
        self.sock.setblocking(False)
        self.addr = f"/ip4/{host}/tcp/{self.sock.getsockname()[1]}"
        self.dialled = 0  # connections made to it so far (as of the last ``still_open``)
        self._open: list[socket.socket] = []

    def __enter__(self) -> SilentPort:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._open:
            conn.close()
        self.sock.close()

    def still_open(self) -> int:
        """How many connections made to this port the other end has not closed."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            self._open.append(conn)
            self.dialled += 1
        alive = []
        for conn in self._open:
            if _is_open(conn):
                alive.append(conn)
            else:
                conn.close()
        self._open = alive
        return len(alive)


def _is_open(conn: socket.socket) -> bool:
    try:
        while conn.recv(1 << 16):
            pass
    except BlockingIOError:
        return True  # nothing more to read, and no end yet
    except OSError:
        return False  # reset
    return False  # the end of the stream


def addr_bytes(texts: Sequence[str]) -> list[bytes]:
    return [Multiaddr(t).to_bytes() for t in texts]


def lie_in_identify(
    node: KithNode,
    *,
    listen_addrs: Sequence[bytes] | None = None,
    protocols: Sequence[str] | None = None,
    observed: str | None = None,
) -> None:
    """From now on ``node`` answers identify with these listen addresses, protocols and
    observed address (the peer's own key; fields left ``None`` as Kith would send them)."""
    host = node.host

    async def answer(stream: INetStream) -> None:
        message = Identify(
            protocol_version="ipfs/0.1.0",
            agent_version="hostile/1.0",
            public_key=host.get_public_key().serialize(),
            listen_addrs=list(listen_addrs) if listen_addrs is not None
            else [a.decapsulate_code(P_P2P).to_bytes() for a in host.get_addrs()],
            protocols=list(protocols) if protocols is not None
            else [str(p) for p in host.get_mux().get_protocols() if p is not None],
        )
        if observed is not None:
            message.observed_addr = Multiaddr(observed).to_bytes()
        body = message.SerializeToString()
        try:
            await stream.write(encode_uvarint(len(body)) + body)
            await stream.close()
        except Exception:  # noqa: BLE001 - the victim may hang up first
            await stream.reset()

    host.set_stream_handler(IDENTIFY, answer)


def advertise(node: KithNode, claims: Sequence[str]) -> None:
    """From now on ``node`` claims to be at ``claims`` (multiaddr strings): in identify, in
    identify pushes and in its signed peer record, which other peers' peerstores take over
    identify's addresses when it arrives (gossipsub and DHT messages carry it)."""
    suffix = Multiaddr(f"/p2p/{node.identity.peer_id}")
    addrs = [Multiaddr(c).encapsulate(suffix) for c in claims]
    setattr(node.host, "get_addrs", lambda: list(addrs))  # noqa: B010


def record_dials(node: KithNode, when: Callable[[], bool] = lambda: True) -> list[str]:
    """Every address ``node``'s transports are asked to dial from now on while ``when()``
    holds, in order (the dial still happens: this only writes it down)."""
    dialled: list[str] = []
    swarm = node.host.get_network()
    assert isinstance(swarm, Swarm)
    for transport in swarm.transport_manager.get_transports():
        for name in ("dial", "dial_with_source"):
            inner = getattr(transport, name, None)
            if inner is not None:
                setattr(transport, name, _recording(inner, dialled, when))
    return dialled


def _recording(
    inner: Callable[..., Awaitable[Any]], dialled: list[str], when: Callable[[], bool]
) -> Callable[..., Awaitable[Any]]:
    async def dial(maddr: Multiaddr, *args: Any, **kwargs: Any) -> Any:
        if when():
            dialled.append(str(maddr))
        return await inner(maddr, *args, **kwargs)

    return dial


def answer_dht(node: KithNode, answer: Callable[[Any], bytes | None]) -> list[Any]:
    """From now on ``node`` answers ``/ipfs/kad/1.0.0`` itself: ``answer(request)`` (a parsed
    ``Message``) gives the bytes to send back (None: reset). Returns the list of requests
    received, filled as they come."""
    from libp2p.kad_dht.common import PROTOCOL_ID
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.utils.varint import read_varint_prefixed_bytes_limited

    received: list[Any] = []

    async def handle(stream: INetStream) -> None:
        try:
            while True:
                request = Message()
                request.ParseFromString(
                    await read_varint_prefixed_bytes_limited(stream, 4 * 1024 * 1024))
                received.append(request)
                reply = answer(request)
                if reply is None:
                    await stream.reset()
                    return
                await stream.write(encode_uvarint(len(reply)) + reply)
        except Exception:  # noqa: BLE001 - the victim hung up, or gave up on us
            await stream.reset()

    node.host.set_stream_handler(PROTOCOL_ID, handle)
    return received


async def ask_dht(node: KithNode, peer_id: str, request: Any) -> Any | None:
    """Send one DHT ``request`` (a ``Message``) to ``peer_id``; its answer, or None when the
    peer reset the stream or does not serve the DHT."""
    from libp2p.kad_dht.common import PROTOCOL_ID
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.id import ID
    from libp2p.utils.varint import read_varint_prefixed_bytes_limited

    try:
        stream = await node.host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
    except Exception:  # noqa: BLE001 - the protocol is refused
        return None
    body = request.SerializeToString()
    try:
        await stream.write(encode_uvarint(len(body)) + body)
        answer = Message()
        answer.ParseFromString(await read_varint_prefixed_bytes_limited(stream, 4 * 1024 * 1024))
    except Exception:  # noqa: BLE001 - reset: refused
        return None
    await stream.close()
    return answer
