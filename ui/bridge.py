"""The Qt side of the client seam: client events to the widgets that want them, and coroutines
run from slots.

Widgets subscribe to the event types they show (``events.subscribe(ContactChanged,
self._contact_changed)``) instead of one window interpreting every event and forwarding it:
Electrum's small Qt adapter over core events, with types instead of names. Client events
already arrive on the asyncio loop thread, which under qasync is the Qt thread, so delivering is
a direct call.

Handlers run in the order they subscribed, which is how the window makes its parts see each
other's work (``MainWindow.listen``). A handler that is a method of a ``QObject`` is dropped when
that object is destroyed, as a signal connection would be. A handler that raises is logged and
does not keep the event from the others.

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
E = TypeVar("E", bound=Event)
Handler = Callable[[Any], None]


class EventSource(Protocol):
    """What the bridge needs from ``app.client.KithClient``."""

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]: ...


class EventBridge(QObject):
    """Delivers client events to the handlers subscribed to their type.

    ``received(Event)`` is emitted for every event and is what delivers it: emitting it (or
    calling ``publish``) is the same as the client publishing the event. Not named ``event``:
    that would shadow ``QObject.event``, which Qt calls for every event the object receives.
    """

    received = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = None
        self._subscriptions: list[tuple[type[Event], Handler]] = []
        self._routes: dict[type[Event], list[Handler]] = {}  # event type -> handlers, in order
        self.received.connect(self._deliver)

    def attach(self, client: EventSource) -> None:
        self.detach()
        self._unsubscribe = client.subscribe(self.publish)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its subscribers."""
        self.received.emit(event)

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of type ``kind``; returns an unsubscribe."""
        entry: tuple[type[Event], Handler] = (kind, handler)
        self._subscriptions.append(entry)
        self._routes.clear()
        owner = getattr(handler, "__self__", None)
        if isinstance(owner, QObject):
            owner.destroyed.connect(lambda: self._remove(entry))
        return lambda: self._remove(entry)

    def _remove(self, entry: tuple[type[Event], Handler]) -> None:
        if entry in self._subscriptions:
            self._subscriptions.remove(entry)
            self._routes.clear()

    def _handlers(self, kind: type[Event]) -> list[Handler]:
        handlers = self._routes.get(kind)
        if handlers is None:
            handlers = [h for k, h in self._subscriptions if issubclass(kind, k)]
            self._routes[kind] = handlers
        return handlers

    def _deliver(self, event: Event) -> None:
        failure: Exception | None = None
        for handler in self._handlers(type(event)):
            try:
                handler(event)
            except Exception as exc:
                log.exception("handling %s failed in %r", event.name, handler)
                failure = failure or exc
        if failure is not None:
            raise failure  # after the others had the event; surfaces as any failing slot does


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
