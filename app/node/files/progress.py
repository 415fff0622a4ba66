"""How fast each transfer moves, either direction, for ``TransferInfo.speed`` and progress."""

from __future__ import annotations

import time
from collections import deque

from app.core.transfer_state import TransferState

PROGRESS_SECONDS = 0.25     # at most 4 progress events per second per transfer
RATE_WINDOW = 5.0           # speed is measured over this many seconds...
RATE_IDLE = 2.0             # ...and is 0 once nothing moved for this long


class Rate:
    """Bytes per second over the last ``RATE_WINDOW`` seconds, from running totals."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def note(self, total: int) -> None:
        now = time.monotonic()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW:
            self._samples.popleft()

    def speed(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        now = time.monotonic()
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        if now - last_at > RATE_IDLE:
            return 0.0
        return max(0.0, (last - first) / max(now - first_at, 0.5))


class Meters:
    """A ``Rate`` per transfer id, while this node runs."""

    def __init__(self) -> None:
        self._rates: dict[bytes, Rate] = {}

    def note(self, tid: bytes, total: int) -> Rate:
        """``total`` bytes have moved for ``tid`` so far."""
        rate = self._rates.setdefault(tid, Rate())
        rate.note(total)
        return rate

    def speed(self, tid: bytes, state: TransferState) -> float:
        rate = self._rates.get(tid)
        return rate.speed() if rate is not None and state.moving else 0.0

    def forget(self, tid: bytes) -> None:
        self._rates.pop(tid, None)
