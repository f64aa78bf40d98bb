"""Compile time of the benchmark's rules, step by step: parse, build the plans, index.

    python -m bench.compile --articles ../shared/corpus/articles [--rules 10000]

Prints the best and the median CPU time of each step over ``--repeat`` compiles, with the
cyclic collector paused as ``compile_rules`` pauses it. A compile's first run is the
slowest (its memory is new to the process), which is what `bench/match.py` reports.

On a machine whose speed drifts, count instructions instead: run the script once under
cachegrind up to a step and once up to ``load`` (drawing the rules), and subtract:

    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no \\
        python -m bench.compile --articles ../shared/corpus/articles --repeat 1 --upto index
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from bench.match import load_articles, make_rules
from monitor.rules import syntax
from monitor.rules.index import (
    CompiledRule,
    RuleIndex,
    _no_collection,
    compile_entities,
    unknown_entity,
)
from monitor.rules.plan import Builder

STEPS = ("parse", "build", "index")


def compile_in_steps(
    rules: dict[str, str], entities: dict[str, list[str]], upto: str
) -> dict[str, float]:
    """``compile_rules``'s steps up to ``upto``, each one's CPU seconds."""
    times: dict[str, float] = {}
    with _no_collection():
        start = time.process_time()
        forms = compile_entities(entities)
        queries = [syntax.parse_query(text) for text in rules.values()]
        assert not any(unknown_entity(q, forms.keys()) for q in queries)
        times["parse"] = time.process_time() - start
        if upto == "parse":
            return times
        start = time.process_time()
        builder = Builder(forms, keep_sources=False)
        plans = [builder.build(q.root) for q in queries]
        times["build"] = time.process_time() - start
        if upto == "build":
            return times
        start = time.process_time()
        compiled = [CompiledRule(n, t, p) for (n, t), p in zip(rules.items(), plans, strict=True)]
        RuleIndex(compiled, forms)
        times["index"] = time.process_time() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, required=True, help="directory of *.txt bodies")
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--upto", choices=("load", *STEPS), default="index")
    args = parser.parse_args()
    _, sources = load_articles(args.articles)
    rules, entities = make_rules(sources, args.rules, random.Random(args.rules))
    if args.upto == "load":
        return
    runs = [compile_in_steps(rules, entities, args.upto) for _ in range(args.repeat)]
    totals = [sum(run.values()) for run in runs]
    print(f"{args.rules} rules, {args.repeat} compiles, CPU s: best (median)")
    for step in [s for s in STEPS if s in runs[0]]:
        times = [run[step] for run in runs]
        print(f"  {step:<6} {min(times):.3f} ({statistics.median(times):.3f})")
    total = f"{min(totals):.3f} ({statistics.median(totals):.3f})"
    print(f"  {'total':<6} {total}; the first compile {totals[0]:.3f}")


if __name__ == "__main__":
    main()
