"""The house rules, checked: who may import whom, no import cycles, no long module that does not
say why (docs/architecture.md, "Layers, and who may import whom").

Imports are read from the source, every one of them: at the top, inside functions and under
``TYPE_CHECKING``. A cycle that only type hints close is still two modules that cannot be
understood, tested or changed apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600  # a longer module says why in a "Length:" paragraph of its docstring

# What ui/ may take from app.store: the profile folder itself, which exists before the network
# starts and after it stops (docs/architecture.md says why). Everything else goes through the
# client.
UI_STORE_MODULES = {"app.store.profile", "app.store.backup"}


# -- reading the source ---------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` (dotted name) and its file."""
    folder = ROOT.joinpath(*package.split("."))
    return {module_name(path): path for path in sorted(folder.rglob("*.py"))}


def imports_in(source: str, module: str, is_package: bool = False) -> frozenset[str]:
    """Every name ``source`` (the text of ``module``) imports, absolute: ``from a.b import c``
    gives "a.b" and "a.b.c" (c may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


@cache
def imports(path: Path) -> frozenset[str]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path),
                      path.name == "__init__.py")


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(package: str, forbidden: Iterable[str]) -> list[str]:
    forbidden = tuple(forbidden)
    return sorted(
        f"{module} imports {name}"
        for module, path in modules(package).items()
        for name in imports(path)
        if within(name, forbidden)
    )


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    mods = modules(package)
    return {module: {name for name in imports(path) if name in mods and name != module}
            for module, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of more than one node (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def a_cycle(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """One import path round a cycle inside ``members``, for the failure message."""
    start = min(members)
    path = [start]
    seen = {start}
    while True:
        following = sorted(graph[path[-1]] & members)
        if start in following and len(path) > 1:
            return [*path, start]
        fresh = [m for m in following if m not in seen]
        if not fresh:
            return [*path, following[0]] if following else path
        path.append(fresh[0])
        seen.add(fresh[0])


# -- who may import whom --------------------------------------------------------------------------


def test_ui_never_imports_the_network() -> None:
    """ui talks to the peer only through app.client (one seam, one place that knows threads)."""
    assert violations("ui", ["trio", "libp2p", "multiaddr", "app.node"]) == []


def test_ui_takes_from_the_store_only_the_profile_folder() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module, path in modules("ui").items()
        for name in imports(path)
        if within(name, ["app.store"]) and not within(name, UI_STORE_MODULES)
        and name != "app.store"
    )
    assert found == []


def test_app_never_imports_qt_or_ui() -> None:
    """Except app.main, the ``kith`` command, which starts the GUI once it knows it should."""
    found = violations("app", ["PySide6", "shiboken6", "qasync", "ui"])
    assert [v for v in found if not v.startswith("app.main ")] == []


def test_core_imports_neither_store_nor_node() -> None:
    """app.core is pure: no I/O, no network, no database."""
    assert violations("app.core", ["app.store", "app.node", "app.client", "app.cli"]) == []


def test_store_imports_no_node() -> None:
    assert violations("app.store", ["app.node", "app.client", "app.cli"]) == []


# -- cycles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["ui", "app.core", "app.store", "app.node", "app"])
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(package)
    assert [" -> ".join(a_cycle(graph, members)) for members in cycles(graph)] == []


def test_ui_packages_depend_one_way() -> None:
    """ui's packages form layers: style and widgets at the bottom, window and shell on top."""

    def package_of(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else "ui"  # ui.bridge, ui.waits: "ui"

    graph: dict[str, set[str]] = {}
    for module, targets in import_graph("ui").items():
        source = package_of(module)
        graph.setdefault(source, set()).update(
            package_of(t) for t in targets if package_of(t) != source)
    assert [" -> ".join(a_cycle(graph, members)) for members in cycles(graph)] == []


def test_the_checker_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [{"a", "b", "c"}]
    assert a_cycle(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_imports_are_read_everywhere() -> None:
    """Top level, functions, TYPE_CHECKING and relative imports all count."""
    source = """
from typing import TYPE_CHECKING
import trio
from . import sibling
from ..other import thing
if TYPE_CHECKING:
    from app.client import KithClient
def later():
    from libp2p import new_host
"""
    assert imports_in(source, "ui.window.part") == {
        "typing", "typing.TYPE_CHECKING", "trio", "ui.window", "ui.window.sibling",
        "ui.other", "ui.other.thing", "app.client", "app.client.KithClient", "libp2p",
        "libp2p.new_host",
    }
    assert "ui.window.frame" in imports(ROOT / "ui" / "window" / "window_files.py")


# -- size -----------------------------------------------------------------------------------------


def test_long_modules_say_why() -> None:
    too_long = []
    for package in ("app", "ui"):
        for path in modules(package).values():
            lines = len(path.read_text(encoding="utf-8").splitlines())
            relative = path.relative_to(ROOT).as_posix()
            if lines <= MAX_LINES:
                continue
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if not any(line.startswith("Length:") for line in docstring.splitlines()):
                too_long.append(f"{relative}: {lines} lines")
    assert too_long == []


# -- the documentation draws the house as it is ---------------------------------------------------


def test_the_architecture_document_names_every_node_module() -> None:
    """Each module and package of app/node, as ``name.py`` or ``name/``."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    folder = ROOT / "app" / "node"
    names = [f"{p.stem}.py" for p in folder.glob("*.py") if p.stem != "__init__"]
    names += [f"{p.parent.name}/" for p in folder.glob("*/__init__.py")]
    assert len(names) > 20
    assert [n for n in sorted(names) if n not in text] == []


def test_the_architecture_document_names_every_ui_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted({p.parent.name for p in (ROOT / "ui").glob("*/__init__.py")})
    assert packages
    assert [p for p in packages if f"ui/{p}/" not in text] == []
