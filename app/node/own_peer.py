"""Us, as every service sees us (``interfaces.LocalPeer``): our key, our name, our addresses."""

from __future__ import annotations

from collections.abc import Callable

from libp2p.abc import IHost
from libp2p.utils.address_validation import expand_wildcard_address

from app.core.identity import Identity
from app.core.invite import ContactInvite, strip_p2p
from app.store.profile import Profile


class OwnPeer:
    """The profile's identity and display name, and where the host can be reached.

    ``relayed`` gives our ``.../p2p-circuit`` addresses on relays holding a slot for us (the
    relay service, once it runs); ``mailbox_record`` is our signed mailbox record, which the
    invite carries when we use a mailbox.
    """

    def __init__(self, profile: Profile, host: IHost) -> None:
        self._profile = profile
        self._host = host
        self.relayed: Callable[[], list[str]] = list
        self.mailbox_record: Callable[[], str] = str  # our signed mailbox record, as text

    @property
    def identity(self) -> Identity:
        return self._profile.identity

    def display_name(self) -> str:
        return self._profile.settings.display_name

    def addrs(self) -> list[str]:
        """Full multiaddrs ending in ``/p2p/<id>``, wildcards expanded to real interfaces."""
        out: list[str] = []
        suffix = f"/p2p/{self.identity.peer_id}"
        for addr in self._host.get_transport_addrs():
            for concrete in expand_wildcard_address(addr):
                text = strip_p2p(str(concrete)) + suffix
                if text not in out:
                    out.append(text)
        # Addresses others can use first; loopback last; then relayed ones (circuit relay v2).
        out.sort(key=lambda a: a.startswith(("/ip4/127.", "/ip6/::1/")))
        out.extend(a + suffix for a in self.relayed() if a + suffix not in out)
        return out

    def invite(self) -> str:
        """Our ``kith:`` contact link."""
        return ContactInvite(
            peer_id=self.identity.peer_id,
            name=self.display_name(),
            addrs=tuple(strip_p2p(a) for a in self.addrs()),
            mailboxes=self.mailbox_record(),
        ).to_link()
