"""Explanations for `newsmon test`: matched words in context, or the clause that failed."""

from __future__ import annotations

import pytest

from monitor.models import Document
from monitor.rules import compile_rules, render_explanation

ENTITIES = {"russia": ["Russia", "Russian", "Russian Federation", "Kremlin"]}
RULES = {
    "embassy": "@russia AND (embassy OR diplomat)",
    "near": "sanction NEAR/2 bank",
    "count": "ATLEAST/3 @russia",
    "not": "embassy NOT sport",
    "title": "title:embassy",
    "title-entity": "title:@russia",
    "title-group": "title:(embassy OR diplomat)",
}
INDEX = compile_rules(RULES, ENTITIES)

FAILURES = [
    ("embassy", "The Prussian embassy reopened.", "@russia", 1, "not found"),
    ("embassy", "Russia said so.", "embassy OR diplomat", 14, "none of these found"),
    (
        "near",
        "Sanctions hit. Later a bank",
        "sanction NEAR/2 bank",
        1,
        "both sides found, never within 2 words in one field",
    ),
    ("count", "Russia and the Kremlin", "ATLEAST/3 @russia", 1, "found 2 times, needs 3"),
    ("not", "the embassy sport day", "NOT sport", 9, "found, and excluded: sport"),
    ("title", "embassy in the body", "embassy", 7, "not found in title"),
    ("title-entity", "the Kremlin in the body", "@russia", 7, "not found in title"),
    (
        "title-group",
        "embassy in the body",
        "embassy OR diplomat",
        8,
        "none of these found in title",
    ),
]


@pytest.mark.parametrize(
    ("rule", "body", "clause", "column", "reason"),
    FAILURES,
    ids=[f"{f[0]}: {f[4]}" for f in FAILURES],
)
def test_failed_clause(rule: str, body: str, clause: str, column: int, reason: str) -> None:
    """A non-match names the innermost failing clause, its column and why it failed."""
    expl = INDEX.explain(Document("", "", body), rule)
    assert not expl.matched
    assert expl.failure is not None
    assert (expl.failure.clause, expl.failure.column, expl.failure.reason) == (
        clause,
        column,
        reason,
    )


def test_render_match() -> None:
    """A match renders the verdict, the matched words and each in context."""
    body = "Russian Federation officials met diplomats from three embassies."
    text = render_explanation(INDEX.explain(Document("Kremlin line", "", body), "embassy"))
    assert text.splitlines() == [
        "rule embassy: MATCH",
        "  query: @russia AND (embassy OR diplomat)",
        "  matched: Kremlin, Russian Federation, diplomats, embassies",
        "  title: [Kremlin] line",
        "  body: [Russian Federation] officials met [diplomats] from three [embassies].",
    ]


def test_render_non_match_shows_what_was_found() -> None:
    """A non-match renders the failing clause and the rule's words that were found."""
    text = render_explanation(INDEX.explain(Document("", "", "Russia said so."), "embassy"))
    assert text.splitlines() == [
        "rule embassy: no match",
        "  query: @russia AND (embassy OR diplomat)",
        "  failed: embassy OR diplomat (column 14): none of these found",
        "  found: Russia",
        "  body: [Russia] said so.",
    ]


def test_explain_unknown_rule() -> None:
    """Explaining a rule that does not exist is a KeyError naming it."""
    with pytest.raises(KeyError, match="nope"):
        INDEX.explain(Document("", "", ""), "nope")


def test_snippet_centres_on_the_best_cluster() -> None:
    """The snippet is about 200 characters around the densest group of matched words."""
    filler = "Lorem ipsum dolor sit amet. " * 20
    body = filler + "Russian diplomats visited the embassy. " + filler
    [hit] = INDEX.match(Document("", "", body), only={"embassy"})
    assert "Russian diplomats visited the embassy." in hit.snippet
    assert hit.snippet.startswith("…")
    assert hit.snippet.endswith("…")
    assert len(hit.snippet) <= 202
