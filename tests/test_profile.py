"""Profile directories: identity persistence, permissions, settings, the lock, damage reports."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.files import MAX_SIZE as MAX_FILE_SIZE
from app.store.db import MIGRATIONS, SCHEMA_VERSION, migrate, open_database, schema_version
from app.store.profile import (
    Profile,
    ProfileCorrupt,
    ProfileError,
    ProfileInUse,
    Settings,
    default_download_dir,
)
from app.store.transfers import TransferStore


def test_first_run_creates_a_private_identity_that_persists(profile_dir: Path) -> None:
    with Profile.open(profile_dir) as profile:
        assert not profile.is_initialised
        identity = profile.initialise("  Ada  ")
        assert profile.is_initialised
        assert profile.settings.display_name == "Ada"
    assert stat.S_IMODE(os.stat(profile_dir / "identity.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(profile_dir).st_mode) == 0o700
    with Profile.open(profile_dir) as again:
        assert again.is_initialised
        assert again.identity.peer_id == identity.peer_id
        assert again.settings.display_name == "Ada"


def test_unknown_settings_are_kept(profile_dir: Path) -> None:
    profile_dir.mkdir()
    (profile_dir / "settings.json").write_text(json.dumps({"future_option": [1, 2]}))
    with Profile.open(profile_dir) as profile:
        profile.settings.listen_port = 4001
        profile.save_settings()
    data = json.loads((profile_dir / "settings.json").read_text())
    assert data["future_option"] == [1, 2] and data["listen_port"] == 4001


def test_file_settings_round_trip_and_are_checked(profile_dir: Path) -> None:
    with Profile.open(profile_dir) as profile:
        assert (profile.settings.download_dir, profile.settings.auto_accept_verified_bytes) == (
            "", 0)
        assert default_download_dir().name == "Kith"
        profile.settings.download_dir = "/data/in"
        profile.settings.auto_accept_verified_bytes = 5000
        profile.save_settings()
    data = json.loads((profile_dir / "settings.json").read_text())
    assert "extra" not in data and data["download_dir"] == "/data/in"
    with Profile.open(profile_dir) as profile:
        assert profile.settings.download_dir == "/data/in"
        assert profile.settings.auto_accept_verified_bytes == 5000
        assert profile.settings.extra == {}
    for bad in ({"download_dir": 3}, {"auto_accept_verified_bytes": -1},
                {"auto_accept_verified_bytes": True}):
        (profile_dir / "settings.json").write_text(json.dumps(bad))
        with pytest.raises(ProfileCorrupt):
            Profile.open(profile_dir)


def test_a_changed_download_folder_is_checked_once_whichever_way_it_comes(
        tmp_path: Path) -> None:
    """``Settings.with_changes`` holds the download folder and the auto-accept size to one set
    of rules, used by ``set_file_settings`` and ``update_settings`` alike."""
    settings = Settings()
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"")
    for folder, why in (("relative/dir", "absolute"), (str(a_file), "not a folder"),
                        (3, "must be a path")):
        with pytest.raises(ValueError, match=why):
            settings.with_changes(download_dir=folder)
    for size in (-1, True, MAX_FILE_SIZE + 1):
        with pytest.raises(ValueError, match="auto-accept"):
            settings.with_changes(auto_accept_verified_bytes=size)
    home = settings.with_changes(download_dir="  ~/Inbox ")
    assert home.download_dir == str(Path.home() / "Inbox")
    assert settings.with_changes(download_dir=" ").download_dir == ""  # the default again
    assert settings.with_changes(auto_accept_verified_bytes=MAX_FILE_SIZE)


def test_second_open_in_this_process_is_refused(profile_dir: Path) -> None:
    with Profile.open(profile_dir), pytest.raises(ProfileInUse, match="already in use"):
        Profile.open(profile_dir)
    Profile.open(profile_dir).close()  # released


def test_lock_is_held_against_another_process(profile_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from app.store.profile import Profile, ProfileInUse\n"
        "try:\n    Profile.open(Path(sys.argv[1]))\nexcept ProfileInUse:\n    sys.exit(3)\n"
    )
    with Profile.open(profile_dir):
        held = subprocess.run([sys.executable, "-c", code, str(profile_dir)], check=False)
    assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", code, str(profile_dir)], check=False)
    assert free.returncode == 0


def test_damaged_settings_say_so(profile_dir: Path) -> None:
    profile_dir.mkdir()
    (profile_dir / "settings.json").write_text("{not json")
    with pytest.raises(ProfileCorrupt, match=r"settings file .* is damaged"):
        Profile.open(profile_dir)
    (profile_dir / "settings.json").write_text("{}")
    Profile.open(profile_dir).close()  # the lock was released on failure


def test_damaged_identity_key_says_so(profile_dir: Path) -> None:
    profile_dir.mkdir()
    (profile_dir / "identity.key").write_bytes(b"\x08\x01\x12\x40short")
    with Profile.open(profile_dir) as profile, pytest.raises(ProfileCorrupt, match="damaged"):
        _ = profile.identity


def test_unusable_profile_path(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(ProfileError, match=r"not a folder|Cannot create"):
        Profile.open(file)


def test_migrations_from_an_empty_database(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "kith.db")
    assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "peer_addrs"} <= tables
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    conn.close()


def test_migrations_step_by_step_keep_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO peer_addrs VALUES ('p', '/ip4/192.0.2.1/tcp/1', 'invite', 0)")
    conn.commit()
    assert migrate(conn) == 1
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM peer_addrs").fetchone()[0] == 1
    conn.close()


def test_a_stored_transfer_keeps_its_chunk_commitment_as_its_hash(tmp_path: Path) -> None:
    """Version 6: a file's hash became the SHA-256 of its chunk hashes, the old ``root``."""
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (5)")
    for script in MIGRATIONS[:5]:
        conn.executescript(script)
    conn.execute(
        "INSERT INTO transfers (transfer_id, outgoing, peer_id, name, size, chunk_size, root, "
        "hash, mime, state, created_at, updated_at) VALUES (?, 0, 'p', 'a', 1, 65536, ?, ?, 'x', "
        "'receiving', 0, 0)", (b"t" * 16, b"r" * 32, b"w" * 32))
    conn.commit()
    assert migrate(conn) == 5
    store = TransferStore(conn)
    stored = store.get(b"t" * 16)
    assert stored is not None and stored.offer.hash == b"r" * 32
    conn.close()


def test_database_from_a_newer_kith_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kith.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (999)")
    conn.commit()
    conn.close()
    with pytest.raises(ProfileCorrupt, match="newer Kith"):
        open_database(tmp_path / "kith.db")


def test_damaged_database_says_so(tmp_path: Path) -> None:
    (tmp_path / "kith.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProfileCorrupt, match="damaged or not a Kith database"):
        open_database(tmp_path / "kith.db")
