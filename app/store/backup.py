"""Profile export and import: one passphrase-encrypted file that moves you to a new computer.

The file holds everything that makes you *you* in Kith: the identity key, the settings and a
consistent snapshot of the database (contacts, rooms, history). Whoever has the file and the
passphrase can be you, so it is encrypted with a key stretched from the passphrase by Argon2id
(PyNaCl, MODERATE limits: about a second and 256 MiB, which makes guessing expensive).

Layout::

    b"KITHBAK1" | salt (16) | opslimit (u32 BE) | memlimit (u64 BE) | secretstream header (24)
    | chunk* (XChaCha20-Poly1305 secretstream; each CHUNK plaintext bytes + 17, the last tagged
      FINAL)

The payload is a tar of exactly three members (``identity.key``, ``settings.json``,
``kith.db``). It is streamed in chunks, so a large history never sits in memory, and the
file's header is the first chunk's associated data, so changing the salt or the limits fails
like a wrong passphrase. A truncated file misses the FINAL tag and is refused.

Import decrypts into a staging folder inside the target and moves the files into place only
once the whole stream verified, the key parsed and the database opened: a wrong passphrase or a
damaged file leaves the target as it was.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import struct
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import nacl.pwhash
from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from nacl.utils import random as random_bytes

from app.core.identity import Identity, InvalidKeyFile
from app.store.profile import DB_FILE, KEY_FILE, SETTINGS_FILE, Profile, Settings

MAGIC = b"KITHBAK1"
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
_PARAMS = struct.Struct(">IQ")
HEADER_BYTES = len(MAGIC) + SALT_BYTES + _PARAMS.size
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
CHUNK = 64 * 1024

OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
# What an imported file may ask for: a crafted header must not make us allocate 4 GiB.
_OPS_RANGE = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE)
_MEM_RANGE = (nacl.pwhash.argon2id.MEMLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE)

MIN_PASSPHRASE = 8
MEMBERS = (KEY_FILE, SETTINGS_FILE, DB_FILE)
_MEMBER_LIMITS = {KEY_FILE: 64 * 1024, SETTINGS_FILE: 4 * 1024 * 1024, DB_FILE: 1 << 40}
SUFFIX = ".kithbackup"

WRONG_PASSPHRASE = "The passphrase is wrong, or the file is not a Kith backup."
DAMAGED = "The backup file is damaged or was changed after it was made. Nothing was imported."
INCOMPLETE = "The backup file is incomplete (cut short while copying?). Nothing was imported."
NOT_KITH = "The file is not a Kith backup."


class BackupError(Exception):
    """An export or import problem, with a message meant for the user."""


def check_passphrase(passphrase: str) -> None:
    """Export's rule: long enough that Argon2id has something to protect."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(
            f"Choose a passphrase of at least {MIN_PASSPHRASE} characters: anyone with the file "
            "and the passphrase can become you."
        )


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES, passphrase.encode("utf-8"), salt,
        opslimit=opslimit, memlimit=memlimit,
    )


# -- export -----------------------------------------------------------------------------------


class _EncryptingWriter(io.RawIOBase):
    """A write-only file object: whatever tar writes leaves encrypted, CHUNK bytes at a time."""

    def __init__(self, out: IO[bytes], key: bytes, header: bytes) -> None:
        super().__init__()
        self._out = out
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        out.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key))
        self._ad: bytes | None = header  # binds the file header to the first chunk
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._buffer += data
        while len(self._buffer) > CHUNK:  # keep at least one byte for the FINAL chunk
            self._push(bytes(self._buffer[:CHUNK]), TAG_MESSAGE)
            del self._buffer[:CHUNK]
        return len(data)

    def _push(self, chunk: bytes, tag: int) -> None:
        self._out.write(sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, chunk, self._ad, tag))
        self._ad = None

    def finish(self) -> None:
        self._push(bytes(self._buffer), TAG_FINAL)
        self._buffer.clear()


