"""The worker pool: lean worker processes, started on demand, renewed on request."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing, suppress
from datetime import date
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.extract import Extractor, warm_up
from monitor.worker_process import GROWTH, SWOLLEN, TRIM_EVERY
from monitor.workers import WorkerLost, WorkerPool
from tests.extract_hooks import GATE, alive, scripted
from tests.outbox import eventually
from tests.servers import Item, Publisher
from tests.watchlists import watchlist
from tests.worker_jobs import (
    broken_warm_up,
    fragment_heap,
    freed_large_blocks,
    keep,
    load_ballast,
    loaded_modules,
    mark_warm,
    public_suffixes_loaded,
    resident,
    rss_and_pss,
    times_warmed,
)

ROOT = Path(__file__).resolve().parents[1]
MAIN = """
import asyncio, json
import aiohttp  # like the daemon's main module; a worker has no use for it
from monitor.workers import WorkerPool
from tests.worker_jobs import loaded_modules

async def main():
    pool = WorkerPool(workers=1)
    try:
        print(json.dumps(await pool.run(60, loaded_modules)))
    finally:
        pool.close()

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(workers=2)
    yield workers
    workers.close()


async def _pid(pool: WorkerPool, page: bytes = b"x") -> int:
    return int((await pool.run(30, scripted, page, None)).detail)


def _workers(pid: int | str = "self") -> set[int]:
    """The pids of this process's worker processes (the zygote and the workers it forked)."""
    pids = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(FileNotFoundError):  # it ended meanwhile
            for child in (task / "children").read_text().split():
                if b"monitor.worker_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    pids |= {int(child), *_workers(child)}
    return pids


