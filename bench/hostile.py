"""What one hostile text costs the matcher, at the fields' length caps.

Matching runs on the daemon's event loop, so one story that takes seconds stalls every
feed. Each shape below once cost super-linear time or memory (docs/performance.md,
"Hostile text"); this prints what it costs now, for one match of a fresh document.

    python -m bench.hostile
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from monitor.models import Document
from monitor.plaintext import MAX_CONTENT, MAX_SUMMARY
from monitor.rules import compile_rules


@dataclass(frozen=True)
class Shape:
    name: str
    query: str
    document: Callable[[], Document]


def _summary(text: str) -> Document:
    return Document("", text[:MAX_SUMMARY], "")


def _body(text: str) -> Document:
    return Document("", "", text[:MAX_CONTENT])


def _chain(levels: int, distance: str) -> str:
    return "w0" + "".join(f" NEAR/{distance} w{i}" for i in range(1, levels + 1))


SHAPES = [
    Shape("acronym chain, not ASCII", "embassy", lambda: _summary("é." * 9_990 + "éé")),
    Shape("acronym chain, ASCII", "embassy", lambda: _body("a." * 99_990 + "aa")),
    Shape("run of stops, not ASCII", "embassy", lambda: _summary("é " + "." * 19_990 + "x")),
    Shape("stacked possessives", "embassy", lambda: _body("x" + "'s" * 99_990)),
    Shape(  # the most runs, and the most text in them, that keep the ASCII split
        "acronym chains, 64 runs not ASCII",
        "embassy",
        lambda: _body(("a." * 1_175 + " " + "é." * 375 + " ") * 64),
    ),
    Shape(
        "NEAR/s, a list with no full stop",
        "russia NEAR/s embassy",
        lambda: _body("russia embassy " * 13_000),
    ),
    Shape(
        "12 chained NEAR/20, cyclic text",
        _chain(12, "20"),
        lambda: _body(" ".join(f"w{i % 13}" for i in range(20_000))),
    ),
]


def measure(shape: Shape) -> tuple[int, float, float]:
    """Characters, CPU seconds and peak traced MB of one match."""
    index = compile_rules({"r": shape.query}, {})
    doc = shape.document()
    start = time.process_time()
    index.match(doc)
    cpu = time.process_time() - start
    tracemalloc.start()
    index.match(shape.document())
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return len(doc.title) + len(doc.summary) + len(doc.body), cpu, peak


def main() -> None:
    print(f"{'shape':34} | {'chars':>7} | {'CPU s':>6} | {'peak MB':>7}")
    for shape in SHAPES:
        chars, cpu, peak = measure(shape)
        print(f"{shape.name:34} | {chars:7,} | {cpu:6.3f} | {peak:7.1f}")


if __name__ == "__main__":
    main()
