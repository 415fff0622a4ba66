"""``kith node`` that kills itself with SIGKILL at one exact moment, for crash tests.

    python -m tests.crash_at app.node.files.downloading:link_final [--nth 1] [--before | --truthy] \
        -- node --profile DIR

Wraps the function or method named ``module:qualified.name`` so that its ``--nth`` call kills
the process right after it returns (or, with ``--before``, right before it runs; with
``--truthy`` only calls that return a true value count, e.g. a message stored, not a
duplicate), then runs
``kith`` with the arguments after ``--``. Nothing runs after the kill: no ``finally``, no
shutdown, no flush; the same as a power cut for the process, with the OS's caches intact.
``tests.nodeproc.NodeProcess(..., crash_at=[...])`` starts one.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


def _kill(where: str) -> None:
    sys.stderr.write(f"crash_at: SIGKILL {where}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(target: str, nth: int = 1, before: bool = False, truthy: bool = False) -> None:
    """Replace ``module:qual.name`` with a wrapper that kills the process at its ``nth`` call."""
    module_name, _, qualname = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original: Callable[..., Any] = getattr(owner, attr)
    calls = 0
    lock = threading.Lock()  # some targets run in worker threads

    def due() -> bool:
        nonlocal calls
        with lock:
            calls += 1
            return calls == nth

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before and due():
            _kill(f"before {target} call {nth}")
        result = original(*args, **kwargs)
        if not before and (result or not truthy) and due():
            _kill(f"after {target} call {nth}")
        return result

    setattr(owner, attr, wrapper)


def main() -> int:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: python -m tests.crash_at MODULE:NAME [--nth N] [--before] -- KITH ARGS")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="tests.crash_at")
    parser.add_argument("target")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--before", action="store_true")
    parser.add_argument("--truthy", action="store_true")
    args = parser.parse_args(argv[:split])
    arm(args.target, args.nth, args.before, args.truthy)
    from app.main import main as kith

    return kith(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
