"""Snippets: the sliding-window search agrees with the definition, window by window."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import Document, MatchedTerm
from monitor.rules.plan import FIELDS, View
from monitor.rules.snippet import _window, matched_terms, snippet_of

WORDS = ["Russia", "russia", "embassy", "talks", "a", "the", "sanctions", "Kremlin", "x" * 30]


def reference(view: View, terms: tuple[MatchedTerm, ...], width: int) -> str:
    """Every anchor's window scored from scratch, as docs/rules.md words it."""
    best = None
    for rank, name in enumerate(reversed(FIELDS)):
        in_field = [t for t in terms if t.field == name]
        for i, anchor in enumerate(in_field):
            window = [t for t in in_field[i:] if t.end <= anchor.start + width] or [anchor]
            score = (len({t.text.casefold() for t in window}), len(window), -rank)
            if best is None or score > best[0]:
                best = (score, name, anchor.start, window[-1].end)
    if best is None:
        return ""
    _, name, start, end = best
    return _window(view.texts[FIELDS.index(name)], start, end, width)


texts = st.lists(st.sampled_from(WORDS), max_size=15).map(" ".join)


@settings(max_examples=300, derandomize=True)
@given(texts, texts, texts, st.data(), st.integers(5, 80))
def test_snippet_agrees_with_reference(
    title: str, summary: str, body: str, data: st.DataObject, width: int
) -> None:
    """For random matched spans and widths, the snippet is the reference's."""
    view = View(Document(title, summary, body))
    spans = []
    for f, tokens in enumerate(view.tokens):
        if len(tokens):
            firsts = st.integers(0, len(tokens) - 1)
            for first in data.draw(st.lists(firsts, max_size=6)):
                last = data.draw(st.integers(first, min(first + 2, len(tokens) - 1)))
                spans.append((f, first, last))
    terms = matched_terms(view, spans)
    assert snippet_of(view.texts, terms, width) == reference(view, terms, width)


def test_term_longer_than_the_width_is_shown() -> None:
    """A matched term longer than the snippet width is its own window, not an error."""
    body = "a " + "x" * 30 + " b " + "x" * 30
    view = View(Document("", "", body))
    terms = matched_terms(view, [(2, 1, 1), (2, 3, 3)])
    assert snippet_of(view.texts, terms, width=20) == "…" + "x" * 30 + "…"
