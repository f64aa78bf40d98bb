"""The outbox relay against real webhook receivers and a real SQLite file: retries,
Retry-After, permanent failures, expiry, cancellation, pausing, isolation, rate limits."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest

from monitor.deliver import Relay, RetryPolicy, TokenBucket
from monitor.models import LanePolicy
from monitor.notify.base import MAX_RETRY_AFTER
from monitor.notify.slack import SlackNotifier
from monitor.notify.webhook import WebhookNotifier
from monitor.retry_after import parse_retry_after
from monitor.secrets import Secret
from monitor.store import Store
from tests.logs import logged
from tests.outbox import Answer, Hook, ManualClock, add_hits, eventually

POLICY = RetryPolicy(base=1.0, cap=600.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def hook(clock: ManualClock, *script: Answer) -> Hook:
    """A receiver on the test clock answering ``script``; start it with ``async with``."""
    return Hook(script, clock)


def relay(
    store: Store,
    hooks: dict[str, Hook],
    session: aiohttp.ClientSession,
    clock: ManualClock,
    lanes: dict[str, LanePolicy] | None = None,
    timeout: float = 30.0,
    look_again: float = 2.0,
    storage_retry: float = 30.0,
) -> Relay:
    notifiers = {
        name: WebhookNotifier(name, Secret(h.url), session, timeout=timeout)
        for name, h in hooks.items()
    }
    return Relay(
        store, notifiers, policy=POLICY, clock=clock, rng=random.Random(7), lanes=lanes,
        sleep=clock.sleep, look_again=look_again, storage_retry=storage_retry,
    )  # fmt: skip


async def sent(store: Store, count: int) -> bool:
    return sum(r.state == "sent" for r in await store.deliveries(limit=10_000)) == count


async def states(store: Store) -> list[tuple[str, str, int, str | None]]:
    """(title, state, attempts, reason) of every delivery, oldest first."""
    rows = await store.deliveries(limit=10_000)
    return [(r.title, r.state, r.attempts, r.last_error) for r in reversed(rows)]


async def test_500_then_429_retry_after_then_200(store, session, clock) -> None:
    """A 5xx backs off; a 429's Retry-After (30 s) is obeyed to the second; the third
    attempt is sent with the same delivery id, and the row ends sent after 3 tries."""
    async with hook(clock, Answer(500), Answer(429, {"Retry-After": "30"}), Answer(200)) as server:
        await add_hits(store, 1, ["a"], clock())
        r = relay(store, {"a": server}, session, clock)
        await r.send_due("a")
        (row,) = await store.deliveries()
        assert (row.state, row.attempts, row.last_error) == ("pending", 1, "HTTP 500: answer")
        assert clock() <= row.next_attempt_at <= clock() + POLICY.base  # full jitter
        clock.now = row.next_attempt_at
        await r.send_due("a")
        (row,) = await store.deliveries()
        assert row.next_attempt_at == clock() + 30
        assert row.last_error == "HTTP 429: answer"
        clock.advance(29.9)
        await r.send_due("a")
        assert len(server.seen) == 2  # not before Retry-After has passed
        clock.advance(0.1)
        await r.send_due("a")
        assert await states(store) == [("story 0", "sent", 3, None)]
        assert len({s.delivery for s in server.seen}) == 1
        assert len(server.seen) == 3


NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        (None, 0.0, 4.0),  # missing: backoff with full jitter (3rd attempt: up to 4 s)
        ("abc", 0.0, 4.0),
        ("-5", 0.0, 4.0),
        ("0", 1.0, 4.0),  # says nothing: backoff, floored at 1 s, not a try a second
        ("999999999", 600.0, 600.0),  # clamped down to the policy's cap
        (format_datetime(datetime.fromtimestamp(NOW + 120, UTC), usegmt=True), 120.0, 120.0),
        (format_datetime(datetime.fromtimestamp(NOW - 120, UTC), usegmt=True), 1.0, 4.0),
    ],
    ids=["missing", "garbage", "negative", "zero", "huge", "http-date", "past-date"],
)
def test_odd_retry_after_values_are_clamped_or_ignored(
    header: str | None, low: float, high: float
) -> None:
    """Retry-After as seconds or an HTTP date is waited for at least, within [1 s, cap];
    nonsense, 0 and a date past fall back to backoff (RELIABILITY.md case 45)."""
    rng = random.Random(3)
    for _ in range(50):
        delay = POLICY.delay(3, parse_retry_after(header, cap=MAX_RETRY_AFTER, now=NOW), rng)
        assert low <= delay <= high


def test_a_destination_answering_retry_after_0_gets_the_backoff() -> None:
    """Retry-After: 0 on every answer: the waits grow as the backoff's do, where they were
    a second each, for all of a delivery's max_age."""
    rng = random.Random(3)
    waits = [POLICY.delay(n, 0.0, rng) for n in range(1, 13)]
    assert sum(waits) > 600  # 12 tries; a second each was 12 s
    assert max(waits) == POLICY.cap


