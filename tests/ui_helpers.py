"""Helpers for the GUI tests: a qasync loop per test, controllers that always shut down.

Async code runs with ``loop.run_until_complete``; waiting happens inside coroutines
(``ui.waits.wait_until``) so the one Qt loop keeps running, never with ``qWait`` inside a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import traceback
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import qasync
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from app.store.profile import Profile
from tests.conftest import LOOPBACK
from ui.identity.node_state import Presence
from ui.shell.app import KithApp
from ui.waits import wait_until
from ui.window.main_window import MainWindow

__all__ = [
    "LOOPBACK",
    "AppFactory",
    "RecordingKithApp",
    "activate",
    "network_threads",
    "new_qloop",
    "run",
    "start_online",
    "wait",
    "window_of",
]

NETWORK_THREAD = "kith-network"

T = TypeVar("T")


@contextlib.contextmanager
def new_qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp)
    # Slots schedule coroutines with asyncio.ensure_future(): they must land on this loop.
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        del loop
        # Collect the loop's Qt objects (its timer) here: left to chance, Python's GC may run in
        # a later test's network thread, and Qt warns when timers die on another thread.
        gc.collect()


def run(loop: asyncio.AbstractEventLoop, coro: Awaitable[T], timeout: float = 30) -> T:
    """Run ``coro`` on the qasync loop, bounded so a hang fails the test instead of the run."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def wait(qloop: asyncio.AbstractEventLoop, condition: object, what: str,
         timeout: float = 20) -> None:
    """Run the loop until ``condition()`` holds, failing with ``what`` after ``timeout`` s."""
    assert callable(condition)
    run(qloop, wait_until(condition, timeout, what), timeout + 5)


def network_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NETWORK_THREAD and t.is_alive()]


def stacks(threads: list[threading.Thread]) -> str:
    """Where each of ``threads`` is now, for a failure message."""
    frames = sys._current_frames()
    return "\n".join(f"{t.name} ({t.ident}):\n" + "".join(traceback.format_stack(frame))
                     for t in threads if (frame := frames.get(t.ident or 0)) is not None)


def initialised_profile(path: Path, name: str = "Ada") -> Path:
    with Profile.open(path) as profile:
        profile.initialise(name)
    return path


class RecordingKithApp(KithApp):
    """The real controller, with message boxes recorded instead of opened."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.boxes: list[tuple[str, str]] = []

    def show_message(self, title: str, text: str) -> QMessageBox | None:
        self.boxes.append((title, text))
        return None


class AppFactory:
    """Makes controllers for a test and shuts every one of them down afterwards."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.apps: list[KithApp] = []

    def __call__(
        self,
        profile_dir: Path,
        listen: tuple[str, ...] = (LOOPBACK,),
        link: str | None = None,
        cls: type[KithApp] = RecordingKithApp,
    ) -> Any:
        app = cls(profile_dir, listen, link)
        self.apps.append(app)
        return app

    def close_all(self) -> None:
        for app in self.apps:
            run(self.loop, app.shutdown())
        left = network_threads()
        assert not left, "a network thread outlived its test:\n" + stacks(left)


def start_online(qloop: asyncio.AbstractEventLoop, make_app: AppFactory, path: Path, name: str,
                 link: str | None = None, timeout: float = 20) -> KithApp:
    """A new profile named ``name`` at ``path``, started and waited for until it is online."""
    app = make_app(initialised_profile(path, name), link=link)
    assert run(qloop, app.start()) is True
    wait(qloop, lambda: app.state is not None and app.state.presence is Presence.ONLINE
         and app.client is not None, f"{name} online", timeout)
    return app


def window_of(app: KithApp) -> MainWindow:
    assert app.window is not None
    return app.window


def activate(qtbot: QtBot, widget: QWidget) -> None:
    """Show ``widget``, bring it to the front and wait until it is the active window."""
    widget.show()
    widget.raise_()
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)


def hidden(widget: QWidget) -> bool:
    """For ``qtbot.waitUntil``: the widget (a dialog, say) is no longer shown."""
    return not widget.isVisible()
