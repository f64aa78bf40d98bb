"""When feeds are polled: intervals, publisher hints, backoff, Retry-After and 410 Gone."""

from __future__ import annotations

import asyncio
import re
import time
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.schedule import (
    Bounds,
    adaptive_interval,
    after_failure,
    after_success,
    parse_ttl,
    publisher_hint,
)
from tests.daemon import newsmon_async, read_until, running, terminate
from tests.db import connect
from tests.outbox import eventually
from tests.servers import Item, Publisher
from tests.watchlists import watchlist

NOW = 1_700_000_000.0
BOUNDS = Bounds(60.0, 86400.0)
RESTARTS = 6  # starts and stops within the feed's interval


@pytest.mark.parametrize(
    ("headers", "ttl", "expected"),
    [
        ({}, None, None),
        ({"cache-control": "public, max-age=1800"}, None, 1800.0),
        ({"cache-control": 'max-age="900"'}, None, 900.0),
        ({"expires": "Tue, 14 Nov 2023 22:23:20 GMT"}, None, 600.0),
        ({"expires": "0"}, None, None),
        ({"cache-control": "max-age=60", "expires": "Tue, 14 Nov 2023 23:13:20 GMT"}, None, 60.0),
        ({"cache-control": "max-age=60"}, 3600.0, 3600.0),
    ],
    ids=["none", "max-age", "quoted", "expires", "bad-expires", "max-age-wins", "ttl-longer"],
)
def test_publisher_hint(headers: dict[str, str], ttl: float | None, expected: float | None) -> None:
    """max-age beats Expires (RFC 9111); the longest of it and the RSS ttl is taken."""
    assert publisher_hint(headers, ttl, NOW) == expected


def test_success_delay_is_clamped() -> None:
    """A hint can lengthen the interval, never past max_interval; nothing below min."""
    assert after_success(600, None, BOUNDS) == 600
    assert after_success(600, 7200, BOUNDS) == 7200
    assert after_success(600, 10**9, BOUNDS) == 86400
    assert after_success(5, None, BOUNDS) == 60


def test_failure_backs_off_exponentially_and_keeps_trying() -> None:
    """Each failure doubles the wait up to a cap, so a broken feed is still polled."""
    delays = [after_failure(600, n, {}, NOW, BOUNDS) for n in range(1, 8)]
    assert delays[:4] == [600, 1200, 2400, 4800]
    assert delays[-1] == 6 * 3600


def test_retry_after_wins_when_longer() -> None:
    """429/503 Retry-After is obeyed (clamped), in seconds or as an HTTP date."""
    assert after_failure(60, 1, {"retry-after": "900"}, NOW, BOUNDS) == 900
    assert (
        after_failure(60, 1, {"retry-after": "Tue, 14 Nov 2023 22:23:20 GMT"}, NOW, BOUNDS) == 600
    )
    assert after_failure(60, 1, {"retry-after": "soon"}, NOW, BOUNDS) == 60


@pytest.mark.parametrize(("value", "expected"), [("30", 1800.0), ("x", None), ("-5", None)])
def test_rss_ttl_is_minutes(value: str, expected: float | None) -> None:
    """RSS <ttl> counts minutes; nonsense is ignored."""
    assert parse_ttl(value) == expected


def feed_row(db: Path) -> tuple[float, float, str | None, int]:
    with connect(db) as conn:
        row = conn.execute(
            "SELECT next_poll_at, not_before, disabled_reason, consecutive_errors FROM feeds"
        ).fetchone()
    return row  # type: ignore[no-any-return]


async def test_retry_after_is_honoured_even_by_run_once(
    publisher: Publisher, write_watchlist
) -> None:
    """A 429 with Retry-After schedules the next poll then, and `run --once` respects it,
    in this process and in another one started after it (the wait is stored)."""
    publisher.overrides["/rss.xml"] = (429, {"Retry-After": "3600"})
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    config = load_config(path)
    async with Daemon.open(config) as daemon:
        await daemon.run_once()
        await daemon.run_once()
    assert len(publisher.hits("/rss.xml")) == 1
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    assert len(publisher.hits("/rss.xml")) == 1
    next_poll, not_before, disabled, errors = feed_row(path.parent / "newsmon.db")
    assert not_before > time.time() + 3000
    assert next_poll >= not_before - 400  # jitter is 10%
    assert (disabled, errors) == (None, 1)


