"""A database as earlier releases left it (schema 12 down to 7), made from a current one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from monitor import cluster
from monitor.store import Store
from tests.db import connect


async def reopened(path: Path, back_to: Callable[[sqlite3.Connection], None] | None) -> Store:
    """The store at ``path`` opened again: its file first taken back to an earlier schema
    by ``back_to`` (so the open upgrades it), or as it was."""
    if back_to is not None:
        with connect(path) as conn:
            back_to(conn)
    return await Store.open(path)


def back_to_schema_12(conn: sqlite3.Connection) -> None:
    """Undo migration 13: no index of the failed deliveries; the version says 12."""
    conn.execute("DROP INDEX deliveries_failed")
    conn.execute("PRAGMA user_version = 12")


def back_to_schema_11(conn: sqlite3.Connection) -> None:
    """Undo migrations 13 and 12: entries have no index of those a prune may still
    clear either; the version says 11."""
    back_to_schema_12(conn)
    conn.execute("DROP INDEX entries_unpruned")
    conn.execute("PRAGMA user_version = 11")


def back_to_schema_10(conn: sqlite3.Connection) -> None:
    """Undo migrations 13 to 11: no tallies, no triggers keeping them, no deliveries by
    age either; the version says 10."""
    back_to_schema_11(conn)
    for trigger in ("delivery_added", "delivery_moved", "hit_added"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE delivery_tally")
    conn.execute("DROP TABLE hit_tally")
    conn.execute("DROP INDEX deliveries_created")
    conn.execute("PRAGMA user_version = 10")


def back_to_schema_9(conn: sqlite3.Connection) -> None:
    """Undo migrations 13 to 10: entries have no index by feed alone either; the version
    says 9."""
    back_to_schema_10(conn)
    conn.execute("DROP INDEX entries_feed")
    conn.execute("PRAGMA user_version = 9")


def back_to_schema_8(conn: sqlite3.Connection) -> None:
    """Undo migrations 13 to 9: band rows get their seen_at back, and their keys the
    width they had: 64 bits, today's key the top half (cluster.bands keeps it), the low
    half bits that differ from row to row; the version says 8."""
    back_to_schema_9(conn)
    conn.execute(
        "CREATE TABLE old_bands (band INTEGER NOT NULL, seen_at REAL NOT NULL,"
        " entry_id INTEGER NOT NULL, PRIMARY KEY (band, seen_at, entry_id)) WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO old_bands SELECT (b.band << :high) + ((b.band * 40503 + b.entry_id)"
        " & ((1 << :high) - 1)), p.seen_at, b.entry_id"
        " FROM story_bands AS b JOIN story_prints AS p USING (entry_id)",
        {"high": cluster.HIGH_HALF},
    )
    conn.execute("DROP TABLE story_bands")
    conn.execute("ALTER TABLE old_bands RENAME TO story_bands")
    conn.execute("PRAGMA user_version = 8")


def back_to_schema_7(conn: sqlite3.Connection) -> None:
    """Undo migrations 13 to 8: the feeds' rhythm columns go, and the version says 7."""
    back_to_schema_8(conn)
    for column in ("last_new_at", "rhythm", "rhythm_n"):
        conn.execute(f"ALTER TABLE feeds DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 7")
