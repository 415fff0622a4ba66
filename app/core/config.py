"""How to run a peer, importable without libp2p (the GUI builds it on the Qt thread)."""

from __future__ import annotations

from dataclasses import dataclass


class ConfigError(ValueError):
    """A bad command-line or settings value, with a message for the user."""


@dataclass(frozen=True)
class NodeConfig:
    """How to run the peer.

    ``listen`` overrides the default: the profile's remembered port on ``interface``
    (all interfaces unless told otherwise).
    """

    listen: tuple[str, ...] = ()
    interface: str = "0.0.0.0"
    # Circuit relay v2: relays to reserve a slot on (``/ip4/H/tcp/P/p2p/ID``), whether to
    # serve as a relay for others, and whether only contacts may hold a slot on us.
    relays: tuple[str, ...] = ()
    serve_relay: bool = False
    relay_contacts_only: bool = False
    # Kademlia DHT bootstrap peers (``/ip4/H/tcp/P/p2p/ID``); none means no DHT traffic is sent.
    bootstrap: tuple[str, ...] = ()
    # Answer the DHT for others (be a bootstrap peer); otherwise a DHT client only.
    serve_dht: bool = False
    # mDNS on the LAN (``app.node.lan``): only on the non-loopback IPv4 addresses listened on.
    lan_discovery: bool = False
    # Mailboxes (``app.node.mailbox``): hold sealed mail for our contacts who register with us,
    # and the mailboxes that hold ours (``/ip4/H/tcp/P/p2p/ID``, at most 4).
    serve_mailbox: bool = False
    mailboxes: tuple[str, ...] = ()
    # Replies, reactions, edits and deletions (docs/protocol.md 11). Off, the node behaves as
    # the version before them did: it announces no feature and REJECTs their kinds.
    message_actions: bool = True
