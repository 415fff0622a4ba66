"""A lock for trio code whose free path costs an attribute test, not a trip through the
scheduler.

``trio.Lock``'s ``async with`` is a checkpoint even when the lock is free, and its
``acquire_nowait`` and ``release`` keep a parking lot's bookkeeping. py-libp2p takes two such
locks for every stream read and write (a stream's state lock, the connection's write lock),
nearly always free: a room post's every copy in and out paid for them.
"""

from __future__ import annotations

from types import TracebackType

import trio


class QuickLock:
    """Mutual exclusion between trio tasks of one run: taken at once when free, waited for
    when held. No owner is recorded (a lock taken by one task may be released by another),
    and a task woken by a release may find it taken again and wait on: what the locks it
    stands in for are used for needs neither ownership nor strict fairness."""

    __slots__ = ("_held", "_waiting")

    def __init__(self) -> None:
        self._held = False
        self._waiting = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        return self._held

    def acquire_nowait(self) -> None:
        if self._held:
            raise trio.WouldBlock
        self._held = True

    async def acquire(self) -> None:
        while self._held:
            await self._waiting.park()
        self._held = True

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release of a QuickLock that is not held")
        self._held = False
        if self._waiting:
            self._waiting.unpark()

    async def __aenter__(self) -> None:
        if self._held:
            await self.acquire()
        else:
            self._held = True

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.release()
