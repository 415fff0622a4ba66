"""py-libp2p's service manager: a task that fails ends alone (``app.node.isolation``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.node.isolation import describe, isolated


def isolate_service_tasks(manager: Any, service: str) -> None:
    """Make every task ``manager`` runs from now on fail alone (``app.node.isolation``).

    py-libp2p 0.8.1 runs a service's work as tasks of its ``TrioManager``: pubsub starts one
    for every message received, for every peer that subscribes to a topic (flushing, replaying
    and grafting for it) and for every new peer; the swarm one per connection. When a task
    raises, the manager cancels the whole service and ``background_trio_service`` raises it:
    one failure while handling one peer's input stopped gossipsub, or the swarm, and the node
    with it. Daemon tasks (heartbeats, the peer queues) are left as they are: they must not
    end, and one that ended would stop the service anyway (``DaemonTaskExit``).

    Guarded by ``tests/test_libp2p_patches.py::test_isolate_service_tasks_internals``.
    """
    run_task = manager.run_task
    if getattr(run_task, "_kith", False):
        return

    def run_isolated(async_fn: Callable[..., Awaitable[Any]], *args: Any, daemon: bool = False,
                     name: str | None = None, **kwargs: Any) -> None:
        if not daemon:
            name = name or getattr(async_fn, "__qualname__", None)
            async_fn = isolated(f"{service}: {describe(async_fn, args)}", async_fn)
        run_task(async_fn, *args, daemon=daemon, name=name, **kwargs)

    run_isolated._kith = True  # type: ignore[attr-defined]
    manager.run_task = run_isolated
