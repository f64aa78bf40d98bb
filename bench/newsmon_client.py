"""One benchmark run of newsmon, in a fresh process with a fresh database.

    python -m bench.newsmon_client < JOB_JSON

Drives newsmon through its real API (``Daemon.open``, ``run_once``, ``poll``,
``run_forever``) with a watchlist generated for the farm, and prints one JSON line of
counts and seconds. The runner (bench/__main__.py) spawns one per repetition.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from monitor import heap
from monitor.config import Config, parse_config
from monitor.daemon import Daemon
from monitor.log import configure_logging


def watchlist(job: dict[str, Any], database: Path) -> Config:
    """The generated watchlist: the job's feeds, optionally rules and a webhook."""
    monitor: dict[str, Any] = {
        "database": str(database),
        "fetch_articles": job.get("fetch_articles", False),
        "concurrency": job.get("concurrency", 32),
        "per_host": job.get("per_host", 8),
        "extract_workers": job.get("workers", 0),
        "min_interval": "1s",
        "interval": job.get("interval", "10m"),
    }
    if "first_poll_max_age" in job:
        monitor["first_poll_max_age"] = job["first_poll_max_age"]
    data: dict[str, Any] = {"monitor": monitor, "feeds": [{"url": u} for u in job["feeds"]]}
    if job.get("hook"):
        data["notifiers"] = {"hook": {"type": "webhook", "url": job["hook"]}}
        data["rules"] = [{"name": "zebra", "query": "title:zebra", "notify": ["hook"]}]
    if job.get("rules"):
        from bench.match import load_articles, make_rules

        _, sources = load_articles(Path(job["articles"]))
        rules, entities = make_rules(sources, job["rules"], random.Random(job["rules"]))
        data.setdefault("notifiers", {})["sink"] = {"type": "webhook", "url": job["sink"]}
        data.setdefault("rules", []).extend(
            {"name": n, "query": q, "notify": ["sink"]} for n, q in rules.items()
        )
        data["entities"] = entities
    return parse_config(data, database.parent / "newsmon.toml")


async def entry_count(daemon: Daemon) -> int:
    return await daemon.store.archive_size(0.0)


async def cold(job: dict[str, Any], config: Config) -> dict[str, Any]:
    """One poll of every feed into an empty database (``warm``: a feed polled first, untimed,
    so extraction workers are up before the clock starts)."""
    async with Daemon.open(config) as daemon:
        if job.get("warm"):
            await daemon.store.sync_feeds({f.url: f.name for f in config.feeds}, 0.0, 0.0)
            await daemon.poll([f for f in config.feeds if f.url == job["warm"]])
            before = await entry_count(daemon)
            feeds = [f for f in config.feeds if f.url != job["warm"]]
            t0 = time.perf_counter()
            await daemon.poll(feeds)
            seconds = time.perf_counter() - t0
        else:
            before = 0
            t0 = time.perf_counter()
            await daemon.run_once()
            seconds = time.perf_counter() - t0
        entries = await entry_count(daemon) - before
    return {"seconds": seconds, "entries": entries, "polls": len(job["feeds"])}


async def rounds(job: dict[str, Any], config: Config) -> dict[str, Any]:
    """A cold poll (untimed), then ``rounds`` polls of every feed, as the scheduler's tick
    would start them."""
    async with Daemon.open(config) as daemon:
        await daemon.run_once()
        before = await entry_count(daemon)
        feeds = list(config.feeds)
        t0 = time.perf_counter()
        for _ in range(job["rounds"]):
            results = await daemon.poll(feeds)
        seconds = time.perf_counter() - t0
        entries = await entry_count(daemon) - before
        outcomes = sorted({r.outcome for r in results})
    polls = job["rounds"] * len(feeds)
    return {"seconds": seconds, "entries": entries, "polls": polls, "outcomes": outcomes}


async def forever(job: dict[str, Any], config: Config) -> dict[str, Any]:
    """The daemon as it runs in service, for ``seconds``: the farm measures latency."""
    stop, reload = asyncio.Event(), asyncio.Event()
    async with Daemon.open(config) as daemon:
        asyncio.get_running_loop().call_later(job["seconds"], stop.set)
        await daemon.run_forever(stop, reload)
    return {"seconds": job["seconds"]}


async def memory(job: dict[str, Any], config: Config) -> dict[str, Any]:
    """One daemon as in service, fetching articles: every feed polled cold at once (the
    ``extract`` feeds' items have their pages fetched and extracted in the workers, the
    others' are matched on the feed's own text), then once more (304s) with the alerts
    delivered. The runner samples the daemon's and its workers' memory meanwhile."""
    extract = set(job["extract"])
    async with Daemon.open(config) as daemon:
        await daemon.store.sync_feeds({f.url: f.name for f in config.feeds}, 0.0, 0.0)
        t0 = time.perf_counter()
        await asyncio.gather(
            daemon.poll([f for f in config.feeds if f.url in extract]),
            daemon.poll([f for f in config.feeds if f.url not in extract]),
        )
        await daemon.run_once(delivery_deadline=job.get("deliver", 10.0))
        seconds = time.perf_counter() - t0
        entries = await entry_count(daemon)
    with closing(sqlite3.connect(config.monitor.database)) as db:
        (pages,) = db.execute("SELECT count(*) FROM entries WHERE body_status = 'extracted'")
    return {
        "seconds": seconds,
        "entries": entries,
        "pages": pages[0],
        "polls": 2 * len(config.feeds),
    }


SCENARIOS = {"cold": cold, "rounds": rounds, "forever": forever, "memory": memory}


def main() -> None:
    heap.unmap_large_blocks()  # as the CLI does, first thing
    heap.one_arena()
    job = json.loads(sys.stdin.read())
    configure_logging(job.get("log_level", "info"))
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-") as tmp:
        config = watchlist(job, Path(tmp) / "newsmon.db")
        result = asyncio.run(SCENARIOS[job["scenario"]](job, config))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
