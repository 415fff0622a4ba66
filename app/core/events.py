"""What the network tells the interfaces: small immutable events.

The node persists first, then publishes one of these; the GUI and the headless node are two
consumers of the same stream. ``to_json`` gives the headless node's wire form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base class; ``name`` is the ``event`` field of the JSON form."""

    name: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for f in fields(self):
            if isinstance(body[f.name], tuple):
                body[f.name] = list(body[f.name])
        return {"event": self.name, **body}


@dataclass(frozen=True)
class NodeReady(Event):
    """The host listens and can be reached; carries what an invite needs."""

    name: ClassVar[str] = "ready"
    peer_id: str
    addrs: tuple[str, ...]
    invite: str


@dataclass(frozen=True)
class NodeStatus(Event):
    name: ClassVar[str] = "status"
    peer_id: str
    addrs: tuple[str, ...]
    invite: str
    connections: int


@dataclass(frozen=True)
class ConnectionsChanged(Event):
    """The number of connected peers changed (so the window can show online/offline)."""

    name: ClassVar[str] = "connections"
    connections: int


@dataclass(frozen=True)
class NodeFailed(Event):
    """The network thread died; the message is for the user, details went to the log."""

    name: ClassVar[str] = "node_failed"
    message: str


@dataclass(frozen=True)
class NodeStopped(Event):
    name: ClassVar[str] = "stopped"
