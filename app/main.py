"""The ``kith`` command: the desktop app, ``kith node`` (headless), and ``kith --version``.

Kept free of Qt and libp2p imports so that ``kith node`` and ``kith --version`` start fast and
work without a display.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app import __version__
from app.memory_policy import keep_large_blocks

NO_DISPLAY_HELP = """\
Kith is a desktop app and needs a graphical session, but no display was found
(neither DISPLAY nor WAYLAND_DISPLAY is set).

  * Start it from your desktop (menu or double-click), or from a terminal inside it.
  * On a machine without a screen, run it on a virtual one:   xvfb-run -a kith
  * Or run the same peer headless, speaking JSON lines:         kith node --profile DIR
    (see docs/cli.md)
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="profile folder (default: the platform's user data folder, e.g. ~/.local/share/kith)",
    )
    parser.add_argument(
        "--listen", action="append", default=[], metavar="MULTIADDR",
        help="listen address such as /ip4/127.0.0.1/tcp/0 (repeatable; default: all interfaces)",
    )


def gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kith", description="Peer-to-peer chat and file sharing.",
        epilog="Run 'kith node --help' for the headless peer.",
    )
    parser.add_argument("--version", action="version", version=f"kith {__version__}")
    _common(parser)
    parser.add_argument(
        "--import", dest="import_file", type=Path, metavar="FILE",
        help="import a profile exported from Kith into the (empty) --profile folder and exit; "
             "the passphrase is read from KITH_PASSPHRASE or asked for",
    )
    parser.add_argument(
        "--demo", action="store_true",
        help="try Kith alone: two windows (Ada and Bob) on throw-away profiles, already "
             "contacts and in a room together; everything is deleted on exit",
    )
    parser.add_argument("link", nargs="?", help="a kith: link to open")
    return parser


def node_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kith node", description="Run a headless Kith peer speaking JSON lines on stdio.",
    )
    _common(parser)
    parser.add_argument("--name", help="display name (used when the profile is created)")
    parser.add_argument(
        "--relay", action="append", default=[], metavar="MULTIADDR",
        help="a circuit relay v2 to reserve a slot on, /ip4/H/tcp/P/p2p/ID (repeatable)",
    )
    parser.add_argument(
        "--serve-relay", action="store_true", help="serve as a circuit relay v2 for others",
    )
    parser.add_argument(
        "--relay-contacts-only", action="store_true",
        help="with --serve-relay: only contacts may reserve a slot on this relay",
    )
    parser.add_argument(
        "--bootstrap", action="append", default=[], metavar="MULTIADDR",
        help="a Kademlia DHT bootstrap peer, /ip4/H/tcp/P/p2p/ID (repeatable); none: no lookups",
    )
    parser.add_argument(
        "--serve-dht", action="store_true",
        help="answer the Kademlia DHT for others (be a bootstrap peer); otherwise a client only",
    )
    parser.add_argument(
        "--serve-mailbox", action="store_true",
        help="keep sealed messages for contacts who register while they are offline",
    )
    parser.add_argument(
        "--mailbox", action="append", default=[], metavar="MULTIADDR",
        help="a mailbox that keeps our messages while we are offline, /ip4/H/tcp/P/p2p/ID "
             "(repeatable, at most 4; the mailbox must have us as a contact)",
    )
    parser.add_argument(
        "--lan", action="store_true",
        help="LAN discovery (mDNS) on the non-loopback IPv4 addresses listened on",
    )
    return parser


def has_display() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main_node(argv: list[str]) -> int:
    from app.cli import JsonLines, run_node
    from app.client import KithClient
    from app.core.config import NodeConfig
    from app.core.invite import clean_display_name
    from app.logs import setup_logging
    from app.store.profile import Profile, ProfileError

    parser = node_parser()
    args = parser.parse_args(argv)
    if args.relay_contacts_only and not args.serve_relay:
        parser.error("--relay-contacts-only needs --serve-relay")
    out = JsonLines(sys.stdout)
    try:
        profile = Profile.open(args.profile)
    except ProfileError as exc:
        out.error(str(exc))
        return 1
    with profile:
        setup_logging(profile.log_path, stderr=True)
        try:
            if args.name is not None:
                name = clean_display_name(args.name)
                if name != profile.settings.display_name:
                    profile.initialise(name)
            elif not profile.is_initialised:
                profile.initialise("Kith node")
        except (ProfileError, ValueError) as exc:
            out.error(str(exc))
            return 1
        client = KithClient(
            profile,
            NodeConfig(
                listen=tuple(args.listen),
                relays=tuple(args.relay),
                serve_relay=args.serve_relay,
                relay_contacts_only=args.relay_contacts_only,
                bootstrap=tuple(args.bootstrap),
                serve_dht=args.serve_dht,
                lan_discovery=args.lan,
                serve_mailbox=args.serve_mailbox,
                mailboxes=tuple(args.mailbox),
            ),
        )
        return run_node(client)


def main_import(source: Path, profile_dir: Path | None) -> int:
    """``kith --import FILE``: a new computer takes over an old one, without a window."""
    import getpass

    from app.store.backup import BackupError, import_profile
    from app.store.profile import ProfileError

    passphrase = os.environ.get("KITH_PASSPHRASE")
    if passphrase is None:
        try:
            passphrase = getpass.getpass("Passphrase for the backup: ")
        except (EOFError, KeyboardInterrupt):
            return 1
    try:
        peer_id = import_profile(source, profile_dir, passphrase)
    except (BackupError, ProfileError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"Imported {peer_id}. Start Kith with the same --profile to use it.\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    keep_large_blocks()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        return main_node(argv[1:])
    args = gui_parser().parse_args(argv)
    if args.import_file is not None:
        return main_import(args.import_file, args.profile)
    if not has_display():
        sys.stderr.write(NO_DISPLAY_HELP)
        return 2
    if args.demo:
        from ui.shell.demo import run_demo

        return run_demo()
    from ui.shell.app import run_gui

    return run_gui(profile_dir=args.profile, listen=tuple(args.listen), link=args.link)


if __name__ == "__main__":
    sys.exit(main())