async def test_permanent_failure_is_final_with_its_reason(store, session, clock) -> None:
    """A 404 fails the delivery at once, with the answer as reason, and is never retried."""
    async with hook(clock, Answer(404)) as server:
        await add_hits(store, 1, ["a"], clock())
        r = relay(store, {"a": server}, session, clock)
        await r.send_due("a")
        clock.advance(86400)
        await r.send_due("a")
        assert await states(store) == [("story 0", "failed", 1, "HTTP 404: answer")]
        assert len(server.seen) == 1


@pytest.mark.parametrize("back", [False, True], ids=["down", "back-at-max-age"])
async def test_retried_past_max_age_expires(store, session, clock, back: bool) -> None:
    """A destination down for all of the notifier's max_age: where the backoff (up to
    10 min) would overshoot it, the last try is made at max_age itself; failing, the
    delivery expires with the last reason and the count of tries, nothing left pending. A
    destination back by then gets the alert, once."""
    async with hook(clock, *[Answer(503)] * 50) as server:
        await add_hits(store, 1, ["a"], clock())
        deadline = clock() + 1800
        r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(max_age=1800)})
        while (next_at := (await store.lane_times("a", None))[0]) is not None:
            clock.now = next_at
            if back and next_at == deadline:
                server.script.clear()
            await r.send_due("a")
        ((_, state, attempts, reason),) = await states(store)
        assert server.seen[-1].at == deadline > server.seen[-2].at  # the last try: at max_age
        assert attempts == len(server.seen)
        if back:
            assert (state, reason, len(server.accepted)) == ("sent", None, 1)
        else:
            assert state == "expired"
            assert reason == f"gave up after {attempts} tries: HTTP 503: answer"


async def expired_behind_retry_after(
    store: Store, session, clock, server, *, hits: int, wait: float, max_age: float
) -> tuple[Relay, float]:
    """``hits`` alerts to "a", whose destination answers the first two tries with 429 and
    a Retry-After of ``wait`` seconds: the first alert is tried again after ``wait``, then
    expires, a second wait ending past its ``max_age``. The relay and the start time."""
    start = clock()
    await add_hits(store, hits, ["a"], start)
    r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(max_age=max_age)})
    await r.send_due("a")
    clock.now = start + wait
    await r.send_due("a")
    return r, start


@pytest.mark.parametrize("step", [0.0, -86400.0], ids=["steady", "clock-stepped-back"])
async def test_a_retry_after_past_max_age_expires_at_once_and_is_obeyed(
    store, session, clock, caplog: pytest.LogCaptureFixture, step: float
) -> None:
    """A destination asking (429, Retry-After) for a wait that ends past a delivery's
    max_age: the delivery expires at once, in one ERROR line that says why, rather than be
    tried against the destination's wish or after its max_age; the alert behind it waits
    as asked, then is sent. A wall clock stepped back a day meanwhile (RELIABILITY.md case
    62) does not stretch that wait."""
    busy = Answer(429, {"Retry-After": "600"})
    caplog.set_level(logging.WARNING, logger="newsmon.deliver")
    async with hook(clock, busy, busy) as server:
        # 10 min asked, 15 left: tried again in 10; then 5 left: no try can be made in time
        r, start = await expired_behind_retry_after(
            store, session, clock, server, hits=2, wait=600, max_age=900
        )
        why = "HTTP 429: answer; the destination asked us to wait 10m, and max_age ends in 5m"
        fields = f"delivery={server.seen[0].delivery} notifier=a rule=r"
        assert [(r.levelno, r.getMessage()) for r in logged(caplog, "delivery_")] == [
            (logging.WARNING, f'delivery_retry {fields} reason="HTTP 429: answer" retry_in=600.0s'),
            (logging.ERROR, f'delivery_expired {fields} reason="{why}"'),
        ]
        clock.now += step
        await store.shift_schedule(step)  # as the daemon does, seeing the jump
        r.shift(step)
        clock.advance(599)
        await r.send_due("a")
        assert len(server.seen) == 2  # story 1 waits as the destination asked
        clock.advance(1)
        await r.send_due("a")
        assert sorted(await states(store)) == [  # story 1's age moved with the clock
            ("story 0", "expired", 2, f"gave up after 2 tries: {why}"),
            ("story 1", "sent", 1, None),
        ]
        assert [s.at for s in server.seen] == [start, start + 600, start + 1200 + step]


