"""What the running daemon owes its supervisor: READY and STOPPING, the watchdog, a STATUS=
line kept current, and the metrics endpoint when the watchlist asks for one.

The daemon enters ``Service.running`` once it is initialised and leaves it when told to
stop; everything here runs as tasks on the daemon's own event loop, so a stalled loop
starves the watchdog, exactly as it should (RELIABILITY case 68).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path

from monitor.config import Config
from monitor.log import log_event
from monitor.metrics import Metrics, serve_metrics
from monitor.sdnotify import SystemdNotifier, keep_alive, watchdog_interval
from monitor.status import StatusReport, disk_free, gather_status, size
from monitor.store import Store

log = logging.getLogger("newsmon.service")
STATUS_EVERY = 30.0  # seconds between STATUS= updates


class Service:
    """The daemon's face to systemd and to Prometheus."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        *,
        watchdog: float | None,
        metrics: Metrics | None = None,
        status_every: float = STATUS_EVERY,
        clock: Callable[[], float] = time.time,
        free: Callable[[Path], int] = disk_free,
    ) -> None:
        self.notifier = notifier
        self.metrics = metrics or Metrics()
        self.metrics_address: tuple[str, int] | None = None  # once serving
        self._watchdog = watchdog
        self._status_every = status_every
        self._clock = clock
        self._free = free
        self._disk_low = False
        self._paused: str | None = None  # why polling is paused (monitor/storage_pause.py)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Service:
        """NOTIFY_SOCKET and WATCHDOG_USEC as systemd set them; neither: a quiet service."""
        return cls(SystemdNotifier.from_environment(environ), watchdog=watchdog_interval(environ))

    async def report(
        self,
        store: Store,
        config: Config,
        deliveries: Mapping[tuple[str, str], int] | None = None,
    ) -> StatusReport:
        """The status now; logs when the database's disk runs low, and when it recovers."""
        report = await gather_status(
            store, config, self._clock(), free=self._free, deliveries=deliveries
        )
        if report.disk_low != self._disk_low:
            self._disk_low = report.disk_low
            level = logging.ERROR if report.disk_low else logging.INFO
            event = "disk_low" if report.disk_low else "disk_ok"
            log_event(log, level, event, free=size(report.disk_free_bytes), path=report.database)
        return report

    async def refresh_metrics(self, store: Store, config: Config) -> None:
        deliveries = await store.delivery_counts()  # one read for the report and the gauges
        report = await self.report(store, config, deliveries)
        self.metrics.update(report, deliveries, await store.hit_counts())

    @asynccontextmanager
    async def running(self, store: Store, config: Callable[[], Config]) -> AsyncIterator[None]:
        """Serve metrics (if configured), say READY=1, keep the watchdog and STATUS= fed;
        on exit say STOPPING=1 first, then stop it all. ``config`` gives the current
        watchlist, which a reload may replace."""
        async with AsyncExitStack() as stack:
            address = config().monitor.metrics
            if address is not None:
                self.metrics_address = await stack.enter_async_context(
                    serve_metrics(
                        self.metrics,
                        *address,
                        refresh=lambda: self.refresh_metrics(store, config()),
                        health=store.ping,
                    )
                )
            # READY=1 before any ping or STATUS=: start-up is complete, then we run
            self.notifier.ready(await self._status_line(store, config()))
            tasks = [asyncio.create_task(self._keep_status(store, config), name="status")]
            if self._watchdog is not None:
                watchdog = keep_alive(self.notifier, self._watchdog, store.ping)
                tasks.append(asyncio.create_task(watchdog, name="watchdog"))
            stack.push_async_callback(_cancel, tasks)
            try:
                yield
            finally:
                self.notifier.stopping()

    def reloading(self) -> None:
        """A watchlist reload begins (SIGHUP); call ``reloaded`` when it is done."""
        self.notifier.reloading()

    def reloaded(self, outcome: str) -> None:
        """A reload is done, applied or refused; ``outcome`` says which, in STATUS=."""
        self.notifier.ready(outcome)

    def polling_paused(self, reason: str | None) -> None:
        """Polling stopped because the database refuses writes (None: it resumed);
        STATUS= leads with it meanwhile."""
        self._paused = reason
        self.notifier.status(self._pause_note() or "polling resumed: the database takes writes")

    def close(self) -> None:
        self.notifier.close()

    def _pause_note(self) -> str:
        if self._paused is None:
            return ""
        return f"POLLING PAUSED: the database refuses writes ({self._paused})"

    async def _status_line(self, store: Store, config: Config) -> str:
        try:
            line = (await self.report(store, config)).line()
        except Exception as e:  # a status line must never stop the daemon
            log_event(log, logging.WARNING, "status_failed", error=f"{type(e).__name__}: {e}")
            line = f"status unavailable: {type(e).__name__}"
        return f"{self._pause_note()}; {line}" if self._paused is not None else line

    async def _keep_status(self, store: Store, config: Callable[[], Config]) -> None:
        while True:
            await asyncio.sleep(self._status_every)
            self.notifier.status(await self._status_line(store, config()))


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    with suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