def _snapshot_database(db: Path, into: Path) -> None:
    """A consistent copy while the node may be writing: SQLite's online backup over WAL."""
    src = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(into)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def export_profile(
    profile_dir: Path, dest: Path, passphrase: str, *,
    opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT,
) -> int:
    """Write the profile in ``profile_dir`` to ``dest``; returns the file's size in bytes.

    Safe while Kith runs on that profile (the database is read through its own connection).
    Slow on purpose (Argon2id): call it off the interface thread.
    """
    check_passphrase(passphrase)
    profile_dir = Path(profile_dir)
    key_path = profile_dir / KEY_FILE
    if not key_path.exists():
        raise BackupError(f"There is no identity in {profile_dir} to export.")
    dest = Path(dest)
    salt = random_bytes(SALT_BYTES)
    header = MAGIC + salt + _PARAMS.pack(opslimit, memlimit)
    key = _derive(passphrase, salt, opslimit, memlimit)
    try:
        snapshot_fd, snapshot_name = tempfile.mkstemp(dir=profile_dir, prefix=".export-",
                                                      suffix=".db")
        os.close(snapshot_fd)
        out_fd, out_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    except OSError as exc:
        raise BackupError(f"Cannot write the backup: {exc.strerror}.") from exc
    snapshot = Path(snapshot_name)
    try:
        db = profile_dir / DB_FILE
        if db.exists():
            _snapshot_database(db, snapshot)
        with os.fdopen(out_fd, "wb") as out:
            out.write(header)
            writer = _EncryptingWriter(out, key, header)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(key_path, KEY_FILE, recursive=False)
                settings = profile_dir / SETTINGS_FILE
                if settings.exists():
                    tar.add(settings, SETTINGS_FILE, recursive=False)
                if db.exists():
                    tar.add(snapshot, DB_FILE, recursive=False)
            writer.finish()
            out.flush()
            os.fsync(out.fileno())
        os.chmod(out_name, 0o600)
        os.replace(out_name, dest)
    except (OSError, sqlite3.Error) as exc:
        Path(out_name).unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BackupError(f"Cannot write the backup: {reason}.") from exc
    except BaseException:
        Path(out_name).unlink(missing_ok=True)
        raise
    finally:
        snapshot.unlink(missing_ok=True)
    return dest.stat().st_size


# -- import -----------------------------------------------------------------------------------


class _DecryptingReader(io.RawIOBase):
    """A read-only file object over the decrypted stream; authentication failures raise."""

    def __init__(self, src: IO[bytes], key: bytes, header: bytes) -> None:
        super().__init__()
        self._src = src
        stream_header = src.read(STREAM_HEADER_BYTES)
        if len(stream_header) != STREAM_HEADER_BYTES:
            raise BackupError(NOT_KITH)
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, stream_header, key)
        self._ad: bytes | None = header
        self._buffer = b""
        self.finished = False
        self._first = True

    def readable(self) -> bool:
        return True

    def _pull(self) -> None:
        sealed = self._src.read(CHUNK + ABYTES)
        if not sealed:
            raise BackupError(WRONG_PASSPHRASE if self._first else INCOMPLETE)
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, sealed, self._ad)
        except (CryptoError, ValueError, RuntimeError) as exc:
            raise BackupError(WRONG_PASSPHRASE if self._first else DAMAGED) from exc
        self._ad = None
        self._first = False
        self._buffer += plain
        if tag == TAG_FINAL:
            self.finished = True
            if self._src.read(1):
                raise BackupError(DAMAGED)  # bytes after the end
        elif len(sealed) != CHUNK + ABYTES:
            raise BackupError(INCOMPLETE)

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self.finished:
            self._pull()
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def drain(self) -> None:
        """Read to the FINAL tag: tar stops at its end marker, the file must end there too."""
        while not self.finished:
            self._pull()
        self._buffer = b""


