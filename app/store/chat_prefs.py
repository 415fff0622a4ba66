"""The chat list's per-conversation choices: pinned, muted, marked unread.

One row per conversation that differs from the default, keyed like drafts (a peer id, or a room
id in hex); a row back at the default is deleted. Triggers (migration 7) delete the row with the
contact or room it belongs to.
"""

from __future__ import annotations

import sqlite3

from app.core.records import ChatPrefs

FIELDS = ("pinned", "muted", "marked_unread")


class ChatPrefsStore:
    """All reads and writes of the ``chat_prefs`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, conversation: str) -> ChatPrefs:
        row = self._conn.execute(
            "SELECT pinned, muted, marked_unread FROM chat_prefs WHERE conversation = ?",
            (conversation,),
        ).fetchone()
        if row is None:
            return ChatPrefs(conversation)
        return ChatPrefs(conversation, *(bool(v) for v in row))

    def all(self) -> list[ChatPrefs]:
        """Every conversation with a choice that is not the default."""
        rows = self._conn.execute(
            "SELECT conversation, pinned, muted, marked_unread FROM chat_prefs "
            "ORDER BY conversation"
        )
        return [ChatPrefs(r[0], *(bool(v) for v in r[1:])) for r in rows]

    def update(self, conversation: str, **changes: bool) -> ChatPrefs:
        """Change some of ``pinned``, ``muted``, ``marked_unread``; returns the result."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError("unknown chat settings: " + ", ".join(sorted(unknown)))
        if not all(isinstance(v, bool) for v in changes.values()):
            raise ValueError("chat settings are true or false")
        current = self.get(conversation)
        prefs = ChatPrefs(conversation, *(changes.get(f, getattr(current, f)) for f in FIELDS))
        with self._conn:
            if prefs.is_default:
                self._conn.execute("DELETE FROM chat_prefs WHERE conversation = ?",
                                   (conversation,))
            else:
                self._conn.execute(
                    "INSERT INTO chat_prefs VALUES (?, ?, ?, ?) ON CONFLICT (conversation) DO "
                    "UPDATE SET pinned = excluded.pinned, muted = excluded.muted, "
                    "marked_unread = excluded.marked_unread",
                    (conversation, int(prefs.pinned), int(prefs.muted), int(prefs.marked_unread)),
                )
        return prefs
