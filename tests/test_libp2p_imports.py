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

from app.node.libp2p_patches.imports import (
    DEFERRED,
    LAZY_MODULES,
    LEFT_OUT,
    STAND_INS,
    NotLoaded,
    is_lazy_module,
    is_stand_in,
)

ROOT = Path(__file__).resolve().parent.parent

# What the left-out packages would load (directly or through their dependencies).
HEAVY = ("aioquic", "dns", "httpx", "miniupnpc", "OpenSSL", "prometheus_client", "pylsqpack",
         "requests", "service_identity", "trio_websocket", "urllib3", "wsproto", "zeroconf")
# What the deferred modules load when first used (RSA, secp256k1, ECDSA keys, private networks).
ON_FIRST_USE = ("Crypto", "cffi", "coincurve", "fastecdsa", "pycparser")

# Two peers in a fresh interpreter exchange a direct message, then tell what is loaded.
PROBE = """
import asyncio, json, sys
from pathlib import Path
from app.node.libp2p_patches.imports import is_lazy_module, is_stand_in
from tests.peers import befriend, peers

async def main(tmp):
    async with peers(tmp, "Ada", "Bob") as (ada, bob):
        await befriend(ada, bob)
        sent = await ada.client.send(bob.peer_id, "hello")
        await ada.wait_event("delivered", id=sent.id)

asyncio.run(main(Path(sys.argv[1])))
def where(module):
    if is_lazy_module(module):
        return "lazy"
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
            found.update((alias.name, None) for alias in node.names
                         if _root(alias.name) or alias.name in DEFERRED)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                if f"{base}.{alias.name}" in STAND_INS or f"{base}.{alias.name}" in DEFERRED:
                    found.add((f"{base}.{alias.name}", None))
                elif _root(base) or base in DEFERRED:
                    found.add((base, alias.name))
    return found


def test_a_node_runs_without_the_left_out_packages(tmp_path: Path) -> None:
    loaded = loaded_after_a_conversation(str(tmp_path))
    real = {name for name, file in loaded.items() if file not in ("stand-in", "lazy")}
    assert sorted(name for name in real if name.split(".")[0] in HEAVY or _root(name)) == []
    assert "libp2p.transport.quic.transport" in loaded  # the stand-in answered
    assert sorted(name for name in real
                  if name.split(".")[0] in ON_FIRST_USE or name in DEFERRED) == []
    # The packages whose __init__ would import all of them stay unrun (else the lever is gone);
    # a few are not imported at all now that what imported them is deferred (``csv``, by
    # ``importlib.metadata``), and stay lazy for when it loads.
    assert {name: loaded.get(name, "lazy") for name in LAZY_MODULES} == dict.fromkeys(
        LAZY_MODULES, "lazy")
    assert "email" not in loaded  # what importlib.metadata would load


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
    expected |= {(module, name) for module, names in DEFERRED.items() for name in names}
    assert names_imported == expected
    assert modules_imported == set(STAND_INS) | set(DEFERRED)


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


# A Kith host and a py-libp2p host with an RSA or secp256k1 identity connect, each way, in a
# fresh interpreter: the deferred modules load when the first such key is made or read.
STRANGER_PROBE = """
import json, sys
import multiaddr, trio
from app.core.identity import Identity
from app.node.host import build_host

def loaded():
    return sorted(n for n in sys.modules if n.split(".")[0] in sys.argv[2].split(","))

async def main():
    before = loaded()
    from libp2p import new_host
    from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.security.noise.transport import PROTOCOL_ID, Transport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX, Yamux
    if sys.argv[1] == "rsa":
        from libp2p.crypto.rsa import create_new_key_pair
    else:
        from libp2p.crypto.secp256k1 import create_new_key_pair
    loopback = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    outcomes = []
    for kith_dials in (False, True):
        keys = create_new_key_pair()
        noise = Transport(keys, noise_privkey=new_x25519_key_pair().private_key)
        stranger = new_host(key_pair=keys, sec_opt={TProtocol(PROTOCOL_ID): noise},
                            muxer_opt={TProtocol(YAMUX): Yamux}, listen_addrs=[loopback])
        kith = build_host(Identity.generate(), [loopback])
        async with kith.run([loopback]), stranger.run([loopback]):
            dialer, listener = (kith, stranger) if kith_dials else (stranger, kith)
            with trio.fail_after(20):
                await dialer.connect(PeerInfo(listener.get_id(), listener.get_addrs()))
                while not listener.get_network().get_connections(dialer.get_id()):
                    await trio.sleep(0.01)
            outcomes.append(type(kith.get_peerstore().pubkey(stranger.get_id())).__name__)
    print(json.dumps({"before": before, "after": loaded(), "outcomes": outcomes}))

trio.run(main)
"""


@pytest.mark.parametrize(("kind", "key_class", "package"), [
    ("rsa", "RSAPublicKey", "Crypto"), ("secp256k1", "Secp256k1PublicKey", "coincurve"),
])
def test_a_stranger_with_another_key_type_connects(kind: str, key_class: str, package: str
                                                   ) -> None:
    out = subprocess.run(
        [sys.executable, "-c", STRANGER_PROBE, kind, ",".join(ON_FIRST_USE)], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=True).stdout
    found = json.loads(out.splitlines()[-1])
    assert found["before"] == []  # a Kith host alone loads none of it
    assert found["outcomes"] == [key_class, key_class]  # it read the stranger's key each way
    assert package in found["after"]


def test_a_deferred_name_loads_its_module_when_used() -> None:
    """In this process the module may already be real: the stand-in's names work either way."""
    from app.node.libp2p_patches.imports import Deferred, load_deferred

    name = Deferred("libp2p.crypto.rsa", "RSAPublicKey")
    real = load_deferred("libp2p.crypto.rsa")
    assert not is_stand_in(real) and sys.modules["libp2p.crypto.rsa"] is real
    assert name.real() is real.RSAPublicKey
    with pytest.raises(ValueError):
        name.from_bytes(b"not a key")  # the real method ran


def test_a_distributions_version_reads_as_importlib_metadata_reads_it() -> None:
    """Every distribution installed here, by its name as published and as normalized, and one
    that is not installed (the real module's error)."""
    import importlib.metadata as metadata

    from app.node.libp2p_patches.imports import installed_version

    names = {d.metadata["Name"] for d in metadata.distributions()}
    assert {"libp2p", "PySide6_Essentials", "PyNaCl", "trio"} <= names
    for name in names:
        for spelling in (name, name.lower().replace("_", "-")):
            assert installed_version(spelling) == metadata.version(spelling), spelling
    with pytest.raises(metadata.PackageNotFoundError):
        installed_version("no-such-distribution-kith")


METADATA_PROBE = """
import json, sys
import app.node.libp2p_patches
import libp2p
from app.node.libp2p_patches.imports import is_stand_in
stand_in = sys.modules["importlib.metadata"]
before = {"stand_in": is_stand_in(stand_in), "email": "email" in sys.modules,
          "version": libp2p.__version__}
import importlib.metadata._meta  # a module of the package, without its __init__
before["module_alone"] = is_stand_in(sys.modules["importlib.metadata"])
names = sorted(d.metadata["Name"] for d in stand_in.distributions())  # any other name: real
print(json.dumps({**before, "real_after": not is_stand_in(sys.modules["importlib.metadata"]),
                  "libp2p_listed": "libp2p" in names,
                  "real_version": sys.modules["importlib.metadata"].version("libp2p")}))
"""


def test_py_libp2p_reads_its_version_without_importlib_metadata() -> None:
    """In a fresh interpreter: importing py-libp2p leaves ``importlib.metadata`` a stand-in
    and ``email`` unloaded, with the version the real module reads; a module of the package
    imports alone, and any other name of it loads the real module in its place."""
    out = subprocess.run([sys.executable, "-c", METADATA_PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    found = json.loads(out.splitlines()[-1])
    assert found.pop("version") == found.pop("real_version")
    assert found == {"stand_in": True, "email": False, "module_alone": True, "real_after": True,
                     "libp2p_listed": True}


LAZY_PROBE = """
import datetime, json, sys
import app.node.node
from app.node.libp2p_patches.imports import is_lazy_module
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

was_lazy = is_lazy_module(x509)
key = Ed25519PrivateKey.generate()
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kith")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, None))
from cryptography.x509.base import Certificate
print(json.dumps({"was_lazy": was_lazy, "lazy": is_lazy_module(x509),
                  "same_module": sys.modules["cryptography.x509"] is x509,
                  "real_class": isinstance(cert, Certificate) and x509.Certificate is Certificate,
                  "cn": cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value}))
"""


def test_a_lazy_package_runs_its_init_when_a_name_is_used() -> None:
    """``cryptography.x509`` in a fresh interpreter: lazy after the node's imports, whole (the
    same module object, its classes the real ones) once a name is taken from it."""
    out = subprocess.run([sys.executable, "-c", LAZY_PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == {
        "was_lazy": True, "lazy": False, "same_module": True, "real_class": True, "cn": "kith"}


def test_a_lazy_module_runs_once_whichever_thread_asks_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from app.node.libp2p_patches import imports

    (tmp_path / "kith_lazy_probe.py").write_text(
        "import time\nRUNS.append(1)\ntime.sleep(0.05)\nVALUE = len(RUNS)\n", encoding="utf-8")
    runs: list[int] = []
    monkeypatch.setattr("builtins.RUNS", runs, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(imports, "LAZY_MODULES", (*LAZY_MODULES, "kith_lazy_probe"))
    monkeypatch.delitem(sys.modules, "kith_lazy_probe", raising=False)
    imports.leave_out_unused_modules()

    import kith_lazy_probe

    assert is_lazy_module(kith_lazy_probe) and runs == []
    assert not hasattr(kith_lazy_probe, "__wrapped__") and runs == []  # a probe runs nothing
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(kith_lazy_probe.VALUE))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs == [1] and seen == [1] * 8 and not is_lazy_module(kith_lazy_probe)
    with pytest.raises(AttributeError, match="no attribute 'MISSING'"):
        _ = kith_lazy_probe.MISSING
