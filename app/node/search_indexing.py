"""Room posts into the search index a batch at a time (``SearchStore.index_pending``).

Indexing in the commit that stored a post made FTS5 write its segments at gossip rates: about
40 % of what storing a received post cost. Posts wait in ``search_pending`` instead, in the
same transaction as the post (so a crash loses none), and a search indexes whatever still
waits before it reads, so results never miss a stored post.
"""

from __future__ import annotations

import logging
import sqlite3

import trio

from app.node.isolation import is_local_fault
from app.store.search import INDEX_BATCH, INDEX_DELAY, SearchStore

log = logging.getLogger(__name__)


async def index_room_posts(store: SearchStore) -> None:
    """Every ``INDEX_DELAY`` seconds, index the room posts stored since, a batch per
    transaction with a checkpoint in between (a synced history can be thousands)."""
    while True:
        await trio.sleep(INDEX_DELAY)
        try:
            while store.has_pending() and store.index_pending() == INDEX_BATCH:
                await trio.lowlevel.checkpoint()
        except sqlite3.Error as exc:  # a full disk, say: the posts wait for the next turn
            if is_local_fault(exc):
                raise  # a damaged profile stops the node (app.node.isolation)
            log.warning("search index: room posts wait for the next try: %s", exc)
