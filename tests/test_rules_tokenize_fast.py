"""The ASCII fast path of the tokeniser splits and spells exactly like the Unicode path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.rules.normalize import _ABBREVIATIONS as ABBREVIATIONS
from monitor.rules.normalize import Spelling, spell, split, tokenize, unicode_split

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"

# Characters each class of the token pattern cares about and the typography the fast
# path maps to ASCII; among the chunks, a letter, an apostrophe and a space outside ASCII,
# which send a text down the Unicode path.
ALPHABET = "aZ09'.!?\")]([#-,\t\n\x0b\x0c\r\x1c \u2019\u201d\u201c\u2018\u2014\u2013\u2026\xa0"
CHUNKS = ["U.S.", "U.S", "Mr.", "’s", "'s", "...", "don't", "A.B.C.", "F. Kennedy", "?”"]
CHUNKS += ["é", "ʼs", "\u2009"]


def spelled(parts: list[str]) -> tuple[list[int], list[Spelling]]:
    """Part lengths (which fix every offset) and how each surface spells."""
    return [len(p) for p in parts], [spell(s) for s in parts[1::2]]


def assert_same_split(text: str) -> None:
    assert spelled(split(text)) == spelled(unicode_split(text))


texts = st.lists(
    st.one_of(st.text(ALPHABET, max_size=6), st.sampled_from(CHUNKS)), max_size=12
).map("".join)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(texts)
def test_fast_path_agrees_on_random_text(text: str) -> None:
    """On text built from every character class the pattern uses, both paths agree."""
    assert_same_split(text)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not present")
def test_fast_path_agrees_on_the_corpus() -> None:
    """On every corpus article body, both paths give the same parts and spellings."""
    for path in sorted(CORPUS.glob("*.txt")):
        assert_same_split(path.read_text(encoding="utf-8"))


def reference_tokens(text: str) -> dict[str, list[object]]:
    """Keys, offsets and sentence numbers word by word, as one plain loop would find them."""
    out: dict[str, list[object]] = {k: [] for k in ("folded", "exact", "start", "end", "sent")}
    sentence, previous, at = 0, "", 0
    for k, part in enumerate(unicode_split(text)):
        if k % 2 and part[0] in ".!?":
            if part != "." or not (previous in ABBREVIATIONS or len(previous) == 1):
                sentence += 1
            previous = ""
        elif k % 2:
            pieces, length, *_ = spell(part)
            for exact, folded, _ in pieces:
                for key, value in zip(out, (folded, exact, at, at + length, sentence), strict=True):
                    out[key].append(value)
                previous = folded
        at += len(part)
    return out


pieces = st.sampled_from(
    ["Russia", "U.S.", "Mr.", "F.", "¼", "ʼ", ".", "!", "?", "’s", "talks", "3.5", "\n", "“"]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(pieces, max_size=20), st.sampled_from([" ", "", "  "]))
@example(["ʼ", "."], " ")  # a word that spells to nothing, then a stop
@example(["ʼ", "¼", "talks", ".", "Russia"], " ")  # no word and two words: counts agree
def test_word_lists_agree_with_a_plain_loop(words: list[str], gap: str) -> None:
    """Lazy offsets and sentence numbers, whole lists or one word at a time, are the loop's."""
    text = gap.join(words)
    tokens = tokenize(text)
    expected = reference_tokens(text)
    assert tokens.folded == expected["folded"]
    assert tokens.exact == expected["exact"]
    spans = [tokens.offsets(i, j) for i in range(len(tokens)) for j in range(i, len(tokens))]
    ends = expected["end"]
    assert spans == [(s, e) for i, s in enumerate(expected["start"]) for e in ends[i:]]
    assert [tokens.sentence_of(i) for i in range(len(tokens))] == expected["sent"]
    assert (tokens.start, tokens.end, tokens.sentence) == (
        expected["start"],
        expected["end"],
        expected["sent"],
    )