async def test_an_expiry_reason_says_the_two_waits_apart(store, session, clock) -> None:
    """100 s asked and 90 s left both round to "2m": then the reason gives seconds."""
    busy = Answer(429, {"Retry-After": "100"})
    async with hook(clock, busy, busy) as server:
        await expired_behind_retry_after(
            store, session, clock, server, hits=1, wait=100, max_age=190
        )
        why = "HTTP 429: answer; the destination asked us to wait 100s, and max_age ends in 90s"
        assert await states(store) == [("story 0", "expired", 2, f"gave up after 2 tries: {why}")]


async def test_a_reload_that_edits_the_notifier_keeps_its_destinations_wait(
    store, session, clock
) -> None:
    """The wait a destination asked for outlives the row it answered, and a reload that
    edits the notifier (its max_age, say, after seeing alerts expire): the new lane keeps
    it (G8)."""
    busy = Answer(429, {"Retry-After": "600"})
    async with hook(clock, busy, busy) as server:
        r, start = await expired_behind_retry_after(
            store, session, clock, server, hits=2, wait=600, max_age=900
        )
        edited = WebhookNotifier("a", Secret(server.url), session, timeout=10)
        await r.replace({"a": edited}, {"a": LanePolicy(max_age=1800)}, 1.0)
        clock.advance(599)
        await r.send_due("a")
        assert len(server.seen) == 2
        clock.advance(1)
        await r.send_due("a")
        assert [s.at for s in server.seen] == [start, start + 600, start + 1200]


async def test_a_retry_after_holds_the_lanes_notices_too(store, session, clock) -> None:
    """A notice (or a digest) keeps a time of its own, but the destination asked the
    whole lane to wait (G8): it goes when the wait is over, not one second later."""
    async with hook(clock, Answer(429, {"Retry-After": "600"})) as server:
        start = clock()
        await add_hits(store, 1, ["a"], start)
        r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(max_age=3600)})
        await r.send_due("a")  # retried in 10 minutes, as asked
        await store.add_notice("feed_gone", "https://x.org/a", "1", "gone", ["a"], start)
        clock.advance(1)
        await r.send_due("a")
        assert len(server.seen) == 1
        clock.now = start + 600
        await r.send_due("a")
        assert [s.at for s in server.seen] == [start, start + 600, start + 600]


async def test_removed_destination_cancels_its_open_deliveries(store, clock) -> None:
    """Deliveries to a notifier gone from the watchlist end cancelled, with the reason;
    the others stay pending. Once the notifier is back (a mistaken edit undone), a
    cancelled one can be queued again; not while it is gone."""
    await add_hits(store, 2, ["kept", "gone"], clock())
    assert await store.cancel_deliveries(["kept"], clock()) == 2
    got = {(r.notifier, r.state, r.last_error) for r in await store.deliveries()}
    assert got == {
        ("kept", "pending", None),
        ("gone", "cancelled", "destination removed from the watchlist"),
    }
    cancelled = [r.id for r in await store.deliveries() if r.state == "cancelled"]
    refused = await store.requeue(cancelled[0], clock(), {"kept"})
    assert refused == "its notifier gone is not in the watchlist"
    assert await store.requeue(cancelled[0], clock(), {"kept", "gone"}) is None
    pending = [r.id for r in await store.deliveries() if r.state == "pending"]
    assert cancelled[0] in pending
    assert "it is pending" in (await store.requeue(pending[0], clock(), {"kept", "gone"}) or "")


