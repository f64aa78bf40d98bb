"""SQLite: schema, migrations, feed state, entries, hits and the delivery outbox.

All SQL lives here. One connection, one writer: every transaction holds ``_lock`` so that
coroutines sharing the connection never interleave statements inside one another's
transaction. Times are Unix seconds passed in by the caller, so tests control the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import sqlite3
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from collections.abc import Set as AbstractSet
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from monitor import cluster
from monitor.durations import span
from monitor.errors import StoreError
from monitor.log import log_event
from monitor.models import (
    Alert,
    AlsoSeen,
    ClusterPolicy,
    Cursor,
    Delivery,
    Digest,
    DigestRow,
    FeedState,
    Fingerprint,
    Location,
    Notice,
    Story,
)
from monitor.storage_pause import passing
from monitor.story_index import StoryIndex
from monitor.urls import without_password

# Append-only: migration N brings user_version from N-1 to N. Never edit a shipped one.
MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE feeds (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        name TEXT,
        title TEXT,
        etag TEXT,
        last_modified TEXT,
        polled INTEGER NOT NULL DEFAULT 0,
        next_poll_at REAL NOT NULL DEFAULT 0,
        last_poll_at REAL,
        last_success_at REAL,
        last_status INTEGER,
        last_error TEXT,
        consecutive_errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        feed_id INTEGER NOT NULL REFERENCES feeds(id),
        key TEXT NOT NULL,
        url TEXT,
        story_key TEXT NOT NULL,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        body TEXT NOT NULL,
        body_status TEXT NOT NULL,
        published REAL,
        seen_at REAL NOT NULL,
        UNIQUE (feed_id, key)
    );
    CREATE INDEX entries_story ON entries(story_key);
    CREATE TABLE hits (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        story_key TEXT NOT NULL,
        entry_id INTEGER NOT NULL REFERENCES entries(id),
        matched TEXT NOT NULL,
        snippet TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX hits_created ON hits(created_at);
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        hit_id TEXT NOT NULL REFERENCES hits(id),
        notifier TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('pending', 'sending', 'sent', 'failed', 'expired', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_error TEXT
    );
    CREATE INDEX deliveries_due ON deliveries(notifier, state, next_attempt_at);
    """,
    # 2: feed health: why a feed is disabled (410 Gone), and a Retry-After in force
    """
    ALTER TABLE feeds ADD COLUMN disabled_reason TEXT;
    ALTER TABLE feeds ADD COLUMN not_before REAL NOT NULL DEFAULT 0;
    """,
    # 3: The outbox's own state: destinations paused after repeated permanent failures, and
    # digests, each bundling some of one destination's deliveries into one message.
    """
    CREATE TABLE destinations (
        notifier TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        paused_at REAL,
        paused_reason TEXT
    );
    CREATE TABLE digests (
        id TEXT PRIMARY KEY,
        notifier TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('pending', 'sending', 'sent', 'failed', 'expired', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_error TEXT
    );
    CREATE INDEX digests_due ON digests(notifier, state, next_attempt_at);
    ALTER TABLE deliveries ADD COLUMN digest_id TEXT REFERENCES digests(id);
    CREATE INDEX deliveries_digest ON deliveries(digest_id);
    """,
    # 4: story clustering: each entry's MinHash signature, its LSH band keys (only a window
    # of recent ones is searched, so the key comes first), and lookups by URL and by age
    """
    CREATE TABLE story_prints (
        entry_id INTEGER PRIMARY KEY REFERENCES entries(id),
        shingles INTEGER NOT NULL,
        signature BLOB NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE INDEX story_prints_seen ON story_prints(seen_at);
    CREATE TABLE story_bands (
        band INTEGER NOT NULL,
        seen_at REAL NOT NULL,
        entry_id INTEGER NOT NULL,
        PRIMARY KEY (band, seen_at, entry_id)
    ) WITHOUT ROWID;
    CREATE INDEX entries_url ON entries(url);
    CREATE INDEX entries_seen ON entries(seen_at);
    """,
    # 5: a feed that moved: where it is fetched from, a move not yet confirmed, and the URL
    # its validators (ETag, Last-Modified) came from
    """
    ALTER TABLE feeds ADD COLUMN fetch_url TEXT;
    ALTER TABLE feeds ADD COLUMN moved_to TEXT;
    ALTER TABLE feeds ADD COLUMN moved_confirmations INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE feeds ADD COLUMN cursor_url TEXT;
    """,
    # 6: storms and notices (docs/alerts.md). A rule's hits past its max_per_hour join a
    # storm digest (``rule``) that stays open until ``closes_at``; a feed's failure streak
    # start dates its notices; ``notices`` holds operational messages, one row per
    # destination, sent through the outbox like everything else.
    """
    ALTER TABLE digests ADD COLUMN rule TEXT;
    ALTER TABLE digests ADD COLUMN closes_at REAL;
    CREATE INDEX hits_rule ON hits(rule, created_at);
    ALTER TABLE feeds ADD COLUMN failing_since REAL;
    CREATE TABLE notices (
        id TEXT PRIMARY KEY,
        notifier TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('pending', 'sending', 'sent', 'failed', 'expired', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_error TEXT
    );
    CREATE INDEX notices_due ON notices(notifier, state, next_attempt_at);
    """,
    # 7: fingerprints hashed with C-level primitives (monitor/cluster.py): the stored ones
    # are made again from their entries' text, so stories seen before still find copies
    lambda db: _refingerprint(db),
    # 8: a feed's rhythm, to tell when it has gone silent far beyond it: when a poll last
    # found something new, and the typical time between such polls (a moving average,
    # over ``rhythm_n`` of them). A feed's newest entry is found by id in the (feed_id, key)
    # index: MAX(seen_at) would read every entry, article text and all (seen_at is stored
    # after it), on the first start after an upgrade
    """
    ALTER TABLE feeds ADD COLUMN last_new_at REAL;
    ALTER TABLE feeds ADD COLUMN rhythm REAL;
    ALTER TABLE feeds ADD COLUMN rhythm_n INTEGER NOT NULL DEFAULT 0;
    UPDATE feeds SET last_new_at = (SELECT seen_at FROM entries
        WHERE id = (SELECT MAX(id) FROM entries WHERE feed_id = feeds.id));
    """,
    # 9: band keys of 32 bits in rows without seen_at (monitor/cluster.py `bands`)
    lambda db: _narrow_bands(db),
    # 10: a feed's entries in the order they came (the rowid follows the feed id in the
    # index): a poll reads its feed's newest keys (max_entries of them), and without this
    # SQLite sorted the feed's whole history for them, which grows for as long as newsmon
    # runs (entry rows outlive the retention): 7.8 ms a poll at 20,000 entries, 0.16 ms
    "CREATE INDEX entries_feed ON entries(feed_id)",
    # 11: deliveries counted by destination and state, hits by rule, kept so by triggers;
    # deliveries by age. Rows are never deleted, so each STATUS= line, metrics scrape and
    # `newsmon deliveries` read the whole history before: after a year at 1,000 hits a
    # day to two destinations, 56, 18 and about 1,000 ms
    lambda db: _tally(db),
    # 12: the entries whose text a prune may still clear, by age: the prune (every 6 h)
    # cleared bodies past the retention by visiting every older entry, already cleared or
    # not, in one write transaction that the polls wait for; after a year at 5,000 entries
    # a day, 0.7 s with the file in the page cache and 2.8 s without, growing for as long
    # as newsmon runs. A body that is cleared leaves this index
    "CREATE INDEX entries_unpruned ON entries(seen_at) WHERE body != ''",
    # 13: the failed and expired deliveries by age, for `newsmon deliveries --failed`:
    # the listing by age walked every delivery for the few that failed (0.2 s after a year)
    "CREATE INDEX deliveries_failed ON deliveries(created_at) WHERE state IN ('failed', 'expired')",
)

log = logging.getLogger("newsmon.store")
_T = TypeVar("_T")
_A = TypeVar("_A")
CACHE_KIB = 16_000  # SQLite's page cache; its default is 2,000 KiB
CHECKPOINT_PAGES = 8_000  # WAL pages (4 KiB) before an automatic checkpoint; default 1,000
STORM_WINDOW = 3600.0  # a rule's max_per_hour counts its hits over this many seconds
STORM_SHOWN = 5  # alerts read into a storm summary; the rest are only counted
MAX_ALSO = 20  # other outlets an alert names
REMOVED = "destination removed from the watchlist"  # why cancel_deliveries cancels
RHYTHM_WEIGHT = 0.2  # the newest gap's share in a feed's rhythm (a moving average)


def hit_id(rule: str, story_key: str) -> str:
    """Stable: one id per rule and story, whichever feed or poll found it."""
    return hashlib.sha256(f"hit\n{rule}\n{story_key}".encode()).hexdigest()[:32]