async def test_gone_feed_is_disabled_once_and_resumable(
    publisher: Publisher, write_watchlist, capsys: pytest.CaptureFixture[str]
) -> None:
    """410 Gone disables the feed: no more polls, `feeds` says why, `resume` re-enables it,
    named as `feeds` shows it (its title) or by its URL."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()  # its title is known from here on
    publisher.overrides["/rss.xml"] = (410, {})
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
        await daemon.run_once()
    assert len(publisher.hits("/rss.xml")) == 2
    assert feed_row(path.parent / "newsmon.db")[2] == "410 Gone: the publisher removed this feed"
    assert await asyncio.to_thread(main, ["feeds", "--config", str(path)]) == 0
    assert "Test Gazette  disabled" in capsys.readouterr().out

    del publisher.overrides["/rss.xml"]
    publisher.rss_items = [Item("Back", "/b")]
    resume = ["resume", "Test Gazette", "--config", str(path)]
    assert await asyncio.to_thread(main, resume) == 0
    assert capsys.readouterr().out.startswith(f"feed {publisher.base}/rss.xml enabled again")
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
    assert len(publisher.hits("/rss.xml")) == 3
    assert feed_row(path.parent / "newsmon.db")[2:] == (None, 0)
    again = ["resume", f"{publisher.base}/rss.xml", "--config", str(path)]
    assert await asyncio.to_thread(main, again) == 0
    assert capsys.readouterr().out == f"feed {publisher.base}/rss.xml was not disabled\n"


async def test_cache_headers_lengthen_the_next_poll(publisher: Publisher, write_watchlist) -> None:
    """A feed that says max-age=7200 is not polled again for about two hours."""
    publisher.extra_headers = {"Cache-Control": "max-age=7200"}
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    started = time.time()
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
    next_poll = feed_row(path.parent / "newsmon.db")[0]
    assert 7200 * 0.9 <= next_poll - started <= 7200 * 1.1 + 60


def test_adaptive_interval_follows_the_publishing_rhythm() -> None:
    """Hourly entries give a 30-minute interval; too little history gives none."""
    hourly = [NOW - 3600 * i for i in range(10)]
    assert adaptive_interval(hourly, BOUNDS) == 1800
    assert adaptive_interval(hourly[:4], BOUNDS) is None
    weekly = [NOW - 7 * 86400 * i for i in range(10)]
    assert adaptive_interval(weekly, BOUNDS) == 86400  # clamped by max_interval
    burst = [NOW] * 10
    assert adaptive_interval(burst, BOUNDS) is None  # no gaps, no rhythm


async def test_adaptive_feed_is_scheduled_by_its_rhythm(
    publisher: Publisher, write_watchlist
) -> None:
    """With adaptive = true, a feed publishing every two hours is polled hourly, and so
    it stays when the next poll is answered 304 Not Modified."""
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC)
    publisher.rss_items = [
        Item(f"n{i}", f"/n{i}", published=start - timedelta(hours=2 * i)) for i in range(8)
    ]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('interval = "1m"', 'interval = "1m"\nadaptive = true'), "utf-8")
    for answer in (200, 304):
        began = time.time()
        async with Daemon.open(load_config(path)) as daemon:
            await daemon.run_once()
        next_poll = feed_row(path.parent / "newsmon.db")[0]
        assert 3600 * 0.9 <= next_poll - began <= 3600 * 1.1 + 60, answer
    assert len(publisher.hits("/rss.xml")) == 2


def next_poll(db: Path, url: str) -> float:
    with connect(db) as conn:
        (due,) = conn.execute("SELECT next_poll_at FROM feeds WHERE url = ?", (url,)).fetchone()
    return due  # type: ignore[no-any-return]


def make_due(db: Path, url: str) -> None:
    with connect(db) as conn:
        conn.execute("UPDATE feeds SET next_poll_at = 0 WHERE url = ?", (url,))


async def polls_counted(session: aiohttp.ClientSession, base: str) -> float:
    """The polls this daemon process has finished, by its /metrics: a batch of due feeds
    is counted only once every feed in it is polled (Daemon.poll)."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "newsmon_polls_total"
    )


@pytest.mark.slow
async def test_a_restart_storm_fetches_no_feed_before_its_interval(
    publisher: Publisher, write_watchlist
) -> None:
    """`newsmon run` started and stopped again and again within its feed's 1-minute
    interval (RELIABILITY.md case 64): each start finds the feed not yet due, from the
    due time on disk, and fetches nothing."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    watched, pacer = f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"
    text = watchlist(feeds=[watched, pacer])
    path = write_watchlist(text.replace("[monitor]\n", '[monitor]\nmetrics = "127.0.0.1:0"\n'))
    database = path.parent / "newsmon.db"
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    due = next_poll(database, watched)
    async with aiohttp.ClientSession() as session:
        for run in range(RESTARTS):
            # the pacer is due on disk, so each start polls it: once that poll is counted,
            # the tick that would have fetched a due `watched` with it has finished
            make_due(database, pacer)
            async with running(path) as p:
                listening = await read_until(p, b"metrics_listening")
                address = re.search(rb"metrics_listening address=(\S+)", listening)
                assert address is not None
                base = f"http://{address[1].decode()}"
                await eventually(partial(polls_counted, session, base), timeout=60)
                assert await polls_counted(session, base) == 1  # the pacer alone
                stderr = await terminate(p)
            assert p.returncode == 0, stderr
            assert len(publisher.hits("/atom.xml")) == run + 2, stderr
            assert len(publisher.hits("/rss.xml")) == 1, stderr
            assert next_poll(database, watched) == due
