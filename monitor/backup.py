"""A consistent copy of the database, taken while the daemon runs.

Copying the file with cp while the daemon writes can catch a page half-updated and
misses what is still in the write-ahead log; SQLite's backup API copies one snapshot
instead, and in WAL mode the daemon's writes go on meanwhile. The copy is made under a
temporary name, checked, synced and only then renamed, so a failed or interrupted
backup never leaves a file under the name asked for, and a good one is one
self-contained file (journal mode DELETE, nothing in a -wal beside it).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError, StoreError


@dataclass(frozen=True, slots=True)
class Backup:
    """A finished copy, for the command's one line of report."""

    path: Path
    size: int  # bytes
    schema: int  # the copy's user_version
    seconds: float


def back_up(database: Path, target: Path, cancelled: threading.Event | None = None) -> Backup:
    """Copy ``database`` to ``target``, which must not exist yet. ``cancelled``, set while
    the copy runs in its thread (Ctrl-C), keeps it from being renamed into place."""
    started = time.monotonic()
    if not database.is_file():
        raise StoreError(f"no database at {database}: has newsmon run yet?")
    if target.exists():
        raise ConfigError("", f"{target} exists: back up to a new path")
    if not target.parent.is_dir():
        raise ConfigError("", f"cannot back up to {target}: no folder {target.parent}")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        # made with the database's permissions before SQLite writes a byte into it: the
        # database holds feed URLs with their passwords, and a copy by the umask alone was
        # world-readable where the database was not (SQLite takes an empty file as new)
        os.close(
            os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, database.stat().st_mode & 0o777)
        )
        with closing(sqlite3.connect(database)) as source:
            source.execute("PRAGMA busy_timeout = 10000")
            _check_source(source, database)
            with closing(sqlite3.connect(partial)) as copy:
                source.backup(copy)  # one step: one snapshot
                copy.execute("PRAGMA journal_mode = DELETE")
                check = copy.execute("PRAGMA quick_check").fetchone()[0]
                schema = copy.execute("PRAGMA user_version").fetchone()[0]
        if check != "ok":
            raise StoreError(f"the copy failed its check ({check}); {database} may be damaged")
        if cancelled is not None and cancelled.is_set():
            raise StoreError(f"interrupted: nothing written to {target}")
        _sync(partial)
        os.replace(partial, target)
        _sync(target.parent)
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"cannot back up to {target}: {e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Backup(target, target.stat().st_size, schema, time.monotonic() - started)


def _check_source(source: sqlite3.Connection, database: Path) -> None:
    """A file that is no newsmon database is named as the source of the trouble, before a
    copy is begun: a foreign file, or one newsmon never set up (schema 0, an empty file
    SQLite reads as an empty database), is most likely the wrong ``database`` path."""
    try:
        (schema,) = source.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as e:
        raise StoreError(f"cannot read {database}: {e}") from None
    if not schema:
        raise StoreError(f"{database} is no newsmon database (schema 0): nothing to back up")


def _sync(path: Path) -> None:
    """The rename is durable only once the file's data and then its directory are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
