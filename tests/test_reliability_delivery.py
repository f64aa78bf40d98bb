"""RELIABILITY.md sections E and F cases that had no proof yet: the duplicate window,
odd Retry-After values, deceptive Unicode in Slack, hostile text in the webhook body,
SIGTERM with an alert in flight."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from monitor.daemon import STOP_GRACE
from monitor.deliver import Relay, RetryPolicy
from monitor.notify.base import MAX_RETRY_AFTER, classify_http
from monitor.notify.render import alert_json
from monitor.notify.slack import render_slack
from monitor.notify.webhook import WebhookNotifier
from monitor.retry_after import parse_retry_after
from monitor.schedule import Bounds, after_failure
from monitor.secrets import Secret
from monitor.store import Store
from tests.daemon import running
from tests.db import connect
from tests.notify_servers import make_alert
from tests.outbox import Answer, Hook, ManualClock, add_hits
from tests.servers import Item, Publisher, Receiver


async def test_an_answer_after_the_deadline_means_exactly_one_more_copy(
    store: Store, session: aiohttp.ClientSession
) -> None:
    """Case 48 / G4 / G10: a destination that takes the alert but answers too late
    receives it exactly twice, both with the same delivery id, and the row ends sent."""
    clock = ManualClock()
    async with Hook([Answer(hang=True)], clock) as hook:
        await add_hits(store, 1, ["a"], clock())
        notifier = WebhookNotifier("a", Secret(hook.url), session, timeout=0.2)
        relay = Relay(
            store, {"a": notifier}, policy=RetryPolicy(base=0.01, cap=0.01), clock=clock,
            rng=random.Random(1), sleep=clock.sleep,
        )  # fmt: skip
        await relay.send_due("a")  # times out: back to pending, retry due at once
        (row,) = await store.deliveries()
        assert (row.state, row.last_error) == ("pending", "timed out waiting for the destination")
        clock.advance(1)
        await relay.send_due("a")
        (row,) = await store.deliveries()
        assert row.state == "sent"
        assert len(hook.seen) == 2
        assert len({s.delivery for s in hook.seen}) == 1


@pytest.mark.parametrize("value", ["²", "¹²", "1²"])
def test_retry_after_in_odd_digits_is_nonsense_not_a_crash(value: str) -> None:
    """Case 45/73: a Retry-After of digits float() cannot read is ignored, both for a
    notifier's answer and for a feed's 503, instead of raising ValueError."""
    assert parse_retry_after(value, cap=MAX_RETRY_AFTER, now=0.0) is None
    assert classify_http(429, {"Retry-After": value}).retry_after is None
    assert after_failure(600, 1, {"retry-after": value}, 0.0, Bounds(60, 86400)) == 600


def test_a_feeds_retry_after_is_obeyed_up_to_a_day() -> None:
    """Case 73: a feed's 429/503 asking for two hours is not polled again sooner."""
    assert after_failure(600, 1, {"retry-after": "7200"}, 0.0, Bounds(60, 86400)) >= 7200


def test_slack_labels_lose_bidi_and_zero_width_and_show_the_punycode_host() -> None:
    """Case 42: RTL overrides and zero-width characters never reach Slack, and an IDN
    host is shown as punycode beside the label."""
    alert = make_alert(
        title="Invoice \u202egpj.exe\u202c for \u200bpay\u200dpal",
        feed="Wire\u2066\u2069",
        snippet="click \u202ehere\u202c",
        url="https://xn--pypal-4ve.example/login",
    )
    alert_idn = make_alert(url="https://pаypal.example/login")  # Cyrillic а
    for message in (render_slack(alert), render_slack(alert_idn)):
        text = json.dumps(message, ensure_ascii=False)
        assert not any(c in text for c in "\u202a\u202b\u202c\u202d\u202e\u200b\u200d\u2066")
    assert "xn--pypal-4ve.example" in json.dumps(render_slack(alert))
    assert "xn--" in json.dumps(render_slack(alert_idn))


async def test_webhook_body_is_valid_json_whatever_the_text(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """Case 43: NULs, controls and text shaped like our own keys arrive as plain string
    values in valid JSON, with the envelope and the delivery id intact."""
    hostile = '", "id": "forged", "rule": "x\u0000\u0007\n'
    alert = make_alert(title=hostile, snippet=hostile, feed='{"digest": true}')
    notifier = WebhookNotifier("hook", Secret(receiver.url), session)
    result = await notifier.send(alert)
    assert result.outcome.value == "sent"
    (got,) = receiver.accepted
    assert got.body["id"] == alert.hit_id
    assert got.body["rule"] == alert.rule
    assert got.body["title"] == hostile
    assert "digest" not in got.body
    assert got.headers["Idempotency-Key"] == alert.delivery_id


async def _sigterm_with_an_alert_in_flight(
    publisher: Publisher, write_watchlist, answer_after_stop: bool
) -> tuple[int, float, str, list[str], Hook]:
    """A real `newsmon run` sends an alert to a receiver that holds it; SIGTERM arrives
    meanwhile (then, with ``answer_after_stop``, the receiver answers 200). Returns the
    exit code, the seconds to exit, its log, the outbox states and the receiver."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    async with Hook([Answer(hang=True)]) as hook:
        path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=hook.url)
        async with running(path) as proc:
            await hook.wait_for(lambda: len(hook.seen) == 1, timeout=60)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            if answer_after_stop:
                hook.release.set()
            async with asyncio.timeout(60):
                _, stderr = await proc.communicate()
            elapsed = time.monotonic() - started
    with connect(path.parent / "newsmon.db") as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM deliveries")]
    assert proc.returncode is not None
    return proc.returncode, elapsed, stderr.decode(), states, hook


async def test_sigterm_lets_the_alert_in_flight_finish_and_records_it(
    publisher: Publisher, write_watchlist
) -> None:
    """Case 57: SIGTERM while a send is in flight stops scheduling but lets the send end;
    its outcome is committed (sent) and the daemon exits 0."""
    code, elapsed, stderr, states, hook = await _sigterm_with_an_alert_in_flight(
        publisher, write_watchlist, answer_after_stop=True
    )
    assert code == 0, stderr
    assert elapsed < STOP_GRACE
    assert states == ["sent"]
    assert len(hook.accepted) == 1
    assert "delivery_sent" in stderr


async def test_sigterm_with_a_send_that_never_ends_exits_0_within_the_bound(
    publisher: Publisher, write_watchlist
) -> None:
    """Case 57: a destination that never answers gets STOP_GRACE, then the attempt is
    cut off, its row goes back to pending (sent again at the next start: at least once),
    and the daemon exits 0 well inside TimeoutStopSec (45 s in systemd/newsmon.service)."""
    code, elapsed, stderr, states, _ = await _sigterm_with_an_alert_in_flight(
        publisher, write_watchlist, answer_after_stop=False
    )
    assert code == 0, stderr
    assert STOP_GRACE <= elapsed < STOP_GRACE + 10
    assert states == ["pending"]
    assert f"deliveries_interrupted count=1 after={STOP_GRACE:g}s" in stderr


def test_the_webhook_body_gives_published_in_utc_whatever_its_zone() -> None:
    """DESIGN.md 4's "published" ends in Z: a time aware of another zone is converted,
    as the email and Slack renderings convert it, not printed with a false Z."""
    moscow = datetime(2025, 2, 27, 12, 58, tzinfo=timezone(timedelta(hours=3)))
    assert alert_json(make_alert(published=moscow))["published"] == "2025-02-27T09:58:00Z"
    assert alert_json(make_alert(published=None))["published"] is None
