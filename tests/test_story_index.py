"""Band keys held back in memory (monitor/story_index.py): written in batches, found
before and after, never lost to a crash or a rolled-back poll."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor import cluster, story_index
from monitor.store import Store, first_cursor
from tests.db import connect
from tests.test_cluster import story, trimmed
from tests.test_cluster_store import T0, band_keys, commit, item, story_keys


def counts(path: Path) -> tuple[int, int]:
    """(band rows written, fingerprint rows still waiting for theirs)."""
    with connect(path) as conn:
        bands = conn.execute("SELECT COUNT(*) FROM story_bands").fetchone()[0]
        waiting = conn.execute("SELECT COUNT(*) FROM story_prints WHERE banded = 0").fetchone()
    return bands, waiting[0]


async def open_store(path: Path) -> Store:
    store = await Store.open(path)
    await store.sync_feeds({f"https://feed{i}.test/rss": None for i in range(3)}, 0, 0)
    return store


async def test_held_keys_are_written_in_one_batch_and_copies_found_either_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a batch of 3, two entries wait in memory (and a copy of one is found there);
    the third commit writes all band keys at once, and a copy is then found on disk."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", 3)
    path = tmp_path / "newsmon.db"
    store = await open_store(path)
    try:
        await commit(store, 0, [item("https://a.test/1", story(1))])
        await commit(store, 0, [item("https://a.test/2", story(2))])
        assert counts(path) == (0, 2)
        assert await commit(store, 1, [item("https://b.test/1", trimmed(story(1), 3))]) == []
        assert counts(path) == (3 * cluster.BANDS, 0)
        assert await commit(store, 2, [item("https://c.test/2", trimmed(story(2), 3))]) == []
        keys = await story_keys(store)
        assert keys[2:] == ["https://a.test/1", "https://a.test/2"]
    finally:
        await store.close()
    assert counts(path) == (4 * cluster.BANDS, 0)  # close writes what was held
    written, expected = band_keys(path)
    assert written == expected  # every key exactly as computed, with its entry


async def test_keys_held_at_a_crash_are_held_again_at_the_next_start(tmp_path: Path) -> None:
    """A store that never closed (a crash) left its entries unflagged; the next one to
    open the file holds their keys again, so a copy still finds the story."""
    path = tmp_path / "newsmon.db"
    crashed = await open_store(path)
    await commit(crashed, 0, [item("https://a.test/1", story(4))])
    assert counts(path) == (0, 1)
    restarted = await Store.open(path)
    try:
        copy = item("https://b.test/1", trimmed(story(4), 3))
        assert await commit(restarted, 1, [copy], now=T0 + 60) == []
        assert await story_keys(restarted) == ["https://a.test/1"] * 2
    finally:
        await restarted.close()
        await crashed.close()


async def test_a_failed_poll_leaves_nothing_held(tmp_path: Path) -> None:
    """A poll rolled back after its entry was indexed (here: it names a feed row that
    is gone) holds no band keys: a later entry cannot join a story that was never stored."""
    path = tmp_path / "newsmon.db"
    store = await open_store(path)
    try:
        state = await store.feed_state("https://feed0.test/rss")
        with connect(path) as conn:  # hits go to a rule's destinations...
            conn.execute("DROP TABLE deliveries")  # ...and this table is gone: the insert fails
        with pytest.raises(sqlite3.OperationalError):
            await store.commit_poll(
                state, now=T0, next_poll_at=T0, cursor=first_cursor(state), title=None,
                stories=[item("https://a.test/1", story(5))], destinations={"russia": ["hook"]},
            )  # fmt: skip
        assert store._stories.mark() == 0
        assert counts(path) == (0, 0)
    finally:
        await store.close()


def test_held_entries_sharing_band_keys_are_found_and_rolled_back_latest_first() -> None:
    """Copies held under the same band keys are all found, the closest first; rolling
    back the latest leaves the earlier ones found, and the window leaves old ones out."""
    with connect(":memory:") as db:
        db.execute("CREATE TABLE story_prints (entry_id, shingles, signature, seen_at, banded)")
        index = story_index.StoryIndex()
        texts = [story(6), trimmed(story(6), 4), trimmed(story(6), 3), story(7)]
        prints = [cluster.fingerprint(text) for text in texts]
        for entry_id, print_ in enumerate(prints, start=1):
            assert print_ is not None
            index.add(db, entry_id, print_, cluster.bands(print_), now=T0 + entry_id)
        assert prints[0] is not None
        probe = cluster.bands(prints[0])
        assert index.candidates(probe, T0, {})[:3] == [1, 2, 3]
        assert 4 not in index.candidates(probe, T0, {})
        assert index.candidates(probe, T0 + 2, {})[:2] == [2, 3]  # seen before the window
        mark = index.mark()
        index.add(db, 5, prints[0], probe, now=T0 + 5)
        assert index.candidates(probe, T0, {})[:2] == [1, 5]  # ties: the older first
        index.roll_back(mark)
        index.roll_back(2)
        assert index.candidates(probe, T0, {}) == [1, 2]
        index.roll_back(0)
        assert index.candidates(probe, T0, {}) == []


@pytest.mark.parametrize("flush_entries", [story_index.FLUSH_ENTRIES, 1], ids=["held", "written"])
async def test_a_flood_of_one_text_reads_only_the_newest_few_under_each_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_entries: int
) -> None:
    """A feed posting one text under ever new links: every copy joins the first story, and
    a lookup reads at most MAX_PER_BAND entries under each band key, the newest, held or
    written, so that its cost stays flat however long the flood goes on."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", flush_entries)
    monkeypatch.setattr(story_index, "MAX_PER_BAND", 4)
    store = await open_store(tmp_path / "newsmon.db")
    try:
        for i in range(12):
            await commit(store, 0, [item(f"https://a.test/{i}", story(1))], T0 + i)
        assert set(await story_keys(store)) == {"https://a.test/0"}
        print_ = cluster.story_fingerprint("Title", "", story(1))
        assert print_ is not None
        probe = cluster.bands(print_)

        def lookup(db: sqlite3.Connection) -> tuple[dict[int, list[int]], list[int]]:
            on_disk = store._stories.on_disk(db, probe, T0)
            return on_disk, store._stories.candidates(probe, T0, on_disk)

        on_disk, candidates = await store._in_thread(lookup)
    finally:
        await store.close()
    assert all(len(ids) <= 4 for ids in on_disk.values())
    assert len(candidates) == 4
    assert {10, 11, 12} <= set(candidates)  # entry ids count from 1


async def test_a_command_beside_the_daemon_takes_no_write_lock_and_leaves_its_keys(
    tmp_path: Path,
) -> None:
    """`newsmon status` and the other commands open the database while the daemon writes
    (here: holds the write lock) and close it without writing the band keys the daemon
    still holds: those are the daemon's to write."""
    path = tmp_path / "newsmon.db"
    daemon = await open_store(path)
    try:
        await commit(daemon, 0, [item("https://a.test/1", story(1))])
        assert counts(path) == (0, 1)
        with connect(path, isolation_level=None) as writer:
            writer.execute("BEGIN IMMEDIATE")
            beside = await Store.open(path, migrate=False)
            writer.execute("ROLLBACK")
        await beside.close()
        assert counts(path) == (0, 1)
    finally:
        await daemon.close()
