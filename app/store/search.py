"""Full-text search over every conversation (SQLite FTS5, schema migration 5).

The index (``search_index``) holds the text of direct messages and of room posts (text and
replies, with their newest edit). Triggers on ``messages`` keep direct messages in step at
once. A stored room post only gets its docid and a row in ``search_pending``; ``index_pending``
indexes waiting posts in batches, which the node does every ``INDEX_DELAY`` seconds and
``search`` does first, so a search always sees every stored post. Each indexed text has a
``docid`` given in arrival order, and results are the newest ``limit`` by docid: FTS5 walks a
term's list backwards and stops after the page, which keeps a query on a million messages in
milliseconds even for words that occur in most of them (tests/benchmarks/search.py).

User text never reaches FTS5 as syntax: ``match_expression`` keeps only word characters, quotes
every word and adds the one ``*`` itself (a prefix on the last word, for search as you type).
"""

from __future__ import annotations

import logging
import re
import sqlite3

from app.core.actions import KIND_REPLY, TARGET_HEX
from app.core.records import MATCH_END, MATCH_START, SearchHit, short_peer_id

log = logging.getLogger(__name__)

MAX_TERMS = 8          # words of a query that count; more only slow the query down
MAX_TERM_CHARS = 64
MAX_LIMIT = 200
SNIPPET_TOKENS = 12    # words of context FTS5's snippet() keeps around the match
INDEX_DELAY = 2.0      # seconds a stored room post may wait for the index (search does not)
INDEX_BATCH = 500      # room posts indexed per transaction

_DM = 0
_ROOM = 1
# unicode61 splits on everything but letters, digits and private-use characters; "_" too.
_WORD = re.compile(r"[^\W_]+")


def match_expression(text: str) -> str | None:
    """A safe FTS5 MATCH expression for what the user typed; None when there is nothing to find.

    Every word is a quoted string (so ``"``, ``*``, ``-``, ``:``, ``NEAR(``, ``AND``... are
    plain text, not syntax) and all must occur; the last one is a prefix of at least two
    characters. A last word of one character is left out while others are there ("see you l"
    keeps showing "see you"), and searched as a whole word when alone: every message has a word
    starting with "a", and that query would read the whole index to help nobody. Prefixes of
    2-5 characters have their own index (migration 5), so typing stays fast however many words
    share a prefix.
    """
    words = [w[:MAX_TERM_CHARS] for w in _WORD.findall(text)][:MAX_TERMS]
    if len(words) > 1 and len(words[-1]) == 1:
        words.pop()
    if not words:
        return None
    parts = [f'"{w}"' for w in words]
    if len(words) > 1 or len(words[0]) > 1:
        parts[-1] += "*"
    return " ".join(parts)


