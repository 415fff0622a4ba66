"""The peer: py-libp2p host, services, and the node that wires them (docs/architecture.md).

Importing any of it first installs ``libp2p_patches.imports``' hook, before py-libp2p is
loaded, so that the parts of py-libp2p Kith never runs are left out of the process.
"""

import app.node.libp2p_patches  # noqa: F401 - first, see above
