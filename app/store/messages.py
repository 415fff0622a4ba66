"""Direct messages in SQLite. The outbox is the outgoing messages not yet acknowledged."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time

from app.core.files import visible_name
from app.core.records import Delivery, MessageInfo

_COLUMNS = "seq, msg_id, peer_id, outgoing, text, sent_at, state, error, kind, reply_to, edited_at"


def _info(row: tuple) -> MessageInfo:
    seq, msg_id, peer_id, outgoing, text, sent_at, state, error, kind, reply_to, edited_at = row
    return MessageInfo(
        seq=seq, id=bytes(msg_id).hex(), peer_id=peer_id, outgoing=bool(outgoing), text=text,
        sent_at_ms=sent_at, state=Delivery(state), error=error, kind=kind, reply_to=reply_to,
        edited_at=edited_at,
    )


def offer_summary(text: str) -> tuple[str, str] | None:
    """(transfer id hex, name) of a stored file offer's JSON; None if it is not usable."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    transfer, name = value.get("transfer"), value.get("name")
    if not isinstance(transfer, str) or len(transfer) != 32 or not isinstance(name, str):
        return None
    try:
        bytes.fromhex(transfer)
    except ValueError:
        return None
    return transfer.lower(), visible_name(name)


def as_file_message(info: MessageInfo) -> MessageInfo | None:
    """A kind-2 message as views see it: ``text`` is the file name, ``transfer`` its id.

    The offer's JSON stays in the database (the outbox re-sends it as is).
    """
    summary = offer_summary(info.text)
    if summary is None:
        return None
    return dataclasses.replace(info, text=summary[1], transfer=summary[0])


