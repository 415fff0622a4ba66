"""Conversation view benchmark: a 100,000-message conversation in a real client.

    .venv/bin/python -m tests.benchmarks.history_view [--messages 100000] [--pages 20]

Seeds a profile's SQLite database directly (the node's own schema, one transaction), starts a
real ``KithClient`` on 127.0.0.1, opens the conversation in a ``ConversationView`` and prints:
time to open (first page shown), time to load one older page, the average and worst time of a
viewport repaint while scrolling up through ``--pages`` pages (each ``repaint()`` timed with
``perf_counter``), and the process RSS before and after. Target: frames well under 16 ms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from app.core.identity import Identity
from app.core.records import ContactState, Delivery
from app.store.contacts import ContactStore
from app.store.db import open_database
from app.store.profile import Profile

WORDS = [
    "peer", "chat", "kith", "message", "network", "room", "file", "secure", "direct", "hello",
    "again", "later", "today", "maybe", "great", "thanks", "see", "you", "soon", "the", "a",
    "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was",
]


def sample_text(i: int) -> str:
    """Deterministic text of varied length (one word to a few lines), some with links."""
    length = 2 + (i * 7919) % 41
    words = [WORDS[(i * 31 + k * 17) % len(WORDS)] for k in range(length)]
    if i % 23 == 0:
        words.insert(length // 2, f"https://example.org/item/{i}")
    if i % 37 == 0:
        words.insert(length // 3, "\n")
    return f"{i}: " + " ".join(words)


def seed_conversation(
    profile_dir: Path,
    count: int,
    *,
    my_name: str = "Ada",
    peer_name: str = "Grace",
    peer_id: str | None = None,
    end_ms: int | None = None,
    step_ms: int = 60_000,
    text: Callable[[int], str] = sample_text,
    state: Callable[[int], tuple[bool, Delivery]] | None = None,
) -> str:
    """Write ``count`` messages with one contact into the profile's database; returns the
    contact's peer id. Message ``i`` is sent at ``end_ms - (count - 1 - i) * step_ms``; every
    third is outgoing (delivered) unless ``state`` says otherwise."""
    peer_id = peer_id or Identity.generate().peer_id
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    with Profile.open(profile_dir) as profile:
        if not profile.is_initialised:
            profile.initialise(my_name)
        conn = open_database(profile.db_path)
        try:
            ContactStore(conn).upsert(peer_id, ContactState.CONTACT, peer_name)
            rows = []
            for i in range(count):
                outgoing, delivery = (
                    state(i) if state is not None
                    else (i % 3 == 0, Delivery.DELIVERED if i % 3 == 0 else Delivery.RECEIVED)
                )
                rows.append((
                    peer_id, os.urandom(16), int(outgoing), text(i),
                    end_ms - (count - 1 - i) * step_ms, time.time(), delivery.value,
                    "refused by the recipient" if delivery is Delivery.FAILED else None,
                    0 if outgoing else 1,
                ))
            with conn:  # one transaction: 100,000 rows in well under a second
                conn.executemany(
                    "INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, "
                    "state, error, read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        finally:
            conn.close()
    return peer_id


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported

    import asyncio
    import tempfile

    import qasync
    from PySide6.QtWidgets import QApplication

    from app.client import KithClient
    from app.core.config import NodeConfig
    from ui.bridge import EventBridge
    from ui.conversation.view import ConversationView
    from ui.waits import wait_until

    app = QApplication([])
    app.setQuitOnLastWindowClosed(False)  # closing the view must not stop the loop
    loop = qasync.QEventLoop(app)
    results: list[tuple[str, str]] = []

    async def scenario(tmp: Path) -> None:
        started = time.perf_counter()
        peer = seed_conversation(tmp / "profile", args.messages)
        results.append(("seed (SQLite, one transaction)",
                        f"{args.messages:,} msgs in {time.perf_counter() - started:.2f} s"))
        profile = Profile.open(tmp / "profile")
        client = KithClient(profile, NodeConfig(listen=("/ip4/127.0.0.1/tcp/0",)))
        await client.start()
        view = ConversationView()
        view.resize(900, 700)
        view.show()
        events = EventBridge(view)
        events.attach(client)
        view.listen(events)
        view.set_client(client)
        contact = await client.contact(peer)
        assert contact is not None
        rss_before = rss_mib()
        try:
            started = time.perf_counter()
            view.open_contact(contact)
            await wait_until(lambda: view.model.rowCount() > 0 and not view.loading, 10, "page")
            view.messages.viewport().repaint()
            results.append(("open (first page painted)",
                            f"{(time.perf_counter() - started) * 1000:.1f} ms"))

            bar = view.messages.verticalScrollBar()
            page_times: list[float] = []
            frames: list[float] = []
            viewport = view.messages.viewport()
            step = max(1, viewport.height() // 3)
            for page in range(args.pages):
                rows = view.model.rowCount()
                # Scroll up a third of a screen per frame until the next page comes in.
                while view.model.rowCount() == rows:
                    bar.setValue(max(0, bar.value() - step))
                    began = time.perf_counter()
                    viewport.repaint()
                    frames.append((time.perf_counter() - began) * 1000)
                    if bar.value() == 0:
                        began = time.perf_counter()
                        await wait_until(lambda: view.model.rowCount() > rows,  # noqa: B023
                                         10, "older")  # (awaited here, in its own iteration)
                        page_times.append((time.perf_counter() - began) * 1000)
                    else:
                        await asyncio.sleep(0)
                if page == 0:
                    results.append(("load one older page (100)", f"{page_times[0]:.1f} ms"))
            frames.sort()
            results.append((f"repaint while scrolling {args.pages} pages",
                            f"avg {sum(frames) / len(frames):.2f} ms, "
                            f"p99 {frames[int(len(frames) * 0.99) - 1]:.2f} ms, "
                            f"worst {frames[-1]:.2f} ms ({len(frames)} frames)"))
            results.append(("older page, avg / worst",
                            f"{sum(page_times) / len(page_times):.1f} ms / "
                            f"{max(page_times):.1f} ms"))
            results.append(("rows loaded", f"{view.model.rowCount():,}"))
            results.append(("RSS before open / after", f"{rss_before:.0f} MiB / "
                            f"{rss_mib():.0f} MiB"))
        finally:
            events.detach()
            view.close()
            await client.stop()
            profile.close()

    with tempfile.TemporaryDirectory() as tmp:
        try:
            loop.run_until_complete(scenario(Path(tmp)))
        finally:
            loop.close()
    width = max(len(name) for name, _ in results)
    print(f"{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 50}")
    for name, value in results:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
