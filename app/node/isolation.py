"""No peer input stops the node: a failure stays with the message, stream or task it hit.

Whatever a peer sends is handled in some task: a stream handler, the gossip reader of a room,
a task a service started on the node's nursery, a task of py-libp2p's own services. In trio an
exception that escapes a task ends its nursery, so one unexpected error in any of them (a bug
in a decoder, a value the store cannot hold) stopped the whole node (``node_failed``).
Handlers catch what they expect, per message or per stream; this module is the net under them:

* ``isolated`` wraps one task: an exception is logged with what the task was for (its peer
  among its arguments) and the task ends; the node goes on.
* ``IsolatingNursery`` is the node's nursery as the services see it: every task started on it
  is isolated.
* ``is_local_fault``: a failure of this computer, not of anyone's input (the profile's
  database is damaged). It is never swallowed: the node stops with ``node_failed``, since it
  cannot go on safely. A full disk is not one: what needs the disk fails alone and is tried
  again later (docs/durability.md).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.peer.id import ID

log = logging.getLogger(__name__)

AsyncFn = Callable[..., Awaitable[Any]]

# SQLite's primary result codes for a database file that cannot be trusted any more.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def is_local_fault(exc: BaseException) -> bool:
    """Whether ``exc`` (or one inside an exception group) says the profile's database is
    damaged: that stops the node, whatever input it was handling."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_local_fault(inner) for inner in exc.exceptions)
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in _DAMAGED


def describe(fn: Any, args: tuple[Any, ...]) -> str:
    """``Service.method(peer, ...)``: what a task is for, for the log (strings and peer ids
    shown, anything else by its type)."""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    shown = [str(a)[:80] if isinstance(a, str | ID) else type(a).__name__ for a in args]
    return f"{name}({', '.join(shown)})"


def isolated(what: str, fn: AsyncFn) -> AsyncFn:
    """``fn`` that logs an exception (``what`` failed) and returns instead of raising it,
    unless it is a local fault."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if is_local_fault(exc):
                raise
            log.warning("%s failed; dropped, the node goes on: %s", what, exc, exc_info=True)
            return None

    return run


class IsolatingNursery:
    """The node's nursery for its services: a task started here that fails is logged and
    ends alone (``isolated``). ``start`` is for services that report their start (py-libp2p's
    relay and DCUtR): a failure before that is the caller's, one after it ends the service
    alone."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._nursery.cancel_scope

    def start_soon(self, fn: AsyncFn, *args: Any, name: object = None) -> None:
        what = describe(fn, args)
        self._nursery.start_soon(isolated(what, fn), *args, name=name or what)

    async def start(self, fn: AsyncFn, *args: Any, name: object = None) -> Any:
        what = describe(fn, args)

        async def run(*args: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            started = False

            class Status:
                def started(self, value: Any = None) -> None:
                    nonlocal started
                    started = True
                    task_status.started(value)

            try:
                await fn(*args, task_status=Status())
            except Exception as exc:
                if not started or is_local_fault(exc):
                    raise
                log.warning("%s failed; it ends, the node goes on: %s", what, exc,
                            exc_info=True)

        return await self._nursery.start(run, *args, name=name or what)