def delivery_id(hit: str, notifier: str) -> str:
    """Stable across retries, so receivers can deduplicate on it."""
    return hashlib.sha256(f"delivery\n{hit}\n{notifier}".encode()).hexdigest()[:32]


def notice_id(kind: str, subject: str, episode: str, notifier: str) -> str:
    """One id per notice and destination: raising the same notice again is a no-op."""
    key = f"notice\n{kind}\n{subject}\n{episode}\n{notifier}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def digest_id(notifier: str, first: str) -> str:
    """A digest's own delivery id; a delivery joins one digest at most, so its first
    member names it for good."""
    return hashlib.sha256(f"digest\n{notifier}\n{first}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SilentFeed:
    """A feed that answers but has found nothing new far longer than it usually does."""

    url: str
    since: float  # when it last found something new
    rhythm: float  # seconds it usually takes to find something new
    beats: int  # polls that found something new: the silence's number, which no clock moves
    title: str | None  # the feed's own


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A feed's health, for `newsmon feeds`."""

    url: str
    name: str | None
    last_poll_at: float | None
    last_success_at: float | None
    last_status: int | None
    last_error: str | None
    consecutive_errors: int
    next_poll_at: float
    disabled_reason: str | None
    fetch_url: str  # where it is fetched from now: its URL, unless it moved
    moved_to: str | None  # a permanent redirect seen, not yet confirmed

    @property
    def shown(self) -> str:
        """How listings name the feed: its name or title, else its URL without the
        password it may carry."""
        return self.name or without_password(self.url)


@dataclass(frozen=True, slots=True)
class HitRow:
    id: str
    rule: str
    title: str
    url: str | None
    feed: str
    matched: tuple[str, ...]
    snippet: str
    created_at: float
    published: float | None  # as the feed dated the entry; None when it did not


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    hit_id: str
    notifier: str
    state: str
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float
    last_error: str | None
    rule: str
    title: str
    digest_id: str | None = None


@dataclass(frozen=True, slots=True)
class DestinationRow:
    """A destination's health, for `newsmon deliveries` and `status`."""

    notifier: str
    failures: int  # permanent failures since its last success
    paused_at: float | None
    paused_reason: str | None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An archived entry, for backtests and search; ``body`` is empty once pruned."""

    id: int
    story_key: str
    feed: str
    feed_url: str
    title: str
    url: str | None
    summary: str
    body: str
    published: float | None
    seen_at: float


def first_cursor(feed: FeedState) -> Cursor:
    """The cursor of a plain 200 answer with no validators, from the feed's own URL: what
    a store filled by hand (tests, benchmarks) records for a poll."""
    return Cursor(200, None, None, feed.location.fetch_url, feed.location)


def _due(rows: list[sqlite3.Row], now: float, at: int) -> list[sqlite3.Row]:
    """``rows`` in order up to the first whose next attempt (column ``at``) is after
    ``now``: a row waiting for its retry keeps those behind it waiting."""
    return list(itertools.takewhile(lambda row: row[at] <= now, rows))


# The outbox's tables, deliveries last (recover_sending and cancel_deliveries count it).
_OUTBOX_TABLES = ("digests", "notices", "deliveries")


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


class Store:
    """The narrow interface the rest of newsmon uses; SQL stays behind it."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        # requests served in groups (``_grouped``): feed states read, 304 cursors written
        self._state_reads: list[tuple[str, asyncio.Future[sqlite3.Row | None]]] = []
        self._not_modified: list[tuple[_NotModified, asyncio.Future[None]]] = []
        self._hops: set[asyncio.Future[Any]] = set()
        self._reads: list[tuple[tuple[str, tuple[Any, ...]], asyncio.Future[list[Any]]]] = []
        self._poll_commits: list[tuple[_PollCommit, asyncio.Future[list[str] | Exception]]] = []
        self._stories = StoryIndex()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        durability: str = "process",
        migrate: bool = True,
        upgrading: Callable[[str], AbstractAsyncContextManager[None]] = lambda _: nullcontext(),
    ) -> Store:
        """Open (creating and migrating) the database at ``path``. ``migrate=False``: a
        command beside the daemon, which must not upgrade the schema under an older
        daemon still running (between an upgrade and its restart); an older schema is
        then an error that says so. It reads the version without the write lock, and
        leaves the band keys the daemon holds back to the daemon. An upgrade runs inside
        ``upgrading(what it does)``, which the daemon uses to keep its supervisor waiting
        (``extending_start``)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open database {path}: {e}", transient=passing(e)) from None
        store = cls(db)
        try:
            await store._prepare(path, durability, migrate, upgrading)
        except sqlite3.Error as e:
            await db.close()
            raise StoreError(f"database {path} is unusable: {e}", transient=passing(e)) from None
        except StoreError:
            await db.close()
            raise
        return store

    async def _prepare(
        self,
        path: Path,
        durability: str,
        migrate: bool,
        upgrading: Callable[[str], AbstractAsyncContextManager[None]],
    ) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA busy_timeout = 10000")
        await self._refuse_foreign(path)
        await db.execute("PRAGMA journal_mode = WAL")
        sync = "FULL" if durability == "power" else "NORMAL"
        await db.execute(f"PRAGMA synchronous = {sync}")
        await db.execute("PRAGMA foreign_keys = ON")
        # A cold poll's story-band inserts land all over their index: a bigger page cache
        # and fewer checkpoints (each one writes and syncs the pages again) cut a 10,000-entry
        # cold ingest from 12.7 s to 9.2 s (docs/performance.md). Durability is unchanged.
        await db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        await db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        # a command beside the daemon only reads the version: no write lock to wait for
        async with self._transaction() if migrate else self._lock:
            version = (await self._one("PRAGMA user_version"))[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the database has schema version {version}, newer than this newsmon "
                    f"understands ({len(MIGRATIONS)}); upgrade newsmon"
                )
            if version == 0 and not migrate:
                raise StoreError("the database is empty: `newsmon run` sets it up")
            if version < len(MIGRATIONS) and not migrate:
                raise StoreError(
                    f"the database has schema version {version}, older than this newsmon's"
                    f" ({len(MIGRATIONS)}): (re)start `newsmon run`, which upgrades it;"
                    " other commands leave that to the daemon"
                )
            latest, began = len(MIGRATIONS), time.monotonic()
            upgrade = 0 < version < latest  # not when it creates the database
            if upgrade:
                log_event(log, logging.INFO, "database_upgrade", schema=version, to=latest)
            status = f"upgrading the database from schema {version} to {latest}"
            async with upgrading(status) if upgrade else nullcontext():
                await self._migrate(version)
        if upgrade:  # committed: only now is it upgraded
            seconds = f"{time.monotonic() - began:.1f}"
            log_event(log, logging.INFO, "database_upgraded", schema=latest, seconds=seconds)
        if migrate:  # a command beside the daemon stores no entry: the held keys are its
            async with self._lock:
                await self._in_thread(self._stories.load)

    async def _refuse_foreign(self, path: Path) -> None:
        """Another program's SQLite file is left as it is: migrating it would write
        newsmon's tables into it (RELIABILITY.md case 60). Foreign: tables at schema
        version 0, or a version without newsmon's own tables. One statement, so one
        snapshot (a first start committing meanwhile is seen whole or not at all), read
        before the first pragma that changes the file (WAL)."""
        version, names, ours = await self._one(
            "SELECT user_version, (SELECT group_concat(name, ', ') FROM (SELECT name"
            " FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
            " ORDER BY name LIMIT 4)), (SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            " AND name IN ('feeds', 'entries', 'hits', 'deliveries')) FROM pragma_user_version"
        )
        foreign = bool(names) if version == 0 else ours < 4  # a version, not newsmon's tables
        if foreign:
            raise StoreError(
                f"{path} is not newsmon's database (schema version {version}, "
                f"{f'its tables include {names}' if names else 'no tables'}); give [monitor]"
                " database a file of its own"
            )

    async def _migrate(self, version: int) -> None:
        """Run the migrations after ``version``, inside the caller's transaction."""
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            if isinstance(script, str):
                for statement in filter(str.strip, script.split(";")):
                    await self._db.execute(statement)
            else:
                await self._in_thread(script)
            await self._db.execute(f"PRAGMA user_version = {number}")

    async def close(self) -> None:
        async with self._lock:
            with suppress(sqlite3.Error):  # kept on disk unflagged; the next start retries
                await self._in_thread(self._stories.flush)
        await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            try:
                # inside the try: a caller cancelled while BEGIN is queued still gets it
                # run by aiosqlite's thread, and must not leave that transaction open
                await self._db.execute("BEGIN IMMEDIATE")
                yield
            except BaseException:
                with suppress(sqlite3.OperationalError):  # BEGIN itself may have failed
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _first(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row:
        row = await self._first(sql, params)
        assert row is not None
        return row

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _in_thread(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` on the connection in aiosqlite's own thread, in ONE hop.

        A poll's commit is dozens of statements; as separate awaits each costs a thread
        hop and an event-loop wake-up, which profiling showed to be most of a cold poll
        (docs/performance.md). aiosqlite has no public call for this, so its queue is used
        through ``_execute`` (present since 0.17; pinned below 0.23 in pyproject.toml).
        The caller holds ``_lock``, as for any other statement.
        """
        db = self._db
        result: _T = await db._execute(work, db._conn)  # type: ignore[no-untyped-call]
        return result

    async def _grouped(
        self,
        queue: list[tuple[_A, asyncio.Future[_T]]],
        item: _A,
        work: Callable[[sqlite3.Connection, list[_A]], list[_T]],
    ) -> _T:
        """``work`` for ``item``, together with the others of its kind that queue while the
        lock is busy: whichever of them gets the lock first serves them all in ONE thread
        hop (a group commit). At 1,300 polls/s of 304s, a hop per feed-state read and per
        cursor write was the steady state's limit (docs/performance.md).

        A hop, once queued, runs to its end in aiosqlite's thread even if the caller that
        queued it is cancelled; the others it serves get their results when it ends.
        """
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        queue.append((item, future))
        try:
            async with self._lock:
                if any(waiting is future for _, waiting in queue):
                    batch = queue[:]
                    queue.clear()
                    items = [a for a, _ in batch]
                    run = self._in_thread(lambda db: work(db, items))
                    # a task that may outlive every caller: keep it referenced
                    self._hops.add(hop := asyncio.create_task(run))
                    hop.add_done_callback(self._hops.discard)
                    hop.add_done_callback(partial(_settle, batch))
                    await asyncio.shield(hop)
            return await future
        except asyncio.CancelledError:
            if (item, future) in queue:  # cancelled while waiting: not done for anyone
                queue.remove((item, future))
            raise

    async def _column(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """The first column of a read's rows; reads that queue meanwhile share its hop
        (each poll with entries reads its feed's recent and known keys)."""
        return await self._grouped(self._reads, (sql, params), _read_columns)

    # -- feeds ---------------------------------------------------------------------

    async def sync_feeds(self, feeds: Mapping[str, str | None], now: float, spread: float) -> None:
        """Make sure every watched feed (URL -> configured name, if any) has a row.

        New feeds get their first poll spread over ``spread`` seconds from now, so a long
        watchlist does not hit every server in the same second.
        """
        async with self._transaction():
            known = {r[0] for r in await self._db.execute_fetchall("SELECT url FROM feeds")}
            new = [url for url in feeds if url not in known]
            await self._db.executemany(
                "INSERT INTO feeds (url, name, next_poll_at) VALUES (?, ?, ?)",
                [
                    (url, feeds[url], now + spread * i / max(1, len(new)))
                    for i, url in enumerate(new)
                ],
            )
            await self._db.executemany(
                "UPDATE feeds SET name = ? WHERE url = ? AND name IS NOT ?",
                [(name, url, name) for url, name in feeds.items()],
            )

    async def feed_state(self, url: str) -> FeedState:
        row = await self._grouped(self._state_reads, url, _feed_states)
        assert row is not None
        location = Location(row[6], row[7], row[8])
        return FeedState(
            row[0], row[1], row[2], row[3], bool(row[4]), row[5], location, row[9], row[10]
        )

    async def due_feeds(
        self, wanted: Container[str], now: float, *, force: bool = False
    ) -> list[str]:
        """Watched, enabled feeds due now; with ``force``, every one whose Retry-After is
        not still in force (``run --once``)."""
        rows = await self._all(
            "SELECT url FROM feeds WHERE disabled_reason IS NULL AND not_before <= ?"
            " AND (? OR next_poll_at <= ?)",
            (now, force, now),
        )
        return [r[0] for r in rows if r[0] in wanted]

    async def record_failure(
        self,
        feed_id: int,
        now: float,
        next_poll_at: float,
        status: int | None,
        error: str,
        *,
        not_before: float = 0.0,
        disable: str | None = None,
    ) -> float:
        """A failed poll: the error, the backoff, a Retry-After in force (``not_before``),
        or (``disable``) the reason the feed is polled no more. Returns when the feed's
        failure streak began (its notices' episode)."""
        async with self._transaction():
            row = await self._one(
                "UPDATE feeds SET last_poll_at = ?, last_status = ?, last_error = ?,"
                " consecutive_errors = consecutive_errors + 1, next_poll_at = ?,"
                " not_before = ?, disabled_reason = ?, failing_since = COALESCE(failing_since, ?)"
                " WHERE id = ? RETURNING failing_since",
                (now, status, error, next_poll_at, not_before, disable, now, feed_id),
            )
        return float(row[0])

    async def enable_feed(self, url: str, now: float) -> bool:
        """Poll a disabled feed again (``newsmon resume``), a new episode for its notices;
        False if it was not disabled."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE feeds SET disabled_reason = NULL, next_poll_at = ?, not_before = 0,"
                " failing_since = NULL WHERE url = ? AND disabled_reason IS NOT NULL",
                (now, url),
            )
            return cursor.rowcount == 1

    async def known_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` this feed has delivered before."""
        sql = (
            "SELECT key FROM entries WHERE feed_id = ? AND key IN (SELECT value FROM json_each(?))"
        )
        return set(await self._column(sql, (feed_id, json.dumps(list(keys)))))

    async def recent_keys(self, feed_id: int, limit: int) -> frozenset[str]:
        """The keys of the feed's ``limit`` newest entries: what its next document most
        likely repeats, so the parser can skip them (``parse_feed``'s ``seen``)."""
        sql = "SELECT key FROM entries WHERE feed_id = ? ORDER BY id DESC LIMIT ?"
        return frozenset(await self._column(sql, (feed_id, limit)))

    async def publication_times(self, feed_id: int, *, among: int, limit: int = 20) -> list[float]:
        """When the feed's newest entries were published (or first seen, when undated): the
        ``limit`` latest among the ``among`` it stored last. Pass its ``max_entries``: a
        poll stores at most that many, in whatever order the feed lists them (oldest
        first, a first poll's newest item gets the lowest id), so its latest dates are
        among them. Reading the whole history took 50 ms a poll at 20,000 entries, this
        0.1 ms (docs/performance.md)."""
        rows = await self._all(
            "SELECT t FROM (SELECT COALESCE(published, seen_at) AS t FROM entries"
            " WHERE feed_id = ? ORDER BY id DESC LIMIT ?) ORDER BY t DESC LIMIT ?",
            (feed_id, max(limit, among), limit),
        )
        return [r[0] for r in rows]

    async def extracted_body(self, url: str) -> str | None:
        """The body already extracted from the page at ``url`` (another feed linked it)."""
        rows = await self._all(
            "SELECT body FROM entries WHERE url = ? AND body_status = 'extracted'"
            " AND body != '' LIMIT 1",
            (url,),
        )
        return str(rows[0][0]) if rows else None

    async def commit_poll(
        self,
        feed: FeedState,
        *,
        now: float,
        next_poll_at: float,
        cursor: Cursor,
        title: str | None,
        stories: Sequence[Story],
        destinations: Mapping[str, Sequence[str]],
        clustering: ClusterPolicy | None = None,
        per_copy: AbstractSet[str] = frozenset(),
        caps: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Store a successful poll in ONE transaction: the new entries, their hits, one
        pending delivery per hit and destination (rule -> notifiers), and the feed's cursor.

        With ``clustering``, each entry is filed under the story of an earlier copy (see
        ``_file_entries``); rules named in ``per_copy`` key their hits by the entry's own
        story key instead, so every copy alerts. ``caps`` (rule -> max_per_hour): a hit
        past its rule's cap over the last hour, counted across all feeds, is stored but its
        deliveries join the rule's storm digest instead (``_storm_digest``). A crash before
        COMMIT leaves the old cursor, so the entries are fetched again; after it, nothing
        is lost. Returns the ids of hits that are new.
        """

        def commit(db: sqlite3.Connection) -> list[str]:
            filed = _file_entries(db, self._stories, feed.id, stories, now, clustering)
            hits = _file_hits(db, feed.id, stories, filed, destinations, per_copy, caps or {}, now)
            _save_cursor(db, feed.id, cursor, now, next_poll_at, title)
            if any(entry_id is not None for _, entry_id in filed):
                _found_new(db, feed.id, now)
            return hits

        outcome = await self._grouped(
            self._poll_commits, commit, lambda db, polls: _commit_polls(db, polls, self._stories)
        )
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def silent_feeds(
        self, now: float, *, beats: int, factor: float, floor: float
    ) -> list[SilentFeed]:
        """Each feed that still answers but has found nothing new for ``factor`` times its
        rhythm and at least ``floor`` seconds, once ``beats`` polls have set its rhythm.
        Failing and disabled feeds have notices of their own."""
        rows = await self._all(
            "SELECT url, last_new_at, rhythm, rhythm_n, title FROM feeds"
            " WHERE disabled_reason IS NULL"
            " AND consecutive_errors = 0 AND rhythm_n >= ?"
            " AND ? - last_new_at > MAX(? * rhythm, ?)",
            (beats, now, factor, floor),
        )
        return [SilentFeed(r[0], float(r[1]), float(r[2]), r[3], r[4]) for r in rows]

    async def record_not_modified(
        self, feed_id: int, now: float, next_poll_at: float, cursor: Cursor
    ) -> None:
        """A 304's cursor; those of polls that finish together share one transaction,
        which holds nothing else (a poll with entries commits them with its cursor)."""
        item = _NotModified(feed_id, now, next_poll_at, cursor)
        await self._grouped(self._not_modified, item, _save_not_modified)

    async def feeds(self) -> list[FeedRow]:
        rows = await self._all(
            "SELECT url, COALESCE(name, title), last_poll_at, last_success_at, last_status,"
            " last_error, consecutive_errors, next_poll_at, disabled_reason,"
            " COALESCE(fetch_url, url), moved_to FROM feeds ORDER BY url"
        )
        return [FeedRow(*r) for r in rows]

    # -- the outbox ----------------------------------------------------------------
    #
    # An outbox id names a delivery (one hit for one destination) or a digest (several of
    # one destination's deliveries in one message). A digest's members mirror its state,
    # so every hit's fate shows in `newsmon deliveries` whichever way it went.
    # A destination's deliveries are ordered by `+created_at`: the plus keeps SQLite on
    # the destination's index, not on walking every delivery by age (deliveries_created,
    # for the listing), whatever statistics an ANALYZE may have left.

    async def recover_sending(self, now: float, notifier: str | None = None) -> int:
        """Rows a crash left in 'sending' go back to pending: at most one extra copy.
        ``notifier``: only that destination's, once its lane has no attempt in hand.
        Returns how many deliveries were in flight."""
        which = "state = 'sending'" + (" AND notifier = ?" if notifier else "")
        params = (now, now, *([notifier] if notifier else []))
        async with self._transaction():
            changes = "SET state = 'pending', next_attempt_at = ?, updated_at = ?"
            for table in _OUTBOX_TABLES:  # deliveries last: its count is returned
                cursor = await self._db.execute(f"UPDATE {table} {changes} WHERE {which}", params)
            return cursor.rowcount

    async def shift_schedule(self, seconds: float) -> None:
        """Move every wait by ``seconds``: the wall clock jumped that far (RELIABILITY.md
        case 62). Feeds' due times and Retry-Afters, and the open outbox rows' times
        (created, next attempt, a storm digest's close: their ages decide expiry and
        digest windows), so each wait keeps its length; a row in 'sending' too, as the
        lane holding it puts it back to pending with its age if the attempt fails. A
        feed's last new entry starts the wait that tells silence (monitor/notices.py)."""
        async with self._transaction():
            await self._db.execute(
                "UPDATE feeds SET next_poll_at = next_poll_at + :by,"
                " not_before = CASE WHEN not_before > 0 THEN not_before + :by ELSE 0 END,"
                " last_new_at = last_new_at + :by",
                {"by": seconds},
            )
            moved = "SET created_at = created_at + :by, next_attempt_at = next_attempt_at + :by"
            for table in _OUTBOX_TABLES:
                await self._db.execute(
                    f"UPDATE {table} {moved} WHERE state IN ('pending', 'sending')",
                    {"by": seconds},
                )
            await self._db.execute(
                "UPDATE digests SET closes_at = closes_at + ? WHERE state = 'pending'",
                (seconds,),
            )

    async def latest_write(self) -> float | None:
        """The latest time the database recorded a poll or an outbox change: a clock
        now behind it was stepped back while the daemon was down."""
        async with self._lock:
            row = await self._one(
                "SELECT MAX(t) FROM (SELECT MAX(last_poll_at) AS t FROM feeds"
                " UNION ALL SELECT MAX(updated_at) FROM deliveries"
                " UNION ALL SELECT MAX(updated_at) FROM digests"
                " UNION ALL SELECT MAX(updated_at) FROM notices)"
            )
        return None if row[0] is None else float(row[0])

    async def cancel_deliveries(self, notifiers: Iterable[str], now: float) -> int:
        """Open deliveries to destinations no longer in the watchlist end as cancelled."""
        keep = json.dumps(list(notifiers))
        async with self._transaction():
            changes = (
                "SET state = 'cancelled', updated_at = ?, last_error = ?"
                " WHERE state IN ('pending', 'sending')"
                " AND notifier NOT IN (SELECT value FROM json_each(?))"
            )
            for table in _OUTBOX_TABLES:  # deliveries last: its count is returned
                cursor = await self._db.execute(f"UPDATE {table} {changes}", (now, REMOVED, keep))
            return cursor.rowcount

    async def due_deliveries(self, notifier: str, now: float, limit: int) -> list[Delivery]:
        """The destination's pending rows outside any digest, in the order their hits were
        stored, up to the first not yet due: a retry keeps the alerts behind it in order."""
        rows = await self._all(
            "SELECT id, hit_id, notifier, attempts, created_at, next_attempt_at FROM deliveries"
            " WHERE notifier = ? AND state = 'pending' AND digest_id IS NULL"
            " ORDER BY +created_at, rowid LIMIT ?",
            (notifier, limit),
        )
        return [Delivery(*row[:5]) for row in _due(rows, now, 5)]

    async def due_digests(self, notifier: str, now: float) -> list[DigestRow]:
        """The destination's pending digests in order, up to the first not yet due; a
        storm digest still gathering is not in the line yet (``close_storms``)."""
        rows = await self._all(
            "SELECT id, notifier, attempts, created_at, next_attempt_at FROM digests"
            " WHERE notifier = ? AND state = 'pending' AND closes_at IS NULL"
            " ORDER BY created_at, rowid",
            (notifier,),
        )
        return [DigestRow(*row[:4]) for row in _due(rows, now, 4)]

    async def close_storms(self, notifier: str, now: float) -> None:
        """Storm digests whose hour is over stop gathering and join the line."""
        async with self._transaction():
            await self._db.execute(
                "UPDATE digests SET closes_at = NULL, next_attempt_at = ?, updated_at = ?"
                " WHERE notifier = ? AND state = 'pending' AND closes_at <= ?",
                (now, now, notifier, now),
            )

    async def bundle_digest(self, notifier: str, window: float, now: float, limit: int) -> bool:
        """When the oldest delivery waiting for a digest has waited ``window`` seconds,
        bundle up to ``limit`` waiting deliveries (oldest first) into a new digest.

        A delivery joins one digest at most, in the same transaction that creates it, so
        no story is sent twice. Returns whether a digest was made.
        """
        async with self._transaction():
            waiting = [
                r[0]
                for r in await self._db.execute_fetchall(
                    "SELECT id FROM deliveries WHERE notifier = ? AND state = 'pending'"
                    " AND digest_id IS NULL AND +created_at <= ?"
                    " ORDER BY +created_at, rowid LIMIT ?",
                    (notifier, now - window, 1),
                )
            ]
            if not waiting:
                return False
            digest = digest_id(notifier, waiting[0])
            await self._db.execute(
                "INSERT INTO digests (id, notifier, state, created_at, next_attempt_at,"
                " updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                (digest, notifier, now, now, now),
            )
            await self._db.execute(
                "UPDATE deliveries SET digest_id = ?, updated_at = ? WHERE id IN"
                " (SELECT id FROM deliveries WHERE notifier = ? AND state = 'pending'"
                " AND digest_id IS NULL ORDER BY +created_at, rowid LIMIT ?)",
                (digest, now, notifier, limit),
            )
        return True

    async def lane_times(self, notifier: str, window: float | None) -> tuple[float | None, ...]:
        """When this destination's first row in order may next be tried (the rows behind
        it wait for it), and when its next digest closes (with a digest ``window``, or a
        storm digest gathering); None for nothing waiting."""
        async with self._lock:
            notices = await self._first(
                "SELECT next_attempt_at FROM notices WHERE notifier = ? AND state = 'pending'"
                " ORDER BY created_at, rowid LIMIT 1",
                (notifier,),
            )
            digests = await self._first(
                "SELECT next_attempt_at FROM digests WHERE notifier = ? AND state = 'pending'"
                " AND closes_at IS NULL ORDER BY created_at, rowid LIMIT 1",
                (notifier,),
            )
            storm = await self._first(
                "SELECT MIN(closes_at) FROM digests WHERE notifier = ? AND state = 'pending'",
                (notifier,),
            )
            singles = await self._first(
                "SELECT next_attempt_at, created_at FROM deliveries WHERE notifier = ?"
                " AND state = 'pending' AND digest_id IS NULL ORDER BY +created_at, rowid LIMIT 1",
                (notifier,),
            )
        closes = [storm[0]] if storm and storm[0] is not None else []
        times = [row[0] for row in (notices, digests) if row is not None]
        if window is not None:
            closes += [singles[1] + window] if singles else []
        elif singles:
            times.append(singles[0])
        return (min(times) if times else None, min(closes) if closes else None)

    async def open_deliveries(self) -> int:
        async with self._lock:
            row = await self._one(
                "SELECT COALESCE(SUM(n), 0) FROM delivery_tally"
                " WHERE state IN ('pending', 'sending')"
            )
        return int(row[0])

    async def open_notices(self) -> int:
        """Notices pending or being sent (one per incident and destination: a small
        table, read whole)."""
        row = await self._one("SELECT COUNT(*) FROM notices WHERE state IN ('pending', 'sending')")
        return int(row[0])

    async def mark_sending(self, outbox_id: str, now: float) -> None:
        await self._set_state(outbox_id, "sending", now, attempts=1)

    async def mark_sent(self, outbox_id: str, notifier: str, now: float) -> None:
        """Committed as soon as the destination accepted; a success ends a failure streak."""
        async with self._transaction():
            await self._update(outbox_id, "sent", now, error=None)
            await self._db.execute(
                "UPDATE destinations SET failures = 0 WHERE notifier = ? AND failures > 0",
                (notifier,),
            )

    async def retry_or_expire(
        self,
        outbox_id: str,
        now: float,
        at: float,
        *,
        not_before: float,
        max_age: float,
        error: str,
    ) -> float | str:
        """After an attempt failed with ``error`` at ``now``: another at ``at`` (the
        backoff), or, when that falls past the row's deadline (its creation + ``max_age``),
        one last try at the deadline itself, so a row is retried for all of its max_age.
        It ends expired when a try at or after the deadline failed, or when the destination
        asked (Retry-After) to be left alone until ``not_before``, past the deadline: a try
        sooner would go against its wish, and one later against the user's max_age.
        Returns the next attempt's time, or why the row expired (the last error, and the
        destination's wish when it decided). The age is read from the row, not from the
        lane's copy: a clock jump during the attempt moved it (``shift_schedule``). A row
        that is gone has nothing left to try: expired, and nothing written."""
        async with self._transaction():
            row = await self._first(
                "SELECT created_at, attempts FROM deliveries WHERE id = ? UNION ALL"
                " SELECT created_at, attempts FROM digests WHERE id = ? UNION ALL"
                " SELECT created_at, attempts FROM notices WHERE id = ?",
                (outbox_id,) * 3,
            )
            if row is None:
                return error
            deadline = row[0] + max_age
            if at <= deadline or (now < deadline and not_before <= deadline):
                at = min(at, deadline)
                await self._update(outbox_id, "pending", now, error=error, next_attempt_at=at)
                return at
            why = error
            if now < deadline:
                asked, left = span(not_before - now), span(deadline - now)
                if asked == left:  # rounded alike ("2m" and "2m"): in seconds, which differ
                    asked, left = f"{not_before - now:.0f}s", f"{deadline - now:.0f}s"
                why += f"; the destination asked us to wait {asked}, and max_age ends in {left}"
            tries = f"{row[1]} {'try' if row[1] == 1 else 'tries'}"
            await self._update(outbox_id, "expired", now, error=f"gave up after {tries}: {why}")
            return why

    async def mark_failed(
        self, outbox_id: str, notifier: str, now: float, error: str, *, pause_after: int
    ) -> bool:
        """End a row as failed for good and count the failure against its destination;
        True when this failure is the one that pauses the destination."""
        async with self._transaction():
            await self._update(outbox_id, "failed", now, error=error)
            row = await self._one(
                "INSERT INTO destinations (notifier, failures) VALUES (?, 1)"
                " ON CONFLICT (notifier) DO UPDATE SET failures = failures + 1"
                " RETURNING failures, paused_at",
                (notifier,),
            )
            if row[1] is not None or row[0] < pause_after:
                return False
            reason = f"{row[0]} permanent failures in a row, the last: {error}"
            await self._db.execute(
                "UPDATE destinations SET paused_at = ?, paused_reason = ? WHERE notifier = ?",
                (now, reason, notifier),
            )
            return True

    async def paused(self, notifier: str) -> str | None:
        """Why the destination is paused, or None when it is not."""
        rows = await self._all(
            "SELECT paused_reason FROM destinations WHERE notifier = ? AND paused_at IS NOT NULL",
            (notifier,),
        )
        return str(rows[0][0]) if rows else None

    async def resume(self, notifier: str) -> bool:
        """Unpause a destination (its failure streak starts again); False if not paused."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE destinations SET paused_at = NULL, paused_reason = NULL, failures = 0"
                " WHERE notifier = ? AND paused_at IS NOT NULL",
                (notifier,),
            )
            return cursor.rowcount == 1

    async def destinations(self) -> list[DestinationRow]:
        rows = await self._all(
            "SELECT notifier, failures, paused_at, paused_reason FROM destinations"
            " ORDER BY notifier"
        )
        return [DestinationRow(*r) for r in rows]

    async def _set_state(
        self,
        outbox_id: str,
        state: str,
        now: float,
        *,
        attempts: int = 0,
        error: str | None = "",
        next_attempt_at: float | None = None,
    ) -> None:
        async with self._transaction():
            await self._update(
                outbox_id, state, now, attempts=attempts, error=error,
                next_attempt_at=next_attempt_at,
            )  # fmt: skip

    async def _update(
        self,
        outbox_id: str,
        state: str,
        now: float,
        *,
        attempts: int = 0,
        error: str | None = "",
        next_attempt_at: float | None = None,
    ) -> None:
        """Set a delivery's, or a digest's and its members', state; '' keeps the error."""
        changes = (
            "SET state = ?, updated_at = ?, attempts = attempts + ?,"
            " last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,"
            " next_attempt_at = COALESCE(?, next_attempt_at)"
        )
        values = (state, now, attempts, error, error, next_attempt_at, outbox_id)
        await self._db.execute(f"UPDATE notices {changes} WHERE id = ?", values)
        await self._db.execute(f"UPDATE digests {changes} WHERE id = ?", values)
        await self._db.execute(
            f"UPDATE deliveries {changes} WHERE id = ? OR digest_id = ?", (*values, outbox_id)
        )

    async def requeue(self, delivery: str, now: float, notifiers: Container[str]) -> str | None:
        """Put a failed, expired or cancelled delivery to one of ``notifiers`` (those of
        the watchlist) back in the queue, out of any digest it was in (a digest window
        bundles it afresh); None when done, else why not. A delivery cancelled because its
        notifier left the watchlist can so be sent once the notifier is back."""
        async with self._transaction():
            row = await self._one(
                "SELECT state, notifier FROM deliveries WHERE id = ?", (delivery,)
            )
            if row is None or row[0] not in ("failed", "expired", "cancelled"):
                return f"it is {row[0] if row else 'gone'}, not failed, expired or cancelled"
            if row[1] not in notifiers:
                return f"its notifier {row[1]} is not in the watchlist"
            await self._db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated_at = ?,"
                " created_at = ?, attempts = 0, digest_id = NULL WHERE id = ?",
                (now, now, now, delivery),
            )
            return None

    async def alert(self, delivery: Delivery) -> Alert:
        """Everything a notifier needs, read fresh at each attempt (``also`` grows)."""
        async with self._lock:
            return await self._alert(delivery)

    async def _alert(self, delivery: Delivery) -> Alert:
        row = await self._one(
            "SELECT h.rule, e.title, e.url, COALESCE(f.name, f.title, f.url), e.published,"
            " h.matched, h.snippet, h.story_key, e.feed_id FROM hits h"
            " JOIN entries e ON e.id = h.entry_id JOIN feeds f ON f.id = e.feed_id"
            " WHERE h.id = ?",
            (delivery.hit_id,),
        )
        # other outlets (DESIGN.md 4): each feed once, with its first copy (SQLite gives a
        # bare column of the row MIN picked), the alerted feed's own copies left out, and
        # at most MAX_ALSO: a feed posting one text under ever new links grew the list
        # with every attempt of an alert held back by an outage
        async with self._db.execute(
            "SELECT e.url, COALESCE(f.name, f.title, f.url), e.title, MIN(e.seen_at)"
            " FROM entries e JOIN feeds f ON f.id = e.feed_id"
            " WHERE e.story_key = ? AND e.feed_id != ?"
            " GROUP BY e.feed_id ORDER BY MIN(e.seen_at), e.feed_id LIMIT ?",
            (row[7], row[8], MAX_ALSO),
        ) as cursor:
            others = await cursor.fetchall()
        published = datetime.fromtimestamp(row[4], UTC) if row[4] is not None else None
        return Alert(
            delivery_id=delivery.id,
            hit_id=delivery.hit_id,
            rule=row[0],
            title=row[1],
            url=row[2],
            feed=row[3],
            published=published,
            matched=tuple(json.loads(row[5])),
            snippet=row[6],
            also=tuple(AlsoSeen(o[0], o[1], o[2]) for o in others),
        )

    async def digest(self, row: DigestRow) -> Digest:
        """A digest's alerts, in the order their hits were stored, each read fresh; of a
        storm digest only the first ``STORM_SHOWN``, and how many it holds."""
        async with self._lock:
            head = await self._one(
                "SELECT rule, (SELECT COUNT(*) FROM deliveries WHERE digest_id = ?)"
                " FROM digests WHERE id = ?",
                (row.id, row.id),
            )
            async with self._db.execute(
                "SELECT id, hit_id, notifier, attempts, created_at FROM deliveries"
                " WHERE digest_id = ? ORDER BY +created_at, rowid LIMIT ?",
                (row.id, -1 if head[0] is None else STORM_SHOWN),
            ) as cursor:
                members = await cursor.fetchall()
            alerts = [await self._alert(Delivery(*m)) for m in members]
        return Digest(row.id, row.notifier, tuple(alerts), head[0], int(head[1]))

    async def add_notice(
        self, kind: str, subject: str, episode: str, text: str, notifiers: Iterable[str],
        now: float,
    ) -> bool:  # fmt: skip
        """Queue a notice for each of ``notifiers``, once per (kind, subject, episode):
        raising it again (the next poll, a restart) adds nothing. True when it is new."""
        async with self._transaction():
            cursor = await self._db.executemany(
                "INSERT INTO notices (id, notifier, kind, subject, text, state, created_at,"
                " next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                [
                    (notice_id(kind, subject, episode, n), n, kind, subject, text, now, now, now)
                    for n in notifiers
                ],
            )
            return cursor.rowcount > 0

    async def due_notices(self, notifier: str, now: float) -> list[Notice]:
        """The destination's pending notices in order, up to the first not yet due."""
        rows = await self._all(
            "SELECT id, notifier, kind, subject, text, attempts, created_at, next_attempt_at"
            " FROM notices WHERE notifier = ? AND state = 'pending' ORDER BY created_at, rowid",
            (notifier,),
        )
        return [Notice(*row[:7]) for row in _due(rows, now, 7)]

    async def notices(self, limit: int = 100) -> list[tuple[Notice, str]]:
        """The latest notices, newest first, each with its state."""
        rows = await self._all(
            "SELECT id, notifier, kind, subject, text, attempts, created_at, state FROM notices"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [(Notice(*r[:7]), str(r[7])) for r in rows]

    async def delivery_ids(self, prefix: str) -> list[str]:
        """Delivery ids starting with ``prefix`` (two at most: enough to say "ambiguous")."""
        rows = await self._all(
            "SELECT id FROM deliveries WHERE substr(id, 1, ?) = ? LIMIT 2", (len(prefix), prefix)
        )
        return [str(r[0]) for r in rows]

    async def deliveries(self, *, failed_only: bool = False, limit: int = 100) -> list[DeliveryRow]:
        """The newest deliveries (only the failed and expired: ``failed_only``), read by
        age through deliveries_created or deliveries_failed, never by sorting them all."""
        # a literal condition, not a parameter: only then can SQLite use the partial index
        which = "WHERE d.state IN ('failed', 'expired')" if failed_only else ""
        rows = await self._all(
            "SELECT d.id, d.hit_id, d.notifier, d.state, d.attempts, d.created_at, d.updated_at,"  # noqa: S608
            " d.next_attempt_at, d.last_error, h.rule, e.title, d.digest_id FROM deliveries d"
            f" JOIN hits h ON h.id = d.hit_id JOIN entries e ON e.id = h.entry_id {which}"
            " ORDER BY d.created_at DESC, d.rowid DESC LIMIT ?",
            (limit,),
        )
        return [DeliveryRow(*r) for r in rows]

    async def hits(self, *, rule: str | None, since: float, limit: int = 200) -> list[HitRow]:
        rows = await self._all(
            "SELECT h.id, h.rule, e.title, e.url, COALESCE(f.name, f.title, f.url), h.matched,"
            " h.snippet, h.created_at, e.published FROM hits h JOIN entries e ON e.id = h.entry_id"
            " JOIN feeds f ON f.id = e.feed_id WHERE h.created_at >= ? AND (? IS NULL OR"
            " h.rule = ?) ORDER BY h.created_at DESC LIMIT ?",
            (since, rule, rule, limit),
        )
        return [
            HitRow(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7], r[8])
            for r in rows
        ]

    # -- stories -------------------------------------------------------------------

    async def find_story(
        self, print_: Fingerprint, now: float, window: float, threshold: float
    ) -> str | None:
        """The story an entry with this fingerprint would join now, or None."""

        def find(db: sqlite3.Connection) -> str | None:
            bands, since = cluster.bands(print_), now - window
            on_disk = self._stories.on_disk(db, bands, since)
            return _best_story(
                db, print_, self._stories.candidates(bands, since, on_disk), threshold
            )

        async with self._lock:
            return await self._in_thread(find)

    async def also_seen(self, hit_ids: Sequence[str]) -> dict[str, list[AlsoSeen]]:
        """For each hit, the other entries filed under its story, oldest first: the copies
        that arrived after its alert went out are shown here, never alerted again."""
        rows = await self._all(
            "SELECT h.id, e.url, COALESCE(f.name, f.title, f.url), e.title FROM hits h"
            " JOIN entries e ON e.story_key = h.story_key AND e.id != h.entry_id"
            " JOIN feeds f ON f.id = e.feed_id"
            " WHERE h.id IN (SELECT value FROM json_each(?)) ORDER BY e.seen_at, e.id",
            (json.dumps(list(hit_ids)),),
        )
        also: dict[str, list[AlsoSeen]] = {}
        for row in rows:
            also.setdefault(row[0], []).append(AlsoSeen(row[1], row[2], row[3]))
        return also

    async def prune(self, now: float, retention: float, window: float) -> int:
        """Forget the text of entries older than ``retention``: bodies and fingerprints go,
        rows, keys and hits stay, so a pruned story still in a feed is not new again.
        Band keys go once older than the clustering ``window``: no lookup reads them
        then, and kept for the whole retention (30 days against 3 by default) they made
        the band index ten times the rows every flush writes into.
        Returns how many bodies were cleared."""
        cutoff = now - retention
        async with self._lock:  # held band keys first, so the deletes below see them all
            await self._in_thread(self._stories.flush)
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE entries SET body = '' WHERE seen_at < ? AND body != ''", (cutoff,)
            )
            unbanded = await self._db.execute(
                "DELETE FROM story_bands WHERE entry_id NOT IN"
                " (SELECT entry_id FROM story_prints WHERE seen_at >= ?)",
                (now - window,),
            )
            await self._db.execute("DELETE FROM story_prints WHERE seen_at < ?", (cutoff,))
            # Told under the same lock: a poll that made the map from the pruned table in
            # between would count the keys deleted twice. (A key mapped but deleted is
            # only a wasted probe; should the COMMIT fail, the count is merely low.)
            await self._in_thread(partial(self._stories.pruned, deleted=unbanded.rowcount))
        return cursor.rowcount

    async def archive_size(self, since: float) -> int:
        """How many stored entries were seen since ``since`` (for a progress bar)."""
        async with self._lock:
            row = await self._one("SELECT COUNT(*) FROM entries WHERE seen_at >= ?", (since,))
        return int(row[0])

    async def archive(self, since: float, page: int = 500) -> AsyncIterator[list[StoredEntry]]:
        """Stored entries seen since ``since``, oldest first, a page at a time; the lock is
        held per page only, so a running daemon's commits interleave."""
        after = 0
        while True:
            rows = await self._all(
                "SELECT e.id, e.story_key, COALESCE(f.name, f.title, f.url), f.url, e.title,"
                " e.url, e.summary, e.body, e.published, e.seen_at FROM entries e"
                " JOIN feeds f ON f.id = e.feed_id WHERE e.seen_at >= ? AND e.id > ?"
                " ORDER BY e.id LIMIT ?",
                (since, after, page),
            )
            if not rows:
                return
            yield [StoredEntry(*r) for r in rows]
            after = rows[-1][0]

    # -- health: the watchdog, `newsmon status` and metrics -------------------------

    async def ping(self) -> None:
        """A read of the database header: proves the connection's thread answers and the
        file can be read. Raises StoreError when it cannot."""
        try:
            async with self._lock:
                await self._one("PRAGMA user_version")
        except sqlite3.Error as e:
            raise StoreError(f"database does not answer: {e}") from None

    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        """(notifier, state) -> number of deliveries, for every pair there has been (a
        state emptied since counts 0)."""
        rows = await self._all("SELECT notifier, state, n FROM delivery_tally")
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def hit_counts(self) -> dict[str, int]:
        """rule -> number of hits stored."""
        rows = await self._all("SELECT rule, n FROM hit_tally")
        return {r[0]: int(r[1]) for r in rows}

    async def hits_since(self, since: float) -> int:
        """How many hits were stored at or after ``since``: a range of the created_at
        index. Counted per rule and summed, it read every hit ever stored (hits are
        kept), 21.7 ms at 365,000 against 0.04, for each STATUS= line."""
        row = await self._one("SELECT COUNT(*) FROM hits WHERE created_at >= ?", (since,))
        return int(row[0])


# -- a poll's commit, run in the connection's thread (Store._in_thread) ----------------


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode: BEGIN by hand)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _settle(batch: list[tuple[_A, asyncio.Future[_T]]], hop: asyncio.Future[list[_T]]) -> None:
    """Hand a group's results, or its error, to each member still waiting."""
    error = hop.exception() if not hop.cancelled() else asyncio.CancelledError()
    for i, (_, waiting) in enumerate(batch):
        if waiting.done():  # its caller was cancelled meanwhile
            continue
        if error is not None:
            waiting.set_exception(error)
            waiting.exception()  # its owner may be gone: never "never retrieved"
        else:
            waiting.set_result(hop.result()[i])


