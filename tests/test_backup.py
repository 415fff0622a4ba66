"""Profile export and import: a new computer takes over an old one, and bad files are refused.

The round trip runs real peers on 127.0.0.1: the export is taken while the node is running
(the database snapshot must be consistent under a live writer), then a node started on the
imported folder must be the same person with the same contacts, history and rooms.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import nacl.pwhash
import pytest

from app.store import backup
from app.store.backup import BackupError, export_profile, import_profile
from app.store.profile import KEY_FILE, Profile
from tests.peers import Peer, befriend, peers

PASS = "correct horse battery"
# The format's own limits are MODERATE (a second each way); the refusal tests need no strength.
FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
        "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def _small_profile(path: Path, name: str = "Ada") -> Path:
    with Profile.open(path) as profile:
        profile.initialise(name)
        profile.settings.theme = "dark"
        profile.save_settings()
    return path


def test_round_trip_brings_identity_contacts_history_and_rooms(tmp_path: Path) -> None:
    dest = tmp_path / "ada.kithbackup"

    async def before() -> dict[str, object]:
        async with peers(tmp_path, "Ada", "Bob") as (ada, bob):
            await befriend(ada, bob)
            await ada.client.send(bob.peer_id, "hello from the old laptop")
            await bob.client.send(ada.peer_id, "hi Ada")
            await ada.wait_event("message")
            room = await ada.client.create_room("Book club", "Monthly")
            await ada.client.post(room.room_id, "first post")
            # Exported while the node runs: the snapshot must not need the node to stop.
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: export_profile(ada.path, dest, PASS))
            return {
                "peer_id": ada.peer_id,
                "contacts": [(c.peer_id, c.name) for c in await ada.client.contacts()],
                "history": [m.text for m in await ada.client.history(bob.peer_id)],
                "rooms": [(r.room_id, r.name) for r in await ada.client.rooms()],
                "posts": [p.text for p in await ada.client.room_history(room.room_id)],
                "room_id": room.room_id,
            }

    old = asyncio.run(before())
    assert dest.read_bytes().startswith(b"KITHBAK1")
    assert b"hello from the old laptop" not in dest.read_bytes()

    new_dir = tmp_path / "new-computer"
    assert import_profile(dest, new_dir, PASS) == old["peer_id"]

    async def after() -> None:
        peer = await Peer(new_dir, "ignored").start()
        try:
            assert peer.peer_id == old["peer_id"]
            assert peer.profile.settings.display_name == "Ada"
            assert [(c.peer_id, c.name) for c in await peer.client.contacts()] == old["contacts"]
            bob_id = old["contacts"][0][0]
            assert [m.text for m in await peer.client.history(bob_id)] == old["history"]
            assert [(r.room_id, r.name) for r in await peer.client.rooms()] == old["rooms"]
            posts = await peer.client.room_history(str(old["room_id"]))
            assert [p.text for p in posts] == old["posts"] == ["first post"]
        finally:
            await peer.stop()

    asyncio.run(after())


def test_a_wrong_passphrase_is_refused_clearly(tmp_path: Path) -> None:
    source = _small_profile(tmp_path / "old")
    dest = tmp_path / "b.kithbackup"
    export_profile(source, dest, PASS, **FAST)
    target = tmp_path / "new"
    with pytest.raises(BackupError, match="The passphrase is wrong, or the file is not a Kith"):
        import_profile(dest, target, "not the passphrase")
    assert not (target / KEY_FILE).exists()
    # The same folder still takes the right passphrase afterwards.
    import_profile(dest, target, PASS)
    with Profile.open(target) as profile:
        assert profile.settings.theme == "dark"
        assert profile.is_initialised


@pytest.mark.parametrize("where", ["header", "middle", "end", "truncated", "appended"])
def test_a_tampered_file_is_refused(tmp_path: Path, where: str) -> None:
    source = _small_profile(tmp_path / "old")
    dest = tmp_path / "b.kithbackup"
    export_profile(source, dest, PASS, **FAST)
    data = bytearray(dest.read_bytes())
    if where == "header":
        data[10] ^= 1  # the salt: a different key, like a wrong passphrase
    elif where == "middle":
        data[len(data) // 2] ^= 1
    elif where == "end":
        data[-1] ^= 1
    elif where == "truncated":
        del data[-40:]
    else:
        data += b"extra"
    dest.write_bytes(bytes(data))
    target = tmp_path / "new"
    with pytest.raises(BackupError):
        import_profile(dest, target, PASS)
    assert sorted(p.name for p in target.iterdir()) == ["kith.lock"]  # nothing left behind


def test_a_large_history_streams_in_many_chunks(tmp_path: Path) -> None:
    source = _small_profile(tmp_path / "old")
    (source / "kith.db").unlink(missing_ok=True)
    import sqlite3

    conn = sqlite3.connect(source / "kith.db")
    conn.execute("CREATE TABLE blob (b BLOB)")
    conn.executemany("INSERT INTO blob VALUES (?)",
                     [(bytes([i % 256]) * 50_000,) for i in range(12)])
    conn.commit()
    conn.close()
    dest = tmp_path / "b.kithbackup"
    export_profile(source, dest, PASS, **FAST)
    assert dest.stat().st_size > 5 * backup.CHUNK
    target = tmp_path / "new"
    import_profile(dest, target, PASS)
    conn = sqlite3.connect(target / "kith.db")
    assert conn.execute("SELECT count(*), sum(length(b)) FROM blob").fetchone() == (12, 600_000)
    conn.close()


def test_refuses_a_folder_that_already_has_an_identity(tmp_path: Path) -> None:
    source = _small_profile(tmp_path / "old")
    dest = tmp_path / "b.kithbackup"
    export_profile(source, dest, PASS, **FAST)
    other = _small_profile(tmp_path / "other", "Someone else")
    key_before = (other / KEY_FILE).read_bytes()
    with pytest.raises(BackupError, match="already holds a Kith identity"):
        import_profile(dest, other, PASS)
    assert (other / KEY_FILE).read_bytes() == key_before


def test_refuses_files_that_are_not_backups_and_short_passphrases(tmp_path: Path) -> None:
    not_backup = tmp_path / "notes.txt"
    not_backup.write_text("hello")
    with pytest.raises(BackupError, match="not a Kith backup"):
        import_profile(not_backup, tmp_path / "new", PASS)
    source = _small_profile(tmp_path / "old")
    with pytest.raises(BackupError, match="at least 8 characters"):
        export_profile(source, tmp_path / "b.kithbackup", "short")
    assert not (tmp_path / "b.kithbackup").exists()


def test_unknown_members_are_refused(tmp_path: Path) -> None:
    """A file made with the right passphrase but holding ../ paths never writes outside."""
    import io
    import tarfile

    salt = b"s" * backup.SALT_BYTES
    header = backup.MAGIC + salt + backup._PARAMS.pack(FAST["opslimit"], FAST["memlimit"])
    key = backup._derive(PASS, salt, FAST["opslimit"], FAST["memlimit"])
    out = io.BytesIO()
    out.write(header)
    writer = backup._EncryptingWriter(out, key, header)
    with tarfile.open(fileobj=writer, mode="w|") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    writer.finish()
    dest = tmp_path / "evil.kithbackup"
    dest.write_bytes(out.getvalue())
    with pytest.raises(BackupError, match="not a Kith backup"):
        import_profile(dest, tmp_path / "new" / "profile", PASS)
    assert not (tmp_path / "new" / "evil").exists()


def test_cli_import(tmp_path: Path) -> None:
    source = _small_profile(tmp_path / "old")
    dest = tmp_path / "b.kithbackup"
    export_profile(source, dest, PASS, **FAST)
    target = tmp_path / "new"
    env = {"KITH_PASSPHRASE": PASS, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "--import", str(dest), "--profile", str(target)],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Imported" in done.stdout
    with Profile.open(target) as profile:
        assert profile.is_initialised
    env["KITH_PASSPHRASE"] = "wrong passphrase"
    again = subprocess.run(
        [sys.executable, "-m", "app", "--import", str(dest), "--profile", str(tmp_path / "x")],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert again.returncode == 1
    assert "The passphrase is wrong" in again.stderr
