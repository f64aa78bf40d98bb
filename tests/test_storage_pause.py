"""A database that refuses writes (RELIABILITY.md case 58) pauses polling, says so once,
tries again with one feed after a growing wait, and loses nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.daemon import _stoppable as scheduled
from monitor.errors import StoreError
from monitor.storage_pause import FIRST_RETRY, MAX_RETRY, StoragePause
from monitor.store import Store
from tests.daemon import forever
from tests.db import connect
from tests.logs import logged
from tests.outbox import eventually
from tests.sd_listener import Listener
from tests.servers import Item, Publisher

FULL = "cannot store a poll: database or disk is full"
BIG = " ".join(f"word{i}" for i in range(6000))  # needs new pages in any database


async def refuse_growth(daemon: Daemon, refuse: bool) -> None:
    """SQLite's own SQLITE_FULL, as on a full disk: the daemon's connection may not grow
    the file past its size now (the limit is per connection, so it must be this one)."""
    db = daemon.store._db
    async with db.execute("PRAGMA page_count") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    await db.execute(f"PRAGMA max_page_count = {row[0] if refuse else 1_073_741_823}")


def stored(path: Path, url_suffix: str) -> int:
    with connect(path) as conn:
        query = "SELECT COUNT(*) FROM entries WHERE url LIKE ?"
        count: int = conn.execute(query, (f"%{url_suffix}",)).fetchone()[0]
    return count


async def test_a_full_database_pauses_polling_then_resumes_losing_nothing(
    publisher: Publisher,
    write_watchlist,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    notify_listener: Listener,
) -> None:
    """Three feeds find a story the full database cannot take: one error line and a
    STATUS= that says polling is paused; after the wait ONE feed tries again; once
    writes succeed polling resumes and every feed's copy of the story is stored."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_listener.address)
    publisher.rss_items = [Item("Start", "/start", summary="Nothing yet.")]
    feeds = [f"{publisher.base}/rss.xml?feed={i}" for i in range(3)]
    path = write_watchlist(feeds=feeds)
    skew = [0.0]
    caplog.set_level(logging.INFO)
    wall, steady = (lambda: time.time() + skew[0]), (lambda: time.monotonic() + skew[0])
    async with Daemon.open(load_config(path), clock=wall, monotonic=steady) as daemon:
        await daemon.run_once()
        await refuse_growth(daemon, refuse=True)
        publisher.rss_items.append(Item("Long read", "/big", summary=BIG))
        skew[0] += 3600  # every feed due
        async with forever(daemon):
            await eventually(lambda: bool(logged(caplog, "storage_failed")))
            (first,) = logged(caplog, "storage_failed")
            assert first.levelno == logging.ERROR
            assert f'error="{FULL}" polling=paused retry_in=30s' in first.getMessage()
            await notify_listener.collected()  # sent as the line was logged: all in now
            paused = [m["STATUS"] for m in notify_listener.messages if "STATUS" in m][-1]
            assert paused.startswith(f"POLLING PAUSED: the database refuses writes ({FULL})")

            fetched = len(publisher.requests)
            skew[0] += FIRST_RETRY + 1  # the wait is over: one feed tries the database
            await eventually(lambda: len(logged(caplog, "storage_failed")) == 2)
            assert "retry_in=60s" in logged(caplog, "storage_failed")[1].getMessage()
            assert len(publisher.requests) == fetched + 1

            await refuse_growth(daemon, refuse=False)  # space is back
            skew[0] += 2 * FIRST_RETRY + 1
            await eventually(lambda: stored(path.parent / "newsmon.db", "/big") == 3)
            assert len(logged(caplog, "storage_recovered")) == 1
            await notify_listener.collected()
            assert [m["STATUS"] for m in notify_listener.messages if "STATUS" in m][-1] == (
                "polling resumed: the database takes writes"
            )
    assert "never retrieved" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_run_once_on_a_full_database_fails_with_a_clear_error(
    publisher: Publisher, write_watchlist
) -> None:
    """`newsmon run --once` has no later to try again in: it stops with the reason."""
    publisher.rss_items = [Item("Long read", "/big", summary=BIG)]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    async with Daemon.open(load_config(path)) as daemon:
        await refuse_growth(daemon, refuse=True)
        with pytest.raises(StoreError, match=FULL):
            await daemon.run_once()


def test_the_wait_doubles_to_its_cap_and_one_feed_at_a_time_tries_again() -> None:
    """Paused: no feed may be polled until the wait is over, then one, and no other
    until that one has answered; the waits double up to MAX_RETRY."""
    now = [0.0]
    said: list[str | None] = []
    pause = StoragePause(lambda: now[0], said.append)
    assert pause.allowed(5) == 5
    pause.failed(OSError("disk full"))
    assert said == ["disk full"]
    assert pause.allowed(5) == 0
    now[0] += FIRST_RETRY
    assert pause.allowed(5) == 1
    assert pause.allowed(5) == 0  # the probe has not answered yet
    waits = []
    for _ in range(8):
        pause.failed(OSError("disk full"))
        waits.append(pause.until - now[0])
    assert waits == [60, 120, 240, 480, MAX_RETRY, MAX_RETRY, MAX_RETRY, MAX_RETRY]
    assert said == ["disk full"]  # STATUS= changes once, not per retry
    pause.succeeded()
    assert said == ["disk full", None]
    assert pause.allowed(5) == 5