_PollCommit = Callable[[sqlite3.Connection], list[str]]


def _commit_polls(
    db: sqlite3.Connection, polls: list[_PollCommit], stories: StoryIndex
) -> list[list[str] | Exception]:
    """Polls that finished together, in ONE transaction: a cold start's story-band inserts
    land all over their index, and a commit per poll wrote most of its pages again each
    time (docs/performance.md). Each poll has its own savepoint, so one that fails leaves
    the others' work to commit; its caller gets the error. Then, in a transaction of its
    own, the band keys held back in memory are written if enough have gathered."""
    outcomes: list[list[str] | Exception] = []
    stories.map_written(db)  # before the write lock: a first map reads every key
    group = stories.mark()
    try:
        with _immediate(db):
            for poll in polls:
                db.execute("SAVEPOINT poll")
                mark = stories.mark()
                try:
                    outcomes.append(poll(db))
                except Exception as e:  # handed to that poll's caller
                    db.execute("ROLLBACK TO poll")
                    stories.roll_back(mark)
                    outcomes.append(e)
                db.execute("RELEASE poll")
    except BaseException:
        stories.roll_back(group)
        raise
    if stories.due():
        with suppress(sqlite3.Error):  # still held, and on disk unflagged: tried again later
            stories.flush(db)
    return outcomes


