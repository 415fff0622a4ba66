"""A profile directory: identity key, settings, database and log, guarded by a lock.

One directory per person. Only one Kith may use a profile at a time: the lock is an OS file
lock (released by the kernel even when the process is killed), so a second Kith gets a clear
``ProfileInUse`` instead of two writers corrupting the database.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import platformdirs

from app.core.files import MAX_SIZE as MAX_FILE_SIZE
from app.core.identity import Identity, InvalidKeyFile, is_valid_peer_id
from app.core.invite import clean_display_name

KEY_FILE = "identity.key"
SETTINGS_FILE = "settings.json"
DB_FILE = "kith.db"
LOG_FILE = "kith.log"
LOCK_FILE = "kith.lock"


class ProfileError(Exception):
    """A profile problem with a message meant for the user."""


class ProfileInUse(ProfileError):
    pass


class ProfileCorrupt(ProfileError):
    pass


def default_profile_dir() -> Path:
    return Path(platformdirs.user_data_dir("kith", appauthor=False)) / "default"


def default_download_dir() -> Path:
    """Where accepted files go unless the user chose a folder (``Settings.download_dir``)."""
    return Path(platformdirs.user_downloads_dir()) / "Kith"


THEMES = ("system", "light", "dark")
MAX_RELAYS = 16
MAX_RELAY_LENGTH = 256
MAX_GEOMETRY_LENGTH = 4096
MAX_CONVERSATION_KEY_LENGTH = 128  # a peer id or a room id in hex, with room to spare


_RELAY_SHAPE = re.compile(r"/ip[46]/[^/\s]+/tcp/\d{1,5}/p2p/([1-9A-HJ-NP-Za-km-z]+)")


MAX_MAILBOXES = 4  # as many as a signed mailbox record carries (app.core.mailbox)


def _check_relays(value: Any, what: str = "relay", plural: str = "relays") -> list[str]:
    """Peer multiaddrs in the one shape the node accepts: /ip4|ip6/HOST/tcp/PORT/p2p/PEER_ID.

    Relays and DHT bootstrap peers share it; ``what`` and ``plural`` name them in messages.
    """
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ValueError(f"{plural} must be a list of addresses")
    relays = [r.strip() for r in value if r.strip()]
    if len(relays) > MAX_RELAYS:
        raise ValueError(f"at most {MAX_RELAYS} {plural} can be listed")
    for relay in relays:
        shape = _RELAY_SHAPE.fullmatch(relay)
        if (shape is None or len(relay) > MAX_RELAY_LENGTH
                or not is_valid_peer_id(shape.group(1))):
            raise ValueError(
                f"{relay[:60]!r} is not a {what} address: it looks like /ip4/203.0.113.5/tcp/"
                f"4001/p2p/12D3Koo… (at most {MAX_RELAY_LENGTH} characters)")
    return relays


@dataclass
class Settings:
    """User settings persisted as JSON; unknown keys from newer versions are kept.

    Relays, serving as a relay, DHT bootstrap peers, serving the DHT, LAN discovery, serving a
    mailbox and our mailboxes apply when the node starts (the window passes them to
    ``NodeConfig``).
    """

    display_name: str = ""
    listen_port: int = 0
    download_dir: str = ""                 # empty: the platform's downloads folder / Kith
    auto_accept_verified_bytes: int = 0    # files from verified contacts up to this; 0 = off
    notifications: bool = True
    theme: str = "system"                  # one of THEMES
    relays: list[str] = field(default_factory=list)  # multiaddrs of relays to use
    serve_relay: bool = False
    relay_contacts_only: bool = False      # serving: only contacts may hold a slot
    bootstrap: list[str] = field(default_factory=list)  # DHT bootstrap peers' multiaddrs
    serve_dht: bool = False                # answer the DHT for others (a bootstrap peer)
    lan_discovery: bool = True
    serve_mailbox: bool = False            # keep messages for contacts while they are offline
    mailboxes: list[str] = field(default_factory=list)  # mailboxes keeping ours (multiaddrs)
    window_geometry: str = ""              # base64 of QWidget.saveGeometry()
    notification_sound: bool = False      # a sound with each notification
    close_to_tray: bool = False            # closing the window keeps Kith running in the tray
    one_chat_list: bool = False            # rooms and contacts in one list, newest first
    last_conversation: str = ""            # reopened at start: a peer id or a room id
    read_receipts: bool = True             # send them, and show the ones received
    typing_indicators: bool = True         # send "typing", and show others'
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f for f in cls.__dataclass_fields__ if f != "extra")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        if not isinstance(data, dict):
            raise ValueError("settings must be a JSON object")
        known = {f: data[f] for f in cls.field_names() if f in data}
        if not isinstance(known.get("display_name", ""), str):
            raise ValueError("display_name must be text")
        port = known.get("listen_port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError("listen_port must be a port number")
        if not isinstance(known.get("download_dir", ""), str):
            raise ValueError("download_dir must be text")
        limit = known.get("auto_accept_verified_bytes", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError("auto_accept_verified_bytes must be a number of bytes")
        for flag in ("notifications", "serve_relay", "relay_contacts_only", "serve_dht",
                     "lan_discovery", "notification_sound", "close_to_tray", "one_chat_list",
                     "serve_mailbox", "read_receipts", "typing_indicators"):
            if not isinstance(known.get(flag, False), bool):
                raise ValueError(f"{flag} must be true or false")
        if known.get("theme", "system") not in THEMES:
            raise ValueError("theme must be one of " + ", ".join(THEMES))
        if "relays" in known:
            known["relays"] = _check_relays(known["relays"])
        if "bootstrap" in known:
            known["bootstrap"] = _check_relays(known["bootstrap"], "bootstrap peer",
                                               "bootstrap peers")
        if "mailboxes" in known:
            known["mailboxes"] = _check_relays(known["mailboxes"], "mailbox", "mailboxes")
            if len(known["mailboxes"]) > MAX_MAILBOXES:
                raise ValueError(f"at most {MAX_MAILBOXES} mailboxes can be listed")
        geometry = known.get("window_geometry", "")
        if not isinstance(geometry, str) or len(geometry) > MAX_GEOMETRY_LENGTH:
            raise ValueError("window_geometry must be short text")
        last = known.get("last_conversation", "")
        if not isinstance(last, str) or len(last) > MAX_CONVERSATION_KEY_LENGTH:
            raise ValueError("last_conversation must be a peer id or a room id")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(extra=extra, **known)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}

    def with_changes(self, **changes: Any) -> Settings:
        """A validated copy with ``changes`` applied; ``ValueError`` in plain words.

        What the user changes is held to more than what a saved file is (``from_json``): a
        name is cleaned, a download folder must be an absolute path to a folder (this looks at
        the disk), an auto-accept size must be one Kith can send.
        """
        unknown = set(changes) - set(self.field_names())
        if unknown:
            raise ValueError("unknown settings: " + ", ".join(sorted(unknown)))
        if "display_name" in changes:
            changes["display_name"] = clean_display_name(changes["display_name"])
        if "download_dir" in changes:
            changes["download_dir"] = clean_download_dir(changes["download_dir"])
        if "auto_accept_verified_bytes" in changes:
            limit = changes["auto_accept_verified_bytes"]
            if not isinstance(limit, int) or isinstance(limit, bool) or not (
                    0 <= limit <= MAX_FILE_SIZE):
                raise ValueError("the auto-accept size must be 0 (off) or a number of bytes")
        return Settings.from_json({**self.to_json(), **changes})


def clean_download_dir(text: object) -> str:
    """A download folder as saved: "" (the default folder) or an absolute path that is not
    a file (it may not exist yet: it is created when a file is accepted into it)."""
    if not isinstance(text, str):
        raise ValueError("the download folder must be a path")
    if not text.strip():
        return ""
    path = Path(text.strip()).expanduser()
    if not path.is_absolute():
        raise ValueError("the download folder must be an absolute path")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    return str(path)


def _write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _FileLock:
    """An exclusive, non-blocking OS lock on a file, held until ``release``."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[bytes] | None = None
        fh = open(path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()).encode())
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Profile:
    """An opened, locked profile directory. Use ``Profile.open`` and ``close``."""

    def __init__(self, path: Path, lock: _FileLock) -> None:
        self.path = path
        self._lock = lock
        self._identity: Identity | None = None
        self.settings = self._load_settings()

    @classmethod
    def open(cls, path: Path | None = None) -> Profile:
        """Create the directory if needed and take its lock; raises ``ProfileError``."""
        path = (path or default_profile_dir()).expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ProfileError(f"Cannot create the profile folder {path}: {exc.strerror}") from exc
        if not path.is_dir():
            raise ProfileError(f"The profile path {path} is not a folder.")
        try:
            lock = _FileLock(path / LOCK_FILE)
        except PermissionError as exc:
            raise ProfileError(f"The profile folder {path} is not writable.") from exc
        except OSError as exc:
            raise ProfileInUse(
                f"The profile {path} is already in use by another Kith. "
                "Close that one first, or start this one with --profile pointing elsewhere."
            ) from exc
        try:
            return cls(path, lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Profile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    @property
    def is_initialised(self) -> bool:
        """True once a display name was chosen and an identity exists (first run is over)."""
        return self.key_path.exists() and bool(self.settings.display_name)

    def initialise(self, display_name: str) -> Identity:
        """First run: keep the chosen name and create the identity if there is none yet."""
        self.settings.display_name = clean_display_name(display_name)
        self.save_settings()
        return self.identity

    @property
    def identity(self) -> Identity:
        """The identity key, created on first use (mode 0600) and the same on every start."""
        if self._identity is None:
            self._identity = self._load_or_create_identity()
        return self._identity

    def _load_or_create_identity(self) -> Identity:
        path = self.key_path
        if path.exists():
            try:
                data = path.read_bytes()
                return Identity.from_key_file(data)
            except OSError as exc:
                raise ProfileCorrupt(
                    f"Cannot read the identity key {path}: {exc.strerror}."
                ) from exc
            except InvalidKeyFile as exc:
                raise ProfileCorrupt(
                    f"The identity key {path} is damaged ({exc}). Restore it from a backup; "
                    "deleting it gives this profile a new identity that your contacts do not know."
                ) from exc
        identity = Identity.generate()
        _write_atomically(path, identity.to_key_file(), mode=0o600)
        return identity

    def _load_settings(self) -> Settings:
        path = self.path / SETTINGS_FILE
        if not path.exists():
            return Settings()
        try:
            return Settings.from_json(json.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ProfileCorrupt(f"Cannot read the settings {path}: {exc.strerror}.") from exc
        except (ValueError, TypeError) as exc:
            raise ProfileCorrupt(
                f"The settings file {path} is damaged ({exc}). Fix or delete it to start over "
                "with default settings; your identity and messages are kept."
            ) from exc

    def reload(self) -> None:
        """Read the settings and identity again (after an import replaced the files)."""
        self._identity = None
        self.settings = self._load_settings()

    def save_settings(self) -> None:
        text = json.dumps(self.settings.to_json(), indent=2, sort_keys=True) + "\n"
        _write_atomically(self.path / SETTINGS_FILE, text.encode("utf-8"))
