"""``app.memory_policy``: with it, large blocks freed by a transfer are reused warm instead of
being mapped afresh each time (counted as page faults in a fresh interpreter); the user's own
malloc settings are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Moves 256 MiB the way a download does (a stream buffer filled 256 KiB at a time and read out
# as a 4 MiB chunk, a few chunks in flight), then prints the page faults the second round took.
PROBE = """
import collections, resource, sys
from app.memory_policy import keep_large_blocks
if sys.argv[1] == "main":  # the kith command, as every process of it starts
    import contextlib, io
    from app.main import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["--version"])
    applied = True
else:
    applied = keep_large_blocks() if sys.argv[1] == "policy" else False
piece = b"y" * (256 * 1024)
def churn():
    in_flight = collections.deque()
    for _ in range(64):
        stream = bytearray()
        for _ in range(16):
            stream += piece
        in_flight.append(bytes(stream))
        stream.clear()
        if len(in_flight) > 4:
            in_flight.popleft()
churn()  # the first round grows the heap
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
MOVED_PAGES = 64 * 4 * 1024 * 1024 // 4096


def faults(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True,
                         env={**os.environ, **(env or {})}).stdout.split()
    return out[0] == "True", int(out[1])


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a glibc malloc policy, for Linux only")


def test_large_blocks_are_reused_warm() -> None:
    applied, with_policy = faults("policy")
    _, without = faults("default")
    assert applied
    assert without > MOVED_PAGES // 2, (  # glibc's defaults: fresh pages, again and again
        "this glibc reuses large blocks by itself: app.memory_policy may no longer be needed")
    assert with_policy < MOVED_PAGES // 20


def test_every_kith_process_sets_it_first() -> None:
    _, faulted = faults("main")
    assert faulted < MOVED_PAGES // 20


def test_the_users_malloc_settings_win() -> None:
    applied, _ = faults("policy", {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not applied