def _file_entries(
    db: sqlite3.Connection,
    index: StoryIndex,
    feed_id: int,
    stories: Sequence[Story],
    now: float,
    policy: ClusterPolicy | None,
) -> list[tuple[str, int | None]]:
    """Insert the poll's entries in order, each under its story key; returns each one's
    key and row id (None when the row was already there).

    Inside the poll's transaction, so a copy in the same batch, or in a feed polled at
    the same moment (the transaction lock serialises commits), finds the one before it.
    A URL seen before keeps its story whatever the text says now; otherwise a
    fingerprint within the window decides; otherwise the entry starts a story.
    """
    filed = []
    prints = [story.fingerprint for story in stories]
    banded = [cluster.bands(p) if p is not None else [] for p in prints]
    since = now - policy.window if policy is not None else now
    on_disk = index.on_disk(db, itertools.chain.from_iterable(banded), since) if policy else {}
    for story, bands in zip(stories, banded, strict=True):
        key = story.story_key
        if policy is not None:
            known = _known_story(db, story)
            if known is not None:
                key = known
            elif story.fingerprint is not None:
                candidates = index.candidates(bands, since, on_disk)
                key = _best_story(db, story.fingerprint, candidates, policy.threshold) or key
        entry = story.entry
        inserted = db.execute(
            "INSERT INTO entries (feed_id, key, url, story_key, title, summary, body,"
            " body_status, published, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (feed_id, key) DO NOTHING RETURNING id",
            (
                feed_id, entry.key, entry.url, key, entry.title, entry.summary, story.body,
                story.body_status.value, _ts(entry.published), now,
            ),
        ).fetchone()  # fmt: skip
        if inserted is not None and story.fingerprint is not None:
            index.add(db, inserted[0], story.fingerprint, bands, now)
        filed.append((key, inserted[0] if inserted is not None else None))
    return filed


