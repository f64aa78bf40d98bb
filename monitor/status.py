"""Is it working? One report, read from the database, for `newsmon status`, the STATUS=
line systemd shows, and the metrics endpoint.

It only reads, so it is safe while the daemon runs: in WAL mode readers never block the
writer, nor it them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.config import Config
from monitor.durations import span
from monitor.notices import silent_feeds
from monitor.store import Store

DAY = 86400.0
LOW_DISK = 64 * 1024 * 1024  # below this much free space, say so: writes will soon fail


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A snapshot of newsmon's health at ``at`` (Unix seconds)."""

    at: float
    database: Path
    database_bytes: int  # the file and its write-ahead log
    disk_free_bytes: int  # for the database's file system
    feeds_healthy: int
    feeds_failing: int
    feeds_new: int  # watched, not polled yet
    feeds_disabled: int  # enabled = false in the watchlist, or gone (410) until resumed
    failing: tuple[str, ...]  # names of the failing feeds
    silent: tuple[str, ...]  # names of feeds silent far beyond their rhythm (notices.py)
    paused: tuple[str, ...]  # destinations paused after repeated refusals (deliver.py)
    last_poll_at: float | None
    hits_last_day: int
    deliveries_pending: int  # pending or sending
    deliveries_failed: int  # refused for good by their destination
    deliveries_expired: int  # given up after retrying up to their max_age
    notices_pending: int  # operational notices pending or sending (notices.py)

    @property
    def disk_low(self) -> bool:
        return self.disk_free_bytes < LOW_DISK

    def line(self) -> str:
        """One line for systemd's STATUS=: the problems first."""
        parts = []
        if self.disk_low:
            parts.append(f"DISK LOW: {size(self.disk_free_bytes)} free for the database")
        if self.paused:
            parts.append(f"PAUSED: {', '.join(self.paused)} (newsmon resume NAME)")
        parts.append(f"{self.feeds_healthy + self.feeds_failing + self.feeds_new} feeds")
        if self.feeds_failing:
            parts.append(f"{self.feeds_failing} failing")
        if self.silent:
            parts.append(f"{len(self.silent)} silent")
        parts.append(f"{self.hits_last_day} hits today")
        parts.append(f"{self.deliveries_pending} deliveries pending")
        if self.deliveries_failed:
            parts.append(f"{self.deliveries_failed} failed")
        if self.deliveries_expired:
            parts.append(f"{self.deliveries_expired} expired")
        if self.notices_pending:
            parts.append(f"{self.notices_pending} notices pending")
        return ", ".join(parts)


def size(count: int) -> str:
    """Bytes for people: 812 B, 3.4 MB, 1.2 GB."""
    if count < 1000:
        return f"{count} B"
    amount = count / 1000
    for unit in ("kB", "MB"):
        if amount < 1000:
            return f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"


def disk_free(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s file system."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def database_bytes(path: Path) -> int:
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


async def gather_status(
    store: Store,
    config: Config,
    now: float,
    *,
    free: Callable[[Path], int] = disk_free,
    deliveries: Mapping[tuple[str, str], int] | None = None,
) -> StatusReport:
    """The report for ``config``'s database as of ``now``. ``deliveries``: the outbox
    counts by (destination, state) when the caller has read them already."""
    watched = {f.url for f in config.feeds if f.enabled}
    known = [r for r in await store.feeds() if r.url in watched]
    rows = [r for r in known if r.disabled_reason is None]
    failing = [r for r in rows if r.consecutive_errors]
    names = {r.url: r.shown for r in rows}
    silent = await silent_feeds(store, now)
    polls = [r.last_poll_at for r in rows if r.last_poll_at is not None]
    if deliveries is None:
        deliveries = await store.delivery_counts()
    by_state: dict[str, int] = {}
    for (_, state), count in deliveries.items():
        by_state[state] = by_state.get(state, 0) + count
    database = config.monitor.database
    return StatusReport(
        at=now,
        database=database,
        database_bytes=database_bytes(database),
        disk_free_bytes=free(database.parent),
        feeds_healthy=sum(1 for r in rows if not r.consecutive_errors and r.last_success_at),
        feeds_failing=len(failing),
        feeds_new=sum(1 for r in rows if not r.consecutive_errors and not r.last_success_at),
        feeds_disabled=sum(1 for f in config.feeds if not f.enabled) + len(known) - len(rows),
        failing=tuple(r.shown for r in failing),
        silent=tuple(names[f.url] for f in silent if f.url in names),
        paused=tuple(
            d.notifier
            for d in await store.destinations()
            if d.paused_at is not None and d.notifier in config.notifiers
        ),
        last_poll_at=max(polls, default=None),
        hits_last_day=await store.hits_since(now - DAY),
        deliveries_pending=by_state.get("pending", 0) + by_state.get("sending", 0),
        deliveries_failed=by_state.get("failed", 0),
        deliveries_expired=by_state.get("expired", 0),
        notices_pending=await store.open_notices(),
    )


def format_status(report: StatusReport) -> str:
    """The `newsmon status` text: one labelled line per question an operator asks."""
    if report.last_poll_at is None:
        last = "never"
    else:
        stamp = datetime.fromtimestamp(report.last_poll_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        last = f"{stamp} ({span(report.at - report.last_poll_at)} ago)"
    feeds = (
        f"{report.feeds_healthy} healthy, {report.feeds_failing} failing, "
        f"{report.feeds_disabled} disabled"
    )
    if report.feeds_new:
        feeds += f", {report.feeds_new} not polled yet"
    disk = f"{size(report.disk_free_bytes)} free"
    if report.disk_low:
        disk += ", LOW"
    resume = " (newsmon resume NAME)" if report.paused else ""
    named = [
        ("failing", ", ".join(report.failing)),
        ("silent", ", ".join(report.silent)),
        ("paused", ", ".join(report.paused) + resume),
    ]
    lines = [
        ("feeds", feeds),
        *((label, names) for label, names in named if names),
        ("last poll", last),
        ("hits", f"{report.hits_last_day} in the last day"),
        (
            "deliveries",
            f"{report.deliveries_pending} pending, {report.deliveries_failed} failed,"
            f" {report.deliveries_expired} expired"
            + (f"; {report.notices_pending} notices pending" if report.notices_pending else ""),
        ),
        ("database", f"{report.database} ({size(report.database_bytes)}, {disk})"),
    ]
    return "\n".join(f"{label:<11} {text}" for label, text in lines)
