"""Prometheus metrics, served over HTTP on the daemon's own event loop.

Two kinds. Events this process saw (polls, new entries, extraction time) are counted in
memory, reset by a restart as Prometheus expects. What the database holds (hits by rule,
deliveries by state, feed health) is read from SQLite at each scrape, so it is true across
restarts and agrees with `newsmon status`. Each Metrics has a CollectorRegistry of its
own: no process-global registry, so two daemons in one test process never share counts.

The counts are plain numbers, and prometheus_client and aiohttp's server are imported at
the first scrape: a daemon without ``[monitor] metrics`` (a restart setting) never loads
them (1 to 2 MB; docs/performance.md, memory).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from monitor.errors import NewsmonError
from monitor.extract import Extractor
from monitor.log import log_event
from monitor.models import Extracted, PollResult
from monitor.status import StatusReport
from monitor.urls import without_password
from monitor.workers import WorkerPool

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

log = logging.getLogger("newsmon.metrics")
OUTCOMES = ("ok", "not_modified", "error")
HEALTH_TIMEOUT = 5.0
# extraction takes ~13 ms a page; the tail up to the default 10 s budget is what matters
EXTRACTION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Histogram:
    """One label's observations: counts per bucket (not cumulative) and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(EXTRACTION_BUCKETS) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(EXTRACTION_BUCKETS, value)] += 1  # le: bound included
        self.total += value

    def buckets(self, bounds: list[str]) -> list[tuple[str, float]]:
        """Cumulative, as the exposition format wants them, labelled ``bounds``."""
        running, out = 0, []
        for bound, count in zip(bounds, self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class _Seen:
    """What this process saw, as metric families."""

    def __init__(self) -> None:
        self.polls = Counter(dict.fromkeys(OUTCOMES, 0))
        self.feed_errors: Counter[str] = Counter()
        self.entries = 0
        self.extraction: dict[str, _Histogram] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        polls = CounterMetricFamily("newsmon_polls", "Feed polls, by outcome.", labels=["outcome"])
        for outcome, count in self.polls.items():
            polls.add_metric([outcome], count)
        yield polls
        errors = CounterMetricFamily(
            "newsmon_feed_errors", "Failed polls, by feed URL.", labels=["feed"]
        )
        for feed, count in sorted(self.feed_errors.items()):
            errors.add_metric([feed], count)
        yield errors
        yield CounterMetricFamily("newsmon_entries", "New feed entries stored.", self.entries)
        extraction = HistogramMetricFamily(
            "newsmon_extraction_seconds",
            "Time to extract an article's text (queueing for a worker included), by result.",
            labels=["status"],
        )
        bounds = [*map(floatToGoString, EXTRACTION_BUCKETS), "+Inf"]
        for status, histogram in sorted(self.extraction.items()):
            extraction.add_metric([status], histogram.buckets(bounds), histogram.total)
        yield extraction


class _Stored:
    """The database's side of the metrics: the last snapshot, as metric families."""

    def __init__(self) -> None:
        self.report: StatusReport | None = None
        self.deliveries: dict[tuple[str, str], int] = {}
        self.hits: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        hits = CounterMetricFamily(
            "newsmon_hits", "Hits stored in the database, by rule.", labels=["rule"]
        )
        for rule, count in sorted(self.hits.items()):
            hits.add_metric([rule], count)
        yield hits
        deliveries = GaugeMetricFamily(
            "newsmon_deliveries",
            "Deliveries in the outbox, by destination and state.",
            labels=["notifier", "state"],
        )
        depth = GaugeMetricFamily(
            "newsmon_outbox_depth",
            "Open deliveries (pending or being sent), by destination.",
            labels=["notifier"],
        )
        open_by_notifier: dict[str, int] = {}
        for (notifier, state), count in sorted(self.deliveries.items()):
            deliveries.add_metric([notifier, state], count)
            open_by_notifier.setdefault(notifier, 0)
            if state in ("pending", "sending"):
                open_by_notifier[notifier] += count
        for notifier, count in open_by_notifier.items():
            depth.add_metric([notifier], count)
        yield deliveries
        yield depth
        if self.report is None:
            return
        yield from _report_families(self.report)


def _report_families(report: StatusReport) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    feeds = GaugeMetricFamily(
        "newsmon_feeds", "Feeds in the watchlist, by health.", labels=["health"]
    )
    for health, count in (
        ("healthy", report.feeds_healthy),
        ("failing", report.feeds_failing),
        ("new", report.feeds_new),
        ("disabled", report.feeds_disabled),
    ):
        feeds.add_metric([health], count)
    yield feeds
    if report.last_poll_at is not None:
        yield GaugeMetricFamily(
            "newsmon_last_poll_timestamp_seconds",
            "When a feed was last polled, Unix time.",
            value=report.last_poll_at,
        )
    paused = GaugeMetricFamily(
        "newsmon_destination_paused",
        "1 for a destination paused after repeated refusals (newsmon resume NAME).",
        labels=["notifier"],
    )
    for notifier in report.paused:
        paused.add_metric([notifier], 1)
    yield paused
    yield GaugeMetricFamily(
        "newsmon_notices_pending",
        "Operational notices (a feed gone or failing, a destination paused) not yet sent.",
        value=report.notices_pending,
    )
    yield GaugeMetricFamily(
        "newsmon_database_bytes", "Size of the database and its WAL.", value=report.database_bytes
    )
    yield GaugeMetricFamily(
        "newsmon_disk_free_bytes",
        "Free space on the database's file system.",
        value=report.disk_free_bytes,
    )


class Metrics:
    """newsmon's metrics. ``record_*`` calls are cheap and always on; serving them over
    HTTP is what ``[monitor] metrics`` turns on."""

    def __init__(self) -> None:
        self._seen = _Seen()
        self._stored = _Stored()
        self._registry: CollectorRegistry | None = None  # at the first exposition

    def record_polls(self, results: Iterable[PollResult]) -> None:
        seen = self._seen
        for result in results:
            seen.polls[result.outcome] += 1
            seen.entries += result.new_entries
            if result.outcome == "error":
                seen.feed_errors[without_password(result.feed_url)] += 1

    def record_extraction(self, seconds: float, result: Extracted) -> None:
        histogram = self._seen.extraction.setdefault(result.status.value, _Histogram())
        histogram.observe(seconds)

    def update(
        self, report: StatusReport, deliveries: dict[tuple[str, str], int], hits: dict[str, int]
    ) -> None:
        """The database snapshot the next exposition shows."""
        self._stored.report = report
        self._stored.deliveries = deliveries
        self._stored.hits = hits

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry()
            self._registry.register(self._seen)
            self._registry.register(self._stored)
        return generate_latest(self._registry)


class MeasuredExtractor(Extractor):
    """An Extractor that records how long each page took in ``metrics``."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        timeout: float,
        pool: WorkerPool,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(timeout=timeout, pool=pool)
        self._metrics = metrics
        self._perf = perf

    async def extract(
        self, html: bytes, url: str | None, *, budget: float | None = None
    ) -> Extracted:
        started = self._perf()
        result = await super().extract(html, url, budget=budget)
        self._metrics.record_extraction(self._perf() - started, result)
        return result


@asynccontextmanager
async def serve_metrics(
    metrics: Metrics,
    host: str,
    port: int,
    *,
    refresh: Callable[[], Awaitable[None]],
    health: Callable[[], Awaitable[object]],
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``/metrics`` (after ``refresh()``) and ``/healthz`` (200 while ``health()``
    answers in time, else 503) on host:port; yields the address actually bound (port 0
    picks a free one). Raises NewsmonError when the address cannot be bound."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST

    async def scrape(request: web.Request) -> web.Response:
        await refresh()
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await health()
        except Exception:  # any failure to answer is "unhealthy"
            return web.Response(status=503, text="database does not answer\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            raise NewsmonError(
                f"cannot serve metrics on {host}:{port}: {e.strerror or e}"
            ) from None
        bound = runner.addresses[0]
        log_event(log, logging.INFO, "metrics_listening", address=f"{bound[0]}:{bound[1]}")
        yield bound[0], bound[1]
    finally:
        await runner.cleanup()
