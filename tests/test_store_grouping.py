"""Feed-state reads and 304 cursor writes are grouped into one thread hop while the
store is busy; each caller still gets exactly its own answer, durably."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from monitor.models import Cursor
from monitor.store import Store

FEEDS = [f"https://feeds.example/{i}.xml" for i in range(20)]


def cursor_for(url: str, location) -> Cursor:  # type: ignore[no-untyped-def]
    return Cursor(304, f'"{url}"', None, url, location)


async def test_concurrent_reads_and_writes_each_get_their_own(store: Store, tmp_path: Path) -> None:
    """Twenty feeds read and written at once: every read names its own feed, and every
    cursor lands on its own row, on disk when the call returns."""
    await store.sync_feeds(dict.fromkeys(FEEDS), 0.0, 0.0)
    read = await asyncio.gather(*(store.feed_state(url) for url in FEEDS))
    assert [s.url for s in read] == FEEDS
    await asyncio.gather(
        *(
            store.record_not_modified(s.id, 100.0, 1000.0 + i, cursor_for(s.url, s.location))
            for i, s in enumerate(read)
        )
    )
    with sqlite3.connect(tmp_path / "newsmon.db") as conn:
        rows = conn.execute("SELECT url, etag, next_poll_at, last_status FROM feeds").fetchall()
    assert sorted(rows) == sorted((url, f'"{url}"', 1000.0 + i, 304) for i, url in enumerate(FEEDS))


async def test_a_write_cancelled_while_queued_is_never_made(store: Store, tmp_path: Path) -> None:
    """With the store busy, three 304 writes queue; the one cancelled in the queue is not
    written, the other two are."""
    await store.sync_feeds(dict.fromkeys(FEEDS[:3]), 0.0, 0.0)
    feeds = [await store.feed_state(url) for url in FEEDS[:3]]
    async with store._lock:  # the store is busy with something else
        tasks = [
            asyncio.create_task(
                store.record_not_modified(f.id, 100.0, 5000.0, cursor_for(f.url, f.location))
            )
            for f in feeds
        ]
        while len(store._not_modified) < 3:
            await asyncio.sleep(0)
        tasks[1].cancel()
        await asyncio.gather(tasks[1], return_exceptions=True)
    await asyncio.gather(tasks[0], tasks[2])
    assert tasks[1].cancelled()
    with sqlite3.connect(tmp_path / "newsmon.db") as conn:
        written = dict(conn.execute("SELECT url, last_status FROM feeds").fetchall())
    assert written == {FEEDS[0]: 304, FEEDS[1]: None, FEEDS[2]: 304}
