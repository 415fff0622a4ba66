"""``/kith/file/1.0.0``: offering, serving and fetching files, verified chunk by chunk.

Offers travel as direct messages (kind 2, so an offline contact gets them from the outbox) or
as room posts (kind 3). The receiver pulls: it fetches the chunk hash list, checks it against
the offer's ``hash``, then asks each source for a few chunks at a time, verifies every chunk
in a worker thread and writes it at its offset in a ``.part`` file. Each verified chunk is
recorded in SQLite as soon as it is written, and only what is recorded is shown as progress, so
a transfer interrupted in any way (connection lost, either app closed or killed) resumes where
it stopped as soon as a source is reachable again, from at least the progress last shown. When
every chunk is in, chunks verified before a restart are read back and checked once more (the OS
may have lost them in a crash), and only then does the file get a name that ``safe_file_name``
made harmless: the name is recorded first, then linked, then the ``.part`` removed, then the
transfer recorded complete. A crash between any two of these steps is finished at the next
start: a finished file found under the recorded name that still matches is the download.

Room files have several sources: the author and every member that completed a download. A
fetch asks connected members whether they hold the file (HAVE) and spreads chunk requests
over all of them in parallel. Hashing and disk I/O never run on the trio loop.

Serving keeps a file to its audience. A direct offer is served only to the contact it was
made to while they are a contact (removing them revokes it); a room file only to the room's
members. Every chunk served is checked against the offer's hash list first, so whatever
happens to the file on disk (edited, replaced by another file of the same name) its bytes
never go out under the offer: the sender's offer fails, and a member that held a room file
stops serving it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import mimetypes
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import trio
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from app.core import dm
from app.core import files as fc
from app.core.events import (
    FileAccepted,
    FileCancelled,
    FileComplete,
    FileDeclined,
    FileFailed,
    FileOffer,
    FileOffered,
    FilePaused,
    FileProgress,
    FileResumed,
    MessageQueued,
)
from app.core.records import ContactState, MessageInfo, TransferInfo
from app.node.byte_path import BULK_WINDOW, widen_receive_window
from app.node.framing import (
    FrameError,
    Stream,
    encode_varint,
    guarded,
    read_frame,
    read_frame_into,
    write_frame,
)
from app.node.isolation import is_local_fault
from app.node.signal import Signal
from app.store.db import storage_error
from app.store.messages import as_file_message
from app.store.profile import default_download_dir
from app.store.transfers import StoredTransfer, TransferStore

if TYPE_CHECKING:
    from app.node.node import KithNode

log = logging.getLogger(__name__)

PROTOCOL_ID = TProtocol(fc.PROTOCOL_ID)
IN_FLIGHT_BYTES = 8 << 20   # requested and not yet received, per source (8 chunks of 1 MiB)
WRITE_QUEUE_BYTES = 4 << 20  # received and waiting for the disk writer, at most
PROGRESS_SECONDS = 0.25     # at most 4 progress events per second per transfer
PART_SUFFIX = ".part"
MAX_BAD_CHUNKS = 3          # a source that sends this many bad chunks is dropped
READ_TIMEOUT = 30.0         # no data for this long: the source is gone
SERVE_IDLE = 120.0          # a serving stream with no request for this long is closed
OPEN_TIMEOUT = 10.0
HAVE_TIMEOUT = 5.0
RETRY_SECONDS = 2.0         # between rounds when no source is reachable or all failed
WAIT_SECONDS = 15.0         # a waiting download re-checks its sources at least this often
RATE_WINDOW = 5.0           # speed is measured over this many seconds...
RATE_IDLE = 2.0             # ...and is 0 once nothing moved for this long


class TransferError(ValueError):
    """A file operation the user asked for that cannot be done; the message says why."""


class TransferFailed(Exception):
    """The download cannot go on; ``reason`` is for the user, ``keep_part`` allows a retry."""

    def __init__(self, reason: str, keep_part: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keep_part = keep_part


class BadSource(Exception):
    """One source misbehaved (bad data or layout); others may still serve."""


def read_chunk(path: str, offset: int, length: int) -> bytes:
    """Read one chunk of a file being served (runs in a worker thread)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


HASH_THREADS = 2  # hashlib releases the GIL: a large file is hashed on two cores


def _hash_range(path: str, chunk_size: int, first: int, end: int) -> tuple[bytes, int]:
    """(hashes of chunks ``first`` to ``end`` - 1, bytes read) of ``path`` (worker thread)."""
    hashes = bytearray()
    read = 0
    with open(path, "rb") as f:
        f.seek(first * chunk_size)
        for _ in range(first, end):
            data = f.read(chunk_size)
            if not data:
                break
            hashes += fc.chunk_hash(data)
            read += len(data)
    return bytes(hashes), read


