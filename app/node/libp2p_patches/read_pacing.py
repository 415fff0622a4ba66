"""When a connection's reader reads its socket again: at once, unless a room is busy.

A room post read alone wakes every layer above the socket for itself: the connection's reader,
the pubsub stream's reader, the room's reader and the thread that shows it. At 40 posts/s that
wake cost a member more CPU than the post's own work (docs/performance.md, "Reading a busy room
in batches"). So when two socket reads in a row held nothing but frames of patient streams
(``yamux.let_wait``: gossip), within ``BUSY_WITHIN`` of each other, the next read waits until
``PATIENCE`` after the last, and takes everything that came meanwhile in one pass. A read that
held any other frame (a direct message, a file's data, a ping, a stream opened or closed) is
followed by the next at once, and so is one that left more in the socket than it took; a quiet
room's lone post is never held. A direct message that arrives on a busy room's connection while
its reader waits is held as long as the posts around it: ``PATIENCE`` at most.
"""

from __future__ import annotations

PATIENCE = 0.1  # how long frames of a busy room may wait for the next socket read (seconds)
BUSY_WITHIN = 0.15  # two room-only reads this close together make a connection busy


class ReadPacer:
    """One connection's pace of reading (see the module's docstring)."""

    __slots__ = ("_last_patient", "pauses")

    def __init__(self) -> None:
        self._last_patient = float("-inf")
        self.pauses = 0  # how many reads waited

    def next_read_at(self, read_at: float, patient: bool) -> float:
        """When to read again after a read at ``read_at`` (trio's clock) that held frames of
        patient streams only (``patient``), or anything else."""
        if not patient:
            return read_at
        busy = read_at - self._last_patient < BUSY_WITHIN
        self._last_patient = read_at
        if not busy or PATIENCE <= 0:
            return read_at
        self.pauses += 1
        return read_at + PATIENCE
