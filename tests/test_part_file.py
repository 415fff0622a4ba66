"""A download's ``.part`` is written behind: chunks go to the disk as they come, and what is
on the disk leaves the page cache, so a large download recycles a little page cache instead of
filling gigabytes of it (``app.node.files.disk.PartFile``). Whole pages from page-aligned
memory go around the page cache (direct I/O) where the filesystem allows it."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.node.files import disk
from app.node.framing import page_aligned
from tests.payload import MiB

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="write-behind is Linux-only; elsewhere chunks are "
                                       "plainly written")

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_pages(path: Path, offset: int, length: int) -> int:
    """How many pages of ``path`` in [offset, offset + length) are in the page cache
    (mincore(2) over a read-only mapping; mapping a file does not read it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    prot_read, map_shared = 1, 1
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, length, prot_read, map_shared, fd, offset)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            pages = (length + PAGE - 1) // PAGE
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, length, vector) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vector.raw)
        finally:
            libc.munmap(address, length)
    finally:
        os.close(fd)


def test_written_chunks_leave_the_page_cache_once_on_disk(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    chunks = [os.urandom(MiB) for _ in range(8)]
    with disk.PartFile(str(part), "w+b", write_behind=2 * MiB) as f:
        for i, data in enumerate(chunks):
            f.write(i * MiB, data)
        # The oldest chunks are on the disk and out of the cache; the newest still cached.
        assert resident_pages(part, 0, 4 * MiB) == 0
        assert resident_pages(part, 7 * MiB, MiB) == MiB // PAGE
    assert part.read_bytes() == b"".join(chunks)


def aligned_chunk(data: bytes) -> memoryview:
    view = page_aligned(len(data))
    view[:] = data
    return view


def test_page_aligned_buffers_start_a_page_where_asked() -> None:
    for at in (0, 4, 100):
        view = page_aligned(3 * PAGE, at)
        assert len(view) == 3 * PAGE and not view.readonly
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        assert (address + at) % PAGE == 0


def test_aligned_chunks_go_to_the_disk_around_the_page_cache(tmp_path: Path) -> None:
    """Whole aligned chunks are not in the page cache right after the write, even with a
    write-behind far larger than the file; a short last chunk and unaligned memory are written
    through it. The file holds every byte either way."""
    part = tmp_path / "x.part"
    chunks = [os.urandom(MiB) for _ in range(3)] + [os.urandom(MiB // 2 + 123)]
    with disk.PartFile(str(part), "w+b", write_behind=1 << 40) as f:
        f.write(0, aligned_chunk(chunks[0]))
        f.write(MiB, aligned_chunk(chunks[1]))
        f.write(2 * MiB, chunks[2])  # bytes: malloc's alignment, not a page's
        f.write(3 * MiB, aligned_chunk(chunks[3]))  # not a whole number of pages
        assert resident_pages(part, 0, 2 * MiB) == 0
        assert resident_pages(part, 2 * MiB, MiB) == MiB // PAGE
        assert resident_pages(part, 3 * MiB, len(chunks[3])) > 0
        f.write(MiB, aligned_chunk(chunks[1]))  # the same chunk again (a retry): same bytes
    assert part.read_bytes() == b"".join(chunks)


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A filesystem that refuses direct I/O (ramfs: opening with O_DIRECT fails)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a ramfs (CI runs as root)")
    mount = tmp_path / "ramfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_a_filesystem_without_direct_io_gets_every_chunk_buffered(ramfs: Path) -> None:
    part = ramfs / "x.part"
    chunks = [os.urandom(MiB) for _ in range(4)]
    with disk.PartFile(str(part), "w+b") as f:
        for i, data in enumerate(chunks):
            f.write(i * MiB, aligned_chunk(data))
    assert part.read_bytes() == b"".join(chunks)


def test_a_device_that_wants_larger_blocks_gets_buffered_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct write refused for its alignment (a device whose blocks are larger than a page:
    EINVAL) is written buffered instead, and so is the rest of the file."""
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:  # only direct writes use it
        refused.append(offset)
        raise OSError(errno.EINVAL, "Invalid argument")

    part = tmp_path / "x.part"
    chunks = [os.urandom(MiB) for _ in range(3)]
    monkeypatch.setattr(disk.os, "pwrite", pwrite)
    with disk.PartFile(str(part), "w+b") as f:
        for i, data in enumerate(chunks):
            f.write(i * MiB, aligned_chunk(data))
    assert refused == [0]  # tried once, then never again for this file
    assert part.read_bytes() == b"".join(chunks)
