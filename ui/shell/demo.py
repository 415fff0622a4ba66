"""``kith --demo``: try Kith alone, with two people on one screen.

A newcomer with no friend running Kith yet cannot see what it does. The demo opens two windows,
Ada and Bob, on throw-away profiles in a temporary folder: they are already contacts and share
a room, so one can chat and drag a file from one window to the other at once. Both are the
real app (two ``KithApp``s, each with its own network thread, on one Qt/qasync loop), talking
over 127.0.0.1 only. Closing either window ends the demo; everything it created is deleted,
also on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import shutil
import signal
import tempfile
from pathlib import Path

import qasync
from PySide6.QtCore import QObject

from app.core.records import RoomInfo
from app.store.profile import Profile
from ui.shell.app import KithApp, application
from ui.waits import wait_until
from ui.window.main_window import MainWindow

log = logging.getLogger(__name__)

NAMES = ("Ada", "Bob")
LOOPBACK = "/ip4/127.0.0.1/tcp/0"   # the two talk to each other only
MEET_TIMEOUT = 20.0                 # seconds to see each other online; the demo goes on anyway


class Demo(QObject):
    """Two introduced ``KithApp``s on temporary profiles; ``run`` is their whole life."""

    def __init__(self, root: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="kith-demo-"))
        # A last resort if the loop dies before shutdown() runs (it cannot help on SIGKILL).
        self._remove_at_exit = functools.partial(shutil.rmtree, self.root, True)
        atexit.register(self._remove_at_exit)
        self.apps: list[KithApp] = []
        self.room: RoomInfo | None = None
        self._shutdown: asyncio.Task[None] | None = None

    def windows(self) -> list[MainWindow]:
        return [app.window for app in self.apps if app.window is not None]

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Create both profiles, open both windows, and introduce Ada and Bob."""
        for name in NAMES:
            path = self.root / name.lower()
            with Profile.open(path) as profile:  # named already: no first-run dialog
                profile.initialise(name)
                # Received files stay inside the demo and go with it.
                profile.settings.download_dir = str(path / "Downloads")
                profile.save_settings()
            self.apps.append(KithApp(path, (LOOPBACK,), parent=self))
        for app in self.apps:
            if not await app.start():
                return False
        windows = self.windows()
        for window in windows:
            window.set_title_note(self.tr("(demo)"))
        place_side_by_side(windows)
        if all(app.client is not None for app in self.apps):
            introduce = asyncio.ensure_future(self._introduce())
            closed = asyncio.ensure_future(self.wait_closed())  # Ctrl+C must not wait for it
            await asyncio.wait({introduce, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            introduce.cancel()
            await asyncio.wait({introduce})
            error = None if introduce.cancelled() else introduce.exception()
            if error is not None:
                log.error("the demo introduction failed: %s", error)
                for window in windows:  # the windows stay usable: say what failed
                    window.show_error(self.tr("The demo could not introduce Ada and Bob: "
                                              "{error}").format(error=error))
        return True

    async def _introduce(self) -> None:
        """Contacts by invite, a room both are in, and each other's conversation open."""
        ada, bob = self.apps
        assert ada.client is not None and bob.client is not None
        assert ada.state is not None and bob.state is not None
        await ada.client.add_contact(bob.state.invite)
        await bob.client.add_contact(ada.state.invite)
        self.room = await ada.client.create_room(self.tr("Demo room"))
        await bob.client.join_room(self.room.invite)
        pairs = ((ada, bob.state.peer_id), (bob, ada.state.peer_id))
        room_id = self.room.room_id
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: all(_sees_online(app, peer) for app, peer in pairs),
                             MEET_TIMEOUT, "Ada and Bob online to each other")
            await wait_until(lambda: all(_room_members(app, room_id) >= len(NAMES)
                                         for app in self.apps),
                             MEET_TIMEOUT, "both in the demo room")
        for app, peer in pairs:
            if app.window is not None:
                app.window.open_peer(peer)

    # -- stop -------------------------------------------------------------------------------

    async def wait_closed(self) -> None:
        """Until either window is closed (or ``request_quit``)."""
        waits = [asyncio.ensure_future(app.wait_closed()) for app in self.apps]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    def request_quit(self) -> None:
        for app in self.apps:
            app.request_quit()

    async def shutdown(self) -> None:
        """Stop both networks, release both profiles, delete the demo folder; idempotent."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._shutdown)

    async def _stop(self) -> None:
        try:
            results = await asyncio.gather(*(app.shutdown() for app in self.apps),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.error("stopping a demo window failed: %s", result)
        finally:
            self.remove_files()

    def remove_files(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self._remove_at_exit)

    async def run(self) -> int:
        """The whole demo; returns the process exit code."""
        try:
            if not await self.start():
                return 1
            await self.wait_closed()
            return 0
        finally:
            await self.shutdown()


def _sees_online(app: KithApp, peer_id: str) -> bool:
    row = app.window.sidebar.row_info(peer_id) if app.window is not None else None
    return row is not None and row.online


def _room_members(app: KithApp, room_id: str) -> int:
    room = app.window.sidebar.model.room(room_id) if app.window is not None else None
    return room.members if room is not None else 0


def place_side_by_side(windows: list[MainWindow]) -> None:
    """Left and right halves of the screen (overlapping only where a screen is too narrow)."""
    if not windows:
        return
    area = windows[0].screen().availableGeometry()
    width = area.width() // len(windows)
    for number, window in enumerate(windows):
        window.resize(min(window.width(), width), min(window.height(), area.height()))
        window.move(area.x() + number * width, area.y())


def run_demo() -> int:
    """``kith --demo``: run it until a window closes; returns the process exit code."""
    loop = qasync.QEventLoop(application())
    demo = Demo()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, demo.request_quit)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
            continue
        handled.append(signum)
    try:
        return int(loop.run_until_complete(demo.run()))
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        loop.close()
        demo.remove_files()
