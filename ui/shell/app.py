"""Starting and stopping the desktop app, in the order that keeps it feeling fast and safe.

Order matters: the window is shown before the network starts (building the host and listening
happen off the Qt thread, and nobody should stare at nothing meanwhile), and on close the
network stops before the profile lock is released. ``KithApp`` owns that sequence and
everything it creates, so tests drive the same code with pytest-qt's application; ``run_gui``
is the thin wrapper ``kith`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import qasync
from PySide6.QtCore import QCoreApplication, QObject
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app import __version__
from app.core.config import NodeConfig
from app.core.invite import InvalidInvite, parse_invite
from app.core.room import invite_kind, parse_room_invite
from app.store.profile import Profile, ProfileError
from ui.bridge import EventBridge, TaskRunner
from ui.identity.node_state import NodeState
from ui.shell.single_instance import Handover, InstanceServer, hand_over
from ui.style.resources import app_icon, ensure_emoji_font, ensure_ui_font
from ui.style.theme import apply_theme
from ui.waits import signal_future, wait_painted
from ui.window.main_window import MainWindow

if TYPE_CHECKING:  # dialogs are imported when first opened: a lighter window at start
    from app.client import KithClient
    from ui.identity.first_run import FirstRunDialog
    from ui.identity.identity_page import ImportProfileDialog

log = logging.getLogger(__name__)

FIRST_PAINT_TIMEOUT = 2.0
STOP_TIMEOUT = 10.0
DRAFT_SAVE_TIMEOUT = 1.0


def configure_application(app: QApplication) -> None:
    app.setApplicationName("Kith")
    app.setOrganizationName("Kith")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("kith")
    app.setWindowIcon(app_icon())
    ensure_ui_font(app)  # only does something on a machine with no fonts (a bare bundle)
    ensure_emoji_font(app)  # only on a machine without an emoji font
    # The window closing starts an orderly shutdown; Qt must not end the loop under it.
    app.setQuitOnLastWindowClosed(False)
    # The network thread is busy Python during a transfer, and each time the Qt thread wants
    # the GIL it may wait a whole switch interval (5 ms by default), twice with a worker
    # thread in the queue too. 1 ms halved the worst timer lateness while the window received
    # a file at full speed (tests/benchmarks/file_ui_stall), at no cost in throughput.
    sys.setswitchinterval(0.001)


class KithApp(QObject):
    """Owns the profile, the client, the window and their start-up and shutdown order.

    Drive it from a coroutine on a qasync loop: ``await start()`` (False when the app should
    quit straight away: profile unusable, first run cancelled), then ``await shutdown()``;
    ``run()`` does both around waiting for the window to close.
    """

    def __init__(
        self,
        profile_dir: Path | None,
        listen: tuple[str, ...] = (),
        link: str | None = None,
        *,
        setup_logs: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.profile_dir = profile_dir
        self.listen = listen
        self.pending_link = link
        self.profile: Profile | None = None
        self.client: KithClient | None = None
        self.state: NodeState | None = None
        self.window: MainWindow | None = None
        self.first_run_dialog: FirstRunDialog | None = None
        self.import_dialog: ImportProfileDialog | None = None
        self.bridge = EventBridge(self)
        self.runner = TaskRunner(self)
        self.errors: list[str] = []  # every problem shown to the user, newest last
        self.exit_code = 0
        self._setup_logs = setup_logs
        self._closed: asyncio.Future[None] | None = None
        self._network: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._boxes: list[QMessageBox] = []
        self.instance_server: InstanceServer | None = None  # where a second start hands over
        # Windows closing start an orderly shutdown; Qt must not end the loop under it.
        QApplication.setQuitOnLastWindowClosed(False)

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Open the profile, run first-run if needed, show the window, then start the network.

        Returns once the network is up or has failed (failures are shown, not raised), or as
        soon as the window is closed during start-up.
        """
        self._closed = asyncio.get_running_loop().create_future()
        try:
            self.profile = Profile.open(self.profile_dir)
        except ProfileError as exc:
            await self._fatal(str(exc))
            return False
        if self._setup_logs:
            from app.logs import setup_logging

            setup_logging(self.profile.log_path, stderr=True)
        log.info("Kith %s starting with profile %s", __version__, self.profile.path)
        self.instance_server = InstanceServer(self.profile.path, self)
        self.instance_server.requested.connect(self.handle_handover)
        self.instance_server.listen()  # only now: holding the lock proves an old socket stale
        try:
            if not self.profile.is_initialised:
                name = await self.ask_display_name()
                if name is None:
                    await self.shutdown()
                    return False
                if not self.profile.is_initialised:  # else a profile was imported
                    self.profile.initialise(name)
            peer_id = self.profile.identity.peer_id
        except (ProfileError, ValueError, OSError) as exc:
            await self._fatal(str(exc))
            await self.shutdown()
            return False

        apply_theme(self.profile.settings.theme)
        self.state = NodeState(self.profile.settings.display_name, peer_id, self)
        self.state.listen(self.bridge)  # before the window: its parts see the state current
        self.window = MainWindow(self.state, self.runner, self.bridge)
        self.window.preferences.restore(self.profile.settings, self.profile.path)
        self.window.closed.connect(self._on_window_closed)
        self.runner.failed.connect(self._show_error)
        self.window.show()
        self._check_link()
        await wait_painted(self.window, FIRST_PAINT_TIMEOUT)

        self._network = asyncio.ensure_future(self._start_network())
        await asyncio.wait({self._network, self._closed}, return_when=asyncio.FIRST_COMPLETED)
        return True

    async def ask_display_name(self) -> str | None:
        """The first-run dialog, awaited without a nested event loop; ``None`` if cancelled."""
        from ui.identity.first_run import FirstRunDialog
        dialog = FirstRunDialog()
        dialog.import_requested.connect(lambda: self._import_profile(dialog))
        self.first_run_dialog = dialog
        finished = signal_future(dialog.finished)
        dialog.open()
        try:
            result = await finished
        finally:
            self.first_run_dialog = None
            dialog.hide()
            dialog.deleteLater()
        if result != FirstRunDialog.DialogCode.Accepted:
            log.info("first run cancelled")
            return None
        return dialog.display_name()

    async def _start_network(self) -> None:
        assert self.profile is not None and self.state is not None
        try:
            from app.client import KithClient

            settings = self.profile.settings
            config = NodeConfig(listen=self.listen, relays=tuple(settings.relays),
                                serve_relay=settings.serve_relay,
                                relay_contacts_only=settings.relay_contacts_only,
                                bootstrap=tuple(settings.bootstrap),
                                serve_dht=settings.serve_dht,
                                lan_discovery=settings.lan_discovery,
                                serve_mailbox=settings.serve_mailbox,
                                mailboxes=tuple(settings.mailboxes))
            self.client = KithClient(self.profile, config)
            self.bridge.attach(self.client)
            ready = await self.client.start()
        except Exception as exc:  # noqa: BLE001 - every start failure is shown, none is fatal
            if self._shutdown is not None:
                return  # closed while starting: nothing to report
            log.error("the network did not start: %s", exc)  # the client logged the traceback
            message = self.tr("Kith could not connect to the network: {error}").format(error=exc)
            self.errors.append(message)
            self.state.start_failed(message)
            self.show_message(self.tr("Kith is offline"), message)
            return
        self.state.apply(ready)
        if self.window is not None:
            self.window.set_client(self.client)
            self._open_link()

    def _open_link(self) -> None:
        """The ``kith:`` link Kith was started with opens, prefilled, once the network is up:
        a room link in Join Room, a contact invite in Add Contact."""
        link, self.pending_link = self.pending_link, None
        if link and self.window is not None:
            self.window.open_kith_link(link)

    def _check_link(self) -> None:
        """Keep a clicked ``kith:`` link until the network is up; say at once if it is broken."""
        if not self.pending_link:
            return
        try:
            if invite_kind(self.pending_link) == "room":
                parse_room_invite(self.pending_link)
            else:
                parse_invite(self.pending_link)
        except InvalidInvite as exc:
            self.pending_link = None
            self._show_error(self.tr("The link Kith was opened with cannot be used: {error}.")
                             .format(error=exc))

    def handle_handover(self, link: str) -> None:
        """Kith was started again on this profile: come to the front and open its link."""
        front = self.window if self.window is not None else self.first_run_dialog
        if front is not None:
            front.showNormal()
            front.raise_()
            front.activateWindow()
        if not link:
            return
        self.pending_link = link
        self._check_link()
        if self.window is not None and self.window.client is not None:
            self._open_link()  # else it opens once the network is up, as at start-up

    def _show_error(self, message: str) -> None:
        self.errors.append(message)
        if self.window is not None:
            self.window.show_error(message)

    # -- messages ---------------------------------------------------------------------------

    def show_message(self, title: str, text: str) -> QMessageBox | None:
        """Open (never exec) a critical message box; tests replace this to stay non-interactive."""
        parent: QWidget | None = self.window
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok,
                          parent)
        box.setWindowIcon(app_icon())
        box.finished.connect(lambda _: self._boxes.remove(box) if box in self._boxes else None)
        self._boxes.append(box)
        box.open()
        return box

    async def _fatal(self, text: str) -> None:
        """A problem that stops Kith before its window: say so, wait for OK, exit code 1."""
        log.error("cannot start: %s", text)
        self.exit_code = 1
        self.errors.append(text)
        box = self.show_message(self.tr("Kith cannot start"), text)
        if box is not None:
            await signal_future(box.finished)

    # -- stop -------------------------------------------------------------------------------

    def _on_window_closed(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def request_quit(self) -> None:
        """Quit as if the user closed everything (Ctrl+C or SIGTERM in a terminal)."""
        for box in list(self._boxes):
            box.reject()
        if self.first_run_dialog is not None:
            self.first_run_dialog.reject()
        if self.window is not None:
            self.window.quit()
        self._on_window_closed()

    async def wait_closed(self) -> None:
        """Until the window is closed (or ``request_quit``)."""
        assert self._closed is not None, "start() first"
        await asyncio.shield(self._closed)

    async def shutdown(self) -> None:
        """Stop the network, then release the profile; safe to call more than once."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._stop_everything())
        await asyncio.shield(self._shutdown)

    def _import_profile(self, first_run: FirstRunDialog) -> ImportProfileDialog | None:
        """First run ▸ Import a profile…: this computer takes over one exported elsewhere."""
        if self.profile is None:
            return None
        from ui.identity.identity_page import ImportProfileDialog
        dialog = ImportProfileDialog(self.profile, self.runner, first_run)
        dialog.imported.connect(lambda _: first_run.done(first_run.DialogCode.Accepted))
        dialog.finished.connect(lambda _: dialog.deleteLater())
        self.import_dialog = dialog
        dialog.open()
        return dialog

    async def _save_window_state(self) -> None:
        """The window opens where it was closed, on the conversation that was open: saved by
        the node while it runs (it owns the settings file then), directly when the network
        never started."""
        if self.window is None or self.profile is None:
            return
        saved = self.profile.settings.to_json()
        changes = {name: value for name, value in self.window.preferences.window_state().items()
                   if saved.get(name) != value}
        if not changes:
            return
        client = self.client
        try:
            if client is not None and client.running:
                await asyncio.wait_for(client.update_settings(**changes), DRAFT_SAVE_TIMEOUT)
            elif client is None and (self._network is None or self._network.done()):
                self.profile.settings = self.profile.settings.with_changes(**changes)
                self.profile.save_settings()
        except Exception:
            log.warning("the window's size, place and conversation were not saved",
                        exc_info=True)

    async def _stop_everything(self) -> None:
        if self.instance_server is not None:
            self.instance_server.close()
        if self.window is not None:
            # Let the last keystrokes reach the database before anything is cancelled.
            self.window.conversation.save_draft()
            await self._save_window_state()
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runner.idle(), DRAFT_SAVE_TIMEOUT)
            self.window.quit()
        await self.runner.cancel_all()
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.stop(), STOP_TIMEOUT)
            except TimeoutError:
                log.error("the network thread did not stop within %s s", STOP_TIMEOUT)
            except Exception:
                log.exception("stopping the network failed")
        self.bridge.detach()
        for box in list(self._boxes):
            box.reject()
        if self.profile is not None:
            self.profile.close()
            log.info("Kith stopped")

    async def run(self) -> int:
        """The whole life of the app; returns the process exit code."""
        if not await self.start():
            return self.exit_code
        await self.wait_closed()
        await self.shutdown()
        return self.exit_code


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, kith: KithApp) -> list[int]:
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, kith.request_quit)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
            continue
        installed.append(signum)
    return installed


def application() -> QApplication:
    """The process's QApplication, made and configured on first use."""
    app = cast(QApplication | None, QApplication.instance()) or QApplication(sys.argv[:1])
    configure_application(app)
    return app


def run_gui(profile_dir: Path | None, listen: tuple[str, ...], link: str | None) -> int:
    """Run the desktop app until its window closes; returns the process exit code.

    A Kith already running on the profile gets the link and comes forward instead (exit 0).
    """
    loop = qasync.QEventLoop(application())
    try:
        if loop.run_until_complete(hand_over(profile_dir, link)) is Handover.HANDED_OVER:
            sys.stderr.write(QCoreApplication.translate(
                "KithApp", "Kith is already running; brought it to the front.") + "\n")
            return 0
        kith = KithApp(profile_dir, listen, link, setup_logs=True)
        handled = _install_signal_handlers(loop, kith)
        try:
            return int(loop.run_until_complete(kith.run()))
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
    finally:
        loop.close()