def _file_hits(
    db: sqlite3.Connection,
    feed_id: int,
    stories: Sequence[Story],
    filed: Sequence[tuple[str, int | None]],
    destinations: Mapping[str, Sequence[str]],
    per_copy: AbstractSet[str],
    caps: Mapping[str, int],
    now: float,
) -> list[str]:
    """Each alertable story's new hits, with one pending delivery per destination (in
    the rule's storm digest once the rule is past its cap); returns the new hits' ids."""
    new_hits: list[str] = []
    for story, (story_key, entry_id) in zip(stories, filed, strict=True):
        if not story.alertable or not story.matches:
            continue
        if entry_id is None:  # stored before: find its row
            entry_id = db.execute(
                "SELECT id FROM entries WHERE feed_id = ? AND key = ?", (feed_id, story.entry.key)
            ).fetchone()[0]
        for match in story.matches:
            key = story.story_key if match.rule in per_copy else story_key
            hid = hit_id(match.rule, key)
            inserted = db.execute(
                "INSERT INTO hits (id, rule, story_key, entry_id, matched, snippet,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (hid, match.rule, key, entry_id, json.dumps(match.matched_words), match.snippet,
                 now),
            )  # fmt: skip
            if inserted.rowcount != 1:
                continue  # this story already alerted for this rule
            new_hits.append(hid)
            cap = caps.get(match.rule)
            storm = cap is not None and _over_cap(db, match.rule, cap, now)
            rows = []
            for n in destinations.get(match.rule, ()):
                did = delivery_id(hid, n)
                digest = _storm_digest(db, n, match.rule, did, now) if storm else None
                rows.append((did, hid, n, now, now, now, digest))
            db.executemany(
                "INSERT INTO deliveries (id, hit_id, notifier, state, created_at,"
                " next_attempt_at, updated_at, digest_id) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                rows,
            )
    return new_hits


