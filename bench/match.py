"""Rule-matching speed: per-article time at 1,000 and 10,000 rules, and compile time.

Rules have a realistic shape, built deterministically from the words of real articles:
10% single words, 20% 2-3 word phrases, 20% AND pairs, 30% an entity AND a word,
and 20% NEAR (words, or an entity in the same sentence as a word). Articles are the ~5 KB
ground-truth bodies of the test corpus, with their first line as title and the start of
their lead paragraph as summary, as feeds give them.

Each article is matched as on first sight: the index has seen the other corpus articles
(so common words are in its spelling cache) but not this one.

    python bench/match.py --articles /work/shared/corpus/articles

Prints one line per rule count; docs/performance.md records the figures. Matching runs
through the compiled fast path when it is built (``pip install -e .`` builds it into a
checkout), and through pure Python with NEWSMON_PURE_PYTHON=1.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from monitor.models import Document
from monitor.rules import RuleIndex, compile_rules, native
from monitor.rules.plan import View
from monitor.rules.snippet import matched_terms

WORD = re.compile(r"[A-Za-z]{4,}")
COUNTS = (1_000, 10_000)


def load_articles(directory: Path) -> tuple[list[str], list[str]]:
    """The 4-6 KB articles to match, and the others, which the rules are drawn from.

    Drawing rules from other articles than those matched keeps the hit rate honest.
    """
    texts = [p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.txt"))]
    sized = [t for t in texts if 4000 <= len(t.encode()) <= 6000]
    return sized, [t for t in texts if t not in sized]


def make_rules(
    texts: list[str], count: int, rng: random.Random
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``count`` rules and 200 entities drawn from the corpus vocabulary.

    The 1,000 most frequent words are left out: people watch for topics and names, not
    for "said" or "people", and a rule on a common word would alert on every article.
    Two quirks are kept so that figures stay comparable with earlier ones; both make the
    work heavier, not lighter: capitalised common words ("Which", "About") pass the name
    filter, and phrases may start with words under four letters ("of the first"), which
    ``WORD`` does not count.
    """
    counts = Counter(w.lower() for t in texts for w in WORD.findall(t))
    common = {w for w, _ in counts.most_common(1000)}
    vocab = sorted(w for w in counts if w not in common)
    names = sorted({w for t in texts for w in re.findall(r"\b[A-Z][a-z]{3,}\b", t)} - common)
    phrases = sorted(
        {
            " ".join(words)
            for t in texts
            for n in (2, 3)
            for words in zip(*(t.split()[k:] for k in range(n)), strict=False)
            if all(w.isalpha() for w in words) and words[0].lower() not in common
        }
    )
    entities = {f"e{i}": [*rng.sample(names, 4), rng.choice(phrases)] for i in range(200)}
    entity_names = sorted(entities)
    rules = {}
    for i in range(count):
        word, other = rng.choice(vocab), rng.choice(vocab)
        entity = f"@{rng.choice(entity_names)}"
        shape = i % 10
        if shape == 0:
            query = word
        elif shape < 3:
            query = f'"{rng.choice(phrases)}"'
        elif shape < 5:
            query = f"{word} AND {other}"
        elif shape < 8:
            query = f"{entity} AND ({word} OR {other})"
        elif shape < 9:
            query = f"{word} NEAR/10 {other}"
        else:
            query = f"{entity} NEAR/s {word}"
        rules[f"r{i}"] = query
    return rules, entities


def as_fed(text: str) -> Document:
    """Title: the first line; summary: the lead paragraph cut to 300 characters."""
    lead = text.split("\n", 1)[0]
    summary = lead if len(lead) <= 300 else lead[:300].rsplit(" ", 1)[0] + "…"
    return Document(lead[:100], summary, text)


def seen_only(index: RuleIndex, seen: list[str]) -> Callable[[], None]:
    """Match ``seen``, and return what puts the index's spelling cache back to what it held
    then: called before each measured article, it makes that article new to the index."""
    for text in seen:
        index.match(as_fed(text))
    warm = dict(index._spellings)

    def first_sight() -> None:
        index._spellings.clear()
        index._spellings.update(warm)

    return first_sight


