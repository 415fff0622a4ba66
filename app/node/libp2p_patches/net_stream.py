"""Patch to py-libp2p 0.8.1's ``NetStream``: its state lock costs nothing while it is free.

``NetStream.read`` and ``write`` check the stream's state under ``_state_lock``, a
``trio.Lock``, whose ``async with`` is a trip through trio's scheduler even when the lock is
free (``quick_lock``). Only closing a stream holds it across an await, so it is nearly always
free: each read and write of every stream (a room post's every copy in and out) paid a
scheduler round for nothing.
"""

from __future__ import annotations

from typing import Any

from libp2p.network.stream.net_stream import NetStream

from app.node.libp2p_patches.quick_lock import QuickLock


def take_free_state_locks() -> None:
    """py-libp2p 0.8.1: every ``NetStream``'s ``_state_lock`` is a ``QuickLock``."""
    if getattr(NetStream.__init__, "_kith", False):
        return
    original = NetStream.__init__

    def __init__(self: NetStream, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._state_lock = QuickLock()  # type: ignore[assignment]

    __init__._kith = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    NetStream.__init__ = __init__  # type: ignore[method-assign]
