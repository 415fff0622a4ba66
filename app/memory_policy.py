"""How glibc's malloc treats the large blocks a transfer churns through (Linux only).

A download allocates and frees, for every gigabyte, about a gigabyte each of 256 KiB socket
reads, stream buffers that fill and drain, and 4 MiB chunk buffers. With glibc's defaults
those become fresh pages every time: a block above the mmap threshold (128 KiB at first,
raised only as far as the blocks freed so far) is mapped and unmapped, and free memory at
the top of the heap is given back once it exceeds twice that threshold. Each fresh page is
a fault and a zeroing in the kernel (on a VM, sometimes a fault in the host too): about a
tenth of a receiver's CPU per gigabyte (docs/performance.md, Files).

Here blocks up to 32 MiB (a stream's largest window is 16 MiB) come from the heap, and the
heap gives back free memory at its top beyond 64 MiB: the upper bounds glibc's own
adaptive thresholds can reach, set from the start. What a process keeps after a transfer is
bounded by what the transfer held at once. A user's own ``MALLOC_*`` or ``GLIBC_TUNABLES``
settings win: then nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None  # musl has no such name
    except (ValueError, OSError):
        return False


def keep_large_blocks() -> bool:
    """Set the thresholds above for this process; False where it is not glibc, or where
    the user's environment already sets malloc's behaviour."""
    if not sys.platform.startswith("linux") or not _is_glibc():
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
