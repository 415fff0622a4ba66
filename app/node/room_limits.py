"""What one room member, author or peer can make us spend: live-post quotas and sync budgets.

Anyone holding a room's link can post under as many keys as they like, and ask any member for
history. Two kinds of limit keep that from filling the disk or the network:

* **Live posts** (gossip) pass three token buckets before they are stored or relayed: one per
  (room, author key), one per publisher (the peer that signed the gossip message, whoever
  relays it) and one per forwarder (the connected peer that handed it to us). A post over any
  of them is dropped and not relayed, logged at most once a minute per key, and the publisher
  (or forwarder) is not asked for history sync for ``SYNC_PENALTY`` seconds, so a flood does
  not come back through sync at once. History sync is not metered here: a member catching up
  on thousands of old posts is not slowed.
* **Serving sync**: at most ``MAX_SERVES_PER_PEER`` requests of one peer and ``MAX_SERVES``
  in all at once, and a per-peer budget of bytes sent (each database query counted as
  ``QUERY_COST`` bytes); a requester over budget gets its pages paced, not refused.

The numbers are in docs/protocol.md, section 8.10.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: ``burst`` at once, refilled at ``per_second``."""

    burst: float
    per_second: float


@dataclass(frozen=True)
class PostQuota:
    posts: Rate
    bytes: Rate


# Generous for people (a burst of 300 posts, 10 a second for as long as they like, 2 MiB of
# pasted text at once): a flood is what they stop.
AUTHOR_QUOTA = PostQuota(posts=Rate(300, 10), bytes=Rate(2 * MIB, 32 * KIB))
PUBLISHER_QUOTA = PostQuota(posts=Rate(600, 20), bytes=Rate(4 * MIB, 64 * KIB))
FORWARDER_QUOTA = PostQuota(posts=Rate(1200, 40), bytes=Rate(8 * MIB, 128 * KIB))
SYNC_PENALTY = 600.0  # seconds a peer that went over a quota is not synced from
MAX_TRACKED = 4096  # buckets kept per kind; idle (full) ones go first
LOG_EVERY = 60.0  # at most one "dropped" line per key per this many seconds

MAX_SERVES_PER_PEER = 2
MAX_SERVES = 8
SERVE_BUDGET = Rate(32 * MIB, 1 * MIB)  # bytes of envelopes served to one peer
QUERY_COST = 256  # bytes of budget one database query costs


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = now

    def refill(self, now: float) -> float:
        if now > self.stamp:
            gained = (now - self.stamp) * self.rate.per_second
            self.tokens = min(self.rate.burst, self.tokens + gained)
            self.stamp = now
        return self.tokens

    def full(self, now: float) -> bool:
        return self.refill(now) >= self.rate.burst

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are there (0 if they are now)."""
        missing = min(amount, self.rate.burst) - self.refill(now)
        return max(0.0, missing / self.rate.per_second)

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.tokens -= amount


class _Buckets:
    """Token buckets by key, at most ``MAX_TRACKED``; a full bucket equals a fresh one, so
    those are forgotten first, then the least recently used."""

    def __init__(self, quota: PostQuota) -> None:
        self.quota = quota
        self._buckets: OrderedDict[Hashable, tuple[TokenBucket, TokenBucket]] = OrderedDict()

    def get(self, key: Hashable, now: float) -> tuple[TokenBucket, TokenBucket]:
        pair = self._buckets.get(key)
        if pair is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget(now)
            pair = (TokenBucket(self.quota.posts, now), TokenBucket(self.quota.bytes, now))
            self._buckets[key] = pair
        else:
            self._buckets.move_to_end(key)
        return pair

    def _forget(self, now: float) -> None:
        idle = [k for k, (posts, size) in self._buckets.items()
                if posts.full(now) and size.full(now)]
        for key in idle:
            del self._buckets[key]
        while len(self._buckets) >= MAX_TRACKED:
            self._buckets.popitem(last=False)


class PostQuotas:
    """The live-post quotas of every room (see the module docstring)."""

    def __init__(self) -> None:
        self._authors = _Buckets(AUTHOR_QUOTA)
        self._publishers = _Buckets(PUBLISHER_QUOTA)
        self._forwarders = _Buckets(FORWARDER_QUOTA)
        self._penalised: OrderedDict[str, float] = OrderedDict()
        self._logged: dict[Hashable, tuple[float, int]] = {}
        self.dropped = 0

    def check(self, room_id: bytes, author_key: bytes | None, publisher: str, forwarder: str,
              size: int, now: float) -> Admission:
        """Which quota one live post would break, charging and blaming no one yet.

        ``author_key`` is None for what does not count against its author (announces, posts
        already held). The buckets are found and refilled once: the room's validator asks
        whether a post fits before it decides to check a gossip signature, then admits it.
        """
        checks: list[tuple[str, str, tuple[TokenBucket, TokenBucket]]] = [
            ("forwarder", forwarder, self._forwarders.get(forwarder, now)),
            ("publisher", publisher, self._publishers.get(publisher, now)),
        ]
        if author_key is not None:
            checks.append(("author", author_key.hex(),
                           self._authors.get((room_id, author_key), now)))
        for what, who, (posts, volume) in checks:
            if posts.refill(now) < 1 or volume.refill(now) < size:
                return Admission(self, checks, (what, who), room_id, publisher, forwarder,
                                 size, now)
        return Admission(self, checks, None, room_id, publisher, forwarder, size, now)

    def blame(self, what: str, who: str, room_id: bytes, publisher: str, forwarder: str,
              now: float) -> None:
        """Count a post dropped over ``what``'s quota, penalise its sender, log it."""
        self.dropped += 1
        self._penalise(forwarder if what == "forwarder" else publisher, now)
        key = (what, who)
        since, count = self._logged.get(key, (0.0, 0))
        if now - since >= LOG_EVERY:
            log.warning(
                "room %s: dropped live posts over the per-%s quota (%s; published by %s, "
                "relayed by %s); %d more dropped in the last minute",
                room_id.hex(), what, who, publisher, forwarder, count,
            )
            self._logged[key] = (now, 0)
            if len(self._logged) > MAX_TRACKED:
                self._logged.pop(next(iter(self._logged)))
        else:
            self._logged[key] = (since, count + 1)

    def _penalise(self, peer_id: str, now: float) -> None:
        self._penalised[peer_id] = now
        self._penalised.move_to_end(peer_id)
        if len(self._penalised) > MAX_TRACKED:
            self._penalised.popitem(last=False)

    def penalised(self, peer_id: str, now: float) -> bool:
        """Went over a quota in the last ``SYNC_PENALTY`` seconds: not a source for sync."""
        since = self._penalised.get(peer_id)
        return since is not None and now - since < SYNC_PENALTY


