"""Message actions in SQLite: replies, reactions, edits and deletions (docs/protocol.md 11).

Direct messages: an incoming action is a ``messages`` row of its kind (16-19) whose ``target``
names the message it acts on, so an action that arrives before its message is kept and
``MessageStore.store_incoming`` applies it when the message comes. Rooms: the action posts
are ordinary room posts (they sync like any other); ``room_edits`` keeps each post's newest
edit and ``room_tombstones`` the posts deleted for everyone, which ``RoomStore`` never takes
again. Deleting removes the text, from the row and from the search index, not only the view.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from app.core.actions import (
    KIND_EDIT,
    MAX_REACTION_ROWS_PER_PERSON,
    MAX_REACTIONS_PER_PERSON,
)
from app.core.records import Reactions


@dataclass(frozen=True)
class Located:
    """A message or post found by its id: in a direct conversation (``peer_id``) or a room."""

    id: str
    peer_id: str | None = None        # direct messages: the other side
    room_id: bytes | None = None      # rooms
    author: str = ""                  # the peer id who wrote it ("" for ourselves in DMs)
    outgoing: bool = False
    kind: int = 1
    text: str = ""
    transfer: str | None = None

    @property
    def conversation(self) -> str:
        return self.peer_id if self.peer_id is not None else (self.room_id or b"").hex()


class ActionStore:
    """All reads and writes of what message actions change."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- finding ------------------------------------------------------------------------------

    def find_dm(self, msg_id: str, peer_id: str | None = None) -> Located | None:
        """A shown direct message (text or file offer, not deleted) with this id."""
        try:
            raw = bytes.fromhex(msg_id)
        except ValueError:
            return None
        sql = ("SELECT peer_id, outgoing, kind, text FROM messages WHERE msg_id = ? "
               "AND kind IN (1, 2) AND deleted = 0")
        params: list[object] = [raw]
        if peer_id is not None:
            sql += " AND peer_id = ?"
            params.append(peer_id)
        row = self._conn.execute(sql + " LIMIT 1", params).fetchone()
        if row is None:
            return None
        peer, outgoing, kind, text = row
        return Located(msg_id, peer_id=peer, author="" if outgoing else peer,
                       outgoing=bool(outgoing), kind=kind, text=text)

    def find_post(self, post_id: str, room_id: bytes | None = None) -> Located | None:
        """A stored room post of a shown kind (text, file, reply) with this id."""
        try:
            raw = bytes.fromhex(post_id)
        except ValueError:
            return None
        sql = "SELECT room_id, author, kind, body FROM room_posts INDEXED BY room_posts_by_id " \
              "WHERE post_id = ? AND kind IN (1, 3, 16)"
        params: list[object] = [raw]
        if room_id is not None:
            sql += " AND room_id = ?"
            params.append(room_id)
        row = self._conn.execute(sql + " LIMIT 1", params).fetchone()
        if row is None:
            return None
        room, author, kind, body = row
        text = bytes(body).decode("utf-8", "replace")
        return Located(post_id, room_id=bytes(room), author=author, kind=kind,
                       text=text[32:] if kind == 16 else text)

    # -- direct messages ----------------------------------------------------------------------

    def note_target(self, seq: int, target: str) -> None:
        """The incoming action row ``seq`` acts on ``target`` (kept until that message comes)."""
        with self._conn:
            self._conn.execute("UPDATE messages SET target = ? WHERE seq = ?", (target, seq))

    def take_reply(self, seq: int, peer_id: str, msg_id: str, text: str, reply_to: str | None
                   ) -> None:
        """An incoming reply (kind 16, row ``seq``) becomes a text message that answers
        ``reply_to``, unread and handled, with any edit that came before it applied."""
        edit = self._conn.execute(
            "SELECT text, sent_at FROM messages WHERE peer_id = ? AND target = ? "
            "AND outgoing = 0 AND kind = ? ORDER BY sent_at DESC, seq DESC LIMIT 1",
            (peer_id, msg_id, KIND_EDIT),
        ).fetchone()
        edited_at = None
        if edit is not None:
            text, edited_at = edit[0][32:], edit[1]
        with self._conn:
            self._conn.execute(
                "UPDATE messages SET kind = 1, text = ?, reply_to = ?, edited_at = ?, read = 0, "
                "pending = 0 WHERE seq = ?", (text, reply_to, edited_at, seq))

    def edit_dm(self, peer_id: str, msg_id: str, outgoing: bool, text: str, edited_at: int
                ) -> bool:
        """Set the newest text of a text message written by ``outgoing``'s side; False if
        there is no such message (not yet come, deleted, not text) or a newer edit holds."""
        with self._conn:
            cur = self._conn.execute(
                "UPDATE messages SET text = ?, edited_at = ? WHERE peer_id = ? AND msg_id = ? "
                "AND outgoing = ? AND kind = 1 AND deleted = 0 "
                "AND (edited_at IS NULL OR edited_at <= ?)",
                (text, edited_at, peer_id, bytes.fromhex(msg_id), int(outgoing), edited_at),
            )
        return bool(cur.rowcount)

    def delete_dm(self, peer_id: str, msg_id: str, outgoing: bool) -> Located | None:
        """Remove a message's text for good (row kept, so a late copy is not taken again),
        with the texts of its edits (either side's rows: ``target`` is set on both) and its
        reactions; the message as it was, or None if absent."""
        found = self._conn.execute(
            "SELECT kind, text FROM messages WHERE peer_id = ? AND msg_id = ? AND outgoing = ? "
            "AND kind IN (1, 2) AND deleted = 0", (peer_id, bytes.fromhex(msg_id), int(outgoing)),
        ).fetchone()
        if found is None:
            return None
        with self._conn:
            # One of ours still in the outbox leaves it: there is nothing left to send.
            self._conn.execute(
                "UPDATE messages SET text = '', deleted = 1, reply_to = NULL, read = 1, "
                "state = CASE WHEN state IN ('sending', 'sent') THEN 'failed' ELSE state END WHERE "
                "peer_id = ? AND msg_id = ? AND outgoing = ?",
                (peer_id, bytes.fromhex(msg_id), int(outgoing)))
            self._conn.execute(
                "UPDATE messages SET text = target WHERE peer_id = ? AND target = ? AND kind = ?",
                (peer_id, msg_id, KIND_EDIT))
            self._conn.execute("DELETE FROM reactions WHERE conversation = ? AND target = ?",
                               (peer_id, msg_id))
        kind, text = found
        return Located(msg_id, peer_id=peer_id, author="" if outgoing else peer_id,
                       outgoing=outgoing, kind=kind, text=text)

    def mark_read_up_to(self, peer_id: str, msg_id: str) -> list[str]:
        """Our messages to ``peer_id`` up to ``msg_id`` were read: the ids that changed."""
        row = self._conn.execute(
            "SELECT seq FROM messages WHERE peer_id = ? AND msg_id = ? AND outgoing = 1",
            (peer_id, bytes.fromhex(msg_id))).fetchone()
        if row is None:
            return []
        where = ("peer_id = ? AND outgoing = 1 AND seq <= ? AND kind IN (1, 2) AND deleted = 0 "
                 "AND state IN ('sent', 'delivered')")
        with self._conn:
            ids = [bytes(r[0]).hex() for r in self._conn.execute(
                f"SELECT msg_id FROM messages WHERE {where} ORDER BY seq", (peer_id, row[0]))]
            self._conn.execute(f"UPDATE messages SET state = 'read' WHERE {where}",
                               (peer_id, row[0]))
        return ids

    # -- reactions ----------------------------------------------------------------------------

    def react(self, conversation: str, target: str, by: str, emoji: str, remove: bool,
              at: int) -> bool:
        """Set or take back one emoji of ``by`` on ``target``, whichever change is newest
        (``at``) winning, in whatever order changes arrive; True if what is shown changed.

        A take-back is kept (``removed``) so that an older "set" arriving after it changes
        nothing: every member ends with the same reactions. Nothing changes for a repeat, a
        change older than the one held, or a set over ``MAX_REACTIONS_PER_PERSON``; at most
        ``MAX_REACTION_ROWS_PER_PERSON`` rows (shown or taken back) per person and message.
        """
        key = (conversation, target, by, emoji)
        with self._conn:
            held = self._conn.execute(
                "SELECT at, removed FROM reactions WHERE conversation = ? AND target = ? "
                "AND by_peer = ? AND emoji = ?", key).fetchone()
            if held is not None and held[0] >= at:
                return False
            shown = held is not None and not held[1]
            if held is not None:
                if not remove and not shown and self._count(key, shown_only=True) >= (
                        MAX_REACTIONS_PER_PERSON):
                    return False
                self._conn.execute(
                    "UPDATE reactions SET at = ?, removed = ? WHERE conversation = ? AND "
                    "target = ? AND by_peer = ? AND emoji = ?", (at, int(remove), *key))
                return shown == remove
            if self._count(key, shown_only=False) >= MAX_REACTION_ROWS_PER_PERSON or (
                    not remove and self._count(key, shown_only=True) >= MAX_REACTIONS_PER_PERSON):
                return False
            self._conn.execute(
                "INSERT INTO reactions (conversation, target, by_peer, emoji, at, removed) "
                "VALUES (?, ?, ?, ?, ?, ?)", (*key, at, int(remove)))
        return not remove

    def _count(self, key: tuple[str, str, str, str], *, shown_only: bool) -> int:
        """Rows of one person on one message (only those shown, or taken back too)."""
        return int(self._conn.execute(
            "SELECT count(*) FROM reactions WHERE conversation = ? AND target = ? "
            "AND by_peer = ?" + (" AND removed = 0" if shown_only else ""), key[:3]).fetchone()[0])

    def reactions(self, conversation: str, targets: list[str]) -> dict[str, Reactions]:
        """The reactions on each of ``targets``: emoji in the order first set, with who."""
        out: dict[str, dict[str, list[str]]] = {}
        for start in range(0, len(targets), 500):
            chunk = targets[start:start + 500]
            rows = self._conn.execute(
                f"SELECT target, emoji, by_peer FROM reactions WHERE conversation = ? AND "
                f"removed = 0 AND target IN ({','.join('?' * len(chunk))}) ORDER BY rowid",
                (conversation, *chunk))
            for target, emoji, by in rows:
                out.setdefault(target, {}).setdefault(emoji, []).append(by)
        return _grouped(out)

    def room_decorations(self, room_id: bytes, posts: list[tuple[bytes, bytes]]
                         ) -> tuple[dict[tuple[bytes, bytes], tuple[str, int]],
                                    dict[str, Reactions]]:
        """For ``posts`` ((author key, post id) each): their newest edits (text, the author's
        clock of that edit), and their reactions by post id in hex, as ``reactions``. One
        statement per 400 posts: a received post is decorated with one, a history page too
        (it took one per post). Edits are joined on their whole key: by post id alone SQLite
        walked every edit of the room for each statement."""
        edits: dict[tuple[bytes, bytes], tuple[str, int]] = {}
        found: dict[str, dict[str, list[str]]] = {}
        for start in range(0, len(posts), 400):
            chunk = posts[start:start + 400]
            pairs = ",".join(["(?, ?)"] * len(chunk))
            rows = self._conn.execute(
                f"WITH wanted (author_key, post_id) AS (VALUES {pairs}) "
                "SELECT 0, e.author_key, e.post_id, e.text, e.sent_at, 0 FROM wanted w "
                "JOIN room_edits e ON e.room_id = ? AND e.author_key = w.author_key "
                "AND e.post_id = w.post_id UNION ALL "
                "SELECT 1, NULL, target, emoji, by_peer, rowid FROM reactions "
                f"WHERE conversation = ? AND removed = 0 AND target IN "
                f"({','.join('?' * len(chunk))}) ORDER BY 1, 6",
                (*(part for pair in chunk for part in pair), room_id, room_id.hex(),
                 *(post_id.hex() for _, post_id in chunk)))
            for reaction, author_key, target, text_or_emoji, sent_at_or_by, _ in rows:
                if reaction:
                    found.setdefault(target, {}).setdefault(text_or_emoji, []).append(
                        sent_at_or_by)
                else:
                    edits[bytes(author_key), bytes(target)] = (text_or_emoji,
                                                               int(sent_at_or_by))
        return edits, _grouped(found)

    # -- rooms --------------------------------------------------------------------------------

    def edit_post(self, room_id: bytes, author_key: bytes, post_id: bytes, text: str,
                  lamport: int, edit_id: bytes, sent_at: int) -> bool:
        """Keep ``text`` as the newest edit of the post if this edit is newer (by lamport, then
        edit id) than the one held; the index follows when the post is held."""
        with self._conn:
            held = self._conn.execute(
                "SELECT lamport, edit_id FROM room_edits WHERE room_id = ? AND author_key = ? "
                "AND post_id = ?", (room_id, author_key, post_id)).fetchone()
            if held is not None and (held[0], bytes(held[1])) >= (lamport, edit_id):
                return False
            if self._tombstoned(room_id, author_key, post_id):
                return False
            self._conn.execute(
                "INSERT INTO room_edits (room_id, author_key, post_id, text, lamport, edit_id, "
                "sent_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "text = excluded.text, lamport = excluded.lamport, edit_id = excluded.edit_id, "
                "sent_at = excluded.sent_at",
                (room_id, author_key, post_id, text, lamport, edit_id, sent_at))
            self._reindex_post(room_id, author_key, post_id, text)
        return True

    def post_body(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT body FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id)).fetchone()
        return bytes(row[0]) if row else None

    def _reindex_post(self, room_id: bytes, author_key: bytes, post_id: bytes, text: str
                      ) -> None:
        self._conn.execute(
            "UPDATE search_index SET content = ? WHERE rowid = (SELECT d.docid FROM search_docs "
            "d JOIN room_posts p ON p.seq = d.row WHERE d.kind = 1 AND p.room_id = ? "
            "AND p.author_key = ? AND p.post_id = ?)", (text, room_id, author_key, post_id))

    def delete_post(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bytes | None:
        """Delete a post for everyone: its row (envelope, text, index entry), its edits and
        reactions go, and a tombstone stays so that it is never taken again. The envelope it
        had, if it was held."""
        held = self._conn.execute(
            "SELECT envelope FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id)).fetchone()
        with self._conn:
            self._conn.execute(
                "INSERT INTO room_tombstones (room_id, author_key, post_id) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", (room_id, author_key, post_id))
            cur = self._conn.execute(
                "DELETE FROM room_posts WHERE room_id = ? AND author_key = ? AND post_id = ?",
                (room_id, author_key, post_id))
            self._conn.execute(
                "DELETE FROM room_edits WHERE room_id = ? AND author_key = ? AND post_id = ?",
                (room_id, author_key, post_id))
            # The author's edit posts of it carry its text too: they go with it. (The kind
            # and the expression as the partial index room_posts_edits has them.)
            self._conn.execute(
                "DELETE FROM room_posts WHERE room_id = ? AND author_key = ? "
                f"AND kind = {KIND_EDIT} AND substr(body, 1, 32) = ?",
                (room_id, author_key, post_id.hex().encode()))
            self._conn.execute("DELETE FROM reactions WHERE conversation = ? AND target = ?",
                               (room_id.hex(), post_id.hex()))
        return bytes(held[0]) if held and cur.rowcount else None

    def _tombstoned(self, room_id: bytes, author_key: bytes, post_id: bytes) -> bool:
        return self._conn.execute(
            "SELECT 1 FROM room_tombstones WHERE room_id = ? AND author_key = ? AND post_id = ?",
            (room_id, author_key, post_id)).fetchone() is not None

    def hide_post(self, room_id: bytes, post_id: bytes) -> bytes | None:
        """Delete a post for me: as for everyone, on this device only (its author's key is
        read from the row)."""
        row = self._conn.execute(
            "SELECT author_key FROM room_posts INDEXED BY room_posts_by_id "
            "WHERE room_id = ? AND post_id = ?",  # the room's order index would walk the room
            (room_id, post_id)).fetchone()
        return None if row is None else self.delete_post(room_id, bytes(row[0]), post_id)

    # -- what peers can read ------------------------------------------------------------------

    def set_features(self, peer_id: str, features: frozenset[str]) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO peer_features (peer_id, features, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET features = excluded.features, "
                "updated_at = excluded.updated_at",
                (peer_id, json.dumps(sorted(features)), time.time()))

    def features(self, peer_id: str) -> frozenset[str] | None:
        """What ``peer_id`` announced last; None if it never answered a profile request."""
        row = self._conn.execute(
            "SELECT features FROM peer_features WHERE peer_id = ?", (peer_id,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None
        return frozenset(f for f in value if isinstance(f, str)) if isinstance(value, list) \
            else None


def _grouped(found: dict[str, dict[str, list[str]]]) -> dict[str, Reactions]:
    """Reactions by target as records hold them: emoji in the order first set, with who."""
    return {t: tuple((e, tuple(who)) for e, who in emoji.items()) for t, emoji in found.items()}
