"""Patch to py-libp2p 0.8.1's stream locks: a free lock is taken without a trip through trio's
scheduler.

Every frame a Yamux connection receives takes ``Yamux.streams_lock`` (to find the stream and
append to its buffer), and every read of a stream takes it again (``Yamux.read_stream``) after
``NetStream._state_lock`` (to check the stream's state). ``trio.Lock.acquire`` yields to the
scheduler even when the lock is free, so a 64 KiB frame cost three scheduler rounds besides
its own I/O, and a reader woke up once per frame. None of these sections awaits while it holds
the lock in the common case, so the lock is nearly always free.
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.network.stream.net_stream import NetStream
from libp2p.stream_muxer.yamux.yamux import Yamux


class QuickLock:
    """A ``trio.Lock`` for ``async with`` that, when free, is taken without yielding.

    Still a cancellation point (``checkpoint_if_cancelled``), and a task that finds it held
    waits in the ``trio.Lock``'s queue as before; only the uncontended case skips the
    scheduler.
    """

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def quick_stream_locks() -> None:
    """py-libp2p 0.8.1: ``Yamux.streams_lock`` and ``NetStream._state_lock`` are ``QuickLock``s.

    Both are created in their class's ``__init__`` as ``trio.Lock()`` and only used with
    ``async with``; the constructors are wrapped to swap them.
    """
    if getattr(Yamux.__init__, "_kith", False):
        return
    yamux_init, stream_init = Yamux.__init__, NetStream.__init__

    def init_yamux(self: Yamux, *args: Any, **kwargs: Any) -> None:
        yamux_init(self, *args, **kwargs)
        self.streams_lock = QuickLock()  # type: ignore[assignment]

    def init_stream(self: NetStream, *args: Any, **kwargs: Any) -> None:
        stream_init(self, *args, **kwargs)
        self._state_lock = QuickLock()  # type: ignore[assignment]

    for patched, original in ((init_yamux, yamux_init), (init_stream, stream_init)):
        setattr(patched, "_kith", True)  # noqa: B010 - a mark on a function
        setattr(patched, "__wrapped__", original)  # noqa: B010 - upstream's, for the guards
    Yamux.__init__ = init_yamux  # type: ignore[method-assign]
    NetStream.__init__ = init_stream  # type: ignore[method-assign]