async def test_an_idle_relay_looks_at_the_outbox_and_writes_nothing(
    store, session, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A lane with nothing due looks at the outbox now and then (for what another process
    queued) by reading it only: once it is idle, with its connection refusing writes, five
    more looks log no storage failure (a look that wrote, closing storm digests, did)."""
    looks = 0
    read = store.lane_times

    async def counted(*args: object) -> tuple[float | None, ...]:
        nonlocal looks
        looks += 1
        return await read(*args)

    store.lane_times = counted
    async with hook(clock) as server:
        r = relay(store, {"a": server}, session, clock, look_again=0.01)
        task = asyncio.create_task(r.run())
        try:
            await eventually(lambda: looks >= 1)  # it has sent what was due: idle now
            await store._db.execute("PRAGMA query_only = 1")
            idle = looks
            with caplog.at_level(logging.INFO):
                await eventually(lambda: looks >= idle + 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await store._db.execute("PRAGMA query_only = 0")
    assert logged(caplog, "storage_failed") == []


async def test_a_delivery_queued_again_by_another_process_is_sent_by_an_idle_relay(
    store, session, clock, tmp_path: Path
) -> None:
    """`newsmon redeliver` writes from another process: a relay with nothing left to do
    finds the delivery queued again on its next look at the outbox and sends it."""
    async with hook(clock, Answer(404), Answer(200)) as server:
        await add_hits(store, 1, ["a"], clock())
        r = relay(store, {"a": server}, session, clock, look_again=0.02)
        task = asyncio.create_task(r.run())
        try:
            await eventually(lambda: len(server.seen) == 1)
            [failed] = await store.deliveries(limit=10)
            assert failed.state == "failed"
            other = await Store.open(tmp_path / "newsmon.db")  # the CLI
            try:
                assert await other.requeue(failed.id, clock(), {"a"}) is None
            finally:
                await other.close()
            await eventually(lambda: sent(store, 1))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert len(server.seen) == 2


async def test_repeated_permanent_failures_pause_the_destination(
    store, session, clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three refusals in a row pause the destination loudly; the rest stay pending, the
    pause survives a restart, and `resume` (from another connection) lets them go."""
    async with hook(clock, *[Answer(403)] * 3) as server:
        await add_hits(store, 5, ["a"], clock())
        lanes = {"a": LanePolicy(pause_after=3)}
        r = relay(store, {"a": server}, session, clock, lanes, look_again=0.02)
        with caplog.at_level(logging.INFO, logger="newsmon.deliver"):
            await r.run(until_empty=True)  # returns: a paused lane has nothing to do
        assert [s for _, s, _, _ in await states(store)] == ["failed"] * 3 + ["pending"] * 2
        assert len(server.seen) == 3
        reason = "3 permanent failures in a row, the last: HTTP 403: answer"
        assert await store.paused("a") == reason
        (paused_log,) = [m for m in caplog.messages if m.startswith("destination_paused")]
        assert "newsmon resume a" in paused_log
        assert [r.levelno for r in caplog.records if "paused" in r.message] == [logging.ERROR]

        other = await Store.open(tmp_path / "newsmon.db")  # a restart, or the CLI
        try:
            assert await other.paused("a") == reason
            with caplog.at_level(logging.INFO, logger="newsmon.deliver"):
                task = asyncio.create_task(r.run())
                await eventually(lambda: caplog.messages.count(paused_log) == 2)
                assert len(server.seen) == 3  # the running lane holds back
                assert await other.resume("a")
                await eventually(lambda: sent(store, 2))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            resumed = [r for r in caplog.records if r.message == "destination_resumed notifier=a"]
            assert [r.levelno for r in resumed] == [logging.INFO]  # asked for: nothing wrong
        finally:
            await other.close()
        assert [s for _, s, _, _ in await states(store)] == ["failed"] * 3 + ["sent"] * 2


async def test_a_success_ends_a_failure_streak(store, session, clock) -> None:
    """Refusals separated by a success do not pause the destination."""
    async with hook(
        clock, Answer(400), Answer(400), Answer(200), Answer(400), Answer(400)
    ) as server:
        await add_hits(store, 6, ["a"], clock())
        r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(pause_after=3)})
        await r.send_due("a")
        assert await store.paused("a") is None
        assert [s for _, s, _, _ in await states(store)] == [
            "failed", "failed", "sent", "failed", "failed", "sent",
        ]  # fmt: skip