def _over_cap(db: sqlite3.Connection, rule: str, cap: int, now: float) -> bool:
    """Whether the rule has more than ``cap`` hits (this one included) in the last hour,
    across all feeds, inside the caller's transaction (RELIABILITY.md case 28)."""
    row = db.execute(
        "SELECT COUNT(*) FROM hits WHERE rule = ? AND created_at > ?", (rule, now - STORM_WINDOW)
    ).fetchone()
    return int(row[0]) > cap


def _storm_digest(db: sqlite3.Connection, notifier: str, rule: str, first: str, now: float) -> str:
    """The destination's open storm digest for ``rule``, made (named after ``first``) when
    there is none: it gathers the rule's hits past the cap for an hour, then goes as one
    summary message."""
    row = db.execute(
        "SELECT id FROM digests WHERE notifier = ? AND rule = ? AND state = 'pending'"
        " AND closes_at > ? LIMIT 1",
        (notifier, rule, now),
    ).fetchone()
    if row is not None:
        return str(row[0])
    digest, closes = digest_id(notifier, first), now + STORM_WINDOW
    db.execute(
        "INSERT INTO digests (id, notifier, state, created_at, next_attempt_at, updated_at,"
        " rule, closes_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
        (digest, notifier, now, closes, now, rule, closes),
    )
    return digest


