"""A wall clock stepped a day back or forward (RELIABILITY.md case 62) neither stalls
polling and retries nor makes everything due at once: every stored wait keeps its length."""

from __future__ import annotations

import logging
import time
from datetime import datetime, tzinfo
from pathlib import Path

import apscheduler.schedulers.base
import pytest

from monitor.clock_watch import ClockWatch
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.store import Store
from tests.daemon import forever
from tests.db import connect
from tests.outbox import ManualClock, add_hits, eventually
from tests.servers import Item, Publisher
from tests.watchlists import watchlist

DAY = 86400.0


def test_a_step_is_a_jump_and_slewing_is_not() -> None:
    """Only a disagreement beyond the tolerance between one look and the next counts."""
    wall, steady = [1000.0], [5.0]
    watch = ClockWatch(lambda: wall[0], lambda: steady[0], tolerance=30.0)
    wall[0] += 10.0
    steady[0] += 10.0
    assert watch.jump() == 0.0
    wall[0] += 10.0 + 20.0  # slewed 20 s ahead: within the tolerance
    steady[0] += 10.0
    assert watch.jump() == 0.0
    wall[0] -= DAY
    assert watch.jump() == -DAY
    wall[0] += DAY + 1.0
    steady[0] += 1.0
    assert watch.jump() == DAY
    assert watch.jump() == 0.0


async def test_shifting_the_schedule_keeps_each_wait(store: Store) -> None:
    """A feed's due time and Retry-After, and an open delivery's times, move by the jump."""
    clock = ManualClock()
    await store.sync_feeds({"https://a.test/rss": None}, clock(), 0.0)
    state = await store.feed_state("https://a.test/rss")
    await store.record_failure(
        state.id, clock(), clock() + 600, 503, "busy", not_before=clock() + 300
    )
    await add_hits(store, 1, ["hook"], clock())
    before = await store.deliveries()
    await store.shift_schedule(DAY)
    (row,) = [f for f in await store.feeds() if f.url == "https://a.test/rss"]
    assert row.next_poll_at == clock() + 600 + DAY
    assert await store.due_feeds({"https://a.test/rss"}, clock() + 600) == []  # no storm
    assert await store.due_feeds({"https://a.test/rss"}, clock() + 600 + DAY) == [
        "https://a.test/rss"
    ]
    (after,) = await store.deliveries()
    assert after.next_attempt_at == before[0].next_attempt_at + DAY
    assert after.created_at == before[0].created_at + DAY  # its age decides its expiry


async def test_a_jump_moves_the_silence_baseline(store: Store, tmp_path: Path) -> None:
    """When a feed last found something new is the start of a wait (silence, after
    notices.py): a day's jump forward must not make every feed look a day silent."""
    clock = ManualClock()
    await add_hits(store, 1, ["hook"], clock())  # a poll that found something new
    await store.shift_schedule(DAY)
    with connect(tmp_path / "newsmon.db") as conn:
        (last_new,) = conn.execute("SELECT last_new_at FROM feeds").fetchone()
    assert last_new == clock() + DAY


async def test_a_delivery_in_flight_keeps_its_age_through_a_jump(store: Store) -> None:
    """A row a lane holds in 'sending' when the clock jumps moves too: after a failed
    attempt it goes back to pending with its age, not a day older (and expired)."""
    clock = ManualClock()
    await add_hits(store, 1, ["hook"], clock())
    (before,) = await store.deliveries()
    await store.mark_sending(before.id, clock())
    await store.shift_schedule(DAY)
    (after,) = await store.deliveries()
    assert after.created_at == before.created_at + DAY


async def test_a_clock_stepped_back_while_running_does_not_stall_polling(
    publisher: Publisher,
    write_watchlist,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wall clock goes back a day under a running daemon (for APScheduler too): the
    tick notices, moves the schedule back, and the feed is polled again on its 2 s
    interval, not in a day."""
    publisher.rss_items = [Item("Start", "/start", summary="Nothing yet.")]
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"]).replace(
        'interval = "1m"', 'interval = "2s"'
    )
    path = write_watchlist(text.replace("[monitor]\n", '[monitor]\nmin_interval = "1s"\n'))
    skew = [0.0]

    class Stepped(datetime):  # the wall clock as APScheduler reads it
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Stepped:
            return cls.fromtimestamp(time.time() + skew[0], tz)

    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", Stepped)
    caplog.set_level(logging.INFO)
    clock = lambda: time.time() + skew[0]  # noqa: E731
    async with Daemon.open(load_config(path), clock=clock) as daemon, forever(daemon):
        await eventually(lambda: "poll_ok" in caplog.text)  # its next time is stored
        skew[0] = -DAY
        await eventually(lambda: "clock_jumped" in caplog.text)
        polled = len(publisher.requests)
        await eventually(lambda: len(publisher.requests) > polled)
    (jumped,) = [r.getMessage() for r in caplog.records if "clock_jumped" in r.getMessage()]
    assert jumped.startswith("clock_jumped by=-86400s")


async def test_a_clock_stepped_back_while_stopped_is_caught_up_at_start(
    publisher: Publisher, write_watchlist, tmp_path: Path
) -> None:
    """The database recorded a poll a day ahead of the clock at the next start: the
    schedule moves back by as much, so the feed is due within its interval, not a day."""
    publisher.rss_items = [Item("Start", "/start", summary="Nothing yet.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
    behind = time.time() - DAY
    async with Daemon.open(load_config(path), clock=lambda: behind) as daemon:
        (row,) = await daemon.store.feeds()
        assert 0 < row.next_poll_at - behind < 2 * 60  # the 1m interval, with jitter
    with connect(tmp_path / "newsmon.db") as conn:
        (last,) = conn.execute("SELECT last_poll_at FROM feeds").fetchone()
    assert last > behind  # history is not rewritten: only the waits moved
