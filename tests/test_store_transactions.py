"""Store transactions survive their caller being cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.store import Store


async def test_cancel_while_begin_is_queued_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A write cancelled while its BEGIN waits in aiosqlite's queue rolls back: the next
    write starts its own transaction (a deadline around delivery cancels such writes)."""
    store = await Store.open(tmp_path / "n.db")
    try:
        await store.sync_feeds({"http://127.0.0.1/f": None}, 0.0, 0.0)
        task = asyncio.create_task(store.enable_feed("http://127.0.0.1/f", 1.0))
        await asyncio.sleep(0)  # the task now awaits its BEGIN
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await store.sync_feeds({"http://127.0.0.1/g": None}, 0.0, 0.0)
        assert [r.url for r in await store.feeds()] == ["http://127.0.0.1/f", "http://127.0.0.1/g"]
    finally:
        await store.close()
