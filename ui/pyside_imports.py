"""Patch to PySide6 6.11: its import hook no longer keeps the source of every module.

PySide6 replaces ``builtins.__import__`` with a hook that asks, for each module imported after
it, whether the module uses PySide6 (for ``from __feature__ import ...``): it reads the
module's source with ``inspect.getsource``, and ``linecache`` keeps every line of it for the
life of the process. For the window that is about 220 files and 6 MiB of memory. The check
here gives the same answer (the source mentions "PySide6") from the file itself, which is
then let go. ``tests/test_pyside_imports.py`` guards the internal it replaces.
"""

from __future__ import annotations

import sys
from types import ModuleType

import PySide6.QtCore  # noqa: F401 - loads PySide6's support package, which holds the hook

FEATURE_MODULE = "PySide6.support.feature"


def mentions_pyside(module: ModuleType) -> bool:
    """Whether ``module``'s source file mentions PySide6 (False when there is no source)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return False
    try:
        with open(path, "rb") as source:
            return b"PySide6" in source.read()
    except OSError:
        return False


def check_imports_without_caching_sources() -> None:
    """Replace the hook's ``_mod_uses_pyside`` (once); call before importing the window."""
    feature = sys.modules[FEATURE_MODULE]
    feature._mod_uses_pyside = mentions_pyside  # type: ignore[attr-defined]
