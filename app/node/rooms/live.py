"""What a joined room holds while the node runs, shared by the room service's parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import trio

from app.core import room as rc
from app.store.room_rows import StoreResult


@dataclass
class LiveRoom:
    """What a joined room needs while the node runs."""

    secrets: rc.RoomSecrets
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    syncing: bool = False
    sync_again: set[str] = field(default_factory=set)
    synced_with: set[str] = field(default_factory=set)
    last_announce: float = 0.0
    gaps: dict[tuple[bytes, int], str] = field(default_factory=dict)  # (author, seq) -> peer


class Taken(NamedTuple):
    """What became of one envelope: the post if it opened and verified, and how it was stored
    (None: refused, or an announce)."""

    post: rc.RoomPost | None
    result: StoreResult | None

    @property
    def stored(self) -> bool:
        return self.result is not None and self.result.stored


def decoded_or_none(secrets: rc.RoomSecrets, envelope: bytes) -> rc.RoomPost | None:
    try:
        return rc.decode_post(secrets, envelope)
    except rc.RoomError:
        return None
