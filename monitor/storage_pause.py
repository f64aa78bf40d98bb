"""Work held back while the database refuses writes (RELIABILITY.md case 58: a full
disk, a read-only state directory, I/O errors).

A poll whose commit fails is rolled back whole and its feed stays due; a delivery whose
state cannot be written stays in the outbox. Nothing is lost, but going on would fetch
every due feed each tick only to drop what it found, or spin a delivery lane, logging a
failure each time. Instead the first failure pauses the work and says so once (the log,
and for polling STATUS=); after a growing wait the work tries the database again, and
the first write that succeeds resumes it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from monitor.errors import StoreError
from monitor.log import log_event

log = logging.getLogger("newsmon.daemon")
FIRST_RETRY = 30.0  # seconds before the database is tried again
MAX_RETRY = 600.0
# SQLite's primary result codes that the state of the disk or the directory explains; a
# corrupt or foreign file (SQLITE_CORRUPT, SQLITE_NOTADB) is not among them (case 60)
_PASSING = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_BUSY")


def passing(error: BaseException) -> bool:
    """An error worth waiting out: freed space or a fixed directory ends it."""
    if isinstance(error, StoreError):
        return error.transient
    if isinstance(error, sqlite3.Error):
        return str(getattr(error, "sqlite_errorname", "")).startswith(_PASSING)
    return isinstance(error, OSError)


def _quiet(reason: str | None) -> None:
    """Nothing to show beyond the log."""


@dataclass
class StoragePause:
    clock: Callable[[], float]
    say: Callable[[str | None], None] = _quiet  # why the work is paused (None: resumed)
    fields: Mapping[str, str] = field(default_factory=lambda: {"polling": "paused"})
    first: float = FIRST_RETRY
    failures: int = 0
    until: float = 0.0

    def waiting(self) -> bool:
        """Paused, and the wait before the next try is not over."""
        return bool(self.failures) and self.clock() < self.until

    def allowed(self, due: int) -> int:
        """How many of ``due`` feeds may be polled now: all, none while paused, one to
        try the database again (and none more until that one has answered or waited)."""
        if not self.failures:
            return due
        if self.waiting() or not due:
            return 0
        self.until = self.clock() + self.wait()
        return 1

    def failed(self, error: Exception) -> None:
        self.failures += 1
        self.until = self.clock() + self.wait()
        level = logging.ERROR if self.failures == 1 else logging.WARNING
        log_event(
            log, level, "storage_failed", error=str(error), **self.fields,
            retry_in=f"{self.wait():g}s",
        )  # fmt: skip
        if self.failures == 1:
            self.say(str(error))

    def succeeded(self) -> None:
        if self.failures:
            log_event(log, logging.INFO, "storage_recovered", after=self.failures, **self.fields)
            self.failures, self.until = 0, 0.0
            self.say(None)

    def wait(self) -> float:
        """Seconds before the next try: ``first``, doubling with each failure to MAX_RETRY."""
        return min(self.first * 2.0 ** max(self.failures - 1, 0), MAX_RETRY)
