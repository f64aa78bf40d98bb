"""The composition root: builds the shared parts once and runs polling and delivery.

Nothing here is global: the HTTP session, the store, the extractor, the notifiers and the
relay are made in ``Daemon.open`` and handed to the stages that use them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config import (
    Config,
    ConsoleNotifierConfig,
    FeedConfig,
    NotifierConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
)
from monitor.deliver import Relay, RetryPolicy
from monitor.fetch import Fetcher, make_session
from monitor.log import log_event
from monitor.metrics import MeasuredExtractor
from monitor.models import PollResult
from monitor.notify.base import Notifier
from monitor.notify.console import ConsoleNotifier
from monitor.notify.email import EmailNotifier
from monitor.notify.slack import SlackNotifier
from monitor.notify.webhook import WebhookNotifier
from monitor.pipeline import Pipeline
from monitor.service import Service
from monitor.store import Store

log = logging.getLogger("newsmon.daemon")
TICK = 1.0  # how often the scheduler looks for due feeds, seconds
ONCE_DELIVERY_DEADLINE = 60.0


def build_notifier(cfg: NotifierConfig, session: aiohttp.ClientSession) -> Notifier:
    if isinstance(cfg, ConsoleNotifierConfig):
        return ConsoleNotifier(cfg.name)
    if isinstance(cfg, WebhookNotifierConfig):
        return WebhookNotifier(cfg.name, cfg.url, session, secret=cfg.secret, timeout=cfg.timeout)
    if isinstance(cfg, SlackNotifierConfig):
        return SlackNotifier(cfg.name, cfg.url, session, timeout=cfg.timeout)
    return EmailNotifier(
        cfg.name,
        host=cfg.host,
        port=cfg.port,
        security=cfg.security,
        username=cfg.username,
        password=cfg.password,
        sender=cfg.sender,
        to=cfg.to,
        timeout=cfg.timeout,
    )


@dataclass
class Daemon:
    config: Config
    store: Store
    pipeline: Pipeline
    relay: Relay
    clock: Callable[[], float]
    service: Service  # sd_notify, watchdog, STATUS= and metrics

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> AsyncIterator[Daemon]:
        """Everything the daemon needs, closed again on exit. ``notifiers`` replaces the
        ones the watchlist names (for tests and ``notify-test``)."""
        m = config.monitor
        async with AsyncExitStack() as stack:
            store = await Store.open(m.database, durability=m.durability)
            stack.push_async_callback(store.close)
            session = make_session(
                concurrency=m.concurrency, per_host=m.per_host, user_agent=m.user_agent
            )
            stack.push_async_callback(session.close)
            service = Service.from_environment()
            stack.callback(service.close)
            extractor = MeasuredExtractor(
                service.metrics, workers=m.extract_workers, timeout=m.extract_timeout
            )
            stack.callback(extractor.close)
            if notifiers is None:
                notifiers = {n: build_notifier(c, session) for n, c in config.notifiers.items()}
            for notifier in notifiers.values():
                stack.push_async_callback(notifier.close)
            now = clock()
            await store.recover_sending(now)
            await store.cancel_deliveries(notifiers, now)
            relay = Relay(store, notifiers, policy=retry or RetryPolicy(), clock=clock)
            pipeline = Pipeline(store, Fetcher(session, timeout=m.timeout), extractor, clock=clock)
            yield cls(config, store, pipeline, relay, clock, service)

    def _enabled(self) -> dict[str, FeedConfig]:
        return {f.url: f for f in self.config.feeds if f.enabled}

    async def _sync_feeds(self, spread: float) -> None:
        feeds = self._enabled()
        await self.store.sync_feeds({u: f.name for u, f in feeds.items()}, self.clock(), spread)

    async def poll(self, feeds: list[FeedConfig]) -> list[PollResult]:
        """Poll these feeds concurrently, then wake the relay for what they found."""
        results = await asyncio.gather(*(self.pipeline.poll(f, self.config) for f in feeds))
        self.service.metrics.record_polls(results)
        if any(r.hits for r in results):
            self.relay.wake()
        return list(results)

    async def run_once(self, delivery_deadline: float = ONCE_DELIVERY_DEADLINE) -> None:
        """Poll every enabled feed now, then deliver what is due, retrying transient
        failures for up to ``delivery_deadline`` seconds."""
        await self._sync_feeds(spread=0.0)
        await self.poll(list(self._enabled().values()))
        try:
            async with asyncio.timeout(delivery_deadline):
                await self.relay.run(until_empty=True)
        except TimeoutError:
            left = await self.store.open_deliveries()
            log_event(log, logging.WARNING, "deliveries_left", pending=left)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll each feed when due (the due times live in the database, so a restart
        neither re-polls everything nor forgets a backoff) until ``stop`` is set."""
        interval = min((f.interval for f in self.config.feeds), default=600.0)
        await self._sync_feeds(spread=min(interval, 60.0))
        in_flight: set[str] = set()
        tasks: set[asyncio.Task[list[PollResult]]] = set()

        async def tick() -> None:
            feeds = self._enabled()
            due = await self.store.due_feeds(feeds, self.clock())
            batch = [feeds[url] for url in due if url not in in_flight]
            if not batch:
                return
            in_flight.update(f.url for f in batch)
            task = asyncio.create_task(self.poll(batch))
            tasks.add(task)

            def finished(done: asyncio.Task[list[PollResult]]) -> None:
                tasks.discard(done)
                in_flight.difference_update(f.url for f in batch)

            task.add_done_callback(finished)

        scheduler = AsyncIOScheduler()
        scheduler.add_job(tick, "interval", seconds=TICK, max_instances=1, coalesce=True)
        relay = asyncio.create_task(self.relay.run(), name="relay")
        scheduler.start()
        log_event(log, logging.INFO, "started", feeds=len(self._enabled()))
        try:
            async with self.service.running(self.store, lambda: self.config):
                await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            relay.cancel()
            for task in tasks:
                task.cancel()
            with suppress(asyncio.CancelledError):
                await asyncio.gather(relay, *tasks, return_exceptions=True)
            log_event(log, logging.INFO, "stopped")


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM (systemd) and SIGINT (Ctrl-C) end the daemon cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