async def test_slow_and_failing_destinations_do_not_delay_another(store, session, clock) -> None:
    """While one destination hangs until its timeout and another answers 500, a healthy
    destination receives every alert, in order; the slow one is still on its first."""
    async with (
        hook(clock, Answer(hang=True)) as slow,
        hook(clock, *[Answer(500)] * 100) as failing,
        hook(clock) as healthy,
    ):
        servers = {"slow": slow, "failing": failing, "healthy": healthy}
        await add_hits(store, 5, list(servers), clock())
        r = relay(store, servers, session, clock, timeout=300)
        task = asyncio.create_task(r.run())
        await eventually(lambda: sent(store, 5))
        assert [s.body["title"] for s in healthy.accepted] == [f"story {i}" for i in range(5)]
        assert len(slow.seen) == 1  # still on its first: no timeout, no retry yet
        await failing.wait_for(lambda: len(failing.seen) >= 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_rate_limit_allows_a_burst_then_one_per_second(store, session, clock) -> None:
    """rate = 1, burst = 3: three alerts at once, then one a second (on the test's
    clock, so this takes milliseconds)."""
    async with hook(clock) as server:
        await add_hits(store, 8, ["a"], clock())
        start = clock()
        r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(rate=1.0, burst=3)})
        await r.send_due("a")
        times = [s.at - start for s in server.accepted]
        assert times == pytest.approx([0, 0, 0, 1, 2, 3, 4, 5])
        assert [s.body["title"] for s in server.accepted] == [f"story {i}" for i in range(8)]


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    """An idle bucket holds no more than its burst; a drained one refills at its rate."""
    clock = ManualClock()
    bucket = TokenBucket(2.0, 3, clock)
    for _ in range(3):
        assert bucket.wait_time() == 0.0
        bucket.take()
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(3600)
    for _ in range(3):
        assert bucket.wait_time() == 0.0
        bucket.take()
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(-60)  # a wall clock stepped back does not drain it further
    assert bucket.wait_time() == pytest.approx(0.5)


async def test_slack_failing_then_rate_limiting_then_recovering_gets_each_alert_once_in_order(
    store, session, clock
) -> None:
    """Issue 5's acceptance: Slack answers 500, 500, 429 (Retry-After 5), then recovers;
    every alert arrives exactly once, in the order found, within 1 message/s (burst 3)."""
    async with hook(clock, Answer(500), Answer(500), Answer(429, {"Retry-After": "5"})) as slack:
        await add_hits(store, 6, ["slack"], clock())
        r = Relay(
            store,
            {"slack": SlackNotifier("slack", Secret(slack.url), session)},
            policy=POLICY, clock=clock, rng=random.Random(7), sleep=clock.sleep,
            lanes={"slack": LanePolicy(rate=1.0, burst=3)},
        )  # fmt: skip
        for _ in range(20):  # bounded: each round sends, or waits for the next retry
            await r.send_due("slack")
            waiting = [row for row in await store.deliveries() if row.state == "pending"]
            if not waiting:
                break
            # the lane waits for its head row's retry time, keeping the order
            clock.now = max(clock(), max(row.next_attempt_at for row in waiting))
        stories = [re.findall(r"story \d+", str(s.body["text"])) for s in slack.accepted]
        assert stories == [[f"story {i}"] for i in range(6)]
        assert len(slack.seen) == 9  # 6 accepted + 3 refused, nothing sent twice
        gaps = [b.at - a.at for a, b in itertools.pairwise(slack.accepted)]
        assert all(gap >= 1.0 - 1e-9 for gap in gaps[2:])  # past the burst: 1/s at most


