"""The shared test corpus (../shared/corpus beside the checkout) and how we score against it.

Word-overlap F1: both texts are lower-cased and cut into word tokens (``\\w+``, Unicode);
each is a bag (a multiset) of tokens; the overlap is the multiset intersection.
Precision = overlap / tokens extracted, recall = overlap / tokens in the ground truth,
F1 their harmonic mean. docs/extraction.md reports these figures.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ARTICLES = CORPUS / "articles"
FEEDS = CORPUS / "feeds"
_WORD = re.compile(r"\w+")


def word_scores(extracted: str, truth: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``extracted`` against ``truth`` as bags of words."""
    got = Counter(_WORD.findall(extracted.lower()))
    want = Counter(_WORD.findall(truth.lower()))
    overlap = sum((got & want).values())
    precision = overlap / sum(got.values()) if got else 0.0
    recall = overlap / sum(want.values()) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def scored_pages() -> list[Path]:
    """The aeb-* pages: full human-annotated article bodies beside them."""
    return sorted(p for p in ARTICLES.glob("aeb-*.html") if p.with_suffix(".txt").exists())
