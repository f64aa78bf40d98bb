"""newsmon's speed, measured side by side with lemon24/reader on the same local feed farm.

    python -m bench [--reps 3] [--reader-python /tmp/reader-venv/bin/python] [--only NAME ...]

Starts the farm (bench/farm.py) in its own process on loopback, then runs each scenario
``--reps`` times; newsmon and reader alternate, each run in a fresh process with a fresh
database. Prints a table of medians with min-max, the paired ratios (newsmon / reader,
run by run) and the targets of docs/performance.md. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT.parent / "shared" / "corpus" / "articles"
READER_PYTHON = "/tmp/reader-venv/bin/python"


@dataclass
class Farm:
    process: subprocess.Popen[str]
    hosts: list[tuple[str, int]]

    @classmethod
    def start(cls, feeds: int, items: int, hosts: int) -> Farm:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.farm", f"--feeds={feeds}", f"--items={items}",
             f"--hosts={hosts}"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        return cls(process, [tuple(h) for h in ready["hosts"]])

    def url(self, path: str, i: int = 0) -> str:
        host, port = self.hosts[i % len(self.hosts)]
        return f"http://{host}:{port}{path}"

    def feeds(self, count: int, start: int = 0) -> list[str]:
        return [self.url(f"/feed/{i}.xml", i) for i in range(start, start + count)]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=30) as answer:
            return json.loads(answer.read())

    def reset(self, new: int = 0) -> None:
        self.get(f"/reset?new={new}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


class TreeMemory:
    """Resident memory of a process and its descendants, sampled every 20 ms: each
    process's peak RSS and PSS, the peak of each sum and each process's PSS at the peak
    of the PSS sum. RSS counts a page several processes share (the interpreter, lxml's
    library) once per process; PSS divides it among them, so a PSS sum counts it once
    (docs/performance.md, memory)."""

    KINDS = ("Rss", "Pss")

    def __init__(self, pid: int) -> None:
        self.pid, self._done = pid, threading.Event()
        self.peak = dict.fromkeys(self.KINDS, 0)  # of the sums, bytes
        self.processes: dict[int, dict[str, int]] = {}  # pid -> its own peaks, first seen first
        self.at_peak: dict[int, int] = {}  # pid -> its PSS when the PSS sum peaked
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self, pid: int) -> list[int]:
        pids = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = (task / "children").read_text().split()
            for child in children:
                pids += self._tree(int(child))
        return pids

    def _read(self, pid: int) -> dict[str, int]:
        found = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in self.KINDS:
                found[name] = int(rest.split()[0]) * 1024
        return found

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            try:
                sample = {pid: self._read(pid) for pid in self._tree(self.pid)}
            except (OSError, ValueError):
                continue  # a process ended mid-sample
            for pid, got in sample.items():
                peaks = self.processes.setdefault(pid, dict.fromkeys(self.KINDS, 0))
                for kind in self.KINDS:
                    peaks[kind] = max(peaks[kind], got.get(kind, 0))
            for kind in self.KINDS:
                total = sum(got.get(kind, 0) for got in sample.values())
                if kind == "Pss" and total > self.peak[kind]:
                    self.at_peak = {pid: got.get(kind, 0) for pid, got in sample.items()}
                self.peak[kind] = max(self.peak[kind], total)

    def stop(self) -> dict[str, Any]:
        self._done.set()
        self._thread.join()
        at_peak = [self.at_peak[pid] for pid in self.processes if pid in self.at_peak]
        return {"peak": self.peak, "processes": list(self.processes.values()), "at_peak": at_peak}


def run_client(
    argv: list[str], job: dict[str, Any], log: Path, memory: bool = False
) -> dict[str, Any]:
    with log.open("a") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )  # the job on standard input: 10,000 feed URLs outgrow an argument list
        sampler = TreeMemory(process.pid) if memory else None
        out, _ = process.communicate(json.dumps(job))
        sampled = sampler.stop() if sampler else None
    if process.returncode:
        raise SystemExit(f"client failed ({process.returncode}); see {log}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if sampled:
        result["memory"] = sampled
    return result


@dataclass
class Row:
    name: str
    unit: str
    target: str
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    met: Callable[[Row], bool] | None = None
    note: str = ""


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    m = statistics.median(values)
    fmt = (lambda v: f"{v:,.0f}") if m >= 100 else (lambda v: f"{v:,.2f}")
    return f"{fmt(m)} ({fmt(min(values))}-{fmt(max(values))})"


def judged(row: Row) -> str:
    """yes or NO against the target; "-" without a target or the figures it needs."""
    if row.met is None or not row.ours:
        return "-"
    try:
        return "yes" if row.met(row) else "NO"
    except statistics.StatisticsError:  # a ratio, and the peer did not run
        return "-"


def table(rows: list[Row]) -> str:
    head = ("scenario", "unit", "newsmon", "reader 3.26", "ratio", "target", "met")
    lines = [head]
    for r in rows:
        ratio = f"{statistics.median(r.ratios):.2f}x" if r.ratios else "-"
        lines.append((r.name, r.unit, spread(r.ours), spread(r.theirs), ratio, r.target, judged(r)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["notes:", *notes] if notes else []))


def _mb(peaks: dict[str, int]) -> str:
    return f"{peaks['Pss'] / 1e6:.0f}/{peaks['Rss'] / 1e6:.0f}"


def median(row: Row) -> float:
    return statistics.median(row.ours)


def ratio(row: Row) -> float:
    return statistics.median(row.ratios)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = Path(args.log)
        self.log.write_text("")
        self.newsmon = [sys.executable, "-m", "bench.newsmon_client"]
        self.reader = [args.reader_python, str(ROOT / "bench" / "reader_client.py")]
        self.have_reader = (
            Path(args.reader_python).exists()
            and subprocess.run(
                [args.reader_python, "-c", "import reader"], capture_output=True, check=False
            ).returncode
            == 0
        )

    def paired(self, row: Row, farm: Farm, job: dict[str, Any], new: int, key: str) -> Row:
        """Alternate newsmon and reader (which goes first alternates too), rep by rep."""
        for rep in range(self.args.reps):
            order = ["newsmon", "reader"] if rep % 2 == 0 else ["reader", "newsmon"]
            got: dict[str, float] = {}
            for client in order:
                if client == "reader" and not self.have_reader:
                    continue
                farm.reset(new)
                argv = self.newsmon if client == "newsmon" else self.reader
                result = run_client(argv, job, self.log)
                got[client] = result[key] / result["seconds"]
            row.ours.append(got["newsmon"])
            if "reader" in got:
                row.theirs.append(got["reader"])
                row.ratios.append(got["newsmon"] / got["reader"])
        if not self.have_reader:
            row.note = f"reader not installed at {self.args.reader_python}: skipped"
        return row

    def cold_feeds(self, farm: Farm) -> Row:
        row = Row(
            "cold ingest, feeds only", "entries/s", ">= 5x reader", met=lambda r: ratio(r) >= 5
        )
        job = {"scenario": "cold", "feeds": farm.feeds(self.args.feeds)}
        return self.paired(row, farm, job, 0, "entries")

    def steady(self, farm: Farm) -> Row:
        row = Row("steady state, all 304", "polls/s", ">= 2,000/s", met=lambda r: median(r) >= 2000)
        job = {"scenario": "rounds", "feeds": farm.feeds(self.args.feeds), "rounds": 5}
        return self.paired(row, farm, job, 0, "polls")

    def incremental(self, farm: Farm) -> Row:
        k = self.args.new
        row = Row(f"incremental, {k} new per poll", "polls/s", ">= 10x reader",
                  met=lambda r: ratio(r) >= 10)  # fmt: skip
        job = {"scenario": "rounds", "feeds": farm.feeds(self.args.feeds), "rounds": 3}
        return self.paired(row, farm, job, k, "polls")

    def cold_extract(self, farm: Farm) -> Row:
        """Cold ingest with page fetch and extraction against raw trafilatura on the same
        pages with the same number of worker processes (the ceiling)."""
        feeds, workers = self.args.extract_feeds, self.args.workers
        row = Row(f"cold ingest + extraction, {workers} workers", "pages/s",
                  ">= 80% of raw trafilatura", met=lambda r: ratio(r) >= 0.8)  # fmt: skip
        urls = farm.feeds(feeds)
        warm = farm.url(f"/feed/{feeds}.xml?items=2", feeds)
        job = {"scenario": "cold", "feeds": [*urls, warm], "warm": warm,
               "fetch_articles": True, "workers": workers}  # fmt: skip
        pages = [farm.url(f"/a/{i}/{n}.html", i) for i in range(feeds) for n in range(50)]
        for _ in range(self.args.reps):
            farm.reset(0)
            ours = run_client(self.newsmon, job, self.log)
            raw = run_client(
                [sys.executable, "-m", "bench.ceiling"], {"pages": pages, "workers": workers},
                self.log,
            )  # fmt: skip
            row.ours.append(ours["entries"] / ours["seconds"])
            row.theirs.append(raw["pages"] / raw["seconds"])
            row.ratios.append(row.ours[-1] / row.theirs[-1])
        row.note = "the reader column here is raw trafilatura (bench/ceiling.py), not reader"
        return row

    def latency(self, farm: Farm) -> Row:
        row = Row("poll-to-webhook latency p50", "ms", "< 250 ms", met=lambda r: median(r) < 250)
        job = {"scenario": "forever", "feeds": farm.feeds(5), "interval": "2s",
               "fetch_articles": True, "hook": farm.url("/hook"), "seconds": 14,
               "first_poll_max_age": "1s"}  # fmt: skip
        samples: list[float] = []
        for _ in range(self.args.reps):
            farm.reset(1)
            run_client(self.newsmon, job, self.log)
            latencies = farm.get("/stats")["latencies"]
            if latencies:
                row.ours.append(statistics.median(latencies) * 1000)
                samples += latencies
        row.note = f"{len(samples)} alerts; slowest {max(samples, default=0) * 1000:.0f} ms"
        return row

    def memory(self) -> list[Row]:
        """One daemon with every feed, every rule and article extraction: the PSS sum is
        the target's figure, the RSS sum beside it (docs/performance.md says why)."""
        feeds, rules, workers = self.args.memory_feeds, self.args.memory_rules, self.args.workers
        scope = f"{feeds:,} feeds + {rules:,} rules"
        pss = Row(f"peak PSS, {scope}", "MB", "< 200 MB", met=lambda r: median(r) < 200)
        rss = Row(f"peak RSS, {scope}", "MB", "-")
        extract = self.args.memory_extract_feeds  # of ``--items`` pages each
        farm = Farm.start(extract + feeds, self.args.items, self.args.hosts)
        try:
            pages = farm.feeds(extract)
            small = f"?items={self.args.memory_items}&links=0"  # matched on their own text
            others = [url + small for url in farm.feeds(feeds, extract)]
            job = {"scenario": "memory", "feeds": [*pages, *others],
                   "extract": pages, "fetch_articles": True, "rules": rules,
                   "articles": str(ARTICLES), "sink": farm.url("/hook"), "workers": workers,
                   "deliver": 5.0}  # fmt: skip
            result = run_client(self.newsmon, job, self.log, memory=True)
        finally:
            farm.stop()
        sampled = result["memory"]
        pss.ours.append(sampled["peak"]["Pss"] / 1e6)
        rss.ours.append(sampled["peak"]["Rss"] / 1e6)
        daemon, zygote, *forked = sampled["processes"]  # first seen first
        largest = max(forked, key=lambda p: p["Pss"])
        pss.note = (
            f"{workers} workers; peak PSS/RSS MB: daemon {_mb(daemon)}, zygote {_mb(zygote)}, "
            f"the largest of the {len(forked)} workers forked over the run {_mb(largest)}; "
            f"PSS MB at the sum's peak (daemon, zygote, workers): "
            f"{', '.join(f'{b / 1e6:.0f}' for b in sampled['at_peak'])}; "
            f"{result['pages']:,} pages extracted, {result['entries']:,} entries stored "
            f"in {result['seconds']:.0f} s"
        )
        return [pss, rss]

    def matching(self) -> list[Row]:
        from bench.match import COUNTS, as_fed, load_articles, make_rules, per_article_ms
        from monitor.rules import compile_rules

        texts, sources = load_articles(ARTICLES)
        docs = [as_fed(t) for t in texts]  # each matched as on first sight (bench/match.py)
        indexes = [
            compile_rules(*make_rules(sources, count, random.Random(count))) for count in COUNTS
        ]
        runs = [
            per_article_ms(indexes, docs, sources, 5, snippets=False) for _ in range(self.args.reps)
        ]
        rows = []
        for n, count in enumerate(COUNTS):
            row = Row(f"matching, {count:,} rules", "ms/article", "-")
            if count == 10_000:
                row.target, row.met = "<= 1 ms", lambda r: median(r) <= 1.0
            row.ours = [run[n][0] for run in runs]
            rows.append(row)
        return rows


