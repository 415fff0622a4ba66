"""The disk side of file transfer: hashing, writing verified chunks, naming finished files.

Everything here runs in a worker thread (``trio.to_thread``), never on the trio loop: hashing
and disk I/O of a large file take seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import mmap
import os
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.core import files as fc
from app.store.transfers import StoredTransfer

PART_SUFFIX = ".part"
HASH_THREADS = 2  # hashlib releases the GIL: a large file is hashed on two cores


def read_chunk(path: str, offset: int, length: int, head: bytes = b"") -> bytearray:
    """``head`` followed by up to ``length`` bytes of ``path`` from ``offset`` (worker thread).

    The chunk is read in place behind ``head`` (a frame's header, say), so a served chunk
    goes to the network without being copied into its frame: a copy of every gigabyte sent.
    """
    buf = bytearray(len(head) + length)
    buf[:len(head)] = head
    view = memoryview(buf)
    got = len(head)
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        while got < len(buf):
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    view.release()
    del buf[got:]
    return buf


def hash_range(path: str, chunk_size: int, first: int, end: int) -> tuple[bytes, int]:
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


def hash_file(path: str, chunk_size: int, size: int) -> tuple[bytes, int]:
    """(chunk hashes, bytes read) of a ``size``-byte file, its halves hashed side by side."""
    chunks = fc.chunk_count(size, chunk_size)
    if chunks < 2 * HASH_THREADS:
        return hash_range(path, chunk_size, 0, chunks)
    bounds = [chunks * i // HASH_THREADS for i in range(HASH_THREADS + 1)]
    with ThreadPoolExecutor(HASH_THREADS - 1, "kith-hash") as pool:
        later = [pool.submit(hash_range, path, chunk_size, a, b)
                 for a, b in itertools.pairwise(bounds[1:])]
        parts = [hash_range(path, chunk_size, bounds[0], bounds[1])]
        parts += [job.result() for job in later]
    return b"".join(h for h, _ in parts), sum(n for _, n in parts)


def bad_chunks(path: str, offer: fc.FileOffer, hashes: bytes, trusted: bytearray) -> list[int]:
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
            if bit(trusted, i):
                continue
            f.seek(i * offer.chunk_size)
            data = f.read(fc.chunk_length(i, offer.size, offer.chunk_size))
            if fc.chunk_hash(data) != hashes[i * 32:(i + 1) * 32]:
                bad.append(i)
    return bad


WRITE_BEHIND = 32 << 20  # bytes of a .part written and not yet known to be on disk, at most

# sync_file_range(2) flags
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux only; Python's ``os`` does not offer it)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_sync_file_range = _load_sync_file_range()


class _NoDirectIO(Exception):
    """The filesystem refused an aligned direct write: write this file buffered."""


def _open_direct(path: str) -> int | None:
    """A write-only ``O_DIRECT`` descriptor of ``path``, or None where there is none."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:  # EINVAL: this filesystem does no direct I/O
        return None


def _direct_write(fd: int, offset: int, data: bytes | memoryview) -> bool:
    """Write ``data`` at ``offset`` through the ``O_DIRECT`` descriptor ``fd`` if offset,
    length and memory are page-aligned; False (nothing written) if not. ``_NoDirectIO`` if
    the filesystem wants another alignment."""
    page = mmap.PAGESIZE
    if offset % page or len(data) % page or not len(data):
        return False
    view = memoryview(data)
    if view.readonly or not view.contiguous:
        return False
    with view.cast("B") as raw:
        if ctypes.addressof(ctypes.c_char.from_buffer(raw)) % page:
            return False
        done = 0
        while done < len(raw):
            try:
                written = os.pwrite(fd, raw[done:], offset + done)
            except OSError as exc:
                if exc.errno == errno.EINVAL and not done:
                    raise _NoDirectIO from exc  # the device's blocks are larger than a page
                raise
            if written <= 0 or written % page:
                raise OSError(errno.EIO, f"short direct write ({written} bytes)")
            done += written
    return True


class PartFile:
    """A ``.part`` being filled with verified chunks (worker thread), written behind.

    Each chunk written is sent to the disk at once, and once more than ``write_behind`` bytes
    are on their way, the oldest are waited for and dropped from the page cache. A download
    then recycles a few MiB of page cache instead of filling gigabytes of it: on a virtual
    machine, page cache taken from memory the host has not backed yet (or took back) cost
    about 2 s of kernel time per GiB written, and whether a run got such memory made transfer
    times bimodal; recycled pages cost about 0.3 s. It also puts verified chunks on the disk
    within ``write_behind`` bytes instead of whenever the kernel flushes. Elsewhere than Linux
    chunks are plainly written.

    Whole pages from page-aligned memory (``framing.page_aligned``) skip the page cache: they
    go through a second descriptor opened with ``O_DIRECT``, straight from our buffer to the
    disk. Copying a downloaded gigabyte into the page cache cost the receiver about 0.4 s of
    CPU, a seventh of all it spent (``docs/performance.md``). Where the filesystem refuses
    direct I/O (tmpfs before Linux 6.6, some FUSE filesystems), every write is buffered.
    """

    def __init__(self, path: str, mode: str = "r+b", write_behind: int = WRITE_BEHIND) -> None:
        self._file = open(path, mode, 0)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        self._write_behind = write_behind
        self._behind: deque[tuple[int, int]] = deque()
        self._behind_bytes = 0
        self._direct = _open_direct(path)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        if self._direct is not None:
            try:
                if _direct_write(self._direct, offset, data):
                    return
            except _NoDirectIO:
                os.close(self._direct)
                self._direct = None
        self._write_buffered(offset, data)

    def _write_buffered(self, offset: int, data: bytes | memoryview) -> None:
        self._file.seek(offset)
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0:]
        if _sync_file_range is None or not len(data):
            return
        self._sync(offset, len(data), _WRITE)  # start writing it out now
        self._behind.append((offset, len(data)))
        self._behind_bytes += len(data)
        while self._behind_bytes > self._write_behind:
            start, length = self._behind.popleft()
            self._behind_bytes -= length
            self._sync(start, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            os.posix_fadvise(self._fd, start, length, os.POSIX_FADV_DONTNEED)

    def _sync(self, offset: int, length: int, flags: int) -> None:
        assert _sync_file_range is not None
        if _sync_file_range(self._fd, offset, length, flags) != 0:
            code = ctypes.get_errno()
            if code not in (errno.ENOSYS, errno.EINVAL):  # not offered here: plain writes
                raise OSError(code, os.strerror(code))

    def close(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        self._file.close()

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_at(f: PartFile, offset: int, data: bytes | memoryview, expected: bytes) -> bool:
    """Verify a chunk against its hash and write it at its offset (worker thread)."""
    if fc.chunk_hash(data) != expected:
        return False
    f.write(offset, data)
    return True


def create_part(folder: str, name: str) -> tuple[str, str]:
    """(the folder, resolved; the ``.part`` path): pick a safe place in ``folder`` ("~" is
    expanded) and create the empty ``.part`` there (worker thread).

    ``name`` may be a relative path ("Photos/2024/a.jpg", from a dropped folder): its
    folders are created inside ``folder`` (an existing folder of that name is reused, a file
    or link in the way gets a numbered name instead); only the file name is made unique.
    """
    target = str(Path(folder).expanduser().resolve())
    os.makedirs(target, exist_ok=True)
    base = Path(target)
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
    return target, str(part)


def free_name(part: str, name: str) -> str:
    """A name for the finished file next to its ``.part`` that no file has now."""
    base = Path(part).parent
    leaf = fc.split_relative_name(name)[1]
    return str(base / fc.safe_file_name(leaf, lambda c: (base / c).exists()))


def link_final(part: str, final: str) -> bool:
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


def unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def holds(path: str, offer: fc.FileOffer, hashes: bytes) -> bool:
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


def in_place(t: StoredTransfer) -> bool:
    """A download to retry where it is: its ``.part`` or its finished file is still there."""
    final = finished_name(t)
    return bool(t.part_path and os.path.exists(t.part_path)) or bool(
        final and os.path.exists(final))


def finished_name(t: StoredTransfer) -> str | None:
    """Where a crash may have left this download finished: the recorded final name, or (for
    a transfer recorded before names were) the ``.part``'s name without ``.part``."""
    if t.path:
        return t.path
    if t.part_path and t.part_path.endswith(PART_SUFFIX):
        return t.part_path[: -len(PART_SUFFIX)]
    return None


def bit(bitmap: bytearray, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


def set_bit(bitmap: bytearray, i: int, value: bool = True) -> None:
    if value:
        bitmap[i >> 3] |= 1 << (i & 7)
    else:
        bitmap[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def read_served(path: str, offset: int, length: int,
                unchanged: tuple[int | None, int | None] | None,
                expected: bytes, head: bytes = b"") -> bytearray | None:
    """One chunk to serve behind ``head`` (worker thread, ``read_chunk``), or None when what is
    on disk is not the offered file any more: its (size, mtime) is not ``unchanged`` (the
    sender's, checked first), or the chunk is short or does not match its hash ``expected``."""
    if unchanged is not None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns) != unchanged:
            return None
    try:
        data = read_chunk(path, offset, length, head)
    except OSError:
        return None
    if len(data) != len(head) + length:
        return None
    with memoryview(data) as view:
        if fc.chunk_hash(view[len(head):]) != expected:
            return None
    return data


class NotAFile(OSError):
    """What was to be offered is not a regular file."""


def stat_source(path: str) -> tuple[Path, os.stat_result]:
    """(the file, its size and time) of a file about to be offered (worker thread)."""
    source = Path(path).expanduser()
    before = source.stat()
    if not source.is_file():
        raise NotAFile(f"{path} is not a file")
    return source, before


def hash_source(source: Path, chunk_size: int, size: int
                ) -> tuple[bytes, int, os.stat_result, str]:
    """(chunk hashes, bytes read, its size and time after, its full path) of a file being
    offered (worker thread): a change while it was read shows in the second look."""
    hashes, read = hash_file(str(source), chunk_size, size)
    return hashes, read, source.stat(), str(source.resolve())

