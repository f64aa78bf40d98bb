"""Extraction: the worker pool's budget and crash handling, metadata and canonical URLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from monitor.extract import Extractor, extract_page, warm_up
from monitor.models import BodyStatus
from monitor.workers import WorkerPool
from tests.extract_hooks import AWAIT_DEATH, CRASH, GATE, RAISE, STUCK, alive, scripted
from tests.outbox import eventually


@pytest.fixture
async def pool() -> AsyncIterator[Extractor]:
    extractor = Extractor(workers=2, timeout=30.0, function=scripted)
    yield extractor
    extractor.close()


async def _worker_pids(extractor: Extractor) -> set[int]:
    """Both workers' pids: two pages in flight at once occupy both slots."""
    one, two = await asyncio.gather(extractor.extract(b"a", None), extractor.extract(b"b", None))
    return {int(one.detail), int(two.detail)}


def _await_other(pids: set[int]) -> bytes:
    return AWAIT_DEATH + ",".join(map(str, sorted(pids))).encode()


async def test_overrun_kills_only_its_worker(pool: Extractor) -> None:
    """A stuck page times out and its worker is replaced; a page in flight elsewhere finishes."""
    pids = await _worker_pids(pool)
    stuck, survivor = await asyncio.gather(
        pool.extract(STUCK, None, budget=0.5),
        pool.extract(_await_other(pids), None),  # finishes only once the stuck worker is dead
    )
    assert stuck.status is BodyStatus.TIMEOUT
    assert stuck.detail == "over the 0.5s budget"
    assert survivor.status is BodyStatus.EXTRACTED
    assert int(survivor.detail) in pids  # the other worker was never restarted
    (killed,) = pids - {int(survivor.detail)}
    assert not alive(killed)
    after = await _worker_pids(pool)
    assert int(survivor.detail) in after
    assert killed not in after
    assert len(after) == 2


async def test_crashed_worker_is_replaced(pool: Extractor) -> None:
    """A worker that dies mid-page yields an EMPTY body with the reason, and is replaced."""
    pids = await _worker_pids(pool)
    crashed, survivor = await asyncio.gather(
        pool.extract(CRASH, None), pool.extract(_await_other(pids), None)
    )
    assert (crashed.status, crashed.detail) == (BodyStatus.EMPTY, "extraction worker died")
    assert survivor.status is BodyStatus.EXTRACTED
    assert int(survivor.detail) in pids
    after = await _worker_pids(pool)
    assert len(after) == 2
    assert int(survivor.detail) in after
    assert not (pids - {int(survivor.detail)}) & after


async def test_failing_function_keeps_its_worker(pool: Extractor) -> None:
    """An exception on one page is that page's failure, not the worker's."""
    first = await pool.extract(b"x", None)
    failed = await pool.extract(RAISE, None)
    assert (failed.status, failed.detail) == (
        BodyStatus.EMPTY,
        "extraction failed on an unexpected ValueError",
    )
    assert {int(first.detail)} <= await _worker_pids(pool)


async def test_cancelled_page_does_not_leak_its_answer(pool: Extractor, tmp_path: Path) -> None:
    """A caller cancelled mid-page discards that worker: its late answer reaches nobody."""
    await _worker_pids(pool)
    task = asyncio.create_task(pool.extract(GATE + str(tmp_path).encode(), None))
    await eventually((tmp_path / "started").exists, timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (tmp_path / "open").touch()  # a surviving worker would now answer "GATE:..."
    answers = await asyncio.gather(*(pool.extract(b"%d" % i, None) for i in range(4)))
    assert [a.body for a in answers] == ["0", "1", "2", "3"]


async def test_close_leaves_no_process() -> None:
    """close() stops every worker and reaps it."""
    extractor = Extractor(workers=2, timeout=30.0, function=scripted)
    pids = await _worker_pids(extractor)
    extractor.close()
    assert not any(alive(pid) for pid in pids)  # a zombie would still answer kill(pid, 0)


PAGE = """<!doctype html><html lang="en-GB"><head><title>Embassy reopens | The Gazette</title>
<link rel="Canonical" href="{href}">
<meta property="og:site_name" content="The Gazette">
<meta property="article:published_time" content="2025-02-27T09:58:00Z">
</head><body><nav>Home World Sport</nav><article><h1>Embassy reopens</h1>
<p>The embassy in Ankara reopened on Thursday after a year of repairs, officials said.</p>
<p>Diplomats returned to the building, which had been closed since the earthquake.</p>
<p>Follow us on Twitter @gazette for the latest news.</p>
</article></body></html>"""


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/world/embassy?utm_source=rss", "https://news.example/world/embassy"),
        ("https://NEWS.example:443/a#top", "https://news.example/a"),
        ("//cdn.example/story", "https://cdn.example/story"),
        ("javascript:alert(1)", None),
        ("", None),
    ],
    ids=["relative", "absolute", "scheme-relative", "javascript", "empty"],
)
def test_canonical_url_is_resolved_and_normalized(href: str, expected: str | None) -> None:
    """<link rel=canonical> resolves against the page URL and normalizes; non-http(s) is dropped."""
    page = PAGE.format(href=href).encode()
    got = extract_page(page, "https://news.example/world/embassy-reopens?id=1")
    assert got.canonical_url == expected


def test_page_metadata_and_clean_body() -> None:
    """Title, day, site name and language come from the page; the promotion line does not."""
    got = extract_page(PAGE.format(href="/x").encode(), "https://news.example/x")
    assert got.status is BodyStatus.EXTRACTED
    assert "embassy in Ankara reopened" in got.body
    assert "Twitter" not in got.body
    assert got.title is not None
    assert got.title.startswith("Embassy reopens")
    assert got.published == date(2025, 2, 27)
    assert got.site_name == "The Gazette"
    assert got.language == "en-gb"


def test_a_page_leaves_none_of_its_texts_in_trafilaturas_caches() -> None:
    """trafilatura's bounded caches (``trim`` keeps element texts, some the whole article)
    are empty once a page is extracted, so a worker does not carry its pages' texts."""
    from trafilatura import utils

    extract_page(PAGE.format(href="/x").encode(), "https://news.example/x")
    assert utils.trim.cache_info().currsize == 0
    assert utils.line_processing.cache_info().currsize == 0


def test_page_without_text_is_empty() -> None:
    """A page with no article text is EMPTY, with the reason, not an error."""
    got = extract_page(b"<html><body><script>var a = 1;</script></body></html>", None)
    assert (got.status, got.body, got.detail) == (BodyStatus.EMPTY, "", "no article text found")


async def test_default_function_runs_in_a_worker(one_worker: WorkerPool) -> None:
    """The real trafilatura path works across the process boundary, metadata included."""
    extractor = Extractor(timeout=30.0, pool=one_worker)
    got = await extractor.extract(PAGE.format(href="/c").encode(), "https://news.example/x")
    assert got.status is BodyStatus.EXTRACTED
    assert got.canonical_url == "https://news.example/c"
    assert got.published == date(2025, 2, 27)


def test_warm_up_holds_the_stop_words_once() -> None:
    """After the warm-up, justext's lower-cased all-language stop list is the set justext
    would make, built of the very strings trafilatura's list holds: one copy, not two."""
    import justext.core
    import trafilatura.external

    warm_up()
    words = trafilatura.external.JT_STOPLIST
    assert words is not None
    stop = justext.core.define_stoplist(words)
    assert stop == frozenset(word.lower() for word in words)
    assert {id(word) for word in stop} == {id(word) for word in words}
