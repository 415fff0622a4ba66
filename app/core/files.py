"""File transfer payloads (``/kith/file/1.0.0``, docs/protocol.md section 9): pure, no I/O.

A file is offered with a small JSON object that commits to its content: the size, the chunk
size and ``hash``, the file's content hash (SHA-256 of the concatenated per-chunk SHA-256s).
The receiver pulls the hash list, checks it against ``hash``, then pulls chunks and checks
each against its hash, so nothing unverified is ever kept. This module parses
and builds those offers, the binary request/response frames of the pull protocol, and turns a
peer's file name into something that is only ever a name, never a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.blob import BlobRef, parse_ref

PROTOCOL_ID = "/kith/file/1.0.0"

TRANSFER_ID_SIZE = 16
HASH_SIZE = 32
DEFAULT_CHUNK_SIZE = 1 << 20          # 1 MiB
LARGE_FILE = 256 << 20                # from this size on, chunks are MAX_CHUNK_SIZE
MIN_CHUNK_SIZE = 64 << 10             # 64 KiB
MAX_CHUNK_SIZE = 4 << 20              # 4 MiB
MAX_SIZE = 1 << 50
MAX_CHUNKS = 1 << 18                  # a download's hash list (held in memory) is <= 8 MiB
MAX_OFFER_BYTES = 4096                # DM kind 2 body
MAX_ROOM_FILE_BYTES = 8192            # room kind 3 body
MAX_NAME_CHARS = 255                  # writers; readers take up to 1024 and make them safe
MAX_READ_NAME_CHARS = 1024
MAX_MIME_CHARS = 255
MAX_REASON_CHARS = 200
MAX_SAFE_NAME_BYTES = 200

OP_GET_HASHES = 1
OP_GET_CHUNKS = 2
OP_HAVE = 3
MAX_CHUNKS_PER_REQUEST = 64
MAX_HASHES_PER_FRAME = 65536
MAX_REQUEST = TRANSFER_ID_SIZE + 1 + 4 + 4 * MAX_CHUNKS_PER_REQUEST   # 277
MAX_RESPONSE = 4 + MAX_CHUNK_SIZE                                    # one chunk frame
MAX_HASHES_FRAME = MAX_HASHES_PER_FRAME * HASH_SIZE                  # 2 MiB

ACTIONS = frozenset({"decline", "cancel", "complete", "fail"})

_U32 = struct.Struct(">I")


class FileError(ValueError):
    """A file payload from a peer (or a request from the user) that cannot be used."""


class TooManyChunks(FileError):
    """An offer whose hash list is longer than a receiver holds (``MAX_CHUNKS``)."""


def new_transfer_id() -> bytes:
    return os.urandom(TRANSFER_ID_SIZE)


def hasher(data: bytes | memoryview = b"") -> Any:
    """A fresh SHA-256 hasher (the only hash of this protocol).

    SHA-256 rather than BLAKE2b: CPUs with SHA extensions (x86 since Ice Lake and Zen, ARMv8)
    hash it about twice as fast (1.7 against 0.9 GB/s here), and every byte of a transfer is
    hashed on each side.
    """
    return hashlib.sha256(data)


def chunk_hash(data: bytes | memoryview) -> bytes:
    return bytes(hasher(data).digest())


def content_hash(hashes: bytes) -> bytes:
    """A file's hash, the offer's commitment: SHA-256 over its concatenated chunk hashes.

    Not ``sha256sum`` of the file: a hash of chunk hashes lets the chunks be hashed on every
    core before the offer, and a receiver that verified every chunk knows the file's hash
    without hashing the file once more. That is one pass over the data on each side instead
    of two (Dropbox's ``content_hash`` is built the same way).
    """
    return bytes(hasher(hashes).digest())


EMPTY_HASH = content_hash(b"")  # an empty file has no chunks


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def chunk_length(index: int, size: int, chunk_size: int) -> int:
    """Bytes in chunk ``index``: ``chunk_size`` except for the last one."""
    return min(chunk_size, size - index * chunk_size)


def choose_chunk_size(size: int) -> int:
    """1 MiB; 4 MiB for files from 256 MiB (still at least 64 chunks).

    Every chunk costs a request, a worker-thread hop on each side and a database update: with
    4 MiB chunks a 1 GiB file moved about 18% faster here. Smaller files keep 1 MiB, so
    progress moves in small steps on slow links and room files spread over several holders.
    """
    return MAX_CHUNK_SIZE if size >= LARGE_FILE else DEFAULT_CHUNK_SIZE


# ---- offers and controls --------------------------------------------------------------------


@dataclass(frozen=True)
class FileOffer:
    """What the sender commits to; ``transfer`` and ``hash`` are raw bytes."""

    transfer: bytes
    name: str
    size: int
    chunk_size: int
    hash: bytes
    mime: str = "application/octet-stream"
    # Direct offers only: the file's bytes also wait, sealed, at the recipient's mailbox.
    blob: BlobRef | None = None

    @property
    def chunks(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    @property
    def id_hex(self) -> str:
        return self.transfer.hex()

    def to_json(self) -> bytes:
        value: dict[str, Any] = {
            "transfer": self.transfer.hex(), "name": self.name, "size": self.size,
            "chunk_size": self.chunk_size, "hash": self.hash.hex(), "mime": self.mime,
        }
        if self.blob is not None:
            value["blob"] = self.blob.to_json()
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_OFFER_BYTES:
            raise FileError("the file offer is too large (the name is too long)")
        return body


def _object(body: bytes, limit: int) -> dict[str, Any]:
    if len(body) > limit:
        raise FileError("the file payload is too large")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FileError("the file payload is not valid JSON") from None
    if not isinstance(value, dict):
        raise FileError("the file payload is not a JSON object")
    return value


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _hex(value: Any, size: int, what: str) -> bytes:
    """Exactly ``2 * size`` hex digits, either case (``bytes.fromhex`` alone would also skip
    whitespace and decode fewer bytes)."""
    if not isinstance(value, str) or len(value) != 2 * size:
        raise FileError(f"the offer's {what} is not {size} bytes of hex")
    if not _HEX_DIGITS.issuperset(value):
        raise FileError(f"the offer's {what} is not hex")
    return bytes.fromhex(value)


def _int(value: Any, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FileError(f"the offer's {what} is out of range")
    return value


def transfer_id_of(body: bytes, limit: int = MAX_ROOM_FILE_BYTES) -> bytes:
    return _hex(_object(body, limit).get("transfer"), TRANSFER_ID_SIZE, "transfer id")


def parse_offer(body: bytes, limit: int = MAX_OFFER_BYTES) -> FileOffer:
    """Validate an offer from a peer: every field present, typed and within its limit.

    Its name comes back as ``visible_name`` makes it: that is what is stored and shown.
    """
    value = _object(body, limit)
    name = value.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_READ_NAME_CHARS:
        raise FileError("the offer's name is missing or too long")
    name = visible_name(name)
    mime = value.get("mime", "application/octet-stream")
    if not isinstance(mime, str) or len(mime) > MAX_MIME_CHARS or not (
            mime.isascii() and mime.isprintable()):
        raise FileError("the offer's mime type is malformed")
    size = _int(value.get("size"), 0, MAX_SIZE, "size")
    chunk_size = _int(value.get("chunk_size"), MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, "chunk size")
    if chunk_count(size, chunk_size) > MAX_CHUNKS:
        raise TooManyChunks(f"the offer has more than {MAX_CHUNKS} chunks")
    offer = FileOffer(
        transfer=_hex(value.get("transfer"), TRANSFER_ID_SIZE, "transfer id"), name=name,
        size=size, chunk_size=chunk_size, hash=_hex(value.get("hash"), HASH_SIZE, "hash"),
        mime=mime, blob=parse_ref(value.get("blob")),
    )
    if size == 0 and offer.hash != EMPTY_HASH:
        raise FileError("an empty file's offer must carry the hash of nothing")
    return offer


@dataclass(frozen=True)
class FileControl:
    """decline / cancel / complete / fail, about one transfer, with an optional reason."""

    transfer: bytes
    action: str
    reason: str = ""

    def to_json(self) -> bytes:
        body: dict[str, str] = {"transfer": self.transfer.hex(), "action": self.action}
        if self.reason:
            body["reason"] = self.reason[:MAX_REASON_CHARS]
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_control(body: bytes) -> FileControl:
    value = _object(body, MAX_OFFER_BYTES)
    action = value.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise FileError("unknown file control action")
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        raise FileError("the control's reason is not text")
    transfer = _hex(value.get("transfer"), TRANSFER_ID_SIZE, "transfer id")
    return FileControl(transfer, action, visible_text(reason)[:MAX_REASON_CHARS])


# ---- the pull protocol ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileRequest:
    transfer: bytes
    op: int
    indexes: tuple[int, ...] = ()


def encode_request(transfer: bytes, op: int, indexes: tuple[int, ...] | list[int] = ()) -> bytes:
    if len(transfer) != TRANSFER_ID_SIZE:
        raise ValueError("a transfer id is 16 bytes")
    head = transfer + bytes([op])
    if op != OP_GET_CHUNKS:
        return head
    if not 1 <= len(indexes) <= MAX_CHUNKS_PER_REQUEST:
        raise ValueError("1 to 64 chunks per request")
    return head + _U32.pack(len(indexes)) + b"".join(_U32.pack(i) for i in indexes)


def decode_request(payload: bytes) -> FileRequest:
    """Parse a request frame; any deviation from the layout is a FileError (reset)."""
    if len(payload) < TRANSFER_ID_SIZE + 1 or len(payload) > MAX_REQUEST:
        raise FileError("file request of the wrong size")
    transfer, op = payload[:TRANSFER_ID_SIZE], payload[TRANSFER_ID_SIZE]
    rest = payload[TRANSFER_ID_SIZE + 1:]
    if op in (OP_GET_HASHES, OP_HAVE):
        if rest:
            raise FileError("trailing bytes in a file request")
        return FileRequest(transfer, op)
    if op != OP_GET_CHUNKS:
        raise FileError(f"unknown file request op {op}")
    if len(rest) < 4:
        raise FileError("chunk request without a count")
    (count,) = _U32.unpack_from(rest)
    if not 1 <= count <= MAX_CHUNKS_PER_REQUEST or len(rest) != 4 + 4 * count:
        raise FileError("chunk request count does not match its length")
    indexes = tuple(_U32.unpack_from(rest, 4 + 4 * i)[0] for i in range(count))
    return FileRequest(transfer, op, indexes)


def encode_chunk_header(index: int) -> bytes:
    """A chunk frame is ``index (u32) || data``; the header is written before the data."""
    return _U32.pack(index)


def decode_chunk(payload: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """(index, data); ``data`` is a view into ``payload``, not a copy of a whole chunk."""
    if len(payload) < 4:
        raise FileError("chunk frame too short")
    return _U32.unpack_from(payload)[0], memoryview(payload)[4:]


# ---- names from peers -----------------------------------------------------------------------

_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{n}" for p in ("COM", "LPT") for n in "123456789¹²³"
}
_FORBIDDEN = set('<>:"/\\|?*')


def _cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-8 bytes (never a broken character)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16 or not ext.isalnum():
        return name, ""
    return stem, "." + ext


def _fit(stem: str, ext: str, limit: int) -> str:
    if len(ext.encode("utf-8")) >= limit // 2:
        ext = ""
    return _cut_utf8(stem, limit - len(ext.encode("utf-8"))).rstrip(" .") + ext


def visible_text(text: str) -> str:
    """A peer's text as Kith shows and stores it in a name or a reason: what it shows is what
    it is.

    Unicode NFC; every whitespace character becomes a space; every other control or format
    character (general category C: bidi overrides, embeddings and isolates such as U+202E,
    which makes "Invoice_\u202efdp.exe" show as "Invoice_exe.pdf"; zero-width characters;
    the byte-order mark; soft hyphens; lone surrogates, which JSON can carry and UTF-8 cannot)
    is removed; runs of spaces become one and the ends are trimmed.
    """
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFC", text)
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())


def visible_name(name: str) -> str:
    """A peer's file name as Kith shows and stores it (``visible_text``); "file" if nothing is
    left. "/" (folders) is kept: ``split_relative_name`` deals with it when saving."""
    return visible_text(name) or "file"


def clean_file_name(name: str) -> str:
    """A peer's name reduced to one harmless path component (before collision handling)."""
    # What is shown (no control or format characters), then path separators and
    # Windows-reserved punctuation become "_".
    kept = "".join("_" if ch in _FORBIDDEN else ch for ch in visible_name(name))
    kept = kept.strip(" .")              # no leading dots (hidden, "..") or trailing dots
    stem, ext = _split_ext(kept)
    base = stem.split(".", 1)[0].rstrip(" ").upper()
    if base in _RESERVED:
        stem = "_" + stem                 # CON, con.txt, Lpt1.tar.gz -> _CON ...
    if not stem.strip("._ "):
        stem = "file"
    return _fit(stem, ext, MAX_SAFE_NAME_BYTES) or "file"


def safe_file_name(name: str, existing: Callable[[str], bool]) -> str:
    """A name safe to create in the chosen folder that ``existing`` says is still free.

    Never a path: no separators, no ``..``, no leading dot, no control characters, no device
    names, at most 200 UTF-8 bytes keeping the extension; a taken name gets " (1)", " (2)"...
    """
    clean = clean_file_name(name)
    if not existing(clean):
        return clean
    stem, ext = _split_ext(clean)
    for n in range(1, 100000):
        suffix = f" ({n})"
        room = MAX_SAFE_NAME_BYTES - len((suffix + ext).encode("utf-8"))
        candidate = _cut_utf8(stem, room).rstrip(" .") + suffix + ext
        if not existing(candidate):
            return candidate
    raise FileError("no free name for this file in the chosen folder")


MAX_FOLDER_DEPTH = 16


def split_relative_name(name: str) -> tuple[list[str], str]:
    """A peer's name with "/" separators as (safe folders, file name), never escaping.

    A dropped folder is offered file by file with names like "Photos/2024/a.jpg". Every
    component is made harmless with ``clean_file_name``; empty, "." and ".." components are
    dropped (so nothing is absolute or climbs out), and at most ``MAX_FOLDER_DEPTH`` folders
    are kept. The file name is not made unique here: the folder it lands in decides that.
    """
    parts = [p for p in name.split("/") if p.strip() not in ("", ".", "..")]
    leaf = clean_file_name(parts[-1]) if parts else "file"
    folders = [clean_file_name(p) for p in parts[:-1]][:MAX_FOLDER_DEPTH]
    return folders, leaf
