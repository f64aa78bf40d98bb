"""Feed-state reads and 304 cursor writes are grouped into one thread hop while the
store is busy; each caller still gets exactly its own answer, durably."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

from monitor.models import BodyStatus, Cursor, Entry, FeedState, RuleMatch, Story
from monitor.store import Store, first_cursor
from tests.db import connect

FEEDS = [f"https://feeds.example/{i}.xml" for i in range(20)]
MATCH = RuleMatch("russia", (), "snippet")


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
    with connect(tmp_path / "newsmon.db") as conn:
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
    with connect(tmp_path / "newsmon.db") as conn:
        written = dict(conn.execute("SELECT url, last_status FROM feeds").fetchall())
    assert written == {FEEDS[0]: 304, FEEDS[1]: None, FEEDS[2]: 304}


async def commit_one(store: Store, state: FeedState, key: str) -> list[str]:
    """A successful poll of ``state``'s feed that found one entry matching one rule."""
    entry = Entry(key, f"https://site.example/{key}", f"Story {key}", "", "", None)
    story = Story(entry, entry.url or "", "", BodyStatus.DISABLED, (MATCH,), True, None)
    return await store.commit_poll(
        state, now=100.0, next_poll_at=200.0, cursor=first_cursor(state), title=None,
        stories=[story], destinations={"russia": ["hook"]},
    )  # fmt: skip


async def test_polls_committing_together_keep_their_own_failure(
    store: Store, tmp_path: Path
) -> None:
    """Three polls queue while the store is busy and commit in one group; the one that
    fails (its feed row is gone, so a foreign key breaks) gets the error, and the other
    two land with their hits."""
    await store.sync_feeds(dict.fromkeys(FEEDS[:3]), 0.0, 0.0)
    feeds = [await store.feed_state(url) for url in FEEDS[:3]]
    gone = replace(feeds[1], id=9999)
    async with store._lock:
        tasks = [
            asyncio.create_task(commit_one(store, state, f"k{i}"))
            for i, state in enumerate([feeds[0], gone, feeds[2]])
        ]
        while len(store._poll_commits) < 3:
            await asyncio.sleep(0)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert [len(o) for o in (outcomes[0], outcomes[2])] == [1, 1]  # type: ignore[arg-type]
    with connect(tmp_path / "newsmon.db") as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM entries"))
        hits = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
    assert (keys, hits) == (["k0", "k2"], 2)


async def test_a_group_answers_its_members_when_the_one_serving_it_is_cancelled(
    store: Store, tmp_path: Path
) -> None:
    """The caller that took the group to the database is cancelled mid-way: the others
    still get their own answers, and all three polls are on disk (work queued in the
    database thread runs to its end, and is not done twice)."""
    await store.sync_feeds(dict.fromkeys(FEEDS[:3]), 0.0, 0.0)
    feeds = [await store.feed_state(url) for url in FEEDS[:3]]
    gate = threading.Event()
    async with store._lock:
        tasks = [
            asyncio.create_task(commit_one(store, state, f"k{i}")) for i, state in enumerate(feeds)
        ]
        while len(store._poll_commits) < 3:
            await asyncio.sleep(0)
        blocker = asyncio.create_task(store._in_thread(lambda db: gate.wait(30)))
    while not store._hops:  # the group's hop is queued behind the blocker
        await asyncio.sleep(0)
    tasks[0].cancel()
    gate.set()
    await blocker
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert [len(o) for o in outcomes[1:]] == [1, 1]  # type: ignore[arg-type]
    with connect(tmp_path / "newsmon.db") as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM entries"))
        hits = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
    assert (keys, hits) == (["k0", "k1", "k2"], 3)


async def test_key_reads_queued_together_each_get_their_own(store: Store) -> None:
    """Recent- and known-key reads of three feeds queue while the store is busy and are
    served in one hop; each caller gets its own feed's keys."""
    await store.sync_feeds(dict.fromkeys(FEEDS[:3]), 0.0, 0.0)
    feeds = [await store.feed_state(url) for url in FEEDS[:3]]
    for i, state in enumerate(feeds):
        await commit_one(store, state, f"k{i}")
    async with store._lock:
        reads = [
            asyncio.create_task(read)
            for state in feeds
            for read in (
                store.recent_keys(state.id, 10),
                store.known_keys(state.id, ["id:k0", "k0", "k1", "k2"]),
            )
        ]
        while len(store._reads) < 6:
            await asyncio.sleep(0)
    answers = await asyncio.gather(*reads)
    assert answers == [
        frozenset({"k0"}),
        {"k0"},
        frozenset({"k1"}),
        {"k1"},
        frozenset({"k2"}),
        {"k2"},
    ]