class Admission:
    """One live post's standing against the quotas (``PostQuotas.check``): ``fits`` says
    whether it would pass; ``admit`` charges every bucket, or blames the one it breaks."""

    def __init__(self, quotas: PostQuotas,
                 checks: list[tuple[str, str, tuple[TokenBucket, TokenBucket]]],
                 broken: tuple[str, str] | None, room_id: bytes, publisher: str,
                 forwarder: str, size: int, now: float) -> None:
        self._quotas = quotas
        self._checks = checks
        self._broken = broken
        self._room_id = room_id
        self._publisher = publisher
        self._forwarder = forwarder
        self._size = size
        self._now = now

    @property
    def fits(self) -> bool:
        return self._broken is None

    def admit(self) -> str | None:
        """Charge the post; None if it may pass, else which quota it broke (and blame)."""
        if self._broken is not None:
            what, who = self._broken
            self._quotas.blame(what, who, self._room_id, self._publisher, self._forwarder,
                               self._now)
            return what
        for _, _, (posts, volume) in self._checks:
            posts.take(1, self._now)
            volume.take(self._size, self._now)
        return None


class ServeLimits:
    """Concurrent sync serves and each peer's byte budget."""

    def __init__(self, budget: Rate = SERVE_BUDGET) -> None:
        self._rate = budget
        self._active: dict[str, int] = {}
        self._budgets: OrderedDict[str, TokenBucket] = OrderedDict()

    def try_start(self, peer_id: str) -> bool:
        if (self._active.get(peer_id, 0) >= MAX_SERVES_PER_PEER
                or sum(self._active.values()) >= MAX_SERVES):
            return False
        self._active[peer_id] = self._active.get(peer_id, 0) + 1
        return True

    def finish(self, peer_id: str) -> None:
        left = self._active.get(peer_id, 0) - 1
        if left > 0:
            self._active[peer_id] = left
        else:
            self._active.pop(peer_id, None)

    def budget(self, peer_id: str, now: float) -> TokenBucket:
        bucket = self._budgets.get(peer_id)
        if bucket is None:
            bucket = self._budgets[peer_id] = TokenBucket(self._rate, now)
            while len(self._budgets) > MAX_TRACKED:
                self._budgets.popitem(last=False)
        self._budgets.move_to_end(peer_id)
        return bucket
