"""One Kith per profile: a second start hands its ``kith:`` link to the running one and exits.

Double-clicking a ``kith:`` link while Kith runs starts a second process. It cannot open the
profile (the running Kith holds its lock), so instead of failing it asks the running Kith,
through a local socket, to come to the front and open the link, then exits.

The socket's name is derived from the resolved profile folder (hashed, so it stays short enough
for the Unix socket path limit and reveals nothing), so each profile has its own. The running
app listens only once it holds the profile lock, so a socket that exists while its lock is free
is stale (a crash) and is removed.

On Linux and macOS the socket is a Unix socket file in the temporary folder, served with
Python's ``socket`` and a ``QSocketNotifier`` and reached with asyncio's Unix streams; it is
bound inside a fresh private folder, made user-only, then linked into place, so no other user
can ever connect. Windows has no Unix sockets in Python: there Qt's ``QLocalServer`` and
``QLocalSocket`` serve (a named pipe), loaded only there (QtNetwork costs the window 2 MiB).

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
import socket as sockets
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from app.store.profile import default_profile_dir
from ui.waits import signal_future

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalSocket

log = logging.getLogger(__name__)

MAX_LINE = 8192           # bytes, newline included: invites are a few hundred
REQUEST_TIMEOUT_MS = 3000  # a connection that has not said its line by then is dropped
HANDOVER_TIMEOUT = 3.0     # seconds the second start waits for the running one to answer
PROBE_TIMEOUT_MS = 300     # is anybody behind a socket that is in the way?
# Qt's local sockets (named pipes) where Python has no Unix sockets; the tests use them anywhere.
QT_PIPES = sys.platform == "win32"
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


def socket_path(name: str) -> str:
    """Where the Unix socket called ``name`` lives (as Qt's ``QLocalServer`` put it)."""
    return os.path.join(tempfile.gettempdir(), name)


def _read_request(buffer: bytes) -> tuple[bool, str | None]:
    """(done, link) for what a second start has said so far: not done while its line is still
    coming; done with None when it is too long or malformed (drop it)."""
    line, newline, _ = buffer.partition(b"\n")
    if not newline:
        if len(buffer) >= MAX_LINE:
            log.warning("a handover request was too long; dropped")
            return True, None
        return False, None
    link = decode_request(line)
    if link is None:
        log.warning("a malformed handover request; dropped")
    return True, link


class InstanceServer(QObject):
    """Listens on the profile's socket; ``requested(link)`` when a second start hands over
    ("" when it had no link and only wants the window in front)."""

    requested = Signal(str)

    def __init__(self, profile_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(profile_dir)
        self._server: _UnixServer | _PipeServer = (
            _PipeServer(self) if QT_PIPES else _UnixServer(self))

    def listen(self) -> bool:
        """Start listening (call while holding the profile lock); False if it cannot."""
        return self._server.listen()

    @property
    def listening(self) -> bool:
        return self._server.listening

    def close(self) -> None:
        self._server.close()


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
    name = server_name(profile_dir)
    if QT_PIPES:
        return await _pipe_hand_over(name, request, timeout)
    return await _unix_hand_over(socket_path(name), request, timeout)


# -- Linux and macOS: a Unix socket ------------------------------------------------------------


class _UnixServer(QObject):
    def __init__(self, server: InstanceServer) -> None:
        super().__init__(server)
        self._server = server
        self._path = socket_path(server.name)
        self._socket: sockets.socket | None = None
        self._inode = 0

    @property
    def listening(self) -> bool:
        return self._socket is not None

    def listen(self) -> bool:
        try:
            try:
                listening = _bind_user_only(self._path)
            except FileExistsError:
                if _unix_answers(self._path):
                    log.warning("another program listens on %s; no handover", self._path)
                    return False
                log.info("removing the stale handover socket %s", self._path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)
                listening = _bind_user_only(self._path)
        except OSError as exc:
            log.warning("cannot listen for handovers: %s", exc)
            return False
        self._serve(listening)
        return True

    def _serve(self, listening: sockets.socket) -> None:
        self._socket = listening
        self._inode = os.stat(self._path).st_ino
        listening.listen(8)
        listening.setblocking(False)
        notifier = QSocketNotifier(listening.fileno(), QSocketNotifier.Type.Read, self)
        notifier.activated.connect(self._accept)
        self._notifier = notifier

    def _accept(self) -> None:
        while self._socket is not None:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("a handover connection failed: %s", exc)
                return
            _UnixRequest(connection, self._server)

    def close(self) -> None:
        if self._socket is None:
            return
        self._notifier.setEnabled(False)
        self._socket.close()
        self._socket = None
        with contextlib.suppress(OSError):
            if os.stat(self._path).st_ino == self._inode:  # still ours: remove it, as Qt did
                os.unlink(self._path)


def _bind_user_only(path: str) -> sockets.socket:
    """A Unix socket bound at ``path`` that only this user can reach: bound in a new private
    folder, made user-only, then linked into place (``FileExistsError`` if ``path`` exists:
    a live or stale socket is never replaced here)."""
    private = tempfile.mkdtemp(prefix=".kith-", dir=os.path.dirname(path))  # mode 0700
    bound = os.path.join(private, "s")
    listening = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        listening.bind(bound)
        os.chmod(bound, 0o600)
        os.link(bound, path)
    except BaseException:
        listening.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(bound)
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return listening


def _unix_answers(path: str) -> bool:
    """Does a live server sit behind ``path``? (A stale socket refuses at once.)"""
    probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_MS / 1000)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class _UnixRequest(QObject):
    """One connected second start: read its line (bounded), answer, hang up."""

    def __init__(self, connection: sockets.socket, server: InstanceServer) -> None:
        super().__init__(server)
        self._connection: sockets.socket | None = connection
        self._server = server
        self._buffer = b""
        connection.setblocking(False)
        self._notifier = QSocketNotifier(connection.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._read)
        QTimer.singleShot(REQUEST_TIMEOUT_MS, self, self._finish)
        self._read()

    def _read(self) -> None:
        if self._connection is None:
            return
        try:
            data = self._connection.recv(MAX_LINE - len(self._buffer))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # it hung up before its line was whole
            self._finish()
            return
        self._buffer += data
        done, link = _read_request(self._buffer)
        if not done:
            return
        if link is not None:
            with contextlib.suppress(OSError):
                self._connection.send(OK + b"\n")
        self._finish()
        if link is not None:
            self._server.requested.emit(link)

    def _finish(self) -> None:
        if self._connection is not None:
            self._notifier.setEnabled(False)
            with contextlib.suppress(OSError):  # what is left unread (once): a hang-up, no reset
                self._connection.recv(MAX_LINE)
            self._connection.close()
            self._connection = None
            self.deleteLater()


async def _unix_hand_over(path: str, request: bytes, timeout: float) -> Handover:
    try:
        owner = os.stat(path).st_uid
    except OSError:
        return Handover.NOT_RUNNING
    if owner != os.getuid():  # another user's program in our socket's place: tell it nothing
        log.warning("%s belongs to another user; no handover", path)
        return Handover.NOT_RUNNING
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(path, limit=MAX_LINE), timeout)
    except (OSError, TimeoutError):
        return Handover.NOT_RUNNING
    try:
        writer.write(request)
        reply = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, ValueError, TimeoutError):  # ValueError: a line over MAX_LINE
        return Handover.NO_ANSWER
    finally:
        writer.close()
    return Handover.HANDED_OVER if reply == OK + b"\n" else Handover.NO_ANSWER


