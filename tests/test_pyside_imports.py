"""Guard for ``ui.pyside_imports``: PySide6's import hook still asks ``_mod_uses_pyside``
whether a module uses PySide6, and with the window's check no module source stays cached.

The import probe runs in a fresh interpreter. PySide6's hook swaps ``builtins.__import__``
back to the original while it inspects a module, without a lock, so two threads importing at
once can leave the original installed for good; in a test process where earlier tests ran
threads that import, whether the hook is still there is luck, not something this guard tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ui  # noqa: F401 - installs the check
from ui.pyside_imports import FEATURE_MODULE, mentions_pyside

ROOT = Path(__file__).resolve().parent.parent

# Imports two modules through PySide6's hook, then tells what the hook recorded and cached.
PROBE = """
import builtins, json, linecache, sys
import ui  # installs the check
from ui.pyside_imports import FEATURE_MODULE

probes = sys.argv[1]
sys.path.insert(0, probes)
for name in ("kith_probe_plain", "kith_probe_qt"):
    builtins.__import__(name)  # PySide6's hook, as an import statement goes
recorded = sys.modules[FEATURE_MODULE].pyside_feature_dict
print(json.dumps({
    "hook": type(builtins.__import__).__name__ + ":" + builtins.__import__.__name__,
    "plain": recorded.get("kith_probe_plain"),
    "qt": recorded.get("kith_probe_qt"),
    "cached": [f for f in linecache.cache if f.startswith(probes)],
}))
"""


def test_pyside_asks_the_replaced_function() -> None:
    feature = sys.modules[FEATURE_MODULE]
    assert "_mod_uses_pyside" in feature.feature_imported.__code__.co_names
    assert feature._mod_uses_pyside is mentions_pyside


def test_an_import_through_the_hook_leaves_no_source_cached(tmp_path: Path) -> None:
    (tmp_path / "kith_probe_plain.py").write_text("VALUE = 1\n")
    (tmp_path / "kith_probe_qt.py").write_text("import PySide6.QtCore\nVALUE = 2\n")
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen["hook"].endswith("__feature_import__")
    assert seen["plain"] == -1  # "ignore this module"
    assert seen["qt"] == 0  # uses PySide6
    assert seen["cached"] == []