def _known_story(db: sqlite3.Connection, story: Story) -> str | None:
    """The story already filed under the entry's link or its canonical URL."""
    for url in dict.fromkeys((story.entry.url, story.story_key)):
        if url is None:
            continue
        row = db.execute(
            "SELECT story_key FROM entries WHERE url = ? ORDER BY id LIMIT 1", (url,)
        ).fetchone()
        if row:
            return str(row[0])
    return None


def _refingerprint(db: sqlite3.Connection) -> None:
    """Every stored fingerprint made again from its entry's text, with its band keys; and
    the flag that says whether an entry's band keys are written (monitor/story_index.py).

    The texts are streamed (a month of articles does not fit in the unit's memory), and
    the keys written at the end in their order, each page of their index once."""
    db.execute("ALTER TABLE story_prints ADD COLUMN banded INTEGER NOT NULL DEFAULT 1")
    db.execute("CREATE INDEX story_prints_unbanded ON story_prints(entry_id) WHERE banded = 0")
    db.execute("CREATE TEMP TABLE old_prints AS SELECT entry_id, seen_at FROM story_prints")
    db.execute("CREATE TEMP TABLE made_bands (entry_id INTEGER, seen_at REAL, bands TEXT)")
    db.execute("DELETE FROM story_bands")
    db.execute("DELETE FROM story_prints")
    rows = db.execute(
        "SELECT o.entry_id, e.title, e.summary, e.body, o.seen_at FROM temp.old_prints AS o"
        " JOIN entries AS e ON e.id = o.entry_id"
    )
    for entry_id, title, summary, body, seen_at in rows:
        print_ = cluster.story_fingerprint(title or "", summary or "", body or "")
        if print_ is None:
            continue
        db.execute(
            "INSERT INTO story_prints (entry_id, shingles, signature, seen_at) VALUES (?, ?, ?, ?)",
            (entry_id, print_.shingles, print_.signature, seen_at),
        )
        db.execute(
            "INSERT INTO temp.made_bands VALUES (?, ?, ?)",
            (entry_id, seen_at, json.dumps(cluster.bands(print_))),
        )
    db.execute(  # keys as schema 8 kept them, 64 bits wide: migration 9 narrows them
        "INSERT OR IGNORE INTO story_bands (band, seen_at, entry_id)"
        " SELECT band.value << ?, made.seen_at, made.entry_id"
        " FROM temp.made_bands AS made, json_each(made.bands) AS band ORDER BY 1, 2, 3",
        (cluster.HIGH_HALF,),
    )
    db.execute("DROP TABLE temp.old_prints")
    db.execute("DROP TABLE temp.made_bands")