SCENARIOS = ("cold", "steady", "incremental", "extract", "latency", "memory", "matching")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--new", type=int, default=5, help="new items per poll, incremental")
    parser.add_argument("--hosts", type=int, default=4, help="loopback addresses 127.0.0.1..K")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--extract-feeds", type=int, default=4, help="of 50 pages each")
    parser.add_argument("--memory-feeds", type=int, default=10_000)
    parser.add_argument("--memory-items", type=int, default=3, help="items of each feed")
    parser.add_argument(
        "--memory-extract-feeds", type=int, default=6, help="more feeds, of --items pages each"
    )
    parser.add_argument("--memory-rules", type=int, default=10_000)
    parser.add_argument("--reader-python", default=READER_PYTHON)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--log", default="/tmp/newsmon-bench.log", help="clients' stderr")
    args = parser.parse_args()
    bench = Bench(args)
    rows: list[Row] = []
    farm = Farm.start(args.feeds + 1, args.items, args.hosts)
    try:
        for name, scenario in (
            ("cold", bench.cold_feeds), ("steady", bench.steady),
            ("incremental", bench.incremental), ("extract", bench.cold_extract),
            ("latency", bench.latency),
        ):  # fmt: skip
            if name in args.only:
                rows.append(scenario(farm))
                print(f"done: {rows[-1].name}", file=sys.stderr, flush=True)
        farm.stop()
        if "memory" in args.only:
            rows += bench.memory()
        if "matching" in args.only:
            rows += bench.matching()
    finally:
        farm.stop()
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.reps} reps")
        print(table(rows))


if __name__ == "__main__":
    main()
