"""The window. Importing any of it first makes PySide6's import hook cheaper
(``ui.pyside_imports``), before the rest of the window is imported through it."""

from ui.pyside_imports import check_imports_without_caching_sources

check_imports_without_caching_sources()
