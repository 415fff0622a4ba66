"""When a connection's reader reads its socket again: at once, unless a room is busy.

A room post read alone wakes every layer above the socket for itself: the connection's reader,
the pubsub stream's reader, the room's reader and the thread that shows it. At 40 posts/s that
wake cost a member more CPU than the post's own work (docs/performance.md, "Reading a busy room
in batches"). So once a connection's socket reads have held nothing but frames of patient
streams (``yamux.let_wait``: gossip), each within ``BUSY_WITHIN`` of the one before, for
``BUSY_FOR``, the next read waits until ``PATIENCE`` after the last, and takes everything that
came meanwhile in one pass. A read that held any other frame (a direct message, a file's data,
a ping, a stream opened or closed), or that left more in the socket than it took, is followed
by the next at once and ends the streak. A quiet room's post, and the few gossip messages of a
connection's first moments, are never held. A direct message that arrives on a busy room's
connection while its reader waits is held as long as the posts around it: ``PATIENCE`` at most.
"""

from __future__ import annotations

PATIENCE = 0.1  # how long frames of a busy room may wait for the next socket read (seconds)
BUSY_WITHIN = 0.15  # room-only reads this close together continue a streak...
BUSY_FOR = 0.25  # ...and a streak this long makes a connection busy


class ReadPacer:
    """One connection's pace of reading (see the module's docstring)."""

    __slots__ = ("_last_patient", "_streak_since", "pauses")

    def __init__(self) -> None:
        self._last_patient = float("-inf")
        self._streak_since = float("inf")
        self.pauses = 0  # how many reads waited

    def next_read_at(self, read_at: float, patient: bool) -> float:
        """When to read again after a read at ``read_at`` (trio's clock) that held frames of
        patient streams only and emptied the socket (``patient``), or anything else."""
        if not patient:
            self._last_patient = float("-inf")  # the streak ends
            return read_at
        if read_at - self._last_patient >= BUSY_WITHIN:
            self._streak_since = read_at
        self._last_patient = read_at
        if read_at - self._streak_since < BUSY_FOR or PATIENCE <= 0:
            return read_at
        self.pauses += 1
        return read_at + PATIENCE
