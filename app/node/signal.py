"""A re-armable wake-up for trio tasks: ``set`` wakes every current waiter once."""

from __future__ import annotations

import trio


class Signal:
    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self, timeout: float) -> bool:
        """Wait for the next ``set``; False on timeout."""
        event = self._event
        with trio.move_on_after(timeout):
            await event.wait()
            return True
        return False