def _narrow_bands(db: sqlite3.Connection) -> None:
    """``story_bands`` rows of about 10 bytes instead of 23: a 32-bit key and the entry,
    whose ``seen_at`` the lookup reads from ``story_prints``. Writing and probing the
    narrower index costs about half (docs/clustering.md).

    A new key is the top half of the old one (``cluster.bands``), so SQL narrows them;
    read in the old keys' order, they arrive in the new order but within a top half, so
    each page of the new index is written once. Making them again from the signatures,
    in random order, took 102 s for a 30-day window at 10,000 entries a day (12.6 million
    keys), past the unit's start timeout; this takes 6 s (docs/clustering.md)."""
    db.execute("ALTER TABLE story_bands RENAME TO story_bands_8")
    db.execute(
        "CREATE TABLE story_bands (band INTEGER NOT NULL, entry_id INTEGER NOT NULL,"
        " PRIMARY KEY (band, entry_id)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT OR IGNORE INTO story_bands (band, entry_id)"
        " SELECT band >> ?, entry_id FROM story_bands_8",
        (cluster.HIGH_HALF,),
    )
    db.execute("DROP TABLE story_bands_8")


def _tally(db: sqlite3.Connection) -> None:
    """Running counts that triggers keep in the transaction of every change they count,
    whichever statement makes it (a digest's members mirror its state; an `INSERT ... ON
    CONFLICT DO NOTHING` that inserts nothing fires nothing); none deletes a row."""
    db.execute(
        "CREATE TABLE delivery_tally (notifier TEXT NOT NULL, state TEXT NOT NULL,"
        " n INTEGER NOT NULL, PRIMARY KEY (notifier, state)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO delivery_tally (notifier, state, n)"
        " SELECT notifier, state, COUNT(*) FROM deliveries GROUP BY notifier, state"
    )
    # A pair's first delivery adds its row; a state emptied keeps it, at 0.
    db.execute(
        "CREATE TRIGGER delivery_added AFTER INSERT ON deliveries BEGIN"
        " INSERT INTO delivery_tally (notifier, state, n) VALUES (NEW.notifier, NEW.state, 1)"
        " ON CONFLICT (notifier, state) DO UPDATE SET n = n + 1; END"
    )
    db.execute(
        "CREATE TRIGGER delivery_moved AFTER UPDATE OF state ON deliveries"
        " WHEN NEW.state IS NOT OLD.state BEGIN"
        " UPDATE delivery_tally SET n = n - 1 WHERE notifier = OLD.notifier AND state = OLD.state;"
        " INSERT INTO delivery_tally (notifier, state, n) VALUES (NEW.notifier, NEW.state, 1)"
        " ON CONFLICT (notifier, state) DO UPDATE SET n = n + 1; END"
    )
    db.execute("CREATE TABLE hit_tally (rule TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO hit_tally (rule, n) SELECT rule, COUNT(*) FROM hits GROUP BY rule")
    db.execute(
        "CREATE TRIGGER hit_added AFTER INSERT ON hits BEGIN INSERT INTO hit_tally (rule, n)"
        " VALUES (NEW.rule, 1) ON CONFLICT (rule) DO UPDATE SET n = n + 1; END"
    )
    db.execute("CREATE INDEX deliveries_created ON deliveries(created_at)")


def _best_story(
    db: sqlite3.Connection, print_: Fingerprint, candidates: list[int], threshold: float
) -> str | None:
    """The story key of the candidate most similar to ``print_``, if it reaches the
    threshold. Candidates come from the band index (StoryIndex.candidates), so the cost
    depends on how many copies there are, not on the size of the archive."""
    if not candidates:
        return None
    rows = db.execute(
        "SELECT p.entry_id, p.shingles, p.signature, e.story_key FROM story_prints p"
        " JOIN entries e ON e.id = p.entry_id WHERE p.entry_id IN (SELECT value FROM json_each(?))",
        (json.dumps(candidates),),
    ).fetchall()
    found = {r[0]: (Fingerprint(r[1], r[2]), str(r[3])) for r in rows}
    scored = [
        (cluster.containment(print_, found[i][0]), found[i][1]) for i in candidates if i in found
    ]
    score, key = max(scored, key=lambda s: s[0], default=(0.0, None))
    return key if score >= threshold else None


def _read_columns(
    db: sqlite3.Connection, reads: list[tuple[str, tuple[Any, ...]]]
) -> list[list[Any]]:
    return [[row[0] for row in db.execute(sql, params)] for sql, params in reads]


def _feed_states(db: sqlite3.Connection, urls: list[str]) -> list[sqlite3.Row | None]:
    sql = (
        "SELECT id, url, etag, last_modified, polled, consecutive_errors,"
        " COALESCE(fetch_url, url), moved_to, moved_confirmations, cursor_url, title"
        " FROM feeds WHERE url = ?"
    )
    return [db.execute(sql, (url,)).fetchone() for url in urls]


@dataclass(frozen=True, slots=True)
class _NotModified:
    feed_id: int
    now: float
    next_poll_at: float
    cursor: Cursor


def _save_not_modified(db: sqlite3.Connection, polls: list[_NotModified]) -> list[None]:
    with _immediate(db):
        for p in polls:
            _save_cursor(db, p.feed_id, p.cursor, p.now, p.next_poll_at, None)
    return [None] * len(polls)


def _found_new(db: sqlite3.Connection, feed_id: int, now: float) -> None:
    """A poll found something new: one more beat of the feed's rhythm."""
    db.execute(
        "UPDATE feeds SET rhythm = CASE WHEN last_new_at IS NULL THEN rhythm"
        " WHEN rhythm IS NULL THEN :now - last_new_at"
        " ELSE rhythm + :weight * (:now - last_new_at - rhythm)"
        " END, rhythm_n = rhythm_n + (last_new_at IS NOT NULL), last_new_at = :now WHERE id = :id",
        {"now": now, "weight": RHYTHM_WEIGHT, "id": feed_id},
    )


def _save_cursor(
    db: sqlite3.Connection,
    feed_id: int,
    cursor: Cursor,
    now: float,
    next_poll_at: float,
    title: str | None,
) -> None:
    """A successful poll's mark on the feed, inside the caller's transaction."""
    loc = cursor.location
    db.execute(
        "UPDATE feeds SET title = COALESCE(?, title), etag = ?, last_modified = ?,"
        " cursor_url = ?, fetch_url = ?, moved_to = ?, moved_confirmations = ?,"
        " polled = polled OR ? != 304, last_poll_at = ?, last_success_at = ?,"
        " last_status = ?, last_error = NULL, consecutive_errors = 0, not_before = 0,"
        " failing_since = NULL, next_poll_at = ? WHERE id = ?",
        (
            title, cursor.etag, cursor.last_modified, cursor.url, loc.fetch_url,
            loc.moved_to, loc.confirmations, cursor.status, now, now, cursor.status,
            next_poll_at, feed_id,
        ),
    )  # fmt: skip
