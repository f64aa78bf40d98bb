"""The tests' own look into a newsmon database file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

from monitor.store import Store


@contextmanager
def connect(path: str | PathLike[str], **options: Any) -> Iterator[sqlite3.Connection]:
    """A connection that commits (or rolls back) and is then closed.

    sqlite3's own ``with`` only ends the transaction: the connection stays open until
    collected, and Python 3.13 warns of each one then, in whichever test is running.
    """
    with closing(sqlite3.connect(path, **options)) as conn, conn:
        yield conn


def plan(path: Path, statement: str) -> str:
    """SQLite's query plan for ``statement`` on the database at ``path``, steps joined by |."""
    with connect(path) as conn:
        return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))


@asynccontextmanager
async def traced(store: Store) -> AsyncIterator[list[str]]:
    """The SQL statements ``store`` runs meanwhile, as its connection traces them."""
    statements: list[str] = []
    await store._in_thread(lambda db: db.set_trace_callback(statements.append))
    try:
        yield statements
    finally:
        await store._in_thread(lambda db: db.set_trace_callback(None))
