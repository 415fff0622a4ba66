"""A peer that hangs with its TCP connection up is noticed: the contact is shown offline, and
what was sent meanwhile is delivered once it runs again.

A process stopped with SIGSTOP (as a deadlocked, frozen or swapped-out one) keeps its
connections: its kernel acknowledges what arrives, answers keepalive probes, accepts new
connections. Neither TCP keepalive nor ``TCP_USER_TIMEOUT`` fires, so before, the contact stayed
online and every message went into a connection nobody read, for good. Every peer is a real
``kith node`` process on 127.0.0.1; a ``sitecustomize`` shortens the ping interval (15 s) to
1 s, the silence allowed after a ping (20 s) to 3 s, and the redial backoff's cap to 2 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.nodeproc import NodeProcess, befriend

ANSWER_WITHIN = 3  # seconds, in place of the 20 the nodes use

SHORT_TIMES = f"""\
import app.node.contacts as contacts
import app.node.libp2p_patches.liveness as liveness

liveness.PING_INTERVAL, liveness.ANSWER_WITHIN = 1.0, {ANSWER_WITHIN}.0
contacts.MAX_BACKOFF = 2.0
"""

pytestmark = pytest.mark.slow


@contextmanager
def _two_contacts(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, str]]:
    """Ada and Bob, each the other's contact and online, with the short times; Bob's id."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SHORT_TIMES)
    nodes: list[NodeProcess] = []
    try:
        for name in ("Ada", "Bob"):
            nodes.append(NodeProcess(tmp_path / name.lower(), name=name,
                                     prefix=["env", f"PYTHONPATH={site}"]))
        ada, bob = nodes
        _, bob_id = befriend(ada, bob)
        yield ada, bob, bob_id
    finally:
        for node in nodes:
            with suppress(ProcessLookupError):
                os.kill(node.proc.pid, signal.SIGCONT)
            with suppress(subprocess.TimeoutExpired):
                node.quit()


def test_a_peer_that_hangs_with_its_connection_up_is_noticed_and_gets_its_messages_after(
    tmp_path: Path,
) -> None:
    with _two_contacts(tmp_path) as (ada, bob, bob_id):
        ada.message(bob, bob_id, "before Bob hangs")
        for round_ in (1, 2):  # twice: a connection made after the first hang is watched too
            os.kill(bob.proc.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # Written into the connection: Bob's kernel takes it, nobody reads it.
            sent = ada.request({"cmd": "send", "to": bob_id, "text": f"while hung {round_}"},
                               "sent")
            ada.expect("contact_offline", timeout=20 * ANSWER_WITHIN, peer_id=bob_id)
            noticed = time.monotonic() - stopped_at
            # Before: online for as long as Bob stayed stopped. A ping a second, then the
            # silence allowed, then a second's poll.
            assert noticed < 4 * ANSWER_WITHIN, f"round {round_}: noticed after {noticed:.1f} s"
            assert not ada.printed("delivered", id=sent["id"])

            os.kill(bob.proc.pid, signal.SIGCONT)
            ada.expect("contact_online", timeout=60, peer_id=bob_id)
            ada.expect("delivered", timeout=60, id=sent["id"])
            got = bob.expect("message", timeout=20, id=sent["id"])
            assert got["text"] == f"while hung {round_}"
            ada.message(bob, bob_id, f"after round {round_}")
