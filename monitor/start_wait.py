"""Starting while the storage refuses the database (RELIABILITY.md case 58).

A daemon that exits because its disk is full, or its state directory read-only, is
restarted by systemd until ``StartLimitBurst`` gives up on it, and then stays down after
the space comes back. So `newsmon run` holds its place instead: it tells systemd it has
started (so `systemctl start` returns and no start timeout kills the wait), says why it
waits in STATUS= and the log, keeps the watchdog fed, and tries again after the same
growing waits as a paused poll; SIGHUP (`systemctl reload`, once the space is freed)
tries again at once, and the daemon that then starts reads the watchlist afresh, edited
during the wait or not. A database that is corrupt, foreign or from a newer newsmon is no
matter of waiting: that still exits non-zero (case 60).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from monitor.config import Config
from monitor.daemon import Daemon, first_of
from monitor.errors import StoreError
from monitor.run_lock import exclusive_run
from monitor.sdnotify import SystemdNotifier, watchdog_interval
from monitor.storage_pause import FIRST_RETRY, StoragePause, passing


@asynccontextmanager
async def daemon_when_storage_allows(
    config: Config,
    stop: asyncio.Event,
    reload: asyncio.Event,
    *,
    first: float = FIRST_RETRY,
    environ: Mapping[str, str] = os.environ,
) -> AsyncIterator[Daemon | None]:
    """The opened daemon, holding the database's run lock; None when ``stop`` came first.
    After a wait ``reload`` is left set: ``config`` was read before it."""
    notifier = SystemdNotifier.from_environment(environ)
    watchdog = watchdog_interval(environ)
    pause = StoragePause(time.monotonic, fields={"start": "waiting"}, first=first)
    try:
        async with AsyncExitStack() as stack:
            locked = False
            while not stop.is_set():
                try:
                    if not locked:
                        stack.enter_context(exclusive_run(config.monitor.database))
                        locked = True
                    daemon = await stack.enter_async_context(Daemon.open(config))
                except (StoreError, sqlite3.Error, OSError) as e:
                    if not passing(e):
                        raise
                    pause.failed(e)
                    status = f"WAITING FOR STORAGE: {e}; next try in {pause.wait():g}s"
                    # READY=1 with the first: started, so no start timeout ends the wait
                    (notifier.ready if pause.failures == 1 else notifier.status)(status)
                    await _wait(stop, reload, pause.wait(), notifier, watchdog)
                    continue
                if pause.failures:
                    reload.set()
                pause.succeeded()
                yield daemon
                return
            yield None
    finally:
        notifier.close()


async def _wait(
    stop: asyncio.Event,
    reload: asyncio.Event,
    seconds: float,
    notifier: SystemdNotifier,
    watchdog: float | None,
) -> None:
    """``seconds``, or until ``stop`` or ``reload`` (which it clears: the next try is the
    answer); the watchdog is fed meanwhile: the loop is alive and the wait deliberate."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not (stop.is_set() or reload.is_set()) and (left := deadline - loop.time()) > 0:
        if watchdog is not None:
            notifier.watchdog()
        with suppress(TimeoutError):
            async with asyncio.timeout(min(left, watchdog or left)):
                await first_of(stop.wait(), reload.wait())
    reload.clear()
