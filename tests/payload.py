"""Random files for transfer tests and benchmarks, and their SHA-256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MiB = 1 << 20


def make_file(path: Path, size: int) -> str:
    """Random content written in pieces (never whole in memory); returns its SHA-256."""
    whole = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(left, 4 * MiB))
            whole.update(data)
            f.write(data)
            left -= len(data)
    return whole.hexdigest()


def file_hash(path: str | Path) -> str:
    whole = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(4 * MiB):
            whole.update(data)
    return whole.hexdigest()
