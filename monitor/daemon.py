"""The composition root: builds the shared parts once and runs polling and delivery.

Nothing here is global: the HTTP session, the store, the extractor, the notifiers and the
relay are made in ``Daemon.open`` and handed to the stages that use them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import notices
from monitor.clock_watch import JUMP_TOLERANCE, ClockWatch
from monitor.config import (
    Config,
    ConsoleNotifierConfig,
    FeedConfig,
    NotifierConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
    config_warnings,
    load_config,
    require_runnable,
)
from monitor.deliver import Relay, RetryPolicy
from monitor.durations import span
from monitor.errors import ConfigError, StoreError
from monitor.fetch import fetcher_for, make_session
from monitor.log import log_event
from monitor.metrics import MeasuredExtractor
from monitor.models import LanePolicy, PollResult
from monitor.notify.base import Notifier
from monitor.notify.console import ConsoleNotifier
from monitor.notify.slack import SlackNotifier
from monitor.notify.webhook import WebhookNotifier
from monitor.pipeline import Pipeline
from monitor.sdnotify import extending_start
from monitor.service import Service
from monitor.storage_pause import StoragePause
from monitor.store import REMOVED, Store
from monitor.workers import WorkerPool

log = logging.getLogger("newsmon.daemon")
TICK = 1.0  # how often the scheduler looks for due feeds, seconds
PRUNE_EVERY = 6 * 3600.0  # how often article text past its retention is dropped, seconds
SILENCE_EVERY = 900.0  # how often feeds are checked for silence, seconds
ONCE_DELIVERY_DEADLINE = 60.0


def build_notifier(cfg: NotifierConfig, session: aiohttp.ClientSession) -> Notifier:
    """The notifier ``cfg`` describes; email's (aiosmtplib, the email package) is imported
    only for a watchlist that names one, at start or on a reload (docs/performance.md,
    memory)."""
    if isinstance(cfg, ConsoleNotifierConfig):
        return ConsoleNotifier(cfg.name)
    if isinstance(cfg, WebhookNotifierConfig):
        return WebhookNotifier(cfg.name, cfg.url, session, secret=cfg.secret, timeout=cfg.timeout)
    if isinstance(cfg, SlackNotifierConfig):
        return SlackNotifier(cfg.name, cfg.url, session, timeout=cfg.timeout)
    from monitor.notify.email import EmailNotifier

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


class Daemon:
    """The running newsmon: polls, delivers, and swaps in a new watchlist on reload."""

    def __init__(
        self,
        config: Config,
        store: Store,
        session: aiohttp.ClientSession,
        pipeline: Pipeline,
        *,
        clock: Callable[[], float],
        retry: RetryPolicy,
        notifiers: Mapping[str, Notifier] | None,
        service: Service,
        workers: WorkerPool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._monotonic = monotonic  # to tell the wall clock's jumps (monitor/clock_watch.py)
        self._silences: set[tuple[str, int]] = set()  # (feed, silence number) logged
        self._workers = workers
        self.service = service  # sd_notify, watchdog, STATUS= and metrics
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self._session = session
        self._retry = retry
        self._fixed_notifiers = notifiers is not None
        self._started = config.monitor  # what the _RESTART_KEYS were made from
        self._notifiers: Mapping[str, Notifier] = notifiers or self._build_notifiers(config)
        self.relay = self._make_relay()
        self._relay_task: asyncio.Task[None] | None = None
        # Polls in flight, at most as many as fetches may be: 10,000 polls started at once
        # each held a coroutine, its state and, once fetched, its body while waiting for a
        # fetch slot (docs/performance.md, memory). ``concurrency`` needs a restart.
        self._polls = asyncio.Semaphore(config.monitor.concurrency)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> AsyncIterator[Daemon]:
        """Everything the daemon needs, closed again on exit. ``notifiers`` replaces the
        ones the watchlist names (for tests and ``notify-test``); a test that moves
        ``clock`` moves ``monotonic`` with it, or the daemon takes it for a clock jump."""
        m = config.monitor
        async with AsyncExitStack() as stack:
            service = Service.from_environment()
            stack.callback(service.close)
            upgrading = partial(extending_start, service.notifier)
            store = await Store.open(m.database, durability=m.durability, upgrading=upgrading)
            stack.push_async_callback(store.close)
            session = make_session(user_agent=m.user_agent)
            stack.push_async_callback(session.close)
            # one pool of worker processes parses feeds and extracts pages; a worker loads
            # trafilatura (twice its memory) for its first page (docs/performance.md)
            pool = WorkerPool(
                workers=m.extract_workers, warm_up=partial(import_module, "monitor.parse")
            )
            stack.callback(pool.close)
            extractor = MeasuredExtractor(service.metrics, timeout=m.extract_timeout, pool=pool)
            pipeline = Pipeline(store, fetcher_for(session, m), extractor, pool, clock=clock)
            daemon = cls(
                config, store, session, pipeline, clock=clock, retry=retry or RetryPolicy(),
                notifiers=notifiers, service=service, workers=pool, monotonic=monotonic,
            )  # fmt: skip
            stack.push_async_callback(daemon._close_notifiers)
            stack.push_async_callback(daemon._stop_relay)
            now = clock()
            recovered = await store.recover_sending(now)
            if recovered:  # in flight when the last run died: the destination may have it
                log_event(
                    log, logging.WARNING, "deliveries_recovered", count=recovered,
                    note="in flight at a crash, sent again: maybe twice",
                )  # fmt: skip
            await daemon._cancel_removed()
            latest = await store.latest_write()
            if latest is not None and latest - now > JUMP_TOLERANCE:
                await daemon._shift_schedule(now - latest)  # stepped back while we were down
            _log_warnings(config)
            yield daemon

    async def _shift_schedule(self, jump: float) -> None:
        """The wall clock jumped: move every stored wait with it (RELIABILITY.md case 62)."""
        await self.store.shift_schedule(jump)
        log_event(log, logging.WARNING, "clock_jumped", by=f"{jump:+.0f}s", waits="moved")
        self.relay.shift(jump)  # the lanes' own waits; they read their next times again

    async def check_silence(self) -> None:
        """Feeds silent far beyond their rhythm (monitor/notices.py): logged once per
        silence by this process, and a notice to ``[monitor] notices``."""
        config, now = self.config, self.clock()
        silences = set()
        for silent in await notices.silent_feeds(self.store, now):
            feed = config.enabled.get(silent.url)
            if feed is None:
                continue
            silences.add((silent.url, silent.beats))
            shown = feed.titled(silent.title)
            if (silent.url, silent.beats) not in self._silences:
                log_event(
                    log, logging.WARNING, "feed_silent", feed=shown,
                    quiet_for=span(now - silent.since), usual=span(silent.rhythm),
                )  # fmt: skip
            raised = await notices.feed_silent(
                self.store, config.monitor.notices, silent, label=shown, now=now
            )
            if raised:
                self.relay.wake()
        self._silences = silences

    def _build_notifiers(self, config: Config, keep: Config | None = None) -> dict[str, Notifier]:
        """Raises ConfigError naming the notifier that cannot be made from what the
        watchlist's check let through, so that a reload keeps the running watchlist.
        A notifier configured as in ``keep`` is the running one, lane and all."""
        built = {}
        for name, cfg in config.notifiers.items():
            if keep is not None and keep.notifiers.get(name) == cfg:
                built[name] = self._notifiers[name]
                continue
            try:
                built[name] = build_notifier(cfg, self._session)
            except ValueError as e:
                raise ConfigError(f"notifiers.{name}", str(e)) from None
        return built

    def _make_relay(self) -> Relay:
        return Relay(
            self.store, self._notifiers, policy=self._retry, clock=self.clock,
            lanes=_lanes(self.config),
            notices=lambda: self.config.monitor.notices,
        )  # fmt: skip

    async def _close_notifiers(self) -> None:
        for notifier in self._notifiers.values():
            await notifier.close()

    async def _sync_feeds(self, config: Config, spread: float) -> None:
        feeds = config.enabled
        await self.store.sync_feeds({u: f.name for u, f in feeds.items()}, self.clock(), spread)

    async def poll(self, feeds: list[FeedConfig]) -> list[PollResult]:
        """Poll these feeds concurrently, then wake the relay for what they found."""
        config = self.config  # one watchlist for the whole batch, even across a reload

        results: dict[int, PollResult] = {}
        queue = enumerate(feeds)
        refused: list[Exception] = []

        async def worker() -> None:  # a few workers, not a task per feed
            for i, feed in queue:
                if refused:
                    return  # the database refuses writes: the rest stay due, unfetched
                async with self._polls:
                    try:
                        results[i] = await self.pipeline.poll(feed, config)
                    except (StoreError, sqlite3.Error) as e:
                        refused.append(e)

        workers = min(len(feeds), config.monitor.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        polled = [results[i] for i in sorted(results)]
        self.service.metrics.record_polls(polled)
        if any(r.hits or r.outcome == "error" for r in polled):  # an error may raise a notice
            self.relay.wake()
        if refused:
            raise StoreError(f"cannot store a poll: {refused[0]}") from refused[0]
        if self.config is not config:  # reloaded meanwhile: the batch queued alerts for
            await self._cancel_removed()  # the notifiers it had, removed ones included
        return polled

    async def _cancel_removed(self) -> None:
        """Open deliveries to notifiers no longer in the watchlist end 'cancelled'."""
        cancelled = await self.store.cancel_deliveries(self._notifiers, self.clock())
        if cancelled:
            log_event(
                log, logging.WARNING, "deliveries_cancelled", count=cancelled,
                reason=REMOVED,
            )  # fmt: skip

    async def run_once(self, delivery_deadline: float = ONCE_DELIVERY_DEADLINE) -> None:
        """Poll every enabled feed now, then deliver what is due, retrying transient
        failures for up to ``delivery_deadline`` seconds."""
        await self._sync_feeds(self.config, spread=0.0)
        feeds = self.config.enabled
        due = await self.store.due_feeds(feeds, self.clock(), force=True)
        await self.poll([feeds[url] for url in due])
        try:
            async with asyncio.timeout(delivery_deadline):
                await self.relay.run(until_empty=True)
        except TimeoutError:
            left = await self.store.open_deliveries()
            log_event(log, logging.WARNING, "deliveries_left", pending=left)

    async def prune(self) -> None:
        """Forget the text of entries past ``retention`` (and their band keys past the
        clustering window); keys and hits stay, so a story still in a feed never alerts
        again."""
        m = self.config.monitor
        cleared = await self.store.prune(self.clock(), m.retention, m.cluster_window)
        if cleared:
            log_event(log, logging.INFO, "pruned", bodies=cleared)

    async def reload(self) -> bool:
        """Read the watchlist again and apply it; a bad one changes nothing and is logged
        with its key path, so an editing mistake never takes the daemon down."""
        try:
            config = await asyncio.to_thread(load_config, self.config.path)
            require_runnable(config)
            await self.apply(config)
        except ConfigError as e:
            log_event(log, logging.ERROR, "reload_failed", path=self.config.path, error=str(e))
            return False
        except (StoreError, sqlite3.Error) as e:  # RELIABILITY.md case 58: try again later
            log_event(
                log, logging.ERROR, "reload_failed", path=self.config.path,
                error=f"the database refuses writes: {e}",
            )  # fmt: skip
            return False
        return True

    async def apply(self, config: Config) -> None:
        """Switch to ``config``: new feeds are scheduled (spread out), removed ones stop,
        changed rules apply to the next entries, and the delivery lanes of changed or
        removed notifiers restart, cancelling what was queued for a removed one (the
        others go on sending). The new notifiers are made and the feeds stored first: a
        notifier that cannot be made (ConfigError) or a database that refuses the feeds
        leaves the old watchlist running."""
        renotify = config.notifiers != self.config.notifiers and not self._fixed_notifiers
        notifiers = self._build_notifiers(config, keep=self.config) if renotify else None
        await self._sync_feeds(config, spread=_spread(config))
        old, self.config = self.config, config
        self.pipeline.adopt(config.monitor)
        if old.monitor.fetch_articles and not config.monitor.fetch_articles and self._workers:
            self._workers.renew()  # fresh workers: no trafilatura, unused from now on
        if notifiers is not None:
            cut = await self.relay.replace(notifiers, _lanes(config), STOP_GRACE)
            for name in cut:
                await self._recover(name)
            for name, notifier in self._notifiers.items():
                if notifiers.get(name) is not notifier:
                    await notifier.close()
            self._notifiers = notifiers
            await self._cancel_removed()
        # against what runs, not the last watchlist: a change and its undoing is no restart
        running, wanted = self._started, config.monitor
        fixed = [k for k in _RESTART_KEYS if getattr(running, k) != getattr(wanted, k)]
        if fixed:
            log_event(log, logging.WARNING, "restart_needed", keys=",".join(fixed))
        _log_warnings(config, old)
        log_event(
            log, logging.INFO, "reloaded", feeds=len(self.config.enabled), rules=len(config.rules),
            notifiers=len(config.notifiers),
        )  # fmt: skip

    def _start_relay(self) -> None:
        self._relay_task = asyncio.create_task(self.relay.run(), name="relay")

    async def _stop_relay(self) -> None:
        """Let lanes finish the attempt in hand, within a bound; then recover any row a
        forced cancel left in 'sending'."""
        task, self._relay_task = self._relay_task, None
        if task is None:
            return
        self.relay.stop()
        try:
            async with asyncio.timeout(STOP_GRACE):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await self._recover()

    async def _recover(self, notifier: str | None = None) -> None:
        """Put back the rows a lane cut off mid-send left in 'sending' (of ``notifier``,
        or of all): pending again, the destination may get one of them twice."""
        cut = await self.store.recover_sending(self.clock(), notifier=notifier)
        fields = {} if notifier is None else {"notifier": notifier}
        log_event(
            log, logging.WARNING, "deliveries_interrupted", **fields, count=cut,
            after=f"{STOP_GRACE:g}s",
        )  # fmt: skip

    async def run_forever(self, stop: asyncio.Event, reload: asyncio.Event) -> None:
        """Poll each feed when due (the due times live in the database, so a restart
        neither re-polls everything nor forgets a backoff) until ``stop`` is set; reload
        the watchlist when ``reload`` is set or the file changes."""
        await self._sync_feeds(self.config, spread=_spread(self.config))
        in_flight: set[str] = set()
        tasks: set[asyncio.Task[list[PollResult]]] = set()

        pause = StoragePause(self.clock, self.service.polling_paused)
        watch = ClockWatch(self.clock, self._monotonic)
        owed = 0.0  # a jump the schedule has not moved by yet: the database refused it

        async def tick() -> None:
            nonlocal owed
            owed += watch.jump()
            if owed and pause.allowed(1):  # paused: tried again with the polls' waits
                try:
                    await self._shift_schedule(owed)
                except (StoreError, sqlite3.Error) as e:
                    pause.failed(e)
                    return
                owed = 0.0
                pause.succeeded()
            if pause.waiting():
                return
            feeds = self.config.enabled
            try:
                due = await self.store.due_feeds(feeds, self.clock())
            except (StoreError, sqlite3.Error) as e:  # unreadable: paused like unwritable
                pause.failed(e)
                return
            batch = [feeds[url] for url in due if url not in in_flight]
            batch = batch[: pause.allowed(len(batch))]
            if not batch:
                return
            in_flight.update(f.url for f in batch)
            task = asyncio.create_task(self.poll(batch))
            tasks.add(task)

            def finished(done: asyncio.Task[list[PollResult]]) -> None:
                tasks.discard(done)
                in_flight.difference_update(f.url for f in batch)
                if done.cancelled():
                    return
                error = done.exception()
                if isinstance(error, StoreError):
                    pause.failed(error)
                elif error is not None:
                    log.error("polling failed unexpectedly", exc_info=error)
                else:
                    pause.succeeded()

            task.add_done_callback(finished)

        scheduler = AsyncIOScheduler()  # for the long jobs; a day late after a step back
        scheduler.add_job(
            _stoppable(self.prune), "interval", seconds=PRUNE_EVERY, max_instances=1,
            coalesce=True, next_run_time=datetime.now(UTC),
        )  # fmt: skip
        scheduler.add_job(
            _stoppable(self.check_silence), "interval", seconds=SILENCE_EVERY, max_instances=1,
            coalesce=True,
        )  # fmt: skip
        watchlist = FileWatch(self.config.path)
        watcher = asyncio.create_task(watchlist.run(reload), name="watch")
        ticking = asyncio.create_task(_every(TICK, tick), name="tick")
        self._start_relay()
        scheduler.start()
        log_event(log, logging.INFO, "started", feeds=len(self.config.enabled))
        try:
            async with self.service.running(self.store, lambda: self.config):
                while not stop.is_set():
                    await first_of(stop.wait(), reload.wait())
                    if reload.is_set() and not stop.is_set():
                        reload.clear()
                        watchlist.read()  # this reload reads the file as it is now
                        self.service.reloading()
                        applied = await self.reload()
                        self.service.reloaded(RELOADED if applied else RELOAD_REFUSED)
        finally:
            scheduler.shutdown(wait=False)
            for task in (watcher, ticking, *tasks):
                task.cancel()
            await asyncio.gather(watcher, ticking, *tasks, return_exceptions=True)
            await self._stop_relay()
            log_event(log, logging.INFO, "stopped")


# Settings that shape objects built once at start (the database, the HTTP session).
_RESTART_KEYS = (
    "database", "durability", "concurrency", "per_host", "user_agent", "metrics",
    "extract_workers",
)  # fmt: skip
RELOADED = "watchlist reloaded"  # STATUS= after a reload
RELOAD_REFUSED = "watchlist NOT reloaded: the last good one runs; see the log"
STOP_GRACE = 10.0  # seconds lanes get to finish an attempt in hand
WATCH_INTERVAL = 2.0  # seconds between checks of the watchlist file


def _log_warnings(config: Config, running: Config | None = None) -> None:
    """What `newsmon check` warns of, in the log: at start, and at a reload what the
    ``running`` watchlist did not have already (every edit would repeat it)."""
    known = config_warnings(running) if running is not None else []
    for warning in config_warnings(config):
        if warning not in known:
            log_event(
                log, logging.WARNING, "watchlist_warning", key=warning.path,
                warning=warning.message,
            )  # fmt: skip


def _lanes(config: Config) -> dict[str, LanePolicy]:
    return {name: cfg.lane for name, cfg in config.notifiers.items()}


def _spread(config: Config) -> float:
    """Seconds over which new feeds' first polls are spread: the shortest interval, at
    most a minute."""
    return min(min((f.interval for f in config.feeds), default=config.monitor.interval), 60.0)


async def _run_job(job: Callable[[], Awaitable[None]]) -> None:
    """One run of a periodic job. Its failure is logged and the job runs again at its
    next time: a database that refuses writes (the polls' storage pause says so) in one
    line, anything else with its traceback."""
    try:
        await job()
    except (StoreError, sqlite3.Error) as e:
        log_event(log, logging.WARNING, "job_failed", job=job.__name__, error=str(e))
    except Exception:
        log.exception("job %s failed", job.__name__)


async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` every ``seconds`` by the event loop's monotonic clock. APScheduler
    times jobs by the wall clock: a clock stepped back a day would stall for a day the
    tick that notices the jump (RELIABILITY.md case 62)."""
    while True:
        await _run_job(job)
        await asyncio.sleep(seconds)


def _stoppable(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """``job`` for the scheduler, which cancels a running job when it shuts down and
    would log that cancellation as the job's failure, with a traceback."""

    async def run() -> None:
        with suppress(asyncio.CancelledError):
            await _run_job(job)

    return run


async def first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until any of ``waits`` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class FileWatch:
    """Whether the watchlist file changed on disk since it was last read (edited in place
    or replaced by an editor's rename); a stat every few seconds costs nothing."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._read = self._last = _signature(path)

    def read(self) -> None:
        """The file is being read now (a reload, whatever asked for it): a change
        already seen, or an edit followed by `systemctl reload`, reloads once, not twice."""
        self._read = self._last = _signature(self._path)

    def look(self) -> bool:
        """Whether the file changed since it was read and has held still since the last
        look: an editor that truncates and then writes would otherwise be read
        half-written, and logged as a failed reload before the good one."""
        now, last = _signature(self._path), self._last
        self._last = now
        return now is not None and now != self._read and now == last

    async def run(self, reload: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.look():
                reload.set()


def install_signals(stop: asyncio.Event, reload: asyncio.Event) -> None:
    """SIGTERM (systemd) and SIGINT (Ctrl-C) end the daemon cleanly; SIGHUP (systemctl
    reload) re-reads the watchlist."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