def _hash_file(path: str, chunk_size: int, size: int) -> tuple[bytes, int]:
    """(chunk hashes, bytes read) of a ``size``-byte file, its halves hashed side by side."""
    chunks = fc.chunk_count(size, chunk_size)
    if chunks < 2 * HASH_THREADS:
        return _hash_range(path, chunk_size, 0, chunks)
    bounds = [chunks * i // HASH_THREADS for i in range(HASH_THREADS + 1)]
    with ThreadPoolExecutor(HASH_THREADS - 1, "kith-hash") as pool:
        later = [pool.submit(_hash_range, path, chunk_size, a, b)
                 for a, b in itertools.pairwise(bounds[1:])]
        parts = [_hash_range(path, chunk_size, bounds[0], bounds[1])]
        parts += [job.result() for job in later]
    return b"".join(h for h, _ in parts), sum(n for _, n in parts)


def _bad_chunks(path: str, offer: fc.FileOffer, hashes: bytes, trusted: bytearray) -> list[int]:
    """Chunks of a complete ``.part`` that do not match their hash (worker thread).

    Chunks set in ``trusted`` were verified and written by this process, from the very buffer
    that was hashed, and are not read again; the others (verified before a restart, when the OS
    may have lost them in a crash) are read back. A file longer than the offer is cut to size.
    """
    bad = []
    with open(path, "r+b") as f:
        if os.fstat(f.fileno()).st_size > offer.size:
            f.truncate(offer.size)
        for i in range(offer.chunks):
            if _bit(trusted, i):
                continue
            f.seek(i * offer.chunk_size)
            data = f.read(fc.chunk_length(i, offer.size, offer.chunk_size))
            if fc.chunk_hash(data) != hashes[i * 32:(i + 1) * 32]:
                bad.append(i)
    return bad


def _write_at(f: BinaryIO, offset: int, data: bytes | memoryview, expected: bytes) -> bool:
    """Verify a chunk against its hash and write it at its offset (worker thread)."""
    if fc.chunk_hash(data) != expected:
        return False
    f.seek(offset)
    view = memoryview(data)
    while view:
        written = f.write(view)
        view = view[written or 0:]
    return True


def _create_part(folder: str, name: str) -> tuple[str, str]:
    """Pick a safe place in ``folder`` and create its empty ``.part`` (worker thread).

    ``name`` may be a relative path ("Photos/2024/a.jpg", from a dropped folder): its
    folders are created inside ``folder`` (an existing folder of that name is reused, a file
    or link in the way gets a numbered name instead); only the file name is made unique.
    """
    os.makedirs(folder, exist_ok=True)
    base = Path(folder)
    folders, leaf = fc.split_relative_name(name)
    for component in folders:
        here = base

        def in_the_way(candidate: str, here: Path = here) -> bool:
            path = here / candidate
            return path.is_symlink() or (path.exists() and not path.is_dir())

        base = here / fc.safe_file_name(component, in_the_way)
        base.mkdir(exist_ok=True)

    def taken(candidate: str) -> bool:
        return (base / candidate).exists() or (base / (candidate + PART_SUFFIX)).exists()

    safe = fc.safe_file_name(leaf, taken)
    part = base / (safe + PART_SUFFIX)
    with open(part, "xb"):
        pass
    return safe, str(part)


def _free_name(part: str, name: str) -> str:
    """A name for the finished file next to its ``.part`` that no file has now."""
    base = Path(part).parent
    leaf = fc.split_relative_name(name)[1]
    return str(base / fc.safe_file_name(leaf, lambda c: (base / c).exists()))


def _link_final(part: str, final: str) -> bool:
    """Give a verified ``.part`` the name ``final`` too, never replacing another file.

    True if ``final`` is now the file: linked here, or before a crash (the same file). False if
    another file has the name. Without hard links (FAT, say) the part is renamed instead.
    """
    try:
        os.link(part, final)
    except FileExistsError:
        return os.path.samefile(part, final)
    except OSError:
        if os.path.lexists(final):
            return False
        os.rename(part, final)
    return True


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _holds(path: str, offer: fc.FileOffer, hashes: bytes) -> bool:
    """Whether ``path`` is exactly the offered file, every chunk read back (worker thread)."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size != offer.size:
                return False
            for i in range(offer.chunks):
                data = f.read(fc.chunk_length(i, offer.size, offer.chunk_size))
                if fc.chunk_hash(data) != hashes[i * 32:(i + 1) * 32]:
                    return False
    except OSError:
        return False
    return True


def _in_place(t: StoredTransfer) -> bool:
    """A download to retry where it is: its ``.part`` or its finished file is still there."""
    final = _finished_name(t)
    return bool(t.part_path and os.path.exists(t.part_path)) or bool(
        final and os.path.exists(final))


def _finished_name(t: StoredTransfer) -> str | None:
    """Where a crash may have left this download finished: the recorded final name, or (for
    a transfer recorded before names were) the ``.part``'s name without ``.part``."""
    if t.path:
        return t.path
    if t.part_path and t.part_path.endswith(PART_SUFFIX):
        return t.part_path[: -len(PART_SUFFIX)]
    return None


def _bit(bitmap: bytearray, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


def _set_bit(bitmap: bytearray, i: int, value: bool = True) -> None:
    if value:
        bitmap[i >> 3] |= 1 << (i & 7)
    else:
        bitmap[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def _parse_id(transfer_hex: str) -> bytes:
    try:
        raw = bytes.fromhex(transfer_hex)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != fc.TRANSFER_ID_SIZE:
        raise TransferError(f"not a transfer id: {transfer_hex!r}")
    return raw


class _Rate:
    """Bytes per second over the last ``RATE_WINDOW`` seconds, from running totals."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def note(self, total: int) -> None:
        now = time.monotonic()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW:
            self._samples.popleft()

    def speed(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        now = time.monotonic()
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        if now - last_at > RATE_IDLE:
            return 0.0
        return max(0.0, (last - first) / max(now - first_at, 0.5))


@dataclass
class _Download:
    """A running download: what is verified, what is wanted, who misbehaved."""

    t: StoredTransfer
    hashes: bytes = b""
    pending: deque[int] = field(default_factory=deque)
    bad: dict[str, int] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    progress_at: float = 0.0
    readers: dict[str, trio.CancelScope] = field(default_factory=dict)
    # Chunks this process verified and wrote itself: the final check reads back only the rest.
    written: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self.written = bytearray(len(self.t.verified))

    @property
    def offer(self) -> fc.FileOffer:
        return self.t.offer

    def missing(self) -> list[int]:
        return [i for i in range(self.offer.chunks) if not _bit(self.t.verified, i)]


class FileTransfers:
    def __init__(self, node: KithNode) -> None:
        self._node = node
        self.store = TransferStore(node.db)
        self._running: dict[bytes, trio.CancelScope] = {}
        self._connected = Signal()
        self.served: dict[bytes, int] = {}            # chunks served per transfer, this run
        self._served_bits: dict[bytes, bytearray] = {}
        self._served_bytes: dict[bytes, int] = {}
        self._progress_at: dict[bytes, float] = {}
        self._rates: dict[bytes, _Rate] = {}          # per transfer, either direction
        self._sent_total: dict[bytes, int] = {}       # bytes served (repeats too), for speed
        self._stale: set[bytes] = set()                # room files we no longer hold intact
        # Tests set it to play a sender whose chunks go bad after the check: (index, data).
        self.send_hook: Callable[[int, bytes], bytes] | None = None

    def start(self) -> None:
        self._node.host.set_stream_handler(
            PROTOCOL_ID, guarded(PROTOCOL_ID, self._serve, timeout=None)
        )
        for t in self.store.in_state("receiving", outgoing=False):
            self._spawn(t.offer.transfer)

    def peer_connected(self, peer_id: str) -> None:
        """A source may be back: waiting downloads look again now."""
        self._connected.set()

    # -- what the user does -------------------------------------------------------------------

    async def send(self, to: str, path: str, name: str | None = None) -> TransferInfo:
        """Hash ``path`` and offer it to a contact or a room.

        ``name`` is what the receiver is told (default: the file's own name); it may be a
        relative path with "/" separators for a file of a dropped folder ("Photos/a.jpg").
        """
        source = Path(path).expanduser()
        if name is not None:
            name = "/".join(p for p in name.replace("\\", "/").split("/") if p)
            if not name or len(name) > fc.MAX_NAME_CHARS:
                raise TransferError(
                    f"a file name is 1 to {fc.MAX_NAME_CHARS} characters")
        room_id: bytes | None = None
        if len(to) == 2 * 16 and all(c in "0123456789abcdefABCDEF" for c in to):
            room_id = bytes.fromhex(to)
            if self._node.rooms.store.room(room_id) is None:
                raise TransferError(f"you are not in room {to}")
        else:
            state = self._node.contacts.store.state(to)
            if state is None:
                raise TransferError("add this person as a contact before sending them files")
            if state is ContactState.BLOCKED:
                raise TransferError("this person is blocked; unblock them to send files")
        try:
            before = source.stat()
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not source.is_file():
            raise TransferError(f"{path} is not a file")
        chunk_size = fc.choose_chunk_size(before.st_size)
        if fc.chunk_count(before.st_size, chunk_size) > fc.MAX_CHUNKS:
            largest = fc.MAX_CHUNKS * fc.MAX_CHUNK_SIZE >> 30
            raise TransferError(f"Kith sends files of at most {largest} GiB")
        try:
            hashes, size = await trio.to_thread.run_sync(
                _hash_file, str(source), chunk_size, before.st_size
            )
            after = source.stat()
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
            size != after.st_size
        ):
            raise TransferError("the file changed while it was being read; try again")
        name = name or source.name[: fc.MAX_NAME_CHARS] or "file"
        mime = mimetypes.guess_type(name.rsplit("/", 1)[-1])[0] or "application/octet-stream"
        offer = fc.FileOffer(fc.new_transfer_id(), name, size, chunk_size,
                             fc.content_hash(hashes), mime[: fc.MAX_MIME_CHARS])
        body = offer.to_json()  # raises if too large
        self.store.add(offer, outgoing=True, peer_id="" if room_id else to, room_id=room_id,
                       state="offered", path=str(source.resolve()), src_size=after.st_size,
                       src_mtime=after.st_mtime_ns, hashes=hashes)
        if room_id is not None:
            await self._node.rooms.post_file(room_id.hex(), body)
        else:
            message = self._node.dms.send_file_message(to, dm.KIND_FILE_OFFER, body)
            shown = as_file_message(message)
            if shown is not None:  # the conversation shows the offer as a file card
                self._node.emit(MessageQueued(message=shown))
                self._node.dms.changed(to)
        self._node.emit(FileOffered(transfer=offer.id_hex, to=to, name_=name, size=size,
                                    hash=offer.hash.hex()))
        return self.info(offer.transfer)

    def download_dir(self) -> str:
        """The folder accepted files go to unless another is given."""
        return self._node.profile.settings.download_dir or str(default_download_dir())

    def file_settings(self) -> tuple[str, int]:
        settings = self._node.profile.settings
        return self.download_dir(), settings.auto_accept_verified_bytes

    async def set_file_settings(self, download_dir: str, auto_accept_verified_bytes: int
                                ) -> tuple[str, int]:
        """Validate and save; the network thread is the only writer of the settings file."""
        if not isinstance(download_dir, str):
            raise TransferError("the download folder must be a path")
        limit = auto_accept_verified_bytes
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= fc.MAX_SIZE:
            raise TransferError("the auto-accept size must be 0 (off) or a number of bytes")
        folder = ""
        if download_dir.strip():
            path = Path(download_dir.strip()).expanduser()
            if not path.is_absolute():
                raise TransferError("the download folder must be an absolute path")
            if path.exists() and not path.is_dir():
                raise TransferError(f"{path} is not a folder")
            folder = str(path)
        settings = self._node.profile.settings
        settings.download_dir, settings.auto_accept_verified_bytes = folder, limit
        await trio.to_thread.run_sync(self._node.profile.save_settings)
        return self.file_settings()

    async def accept(self, transfer_hex: str, folder: str = "", auto: bool = False
                     ) -> TransferInfo:
        """Start downloading into ``folder`` (empty: the download folder); a paused or
        failed transfer continues from its verified part, in its first folder."""
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        folder = folder or self.download_dir()
        if t.state == "paused":
            return await self.resume(transfer_hex)
        if t.state in ("failed", "receiving") and t.part_path and tid not in self._running and (
                await trio.to_thread.run_sync(_in_place, t)):
            # Retrying a failed download (a full disk, a bad sender), or one whose task stopped
            # when not even its failure could be recorded: keep what is verified, or the file
            # it already became.
            self.store.start_receiving(tid, t.dir or folder, t.part_path)
        elif t.state in ("offered", "failed"):
            target = str(Path(folder).expanduser().resolve())
            try:
                _, part = await trio.to_thread.run_sync(_create_part, target, t.offer.name)
            except OSError as exc:
                raise TransferError(f"cannot write to {folder}: {exc.strerror or exc}") from None
            self.store.start_receiving(tid, target, part)
        else:
            raise TransferError(f"this transfer is {t.state}")
        self._spawn(tid)
        info = self.info(tid)
        fresh = self.store.get(tid)
        self._node.emit(FileAccepted(transfer=info.transfer, dir=(fresh.dir if fresh else "")
                                     or folder, auto=auto))
        return info

    async def pause(self, transfer_hex: str) -> TransferInfo:
        """Stop fetching; the .part and its verified chunks stay (state "paused", kept
        across restarts) until ``resume``."""
        tid = _parse_id(transfer_hex)
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {transfer_hex}")
        if t.outgoing:
            raise TransferError("only the receiver can pause a transfer")
        if not self.store.set_state(tid, "paused", only_from=("receiving",)):
            raise TransferError(f"only a download in progress can be paused; it is {t.state}")
        await self._stop(tid)
        self._rates.pop(tid, None)
        info = self.info(tid)
        self._node.emit(FilePaused(transfer=info.transfer, bytes=info.bytes, size=info.size))
        return info

    async def resume(self, transfer_hex: str) -> TransferInfo:
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        if not self.store.set_state(tid, "receiving", only_from=("paused",)):
            raise TransferError(f"only a paused transfer can be resumed; it is {t.state}")
        self._spawn(tid)
        self._node.emit(FileResumed(transfer=t.id_hex))
        return self.info(tid)

    async def decline(self, transfer_hex: str) -> None:
        tid = _parse_id(transfer_hex)
        t = self._incoming(tid)
        if not self.store.set_state(tid, "declined", only_from=("offered",)):
            raise TransferError(f"only an offer can be declined; this transfer is {t.state}")
        if t.room_id is None:
            self._control(t.peer_id, fc.FileControl(tid, "decline"))
        self._node.emit(FileDeclined(transfer=transfer_hex.lower(), by="me"))

    async def cancel(self, transfer_hex: str) -> None:
        tid = _parse_id(transfer_hex)
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {transfer_hex}")
        allowed = ("offered",) if t.outgoing else ("offered", "receiving", "paused", "failed")
        if not self.store.set_state(tid, "cancelled", only_from=allowed):
            raise TransferError(f"this transfer is already {t.state}")
        if not t.outgoing:
            await self._stop(tid)
            await self._remove_part(t)
        if t.room_id is None:
            self._control(t.peer_id, fc.FileControl(tid, "cancel"))
        self._node.emit(FileCancelled(transfer=t.id_hex, by="me"))

    def transfers(self) -> list[TransferInfo]:
        return [self._info(t) for t in self.store.all()]

    def lookup(self, transfer_hex: str) -> TransferInfo | None:
        """One transfer by id; None if unknown (or not an id)."""
        try:
            tid = _parse_id(transfer_hex)
        except TransferError:
            return None
        t = self.store.get(tid)
        return self._info(t) if t is not None else None

    def info(self, tid: bytes) -> TransferInfo:
        t = self.store.get(tid)
        if t is None:
            raise TransferError(f"no transfer {tid.hex()}")
        return self._info(t)

    def _info(self, t: StoredTransfer) -> TransferInfo:
        tid = t.offer.transfer
        if t.outgoing:
            done = t.offer.size if t.state == "complete" else self._served_bytes.get(tid, 0)
        else:
            done = t.done_bytes
        # An incoming file's path is its final name once complete (before, only a plan).
        path = t.path if t.outgoing or t.state == "complete" else None
        return TransferInfo(
            transfer=t.id_hex, outgoing=t.outgoing, peer_id=t.peer_id,
            room_id=t.room_id.hex() if t.room_id else None, name=t.offer.name, size=t.offer.size,
            hash=t.offer.hash.hex(), state=t.state, bytes=done, path=path, reason=t.reason,
            served=self.served.get(tid, 0), speed=self._speed(tid, t.state),
        )

    def _speed(self, tid: bytes, state: str) -> float:
        rate = self._rates.get(tid)
        return rate.speed() if rate is not None and state in ("offered", "receiving") else 0.0

    def _incoming(self, tid: bytes) -> StoredTransfer:
        t = self.store.get(tid)
        if t is None or t.outgoing:
            raise TransferError(f"no incoming transfer {tid.hex()}")
        return t

    def _control(self, peer_id: str, control: fc.FileControl) -> None:
        try:
            self._node.dms.send_file_message(peer_id, dm.KIND_FILE_CONTROL, control.to_json())
        except Exception as exc:  # noqa: BLE001 - the local state changed anyway
            log.info("could not tell %s about transfer %s: %s", peer_id,
                     control.transfer.hex(), exc)

    # -- offers and controls from peers -------------------------------------------------------

    def direct_message(self, peer_id: str, message: dm.DirectMessage) -> bool:
        """A file offer (kind 2) or control (kind 3) arrived and was stored and acknowledged.

        True for a new, valid offer (the conversation shows it).
        """
        body = message.text.encode("utf-8")
        try:
            if message.kind == dm.KIND_FILE_OFFER:
                return self._on_offer(peer_id, fc.parse_offer(body), None)
            if message.kind == dm.KIND_FILE_CONTROL:
                self._on_control(peer_id, fc.parse_control(body))
        except fc.FileError as exc:
            log.info("ignored a file message from %s: %s", peer_id, exc)
        return False

    def offer_refusal(self, peer_id: str, body: str) -> tuple[int, str] | None:
        """(REJECT code, why) for a direct offer this node will not keep; None to keep it.

        An offer that is malformed in another way is kept and ignored, as before: only limits
        are refused here, so that the sender learns why its offer went nowhere.
        """
        try:
            fc.parse_offer(body.encode("utf-8"))
        except fc.TooManyChunks as exc:
            return dm.REJECT_TOO_LARGE, f"{exc}: its list of chunk hashes would not fit"
        except fc.FileError:
            return None
        why = self._node.resources.offer_refusal(peer_id, self.store.pending_offers(peer_id))
        return (dm.REJECT_QUOTA, why) if why is not None else None

    def room_file(self, room_id: bytes, author: str, body: bytes) -> None:
        """A kind-3 post from another member: a file shared in the room."""
        try:
            offer = fc.parse_offer(body, fc.MAX_ROOM_FILE_BYTES)
        except fc.FileError as exc:
            log.info("ignored a room file post by %s: %s", author, exc)
            return
        self._on_offer(author, offer, room_id)

    def _on_offer(self, peer_id: str, offer: fc.FileOffer, room_id: bytes | None) -> bool:
        if not self.store.add(offer, outgoing=False, peer_id=peer_id, room_id=room_id,
                              state="offered"):
            log.info("ignored a repeated file offer %s from %s", offer.id_hex, peer_id)
            return False
        self._node.emit(FileOffer(
            transfer=offer.id_hex, from_=peer_id, name_=offer.name, size=offer.size,
            hash=offer.hash.hex(), mime=offer.mime, room=room_id.hex() if room_id else None,
        ))
        if room_id is None and self._auto_accepts(peer_id, offer):
            self._node.nursery.start_soon(self._auto_accept, offer.id_hex)
        return True

    def _auto_accepts(self, peer_id: str, offer: fc.FileOffer) -> bool:
        """A direct offer from a contact whose safety number was verified, small enough."""
        limit = self._node.profile.settings.auto_accept_verified_bytes
        if limit <= 0 or offer.size > limit:
            return False
        contact = self._node.contacts.store.get(peer_id)
        return contact is not None and contact.state is ContactState.CONTACT and contact.verified

    async def _auto_accept(self, transfer_hex: str) -> None:
        try:
            await self.accept(transfer_hex, "", auto=True)
        except TransferError as exc:
            log.warning("could not auto-accept %s: %s", transfer_hex, exc)

    def _on_control(self, peer_id: str, control: fc.FileControl) -> None:
        tid = control.transfer
        t = self.store.get(tid)
        if t is None or t.peer_id != peer_id or t.room_id is not None:
            log.info("ignored a file control for an unknown transfer from %s", peer_id)
            return
        if t.outgoing:
            if control.action == "decline" and self.store.set_state(
                    tid, "declined", only_from=("offered",)):
                self._node.emit(FileDeclined(transfer=t.id_hex, by="peer"))
            elif control.action == "cancel" and self.store.set_state(
                    tid, "cancelled", only_from=("offered",)):
                self._node.emit(FileCancelled(transfer=t.id_hex, by="peer"))
            elif control.action == "complete" and self.store.set_state(
                    tid, "complete", only_from=("offered",)):
                self._node.emit(FileProgress(transfer=t.id_hex, bytes=t.offer.size,
                                             size=t.offer.size))
                self._node.emit(FileComplete(transfer=t.id_hex, path=t.path or "",
                                             hash=t.offer.hash.hex()))
            return
        if control.action == "cancel" and self.store.set_state(
                tid, "cancelled", only_from=("offered", "receiving", "paused", "failed")):
            self._node.nursery.start_soon(self._cancelled_by_peer, t)
        elif control.action == "fail" and self.store.set_state(
                tid, "failed", control.reason or "the sender stopped the transfer",
                only_from=("offered", "receiving", "paused")):
            self._node.nursery.start_soon(self._stop, tid)
            self._node.emit(FileFailed(
                transfer=t.id_hex, reason=control.reason or "the sender stopped the transfer"))

    async def _cancelled_by_peer(self, t: StoredTransfer) -> None:
        await self._stop(t.offer.transfer)
        await self._remove_part(t)
        self._node.emit(FileCancelled(transfer=t.id_hex, by="peer"))

    def message_refused(self, message: MessageInfo, reason: str) -> None:
        """The recipient's Kith refused our offer (an older version, say)."""
        if message.kind != dm.KIND_FILE_OFFER:
            return
        try:
            tid = fc.transfer_id_of(message.text.encode("utf-8"))
        except fc.FileError:
            return
        if self.store.set_state(tid, "failed", reason, only_from=("offered",)):
            self._node.emit(FileFailed(transfer=tid.hex(), reason=reason))

    # -- serving ------------------------------------------------------------------------------

    def _servable(self, t: StoredTransfer | None, peer_id: str) -> tuple[bool, str | None]:
        """(allowed to ask, path we can serve from or None)."""
        if t is None or peer_id == self._node.identity.peer_id:
            return False, None
        if t.room_id is not None:
            members = {m.peer_id for m in self._node.rooms.store.members(t.room_id)}
            if peer_id not in members or self._node.rooms.store.room(t.room_id) is None:
                return False, None
            if t.outgoing and t.state == "offered":
                return True, t.path
            if (not t.outgoing and t.state == "complete" and t.path
                    and t.offer.transfer not in self._stale and os.path.exists(t.path)):
                return True, t.path
            return True, None
        if (t.outgoing and t.peer_id == peer_id and t.state == "offered"
                and self._node.contacts.store.state(peer_id) is not None):
            return True, t.path  # (a blocked peer's streams were refused before this)
        return False, None

    def revoke_offers_to(self, peer_id: str) -> None:
        """``peer_id`` is no longer a contact: every file still offered to them is cancelled,
        so none of it can be fetched any more, even if they become a contact again."""
        for t in self.store.in_state("offered", outgoing=True):
            if t.room_id is None and t.peer_id == peer_id and self.store.set_state(
                    t.offer.transfer, "cancelled", "the contact was removed",
                    only_from=("offered",)):
                log.info("revoked the offer of %s to %s", t.id_hex, peer_id)
                self._node.emit(FileCancelled(transfer=t.id_hex, by="me"))

    async def _serve(self, stream: Stream) -> None:
        peer_id = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        if self._node.contacts.store.state(peer_id) is ContactState.BLOCKED:
            await stream.reset()
            return
        wait = self._node.limits.first_frame_timeout  # then SERVE_IDLE between requests
        while True:
            try:
                with trio.fail_after(wait):
                    payload = await read_frame(stream, fc.MAX_REQUEST)
            except StreamEOF:
                await stream.close()
                return
            except trio.TooSlowError:
                log.info("closing a file stream from %s: no request for %.0f s", peer_id, wait)
                await stream.reset()
                return
            wait = SERVE_IDLE
            request = fc.decode_request(payload)
            t = self.store.get(request.transfer)
            allowed, path = self._servable(t, peer_id)
            if not allowed or t is None:
                raise FrameError("file request for a transfer this peer may not have")
            if request.op == fc.OP_HAVE:
                await write_frame(stream, b"\x01" if path else b"\x00")
                continue
            if path is None or t.hashes is None:
                raise FrameError("file request for a file we do not hold")
            if request.op == fc.OP_GET_HASHES:
                step = fc.MAX_HASHES_FRAME
                for offset in range(0, len(t.hashes), step):
                    await write_frame(stream, t.hashes[offset:offset + step])
                continue
            await self._serve_chunks(stream, t, path, request.indexes, peer_id)

    async def _serve_chunks(self, stream: Stream, t: StoredTransfer, path: str,
                            indexes: tuple[int, ...], peer_id: str) -> None:
        offer, hashes = t.offer, t.hashes
        assert hashes is not None
        if any(i >= offer.chunks for i in indexes):
            raise FrameError("chunk index out of range")
        unchanged = (t.src_size, t.src_mtime) if t.outgoing else None
        for n, i in enumerate(indexes):
            if n and not self._servable(self.store.get(offer.transfer), peer_id)[1]:
                raise FrameError("the transfer was revoked while being served")
            length = fc.chunk_length(i, offer.size, offer.chunk_size)
            data = await trio.to_thread.run_sync(
                self._read_served, path, i * offer.chunk_size, length, unchanged,
                hashes[i * fc.HASH_SIZE:(i + 1) * fc.HASH_SIZE])
            unchanged = None  # checked once per request
            if data is None:
                await self._not_the_offered_file(t)
                raise FrameError(f"{path} is no longer the offered file")
            if self.send_hook is not None:
                data = self.send_hook(i, data)
            await stream.write(encode_varint(4 + length) + fc.encode_chunk_header(i) + data)
            self._count_served(t, i, length)

    @staticmethod
    def _read_served(path: str, offset: int, length: int,
                     unchanged: tuple[int | None, int | None] | None,
                     expected: bytes) -> bytes | None:
        """One chunk to serve (worker thread), or None when what is on disk is not the
        offered file any more: its (size, mtime) is not ``unchanged`` (the sender's, checked
        first), or the chunk is short or does not match its hash ``expected``."""
        if unchanged is not None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            if (st.st_size, st.st_mtime_ns) != unchanged:
                return None
        try:
            data = read_chunk(path, offset, length)
        except OSError:
            return None
        if len(data) != length or fc.chunk_hash(data) != expected:
            return None
        return data

    async def _not_the_offered_file(self, t: StoredTransfer) -> None:
        """What is at ``t.path`` is not the offered file (any more): stop serving it."""
        reason = "the file changed on disk"
        if not t.outgoing:
            if t.offer.transfer not in self._stale:
                self._stale.add(t.offer.transfer)
                log.warning("stopped serving room file %s: %s is not that file any more",
                            t.id_hex, t.path)
            return
        if self.store.set_state(t.offer.transfer, "failed", reason, only_from=("offered",)):
            log.warning("stopped serving %s: %s", t.path, reason)
            self._node.emit(FileFailed(transfer=t.id_hex, reason=reason))
            if t.room_id is None:
                self._control(t.peer_id, fc.FileControl(t.offer.transfer, "fail", reason))

    def _count_served(self, t: StoredTransfer, index: int, length: int) -> None:
        tid = t.offer.transfer
        self.served[tid] = self.served.get(tid, 0) + 1
        if not t.outgoing or t.room_id is not None:
            return
        bits = self._served_bits.setdefault(tid, bytearray((t.offer.chunks + 7) // 8))
        if not _bit(bits, index):
            _set_bit(bits, index)
            self._served_bytes[tid] = self._served_bytes.get(tid, 0) + length
        total = self._sent_total[tid] = self._sent_total.get(tid, 0) + length
        rate = self._rates.setdefault(tid, _Rate())
        rate.note(total)
        now = time.monotonic()
        done = self._served_bytes[tid]
        if now - self._progress_at.get(tid, 0.0) >= PROGRESS_SECONDS or done == t.offer.size:
            self._progress_at[tid] = now
            self._node.emit(FileProgress(transfer=t.id_hex, bytes=done, size=t.offer.size,
                                         speed=rate.speed()))

    # -- downloading --------------------------------------------------------------------------

    def _spawn(self, tid: bytes) -> None:
        if tid not in self._running:
            scope = trio.CancelScope()
            self._running[tid] = scope
            self._node.nursery.start_soon(self._download, tid, scope)

    async def _stop(self, tid: bytes) -> None:
        scope = self._running.get(tid)
        if scope is not None:
            scope.cancel()
            while tid in self._running:  # let it close the .part before anyone deletes it
                await trio.sleep(0.01)

    async def _remove_part(self, t: StoredTransfer) -> None:
        fresh = self.store.get(t.offer.transfer)
        part = (fresh or t).part_path
        if part:
            try:
                await trio.to_thread.run_sync(os.unlink, part)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", part, exc)

    async def _download(self, tid: bytes, scope: trio.CancelScope) -> None:
        try:
            with scope:
                t = self.store.get(tid)
                if t is None or t.state != "receiving" or not t.part_path:
                    return
                job = _Download(t)
                self._emit_progress(job, force=True)  # after a restart: what is verified
                try:
                    await self._download_loop(job)
                except TransferFailed as exc:
                    self._failed(job, exc)
                    if not exc.keep_part:
                        await self._remove_part(t)
                except Exception as exc:
                    if is_local_fault(exc):
                        raise
                    # A bug, not the download's fault: it fails with its part kept, so that
                    # accepting it again goes on, instead of waiting forever as "receiving".
                    log.warning("transfer %s stopped: %s", t.id_hex, exc, exc_info=True)
                    self._failed(job, TransferFailed(f"the download stopped: {exc}"))
        finally:
            self._running.pop(tid, None)

    def _failed(self, job: _Download, exc: TransferFailed) -> None:
        tid = job.offer.transfer
        log.warning("transfer %s failed: %s", job.t.id_hex, exc.reason)
        try:
            recorded = self.store.set_state(tid, "failed", exc.reason, only_from=("receiving",))
        except sqlite3.Error as db_exc:  # the profile's disk is full too: accepting retries
            log.warning("could not record the failure of %s: %s", job.t.id_hex, db_exc)
            recorded = True
        if recorded:
            self._node.emit(FileFailed(transfer=job.t.id_hex, reason=exc.reason))

    async def _download_loop(self, job: _Download) -> None:
        offer = job.offer
        while True:
            have_hashes = job.t.hashes is not None or offer.chunks == 0
            if have_hashes:
                job.hashes = job.t.hashes or b""
                if not job.missing():
                    if await self._finish(job):
                        return
                    continue
            sources = await self._sources(job)
            if not sources:
                await self._connected.wait(WAIT_SECONDS)
                continue
            if not have_hashes:
                await self._fetch_hashes(job, sources)
                continue
            before = job.t.done_bytes
            await self._fetch_round(job, sources)
            if job.t.done_bytes == before and job.missing():
                await self._connected.wait(RETRY_SECONDS)

    async def _sources(self, job: _Download) -> list[str]:
        """Connected peers that can serve this file now (the sender, or room holders)."""
        t = job.t
        if t.room_id is None:
            return [t.peer_id] if self._node.is_connected(t.peer_id) else []
        me = self._node.identity.peer_id
        candidates = {m.peer_id for m in self._node.rooms.store.members(t.room_id)}
        candidates.add(t.peer_id)
        candidates = {p for p in candidates if p != me and p not in job.banned}
        connected = [p for p in candidates if self._node.is_connected(p)]
        if not connected:
            self._node.nursery.start_soon(self._node.rooms.reach_members, t.room_id)
            return []
        holders: list[str] = []

        async def probe(peer_id: str) -> None:
            if await self._have(peer_id, t.offer.transfer):
                holders.append(peer_id)

        async with trio.open_nursery() as nursery:
            for peer_id in connected:
                nursery.start_soon(probe, peer_id)
        return sorted(holders, key=lambda p: p != t.peer_id)  # the author first

    async def _have(self, peer_id: str, tid: bytes) -> bool:
        try:
            with trio.fail_after(HAVE_TIMEOUT):
                stream = await self._node.host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID])
                try:
                    await write_frame(stream, fc.encode_request(tid, fc.OP_HAVE))
                    answer = await read_frame(stream, 1)
                    await stream.close()
                except BaseException:
                    await stream.reset()
                    raise
            return answer == b"\x01"
        except Exception as exc:  # noqa: BLE001 - not a holder (or not reachable)
            log.debug("HAVE %s from %s: %s", tid.hex(), peer_id, exc)
            return False

    async def _fetch_hashes(self, job: _Download, sources: list[str]) -> None:
        offer = job.offer
        want = offer.chunks * fc.HASH_SIZE
        for peer_id in sources:
            try:
                with trio.fail_after(OPEN_TIMEOUT + READ_TIMEOUT):
                    stream = await self._node.host.new_stream(
                        ID.from_base58(peer_id), [PROTOCOL_ID])
                    try:
                        await write_frame(stream, fc.encode_request(offer.transfer,
                                                                    fc.OP_GET_HASHES))
                        got = bytearray()
                        while len(got) < want:
                            frame = await read_frame(stream, fc.MAX_HASHES_FRAME)
                            if not frame or len(frame) % fc.HASH_SIZE:
                                raise BadSource("malformed hash list frame")
                            got += frame
                        await stream.close()
                    except BaseException:
                        await stream.reset()
                        raise
            except Exception as exc:  # noqa: BLE001 - try the next source, or later
                log.info("hash list of %s from %s: %s", offer.id_hex, peer_id, exc)
                continue
            if len(got) != want or fc.content_hash(bytes(got)) != offer.hash:
                self._bad(job, peer_id, "its list of chunk hashes does not match the offer")
                continue
            job.hashes = job.t.hashes = bytes(got)
            self.store.set_hashes(offer.transfer, job.hashes)
            return
        await self._connected.wait(RETRY_SECONDS)

    def _bad(self, job: _Download, peer_id: str, what: str) -> None:
        """Count a bad chunk from ``peer_id``; too many and it is dropped (or the transfer)."""
        count = job.bad.get(peer_id, 0) + 1
        job.bad[peer_id] = count
        log.warning("transfer %s: %s sent bad data (%d): %s", job.t.id_hex, peer_id, count, what)
        if count < MAX_BAD_CHUNKS:
            return
        job.banned.add(peer_id)
        scope = job.readers.get(peer_id)
        if scope is not None:
            scope.cancel()
        if job.t.room_id is None or not any(p not in job.banned for p in job.readers):
            who = "the sender" if job.t.room_id is None else "every holder of the file"
            raise TransferFailed(
                f"{who} kept sending corrupted data ({count} bad chunks; last: {what})"
            )

    async def _fetch_round(self, job: _Download, sources: list[str]) -> None:
        """Fetch missing chunks from all ``sources`` in parallel until none is left."""
        job.pending = deque(job.missing())
        offer = job.offer
        path = job.t.part_path
        assert path is not None
        try:
            f = await trio.to_thread.run_sync(open, path, "r+b", 0)
        except FileNotFoundError:
            # The .part vanished (deleted by hand): start over, nothing verified survives it.
            f = await trio.to_thread.run_sync(open, path, "w+b", 0)
            job.t.verified[:] = bytes(len(job.t.verified))
            job.t.done_bytes = 0
            job.written[:] = bytes(len(job.written))
            job.pending = deque(range(offer.chunks))
            self._save(job)
        except OSError as exc:
            raise TransferFailed(f"cannot open {path}: {exc.strerror or exc}") from None
        # Received chunks wait here for the writer: few, so memory stays bounded when the disk
        # is slower than the network (what is requested but unread waits in Yamux).
        queue = max(1, WRITE_QUEUE_BYTES // offer.chunk_size)
        send, receive = trio.open_memory_channel[tuple[str, int, memoryview]](queue)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, job, f, receive)
                async with send:
                    for peer_id in sources:
                        scope = trio.CancelScope()
                        job.readers[peer_id] = scope
                        nursery.start_soon(self._reader, job, peer_id, send.clone(), scope)
        except BaseExceptionGroup as group:
            failed, _ = group.split(TransferFailed)
            if failed is None:
                raise
            first: BaseException = failed
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            job.readers.clear()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(f.close)

    async def _reader(self, job: _Download, peer_id: str,
                      send: trio.MemorySendChannel[tuple[str, int, memoryview]],
                      scope: trio.CancelScope) -> None:
        offer = job.offer
        inflight: deque[int] = deque()
        in_flight = max(2, IN_FLIGHT_BYTES // offer.chunk_size)
        batch_size = min(in_flight // 2, fc.MAX_CHUNKS_PER_REQUEST)  # asked for at half-empty
        try:
            async with send:
                with scope:
                    with trio.fail_after(OPEN_TIMEOUT):
                        stream = await self._node.host.new_stream(
                            ID.from_base58(peer_id), [PROTOCOL_ID])
                        await widen_receive_window(stream, BULK_WINDOW)
                    try:
                        while True:
                            if len(inflight) <= in_flight - batch_size and job.pending:
                                batch = [job.pending.popleft()
                                         for _ in range(min(batch_size, len(job.pending)))]
                                inflight.extend(batch)
                                await write_frame(stream, fc.encode_request(
                                    offer.transfer, fc.OP_GET_CHUNKS, batch))
                                continue
                            if not inflight:
                                break
                            frame = await read_frame_into(stream, 4 + offer.chunk_size,
                                                          idle=READ_TIMEOUT)
                            index, data = fc.decode_chunk(frame)
                            if index != inflight[0] or len(data) != fc.chunk_length(
                                    index, offer.size, offer.chunk_size):
                                raise BadSource("a chunk out of order or of the wrong size")
                            inflight.popleft()
                            await send.send((peer_id, index, data))
                        await stream.close()
                    except BaseException:
                        with trio.CancelScope(shield=True):
                            await stream.reset()
                        raise
        except BadSource as exc:
            self._bad(job, peer_id, str(exc))
        except Exception as exc:  # noqa: BLE001 - the source went away; others or later
            log.info("transfer %s: source %s stopped: %s", job.t.id_hex, peer_id, exc)
        finally:
            job.pending.extendleft(reversed(inflight))  # asked but never received: ask again

    async def _writer(self, job: _Download, f: BinaryIO,
                      receive: trio.MemoryReceiveChannel[tuple[str, int, memoryview]]) -> None:
        offer, t = job.offer, job.t
        async with receive:
            async for peer_id, index, data in receive:
                if _bit(t.verified, index):
                    continue
                expected = job.hashes[index * 32:(index + 1) * 32]
                try:
                    ok = await trio.to_thread.run_sync(
                        _write_at, f, index * offer.chunk_size, data, expected)
                except OSError as exc:
                    job.pending.appendleft(index)
                    if exc.errno == errno.ENOSPC:
                        raise TransferFailed(
                            "the disk is full; the verified part is kept in "
                            f"{t.part_path} and the transfer resumes from there when accepted "
                            "again after freeing space") from None
                    raise TransferFailed(f"cannot write the file: {exc.strerror or exc}") from None
                if not ok:
                    job.pending.appendleft(index)  # ask again, maybe from someone else
                    self._bad(job, peer_id, f"chunk {index} failed verification")
                    continue
                _set_bit(t.verified, index)
                _set_bit(job.written, index)
                t.done_bytes += len(data)
                # Recorded before it is shown: progress a crash could take back is never shown,
                # and a crash costs only the chunks in flight.
                self._save(job)
                self._rates.setdefault(offer.transfer, _Rate()).note(t.done_bytes)
                self._emit_progress(job)

    def _save(self, job: _Download) -> None:
        """Record what is verified (one small commit; the data is already written)."""
        try:
            self.store.save_progress(job.offer.transfer, bytes(job.t.verified), job.t.done_bytes)
        except sqlite3.Error as exc:
            raise TransferFailed(f"cannot record the download: {storage_error(exc)}") from None

    def _emit_progress(self, job: _Download, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - job.progress_at >= PROGRESS_SECONDS:
            job.progress_at = now
            self._node.emit(FileProgress(
                transfer=job.t.id_hex, bytes=job.t.done_bytes, size=job.offer.size,
                speed=self._speed(job.offer.transfer, "receiving")))

    async def _finish(self, job: _Download) -> bool:
        """Check the whole file, give it its name, tell the sender; False if chunks need
        fetching."""
        t, offer = job.t, job.offer
        part = t.part_path
        assert part is not None
        try:
            if not await trio.to_thread.run_sync(os.path.exists, part):
                return await self._finished_before(job)
            # The file's hash is the hash of its chunk hashes, checked against the offer when
            # the list came. So the file matches it once every chunk on disk matches its hash.
            bad = await trio.to_thread.run_sync(_bad_chunks, part, offer, job.hashes, job.written)
            if bad:
                # Verified chunks lost on the way to the disk (a crash before the OS wrote
                # them): forget them, fetch them again.
                for i in bad:
                    if _bit(t.verified, i):
                        _set_bit(t.verified, i, False)
                        t.done_bytes -= fc.chunk_length(i, offer.size, offer.chunk_size)
                self._save(job)
                return False
            # Shielded: a pause or cancel must not land between the name and the record.
            with trio.CancelScope(shield=True):
                final = await self._publish(job)
                self._completed(job, final)
        except OSError as exc:
            raise TransferFailed(f"cannot finish the file: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise TransferFailed(f"cannot finish the file: {storage_error(exc)}") from None
        return True

    async def _finished_before(self, job: _Download) -> bool:
        """Every chunk is verified but the ``.part`` is gone: either a crash came after it
        became the finished file (complete now, if that file still matches), or someone
        deleted it (fetch everything again)."""
        t, offer = job.t, job.offer
        part = t.part_path
        assert part is not None
        final = _finished_name(t)
        if final is not None and await trio.to_thread.run_sync(
                _holds, final, offer, job.hashes):
            log.info("transfer %s was finished before a restart: %s", t.id_hex, final)
            self._completed(job, final)
            return True
        if offer.size == 0:
            await trio.to_thread.run_sync(lambda: open(part, "wb").close())
            return False
        t.verified[:] = bytes(len(t.verified))
        job.written[:] = bytes(len(job.written))
        t.done_bytes = 0
        self._save(job)
        return False

    async def _publish(self, job: _Download) -> str:
        """Give the verified ``.part`` its final name without replacing any file: the name is
        recorded first, then linked, then the ``.part`` removed, so that a crash between any
        two steps leaves a name to find the finished file by (``_finished_before``)."""
        t = job.t
        part = t.part_path
        assert part is not None
        for _ in range(100):
            if t.path is None:
                t.path = await trio.to_thread.run_sync(_free_name, part, t.offer.name)
                self.store.set_final_path(t.offer.transfer, t.path)
            if await trio.to_thread.run_sync(_link_final, part, t.path):
                await trio.to_thread.run_sync(_unlink_quietly, part)
                return t.path
            t.path = None  # another file took the name meanwhile
        raise OSError("no free name for the file")

    def _completed(self, job: _Download, final: str) -> None:
        """Record the download complete and tell the sender, who is told first: a crash
        before the record tells them again at the next start (a repeat they ignore)."""
        t, offer = job.t, job.offer
        if t.room_id is None:
            self._control(t.peer_id, fc.FileControl(offer.transfer, "complete"))
        t.done_bytes = offer.size
        self._save(job)
        self.store.complete(offer.transfer, final)
        self._emit_progress(job, force=True)
        self._node.emit(FileComplete(transfer=t.id_hex, path=final, hash=offer.hash.hex()))
