"""The Prometheus endpoint: real counts after a real daemon run against local servers."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.errors import ConfigError, NewsmonError
from monitor.metrics import Metrics, serve_metrics
from monitor.models import BodyStatus, Extracted, PollResult
from monitor.store import Store
from tests.daemon import forever
from tests.outbox import eventually
from tests.servers import Item, Publisher, Receiver
from tests.watchlists import watchlist

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """(sample name, sorted labels) -> value, parsed by prometheus_client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(session: aiohttp.ClientSession, base: str) -> Samples:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(await response.text())


@pytest.fixture
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process daemon must not talk to a service manager running these tests."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("quiet_environment")
async def test_endpoint_serves_real_counts_after_a_run(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """After the daemon polls a local feed and delivers one alert, /metrics counts the
    poll, the entries, the hit by rule, the sent delivery, an empty queue and a healthy
    feed; /healthz says ok."""
    publisher.rss_items = [
        Item("Embassy row", "/x", summary="Russia recalls staff from its embassy."),
        Item("Weather", "/w", summary="Rain."),
    ]
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    path = write_watchlist(text.replace("[monitor]\n", '[monitor]\nmetrics = "127.0.0.1:0"\n'))
    async with (
        Daemon.open(load_config(path)) as daemon,
        forever(daemon),
        aiohttp.ClientSession() as session,
    ):
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        address = daemon.service.metrics_address
        assert address is not None
        base = f"http://{address[0]}:{address[1]}"
        scraped: list[Samples] = []

        async def counts_the_sent_delivery() -> bool:
            scraped.append(await scrape(session, base))
            sent = ("newsmon_deliveries", (("notifier", "hook"), ("state", "sent")))
            return scraped[-1].get(sent) == 1

        await eventually(counts_the_sent_delivery, timeout=30)
        got = scraped[-1]
        async with session.get(f"{base}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok\n")
    assert got[("newsmon_polls_total", (("outcome", "ok"),))] == 1
    assert got[("newsmon_polls_total", (("outcome", "error"),))] == 0
    assert got[("newsmon_entries_total", ())] == 2
    assert got[("newsmon_hits_total", (("rule", "russia-embassy"),))] == 1
    assert got[("newsmon_outbox_depth", (("notifier", "hook"),))] == 0
    assert got[("newsmon_feeds", (("health", "healthy"),))] == 1
    assert got[("newsmon_feeds", (("health", "failing"),))] == 0
    assert got[("newsmon_last_poll_timestamp_seconds", ())] > 0
    assert got[("newsmon_database_bytes", ())] > 0
    assert got[("newsmon_notices_pending", ())] == 0


def test_counters_count_polls_errors_and_extraction_by_outcome() -> None:
    """Poll outcomes, feed errors by feed (no password in a label) and extraction times
    by result add up."""
    metrics = Metrics()
    metrics.record_polls(
        [
            PollResult("https://a.example/rss", "ok", new_entries=3, hits=1),
            PollResult("https://a.example/rss", "not_modified"),
            PollResult("https://b.example/rss", "error", error="timeout"),
            PollResult("https://u:s3cretpw@c.example/rss", "error", error="HTTP 500"),
        ]
    )
    metrics.record_extraction(0.02, Extracted("text", BodyStatus.EXTRACTED))
    metrics.record_extraction(10.0, Extracted("", BodyStatus.TIMEOUT, "over budget"))
    got = samples(metrics.exposition().decode())
    assert got[("newsmon_polls_total", (("outcome", "ok"),))] == 1
    assert got[("newsmon_polls_total", (("outcome", "not_modified"),))] == 1
    assert got[("newsmon_polls_total", (("outcome", "error"),))] == 2
    assert got[("newsmon_feed_errors_total", (("feed", "https://b.example/rss"),))] == 1
    # a basic-auth password in a feed URL is not a label: Prometheus would keep it
    assert got[("newsmon_feed_errors_total", (("feed", "https://u:***@c.example/rss"),))] == 1
    assert "s3cretpw" not in metrics.exposition().decode()
    assert ("newsmon_feed_errors_total", (("feed", "https://a.example/rss"),)) not in got
    assert got[("newsmon_entries_total", ())] == 3
    assert got[("newsmon_extraction_seconds_count", (("status", "extracted"),))] == 1
    assert got[("newsmon_extraction_seconds_bucket", (("le", "0.025"), ("status", "extracted")))]
    assert got[("newsmon_extraction_seconds_sum", (("status", "timeout"),))] == 10.0


def test_each_daemon_has_its_own_registry() -> None:
    """Two Metrics never share a count: there is no process-global registry."""
    first, second = Metrics(), Metrics()
    first.record_polls([PollResult("https://a.example/rss", "ok")])
    got = samples(second.exposition().decode())
    assert got[("newsmon_polls_total", (("outcome", "ok"),))] == 0


@pytest.fixture
async def closed_store(tmp_path: Path) -> Store:
    store = await Store.open(tmp_path / "newsmon.db")
    await store.close()
    return store


async def test_healthz_is_503_when_the_database_does_not_answer(closed_store: Store) -> None:
    """/healthz answers 503, not 200 and not a crash, once the database is gone."""

    async def nothing() -> None:
        return None

    async with (
        serve_metrics(Metrics(), "127.0.0.1", 0, refresh=nothing, health=closed_store.ping) as (
            host,
            port,
        ),
        aiohttp.ClientSession() as session,
        session.get(f"http://{host}:{port}/healthz") as response,
    ):
        assert response.status == 503


async def test_a_taken_port_is_a_clear_error() -> None:
    """Metrics on an address already in use fail start-up with our own message."""

    async def nothing() -> None:
        return None

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NewsmonError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            async with serve_metrics(Metrics(), "127.0.0.1", port, refresh=nothing, health=nothing):
                pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0))],
    ids=["ipv4", "ipv6-any-port"],
)
def test_metrics_address_is_read_from_the_watchlist(
    tmp_path: Path, value: str, expected: tuple[str, int]
) -> None:
    """`[monitor] metrics` takes host:port, IPv6 in brackets."""
    path = tmp_path / "newsmon.toml"
    path.write_text(f'[monitor]\nmetrics = "{value}"\n', encoding="utf-8")
    assert load_config(path).monitor.metrics == expected


@pytest.mark.parametrize("value", ["9464", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_bad_metrics_address_names_the_key(tmp_path: Path, value: str) -> None:
    """A malformed address is a configuration error at monitor.metrics."""
    path = tmp_path / "newsmon.toml"
    path.write_text(f'[monitor]\nmetrics = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^monitor\.metrics: expected"):
        load_config(path)


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    """No `metrics` key, no listener."""
    path = tmp_path / "newsmon.toml"
    path.write_text("[monitor]\n", encoding="utf-8")
    assert load_config(path).monitor.metrics is None
