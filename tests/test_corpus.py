"""The shared corpus end to end: every feed fetched and parsed, every article page extracted.

Skipped when ../shared/corpus is absent. Figures printed here are the ones
docs/extraction.md reports.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import AsyncIterator
from functools import partial
from importlib import import_module
from pathlib import Path

import feedparser
import pytest
from aiohttp import web

from monitor.config import MonitorConfig
from monitor.errors import FetchError
from monitor.extract import Extractor
from monitor.fetch import Fetcher, make_session
from monitor.jsonfeed import looks_like_json_feed
from monitor.models import BodyStatus
from monitor.parse import ParseError
from monitor.parse_job import MAX_ENTRIES, parse_in_worker
from monitor.workers import WorkerPool
from tests.corpus import ARTICLES, FEEDS, scored_pages, word_scores

pytestmark = pytest.mark.skipif(not FEEDS.is_dir(), reason="corpus absent (../shared/corpus)")

TYPES = {
    ".json": "application/json",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".rdf": "application/rdf+xml",
    ".html": "text/html",
}
DEFAULTS = MonitorConfig(database=Path("unused.db"))
MIN_F1 = 0.93
PARSE_BUDGET = 60.0  # the daemon gives 10 s; a loaded test machine gets slack


def _feed_files() -> list[Path]:
    return sorted(p for p in FEEDS.rglob("*") if p.is_file() and p.suffix != ".tsv")


async def _serve(request: web.Request) -> web.Response:
    """Each corpus file as a publisher would send it: gzip files as a gzip-encoded body."""
    path = FEEDS / request.match_info["tail"]
    if path.name.endswith(".xml.gz"):
        return web.Response(
            body=path.read_bytes(),
            content_type="application/xml",
            headers={"Content-Encoding": "gzip"},
        )
    return web.Response(body=path.read_bytes(), content_type=TYPES.get(path.suffix, "text/xml"))


def _plain_line(message: str) -> bool:
    """One short printable line naming no class: no CamelCase word (NonXMLContentType,
    SAXParseException), an element name in <...> aside."""
    words = re.sub(r"<[^>]*>", "", message)
    return len(message) < 120 and message.isprintable() and not re.search(r"[a-z][A-Z]", words)


@pytest.fixture
async def feed_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", _serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.slow
async def test_every_corpus_feed_fetches_and_parses(feed_server: str) -> None:
    """No feed makes anything but ParseError escape; every readable real feed yields entries.
    Feeds parse as the daemon parses them: in worker processes, one per core."""
    session = make_session(user_agent="newsmon-test")
    pool = WorkerPool(workers=0, warm_up=partial(import_module, "monitor.parse"))
    fetcher = Fetcher(session, timeout=DEFAULTS.timeout, concurrency=16, per_host=16)
    failures: dict[str, str] = {}
    empty_real: list[str] = []
    unreadable: dict[str, str] = {}  # name: a ParseError message that is no plain line
    counts = {"parsed": 0, "parse_error": 0}

    async def one(path: Path) -> None:
        name = str(path.relative_to(FEEDS))
        try:
            fetched = await fetcher.get(
                f"{feed_server}/{name}",
                max_bytes=DEFAULTS.feed_max_bytes,
                trusted_origin=feed_server,
            )
        except FetchError as e:
            failures[name] = f"fetch: {e}"
            return
        try:
            parsed = await pool.run(
                PARSE_BUDGET, parse_in_worker, fetched.body, dict(fetched.headers), fetched.url,
                MAX_ENTRIES, frozenset(),
            )  # fmt: skip
        except ParseError as e:
            counts["parse_error"] += 1
            if not _plain_line(str(e)):
                unreadable[name] = str(e)
            return
        counts["parsed"] += 1
        if name.startswith("real/") and not parsed.entries:
            readable = feedparser.parse(fetched.body).entries or looks_like_json_feed(
                fetched.body, fetched.headers.get("content-type", "")
            )
            if readable:
                empty_real.append(name)

    files = _feed_files()
    try:
        await asyncio.gather(*(one(p) for p in files))
    finally:
        pool.close()
        await session.close()
    print(f"\n{len(files)} feeds: {counts['parsed']} parsed, {counts['parse_error']} ParseError")
    assert not failures
    assert not empty_real
    assert not unreadable


@pytest.mark.slow
async def test_every_corpus_article_extracts_within_budget() -> None:
    """Every page extracts within the default budget; mean word F1 on aeb-* is >= 0.93."""
    pages = sorted(p for p in ARTICLES.glob("*.html") if not p.name.endswith(".expected.html"))
    extractor = Extractor(workers=0, timeout=DEFAULTS.extract_timeout)
    try:
        results = await asyncio.gather(*(extractor.extract(p.read_bytes(), None) for p in pages))
    finally:
        extractor.close()
    by_page = dict(zip(pages, results, strict=True))
    late = [p.name for p, r in by_page.items() if r.status is BodyStatus.TIMEOUT]
    assert not late
    scores = [
        word_scores(by_page[p].body, p.with_suffix(".txt").read_text(encoding="utf-8"))
        for p in scored_pages()
    ]
    precision, recall, f1 = (statistics.fmean(s[i] for s in scores) for i in range(3))
    print(f"\n{len(pages)} pages extracted; {len(scores)} aeb pages scored by word overlap:")
    print(f"P {precision:.4f}  R {recall:.4f}  F1 {f1:.4f}")
    assert f1 >= MIN_F1
