"""RELIABILITY.md section G cases that had no proof yet: a corrupt database at start, an
outside writer holding the lock, the durability pragma, an interrupted poll, and a
migration stopped midway."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.errors import StoreError
from monitor.store import MIGRATIONS, Store
from tests.daemon import command as newsmon_command
from tests.daemon import environment as newsmon_environment
from tests.daemon import newsmon_async
from tests.db import connect
from tests.hostile import Hostile, running
from tests.old_schema import back_to_schema_7, back_to_schema_8
from tests.outbox import add_hits, eventually
from tests.servers import Item, rss
from tests.watchlists import watchlist

LATEST = len(MIGRATIONS)
GARBAGE = b"this is not an SQLite database\x00" * 200


async def test_a_corrupt_database_stops_the_start_and_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 60: a database file that is not SQLite fails `run` with exit 1 and a clear
    message; the file is neither replaced nor recreated."""
    (tmp_path / "newsmon.db").write_bytes(GARBAGE)
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=["http://127.0.0.1:9/feed"]), encoding="utf-8")
    code = await asyncio.to_thread(main, ["run", "--once", "--config", str(path)])
    assert code == 1
    assert "database error" in capsys.readouterr().err
    assert (tmp_path / "newsmon.db").read_bytes() == GARBAGE