class MessageStore:
    """All reads and writes of ``messages`` and ``drafts``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def queue_outgoing(
        self, peer_id: str, msg_id: bytes, text: str, sent_at_ms: int, kind: int = 1,
        reply_to: str | None = None,
    ) -> MessageInfo:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, state, "
                "kind, reply_to) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (peer_id, msg_id, text, sent_at_ms, time.time(), Delivery.SENDING.value, kind,
                 reply_to),
            )
            self._conn.execute(
                "UPDATE contacts SET last_activity = ? WHERE peer_id = ?", (time.time(), peer_id)
            )
        seq = cur.lastrowid
        assert seq is not None
        return MessageInfo(seq, msg_id.hex(), peer_id, True, text, sent_at_ms, Delivery.SENDING,
                           kind=kind, reply_to=reply_to)

    def store_incoming(
        self, peer_id: str, msg_id: bytes, text: str, sent_at_ms: int, kind: int = 1
    ) -> MessageInfo | None:
        """Store a received message; None if it was already stored (a replay or a resend).

        File controls (kind 3) are stored read: they are bookkeeping, never shown. Offers
        (kind 2) count as unread like text: the conversation shows them as file cards. Both
        are stored ``pending`` until ``settle``: their transfer bookkeeping is still to do.

        A message its sender deleted already (a delete that came first) is not stored, as if
        held; an edit that came first is applied as the text is stored (docs/protocol.md 11).
        """
        now = time.time()
        edited_at = None
        with self._conn:
            if self._conn.execute(
                "SELECT 1 FROM messages WHERE peer_id = ? AND target = ? AND outgoing = 0 "
                "AND kind = 19", (peer_id, msg_id.hex()),
            ).fetchone():
                return None
            if kind == 1:
                edit = self._conn.execute(
                    "SELECT text, sent_at FROM messages WHERE peer_id = ? AND target = ? "
                    "AND outgoing = 0 AND kind = 18 ORDER BY sent_at DESC, seq DESC LIMIT 1",
                    (peer_id, msg_id.hex()),
                ).fetchone()
                if edit is not None:
                    text, edited_at = edit[0][32:], edit[1]
            cur = self._conn.execute(
                "INSERT INTO messages (peer_id, msg_id, outgoing, text, sent_at, stored_at, state, "
                "kind, read, pending) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (peer_id, msg_id, text, sent_at_ms, now, Delivery.RECEIVED.value, kind,
                 int(kind not in (1, 2)), int(kind != 1)),
            )
            if cur.rowcount and edited_at is not None:
                self._conn.execute("UPDATE messages SET edited_at = ? WHERE seq = ?",
                                   (edited_at, cur.lastrowid))
            if not cur.rowcount:
                return None
            self._conn.execute(
                "UPDATE contacts SET last_activity = ? WHERE peer_id = ?", (now, peer_id)
            )
        seq = cur.lastrowid
        assert seq is not None
        return MessageInfo(seq, msg_id.hex(), peer_id, False, text, sent_at_ms, Delivery.RECEIVED,
                           kind=kind, edited_at=edited_at)

    def pending(self) -> list[MessageInfo]:
        """Incoming offers and controls stored but not yet handled, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE pending = 1 ORDER BY seq")
        return [_info(r) for r in rows]

    def pending_one(self, peer_id: str, msg_id: bytes) -> MessageInfo | None:
        """The incoming message ``msg_id`` if it is stored but not yet handled."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE peer_id = ? AND outgoing = 0 AND msg_id = ? "
            "AND pending = 1", (peer_id, msg_id),
        ).fetchone()
        return _info(row) if row else None

    def settle(self, seq: int) -> None:
        """The pending message ``seq`` is handled."""
        with self._conn:
            self._conn.execute("UPDATE messages SET pending = 0 WHERE seq = ?", (seq,))

    def outbox(self, peer_id: str, after_seq: int = 0, limit: int = 64) -> list[MessageInfo]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE peer_id = ? AND outgoing = 1 "
            "AND state IN ('sending', 'sent') AND seq > ? ORDER BY seq LIMIT ?",
            (peer_id, after_seq, limit),
        )
        return [_info(r) for r in rows]

    def incoming_usage(self, peer_id: str) -> tuple[int, int]:
        """(messages, bytes of their bodies) kept from ``peer_id``: a message request's quota."""
        count, size = self._conn.execute(
            "SELECT count(*), coalesce(sum(length(CAST(text AS BLOB))), 0) FROM messages "
            "WHERE peer_id = ? AND outgoing = 0", (peer_id,),
        ).fetchone()
        return int(count), int(size)

    def peers_with_outbox(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT peer_id FROM messages WHERE outgoing = 1 "
            "AND state IN ('sending', 'sent')"
        )
        return [r[0] for r in rows]

    def set_state(
        self, peer_id: str, msg_id: bytes, state: Delivery, error: str | None = None,
        only_from: tuple[Delivery, ...] = (),
    ) -> MessageInfo | None:
        """Move an outgoing message to ``state``; None if not found or not in ``only_from``."""
        sql = "UPDATE messages SET state = ?, error = ? WHERE peer_id = ? AND outgoing = 1 " \
              "AND msg_id = ?"
        params: list[object] = [state.value, error, peer_id, msg_id]
        if only_from:
            sql += f" AND state IN ({','.join('?' * len(only_from))})"
            params += [s.value for s in only_from]
        with self._conn:
            cur = self._conn.execute(sql, params)
        if not cur.rowcount:
            return None
        return self.get(peer_id, msg_id, outgoing=True)

    def get(self, peer_id: str, msg_id: bytes, outgoing: bool) -> MessageInfo | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE peer_id = ? AND msg_id = ? AND outgoing = ?",
            (peer_id, msg_id, int(outgoing)),
        ).fetchone()
        return _info(row) if row else None

    def find_outgoing(self, msg_id_hex: str) -> MessageInfo | None:
        try:
            msg_id = bytes.fromhex(msg_id_hex)
        except ValueError:
            return None
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE msg_id = ? AND outgoing = 1", (msg_id,)
        ).fetchone()
        return _info(row) if row else None

    def history(self, peer_id: str, before_seq: int | None = None, limit: int = 100
                ) -> list[MessageInfo]:
        """A page of the conversation, oldest first, ending just before ``before_seq``.

        Text messages and file offers (kind 2, as ``as_file_message`` shows them); controls
        and message actions are bookkeeping and never shown, nor are deleted messages.
        """
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE peer_id = ? AND seq < ? AND kind IN (1, 2) "
            "AND deleted = 0 ORDER BY seq DESC LIMIT ?",
            (peer_id, before_seq if before_seq is not None else 2**62, limit),
        ).fetchall()
        out = []
        for row in reversed(rows):
            info: MessageInfo | None = _info(row)
            if info is not None and info.kind == 2:
                info = as_file_message(info)  # an offer we could not read is left out
            if info is not None:
                out.append(info)
        return out

    def mark_read(self, peer_id: str) -> int:
        with self._conn:
            cur = self._conn.execute(
                "UPDATE messages SET read = 1 WHERE peer_id = ? AND outgoing = 0 AND read = 0",
                (peer_id,),
            )
        return cur.rowcount

    def unread_total(self) -> int:
        """Received messages not yet read, blocked peers' left out (kept per contact by the
        schema's triggers, migration 15)."""
        row = self._conn.execute(
            "SELECT coalesce(sum(unread), 0) FROM contacts WHERE state != 'blocked'"
        ).fetchone()
        return int(row[0])

    def draft(self, conversation: str) -> str:
        row = self._conn.execute(
            "SELECT text FROM drafts WHERE conversation = ?", (conversation,)
        ).fetchone()
        return row[0] if row else ""

    def drafts(self) -> dict[str, str]:
        """Every unsent draft, by conversation (the chat list marks them)."""
        rows = self._conn.execute("SELECT conversation, text FROM drafts")
        return {conversation: text for conversation, text in rows}

    def set_draft(self, conversation: str, text: str) -> None:
        with self._conn:
            if text:
                self._conn.execute(
                    "INSERT INTO drafts VALUES (?, ?) ON CONFLICT (conversation) "
                    "DO UPDATE SET text = excluded.text",
                    (conversation, text),
                )
            else:
                self._conn.execute("DELETE FROM drafts WHERE conversation = ?", (conversation,))
