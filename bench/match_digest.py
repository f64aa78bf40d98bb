"""Every match the rules engine gives over the corpus, as one digest: run it before and
after a change to matching and compare, to prove that results are unchanged.

Rule sets: both of bench/match.py (1,000 and 10,000 rules), and 600 rules with the
operators the benchmark does not draw (prefixes, NOT, ATLEAST, field scopes, exact terms,
OR of phrases, NEAR of common words). Texts: every corpus article body, as fed
(bench/match.py's title and summary) and cut otherwise (title: the second sentence;
summary: the whole text), so that every field holds stops, acronyms and possessives.
Each match is written as its rule, its terms (text, field, offsets) and its snippet.

    python -m bench.match_digest --articles ../shared/corpus/articles [--dump FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

from bench.match import WORD, as_fed, load_articles, make_rules
from monitor.models import Document
from monitor.rules import compile_rules


def operator_rules(texts: list[str], rng: random.Random) -> dict[str, str]:
    """600 rules over corpus words, each using an operator the benchmark leaves out."""
    words = sorted({w for t in texts for w in WORD.findall(t)})
    shapes = [
        lambda a, b: f"{a[: max(3, len(a) - 3)].lower()}*",
        lambda a, b: f"{a} NOT {b}",
        lambda a, b: f"ATLEAST/2 {a}",
        lambda a, b: f"title:{a} OR summary:{b}",
        lambda a, b: f"body:({a} AND {b})",
        lambda a, b: f"'{a}' OR '{b.upper()}'",
        lambda a, b: f'"{a} {b}" OR {a} NEAR/3 {b}',
        lambda a, b: f"NOT {a}",
        lambda a, b: f"ATLEAST/2 ({a} OR {b}*)",
        lambda a, b: f"{a} NEAR/s {b}",
        lambda a, b: f"(the NEAR/2 of) NEAR/s {a}",
        lambda a, b: f'"of the" NEAR/{len(b) % 5 + 1} ({a} OR said)',
        lambda a, b: f"(in OR to) NEAR/s (the OR {b})",
    ]
    return {
        f"op{i}": shapes[i % len(shapes)](rng.choice(words), rng.choice(words)) for i in range(600)
    }


def documents(texts: list[str]) -> Iterator[Document]:
    for text in texts:
        yield as_fed(text)
        second = text.split(". ", 2)[1] if text.count(". ") >= 2 else text[:80]
        yield Document(second, text, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--dump", type=Path, help="also write every match, one a line")
    args = parser.parse_args()
    sized, sources = load_articles(args.articles)
    texts = sized + sources
    docs = list(documents(texts))
    entities = make_rules(sources, 0, random.Random(0))[1]
    rule_sets = [make_rules(sources, n, random.Random(n)) for n in (1_000, 10_000)]
    rule_sets.append((operator_rules(texts, random.Random(1)), entities))
    digest = hashlib.sha256()
    out = args.dump.open("w", encoding="utf-8") if args.dump else None
    count = 0
    for rules, ents in rule_sets:
        index = compile_rules(rules, ents)
        for n, doc in enumerate(docs):
            for match in index.match(doc):
                line = f"{n}\t{match.rule}\t{match.terms!r}\t{match.snippet!r}\n"
                digest.update(line.encode())
                count += 1
                if out:
                    out.write(line)
    if out:
        out.close()
    print(f"{len(docs)} documents, {count} matches, sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    main()