@pytest.mark.parametrize("version", [0, 3, 42])
async def test_another_programs_database_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: int
) -> None:
    """Case 60: the watchlist names another program's SQLite file (tables of its own, at
    schema version 0 or any other without newsmon's tables): `run` exits 1 naming the
    file and its tables, and the file is byte for byte as it was (not switched to WAL,
    no newsmon table in it). An empty file is a new database, set up as ever."""
    theirs = tmp_path / "newsmon.db"
    with connect(theirs) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("CREATE INDEX invoices_total ON invoices(total)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
        conn.execute(f"PRAGMA user_version = {version}")
    before = theirs.read_bytes()
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=["http://127.0.0.1:9/feed"]), encoding="utf-8")
    code = await asyncio.to_thread(main, ["run", "--once", "--config", str(path)])
    assert code == 1
    err = capsys.readouterr().err
    expected = f"{theirs} is not newsmon's database (schema version {version}, its tables"
    assert f"database error: {expected} include invoices)" in err
    assert theirs.read_bytes() == before  # the header's journal mode included
    assert not (tmp_path / "newsmon.db-wal").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    store = await Store.open(empty)
    await store.close()
    with connect(empty) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """Case 60: a database from a newer newsmon is refused, not downgraded or migrated."""
    await (await Store.open(tmp_path / "newsmon.db")).close()
    with connect(tmp_path / "newsmon.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="newer than this newsmon understands"):
        await Store.open(tmp_path / "newsmon.db")


async def test_a_writer_waits_out_another_process_holding_the_lock(tmp_path: Path) -> None:
    """Case 59: while another connection holds BEGIN IMMEDIATE, a poll's commit waits
    (busy_timeout) and then succeeds; no "database is locked" escapes."""
    db = tmp_path / "newsmon.db"
    store = await Store.open(db)
    try:
        begun = threading.Event()  # set in aiosqlite's thread as BEGIN starts to run

        def trace(sql: str) -> None:
            if sql.startswith("BEGIN"):
                begun.set()

        await store._in_thread(lambda conn: conn.set_trace_callback(trace))
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(add_hits(store, 1, ["a"], 1_750_000_000.0))
        await eventually(begun.is_set)  # it has asked for the lock: without a wait, it fails
        assert not write.done()
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(write, 15)
        assert len(await store.deliveries()) == 1
    finally:
        await store.close()


@pytest.mark.parametrize(("durability", "level"), [("process", 1), ("power", 2)])
async def test_durability_sets_synchronous_on_the_writer(
    tmp_path: Path, durability: str, level: int
) -> None:
    """G5: "process" is WAL + synchronous=NORMAL (1), "power" synchronous=FULL (2)."""
    store = await Store.open(tmp_path / "newsmon.db", durability=durability)
    try:
        assert (await store._one("PRAGMA synchronous"))[0] == level
        assert (await store._one("PRAGMA journal_mode"))[0] == "wal"
    finally:
        await store.close()


async def test_a_poll_cut_off_before_its_commit_leaves_the_old_cursor(tmp_path: Path) -> None:
    """Case 56 / G2: a poll interrupted after the feed was fetched but before the commit
    (here: while its article page hangs) stores no entry and no cursor, so the next poll
    finds the entry again and alerts."""
    server = Hostile()
    async with running(server):
        server.pages["/feed"] = (
            "application/rss+xml",
            rss(server.base, [Item("Embassy", "/hang", summary="Kremlin embassy closes")]).encode(),
        )
        path = tmp_path / "newsmon.toml"
        path.write_text(
            watchlist(feeds=[f"{server.base}/feed"], fetch_articles=True), encoding="utf-8"
        )
        async with Daemon.open(load_config(path)) as daemon:
            poll = asyncio.create_task(daemon.run_once(delivery_deadline=1))
            async with asyncio.timeout(30):
                while not any(r.target == "/hang" for r in server.requests):
                    await asyncio.wait({poll}, timeout=0.01)
                    assert not poll.done()
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
        with connect(tmp_path / "newsmon.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM entries").fetchone() == (0,)
            assert conn.execute("SELECT last_status FROM feeds").fetchone() == (None,)
        # the next poll matches the summary alone: retrying the hung page would take 5 s
        path.write_text(
            watchlist(feeds=[f"{server.base}/feed"], fetch_articles=False), encoding="utf-8"
        )
        async with Daemon.open(load_config(path)) as daemon:
            await daemon.run_once(delivery_deadline=1)
    with connect(tmp_path / "newsmon.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM entries").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM hits").fetchone() == (1,)


async def test_a_migration_stopped_midway_leaves_nothing_half_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Case 61: migrations and the version bump are one transaction. Migration 8 stopped
    at its third statement (a column in the way) leaves schema 7 exactly as it was, the
    start fails with a database error (and the log never says upgraded), and the next
    start completes it."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await add_hits(store, 2, ["a"], 1_750_000_000.0)
    await store.close()
    with connect(path) as conn:
        back_to_schema_7(conn)
        conn.execute("ALTER TABLE feeds ADD COLUMN rhythm_n TEXT")  # in migration 8's way
    caplog.set_level(logging.INFO, logger="newsmon.store")
    with pytest.raises(StoreError, match="duplicate column name: rhythm_n"):
        await Store.open(path)
    assert [r.getMessage() for r in caplog.records] == [f"database_upgrade schema=7 to={LATEST}"]
    with connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        columns = {row[1] for row in conn.execute("PRAGMA table_info(feeds)")}
        assert not columns & {"last_new_at", "rhythm"}  # its first two statements undone
        conn.execute("ALTER TABLE feeds DROP COLUMN rhythm_n")
    store = await Store.open(path)
    assert len(await store.deliveries()) == 2
    await store.close()
    assert caplog.records[-1].getMessage().startswith(f"database_upgraded schema={LATEST} seconds=")
    with connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


BAND_ROWS = 2_000_000  # migration 9 rewrites them all: about a second's work
SPILLED = 4 * 2**20  # WAL bytes: the migration's pages are on disk, not yet committed


async def test_a_migration_killed_midway_is_rolled_back_and_done_by_the_next_start(
    tmp_path: Path, write_watchlist
) -> None:
    """Case 61 with a real kill: `newsmon run` sent SIGKILL while migration 9 rewrites two
    million band rows (the log has said the upgrade began, and megabytes of its pages
    are in the WAL, uncommitted) leaves schema 8 as it was, every row in place and the
    file sound; the next start does the whole upgrade."""
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"])  # nothing answers there
    db = path.parent / "newsmon.db"
    store = await Store.open(db)
    await add_hits(store, 2, ["a"], 1_750_000_000.0)
    await store.close()
    with connect(db) as conn:
        back_to_schema_8(conn)
        conn.execute(  # in key order: a random order would take seconds to write
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT ?)"
            " INSERT INTO story_bands (band, seen_at, entry_id) SELECT i << 32, 1.0, i FROM n",
            (BAND_ROWS,),
        )
    proc = await asyncio.create_subprocess_exec(
        *newsmon_command(), "run", "--config", str(path),
        stderr=asyncio.subprocess.PIPE, env=newsmon_environment(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while b"database_upgrade schema=8" not in (line := await proc.stderr.readline()):
                assert line, "newsmon exited before the upgrade began"
        wal = db.with_name(f"{db.name}-wal")
        await eventually(lambda: wal.exists() and wal.stat().st_size > SPILLED, timeout=60)
    finally:
        proc.kill()
        await proc.wait()
    with connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 8  # not committed
        assert conn.execute("SELECT COUNT(*) FROM story_bands").fetchone()[0] == BAND_ROWS
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = await Store.open(db)
    try:
        assert len(await store.deliveries()) == 2
    finally:
        await store.close()
    with connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert conn.execute("SELECT COUNT(*) FROM story_bands").fetchone()[0] == BAND_ROWS
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


TRANSACTION_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|END|ROLLBACK|RELEASE)\b", re.IGNORECASE)


async def test_every_migration_runs_in_the_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 61 for every migration: upgrading from schema 7, each migration's statements
    and Python steps run between one BEGIN and one COMMIT, and the version is set last.
    A COMMIT slipped into any step (which a kill after it would leave half done) fails
    this, wherever a kill would land."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await store.close()
    with connect(path) as conn:
        back_to_schema_7(conn)
    statements: list[str] = []
    opened = aiosqlite.connect

    async def traced_connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        db = await opened(*args, **kwargs)
        await db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(aiosqlite, "connect", traced_connect)
    store = await Store.open(path)
    await store.close()
    steps = [i for i, s in enumerate(statements) if s.startswith("PRAGMA user_version = ")]
    assert [statements[i] for i in steps] == [
        f"PRAGMA user_version = {n}" for n in range(8, LATEST + 1)
    ]
    control = [(i, s.split()[0].upper()) for i, s in enumerate(statements)
               if TRANSACTION_CONTROL.match(s)]  # fmt: skip
    begin = max(i for i, word in control if word == "BEGIN" and i < steps[0])
    assert [word for i, word in control if begin < i < steps[-1]] == []
    assert next(word for i, word in control if i > steps[-1]) == "COMMIT"


async def test_commands_beside_the_daemon_never_upgrade_the_schema(
    tmp_path: Path, write_watchlist
) -> None:
    """After an upgrade, `newsmon status` (or any command but `run`) on a database an older
    daemon may still be writing refuses with the reason instead of migrating it under
    that daemon; `newsmon run` upgrades it. An empty file is named as such."""
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"])
    database = tmp_path / "newsmon.db"
    store = await Store.open(database)
    await store.close()
    with connect(database) as conn:  # schema 8, as the version before this one left it
        back_to_schema_8(conn)
    for command in ("status", "hits", "deliveries", "feeds"):
        done = await newsmon_async(command, "--config", str(path))
        assert done.returncode == 1, done.stderr
        assert f"schema version 8, older than this newsmon's ({LATEST})" in done.stderr
    with connect(database) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 8
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    with connect(database) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert (await newsmon_async("status", "--config", str(path))).returncode == 0
    other = tmp_path / "other.toml"
    other.write_text(
        path.read_text(encoding="utf-8").replace('"newsmon.db"', '"empty.db"'), encoding="utf-8"
    )
    (tmp_path / "empty.db").touch()
    empty = await newsmon_async("hits", "--config", str(other))
    assert empty.returncode == 1
    assert "the database is empty: `newsmon run` sets it up" in empty.stderr
