"""Text normalisation and tokenisation, shared by queries, entity forms and articles.

A query word and an article word meet only if both went through the same functions, so
everything that decides what a "word" is lives here. Offsets always refer to the original
text, so that highlights and snippets point at what the reader sees: normalisation is
applied per token, except that ASCII text, or the ASCII stretches of mostly ASCII text, is
lower-cased whole, which moves no offset.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate, chain, compress, count, islice, repeat
from operator import contains, is_, itemgetter, not_, sub
from typing import cast

import regex

from monitor.plaintext import ends_sentence
from monitor.rules import native

# One pass over the text finds words, dotted acronyms and sentence ends. Hyphens, slashes
# and other punctuation separate words ("Russia-U.S." gives "Russia" and "U.S."). The
# pattern has a single group so that ``split`` returns separators and tokens alternately:
# a stop starts with one of ".!?", an acronym holds a ".", a word never does.
_TOKEN = regex.compile(
    r"""(
      (?=\p{L}\p{M}*\.)
      (?:(?:\p{L}\p{M}*+\.){2,20}+(?!\p{L})|(?:\p{L}\p{M}*+\.){1,20}+\p{L}\p{M}*+(?![\p{L}\p{N}.]))
        (?:['’ʼ][sS](?![\p{L}\p{N}]))?
    | [\p{L}\p{N}][\p{L}\p{N}\p{M}]*(?:['’ʼ][\p{L}\p{N}][\p{L}\p{N}\p{M}]*)*
    | (?=[.!?])(?<![!?])(?<!(?<!\p{L}\p{M}*)\.)[.!?]++(?=[\s"'”’)\]]|$)
    )""",
    regex.VERBOSE,
)
# Hostile text must cost linear time: an acronym is at most 20 letters (a longer chain
# was tried from each of its letters, cubic: 20 KB of "é.é.é." took 191 s) and never
# backtracks; a stop starts at the start of a run of . ! ?, or after an acronym's dot
# (from each dot of a long run it was quadratic). Neither changes a token of real text.
# The lookaheads first make the common case, a word or a space, fail those branches
# at once: the atomic groups alone cost 13% more on the corpus texts.
# The same pattern for ASCII text, where every class above is a plain range; stdlib ``re``
# runs it about twice as fast as ``regex`` runs the Unicode one. ``\s`` is spelled out:
# stdlib's also takes \x1c-\x1f, which are no White_Space for ``regex``. The first character
# is taken out of the branches (each branch checks it by lookbehind, trying its options in
# the same order) so that the pattern starts with a character class: ``re`` then skips
# separators with a fast scan instead of trying every branch at every one (0.22 -> 0.13 ms
# per 5 KB body). Possessive quantifiers (``*+``) spare ``re`` the backtracking records; no
# match ever backtracks into them (nothing after a word can fail, and a stop's lookahead
# never takes a stop character), so they change nothing but time (-10%).
_ASCII_TOKEN = re.compile(
    r"""(
      [A-Za-z0-9.!?]
      (?: (?<=[A-Za-z])\.(?:(?:[A-Za-z]\.){1,19}+(?![A-Za-z])
                           |(?:[A-Za-z]\.){0,19}+[A-Za-z](?![A-Za-z0-9.]))
            (?:'[sS](?![A-Za-z0-9]))?
        | (?<=[A-Za-z0-9])[A-Za-z0-9]*+(?:'[A-Za-z0-9]++)*+
        | (?<=[.!?])(?<![!?][.!?])(?<![^A-Za-z]\.[.!?])[.!?]*+(?=[\t\n\x0b\x0c\r "')\]]|$)
      )
    )""",
    re.VERBOSE,
)
# News copy is mostly ASCII but for its typography. Each of these characters is replaced
# by an ASCII one that every class of _TOKEN treats alike (a closing quote stays a
# closing quote, an apostrophe an apostrophe), one for one so offsets are unchanged.
# (str.replace, not str.translate: translate looks every character up, 0.2 ms per 5 KB.)
_TYPOGRAPHY = (
    *(("’", "'"), ("”", '"'), ("“", "#"), ("‘", "#")),
    *(("—", "-"), ("–", "-"), ("…", "#"), ("\xa0", " ")),
)
# Runs between ASCII white space that hold another character: in mostly ASCII text, only
# these go through _TOKEN (_split_mixed). The lookbehind starts a run only after white
# space, so that each run is scanned once: linear time on text without any.
_ASCII_SPACE = r"\t\n\x0b\x0c\r "  # what no token takes: a run is cut there
_FOREIGN = re.compile(rf"(?<![^{_ASCII_SPACE}])[^{_ASCII_SPACE}]*?[^\x00-\x7f][^{_ASCII_SPACE}]*+")
# Past this many runs, or a quarter of the text in them, the general path costs less (on
# 7 KB articles with one word in 4, 8, 16 or 40 accented, 154 to 49 runs, the mixed split
# took 1.0, 0.81, 0.64 and 0.57 times the general path's CPU time).
MAX_FOREIGN_RUNS = 64
_BOUNDS = struct.Struct("=qq")  # a word's start and end, as the compiled split packs them
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'"})


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


def _possessive(word: str) -> bool:
    """Ends in 's, whatever the apostrophe and the case ("U.S.'S" in all-caps copy)."""
    return word[-2:-1] in ("'", "’", "ʼ") and word[-1:] in ("s", "S")


def _strip_possessive(word: str) -> str:
    """Each trailing 's off, while more than two characters are left before it (one
    slice: "x's's's..." was cut one copy at a time, quadratic)."""
    if not _possessive(word):
        return word  # most words: no regex search
    found = _POSSESSIVES.search(word)
    strip = min(len(found.group()) // 2, (len(word) - 1) // 2) if found else 0
    return word[: len(word) - 2 * strip]


_POSSESSIVES = regex.compile(r"(?:['’ʼ][sS])+$")
_NEWLINE = re.compile("\n")


def _is_one_word(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None and text[0] not in _STOPS


def _acronym_key(text: str) -> str:
    """U.S, U.S. and U.S.'s all become "U.S."; the dots are what keeps it apart from "us"."""
    return _strip_possessive(text).rstrip(".") + "."


# What one surface string becomes: its (exact key, folded key, is-acronym) pieces, the
# length of the word as found (the possessive excluded), and the pieces' folded keys
# again (so that a text's folded keys are chained from its spellings in C). A sentence
# end has no pieces.
Spelling = tuple[tuple[tuple[str, str, bool], ...], int, tuple[str, ...]]
_STOPS = ".!?"
_STOP: Spelling = ((), 0, ())
# Every word that spells to no word at all ("ʼ" alone): its length is never read. Made at
# run time, so that it is not the same object as the equal ``_STOP``.
_NOTHING: Spelling = tuple([(), 0, ()])  # type: ignore[assignment]


class Tokens:
    """The words of one field, as parallel lists (cheaper than an object per word).

    ``start``/``end`` are character offsets of the word as found (possessive excluded);
    ``sentence`` numbers sentences from 0 so NEAR/s can compare them. Only ``folded`` is
    built up front, as the index needs it; the other lists are derived on first use, and
    matching asks only for single words' (``offsets``, ``sentence_of``, ``exact_of``),
    which is cheaper than any whole list.

    Text that is ASCII (once its typography is mapped) is split lower-cased, so that a
    plain word (letters and digits) is its own folded key: it has no spelling (None),
    and ``text`` keeps the original case for the exact keys; ``exact_of`` spells them
    through ``cache``, the index's spelling cache. So is text with a few runs of other
    characters, whose surfaces are kept as found and spelled (``_split_mixed``).
    """

    __slots__ = (
        *("_acronym", "_break", "_cache", "_end", "_exact", "_owner", "_parts", "_sentence"),
        *("_ends", "_regular", "_spellings", "_start", "_stop_word", "_stops", "_text"),
        *("_bounds", "_packed", "folded"),
    )

    def __init__(
        self,
        parts: list[str],
        spellings: list[Spelling | None],
        folded: list[str] | None = None,
        text: str | None = None,
        stops: list[int] | None = None,
        cache: dict[str, Spelling] | None = None,
        bounds: bytes | None = None,
    ) -> None:
        self._parts = parts  # separators and surfaces, alternately, as a split gives them
        self._spellings = spellings  # one per surface; None for a plain word when ``text``
        self._text = text
        self._cache = {} if cache is None else cache  # spellings of surfaces as found
        # Each word's start and end offsets, when the split gave them (ASCII text); read
        # as int64 once a match asks (a query's words never are).
        self._packed = bounds
        self._bounds: memoryview | None = None
        if folded is None:
            folded = list(chain.from_iterable(map(itemgetter(2), self._spelled())))
        self.folded = folded
        self._exact: list[str] | None = None
        self._acronym: list[bool] | None = None
        self._start: list[int] | None = None
        self._end: list[int] | None = None
        self._sentence: list[int] | None = None
        self._stop_word: list[int] | None = None
        self._ends: list[int] | None = None  # of each part
        self._break: list[int] | None = None
        self._stops = stops  # the surfaces that are sentence-end marks, when known
        # Every surface gives one word, but the stops: always so in ASCII text.
        self._regular: bool | None = True if text is not None else None
        self._owner: list[int] | None = None  # else the surface of each word

    def __len__(self) -> int:
        return len(self.folded)

    @property
    def exact(self) -> list[str]:
        if self._exact is None:
            self._exact = [piece[0] for pieces, *_ in self._as_found() for piece in pieces]
        return self._exact

    @property
    def acronym(self) -> list[bool]:
        if self._acronym is None:
            self._acronym = [piece[2] for pieces, *_ in self._as_found() for piece in pieces]
        return self._acronym

    def _as_found(self) -> list[Spelling]:
        """Every surface's spelling, from the text as found (not lower-cased)."""
        if self._text is None:
            return self._spelled()
        return [spell(self._surface_as_found(s)) for s in range(len(self._spellings))]

    def _spelled(self) -> list[Spelling]:
        """The spellings, when every surface has one: the text was not split lower-cased
        (only such text can have a surface that gives several words or none)."""
        assert self._text is None
        return cast("list[Spelling]", self._spellings)

    def _surface_as_found(self, s: int) -> str:
        ends = self._ends if self._ends is not None else self._part_ends()
        assert self._text is not None
        return self._text[ends[2 * s] : ends[2 * s + 1]]

    @property
    def start(self) -> list[int]:
        if self._start is None:
            self._start = [self.offsets(i, i)[0] for i in range(len(self))]
        return self._start

    @property
    def end(self) -> list[int]:
        if self._end is None:
            self._end = [self.offsets(i, i)[1] for i in range(len(self))]
        return self._end

    @property
    def sentence(self) -> list[int]:
        if self._sentence is None:
            numbers: list[int] = []
            for sentence, words in enumerate(self.breaks()):
                numbers += [sentence] * (words - len(numbers))
            self._sentence = numbers + [len(self.breaks())] * (len(self) - len(numbers))
        return self._sentence

    # Single words' offsets and sentences, for the few words a match reports or a NEAR/s
    # compares: the full lists cost more than all the rest of a match.

    def offsets(self, first: int, last: int) -> tuple[int, int]:
        """Where words ``first`` to ``last`` stand in the text, the last one's possessive
        excluded: (start, end) character offsets."""
        if self._packed is not None:  # made by the split, no int object until read
            bounds = self._bounds
            if bounds is None:
                bounds = self._bounds = memoryview(self._packed).cast("q")
            return bounds[2 * first], bounds[2 * last + 1]
        # No helper calls once their lists are made: a match reports dozens of words (each
        # cost four calls more).
        ends = self._ends if self._ends is not None else self._part_ends()
        owners = self._owner if self._regular is not None else self._owners()
        if owners is None:  # each stop before a word shifts its surface by one
            stops = self._stop_word if self._stop_word is not None else self._stop_words()
            head = first + bisect_right(stops, first)
            tail = head if last == first else last + bisect_right(stops, last)
        else:
            head, tail = owners[first], owners[last]
        # Surface s is part 2s + 1: it starts where the parts before it end.
        spelled = self._spellings[tail]
        length = len(self._parts[2 * tail + 1]) if spelled is None else spelled[1]
        return ends[2 * head], ends[2 * tail] + length

    def exact_of(self, i: int) -> str:
        """Exact key of word ``i`` (a case-sensitive term checks a few words)."""
        if self._text is None:
            return self.exact[i]
        # ASCII text gives one word per surface but the stops
        surface = i + bisect_right(self._stop_words(), i)
        # through the cache: the words a case-sensitive term checks recur
        return _spelled(self._surface_as_found(surface), self._cache)[0][0][0]

    def sentence_of(self, i: int) -> int:
        """Number of word ``i``'s sentence, from 0."""
        return bisect_right(self.breaks(), i)

    def _part_ends(self) -> list[int]:
        if self._ends is None:
            self._ends = list(accumulate(map(len, self._parts)))
        return self._ends

    def _stop_surfaces(self) -> list[int]:
        """Indices of the surfaces that are sentence-end marks.

        Every stop is spelled as the one ``_STOP``, so they are found by identity, in C,
        without reading the other spellings (``list.index`` compared each one's contents).
        """
        if self._stops is None:
            stops = map(is_, self._spellings, repeat(_STOP))
            self._stops = list(compress(count(), stops))
        return self._stops

    def _stop_words(self) -> list[int]:
        """For each stop, how many words come before it (when ``_owners`` is None)."""
        if self._stop_word is None:
            self._stop_word = list(map(sub, self._stop_surfaces(), count()))
        return self._stop_word

    def _owners(self) -> list[int] | None:
        """The surface each word came from; None when that is every surface but the stops.

        A surface gives one word, except a stop (none) and the rare word that compatibility
        normalisation turns into several words or none ("¼" gives two).
        """
        if self._regular is None:
            # Every surface but a stop or a _NOTHING gives one word or more, so they all
            # give one when the counts agree: found by identity, without reading them.
            spellings = self._spellings
            words = len(spellings) - len(self._stop_surfaces())
            nothing = any(map(is_, spellings, repeat(_NOTHING)))
            self._regular = len(self.folded) == words and not nothing
            if not self._regular:
                counts = map(len, map(itemgetter(0), self._spelled()))
                self._owner = [i for i, n in enumerate(counts) for _ in range(n)]
        return self._owner

    def breaks(self) -> list[int]:
        """For each sentence end, how many words come before it: a stop that ends a
        sentence, or a line break. Stored text has a line per paragraph, heading, list
        item or caption (a feed's wrapped lines are joined when it is parsed), and none
        of them runs on into the next: a heading "Russia" is no sentence with the
        paragraph under it."""
        if self._break is None:
            self._break = sorted([*self._stop_breaks(), *self._line_breaks()])
        return self._break

    def _stop_breaks(self) -> list[int]:
        ends: list[int] = []
        surfaces = self._parts[1::2]
        if self._owners() is None:
            after = 0  # the first surface after the last stop
            for stop, words in zip(self._stop_surfaces(), self._stop_words(), strict=True):
                previous = self.folded[words - 1] if stop > after else ""
                if ends_sentence(surfaces[stop], previous):
                    ends.append(words)
                after = stop + 1
            return ends
        words, previous = 0, ""
        for surface, (pieces, *_) in zip(surfaces, self._spelled(), strict=True):
            if pieces:
                words += len(pieces)
                previous = pieces[-1][1]
            elif surface[0] in _STOPS:
                if ends_sentence(surface, previous):
                    ends.append(words)
                previous = ""
        return ends

    def _line_breaks(self) -> list[int]:
        """Each word, but the first, with a line break between it and the word before."""
        if self._packed is not None:  # ASCII: the few line breaks looked up by offset
            assert self._text is not None
            if "\n" not in self._text:
                return []
            if self._bounds is None:
                self._bounds = memoryview(self._packed).cast("q")
            starts = self._bounds[::2]
            found = {bisect_left(starts, at.start()) for at in _NEWLINE.finditer(self._text)}
        else:
            between = self._parts[2:-1:2]  # the separators before surfaces 1, 2, ...
            lines = compress(count(1), map(contains, between, repeat("\n")))
            owners = self._owners()
            if owners is None:  # every surface a word but the stops
                stops = self._stop_surfaces()
                found = {surface - bisect_left(stops, surface) for surface in lines}
            else:
                found = {bisect_left(owners, surface) for surface in lines}
        return sorted(word for word in found if 0 < word < len(self.folded))


def tokenize(text: str, cache: dict[str, Spelling] | None = None) -> Tokens:
    """Split ``text`` into words with their keys, offsets and sentence numbers.

    ``cache`` remembers how each surface string normalises; articles repeat their words,
    and a long-lived cache (the rule index keeps one) makes most words a dict lookup.
    """
    if cache is None:
        cache = {}
    plain = _mapped(text)
    if plain.isascii():
        parts, spellings, folded, stops, bounds = _split_plain(plain, cache, spell, _STOP)
        return Tokens(parts, spellings, folded, plain, stops, cache, bounds)
    return _split_mixed(plain, cache) or split_unicode(text, cache)


def split_unicode(text: str, cache: dict[str, Spelling]) -> Tokens:
    """Any text: every surface found by _TOKEN and spelled through ``cache``."""
    parts = _TOKEN.split(text)
    surfaces = parts[1::2]
    # Known words are read in C; the gaps (a few dozen new words per article) are found in
    # C too and filled one by one (cheaper than a set of all the surfaces).
    spellings = list(map(cache.get, surfaces))
    if None in spellings:
        for i in compress(count(), map(not_, spellings)):
            spellings[i] = _spelled(surfaces[i], cache)
    return Tokens(parts, spellings)


def _split_mixed(plain: str, cache: dict[str, Spelling]) -> Tokens | None:
    """Text that is ASCII but for a few runs (a name with an accent, a "©"), split as
    ASCII text is: the stretches between the runs by the fast split, each run by _TOKEN.

    A run is cut at ASCII white space, which no token takes and any token may end before,
    so each piece splits as it does in the whole. None where the runs are many or long
    (the general path costs less then), or one of their surfaces gives other than one
    word or a stop (only the general path keeps track of those).
    """
    runs = [run.span() for run in islice(_FOREIGN.finditer(plain), MAX_FOREIGN_RUNS + 1)]
    if len(runs) > MAX_FOREIGN_RUNS or 4 * sum(end - start for start, end in runs) > len(plain):
        return None
    parts: list[str] = [""]
    spellings: list[Spelling | None] = []
    folded: list[str] = []
    stops: list[int] = []
    bounds: list[bytes] | None = []
    at = 0
    # each run with the ASCII stretch before it; an empty run at the end closes the text
    for start, end in [*runs, (len(plain), len(plain))]:
        more, spelled, keys, stopped, packed = _split_plain(
            plain[at:start], cache, spell, _STOP, at
        )
        stops += [len(spellings) + i for i in stopped]
        parts[-1] += more[0]
        parts += more[1:]
        spellings += spelled
        folded += keys
        if packed is None:  # the pure-Python split: offsets come from the parts
            bounds = None
        elif bounds is not None:
            bounds.append(packed)
        if start == end:
            break
        more = _TOKEN.split(plain[start:end])
        parts[-1] += more[0]
        offset = start + len(more[0])
        for surface, gap in zip(more[1::2], more[2::2], strict=True):
            found = _spelled(surface, cache)
            if found is _STOP:
                stops.append(len(spellings))
            elif len(found[0]) != 1 or not found[2][0]:
                return None
            else:
                folded.append(found[2][0])
                if bounds is not None:
                    bounds.append(_BOUNDS.pack(offset, offset + found[1]))
            spellings.append(found)
            parts += (surface, gap)
            offset += len(surface) + len(gap)
        at = end
    packed_bounds = None if bounds is None else b"".join(bounds)
    return Tokens(parts, spellings, folded, plain, stops, cache, packed_bounds)


def _split_plain_python(
    plain: str,
    cache: dict[str, Spelling],
    spell: Callable[[str], Spelling],
    stop: Spelling,
    base: int = 0,
) -> tuple[list[str], list[Spelling | None], list[str], list[int], bytes | None]:
    """Split ASCII text lower-cased: its parts, the spellings of its surfaces (None for a
    plain word), its folded keys, which surfaces are stops (spelled as ``stop``), and
    None where the compiled form gives each word's start and end offsets (counted from
    ``base``), packed as native int64 (made in Python, the ints cost more than
    ``Tokens.offsets`` deriving the few it is asked for from the parts: the split took
    twice as long).

    Lower-cased, a plain word (letters and digits) is its own folded key (NFKC and accents
    are no matter in ASCII): only the others (stops, possessives, acronyms, "don't") are
    spelled, through ``cache``. monitor/rules/_speedups.c does the same in one pass.
    """
    parts = _ASCII_TOKEN.split(plain.lower())
    surfaces = parts[1::2]
    spellings: list[Spelling | None] = [None] * len(surfaces)
    folded = surfaces[:]
    others = list(compress(count(), map(not_, map(str.isalnum, surfaces))))
    for i in others:
        spellings[i] = spelled = _spelled(surfaces[i], cache)
        folded[i] = spelled[2][0] if spelled[2] else ""  # one key, or none for a stop
    # The stops are among the few others: found there, not among all the surfaces.
    stops = list(compress(others, map(is_, map(spellings.__getitem__, others), repeat(stop))))
    return parts, spellings, list(filter(None, folded)), stops, None


if native.COMPILED:
    from monitor.rules._speedups import split_plain as _split_plain
else:
    _split_plain = _split_plain_python


def _mapped(text: str) -> str:
    """``text`` with its typography mapped to ASCII one for one.

    Its surfaces may differ from the text's only in apostrophes, which spell alike;
    lengths, and so offsets, are the same.
    """
    plain = text
    if not plain.isascii():
        for typographic, ascii_char in _TYPOGRAPHY:
            plain = plain.replace(typographic, ascii_char)
    return plain


def _spelled(surface: str, cache: dict[str, Spelling]) -> Spelling:
    """``spell(surface)``, remembered in ``cache``."""
    found = cache.get(surface)
    if found is None:
        found = cache[surface] = spell(surface)
    return found


def spell(surface: str) -> Spelling:
    """Keys of one word, acronym or sentence end as found in the text."""
    if surface[0] in _STOPS:
        return _STOP
    acronym = "." in surface
    if acronym:
        raw = _acronym_key(surface)
        length = len(surface) - 2 if _possessive(surface) else len(surface)
    else:
        raw = _strip_possessive(surface)
        length = len(raw)
    exact_key = exact(raw)
    if exact_key != raw and not _is_one_word(exact_key):
        # NFKC can turn one character into several words ("¼" gives "1⁄4"): split them as
        # a query or an article spelling them out would be split.
        spelled = tokenize(exact_key)
        if not spelled.folded:
            return _NOTHING
        pieces = zip(spelled.exact, spelled.folded, spelled.acronym, strict=True)
        return tuple(pieces), length, tuple(spelled.folded)
    # Folded from the exact key, so that 'US' and us share an index entry.
    folded = fold(exact_key)
    return ((exact_key, folded, acronym),), length, (folded,)
