"""Article HTML to story text with trafilatura, in worker processes under a time budget.

Extraction is CPU-bound (about 13 ms a page, far more for pathological pages), so it runs
off the event loop in processes; a page that overruns is abandoned and the entry falls
back to the feed's own text.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from monitor.models import BodyStatus, Extracted


def extract_text(html: bytes, url: str | None) -> str:
    """Runs in a worker: the article's main text, comments excluded."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=False, favor_precision=False
    )
    return text or ""


class Extractor:
    """A lazily started pool of extraction processes."""

    def __init__(self, *, workers: int, timeout: float) -> None:
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._timeout = timeout
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the daemon has threads (aiosqlite) that fork would copy mid-lock
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        return self._pool

    async def extract(self, html: bytes, url: str | None) -> Extracted:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor(), extract_text, html, url)
            text = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            self._restart()
            return Extracted("", BodyStatus.TIMEOUT, f"over the {self._timeout:g}s budget")
        except BrokenProcessPool:
            self._restart()
            return Extracted("", BodyStatus.EMPTY, "extraction worker died")
        if not text.strip():
            return Extracted("", BodyStatus.EMPTY, "no article text found")
        return Extracted(text, BodyStatus.EXTRACTED)

    def _restart(self) -> None:
        """Drop a pool whose worker is stuck or dead; the next page starts a fresh one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
