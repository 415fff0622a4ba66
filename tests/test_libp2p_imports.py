"""Guards for ``app.node.libp2p_patches.imports``: a node runs without the parts of py-libp2p
it leaves out, and the stand-ins hold exactly what the rest of py-libp2p imports from them, so
an upgrade that imports anything else from those packages fails here first."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from app.node.libp2p_patches.imports import LEFT_OUT, STAND_INS, NotLoaded, is_stand_in

ROOT = Path(__file__).resolve().parent.parent

# What the left-out packages would load (directly or through their dependencies).
HEAVY = ("aioquic", "dns", "httpx", "miniupnpc", "OpenSSL", "prometheus_client", "pylsqpack",
         "requests", "service_identity", "trio_websocket", "urllib3", "wsproto", "zeroconf")

# Two peers in a fresh interpreter exchange a direct message, then tell what is loaded.
PROBE = """
import asyncio, json, sys
from pathlib import Path
from app.node.libp2p_patches.imports import is_stand_in
from tests.peers import befriend, peers

async def main(tmp):
    async with peers(tmp, "Ada", "Bob") as (ada, bob):
        await befriend(ada, bob)
        sent = await ada.client.send(bob.peer_id, "hello")
        await ada.wait_event("delivered", id=sent.id)

asyncio.run(main(Path(sys.argv[1])))
def where(module):
    return "stand-in" if is_stand_in(module) else getattr(module, "__file__", None) or ""

print(json.dumps({name: where(module) for name, module in list(sys.modules.items()) if module}))
"""


@cache
def loaded_after_a_conversation(tmp: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, tmp], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    loaded: dict[str, str] = json.loads(out.splitlines()[-1])
    return loaded


def _root(name: str) -> str | None:
    return next((r for r in LEFT_OUT if name == r or name.startswith(r + ".")), None)


def _run_time_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` but those under ``if TYPE_CHECKING:``, which never run."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for orelse in child.orelse:
                yield from _run_time_nodes(orelse)
            continue
        yield from _run_time_nodes(child)


def imports_from_left_out(path: Path, module: str) -> set[tuple[str, str | None]]:
    """(module, name) for each name ``path`` imports from a left-out package; (module, None)
    for a module imported whole. Imports inside functions count too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[tuple[str, str | None]] = set()
    for node in _run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names if _root(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                if f"{base}.{alias.name}" in STAND_INS:
                    found.add((f"{base}.{alias.name}", None))
                elif _root(base):
                    found.add((base, alias.name))
    return found


def test_a_node_runs_without_the_left_out_packages(tmp_path: Path) -> None:
    loaded = loaded_after_a_conversation(str(tmp_path))
    real = {name for name, file in loaded.items() if file != "stand-in"}
    assert sorted(name for name in real if name.split(".")[0] in HEAVY or _root(name)) == []
    assert "libp2p.transport.quic.transport" in loaded  # the stand-in answered


def test_the_stand_ins_hold_what_the_rest_of_py_libp2p_imports(tmp_path: Path) -> None:
    loaded = loaded_after_a_conversation(str(tmp_path))
    found: set[tuple[str, str | None]] = set()
    for name, file in loaded.items():
        ours = name.split(".")[0] in ("libp2p", "multiaddr") and not _root(name)
        if ours and file.endswith(".py"):
            found |= imports_from_left_out(Path(file), name)
    modules_imported = {module for module, _ in found}
    names_imported = {(module, name) for module, name in found if name is not None}
    expected = {(module, name) for module, names in STAND_INS.items() for name in names}
    assert names_imported == expected
    assert modules_imported == set(STAND_INS)


def test_a_stand_in_refuses_to_be_used() -> None:
    from libp2p.transport.quic import transport, utils

    assert is_stand_in(transport)
    with pytest.raises(NotLoaded, match="left out of Kith"):
        quic: Any = transport.QUICTransport  # the stand-in takes any arguments
        quic()
    with pytest.raises(NotLoaded, match="left out of Kith"):
        utils.is_quic_multiaddr("/ip4/127.0.0.1/udp/1/quic-v1")
    with pytest.raises(ImportError, match="left out of Kith"):
        from libp2p.transport.quic.connection import QUICConnection  # noqa: F401
    with pytest.raises(AttributeError, match="left out of Kith"):
        _ = transport.QUICListener
