"""One feed poll, end to end: fetch, parse, keep what is new, extract, match, store.

The store commits everything a poll learned in one transaction; a failure anywhere before
that leaves the feed's cursor untouched, so the next poll sees the same entries again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

from monitor import cluster, notices
from monitor.config import Config, FeedConfig, MonitorConfig
from monitor.errors import FetchError, ParseError, StoreError
from monitor.extract import Extractor
from monitor.fetch import Fetcher
from monitor.log import log_event
from monitor.models import (
    BodyStatus,
    ClusterPolicy,
    Cursor,
    Document,
    Entry,
    Extracted,
    FeedState,
    Fetched,
    Fingerprint,
    ParsedFeed,
    PollResult,
    Story,
)
from monitor.moves import follow
from monitor.parse_job import parse_in_worker
from monitor.schedule import (
    Bounds,
    adaptive_interval,
    after_failure,
    after_success,
    publisher_hint,
)
from monitor.store import Store
from monitor.urls import without_password
from monitor.workers import JobFailed, WorkerLost, WorkerPool

log = logging.getLogger("newsmon.poll")
HTML_TYPES = ("text/html", "application/xhtml")
PAGE_RETRIES = (1.0, 4.0)  # seconds before each new try of a page after a transient failure
# Article pages held at once, fetched or waiting for a worker: pages arrive faster than
# two workers extract them, and 300 waiting pages of 150 KB held 57 MB in the daemon
# (docs/performance.md, memory). As many as fetches may run, so fetching is not slowed.
PAGES_AT_ONCE = 32
_TRANSIENT = frozenset({"timeout", "connect_timeout", "connect", "disconnected", "payload"})


def _transient(error: FetchError) -> bool:
    status = error.status or 0
    return error.reason in _TRANSIENT or status in (408, 429) or status >= 500


_PAGE_STATUS = {"not_html": BodyStatus.NOT_HTML, "blocked": BodyStatus.BLOCKED}


def _bounds(config: Config) -> Bounds:
    return Bounds(config.monitor.min_interval, config.monitor.max_interval)


def _site(url: str) -> str:
    host = urlsplit(url).hostname or ""
    for prefix in ("www.", "m.", "amp."):
        host = host.removeprefix(prefix)
    return host


def _canonical(canonical: str | None, link: str | None) -> str | None:
    """The page's declared canonical URL, when it stays on the link's own site and names
    a page of it: a page may not claim another site's URL, or it could silence that
    site's stories, and a CMS that gives every page its home page as canonical would
    make all its stories one."""
    if canonical and link and _site(canonical) == _site(link) and not _home(canonical):
        return canonical
    return link


def _home(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query


class Pipeline:
    """Polls feeds with the daemon's shared parts; the watchlist is passed per poll so a
    reload takes effect at the next one."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        extractor: Extractor,
        pool: WorkerPool,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        page_retries: tuple[float, ...] = PAGE_RETRIES,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._extractor = extractor
        self._pool = pool
        self._page_retries = page_retries
        self._pages = asyncio.Semaphore(PAGES_AT_ONCE)
        self._clock = clock
        self._rng = rng or random.Random()

    def adopt(self, monitor: MonitorConfig) -> None:
        """Fetch with a reloaded watchlist's deadline, opened networks and proxy from the
        next request on (its concurrency limits need a restart)."""
        self._fetcher.set_policy(
            timeout=monitor.timeout, allow_networks=monitor.allow_networks, proxy=monitor.proxy
        )

    def _at(self, delay: float) -> float:
        """A poll time ``delay`` from now, with 10% jitter so feeds drift apart."""
        return self._clock() + delay * self._rng.uniform(0.9, 1.1)

    async def poll(self, feed: FeedConfig, config: Config) -> PollResult:
        """Poll one feed; every failure is returned as a PollResult, never raised."""
        state = await self._store.feed_state(feed.url)
        try:
            result = await self._poll(feed, config, state)
        except (FetchError, ParseError) as e:
            await self._failed(feed, config, state, e)
            return PollResult(feed.url, "error", error=str(e))
        except (StoreError, sqlite3.Error):
            raise  # the database is the daemon's problem, not this feed's
        except Exception as e:  # a bug or a library's failure on this feed's data
            log.exception("poll of %s failed unexpectedly", feed.titled(state.title))
            error = ParseError(f"poll failed on an unexpected {type(e).__name__}; see the log")
            await self._failed(feed, config, state, error)
            return PollResult(feed.url, "error", error=str(error))
        log_event(
            log, logging.INFO, "poll_" + result.outcome, feed=feed.titled(state.title),
            new=result.new_entries, hits=result.hits, dropped=result.dropped or None,
        )  # fmt: skip
        return result

    async def _failed(
        self, feed: FeedConfig, config: Config, state: FeedState, error: FetchError | ParseError
    ) -> None:
        """Record a failed poll: back off, honour Retry-After, and stop polling a feed
        its publisher says is gone (410), saying so once."""
        now, errors = self._clock(), state.errors + 1
        status = error.status
        headers = error.headers if isinstance(error, FetchError) else {}
        delay = after_failure(feed.interval, errors, headers, now, _bounds(config))
        not_before = now + delay if "retry-after" in headers else 0.0
        disable = "410 Gone: the publisher removed this feed" if status == 410 else None
        since = await self._store.record_failure(
            state.id, now, self._at(delay), status, str(error), not_before=not_before,
            disable=disable,
        )  # fmt: skip
        shown = feed.titled(state.title)
        if disable:
            log_event(log, logging.ERROR, "feed_disabled", feed=shown, reason=disable)
        else:
            log_event(
                log, logging.WARNING, "poll_failed", feed=shown, error=str(error),
                errors=errors, retry_in=f"{delay:.0f}s",
            )  # fmt: skip
        await notices.feed_failed(
            self._store, config.monitor.notices, url=feed.url, label=shown, since=since,
            now=now, error=str(error), gone=disable is not None,
        )  # fmt: skip

    async def _poll(self, feed: FeedConfig, config: Config, state: FeedState) -> PollResult:
        url = state.location.fetch_url
        headers = {}
        if state.cursor_url in (None, url):  # validators go back to the URL that gave them
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        auth = None
        if feed.username is not None:
            password = feed.password.reveal() if feed.password else ""
            auth = (feed.username, password)
        fetched = await self._fetcher.get(
            url,
            max_bytes=config.monitor.feed_max_bytes,
            headers=headers,
            auth=auth,
            trusted_origin=feed.url,
        )
        location = follow(state.location, fetched.url, fetched.moved)
        if location.fetch_url != url:
            moved = without_password(location.fetch_url)
            log_event(log, logging.WARNING, "feed_moved", feed=feed.titled(state.title), to=moved)
        bounds = _bounds(config)
        if fetched.status == 304:
            cursor = Cursor(
                304, fetched.etag or state.etag, fetched.last_modified or state.last_modified,
                fetched.url, location,
            )  # fmt: skip
            interval = await self._interval(feed, config, state, [], bounds)  # as a 200's
            delay = after_success(interval, publisher_hint(fetched.headers, None, 0), bounds)
            await self._store.record_not_modified(state.id, self._clock(), self._at(delay), cursor)
            return PollResult(feed.url, "not_modified")
        seen = (
            await self._store.recent_keys(state.id, config.monitor.max_entries)
            if state.polled  # a feed never polled has no entries yet
            else frozenset()
        )
        try:
            parsed = await self._parse(fetched, config, seen)
        except ParseError as e:
            raise ParseError(str(e), status=fetched.status) from None
        hint = publisher_hint(fetched.headers, parsed.ttl, self._clock())
        pairs = zip(parsed.entries, parsed.fingerprints, strict=True)
        unique = {e.key: (e, p) for e, p in reversed(list(pairs))}  # the first one wins
        known = await self._store.known_keys(state.id, list(unique))
        fresh = [pair for key, pair in unique.items() if key not in known]
        stories = await asyncio.gather(
            *(self._story(e, own, feed, config, state) for e, own in fresh)
        )
        interval = await self._interval(feed, config, state, [e for e, _ in fresh], bounds)
        hits = await self._store.commit_poll(
            state,
            now=self._clock(),
            next_poll_at=self._at(after_success(interval, hint, bounds)),
            cursor=Cursor(
                fetched.status, fetched.etag, fetched.last_modified, fetched.url, location
            ),
            title=parsed.title,
            stories=stories,
            destinations=config.routes,
            # story clustering (docs/clustering.md): copies join the first one's story
            clustering=ClusterPolicy(
                config.monitor.cluster_window, config.monitor.cluster_threshold
            ),
            per_copy=config.per_copy,
            caps=config.caps,
        )
        return PollResult(
            feed.url, "ok", new_entries=len(stories), hits=len(hits), dropped=parsed.dropped
        )

    async def _parse(self, fetched: Fetched, config: Config, seen: frozenset[str]) -> ParsedFeed:
        """parse_feed in a worker process under a budget: crafted XML can make feedparser
        take minutes (RELIABILITY.md case 24), and it must never hold the event loop.
        Entries with ``seen`` keys are not converted or sent back."""
        budget = config.monitor.parse_timeout
        try:
            return await self._pool.run(
                budget, parse_in_worker, fetched.body, dict(fetched.headers), fetched.url,
                config.monitor.max_entries, seen,
            )  # fmt: skip
        except TimeoutError:
            raise ParseError(f"parsing took longer than {budget:g}s") from None
        except WorkerLost as e:  # "worker died": a crash, or out of memory
            raise ParseError(f"parsing failed: the parser's {e}") from None
        except JobFailed as e:  # its message is the class name of what the parser raised
            raise ParseError(f"parsing failed on an unexpected {e} in the parser") from None

    async def _interval(
        self, feed: FeedConfig, config: Config, state: FeedState, fresh: list[Entry], bounds: Bounds
    ) -> float:
        """The feed's interval, or with ``adaptive`` the one its publishing rhythm suggests
        (the configured interval until there is enough history)."""
        if not feed.adaptive:
            return feed.interval
        times = await self._store.publication_times(state.id, among=config.monitor.max_entries)
        now = self._clock()
        times += [e.published.timestamp() if e.published else now for e in fresh]
        learned = adaptive_interval(times, bounds)
        return feed.interval if learned is None else learned

    async def _story(
        self,
        entry: Entry,
        own_print: Fingerprint | None,
        feed: FeedConfig,
        config: Config,
        state: FeedState,
    ) -> Story:
        """``own_print``: the fingerprint of the entry's own text, from the parser."""
        alertable = state.polled or self._recent(entry, config.monitor.first_poll_max_age)
        fallback_key = entry.url or f"entry:{feed.url}\n{entry.key}"
        if not alertable:
            return Story(
                entry, fallback_key, entry.content, BodyStatus.SKIPPED, (), False, own_print
            )
        # Without a page body the feed's own full text stands in; the status keeps why
        # (blocked, timeout, ...), as RELIABILITY.md case 1 asks.
        page = await self._page(entry, feed, config)
        own_text = page.status is not BodyStatus.EXTRACTED
        if not entry.title and page.title:
            entry = replace(entry, title=page.title)  # DESIGN.md 2: the page's headline
            own_text = False
        story_key = _canonical(page.canonical_url, entry.url) or fallback_key
        rules = config.scopes.get(feed.url, frozenset())
        document = Document.of_story(
            entry.title, entry.summary, entry.content if own_text else page.body
        )
        body = document.body
        matches = tuple(config.index.match(document, only=rules)) if rules else ()
        if not own_text:
            own_print = cluster.story_fingerprint(entry.title, entry.summary, body)
        return Story(entry, story_key, body, page.status, matches, True, own_print)

    def _recent(self, entry: Entry, max_age: float) -> bool:
        """On a feed's first poll only recent entries may alert; a future date counts as now."""
        if entry.published is None:
            return False
        return self._clock() - entry.published.timestamp() <= max_age

    async def _page(self, entry: Entry, feed: FeedConfig, config: Config) -> Extracted:
        if not config.monitor.fetch_articles:
            return Extracted("", BodyStatus.DISABLED)
        if entry.url is None:
            return Extracted("", BodyStatus.NO_LINK)
        known = await self._store.extracted_body(entry.url)
        if known:  # the same article from another feed: each page is fetched once
            return Extracted(known, BodyStatus.EXTRACTED)
        async with self._pages:
            try:
                page = await self._fetch_page(entry.url, feed, config)
            except FetchError as e:
                status = _PAGE_STATUS.get(e.reason, BodyStatus.FETCH_FAILED)
                log_event(log, logging.INFO, "page_failed", url=entry.url, error=str(e))
                return Extracted("", status, str(e))
            budget = config.monitor.extract_timeout  # the watchlist's as it is now
            return await self._extractor.extract(page.body, page.url, budget=budget)

    async def _fetch_page(self, url: str, feed: FeedConfig, config: Config) -> Fetched:
        """The page, retried a bounded number of times after a transient failure (a
        timeout, a dropped connection, 408, 429, 5xx) before the caller falls back."""
        delays = iter(self._page_retries)
        while True:
            try:
                return await self._fetcher.get(
                    url,
                    max_bytes=config.monitor.page_max_bytes,
                    accept_body=HTML_TYPES,
                    trusted_origin=feed.url,  # the feed's own site; other links are guarded
                )
            except FetchError as e:
                delay = next(delays, None)
                if delay is None or not _transient(e):
                    raise
            await asyncio.sleep(delay)
