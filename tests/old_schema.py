"""A database as the previous release (schema 7) left it, made from a current one."""

from __future__ import annotations

import sqlite3


def back_to_schema_7(conn: sqlite3.Connection) -> None:
    """Undo migration 8: the feeds' rhythm columns go, and the version says 7."""
    for column in ("last_new_at", "rhythm", "rhythm_n"):
        conn.execute(f"ALTER TABLE feeds DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 7")
