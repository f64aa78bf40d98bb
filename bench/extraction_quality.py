"""How well extraction recovers the story on the corpus, before and after monitor/clean.py.

Run from the checkout: ``python -m bench.extraction_quality [--compare]``. Prints mean word
precision, recall and F1 (tests/corpus.py defines them) on the aeb-* pages, what the
cleaner removed, and which removed lines the ground truth counts as story. ``--compare``
also scores other trafilatura settings. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import re
import statistics
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import trafilatura

from monitor.clean import clean_body
from monitor.extract import TRAFILATURA_OPTIONS
from tests.corpus import ARTICLES, scored_pages, word_scores

VARIANTS: dict[str, dict[str, Any]] = {
    "trafilatura defaults": {"include_comments": False},
    "no tables": {"include_comments": False, "include_tables": False},
    "favor_recall": {"include_comments": False, "favor_recall": True},
    "favor_precision, no tables": {
        "include_comments": False, "include_tables": False, "favor_precision": True,
    },
}  # fmt: skip
_WORD = re.compile(r"\w+")


def _extract(job: tuple[Path, dict[str, Any]]) -> str:
    path, options = job
    document = trafilatura.bare_extraction(path.read_bytes(), **options)
    return (document.text or "") if isinstance(document, trafilatura.settings.Document) else ""


def _means(texts: list[str], truths: list[str]) -> str:
    scores = [word_scores(t, w) for t, w in zip(texts, truths, strict=True)]
    p, r, f = (statistics.fmean(s[i] for s in scores) for i in range(3))
    return f"P {p:.4f}  R {r:.4f}  F1 {f:.4f}"


def _stray_lines(texts: list[str], truths: list[str]) -> int:
    """Short lines (at most 30 words) whose words do not appear, in order, in the truth."""

    def words(text: str) -> str:
        return " ".join(_WORD.findall(text.lower()))

    stray = 0
    for text, truth in zip(texts, truths, strict=True):
        story = words(truth)  # once per page, not once per line
        for line in map(words, text.splitlines()):
            if line and len(line.split()) <= 30 and line not in story:
                stray += 1
    return stray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", action="store_true", help="also score other settings")
    args = parser.parse_args()
    pages = scored_pages()
    truths = [p.with_suffix(".txt").read_text(encoding="utf-8") for p in pages]
    variants = {"newsmon (TRAFILATURA_OPTIONS)": TRAFILATURA_OPTIONS}
    if args.compare:
        variants |= VARIANTS
    shipped: list[str] = []  # newsmon's own extraction, for the listing below
    with Pool() as pool:
        for label, options in variants.items():
            raw = pool.map(_extract, [(p, options) for p in pages])
            shipped = shipped or raw
            cleaned = [clean_body(t) for t in raw]
            print(f"{label}, {len(pages)} aeb pages")
            print(f"  before clean.py: {_means(raw, truths)}")
            print(f"  after clean.py:  {_means(cleaned, truths)}")
            print(f"  stray short lines: {_stray_lines(raw, truths)} before, "
                  f"{_stray_lines(cleaned, truths)} after")  # fmt: skip
    removed = [
        (page, line)
        for page, text in zip(pages, shipped, strict=True)
        for line in set(text.splitlines()) - set(clean_body(text).splitlines())
        if line.strip()
    ]
    hit_pages = {page for page, _ in removed}
    print(f"clean.py removed {len(removed)} lines on {len(hit_pages)} of {len(pages)} pages")
    for page, line in sorted(removed):
        truth = (ARTICLES / f"{page.stem}.txt").read_text(encoding="utf-8")
        mark = "IN TRUTH" if line.strip() in truth else "        "
        print(f"  {mark} {page.stem[4:34]:30} {line.strip()[:90]}")


if __name__ == "__main__":
    main()
