"""Story clustering in the store: copies join the first entry's story, in a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor import cluster, story_index
from monitor.models import (
    BodyStatus,
    ClusterPolicy,
    Delivery,
    Entry,
    Fingerprint,
    RuleMatch,
    Story,
)
from monitor.store import Store, first_cursor, hit_id
from tests.db import connect, plan, traced
from tests.old_schema import back_to_schema_7, back_to_schema_8, back_to_schema_11, reopened
from tests.test_cluster import story, trimmed

DAY = 86400.0
POLICY = ClusterPolicy(window=3 * DAY, threshold=cluster.DEFAULT_THRESHOLD)
MATCH = RuleMatch("russia", (), "snippet")
T0 = 1_700_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "newsmon.db")
    await opened.sync_feeds({f"https://feed{i}.test/rss": f"Feed {i}" for i in range(3)}, 0, 0)
    yield opened
    await opened.close()


def item(url: str | None, body: str, *, title: str = "Title", per_feed_key: str = "") -> Story:
    """A new entry as the pipeline hands it over: keyed by its own URL, matching one rule."""
    key = per_feed_key or url or "k"
    entry = Entry(key, url, title, "", "", None)
    print_ = cluster.story_fingerprint(title, "", body)
    return Story(entry, url or f"entry:{key}", body, BodyStatus.EXTRACTED, (MATCH,), True, print_)


async def commit(
    store: Store,
    feed: int,
    stories: list[Story],
    now: float = T0,
    policy: ClusterPolicy | None = POLICY,
    per_copy: frozenset[str] = frozenset(),
) -> list[str]:
    state = await store.feed_state(f"https://feed{feed}.test/rss")
    return await store.commit_poll(
        state, now=now, next_poll_at=now + 60, cursor=first_cursor(state),
        title=None, stories=stories, destinations={"russia": ["hook"]}, clustering=policy,
        per_copy=per_copy,
    )  # fmt: skip


async def story_keys(store: Store) -> list[str]:
    return [e.story_key for page in [p async for p in store.archive(0)] for e in page]


def band_keys(path: Path) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """The (band, entry) rows written, and those the stored signatures give."""
    with connect(path) as conn:
        written = set(conn.execute("SELECT band, entry_id FROM story_bands"))
        prints = conn.execute("SELECT entry_id, shingles, signature FROM story_prints")
        computed = {
            (band, entry_id)
            for entry_id, shingles, signature in prints
            for band in cluster.bands(Fingerprint(shingles, signature))
        }
    return written, computed


async def test_copy_in_another_feed_joins_the_story_and_alerts_once(store: Store) -> None:
    """A trimmed copy under another URL and headline joins the first story: one hit, and
    the alert lists the copy under ``also``."""
    first = await commit(store, 0, [item("https://a.test/1", story(1))])
    later = await commit(
        store, 1, [item("https://b.test/x", trimmed(story(1), 4), title="Other")], T0 + DAY
    )
    assert first == [hit_id("russia", "https://a.test/1")]
    assert later == []
    assert await story_keys(store) == ["https://a.test/1", "https://a.test/1"]
    alert = await store.alert(Delivery("d", first[0], "hook", 0, T0))
    assert [a.url for a in alert.also] == ["https://b.test/x"]
    assert [a.feed for a in (await store.also_seen(first))[first[0]]] == ["Feed 1"]


async def test_different_story_on_the_same_topic_alerts_again(store: Store) -> None:
    """Another story built from the same topic words is a story of its own."""
    await commit(store, 0, [item("https://a.test/1", story(1))])
    later = await commit(store, 1, [item("https://b.test/2", story(2))], T0 + 60)
    assert later == [hit_id("russia", "https://b.test/2")]


@pytest.mark.parametrize("flush_entries", [story_index.FLUSH_ENTRIES, 1], ids=["held", "written"])
async def test_copy_outside_the_window_starts_a_new_story(
    store: Store, monkeypatch: pytest.MonkeyPatch, flush_entries: int
) -> None:
    """An old story is not joined once it is older than the window, whether its band keys
    are still held in memory or already written (and not yet pruned)."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", flush_entries)
    await commit(store, 0, [item("https://a.test/1", story(1))])
    later = await commit(store, 1, [item("https://b.test/1", story(1))], T0 + POLICY.window + 1)
    assert later == [hit_id("russia", "https://b.test/1")]


async def test_copies_in_one_batch_join_each_other(store: Store) -> None:
    """Two copies in the same poll form one story: the first one found keys it."""
    batch = [item("https://a.test/1", story(3)), item("https://a.test/2", trimmed(story(3), 5))]
    assert await commit(store, 0, batch) == [hit_id("russia", "https://a.test/1")]


async def test_feeds_committing_at_once_agree_on_one_story(store: Store) -> None:
    """Two feeds carrying one story, committed concurrently, still alert once."""
    results = await asyncio.gather(
        commit(store, 0, [item("https://a.test/1", story(4))]),
        commit(store, 1, [item("https://b.test/1", story(4))]),
    )
    assert sorted(map(len, results)) == [0, 1]
    assert len(set(await story_keys(store))) == 1