async def test_a_clock_jump_while_paused_is_applied_once_writes_succeed(
    publisher: Publisher, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """The wall clock steps back a day while the database refuses writes: the schedule
    cannot move then, but the jump is kept and the schedule moves once writes succeed,
    so the feed is due within its interval and not a day later."""
    publisher.rss_items = [Item("Start", "/start", summary="Nothing yet.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    wall_skew, steady_skew = [0.0], [0.0]
    caplog.set_level(logging.INFO)
    wall = lambda: time.time() + wall_skew[0]  # noqa: E731
    steady = lambda: time.monotonic() + steady_skew[0]  # noqa: E731
    async with Daemon.open(load_config(path), clock=wall, monotonic=steady) as daemon:
        await daemon.run_once()
        async with forever(daemon):
            await eventually(lambda: bool(logged(caplog, "started")))
            db = daemon.store._db
            await db.execute("PRAGMA query_only = 1")  # every write refused
            wall_skew[0] -= 86400.0
            # the polls' pause, not a lane's: a lane mid-write when writes stop fails at
            # once, before the next tick has seen the jump
            await eventually(
                lambda: any("polling=" in r.getMessage() for r in logged(caplog, "storage_failed"))
            )
            await db.execute("PRAGMA query_only = 0")
            for skew in (wall_skew, steady_skew):
                skew[0] += FIRST_RETRY + 1  # the wait is over: the database is tried again
            await eventually(lambda: bool(logged(caplog, "storage_recovered")))
            (row,) = await daemon.store.feeds()
            assert row.next_poll_at - wall() < 2 * 60  # the 1m interval, with jitter
    assert "Traceback" not in caplog.text


async def test_a_reload_while_the_database_refuses_writes_keeps_the_daemon_running(
    publisher: Publisher, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed added to the watchlist cannot be stored while writes are refused: the
    reload is refused and logged, the old watchlist runs on, and a reload once writes
    work again adds the feed."""
    publisher.rss_items = [Item("Start", "/start", summary="Nothing yet.")]
    first, second = f"{publisher.base}/rss.xml?feed=1", f"{publisher.base}/rss.xml?feed=2"
    path = write_watchlist(feeds=[first])
    reload = asyncio.Event()
    caplog.set_level(logging.INFO)
    async with Daemon.open(load_config(path)) as daemon, forever(daemon, reload) as running:
        await eventually(lambda: bool(logged(caplog, "started")))
        await daemon.store._db.execute("PRAGMA query_only = 1")  # every write refused
        write_watchlist(feeds=[first, second])
        reload.set()
        await eventually(lambda: bool(logged(caplog, "reload_failed")))
        assert "readonly database" in logged(caplog, "reload_failed")[0].getMessage()
        assert not running.done()
        assert list(daemon.config.enabled) == [first]
        await daemon.store._db.execute("PRAGMA query_only = 0")
        reload.set()
        await eventually(lambda: bool(logged(caplog, "reloaded")))
        assert {r.url for r in await daemon.store.feeds()} == {first, second}


async def test_a_housekeeping_job_on_a_refusing_database_logs_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A scheduled job (the prune) on a database that refuses writes (SQLITE_READONLY
    from a real connection) is one warning line naming the job, not the scheduler's
    traceback every run."""
    store = await Store.open(tmp_path / "newsmon.db")
    try:
        await store._db.execute("PRAGMA query_only = 1")

        async def prune() -> None:
            await store.prune(time.time(), 86400.0, 86400.0)

        with caplog.at_level(logging.INFO):
            await scheduled(prune)()
    finally:
        await store._db.execute("PRAGMA query_only = 0")
        await store.close()
    (failed,) = [r.getMessage() for r in caplog.records]
    assert failed.startswith("job_failed job=prune error=")
    assert "readonly database" in failed


async def test_a_database_that_cannot_be_read_pauses_polling_with_one_line(
    publisher: Publisher, write_watchlist, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Another process damages the database under the running daemon (its feeds table
    dropped): the tick's read fails, and polling pauses with one error line instead of a
    traceback every second."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    caplog.set_level(logging.INFO)
    async with Daemon.open(load_config(path)) as daemon, forever(daemon) as running:
        await eventually(lambda: "poll_ok" in caplog.text)
        with connect(tmp_path / "newsmon.db") as other:
            other.execute("PRAGMA foreign_keys = OFF")
            other.execute("DROP TABLE feeds")
        await eventually(lambda: "storage_failed" in caplog.text)
        assert not running.done()
    (failed,) = logged(caplog, "storage_failed")
    assert failed.levelno == logging.ERROR
    assert "no such table: feeds" in failed.getMessage()
    assert "Traceback" not in caplog.text
