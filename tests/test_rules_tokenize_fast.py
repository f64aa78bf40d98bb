"""The ASCII fast path of the tokeniser, in both forms (C and Python), splits and spells
exactly like the Unicode path, alone or with a few runs of other characters between."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.plaintext import ABBREVIATIONS
from monitor.rules import normalize
from monitor.rules.normalize import (
    _STOP,
    _TOKEN,
    MAX_FOREIGN_RUNS,
    Spelling,
    Tokens,
    spell,
    split_unicode,
    tokenize,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"

SplitPlain = Callable[
    ..., tuple[list[str], list[Spelling | None], list[str], list[int], bytes | None]
]


def compiled_split() -> SplitPlain | None:
    try:
        from monitor.rules._speedups import split_plain
    except ImportError:
        return None
    return split_plain


SPLITS = [
    pytest.param(normalize._split_plain_python, id="python"),
    pytest.param(
        compiled_split(),
        id="c",
        marks=pytest.mark.skipif(compiled_split() is None, reason="the extension is not built"),
    ),
]

# Characters each class of the token pattern cares about and the typography the fast
# path maps to ASCII.
ALPHABET = "aZ09'.!?\")]([#-,\t\n\x0b\x0c\r\x1c \u2019\u201d\u201c\u2018\u2014\u2013\u2026\xa0"
CHUNKS = ["U.S.", "U.S", "Mr.", "’s", "'s", "...", "don't", "A.B.C.", "F. Kennedy", "?”"]
CHUNKS += ["u.s.'S", "e.g.", "3.5", "x.y.", "a.b.c", "dogs'"]


def assert_same_tokens(text: str, split_plain: SplitPlain) -> None:
    """The words ``split_plain`` gives for ``text`` (ASCII once its typography is mapped),
    as matching reads them, are the Unicode path's: keys, offsets and sentences."""
    plain = normalize._mapped(text)
    assert plain.isascii()
    parts, spellings, folded, stops, bounds = split_plain(plain, {}, spell, _STOP)
    assert list(map(len, parts)) == list(map(len, _TOKEN.split(text)))  # so every offset
    assert_same_words(Tokens(parts, spellings, folded, plain, stops, {}, bounds), text)


def assert_same_words(fast: Tokens, text: str) -> None:
    """``fast``'s words of ``text`` are the Unicode path's, as matching reads them."""
    unicode_parts = _TOKEN.split(text)
    slow = Tokens(unicode_parts, [spell(s) for s in unicode_parts[1::2]])
    assert fast.folded == slow.folded
    words = range(len(slow))
    assert [fast.exact_of(i) for i in words] == slow.exact
    assert [fast.offsets(i, i) for i in words] == [slow.offsets(i, i) for i in words]
    assert [fast.sentence_of(i) for i in words] == slow.sentence
    assert (fast.exact, fast.acronym, fast.start, fast.end, fast.sentence) == (
        slow.exact,
        slow.acronym,
        slow.start,
        slow.end,
        slow.sentence,
    )


texts = st.lists(
    st.one_of(st.text(ALPHABET, max_size=6), st.sampled_from(CHUNKS)), max_size=12
).map("".join)


@pytest.mark.parametrize("split_plain", SPLITS)
@settings(max_examples=500, derandomize=True)
@given(text=texts)
def test_fast_path_agrees_on_random_text(split_plain: SplitPlain, text: str) -> None:
    """On text built from every character class the pattern uses, both paths agree."""
    assert_same_tokens(text, split_plain)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not present")
