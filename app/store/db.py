"""The profile's SQLite database: WAL mode, a schema version, and ordered migrations.

Only the network thread writes (one writer); the connection is created in that thread.
Migrations are a list of SQL scripts: version N is the state after the first N have run,
each in its own transaction, so a crash mid-upgrade leaves the previous version intact.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.errors import StorageError
from app.store.profile import ProfileCorrupt

log = logging.getLogger(__name__)

# Append only. Never edit a migration that has shipped: add a new one.
MIGRATIONS: list[str] = [
    # 1: the address book (what we learned about where peers are).
    """
    CREATE TABLE peer_addrs (
        peer_id   TEXT NOT NULL,
        addr      TEXT NOT NULL,
        source    TEXT NOT NULL,          -- 'invite', 'identify', 'self'
        last_seen REAL NOT NULL,
        PRIMARY KEY (peer_id, addr)
    );
    """,
    # 2: contacts, direct messages (the outbox is the undelivered outgoing ones), drafts.
    """
    CREATE TABLE contacts (
        peer_id       TEXT PRIMARY KEY,
        state         TEXT NOT NULL CHECK (state IN ('contact', 'request', 'blocked')),
        their_name    TEXT NOT NULL DEFAULT '',
        local_name    TEXT,
        verified      INTEGER NOT NULL DEFAULT 0,
        added_at      REAL NOT NULL,
        last_seen     REAL,
        last_activity REAL NOT NULL
    );
    CREATE TABLE messages (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        peer_id    TEXT NOT NULL,
        msg_id     BLOB NOT NULL,
        outgoing   INTEGER NOT NULL,
        text       TEXT NOT NULL,
        sent_at    INTEGER NOT NULL,
        stored_at  REAL NOT NULL,
        state      TEXT NOT NULL,
        error      TEXT,
        read       INTEGER NOT NULL DEFAULT 0,
        UNIQUE (peer_id, outgoing, msg_id)
    );
    CREATE INDEX messages_by_peer ON messages (peer_id, seq);
    CREATE INDEX messages_outbox ON messages (peer_id, seq)
        WHERE outgoing = 1 AND state IN ('sending', 'sent');
    CREATE INDEX messages_unread ON messages (peer_id) WHERE outgoing = 0 AND read = 0;
    CREATE TABLE drafts (
        conversation TEXT PRIMARY KEY,
        text         TEXT NOT NULL
    );
    """,
    # 3: group rooms, their members and posts (posts keep the original envelope for sync).
    """
    CREATE TABLE rooms (
        room_id       BLOB PRIMARY KEY,
        key           BLOB NOT NULL,
        name          TEXT NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        joined_at     REAL NOT NULL,
        last_activity REAL NOT NULL,
        lamport       INTEGER NOT NULL DEFAULT 0,
        my_seq        INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE room_members (
        room_id   BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        peer_id   TEXT NOT NULL,
        name      TEXT NOT NULL DEFAULT '',
        addrs     TEXT NOT NULL DEFAULT '[]',
        last_seen REAL,
        PRIMARY KEY (room_id, peer_id)
    );
    CREATE TABLE room_posts (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id    BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        post_id    BLOB NOT NULL,
        author     TEXT NOT NULL,
        author_key BLOB NOT NULL,
        lamport    INTEGER NOT NULL,
        author_seq INTEGER NOT NULL,
        sent_at    INTEGER NOT NULL,
        kind       INTEGER NOT NULL,
        body       BLOB NOT NULL,
        envelope   BLOB NOT NULL,
        state      TEXT NOT NULL,
        read       INTEGER NOT NULL DEFAULT 0,
        UNIQUE (room_id, author_key, post_id),
        UNIQUE (room_id, author_key, author_seq)
    );
    CREATE INDEX room_posts_order ON room_posts (room_id, lamport, author_key, post_id);
    CREATE INDEX room_posts_unread ON room_posts (room_id) WHERE read = 0;
    """,
    # 4: file transfers. Direct messages get a kind (1 text, 2 file offer, 3 file control) so
    # offers and controls travel through the same persistent outbox. One row per transfer,
    # either side; ``verified`` is a bitmap of verified chunks so a resume never re-fetches.
    """
    ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE transfers (
        transfer_id BLOB PRIMARY KEY,
        outgoing    INTEGER NOT NULL,
        peer_id     TEXT NOT NULL,        -- the other side, or the room file's author
        room_id     BLOB,                 -- set for files shared in a room
        name        TEXT NOT NULL,        -- as offered (incoming: untrusted, display only)
        size        INTEGER NOT NULL,
        chunk_size  INTEGER NOT NULL,
        root        BLOB NOT NULL,
        hash        BLOB NOT NULL,
        mime        TEXT NOT NULL,
        state       TEXT NOT NULL,        -- offered receiving complete declined cancelled failed
        reason      TEXT,
        path        TEXT,                 -- outgoing: the source; incoming: the final file
        dir         TEXT,                 -- incoming: the folder chosen on accept
        part_path   TEXT,                 -- incoming: the .part being written
        src_size    INTEGER,              -- outgoing: the source as hashed, to notice changes
        src_mtime   INTEGER,
        hashes      BLOB,                 -- the chunk hash list (incoming: once verified)
        verified    BLOB,                 -- incoming: bitmap, bit i of byte i//8 (LSB first)
        done_bytes  INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX transfers_by_state ON transfers (state);
    """,
    # 5: full-text search over text messages and text room posts (app/store/search.py).
    # ``search_docs`` numbers every indexed text in arrival order (docid, the FTS rowid, so
    # "newest first" is a reverse rowid walk that stops after the page) and maps it back to its
    # row; triggers keep both in step with ``messages`` and ``room_posts`` (a removed contact or
    # room deletes its rows, and so its index entries). Existing texts are indexed here, oldest
    # first by sender's time.
    """
    CREATE TABLE search_docs (
        docid INTEGER PRIMARY KEY,
        kind  INTEGER NOT NULL,           -- 0 a direct message, 1 a room post
        row   INTEGER NOT NULL,           -- messages.seq or room_posts.seq
        UNIQUE (kind, row)
    );
    CREATE VIRTUAL TABLE search_index USING fts5(
        content, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4 5'
    );
    INSERT INTO search_docs (kind, row)
        SELECT kind, row FROM (
            SELECT 0 AS kind, seq AS row, sent_at FROM messages WHERE kind = 1
            UNION ALL
            SELECT 1 AS kind, seq AS row, sent_at FROM room_posts WHERE kind = 1
        ) ORDER BY sent_at, kind, row;
    INSERT INTO search_index (rowid, content)
        SELECT d.docid, m.text FROM search_docs d JOIN messages m ON m.seq = d.row
        WHERE d.kind = 0;
    INSERT INTO search_index (rowid, content)
        SELECT d.docid, CAST(p.body AS TEXT) FROM search_docs d JOIN room_posts p ON p.seq = d.row
        WHERE d.kind = 1;
    CREATE TRIGGER search_dm_added AFTER INSERT ON messages WHEN new.kind = 1 BEGIN
        INSERT INTO search_docs (kind, row) VALUES (0, new.seq);
        INSERT INTO search_index (rowid, content) VALUES (last_insert_rowid(), new.text);
    END;
    CREATE TRIGGER search_dm_removed AFTER DELETE ON messages WHEN old.kind = 1 BEGIN
        DELETE FROM search_index WHERE rowid =
            (SELECT docid FROM search_docs WHERE kind = 0 AND row = old.seq);
        DELETE FROM search_docs WHERE kind = 0 AND row = old.seq;
    END;
    CREATE TRIGGER search_post_added AFTER INSERT ON room_posts WHEN new.kind = 1 BEGIN
        INSERT INTO search_docs (kind, row) VALUES (1, new.seq);
        INSERT INTO search_index (rowid, content)
            VALUES (last_insert_rowid(), CAST(new.body AS TEXT));
    END;
    CREATE TRIGGER search_post_removed AFTER DELETE ON room_posts WHEN old.kind = 1 BEGIN
        DELETE FROM search_index WHERE rowid =
            (SELECT docid FROM search_docs WHERE kind = 1 AND row = old.seq);
        DELETE FROM search_docs WHERE kind = 1 AND row = old.seq;
    END;
    """,
    # 6: a file's hash is its content hash (SHA-256 of the chunk hashes), which is what the
    # offer's separate ``root`` used to hold; the SHA-256 of the whole content is gone.
    """
    UPDATE transfers SET hash = root;
    ALTER TABLE transfers DROP COLUMN root;
    """,
    # 7: an incoming file offer or control (kind 2, 3) is ``pending`` from the commit that
    # stores it until its transfer bookkeeping is done, so a crash in between is finished at
    # the next start (app/node/dm.py) instead of leaving an offer nobody sees.
    """
    ALTER TABLE messages ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_pending ON messages (seq) WHERE pending = 1;
    """,
    # 8: the chat list's per-conversation choices (app/store/chat_prefs.py), keyed like drafts:
    # a peer id, or a room id in lower-case hex. They go with their contact or room.
    """
    CREATE TABLE chat_prefs (
        conversation  TEXT PRIMARY KEY,
        pinned        INTEGER NOT NULL DEFAULT 0,
        muted         INTEGER NOT NULL DEFAULT 0,
        marked_unread INTEGER NOT NULL DEFAULT 0
    );
    CREATE TRIGGER chat_prefs_contact_removed AFTER DELETE ON contacts BEGIN
        DELETE FROM chat_prefs WHERE conversation = old.peer_id;
    END;
    CREATE TRIGGER chat_prefs_room_removed AFTER DELETE ON rooms BEGIN
        DELETE FROM chat_prefs WHERE conversation = lower(hex(old.room_id));
    END;
    """,
    # 9: rooms hold against hostile members. Posts whose numbers are beyond what members accept
    # now (docs/protocol.md 8.6: lamport <= 2^62, author_seq <= 2^32 - 1, sent_at before 2100)
    # could only come from a hostile member, and a room clock they pushed past i64 was stored as
    # REAL (9.22e18), which stopped the profile from starting: both are repaired here, the clock
    # recomputed from the posts that remain. Members remember the newest announce taken from
    # them (a replayed older one changes nothing), and room_conflicts lists the (author,
    # author_seq) where two different posts were seen, so sync can hand out the winner.
    """
    DELETE FROM room_posts WHERE typeof(lamport) != 'integer' OR typeof(author_seq) != 'integer'
        OR typeof(sent_at) != 'integer' OR lamport NOT BETWEEN 0 AND 4611686018427387904
        OR author_seq NOT BETWEEN 0 AND 4294967295 OR sent_at NOT BETWEEN 0 AND 4102444800000;
    UPDATE rooms SET lamport = coalesce(
            (SELECT max(lamport) FROM room_posts p WHERE p.room_id = rooms.room_id), 0)
        WHERE typeof(lamport) != 'integer' OR lamport NOT BETWEEN 0 AND 4611686018427387904;
    UPDATE rooms SET my_seq = coalesce(
            (SELECT max(author_seq) FROM room_posts p WHERE p.room_id = rooms.room_id), 0)
        WHERE typeof(my_seq) != 'integer' OR my_seq NOT BETWEEN 0 AND 4294967295;
    ALTER TABLE room_members ADD COLUMN announce_lamport INTEGER;
    ALTER TABLE room_members ADD COLUMN announce_sent_at INTEGER;
    CREATE TABLE room_conflicts (
        room_id    BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        author_key BLOB NOT NULL,
        author_seq INTEGER NOT NULL,
        PRIMARY KEY (room_id, author_key, author_seq)
    );
    """,
    # Mailboxes (app/node/mailbox): serving, the users registered here, their held mail (the
    # sealed payloads as received) and the senders their block lists refuse; using one, the
    # outgoing messages a mailbox holds for their recipient, and each contact's newest signed
    # mailbox record. "IF NOT EXISTS": running it again (a repair that rewinds the version)
    # changes nothing.
    """
    CREATE TABLE IF NOT EXISTS mailbox_users (
        peer_id       TEXT PRIMARY KEY,
        registered_at REAL NOT NULL,
        renewed_at    REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS mailbox_blocked (
        user    TEXT NOT NULL REFERENCES mailbox_users (peer_id) ON DELETE CASCADE,
        sender  TEXT NOT NULL,
        PRIMARY KEY (user, sender)
    );
    CREATE TABLE IF NOT EXISTS mailbox_items (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient    TEXT NOT NULL REFERENCES mailbox_users (peer_id) ON DELETE CASCADE,
        sender       TEXT NOT NULL,
        deposited_at INTEGER NOT NULL,
        size         INTEGER NOT NULL,
        payload      BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS mailbox_items_by_recipient ON mailbox_items (recipient, id);
    CREATE INDEX IF NOT EXISTS mailbox_items_by_sender ON mailbox_items (recipient, sender);
    CREATE INDEX IF NOT EXISTS mailbox_items_by_age ON mailbox_items (deposited_at);
    CREATE TABLE IF NOT EXISTS mailbox_held (
        seq     INTEGER PRIMARY KEY REFERENCES messages (seq) ON DELETE CASCADE,
        mailbox TEXT NOT NULL,
        held_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS mailbox_records (
        peer_id TEXT PRIMARY KEY,
        seq     INTEGER NOT NULL,
        record  BLOB NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS mailbox_contact_removed AFTER DELETE ON contacts BEGIN
        DELETE FROM mailbox_records WHERE peer_id = old.peer_id;
        DELETE FROM mailbox_users WHERE peer_id = old.peer_id;
    END;
    """,
    # Message actions (docs/protocol.md 11): replies, reactions, edits and deletions in direct
    # messages and rooms, and the features peers announce. An incoming action is a message row
    # (kinds 16-19) whose ``target`` is the id it acts on, kept until that message comes;
    # a reply is stored as text with ``reply_to``. A message deleted for everyone (or for
    # me) keeps its row, without its text, so that a late copy is not taken again. In rooms
    # a deleted post leaves ``room_posts`` (and so sync and the index) and a tombstone stays;
    # ``room_edits`` holds the newest edit of a post. The index follows edits and replies.
    """
    ALTER TABLE messages ADD COLUMN reply_to TEXT;
    ALTER TABLE messages ADD COLUMN edited_at INTEGER;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN target TEXT;
    CREATE INDEX messages_actions ON messages (peer_id, target) WHERE target IS NOT NULL;
    CREATE TABLE reactions (
        conversation TEXT NOT NULL,       -- a peer id, or a room id in lower-case hex
        target       TEXT NOT NULL,       -- the message or post id, hex
        by_peer      TEXT NOT NULL,
        emoji        TEXT NOT NULL,
        at           INTEGER NOT NULL,    -- the order it was set in (DM seq, room lamport)
        removed      INTEGER NOT NULL DEFAULT 0,  -- taken back at ``at``: a later change wins
        PRIMARY KEY (conversation, target, by_peer, emoji)
    );
    CREATE TABLE room_edits (
        room_id    BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        author_key BLOB NOT NULL,
        post_id    BLOB NOT NULL,
        text       TEXT NOT NULL,
        lamport    INTEGER NOT NULL,      -- the edit's, to keep the newest
        edit_id    BLOB NOT NULL,
        sent_at    INTEGER NOT NULL,
        PRIMARY KEY (room_id, author_key, post_id)
    );
    CREATE TABLE room_tombstones (
        room_id    BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        author_key BLOB NOT NULL,
        post_id    BLOB NOT NULL,
        PRIMARY KEY (room_id, author_key, post_id)
    );
    CREATE TABLE peer_features (
        peer_id    TEXT PRIMARY KEY,
        features   TEXT NOT NULL,         -- JSON list, as the peer's profile announced it
        updated_at REAL NOT NULL
    );
    CREATE TRIGGER reactions_contact_removed AFTER DELETE ON contacts BEGIN
        DELETE FROM reactions WHERE conversation = old.peer_id;
    END;
    CREATE TRIGGER reactions_room_removed AFTER DELETE ON rooms BEGIN
        DELETE FROM reactions WHERE conversation = lower(hex(old.room_id));
    END;
    CREATE TRIGGER search_dm_edited AFTER UPDATE OF text ON messages
        WHEN old.kind = 1 AND new.kind = 1 BEGIN
        UPDATE search_index SET content = new.text WHERE rowid =
            (SELECT docid FROM search_docs WHERE kind = 0 AND row = new.seq);
    END;
    CREATE TRIGGER search_dm_became_text AFTER UPDATE OF kind ON messages
        WHEN old.kind != 1 AND new.kind = 1 BEGIN
        INSERT INTO search_docs (kind, row) VALUES (0, new.seq);
        INSERT INTO search_index (rowid, content) VALUES (last_insert_rowid(), new.text);
    END;
    CREATE TRIGGER search_reply_added AFTER INSERT ON room_posts WHEN new.kind = 16 BEGIN
        INSERT INTO search_docs (kind, row) VALUES (1, new.seq);
        INSERT INTO search_index (rowid, content)
            VALUES (last_insert_rowid(), substr(CAST(new.body AS TEXT), 33));
    END;
    CREATE TRIGGER search_reply_removed AFTER DELETE ON room_posts WHEN old.kind = 16 BEGIN
        DELETE FROM search_index WHERE rowid =
            (SELECT docid FROM search_docs WHERE kind = 1 AND row = old.seq);
        DELETE FROM search_docs WHERE kind = 1 AND row = old.seq;
    END;
    """,
    # Governed rooms (app/store/room_governance.py, docs/protocol.md 8.12). The membership
    # log itself is room posts of kind 32; here are what replaying it gave (each member's role
    # and status, for listing members without a replay), the epoch keys we hold, and the
    # invite tokens we made (their secret half, to show the link again and to revoke it).
    """
    CREATE TABLE IF NOT EXISTS room_roles (
        room_id  BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        peer_id  TEXT NOT NULL,
        role     TEXT NOT NULL,
        status   TEXT NOT NULL,
        PRIMARY KEY (room_id, peer_id)
    );
    CREATE TABLE IF NOT EXISTS room_epoch_keys (
        room_id  BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        epoch_id BLOB NOT NULL,
        key      BLOB NOT NULL,
        PRIMARY KEY (room_id, epoch_id)
    );
    CREATE TABLE IF NOT EXISTS room_invites (
        room_id    BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        invite_key TEXT NOT NULL,
        seed       BLOB NOT NULL,
        link       TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (room_id, invite_key)
    );
    """,
    # File bytes at mailboxes (docs/protocol.md 10.8). Serving: each blob a sender declared
    # for a user (its declared size counts toward the quotas from the start) and its sealed
    # pieces, one row each (the bytes are in a file per blob, app/store/mailbox.py); a user
    # who goes takes their blobs along. Sending or receiving:
    # which mailbox blob holds the bytes of a direct transfer, and its key (the sealed offer
    # carries them); ``state`` is the sender's upload ('uploading', 'deposited', 'refused') or
    # the receiver's ('offered', 'deleted' once the mailbox let it go).
    """
    CREATE TABLE IF NOT EXISTS mailbox_blobs (
        id        INTEGER PRIMARY KEY,
        recipient TEXT NOT NULL REFERENCES mailbox_users (peer_id) ON DELETE CASCADE,
        sender    TEXT NOT NULL,
        blob      BLOB NOT NULL,
        size      INTEGER NOT NULL,
        pieces    INTEGER NOT NULL,
        stored    INTEGER NOT NULL DEFAULT 0,
        opened_at INTEGER NOT NULL,
        UNIQUE (recipient, blob)
    );
    CREATE INDEX IF NOT EXISTS mailbox_blobs_by_sender ON mailbox_blobs (recipient, sender);
    CREATE INDEX IF NOT EXISTS mailbox_blobs_by_age ON mailbox_blobs (opened_at);
    CREATE TABLE IF NOT EXISTS mailbox_blob_pieces (
        blob_row INTEGER NOT NULL REFERENCES mailbox_blobs (id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        size     INTEGER NOT NULL,       -- the piece is in the blob's file, at idx * MAX_PIECE
        PRIMARY KEY (blob_row, idx)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS transfer_blobs (
        transfer_id BLOB PRIMARY KEY REFERENCES transfers (transfer_id) ON DELETE CASCADE,
        mailbox     TEXT NOT NULL,
        blob        BLOB NOT NULL,
        key         BLOB NOT NULL,
        state       TEXT NOT NULL
    );
    """,
    # Room posts (text and replies) are indexed for search in batches, not in the commit that
    # stores them (app/store/search.py, ``SearchStore.index_pending``): at gossip rates the
    # index was about 40 % of storing a post. A stored post gets its docid at once (so the
    # order of results is still arrival order) and waits in ``search_pending``; indexing
    # takes the post's newest edit, if one came first. Direct messages are indexed at once.
    """
    CREATE TABLE search_pending (docid INTEGER PRIMARY KEY);
    DROP TRIGGER IF EXISTS search_post_added;
    DROP TRIGGER IF EXISTS search_reply_added;
    DROP TRIGGER IF EXISTS search_post_removed;
    DROP TRIGGER IF EXISTS search_reply_removed;
    CREATE TRIGGER search_post_added AFTER INSERT ON room_posts WHEN new.kind IN (1, 16) BEGIN
        INSERT INTO search_docs (kind, row) VALUES (1, new.seq);
        INSERT INTO search_pending (docid) VALUES (last_insert_rowid());
    END;
    CREATE TRIGGER search_post_removed AFTER DELETE ON room_posts WHEN old.kind IN (1, 16)
    BEGIN
        DELETE FROM search_index WHERE rowid =
            (SELECT docid FROM search_docs WHERE kind = 1 AND row = old.seq);
        DELETE FROM search_pending WHERE docid =
            (SELECT docid FROM search_docs WHERE kind = 1 AND row = old.seq);
        DELETE FROM search_docs WHERE kind = 1 AND row = old.seq;
    END;
    """,
    # 15: unread counts kept with their conversation, in the same transaction as every change to
    # what they count: counting them was a walk over every unread (or, for a contact, every
    # received) message, and each received message asked for its contact's count and the
    # total, so a message cost more the longer a conversation went unread. A contact's count
    # is that of its received unread messages (which may be stored before the contact is), a
    # room's that of its unread posts (which cannot outlive it).
    """
    ALTER TABLE contacts ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    UPDATE contacts SET unread = (SELECT count(*) FROM messages m
        WHERE m.peer_id = contacts.peer_id AND m.outgoing = 0 AND m.read = 0);
    UPDATE rooms SET unread = (SELECT count(*) FROM room_posts p
        WHERE p.room_id = rooms.room_id AND p.read = 0);
    CREATE TRIGGER unread_contact_added AFTER INSERT ON contacts BEGIN
        UPDATE contacts SET unread = (SELECT count(*) FROM messages m
            WHERE m.peer_id = new.peer_id AND m.outgoing = 0 AND m.read = 0)
        WHERE peer_id = new.peer_id;
    END;
    CREATE TRIGGER unread_message_added AFTER INSERT ON messages
    WHEN new.outgoing = 0 AND new.read = 0 BEGIN
        UPDATE contacts SET unread = unread + 1 WHERE peer_id = new.peer_id;
    END;
    CREATE TRIGGER unread_message_removed AFTER DELETE ON messages
    WHEN old.outgoing = 0 AND old.read = 0 BEGIN
        UPDATE contacts SET unread = unread - 1 WHERE peer_id = old.peer_id;
    END;
    CREATE TRIGGER unread_message_changed AFTER UPDATE OF peer_id, outgoing, read ON messages
    WHEN (old.outgoing = 0 AND old.read = 0) != (new.outgoing = 0 AND new.read = 0)
        OR old.peer_id != new.peer_id BEGIN
        UPDATE contacts SET unread = unread - 1
            WHERE peer_id = old.peer_id AND old.outgoing = 0 AND old.read = 0;
        UPDATE contacts SET unread = unread + 1
            WHERE peer_id = new.peer_id AND new.outgoing = 0 AND new.read = 0;
    END;
    CREATE TRIGGER unread_post_added AFTER INSERT ON room_posts WHEN new.read = 0 BEGIN
        UPDATE rooms SET unread = unread + 1 WHERE room_id = new.room_id;
    END;
    CREATE TRIGGER unread_post_removed AFTER DELETE ON room_posts WHEN old.read = 0 BEGIN
        UPDATE rooms SET unread = unread - 1 WHERE room_id = old.room_id;
    END;
    CREATE TRIGGER unread_post_changed AFTER UPDATE OF room_id, read ON room_posts
    WHEN (old.read = 0) != (new.read = 0) OR old.room_id != new.room_id BEGIN
        UPDATE rooms SET unread = unread - 1 WHERE room_id = old.room_id AND old.read = 0;
        UPDATE rooms SET unread = unread + 1 WHERE room_id = new.room_id AND new.read = 0;
    END;
    """,
    # 16: what was found by walking a whole room or every message, found by an index. A
    # message or post named by its id alone (a read receipt for each message shown, a reaction
    # or an edit received, a user's action on a message) was a scan of every message (20 ms
    # at 200,000) or every post; a governed room's membership log, replayed when the node
    # starts and when an entry arrives, was a walk over every post of the room (164 ms for
    # 200,000 posts in five rooms); so were an author's edit posts of a post deleted for
    # everyone (a walk over every post of the author). Only membership posts (kind 32) and
    # edit posts (kind 18, by the target id their body starts with) are in the last two.
    """
    CREATE INDEX messages_by_id ON messages (msg_id);
    CREATE INDEX room_posts_by_id ON room_posts (post_id);
    CREATE INDEX room_posts_membership ON room_posts (room_id, lamport, author_key, post_id)
        WHERE kind = 32;
    CREATE INDEX room_posts_edits ON room_posts (room_id, author_key, substr(body, 1, 32))
        WHERE kind = 18;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    if conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
        conn.execute("INSERT INTO schema_version VALUES (0)")
        conn.commit()
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise ProfileCorrupt(
            f"This profile was written by a newer Kith (schema {found}, this one knows "
            f"{SCHEMA_VERSION}). Update Kith to open it."
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with conn:  # one transaction per migration
            conn.executescript("BEGIN;" + MIGRATIONS[version - 1] + ";")
            conn.execute("UPDATE schema_version SET version = ?", (version,))
    return found


def storage_error(exc: sqlite3.Error) -> StorageError:
    """A database failure in words for the user (the command's change was rolled back)."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StorageError(
            "the disk that holds your Kith profile is full; free some space and try again")
    return StorageError(f"Kith could not use its database: {exc}")


@contextmanager
def best_effort(conn: sqlite3.Connection, what: str) -> Iterator[None]:
    """One transaction the node can do without (noting when a peer was seen, an address or a
    name it learned): if the disk is full or failing it is rolled back and skipped with a log
    line, instead of stopping the task that asked, or the node."""
    try:
        with conn:
            yield
    except sqlite3.OperationalError as exc:
        log.warning("skipped %s: %s", what, exc)


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate; a damaged file raises ``ProfileCorrupt``."""
    try:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn)
        return conn
    except sqlite3.DatabaseError as exc:
        raise ProfileCorrupt(
            f"The database {path} is damaged or not a Kith database ({exc}). "
            "Restore it from a backup, or move it away to start with an empty history."
        ) from exc