def read_header(src: IO[bytes]) -> tuple[bytes, bytes, int, int]:
    """(header bytes, salt, opslimit, memlimit), refusing files that are not backups."""
    header = src.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise BackupError(NOT_KITH)
    salt = header[len(MAGIC):len(MAGIC) + SALT_BYTES]
    opslimit, memlimit = _PARAMS.unpack(header[len(MAGIC) + SALT_BYTES:])
    if not (_OPS_RANGE[0] <= opslimit <= _OPS_RANGE[1]
            and _MEM_RANGE[0] <= memlimit <= _MEM_RANGE[1]):
        raise BackupError(NOT_KITH)
    return header, salt, opslimit, memlimit


def _check_target(profile_dir: Path) -> None:
    for name in (KEY_FILE, DB_FILE, DB_FILE + "-wal"):
        if (profile_dir / name).exists():
            raise BackupError(
                f"The profile folder {profile_dir} already holds a Kith identity. Importing "
                "would replace it; choose an empty folder (for example with --profile) instead."
            )


def _extract(reader: _DecryptingReader, staging: Path) -> set[str]:
    """Copy the three known members into ``staging``; anything else means a foreign file."""
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                name = member.name
                if name not in MEMBERS or name in seen or not member.isreg():
                    raise BackupError(NOT_KITH)
                if member.size > _MEMBER_LIMITS[name]:
                    raise BackupError(NOT_KITH)
                source = tar.extractfile(member)
                if source is None:
                    raise BackupError(NOT_KITH)
                fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                seen.add(name)
    except tarfile.TarError as exc:
        raise BackupError(NOT_KITH) from exc
    reader.drain()
    if KEY_FILE not in seen:
        raise BackupError(NOT_KITH)
    return seen


def _validate(staging: Path, names: set[str]) -> None:
    try:
        Identity.from_key_file((staging / KEY_FILE).read_bytes())
        if SETTINGS_FILE in names:
            Settings.from_json(json.loads((staging / SETTINGS_FILE).read_text("utf-8")))
        if DB_FILE in names:
            conn = sqlite3.connect(f"{(staging / DB_FILE).as_uri()}?mode=ro", uri=True)
            try:
                row = conn.execute("PRAGMA quick_check").fetchone()
            finally:
                conn.close()
            if row is None or row[0] != "ok":
                raise BackupError(DAMAGED)
    except (InvalidKeyFile, ValueError, sqlite3.Error) as exc:
        raise BackupError(DAMAGED) from exc


def restore_into(profile: Profile, source: Path, passphrase: str,
                 progress: Callable[[str], None] | None = None) -> str:
    """Import ``source`` into an opened (locked) profile that has no identity yet.

    Returns the imported peer id; the profile's settings and identity are reloaded. Raises
    ``BackupError`` in plain words, leaving the folder as it was.
    """
    _check_target(profile.path)
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BackupError(f"Cannot read {source}: {exc.strerror}.") from exc
    staging = Path(tempfile.mkdtemp(dir=profile.path, prefix=".import-"))
    try:
        with src:
            header, salt, opslimit, memlimit = read_header(src)
            if progress is not None:
                progress("deriving")
            key = _derive(passphrase, salt, opslimit, memlimit)
            reader = _DecryptingReader(src, key, header)
            names = _extract(reader, staging)
        _validate(staging, names)
        _check_target(profile.path)  # nothing raced us meanwhile
        for name in (SETTINGS_FILE, DB_FILE, KEY_FILE):  # the key last: it marks "initialised"
            if name in names:
                os.replace(staging / name, profile.path / name)
    except OSError as exc:
        raise BackupError(f"Cannot import the backup: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    profile.reload()
    return profile.identity.peer_id


def import_profile(source: Path, profile_dir: Path | None, passphrase: str) -> str:
    """Import into a profile folder nobody is using (taking its lock); returns the peer id."""
    with Profile.open(profile_dir) as profile:
        return restore_into(profile, source, passphrase)
