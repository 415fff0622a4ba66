"""Awaiting Qt things from coroutines without nested event loops.

``QDialog.exec`` and ``QTest.qWait`` spin a nested Qt loop; under qasync that would run other
asyncio callbacks re-entrantly inside the current task step. These helpers turn a signal, a
first paint or a condition into something a coroutine awaits while the one loop keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, SignalInstance
from PySide6.QtWidgets import QWidget

POLL_INTERVAL = 0.01


def signal_future(signal: SignalInstance) -> asyncio.Future[Any]:
    """A future resolved with the first argument (or ``None``) of the next emission."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def fire(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if args else None)

    signal.connect(fire)
    future.add_done_callback(lambda _: _disconnect(signal, fire))
    return future


def _disconnect(signal: SignalInstance, slot: Callable[..., None]) -> None:
    with contextlib.suppress(RuntimeError, TypeError):  # already gone with its sender
        signal.disconnect(slot)


class _PaintWatcher(QObject):
    def __init__(self, widget: QWidget, future: asyncio.Future[None]) -> None:
        super().__init__(widget)
        self._future = future

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._future.done():
            # Resolve after this paint has finished, not in the middle of it.
            self._future.get_loop().call_soon(self._settle)
        return False

    def _settle(self) -> None:
        if not self._future.done():
            self._future.set_result(None)


async def wait_painted(widget: QWidget, timeout: float = 2.0) -> bool:
    """Wait until ``widget`` (shown) has been exposed and painted once; False on timeout."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watcher = _PaintWatcher(widget, future)
    widget.installEventFilter(watcher)
    widget.update()
    try:
        await asyncio.wait_for(future, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        widget.removeEventFilter(watcher)
        watcher.deleteLater()


async def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` while the loop runs; ``TimeoutError`` naming ``what`` if it fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)
