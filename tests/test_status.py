"""`newsmon status` and the STATUS= line: health at a glance, from the real database."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.deliver import RetryPolicy
from monitor.metrics import Metrics
from monitor.sdnotify import SystemdNotifier
from monitor.service import Service
from monitor.status import LOW_DISK, format_status, gather_status, size
from monitor.store import Store
from tests.daemon import newsmon, newsmon_async, running, terminate
from tests.outbox import add_hits
from tests.servers import Item, Publisher, Receiver
from tests.watchlists import watchlist

EMBASSY = Item("Embassy row", "/x", summary="Russia recalls staff from its embassy.")


@pytest.fixture
async def refusing_receiver() -> AsyncIterator[Receiver]:
    """A webhook that refuses the first alert for good (400)."""
    async with Receiver(script=[400]) as server:
        yield server


async def test_report_counts_feeds_hits_and_deliveries(
    monkeypatch: pytest.MonkeyPatch,
    publisher: Publisher,
    refusing_receiver: Receiver,
    write_watchlist,
) -> None:
    """After a run with a healthy, a failing and a disabled feed and a refused alert, the
    report says 1 / 1 / 1, one hit today (none two days on), nothing pending, one failed,
    and the last poll; an alert given up after its max_age counts as expired, apart."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    publisher.rss_items = [EMBASSY]
    disabled = f'[[feeds]]\nurl = "{publisher.base}/old.xml"\nenabled = false\n'
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/missing.xml"],
        hook=refusing_receiver.url,
        extra=disabled,
    )
    config = load_config(path)
    started = time.time()
    async with Daemon.open(config, retry=RetryPolicy(base=0.01, cap=0.05)) as daemon:
        await daemon.run_once(delivery_deadline=30)
    store = await Store.open(config.monitor.database)
    try:
        report = await gather_status(store, config, time.time())
        two_days_on = await gather_status(store, config, time.time() + 2 * 86400)
        # a notice the destination has not taken yet is counted too
        await store.add_notice("feed_gone", "old", "1", "gone", ["hook"], time.time())
        noticed = await gather_status(store, config, time.time())
        await add_hits(store, 1, ["hook"], now := time.time())
        (row,) = [r for r in await store.deliveries() if r.state == "pending"]
        await store.mark_sending(row.id, now)
        assert await store.retry_or_expire(
            row.id, now, now + 60, not_before=now, max_age=0, error="HTTP 503"
        ) == "HTTP 503"  # fmt: skip
        expired = await gather_status(store, config, now)
    finally:
        await store.close()
    assert two_days_on.hits_last_day == 0  # the hit is older than a day by then
    assert (report.feeds_healthy, report.feeds_failing, report.feeds_disabled) == (1, 1, 1)
    assert report.failing == (f"{publisher.base}/missing.xml",)
    assert report.hits_last_day == 1
    assert (report.deliveries_pending, report.deliveries_failed) == (0, 1)
    assert (expired.deliveries_failed, expired.deliveries_expired) == (1, 1)
    assert report.last_poll_at is not None
    assert report.last_poll_at >= started
    assert report.database_bytes > 0
    text = format_status(report)
    assert "feeds       1 healthy, 1 failing, 1 disabled" in text
    assert f"failing     {publisher.base}/missing.xml" in text
    assert "hits        1 in the last day" in text
    assert "deliveries  0 pending, 1 failed, 0 expired" in text
    assert report.line() == "2 feeds, 1 failing, 1 hits today, 0 deliveries pending, 1 failed"
    assert (report.notices_pending, noticed.notices_pending) == (0, 1)
    assert "deliveries  0 pending, 1 failed, 0 expired; 1 notices pending" in format_status(noticed)
    assert noticed.line().endswith("1 failed, 1 notices pending")
    assert "deliveries  0 pending, 1 failed, 1 expired" in format_status(expired)
    assert "0 deliveries pending, 1 failed, 1 expired, 1 notices" in expired.line()


