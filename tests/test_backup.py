"""`newsmon backup PATH`: a consistent, self-contained copy, taken while the daemon runs,
that newsmon reads as it reads the original; never a half-written file under PATH."""

from __future__ import annotations

import sqlite3
import stat
import threading
from contextlib import closing
from pathlib import Path

import pytest

from monitor.backup import back_up
from monitor.errors import StoreError
from monitor.store import Store
from tests.daemon import newsmon_async, running, terminate
from tests.servers import Item, Publisher, Receiver


def damage(database: Path, header: bytes) -> None:
    """Overwrite the start of the entries table's root page: SQLite still opens the file
    and reads its schema (rooted on page 1), and the backup API copies the page as it is."""
    with closing(sqlite3.connect(database)) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'entries'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(header)


def rows(db: Path, table: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


async def test_a_backup_taken_while_the_daemon_runs_is_whole_and_readable(
    publisher: Publisher, receiver: Receiver, write_watchlist, tmp_path: Path
) -> None:
    """The copy holds the stored story and its hit, passes integrity_check, keeps no
    -wal beside it, is no more readable than the database, and `newsmon hits` on a
    watchlist pointing at it shows the hit."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    copy = tmp_path / "backups" / "copy.db"
    copy.parent.mkdir()
    async with running(path) as daemon:
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        (path.parent / "newsmon.db").chmod(0o600)  # as the service's state directory has it
        done = await newsmon_async("backup", str(copy), "--config", str(path))
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # not the umask's 0o644
        assert f"to {copy}: " in done.stdout
        assert "schema " in done.stdout
        stderr = await terminate(daemon)
    assert daemon.returncode == 0, stderr
    assert rows(copy, "entries") == rows(path.parent / "newsmon.db", "entries")
    assert len(rows(copy, "hits")) == 1
    with closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.db"]
    restored = tmp_path / "restored.toml"
    restored.write_text(
        path.read_text(encoding="utf-8").replace('database = "newsmon.db"', f'database = "{copy}"'),
        encoding="utf-8",
    )
    hits = await newsmon_async("hits", "--config", str(restored), "--since", "1d")
    assert hits.returncode == 0, hits.stderr
    assert "Embassy" in hits.stdout


async def test_a_backup_never_overwrites_and_leaves_nothing_when_it_fails(
    publisher: Publisher, write_watchlist, tmp_path: Path
) -> None:
    """An existing PATH is a usage error (2) and stays as it was; no database yet (1) or
    no folder for PATH (2) fail with the reason, before any copy is begun."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    none_yet = await newsmon_async("backup", str(tmp_path / "a.db"), "--config", str(path))
    assert none_yet.returncode == 1
    assert "no database at " in none_yet.stderr
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"mine")
    refused = await newsmon_async("backup", str(taken), "--config", str(path))
    assert refused.returncode == 2
    assert "exists: back up to a new path" in refused.stderr
    assert taken.read_bytes() == b"mine"
    nowhere = tmp_path / "missing-dir" / "copy.db"
    failed = await newsmon_async("backup", str(nowhere), "--config", str(path))
    assert failed.returncode == 2
    assert f"cannot back up to {nowhere}: no folder {nowhere.parent}" in failed.stderr
    empty = await newsmon_async("backup", "", "--config", str(path))
    assert empty.returncode == 2
    assert "PATH: expected the path of the copy, got nothing" in empty.stderr
    assert "Traceback" not in none_yet.stderr + refused.stderr + failed.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is no newsmon database (schema 0)"), (b"no database " * 400, "cannot read ")],
    ids=["never-set-up", "foreign"],
)
async def test_a_file_that_is_no_newsmon_database_is_named_and_not_copied(
    publisher: Publisher, write_watchlist, tmp_path: Path, content: bytes, message: str
) -> None:
    """An empty file (which SQLite reads as an empty database) or a foreign one at the
    database path fails (1) naming the database, not the copy, and leaves no copy."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    database = path.parent / "newsmon.db"
    database.write_bytes(content)
    copy = tmp_path / "copy.db"
    done = await newsmon_async("backup", str(copy), "--config", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("newsmon: database error: ")
    assert message in done.stderr
    assert str(database) in done.stderr
    assert database.read_bytes() == content
    assert not copy.exists()


async def test_a_backup_cancelled_while_it_copies_is_not_kept(tmp_path: Path) -> None:
    """Ctrl-C while the copy runs in its thread (which cannot be stopped mid-copy): the
    finished copy is not renamed into place, and its partial file is removed."""
    database = tmp_path / "newsmon.db"
    await (await Store.open(database)).close()
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(StoreError, match="interrupted: nothing written to "):
        back_up(database, tmp_path / "copy.db", cancelled)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.db"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # a leaf table page claiming 5 cells with no cell pointers: quick_check lists them
        (b"\x0d\x00\x00\x00\x05", r"the copy failed its check \(\*\*\* in database main"),
        # no valid page type at all: SQLite refuses to check the copy
        (b"\xff" * 16, "cannot back up to .*: database disk image is malformed"),
    ],
    ids=["fails-check", "malformed"],
)
async def test_a_copy_of_a_damaged_database_is_not_kept(
    tmp_path: Path, header: bytes, message: str
) -> None:
    """A damaged page is copied, then found by the check of the copy: the backup fails
    naming the damage, and the copy written so far is removed, not left beside PATH."""
    database = tmp_path / "newsmon.db"
    await (await Store.open(database)).close()
    damage(database, header)
    with pytest.raises(StoreError, match=message):
        back_up(database, tmp_path / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.db"]
