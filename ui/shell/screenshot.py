"""Take a screenshot of the real main window, online, for docs and visual review.

    python -m ui.shell.screenshot --out OUT.png --profile DIR --name NAME [--listen MULTIADDR]...
        [--size WxH] [--theme light|dark] [--scene empty|conversation] [--details]

Runs the same start-up as ``kith`` (minus the first-run dialog: the profile is initialised with
NAME when needed), waits until the peer is online, the contacts and rooms are loaded and the
window has painted, grabs the window, then shuts down cleanly. ``packaging/screenshot.sh`` runs
it under a private Xvfb.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import qasync
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication, QMessageBox

from app.store.profile import Profile, ProfileError
from ui.identity.node_state import Presence
from ui.shell.app import KithApp, configure_application
from ui.shell.screenshot_scene import stage_conversation
from ui.style.theme import THEMES
from ui.waits import wait_painted, wait_until

EXPOSE_TIMEOUT = 10.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ui.shell.screenshot",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--profile", type=Path, required=True, metavar="DIR", help="profile folder")
    p.add_argument("--name", default="Ada", help="display name if the profile is new")
    p.add_argument("--listen", action="append", default=[], metavar="MULTIADDR",
                   help="listen address (repeatable; default: all interfaces)")
    p.add_argument("--details", action="store_true", help="unfold the identity details")
    p.add_argument("--scene", choices=("empty", "conversation"), default="empty",
                   help="what to show: a new profile, or friends, a conversation and a room")
    p.add_argument("--size", type=_size, default=None, metavar="WxH",
                   help="the window's size, e.g. 800x600 (default: as Kith opens)")
    p.add_argument("--theme", choices=THEMES, default=None,
                   help="force a theme (default: the profile's setting)")
    return p


def _size(text: str) -> QSize:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 800x600")
    return QSize(int(width), int(height))


def prepare_profile(path: Path, name: str, theme: str | None = None) -> None:
    """Initialise the profile with ``name`` so the run skips the first-run dialog; ``theme``
    is saved in it, so Kith starts in it as a person's Kith would."""
    with Profile.open(path) as profile:
        if not profile.is_initialised:
            profile.initialise(name)
        if theme is not None and profile.settings.theme != theme:
            profile.settings = profile.settings.with_changes(theme=theme)
            profile.save_settings()


class _HeadlessKithApp(KithApp):
    """Problems go to standard error instead of message boxes nobody can click."""

    def show_message(self, title: str, text: str) -> QMessageBox | None:
        print(f"screenshot: {title}: {text}", file=sys.stderr)
        return None


async def shoot(args: argparse.Namespace) -> int:
    kith = _HeadlessKithApp(args.profile, tuple(args.listen))
    teardown: Callable[[], Awaitable[None]] | None = None
    try:
        if not await kith.start():
            return 1
        assert kith.window is not None and kith.state is not None
        if kith.state.presence is not Presence.ONLINE:
            print(f"screenshot: the peer did not come online: {kith.state.error}", file=sys.stderr)
            return 1
        window = kith.window
        if args.size is not None:
            window.setMinimumSize(window.minimumSize().boundedTo(args.size))
            window.resize(args.size)
        if args.scene == "conversation":
            teardown = await stage_conversation(kith)
        if args.details:
            window.identity_panel.set_expanded(True)
        await wait_until(
            lambda: window.windowHandle() is not None and window.windowHandle().isExposed(),
            EXPOSE_TIMEOUT, "the window to be exposed",
        )
        # The lists load after the node is up: a picture taken before shows no rooms.
        await wait_until(lambda: window.lists_loaded, EXPOSE_TIMEOUT, "the lists to load")
        await wait_painted(window)  # a paint after the online state has been applied
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.out), "PNG"):
            print(f"screenshot: cannot write {args.out}", file=sys.stderr)
            return 1
        print(f"screenshot: {window.width()}x{window.height()} -> {args.out}")
        return 0
    finally:
        if teardown is not None:
            await teardown()
        await kith.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Library warnings (a friend redialling while the scene closes) are not the picture's.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        prepare_profile(args.profile, args.name, args.theme)
    except (ProfileError, ValueError) as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 1
    app = cast(QApplication | None, QApplication.instance()) or QApplication(sys.argv[:1])
    configure_application(app)
    loop = qasync.QEventLoop(app)
    try:
        return int(loop.run_until_complete(shoot(args)))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
