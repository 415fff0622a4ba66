"""The words for how others reach you and how you reach each contact, in one place.

The node decides (``app.node.reachability``: ``direct``, ``relay``, ``lan``, ``offline`` for
us; ``direct``, ``relay``, ``lan``, ``local`` for a contact); this module only says it, the
same way in the sidebar's header, the conversation header and a contact's details. The words
stay honest: without AutoNAT Kith cannot prove that a public address is open to others, so
"direct" says "should" and the tooltip says why.
"""

from __future__ import annotations

import ipaddress

from PySide6.QtCore import QCoreApplication

from app.core.markdown import escape_html
from app.core.records import short_peer_id

DIRECT = "direct"
RELAY = "relay"
LAN = "lan"
LOCAL = "local"
OFFLINE = "offline"


def _tr(text: str) -> str:
    return QCoreApplication.translate("Reachability", text)


def as_tooltip(text: str) -> str:
    """Rich text, so Qt wraps a long explanation instead of showing one endless line."""
    return f"<p>{escape_html(text)}</p>" if text else ""


def _is_global(addr: str) -> bool:
    parts = addr.split("/")
    try:
        return len(parts) > 2 and ipaddress.ip_address(parts[2]).is_global
    except ValueError:
        return False


def own_text(state: str) -> str:
    """One short line: how others can reach you now."""
    if state == DIRECT:
        return _tr("Should be reachable directly")
    if state == RELAY:
        return _tr("Reachable through a relay")
    if state == LAN:
        return _tr("Reachable on this network only")
    if state == OFFLINE:
        return _tr("Not reachable by others")
    return _tr("Checking how others reach you…")


def own_tooltip(state: str, relays: tuple[str, ...], addrs: tuple[str, ...],
                running: bool) -> str:
    """Why: which addresses or relays the answer rests on, and what it cannot know."""
    where = " (" + ", ".join(addrs[:4]) + ")" if addrs else ""
    through = " (" + ", ".join(short_peer_id(r) for r in relays[:4]) + ")" if relays else ""
    if state == DIRECT:
        public = [a for a in addrs if _is_global(a)][:4]
        where = " (" + ", ".join(public) + ")" if public else ""
        text = _tr("Kith listens on a public address{addrs}, so people anywhere should be "
                   "able to connect to you directly. Kith cannot test this from here: a router "
                   "or firewall may still turn them away.").format(addrs=where)
        if relays:
            text += " " + _tr("If it does, they reach you through your relay{relays}.").format(
                relays=through)
        return text
    if state == RELAY:
        return _tr("A relay{relays} keeps a place for you: anyone with your invite reaches "
                   "you through it, even behind a home router. The relay passes on only "
                   "encrypted data; large files are slower this way.").format(relays=through)
    if state == LAN:
        return _tr("Kith listens only on local addresses{addrs}: people on the same network "
                   "(home, office) can reach you, people elsewhere cannot. A relay in Settings ▸ "
                   "Network makes you reachable from anywhere.").format(addrs=where)
    if state == OFFLINE and running:
        return _tr("Kith is running but has no network address other than this computer's "
                   "own, and no relay keeps a place for you: nobody else can reach you now. "
                   "Check the network connection.")
    if state == OFFLINE:
        return _tr("Kith is not connected to the network.")
    return _tr("Kith is starting its network.")


def route_text(route: str) -> str:
    """How you are connected to a contact now; "" when not connected."""
    if route == DIRECT:
        return _tr("direct connection")
    if route == RELAY:
        return _tr("through a relay")
    if route == LAN:
        return _tr("on your local network")
    if route == LOCAL:
        return _tr("on this computer")
    return ""


def route_tooltip(route: str) -> str:
    if route == DIRECT:
        return _tr("Connected straight to them over the internet.")
    if route == RELAY:
        return _tr("Connected through a relay: it passes on only encrypted data that it cannot "
                   "read. Messages arrive as usual; large files are slower.")
    if route == LAN:
        return _tr("Connected straight to them over your local network.")
    if route == LOCAL:
        return _tr("They run Kith on this same computer.")
    return _tr("Not connected right now.")