async def test_short_entries_never_cluster(store: Store) -> None:
    """Title-only entries with the same words stay separate stories."""
    a = item("https://a.test/1", "", title="Russia recalls its envoy")
    b = item("https://b.test/1", "", title="Russia recalls its envoy")
    assert a.fingerprint is None
    assert len(await commit(store, 0, [a, b])) == 2


async def test_same_url_keeps_its_story_without_a_fingerprint(store: Store) -> None:
    """A URL already filed under a story stays there even when its text is too short now."""
    await commit(store, 0, [item("https://a.test/1", story(5))])
    await commit(store, 1, [item("https://b.test/9", story(5))], T0 + 60)
    again = item("https://b.test/9", "", title="short")
    assert await commit(store, 2, [again], T0 + 120) == []
    assert set(await story_keys(store)) == {"https://a.test/1"}


async def test_per_copy_rule_alerts_for_every_copy(store: Store) -> None:
    """With per_story = false, a rule keys its hits by each copy's own URL."""
    await commit(store, 0, [item("https://a.test/1", story(6))], per_copy=frozenset({"russia"}))
    later = await commit(
        store, 1, [item("https://b.test/1", story(6))], T0 + 60, per_copy=frozenset({"russia"})
    )
    assert later == [hit_id("russia", "https://b.test/1")]
    assert set(await story_keys(store)) == {"https://a.test/1"}  # still one story


async def test_without_a_policy_every_url_is_its_own_story(store: Store) -> None:
    """Clustering off (no policy) keeps the old behaviour: one story per URL."""
    await commit(store, 0, [item("https://a.test/1", story(7))], policy=None)
    later = await commit(store, 1, [item("https://b.test/1", story(7))], T0 + 60, policy=None)
    assert later == [hit_id("russia", "https://b.test/1")]


async def test_find_story_answers_from_the_index(store: Store) -> None:
    """find_story names the story a text would join, and None for a new one or too late."""
    await commit(store, 0, [item("https://a.test/1", story(8))])
    copy = cluster.fingerprint(trimmed(story(8), 3))
    other = cluster.fingerprint(story(9))
    assert copy is not None
    assert other is not None
    assert await store.find_story(copy, T0 + 60, 3 * DAY, 0.5) == "https://a.test/1"
    assert await store.find_story(other, T0 + 60, 3 * DAY, 0.5) is None
    assert await store.find_story(copy, T0 + 4 * DAY, 3 * DAY, 0.5) is None


async def test_prune_clears_text_but_a_pruned_story_never_alerts_again(store: Store) -> None:
    """Past retention bodies and fingerprints go; keys and hits stay, so the same entry
    is still known and its URL in another feed still belongs to the old story."""
    await commit(store, 0, [item("https://a.test/1", story(10))])
    await commit(store, 0, [item("https://a.test/2", story(11))], T0 + 20 * DAY)
    assert await store.prune(T0 + 31 * DAY, 30 * DAY, 3 * DAY) == 1
    entries = [e for page in [p async for p in store.archive(0)] for e in page]
    assert [bool(e.body) for e in entries] == [False, True]
    state = await store.feed_state("https://feed0.test/rss")
    assert await store.known_keys(state.id, ["https://a.test/1"]) == {"https://a.test/1"}
    assert await commit(store, 1, [item("https://a.test/1", story(10))], T0 + 32 * DAY) == []
    assert await store.prune(T0 + 31 * DAY, 30 * DAY, 3 * DAY) == 0


