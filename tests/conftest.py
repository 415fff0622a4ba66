"""Shared fixtures. Qt runs offscreen; every peer listens on 127.0.0.1 only."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# Never the desktop's D-Bus session: a test window must not pop up notifications. Tests of
# desktop notifications start a bus of their own (tests/notification_service.py).
os.environ["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/kith-tests-have-no-session-bus"

import asyncio
import gc
import sqlite3
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# As in the app: py-libp2p's unused parts stay out of the process (app.node.libp2p_patches.imports),
# whichever test imports py-libp2p first.
import app.node  # noqa: F401

if TYPE_CHECKING:  # the GUI fixtures import Qt only when a test asks for them
    import qasync
    from PySide6.QtWidgets import QApplication

    from tests.peers import Peer
    from tests.ui_helpers import AppFactory

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
QT_FIXTURES = frozenset({"qapp", "qtbot", "qloop"})  # a test that made Qt objects


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, None, None]:
    """Collect a test's garbage on the main thread, once pytest has let go of its fixtures.

    A test's windows and controllers are unreachable only after every teardown, and those that
    sit in reference cycles wait for the next run of the cycle collector, which may start in a
    later test's network thread. A QObject destroyed there cannot stop its timers ("QObject::
    ~QObject: Timers cannot be stopped from another thread"), and the next timer event goes to
    freed memory: the whole run dies of a segmentation fault.
    """
    yield
    if QT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        gc.collect()


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profile"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A profile's database on a real SQLite file, migrated to the current schema."""
    from app.store.db import open_database

    conn = open_database(tmp_path / "kith.db")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def event_loop_runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


# -- GUI tests (tests/test_ui_*.py) ---------------------------------------------------------


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """The test's qasync loop, also the current loop: slots that qtbot triggers between
    ``run`` calls schedule their tasks on it, as they would in the running app."""
    from tests.ui_helpers import new_qloop

    with new_qloop(qapp) as loop:
        yield loop


@pytest.fixture
def make_app(qloop: qasync.QEventLoop) -> Iterator[AppFactory]:
    """Makes ``KithApp`` controllers; every one is shut down after the test."""
    from tests.ui_helpers import AppFactory

    factory = AppFactory(qloop)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def pat(qloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[Peer]:
    """A headless second peer, "Pat"."""
    from tests.peers import Peer
    from tests.ui_helpers import run

    peer = Peer(tmp_path / "pat", "Pat")
    run(qloop, peer.start())
    try:
        yield peer
    finally:
        run(qloop, peer.stop())
