"""Same-story precision and recall on labelled pairs generated from the corpus articles.

Positive pairs are one article and an edited copy (realistic syndication edits); negative
pairs are two different articles chosen for high word overlap (same site, or nearest by
vocabulary), each with its site's boilerplate. The pairs are generated at test time from
the ground-truth texts (aeb-*.txt), which stay outside the project.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor import cluster

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"
_WORDS = re.compile(r"[^\W_]+")

BOILERPLATE = (
    "Sign up for our morning newsletter and get the day's most important stories delivered "
    "straight to your inbox. You can unsubscribe at any time.",
    "Copyright {year} {site}. All rights reserved. This material may not be published, "
    "broadcast, rewritten or redistributed without permission.",
    "Read more: the latest news, analysis and opinion from {site}. Follow us on social media "
    "for updates throughout the day.",
    "Our journalism depends on readers like you. Support independent reporting by becoming "
    "a subscriber today; it takes less than a minute.",
)
SWAPS = {"said": "stated", "says": "notes", "also": "additionally", "but": "however",
         "about": "around", "new": "fresh", "would": "could", "more": "further"}  # fmt: skip


@dataclass(frozen=True)
class Article:
    name: str
    site: str
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass(frozen=True)
class Pair:
    label: str  # which edit (positives) or how the pair was chosen (negatives)
    same: bool
    a: str
    b: str


def load_articles(corpus: Path = CORPUS) -> list[Article]:
    articles = []
    for path in sorted(corpus.glob("aeb-*.txt")):
        text = path.read_text(encoding="utf-8")
        paragraphs = tuple(p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip())
        site = path.stem.removeprefix("aeb-").rsplit("-", 1)[0]
        articles.append(Article(path.stem, site, paragraphs))
    return articles


def _plate(rng: random.Random, site: str) -> str:
    return rng.choice(BOILERPLATE).format(year=rng.choice((2024, 2025)), site=site)


def _light(text: str, rng: random.Random) -> str:
    """Copy-desk edits: a few words swapped, numbers restyled."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if word in SWAPS and rng.random() < 0.5:
            words[i] = SWAPS[word]
    return " ".join(words).replace("per cent", "percent").replace("%", " percent")


def _trim(paragraphs: list[str], rng: random.Random) -> list[str]:
    keep = max(2, round(len(paragraphs) * rng.uniform(0.6, 0.8)))
    return paragraphs[:keep]


def _reorder(paragraphs: list[str], rng: random.Random) -> list[str]:
    middle = paragraphs[1:-1]
    rng.shuffle(middle)
    return paragraphs[:1] + middle + paragraphs[-1:]


def edited_copy(article: Article, other: Article, rng: random.Random) -> tuple[str, str, str]:
    """(label, original as one outlet shows it, copy as another shows it)."""
    paras = list(article.paragraphs)
    original = [*paras, _plate(rng, article.site)]
    edits: dict[str, Callable[[list[str]], list[str]]] = {
        "headline": lambda p: [f"UPDATED: {other.paragraphs[0][:80]}", *p],
        "trimmed": lambda p: _trim(p, rng),
        "reordered": lambda p: _reorder(p, rng),
        "added": lambda p: [*p[:2], other.paragraphs[-1], *p[2:]],
        "light": lambda p: [_light(x, rng) for x in p],
    }
    chosen = rng.sample(sorted(edits), k=rng.randint(2, 3))
    copy = paras
    for name in chosen:
        copy = edits[name](copy)
    copy = [*copy, _plate(rng, "Wire Service")]  # different boilerplate, another outlet
    return "+".join(sorted(chosen)), "\n\n".join(original), "\n\n".join(copy)


def _vocabulary(article: Article) -> set[str]:
    return set(_WORDS.findall(article.text.lower()))


def labelled_pairs(articles: list[Article], seed: int = 7) -> list[Pair]:
    """Deterministic labelled pairs: one edited copy per article and the hard negatives."""
    rng = random.Random(seed)
    usable = [a for a in articles if len(a.paragraphs) >= 3]
    pairs = []
    for i, article in enumerate(usable):
        other = usable[(i + 1) % len(usable)]
        label, a, b = edited_copy(article, other, rng)
        pairs.append(Pair(label, True, a, b))
    vocab = {a.name: _vocabulary(a) for a in articles}

    def overlap(x: Article, y: Article) -> float:
        vx, vy = vocab[x.name], vocab[y.name]
        return len(vx & vy) / max(1, min(len(vx), len(vy)))

    chosen: set[tuple[str, str]] = set()
    for x in articles:
        same_site = [y for y in articles if y.site == x.site and y.name != x.name]
        nearest = max((y for y in articles if y.name != x.name), key=lambda y: overlap(x, y))
        for y, how in [*((s, "same-site") for s in same_site), (nearest, "nearest")]:
            key = (min(x.name, y.name), max(x.name, y.name))
            if key in chosen:
                continue
            chosen.add(key)
            plate = _plate(rng, x.site)  # the same site's boilerplate on both
            pairs.append(Pair(how, False, f"{x.text}\n\n{plate}", f"{y.text}\n\n{plate}"))
    return pairs


def same_story(a: str, b: str, threshold: float = cluster.DEFAULT_THRESHOLD) -> bool:
    """As the store decides: the band index must find the pair, then containment decides."""
    fa, fb = cluster.fingerprint(a), cluster.fingerprint(b)
    if fa is None or fb is None or not set(cluster.bands(fa)) & set(cluster.bands(fb)):
        return False
    return cluster.containment(fa, fb) >= threshold


def precision_recall(pairs: list[Pair], threshold: float) -> tuple[float, float]:
    said = [(p.same, same_story(p.a, p.b, threshold)) for p in pairs]
    true_pos = sum(truth and guess for truth, guess in said)
    precision = true_pos / max(1, sum(guess for _, guess in said))
    recall = true_pos / max(1, sum(truth for truth, _ in said))
    return precision, recall


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not present")
def test_same_story_precision_and_recall_on_corpus_pairs() -> None:
    """On labelled corpus pairs, "same story" has precision and recall of at least 0.95."""
    pairs = labelled_pairs(load_articles())
    assert sum(p.same for p in pairs) >= 100
    assert sum(not p.same for p in pairs) >= 100
    precision, recall = precision_recall(pairs, cluster.DEFAULT_THRESHOLD)
    assert precision >= 0.95
    assert recall >= 0.95