class SearchStore:
    """Reads the search index (``search`` returns hits newest first) and indexes the room
    posts waiting for it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def has_pending(self) -> bool:
        return self._conn.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone() is not None

    def index_pending(self, batch: int = INDEX_BATCH) -> int:
        """Index up to ``batch`` waiting room posts, oldest first, in one transaction; returns
        how many were waiting in that batch. A post's text is its newest edit if one is held;
        a reply's is what follows its target's id (docs/protocol.md 11). A post indexed
        already (a damaged or hand-mended profile) is indexed again, not refused: a refusal
        would stop every later batch, and every search."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO search_index (rowid, content) SELECT q.docid, "
                "coalesce(e.text, "
                "CASE p.kind WHEN ? THEN substr(CAST(p.body AS TEXT), ?) "
                "ELSE CAST(p.body AS TEXT) END) "
                "FROM (SELECT docid FROM search_pending ORDER BY docid LIMIT ?) q "
                "JOIN search_docs d ON d.docid = q.docid JOIN room_posts p ON p.seq = d.row "
                "LEFT JOIN room_edits e ON e.room_id = p.room_id "
                "AND e.author_key = p.author_key AND e.post_id = p.post_id",
                (KIND_REPLY, TARGET_HEX + 1, batch),
            )
            return self._conn.execute(
                "DELETE FROM search_pending WHERE docid IN "
                "(SELECT docid FROM search_pending ORDER BY docid LIMIT ?)", (batch,),
            ).rowcount

    def index_all_pending(self) -> None:
        """What ``search`` does first; nothing is written when nothing waits (typing)."""
        while self.has_pending() and self.index_pending() == INDEX_BATCH:
            pass

    def search(self, text: str, limit: int = 50, my_name: str = "", me: str = ""
               ) -> list[SearchHit]:
        """The newest ``limit`` texts matching ``text``, from contacts (not blocked) and rooms.

        ``my_name`` names our own messages, ``me`` (our peer id) tells our room posts apart.
        A hit whose conversation is gone or blocked is skipped, so a page can come back shorter
        than ``limit``.
        """
        expression = match_expression(text)
        if expression is None:
            return []
        try:
            self.index_all_pending()
        except sqlite3.OperationalError as exc:  # a full disk: search what is indexed
            log.warning("search: room posts stored last are not indexed yet: %s", exc)
        limit = max(1, min(limit, MAX_LIMIT))
        rows = self._conn.execute(
            "SELECT d.kind, d.row, hits.snip FROM (SELECT rowid, "
            "snippet(search_index, 0, ?, ?, '…', ?) AS snip FROM search_index "
            "WHERE search_index MATCH ? ORDER BY rowid DESC LIMIT ?) AS hits "
            "JOIN search_docs d ON d.docid = hits.rowid ORDER BY hits.rowid DESC",
            (MATCH_START, MATCH_END, SNIPPET_TOKENS, expression, limit),
        ).fetchall()
        out: list[SearchHit] = []
        for kind, row, snip in rows:
            hit = self._dm_hit(row, snip, my_name) if kind == _DM else self._post_hit(
                row, snip, my_name, me)
            if hit is not None:
                out.append(hit)
        return out

    def _dm_hit(self, seq: int, snip: str, my_name: str) -> SearchHit | None:
        found = self._conn.execute(
            "SELECT m.peer_id, m.msg_id, m.outgoing, m.sent_at, c.local_name, c.their_name "
            "FROM messages m JOIN contacts c USING (peer_id) "
            "WHERE m.seq = ? AND c.state != 'blocked'", (seq,),
        ).fetchone()
        if found is None:
            return None
        peer_id, msg_id, outgoing, sent_at, local, their = found
        name = local or their or short_peer_id(peer_id)
        return SearchHit(
            kind="dm", conversation=peer_id, conversation_name=name,
            message_id=bytes(msg_id).hex(), seq=seq, order=None,
            author="" if outgoing else peer_id,
            author_name=(my_name or "You") if outgoing else name, outgoing=bool(outgoing),
            snippet=snip, sent_at_ms=sent_at,
        )

    def _post_hit(self, seq: int, snip: str, my_name: str, me: str) -> SearchHit | None:
        found = self._conn.execute(
            "SELECT p.room_id, p.post_id, p.author, p.author_key, p.lamport, p.sent_at, r.name, "
            "p.state, (SELECT name FROM room_members WHERE room_id = p.room_id "
            "AND peer_id = p.author) FROM room_posts p JOIN rooms r USING (room_id) "
            "WHERE p.seq = ?", (seq,),
        ).fetchone()
        if found is None:
            return None
        room_id, post_id, author, author_key, lamport, sent_at, room_name, state, member = found
        outgoing = author == me or state != "received"
        author_name = (my_name or "You") if outgoing else (member or author[:12])
        return SearchHit(
            kind="room", conversation=bytes(room_id).hex(), conversation_name=room_name,
            message_id=bytes(post_id).hex(), seq=seq,
            order=(lamport, bytes(author_key).hex(), bytes(post_id).hex()),
            author=author, author_name=author_name, outgoing=outgoing, snippet=snip,
            sent_at_ms=sent_at,
        )
