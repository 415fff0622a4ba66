"""The Qt side of the client seam: client events as a signal, and coroutines run from slots.

Widgets connect to Qt signals instead of registering callbacks on the client (the Electrum
pattern), so a widget that is deleted simply stops receiving. Client events already arrive on the
asyncio loop thread, which under qasync is the Qt thread, so re-emitting is a direct call.

Slots are synchronous; client calls are coroutines. ``TaskRunner.run`` schedules one, keeps it
alive, and turns an escaped exception into a log entry plus a ``failed`` signal the window shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, Signal

from app.core.errors import NodeNotRunning
from app.core.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")


class EventSource(Protocol):
    """What the bridge needs from ``app.client.KithClient``."""

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]: ...


class EventBridge(QObject):
    """Re-emits every client event as ``received(Event)``.

    Not named ``event``: that would shadow ``QObject.event``, which Qt calls for every event
    the object receives.
    """

    received = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, client: EventSource) -> None:
        self.detach()
        self._unsubscribe = client.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        self.received.emit(event)


class TaskRunner(QObject):
    """Runs coroutines on behalf of sync slots; failures are logged and reported, never lost."""

    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()

    def run(self, coro: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
        """Schedule ``coro``; ``what`` names the action for the error message, e.g. "Sending"."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, what))
        return task

    def _finished(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, NodeNotRunning):
            # The network stopped (quitting, or it failed and the banner already says so).
            log.info("%s skipped: %s", what, exc)
            return
        log.error("%s failed", what, exc_info=exc)
        self.failed.emit(self.tr("{what} failed: {error}").format(what=what, error=exc))

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every task started so far has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def cancel_all(self) -> None:
        """Cancel what is still running and wait for it (used on shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
