"""One `newsmon run` per database.

A second daemon on the same file would poll the same feeds and race the first for its
outbox, and it could not see the band keys the first holds in memory (monitor/
story_index.py), so copies of a story would slip past clustering. The usual cause is a
hand-started run beside the systemd service, so it is refused with a line that says so.

The lock is ``flock`` on ``<database>.lock``: the kernel drops it when the process dies,
however it dies, so a crash never leaves a stale lock behind. The holder's pid is written
into the file for the refusal's message; read-only commands (status, hits, ...) take no
lock and work beside a running daemon.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from monitor.errors import StoreError


class DatabaseInUse(StoreError):
    """Another process runs newsmon on this database."""


def lock_path(database: Path) -> Path:
    """Beside the database, not in /run: the lock follows the file, whoever runs it."""
    return database.with_name(database.name + ".lock")


@contextmanager
def exclusive_run(database: Path) -> Iterator[None]:
    """Hold the database's run lock for the block, or raise ``DatabaseInUse`` at once."""
    path = lock_path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open(path)
    except OSError as e:  # the state directory is full, read-only or not a directory
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is not a directory" if blocker else e.strerror
        raise StoreError(f"cannot create {path}: {why}", transient=True) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise DatabaseInUse(
                f"database {database} is in use by another `newsmon run` (pid {holder});"
                " stop it first (systemctl stop newsmon, if it runs as the service)"
            ) from None
        with suppress(OSError):  # a full disk: the lock holds, only the pid goes unsaid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, empty of meaning without it


def _open(path: Path) -> int:
    """The lock file, for flock, which needs no write access: one another user made (root's
    `newsmon run --once` by hand before the service, another user, first ran) is opened
    read-only, not refused; and one made here is left readable by the next user."""
    # O_CLOEXEC: the extraction workers are exec'd and must not inherit the lock
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with suppress(OSError):  # not ours to change: it was readable enough to open
        os.fchmod(fd, 0o644)  # whatever the umask (the unit's is 0077)
    return fd
