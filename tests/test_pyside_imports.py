"""Guard for ``ui.pyside_imports``: PySide6's import hook still asks ``_mod_uses_pyside``
whether a module uses PySide6, and with the window's check no module source stays cached."""

from __future__ import annotations

import builtins
import linecache
import sys
from pathlib import Path

import ui  # noqa: F401 - installs the check
from ui.pyside_imports import FEATURE_MODULE, mentions_pyside


def test_pyside_asks_the_replaced_function() -> None:
    feature = sys.modules[FEATURE_MODULE]
    assert "_mod_uses_pyside" in feature.feature_imported.__code__.co_names
    assert feature._mod_uses_pyside is mentions_pyside


def test_an_import_through_the_hook_leaves_no_source_cached(tmp_path: Path) -> None:
    (tmp_path / "kith_probe_plain.py").write_text("VALUE = 1\n")
    (tmp_path / "kith_probe_qt.py").write_text("import PySide6.QtCore\nVALUE = 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        for name in ("kith_probe_plain", "kith_probe_qt"):
            builtins.__import__(name)  # PySide6's hook, as an import statement goes
        feature = sys.modules[FEATURE_MODULE]
        assert feature.pyside_feature_dict["kith_probe_plain"] == -1  # "ignore this module"
        assert feature.pyside_feature_dict["kith_probe_qt"] == 0  # uses PySide6
        assert not [f for f in linecache.cache if f.startswith(str(tmp_path))]
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("kith_probe_plain", "kith_probe_qt"):
            sys.modules.pop(name, None)
