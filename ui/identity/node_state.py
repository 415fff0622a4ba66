"""What the window knows about our own peer, folded from client events into one Qt object.

Several widgets show the same facts (presence in the header and in the "You" panel, the invite
in the panel and the menu). They bind to this object's ``changed`` signal instead of each
interpreting events, so "online" means the same thing everywhere.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.core.events import (
    ConnectionsChanged,
    Event,
    NodeFailed,
    NodeReady,
    NodeStatus,
    NodeStopped,
    ProfileChanged,
    ReachabilityChanged,
)
from app.core.invite import strip_p2p

if TYPE_CHECKING:
    from ui.bridge import EventBridge

EVENTS: tuple[type[Event], ...] = (
    NodeReady, NodeStatus, ReachabilityChanged, ConnectionsChanged, ProfileChanged, NodeFailed,
    NodeStopped,
)


class Presence(Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"

    def label(self) -> str:
        """The word the user sees."""
        if self is Presence.ONLINE:
            return QCoreApplication.translate("Presence", "Online")
        if self is Presence.CONNECTING:
            return QCoreApplication.translate("Presence", "Connecting…")
        return QCoreApplication.translate("Presence", "Offline")


class NodeState(QObject):
    """Our peer as the interface sees it; ``failed`` carries messages for the error banner."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, display_name: str, peer_id: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.display_name = display_name
        self.peer_id = peer_id
        self.addrs: tuple[str, ...] = ()
        self.invite = ""
        self.connections = 0
        self.presence = Presence.CONNECTING
        self.error = ""
        self.reachability = ""  # "" until the node says; see ui.identity.reachability
        self.relays: tuple[str, ...] = ()
        self.reach_addrs: tuple[str, ...] = ()

    def listen(self, events: EventBridge) -> None:
        for kind in EVENTS:
            events.subscribe(kind, self.apply)

    def apply(self, event: Event) -> None:
        """Fold one client event in (``EVENTS``); others are ignored."""
        if isinstance(event, NodeReady | NodeStatus):
            self.peer_id = event.peer_id
            self.addrs = event.addrs
            self.invite = event.invite
            if isinstance(event, NodeStatus):
                self.connections = event.connections
            if event.reachability != self.reachability or isinstance(event, NodeReady):
                self.reachability = event.reachability
                self.relays = ()  # until ReachabilityChanged names them
                self.reach_addrs = tuple(
                    strip_p2p(a) for a in event.addrs
                    if "/p2p-circuit" not in a and not a.startswith(("/ip4/127.", "/ip6/::1/"))
                )
            self.presence = Presence.ONLINE
            self.error = ""
        elif isinstance(event, ReachabilityChanged):
            self.reachability = event.state
            self.relays = event.relays
            self.reach_addrs = event.addrs
        elif isinstance(event, ConnectionsChanged):
            self.connections = event.connections
        elif isinstance(event, ProfileChanged):
            self.display_name = event.display_name
            self.invite = event.invite
        elif isinstance(event, NodeFailed):
            self._fail(event.message)
            return
        elif isinstance(event, NodeStopped):
            self.presence = Presence.OFFLINE
            self.connections = 0
            self.reachability = "offline"
        else:
            return
        self.changed.emit()

    def start_failed(self, message: str) -> None:
        """The network never came up."""
        self._fail(message)

    def _fail(self, message: str) -> None:
        self.presence = Presence.OFFLINE
        self.connections = 0
        self.reachability = "offline"
        self.error = message
        self.changed.emit()
        self.failed.emit(message)

    def connections_text(self) -> str:
        if self.connections == 1:
            return self.tr("1 peer connected")
        return self.tr("{count} peers connected").format(count=self.connections)
