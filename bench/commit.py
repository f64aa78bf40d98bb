"""The store's side of a cold ingest: 200 polls of 50 new entries through commit_poll.

    PYTHONPATH=. python bench/commit.py [--articles /work/shared/corpus/articles]

Each entry's summary is 60 words drawn at random from the corpus articles (as the feed
farm draws them; generated words without the corpus), so stories do not repeat. Prints
the fingerprint time per entry and the commits' wall clock and CPU time (the event loop
and the database thread together), with 32 polls committing at a time as the daemon's
default concurrency lets them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from monitor import cluster
from monitor.models import BodyStatus, ClusterPolicy, Entry, Fingerprint, Story
from monitor.store import Store, first_cursor

FEEDS, ITEMS, CONCURRENCY = 200, 50, 32


def vocabulary(articles: Path) -> list[str]:
    files = sorted(articles.glob("*.txt"))[:50] if articles.is_dir() else []
    words = " ".join(p.read_text(encoding="utf-8") for p in files).split()
    return words or [f"word{i}" for i in range(5_000)]


async def commit_all(prints: list[list[Fingerprint | None]], texts: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        urls = [f"http://127.0.0.1/feed/{f}.xml" for f in range(FEEDS)]
        await store.sync_feeds(dict.fromkeys(urls), 0, 0)
        states = [await store.feed_state(u) for u in urls]
        policy = ClusterPolicy(3 * 86400, cluster.DEFAULT_THRESHOLD)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def poll(f: int) -> None:
            stories = []
            for i in range(ITEMS):
                url = f"http://127.0.0.1/{f}/{i}"
                entry = Entry(f"k{i}", url, f"Title {f} {i}", texts[f][i], "", None)
                stories.append(Story(entry, url, "", BodyStatus.DISABLED, (), False, prints[f][i]))
            async with gate:
                await store.commit_poll(
                    states[f], now=1e9, next_poll_at=1e9, cursor=first_cursor(states[f]),
                    title=None, stories=stories, destinations={}, clustering=policy,
                )  # fmt: skip

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(poll(f) for f in range(FEEDS)))
        await store.close()  # writes the band keys still held
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"commits: {wall:.2f} s wall, {cpu:.2f} s CPU for {FEEDS * ITEMS:,} entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, default=Path("../shared/corpus/articles"))
    args = parser.parse_args()
    words, rng = vocabulary(args.articles), random.Random(1)
    texts = [[" ".join(rng.choices(words, k=60)) for _ in range(ITEMS)] for _ in range(FEEDS)]
    t0 = time.process_time()
    prints = [[cluster.story_fingerprint(f"Title {f} {i}", texts[f][i], "")
               for i in range(ITEMS)] for f in range(FEEDS)]  # fmt: skip
    per_entry = (time.process_time() - t0) / (FEEDS * ITEMS) * 1e6
    print(f"fingerprint: {per_entry:.0f} us CPU per entry")
    asyncio.run(commit_all(prints, texts))


if __name__ == "__main__":
    main()