def test_a_worker_imports_neither_the_main_module_nor_its_libraries(tmp_path: Path) -> None:
    """A worker of a program whose main module imports aiohttp has neither loaded."""
    script = tmp_path / "program.py"
    script.write_text(MAIN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "tests.worker_jobs" in loaded["modules"]  # the answer did come from a worker
    assert "aiohttp" not in loaded["modules"]
    assert loaded["main"] != str(script)


async def test_jobs_go_to_the_last_used_worker(pool: WorkerPool) -> None:
    """One job at a time keeps to one worker: the others load nothing its jobs needed."""
    pids = {await _pid(pool) for _ in range(4)}
    assert len(pids) == 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
async def test_a_worker_hands_back_the_memory_a_job_freed(one_worker: WorkerPool) -> None:
    """Heap pages a job freed past SWOLLEN leave the worker's resident set when it
    answers, even below a block still in use (malloc_trim), so a worker does not keep
    its peak."""
    during = await one_worker.run(30, fragment_heap, 64)
    after = await one_worker.run(30, resident)
    assert after < during - 48 * 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
async def test_less_freed_is_handed_back_every_few_jobs(one_worker: WorkerPool) -> None:
    """Heap pages a job freed below SWOLLEN are reused by the next jobs (handed back
    after each one, each next job faulted them in again), and handed back once the
    worker has answered TRIM_EVERY jobs."""
    during = await one_worker.run(30, fragment_heap, 16)
    for _ in range(TRIM_EVERY - 1):  # its jobs 2 to 8, each read before its answer
        after = await one_worker.run(30, resident)
    assert after > during - 8 * 2**20
    after = await one_worker.run(30, resident)
    assert after < during - 12 * 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
async def test_an_idle_worker_holds_none_of_what_its_jobs_freed(one_worker: WorkerPool) -> None:
    """A worker left without a job hands back the heap its last jobs freed (after IDLE
    seconds), instead of holding it until its next jobs."""
    pid = await one_worker.run(30, os.getpid)
    during = await one_worker.run(30, fragment_heap, 16)
    await eventually(lambda: resident(pid) < during - 12 * 2**20, timeout=20)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
async def test_a_worker_unmaps_large_blocks_when_freed(one_worker: WorkerPool) -> None:
    """In a worker, large blocks leave the resident set when freed, even after a bigger
    block would have raised glibc's mmap threshold (monitor/heap.py)."""
    released = await one_worker.run(30, freed_large_blocks, 32)
    assert released > 30 * 2**20


def after_the_cli(job: str, argument: int) -> int:
    """What ``tests.worker_jobs.<job>(argument)`` returns in a fresh process that ran
    newsmon's CLI first, as the daemon's process does."""
    script = (
        "from monitor.cli import main\n"
        f"from tests.worker_jobs import {job}\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        f"    print({job}({argument}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_cli_unmaps_large_blocks_when_freed() -> None:
    """A process that ran newsmon's CLI (the daemon's) frees large blocks at once, even
    after a bigger block would have raised glibc's mmap threshold (monitor/heap.py)."""
    assert after_the_cli("freed_large_blocks", 32) > 30 * 2**20


async def test_a_worker_grown_past_its_bound_is_replaced(pool: WorkerPool) -> None:
    """A worker that kept more than GROWTH since its fork answers its jobs up to the next
    hand-back of its heap (every TRIM_EVERY jobs), then a fresh fork takes the next job;
    one that kept past SWOLLEN is replaced after that job; one that kept nothing takes
    every job."""
    first = await pool.run(30, os.getpid)
    assert await pool.run(30, keep, 1024) == first
    assert await pool.run(30, keep, 2 * GROWTH) == first
    for _ in range(TRIM_EVERY - 4):  # its jobs 4 to 7
        assert await pool.run(30, os.getpid) == first
    assert alive(first)
    assert await pool.run(30, os.getpid) == first  # its 8th job: answered, then retired
    assert not alive(first)
    second = await pool.run(30, os.getpid)
    assert second != first
    assert await pool.run(30, keep, SWOLLEN + GROWTH) == second  # answered, then retired
    assert not alive(second)
    assert await pool.run(30, os.getpid) not in (first, second)


async def test_a_worker_loads_trafilatura_only_for_a_page(one_worker: WorkerPool) -> None:
    """Jobs that parse leave trafilatura unloaded; the first page loads it, off its budget."""
    assert "trafilatura" not in (await one_worker.run(30, loaded_modules))["modules"]
    page = b"<html><body><article><p>The embassy reopened.</p></article></body></html>"
    await Extractor(timeout=30.0, pool=one_worker).extract(page, None)
    assert "trafilatura" in (await one_worker.run(30, loaded_modules))["modules"]


async def test_a_page_loads_nothing_the_warm_up_could_have(one_worker: WorkerPool) -> None:
    """What trafilatura's libraries load the first time a page needs it, and most news
    pages do (the public suffix list, for a host courlan's pattern does not read; the
    standard library's strptime, for a date in JSON-LD), is loaded by the warm-up in the
    zygote, which every worker shares, not by each worker's first such page."""
    assert await one_worker.run(30, public_suffixes_loaded, warm_up=warm_up)  # before any page
    before = set((await one_worker.run(30, loaded_modules))["modules"])
    page = (
        b'<html><head><title>Talks resume</title><script type="application/ld+json">'
        b'{"@type": "NewsArticle", "datePublished": "2024-03-05"}</script></head>'
        b"<body><article><h1>Talks resume</h1><p>"
        + b"The article text is long enough to count as the story here. " * 10
        + b"</p></article></body></html>"
    )
    extractor = Extractor(timeout=30.0, pool=one_worker)
    extracted = await extractor.extract(page, "http://127.0.0.1:8080/news/talks.html")
    assert extracted.published == date(2024, 3, 5)
    assert set((await one_worker.run(30, loaded_modules))["modules"]) - before == set()


async def test_a_job_warm_up_runs_once_per_worker(pool: WorkerPool) -> None:
    """A job's warm-up runs before it (in the zygote its worker is forked from), once."""
    assert await pool.run(30, times_warmed, warm_up=mark_warm) == 1
    assert await pool.run(30, times_warmed, warm_up=mark_warm) == 1
    assert await pool.run(30, times_warmed) == 1  # the same worker, still warm


async def test_workers_share_what_a_warm_up_loaded(one_worker: WorkerPool) -> None:
    """What a warm-up made is not copied into each worker: the worker forked after it
    shares those pages with the zygote, so its proportional set counts half of them."""
    rss, pss = await one_worker.run(30, rss_and_pss, warm_up=load_ballast)
    assert rss > 64 * 2**20
    assert pss < rss - 24 * 2**20


async def test_renew_replaces_idle_workers_now_and_busy_ones_after_their_job(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """renew(): the idle worker stops at once; the busy one finishes its job, then goes."""
    busy = asyncio.create_task(_pid(pool, GATE + str(tmp_path).encode()))
    await eventually((tmp_path / "started").exists, timeout=30)
    idle = await pool.run(30, os.getpid, warm_up=mark_warm)
    pool.renew()
    assert not alive(idle)
    (tmp_path / "open").touch()
    renewed = await busy  # its job was not cut short
    assert not alive(renewed)
    assert await pool.run(30, times_warmed) == 0  # a fresh worker: nothing warmed
    assert await pool.run(30, os.getpid) not in {idle, renewed}


async def test_a_failed_warm_up_is_a_lost_worker() -> None:
    """A worker whose warm-up raises never takes a job: WorkerLost, and nothing left over."""
    with (
        closing(WorkerPool(workers=1, warm_up=broken_warm_up)) as pool,
        pytest.raises(WorkerLost, match="worker failed to start"),
    ):
        await _pid(pool)


async def test_a_failed_job_warm_up_is_a_lost_worker(pool: WorkerPool) -> None:
    """A job whose warm-up raises is not run: WorkerLost, and that worker is replaced."""
    before = await pool.run(30, os.getpid)
    with pytest.raises(WorkerLost, match="worker failed to warm up"):
        await pool.run(30, os.getpid, warm_up=broken_warm_up)
    assert not alive(before)
    assert await pool.run(30, os.getpid) != before


async def test_ctrl_c_is_left_to_the_daemon(pool: WorkerPool) -> None:
    """SIGINT (Ctrl-C reaches the whole process group) does not kill a worker."""
    pid = await _pid(pool)
    os.kill(pid, signal.SIGINT)
    assert await _pid(pool) == pid


async def test_a_reload_that_stops_fetching_articles_replaces_the_workers(
    publisher: Publisher, write_watchlist
) -> None:
    """fetch_articles turned off: the workers that loaded trafilatura for pages are gone."""
    body = "The embassy in Moscow reopened on Monday after talks.\n\nDiplomats returned."
    publisher.rss_items = [Item("Embassy reopens", "/a/embassy", body=body)]
    feeds = [f"{publisher.base}/rss.xml"]
    path = write_watchlist(feeds=feeds, fetch_articles=True)
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
        extracted = _workers()
        assert extracted  # the worker that parsed the feed and extracted its page
        path.write_text(watchlist(feeds=feeds, fetch_articles=False), encoding="utf-8")
        assert await daemon.reload()
        assert not any(alive(pid) for pid in extracted)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_cli_gives_every_thread_one_malloc_arena() -> None:
    """A process that ran newsmon's CLI (the daemon's) allocates from one malloc arena in
    all its threads, so what the database thread frees is not held in an arena of its
    own (monitor/heap.py)."""
    assert after_the_cli("arenas_with_threads", 4) == 1
