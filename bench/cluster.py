"""Story-clustering lookup cost as the archive grows, and backtest speed over a week.

    PYTHONPATH=. python bench/cluster.py --articles /work/shared/corpus/articles [PART ...]

1. Lookup: fills a real SQLite store through ``commit_poll`` with N entries spread over
   30 days (fingerprints of unrelated texts, as most news is), then times
   ``Store.find_story`` for new entries (half of them copies of a stored one, half new),
   at N = 10,000 and 100,000. Flat means the index, not a scan, answers.
2. Backtest: 20,000 entries over 7 days whose bodies are the corpus articles (cycled, each
   copy with its own extra paragraph), then times ``backtest.scan`` for a few queries.
3. Flood: a feed that posts the same text under new links, 50 a poll, until 10,000 such
   entries sit in the window; times each poll's commit. Flat means that a crowd of
   identical entries costs each new one a bounded number of comparisons.

Prints medians; docs/clustering.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from monitor import cluster
from monitor.backtest import scan
from monitor.models import BodyStatus, ClusterPolicy, Entry, Fingerprint, Story
from monitor.rules import compile_rules
from monitor.store import Store, first_cursor

DAY = 86400.0
NOW = 1_750_000_000.0
POLICY = ClusterPolicy(3 * DAY, cluster.DEFAULT_THRESHOLD)
QUERIES = {
    "entity AND words": "@apple AND (iphone OR launch*)",
    "phrase": '"climate change"',
    "NEAR": "police NEAR/10 arrest*",
    "rare word": "zeppelin",
}
ENTITIES = {"apple": ["Apple", "Apple Inc.", "Cupertino"]}
PARTS = ["lookup", "backtest", "flood"]


def random_print(rng: random.Random) -> Fingerprint:
    """An unrelated text's signature: independent bin values."""
    return Fingerprint(rng.randint(200, 1500), rng.randbytes(cluster.BINS * 4))


def edited(print_: Fingerprint, rng: random.Random, keep: float) -> Fingerprint:
    """A copy's signature: ``keep`` of its bins agree with the original's."""
    values = bytearray(print_.signature)
    for b in range(cluster.BINS):
        if rng.random() > keep:
            values[b * 4 : b * 4 + 4] = rng.randbytes(4)
    return Fingerprint(print_.shingles, bytes(values))


async def fill(store: Store, count: int, start: int, span: float, rng: random.Random,
               bodies: list[str] | None = None, batch: int = 500) -> list[Fingerprint]:  # fmt: skip
    """``count`` entries through commit_poll, seen evenly over ``span`` seconds before NOW."""
    state = await store.feed_state("https://feed.test/rss")
    prints = []
    for first in range(start, start + count, batch):
        stories = []
        now = NOW - span + span * (first - start) / count
        for i in range(first, min(first + batch, start + count)):
            body = f"{bodies[i % len(bodies)]}\n\nEntry {i}." if bodies else ""
            print_ = None if bodies else random_print(rng)
            if print_:
                prints.append(print_)
            entry = Entry(f"k{i}", f"https://site.test/{i}", f"Story {i}", "", "", None)
            stories.append(Story(entry, entry.url or "", body, BodyStatus.EXTRACTED, (), True,
                                 print_))  # fmt: skip
        await store.commit_poll(
            state, now=now, next_poll_at=now, cursor=first_cursor(state),
            title=None, stories=stories, destinations={}, clustering=POLICY,
        )  # fmt: skip
    return prints


async def lookups(store: Store, prints: list[Fingerprint], rng: random.Random) -> list[float]:
    recent = prints[-len(prints) // 10 :]  # copies of entries inside the window
    times = []
    for i in range(400):
        probe = edited(rng.choice(recent), rng, 0.7) if i % 2 else random_print(rng)
        t = time.perf_counter()
        await store.find_story(probe, NOW, POLICY.window, POLICY.threshold)
        times.append(time.perf_counter() - t)
    return times


async def bench_lookup(sizes: list[int]) -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        await store.sync_feeds({"https://feed.test/rss": "Bench"}, 0, 0)
        prints: list[Fingerprint] = []
        for size in sizes:
            added, t = size - len(prints), time.perf_counter()
            prints += await fill(store, added, len(prints), 30 * DAY, rng)
            per_entry = (time.perf_counter() - t) / added * 1000
            times = await lookups(store, prints, rng)
            print(
                f"lookup: {size:>7,} entries stored: find_story median "
                f"{statistics.median(times) * 1000:.3f} ms, p95 "
                f"{sorted(times)[int(len(times) * 0.95)] * 1000:.3f} ms "
                f"(filling: {per_entry:.2f} ms per entry incl. commit)"
            )
        await store.close()


async def bench_backtest(articles: Path, count: int) -> None:
    bodies = [p.read_text(encoding="utf-8") for p in sorted(articles.glob("aeb-*.txt"))]
    index = compile_rules(QUERIES, ENTITIES)
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        await store.sync_feeds({"https://feed.test/rss": "Bench"}, 0, 0)
        await fill(store, count, 0, 7 * DAY, random.Random(2), bodies)
        for name in QUERIES:
            t = time.perf_counter()
            caught = [c async for c in scan(store, index, name, NOW - 8 * DAY)]
            elapsed = time.perf_counter() - t
            print(f"backtest: {count:,} entries, {name!r}: {elapsed:.2f} s, {len(caught)} caught")
        await store.close()


async def bench_flood(total: int, batch: int = 50) -> None:
    print_ = random_print(random.Random(3))
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        await store.sync_feeds({"https://feed.test/rss": "Bench"}, 0, 0)
        state = await store.feed_state("https://feed.test/rss")
        times: list[float] = []
        for first in range(0, total, batch):
            now = NOW + first  # one second an entry: all inside the window
            stories = [
                Story(entry, entry.url or "", "", BodyStatus.EXTRACTED, (), True, print_)
                for i in range(first, first + batch)
                for entry in [Entry(f"k{i}", f"https://site.test/{i}", "Same", "", "", None)]
            ]
            t = time.perf_counter()
            await store.commit_poll(
                state, now=now, next_poll_at=now, cursor=first_cursor(state),
                title=None, stories=stories, destinations={}, clustering=POLICY,
            )  # fmt: skip
            times.append(time.perf_counter() - t)
            if (first + batch) % (total // 5) == 0:
                recent = times[-10:]
                print(
                    f"flood: {first + batch:>6,} identical entries stored: a poll of {batch}"
                    f" commits in {statistics.median(recent) * 1000:.1f} ms (median of 10)"
                )
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, default=Path("../shared/corpus/articles"))
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--week", type=int, default=20_000, help="entries for the backtest")
    parser.add_argument("--flood", type=int, default=10_000, help="identical entries")
    parser.add_argument("parts", nargs="*", choices=PARTS, default=PARTS, metavar="PART",
                        help=f"which to run: {', '.join(PARTS)} (default all)")  # fmt: skip
    args = parser.parse_args()
    if "lookup" in args.parts:
        asyncio.run(bench_lookup([int(s) for s in args.sizes.split(",")]))
    if "backtest" in args.parts:
        asyncio.run(bench_backtest(args.articles, args.week))
    if "flood" in args.parts:
        asyncio.run(bench_flood(args.flood))


if __name__ == "__main__":
    main()
