"""Digests: a notifier's hits batched into one message per window, never a story twice."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from monitor.deliver import Relay, RetryPolicy
from monitor.models import Digest, LanePolicy
from monitor.notify.email import EmailNotifier
from monitor.notify.slack import HEADER_LIMIT, MAX_BLOCKS, SECTION_LIMIT, render_slack_digest
from monitor.notify.webhook import WebhookNotifier
from monitor.secrets import Secret
from tests.notify_servers import make_alert
from tests.outbox import Answer, Hook, ManualClock, add_hits
from tests.smtp_server import SENDER, TO, Recorder, parts

HOUR = 3600.0


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, ManualClock]]:
    clock = ManualClock()
    async with Hook((Answer(500),), clock) as server:
        yield server, clock


async def test_webhook_digest_keeps_its_window_and_sends_each_story_once(store, hook) -> None:
    """Hits wait for the window (run --once sends nothing early), then go in one signed
    POST `{"digest": true, ...}` with a delivery id of its own, the same on its retry;
    a later hit goes in the next digest, never an earlier story again."""
    server, clock = hook
    async with aiohttp.ClientSession() as session:
        notifier = WebhookNotifier("a", Secret(server.url), session, secret=Secret("k"))
        relay = Relay(
            store, {"a": notifier}, policy=RetryPolicy(base=1.0), clock=clock,
            rng=random.Random(1), lanes={"a": LanePolicy(digest=HOUR)}, sleep=clock.sleep,
        )  # fmt: skip
        await add_hits(store, 3, ["a"], clock())
        await relay.run(until_empty=True)
        clock.advance(HOUR - 1)
        await relay.send_due("a")
        assert server.seen == []
        clock.advance(1)
        await relay.send_due("a")  # the window closed: the digest goes, and gets a 500
        next_at, _ = await store.lane_times("a", HOUR)
        assert next_at is not None
        clock.now = next_at
        await add_hits(store, 1, ["a"], clock(), start=3)  # arrives during the retry
        await relay.send_due("a")
        first, retry = server.seen
        assert first.delivery == retry.delivery
        assert retry.body == {
            "digest": True,
            "notifier": "a",
            "hits": [retry.body["hits"][i] for i in range(3)],  # type: ignore[index]
        }
        hits = retry.body["hits"]
        assert isinstance(hits, list)
        assert [h["title"] for h in hits] == ["story 0", "story 1", "story 2"]
        members = {r.id for r in await store.deliveries()} - {retry.delivery}
        assert retry.delivery not in {h["id"] for h in hits}
        assert len(members) == 4

        clock.advance(HOUR)
        await relay.send_due("a")
        third = server.seen[2]
        assert third.delivery != first.delivery
        assert [h["title"] for h in third.body["hits"]] == ["story 3"]  # type: ignore[union-attr]
        rows = await store.deliveries()
        assert {r.state for r in rows} == {"sent"}
        assert {r.digest_id for r in rows} == {first.delivery, third.delivery}
        assert json.loads(json.dumps(third.body))["digest"] is True


def digest_of(count: int, **changes: object) -> Digest:
    alerts = tuple(
        make_alert(delivery_id=f"d-{i}", hit_id=f"h-{i}", **changes) for i in range(count)
    )
    return Digest("digest-0001", "desk", alerts)


LONG = {  # every field at its longest: a line of them all passed a section's 3,000
    "title": "T " * 400,
    "feed": "F " * 400,
    "url": "https://example.org/" + "x" * 2600,
}


@pytest.mark.parametrize(
    ("count", "changes"),
    [
        (200, {"title": "<!channel> " + "x" * 100_000}),
        (500, {"title": "<!channel> " + "x" * 100_000}),
        (200, LONG),
    ],
    ids=["200", "500", "longest-fields"],
)
def test_slack_digest_of_many_long_hits_stays_inside_slacks_limits(
    count: int, changes: dict[str, str]
) -> None:
    """Hits with 100 KB titles that try to ping, or with every field at its longest: at
    most 50 blocks, every section's text within its limit and none empty (Slack refuses
    the whole digest for one), a digest's 200 hits all listed (more are counted), no
    mention token, and the digest's delivery id shown (RELIABILITY.md case 39)."""
    message = render_slack_digest(digest_of(count, **changes))
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= HEADER_LIMIT
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(0 < len(text) <= SECTION_LIMIT for text in sections)
    shown = sum(text.count("• ") for text in sections)
    if count == 200:
        assert shown == 200
    else:
        assert sections[-1] == f"…and {count - shown} more"
    assert "<!channel>" not in json.dumps(message)
    assert "digest-0001" in blocks[-1]["elements"][0]["text"]
    assert message["unfurl_links"] is False


async def test_email_digest_is_one_message_dated_by_the_injected_clock(
    smtpd: tuple[Recorder, int],
) -> None:
    """An email digest: one message listing every alert with its host, matched words and
    other outlets, its Message-ID from the digest id, its Date from the notifier's
    clock."""
    recorder, port = smtpd
    notifier = EmailNotifier(
        "desk-email", host="127.0.0.1", port=port, security="none", username=None,
        password=None, sender=SENDER, to=TO, timeout=5.0, clock=lambda: 1_000_000_000.0,
    )  # fmt: skip
    result = await notifier.send_digest(digest_of(3, title="Embassy <b>news</b>"))
    assert result.detail.startswith("accepted")
    (got,) = recorder.messages
    message = got.message
    assert message["Subject"] == "[newsmon] digest: 3 alerts (russia-embassy)"
    assert message["Date"] == "Sun, 09 Sep 2001 01:46:40 +0000"
    assert message["X-Newsmon-Delivery"] == "digest-0001"
    text, html = parts(message)
    assert text.count("Embassy <b>news</b>") == 3
    assert html.count("Embassy &lt;b&gt;news&lt;/b&gt;") == 3
    # each hit as in a single alert (docs/alerts.md), in the HTML most readers see too
    for shown in ("(www.example.org)", "Matched: Russia, embassy", "Also carried by "):
        assert html.count(shown) == 3, shown
    assert html.count('href="https://news.example.net/world/ankara-talks"') == 3
    again = await notifier.send_digest(digest_of(1))
    assert again.detail.startswith("accepted")
    assert recorder.messages[1].message["Message-ID"] == message["Message-ID"]
