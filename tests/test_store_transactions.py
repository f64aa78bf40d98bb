"""Store transactions survive their caller being cancelled."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from monitor.store import Store
from tests.outbox import eventually


async def test_cancel_while_begin_is_queued_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A write cancelled while its BEGIN waits in aiosqlite's queue rolls back: the next
    write starts its own transaction (a deadline around delivery cancels such writes)."""
    store = await Store.open(tmp_path / "n.db")
    db = store._db
    started, gate = threading.Event(), threading.Event()

    def hold_the_thread() -> None:  # what comes after it waits in the queue
        started.set()
        gate.wait(30)

    try:
        await store.sync_feeds({"http://127.0.0.1/f": None}, 0.0, 0.0)
        holding = asyncio.create_task(db._execute(hold_the_thread))
        await eventually(started.is_set)
        task = asyncio.create_task(store.enable_feed("http://127.0.0.1/f", 1.0))
        await eventually(lambda: db._tx.qsize() == 1)  # its BEGIN is queued
        task.cancel()
        gate.set()
        await holding
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await store.sync_feeds({"http://127.0.0.1/g": None}, 0.0, 0.0)
        assert [r.url for r in await store.feeds()] == ["http://127.0.0.1/f", "http://127.0.0.1/g"]
    finally:
        gate.set()
        await store.close()
