"""`[[rules]] max_per_hour`: past the cap, one summary per destination and rule an hour
instead of a storm (RELIABILITY.md case 28), through the real pipeline, store and relay."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.models import Alert, Digest
from monitor.notify.email import render_digest_email
from monitor.notify.render import digest_text
from monitor.notify.slack import render_slack_digest
from tests.outbox import ManualClock
from tests.servers import Item, Publisher, Receiver
from tests.watchlists import watchlist

HOUR = 3600.0


@pytest.fixture
async def desk() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


def storm_watchlist(publisher: Publisher, hook: Receiver, desk: Receiver, cap: int) -> str:
    text = watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"],
        hook=hook.url,
        extra=f'[notifiers.desk]\ntype = "webhook"\nurl = "{desk.url}"\n',
    )
    return text.replace('notify = ["hook"]', f'notify = ["hook", "desk"]\nmax_per_hour = {cap}')


def stories(prefix: str, count: int) -> list[Item]:
    return [Item(f"Russia's embassy statement {prefix}{i}", f"/{prefix}{i}") for i in range(count)]


def alerts(server: Receiver) -> list[str]:
    return [r.body["title"] for r in server.accepted if "title" in r.body]


def summaries(server: Receiver) -> list[dict[str, object]]:
    return [r.body for r in server.accepted if r.body.get("storm")]


async def test_past_the_cap_three_alerts_then_one_summary_and_the_next_hour_starts_afresh(
    publisher: Publisher, receiver: Receiver, desk: Receiver, write_watchlist
) -> None:
    """max_per_hour = 3 and 10 matching entries in one poll: each destination gets 3
    alerts, then (when the hour is over) one summary of the other 7; all 10 are stored;
    a poll an hour later alerts 3 again."""
    publisher.rss_items = stories("a", 10)
    path = write_watchlist(storm_watchlist(publisher, receiver, desk, cap=3))
    clock = ManualClock(time.time())
    async with Daemon.open(load_config(path), clock=clock) as daemon:
        await daemon.run_once(delivery_deadline=20)
        for server in (receiver, desk):
            assert len(alerts(server)) == 3
            assert summaries(server) == []  # still gathering: run --once did not wait
        assert len(await daemon.store.hits(rule="russia-embassy", since=0)) == 10

        clock.advance(HOUR)
        publisher.rss_items = stories("b", 10)
        await daemon.run_once(delivery_deadline=20)
    for server in (receiver, desk):
        (summary,) = summaries(server)
        assert summary["rule"] == "russia-embassy"
        assert summary["count"] == 7
        assert "7 more stories in the last hour" in str(summary["text"])
        assert "newsmon hits --rule russia-embassy" in str(summary["text"])
        shown = [h["title"] for h in summary["hits"]]  # type: ignore[attr-defined]
        assert len(shown) == 5
        sent = alerts(server)
        assert len(sent) == 6  # 3 from each hour
        assert len(set(sent) | set(shown)) == 11  # never a story twice
        assert sum(t.endswith(tuple(f"b{i}" for i in range(10))) for t in sent) == 3


async def test_the_cap_counts_a_rule_across_all_feeds(
    publisher: Publisher, receiver: Receiver, desk: Receiver, write_watchlist
) -> None:
    """Two feeds with two matching stories each and max_per_hour = 3: 3 alerts in all,
    and the fourth story waits for the summary."""
    publisher.rss_items = stories("r", 2)
    publisher.atom_items = stories("t", 2)
    path = write_watchlist(storm_watchlist(publisher, receiver, desk, cap=3))
    clock = ManualClock(time.time())
    async with Daemon.open(load_config(path), clock=clock) as daemon:
        await daemon.run_once(delivery_deadline=20)
        assert len(alerts(receiver)) == 3
        clock.advance(HOUR)
        await daemon.relay.run(until_empty=True)
    (summary,) = summaries(receiver)
    assert summary["count"] == 1


def storm_digest(count: int) -> Digest:
    alerts = tuple(
        Alert(
            f"d{i}",
            f"h{i}",
            "embassy",
            f"Title <{i}>",
            f"https://example.org/{i}",
            "Wire",
            None,
            ("Russia",),
            "",
        )
        for i in range(min(count, 5))
    )
    return Digest("dg", "desk", alerts, "embassy", count)


def test_summary_renders_in_every_channel() -> None:
    """Slack, email and text say the count, the command and the first titles; Slack
    escapes the titles."""
    digest = storm_digest(57)
    slack = render_slack_digest(digest)
    assert "embassy: 57 more stories in the last hour" in slack["blocks"][0]["text"]["text"]
    body = str(slack["blocks"])
    assert "Title &lt;0&gt;" in body
    assert "…and 52 more" in body
    email = render_digest_email(digest, sender="n@example.org", to=("d@example.org",),
                                date=datetime.now(UTC))  # fmt: skip
    assert email["Subject"].startswith("[newsmon] embassy: 57 more stories")
    assert "…and 52 more" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    text = digest_text(digest)
    assert text.splitlines()[0].endswith("newsmon hits --rule embassy")
    assert "https://example.org/4" in text
    assert "…and 52 more" in text
