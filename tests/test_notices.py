"""`[monitor] notices`: a feed gone or failing for a day, a destination paused, alerts
expiring; each notice once, through the outbox, against real receivers and SQLite."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.deliver import Relay, RetryPolicy
from monitor.models import LanePolicy, Notice
from monitor.notices import raise_notice
from monitor.notify.email import render_notice_email
from monitor.notify.slack import render_slack_notice
from monitor.notify.webhook import WebhookNotifier
from monitor.secrets import Secret
from monitor.status import format_status, gather_status
from monitor.store import Store
from tests.daemon import newsmon_async
from tests.db import connect
from tests.old_schema import back_to_schema_7
from tests.outbox import Answer, Hook, ManualClock, add_hits
from tests.servers import Item, Publisher, Receiver
from tests.watchlists import watchlist

DAY = 86400.0


def notices_to_hook(text: str) -> str:
    return text.replace("[monitor]\n", '[monitor]\nnotices = ["hook"]\n', 1)


def notices(server: Receiver) -> list[dict[str, object]]:
    return [r.body for r in server.accepted if r.body.get("notice")]


async def test_a_gone_feed_sends_one_notice_across_polls(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A 410 feed raises exactly one feed_gone notice, however often it is polled."""
    publisher.overrides["/rss.xml"] = (410, {})
    feed = f"{publisher.base}/rss.xml"
    path = write_watchlist(notices_to_hook(watchlist(feeds=[feed], hook=receiver.url)))
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()  # disables the feed; polling it by hand twice more
        for _ in range(2):
            await daemon.poll(daemon.config.feeds)
            await daemon.relay.run(until_empty=True)
    assert len(publisher.hits("/rss.xml")) == 3
    (notice,) = notices(receiver)
    assert notice["kind"] == "feed_gone"
    assert notice["subject"] == feed
    assert "410" in str(notice["text"])
    assert f"newsmon resume {feed}" in str(notice["text"])