@pytest.mark.parametrize("split_plain", SPLITS)
def test_fast_path_agrees_on_the_corpus(split_plain: SplitPlain) -> None:
    """On every corpus article body that is ASCII once its typography is mapped, both
    paths give the same words, keys, offsets and sentences."""
    bodies = [path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.txt"))]
    plain = [body for body in bodies if normalize._mapped(body).isascii()]
    assert len(plain) > len(bodies) // 2
    for body in plain:
        assert_same_tokens(body, split_plain)


def reference_tokens(text: str) -> dict[str, list[object]]:
    """Keys, offsets and sentence numbers word by word, as one plain loop would find them."""
    out: dict[str, list[object]] = {k: [] for k in ("folded", "exact", "start", "end", "sent")}
    sentence, previous, at = 0, "", 0
    parts = _TOKEN.split(text)
    for k, part in enumerate(parts):
        if not k % 2 and 0 < k < len(parts) - 1 and "\n" in part:
            sentence += 1  # a line break between two surfaces
        if k % 2 and part[0] in ".!?":
            initial = len(previous) == 1 and previous.isalpha()
            if part != "." or not (previous in ABBREVIATIONS or initial):
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


@settings(max_examples=300, derandomize=True)
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


CHAIN = "a." * 25  # longer than any acronym: tried from each letter, it cost cubic time


@pytest.mark.parametrize("split_plain", SPLITS)
@pytest.mark.parametrize(
    ("text", "folded", "breaks"),
    [
        # 20 letters at most: the chain's first five letters are words of their own
        (f"{CHAIN} x", [*"aaaaa", "a." * 20, "x"], []),
        (f"{'a.' * 20}a x", ["a." * 21, "x"], []),  # keyed with its final dot
        ("I.B.M.'s chief", ["i.b.m.", "chief"], []),
        # a stop starts a run of marks, or follows an acronym's dot
        ("met in the U.S.. Then talks", ["met", "in", "the", "u.s.", "then", "talks"], [4]),
        ("wait .... and ?!?! then", ["wait", "and", "then"], [1, 2]),
        ("x " + "." * 40 + "x y", ["x", "x", "y"], []),
        ("x's's's's", ["x"], []),
    ],
)
def test_hostile_shapes_split_as_real_text_does(
    split_plain: SplitPlain, text: str, folded: list[str], breaks: list[int]
) -> None:
    """Chains of dotted letters, runs of stops and stacked possessives split in linear
    time (bench/hostile.py), into the same tokens on every path."""
    assert_same_tokens(text, split_plain)
    assert unicode_tokens(text) == (folded, breaks)
    assert unicode_tokens(f"é {text}") == (["e", *folded], [b + 1 for b in breaks])


def unicode_tokens(text: str) -> tuple[list[str], list[int]]:
    tokens = split_unicode(text, {})
    return tokens.folded, tokens.breaks()


# Characters the fast split cannot read: letters with accents, a combining accent, a
# letter that NFKC makes two words and one it makes none, symbols, a space that is not
# ASCII, Hangul, and a capital whose lower case is two characters.
FOREIGN = "éÉßǅ\u0301¼ʼ®€\u2009한İ"
FOREIGN_CHUNKS = ["Erdoğan’s", "café.", "U.S.é", "é.é. x", "São Paulo", "naïve?”", "€5.3"]
mixed_texts = st.lists(
    st.one_of(st.text(ALPHABET + FOREIGN, max_size=6), st.sampled_from(CHUNKS + FOREIGN_CHUNKS)),
    max_size=12,
).map("".join)


@settings(max_examples=500, derandomize=True)
@given(text=mixed_texts)
def test_mostly_ascii_text_agrees_with_the_unicode_path(text: str) -> None:
    """Text with runs of other characters, split as ASCII with the runs apart (or by the
    Unicode path where that cannot be), gives the Unicode path's words."""
    assert_same_words(tokenize(text), text)


@pytest.mark.parametrize(
    ("text", "mixed"),
    [
        ("Recep Tayyip Erdoğan’s visit to the U.S. © 2026 Reuters.", True),
        ("Talks in São Paulo.\nMr. Lula said", True),
        ("¼ of the vote", False),  # NFKC makes two words of one surface
        (" ".join(["é"] * MAX_FOREIGN_RUNS + ["talks"] * 60), True),
        (" ".join(["é"] * (MAX_FOREIGN_RUNS + 1) + ["talks"] * 60), False),
        ("Moscou, le président a déclaré", False),  # a quarter of it in runs
    ],
)
def test_mostly_ascii_text_takes_the_fast_split(text: str, mixed: bool) -> None:
    """A few runs of other characters keep the rest of the text on the fast split."""
    tokens = tokenize(text)
    assert (tokens._text is not None) == mixed
    assert_same_words(tokens, text)
