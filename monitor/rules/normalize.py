"""Text normalisation and tokenisation, shared by queries, entity forms and articles.

A query word and an article word meet only if both went through the same functions, so
everything that decides what a "word" is lives here. Offsets always refer to the original
text: normalisation is applied per token, never to the whole field, so that highlights and
snippets point at what the reader sees.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import regex

# One pass over the text finds words, dotted acronyms and sentence ends. Hyphens, slashes
# and other punctuation separate words ("Russia-U.S." gives "Russia" and "U.S.").
_TOKEN = regex.compile(
    r"""
    (?P<acronym>(?:\p{L}\p{M}*\.){2,}(?!\p{L})|(?:\p{L}\p{M}*\.)+\p{L}\p{M}*(?![\p{L}\p{N}.]))
        (?:['’ʼ]s(?![\p{L}\p{N}]))?
    | (?P<word>[\p{L}\p{N}][\p{L}\p{N}\p{M}]*(?:['’ʼ][\p{L}\p{N}][\p{L}\p{N}\p{M}]*)*)
    | (?P<stop>[.!?]+(?=[\s"'”’)\]]|$))
    """,
    regex.VERBOSE,
)
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'"})
# Periods after these words rarely end a sentence in news copy ("Mr. Lavrov said").
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "rev", "vs", "etc"),
        *("gen", "col", "lt", "sgt", "capt", "cmdr", "adm", "gov", "sen", "rep"),
        *("inc", "ltd", "co", "corp"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)


def fold(word: str) -> str:
    """Case- and accent-insensitive key: NFKC, case folding, diacritics removed."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.casefold().translate(_APOSTROPHES))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare)


def exact(word: str) -> str:
    """Case-sensitive key for single-quoted terms: only compatibility forms are unified."""
    if word.isascii():
        return word
    return unicodedata.normalize("NFKC", word.translate(_APOSTROPHES))


def _strip_possessive(word: str) -> str:
    while len(word) > 2 and word[-2] in "'’ʼ" and word[-1] in "sS":
        word = word[:-2]
    return word


def _is_one_word(text: str) -> bool:
    m = _TOKEN.fullmatch(text)
    return m is not None and m.lastgroup != "stop"


def _acronym_key(text: str) -> str:
    """U.S, U.S. and U.S.'s all become "U.S."; the dots are what keeps it apart from "us"."""
    return _strip_possessive(text).rstrip(".") + "."


@dataclass(slots=True)
class Tokens:
    """The words of one field, as parallel lists (cheaper than an object per word).

    ``start``/``end`` are character offsets of the word as found (possessive excluded);
    ``sentence`` numbers sentences from 0 so NEAR/s can compare them.
    """

    folded: list[str] = field(default_factory=list)
    exact: list[str] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    sentence: list[int] = field(default_factory=list)
    acronym: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.folded)


# What one surface string becomes: its (exact key, folded key, is-acronym) pieces, and the
# length of the word as found (the possessive excluded).
Spelling = tuple[tuple[tuple[str, str, bool], ...], int]


def tokenize(text: str, cache: dict[str, Spelling] | None = None) -> Tokens:
    """Split ``text`` into words with their keys, offsets and sentence numbers.

    ``cache`` remembers how each surface string normalises; articles repeat their words,
    and a long-lived cache (the rule index keeps one) makes most words a dict lookup.
    """
    if cache is None:
        cache = {}
    tokens = Tokens()
    folded, exacts, starts, ends = tokens.folded, tokens.exact, tokens.start, tokens.end
    sentences, acronyms = tokens.sentence, tokens.acronym
    sentence = 0
    previous = ""
    for m in _TOKEN.finditer(text):
        surface = m.group()
        spelling = cache.get(surface)
        if spelling is None:
            if m.lastgroup == "stop":
                # An abbreviation or an initial ("John F. Kennedy") ends no sentence.
                if surface != "." or not (previous in _ABBREVIATIONS or len(previous) == 1):
                    sentence += 1
                previous = ""
                continue
            spelling = cache[surface] = _spell(surface, m.lastgroup == "acronym")
        start = m.start()
        end = start + spelling[1]
        for exact_key, key, acronym in spelling[0]:
            folded.append(key)
            exacts.append(exact_key)
            starts.append(start)
            ends.append(end)
            sentences.append(sentence)
            acronyms.append(acronym)
            previous = key
    return tokens


def _spell(surface: str, acronym: bool) -> Spelling:
    """Keys of one word or acronym as found in the text."""
    if acronym:
        raw = _acronym_key(surface)
        length = len(surface) - 2 if surface.endswith(("'s", "’s", "ʼs")) else len(surface)
    else:
        raw = _strip_possessive(surface)
        length = len(raw)
    exact_key = exact(raw)
    if exact_key != raw and not _is_one_word(exact_key):
        # NFKC can turn one character into several words ("¼" gives "1⁄4"): split them as
        # a query or an article spelling them out would be split.
        spelled = tokenize(exact_key)
        pieces = zip(spelled.exact, spelled.folded, spelled.acronym, strict=True)
        return tuple(pieces), length
    # Folded from the exact key, so that 'US' and us share an index entry.
    return ((exact_key, fold(exact_key), acronym),), length