# -- Windows: Qt's local sockets (named pipes) -----------------------------------------------


class _PipeRequest(QObject):
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
        done, link = _read_request(self._buffer)
        if not done:
            return
        if link is None:
            self._abort()
            return
        self._socket.write(OK + b"\n")
        self._socket.flush()
        self._socket.disconnectFromServer()
        self._server.requested.emit(link)

    def _abort(self) -> None:
        from PySide6.QtNetwork import QLocalSocket

        if self._socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            self._socket.abort()
        self._finish()

    def _finish(self) -> None:
        self.deleteLater()


class _PipeServer(QObject):
    def __init__(self, server: InstanceServer) -> None:
        from PySide6.QtNetwork import QLocalServer

        super().__init__(server)
        self._instance = server
        self._server = QLocalServer(self)
        # Only this user may hand links to this user's Kith.
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        from PySide6.QtNetwork import QAbstractSocket, QLocalServer

        name = self._instance.name
        if self._server.listen(name):
            return True
        if self._server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
            if _pipe_answers(name):
                log.warning("another program listens on %s; no handover", name)
                return False
            log.info("removing the stale handover socket %s", name)
            QLocalServer.removeServer(name)
            if self._server.listen(name):
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
            _PipeRequest(socket, self._instance)


def _pipe_answers(name: str) -> bool:
    """Does a live server sit behind ``name``?"""
    from PySide6.QtNetwork import QLocalSocket

    probe = QLocalSocket()
    try:
        probe.connectToServer(name)
        return probe.waitForConnected(PROBE_TIMEOUT_MS)
    finally:
        probe.abort()
        probe.deleteLater()


async def _pipe_hand_over(name: str, request: bytes, timeout: float) -> Handover:
    from PySide6.QtNetwork import QLocalSocket

    socket = QLocalSocket()
    try:
        connected = signal_future(socket.connected)
        failed = signal_future(socket.errorOccurred)
        socket.connectToServer(name)
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
    from PySide6.QtNetwork import QLocalSocket

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