def per_article_ms(
    indexes: list[RuleIndex], docs: list[Document], seen: list[str], rounds: int, snippets: bool
) -> list[tuple[float, list[float], float, list[float]]]:
    """Per index: the median time per article, each round's median, the median CPU time
    per article (``process_time``: what other jobs on the machine do not inflate), and
    each round's median CPU time, in milliseconds.

    The indexes take turns, a round each, so that a machine whose speed drifts (other
    jobs come and go) slows them alike and their ratio holds. Before each article the
    index's spelling cache is put back to what it held after matching ``seen``: words new
    to the index cost a normalisation each, and a running daemon meets a few dozen per
    article, which a cache warmed on the measured articles themselves would hide. With
    ``snippets``, every match's snippet is read too (they are made on first read): what a
    story costs when every match becomes a hit.
    """
    turns = [seen_only(index, seen) for index in indexes]
    samples: list[list[float]] = [[] for _ in indexes]
    cpu: list[list[float]] = [[] for _ in indexes]
    medians: list[list[float]] = [[] for _ in indexes]
    cpu_medians: list[list[float]] = [[] for _ in indexes]
    for _ in range(rounds):
        for n, (index, first_sight) in enumerate(zip(indexes, turns, strict=True)):
            wall, used = [], []
            for doc in docs:
                first_sight()
                t0, c0 = time.perf_counter(), time.process_time()
                matches = index.match(doc)
                if snippets:
                    for match in matches:
                        match.snippet  # noqa: B018 - read to make it
                wall.append(time.perf_counter() - t0)
                used.append(time.process_time() - c0)
            samples[n] += wall
            cpu[n] += used
            medians[n].append(statistics.median(wall) * 1000)
            cpu_medians[n].append(statistics.median(used) * 1000)
    return [
        (statistics.median(w) * 1000, m, statistics.median(c) * 1000, cm)
        for w, m, c, cm in zip(samples, medians, cpu, cpu_medians, strict=True)
    ]


def stage_ms(
    index: RuleIndex, docs: list[Document], seen: list[str], rounds: int
) -> dict[str, float]:
    """Median CPU time per article of each stage of ``RuleIndex.match``, in milliseconds:
    tokenising the three fields into a view, selecting candidates, evaluating them, and
    building the matches' terms (each timed on its own, in the conditions of
    :func:`per_article_ms`)."""
    first_sight = seen_only(index, seen)
    times: dict[str, list[float]] = {"view": [], "candidates": [], "evaluate": [], "terms": []}
    clock = time.process_time
    for _ in range(rounds):
        for doc in docs:
            first_sight()
            t0 = clock()
            view = View(doc, index._spellings)
            t1 = clock()
            candidates = index._candidates(view)
            t2 = clock()
            found = [index._evidence(index._plans[i], view) for i in candidates]
            t3 = clock()
            for spans in found:
                if spans is not None:
                    matched_terms(view, spans)
            t4 = clock()
            for stage, (a, b) in zip(times, pairwise((t0, t1, t2, t3, t4)), strict=True):
                times[stage].append(b - a)
    return {stage: statistics.median(t) * 1000 for stage, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, required=True, help="directory of *.txt bodies")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--stages", action="store_true", help="also time each stage")
    args = parser.parse_args()
    texts, sources = load_articles(args.articles)
    docs = [as_fed(t) for t in texts]
    path = "the compiled fast path" if native.COMPILED else "pure Python (no _speedups)"
    print(
        f"{len(docs)} articles of 4-6 KB, median per-article time over {args.rounds} rounds "
        f"(range: the rounds' medians); matching through {path}"
    )
    indexes = []
    for count in COUNTS:
        rules, entities = make_rules(sources, count, random.Random(count))
        t0, c0 = time.perf_counter(), time.process_time()
        indexes.append(compile_rules(rules, entities))
        compile_s, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{count:>6} rules: compile {compile_s:.2f} s (CPU {compile_cpu:.2f})")
    timed = per_article_ms(indexes, docs, sources, args.rounds, snippets=False)
    read = per_article_ms(indexes, docs, sources, args.rounds, snippets=True)
    for count, index, (ms, rounds, cpu, _), (read_ms, read_rounds, _, _) in zip(
        COUNTS, indexes, timed, read, strict=True
    ):
        hits = sum(len(index.match(d)) for d in docs) / len(docs)
        print(
            f"{count:>6} rules: match {ms:.3f} ms/article "
            f"({min(rounds):.3f}-{max(rounds):.3f}; CPU {cpu:.3f}), "
            f"with every snippet read {read_ms:.3f} "
            f"({min(read_rounds):.3f}-{max(read_rounds):.3f}), {hits:.1f} matches/article"
        )
        if args.stages:
            stages = stage_ms(index, docs, sources, args.rounds)
            print("        stages, CPU: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    (_, _, few, few_rounds), (_, _, many, many_rounds) = timed
    ratios = sorted(b / a for a, b in zip(few_rounds, many_rounds, strict=True))
    print(
        f"10x the rules: {many / few:.2f}x the CPU time (round by round: median "
        f"{statistics.median(ratios):.2f}x, {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )


if __name__ == "__main__":
    main()
