"""One Kith per profile: a second start hands its ``kith:`` link to the running one and exits.

Double-clicking a ``kith:`` link while Kith runs starts a second process. It cannot open the
profile (the running Kith holds its lock), so instead of failing it asks the running Kith,
through a local socket, to come to the front and open the link, then exits.

The socket's name is derived from the resolved profile folder (hashed, so it stays short enough
for the Unix socket path limit and reveals nothing), so each profile has its own. The running
app listens only once it holds the profile lock, so a socket that exists while its lock is free
is stale (a crash) and is removed.

The protocol is one line each way, both bounded in length and time::

    client -> server    "open <link>\\n"   or   "activate\\n"
    server -> client    "ok\\n"
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

from app.store.profile import default_profile_dir
from ui.waits import signal_future

log = logging.getLogger(__name__)

MAX_LINE = 8192           # bytes, newline included: invites are a few hundred
REQUEST_TIMEOUT_MS = 3000  # a connection that has not said its line by then is dropped
HANDOVER_TIMEOUT = 3.0     # seconds the second start waits for the running one to answer
PROBE_TIMEOUT_MS = 300     # is anybody behind a socket that is in the way?
OPEN = b"open "
ACTIVATE = b"activate"
OK = b"ok"


class Handover(enum.Enum):
    HANDED_OVER = "handed over"   # a running Kith took the link and came forward
    NOT_RUNNING = "not running"   # nobody listens: open the profile as usual
    NO_ANSWER = "no answer"       # somebody listens but did not confirm in time


def profile_path(profile_dir: Path | None) -> Path:
    """The folder ``Profile.open`` would use, resolved the same way."""
    return (profile_dir or default_profile_dir()).expanduser().resolve()


def server_name(profile_dir: Path | None) -> str:
    """The local socket name for a profile: short, per user and per resolved path."""
    user = os.environ.get("USERNAME", "") if sys.platform == "win32" else str(os.getuid())
    key = f"{user}\0{profile_path(profile_dir)}".encode("utf-8", "surrogateescape")
    return "kith-" + hashlib.sha256(key).hexdigest()[:20]


def encode_request(link: str | None) -> bytes:
    """The request line; ``ValueError`` for a link that cannot travel as one line."""
    if not link:
        return ACTIVATE + b"\n"
    data = OPEN + link.strip().encode("utf-8")
    if b"\n" in data or b"\r" in data or len(data) + 1 > MAX_LINE:
        raise ValueError("the link is too long or spans lines")
    return data + b"\n"


def decode_request(line: bytes) -> str | None:
    """The link asked for ("" to just come forward); None for anything malformed."""
    if line == ACTIVATE:
        return ""
    if line.startswith(OPEN):
        try:
            link = line[len(OPEN):].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return link if link and link.isprintable() else None
    return None


class _Request(QObject):
    """One connected second start: read its line (bounded), answer, hang up."""

    def __init__(self, socket: QLocalSocket, server: InstanceServer) -> None:
        super().__init__(server)
        self._socket = socket
        self._server = server
        self._buffer = b""
        socket.setParent(self)
        socket.readyRead.connect(self._read)
        socket.disconnected.connect(self._finish)
        QTimer.singleShot(REQUEST_TIMEOUT_MS, self, self._abort)
        self._read()

    def _read(self) -> None:
        self._buffer += bytes(self._socket.read(MAX_LINE - len(self._buffer)).data())
        line, newline, _ = self._buffer.partition(b"\n")
        if not newline:
            if len(self._buffer) >= MAX_LINE:
                log.warning("a handover request was too long; dropped")
                self._abort()
            return
        link = decode_request(line)
        if link is None:
            log.warning("a malformed handover request; dropped")
            self._abort()
            return
        self._socket.write(OK + b"\n")
        self._socket.flush()
        self._socket.disconnectFromServer()
        self._server.requested.emit(link)

    def _abort(self) -> None:
        if self._socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            self._socket.abort()
        self._finish()

    def _finish(self) -> None:
        self.deleteLater()


class InstanceServer(QObject):
    """Listens on the profile's socket; ``requested(link)`` when a second start hands over
    ("" when it had no link and only wants the window in front)."""

    requested = Signal(str)

    def __init__(self, profile_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(profile_dir)
        self._server = QLocalServer(self)
        # Only this user may hand links to this user's Kith.
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening (call while holding the profile lock); False if it cannot."""
        if self._server.listen(self.name):
            return True
        if self._server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
            if _answers(self.name):
                log.warning("another program listens on %s; no handover", self.name)
                return False
            log.info("removing the stale handover socket %s", self.name)
            QLocalServer.removeServer(self.name)
            if self._server.listen(self.name):
                return True
        log.warning("cannot listen for handovers: %s", self._server.errorString())
        return False

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            _Request(socket, self)


def _answers(name: str) -> bool:
    """Does a live server sit behind ``name``? (A stale socket refuses at once.)"""
    probe = QLocalSocket()
    try:
        probe.connectToServer(name)
        return probe.waitForConnected(PROBE_TIMEOUT_MS)
    finally:
        probe.abort()
        probe.deleteLater()


async def hand_over(profile_dir: Path | None, link: str | None,
                    timeout: float = HANDOVER_TIMEOUT) -> Handover:
    """The second start: give ``link`` to a Kith already running on this profile.

    Runs on the qasync loop (never blocking it, so it also works against a Kith in the same
    process, as the tests do).
    """
    try:
        request = encode_request(link)
    except ValueError:
        log.warning("the link cannot be handed over (too long or several lines); ignored")
        request = encode_request(None)
    socket = QLocalSocket()
    try:
        connected = signal_future(socket.connected)
        failed = signal_future(socket.errorOccurred)
        socket.connectToServer(server_name(profile_dir))
        if socket.state() != QLocalSocket.LocalSocketState.ConnectedState:
            await asyncio.wait({connected, failed}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        for future in (connected, failed):
            future.cancel()
        if socket.state() != QLocalSocket.LocalSocketState.ConnectedState:
            return Handover.NOT_RUNNING
        socket.write(request)
        socket.flush()
        try:
            reply = await asyncio.wait_for(_read_line(socket), timeout)
        except TimeoutError:
            return Handover.NO_ANSWER
        return Handover.HANDED_OVER if reply == OK else Handover.NO_ANSWER
    finally:
        socket.abort()
        socket.deleteLater()


async def _read_line(socket: QLocalSocket) -> bytes | None:
    """The first line the server says (bounded), or None if it hung up first."""
    buffer = b""
    while True:
        buffer += bytes(socket.read(MAX_LINE - len(buffer)).data())
        line, newline, _ = buffer.partition(b"\n")
        if newline:
            return line
        if len(buffer) >= MAX_LINE or \
                socket.state() != QLocalSocket.LocalSocketState.ConnectedState:
            return None
        more = signal_future(socket.readyRead)
        gone = signal_future(socket.disconnected)
        try:
            await asyncio.wait({more, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (more, gone):
                with contextlib.suppress(Exception):
                    future.cancel()
