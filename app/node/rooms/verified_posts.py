"""Room posts opened and verified once, although two steps need them.

A live post is checked by the topic's gossipsub validator (so a bad one is neither delivered
nor relayed) and then taken in by the room's reader. Both need the decoded post, and opening
an envelope is a secretbox plus an Ed25519 verification. The validator keeps what it verified
here, and the reader takes it back; a post the reader does not find (synced, or evicted in a
long burst) is simply opened again. Keys are the exact envelope bytes and the room's secrets,
so a post is only ever reused for the very bytes it was verified from.

With the post comes the peer that relayed it to us: the reader syncs from that peer when the
post shows a gap, since it is connected and holds what came before (the author, named in the
message, may be unreachable: docs/protocol.md 8.8).
"""

from __future__ import annotations

from collections import OrderedDict

from app.core import room as rc

MAX_KEPT = 512                      # posts verified but not yet taken in
MAX_KEPT_BYTES = 8 * 1024 * 1024    # and their envelopes' bytes


class VerifiedPosts:
    """Posts the validator verified, waiting for the reader (oldest dropped past the limits)."""

    def __init__(self, max_kept: int = MAX_KEPT, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self._kept: OrderedDict[tuple[rc.RoomSecrets, bytes], tuple[rc.RoomPost, str]] = (
            OrderedDict())
        self._bytes = 0
        self._max_kept = max_kept
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._kept)

    def verify(self, secrets: rc.RoomSecrets, envelope: bytes, relayed_by: str) -> rc.RoomPost:
        """``rc.decode_post``, remembering the post and the peer that relayed it for ``take``;
        raises ``rc.RoomError``."""
        post = rc.decode_post(secrets, envelope)
        key = (secrets, envelope)
        if key not in self._kept:
            self._kept[key] = (post, relayed_by)
            self._bytes += len(envelope)
            while len(self._kept) > self._max_kept or self._bytes > self._max_bytes:
                (_, old), _ = self._kept.popitem(last=False)
                self._bytes -= len(old)
        return post

    def take(self, secrets: rc.RoomSecrets, envelope: bytes) -> tuple[rc.RoomPost, str]:
        """The post ``verify`` kept for exactly these bytes and the peer that relayed it, or
        ``rc.decode_post`` now and ``""``."""
        kept = self._kept.pop((secrets, envelope), None)
        if kept is None:
            return rc.decode_post(secrets, envelope), ""
        self._bytes -= len(envelope)
        return kept
