"""Article pages held by the daemon at once stay bounded while workers are busy."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor import pipeline
from monitor.config import load_config
from monitor.extract import Extractor
from monitor.fetch import fetcher_for
from monitor.pipeline import Pipeline
from monitor.store import Store
from monitor.workers import WorkerPool
from tests.extract_hooks import counted
from tests.servers import Item, Publisher


class CountingPublisher(Publisher):
    """Notes, at each page request, how many pages were fetched and not yet extracted."""

    def __init__(self, done: Path) -> None:
        super().__init__()
        self.done = done
        self.held: list[int] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/story/"):
            pages = sum(1 for path, _ in self.requests if path.startswith("/story/")) + 1
            self.held.append(pages - len(list(self.done.iterdir())))
        return await super()._handle(request)


async def test_pages_waiting_for_a_worker_are_bounded(
    tmp_path: Path,
    write_watchlist,
    monkeypatch: pytest.MonkeyPatch,
    store: Store,
    one_worker: WorkerPool,
    session: aiohttp.ClientSession,
) -> None:
    """With one worker extracting slowly, the poll fetches a page only while fewer than
    PAGES_AT_ONCE are fetched and not yet extracted: pages do not pile up in the daemon."""
    monkeypatch.setattr(pipeline, "PAGES_AT_ONCE", 2)
    done = tmp_path / "done"
    done.mkdir()
    async with CountingPublisher(done) as site:
        site.rss_items = [Item(f"Story {n}", f"/story/{n}", body=f"DONE:{done}") for n in range(12)]
        config = load_config(write_watchlist(feeds=[site.base + "/rss.xml"], fetch_articles=True))
        assert config.monitor.database == tmp_path / "newsmon.db"  # the store fixture's
        extractor = Extractor(timeout=30.0, pool=one_worker, function=counted)
        fetcher = fetcher_for(session, config.monitor)
        poll = Pipeline(store, fetcher, extractor, one_worker, clock=time.time)
        await store.sync_feeds({config.feeds[0].url: None}, 0.0, 0.0)
        result = await poll.poll(config.feeds[0], config)
    assert result.new_entries == 12
    assert len(site.held) == 12
    assert max(site.held) == 2