async def test_a_database_refusing_writes_mid_send_pauses_the_lane_and_loses_nothing(
    store, session, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The database turns read-only (SQLITE_READONLY, on the relay's own connection)
    while an alert is in flight, so it cannot be marked sent: the lane pauses with one
    error line instead of dying; once writes work it puts the row back and sends it again
    (the same delivery id: at least once, as after a crash), then the next alert."""
    caplog.set_level(logging.INFO)
    async with hook(clock, Answer(200, hang=True)) as server:
        await add_hits(store, 2, ["a"], clock())
        r = relay(store, {"a": server}, session, clock, storage_retry=0.01)
        running = asyncio.create_task(r.run())
        await server.wait_for(lambda: len(server.seen) == 1)
        await store._db.execute("PRAGMA query_only = 1")
        server.release.set()
        await eventually(lambda: "storage_failed" in caplog.text)
        assert not running.done()
        await store._db.execute("PRAGMA query_only = 0")
        await eventually(lambda: sent(store, 2))
        r.stop()
        await running
    first, again, second = (s.delivery for s in server.accepted)
    assert first == again != second
    failed = logged(caplog, "storage_failed")
    assert failed[0].levelno == logging.ERROR
    assert "notifier=a deliveries=paused" in failed[0].getMessage()
    assert "readonly database" in failed[0].getMessage()
    assert caplog.text.count("storage_recovered") == 1


async def test_a_lane_paused_by_the_database_waits_longer_each_time_and_says_so_once(
    store, session, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses to mark an alert 'sending' (as a full disk refuses a write
    that a no-op, such as putting back nothing, gets past): the lane's waits double and
    only the first failure is an error; it resumes once, at the first write that works."""
    caplog.set_level(logging.INFO)
    async with hook(clock, Answer(200)) as server:
        await add_hits(store, 1, ["a"], clock())
        await store._db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE OF state ON deliveries"
            " WHEN NEW.state = 'sending' BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
        r = relay(store, {"a": server}, session, clock, storage_retry=0.01)
        running = asyncio.create_task(r.run())

        def failed() -> list[logging.LogRecord]:
            return logged(caplog, "storage_failed")

        await eventually(lambda: len(failed()) >= 4)
        await store._db.execute("DROP TRIGGER refuse")
        await eventually(lambda: sent(store, 1))
        r.stop()
        await running
    waits = [re.search(r"retry_in=(\S+)s", r.getMessage()) for r in failed()[:4]]
    assert [float(m[1]) for m in waits if m] == [0.01, 0.02, 0.04, 0.08]
    assert [r.levelno for r in failed()[:4]] == [logging.ERROR] + [logging.WARNING] * 3
    assert caplog.text.count("storage_recovered") == 1


async def test_a_clock_jump_during_an_attempt_does_not_expire_the_row(
    store, session, clock
) -> None:
    """The wall clock steps a day ahead while an attempt hangs, and the daemon moves the
    stored waits (RELIABILITY.md case 62): the failed attempt is retried, not expired as
    a day old."""
    async with hook(clock, Answer(500, hang=True)) as server:
        await add_hits(store, 1, ["a"], clock())
        r = relay(store, {"a": server}, session, clock, {"a": LanePolicy(max_age=3600.0)})
        attempt = asyncio.create_task(r.send_due("a"))
        await server.wait_for(lambda: len(server.seen) == 1)
        clock.now += 86400.0
        await store.shift_schedule(86400.0)
        server.release.set()
        await attempt
        assert [s for _, s, _, _ in await states(store)] == ["pending"]


async def test_retry_or_expire_judges_a_notice_by_its_own_age(store: Store) -> None:
    """A notice's id, like a delivery's: retried within max_age, tried last at its
    deadline when the backoff overshoots it, expired when that try fails; an id that
    names no row ends as given up instead of failing the lane."""
    await store.add_notice("feed_gone", "https://x.org/a", "1", "gone", ["desk"], 1000.0)
    (notice,) = await store.due_notices("desk", 1000.0)
    keep = {"max_age": 3600.0, "error": "HTTP 503"}
    assert await store.retry_or_expire(notice.id, 1001.0, 4000.0, not_before=1001.0, **keep) == 4000
    assert await store.retry_or_expire(notice.id, 4000.0, 7000.0, not_before=4000.0, **keep) == 4600
    assert [state for _, state in await store.notices()] == ["pending"]
    assert await store.retry_or_expire(notice.id, 4600.0, 4601.0, not_before=4600.0, **keep) == (
        "HTTP 503"
    )
    assert [state for _, state in await store.notices()] == ["expired"]
    assert await store.retry_or_expire("no-such-id", 1003.0, 1004.0, not_before=0, **keep) == (
        "HTTP 503"
    )
