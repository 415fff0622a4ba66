"""The pure file-transfer codec: offers, requests, hashes and names from peers."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import files as fc

TID = bytes(range(16))


def offer(**changes: object) -> bytes:
    body: dict[str, object] = {
        "transfer": TID.hex(), "name": "a.txt", "size": 5, "chunk_size": fc.DEFAULT_CHUNK_SIZE,
        "hash": fc.content_hash(fc.chunk_hash(b"hello")).hex(), "mime": "text/plain",
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_an_offer_round_trips() -> None:
    parsed = fc.parse_offer(offer())
    assert (parsed.transfer, parsed.name, parsed.size, parsed.chunks) == (TID, "a.txt", 5, 1)
    assert fc.parse_offer(parsed.to_json()) == parsed


@pytest.mark.parametrize("changes", [
    {"size": -1}, {"size": 2**50 + 1}, {"size": True}, {"chunk_size": 1000},
    {"chunk_size": 8 << 20}, {"name": ""}, {"name": None}, {"name": 5},
    {"transfer": "00"}, {"hash": "zz" * 32}, {"hash": None}, {"mime": 7},
    {"size": 0},  # an empty file must commit to the hash of nothing
])
def test_bad_offers_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(fc.FileError):
        fc.parse_offer(offer(**changes))


def test_hex_is_either_case_and_nothing_else() -> None:
    """docs/protocol.md 9.2: uppercase decodes to the same id; whitespace, which Python's
    ``bytes.fromhex`` would skip (leaving a 15-byte id), is refused."""
    upper = fc.parse_offer(offer(transfer=TID.hex().upper()))
    assert upper.transfer == TID
    for bad in (TID.hex()[:30] + "  ", TID.hex()[:30] + "\t\n", " " + TID.hex()[:31],
                TID.hex()[:30] + "0x"):
        assert len(bad) == 32
        with pytest.raises(fc.FileError, match="not hex"):
            fc.parse_offer(offer(transfer=bad))
    control = {"transfer": TID.hex().upper(), "action": "cancel"}
    assert fc.parse_control(json.dumps(control).encode()).transfer == TID


def test_offer_limits() -> None:
    with pytest.raises(fc.FileError):
        fc.parse_offer(b"[1]")
    with pytest.raises(fc.FileError):
        fc.parse_offer(b"{" * 5000)
    with pytest.raises(fc.FileError):
        fc.parse_offer(offer(size=2**50, chunk_size=fc.MIN_CHUNK_SIZE))  # too many chunks
    empty = offer(size=0, hash=fc.EMPTY_HASH.hex())
    assert fc.parse_offer(empty).chunks == 0


def test_controls() -> None:
    control = fc.FileControl(TID, "fail", "the file changed on disk")
    assert fc.parse_control(control.to_json()) == control
    with pytest.raises(fc.FileError):
        fc.parse_control(b'{"transfer": "' + TID.hex().encode() + b'", "action": "explode"}')


def test_requests_byte_by_byte() -> None:
    assert fc.encode_request(TID, fc.OP_GET_HASHES) == TID + b"\x01"
    assert fc.encode_request(TID, fc.OP_HAVE) == TID + b"\x03"
    raw = fc.encode_request(TID, fc.OP_GET_CHUNKS, [0, 258])
    assert raw == TID + b"\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x00" + b"\x00\x00\x01\x02"
    assert fc.decode_request(raw) == fc.FileRequest(TID, fc.OP_GET_CHUNKS, (0, 258))
    assert fc.decode_chunk(fc.encode_chunk_header(7) + b"data") == (7, b"data")


@pytest.mark.parametrize("raw", [
    b"", TID, TID + b"\x09", TID + b"\x01\x00", TID + b"\x02", TID + b"\x02\x00\x00\x00\x00",
    TID + b"\x02\x00\x00\x00\x41" + b"\x00" * 4 * 65, TID + b"\x02\x00\x00\x00\x02\x00\x00\x00\x01",
])
def test_bad_requests_are_refused(raw: bytes) -> None:
    with pytest.raises(fc.FileError):
        fc.decode_request(raw)


@given(st.binary(max_size=400))
def test_request_decoder_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(fc.FileError):
        fc.decode_request(raw)


@pytest.mark.parametrize(("name", "safe"), [
    ("../../x", "_.._x"),
    ("/etc/passwd", "_etc_passwd"),
    ("..\\..\\boot.ini", "_.._boot.ini"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
    ("nul", "_nul"),
    ("a\nb", "a b"),
    ("bell\x07\x00.txt", "bell.txt"),
    ("evil\u202etxt.exe", "eviltxt.exe"),
    (".hidden", "hidden"),
    ("..", "file"),
    ("...", "file"),
    ("trailing. ", "trailing"),
    ("C:\\Windows\\x", "C__Windows_x"),
    ("ok report.pdf", "ok report.pdf"),
])
def test_safe_file_names(name: str, safe: str) -> None:
    assert fc.safe_file_name(name, lambda _: False) == safe


def test_long_names_keep_their_extension_within_200_bytes() -> None:
    for name in ["x" * 300 + ".tar", "é" * 300 + ".jpeg", "日本" * 200]:
        safe = fc.safe_file_name(name, lambda _: False)
        assert len(safe.encode("utf-8")) <= 200
        assert safe.endswith(name.rpartition(".")[2][-5:]) or "." not in name
    taken = {"x" * 196 + ".tar"}
    numbered = fc.safe_file_name("x" * 300 + ".tar", lambda n: n in taken)
    assert numbered.endswith(" (1).tar") and len(numbered.encode()) <= 200


def test_taken_names_are_numbered() -> None:
    taken = {"a.txt", "a (1).txt"}
    assert fc.safe_file_name("a.txt", taken.__contains__) == "a (2).txt"
    assert fc.safe_file_name("noext", {"noext"}.__contains__) == "noext (1)"


@given(st.text(max_size=400))
def test_any_name_is_one_harmless_component(name: str) -> None:
    safe = fc.safe_file_name(name, lambda _: False)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert safe not in (".", "..") and len(safe.encode("utf-8")) <= 200
    assert all(ch.isprintable() for ch in safe)
    assert safe.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}


@pytest.mark.parametrize(("name", "shown"), [
    ("Invoice_2024_\u202efdp.exe", "Invoice_2024_fdp.exe"),   # RIGHT-TO-LEFT OVERRIDE
    ("a\u2066b\u2069c\u202ad\u202c.txt", "abcd.txt"),        # isolates and embeddings
    ("zero\u200bwidth\u200d\ufeff\u00ad.pdf", "zerowidth.pdf"),
    ("\u200e\u200fmarks.doc", "marks.doc"),
    ("Photos/2024/\u202ea.jpg", "Photos/2024/a.jpg"),          # folders kept
    ("line\u2028break\tand\nnewline", "line break and newline"),
    ("\u202e\u200b", "file"),
    ("Cafe\u0301 menu.pdf", "Café menu.pdf"),                  # NFC
])
def test_names_are_shown_as_what_they_are(name: str, shown: str) -> None:
    """docs/protocol.md 9.6: an offer's name loses every control and format character before
    it is shown or stored, so U+202E cannot make an .exe look like a .pdf."""
    assert fc.visible_name(name) == shown
    assert fc.parse_offer(offer(name=name)).name == shown
    from app.store.messages import offer_summary

    assert offer_summary(json.dumps({"transfer": TID.hex(), "name": name})) == (TID.hex(), shown)


@given(st.text(max_size=300))
def test_a_visible_name_hides_nothing(name: str) -> None:
    import unicodedata

    shown = fc.visible_name(name)
    assert shown and shown == shown.strip() and "  " not in shown
    assert all(ch == " " or (not ch.isspace() and unicodedata.category(ch)[0] != "C")
               for ch in shown)


def test_hashes() -> None:
    assert fc.EMPTY_HASH.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")  # sha256sum of nothing
    one = fc.chunk_hash(b"hello")
    assert fc.content_hash(one) == fc.chunk_hash(one) != one  # a hash of chunk hashes
    assert fc.chunk_count(0, 10) == 0 and fc.chunk_count(11, 10) == 2
    assert fc.chunk_length(1, 11, 10) == 1
    assert fc.choose_chunk_size(fc.LARGE_FILE - 1) == fc.DEFAULT_CHUNK_SIZE
    assert fc.choose_chunk_size(fc.LARGE_FILE) == fc.choose_chunk_size(1 << 50) == 4 << 20


@pytest.mark.parametrize(("name", "folders", "leaf"), [
    ("Photos/2024/a.jpg", ["Photos", "2024"], "a.jpg"),
    ("../../etc/passwd", ["etc"], "passwd"),
    ("/abs/x", ["abs"], "x"),
    ("a//./b/../c", ["a", "b"], "c"),
    ("..\\..\\win.txt", [], "_.._win.txt"),       # a backslash is not a separator here
    ("../..", [], "file"),
    ("CON/.hidden/x", ["_CON", "hidden"], "x"),
    ("/".join(["d"] * 40) + "/f", ["d"] * fc.MAX_FOLDER_DEPTH, "f"),
])
def test_relative_names_stay_inside(name: str, folders: list[str], leaf: str) -> None:
    assert fc.split_relative_name(name) == (folders, leaf)