@pytest.mark.parametrize("upgraded", [False, True], ids=["new", "from schema 11"])
async def test_prune_visits_only_the_entries_whose_text_it_may_clear(
    tmp_path: Path, upgraded: bool
) -> None:
    """A prune finds the bodies to clear through ``entries_unpruned``, which holds only
    the entries that still have one: the entries it cleared before are not read again,
    however many accumulate. A database of schema 11 gets the index on open."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await store.sync_feeds({"https://feed0.test/rss": "Feed 0"}, 0, 0)
    await commit(store, 0, [item("https://a.test/1", story(14))])
    assert await store.prune(T0 + 31 * DAY, 30 * DAY, 3 * DAY) == 1
    await store.close()
    store = await reopened(path, back_to_schema_11 if upgraded else None)
    try:
        await commit(store, 0, [item("https://a.test/2", story(15))], T0 + 2 * DAY)
        await commit(store, 0, [item("https://a.test/3", story(16))], T0 + 20 * DAY)
        async with traced(store) as statements:
            assert await store.prune(T0 + 33 * DAY, 30 * DAY, 3 * DAY) == 1
    finally:
        await store.close()
    (clearing,) = [s for s in statements if s.startswith("UPDATE entries SET body")]
    assert "SEARCH entries USING INDEX entries_unpruned (seen_at<?)" in plan(path, clearing)
    with connect(path) as conn:
        bodies = conn.execute("SELECT url, body != '' FROM entries ORDER BY id").fetchall()
        with pytest.raises(sqlite3.OperationalError, match="no query solution"):
            # the index holds only entries with a body: it cannot answer for the others
            conn.execute(
                "SELECT COUNT(*) FROM entries INDEXED BY entries_unpruned WHERE seen_at > 0"
            )
    assert bodies == [("https://a.test/1", 0), ("https://a.test/2", 0), ("https://a.test/3", 1)]


async def test_prune_drops_band_keys_past_the_window_and_keeps_those_inside(
    store: Store,
) -> None:
    """Band keys outlive no lookup: past the clustering window they go, though the entry
    keeps its text until the retention; a copy within the window is still found."""
    await commit(store, 0, [item("https://a.test/old", story(12))])
    await commit(store, 0, [item("https://a.test/new", story(13))], T0 + 5 * DAY)
    assert await store.prune(T0 + 6 * DAY, 30 * DAY, 3 * DAY) == 0  # no text is that old

    def band_rows(db: sqlite3.Connection) -> list[tuple[int, int]]:
        return db.execute("SELECT entry_id, count(*) FROM story_bands GROUP BY 1").fetchall()

    assert [n for _, n in await store._in_thread(band_rows)] == [cluster.BANDS]  # new only
    copy = cluster.fingerprint(trimmed(story(13), 3))
    assert copy is not None
    found = await store.find_story(copy, T0 + 6 * DAY, 3 * DAY, 0.5)
    assert found == "https://a.test/new"


async def test_archive_pages_through_entries_since(store: Store) -> None:
    """archive yields every entry seen since the cut, oldest first, page by page."""
    for i in range(5):
        await commit(store, 0, [item(f"https://a.test/{i}", story(20 + i))], T0 + i)
    pages = [page async for page in store.archive(T0 + 1, page=2)]
    assert [len(p) for p in pages] == [2, 2]
    assert [e.url for p in pages for e in p] == [f"https://a.test/{i}" for i in range(1, 5)]
    assert await store.archive_size(T0 + 1) == 4


async def test_stories_stored_before_the_fingerprint_change_still_find_copies(
    tmp_path: Path,
) -> None:
    """A database from before migration 7 (fingerprints hashed another way, here made
    unrecognisable) is upgraded on open: its stories' fingerprints are made again from
    their text, so a copy arriving afterwards joins the old story and does not alert."""
    opened = await Store.open(tmp_path / "newsmon.db")
    await opened.sync_feeds({f"https://feed{i}.test/rss": None for i in range(2)}, 0, 0)
    original = story(7)
    assert len(await commit(opened, 0, [item("https://a.test/1", original)])) == 1
    await opened.close()
    with connect(tmp_path / "newsmon.db") as conn:
        back_to_schema_7(conn)  # and on, to migration 6's schema
        conn.execute("DROP INDEX story_prints_unbanded")
        conn.execute("ALTER TABLE story_prints DROP COLUMN banded")
        conn.execute("UPDATE story_prints SET signature = zeroblob(length(signature))")
        conn.execute("UPDATE story_bands SET band = band + 1")
        conn.execute("PRAGMA user_version = 6")
    upgraded = await Store.open(tmp_path / "newsmon.db")
    try:
        copy = item("https://b.test/1", trimmed(original, 3))
        assert await commit(upgraded, 1, [copy], now=T0 + 3600) == []
        assert await story_keys(upgraded) == ["https://a.test/1"] * 2
    finally:
        await upgraded.close()


async def test_band_keys_stored_before_they_were_narrowed_are_narrowed_on_open(
    tmp_path: Path,
) -> None:
    """A database from before migration 9 (64-bit band keys beside each row's seen_at) is
    upgraded on open: entries that had keys get their 32-bit ones, the same as their
    stored signatures give, so a copy arriving afterwards finds the story on disk; an
    entry whose keys were pruned gets none back."""
    opened = await Store.open(tmp_path / "newsmon.db")
    await opened.sync_feeds({f"https://feed{i}.test/rss": None for i in range(2)}, 0, 0)
    await commit(opened, 0, [item("https://a.test/1", story(8))])
    await commit(opened, 0, [item("https://a.test/2", story(9))])
    await opened.close()  # writes the held keys
    with connect(tmp_path / "newsmon.db") as conn:
        conn.execute("DELETE FROM story_bands WHERE entry_id = 2")  # pruned past the window
        back_to_schema_8(conn)
    upgraded = await Store.open(tmp_path / "newsmon.db")
    try:
        copy = item("https://b.test/1", trimmed(story(8), 3))
        assert await commit(upgraded, 1, [copy], now=T0 + 3600) == []
        keys = await story_keys(upgraded)
        assert keys == ["https://a.test/1", "https://a.test/2", "https://a.test/1"]
    finally:
        await upgraded.close()
    written, computed = band_keys(tmp_path / "newsmon.db")
    expected = {(band, entry_id) for band, entry_id in computed if entry_id != 2}
    assert written == expected  # entries 1 and 3 (the copy, written at close)
