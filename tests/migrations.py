"""Taking a profile's schema back to an older version, for tests of a migration's repair."""

from __future__ import annotations

import re
import sqlite3

from app.store.db import MIGRATIONS

_CREATE = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?(TABLE|INDEX|TRIGGER)\s+(\w+)", re.IGNORECASE)
_ADD = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.IGNORECASE)


def undo(conn: sqlite3.Connection, script: str) -> None:
    """Drop what a migration made of tables, indexes, triggers and added columns, last first
    (a migration that only changed rows leaves nothing to drop)."""
    steps = sorted([(m.start(), "create", m.group(1).upper(), m.group(2))
                    for m in _CREATE.finditer(script)]
                   + [(m.start(), "add", m.group(1), m.group(2)) for m in _ADD.finditer(script)],
                   reverse=True)
    for _, what, kind, name in steps:
        if what == "create":
            conn.execute(f"DROP {kind} IF EXISTS {name}")
        else:
            conn.execute(f"ALTER TABLE {kind} DROP COLUMN {name}")


def back_to(conn: sqlite3.Connection, version: int) -> None:
    """Undo the schema every migration after ``version`` added."""
    for script in reversed(MIGRATIONS[version + 1:]):
        undo(conn, script)
