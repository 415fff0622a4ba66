"""``/kith/profile/1.0.0``: ask a connected peer for its display name and listen addresses.

The responder writes one frame, a UTF-8 JSON object ``{"name": str, "addrs": [str]}`` (and
``"features": [str]``, what its Kith understands beyond the base protocols), and closes; a peer
that uses mailboxes adds ``"mailboxes": str``, its signed mailbox record (``app.core.mailbox``),
signed because it travels on: the asker checks it before trusting it. Noise already
authenticated who answered, so nothing else here needs a signature. It is how a
contact's new address is learned when it comes back on another port or network, and how a
stranger's message request gets a name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from app.core.actions import MAX_FEATURES, clean_features
from app.core.invite import (
    MAX_ADDRS,
    MAX_MAILBOX_RECORD_TEXT,
    clean_display_name,
    strip_p2p,
    well_formed_addr,
)
from app.node.framing import FrameError, Stream, guarded, read_frame, write_frame

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol("/kith/profile/1.0.0")
MAX_PROFILE_FRAME = 8192
FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class PeerProfile:
    name: str
    addrs: tuple[str, ...]
    features: frozenset[str] = frozenset()  # empty from a Kith that announces none
    mailboxes: str = ""  # the signed mailbox record as text, not yet verified


def encode_profile(name: str, addrs: list[str], *, features: Sequence[str] = (),
                   mailboxes: str = "") -> bytes:
    body: dict[str, object] = {"name": name, "addrs": [strip_p2p(a) for a in addrs[:MAX_ADDRS]]}
    if features:
        body["features"] = sorted(features)[:MAX_FEATURES]
    if mailboxes:
        body["mailboxes"] = mailboxes
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode_profile(payload: bytes) -> PeerProfile:
    """Parse a peer's profile frame; raises ``FrameError`` for anything off."""
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"profile is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FrameError("profile is not an object")
    name, addrs = body.get("name", ""), body.get("addrs", [])
    if not isinstance(name, str) or not isinstance(addrs, list) or len(addrs) > MAX_ADDRS:
        raise FrameError("profile fields have the wrong types or sizes")
    if not all(well_formed_addr(a) for a in addrs):
        raise FrameError("profile carries a malformed address")
    try:
        clean = clean_display_name(name)
    except ValueError:
        clean = ""
    mailboxes = body.get("mailboxes", "")
    if not isinstance(mailboxes, str) or len(mailboxes) > MAX_MAILBOX_RECORD_TEXT:
        mailboxes = ""  # dropped alone: the rest of the profile is still good
    return PeerProfile(name=clean, addrs=tuple(strip_p2p(a) for a in addrs),
                       features=clean_features(body.get("features")), mailboxes=mailboxes)


class ProfileExchange:
    """Answers profile requests, and fetches other peers' profiles."""

    def __init__(self, host: IHost, own_profile: Callable[[], bytes]) -> None:
        self._host = host
        self._own_profile = own_profile

    def register(self) -> None:
        self._host.set_stream_handler(PROTOCOL_ID, guarded(PROTOCOL_ID, self._answer))

    async def _answer(self, stream: Stream) -> None:
        await write_frame(stream, self._own_profile())
        await stream.close()

    async def fetch(self, peer_id: str) -> PeerProfile | None:
        """The peer's profile, or None if it could not be had (logged, never raised)."""
        try:
            with trio.fail_after(FETCH_TIMEOUT):
                stream = await self._host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
                try:
                    return decode_profile(await read_frame(stream, MAX_PROFILE_FRAME))
                finally:
                    await stream.close()
        except Exception as exc:  # noqa: BLE001 - a missing profile is not an error
            log.info("no profile from %s: %s", peer_id, exc)
            return None
