"""A small filesystem of a test's own (tmpfs, mounted by the test) that it fills to the last byte.

Needs root to mount (CI runs as root); without it the tests using this are skipped with that
reason. The mount lives under the test's temporary folder and is unmounted afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MiB = 1 << 20


class SmallDisk:
    """``path`` is the mount point; ``fill`` takes every free byte, ``free`` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self, *databases: Path) -> None:
        """Empty the write-ahead logs of ``databases`` first (SQLite would otherwise go on
        writing into room its log already has), then write until ENOSPC."""
        for db in databases:
            conn = sqlite3.connect(db)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            size = MiB
            while size:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    size //= 2
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self._filler.unlink()


@contextmanager
def small_disk(path: Path, size_mib: int = 32) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small filesystem (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs",
                    str(path)], check=True)
    try:
        yield SmallDisk(path)
    finally:
        # Lazy: a process of the test that has not quite exited yet must not fail the unmount.
        subprocess.run(["umount", "--lazy", str(path)], check=False)
