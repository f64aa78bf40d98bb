"""SQLite: schema, migrations, feed state, entries, hits and the delivery outbox.

All SQL lives here. One connection, one writer: every transaction holds ``_lock`` so that
coroutines sharing the connection never interleave statements inside one another's
transaction. Times are Unix seconds passed in by the caller, so tests control the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from monitor.errors import StoreError
from monitor.models import Alert, AlsoSeen, Delivery, FeedState, Story

# Append-only: migration N brings user_version from N-1 to N. Never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
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
)

OPEN_STATES = ("pending", "sending")


def hit_id(rule: str, story_key: str) -> str:
    """Stable: one id per rule and story, whichever feed or poll found it."""
    return hashlib.sha256(f"hit\n{rule}\n{story_key}".encode()).hexdigest()[:32]


def delivery_id(hit: str, notifier: str) -> str:
    """Stable across retries, so receivers can deduplicate on it."""
    return hashlib.sha256(f"delivery\n{hit}\n{notifier}".encode()).hexdigest()[:32]


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


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


class Store:
    """The narrow interface the rest of newsmon uses; SQL stays behind it."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, durability: str = "process") -> Store:
        """Open (creating and migrating) the database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        store = cls(db)
        try:
            await store._prepare(durability)
        except sqlite3.Error as e:
            await db.close()
            raise StoreError(f"database {path} is unusable: {e}") from None
        except StoreError:
            await db.close()
            raise
        return store

    async def _prepare(self, durability: str) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA journal_mode = WAL")
        sync = "FULL" if durability == "power" else "NORMAL"
        await db.execute(f"PRAGMA synchronous = {sync}")
        await db.execute("PRAGMA foreign_keys = ON")
        async with self._transaction():
            version = (await self._one("PRAGMA user_version"))[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the database has schema version {version}, newer than this newsmon "
                    f"understands ({len(MIGRATIONS)}); upgrade newsmon"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row:
        async with self._db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return row

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

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
        async with self._lock:
            row = await self._one(
                "SELECT id, url, title, etag, last_modified, polled, consecutive_errors"
                " FROM feeds WHERE url = ?",
                (url,),
            )
        return FeedState(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])

    async def due_feeds(self, urls: Iterable[str], now: float, *, force: bool = False) -> list[str]:
        """Watched, enabled feeds due now; with ``force``, every one whose Retry-After is
        not still in force (``run --once``)."""
        wanted = set(urls)
        rows = await self._all(
            "SELECT url FROM feeds WHERE disabled_reason IS NULL AND not_before <= ?"
            " AND (? OR next_poll_at <= ?)",
            (now, force, now),
        )
        return [r[0] for r in rows if r[0] in wanted]

    async def next_feed_due(self, urls: Iterable[str]) -> float | None:
        wanted = set(urls)
        rows = await self._all("SELECT url, next_poll_at FROM feeds")
        due = [r[1] for r in rows if r[0] in wanted]
        return min(due) if due else None

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
    ) -> None:
        """A failed poll: the error, the backoff, a Retry-After in force (``not_before``),
        or (``disable``) the reason the feed is polled no more."""
        async with self._transaction():
            await self._db.execute(
                "UPDATE feeds SET last_poll_at = ?, last_status = ?, last_error = ?,"
                " consecutive_errors = consecutive_errors + 1, next_poll_at = ?,"
                " not_before = ?, disabled_reason = ? WHERE id = ?",
                (now, status, error, next_poll_at, not_before, disable, feed_id),
            )

    async def enable_feed(self, url: str, now: float) -> bool:
        """Poll a disabled feed again (``newsmon resume``); False if it was not disabled."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE feeds SET disabled_reason = NULL, next_poll_at = ?, not_before = 0"
                " WHERE url = ? AND disabled_reason IS NOT NULL",
                (now, url),
            )
            return cursor.rowcount == 1

    async def known_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` this feed has delivered before."""
        rows = await self._all(
            "SELECT key FROM entries WHERE feed_id = ? AND key IN (SELECT value FROM json_each(?))",
            (feed_id, json.dumps(list(keys))),
        )
        return {r[0] for r in rows}

    async def publication_times(self, feed_id: int, limit: int = 20) -> list[float]:
        """When the feed's newest entries were published (or first seen, when undated)."""
        rows = await self._all(
            "SELECT COALESCE(published, seen_at) AS t FROM entries WHERE feed_id = ?"
            " ORDER BY t DESC LIMIT ?",
            (feed_id, limit),
        )
        return [r[0] for r in rows]

    async def commit_poll(
        self,
        feed: FeedState,
        *,
        now: float,
        next_poll_at: float,
        status: int,
        etag: str | None,
        last_modified: str | None,
        title: str | None,
        stories: Sequence[Story],
        destinations: Mapping[str, Sequence[str]],
    ) -> list[str]:
        """Store a successful poll in ONE transaction: the new entries, their hits, one
        pending delivery per hit and destination (rule -> notifiers), and the feed's cursor.

        A crash before COMMIT leaves the old cursor, so the entries are fetched again;
        after it, nothing is lost. Returns the ids of hits that are new.
        """
        new_hits: list[str] = []
        async with self._transaction():
            db = self._db
            await db.executemany(
                "INSERT INTO entries (feed_id, key, url, story_key, title, summary, body,"
                " body_status, published, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (feed_id, key) DO NOTHING",
                [
                    (
                        feed.id, s.entry.key, s.entry.url, s.story_key, s.entry.title,
                        s.entry.summary, s.body, s.body_status.value,
                        _ts(s.entry.published), now,
                    )
                    for s in stories
                ],
            )  # fmt: skip
            for story in stories:
                if not story.alertable or not story.matches:
                    continue
                entry_id = (
                    await self._one(
                        "SELECT id FROM entries WHERE feed_id = ? AND key = ?",
                        (feed.id, story.entry.key),
                    )
                )[0]
                for match in story.matches:
                    hid = hit_id(match.rule, story.story_key)
                    cursor = await db.execute(
                        "INSERT INTO hits (id, rule, story_key, entry_id, matched, snippet,"
                        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (id) DO NOTHING",
                        (
                            hid, match.rule, story.story_key, entry_id,
                            json.dumps(match.matched_words), match.snippet, now,
                        ),
                    )  # fmt: skip
                    if cursor.rowcount != 1:
                        continue  # this story already alerted for this rule
                    new_hits.append(hid)
                    await db.executemany(
                        "INSERT INTO deliveries (id, hit_id, notifier, state, created_at,"
                        " next_attempt_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                        [
                            (delivery_id(hid, n), hid, n, now, now, now)
                            for n in destinations.get(match.rule, ())
                        ],
                    )
            await db.execute(
                "UPDATE feeds SET title = COALESCE(?, title), etag = ?, last_modified = ?,"
                " polled = 1, last_poll_at = ?, last_success_at = ?, last_status = ?,"
                " last_error = NULL, consecutive_errors = 0, not_before = 0, next_poll_at = ?"
                " WHERE id = ?",
                (title, etag, last_modified, now, now, status, next_poll_at, feed.id),
            )
        return new_hits

    async def record_not_modified(self, feed_id: int, now: float, next_poll_at: float) -> None:
        async with self._transaction():
            await self._db.execute(
                "UPDATE feeds SET last_poll_at = ?, last_success_at = ?, last_status = 304,"
                " last_error = NULL, consecutive_errors = 0, not_before = 0, next_poll_at = ?"
                " WHERE id = ?",
                (now, now, next_poll_at, feed_id),
            )

    async def feeds(self) -> list[FeedRow]:
        rows = await self._all(
            "SELECT url, COALESCE(name, title), last_poll_at, last_success_at, last_status,"
            " last_error, consecutive_errors, next_poll_at, disabled_reason FROM feeds"
            " ORDER BY url"
        )
        return [FeedRow(*r) for r in rows]

    # -- the outbox ----------------------------------------------------------------

    async def recover_sending(self, now: float) -> int:
        """Rows a crash left in 'sending' go back to pending: at most one extra copy."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated_at = ?"
                " WHERE state = 'sending'",
                (now, now),
            )
            return cursor.rowcount

    async def cancel_deliveries(self, notifiers: Iterable[str], now: float) -> int:
        """Open deliveries to destinations no longer in the watchlist end as cancelled."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE deliveries SET state = 'cancelled', updated_at = ?,"
                " last_error = 'destination removed from the watchlist'"
                " WHERE state IN ('pending', 'sending')"
                " AND notifier NOT IN (SELECT value FROM json_each(?))",
                (now, json.dumps(list(notifiers))),
            )
            return cursor.rowcount

    async def due_deliveries(self, notifier: str, now: float, limit: int) -> list[Delivery]:
        """The destination's pending rows in creation order, up to the first not yet due.

        Stopping at the first row still waiting keeps one destination's alerts in order.
        """
        rows = await self._all(
            "SELECT id, hit_id, notifier, attempts, created_at, next_attempt_at FROM deliveries"
            " WHERE notifier = ? AND state = 'pending' ORDER BY created_at, id LIMIT ?",
            (notifier, limit),
        )
        due: list[Delivery] = []
        for row in rows:
            if row[5] > now:
                break
            due.append(Delivery(row[0], row[1], row[2], row[3], row[4]))
        return due

    async def next_delivery_at(self, notifier: str) -> float | None:
        """When this destination next has work; None when its outbox is empty."""
        async with self._lock:
            row = await self._one(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE notifier = ?"
                " AND state = 'pending'",
                (notifier,),
            )
        return row[0] if row[0] is not None else None

    async def open_deliveries(self) -> int:
        async with self._lock:
            row = await self._one(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending')"
            )
        return int(row[0])

    async def mark_sending(self, delivery: str, now: float) -> None:
        await self._set_state(delivery, "sending", now, attempts=1)

    async def mark_sent(self, delivery: str, now: float) -> None:
        await self._set_state(delivery, "sent", now, error=None)

    async def mark_retry(self, delivery: str, now: float, at: float, error: str) -> None:
        await self._set_state(delivery, "pending", now, error=error, next_attempt_at=at)

    async def mark_final(self, delivery: str, state: str, now: float, error: str) -> None:
        """End a delivery as 'failed' or 'expired', with the reason."""
        await self._set_state(delivery, state, now, error=error)

    async def _set_state(
        self,
        delivery: str,
        state: str,
        now: float,
        *,
        attempts: int = 0,
        error: str | None = "",
        next_attempt_at: float | None = None,
    ) -> None:
        async with self._transaction():
            await self._db.execute(
                "UPDATE deliveries SET state = ?, updated_at = ?, attempts = attempts + ?,"
                " last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,"
                " next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?",
                (state, now, attempts, error, error, next_attempt_at, delivery),
            )

    async def requeue(self, delivery: str, now: float) -> bool:
        """Put a failed or expired delivery back in the queue; False if there is none."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated_at = ?,"
                " created_at = ?, attempts = 0 WHERE id = ? AND state IN ('failed', 'expired')",
                (now, now, now, delivery),
            )
            return cursor.rowcount == 1

    async def alert(self, delivery: Delivery) -> Alert:
        """Everything a notifier needs, read fresh at each attempt (``also`` grows)."""
        async with self._lock:
            row = await self._one(
                "SELECT h.rule, e.title, e.url, COALESCE(f.name, f.title, f.url), e.published,"
                " h.matched, h.snippet, h.story_key, e.id FROM hits h"
                " JOIN entries e ON e.id = h.entry_id JOIN feeds f ON f.id = e.feed_id"
                " WHERE h.id = ?",
                (delivery.hit_id,),
            )
            async with self._db.execute(
                "SELECT e.url, COALESCE(f.name, f.title, f.url), e.title FROM entries e"
                " JOIN feeds f ON f.id = e.feed_id WHERE e.story_key = ? AND e.id != ?"
                " ORDER BY e.seen_at",
                (row[7], row[8]),
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

    async def deliveries(self, *, failed_only: bool = False, limit: int = 100) -> list[DeliveryRow]:
        rows = await self._all(
            "SELECT d.id, d.hit_id, d.notifier, d.state, d.attempts, d.created_at, d.updated_at,"
            " d.next_attempt_at, d.last_error, h.rule, e.title FROM deliveries d"
            " JOIN hits h ON h.id = d.hit_id JOIN entries e ON e.id = h.entry_id"
            " WHERE (? = 0 OR d.state IN ('failed', 'expired'))"
            " ORDER BY d.created_at DESC, d.id LIMIT ?",
            (failed_only, limit),
        )
        return [DeliveryRow(*r) for r in rows]

    async def hits(self, *, rule: str | None, since: float, limit: int = 200) -> list[HitRow]:
        rows = await self._all(
            "SELECT h.id, h.rule, e.title, e.url, COALESCE(f.name, f.title, f.url), h.matched,"
            " h.snippet, h.created_at FROM hits h JOIN entries e ON e.id = h.entry_id"
            " JOIN feeds f ON f.id = e.feed_id WHERE h.created_at >= ? AND (? IS NULL OR"
            " h.rule = ?) ORDER BY h.created_at DESC LIMIT ?",
            (since, rule, rule, limit),
        )
        return [
            HitRow(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7]) for r in rows
        ]

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
        """(notifier, state) -> number of deliveries."""
        rows = await self._all(
            "SELECT notifier, state, COUNT(*) FROM deliveries GROUP BY notifier, state"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def hit_counts(self, since: float | None = None) -> dict[str, int]:
        """rule -> number of hits stored (created at or after ``since``, when given)."""
        rows = await self._all(
            "SELECT rule, COUNT(*) FROM hits WHERE created_at >= ? GROUP BY rule",
            (since if since is not None else float("-inf"),),
        )
        return {r[0]: int(r[1]) for r in rows}
