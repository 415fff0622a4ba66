"""Room rows as the store reads them: rooms, posts and members, each read defensively.

A profile written by an older Kith may hold numbers no peer can send any more (a migration
repairs those it knows); a row that still cannot be used raises ``DamagedRow`` here, and its
reader reports it once and skips it, so a damaged row never keeps the profile from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from app.core.room import (
    MAX_AUTHOR_SEQ,
    MAX_LAMPORT,
    MAX_SENT_AT_MS,
    POST_ID_SIZE,
    PUBLIC_KEY_SIZE,
    RoomSecrets,
    precedence,
)

log = logging.getLogger(__name__)

POST_COLUMNS = ("room_id, post_id, author, author_key, lamport, author_seq, sent_at, kind, body, "
                "state")
ORDER = "lamport, author_key, post_id"
ORDER_DESC = "lamport DESC, author_key DESC, post_id DESC"
ROOM_COLUMNS = "room_id, key, name, description, lamport, my_seq, last_activity"
_reported: set[object] = set()


class DamagedRow(ValueError):
    """A stored row with values no code path can use (written by an older or broken Kith)."""


def report_damaged(key: object, what: str) -> None:
    """Log a damaged row once per run: the profile goes on without it."""
    if key not in _reported:
        _reported.add(key)
        log.warning("skipped a damaged row: %s", what)


def bounded(value: object, high: int) -> int:
    if isinstance(value, int) and 0 <= value <= high:
        return value
    raise DamagedRow(f"{value!r} is not an integer between 0 and {high}")


def clamped(value: object, high: int) -> int:
    """A counter that must stay usable: a float or out-of-range value is brought in range."""
    if isinstance(value, int | float) and value == value:  # not NaN
        return int(min(max(value, 0), high))
    return 0


@dataclass(frozen=True)
class StoredRoom:
    secrets: RoomSecrets
    name: str
    description: str
    lamport: int
    my_seq: int
    last_activity: float


@dataclass(frozen=True)
class StoredPost:
    room_id: bytes
    post_id: bytes
    author: str
    author_key: bytes
    lamport: int
    author_seq: int
    sent_at_ms: int
    kind: int
    body: bytes
    state: str

    @property
    def order(self) -> tuple[int, bytes, bytes]:
        return (self.lamport, self.author_key, self.post_id)

    @property
    def precedence(self) -> tuple[bytes, int, bytes]:
        return precedence(self.post_id, self.room_id, self.author_key, self.lamport,
                          self.author_seq, self.sent_at_ms, self.kind, self.body)


@dataclass(frozen=True)
class StoredMember:
    peer_id: str
    name: str
    addrs: tuple[str, ...]
    last_seen: float | None


@dataclass(frozen=True)
class Announced:
    """A member's newer announce, taken: who they were before it, so that the caller tells
    the views only what they show changed (a known member re-announcing every minute changes
    nothing there)."""

    new: bool  # a member we did not know
    name: str = ""  # their name before this announce
    last_seen: float | None = None  # when their previous announce was taken


class Intake(Enum):
    """What storing a verified post did."""

    NEW = "new"  # stored
    DUPLICATE = "duplicate"  # this very post was held already
    LOST = "lost"  # an equivocation (8.7) whose winner is held: not stored
    REPLACED = "replaced"  # an equivocation it won: stored, the losers removed


@dataclass(frozen=True)
class StoreResult:
    """``gap_before``: a stored post whose author's previous post (author_seq - 1) is not
    held, found by the same query that looked for its rivals."""

    intake: Intake
    removed: tuple[StoredPost, ...] = ()
    gap_before: bool = False

    @property
    def stored(self) -> bool:
        return self.intake in (Intake.NEW, Intake.REPLACED)

    def __bool__(self) -> bool:
        return self.stored


def room_from_row(row: tuple) -> StoredRoom:
    room_id, key, name, description, lamport, my_seq, activity = row
    if not isinstance(room_id, bytes) or not isinstance(key, bytes):
        raise DamagedRow("a room's id or key is not binary")
    try:
        secrets = RoomSecrets(room_id, key)
    except ValueError as exc:
        raise DamagedRow(str(exc)) from None
    return StoredRoom(secrets, str(name), str(description), clamped(lamport, MAX_LAMPORT),
                      clamped(my_seq, MAX_AUTHOR_SEQ),
                      float(activity) if isinstance(activity, int | float) else 0.0)


def post_from_row(row: tuple) -> StoredPost:
    room_id, post_id, author, author_key, lamport, author_seq, sent_at, kind, body, state = row
    if not (isinstance(post_id, bytes) and len(post_id) == POST_ID_SIZE
            and isinstance(author_key, bytes) and len(author_key) == PUBLIC_KEY_SIZE
            and isinstance(body, bytes) and isinstance(author, str)):
        raise DamagedRow("a post's id, author or body has the wrong type")
    return StoredPost(bytes(room_id), post_id, author, author_key,
                      bounded(lamport, MAX_LAMPORT), bounded(author_seq, MAX_AUTHOR_SEQ),
                      bounded(sent_at, MAX_SENT_AT_MS), bounded(kind, 255), body, str(state))


def posts_from_rows(rows: list[tuple]) -> Iterator[StoredPost]:
    for row in rows:
        try:
            yield post_from_row(row)
        except DamagedRow as exc:
            report_damaged(("post", row[0], row[1]), f"a post of room {hex_of(row[0])}: {exc}")


def hex_of(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)
