"""Article HTML to story text with trafilatura, in worker processes under a time budget.

Extraction is CPU-bound (about 25 ms a page on the corpus, far more for pathological
pages), so it runs off the event loop in spawned processes, each owned by one slot and
talked to over its own pipe. A page that overruns its budget is abandoned and only ITS
worker is killed and replaced; pages in flight in other workers go on undisturbed. The
entry then falls back to the feed's own text, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urljoin

from monitor.clean import clean_body
from monitor.models import BodyStatus, Extracted
from monitor.parse import MAX_CONTENT, MAX_TITLE, clean_text
from monitor.urls import normalize_url

ExtractFunction = Callable[[bytes, str | None], Extracted]

# Chosen on the corpus (docs/extraction.md): precision mode keeps fewer stray lines, and
# tables are often the story (results, figures); comments never are.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "favor_precision": True,
    "with_metadata": True,
}
STARTUP_TIMEOUT = 60.0  # a spawned worker imports trafilatura before its first page
_WARM_UP = b"<html><body><article><p>newsmon worker warm-up.</p></article></body></html>"
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def _canonical(tree: Any, url: str | None) -> str | None:
    """The page's <link rel="canonical">, resolved against its URL; http(s) only."""
    for link in tree.iterfind(".//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            href = link.get("href", "").strip()
            return normalize_url(urljoin(url or "", href)) if href else None
    return None


def _language(tree: Any) -> str | None:
    """<html lang>, else <meta http-equiv="content-language">, as a lower-case tag."""
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for meta in tree.iterfind(".//meta[@http-equiv]"):
        if meta.get("http-equiv", "").lower() == "content-language":
            candidates.append(meta.get("content"))
    for value in candidates:
        tag = (value or "").strip().lower().replace("_", "-").split(",")[0]
        if _LANGUAGE.fullmatch(tag):
            return tag
    return None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _meta(value: str | None) -> str | None:
    return (clean_text(value, MAX_TITLE) or None) if value else None


def extract_page(html: bytes, url: str | None) -> Extracted:
    """Runs in a worker: the page's story text (boilerplate lines removed) and metadata."""
    import trafilatura
    from trafilatura.settings import Document

    tree = trafilatura.load_html(html)
    if tree is None:
        return Extracted("", BodyStatus.EMPTY, "not parseable as HTML")
    canonical, language = _canonical(tree, url), _language(tree)
    found = trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    document = found if isinstance(found, Document) else Document()  # None: nothing found
    body = clean_text(clean_body(document.text or ""), MAX_CONTENT)
    return Extracted(
        body,
        BodyStatus.EXTRACTED if body else BodyStatus.EMPTY,
        "" if body else "no article text found",
        canonical_url=canonical,
        title=_meta(document.title),
        published=_day(document.date),
        site_name=_meta(document.sitename),
        language=language,
    )


def _serve(conn: Connection, function: ExtractFunction) -> None:
    """A worker's loop: warm up, say ready, then answer one page at a time until EOF."""
    function(_WARM_UP, None)
    conn.send(True)
    while True:
        try:
            html, url = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: Extracted | str = function(html, url)
        except Exception as e:  # a bug or a library failure on one page, not a dead worker
            answer = f"extraction failed: {type(e).__name__}"
        conn.send(answer)


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection


class _Lost(Exception):
    """The worker is gone or unusable: kill it and start another for the next page."""


class Extractor:
    """A pool of ``workers`` extraction processes, started on first use.

    ``function`` (top-level, picklable) does the work in the worker; tests inject one.
    """

    def __init__(
        self, *, workers: int, timeout: float, function: ExtractFunction = extract_page
    ) -> None:
        self._timeout = timeout
        self._function = function
        self._context = multiprocessing.get_context("spawn")  # fork would copy aiosqlite's
        count = workers or max(1, os.cpu_count() or 1)  # thread mid-lock
        self._slots: list[_Worker | None] = [None] * count
        self._idle: asyncio.Queue[int] | None = None

    async def extract(
        self, html: bytes, url: str | None, *, budget: float | None = None
    ) -> Extracted:
        """The page's story text, or why there is none; never raises for a page's fault.

        ``budget`` (seconds) overrides the extractor's for this page: a caller may grant a
        big page more.
        """
        if self._idle is None:
            self._idle = asyncio.Queue()
            for slot in range(len(self._slots)):
                self._idle.put_nowait(slot)
        slot = await self._idle.get()
        seconds = self._timeout if budget is None else budget
        try:
            return await self._run(slot, html, url, seconds)
        except TimeoutError:
            self._discard(slot)
            return Extracted("", BodyStatus.TIMEOUT, f"over the {seconds:g}s budget")
        except _Lost as e:
            self._discard(slot)
            return Extracted("", BodyStatus.EMPTY, str(e))
        except BaseException:
            self._discard(slot)  # cancelled mid-page: its answer must not reach the next page
            raise
        finally:
            self._idle.put_nowait(slot)

    async def _run(self, slot: int, html: bytes, url: str | None, budget: float) -> Extracted:
        worker = self._slots[slot]
        if worker is None:
            worker = self._slots[slot] = self._start()
            try:
                ready = await self._receive(worker, STARTUP_TIMEOUT)
            except TimeoutError:
                ready = None
            if ready is not True:
                raise _Lost("extraction worker failed to start")
        try:
            worker.conn.send((html, url))
        except (OSError, ValueError) as e:
            raise _Lost("extraction worker died") from e
        answer = await self._receive(worker, budget)
        if isinstance(answer, str):
            return Extracted("", BodyStatus.EMPTY, answer)
        if not isinstance(answer, Extracted):
            raise _Lost("extraction worker answered nonsense")
        return answer

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self._function), name="newsmon-extract", daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    async def _receive(self, worker: _Worker, budget: float) -> object:
        """The worker's next message, waiting on its pipe without blocking the loop."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = worker.conn.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            async with asyncio.timeout(budget):
                await readable
        finally:
            loop.remove_reader(fd)
        try:
            return worker.conn.recv()
        except (EOFError, OSError) as e:  # the worker died: a crash, an OOM kill
            raise _Lost("extraction worker died") from e

    def _discard(self, slot: int) -> None:
        """Kill one worker (stuck, dead or mid-page); its slot starts a fresh one next time."""
        worker, self._slots[slot] = self._slots[slot], None
        if worker is not None:
            _stop(worker)

    def close(self) -> None:
        """Stop every worker and wait for each to exit; nothing is left running."""
        for slot in range(len(self._slots)):
            self._discard(slot)


def _stop(worker: _Worker) -> None:
    worker.conn.close()
    worker.process.kill()
    worker.process.join()  # SIGKILL cannot be ignored: this reaps it at once
