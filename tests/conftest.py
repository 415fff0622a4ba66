"""Shared fixtures. Qt runs offscreen; every peer listens on 127.0.0.1 only."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profile"


@pytest.fixture
def event_loop_runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner
