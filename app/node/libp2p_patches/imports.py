"""Patch to what py-libp2p 0.8.1 imports: the parts Kith never runs are not loaded.

Any py-libp2p module runs the package's ``__init__`` first, and that imports every transport,
security protocol and discovery service py-libp2p has, with their dependencies: QUIC (and
aioquic), TLS and AutoTLS (httpx, requests, pyOpenSSL), WebSocket (trio-websocket), mDNS,
UPnP, bootstrap discovery, plaintext and secio, persistent peerstores, the DNS resolvers of
multiaddr (dnspython, which loads aioquic once more) and prometheus_client for metrics. About
400 modules and 22 MiB of memory, in the window and in ``kith node``, none of which Kith runs:
it speaks TCP, Noise and Yamux only (``app.node.host``), finds peers on the LAN with its own
mDNS (``app.node.lan``) and in its own DHT, dials IP addresses only (``addr_policy`` refuses
DNS names) and switches metrics off.

``leave_out_unused_modules`` installs an import hook that answers imports of the packages in
``LEFT_OUT`` with stand-ins: a module of ``STAND_INS`` holds exactly the names the rest of
py-libp2p (and multiaddr) imports from it, as classes and functions that raise ``NotLoaded``
when used, exception classes nobody raises (they only appear in ``except`` clauses), and
constants. Any other module or name under ``LEFT_OUT`` fails to import, loudly. Where one of
these packages is already loaded for real (a program that imported py-libp2p before Kith),
the hook stays out of its way. ``tests/test_libp2p_imports.py`` fails when an upgrade imports
other names from these packages, or loads other packages.

The modules of ``LAZY_MODULES`` run their body only when a name is first taken from them; for
a package that is its ``__init__``, which imports all of the package, while its modules load
as usual when imported. Not ``importlib.util.LazyLoader``: it runs the body at the first
attribute of any kind, and importing any module of a package reads the package's
``__path__`` (PySide6's import hook reads ``__wrapped__`` of every module), so every lazy
package here would run at once.

The modules of ``DEFERRED`` are loaded on first use instead: RSA and secp256k1 identities,
which py-libp2p imports (with pycryptodome, cffi's C parser and coincurve, 2 MiB) to read a
peer's key, though Kith's own identities and its contacts' are Ed25519; private networks (a
pre-shared key, Salsa20 from pycryptodome), which Kith does not configure; and
``importlib.metadata``, which py-libp2p imports only to read its own version as it loads, and
which loads the ``email`` package to parse a distribution's metadata (0.9 MiB together in the
window). Their stand-in holds ``Deferred`` names: calling one, or a method of one
(``RSAPublicKey.from_bytes``), loads the real module in its place and calls the real
function, so a stranger with such a key still connects. ``importlib.metadata.version`` is
answered without the module where the distribution is a ``.dist-info`` directory
(``installed_version``); any other name of it loads the module.
Nothing in py-libp2p 0.8.1 uses these names otherwise (no ``isinstance``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

# Packages that are not loaded; a stand-in answers for each module of ``STAND_INS``.
LEFT_OUT = (
    "libp2p.discovery.bootstrap",
    "libp2p.discovery.mdns",
    "libp2p.discovery.upnp",
    "libp2p.peer.persistent",
    "libp2p.security.insecure",
    "libp2p.security.secio",
    "libp2p.security.tls",
    "libp2p.transport.quic",
    "libp2p.transport.websocket",
    "multiaddr.resolvers",
    "prometheus_client",
)

WHY = ("it is left out of Kith's process, which runs TCP, Noise and Yamux only "
       "(app.node.libp2p_patches.imports)")


class NotLoaded(ImportError):
    """Something used a part of py-libp2p that Kith leaves out (``LEFT_OUT``)."""


class _Kind:
    def __init__(self, make: Callable[[str], object]) -> None:
        self.make = make


def _absent_class(qualname: str) -> type:
    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise NotLoaded(f"{qualname}: {WHY}")

    module, _, name = qualname.rpartition(".")
    return type(name, (), {"__init__": refuse, "__module__": module, "__doc__": WHY})


def _absent_error(qualname: str) -> type:
    """An exception class for ``except`` clauses: nothing raises it, nothing is caught by it."""
    module, _, name = qualname.rpartition(".")
    return type(name, (Exception,), {"__module__": module, "__doc__": WHY})


def _absent_function(qualname: str) -> Callable[..., NoReturn]:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise NotLoaded(f"{qualname}: {WHY}")

    refuse.__qualname__ = refuse.__name__ = qualname.rpartition(".")[2]
    return refuse


CLASS = _Kind(_absent_class)
ERROR = _Kind(_absent_error)
FUNCTION = _Kind(_absent_function)


class NoDNSResolver:
    """multiaddr's ``DNSResolver``, which py-libp2p's swarm builds whether or not it ever
    resolves a name (it would load dnspython and aioquic). Kith dials IP addresses only."""

    def __init__(self) -> None:
        pass

    async def resolve(self, *args: object, **kwargs: object) -> NoReturn:
        raise NotLoaded(f"multiaddr.resolvers.DNSResolver.resolve: {WHY}")


# For each stand-in module, what py-libp2p 0.8.1 and multiaddr import from it: a kind above
# (built per name) or the object itself.
STAND_INS: dict[str, dict[str, object]] = {
    "libp2p.discovery.bootstrap.bootstrap": {"BootstrapDiscovery": CLASS},
    "libp2p.discovery.mdns.mdns": {"MDNSDiscovery": CLASS, "create_mdns_discovery": FUNCTION},
    "libp2p.discovery.upnp.upnp": {"UpnpManager": CLASS},
    "libp2p.peer.persistent": {
        f"create_{kind}_{store}peerstore": FUNCTION for kind in ("sync", "async")
        for store in ("", "sqlite_", "memory_", "leveldb_", "rocksdb_")
    },
    "libp2p.security.insecure.transport": {
        "InsecureTransport": CLASS, "PLAINTEXT_PROTOCOL_ID": "/plaintext/2.0.0",
    },
    "libp2p.security.secio.transport": {},
    "libp2p.security.tls.autotls.acme": {"ACMEClient": CLASS, "compute_b36_peer_id": FUNCTION},
    "libp2p.security.tls.autotls.broker": {"BrokerClient": CLASS},
    "libp2p.security.tls.transport": {"PROTOCOL_ID": "/tls/1.0.0", "TLSTransport": CLASS},
    "libp2p.transport.quic.config": {"QUICTransportConfig": CLASS},
    "libp2p.transport.quic.exceptions": {
        "QUICStreamClosedError": ERROR, "QUICStreamResetError": ERROR,
    },
    "libp2p.transport.quic.stream": {"QUICStream": CLASS},
    "libp2p.transport.quic.transport": {"QUICTransport": CLASS},
    "libp2p.transport.quic.utils": {"is_quic_multiaddr": FUNCTION},
    "libp2p.transport.websocket.connection": {"P2PWebSocketConnection": CLASS},
    "libp2p.transport.websocket.transport": {"WebsocketTransport": CLASS},
    "multiaddr.resolvers": {"DNSResolver": NoDNSResolver},
    "multiaddr.resolvers.dns": {"DNSResolver": NoDNSResolver},
    "prometheus_client": {
        "CONTENT_TYPE_LATEST": "text/plain; version=0.0.4; charset=utf-8",
        "CollectorRegistry": CLASS, "Counter": CLASS, "Gauge": CLASS, "Histogram": CLASS,
        "generate_latest": FUNCTION, "start_http_server": FUNCTION,
    },
}


# Modules loaded when first used, and the names py-libp2p 0.8.1 imports from them.
DEFERRED: dict[str, tuple[str, ...]] = {
    "libp2p.crypto.rsa": ("RSAPrivateKey", "RSAPublicKey", "create_new_key_pair"),
    "libp2p.crypto.secp256k1": ("Secp256k1PrivateKey", "Secp256k1PublicKey"),
    "libp2p.security.pnet.psk_conn": ("PskConn",),
    "importlib.metadata": ("version",),
}
_loaded_for_real: set[str] = set()
_loading = threading.Lock()


def load_deferred(name: str) -> types.ModuleType:
    """The real module ``name`` of ``DEFERRED``, loaded in place of its stand-in."""
    with _loading:
        current = sys.modules.get(name)
        if current is not None and not is_stand_in(current):
            _loaded_for_real.add(name)  # loaded for real before the hook: never run twice
        if name not in _loaded_for_real:
            stand_in = sys.modules.pop(name, None)
            _loaded_for_real.add(name)
            try:
                importlib.import_module(name)
            except BaseException:
                _loaded_for_real.discard(name)
                if stand_in is not None:
                    sys.modules[name] = stand_in
                raise
        return sys.modules[name]


class Deferred:
    """A name of a ``DEFERRED`` module, which loads the real module when called (or when one
    of its attributes is called: py-libp2p keeps ``RSAPublicKey.from_bytes`` in a table)."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __repr__(self) -> str:
        return f"<deferred {self.module}.{self.name}>"

    def real(self) -> Any:
        return getattr(load_deferred(self.module), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.real()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Callable[..., Any]:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.real(), attr)(*args, **kwargs)

        call.__qualname__ = call.__name__ = f"{self.name}.{attr}"
        return call


def installed_version(distribution: str) -> str:
    """``importlib.metadata.version``, read from the ``Version`` field of the distribution's
    ``METADATA`` where it is installed as a ``.dist-info`` directory, the first on
    ``sys.path`` as that module looks; any other layout (an ``.egg-info`` first, a zip, no
    field) asks the real module, which raises what it raises."""
    wanted = _distribution_key(distribution)
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except OSError:  # a zip or a missing directory: the real module looks there
            continue
        found = next((name for name in names if _names_distribution(name, wanted)), None)
        if found is not None:  # the first found decides, as in the real module
            if found.endswith(".dist-info"):
                version = _metadata_version(os.path.join(directory, found, "METADATA"))
                if version is not None:
                    return version
            break
    real: Any = load_deferred("importlib.metadata")
    return str(real.version(distribution))


def _names_distribution(name: str, wanted: str) -> bool:
    """Whether the directory entry ``name`` holds the metadata of the distribution ``wanted``
    (a ``_distribution_key``)."""
    stem, _, suffix = name.rpartition(".")
    return (suffix in ("dist-info", "egg-info", "egg")
            and _distribution_key(stem.partition("-")[0]) == wanted)


def _distribution_key(name: str) -> str:
    """A distribution's name as ``importlib.metadata`` compares them (PEP 503, underscores)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_version(path: str) -> str | None:
    """The ``Version`` field of a ``METADATA`` file's headers (they end at the first empty
    line), or None."""
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    return None
                field, colon, value = line.partition(":")
                if colon and field == "Version":
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


# Names a ``DEFERRED`` stand-in answers itself, without loading its module.
ANSWERED: dict[tuple[str, str], Callable[..., Any]] = {
    ("importlib.metadata", "version"): installed_version,
}


def _deferred_stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name, "loaded on first use (app.node.libp2p_patches.imports)")
    module.__dict__["__kith_stand_in__"] = True
    for attr in DEFERRED[name]:
        setattr(module, attr, ANSWERED.get((name, attr)) or Deferred(name, attr))
    spec = importlib.machinery.PathFinder.find_spec(name, _parent_path(name))
    if spec is not None and spec.submodule_search_locations is not None:
        # A package: its modules load as usual when imported, without its ``__init__``.
        module.__path__ = list(spec.submodule_search_locations)

    def real_attribute(attr: str) -> Any:
        if attr.startswith("__"):  # the import system's probes (``__path__``) load nothing
            raise AttributeError(f"{name}.{attr}")
        return getattr(load_deferred(name), attr)

    module.__dict__["__getattr__"] = real_attribute
    return module


def _parent_path(name: str) -> list[str] | None:
    parent = name.rpartition(".")[0]
    return list(getattr(sys.modules[parent], "__path__", [])) if parent else None


# Modules whose body runs when a name is first taken from them. For a package, that is its
# ``__init__``, which imports the whole package, while its modules load as usual when imported
# (``from libp2p.bitswap.cid import parse_cid`` loads bitswap's ``cid`` alone).
LAZY_MODULES: tuple[str, ...] = (
    "cryptography.x509",  # for AutoTLS only, in ``basic_host``
    "libp2p.bitswap",  # the DHT needs its ``cid`` module only
    "libp2p.kad_dht",  # Kith imports the modules it uses; the package adds diagnostics
    "libp2p.relay",
    "libp2p.relay.circuit_v2",  # Kith imports the modules it uses, as it needs them
    # protobuf's pure-Python messages (with text_format, its decoder and encoder): protobuf
    # runs upb here, and descriptor_pool and builder import this module without using it
    "google.protobuf.internal.python_message",
    "cbor2",  # IPNS records only (and its C extension with it)
    # The standard library's, imported by py-libp2p's dependencies for rare paths: gossipsub's
    # score median, netaddr's reprs, importlib.metadata's RECORD files and globs, protobuf's
    # well-known time types, a file's type guessed when sent.
    "calendar", "csv", "glob", "mimetypes", "pprint", "secrets", "statistics",
)


class _LazyModuleLoader(importlib.abc.Loader):
    """Runs the real loader of a module of ``LAZY_MODULES`` when a name is missing from it."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        lock = threading.RLock()  # one body run, whichever thread asks first
        running = threading.local()  # this thread is running the body: no second run
        real = self.real

        def load(attr: str) -> Any:
            if attr.startswith("__") and attr != "__all__":
                # Probes run nothing: the import system's for ``__path__``, PySide6's import
                # hook's and ``inspect``'s for ``__wrapped__`` (on every module imported).
                raise AttributeError(f"{module.__name__}.{attr}")
            with lock:
                if module.__dict__.get("__getattr__") is load and not getattr(running, "on", False):
                    running.on = True
                    module.__loader__ = real
                    if module.__spec__ is not None:
                        module.__spec__.loader = real
                    try:
                        real.exec_module(module)
                    finally:
                        running.on = False
                    if module.__dict__.get("__getattr__") is load:  # (the body may define one)
                        del module.__dict__["__getattr__"]
            try:
                return module.__dict__[attr]
            except KeyError:
                own = module.__dict__.get("__getattr__")
                if own is not None and own is not load:
                    return own(attr)
                raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}"
                                     ) from None

        module.__dict__["__getattr__"] = load


def is_lazy_module(module: types.ModuleType) -> bool:
    """True while the body of ``module`` (of ``LAZY_MODULES``) has not run yet."""
    return isinstance(getattr(module, "__loader__", None), _LazyModuleLoader)


def _root(name: str) -> str | None:
    return next((root for root in LEFT_OUT if name == root or name.startswith(root + ".")),
                None)


def is_stand_in(module: object) -> bool:
    return bool(getattr(module, "__kith_stand_in__", False))


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name, WHY)
    module.__path__ = []  # a package: its submodules come to the hook too
    module.__dict__["__kith_stand_in__"] = True
    for attr, value in STAND_INS.get(name, {}).items():
        setattr(module, attr, value.make(f"{name}.{attr}") if isinstance(value, _Kind) else value)

    def missing(attr: str) -> Any:
        raise AttributeError(f"{name}.{attr}: {WHY}")

    module.__dict__["__getattr__"] = missing
    return module


class _LeaveOut(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in DEFERRED:
            if fullname in _loaded_for_real:
                return None
            return importlib.machinery.ModuleSpec(fullname, self)
        if fullname in LAZY_MODULES:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                spec.loader = _LazyModuleLoader(spec.loader)
            return spec
        root = _root(fullname)
        if root is None or (root in sys.modules and not is_stand_in(sys.modules[root])):
            return None
        if not any(known == fullname or known.startswith(fullname + ".") for known in STAND_INS):
            raise ModuleNotFoundError(f"{fullname}: {WHY}", name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in DEFERRED:
            return _deferred_stand_in(spec.name)
        return _stand_in(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def leave_out_unused_modules() -> None:
    """Install the import hook (once); call before anything imports py-libp2p or multiaddr."""
    if not any(isinstance(finder, _LeaveOut) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeaveOut())