async def test_a_feed_failing_for_a_day_sends_one_notice(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Failures for under a day raise nothing; the first poll a day into the streak
    raises feed_failing once; a success ends the episode, so a new day-long streak
    raises it again."""
    publisher.overrides["/rss.xml"] = (500, {})
    path = write_watchlist(
        notices_to_hook(watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url))
    )
    clock = ManualClock(time.time())

    async def poll_at(hours: float) -> None:
        clock.advance(hours * 3600)
        await daemon.poll(daemon.config.feeds)
        await daemon.relay.run(until_empty=True)

    async with Daemon.open(load_config(path), clock=clock) as daemon:
        await daemon.run_once()
        for hours in (12, 11.9):
            await poll_at(hours)
        assert notices(receiver) == []
        for hours in (0.2, 1, 5):
            await poll_at(hours)
        assert [n["kind"] for n in notices(receiver)] == ["feed_failing"]
        assert "failed every poll for 24 hours" in str(notices(receiver)[0]["text"])
        del publisher.overrides["/rss.xml"]
        await poll_at(1)
        publisher.overrides["/rss.xml"] = (500, {})
        for hours in (1, 25):
            await poll_at(hours)
    assert [n["kind"] for n in notices(receiver)] == ["feed_failing", "feed_failing"]


def relay(
    store: Store,
    hooks: dict[str, Hook],
    session: aiohttp.ClientSession,
    clock: ManualClock,
    targets: list[str],
    lanes: dict[str, LanePolicy] | None = None,
) -> Relay:
    notifiers = {n: WebhookNotifier(n, Secret(h.url), session) for n, h in hooks.items()}
    return Relay(
        store, notifiers, policy=RetryPolicy(base=1.0, cap=600.0), clock=clock,
        rng=random.Random(7), lanes=lanes, sleep=clock.sleep, notices=lambda: targets,
    )  # fmt: skip


async def test_a_paused_destination_sends_one_notice_elsewhere(
    store: Store, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A destination pausing sends one notice to the notices destination, none to itself
    (though it is listed there too), and no more while it stays paused."""
    clock = ManualClock()
    async with Hook([Answer(400)] * 10, clock) as broken, Hook((), clock) as desk:
        await add_hits(store, 4, ["broken"], clock())
        r = relay(
            store, {"broken": broken, "desk": desk}, session, clock, ["desk", "broken"],
            {"broken": LanePolicy(pause_after=2)},
        )  # fmt: skip
        with caplog.at_level(logging.INFO, logger="newsmon"):
            await r.run(until_empty=True)
            await r.run(until_empty=True)
        assert len(broken.seen) == 2  # paused after two refusals; no notice to itself
        (got,) = desk.accepted
        assert got.body["kind"] == "destination_paused"
        assert got.body["subject"] == "broken"
        assert "newsmon resume broken" in str(got.body["text"])
        assert got.delivery == got.body["id"]
        assert [(n.notifier, state) for n, state in await store.notices()] == [("desk", "sent")]
        assert sum(m.startswith("notice_raised") for m in caplog.messages) == 1


async def test_expiring_alerts_send_one_notice_an_hour(
    store: Store, session: aiohttp.ClientSession
) -> None:
    """Alerts expiring on a dead destination raise one deliveries_expired notice an
    hour to the others, not one per alert."""
    clock = ManualClock()
    async with Hook([Answer(503)] * 50, clock) as dead, Hook((), clock) as desk:
        await add_hits(store, 3, ["dead"], clock())
        lanes = {"dead": LanePolicy(max_age=5.0)}
        r = relay(store, {"dead": dead, "desk": desk}, session, clock, ["desk"], lanes)
        while any(d.state == "pending" for d in await store.deliveries()):
            clock.advance(10)
            await r.send_due("dead")
        await r.send_due("desk")
        assert {d.state for d in await store.deliveries()} == {"expired"}
        assert [s.body["kind"] for s in desk.accepted] == ["deliveries_expired"]


async def test_notices_survive_a_restart(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """A notice queued (or cut off mid-send) before a stop is sent after the restart,
    once; raising it again after the restart adds nothing."""
    clock = ManualClock()
    async with Hook((), clock) as desk:
        raise_ = ("feed_gone", "https://feeds.example.org/a", "1", "gone", ["desk"])
        store = await Store.open(tmp_path / "n.db")
        assert await store.add_notice(*raise_, clock())
        (pending,) = await store.due_notices("desk", clock())
        await store.mark_sending(pending.id, clock())  # a crash mid-send
        await store.close()

        store = await Store.open(tmp_path / "n.db")
        try:
            await store.recover_sending(clock())
            assert not await store.add_notice(*raise_, clock())
            await relay(store, {"desk": desk}, session, clock, ["desk"]).run(until_empty=True)
            ((notice, state),) = await store.notices()
        finally:
            await store.close()
        assert state == "sent"
        assert notice.attempts == 2
        assert [s.delivery for s in desk.accepted] == [pending.id]


def test_notice_renders_as_plain_text_in_slack_and_email() -> None:
    """Slack gets the text escaped and unfurling off; email a subject naming the kind
    and subject on one line and the text as its body."""
    notice = Notice("n1", "desk", "feed_gone", "http://x/<a>\r\nBcc: y", "Feed <b> is gone", 0, 0)
    slack = render_slack_notice(notice)
    assert slack["text"] == "[newsmon notice] feed_gone: Feed &lt;b&gt; is gone"
    assert slack["unfurl_links"] is False
    email = render_notice_email(notice, sender="n@example.org", to=("d@example.org",),
                                date=datetime.now(UTC))  # fmt: skip
    assert email["Subject"] == "[newsmon notice] feed_gone: http://x/<a> Bcc: y"
    assert "Bcc" not in email.keys()  # noqa: SIM118 (header names, not a dict)
    assert "Feed <b> is gone" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_deliveries_lists_notices(tmp_path: Path) -> None:
    """`newsmon deliveries` shows the latest notices with their state."""
    path = tmp_path / "newsmon.toml"
    path.write_text(
        watchlist(feeds=["http://127.0.0.1:9/feed.xml"]).replace(
            'database = "newsmon.db"', 'database = "newsmon.db"\nnotices = ["hook"]'
        ),
        encoding="utf-8",
    )
    config = load_config(path)
    store = await Store.open(config.monitor.database)
    try:
        await raise_notice(
            store, config.monitor.notices, "feed_gone", "Wire", 1.0, "Wire is gone (410)", 1000.0
        )
    finally:
        await store.close()
    done = await newsmon_async("deliveries", "--config", str(path))
    assert "NOTICE" in done.stdout
    assert "to hook (pending): Wire is gone (410)" in done.stdout


async def test_a_feed_silent_far_beyond_its_rhythm_sends_one_notice(
    publisher: Publisher,
    receiver: Receiver,
    write_watchlist,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A feed with something new every hour for 8 polls, then nothing: 9 quiet hours
    raise nothing (under 10 times its rhythm); past 10 hours feed_silent is raised and
    logged once, however often silence is checked or the clock jumps; something new ends
    the silence."""
    feed = f"{publisher.base}/rss.xml"
    path = write_watchlist(notices_to_hook(watchlist(feeds=[feed], hook=receiver.url)))
    clock = ManualClock(time.time())

    async def after(hours: float, new: bool = False) -> None:
        clock.advance(hours * 3600)
        if new:
            n = len(publisher.rss_items)
            publisher.rss_items.append(Item(f"Bulletin {n}", f"/b{n}", summary=f"Item {n}."))
        await daemon.poll(daemon.config.feeds)
        await daemon.check_silence()
        await daemon.relay.run(until_empty=True)

    caplog.set_level(logging.INFO)
    async with Daemon.open(load_config(path), clock=clock) as daemon:
        publisher.rss_items = [Item("Bulletin", "/b", summary="The first.")]
        await daemon.run_once()  # the backlog
        for _ in range(8):
            await after(1, new=True)
        await after(9)
        assert notices(receiver) == []
        await after(1.5)
        await after(2)
        (notice,) = notices(receiver)
        assert notice["kind"] == "feed_silent"
        assert notice["subject"] == feed
        assert "nothing new for 10h; it usually has something new every 1h" in str(notice["text"])
        report = await gather_status(daemon.store, daemon.config, clock())
        assert report.silent == ("Test Gazette",)
        assert "1 silent" in report.line()
        assert "silent      Test Gazette" in format_status(report)
        clock.advance(86400)  # the wall clock steps a day ahead; the daemon moves its waits
        await daemon.store.shift_schedule(86400)
        await after(0.5)
        assert len(notices(receiver)) == 1  # the same silence: no second notice
        await after(1, new=True)
        await after(3)
        assert (await gather_status(daemon.store, daemon.config, clock())).silent == ()
    assert len(notices(receiver)) == 1
    assert caplog.text.count("feed_silent feed=") == 1


async def test_a_database_from_before_rhythms_starts_from_its_last_entry(
    tmp_path: Path,
) -> None:
    """Migration 8 on a database that has entries: a feed's last new entry is its newest
    one, and its rhythm starts empty (no silence is claimed before 8 more beats)."""
    clock = ManualClock()
    store = await Store.open(tmp_path / "newsmon.db")
    await add_hits(store, 2, ["hook"], clock())
    await store.close()
    with connect(tmp_path / "newsmon.db") as conn:
        back_to_schema_7(conn)
        newest = conn.execute("SELECT MAX(seen_at) FROM entries").fetchone()[0]
    store = await Store.open(tmp_path / "newsmon.db")
    await store.close()
    with connect(tmp_path / "newsmon.db") as conn:
        row = conn.execute("SELECT last_new_at, rhythm, rhythm_n FROM feeds").fetchone()
    assert row == (newest, None, 0)
