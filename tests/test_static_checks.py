"""The rules tools check, as part of the suite: ruff (style, likely bugs, async misuse) and mypy
(types) over app, ui and tests, as configured in pyproject.toml. So the one command that runs
the tests (README, .ci/run) runs these too, and a change that breaks them fails like any test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", "app", "ui", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(600)  # a first run, with no cache, reads PySide6's and libp2p's stubs
def test_mypy_finds_nothing() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
