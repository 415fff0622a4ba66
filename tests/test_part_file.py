"""A download's ``.part`` is written behind: chunks go to the disk as they come, and what is
on the disk leaves the page cache, so a large download recycles a little page cache instead of
filling gigabytes of it (``app.node.files.disk.PartFile``)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest

from app.node.files import disk
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
