"""Turning matched token spans into what people read: matched terms and a snippet."""

from __future__ import annotations

from collections.abc import Callable, Collection
from operator import itemgetter

from monitor.models import MatchedTerm
from monitor.rules import native
from monitor.rules.plan import Span, View
from monitor.rules.syntax import FIELDS

SNIPPET_WIDTH = 200


def matched_terms(view: View, spans: Collection[Span]) -> tuple[MatchedTerm, ...]:
    """Each distinct span once, in field and text order, with the words as found.

    A span inside a longer one ("Russian" in "Russian Federation") is left out. Terms
    are made once per document and span (``view.terms``): rules share entities and words.
    """
    return _terms_of(spans, view.terms, term_maker, view)


def terms_of_python(
    spans: Collection[Span],
    made: dict[Span, MatchedTerm],
    make: Callable[[View, Span], MatchedTerm],
    view: View,
) -> tuple[MatchedTerm, ...]:
    """:func:`matched_terms`, each term ``made[span]`` or else ``make(view, span)``
    (monitor/rules/_speedups.c does the same in C)."""
    if len(spans) == 1:  # a third of all matches: nothing to order
        [span] = spans
        return (made.get(span) or make(view, span),)
    # In field and text order, the longest first among those starting together (two
    # stable sorts with C key functions: a lambda per span cost more).
    ordered = sorted(set(spans), key=itemgetter(2), reverse=True)
    ordered.sort(key=itemgetter(0, 1))
    out = []
    reach = (-1, -1)  # (field, furthest last token) of the spans so far
    for span in ordered:
        f, _, last = span
        if reach[0] == f and last <= reach[1]:
            continue  # starts no earlier and ends no later than one already kept
        reach = (f, last)
        out.append(made.get(span) or make(view, span))
    return tuple(out)


def make_term(view: View, span: Span) -> MatchedTerm:
    """The words of ``span`` as found, remembered in ``view`` for other rules."""
    f, first, last = span
    start, end = view.tokens[f].offsets(first, last)
    term = view.terms[span] = MatchedTerm(view.texts[f][start:end], FIELDS[f], start, end)
    return term


# In C, a term costs a quarter of what it costs in Python (0.3 against 1.1 us); at
# 10,000 rules an article has eighty, and they were a sixth of its matching time. The
# compiled maker reads the words' offsets the ASCII split packed, and asks
# ``make_term`` for text split in Python.
if native.COMPILED:
    from monitor.rules._speedups import TermMaker
    from monitor.rules._speedups import matched_terms as _terms_of

    term_maker: Callable[[View, Span], MatchedTerm] = TermMaker(MatchedTerm, FIELDS, make_term)
else:
    _terms_of = terms_of_python
    term_maker = make_term


def snippet_of(
    texts: tuple[str, str, str], terms: tuple[MatchedTerm, ...], width: int = SNIPPET_WIDTH
) -> str:
    """About ``width`` characters of ``texts`` (title, summary, body) around the window
    holding the most distinct matched words. It needs the texts only, so a lazy snippet
    keeps no tokenised document alive.

    Each matched term anchors a window of the terms that end within ``width`` characters
    of its start; the best has the most distinct words, then the most terms. Ties go to
    the body, then the summary (the title is shown in every alert anyway), then to the
    earlier window. A term longer than ``width`` is a window of its own.
    """
    if len(terms) == 1:  # the common case, and the only window there is
        [term] = terms
        return _window(texts[FIELDS.index(term.field)], term.start, term.end, width)
    best: tuple[int, int, int] | None = None
    where = (0, 0, 0)  # field, start and end of the best window
    for rank, name in enumerate(reversed(FIELDS)):
        in_field = [t for t in terms if t.field == name]
        # Terms come in text order and none lies inside another, so their ends grow too:
        # each window is a run of terms, and slides to the right as its anchor does.
        words = [t.text.casefold() for t in in_field]
        counts: dict[str, int] = {}
        after = 0  # the first term not in the window
        for i, anchor in enumerate(in_field):
            limit = anchor.start + width
            while after < len(in_field) and in_field[after].end <= limit:
                counts[words[after]] = counts.get(words[after], 0) + 1
                after += 1
            if anchor.end <= limit:
                score = (len(counts), after - i, -rank)
                end = in_field[after - 1].end
            else:
                score, end, after = (1, 1, -rank), anchor.end, i + 1
            if best is None or score > best:
                best, where = score, (FIELDS.index(name), anchor.start, end)
            if anchor.end <= limit:  # the anchor leaves the window
                counts[words[i]] -= 1
                if not counts[words[i]]:
                    del counts[words[i]]
    if best is None:
        return ""
    field, start, end = where
    return _window(texts[field], start, end, width)


def _window(text: str, start: int, end: int, width: int) -> str:
    """Centre [start, end) in ``width`` characters, cut at spaces, marked with ellipses."""
    pad = max(0, (width - (end - start)) // 2)
    lo = max(0, start - pad)
    hi = min(len(text), max(end, lo + width))
    lo = max(0, min(lo, hi - width))
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    body = " ".join(text[lo:hi].split())  # whitespace runs as one space, as re's \s+ would
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")
