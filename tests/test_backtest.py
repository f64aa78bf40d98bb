"""Backtests and search over the archive, and clustering through the real daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.backtest import scan, screened
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.models import BodyStatus, Document, Entry, Story
from monitor.rules import compile_rules
from monitor.store import Store, first_cursor
from tests.daemon import newsmon
from tests.db import connect
from tests.servers import Item, Publisher, Receiver
from tests.test_cluster import story
from tests.test_end_to_end import FAST_RETRY

ENTITIES = {"us": ["'US'", "U.S.", "United States"], "russia": ["Russia", "Kremlin"]}
QUERIES = {
    "entity": "@us AND embassy*",
    "phrase": '"zürich talks"',
    "near": "ﬁnance NEAR/3 minister",
    "not": "NOT embassy",
    "prefix": "diplomat*",
}
TEXTS = [
    "The U.S-led talks at the embassy ended.",
    "Russia’s embassies in ZÜRICH TALKS reopened.",
    "The Zurich talks and the finance minister met.",
    "The ﬁnance Minister said nothing.",
    "Diplomatic sources in the United States and an embassy.",
    "The US embassy. Ｕ.Ｓ. embassy staff left.",
    "Nothing to see here at all.",
    "Diplomats gathered.",
]


async def fill(
    db: Path,
    texts: list[str],
    feed: str = "https://feed.test/rss",
    summary: str = "",
    name: str = "Wire",
    keys: str = "k",
) -> Store:
    store = await Store.open(db)
    await store.sync_feeds({feed: name}, 0, 0)
    state = await store.feed_state(feed)
    stories = [
        Story(Entry(f"{keys}{i}", f"https://s.test/{i}", f"Title {i}", summary, "", None),
              f"https://s.test/{i}", text, BodyStatus.EXTRACTED, (), True)
        for i, text in enumerate(texts)
    ]  # fmt: skip
    await store.commit_poll(
        state, now=1000.0, next_poll_at=0, cursor=first_cursor(state),
        title=None, stories=stories, destinations={},
    )  # fmt: skip
    return store


@pytest.mark.parametrize("rule", sorted(QUERIES))
async def test_scan_finds_exactly_what_matching_every_entry_finds(
    tmp_path: Path, rule: str
) -> None:
    """The trigger-word screen never drops an entry the rule matches (accents, ligatures,
    full-width and dotted acronyms, curly apostrophes included)."""
    index = compile_rules(QUERIES, ENTITIES)
    store = await fill(tmp_path / "db", TEXTS)
    try:
        found = [c.entry.body async for c in scan(store, index, rule, 0)]
    finally:
        await store.close()
    expected = [t for t in TEXTS if index.match(Document(f"Title {TEXTS.index(t)}", "", t), {rule})]
    assert found == expected
    assert expected  # each query matches something here, so the comparison means something


def test_screened_text_folds_like_the_matcher() -> None:
    """Whole-text folding lower-cases, drops accents and unfolds ligatures and width."""
    assert screened("ZÜRICH ﬁnance Ｕ.Ｓ. Russia’s") == "zurich finance u.s. russia's"


async def test_backtest_cli_lists_catches_with_counts(tmp_path: Path, write_watchlist) -> None:
    """`newsmon backtest --query` lists each catch with its words, per day and per feed."""
    path = write_watchlist(feeds=["https://feed.test/rss"])
    store = await fill(path.parent / "newsmon.db", TEXTS)
    await store.close()
    done = newsmon("backtest", "--query", "embassy", "--since", "36500d", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "matched: embassy" in done.stdout
    assert "matched: embassies" in done.stdout
    assert "4 entries (4 stories)" in done.stdout
    assert "1970-01-01  4" in done.stdout
    assert "Wire  4" in done.stdout
    assert done.stderr == ""  # no progress bar when standard error is not a terminal


async def test_backtest_runs_a_watchlist_rule_and_rejects_unknown_ones(
    tmp_path: Path, write_watchlist
) -> None:
    """--rule uses the watchlist's query and entities; an unknown rule or bad query exits 2."""
    path = write_watchlist(feeds=["https://feed.test/rss"], query="@russia AND embassy")
    store = await fill(path.parent / "newsmon.db", TEXTS)
    await store.close()
    done = newsmon(
        "backtest", "--rule", "russia-embassy", "--since", "36500d", "--config", str(path)
    )
    assert done.returncode == 0, done.stderr
    assert "1 entry (1 story)" in done.stdout
    assert "Russia, embassies" in done.stdout
    assert newsmon("backtest", "--rule", "nope", "--config", str(path)).returncode == 2
    assert newsmon("backtest", "--query", "a AND (", "--config", str(path)).returncode == 2


async def test_search_groups_copies_into_one_story(tmp_path: Path, write_watchlist) -> None:
    """`newsmon search` shows a syndicated story once, naming the other outlets (and not
    the one it names first, which posted it twice)."""
    path = write_watchlist(feeds=["https://feed.test/rss"])
    db = path.parent / "newsmon.db"
    for feed, name, keys in [
        ("https://feed.test/rss", "Wire", "k"),
        ("https://feed.test/rss", "Wire", "again"),
        ("https://other.test/rss", "Other", "k"),
    ]:
        await (await fill(db, [story(1)], feed=feed, name=name, keys=keys)).close()
    done = newsmon("search", "embassy", "--since", "36500d", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Title 0") == 1
    assert done.stdout.count("also in: Other\n") == 1
    assert (
        newsmon("search", "zeppelin", "--config", str(path)).stdout == "no stored story matches\n"
    )
    broken = newsmon("search", "a AND (", "--config", str(path))
    assert broken.returncode == 2
    assert broken.stderr.startswith("newsmon: QUERY: column")  # search's is no --query


async def test_syndicated_story_in_two_feeds_alerts_once_and_hits_shows_the_copy(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """The same text under two URLs in two feeds gives one alert; `newsmon hits` shows
    the later copy under "also seen in"."""
    text = f"Russian diplomats met at the embassy. {story(2)}"
    publisher.rss_items = [Item("Embassy talks", "/a", summary=text)]
    publisher.atom_items = [Item("Talks at the embassy", "/b?utm_source=x", summary=text)]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"], hook=receiver.url
    )
    async with Daemon.open(load_config(path), retry=FAST_RETRY) as daemon:
        await daemon.run_once(delivery_deadline=30)
    assert len(receiver.accepted) == 1
    alert = receiver.accepted[0].body
    outlets = {alert["feed"], *(a["feed"] for a in alert["also"])}
    assert outlets == {"Test Gazette", "Test Atom Wire"}  # the one alert names both
    with connect(path.parent / "newsmon.db") as conn:
        keys = {r[0] for r in conn.execute("SELECT story_key FROM entries")}
    assert len(keys) == 1
    done = newsmon("hits", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "also seen in: " in done.stdout


async def test_a_summary_repeating_the_body_start_is_matched_once(tmp_path: Path) -> None:
    """As in the daemon: a feed's lede that the page repeats is one mention, not two."""
    lede = "The Kremlin sent an envoy."
    store = await fill(
        tmp_path / "a.db", [f"{lede} Talks went on.", f"Talks. {lede}"], summary=lede
    )
    index = compile_rules({"twice": "ATLEAST/2 kremlin"}, {})
    try:
        caught = [c.entry.title async for c in scan(store, index, "twice", 0)]
    finally:
        await store.close()
    assert caught == ["Title 1"]