async def test_status_reads_while_the_daemon_runs(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """`newsmon status` (and `--json`) answers (exit 0, current counts) while `newsmon run`
    holds the database, and the daemon keeps running."""
    publisher.rss_items = [EMBASSY]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    async with running(path) as proc:
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        done = await newsmon_async("status", "--config", str(path))
        as_json = await newsmon_async("status", "--json", "--config", str(path))
        assert proc.returncode is None
        await terminate(proc, within=60)
    assert done.returncode == 0, done.stderr
    assert "1 healthy, 0 failing, 0 disabled" in done.stdout
    assert "1 in the last day" in done.stdout
    assert "0 pending, 0 failed, 0 expired" in done.stdout
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert (document["feeds_healthy"], document["hits_last_day"]) == (1, 1)
    assert (document["deliveries_pending"], document["deliveries_failed"]) == (0, 0)
    assert document["deliveries_expired"] == 0
    assert proc.returncode == 0


def test_status_before_the_first_run_says_so(tmp_path: Path, write_watchlist) -> None:
    """With no database yet, status says newsmon has not run (in JSON too, with --json),
    and creates nothing."""
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"])
    done = newsmon("status", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "has not run yet" in done.stdout
    as_json = newsmon("status", "--json", "--config", str(path))
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["database"] == str(tmp_path / "newsmon.db")
    assert "has not run yet" in document["error"]
    assert not (tmp_path / "newsmon.db").exists()


async def test_low_disk_leads_the_status_line_and_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Free space under the threshold heads STATUS= and logs disk_low once; its return
    logs disk_ok. The watchdog is not involved: a full disk is news, not a hang."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=["http://127.0.0.1:9/rss.xml"]), encoding="utf-8")
    config = load_config(path)
    free = [LOW_DISK - 1]
    service = Service(SystemdNotifier(None), watchdog=None, free=lambda _: free[0])
    store = await Store.open(config.monitor.database)
    try:
        with caplog.at_level(logging.INFO, logger="newsmon.service"):
            first = await service.report(store, config)
            await service.report(store, config)
            free[0] = 10 * LOW_DISK
            recovered = await service.report(store, config)
    finally:
        await store.close()
    assert first.line().startswith(f"DISK LOW: {size(LOW_DISK - 1)} free for the database")
    assert "DISK LOW" not in recovered.line()
    assert [r.getMessage().split()[0] for r in caplog.records] == ["disk_low", "disk_ok"]


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (999, "999 B"), (49_152, "49.2 kB"), (3_400_000, "3.4 MB"), (2**40, "1099.5 GB")],
)
def test_sizes_read_like_df(count: int, text: str) -> None:
    """Byte counts print in decimal units with one decimal."""
    assert size(count) == text


async def test_a_feed_gone_410_counts_as_disabled_not_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed the daemon stopped polling after 410 Gone is 'disabled' until resumed."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    gone, live = "http://127.0.0.1:9/gone.xml", "http://127.0.0.1:9/live.xml"
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=[gone, live]), encoding="utf-8")
    config = load_config(path)
    store = await Store.open(config.monitor.database)
    try:
        now = time.time()
        await store.sync_feeds({gone: None, live: None}, now, 0.0)
        state = await store.feed_state(gone)
        await store.record_failure(state.id, now, now + 60, 410, "HTTP 410", disable="gone")
        report = await gather_status(store, config, now)
    finally:
        await store.close()
    assert (report.feeds_healthy, report.feeds_failing) == (0, 0)
    assert (report.feeds_new, report.feeds_disabled) == (1, 1)


async def test_a_paused_destination_leads_the_status_and_is_a_metric(
    publisher: Publisher, write_watchlist
) -> None:
    """A destination paused after repeated refusals (RELIABILITY.md case 47) is named in
    STATUS=, in `newsmon status` and as newsmon_destination_paused; resumed, or removed
    from the watchlist, it is gone."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=f"{publisher.base}/hook")
    config = load_config(path)
    store = await Store.open(config.monitor.database)
    try:
        await add_hits(store, 1, ["hook"], 1000.0)
        (row,) = await store.deliveries()
        assert await store.mark_failed(row.id, "hook", 1001.0, "HTTP 404", pause_after=1)
        report = await gather_status(store, config, 1002.0)
        assert report.paused == ("hook",)
        assert report.line().startswith("PAUSED: hook (newsmon resume NAME), 0 feeds")
        assert "paused      hook (newsmon resume NAME)" in format_status(report)
        metrics = Metrics()
        metrics.update(report, {}, {})
        assert 'newsmon_destination_paused{notifier="hook"} 1.0' in metrics.exposition().decode()
        renamed = path.read_text(encoding="utf-8").replace('"hook"', '"desk"')
        removed = load_config(write_watchlist(renamed.replace(".hook]", ".desk]")))
        assert (await gather_status(store, removed, 1002.0)).paused == ()  # not watched now
        assert await store.resume("hook")
        resumed = await gather_status(store, config, 1003.0)
    finally:
        await store.close()
    assert resumed.paused == ()
    assert "PAUSED" not in resumed.line()
    metrics.update(resumed, {}, {})
    assert "newsmon_destination_paused{" not in metrics.exposition().decode()
