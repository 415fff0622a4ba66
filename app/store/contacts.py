"""Contacts, message requests and blocked peers, plus the address book, in SQLite."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

from app.core.records import ContactInfo, ContactState, short_peer_id
from app.store.db import best_effort
from app.store.messages import offer_summary

MAX_ADDRS_PER_PEER = 32
MAX_INVITE_ADDRS_PER_PEER = 16  # an invite carries at most 16; newer invites replace older ones

_CONTACT_QUERY = """
SELECT c.peer_id, c.their_name, c.local_name, c.state, c.verified, c.last_seen, c.last_activity,
       c.unread,
       (SELECT json_array(m.kind, m.text) FROM messages m
         WHERE m.peer_id = c.peer_id AND m.kind IN (1, 2) AND m.deleted = 0
         ORDER BY m.seq DESC LIMIT 1)
FROM contacts c
"""


def message_preview(newest: str | None) -> str:
    """The contact list's one line: the newest text, or "📎 name" for a file offer."""
    if not newest:
        return ""
    kind, text = json.loads(newest)
    if kind == 2:
        summary = offer_summary(text)
        text = f"📎 {summary[1]}" if summary else ""
    return str(text).split("\n", 1)[0][:120]


class ContactStore:
    """All reads and writes of the ``contacts`` and ``peer_addrs`` tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _info(self, row: tuple, online: bool) -> ContactInfo:
        peer_id, their, local, state, verified, last_seen, activity, unread, last = row
        preview = message_preview(last)
        return ContactInfo(
            peer_id=peer_id,
            name=local or their or short_peer_id(peer_id),
            their_name=their,
            local_name=local,
            state=ContactState(state),
            verified=bool(verified),
            online=online,
            last_seen=last_seen,
            unread=unread,
            last_message=preview,
            last_activity=activity,
        )

    def get(self, peer_id: str, online: bool = False) -> ContactInfo | None:
        row = self._conn.execute(_CONTACT_QUERY + " WHERE c.peer_id = ?", (peer_id,)).fetchone()
        return self._info(row, online) if row else None

    def state(self, peer_id: str) -> ContactState | None:
        row = self._conn.execute("SELECT state FROM contacts WHERE peer_id = ?", (peer_id,))
        found = row.fetchone()
        return ContactState(found[0]) if found else None

    def all(self, online: Iterable[str] = ()) -> list[ContactInfo]:
        """Everyone we know (contacts, requests, blocked), most recent activity first."""
        online_set = set(online)
        rows = self._conn.execute(_CONTACT_QUERY + " ORDER BY c.last_activity DESC, c.peer_id")
        return [self._info(row, row[0] in online_set) for row in rows]

    def peer_ids(self, state: ContactState) -> list[str]:
        rows = self._conn.execute("SELECT peer_id FROM contacts WHERE state = ?", (state.value,))
        return [r[0] for r in rows]

    def count(self, state: ContactState) -> int:
        row = self._conn.execute("SELECT count(*) FROM contacts WHERE state = ?", (state.value,))
        return int(row.fetchone()[0])

    def upsert(self, peer_id: str, state: ContactState, their_name: str = "") -> bool:
        """Add or move a peer to ``state``; returns True if the peer was new."""
        now = time.time()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO contacts (peer_id, state, their_name, added_at, last_activity) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer_id) DO NOTHING",
                (peer_id, state.value, their_name, now, now),
            )
            if cur.rowcount:
                return True
            self._conn.execute(
                "UPDATE contacts SET state = ?, their_name = CASE WHEN ? != '' THEN ? "
                "ELSE their_name END WHERE peer_id = ?",
                (state.value, their_name, their_name, peer_id),
            )
        return False

    def set_their_name(self, peer_id: str, name: str) -> bool:
        """The name a peer gives itself; True if it changed (False if it could not be saved)."""
        changed = False
        with best_effort(self._conn, "a contact's new name"):
            changed = bool(self._conn.execute(
                "UPDATE contacts SET their_name = ? WHERE peer_id = ? AND their_name != ?",
                (name, peer_id, name),
            ).rowcount)
        return changed

    def rename(self, peer_id: str, local_name: str | None) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE contacts SET local_name = ? WHERE peer_id = ?", (local_name, peer_id)
            )

    def set_verified(self, peer_id: str, verified: bool) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE contacts SET verified = ? WHERE peer_id = ?", (int(verified), peer_id)
            )

    def seen(self, peer_id: str, when: float | None = None) -> None:
        with best_effort(self._conn, "when a contact was seen"):
            self._conn.execute(
                "UPDATE contacts SET last_seen = ? WHERE peer_id = ?",
                (when or time.time(), peer_id),
            )

    def touch(self, peer_id: str, when: float | None = None) -> None:
        """Move the conversation up the list."""
        with self._conn:
            self._conn.execute(
                "UPDATE contacts SET last_activity = ? WHERE peer_id = ?",
                (when or time.time(), peer_id),
            )

    def remove(self, peer_id: str) -> None:
        """Forget the peer and the conversation with them."""
        with self._conn:
            self._conn.execute("DELETE FROM messages WHERE peer_id = ?", (peer_id,))
            self._conn.execute("DELETE FROM drafts WHERE conversation = ?", (peer_id,))
            self._conn.execute("DELETE FROM peer_addrs WHERE peer_id = ?", (peer_id,))
            self._conn.execute("DELETE FROM contacts WHERE peer_id = ?", (peer_id,))

    # -- the address book ----------------------------------------------------------------------

    def addrs(self, peer_id: str) -> list[str]:
        """Known addresses, most recently confirmed first."""
        rows = self._conn.execute(
            "SELECT addr FROM peer_addrs WHERE peer_id = ? ORDER BY last_seen DESC", (peer_id,)
        )
        return [r[0] for r in rows]

    def add_addrs(self, peer_id: str, addrs: Iterable[str], source: str) -> None:
        """Remember ``addrs`` (most recent first), within ``MAX_ADDRS_PER_PEER``.

        The stalest go first, but addresses from an invite (what the user chose to trust) are
        never pushed out by addresses from elsewhere: only by a newer invite's. An address an
        invite names counts as the invite's, whatever taught it first.
        """
        now = time.time()
        with best_effort(self._conn, "a peer's addresses"):
            self._conn.executemany(
                "INSERT INTO peer_addrs (peer_id, addr, source, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (peer_id, addr) DO UPDATE SET last_seen = excluded.last_seen, "
                "source = CASE WHEN excluded.source = 'invite' THEN 'invite' ELSE source END",
                [(peer_id, a, source, now) for a in addrs],
            )
            self._conn.execute(
                "DELETE FROM peer_addrs WHERE peer_id = ? AND source = 'invite' AND addr NOT IN "
                "(SELECT addr FROM peer_addrs WHERE peer_id = ? AND source = 'invite' "
                "ORDER BY last_seen DESC LIMIT ?)",
                (peer_id, peer_id, MAX_INVITE_ADDRS_PER_PEER),
            )
            self._conn.execute(
                "DELETE FROM peer_addrs WHERE peer_id = ? AND source != 'invite' AND addr NOT IN "
                "(SELECT addr FROM peer_addrs WHERE peer_id = ? "
                "ORDER BY source = 'invite' DESC, last_seen DESC LIMIT ?)",
                (peer_id, peer_id, MAX_ADDRS_PER_PEER),
            )
