"""Attackers for tests: whatever a hostile peer on the network can do to a Kith.

From the barest up:

* ``RawHost`` (``host``): a bare py-libp2p host with any identity and none of Kith's rules,
  with gossipsub if asked (``room_attacker`` joins a room's mesh), in its own trio thread.
* ``wire``: what such a host can put on the wire that a Kith never sends (raw Yamux frames,
  streams that are never read, direct messages signed by anyone).
* ``kith``: a real Kith node turned hostile (identify lies, DHT answers chosen by the test, a
  record of its dials) and silent sockets.
"""

from tests.attackers.host import RawHost, room_attacker
from tests.attackers.kith import (
    SilentPort,
    addr_bytes,
    advertise,
    answer_dht,
    ask_dht,
    lie_in_identify,
    record_dials,
    silent_listener,
)
from tests.attackers.wire import (
    YAMUX_DATA,
    YAMUX_HEADER,
    YAMUX_SYN,
    multistream_hello,
    muxed_connection,
    open_streams,
    peer,
    raw_streams,
    send_messages,
    tcp_port,
)

__all__ = [
    "YAMUX_DATA",
    "YAMUX_HEADER",
    "YAMUX_SYN",
    "RawHost",
    "SilentPort",
    "addr_bytes",
    "advertise",
    "answer_dht",
    "ask_dht",
    "lie_in_identify",
    "multistream_hello",
    "muxed_connection",
    "open_streams",
    "peer",
    "raw_streams",
    "record_dials",
    "room_attacker",
    "send_messages",
    "silent_listener",
    "tcp_port",
]
