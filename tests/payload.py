"""Random files for transfer tests and benchmarks, their SHA-256 and their Kith hash."""

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


def content_hash(path: str | Path, chunk: int = 0) -> str:
    """What Kith calls the file's hash (docs/protocol.md section 9), computed independently:
    SHA-256 over the SHA-256 of each chunk, chunks of 1 MiB, or 4 MiB from 256 MiB on."""
    size = os.path.getsize(path)
    chunk = chunk or (4 * MiB if size >= 256 * MiB else MiB)
    hashes = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(chunk):
            hashes.update(hashlib.sha256(data).digest())
    return hashes.hexdigest()
