"""A feed's history only grows (entry rows outlive the retention), so what a poll reads of
it must not cost more as it grows: its newest keys and publication times come through the
feed's index, in a real SQLite file."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.models import BodyStatus, Entry, Story
from monitor.store import MIGRATIONS, Store, first_cursor
from tests.db import connect, plan, traced
from tests.old_schema import back_to_schema_9, reopened
from tests.servers import Item, Publisher
from tests.watchlists import watchlist

FEEDS = ["https://a.test/rss", "https://b.test/rss"]
AMONG = 100  # the stored entries publication_times looks among
HISTORY = 2 * AMONG  # entries each feed has stored
T0 = 1_700_000_000.0


def entry(feed: int, n: int) -> Story:
    """The feed's ``n``-th entry; its publication dates run backwards every tenth entry
    (backfilled items), so stored order and publication order differ, and the first
    claims a date far ahead, which only a read of the whole history would find."""
    published = T0 + n * 60 - (3600 if n % 10 == 0 else 0) + (10**6 if n == 0 else 0)
    item = Entry(f"{feed}:{n}", None, f"Item {n}", "", "", datetime.fromtimestamp(published, UTC))
    return Story(item, f"entry:{feed}:{n}", "", BodyStatus.DISABLED, (), False, None)


async def store_history(store: Store) -> None:
    """Both feeds' entries, interleaved, a few per poll as polls store them."""
    await store.sync_feeds(dict.fromkeys(FEEDS), 0.0, 0.0)
    for start in range(0, HISTORY, 10):
        for feed, url in enumerate(FEEDS):
            state = await store.feed_state(url)
            await store.commit_poll(
                state, now=T0 + start, next_poll_at=T0 + start + 60, cursor=first_cursor(state),
                title=None, stories=[entry(feed, n) for n in range(start, start + 10)],
                destinations={},
            )  # fmt: skip


@pytest.mark.parametrize("upgraded", [False, True], ids=["new", "from schema 9"])
async def test_a_poll_reads_its_feeds_newest_entries_through_the_feeds_index(
    tmp_path: Path, upgraded: bool
) -> None:
    """A poll's recent keys are its own feed's newest, and its publication times the
    latest among its newest stored entries; SQLite reads them through ``entries_feed``,
    without sorting the feed's whole history. A database from before the index (schema
    9) gets it on open."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await store_history(store)
    await store.close()
    store = await reopened(path, back_to_schema_9 if upgraded else None)
    try:
        b = (await store.feed_state(FEEDS[1])).id
        async with traced(store) as statements:
            recent = await store.recent_keys(b, 50)
            times = await store.publication_times(b, among=AMONG)
    finally:
        await store.close()
    assert recent == {f"1:{n}" for n in range(HISTORY - 50, HISTORY)}
    newest = [entry(1, n).entry.published for n in range(HISTORY - AMONG, HISTORY)]
    expected = sorted((p.timestamp() for p in newest if p is not None), reverse=True)[:20]
    assert times == expected
    with connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    reads = [s for s in statements if "FROM entries" in s]
    assert len(reads) == 2
    for statement in reads:
        assert "USING INDEX entries_feed (feed_id=?)" in plan(path, statement), statement
    assert "TEMP B-TREE" not in plan(path, reads[0])  # the keys come in the index's order


async def test_an_oldest_first_feed_keeps_its_rhythm_from_its_latest_dates(
    publisher: Publisher, write_watchlist, tmp_path: Path
) -> None:
    """A feed that lists its 200 items oldest first (its first poll stores the newest item
    with the lowest id), hourly lately and weekly before, with ``adaptive``: after one
    more item, its next poll comes within the hour (half its hourly gap), not a day
    later from its archive's weekly rhythm."""
    now = datetime.now(UTC)
    recent = [now - timedelta(hours=h) for h in range(1, 101)]
    archive = [recent[-1] - timedelta(days=7 * w) for w in range(1, 101)]
    dates = sorted(recent + archive)  # oldest first, as the document lists them
    publisher.rss_items = [Item(f"n{i}", f"/n{i}", published=d) for i, d in enumerate(dates)]
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = write_watchlist(text.replace('interval = "1m"', 'interval = "1m"\nadaptive = true'))
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
    publisher.rss_items = [*publisher.rss_items[1:], Item("new", "/new", published=now)]
    began = time.time()
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
    with connect(tmp_path / "newsmon.db") as conn:
        (due,) = conn.execute("SELECT next_poll_at FROM feeds").fetchone()
    assert due - began < 3600
